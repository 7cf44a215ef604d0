//! Read, rewrite and write clang-built BPF ELF objects (`clang -O2 -g -target bpf[eb]`).
//!
//! # Model
//! [`BpfObject::parse`] reads an ELF32/ELF64 object of either byte order with the `object`
//! crate's low-level read API and keeps:
//! - the original bytes, from which every section the model does not own is copied verbatim;
//! - every section header, raw ([`SectionHeader`]), and every symbol, raw ([`Symbol`]);
//! - one [`ProgramSection`] per executable `SHT_PROGBITS` section: its instructions as raw
//!   [`bpfpatch_insn::Insn`] slots and its relocations mapped onto slots ([`Reloc`]);
//!   subprograms are the `STT_FUNC` symbols of the section ([`BpfObject::subprograms`]);
//! - `.BTF` (header and strings, [`Btf`]) and `.BTF.ext` (func_info, line_info, CO-RE
//!   relocations, [`BtfExt`]), together with the `.rel.BTF.ext` entries on record `insn_off`s.
//!
//! # Owned and copied sections (the writer's rule)
//! The writer re-encodes what the model owns: program sections, their relocation sections, the
//! symbol table, and — after a rewrite touched them — `.BTF.ext` and `.rel.BTF.ext` and the
//! `.debug_*` sections holding addresses of the rewritten code with their relocation sections
//! (remapped through the same map, see [`dwarf`](crate::DwarfDropped); one that cannot be
//! remapped is emptied and reported in [`RewriteReport::dwarf_dropped`]). Every other section
//! (strings, data, maps, `.BTF`, `SHT_LLVM_ADDRSIG`, groups, anything unknown) is **kept,
//! byte-identical, at the same index**. No section or symbol is added or removed, so section and
//! symbol indices never change and tables that refer to them (`SHT_LLVM_ADDRSIG`, `SHT_GROUP`,
//! `sh_link`/`sh_info`) stay valid. Relocations of other sections into rewritten code are
//! counted in [`RewriteReport::stale_foreign_refs`].
//!
//! Sections are laid out in their original file order at their original offsets shifted by the
//! growth of what precedes them, so an object written without changes is byte-identical to the
//! input (the corpus test checks this for every object).
//!
//! # Rewriting
//! [`BpfObject::replace_program`] takes a program's new instructions and a [`SlotMap`] from old
//! slots to new ones, and moves relocations, symbols and `.BTF.ext` records with their
//! instructions. Relocated `call`/ld_imm64 immediates are owned by this layer (see
//! [`BpfObject::relocated_slots`]): whatever a pass left there is replaced by the addend the
//! relocation needs.
//!
//! # Through the patching engine
//! [`BpfObject::engine_view`] presents a program section to `bpfpatch-patch` in the kernel's
//! view of its relocated instructions, and [`Rewriter`] runs a pass closure on its patch list,
//! linearizes it and writes the result back with [`BpfObject::apply_patched`] (design notes:
//! [`engine`]).
//!
//! # Example
//! Insert a `goto +0` before the first instruction of every program, then write the object;
//! jumps, calls, relocations, symbols and `.BTF.ext` records follow their instructions:
//!
//! ```
//! use bpfpatch_insn::{Insn, Slot, opcode as c};
//! use bpfpatch_object::{BpfObject, RewriteOptions, Rewriter, check};
//! use bpfpatch_patch::{PatchBuf, PrepatchMode};
//!
//! let bytes = include_bytes!("../tests/data/prog-el.o");
//! let mut obj = BpfObject::parse(bytes)?;
//! assert!(check(&obj).is_empty());
//! let nop = PatchBuf::from_insns(&[Insn::new(c::JMP | c::JA, 0, 0, 0, 0)]);
//! let mut rw = Rewriter::new(RewriteOptions::default());
//! let reports = rw.rewrite_object(&mut obj, &mut |list, info| {
//!     if !info.program.insns.is_empty() {
//!         let first = list.node_of(Slot(0))?;
//!         list.prepatch(first, &nop, PrepatchMode::LandOnInserted)?;
//!     }
//!     Ok::<(), bpfpatch_patch::Error>(())
//! })?;
//! assert!(reports.iter().all(|r| r.slots_after == r.slots_before + usize::from(r.slots_before > 0)));
//! let again = BpfObject::parse(&obj.write()?)?;
//! assert!(check(&again).is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod btf;
mod btf_ext;
mod check;
mod dwarf;
mod elf;
pub mod engine;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod rewrite;
mod write;
pub mod xlated;

