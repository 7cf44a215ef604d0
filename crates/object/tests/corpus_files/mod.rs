//! The corpus of clang-built objects the corpus tests walk: every `.o`/`.elf` under
//! `corpus/build/objects` (built by `scripts/corpus.sh`), or under `BPFPATCH_CORPUS` when set.
//! Shared by this crate's corpus tests and, through `#[path]`, the CLI's.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

/// The corpus files in path order, or `None` (with a notice on stdout) when the folder is
/// absent or holds no object.
pub fn corpus() -> Option<Vec<PathBuf>> {
    let dir = std::env::var_os("BPFPATCH_CORPUS").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../corpus/build/objects")),
        PathBuf::from,
    );
    if !dir.is_dir() {
        println!("corpus absent ({}), skipped; run scripts/corpus.sh", dir.display());
        return None;
    }
    let mut files = Vec::new();
    let mut stack = vec![dir];
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
        println!("corpus empty, skipped");
        return None;
    }
    Some(files)
}
