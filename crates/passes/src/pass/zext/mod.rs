//! `zext` and `rnd-hi32` (`opt_subreg_zext_lo32_rnd_hi32`): after every 32-bit definition,
//! - if its upper half may be read as 64 bits ([`crate::analysis::liveness`]; always for
//!   inserted or changed instructions, the kernel's `zext_dst = insn_has_def32`), `zext` inserts
//!   the explicit zero-extension `BPF_ZEXT_REG(def)` (a target that does not zero-extend needs it);
//! - otherwise `rnd-hi32` writes random bits into the upper half (`BPF_F_TEST_RND_HI32`): if the
//!   liveness analysis were wrong, the program's results would change.
//!
//! A 32-bit `cmpxchg` always counts as read: the kernel zero-extends its r0 whatever follows
//! (Linux 6.18 does after an r0 nobody reads, or reads as 32 bits), and does so even for a JIT
//! that zero-extends by itself (x86-64, arm64: `is_cmpxchg_insn`, since the native instruction
//! of some architectures loads r0 only when the comparison succeeds). That last rule alone is
//! `cmpxchg-zext`, the part of this kernel pass the running x86-64 kernel applies
//! ([`crate::Pipeline::kernel`]).
//!
//! Loads from the context are skipped by both, as in the kernel: the context conversion may
//! widen such a load into a 64-bit pointer load (`xdp->data`), which a zero-extension would
//! truncate (the kernel's verifier then sees a scalar where the program uses a packet pointer).
//!
//! Needs: [`Fact::Liveness`] (and [`Fact::PtrKind`] to skip context loads).

pub mod seq;

use super::{Fact, OutputKind, PassCx, PassDef, PassError, PassStats};
use bpfpatch_insn::{AtomicOp, Op, Size};
use bpfpatch_patch::PatchList;
use seq::{def32_reg, rnd_hi32_after, zext_after};

/// Facts `zext` / `rnd-hi32` read.
pub const NEEDS: &[Fact] = &[Fact::Liveness, Fact::PtrKind];

/// `zext`'s row of the registry (it also does `rnd-hi32`'s work when both run: one kernel pass).
pub(crate) const ZEXT: PassDef = PassDef {
    name: "zext",
    help: "zero-extend 32-bit results whose upper half is read",
    kind: OutputKind::Xlated,
    needs: NEEDS,
    run: |list, cx| {
        let rnd = cx.rnd_hi32_requested;
        run(list, cx, true, rnd)
    },
};

/// `rnd-hi32`'s row of the registry (nothing of its own when `zext` runs too: `zext` did it).
pub(crate) const RND_HI32: PassDef = PassDef {
    name: "rnd-hi32",
    help: "randomize the upper half of 32-bit results nobody reads",
    kind: OutputKind::Xlated,
    needs: NEEDS,
    run: |list, cx| if cx.zext_requested { Ok(PassStats::default()) } else { run(list, cx, false, true) },
};

/// `cmpxchg-zext`'s row of the registry: the zero-extension a JIT that zero-extends still gets
/// (nothing of its own when `zext` runs too: `zext` did it).
pub(crate) const CMPXCHG_ZEXT: PassDef = PassDef {
    name: "cmpxchg-zext",
    help: "zero-extend the r0 of every 32-bit cmpxchg (the kernel does even for a JIT that zero-extends)",
    kind: OutputKind::Xlated,
    needs: &[],
    run: |list, cx| {
        if cx.zext_requested {
            return Ok(PassStats::default());
        }
        let mut stats = PassStats::default();
        for item in cx.items(list)? {
            if is_cmpxchg32(&item.op)
                && let Some(p) = zext_after(&item.op)
            {
                cx.patch(list, item.node, &p, "cmpxchg-zext")?;
                stats.patched += 1;
            }
        }
        Ok(stats)
    },
};

/// A 32-bit `cmpxchg`: its r0 is zero-extended on every JIT (`is_cmpxchg_insn`).
fn is_cmpxchg32(op: &Op) -> bool {
    matches!(op, Op::Atomic { size: Size::W, op: AtomicOp::Cmpxchg, .. })
}

/// Runs `zext` (if `zext`) and `rnd-hi32` (if `rnd`) on `list`.
///
/// # Errors
/// Engine errors.
pub(crate) fn run(list: &mut PatchList, cx: &mut PassCx<'_>, zext: bool, rnd: bool) -> Result<PassStats, PassError> {
    let mut stats = PassStats::default();
    for item in cx.items(list)? {
        if matches!(item.op, Op::Zext { .. }) || def32_reg(&item.op).is_none() {
            continue;
        }
        // Where the base is the context or a scalar, the kernel accepts the program only if it
        // is the context on every path ([`crate::analysis::ptrkind::PtrKinds::ctx_if_accepted`]).
        let ctx_load = matches!(item.op, Op::Load { .. })
            && item.orig.is_some_and(|i| cx.kinds.as_ref().is_some_and(|k| k.ctx_if_accepted(i)));
        if ctx_load {
            continue;
        }
        let upper_read = is_cmpxchg32(&item.op)
            || match (item.orig, cx.live.as_ref()) {
                (Some(i), Some(l)) => l.upper_read(i).unwrap_or(true),
                _ => true,
            };
        let p = if upper_read {
            if zext { zext_after(&item.op) } else { None }
        } else if rnd {
            rnd_hi32_after(&item.op, cx.next_u32())
        } else {
            None
        };
        if let Some(p) = p {
            cx.patch(list, item.node, &p, if upper_read { "zext" } else { "rnd-hi32" })?;
            stats.patched += 1;
        }
    }
    Ok(stats)
}
