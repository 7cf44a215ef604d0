//! The library half of the `bpfpatch` command: what the command composes from the other crates
//! and what is tested or fuzzed on its own.
//!
//! - [`pipeline`]: the pass pipeline of `bpfpatch rewrite`, run on each program of an object
//!   through the object rewriter (the one place where `bpfpatch-passes` and `bpfpatch-object`
//!   meet);
//! - `fuzzing` (feature `fuzzing`): the oracle of that path on arbitrary objects.

pub mod pipeline;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
