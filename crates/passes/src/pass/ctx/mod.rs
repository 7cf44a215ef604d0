//! `ctx`: context-access conversion (`convert_ctx_accesses`) with the caller's [`CtxLayout`]
//! ([`seq`] has the rules), and the layout's prologue.
//!
//! Every load or store whose base [`crate::analysis::ptrkind`] classifies as the context is
//! converted; one it cannot classify ([`Base::Unknown`]: maybe the context, maybe not) is an
//! error, never a guess. Atomics on the context are refused. The prologue is inserted before
//! the first instruction so that jumps to instruction 0 skip it.
//!
//! Needs: [`Fact::PtrKind`]. Runs after `dce`, before any pass inserts memory accesses.
//!
//! [`CtxLayout`]: seq::CtxLayout

pub mod seq;

use super::{Fact, OutputKind, Pass, PassCx, PassDef, PassError, PassStats};
use crate::analysis::ptrkind::Base;
use bpfpatch_insn::Op;
use bpfpatch_patch::{PatchBuf, PatchList, PrepatchMode};
use seq::convert;

/// Facts `ctx` reads.
pub const NEEDS: &[Fact] = &[Fact::PtrKind];

/// The pass's row of the registry.
pub(crate) const PASS: PassDef = PassDef {
    name: "ctx",
    help: "convert context accesses to the runtime layout of --ctx-layout FILE",
    kind: OutputKind::Xlated,
    needs: NEEDS,
    run,
};

/// Runs `ctx` on `list`.
///
/// # Errors
/// [`PassError::NoCtxLayout`], [`PassError::CtxUnclassified`], [`PassError::Ctx`], engine errors.
pub(crate) fn run(list: &mut PatchList, cx: &mut PassCx<'_>) -> Result<PassStats, PassError> {
    let Some(layout) = cx.opts.ctx_layout.clone() else { return Err(PassError::NoCtxLayout) };
    let mut stats = PassStats::default();
    for item in cx.items(list)? {
        if !matches!(item.op, Op::Load { .. } | Op::Store { .. } | Op::Atomic { .. }) {
            continue;
        }
        let Some(i) = item.orig else {
            return Err(PassError::NoFacts { pass: Pass::Ctx, op: item.op });
        };
        let base = cx.kinds.as_ref().and_then(|k| k.base(i));
        match base {
            Some(Base::Ctx) => {
                let p = convert(&layout, &item.op, cx.opts.host)
                    .map_err(|source| PassError::Ctx { slot: item.slot, source })?
                    .ok_or(PassError::NoFacts { pass: Pass::Ctx, op: item.op })?;
                cx.patch(list, item.node, &p, "ctx")?;
                stats.patched += 1;
            }
            Some(Base::Unknown) => return Err(PassError::CtxUnclassified { slot: item.slot }),
            _ => {}
        }
    }
    if !layout.prologue().is_empty()
        && let Some(first) = list.first_insn()
    {
        let buf = PatchBuf::from_insns(layout.prologue());
        list.prepatch(first, &buf, PrepatchMode::SkipForJumps).map_err(PassError::engine("ctx"))?;
        stats.prepatched += layout.prologue().len();
    }
    Ok(stats)
}
