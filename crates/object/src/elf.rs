//! Class-independent view of the ELF structures, read with the `object` crate's low-level API,
//! and the byte-level encoders the writer uses.
//!
//! Everything is kept raw (every header field, every symbol field, `r_info` split exactly), so
//! encoding a parsed structure reproduces its bytes; this is what makes the identity round trip
//! byte-exact.

use crate::error::{ObjectError, SectionRef};
use bpfpatch_insn::Endian;
use object::read::elf::{FileHeader, Rel as _, Rela as _, SectionHeader as _, Sym as _};

/// `SHT_PROGBITS`.
pub const SHT_PROGBITS: u32 = 1;
/// `SHT_SYMTAB`.
pub const SHT_SYMTAB: u32 = 2;
/// `SHT_STRTAB`.
pub const SHT_STRTAB: u32 = 3;
/// `SHT_RELA`.
pub const SHT_RELA: u32 = 4;
/// `SHT_NOBITS`.
pub const SHT_NOBITS: u32 = 8;
/// `SHT_REL`.
pub const SHT_REL: u32 = 9;
/// `SHF_EXECINSTR`.
pub const SHF_EXECINSTR: u64 = 4;
/// `STT_NOTYPE`.
pub const STT_NOTYPE: u8 = 0;
/// `STT_FUNC`.
pub const STT_FUNC: u8 = 2;
/// `STT_SECTION`.
pub const STT_SECTION: u8 = 3;
/// `STB_GLOBAL`.
pub const STB_GLOBAL: u8 = 1;
/// `STB_WEAK`.
pub const STB_WEAK: u8 = 2;
/// `EM_BPF`.
pub const EM_BPF: u16 = 247;

