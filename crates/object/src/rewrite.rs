//! Replacing a program's instructions and moving everything that points at them.
//!
//! A rewrite is described by a [`SlotMap`] from the old slots of one section to the new ones.
//! Two queries, two meanings:
//! - `start(old)`: where control that reached `old` now arrives — the first slot of whatever
//!   replaced `old` (if `old` was deleted, of the next surviving code). Used for everything that
//!   marks a *position*: symbol values and ends, func_info, line_info, and targets encoded in
//!   relocation addends (calls and function addresses into the section).
//! - `insn(old)`: the slot of the instruction that continues `old` and carries its relocated
//!   fields, `None` when `old` was deleted. Used for what is *about one instruction*: ELF
//!   relocations and CO-RE relocation records. A deleted one goes with its instruction and is
//!   reported.
//!
//! [`BpfObject::replace_program`] validates the map and computes every change before applying
//! any, so an error leaves the object untouched.

use crate::btf_ext::Record;
use crate::elf::STT_FUNC;
use crate::error::{InfoKind, ObjectError, RewriteError};
use crate::reloc_type::{R_BPF_64_32, R_BPF_64_64};
use crate::{BpfObject, Reloc};
use bpfpatch_insn::Insn;
use bpfpatch_insn::opcode::{CALL, JMP};

/// A map from the old slots of one section to the slots of its rewritten image.
///
/// Contract: `start` is non-decreasing and at most `new_len()`; `insn(old)`, when `Some`, is
/// below `new_len()`. Only called with `old` below the old length.
pub trait SlotMap {
    /// Length of the new image in slots.
    fn new_len(&self) -> usize;
    /// Where control reaching old slot `old` now arrives (a jump target).
    fn start(&self, old: usize) -> usize;
    /// The new slot of the instruction continuing old slot `old`, `None` if it was deleted.
    fn insn(&self, old: usize) -> Option<usize>;
}

/// The map of an unchanged program of `len` slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityMap(pub usize);

impl SlotMap for IdentityMap {
    fn new_len(&self) -> usize {
        self.0
    }
    fn start(&self, old: usize) -> usize {
        old
    }
    fn insn(&self, old: usize) -> Option<usize> {
        Some(old)
    }
}

/// A map given by explicit tables (one entry per old slot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMap {
    /// `start(old)` for every old slot.
    pub start: Vec<usize>,
    /// `insn(old)` for every old slot.
    pub insn: Vec<Option<usize>>,
    /// Length of the new image.
    pub new_len: usize,
}

impl SlotMap for TableMap {
    fn new_len(&self) -> usize {
        self.new_len
    }
    fn start(&self, old: usize) -> usize {
        self.start.get(old).copied().unwrap_or(self.new_len)
    }
    fn insn(&self, old: usize) -> Option<usize> {
        self.insn.get(old).copied().flatten()
    }
}

/// A relocation that went away with its deleted instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedReloc {
    /// The old slot.
    pub slot: usize,
    /// Its ELF type.
    pub r_type: u32,
    /// The symbol's name.
    pub symbol: String,
}

/// What a rewrite did besides moving things.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// ELF relocations removed with their deleted instructions.
    pub relocs_dropped: Vec<DroppedReloc>,
    /// CO-RE relocation records removed with their deleted instructions.
    pub core_relos_dropped: usize,
    /// line_info records removed: they landed on the same instruction as the next record (the
    /// code they described was deleted) or past the end of the new image.
    pub line_info_dropped: usize,
    /// Relocations in sections this crate does not rewrite (neither program, `.BTF.ext` nor
    /// `.debug_*` sections) that point into the rewritten section through its section symbol:
    /// their addends still describe the old code.
    pub stale_foreign_refs: usize,
    /// DWARF sections dropped because their addresses of the rewritten code could not be
    /// remapped (the others were remapped through the same map; see [`crate::DwarfDropped`]).
    pub dwarf_dropped: Vec<crate::DwarfDropped>,
}

/// How a relocation's addend names a position in its symbol's section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddendKind {
    /// `call`: target slot = `S / 8 + imm + 1`.
    Call,
    /// ld_imm64: target byte = `S + imm`.
    Addr,
}

