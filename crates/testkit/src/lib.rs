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
//! - [`naive`]: a deliberately naive patcher (absolute indices, every reference rewritten on
//!   every request) and the request generator that drives it against the list engine.

pub mod corpus;
pub mod inputs;
pub mod naive;

/// The one generator randomness of the workspace's tests and fuzz targets: seeded
/// (`Rng::seeded`) or driven by fuzz input (`Rng::from_bytes`).
pub use bpfpatch_insn::fuzzing::Rng;
pub use inputs::*;
