//! Structural validation of a parsed object: what a loader relies on and a rewrite must keep.
//!
//! Per program section: every instruction decodes; jumps land inside the section, on an
//! instruction start (never the second slot of an ld_imm64) and inside their subprogram; local
//! calls and function references land on subprogram starts; relocations sit on the instruction
//! kinds their type needs; relocated calls/addresses into program sections land on instruction
//! (calls: subprogram) starts; function symbols are whole instructions inside the section; and
//! the `.BTF.ext` records are in range, on instruction starts, strictly increasing, with
//! func_info on subprogram starts. `.BTF.ext` blocks naming no program section are reported.

use crate::error::{InfoKind, SectionRef};
use crate::reloc_type::{R_BPF_64_32, R_BPF_64_64};
use crate::{BpfObject, ProgramSection};
use bpfpatch_insn::opcode::{CALL, EXIT, JA, JMP, JMP32, PSEUDO_KFUNC_CALL};
use bpfpatch_insn::{DecodeOptions, Insn, Reason, TargetKind, decode};
use core::fmt;

/// One problem found by [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The section it is in (the program section; `.BTF.ext` for orphan blocks).
    pub section: SectionRef,
    /// What it is.
    pub kind: FindingKind,
}

/// The kinds of problems [`check`] reports. Slots are instruction indices in the section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// An instruction does not decode.
    Decode {
        /// The slot.
        slot: usize,
        /// Why.
        reason: Reason,
    },
    /// A jump, call or function reference targets a slot outside the section.
    TargetOutOfRange {
        /// The slot of the instruction.
        slot: usize,
        /// The target slot.
        target: i64,
    },
    /// A target is the second slot of an ld_imm64.
    TargetInsideLdImm64 {
        /// The slot of the instruction.
        slot: usize,
        /// The target slot.
        target: usize,
    },
    /// A jump leaves its subprogram.
    JumpOutOfSubprogram {
        /// The slot of the jump.
        slot: usize,
        /// The target slot.
        target: usize,
    },
    /// A local call or function reference does not target a subprogram start.
    CallNotToSubprogram {
        /// The slot of the call.
        slot: usize,
        /// The target slot.
        target: usize,
    },
    /// A relocation on an instruction its type cannot apply to (e.g. `R_BPF_64_64` not on the
    /// first slot of an ld_imm64, a data relocation in code).
    RelocWrongInsn {
        /// Index of the relocation.
        reloc: usize,
        /// Its slot.
        slot: usize,
        /// Its type.
        r_type: u32,
        /// The opcode there.
        code: u8,
    },
    /// A relocated call or function address whose target (symbol + addend) is not an
    /// instruction start (calls: a subprogram start) of the symbol's section.
    RelocBadTarget {
        /// Index of the relocation.
        reloc: usize,
        /// Its slot.
        slot: usize,
        /// The target byte offset in the symbol's section.
        target: i64,
    },
    /// A function symbol that is not whole instructions inside its section.
    BadFuncSymbol {
        /// Symbol index.
        symbol: u32,
        /// Name.
        name: String,
        /// `st_value`.
        value: u64,
        /// `st_size`.
        size: u64,
    },
    /// A `.BTF.ext` record past the end of the section.
    RecordOutOfRange {
        /// Which kind.
        kind: InfoKind,
        /// Record index in the section's block.
        record: usize,
        /// Its slot.
        slot: usize,
    },
    /// A `.BTF.ext` record on the second slot of an ld_imm64.
    RecordNotOnInsn {
        /// Which kind.
        kind: InfoKind,
        /// Record index.
        record: usize,
        /// Its slot.
        slot: usize,
    },
    /// func_info or line_info not strictly increasing.
    RecordUnsorted {
        /// Which kind.
        kind: InfoKind,
        /// Record index.
        record: usize,
        /// Its slot.
        slot: usize,
        /// The previous record's slot.
        prev: usize,
    },
    /// A func_info record that is not on a subprogram start.
    FuncInfoNotOnSubprogram {
        /// Record index.
        record: usize,
        /// Its slot.
        slot: usize,
    },
    /// A `.BTF.ext` block whose section name matches no program section.
    OrphanBlock {
        /// Which kind.
        kind: InfoKind,
        /// Its `sec_name_off`.
        sec_name_off: u32,
        /// The name, if it resolves.
        name: Option<String>,
    },
    /// The last instruction of a subprogram is neither an exit nor an unconditional jump, so
    /// execution falls through into the next subprogram or off the end (the kernel's
    /// `check_subprogs`: "last insn is not an exit or jmp"). A relocated call (a kfunc such as
    /// `bpf_throw`) is accepted there.
    FallsThrough {
        /// The slot of that last instruction.
        slot: usize,
    },
    /// A CO-RE relocation on an instruction a loader cannot patch (libbpf's
    /// `bpf_core_patch_insn` takes an ALU/ALU64 with an immediate, a load or store, or an
    /// ld_imm64): a jump, for instance, would have its offset moved by any rewrite.
    CoreReloWrongInsn {
        /// Record index in the section's block.
        record: usize,
        /// Its slot.
        slot: usize,
        /// The opcode there.
        code: u8,
    },
    /// A `.rel.BTF.ext` relocation that is not on a record's `insn_off` field: re-encoding
    /// `.BTF.ext` (which any rewrite that moves an instruction does) could not place it, so no
    /// program of the object can be rewritten.
    UnattachedBtfExtReloc {
        /// Index in the relocation section.
        reloc: usize,
        /// Its `r_offset`.
        offset: u64,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.section)?;
        match &self.kind {
            FindingKind::Decode { slot, reason } => write!(f, "slot {slot}: {reason}"),
            FindingKind::TargetOutOfRange { slot, target } => {
                write!(f, "slot {slot}: target {target} outside the section")
            }
            FindingKind::TargetInsideLdImm64 { slot, target } => {
                write!(f, "slot {slot}: target {target} is the second slot of an ld_imm64")
            }
            FindingKind::JumpOutOfSubprogram { slot, target } => {
                write!(f, "slot {slot}: jump to {target} leaves its subprogram")
            }
            FindingKind::CallNotToSubprogram { slot, target } => {
                write!(f, "slot {slot}: call/function reference to {target}, not a subprogram start")
            }
            FindingKind::RelocWrongInsn { reloc, slot, r_type, code } => write!(
                f,
                "relocation {reloc} ({}) on slot {slot} with opcode {code:#04x}",
                crate::reloc_type::name(*r_type)
            ),
            FindingKind::RelocBadTarget { reloc, slot, target } => {
                write!(f, "relocation {reloc} on slot {slot}: target byte {target} is not a valid start")
            }
            FindingKind::BadFuncSymbol { symbol, name, value, size } => {
                write!(f, "function symbol {symbol} `{name}` value {value:#x} size {size:#x} not whole instructions")
            }
            FindingKind::RecordOutOfRange { kind, record, slot } => {
                write!(f, "{kind} record {record}: slot {slot} past the end")
            }
            FindingKind::RecordNotOnInsn { kind, record, slot } => {
                write!(f, "{kind} record {record}: slot {slot} is inside an ld_imm64")
            }
            FindingKind::RecordUnsorted { kind, record, slot, prev } => {
                write!(f, "{kind} record {record}: slot {slot} not after previous {prev}")
            }
            FindingKind::FuncInfoNotOnSubprogram { record, slot } => {
                write!(f, "func_info record {record}: slot {slot} is not a subprogram start")
            }
            FindingKind::OrphanBlock { kind, sec_name_off, name } => {
                write!(f, "{kind} block for section {name:?} (name offset {sec_name_off}) matches no program")
            }
            FindingKind::FallsThrough { slot } => {
                write!(f, "slot {slot}: last instruction of a subprogram is not an exit or jump (falls through)")
            }
            FindingKind::CoreReloWrongInsn { record, slot, code } => {
                write!(f, "core_relo record {record}: slot {slot} with opcode {code:#04x} cannot be CO-RE-relocated")
            }
            FindingKind::UnattachedBtfExtReloc { reloc, offset } => {
                write!(f, "relocation {reloc} at offset {offset:#x} is not on a record's insn_off field")
            }
        }
    }
}

