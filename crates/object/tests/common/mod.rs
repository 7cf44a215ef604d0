//! Helpers shared by the integration tests: a tiny reference rewriter (insert `ja +0` before
//! instructions, delete instructions) that produces a [`TableMap`] the way the patching engine's
//! offset map will, and an oracle that checks every table still points at the same instruction.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use bpfpatch_insn::{Insn, opcode};
use bpfpatch_object::{BpfObject, LineInfo, TableMap, reloc_type};

/// The first index where two byte strings differ (or the shorter length).
pub fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len())))
}

/// What to do with one old instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Keep it.
    Keep,
    /// Insert a `ja +0` before it.
    NopBefore,
    /// Delete it (both slots of an ld_imm64).
    Delete,
}

/// A rewritten image: new slots, the map, and for each new slot the old slot it came from
/// (`None` for inserted nops).
#[derive(Debug)]
pub struct Rewritten {
    /// New slots.
    pub insns: Vec<Insn>,
    /// The old-to-new map.
    pub map: TableMap,
    /// Old slot of each new slot.
    pub origin: Vec<Option<usize>>,
}

/// Applies `edit` to every instruction of program `pi`, fixing PC-relative targets of the
/// instructions without relocations. `None` when a fixed-up target no longer fits its field.
pub fn rewrite(obj: &BpfObject, pi: usize, edit: impl Fn(usize, &Insn) -> Edit) -> Option<Rewritten> {
    let old = obj.programs()[pi].insns();
    let relocated = obj.relocated_slots(pi);
    let n = old.len();
    let mut start = vec![0; n];
    let mut insn = vec![None; n];
    let mut out = Vec::with_capacity(n * 2);
    let mut origin = Vec::with_capacity(n * 2);
    let mut pending_start = Vec::new();
    let mut i = 0;
    while i < n {
        let len = if old[i].is_ld_imm64() && i + 1 < n { 2 } else { 1 };
        let e = edit(i, &old[i]);
        pending_start.extend(i..i + len);
        if e == Edit::Delete {
            i += len;
            continue;
        }
        for s in pending_start.drain(..) {
            start[s] = out.len();
        }
        if e == Edit::NopBefore {
            out.push(Insn::new(opcode::JMP | opcode::JA, 0, 0, 0, 0));
            origin.push(None);
        }
        for k in 0..len {
            // `start` of a kept instruction is its first new slot (the nop, if any); a second
            // ld_imm64 slot maps to itself.
            if k > 0 {
                start[i + k] = out.len();
            }
            insn[i + k] = Some(out.len());
            out.push(old[i + k]);
            origin.push(Some(i + k));
        }
        i += len;
    }
    for s in pending_start {
        start[s] = out.len();
    }
    // Fix PC-relative targets of kept, unrelocated instruction starts.
    let mut o = 0;
    while o < n {
        let len = if old[o].is_ld_imm64() && o + 1 < n { 2 } else { 1 };
        if let (Some(new_pc), Some(t), false) = (insn[o], old[o].abs_target(o), relocated.binary_search(&o).is_ok()) {
            let t = usize::try_from(t).unwrap();
            let nt = if t < n { start[t] } else { out.len() };
            let delta = i64::try_from(nt).unwrap() - i64::try_from(new_pc).unwrap() - 1;
            if !out[new_pc].set_rel_target(delta) {
                return None;
            }
        }
        o += len;
    }
    let new_len = out.len();
    Some(Rewritten { insns: out, map: TableMap { start, insn, new_len }, origin })
}

/// The old slot of the first non-inserted instruction at or after `new` (what control reaching
/// `new` executes first from the original program).
fn first_real(origin: &[Option<usize>], new: usize) -> Option<usize> {
    origin.get(new..)?.iter().find_map(|o| *o)
}

