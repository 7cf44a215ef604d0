//! The corpus of clang-built objects the corpus tests walk: every `.o`/`.elf` under
//! `corpus/build/objects` (built by `scripts/corpus.sh`), or under `BPFPATCH_CORPUS` when set.
//! Shared by every crate's corpus tests.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

/// What a test without the corpus needs.
pub const WHAT: &str = "the corpus (scripts/corpus.sh)";

/// The corpus files in path order, or `None` after a counted skip (`bpfpatch_testkit`; a failure
/// under `BPFPATCH_REQUIRE_INPUTS=1`) when the folder is absent or holds no object.
#[track_caller]
pub fn corpus() -> Option<Vec<PathBuf>> {
    let dir = std::env::var_os("BPFPATCH_CORPUS").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../corpus/build/objects")),
        PathBuf::from,
    );
    if !crate::require_input(WHAT, &dir) {
        return None;
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "o" || x == "elf") {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        crate::skip(WHAT, &format!("{} holds no .o or .elf", dir.display()));
        return None;
    }
    Some(files)
}
