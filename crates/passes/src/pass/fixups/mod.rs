//! `fixups` (`do_misc_fixups`): division guards, `LD_ABS`/`LD_IND` lowering, `may_goto`
//! expansion with its per-subprogram counter, and the tail-call rewrite
//! ([`seq`] has the sequences).
//!
//! - Division guards apply to every live instruction, inserted ones included.
//! - `LD_ABS`/`LD_IND` are not lowered in programs with bpf-to-bpf calls or callbacks (the
//!   lowered sequence returns with `exit`, which in a callee only leaves the callee): refused as
//!   the kernel refuses them, or left as they are and counted as skipped
//!   ([`super::LdAbsPolicy`]).
//! - `may_goto`, in the target kernel's form ([`super::MayGotoForm`]): timed (Linux 6.15+ on
//!   x86-64 and arm64), a `{count, timestamp}` pair at `fp - (depth + 16)`, or counted, a
//!   counter at `fp - (depth + 8)`, where `depth` is the subprogram's stack depth
//!   ([`crate::analysis::ptrkind`], rounded up to 8); each subprogram that uses it gets the
//!   initialisation (two stores or one) inserted before its first instruction (jumps there
//!   skip it, calls enter it: the kernel's `adjust_jmp_off`).
//! - `call bpf_tail_call` (helper 12) becomes the internal `TAIL_CALL`, bound-checked when
//!   [`super::Options::tail_call_max_entries`] is given.
//!
//! Needs: [`Fact::PtrKind`] (stack depths).

pub mod seq;

use super::{Fact, LdAbsPolicy, MayGotoForm, OutputKind, Pass, PassCx, PassDef, PassError, PassStats};
use bpfpatch_insn::{CallKind, Op, Slot};
use bpfpatch_patch::{PatchBuf, PatchList, PrepatchMode};
use seq::{
    HELPER_TAIL_CALL, div_guard, ld_abs, may_goto, may_goto_init, may_goto_slot, tail_call, timed_may_goto,
    timed_may_goto_init, timed_may_goto_slot,
};

/// Facts `fixups` reads.
pub const NEEDS: &[Fact] = &[Fact::PtrKind];

/// The pass's row of the registry.
pub(crate) const PASS: PassDef = PassDef {
    name: "fixups",
    help: "guard divisions, lower LD_ABS/LD_IND, expand may_goto, rewrite tail calls",
    kind: OutputKind::Xlated,
    needs: NEEDS,
    run,
};

/// Runs `fixups` on `list`.
///
/// # Errors
/// [`PassError::LdAbsWithCalls`] (under [`LdAbsPolicy::Refuse`]), [`PassError::StackDepthUnknown`],
/// [`PassError::Rewrite`] (no room for the counter, bad tail-call bound), engine errors.
pub(crate) fn run(list: &mut PatchList, cx: &mut PassCx<'_>) -> Result<PassStats, PassError> {
    let mut stats = PassStats::default();
    let has_calls = cx.cfg.subprogs().len() > 1;
    let mut counter: Vec<Option<i16>> = vec![None; cx.cfg.subprogs().len()];
    let err = |slot: Slot| move |source| PassError::Rewrite { pass: Pass::Fixups, slot, source };
    for item in cx.items(list)? {
        let p = match item.op {
            Op::Alu { .. } => div_guard(&item.op),
            Op::LdPacket { .. } if has_calls => match cx.opts.ld_abs_with_calls {
                LdAbsPolicy::Refuse => return Err(PassError::LdAbsWithCalls { slot: item.slot }),
                LdAbsPolicy::Keep => {
                    stats.skipped += 1;
                    None
                }
            },
            Op::LdPacket { .. } => ld_abs(&item.op),
            Op::MayGoto { .. } => {
                let Some(i) = item.orig else { return Err(PassError::NoFacts { pass: Pass::Fixups, op: item.op }) };
                let sp = cx.cfg.subprog_of(i);
                let depth = cx.kinds.as_ref().and_then(|k| k.stack_depth(sp));
                let depth = depth.ok_or(PassError::StackDepthUnknown { slot: item.slot })?;
                let limit = cx.opts.stack_limit;
                let (off, p) = match cx.opts.may_goto {
                    MayGotoForm::Timed => {
                        let off = timed_may_goto_slot(depth, limit).map_err(err(item.slot))?;
                        (off, timed_may_goto(off))
                    }
                    MayGotoForm::Counted => {
                        let off = may_goto_slot(depth, limit).map_err(err(item.slot))?;
                        (off, may_goto(off))
                    }
                };
                counter[sp.idx()] = Some(off);
                Some(p)
            }
            Op::Call(CallKind::Helper(HELPER_TAIL_CALL)) => {
                Some(tail_call(cx.opts.tail_call_max_entries).map_err(err(item.slot))?)
            }
            _ => None,
        };
        if let Some(p) = p {
            cx.patch(list, item.node, &p, "fixups")?;
            stats.patched += 1;
        }
    }
    for (sp, off) in counter.iter().enumerate() {
        let Some(off) = *off else { continue };
        let start = cx.cfg.subprogs()[sp].start;
        let node = list.node_of(cx.cfg.prog().slot(start)).map_err(PassError::engine("fixups"))?;
        // The entry may have been deleted (a no-op jump): insert before the first survivor.
        let node = if list.is_deleted(node) { list.next_insn(node) } else { Some(node) };
        let Some(node) = node else { continue };
        let mut buf = PatchBuf::with_capacity(2);
        match cx.opts.may_goto {
            MayGotoForm::Timed => timed_may_goto_init(off).iter().for_each(|op| {
                buf.push_op(op);
            }),
            MayGotoForm::Counted => {
                buf.push_op(&may_goto_init(off));
            }
        }
        list.prepatch(node, &buf, PrepatchMode::SkipForJumps).map_err(PassError::engine("fixups"))?;
        stats.prepatched += buf.len();
    }
    Ok(stats)
}