/// Instruction starts of a program: `false` exactly on second slots of ld_imm64s.
pub(crate) fn starts(insns: &[Insn]) -> Vec<bool> {
    let mut v = vec![true; insns.len()];
    let mut i = 0;
    while i < insns.len() {
        if insns[i].is_ld_imm64() && i + 1 < insns.len() {
            v[i + 1] = false;
            i += 2;
        } else {
            i += 1;
        }
    }
    v
}

/// Validates a bare instruction image (no object): every instruction decodes with `opts`, and
/// every jump, call and function reference lands inside the image on an instruction start, jumps
/// inside their subprogram, calls and references on a subprogram start. Subprograms are computed
/// as the kernel does: slot 0 and every call or `PSEUDO_FUNC` target. An empty result means it
/// passed.
#[must_use]
pub fn check_insns(insns: &[Insn], opts: DecodeOptions) -> Vec<FindingKind> {
    let len = insns.len();
    let is_start = starts(insns);
    let mut sub_starts: Vec<usize> = if len > 0 { vec![0] } else { Vec::new() };
    for (i, insn) in insns.iter().enumerate() {
        if is_start[i]
            && matches!(insn.target_field(), Some((_, TargetKind::Call | TargetKind::FuncRef)))
            && let Some(t) = insn.abs_target(i).and_then(|t| usize::try_from(t).ok()).filter(|&t| t < len)
        {
            sub_starts.push(t);
        }
    }
    sub_starts.sort_unstable();
    sub_starts.dedup();
    let mut out = Vec::new();
    check_code(insns, &is_start, &sub_starts, &[], opts, &mut |k| out.push(k));
    out
}

