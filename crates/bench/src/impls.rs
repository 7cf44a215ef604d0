//! The four implementations measured side by side, each turning a [`Workload`] into its
//! blinded [`Output`] (instructions, aux, subprograms, line info):
//!
//! - `kernel`: [`bpfpatch_patch::reference`], the kernel's algorithm: one `bpf_patch_insn_data`
//!   per slot (memmove, full branch scan, side-table adjusters), with blinding's manual `off - 2`
//!   fix-up of the jcc that moves to the end of its patch;
//! - `rfc-list`: [`crate::rfc_list`], the 2019 RFC's linked list;
//! - `bpfpatch`: the engine's in-order path ([`bpfpatch_patch::InOrder`]: blinding requests
//!   arrive in ascending slot order, so they are written straight into the output), with the
//!   jcc's target given as [`Target::OrigTarget`] and an ld_imm64's two halves patched as one
//!   instruction;
//! - `bpfpatch-list`: the same requests through the general engine
//!   ([`bpfpatch_patch::PatchList`]), measured beside it so that nothing is hidden;
//! - `copy-floor`: [`crate::copy_floor`], the same output with no fixups.
//!
//! All apply the workload's pregenerated [`crate::blind::SitePatch`]es, so `kernel`,
//! `rfc-list` and `bpfpatch` produce identical instructions and tables (tested) and none pays
//! for generating them.

use crate::Output;
use crate::workload::{Aux, Workload};
use bpfpatch_insn::Slot;
use bpfpatch_patch::reference::{KernelAuxHook, KernelProg};
use bpfpatch_patch::{InOrder, InOrderCtx, LinearizeOptions, PatchBuf, PatchCtx, PatchList, PatchedProgram, Target};

/// An implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Impl {
    /// The kernel's one-patch-at-a-time algorithm.
    Kernel,
    /// The 2019 RFC's linked list.
    RfcList,
    /// This project's engine, in-order path.
    Bpfpatch,
    /// This project's engine, general list.
    BpfpatchList,
    /// The physical lower bound.
    CopyFloor,
}

/// Reusable state of the implementations (warm regime): the engines' list, contexts, patch
/// buffer and output, all kept across runs (regalloc2's `run_with_ctx` model).
#[derive(Debug, Default)]
pub struct State {
    /// The list's allocations between runs (it borrows each run's program: `recycle`d in and out).
    list: PatchList<'static>,
    ctx: PatchCtx,
    inorder: InOrderCtx,
    buf: PatchBuf,
    out: PatchedProgram<Aux>,
}

impl Impl {
    /// Every implementation, in report order.
    pub const ALL: [Impl; 5] = [Impl::Kernel, Impl::RfcList, Impl::Bpfpatch, Impl::BpfpatchList, Impl::CopyFloor];

    /// The report name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Impl::Kernel => "kernel",
            Impl::RfcList => "rfc-list",
            Impl::Bpfpatch => "bpfpatch",
            Impl::BpfpatchList => "bpfpatch-list",
            Impl::CopyFloor => "copy-floor",
        }
    }

    /// Parses a report name.
    #[must_use]
    pub fn from_name(s: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == s)
    }

    /// Whether its warm runs are interleaved with the others' ([`crate::suite::run_warm_interleaved`]):
    /// the implementations that keep their buffers between runs (`bpfpatch`, `bpfpatch-list`,
    /// `copy-floor`). The RFC list allocates and frees its 3M nodes every run and runs back to
    /// back, its best case: interleaved with the others, its 1M-patch median rose from ~123 to
    /// ~147 ms (two alternations of each way), a cost of the arrangement rather than of the
    /// design. The quadratic kernel model runs alone under its time budget.
    #[must_use]
    pub fn interleaved(self) -> bool {
        matches!(self, Impl::Bpfpatch | Impl::BpfpatchList | Impl::CopyFloor)
    }

    /// Whether the cold regime (a fresh process per run) is measured for it.
    #[must_use]
    pub fn has_cold_regime(self) -> bool {
        matches!(self, Impl::Bpfpatch | Impl::BpfpatchList | Impl::CopyFloor)
    }

    /// Blinds every site of `w` into `out`.
    ///
    /// # Errors
    /// A patching error, as text (none occurs on the built-in workloads).
    pub fn run(self, w: &Workload, out: &mut Output, state: &mut State) -> Result<(), String> {
        match self {
            Impl::Kernel => kernel(w, out),
            Impl::RfcList => {
                crate::rfc_list::run(w, out);
                Ok(())
            }
            Impl::Bpfpatch => in_order(w, out, state),
            Impl::BpfpatchList => engine(w, out, state),
            Impl::CopyFloor => {
                crate::copy_floor::run(w, out);
                Ok(())
            }
        }
    }
}

