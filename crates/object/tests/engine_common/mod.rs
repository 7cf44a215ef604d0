//! Rewriting through the engine with every check the tests share: the origin oracle of
//! tests/common, the engine's own remapped side tables against the object's, `check`, a
//! write / re-parse fixed point and every section the rewrite does not own byte-identical.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_possible_truncation)]

use crate::common;
use bpfpatch_insn::Slot;
use bpfpatch_object::{BpfObject, ProgramInfo, ProgramReport, Rewriter, Rewritten, TableMap, check};
use bpfpatch_patch::PatchList;

/// The engine's result as the oracle's `Rewritten` (map tables and per-slot origins).
pub fn as_oracle(rw: &Rewritten, old_len: usize) -> common::Rewritten {
    let map = &rw.patched.map;
    let start = (0..old_len).map(|s| map.start(Slot(s)).map_or(map.new_len(), |x| x.0)).collect();
    let insn = (0..old_len).map(|s| map.insn(Slot(s)).map(|x| x.0)).collect();
    let origin = rw.patched.program.aux.iter().map(|a| a.orig.map(|o| o as usize)).collect();
    common::Rewritten {
        insns: rw.patched.program.insns.clone(),
        map: TableMap { start, insn, new_len: map.new_len() },
        origin,
    }
}

/// Rewrites every program of `obj` with `pass`. After each program: every relocation, symbol,
/// func_info, line_info and CO-RE record, and every relocated call or function address into the
/// section, points at the image of what it pointed at (oracle); the engine's remapped ELF and
/// CO-RE relocations, line_info and func_info equal the object's. At the end: the written object
/// re-parses to a fixed point and passes `check`. Returns the reports and the written bytes.
pub fn rewrite_checked<F, E>(obj: &mut BpfObject, rw: &mut Rewriter, pass: &mut F) -> Result<Vec<ProgramReport>, String>
where
    F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), E>,
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    let orig = obj.clone();
    let mut reports = Vec::new();
    for pi in 0..obj.programs().len() {
        let before = obj.clone();
        let name = before.programs()[pi].name().to_string();
        let old_len = before.programs()[pi].insns().len();
        let r = rw.rewrite_program(obj, pi, pass).map_err(|e| format!("rewrite: {e}"))?;
        let o = as_oracle(&r, old_len);
        let deleted = |s: usize| o.map.insn[s].is_none();
        common::verify_moved(&before, obj, pi, &o, &deleted)?;
        common::verify_reloc_targets(&before, obj, pi, &o, &deleted)?;
        // Relocated instructions keep their encoding (the addend in `imm` aside), tail included.
        let (po, pn) = (&before.programs()[pi], &obj.programs()[pi]);
        let kept: Vec<_> = po.relocs().iter().filter(|x| !deleted(x.slot)).collect();
        for (ro, rn) in kept.iter().zip(pn.relocs()) {
            let (mut a, mut b) = (po.insns()[ro.slot], pn.insns()[rn.slot]);
            (a.imm, b.imm) = (0, 0);
            let tails = |p: &bpfpatch_object::ProgramSection, s: usize| {
                p.insns().get(s + 1).copied().filter(|_| a.is_ld_imm64())
            };
            if a != b || tails(po, ro.slot) != tails(pn, rn.slot) {
                return Err(format!("{name}: relocated instruction at old slot {} changed", ro.slot));
            }
        }
        let t = &r.patched.program.tables;
        let p = &obj.programs()[pi];
        let relocs: Vec<(u64, u32, u32)> = p.relocs().iter().map(|x| (x.slot as u64 * 8, x.symbol, x.r_type)).collect();
        let engine: Vec<(u64, u32, u32)> = t.elf_relocs.iter().map(|x| (x.insn_off, x.data.sym, x.data.kind)).collect();
        if engine != relocs {
            return Err(format!("{name}: engine ELF relocations {engine:?}, object {relocs:?}"));
        }
        let core: Vec<u64> = obj.core_relos(pi).iter().map(|x| u64::from(x.insn_off)).collect();
        if t.core_relocs.iter().map(|x| x.insn_off).collect::<Vec<_>>() != core {
            return Err(format!("{name}: CO-RE records differ"));
        }
        let view = before.engine_view(pi).map_err(|e| e.to_string())?;
        if !view.program().tables.line_info.is_empty() {
            let li: Vec<(u32, u32)> = obj.line_info(pi).iter().map(|l| (l.insn_off / 8, l.line_col)).collect();
            if t.line_info.iter().map(|l| (l.insn_off, l.line_col)).collect::<Vec<_>>() != li {
                return Err(format!("{name}: line_info differs"));
            }
        }
        if !view.program().tables.func_info.is_empty() {
            let fi: Vec<u32> = obj.func_info(pi).iter().map(|f| f.insn_off / 8).collect();
            if t.func_info.iter().map(|f| f.insn_off).collect::<Vec<_>>() != fi {
                return Err(format!("{name}: func_info differs"));
            }
        }
        if r.patched.program.insns != obj.programs()[pi].insns() {
            return Err(format!("{name}: returned instructions are not the object's"));
        }
        reports.push(r.report);
    }
    let out = obj.write().map_err(|e| format!("write: {e}"))?;
    let re = BpfObject::parse(&out).map_err(|e| format!("re-parse: {e}"))?;
    if let Some(f) = check(&re).first() {
        return Err(format!("check after rewrite: {f}"));
    }
    if re.write().map_err(|e| e.to_string())? != out {
        return Err("write is not a fixed point".into());
    }
    // Every section the rewrite does not own is byte-identical.
    for i in 0..orig.section_headers().len() {
        let owned = orig.programs().iter().any(|p| p.section() == i || p.rel_section() == Some(i))
            || matches!(orig.section_name(i), Some(".symtab" | ".BTF.ext" | ".rel.BTF.ext"))
            // DWARF is remapped with the code (tests/dwarf.rs checks it).
            || orig.section_name(i).is_some_and(|n| n.starts_with(".debug_") || n.starts_with(".rel.debug_"));
        if !owned && orig.original_section_data(i) != re.original_section_data(i) {
            return Err(format!("section {i} {:?} changed", orig.section_name(i)));
        }
    }
    Ok(reports)
}