/// Instructions and PC-relative targets of one section (`relocated`: sorted slots whose
/// target field belongs to a relocation and is not checked here).
fn check_code(
    insns: &[Insn],
    is_start: &[bool],
    sub_starts: &[usize],
    relocated: &[usize],
    opts: DecodeOptions,
    push: &mut dyn FnMut(FindingKind),
) {
    let len = insns.len();
    let sub_of = |slot: usize| sub_starts.partition_point(|&s| s <= slot);
    let is_sub_start = |slot: usize| sub_starts.binary_search(&slot).is_ok() || (sub_starts.is_empty() && slot == 0);
    let mut i = 0;
    while i < len {
        let n = match decode(&insns[i..], opts) {
            Ok((_, n)) => n,
            Err(reason) => {
                push(FindingKind::Decode { slot: i, reason });
                if insns[i].is_ld_imm64() { 2 } else { 1 }
            }
        };
        let insn = insns[i];
        let relocated_here = relocated.binary_search(&i).is_ok();
        if let (Some((_, kind)), false) = (insn.target_field(), relocated_here) {
            let target = insn.abs_target(i).unwrap_or(i64::MAX);
            match usize::try_from(target).ok().filter(|&t| t < len) {
                None => push(FindingKind::TargetOutOfRange { slot: i, target }),
                Some(t) if !is_start[t] => push(FindingKind::TargetInsideLdImm64 { slot: i, target: t }),
                Some(t) => match kind {
                    TargetKind::Jump if sub_of(t) != sub_of(i) => {
                        push(FindingKind::JumpOutOfSubprogram { slot: i, target: t });
                    }
                    TargetKind::Call | TargetKind::FuncRef if !is_sub_start(t) => {
                        push(FindingKind::CallNotToSubprogram { slot: i, target: t });
                    }
                    _ => {}
                },
            }
        }
        i += n;
    }
    // No fall-through: the last instruction before each subprogram boundary (and the end).
    let ends = sub_starts.iter().copied().filter(|&s| s > 0 && s < len).chain((len > 0).then_some(len));
    for end in ends {
        let Some(last) = (0..end).rev().find(|&j| is_start[j]) else { continue };
        let code = insns[last].code;
        let kfunc =
            code == JMP | CALL && (relocated.binary_search(&last).is_ok() || insns[last].src() == PSEUDO_KFUNC_CALL);
        if code != JMP | EXIT && code != JMP | JA && code != JMP32 | JA && !kfunc {
            push(FindingKind::FallsThrough { slot: last });
        }
    }
}