fn kernel(w: &Workload, out: &mut Output) -> Result<(), String> {
    let p = &w.prog;
    let mut subprog_info = p.tables.subprogs.clone();
    subprog_info
        .push(bpfpatch_patch::Subprog { start: u32::try_from(p.insns.len()).unwrap_or(u32::MAX), linfo_idx: 0 });
    let mut k = KernelProg::<Aux> {
        insns: p.insns.clone(),
        aux: p.aux.clone(),
        subprog_info,
        linfo: p.tables.line_info.clone(),
        ..KernelProg::default()
    };
    let mut delta = 0usize;
    for (&site, &patch) in w.sites.iter().zip(&w.site_patches) {
        let mut patch = patch;
        let pos = site as usize + delta;
        if let Some(j) = patch.jump_at {
            // The jump moved from `pos` to `pos + j`; bpf_adj_branches never adjusts patch
            // contents, so the target is fixed by hand (the kernel's `off - 2` for j = 2), from
            // the offset in the current image (earlier patches have adjusted it).
            let off = i64::from(k.insns.get(pos).map_or(0, |i| i.off));
            let grown = i64::try_from(patch.len - 1).unwrap_or(0);
            let j = i64::try_from(j).unwrap_or(0);
            let new_off = if off >= 0 { off + grown - j } else { off - j };
            patch.insns[usize::try_from(j).unwrap_or(0)].off =
                i16::try_from(new_off).map_err(|_| "jump out of range")?;
        }
        let off = u32::try_from(pos).map_err(|_| "program too long")?;
        k.bpf_patch_insn_data(off, patch.as_slice()).map_err(|e| e.to_string())?;
        delta += patch.len - 1;
    }
    crate::clear(out);
    out.insns = k.insns;
    out.aux = k.aux;
    k.subprog_info.pop();
    out.tables.subprogs = k.subprog_info;
    out.tables.line_info = k.linfo;
    Ok(())
}