/// Checks that every relocation, symbol, func_info, line_info and CO-RE record of program `pi`
/// in `new` points at the image of what it pointed at in `old`, and that relocated calls and
/// function addresses into the section reach the image of their old targets. `deleted(slot)`
/// tells which old slots were deleted (their relocations and CO-RE records must be gone).
pub fn verify_moved(
    old: &BpfObject,
    new: &BpfObject,
    pi: usize,
    rw: &Rewritten,
    deleted: &dyn Fn(usize) -> bool,
) -> Result<(), String> {
    let (po, pn) = (&old.programs()[pi], &new.programs()[pi]);
    if pn.insns().len() != rw.insns.len() {
        return Err(format!("{}: program length {} != {}", po.name(), pn.insns().len(), rw.insns.len()));
    }
    // Relocations: same symbol and type, on the image of the same instruction, same opcode.
    let kept: Vec<_> = po.relocs().iter().filter(|r| !deleted(r.slot)).collect();
    if kept.len() != pn.relocs().len() {
        return Err(format!("{}: {} relocations kept, {} expected", po.name(), pn.relocs().len(), kept.len()));
    }
    for (ro, rn) in kept.iter().zip(pn.relocs()) {
        if rw.origin.get(rn.slot) != Some(&Some(ro.slot)) || ro.symbol != rn.symbol || ro.r_type != rn.r_type {
            return Err(format!(
                "{}: relocation at old slot {} moved to {} (origin {:?})",
                po.name(),
                ro.slot,
                rn.slot,
                rw.origin.get(rn.slot)
            ));
        }
        if po.insns()[ro.slot].code != pn.insns()[rn.slot].code {
            return Err(format!("{}: relocated opcode changed at {}", po.name(), rn.slot));
        }
    }
    // Symbols of the section: start on the image of the same instruction; ends likewise.
    for (so, sn) in old.symbols().iter().zip(new.symbols()) {
        if so.section() != Some(po.section()) {
            if so != sn {
                return Err(format!("symbol {} of another section changed", so.name));
            }
            continue;
        }
        let (vo, vn) = ((so.value / 8) as usize, (sn.value / 8) as usize);
        let expect = first_real(&rw.origin, vn);
        let want = (vo..po.insns().len()).find(|&s| !deleted(s));
        if expect != want && !(want.is_none() && vn == rw.insns.len()) {
            return Err(format!("symbol {} at {vo} moved to {vn}, which runs {expect:?}", so.name));
        }
        let (eo, en) = (((so.value + so.size) / 8) as usize, ((sn.value + sn.size) / 8) as usize);
        let want_end = (eo..po.insns().len()).find(|&s| !deleted(s));
        let got_end = first_real(&rw.origin, en);
        if want_end != got_end {
            return Err(format!("symbol {} end {eo} moved to {en}, which runs {got_end:?}", so.name));
        }
    }
    // func_info and line_info: the first original instruction run from the new offset is the
    // first surviving one at or after the old offset; CO-RE: exactly the same instruction.
    let pos_ok = |old_off: u32, new_off: u32| {
        let want = ((old_off / 8) as usize..po.insns().len()).find(|&s| !deleted(s));
        first_real(&rw.origin, (new_off / 8) as usize) == want
    };
    let (fo, fnw) = (old.func_info(pi), new.func_info(pi));
    if fo.len() != fnw.len() {
        return Err(format!("{}: func_info count {} != {}", po.name(), fnw.len(), fo.len()));
    }
    for (a, b) in fo.iter().zip(fnw) {
        if !pos_ok(a.insn_off, b.insn_off) || a.type_id != b.type_id {
            return Err(format!("{}: func_info {} -> {}", po.name(), a.insn_off, b.insn_off));
        }
    }
    // line_info: record by record, exactly what the kernel's rule gives (see expected_line_info).
    let want = expected_line_info(old.line_info(pi), po.insns().len(), &rw.map.start, deleted);
    let got: Vec<LineRow> = new.line_info(pi).iter().map(line_row).collect();
    if got != want {
        let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        return Err(format!(
            "{}: line_info differs from the kernel's rule at record {at} (of {} got, {} expected): got {:?}, want {:?}",
            po.name(),
            got.len(),
            want.len(),
            got.get(at),
            want.get(at)
        ));
    }
    let (co, cn) = (old.core_relos(pi), new.core_relos(pi));
    let kept: Vec<_> = co.iter().filter(|c| !deleted((c.insn_off / 8) as usize)).collect();
    if kept.len() != cn.len() {
        return Err(format!("{}: {} CO-RE records, {} expected", po.name(), cn.len(), kept.len()));
    }
    for (a, b) in kept.iter().zip(cn) {
        if rw.origin.get((b.insn_off / 8) as usize) != Some(&Some((a.insn_off / 8) as usize)) || a.kind != b.kind {
            return Err(format!("{}: CO-RE {} -> {}", po.name(), a.insn_off, b.insn_off));
        }
    }
    Ok(())
}

/// A line_info record as compared: `(insn_off, file_name_off, line_off, line_col)`.
pub type LineRow = (u32, u32, u32, u32);

/// The compared fields of a line_info record.
pub fn line_row(l: &LineInfo) -> LineRow {
    (l.insn_off, l.file_name_off, l.line_off, l.line_col)
}

