//! bpfpatch's test kit (a dev-dependency, never published): what the workspace's tests and
//! `fuzz/` share, written against the public APIs only (an oracle that shares code with what it
//! checks proves nothing).
//!
//! - [`inputs`]: counted skips of tests whose inputs (the shared conformance vectors, llvm-19,
//!   the corpus, the running kernel) are absent, and `BPFPATCH_REQUIRE_INPUTS=1`, under which an
//!   absent input fails the test; re-exported at the root ([`require_input`], [`require_tool`],
//!   [`require_tools`], [`skip`]).
//! - [`corpus`]: the clang-built objects `scripts/corpus.sh` builds, walked in path order (a
//!   counted skip when absent).
//! - [`Rng`]: the one deterministic generator randomness (seeded, or from fuzz input bytes);
//!   no test defines its own.
//! - [`objdump`]: the source line `llvm-objdump-19 -d -l -S` shows beside each instruction,
//!   and the comparison of two listings through an old-to-new slot map (the DWARF oracle).
//! - [`committed_inputs`]: the committed seeds and reproducers of a fuzz target (`fuzz/`), which
//!   every crate's smoke test replays.
//! - [`naive`]: a deliberately naive patcher (absolute indices, every reference rewritten on
//!   every request) and the request generator that drives it against the list engine; its
//!   program generator also makes programs with aux data and every side table.
//! - [`alloc`]: a counting allocator, for the tests that count what a path allocates.
//! - [`inorder`]: the in-order engine (`bpfpatch_patch::InOrder`) against the list engine and
//!   the kernel reference, on those programs and random in-order request scripts.

pub mod alloc;
pub mod corpus;
pub mod inorder;
pub mod inputs;
pub mod naive;
pub mod objdump;

/// The one generator randomness of the workspace's tests and fuzz targets: seeded
/// (`Rng::seeded`) or driven by fuzz input (`Rng::from_bytes`).
pub use bpfpatch_insn::fuzzing::Rng;
pub use inputs::*;

/// Every committed input of fuzz target `target`: the files of `fuzz/corpus/<target>/` and
/// `fuzz/regressions/<target>/` of this repository, in name order (absent folders contribute
/// nothing). The smoke tests of every crate replay them.
#[must_use]
pub fn committed_inputs(target: &str) -> Vec<Vec<u8>> {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz.join(dir).join(target)) else { continue };
        let mut files: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        out.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    out
}
