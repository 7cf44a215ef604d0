//! `kernel-dce`: the kernel's own dead-code rules, instruction by instruction, as a privileged
//! load applies them after verification (kernel/bpf/verifier.c):
//!
//! - `opt_hard_wire_dead_code_branches`: a conditional jump whose next instruction was never
//!   *seen* becomes `goto` to its target; one whose target was never seen becomes `ja +0`.
//!   A jump whose both successors were seen stays, even when it always goes one way on the
//!   paths that reach it (the other successor being seen through another path);
//! - `opt_remove_dead_code`: every unseen instruction is deleted (jumps into a deleted range
//!   land on the first survivor after it);
//! - `opt_remove_nops`: then, front to back, every `ja +0` (`BPF_JMP | BPF_JA`, the exact
//!   slot; not `gotol +0`) and `may_goto +0` is deleted. After deleting a `may_goto +0` the scan
//!   steps back one instruction (upstream's `i -= 2`: `may_goto +1; may_goto +0` and
//!   `ja +1; may_goto +0` go entirely); after a `ja +0` it moves on, so a goto whose offset
//!   only becomes 0 through that deletion is not revisited.
//!
//! *Seen* is what the verifier's exploration marks; here it is [`crate::analysis::reach`]'s
//! reached instructions with the verifier's value model ([`Model::Verifier`]: no constant for
//! a division or an out-of-range register shift, `le`/`be` in the host's byte order), whose
//! constant propagation joins values where paths meet: where the verifier decides a branch on
//! one path's exact value that the join has lost, `kernel-dce` keeps what the kernel deletes.
//!
//! The optimizer is `dce` (edge-based: it also folds a branch whose other successor is reached
//! by another path); this pass is the kernel's pipeline (`--passes kernel`), for equality with
//! the kernel's xlated image.
//!
//! [`Model::Verifier`]: crate::analysis::reach::Model::Verifier
//!
//! Needs: [`Fact::VerifierReach`]. Runs first, on the unpatched list.

use super::{Fact, OutputKind, PassCx, PassDef, PassError, PassStats};
use crate::program::{InsnIdx, to_u32};
use bpfpatch_insn::Op;
use bpfpatch_patch::PatchList;

/// Facts `kernel-dce` reads.
pub const NEEDS: &[Fact] = &[Fact::VerifierReach];

/// The pass's row of the registry.
pub(crate) const PASS: PassDef = PassDef {
    name: "kernel-dce",
    help: "remove dead code by the kernel's rules (instruction-level, as the verifier's `seen`)",
    kind: OutputKind::Xlated,
    needs: NEEDS,
    run,
};

/// What becomes of a reached conditional jump.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Keep,
    /// `goto` to the jump's target (the next instruction was never seen).
    Goto,
    /// `ja +0` (the target was never seen): a nop, removed.
    Nop,
}

/// Runs `kernel-dce` on `list`.
///
/// # Errors
/// [`PassError::FallsOffEnd`] for a program whose control can run past the end of a
/// subprogram; engine errors.
pub(crate) fn run(list: &mut PatchList, cx: &mut PassCx<'_>) -> Result<PassStats, PassError> {
    let prog = cx.cfg.prog();
    let Some(reach) = cx.verifier_reach.as_ref() else {
        return Err(PassError::NoFacts { pass: super::Pass::KernelDce, op: Op::Exit });
    };
    if let Some(i) = reach.fall_off() {
        return Err(PassError::FallsOffEnd { slot: prog.slot(i) });
    }
    let n = prog.len();
    let idx = |k: usize| InsnIdx(to_u32(k));
    let seen: Vec<bool> = (0..n).map(|k| reach.reached(idx(k))).collect();
    let mut del: Vec<bool> = seen.iter().map(|s| !s).collect();
    // opt_hard_wire_dead_code_branches.
    let mut wire = vec![Wire::Keep; n];
    for (i, op) in prog.iter() {
        let k = i.idx();
        if !seen[k] || !matches!(op, Op::Jump { .. }) {
            continue;
        }
        let Some((t, _)) = prog.target(i) else { continue };
        if !seen.get(k + 1).copied().unwrap_or(false) {
            wire[k] = Wire::Goto;
        } else if !seen[t.idx()] {
            wire[k] = Wire::Nop;
        }
    }
    // opt_remove_nops, after opt_remove_dead_code: a scan of the survivors, front to back, that
    // removes every exact `ja +0` and `may_goto +0`. A goto's offset is 0 when every instruction
    // between it and its (forward) target is deleted by then, i.e. its target is the next
    // survivor. After removing a `may_goto +0` the scan steps back to the survivor before it
    // (whose offset that removal may have made 0); after a `ja +0` it goes on with the next.
    let survivors: Vec<usize> = (0..n).filter(|&k| !del[k]).collect();
    let mut next = vec![n; n]; // next[k]: the survivor after k (n: none)
    let mut prev: Vec<Option<usize>> = vec![None; n];
    for w in survivors.windows(2) {
        if let [a, b] = *w {
            next[a] = b;
            prev[b] = Some(a);
        }
    }
    let mut cur = survivors.first().copied().unwrap_or(n);
    while cur < n {
        let k = cur;
        let i = idx(k);
        let op = prog.op(i);
        let goto = match op {
            Op::Ja { long: false, .. } => true,
            Op::Jump { .. } => wire[k] == Wire::Goto,
            Op::MayGoto { .. } => true,
            _ => false,
        };
        let nop =
            wire[k] == Wire::Nop || (goto && prog.target(i).is_some_and(|(t, _)| t.idx() > k && next[k] >= t.idx()));
        if !nop {
            cur = next[k];
            continue;
        }
        del[k] = true;
        let (before, after) = (prev[k], next[k]);
        if let Some(b) = before {
            next[b] = after;
        }
        if let Some(a) = prev.get_mut(after) {
            *a = before;
        }
        cur = match before {
            Some(b) if matches!(op, Op::MayGoto { .. }) => b,
            _ => after,
        };
    }
    let goto_at: Vec<bool> = wire.iter().map(|w| *w == Wire::Goto).collect();
    super::dce::apply(list, prog, &goto_at, &del, "kernel-dce")
}
