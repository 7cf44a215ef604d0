//! Errors: every rejection says where (section, record, byte offset) and what.
//!
//! Parsing, writing and rewriting return [`ObjectError`]. `.BTF` and `.BTF.ext` problems are
//! nested as [`BtfError`] and [`BtfExtError`], which carry the byte offset inside their section.

use core::fmt;

/// A section named in an error: its index in the section header table and its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SectionRef {
    /// Index in the section header table.
    pub index: usize,
    /// The section's name (empty when it has none or it does not resolve).
    pub name: String,
}

impl fmt::Display for SectionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "section {} `{}`", self.index, self.name)
    }
}

/// Which of the three `.BTF.ext` record kinds a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InfoKind {
    /// `bpf_func_info` records.
    FuncInfo,
    /// `bpf_line_info` records.
    LineInfo,
    /// `bpf_core_relo` records.
    CoreRelo,
}

impl InfoKind {
    /// The smallest record size the format allows for this kind.
    #[must_use]
    pub const fn min_record_size(self) -> u32 {
        match self {
            InfoKind::FuncInfo => 8,
            InfoKind::LineInfo | InfoKind::CoreRelo => 16,
        }
    }
}

impl fmt::Display for InfoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InfoKind::FuncInfo => "func_info",
            InfoKind::LineInfo => "line_info",
            InfoKind::CoreRelo => "core_relo",
        })
    }
}

/// A malformed `.BTF` section; `offset` is the byte offset inside the section.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// The section is shorter than the fixed header.
    #[error("section of {len} bytes is shorter than the 24-byte header")]
    TooShort {
        /// Section length.
        len: u64,
    },
    /// The magic is neither 0xeB9F in either byte order.
    #[error("bad magic {magic:#06x}")]
    BadMagic {
        /// The first two bytes, read little-endian.
        magic: u16,
    },
    /// `hdr_len` is smaller than the fixed header or past the end of the section.
    #[error("header length {hdr_len} invalid for a section of {len} bytes")]
    BadHeaderLen {
        /// The header's `hdr_len`.
        hdr_len: u32,
        /// Section length.
        len: u64,
    },
    /// The type or string area lies outside the section.
    #[error("{what} area at {offset:#x}+{size:#x} is outside the section of {len} bytes")]
    AreaOutOfBounds {
        /// `"type"` or `"string"`.
        what: &'static str,
        /// Absolute offset of the area inside the section.
        offset: u64,
        /// Its length.
        size: u64,
        /// Section length.
        len: u64,
    },
    /// A string offset is past the string area or the string has no terminating NUL.
    #[error("string offset {offset:#x} is invalid (string area of {len} bytes)")]
    BadString {
        /// The string offset.
        offset: u32,
        /// Length of the string area.
        len: u64,
    },
    /// The section's magic is in the other byte order than the object's ELF header.
    #[error("section is {btf:?}-endian in a {elf:?}-endian object")]
    ByteOrder {
        /// The object's byte order (ELF header).
        elf: bpfpatch_insn::Endian,
        /// The section's (magic).
        btf: bpfpatch_insn::Endian,
    },
    /// The types of a version other than 1 are not defined.
    #[error("unsupported version {version}")]
    BadVersion {
        /// The header's version byte.
        version: u8,
    },
    /// A type record does not fit in the rest of the type area.
    #[error("type [{id}] at {offset:#x} needs {need} bytes, the type area has {left} left")]
    TruncatedType {
        /// The id the record would have.
        id: u32,
        /// Its byte offset inside the section.
        offset: u64,
        /// Its length (common part and tail).
        need: u64,
        /// Bytes left in the type area from `offset`.
        left: u64,
    },
    /// Following modifiers and typedefs from a type comes back to a type already passed.
    #[error("type [{id}]: its chain of modifiers and typedefs loops")]
    TypeLoop {
        /// Where the chain started.
        id: u32,
    },
}

