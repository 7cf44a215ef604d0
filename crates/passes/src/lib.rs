//! Rewriting passes (blinding, zext, dce, kernel-dce, fixups, ctx, lower-v4) on the patching
//! engine, and the analyses that feed them.
//!
//! The public surface is the pipeline and its options: [`Pipeline`] (which passes, parsed from
//! the command line's names: [`Pass`], its [`OutputKind`] and [`Fact`]s), [`Options`] (with the
//! context layout of `ctx`, [`CtxLayout`], and the call sites of [`call_sites`]), the result
//! ([`Rewritten`], [`PassStats`]) and the error ([`PassError`]).
//!
//! Inside (not public; the crate's own tests and fuzz targets reach them through the hidden
//! `internals` module of the `internals` feature):
//! - `program`: the decoded program with slot <-> instruction maps and resolved targets.
//! - `analysis`: CFG, reachability with constant branch folding, 32-bit subregister liveness,
//!   pointer kinds (context / stack / other).
//! - `pass`: the pipeline on the patching engine: one patch list, the chosen passes in the
//!   kernel's order, one linearization; one folder per pass (`pass/NAME/`: the pass in
//!   `mod.rs`, its generators in `seq.rs`, pure functions returning the replacement sequence for
//!   one instruction as a `bpfpatch_patch::PatchBuf`, its jumps local or escapes).
//! - `emit`: what the generators share (builders, instruction constructors, their error, the
//!   invariant check).
#![deny(missing_docs)]

mod analysis;
mod emit;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod pass;
mod program;

pub use analysis::cfg::CfgError;
pub use analysis::ptrkind::{CallSite, CallerFrame, CtxArg};
pub use emit::RewriteError;
pub use pass::ctx::seq::{ConvertFn, Converter, CtxError, CtxField, CtxLayout, CtxRequest};
pub use pass::zext::seq::kernel_zext_reg;
pub use pass::{
    Fact, LdAbsPolicy, MayGotoForm, Options, OutputKind, Pass, PassError, PassStats, Pipeline, Rewritten, call_sites,
    transform,
};
pub use program::ProgramError;

/// The crate's internals, for its own integration tests and fuzz targets only (feature
/// `internals`, which the crate's self dev-dependency turns on): no stability promise, not part
/// of the public API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    /// The analyses (`analysis/`).
    pub mod analysis {
        pub use crate::analysis::{cfg, eval, liveness, ptrkind, reach};
    }
    /// The decoded program (`program.rs`).
    pub mod program {
        pub use crate::program::*;
    }
    /// What the generators share (`emit/`).
    pub mod emit {
        pub use crate::emit::*;
    }
    pub use crate::pass::blind::seq as blind;
    pub use crate::pass::ctx::seq as ctx;
    pub use crate::pass::fixups::seq as fixups;
    pub use crate::pass::lower_v4::seq as lower_v4;
    pub use crate::pass::zext::seq as zext;

    /// The passes `pipeline` runs on `prog` (resolving `all`'s `lower-v4`), in order.
    #[must_use]
    pub fn passes_for(pipeline: &crate::Pipeline, prog: &program::DecodedProgram) -> Vec<crate::Pass> {
        pipeline.passes_for(prog)
    }
}