pub use btf::{Btf, BtfArray, BtfEnumValue, BtfMember, BtfType, BtfTypes, kind as btf_kind};
pub use btf_ext::{BtfExt, CoreRelo, FuncInfo, InfoArea, InfoBlock, LineInfo, Record};
pub use check::{Finding, FindingKind, check, check_insns, check_with};
pub use dwarf::DwarfDropped;
pub use elf::{SectionHeader, Symbol};
pub use engine::{
    CrossCall, EngineError, EngineView, OffsetMapSlots, ProgramInfo, ProgramReport, RelocRole, RewriteOptions,
    Rewriter, Rewritten, SlotAux,
};
pub use error::{BtfError, BtfExtError, InfoKind, ObjectError, RewriteError, SectionRef};
pub use rewrite::{DroppedReloc, IdentityMap, RewriteReport, SlotMap, TableMap};

use bpfpatch_insn::{Endian, Insn, slots_from_bytes};
use elf::{Elf, RawReloc, SHF_EXECINSTR, SHT_PROGBITS, SHT_RELA};

/// ELF relocation types of `EM_BPF`.
pub mod reloc_type {
    /// `R_BPF_NONE`.
    pub const NONE: u32 = 0;
    /// `R_BPF_64_64`: 64-bit address in an ld_imm64 (first slot's `imm` holds the addend).
    pub const R_BPF_64_64: u32 = 1;
    /// `R_BPF_64_ABS64`: 64-bit data.
    pub const R_BPF_64_ABS64: u32 = 2;
    /// `R_BPF_64_ABS32`: 32-bit data.
    pub const R_BPF_64_ABS32: u32 = 3;
    /// `R_BPF_64_NODYLD32`: 32-bit data not resolved by the dynamic loader (`.BTF`, `.BTF.ext`).
    pub const R_BPF_64_NODYLD32: u32 = 4;
    /// `R_BPF_64_32`: call target (`(S + A) / 8 - 1` in `imm`).
    pub const R_BPF_64_32: u32 = 10;

    /// The ELF name of a BPF relocation type.
    #[must_use]
    pub fn name(t: u32) -> &'static str {
        match t {
            NONE => "R_BPF_NONE",
            R_BPF_64_64 => "R_BPF_64_64",
            R_BPF_64_ABS64 => "R_BPF_64_ABS64",
            R_BPF_64_ABS32 => "R_BPF_64_ABS32",
            R_BPF_64_NODYLD32 => "R_BPF_64_NODYLD32",
            R_BPF_64_32 => "R_BPF_64_32",
            _ => "R_BPF_unknown",
        }
    }
}

/// A relocation on an instruction slot of a program section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloc {
    /// The slot (`r_offset / 8`) the relocation applies to.
    pub slot: usize,
    /// The ELF relocation type ([`reloc_type`]).
    pub r_type: u32,
    /// Index of the symbol in the symbol table.
    pub symbol: u32,
    /// The explicit addend of a RELA entry (0 for REL, whose addend is in the instruction).
    pub addend: i64,
}

/// One executable section: a BPF program (or `.text` with subprograms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramSection {
    section: usize,
    name: String,
    endian: Endian,
    insns: Vec<Insn>,
    relocs: Vec<Reloc>,
    rel_section: Option<usize>,
    rela: bool,
}

impl ProgramSection {
    /// Index of the section in the section header table.
    #[must_use]
    pub fn section(&self) -> usize {
        self.section
    }

    /// The section name (`xdp`, `tc`, `.text`, ...).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Byte order of the instructions.
    #[must_use]
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The instruction slots.
    #[must_use]
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// The relocations on this section, in table order.
    #[must_use]
    pub fn relocs(&self) -> &[Reloc] {
        &self.relocs
    }