/// A malformed `.BTF.ext` section; offsets are byte offsets inside the section.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BtfExtError {
    /// The section is shorter than what is being read.
    #[error("truncated: {what} at {offset:#x} needs {need} bytes, section has {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// How many bytes were needed from `offset`.
        need: u64,
        /// Section length.
        len: u64,
    },
    /// The magic is not 0xeB9F in either byte order.
    #[error("bad magic {magic:#06x}")]
    BadMagic {
        /// The first two bytes, read little-endian.
        magic: u16,
    },
    /// A version other than 1.
    #[error("unsupported version {version}")]
    BadVersion {
        /// The version byte.
        version: u8,
    },
    /// `hdr_len` is below the 24-byte minimum or past the end of the section.
    #[error("header length {hdr_len} invalid for a section of {len} bytes")]
    BadHeaderLen {
        /// The header's `hdr_len`.
        hdr_len: u32,
        /// Section length.
        len: u64,
    },
    /// A record area (`*_off`, `*_len`) lies outside the section.
    #[error("{kind} area at {offset:#x}+{size:#x} is outside the section of {len} bytes")]
    AreaOutOfBounds {
        /// Which area.
        kind: InfoKind,
        /// Absolute offset of the area.
        offset: u64,
        /// Its length.
        size: u64,
        /// Section length.
        len: u64,
    },
    /// A record size below the minimum or not a multiple of 4.
    #[error("{kind} record size {size} at {offset:#x} is invalid (minimum {min}, multiple of 4)", min = kind.min_record_size())]
    BadRecordSize {
        /// Which area.
        kind: InfoKind,
        /// The record size read.
        size: u32,
        /// Where it was read.
        offset: u64,
    },
    /// A per-section block header or its records run past the end of the area.
    #[error(
        "{kind} block {block} at {offset:#x}: {num} records of {rec_size} bytes overrun the area ending at {end:#x}"
    )]
    BlockOverrun {
        /// Which area.
        kind: InfoKind,
        /// Index of the per-section block in the area.
        block: usize,
        /// Offset of the block header.
        offset: u64,
        /// Its `num_info`.
        num: u32,
        /// The area's record size.
        rec_size: u32,
        /// End of the area.
        end: u64,
    },
    /// A per-section block with `num_info == 0` (libbpf rejects it).
    #[error("{kind} block {block} at {offset:#x} has no records")]
    EmptyBlock {
        /// Which area.
        kind: InfoKind,
        /// Index of the block.
        block: usize,
        /// Offset of the block header.
        offset: u64,
    },
    /// An `insn_off` that is not a multiple of 8.
    #[error("{kind} block {block} record {record} at {offset:#x}: insn_off {insn_off} is not a multiple of 8")]
    UnalignedInsnOff {
        /// Which area.
        kind: InfoKind,
        /// Index of the block.
        block: usize,
        /// Index of the record in the block.
        record: usize,
        /// Offset of the record.
        offset: u64,
        /// The value.
        insn_off: u32,
    },
    /// A relocation in `.rel.BTF.ext` outside the section or not on a record's `insn_off`
    /// (reported when the section has to be re-encoded).
    #[error("relocation {index} at offset {offset:#x} is not on a record's insn_off field")]
    UnattachedReloc {
        /// Index in the relocation section.
        index: usize,
        /// Its `r_offset`.
        offset: u64,
    },
}