/// Validates an object's structure; an empty result means it passed.
#[must_use]
pub fn check(obj: &BpfObject) -> Vec<Finding> {
    check_with(obj, DecodeOptions::default())
}

/// [`check`] decoding instructions with `opts` ([`DecodeOptions::INTERNAL`] accepts the
/// kernel-internal forms rewriting passes emit: AX, `tail_call`, `nospec`, zero-extension).
#[must_use]
pub fn check_with(obj: &BpfObject, opts: DecodeOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    for (pi, p) in obj.programs().iter().enumerate() {
        check_program(obj, pi, p, opts, &mut out);
    }
    if let Some(ext) = obj.btf_ext() {
        let sec = obj.section_headers().len();
        let ext_ref = (0..sec)
            .find(|&i| obj.section_name(i) == Some(".BTF.ext"))
            .map_or(SectionRef { index: 0, name: ".BTF.ext".into() }, |i| obj.section_ref(i));
        let known = |n: &Option<String>| n.as_deref().is_some_and(|n| obj.program_by_name(n).is_some());
        let mut orphan = |kind, sec_name_off, name: &Option<String>| {
            if !known(name) {
                out.push(Finding {
                    section: ext_ref.clone(),
                    kind: FindingKind::OrphanBlock { kind, sec_name_off, name: name.clone() },
                });
            }
        };
        ext.func_info().blocks.iter().for_each(|b| orphan(InfoKind::FuncInfo, b.sec_name_off, &b.sec_name));
        ext.line_info().blocks.iter().for_each(|b| orphan(InfoKind::LineInfo, b.sec_name_off, &b.sec_name));
        ext.core_relo().blocks.iter().for_each(|b| orphan(InfoKind::CoreRelo, b.sec_name_off, &b.sec_name));
        for (reloc, offset) in ext.unattached_relocs() {
            out.push(Finding { section: ext_ref.clone(), kind: FindingKind::UnattachedBtfExtReloc { reloc, offset } });
        }
    }
    out
}