    /// Index of the relocation section applying to this one, if any.
    #[must_use]
    pub fn rel_section(&self) -> Option<usize> {
        self.rel_section
    }
}

/// A subprogram: a function symbol of a program section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subprogram {
    /// The symbol's name.
    pub name: String,
    /// Index of the symbol.
    pub symbol: u32,
    /// First slot.
    pub start: usize,
    /// Length in slots.
    pub len: usize,
}

/// A parsed BPF object; see the crate documentation for the model and the writer's rule.
#[derive(Clone, Debug)]
pub struct BpfObject {
    data: Vec<u8>,
    elf: Elf,
    programs: Vec<ProgramSection>,
    btf: Option<(usize, Btf)>,
    btf_ext: Option<(usize, BtfExt)>,
    btf_ext_rel: Option<usize>,
    /// Relocation sections the model does not own: (index, target section, entries).
    foreign_relocs: Vec<(usize, u32, Vec<RawReloc>)>,
    /// The `.debug_*` sections and their relocations ([`dwarf`]).
    dwarf: dwarf::Dwarf,
    /// The writer appends the xlated marker ([`xlated`]).
    mark_xlated: bool,
}

fn is_program(h: &SectionHeader) -> bool {
    h.sh_type == SHT_PROGBITS && h.flags & SHF_EXECINSTR != 0
}

