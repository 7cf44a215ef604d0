//! The passes of `bpfpatch rewrite`, as a closure the object rewriter runs on each program's
//! patch list ([`bpfpatch_object::Rewriter`]).
//!
//! Wiring point for `crates/passes`: [`passes_for`] validates the list with the passes crate's
//! own parser (so names and `all` mean the same as for `run` and `conformance`) and, for now,
//! supports only the empty pipeline; any named pass is refused with "pass X not available yet".

use anyhow::{Result, bail};
use bpfpatch_object::ProgramInfo;
use bpfpatch_passes::Pipeline;
use bpfpatch_patch::PatchList;

/// What the rewriter runs on each program's patch list.
pub type PassFn = Box<dyn FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<()>>;

/// The names of the passes `--passes LIST [--blind]` selects, in the order they run.
///
/// # Errors
/// An unknown pass name.
pub fn pass_names(list: &str, blind: bool) -> Result<Vec<&'static str>> {
    let pipeline = Pipeline::from_cli(list, blind)?;
    Ok(pipeline.passes().iter().map(|p| p.name()).collect())
}

/// The closure for `--passes LIST [--blind]`: `none` (without `--blind`) patches nothing, so the
/// rewrite is the identity.
///
/// # Errors
/// An unknown pass name, or a pass that is not wired to the object rewriter yet.
pub fn passes_for(list: &str, blind: bool) -> Result<PassFn> {
    if let Some(first) = pass_names(list, blind)?.first() {
        bail!("pass {first} not available yet for `rewrite` (only `--passes none` is)");
    }
    Ok(Box::new(|_: &mut PatchList, _: &ProgramInfo<'_>| Ok(())))
}
