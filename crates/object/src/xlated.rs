//! The xlated marker: how an output of `bpfpatch rewrite --xlated` (the kernel's post-verifier
//! form, with kernel-internal encodings) says what it is.
//!
//! - An ELF object carries a note section [`XLATED_SECTION`] (`SHT_NOTE`, owner `bpfpatch`,
//!   type [`NT_BPFPATCH_XLATED`]), appended after every other section so that no section or
//!   symbol index changes. [`BpfObject::mark_xlated`] asks the writer to add it (once: an object
//!   already marked keeps its one note), [`BpfObject::is_xlated`] reads it.
//! - A bare image starts with the marker slot [`RAW_XLATED_MAGIC`], whose opcode byte is 0 (an
//!   invalid opcode for every loader, in both byte orders): handed to a kernel, the image is
//!   rejected at its first slot. [`strip_raw_marker`] recognises it.
//!
//! Tools that know the marker (`disasm`, `check`) accept kernel-internal forms in a marked
//! input without being told, and `bpfpatch load` refuses it.

use crate::elf::{Out, SectionHeader};
use crate::error::ObjectError;
use crate::{BpfObject, Endian};
use std::borrow::Cow;

/// Name of the note section that marks an xlated object.
pub const XLATED_SECTION: &str = ".bpfpatch.xlated";

/// Owner name of the note.
pub const NOTE_OWNER: &str = "bpfpatch";

/// Note type of the marker (`XLAT` in ASCII).
pub const NT_BPFPATCH_XLATED: u32 = 0x584c_4154;

/// The first 8 bytes of a marked bare image: opcode 0 (`BPF_LD | BPF_W | BPF_IMM`, which no
/// loader accepts), then `xlated` and a zero byte. Not an instruction of the program.
pub const RAW_XLATED_MAGIC: [u8; 8] = *b"\0xlated\0";

/// The note's description: what the object is, for `readelf -n` readers.
const NOTE_DESC: &[u8] = b"kernel-internal (xlated) form; not loadable\0";

/// `SHT_NOTE`.
const SHT_NOTE: u32 = 7;

/// The program slots of a bare image without its marker, if it has one.
#[must_use]
pub fn strip_raw_marker(image: &[u8]) -> Option<&[u8]> {
    image.strip_prefix(&RAW_XLATED_MAGIC[..])
}

/// A bare image with the marker slot in front.
#[must_use]
pub fn add_raw_marker(image: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(image.len() + 8);
    v.extend_from_slice(&RAW_XLATED_MAGIC);
    v.extend_from_slice(strip_raw_marker(image).unwrap_or(image));
    v
}

/// The note section's contents in byte order `e` (ELF note: namesz, descsz, type, name and
/// description each padded to 4 bytes).
fn note(e: Endian) -> Vec<u8> {
    let pad4 = |v: &mut Vec<u8>| v.resize(v.len().next_multiple_of(4), 0);
    let mut buf = Vec::new();
    let mut o = Out { buf: &mut buf, endian: e };
    #[allow(clippy::cast_possible_truncation)]
    {
        o.u32(NOTE_OWNER.len() as u32 + 1);
        o.u32(NOTE_DESC.len() as u32);
    }
    o.u32(NT_BPFPATCH_XLATED);
    buf.extend_from_slice(NOTE_OWNER.as_bytes());
    buf.push(0);
    pad4(&mut buf);
    buf.extend_from_slice(NOTE_DESC);
    pad4(&mut buf);
    buf
}

/// What the writer adds for a pending marker: the section's header (offset still to place) and
/// contents.
pub(crate) struct Appended {
    pub header: SectionHeader,
    pub contents: Vec<u8>,
}

impl BpfObject {
    /// Whether the object is marked xlated (it has the [`XLATED_SECTION`] note, or
    /// [`BpfObject::mark_xlated`] asked for one).
    #[must_use]
    pub fn is_xlated(&self) -> bool {
        self.mark_xlated || self.elf.names.iter().any(|n| n == XLATED_SECTION)
    }

    /// Marks the object xlated: [`BpfObject::write`] appends the [`XLATED_SECTION`] note (and
    /// its name to the section-name string table). Nothing changes for an object already marked.
    pub fn mark_xlated(&mut self) {
        if !self.is_xlated() {
            self.mark_xlated = true;
        }
    }

    /// `e_shstrndx` of the input (`SHN_XINDEX` resolved through section 0's `sh_link`).
    fn shstrndx(&self) -> Option<usize> {
        let at = if self.elf.is_64 { 0x3e } else { 0x32 };
        let b: [u8; 2] = self.data.get(at..at + 2)?.try_into().ok()?;
        let v = match self.elf.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        };
        let i = if v == 0xffff { self.elf.sections.first()?.link as usize } else { usize::from(v) };
        (i != 0 && i < self.elf.sections.len()).then_some(i)
    }

    /// For a pending marker: appends the section's name to the section-name string table in
    /// `contents` and returns the section to append; `None` when nothing is pending.
    ///
    /// # Errors
    /// [`ObjectError::Unsupported`] for an object without a section-name string table or with
    /// too many sections for `e_shnum`.
    pub(crate) fn xlated_section(
        &self,
        contents: &mut [Option<Cow<'_, [u8]>>],
    ) -> Result<Option<Appended>, ObjectError> {
        if !self.mark_xlated {
            return Ok(None);
        }
        let unsupported = |what: &str| ObjectError::Unsupported { what: format!("xlated marker: {what}") };
        if self.elf.shoff == 0 {
            return Err(unsupported("no section header table"));
        }
        if self.elf.sections.len() + 1 >= 0xff00 {
            return Err(unsupported("too many sections for e_shnum"));
        }
        let strtab = self.shstrndx().ok_or_else(|| unsupported("no section-name string table"))?;
        let slot = contents.get_mut(strtab).ok_or_else(|| unsupported("no section-name string table"))?;
        let mut names = slot.as_deref().map(<[u8]>::to_vec).ok_or_else(|| unsupported("empty string table"))?;
        let name_off = u32::try_from(names.len()).map_err(|_| unsupported("string table too large"))?;
        names.extend_from_slice(XLATED_SECTION.as_bytes());
        names.push(0);
        *slot = Some(Cow::Owned(names));
        let contents = note(self.elf.endian);
        let header = SectionHeader {
            name_off,
            sh_type: SHT_NOTE,
            flags: 0,
            addr: 0,
            offset: 0,
            size: contents.len() as u64,
            link: 0,
            info: 0,
            addralign: 4,
            entsize: 0,
        };
        Ok(Some(Appended { header, contents }))
    }
}