/// Calls `patch(slot, buffer)` for every site of `w` in order, building each buffer in `buf`:
/// the jcc's target as [`Target::OrigTarget`], an ld_imm64's two halves as one buffer (it is
/// one instruction for the engine).
fn each_request(
    w: &Workload,
    buf: &mut PatchBuf,
    mut patch: impl FnMut(Slot, &PatchBuf) -> Result<(), bpfpatch_patch::Error>,
) -> Result<(), String> {
    let p = &w.prog;
    let mut sites = w.sites.iter().zip(&w.site_patches).peekable();
    while let Some((&site, first)) = sites.next() {
        let slot = site as usize;
        buf.clear();
        buf.extend_from_slice(first.as_slice());
        if let Some(k) = first.jump_at {
            buf.set_target(k, Target::OrigTarget);
        }
        if p.insns[slot].is_ld_imm64()
            && let Some((_, second)) = sites.next_if(|&(&s, _)| s as usize == slot + 1)
        {
            buf.extend_from_slice(second.as_slice());
        }
        patch(Slot(slot), buf).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn in_order(w: &Workload, out: &mut Output, st: &mut State) -> Result<(), String> {
    let e = |e: bpfpatch_patch::Error| e.to_string();
    // The engine writes into the caller's previous output (its buffers are reused: no copy,
    // no allocation once warm) and keeps the map and the other results.
    core::mem::swap(out, &mut st.out.program);
    let r = (|| {
        let mut hook = KernelAuxHook;
        let mut io = InOrder::new(&mut st.inorder, &w.prog, &mut hook, &mut st.out).map_err(e)?;
        each_request(w, &mut st.buf, |slot, b| io.patch(slot, b).map(|_| ()))?;
        io.finish().map_err(e)
    })();
    core::mem::swap(out, &mut st.out.program);
    r
}

fn engine(w: &Workload, out: &mut Output, st: &mut State) -> Result<(), String> {
    let p = &w.prog;
    let e = |e: bpfpatch_patch::Error| e.to_string();
    // The kept allocations, for a list that reads this program in place.
    let mut list = core::mem::take(&mut st.list).recycle();
    let r = (|| {
        list.reset_for_program(p).map_err(e)?;
        each_request(w, &mut st.buf, |slot, b| list.patch(list.node_of(slot)?, b).map(|_| ()))?;
        // The linearization writes into the caller's previous output (its buffers are reused: no
        // copy, no allocation once warm); the engine keeps the map and the other results.
        core::mem::swap(out, &mut st.out.program);
        let r =
            list.linearize_program_into(&mut st.ctx, p, &mut KernelAuxHook, LinearizeOptions::default(), &mut st.out);
        core::mem::swap(out, &mut st.out.program);
        r.map_err(e)
    })();
    st.list = list.recycle();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{rand_ld_dw, seed, seed_with};

    fn same<T: PartialEq + std::fmt::Debug>(what: &str, a: &[T], b: &[T]) {
        if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
            panic!(
                "{what}: first difference at {i}: {:?} vs {:?}",
                &a[i.saturating_sub(2)..(i + 3).min(a.len())],
                &b[i.saturating_sub(2)..(i + 3).min(b.len())]
            );
        }
        assert_eq!(a.len(), b.len(), "{what}: lengths");
    }

    fn run(imp: Impl, w: &Workload) -> Output {
        let mut out = Output::default();
        imp.run(w, &mut out, &mut State::default()).unwrap();
        out
    }

    #[test]
    fn kernel_rfc_list_and_both_bpfpatch_engines_agree() {
        for w in [seed(3000), seed(8000), seed_with(6000, false), rand_ld_dw(3000)] {
            let k = run(Impl::Kernel, &w);
            let r = run(Impl::RfcList, &w);
            let f = run(Impl::CopyFloor, &w);
            for imp in [Impl::Bpfpatch, Impl::BpfpatchList] {
                let b = run(imp, &w);
                let name = imp.name();
                // Every site grows by 2 slots, except an ld_imm64's first half, which grows by 3.
                let ld = w.sites.iter().filter(|&&s| w.insns()[s as usize].is_ld_imm64()).count();
                assert_eq!(k.insns.len(), w.insns().len() + 2 * w.patches() + ld, "{}", w.name);
                same(&format!("{}: {name} vs kernel", w.name), &b.insns, &k.insns);
                same(&format!("{}: rfc-list vs kernel", w.name), &r.insns, &k.insns);
                if !w.prog.insns.iter().any(bpfpatch_insn::Insn::is_ld_imm64) {
                    // The engine patches an ld_imm64 as one instruction, so the pair's identity
                    // ends on the last of its 7 slots; the kernel patches each half and keeps each
                    // half's aux on the last slot of that half's patch. Elsewhere aux is identical.
                    same(&format!("{}: {name} aux", w.name), &b.aux, &k.aux);
                }
                same("line_info", &b.tables.line_info, &k.tables.line_info);
                same("rfc line_info", &r.tables.line_info, &k.tables.line_info);
                assert_eq!(b.tables.subprogs, k.tables.subprogs, "{name}");
            }
            assert_eq!(
                r.tables.subprogs.iter().map(|s| s.start).collect::<Vec<_>>(),
                k.tables.subprogs.iter().map(|s| s.start).collect::<Vec<_>>()
            );
            // The floor writes as many slots, with stale jumps.
            assert_eq!(f.insns.len(), k.insns.len());
            // The two engines agree on everything, aux of ld_imm64 patches included.
            assert_eq!(run(Impl::Bpfpatch, &w), run(Impl::BpfpatchList, &w), "{}", w.name);
        }
    }
}