/// One section header, all fields raw and widened to 64 bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    /// `sh_name`.
    pub name_off: u32,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_offset` in the input file.
    pub offset: u64,
    /// `sh_size` in the input file.
    pub size: u64,
    /// `sh_link`.
    pub link: u32,
    /// `sh_info`.
    pub info: u32,
    /// `sh_addralign`.
    pub addralign: u64,
    /// `sh_entsize`.
    pub entsize: u64,
}

impl SectionHeader {
    /// Whether the section occupies bytes in the file (not `SHT_NULL` / `SHT_NOBITS`).
    #[must_use]
    pub fn has_file_data(&self) -> bool {
        self.sh_type != 0 && self.sh_type != SHT_NOBITS
    }
}

/// One symbol, all fields raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// `st_name`.
    pub name_off: u32,
    /// The name, resolved in the linked string table (lossy UTF-8; empty when absent); an
    /// unnamed section symbol takes its section's name.
    pub name: String,
    /// `st_info` (binding << 4 | type).
    pub info: u8,
    /// `st_other` (visibility).
    pub other: u8,
    /// `st_shndx`.
    pub shndx: u16,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
}

impl Symbol {
    /// The symbol type (`STT_*`).
    #[must_use]
    pub const fn kind(&self) -> u8 {
        self.info & 0xf
    }

    /// The symbol binding (`STB_*`).
    #[must_use]
    pub const fn binding(&self) -> u8 {
        self.info >> 4
    }

    /// Whether this is a function symbol (`STT_FUNC`).
    #[must_use]
    pub const fn is_func(&self) -> bool {
        self.kind() == STT_FUNC
    }

    /// Whether this is a section symbol (`STT_SECTION`).
    #[must_use]
    pub const fn is_section(&self) -> bool {
        self.kind() == STT_SECTION
    }

    /// The index of the section the symbol is defined in, if it is an ordinary index.
    #[must_use]
    pub fn section(&self) -> Option<usize> {
        (self.shndx != 0 && self.shndx < 0xff00).then_some(usize::from(self.shndx))
    }
}

/// One relocation entry, raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawReloc {
    /// `r_offset`.
    pub offset: u64,
    /// Symbol index from `r_info`.
    pub sym: u32,
    /// Type from `r_info`.
    pub r_type: u32,
    /// `r_addend` (0 for REL).
    pub addend: i64,
}

/// The parsed ELF structure.
#[derive(Clone, Debug)]
pub struct Elf {
    /// ELFCLASS64.
    pub is_64: bool,
    /// Byte order.
    pub endian: Endian,
    /// `e_ehsize`.
    pub ehsize: u16,
    /// `e_shoff`.
    pub shoff: u64,
    /// Section headers.
    pub sections: Vec<SectionHeader>,
    /// Section names (lossy UTF-8).
    pub names: Vec<String>,
    /// Index of the symbol table, if any.
    pub symtab: Option<usize>,
    /// Symbols of the symbol table.
    pub symbols: Vec<Symbol>,
    /// Relocation entries per relocation section (index of the REL/RELA section, entries).
    pub relocs: Vec<(usize, Vec<RawReloc>)>,
}

impl Elf {
    /// Reference to section `index` for error messages.
    #[must_use]
    pub fn section_ref(&self, index: usize) -> SectionRef {
        SectionRef { index, name: self.names.get(index).cloned().unwrap_or_default() }
    }

    /// Parses an ELF file of either class and byte order.
    ///
    /// # Errors
    /// Typed errors for a malformed header, section table, symbol or relocation table.
    pub fn parse(data: &[u8]) -> Result<Elf, ObjectError> {
        let ident = data.get(..6).ok_or(ObjectError::Truncated {
            what: "ELF identification",
            offset: 0,
            size: 16,
            file_len: data.len() as u64,
        })?;
        if ident.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(ObjectError::Elf { context: "header", message: "not an ELF file".into() });
        }
        match ident[4] {
            1 => parse_class::<object::elf::FileHeader32<object::Endianness>>(data),
            2 => parse_class::<object::elf::FileHeader64<object::Endianness>>(data),
            c => Err(ObjectError::Elf { context: "header", message: format!("unknown ELF class {c}") }),
        }
    }
}

/// File-backed sections, the ELF header and the section header table must not share bytes: the
/// writer lays every section out on its own, so overlapping ones would multiply the output (and
/// the decoded programs) far beyond the input's size, and an unchanged object would not write
/// back identical. Empty and `SHT_NOBITS` sections occupy no bytes and may sit anywhere.
fn check_overlaps(elf: &Elf, table_size: u64) -> Result<(), ObjectError> {
    const HEADER: usize = usize::MAX;
    const TABLE: usize = usize::MAX - 1;
    let mut spans: Vec<(u64, u64, usize)> = elf
        .sections
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, h)| h.has_file_data() && h.size > 0)
        .map(|(i, h)| (h.offset, h.offset.saturating_add(h.size), i))
        .collect();
    spans.push((0, u64::from(elf.ehsize), HEADER));
    if elf.shoff != 0 {
        spans.push((elf.shoff, elf.shoff.saturating_add(table_size), TABLE));
    }
    spans.sort_unstable();
    let describe = |k: usize| match k {
        HEADER => "the ELF header".to_string(),
        TABLE => "the section header table".to_string(),
        i => elf.section_ref(i).to_string(),
    };
    let mut prev: Option<(u64, u64, usize)> = None;
    for &(start, end, k) in &spans {
        if let Some((pstart, pend, pk)) = prev.filter(|p| start < p.1) {
            // Report it on a section when one of the two is a section.
            let (s, other) = if k < TABLE { ((start, end, k), pk) } else { ((pstart, pend, pk), k) };
            if s.2 >= TABLE {
                let message = format!("{} overlaps {}", describe(s.2), describe(other));
                return Err(ObjectError::Elf { context: "section headers", message });
            }
            return Err(ObjectError::Overlap {
                section: elf.section_ref(s.2),
                offset: s.0,
                size: s.1 - s.0,
                other: describe(other),
            });
        }
        if prev.is_none_or(|p| end > p.1) {
            prev = Some((start, end, k));
        }
    }
    Ok(())
}

fn parse_class<H: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> Result<Elf, ObjectError> {
    let file_len = data.len() as u64;
    let hdr = H::parse(data).map_err(|e| ObjectError::elf("header", e))?;
    let e = hdr.endian().map_err(|e| ObjectError::elf("header", e))?;
    let endian = if hdr.is_big_endian() { Endian::Big } else { Endian::Little };
    let machine = hdr.e_machine(e).0;
    if machine != EM_BPF {
        return Err(ObjectError::NotBpf { machine });
    }
    if hdr.e_phnum(e) != 0 {
        return Err(ObjectError::Unsupported { what: "program headers in a relocatable BPF object".into() });
    }
    let ehsize = hdr.e_ehsize(e);
    let min_ehsize = if hdr.is_type_64() { 64 } else { 52 };
    if usize::from(ehsize) < min_ehsize || u64::from(ehsize) > file_len {
        return Err(ObjectError::Elf { context: "header", message: format!("invalid e_ehsize {ehsize}") });
    }
    let shoff: u64 = hdr.e_shoff(e).into();
    let shentsize = u64::from(hdr.e_shentsize(e));
    if shoff != 0 {
        // Check the table's extent before `object` does, for a precise error.
        let shnum = u64::from(hdr.e_shnum(e)).max(1);
        let size = shnum.saturating_mul(shentsize);
        if shoff.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(ObjectError::Truncated { what: "section header table", offset: shoff, size, file_len });
        }
    }
    let table = hdr.sections(e, data).map_err(|err| ObjectError::elf("section headers", err))?;
    let mut sections = Vec::with_capacity(table.len());
    let mut names = Vec::with_capacity(table.len());
    for sh in table.iter() {
        sections.push(SectionHeader {
            name_off: sh.sh_name(e),
            sh_type: sh.sh_type(e).0,
            flags: sh.sh_flags(e).0,
            addr: sh.sh_addr(e).into(),
            offset: sh.sh_offset(e).into(),
            size: sh.sh_size(e).into(),
            link: sh.sh_link(e),
            info: sh.sh_info(e),
            addralign: sh.sh_addralign(e).into(),
            entsize: sh.sh_entsize(e).into(),
        });
        let name = table.section_name(e, sh).map_err(|err| ObjectError::elf("section name", err))?;
        names.push(String::from_utf8_lossy(name).into_owned());
    }
    let mut elf = Elf {
        is_64: hdr.is_type_64(),
        endian,
        ehsize,
        shoff,
        sections,
        names,
        symtab: None,
        symbols: Vec::new(),
        relocs: Vec::new(),
    };
    if let Some(h) = elf.sections.first().filter(|h| h.sh_type != 0) {
        let message = format!("section 0 has type {} (must be SHT_NULL)", h.sh_type);
        return Err(ObjectError::Elf { context: "section headers", message });
    }
    for (i, sh) in elf.sections.iter().enumerate() {
        if sh.has_file_data() && sh.offset.checked_add(sh.size).is_none_or(|end| end > file_len) {
            return Err(ObjectError::SectionOutOfBounds {
                section: elf.section_ref(i),
                offset: sh.offset,
                size: sh.size,
                file_len,
            });
        }
    }
    check_overlaps(&elf, u64::from(hdr.e_shnum(e)).max(1).saturating_mul(shentsize))?;
    // The string tables names are read from are copied verbatim by the writer: they must be
    // SHT_STRTAB sections (an inactive or a rewritten section would not keep its bytes).
    let string_table = |elf: &Elf, index: usize, what: &'static str| match elf.sections.get(index) {
        Some(h) if index != 0 && h.sh_type != SHT_STRTAB => {
            Err(ObjectError::NotStringTable { section: elf.section_ref(index), sh_type: h.sh_type, what })
        }
        _ => Ok(()),
    };
    if let Ok(i) = hdr.shstrndx(e, data) {
        string_table(&elf, usize::try_from(i).unwrap_or(usize::MAX), "section names")?;
    }
    // Symbol table.
    let (sym_size, rel_size, rela_size) = if elf.is_64 { (24, 16, 24) } else { (16, 8, 12) };
    for (i, sh) in elf.sections.iter().enumerate() {
        let entsize = match sh.sh_type {
            SHT_SYMTAB => sym_size,
            SHT_REL => rel_size,
            SHT_RELA => rela_size,
            _ => continue,
        };
        if sh.entsize != entsize || sh.size % entsize != 0 {
            return Err(ObjectError::BadTable { section: elf.section_ref(i), entsize: sh.entsize, size: sh.size });
        }
        if sh.sh_type == SHT_SYMTAB && elf.symtab.is_some() {
            return Err(ObjectError::Duplicate { section: elf.section_ref(i), what: "symbol table" });
        }
        if sh.sh_type == SHT_SYMTAB {
            elf.symtab = Some(i);
        }
    }
    if let Some(st) = elf.symtab {
        string_table(&elf, usize::try_from(elf.sections[st].link).unwrap_or(usize::MAX), "symbol names")?;
        let symtab = table
            .symbol_table_by_index(e, data, object::read::SectionIndex(st))
            .map_err(|err| ObjectError::elf("symbol table", err))?;
        let strings = symtab.strings();
        elf.symbols.reserve_exact(symtab.len());
        for sym in symtab.iter() {
            // A name that does not resolve is kept as empty: the raw `st_name` is what is written.
            let name = sym.name(e, strings).map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
            let shndx = sym.st_shndx(e).0;
            // Section symbols are unnamed; they are known by their section's name.
            let name = match elf.names.get(usize::from(shndx)) {
                Some(sec) if name.is_empty() && sym.st_type() == object::elf::STT_SECTION => sec.clone(),
                _ => name,
            };
            elf.symbols.push(Symbol {
                name_off: sym.st_name(e),
                name,
                info: sym.st_info().0,
                other: sym.st_other().0,
                shndx,
                value: sym.st_value(e).into(),
                size: sym.st_size(e).into(),
            });
        }
    }
    for (i, sh) in table.iter().enumerate() {
        let entries = match sh.sh_type(e).0 {
            SHT_REL => {
                let rels: &[H::Rel] =
                    sh.data_as_array(e, data).map_err(|err| ObjectError::elf("relocation table", err))?;
                rels.iter()
                    .map(|r| RawReloc {
                        offset: r.r_offset(e).into(),
                        sym: r.r_sym(e),
                        r_type: r.r_type(e).0,
                        addend: 0,
                    })
                    .collect()
            }
            SHT_RELA => {
                let rels: &[H::Rela] =
                    sh.data_as_array(e, data).map_err(|err| ObjectError::elf("relocation table", err))?;
                rels.iter()
                    .map(|r| RawReloc {
                        offset: r.r_offset(e).into(),
                        sym: r.r_sym(e, false),
                        r_type: r.r_type(e, false).0,
                        addend: r.r_addend(e).into(),
                    })
                    .collect()
            }
            _ => continue,
        };
        elf.relocs.push((i, entries));
    }
    Ok(elf)
}

/// Appends integers in a given byte order and width.
#[derive(Debug)]
pub struct Out<'a> {
    /// The buffer.
    pub buf: &'a mut Vec<u8>,
    /// Byte order.
    pub endian: Endian,
}

impl Out<'_> {
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Appends a 16-bit value.
    pub fn u16(&mut self, v: u16) {
        match self.endian {
            Endian::Little => self.buf.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => self.buf.extend_from_slice(&v.to_be_bytes()),
        }
    }
    /// Appends a 32-bit value.
    pub fn u32(&mut self, v: u32) {
        match self.endian {
            Endian::Little => self.buf.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => self.buf.extend_from_slice(&v.to_be_bytes()),
        }
    }
    /// Appends a 64-bit value.
    pub fn u64(&mut self, v: u64) {
        match self.endian {
            Endian::Little => self.buf.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => self.buf.extend_from_slice(&v.to_be_bytes()),
        }
    }
    /// Appends an address-sized value (the low 32 bits for ELF32).
    #[allow(clippy::cast_possible_truncation)]
    pub fn word(&mut self, is_64: bool, v: u64) {
        if is_64 { self.u64(v) } else { self.u32(v as u32) }
    }
}

/// Whether a 64-bit field value fits the class's word.
#[must_use]
pub fn fits_word(is_64: bool, v: u64) -> bool {
    is_64 || u32::try_from(v).is_ok()
}

/// Encodes one section header.
pub fn encode_section_header(o: &mut Out<'_>, is_64: bool, h: &SectionHeader) {
    o.u32(h.name_off);
    o.u32(h.sh_type);
    o.word(is_64, h.flags);
    o.word(is_64, h.addr);
    o.word(is_64, h.offset);
    o.word(is_64, h.size);
    o.u32(h.link);
    o.u32(h.info);
    o.word(is_64, h.addralign);
    o.word(is_64, h.entsize);
}

/// Encodes one symbol.
#[allow(clippy::cast_possible_truncation)]
pub fn encode_symbol(o: &mut Out<'_>, is_64: bool, s: &Symbol) {
    o.u32(s.name_off);
    if is_64 {
        o.u8(s.info);
        o.u8(s.other);
        o.u16(s.shndx);
        o.u64(s.value);
        o.u64(s.size);
    } else {
        o.u32(s.value as u32);
        o.u32(s.size as u32);
        o.u8(s.info);
        o.u8(s.other);
        o.u16(s.shndx);
    }
}

/// Encodes one relocation entry (`rela` adds the explicit addend).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn encode_reloc(o: &mut Out<'_>, is_64: bool, rela: bool, r: &RawReloc) {
    if is_64 {
        o.u64(r.offset);
        o.u64((u64::from(r.sym) << 32) | u64::from(r.r_type));
        if rela {
            o.u64(r.addend as u64);
        }
    } else {
        o.u32(r.offset as u32);
        o.u32((r.sym << 8) | (r.r_type & 0xff));
        if rela {
            o.u32(r.addend as u32);
        }
    }
}
