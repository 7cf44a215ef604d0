//! `lower-v4`: cpu-v4 instructions rewritten into v3 sequences ([`seq`]),
//! so programs built with `-mcpu=v4` run where v4 is not supported. Applies to every live
//! instruction, inserted ones included (e.g. the `movsx` of a sign-extending ctx load).
//!
//! Needs: nothing.

pub mod seq;

use super::{Fact, OutputKind, Pass, PassCx, PassDef, PassError, PassStats};
use bpfpatch_patch::PatchList;
use seq::{lower, uses_v4};

/// Facts `lower-v4` reads.
pub const NEEDS: &[Fact] = &[];

/// The pass's row of the registry.
pub(crate) const PASS: PassDef = PassDef {
    name: "lower-v4",
    help: "rewrite cpu-v4 instructions (sdiv, movsx, bswap, gotol, ...) as v3 sequences",
    kind: OutputKind::Loadable,
    needs: NEEDS,
    run,
};

/// Runs `lower-v4` on `list`.
///
/// # Errors
/// [`PassError::Rewrite`] (a `gotol` beyond 16 bits), engine errors.
pub(crate) fn run(list: &mut PatchList, cx: &mut PassCx<'_>) -> Result<PassStats, PassError> {
    let mut stats = PassStats::default();
    for item in cx.items(list)? {
        if !uses_v4(&item.op) {
            continue;
        }
        let p = lower(&item.op, cx.opts.host).map_err(|source| PassError::Rewrite {
            pass: Pass::LowerV4,
            slot: item.slot,
            source,
        })?;
        if let Some(p) = p {
            cx.patch(list, item.node, &p, "lower-v4")?;
            stats.patched += 1;
        }
    }
    Ok(stats)
}