fn check_program(obj: &BpfObject, pi: usize, p: &ProgramSection, opts: DecodeOptions, out: &mut Vec<Finding>) {
    let section = obj.section_ref(p.section());
    let mut push = |kind| out.push(Finding { section: section.clone(), kind });
    let insns = p.insns();
    let len = insns.len();
    let is_start = starts(insns);
    let subs = obj.subprograms(pi);
    for s in &subs {
        let sym = &obj.symbols()[s.symbol as usize];
        if !sym.value.is_multiple_of(8)
            || !sym.size.is_multiple_of(8)
            || sym.value.saturating_add(sym.size) > len as u64 * 8
        {
            push(FindingKind::BadFuncSymbol {
                symbol: s.symbol,
                name: s.name.clone(),
                value: sym.value,
                size: sym.size,
            });
        }
    }
    // Subprogram of each slot: [start, next start).
    let sub_starts: Vec<usize> = {
        let mut v: Vec<usize> = subs.iter().map(|s| s.start).filter(|&s| s < len).collect();
        v.dedup();
        v
    };
    let is_sub_start = |slot: usize| sub_starts.binary_search(&slot).is_ok() || (sub_starts.is_empty() && slot == 0);
    let relocated = obj.relocated_slots(pi);
    check_code(insns, &is_start, &sub_starts, &relocated, opts, &mut push);
    // Relocations.
    for (ri, r) in p.relocs().iter().enumerate() {
        let Some(insn) = insns.get(r.slot) else { continue };
        let ld = insn.is_ld_imm64() && is_start[r.slot] && r.slot + 1 < len;
        let call = insn.code == JMP | CALL;
        let ok = match r.r_type {
            R_BPF_64_64 => ld,
            R_BPF_64_32 => ld || call,
            _ => false,
        };
        if !ok {
            push(FindingKind::RelocWrongInsn { reloc: ri, slot: r.slot, r_type: r.r_type, code: insn.code });
            continue;
        }
        // Targets into program sections.
        let Some(sym) = obj.symbols().get(r.symbol as usize) else { continue };
        let Some((ti, tp)) =
            sym.section().and_then(|s| obj.programs().iter().enumerate().find(|(_, q)| q.section() == s))
        else {
            continue;
        };
        let Ok(s) = i64::try_from(sym.value) else { continue };
        let target = if call { s + (i64::from(insn.imm) + 1) * 8 } else { s + i64::from(insn.imm) };
        let t_starts = starts(tp.insns());
        let t_subs = obj.subprograms(ti);
        let valid = target >= 0
            && target % 8 == 0
            && usize::try_from(target / 8).ok().is_some_and(|t| {
                t < tp.insns().len()
                    && t_starts[t]
                    && (!call || t_subs.is_empty() || t_subs.iter().any(|s| s.start == t))
            });
        if !valid {
            push(FindingKind::RelocBadTarget { reloc: ri, slot: r.slot, target });
        }
    }
    // .BTF.ext records.
    let records = |kind: InfoKind, offs: &mut dyn Iterator<Item = u32>, push: &mut dyn FnMut(FindingKind)| {
        let mut prev: Option<usize> = None;
        for (record, off) in offs.enumerate() {
            let slot = (off / 8) as usize;
            if slot >= len {
                push(FindingKind::RecordOutOfRange { kind, record, slot });
            } else if !is_start[slot] {
                push(FindingKind::RecordNotOnInsn { kind, record, slot });
            }
            if let Some(pv) = prev.filter(|&pv| kind != InfoKind::CoreRelo && slot <= pv) {
                push(FindingKind::RecordUnsorted { kind, record, slot, prev: pv });
            }
            if kind == InfoKind::FuncInfo && slot < len && !is_sub_start(slot) {
                push(FindingKind::FuncInfoNotOnSubprogram { record, slot });
            }
            prev = Some(slot);
        }
    };
    records(InfoKind::FuncInfo, &mut obj.func_info(pi).iter().map(|r| r.insn_off), &mut push);
    records(InfoKind::LineInfo, &mut obj.line_info(pi).iter().map(|r| r.insn_off), &mut push);
    records(InfoKind::CoreRelo, &mut obj.core_relos(pi).iter().map(|r| r.insn_off), &mut push);
    for (record, r) in obj.core_relos(pi).iter().enumerate() {
        let slot = (r.insn_off / 8) as usize;
        if let Some(insn) = insns.get(slot).filter(|_| is_start[slot])
            && !core_patchable(insn)
        {
            push(FindingKind::CoreReloWrongInsn { record, slot, code: insn.code });
        }
    }
}

/// Whether a loader can apply a CO-RE relocation to `insn` (libbpf's `bpf_core_patch_insn`):
/// an ALU/ALU64 with an immediate operand (the immediate), a load or store (the offset), an
/// ld_imm64 (the immediate).
fn core_patchable(insn: &Insn) -> bool {
    use bpfpatch_insn::opcode as c;
    match insn.code & c::CLASS_MASK {
        c::ALU | c::ALU64 => insn.code & c::SRC_MASK == c::K,
        c::LDX | c::ST | c::STX => true,
        c::LD => insn.is_ld_imm64(),
        _ => false,
    }
}