impl BpfObject {
    /// Parses an object.
    ///
    /// # Errors
    /// A typed [`ObjectError`] naming the section, entry and offset of the first problem:
    /// malformed ELF structures, sections outside the file, executable sections that are not whole
    /// instructions, relocations on program sections that are unaligned, outside the section or
    /// name a missing symbol, malformed `.BTF` or `.BTF.ext`. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<BpfObject, ObjectError> {
        let mut obj = BpfObject::parse_parts(bytes)?;
        obj.data = bytes.to_vec();
        Ok(obj)
    }

    /// [`BpfObject::parse`] taking the file's bytes: the object keeps them (for the sections it
    /// writes back as they were) instead of a copy.
    ///
    /// # Errors
    /// As [`BpfObject::parse`].
    pub fn parse_vec(bytes: Vec<u8>) -> Result<BpfObject, ObjectError> {
        let mut obj = BpfObject::parse_parts(&bytes)?;
        obj.data = bytes;
        Ok(obj)
    }

    /// Everything [`BpfObject::parse`] reads, without the file's bytes (`data` empty).
    fn parse_parts(bytes: &[u8]) -> Result<BpfObject, ObjectError> {
        let mut elf = Elf::parse(bytes)?;
        let mut programs = Vec::new();
        let mut prog_of_section = vec![None; elf.sections.len()];
        for (i, h) in elf.sections.iter().enumerate() {
            if !is_program(h) {
                continue;
            }
            let section = elf.section_ref(i);
            if h.size % 8 != 0 {
                return Err(ObjectError::TextSize { section, size: h.size });
            }
            // Before reading anything: memory stays proportional to what a program may hold.
            if h.size / 8 > bpfpatch_insn::MAX_PROGRAM_SLOTS as u64 {
                let limit = bpfpatch_insn::MAX_PROGRAM_SLOTS;
                return Err(ObjectError::ProgramTooLarge { section, slots: h.size / 8, limit });
            }
            let bytes = section_bytes(bytes, h).ok_or(ObjectError::SectionOutOfBounds {
                section: section.clone(),
                offset: h.offset,
                size: h.size,
                file_len: bytes.len() as u64,
            })?;
            let insns = slots_from_bytes(bytes, elf.endian)
                .map_err(|_| ObjectError::TextSize { section: section.clone(), size: h.size })?;
            prog_of_section[i] = Some(programs.len());
            programs.push(ProgramSection {
                section: i,
                name: section.name,
                endian: elf.endian,
                insns,
                relocs: Vec::new(),
                rel_section: None,
                rela: false,
            });
        }
        let find = |name: &str| elf.names.iter().position(|n| n == name).filter(|&i| i != 0);
        // `.BTF` and `.BTF.ext` are read from (and `.BTF.ext` rewritten into) the file: a section
        // type without contents would make the writer drop what the model read.
        // Nor may one be a program or a table the model owns as well (two owners of one
        // section's bytes): they must be plain SHT_PROGBITS data.
        for (name, what) in [(".BTF", "BTF"), (".BTF.ext", "BTF.ext")] {
            let Some(i) = find(name) else { continue };
            let h = &elf.sections[i];
            if !h.has_file_data() {
                return Err(ObjectError::NoContents { section: elf.section_ref(i), sh_type: h.sh_type, what });
            }
            if h.sh_type != SHT_PROGBITS || is_program(h) {
                let (sh_type, flags) = (h.sh_type, h.flags);
                return Err(ObjectError::NotBtfData { section: elf.section_ref(i), sh_type, flags, what });
            }
        }
        let btf = match find(".BTF") {
            Some(i) => {
                let h = &elf.sections[i];
                let b = section_bytes(bytes, h).unwrap_or_default();
                let btf = Btf::parse(b).map_err(|error| ObjectError::Btf { section: elf.section_ref(i), error })?;
                Some((i, btf))
            }
            None => None,
        };
        let mut btf_ext = match find(".BTF.ext") {
            Some(i) => {
                let h = &elf.sections[i];
                let b = section_bytes(bytes, h).unwrap_or_default();
                let ext = BtfExt::parse(b, btf.as_ref().map(|b| &b.1))
                    .map_err(|error| ObjectError::BtfExt { section: elf.section_ref(i), error })?;
                Some((i, ext))
            }
            None => None,
        };
        // `.BTF.ext` blocks name their program section: two program sections of one name would
        // make every record of that name belong to both (a rewrite of one moved the other's).
        if btf_ext.is_some() {
            let mut names: Vec<(&str, usize)> = programs.iter().map(|p| (p.name.as_str(), p.section)).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0].0 == w[1].0) {
                let what = "program section name (.BTF.ext records are matched to sections by name)";
                return Err(ObjectError::Duplicate { section: elf.section_ref(w[1].1), what });
            }
        }
        let mut btf_ext_rel = None;
        let mut foreign_relocs = Vec::new();
        let nsyms = elf.symbols.len();
        for (ri, entries) in core::mem::take(&mut elf.relocs) {
            let rh = &elf.sections[ri];
            let target = rh.info;
            let rela = rh.sh_type == SHT_RELA;
            let tgt = usize::try_from(target).unwrap_or(usize::MAX);
            if let Some(Some(p)) = prog_of_section.get(tgt) {
                let prog: &mut ProgramSection = &mut programs[*p];
                let section = elf.section_ref(tgt);
                if prog.rel_section.is_some() {
                    return Err(ObjectError::Duplicate { section, what: "relocation section" });
                }
                let size = elf.sections[tgt].size;
                let mut relocs = Vec::with_capacity(entries.len());
                for (index, r) in entries.iter().enumerate() {
                    if r.offset >= size {
                        return Err(ObjectError::RelocOutOfRange { section, index, offset: r.offset, size });
                    }
                    if r.offset % 8 != 0 {
                        return Err(ObjectError::RelocUnaligned { section, index, offset: r.offset });
                    }
                    if r.sym as usize >= nsyms {
                        return Err(ObjectError::RelocSymbol { section, index, symbol: r.sym, count: nsyms });
                    }
                    relocs.push(Reloc {
                        slot: usize::try_from(r.offset / 8).unwrap_or(0),
                        r_type: r.r_type,
                        symbol: r.sym,
                        addend: r.addend,
                    });
                }
                prog.relocs = relocs;
                prog.rel_section = Some(ri);
                prog.rela = rela;
            } else if let Some((ei, ext)) = btf_ext.as_mut().filter(|(ei, _)| *ei == tgt) {
                if btf_ext_rel.is_some() {
                    return Err(ObjectError::Duplicate { section: elf.section_ref(*ei), what: "relocation section" });
                }
                ext.attach_relocs(&entries);
                btf_ext_rel = Some(ri);
            } else {
                foreign_relocs.push((ri, target, entries));
            }
        }
        let dwarf = debug_sections(bytes, &elf, &mut foreign_relocs);
        Ok(BpfObject {
            data: Vec::new(),
            elf,
            programs,
            btf,
            btf_ext,
            btf_ext_rel,
            foreign_relocs,
            dwarf,
            mark_xlated: false,
        })
    }

    /// Byte order of the object.
    #[must_use]
    pub fn endian(&self) -> Endian {
        self.elf.endian
    }

    /// Whether the object is ELFCLASS64.
    #[must_use]
    pub fn is_64(&self) -> bool {
        self.elf.is_64
    }

    /// The section headers as parsed (offsets and sizes are the input's).
    #[must_use]
    pub fn section_headers(&self) -> &[SectionHeader] {
        &self.elf.sections
    }

    /// The name of section `index`.
    #[must_use]
    pub fn section_name(&self, index: usize) -> Option<&str> {
        self.elf.names.get(index).map(String::as_str)
    }

    /// Reference to section `index` for messages.
    #[must_use]
    pub fn section_ref(&self, index: usize) -> SectionRef {
        self.elf.section_ref(index)
    }

    /// The input bytes of section `index` (empty for `SHT_NOBITS`), as parsed.
    #[must_use]
    pub fn original_section_data(&self, index: usize) -> Option<&[u8]> {
        let h = self.elf.sections.get(index)?;
        if !h.has_file_data() {
            return Some(&[]);
        }
        section_bytes(&self.data, h)
    }

    /// The programs (executable sections), in section order.
    #[must_use]
    pub fn programs(&self) -> &[ProgramSection] {
        &self.programs
    }

    /// The program in section `name`.
    #[must_use]
    pub fn program_by_name(&self, name: &str) -> Option<(usize, &ProgramSection)> {
        self.programs.iter().enumerate().find(|(_, p)| p.name == name)
    }

    /// The symbol table (index 0 is the null symbol).
    #[must_use]
    pub fn symbols(&self) -> &[Symbol] {
        &self.elf.symbols
    }

    /// Subprograms of program `prog`: its function symbols sorted by start (then symbol index).
    ///
    /// Symbols whose value or size is not a multiple of 8 are reported by [`check`] and rounded
    /// down here.
    #[must_use]
    pub fn subprograms(&self, prog: usize) -> Vec<Subprogram> {
        let Some(p) = self.programs.get(prog) else {
            return Vec::new();
        };
        let mut v: Vec<Subprogram> = self
            .elf
            .symbols
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_func() && s.section() == Some(p.section))
            .map(|(i, s)| Subprogram {
                name: s.name.clone(),
                symbol: u32::try_from(i).unwrap_or(u32::MAX),
                start: usize::try_from(s.value / 8).unwrap_or(usize::MAX),
                len: usize::try_from(s.size / 8).unwrap_or(usize::MAX),
            })
            .collect();
        v.sort_by_key(|s| (s.start, s.symbol));
        v
    }

    /// The `.BTF` section, if present.
    #[must_use]
    pub fn btf(&self) -> Option<&Btf> {
        self.btf.as_ref().map(|b| &b.1)
    }

    /// The type table of `.BTF`, read in the object's byte order (its ELF header's); `None`
    /// without `.BTF`. Read on each call: [`BpfObject::parse`] does not read the types, so an
    /// object whose type area is malformed still parses and rewrites.
    ///
    /// # Errors
    /// [`ObjectError::Btf`] naming the section, for the errors of [`BtfTypes::parse`].
    pub fn btf_types(&self) -> Option<Result<BtfTypes, ObjectError>> {
        let (i, btf) = self.btf.as_ref()?;
        Some(
            BtfTypes::parse(btf, self.endian())
                .map_err(|error| ObjectError::Btf { section: self.elf.section_ref(*i), error }),
        )
    }

    /// The `.BTF.ext` section, if present.
    #[must_use]
    pub fn btf_ext(&self) -> Option<&BtfExt> {
        self.btf_ext.as_ref().map(|b| &b.1)
    }

    /// func_info records of program `prog` (empty when it has none).
    #[must_use]
    pub fn func_info(&self, prog: usize) -> &[FuncInfo] {
        match (self.btf_ext(), self.programs.get(prog)) {
            (Some(x), Some(p)) => x.func_info.block(&p.name).map_or(&[], |b| &b.records),
            _ => &[],
        }
    }

    /// line_info records of program `prog`.
    #[must_use]
    pub fn line_info(&self, prog: usize) -> &[LineInfo] {
        match (self.btf_ext(), self.programs.get(prog)) {
            (Some(x), Some(p)) => x.line_info.block(&p.name).map_or(&[], |b| &b.records),
            _ => &[],
        }
    }

    /// CO-RE relocation records of program `prog`.
    #[must_use]
    pub fn core_relos(&self, prog: usize) -> &[CoreRelo] {
        match (self.btf_ext(), self.programs.get(prog)) {
            (Some(x), Some(p)) => x.core_relo.block(&p.name).map_or(&[], |b| &b.records),
            _ => &[],
        }
    }

    /// The file name and source text of a line_info record, from `.BTF`'s strings.
    #[must_use]
    pub fn line_text(&self, li: &LineInfo) -> Option<(String, String)> {
        let btf = self.btf()?;
        Some((btf.string(li.file_name_off).ok()?, btf.string(li.line_off).ok()?))
    }

    /// Slots of program `prog` whose `imm` field belongs to a relocation (relocated `call`s and
    /// ld_imm64s), sorted. A patching engine must treat these fields as opaque (not as
    /// PC-relative targets) and passes must not rewrite them; [`BpfObject::replace_program`]
    /// re-establishes them.
    #[must_use]
    pub fn relocated_slots(&self, prog: usize) -> Vec<usize> {
        let Some(p) = self.programs.get(prog) else {
            return Vec::new();
        };
        let mut v: Vec<usize> = p.relocs.iter().map(|r| r.slot).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// `SHF_COMPRESSED`.
const SHF_COMPRESSED: u64 = 0x800;

/// The `.debug_*` sections with file data and their REL relocations, which leave
/// `foreign_relocs` for the model ([`dwarf`]).
fn debug_sections(bytes: &[u8], elf: &Elf, foreign: &mut Vec<(usize, u32, Vec<RawReloc>)>) -> dwarf::Dwarf {
    let mut d = dwarf::Dwarf::default();
    for (i, h) in elf.sections.iter().enumerate() {
        let name = &elf.names[i];
        if !name.starts_with(".debug_") || !h.has_file_data() || is_program(h) {
            continue;
        }
        let unsupported = (h.flags & SHF_COMPRESSED != 0).then_some("compressed section");
        d.sections.push(dwarf::DebugSection {
            index: i,
            name: name.clone(),
            bytes: section_bytes(bytes, h).unwrap_or_default().to_vec(),
            rel: None,
            relocs: Vec::new(),
            dirty: false,
            unsupported,
        });
    }
    let mut k = 0;
    while k < foreign.len() {
        let (ri, target, _) = &foreign[k];
        let Some(s) = d.sections.iter_mut().find(|s| u32::try_from(s.index).is_ok_and(|i| i == *target)) else {
            k += 1;
            continue;
        };
        if elf.sections[*ri].sh_type == SHT_RELA {
            s.unsupported = Some("RELA relocations are not supported");
            k += 1;
        } else if s.rel.is_some() {
            s.unsupported = Some("several relocation sections");
            k += 1;
        } else {
            let (ri, _, entries) = foreign.remove(k);
            s.rel = Some(ri);
            s.relocs = entries;
        }
    }
    d
}

/// The file bytes of a section with file data, if inside the file.
fn section_bytes<'a>(data: &'a [u8], h: &SectionHeader) -> Option<&'a [u8]> {
    let start = usize::try_from(h.offset).ok()?;
    let len = usize::try_from(h.size).ok()?;
    data.get(start..start.checked_add(len)?)
}
