//! Rewriting passes (blinding, zext, dce, fixups, ctx, lower-v4) on the patching engine, and
//! the analyses that feed them.
//!
//! Layers:
//! - [`program`]: the decoded program with slot <-> instruction maps and resolved targets.
//! - [`analysis`]: CFG, reachability with constant branch folding, 32-bit subregister liveness,
//!   pointer kinds (context / stack / other).
//! - [`pass`]: the pipeline on the patching engine ([`Pipeline::parse`], [`Pipeline::run`],
//!   [`transform`]): one patch list, the chosen passes in the kernel's order, one linearization;
//!   one folder per pass (`pass/NAME/`: the pass in `mod.rs`, its generators in `seq.rs`, pure
//!   functions returning the replacement sequence for one instruction as a
//!   `bpfpatch_patch::PatchBuf`, its jumps local or escapes).
//! - [`emit`]: what the generators share (builders, instruction constructors, their error, the
//!   invariant check).
#![deny(missing_docs)]

pub mod analysis;
pub mod emit;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod pass;
pub mod program;

pub use pass::{
    LdAbsPolicy, Options, OutputKind, Pass, PassError, PassStats, Pipeline, Rewritten, call_sites, transform,
};