/// The addend kind of a relocation on `insn`, if its `imm` encodes a position.
pub(crate) fn addend_kind(r: &Reloc, insn: &Insn) -> Option<AddendKind> {
    match r.r_type {
        R_BPF_64_32 if insn.code == JMP | CALL => Some(AddendKind::Call),
        R_BPF_64_64 | R_BPF_64_32 if insn.is_ld_imm64() => Some(AddendKind::Addr),
        _ => None,
    }
}

/// The target byte offset a relocation's addend names, given the symbol value.
pub(crate) fn addend_target(kind: AddendKind, sym_value: u64, imm: i32) -> Option<i64> {
    let s = i64::try_from(sym_value).ok()?;
    Some(match kind {
        AddendKind::Call => s + (i64::from(imm) + 1) * 8,
        AddendKind::Addr => s + i64::from(imm),
    })
}

/// Where the patching engine put one program's records: its remapped side tables
/// ([`bpfpatch_patch::PatchedProgram`]), taken as they are by [`BpfObject::apply_patched`] so
/// that every table goes through the engine's one map; only what only the object knows
/// (symbols, addends naming this section from anywhere, DWARF) is derived here.
#[derive(Clone, Debug, Default)]
pub(crate) struct EngineRecords {
    /// Per relocation of the program, in order: its new slot, `None` when dropped with its
    /// instruction.
    pub(crate) relocs: Vec<Option<usize>>,
    /// The func_info records' new slots, in order (one per record).
    pub(crate) func_info: Vec<usize>,
    /// The line_info records after the engine's remap and collapse: new slot and the record.
    pub(crate) line_info: Vec<(usize, crate::LineInfo)>,
    /// Per CO-RE record of the program, in order: its new slot, `None` when dropped.
    pub(crate) core: Vec<Option<usize>>,
}

struct Pending {
    prog: usize,
    reloc: usize,
    target_slot: usize,
    kind: AddendKind,
    symbol: u32,
}

impl BpfObject {
    /// Replaces the instructions of program `prog` by `insns`, the image of the old ones under
    /// `map`, and moves everything that points at instructions:
    /// - its relocations follow `insn(old)`; one on a deleted instruction is dropped and
    ///   reported; the instruction now there must still be an ld_imm64 (`R_BPF_64_64`) or a
    ///   call/ld_imm64 (`R_BPF_64_32`), and its relocated `imm` is restored from the original;
    /// - symbols of the section (values and sizes) follow `start`;
    /// - `.BTF.ext` records of the section: func_info and line_info follow `start` (line_info
    ///   landing on the same slot as the next record, or past the end, is dropped), CO-RE records
    ///   follow `insn` (dropped with their instruction); `.rel.BTF.ext` follows its records;
    /// - relocated calls and function addresses anywhere in the object whose target is in this
    ///   section get the addend for the new target; one whose target code was deleted with
    ///   everything after it is refused ([`RewriteError::RelocTargetDeleted`]).
    ///
    /// # Errors
    /// [`ObjectError::NoProgram`], or [`ObjectError::Rewrite`] when the map or the new image is
    /// inconsistent; the object is then unchanged.
    pub fn replace_program(
        &mut self,
        prog: usize,
        insns: Vec<Insn>,
        map: &dyn SlotMap,
    ) -> Result<RewriteReport, ObjectError> {
        let mut insns = insns;
        self.replace_program_with(prog, &mut insns, map, None)
    }

