//! `dce`: dead-code elimination (the kernel's `opt_hard_wire_dead_code_branches`,
//! `opt_remove_dead_code`, `opt_remove_nops`), driven by [`crate::analysis::reach`] instead of
//! the verifier's `seen` marks.
//!
//! - A reached conditional jump that is always taken becomes `goto` to the same target; one
//!   that is never taken is a no-op and is deleted (the kernel writes `ja 0` and then removes it).
//! - Every unreached instruction is deleted, whole subprograms included.
//! - `ja +0`, `gotol +0`, `may_goto +0` are deleted, and so is every `goto` that, after the
//!   deletions, lands on the next surviving instruction (the kernel's deleted range turns such a
//!   jump into `ja 0`, which `opt_remove_nops` then removes). Jumps to deleted instructions land
//!   on the first survivor after them (the engine's rule, the kernel's too).
//!
//! Needs: [`Fact::Reach`]. Runs first, on the unpatched list.

use super::{Fact, OutputKind, PassCx, PassDef, PassError, PassStats};
use crate::analysis::reach::Fate;
use crate::program::InsnIdx;
use bpfpatch_insn::Op;
use bpfpatch_patch::PatchList;

/// Facts `dce` reads.
pub const NEEDS: &[Fact] = &[Fact::Reach];

/// The pass's row of the registry.
pub(crate) const PASS: PassDef = PassDef {
    name: "dce",
    help: "remove dead code, folding branches on constants",
    kind: OutputKind::Loadable,
    needs: NEEDS,
    run,
};

/// Runs `dce` on `list`.
///
/// # Errors
/// [`PassError::FallsOffEnd`] for a program whose control can run past the end of a
/// subprogram; engine errors.
pub(crate) fn run(list: &mut PatchList, cx: &mut PassCx<'_>) -> Result<PassStats, PassError> {
    let prog = cx.cfg.prog();
    let Some(reach) = cx.reach.as_ref() else {
        return Err(PassError::NoFacts { pass: super::Pass::Dce, op: Op::Exit });
    };
    if let Some(i) = reach.fall_off() {
        return Err(PassError::FallsOffEnd { slot: prog.slot(i) });
    }
    let n = prog.len();
    let mut del = vec![false; n];
    let mut hard = vec![false; n];
    for (i, op) in prog.iter() {
        let k = i.idx();
        if !reach.reached(i) {
            del[k] = true;
            continue;
        }
        match reach.fate(i) {
            Some(Fate::NotTaken) => del[k] = true,
            Some(Fate::Taken) => hard[k] = matches!(op, Op::Jump { .. }),
            _ => {}
        }
        if matches!(op, Op::Ja { delta: 0, .. } | Op::MayGoto { off: 0 }) {
            del[k] = true;
        }
    }
    // Gotos that now land on the next survivor. Backwards, so `next_live` of later
    // instructions is final; deleting one goto can make an earlier one a no-op too.
    let mut next_live = vec![n; n + 1];
    for k in (0..n).rev() {
        let i = InsnIdx(crate::program::to_u32(k));
        let is_goto = matches!(prog.op(i), Op::Ja { .. }) || hard[k];
        if !del[k]
            && is_goto
            && let Some((t, _)) = prog.target(i)
            && t.idx() > k
            && next_live[k + 1] >= t.idx()
        {
            del[k] = true;
        }
        next_live[k] = if del[k] { next_live[k + 1] } else { k };
    }
    apply(list, prog, &hard, &del, "dce")
}

/// Applies a dead-code plan to `list`: every instruction `goto[k]` and not `del[k]` becomes a
/// `goto` to its own target, every `del[k]` is deleted (maximal runs at a time). `pass` names
/// the pass in engine errors.
pub(super) fn apply(
    list: &mut PatchList,
    prog: &crate::program::DecodedProgram,
    goto_at: &[bool],
    del: &[bool],
    pass: &'static str,
) -> Result<PassStats, PassError> {
    let n = prog.len();
    let mut stats = PassStats::default();
    let goto = Op::Ja { delta: 0, long: false }.encode().first();
    for (i, _) in prog.iter() {
        if goto_at[i.idx()] && !del[i.idx()] {
            let node = list.node_of(prog.slot(i)).map_err(PassError::engine(pass))?;
            list.set_insn(node, goto).map_err(PassError::engine(pass))?;
            stats.rewritten += 1;
        }
    }
    // Delete maximal runs.
    let mut k = 0;
    while k < n {
        if !del[k] {
            k += 1;
            continue;
        }
        let start = k;
        while k < n && del[k] {
            k += 1;
        }
        let first = list.node_of(prog.slot(InsnIdx(crate::program::to_u32(start)))).map_err(PassError::engine(pass))?;
        let last = list.node_of(prog.slot(InsnIdx(crate::program::to_u32(k - 1)))).map_err(PassError::engine(pass))?;
        list.delete_range(first, last).map_err(PassError::engine(pass))?;
        stats.deleted += k - start;
    }
    Ok(stats)
}