/// Why a rewrite of one program section was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The map's `new_len` disagrees with the number of instructions supplied.
    #[error("slot map says {map} new slots, {insns} instructions supplied")]
    LengthMismatch {
        /// `SlotMap::new_len`.
        map: usize,
        /// Instructions supplied.
        insns: usize,
    },
    /// The map sent an old slot past the end of the new image.
    #[error("slot map sends old slot {old} to {new}, past the new length {new_len}")]
    MapOutOfRange {
        /// Old slot.
        old: usize,
        /// Its image.
        new: usize,
        /// New length.
        new_len: usize,
    },
    /// `start` decreased: old slot `old` maps before old slot `old - 1`.
    #[error("slot map is not monotonic at old slot {old}")]
    NotMonotonic {
        /// Old slot.
        old: usize,
    },
    /// A symbol value or end that is not on a slot boundary or is past the section.
    #[error("symbol {symbol} `{name}`: value {value:#x} size {size:#x} not on slots inside the section")]
    BadSymbol {
        /// Symbol index.
        symbol: u32,
        /// Its name.
        name: String,
        /// `st_value`.
        value: u64,
        /// `st_size`.
        size: u64,
    },
    /// A function symbol whose body became empty (its func_info would collide with the next).
    #[error("subprogram `{name}` became empty")]
    EmptySubprogram {
        /// Its name.
        name: String,
    },
    /// A relocation's instruction was rewritten into one that cannot carry the relocated field.
    #[error("relocation {reloc} (type {r_type}) moved from slot {old} to slot {new}, which holds opcode {code:#04x}")]
    RelocatedInsnChanged {
        /// Index of the relocation in the section's relocation table.
        reloc: usize,
        /// Its ELF type.
        r_type: u32,
        /// Old slot.
        old: usize,
        /// New slot.
        new: usize,
        /// The opcode now there.
        code: u8,
    },
    /// A relocation whose addend names a target slot outside its symbol's section.
    #[error("{section}: relocation {reloc} targets byte {target} of {target_section}, outside it")]
    RelocTargetOutOfRange {
        /// Section holding the relocated instruction.
        section: SectionRef,
        /// Index of the relocation.
        reloc: usize,
        /// The rewritten section the relocation points into.
        target_section: SectionRef,
        /// The target byte offset computed from the symbol and addend.
        target: i64,
    },
    /// A relocated call or function address into the rewritten section whose target code was
    /// deleted with everything after it: there is nothing left for it to reach.
    #[error("{section}: relocation {reloc} targets slot {target} of {target_section}, whose code was deleted")]
    RelocTargetDeleted {
        /// Section holding the relocated instruction.
        section: SectionRef,
        /// Index of the relocation.
        reloc: usize,
        /// The rewritten section the relocation points into.
        target_section: SectionRef,
        /// The old target slot.
        target: usize,
    },
    /// A recomputed addend does not fit the 32-bit immediate.
    #[error("{section}: relocation {reloc}: new addend {value} does not fit the immediate")]
    AddendOverflow {
        /// Section holding the relocated instruction.
        section: SectionRef,
        /// Index of the relocation.
        reloc: usize,
        /// The value.
        value: i64,
    },
    /// A RELA relocation into the rewritten section (explicit addends are not remapped).
    #[error("{section}: RELA relocation {reloc} points into the rewritten section")]
    RelaIntoRewritten {
        /// Section holding the relocation.
        section: SectionRef,
        /// Index of the relocation.
        reloc: usize,
    },
    /// A `.BTF.ext` record points outside the section.
    #[error("{kind} record {record}: insn_off {insn_off} is outside the section")]
    RecordOutOfRange {
        /// Which kind.
        kind: InfoKind,
        /// Record index in the section's block.
        record: usize,
        /// Its insn_off in bytes.
        insn_off: u32,
    },
}

