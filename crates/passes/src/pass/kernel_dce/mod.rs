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
//!   slot; not `gotol +0`) and `may_goto +0` is deleted. A goto whose offset only becomes 0
//!   through a later deletion of a nop after it is not revisited (the kernel's scan moves on).
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
    // opt_remove_nops, after opt_remove_dead_code: front to back, a goto is a nop when every
    // instruction between it and its target is deleted by then. Deletions happen only at or
    // before the scan position, or are dead code, so the look ahead sees only dead code.
    let mut dead_run = vec![0usize; n + 1]; // dead_run[k]: deleted instructions from k onwards, in a row
    for k in (0..n).rev() {
        dead_run[k] = if del[k] { dead_run[k + 1] + 1 } else { 0 };
    }
    for (i, op) in prog.iter() {
        let k = i.idx();
        if del[k] {
            continue;
        }
        let goto = match op {
            Op::Ja { long: false, .. } => true,
            Op::Jump { .. } => wire[k] == Wire::Goto,
            Op::MayGoto { .. } => true,
            _ => false,
        };
        let nop = wire[k] == Wire::Nop
            || (goto && prog.target(i).is_some_and(|(t, _)| t.idx() > k && k + 1 + dead_run[k + 1] >= t.idx()));
        if nop {
            del[k] = true;
        }
    }
    let goto_at: Vec<bool> = wire.iter().map(|w| *w == Wire::Goto).collect();
    super::dce::apply(list, prog, &goto_at, &del, "kernel-dce")
}
