//! A toy pass, registered for the registry's own test only: what adding a pass takes is this
//! folder and one line in the registry ([`super`]). It puts a `ja +0` before every `exit`.

use super::{OutputKind, PassCx, PassDef, PassError, PassStats};
use bpfpatch_insn::Op;
use bpfpatch_patch::{PatchBuf, PatchList, PrepatchMode};

/// The pass's row of the registry.
pub(crate) const PASS: PassDef = PassDef {
    name: "toy",
    help: "put a `goto +0` before every exit (the registry's test)",
    kind: OutputKind::Loadable,
    needs: &[],
    run,
};

fn run(list: &mut PatchList, cx: &mut PassCx<'_>) -> Result<PassStats, PassError> {
    let mut stats = PassStats::default();
    let mut buf = PatchBuf::new();
    for item in cx.items(list)? {
        if matches!(item.op, Op::Exit) {
            buf.clear();
            buf.push_op(&Op::Ja { delta: 0, long: false });
            list.prepatch(item.node, &buf, PrepatchMode::SkipForJumps).map_err(PassError::engine("toy"))?;
            stats.prepatched += 1;
        }
    }
    Ok(stats)
}