    /// [`BpfObject::replace_program`], with the records' new places given by the engine
    /// (`engine`) instead of derived from `map` here: the rewrite path. `map` then serves only
    /// what the object alone knows (symbols, addends into the section, DWARF). On success
    /// `insns` moves into the object (left empty); on error the object is unchanged.
    pub(crate) fn replace_program_with(
        &mut self,
        prog: usize,
        insns: &mut Vec<Insn>,
        map: &dyn SlotMap,
        engine: Option<&EngineRecords>,
    ) -> Result<RewriteReport, ObjectError> {
        let p = self.programs.get(prog).ok_or(ObjectError::NoProgram { index: prog })?;
        let sec = p.section;
        let section = self.elf.section_ref(sec);
        let err = |error| ObjectError::Rewrite { section: section.clone(), error };
        let old_len = p.insns.len();
        let new_len = map.new_len();
        if insns.len() != new_len {
            return Err(err(RewriteError::LengthMismatch { map: new_len, insns: insns.len() }));
        }
        // start[] for every old slot plus the end.
        let mut start = Vec::with_capacity(old_len + 1);
        for old in 0..old_len {
            let s = map.start(old);
            if s > new_len {
                return Err(err(RewriteError::MapOutOfRange { old, new: s, new_len }));
            }
            if start.last().is_some_and(|&prev| s < prev) {
                return Err(err(RewriteError::NotMonotonic { old }));
            }
            start.push(s);
        }
        start.push(new_len);
        let insn_of = |old: usize| -> Result<Option<usize>, ObjectError> {
            match map.insn(old) {
                Some(n) if n >= new_len => Err(err(RewriteError::MapOutOfRange { old, new: n, new_len })),
                x => Ok(x),
            }
        };
        let mut report = RewriteReport::default();

        // 1. Relocations anywhere whose addend names a position in this section.
        let mut pending = Vec::new();
        for (qi, q) in self.programs.iter().enumerate() {
            for (ri, r) in q.relocs.iter().enumerate() {
                let Some(sym) = self.elf.symbols.get(r.symbol as usize) else { continue };
                if sym.section() != Some(sec) {
                    continue;
                }
                let Some(insn) = q.insns.get(r.slot) else { continue };
                let Some(kind) = addend_kind(r, insn) else { continue };
                if q.rela {
                    return Err(err(RewriteError::RelaIntoRewritten {
                        section: self.elf.section_ref(q.section),
                        reloc: ri,
                    }));
                }
                let t = addend_target(kind, sym.value, insn.imm);
                let target_slot = t
                    .filter(|&t| t >= 0 && t % 8 == 0 && usize::try_from(t / 8).is_ok_and(|s| s <= old_len))
                    .and_then(|t| usize::try_from(t / 8).ok());
                let Some(target_slot) = target_slot else {
                    return Err(err(RewriteError::RelocTargetOutOfRange {
                        section: self.elf.section_ref(q.section),
                        reloc: ri,
                        target_section: self.elf.section_ref(sec),
                        target: t.unwrap_or(i64::MAX),
                    }));
                };
                pending.push(Pending { prog: qi, reloc: ri, target_slot, kind, symbol: r.symbol });
            }
        }
        report.stale_foreign_refs = self
            .foreign_relocs
            .iter()
            .flat_map(|(_, _, v)| v.iter())
            .filter(|r| {
                self.elf.symbols.get(r.sym as usize).is_some_and(|s| s.is_section() && s.section() == Some(sec))
            })
            .count();

        // 2. This section's relocations.
        let new_insns = insns;
        let mut new_relocs = Vec::with_capacity(p.relocs.len());
        let mut reloc_index = vec![None; p.relocs.len()];
        for (ri, r) in p.relocs.iter().enumerate() {
            let placed = match engine {
                Some(e) => e.relocs.get(ri).copied().flatten().filter(|&n| n < new_len),
                None => insn_of(r.slot)?,
            };
            let Some(n) = placed else {
                report.relocs_dropped.push(crate::DroppedReloc {
                    slot: r.slot,
                    r_type: r.r_type,
                    symbol: self.elf.symbols.get(r.symbol as usize).map(|s| s.name.clone()).unwrap_or_default(),
                });
                continue;
            };
            let old = p.insns.get(r.slot).copied().unwrap_or_default();
            let now = new_insns[n];
            let ok = match r.r_type {
                R_BPF_64_64 => now.is_ld_imm64() && n + 1 < new_len,
                R_BPF_64_32 => now.code == JMP | CALL || (now.is_ld_imm64() && n + 1 < new_len),
                _ => true,
            };
            if !ok || (addend_kind(r, &old).is_some() && now.code != old.code) {
                return Err(err(RewriteError::RelocatedInsnChanged {
                    reloc: ri,
                    r_type: r.r_type,
                    old: r.slot,
                    new: n,
                    code: now.code,
                }));
            }
            if old.code == JMP | CALL || old.is_ld_imm64() {
                new_insns[n].imm = old.imm;
            }
            reloc_index[ri] = Some(new_relocs.len());
            new_relocs.push(Reloc { slot: n, ..*r });
        }

        // 3. Symbols of the section.
        let mut new_syms = Vec::new();
        for (si, s) in self.elf.symbols.iter().enumerate() {
            if s.section() != Some(sec) {
                continue;
            }
            let bad = || {
                err(RewriteError::BadSymbol {
                    symbol: u32::try_from(si).unwrap_or(u32::MAX),
                    name: s.name.clone(),
                    value: s.value,
                    size: s.size,
                })
            };
            let end = s.value.checked_add(s.size).ok_or_else(bad)?;
            if s.value % 8 != 0 || s.size % 8 != 0 || end / 8 > old_len as u64 {
                return Err(bad());
            }
            let (a, b) = (start[(s.value / 8) as usize], start[(end / 8) as usize]);
            if s.info & 0xf == STT_FUNC && s.size > 0 && a == b {
                return Err(err(RewriteError::EmptySubprogram { name: s.name.clone() }));
            }
            new_syms.push((si, a as u64 * 8, (b - a) as u64 * 8));
        }

        // 4. .BTF.ext records of the section.
        let mut ext_update = None;
        if let Some((_, ext)) = &self.btf_ext {
            let slot_of = |kind, record, off: u32| {
                let s = (off / 8) as usize;
                if s < old_len {
                    Ok(s)
                } else {
                    Err(err(RewriteError::RecordOutOfRange { kind, record, insn_off: off }))
                }
            };
            let to_off =
                |slot: usize| u32::try_from(slot * 8).map_err(|_| ObjectError::LayoutOverflow { what: "insn_off" });
            let mut fi = ext.func_info.block(&p.name).map(|b| b.records.clone());
            if let Some(recs) = fi.as_mut() {
                let mut prev = None;
                if engine.is_some_and(|e| e.func_info.len() != recs.len()) {
                    return Err(err(RewriteError::EmptySubprogram { name: "func_info record".into() }));
                }
                for (i, r) in recs.iter_mut().enumerate() {
                    let s = match engine {
                        Some(e) => e.func_info[i],
                        None => start[slot_of(InfoKind::FuncInfo, i, r.insn_off)?],
                    };
                    if s == new_len || prev == Some(s) {
                        return Err(err(RewriteError::EmptySubprogram { name: format!("func_info record {i}") }));
                    }
                    prev = Some(s);
                    r.insn_off = to_off(s)?;
                }
            }
            let mut li = ext.line_info.block(&p.name).map(|b| b.records.clone());
            if let (Some(recs), Some(e)) = (li.as_mut(), engine) {
                // The engine's remap and collapse (tables.rs): the kernel's rule, once.
                let before = recs.len();
                let mut out = Vec::with_capacity(e.line_info.len());
                for (s, r) in &e.line_info {
                    let mut r = r.clone();
                    r.insn_off = to_off(*s)?;
                    out.push(r);
                }
                report.line_info_dropped = before - out.len();
                *recs = out;
            } else if let Some(recs) = li.as_mut() {
                let mut mapped = Vec::with_capacity(recs.len());
                for (i, r) in recs.iter().enumerate() {
                    let s = start[slot_of(InfoKind::LineInfo, i, r.insn_off)?];
                    mapped.push((s, r.clone()));
                }
                let before = mapped.len();
                let mut out: Vec<_> = Vec::with_capacity(before);
                for (k, (s, mut r)) in mapped.iter().cloned().enumerate() {
                    let next_same = mapped.get(k + 1).is_some_and(|n| n.0 == s);
                    if s == new_len || next_same {
                        continue;
                    }
                    r.insn_off = to_off(s)?;
                    out.push(r);
                }
                report.line_info_dropped = before - out.len();
                *recs = out;
            }
            let mut co = ext.core_relo.block(&p.name).map(|b| b.records.clone());
            if let Some(recs) = co.as_mut() {
                let mut out = Vec::with_capacity(recs.len());
                for (i, r) in recs.iter().enumerate() {
                    let placed = match engine {
                        Some(e) => e.core.get(i).copied().flatten().filter(|&n| n < new_len),
                        None => insn_of(slot_of(InfoKind::CoreRelo, i, r.insn_off)?)?,
                    };
                    match placed {
                        Some(n) => {
                            let mut r = r.clone();
                            r.set_insn_off(to_off(n)?);
                            out.push(r);
                        }
                        None => report.core_relos_dropped += 1,
                    }
                }
                *recs = out;
            }
            if fi.is_some() || li.is_some() || co.is_some() {
                ext_update = Some((fi, li, co));
            }
        }

        // 5. Addends naming positions in this section.
        let new_value = |sym: u32| new_syms.iter().find(|x| x.0 == sym as usize).map(|x| x.1).unwrap_or_default();
        let mut imm_updates = Vec::with_capacity(pending.len());
        for pd in &pending {
            let (slot, q_section) = if pd.prog == prog {
                match reloc_index[pd.reloc] {
                    Some(k) => (new_relocs[k].slot, sec),
                    None => continue,
                }
            } else {
                let q = &self.programs[pd.prog];
                (q.relocs[pd.reloc].slot, q.section)
            };
            if pd.target_slot < old_len && start[pd.target_slot] == new_len {
                return Err(err(RewriteError::RelocTargetDeleted {
                    section: self.elf.section_ref(q_section),
                    reloc: pd.reloc,
                    target_section: self.elf.section_ref(sec),
                    target: pd.target_slot,
                }));
            }
            let s = i64::try_from(new_value(pd.symbol)).unwrap_or(i64::MAX);
            let t = i64::try_from(start[pd.target_slot]).unwrap_or(i64::MAX);
            let v = match pd.kind {
                AddendKind::Call => t - s / 8 - 1,
                AddendKind::Addr => t * 8 - s,
            };
            let imm = i32::try_from(v).map_err(|_| {
                err(RewriteError::AddendOverflow {
                    section: self.elf.section_ref(q_section),
                    reloc: pd.reloc,
                    value: v,
                })
            })?;
            imm_updates.push((pd.prog, slot, imm));
        }

        // 6. DWARF: every address of this section through `start` (crate::dwarf).
        let identity = new_len == old_len && start.iter().enumerate().all(|(i, &s)| s == i);
        let dwarf_update = if identity {
            None
        } else {
            let mut values: Vec<u64> = self.elf.symbols.iter().map(|s| s.value).collect();
            for &(si, v, _) in &new_syms {
                values[si] = v;
            }
            let new_value = |i: u32| values.get(i as usize).copied().unwrap_or(0);
            let remap = crate::dwarf::Remap {
                sec,
                start: &start,
                symbols: &self.elf.symbols,
                new_value: &new_value,
                endian: self.elf.endian,
            };
            Some(self.dwarf.remap(&remap))
        };

        // Commit.
        if let Some(mut up) = dwarf_update {
            report.dwarf_dropped = core::mem::take(&mut up.dropped);
            self.dwarf.apply(up);
        }
        for (si, v, s) in new_syms {
            let sym = &mut self.elf.symbols[si];
            sym.value = v;
            sym.size = s;
        }
        if let (Some((fi, li, co)), Some((_, ext))) = (ext_update, self.btf_ext.as_mut()) {
            let name = &self.programs[prog].name;
            replace_block(&mut ext.func_info, name, fi);
            replace_block(&mut ext.line_info, name, li);
            replace_block(&mut ext.core_relo, name, co);
            ext.dirty = true;
        }
        let p = &mut self.programs[prog];
        p.insns = core::mem::take(new_insns);
        p.relocs = new_relocs;
        for (q, slot, imm) in imm_updates {
            if let Some(i) = self.programs[q].insns.get_mut(slot) {
                i.imm = imm;
            }
        }
        Ok(report)
    }
}

fn replace_block<T: Record>(area: &mut crate::InfoArea<T>, name: &str, recs: Option<Vec<T>>) {
    if let (Some(b), Some(r)) = (area.block_mut(name), recs) {
        b.records = r;
    }
}
