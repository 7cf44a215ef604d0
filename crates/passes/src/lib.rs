//! Rewriting passes (blinding, zext, dce, fixups, ctx, lower-v4) on the patching engine, and
//! the analyses that feed them.
//!
//! Layers:
//! - [`program`]: the decoded program with slot <-> instruction maps and resolved targets.
//! - [`analysis`]: CFG, reachability with constant branch folding, 32-bit subregister liveness,
//!   pointer kinds (context / stack / other).
//! - [`rewrite`]: pure generators, one per kernel rewrite, returning the replacement sequence
//!   for one instruction as a `bpfpatch_patch::PatchBuf`, its jumps local or escapes.
//! - [`pass`]: the pipeline on the patching engine ([`Pipeline::parse`], [`Pipeline::run`],
//!   [`transform`]): one patch list, the chosen passes in the kernel's order, one linearization.
#![deny(missing_docs)]

pub mod analysis;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod pass;
pub mod program;
pub mod rewrite;

pub use pass::{
    LdAbsPolicy, Options, OutputKind, Pass, PassError, PassStats, Pipeline, Rewritten, call_sites, transform,
};