/// Everything that can go wrong reading, rewriting or writing an object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The `object` crate rejected the ELF structure (header, section table, names, symbols).
    #[error("ELF {context}: {message}")]
    Elf {
        /// What was being read.
        context: &'static str,
        /// The `object` crate's message.
        message: String,
    },
    /// A structure the file header points at extends past the end of the file.
    #[error("{what} at {offset:#x}+{size:#x} extends past the end of the {file_len}-byte file")]
    Truncated {
        /// What.
        what: &'static str,
        /// Its offset.
        offset: u64,
        /// Its size.
        size: u64,
        /// File length.
        file_len: u64,
    },
    /// `e_machine` is not `EM_BPF`.
    #[error("not a BPF object (e_machine {machine})")]
    NotBpf {
        /// The machine number.
        machine: u16,
    },
    /// A feature this crate does not handle.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What.
        what: String,
    },
    /// A section's contents lie outside the file.
    #[error("{section}: contents at {offset:#x}+{size:#x} extend past the end of the {file_len}-byte file")]
    SectionOutOfBounds {
        /// The section.
        section: SectionRef,
        /// `sh_offset`.
        offset: u64,
        /// `sh_size`.
        size: u64,
        /// File length.
        file_len: u64,
    },
    /// Two file-backed sections, or a section and the ELF header or section header table, share
    /// bytes (no compiler emits this; the writer could not keep it, and copying each would
    /// multiply the input).
    #[error("{section}: contents at {offset:#x}+{size:#x} overlap {other}")]
    Overlap {
        /// The section.
        section: SectionRef,
        /// `sh_offset`.
        offset: u64,
        /// `sh_size`.
        size: u64,
        /// What it overlaps: another section, the ELF header or the section header table.
        other: String,
    },
    /// A `.BTF` or `.BTF.ext` section that is not plain data (`SHT_PROGBITS` without
    /// `SHF_EXECINSTR`): a program or a table would have two owners.
    #[error(
        "{section}: section type {sh_type} flags {flags:#x} cannot hold {what} (must be non-executable SHT_PROGBITS)"
    )]
    NotBtfData {
        /// The section.
        section: SectionRef,
        /// Its `sh_type`.
        sh_type: u32,
        /// Its `sh_flags`.
        flags: u64,
        /// What its name says it holds.
        what: &'static str,
    },
    /// The section-name or symbol-name string table is not an `SHT_STRTAB` section.
    #[error("{section}: section type {sh_type} is not SHT_STRTAB, cannot hold {what}")]
    NotStringTable {
        /// The section.
        section: SectionRef,
        /// Its `sh_type`.
        sh_type: u32,
        /// Which names it was to hold.
        what: &'static str,
    },
    /// A `.BTF` or `.BTF.ext` section of a type that has no file contents (`SHT_NULL`,
    /// `SHT_NOBITS`): its bytes are undefined and the writer would not keep them.
    #[error("{section}: section type {sh_type} has no contents, cannot hold {what}")]
    NoContents {
        /// The section.
        section: SectionRef,
        /// Its `sh_type`.
        sh_type: u32,
        /// What its name says it holds.
        what: &'static str,
    },
    /// An executable section with more slots than [`bpfpatch_insn::MAX_PROGRAM_SLOTS`] (the
    /// kernel's `BPF_COMPLEXITY_LIMIT_INSNS`).
    #[error("{section}: {slots} instructions, more than a program may have ({limit})")]
    ProgramTooLarge {
        /// The section.
        section: SectionRef,
        /// Its size in slots.
        slots: u64,
        /// The limit.
        limit: usize,
    },
    /// An executable section whose size is not a multiple of 8.
    #[error("{section}: size {size} is not a whole number of 8-byte instructions")]
    TextSize {
        /// The section.
        section: SectionRef,
        /// Its size.
        size: u64,
    },
    /// A symbol or relocation table with an entry size this class does not use, or a size that
    /// is not a multiple of it.
    #[error("{section}: entry size {entsize} / size {size} invalid for this table")]
    BadTable {
        /// The section.
        section: SectionRef,
        /// `sh_entsize`.
        entsize: u64,
        /// `sh_size`.
        size: u64,
    },
    /// Two relocation sections apply to the same section, more than one symbol table, or two
    /// program sections of one name in an object with `.BTF.ext`.
    #[error("{section}: duplicate {what}")]
    Duplicate {
        /// The section.
        section: SectionRef,
        /// What is duplicated.
        what: &'static str,
    },
    /// A relocation on an executable section whose offset is not a multiple of 8.
    #[error("{section}: relocation {index} at offset {offset:#x} is not on an instruction boundary")]
    RelocUnaligned {
        /// The relocated section.
        section: SectionRef,
        /// Index in the relocation table.
        index: usize,
        /// `r_offset`.
        offset: u64,
    },
    /// A relocation whose field lies outside the relocated section.
    #[error("{section}: relocation {index} at offset {offset:#x} is outside the {size}-byte section")]
    RelocOutOfRange {
        /// The relocated section.
        section: SectionRef,
        /// Index in the relocation table.
        index: usize,
        /// `r_offset`.
        offset: u64,
        /// Section size.
        size: u64,
    },
    /// A relocation naming a symbol index past the symbol table.
    #[error("{section}: relocation {index} names symbol {symbol}, the table has {count}")]
    RelocSymbol {
        /// The relocated section.
        section: SectionRef,
        /// Index in the relocation table.
        index: usize,
        /// The symbol index.
        symbol: u32,
        /// Number of symbols.
        count: usize,
    },
    /// A malformed `.BTF` section.
    #[error("{section}: {error}")]
    Btf {
        /// The section.
        section: SectionRef,
        /// What is wrong.
        error: BtfError,
    },
    /// A malformed `.BTF.ext` section.
    #[error("{section}: {error}")]
    BtfExt {
        /// The section.
        section: SectionRef,
        /// What is wrong.
        error: BtfExtError,
    },
    /// A program index past [`crate::BpfObject::programs`].
    #[error("no program {index}")]
    NoProgram {
        /// The index.
        index: usize,
    },
    /// A rewrite of a program section was refused.
    #[error("rewriting {section}: {error}")]
    Rewrite {
        /// The program section.
        section: SectionRef,
        /// Why.
        error: RewriteError,
    },
    /// The output would not fit the file format's offset or size fields.
    #[error("output layout overflows: {what}")]
    LayoutOverflow {
        /// What overflowed.
        what: &'static str,
    },
}

impl ObjectError {
    pub(crate) fn elf(context: &'static str, e: object::read::Error) -> ObjectError {
        ObjectError::Elf { context, message: e.to_string() }
    }
}
