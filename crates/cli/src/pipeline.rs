//! The passes of `bpfpatch rewrite`, as a closure the object rewriter runs on each program's
//! patch list ([`bpfpatch_object::Rewriter`]).
//!
//! [`passes_for`] parses the list with the passes crate's own parser (so names and `all` mean
//! the same as for `run` and `conformance`) and runs the pipeline on the list the object
//! rewriter built, with the section's relocated instructions protected (no pass rewrites them)
//! and every function symbol declared as an entry point (so dead-code removal keeps a section's
//! other programs and the functions other sections call).

use anyhow::Result;
use bpfpatch_insn::Slot;
use bpfpatch_object::ProgramInfo;
use bpfpatch_passes::{Options, Pipeline};
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
/// An unknown pass name.
pub fn passes_for(list: &str, blind: bool) -> Result<PassFn> {
    let list = if list == "none" { "" } else { list };
    let pipeline = Pipeline::from_cli(list, blind)?;
    if pipeline.passes().is_empty() {
        return Ok(Box::new(|_: &mut PatchList, _: &ProgramInfo<'_>| Ok(())));
    }
    Ok(Box::new(move |plist: &mut PatchList, info: &ProgramInfo<'_>| {
        let insns = &info.program.insns;
        let opts = Options {
            protected: (0..insns.len()).filter(|&s| info.is_relocated(s)).map(Slot).collect(),
            entries: info.entries().into_iter().map(Slot).collect(),
            ..Options::default()
        };
        pipeline.apply(plist, insns, &opts)?;
        Ok(())
    }))
}
