//! `blind`: constant blinding of every live instruction ([`seq`]), last, as
//! the JIT does. The second half of a blinded ld_imm64 zero-extends AX when the pipeline's
//! target needs explicit zero-extension (the `zext` pass is in the pipeline: the kernel's
//! `verifier_zext`).
//!
//! Needs: nothing.

pub mod seq;

use super::{Fact, OutputKind, PassCx, PassDef, PassError, PassStats};
use bpfpatch_patch::PatchList;
use seq::{BlindOptions, blind};

/// Facts `blind` reads.
pub const NEEDS: &[Fact] = &[];

/// The pass's row of the registry.
pub(crate) const PASS: PassDef =
    PassDef { name: "blind", help: "blind constants (as --blind)", kind: OutputKind::Xlated, needs: NEEDS, run };

/// Runs `blind` on `list`.
///
/// # Errors
/// Engine errors.
pub(crate) fn run(list: &mut PatchList, cx: &mut PassCx<'_>) -> Result<PassStats, PassError> {
    let mut stats = PassStats::default();
    let opts = BlindOptions { emit_zext: cx.zext_requested };
    for item in cx.items(list)? {
        if let Some(p) = blind(&item.op, &mut cx.rng, opts) {
            cx.patch(list, item.node, &p, "blind")?;
            stats.patched += 1;
        }
    }
    Ok(stats)
}