/// The line_info records of a program after a rewrite, derived from its input records by the
/// kernel's rules (../shared/reference/kernel-patching.md; modelled in crates/patch/src/reference.rs),
/// independently of the object crate's own collapse:
///
/// - `bpf_adj_linfo` (§3.3): when an instruction is patched into several (here: a nop or prologue
///   inserted before it, or a patch buffer), its record stays at the start of the patch and covers
///   all of it; later records shift. So a surviving instruction's record moves to `start[slot]`.
/// - `bpf_adj_linfo_after_remove` (§5.5): when a run of instructions is removed, the record of the
///   *last* removed instruction that has one moves to the first survivor after the run, unless
///   that survivor has a record of its own; every other record of the run is dropped, and all of
///   them when no instruction survives after the run.
///
/// `start` is the old-to-new slot map (for a deleted slot: the first survivor's new start),
/// `deleted(slot)` tells which old slots were removed.
pub fn expected_line_info(
    old: &[LineInfo],
    old_len: usize,
    start: &[usize],
    deleted: &dyn Fn(usize) -> bool,
) -> Vec<LineRow> {
    let slot = |l: &LineInfo| (l.insn_off / 8) as usize;
    let has_record = |s: usize| old.iter().any(|l| slot(l) == s);
    let mut out = Vec::new();
    for (k, l) in old.iter().enumerate() {
        let s = slot(l);
        let new_slot = if deleted(s) {
            // The removed run holding s ends before the first survivor after it.
            let Some(survivor) = (s..old_len).find(|&t| !deleted(t)) else { continue };
            let last_of_run = old.get(k + 1).is_none_or(|n| slot(n) >= survivor);
            if !last_of_run || has_record(survivor) {
                continue;
            }
            start[survivor]
        } else {
            start[s]
        };
        out.push((u32::try_from(new_slot * 8).unwrap(), l.file_name_off, l.line_off, l.line_col));
    }
    out
}

/// Checks relocated calls/addresses anywhere in `new` whose symbol is in program `pi`'s section:
/// their target runs the image of the old target first. `rw` is the rewrite of `pi`; other
/// programs were not rewritten.
pub fn verify_reloc_targets(
    old: &BpfObject,
    new: &BpfObject,
    pi: usize,
    rw: &Rewritten,
    deleted: &dyn Fn(usize) -> bool,
) -> Result<(), String> {
    let sec = old.programs()[pi].section();
    let target = |obj: &BpfObject, q: usize, r: &bpfpatch_object::Reloc| -> Option<i64> {
        let sym = &obj.symbols()[r.symbol as usize];
        if sym.section() != Some(sec) {
            return None;
        }
        let insn = obj.programs()[q].insns()[r.slot];
        let s = i64::try_from(sym.value).unwrap();
        if insn.code == opcode::JMP | opcode::CALL && r.r_type == reloc_type::R_BPF_64_32 {
            Some(s + (i64::from(insn.imm) + 1) * 8)
        } else if insn.is_ld_imm64() {
            Some(s + i64::from(insn.imm))
        } else {
            None
        }
    };
    for q in 0..old.programs().len() {
        let ro: Vec<_> = old.programs()[q].relocs().iter().filter(|r| q != pi || !deleted(r.slot)).collect();
        for (a, b) in ro.iter().zip(new.programs()[q].relocs()) {
            let (Some(to), Some(tn)) = (target(old, q, a), target(new, q, b)) else { continue };
            let want = ((to / 8) as usize..old.programs()[pi].insns().len()).find(|&s| !deleted(s));
            let got = first_real(&rw.origin, (tn / 8) as usize);
            if want != got {
                return Err(format!(
                    "reloc in {} slot {}: target {} -> {} runs {got:?}, want {want:?}",
                    old.programs()[q].name(),
                    a.slot,
                    to,
                    tn
                ));
            }
        }
    }
    Ok(())
}

/// Old slots `a..e` of program `pi` whose deletion collapses several line_info records onto
/// one survivor: the run starts at a record's instruction and ends with the next record's
/// instruction (so it holds at least two records), the instruction after it (`e`) has no record
/// of its own, and the run holds only straight-line code (no jump, call or exit) and no function
/// start, so that deleting it keeps the program valid. The kernel keeps the run's *last* record,
/// on `e`; keeping the first instead is a bug the line_info oracle must see. `None` when the
/// program has no such run.
pub fn line_run_to_delete(obj: &BpfObject, pi: usize) -> Option<std::ops::Range<usize>> {
    let p = &obj.programs()[pi];
    let insns = p.insns();
    let li = obj.line_info(pi);
    let slot = |l: &LineInfo| (l.insn_off / 8) as usize;
    let len = |s: usize| if insns[s].is_ld_imm64() { 2 } else { 1 };
    let starts: Vec<usize> = obj
        .func_info(pi)
        .iter()
        .map(|f| (f.insn_off / 8) as usize)
        .chain(obj.subprograms(pi).into_iter().map(|s| s.start))
        .collect();
    let straight = |s: usize| {
        let class = insns[s].code & 0x07;
        insns[s].is_ld_imm64() || !(class == opcode::JMP || class == opcode::JMP32)
    };
    li.windows(2).find_map(|w| {
        let (a, b) = (slot(&w[0]), slot(&w[1]));
        let e = b + len(b);
        let mut s = a;
        while s < e {
            if !straight(s) || starts.contains(&s) {
                return None;
            }
            s += len(s);
        }
        (e < insns.len() && !li.iter().any(|l| slot(l) == e)).then_some(a..e)
    })
}
