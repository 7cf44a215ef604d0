//! The writer: re-encodes owned sections, copies the others, lays the file out.
//!
//! Layout rule: sections (and the section header table) keep their original file order. Each is
//! placed at the first offset at or after `max(end of the previous, original offset + shift so
//! far)` that differs from its original offset by a multiple of its alignment (so it stays
//! aligned), where the shift is how far the previous item moved. The bytes between two items
//! (padding) are copied from the input when the gap has its original length and zero-filled
//! otherwise. With no change every item lands on its original offset, so the output is the
//! input, byte for byte. Sections without file data (`SHT_NOBITS`) are shifted along with what
//! precedes them but never cause padding. Only power-of-two alignments up to 4096 are honoured,
//! so the output is at most the input plus the growth of the rewritten sections plus padding.

use crate::elf::{self, Out, RawReloc, SHT_RELA, SHT_SYMTAB};
use crate::error::ObjectError;
use crate::{BpfObject, section_bytes};
use bpfpatch_insn::slots_to_bytes;
use std::borrow::Cow;

const OVERFLOW: ObjectError = ObjectError::LayoutOverflow { what: "file offset" };

/// The alignment the layout honours: `sh_addralign` when it is a power of two up to 4096, else 1
/// (a hostile alignment must not make the output grow without bound).
fn effective_align(a: u64) -> u64 {
    if a.is_power_of_two() && a <= 4096 { a } else { 1 }
}

/// The first offset at or after `base` congruent to `old` modulo `a`: an item moves by a
/// multiple of its alignment, so an aligned item stays aligned and an unaligned one (in input
/// not made by clang) keeps its exact offset when nothing before it changed.
fn place(base: u64, old: u64, a: u64) -> Result<u64, ObjectError> {
    let a = a.max(1);
    let add = (old % a + a - base % a) % a;
    base.checked_add(add).ok_or(OVERFLOW)
}

impl BpfObject {
    /// New contents of every section (`None` for sections without file data).
    fn contents(&self) -> Result<Vec<Option<Cow<'_, [u8]>>>, ObjectError> {
        let e = self.elf.endian;
        let is_64 = self.elf.is_64;
        let mut out: Vec<Option<Cow<'_, [u8]>>> = self
            .elf
            .sections
            .iter()
            .map(|h| if h.has_file_data() { section_bytes(&self.data, h).map(Cow::Borrowed) } else { None })
            .collect();
        let enc_relocs = |rela: bool, relocs: &mut dyn Iterator<Item = RawReloc>| {
            let mut buf = Vec::new();
            let mut o = Out { buf: &mut buf, endian: e };
            for r in relocs {
                elf::encode_reloc(&mut o, is_64, rela, &r);
            }
            buf
        };
        for p in &self.programs {
            out[p.section] = Some(Cow::Owned(slots_to_bytes(&p.insns, p.endian)));
            if let Some(ri) = p.rel_section {
                let rela = self.elf.sections[ri].sh_type == SHT_RELA;
                let mut it = p.relocs.iter().map(|r| RawReloc {
                    offset: r.slot as u64 * 8,
                    sym: r.symbol,
                    r_type: r.r_type,
                    addend: r.addend,
                });
                out[ri] = Some(Cow::Owned(enc_relocs(rela, &mut it)));
            }
        }
        if let Some(st) = self.elf.symtab {
            let mut buf = Vec::with_capacity(self.elf.symbols.len() * 24);
            let mut o = Out { buf: &mut buf, endian: e };
            for s in &self.elf.symbols {
                if !elf::fits_word(is_64, s.value) || !elf::fits_word(is_64, s.size) {
                    return Err(ObjectError::LayoutOverflow { what: "symbol value" });
                }
                elf::encode_symbol(&mut o, is_64, s);
            }
            debug_assert_eq!(self.elf.sections[st].sh_type, SHT_SYMTAB);
            out[st] = Some(Cow::Owned(buf));
        }
        for d in self.dwarf.sections.iter().filter(|d| d.dirty) {
            out[d.index] = Some(Cow::Owned(d.bytes.clone()));
            if let Some(ri) = d.rel {
                out[ri] = Some(Cow::Owned(enc_relocs(false, &mut d.relocs.iter().copied())));
            }
        }
        if let Some((xi, ext)) = &self.btf_ext {
            if ext.dirty {
                let (bytes, relocs) =
                    ext.encode().map_err(|error| ObjectError::BtfExt { section: self.elf.section_ref(*xi), error })?;
                out[*xi] = Some(Cow::Owned(bytes));
                if let Some(ri) = self.btf_ext_rel {
                    let rela = self.elf.sections[ri].sh_type == SHT_RELA;
                    out[ri] = Some(Cow::Owned(enc_relocs(rela, &mut relocs.into_iter())));
                }
            } else if let Some(ri) = self.btf_ext_rel {
                let rela = self.elf.sections[ri].sh_type == SHT_RELA;
                out[ri] = Some(Cow::Owned(enc_relocs(rela, &mut ext.raw_relocs())));
            }
        }
        Ok(out)
    }

    /// Writes the object.
    ///
    /// Owned sections are re-encoded from the model, every other section is copied; see the
    /// crate documentation. Without changes the output equals the input byte for byte.
    ///
    /// # Errors
    /// [`ObjectError::BtfExt`] when `.BTF.ext` must be re-encoded but a `.rel.BTF.ext` entry is
    /// not on a record; [`ObjectError::LayoutOverflow`] when an offset, size or symbol value no
    /// longer fits the ELF class.
    pub fn write(&self) -> Result<Vec<u8>, ObjectError> {
        let mut contents = self.contents()?;
        let appended = self.xlated_section(&mut contents)?;
        let is_64 = self.elf.is_64;
        let e = self.elf.endian;
        let data = &self.data;
        let ehsize = u64::from(self.elf.ehsize);
        let nsec = self.elf.sections.len();
        let nsec_out = nsec + usize::from(appended.is_some());
        let shentsize: u64 = if is_64 { 64 } else { 40 };
        // Items in original file order: (old offset, section index or None for the header table).
        let mut items: Vec<(u64, Option<usize>)> = (1..nsec)
            .filter(|&i| self.elf.sections[i].sh_type != 0)
            .map(|i| (self.elf.sections[i].offset, Some(i)))
            .collect();
        if self.elf.shoff != 0 {
            items.push((self.elf.shoff, None));
        }
        // At equal offsets, empty items first (they were placed before the item that follows).
        let empty = |i: Option<usize>| i.is_some_and(|i| contents[i].as_ref().is_none_or(|c| c.is_empty()));
        items.sort_by_key(|&(off, i)| (off, !empty(i), i.map_or(usize::MAX, |i| i)));

        let mut out = Vec::with_capacity(data.len() + data.len() / 4);
        out.extend_from_slice(data.get(..usize::try_from(ehsize).map_err(|_| OVERFLOW)?).unwrap_or_default());
        let mut new_offsets = vec![0u64; nsec];
        let mut new_sizes: Vec<u64> = self.elf.sections.iter().map(|h| h.size).collect();
        let mut old_cursor = ehsize;
        let mut delta: i128 = 0;
        let mut shoff_new = 0u64;
        for &(old_off, idx) in &items {
            let (align, size, bytes) = match idx {
                Some(i) => {
                    let h = &self.elf.sections[i];
                    match &contents[i] {
                        Some(c) => (effective_align(h.addralign), c.len() as u64, Some(c)),
                        None => {
                            // No file data (SHT_NOBITS): shifted along, never padded for, by a
                            // multiple of its alignment like every item (so an unaligned offset
                            // survives an unchanged write).
                            let shifted = u64::try_from(i128::from(old_off) + delta).unwrap_or(old_off);
                            new_offsets[i] = place(shifted, old_off, effective_align(h.addralign)).unwrap_or(old_off);
                            continue;
                        }
                    }
                }
                None => (if is_64 { 8 } else { 4 }, nsec_out as u64 * shentsize, None),
            };
            if size == 0
                && let Some(i) = idx
            {
                // An empty section occupies no bytes: it keeps its place relative to what
                // precedes it and neither pads nor moves what follows (even when its offset
                // lies inside an earlier item, as in a hostile header).
                new_offsets[i] = u64::try_from(i128::from(old_off) + delta).unwrap_or(old_off);
                new_sizes[i] = 0;
                continue;
            }
            let cursor = out.len() as u64;
            let shifted = i128::from(old_off) + delta;
            let base =
                if shifted > i128::from(cursor) { u64::try_from(shifted).map_err(|_| OVERFLOW)? } else { cursor };
            let new_off = place(base, old_off, align)?;
            // Padding: the original gap when it has its original length, zeros otherwise.
            let gap = new_off - cursor;
            let old_gap = old_off.checked_sub(old_cursor);
            let copied = match old_gap {
                Some(g) if g == gap => usize::try_from(old_cursor)
                    .ok()
                    .zip(usize::try_from(old_off).ok())
                    .and_then(|(a, b)| data.get(a..b)),
                _ => None,
            };
            match copied {
                Some(b) => out.extend_from_slice(b),
                None => out.resize(out.len() + usize::try_from(gap).map_err(|_| OVERFLOW)?, 0),
            }
            delta = i128::from(new_off) - i128::from(old_off);
            match idx {
                Some(i) => {
                    new_offsets[i] = new_off;
                    if let Some(b) = bytes {
                        out.extend_from_slice(b);
                        new_sizes[i] = size;
                    }
                    old_cursor = old_off.saturating_add(self.elf.sections[i].size).max(old_cursor);
                }
                None => {
                    shoff_new = new_off;
                    out.resize(out.len() + usize::try_from(size).map_err(|_| OVERFLOW)?, 0);
                    old_cursor = old_off.saturating_add(size).max(old_cursor);
                }
            }
        }
        // Trailing bytes after the last item.
        if let Some(tail) = usize::try_from(old_cursor).ok().and_then(|c| data.get(c..)) {
            out.extend_from_slice(tail);
        }
        // An appended section (the xlated marker) goes after everything else.
        let appended = appended.map(|mut a| {
            out.resize(out.len().next_multiple_of(4), 0);
            a.header.offset = out.len() as u64;
            out.extend_from_slice(&a.contents);
            a.header
        });
        // Section headers.
        if self.elf.shoff != 0 {
            let mut hdrs = Vec::with_capacity(nsec_out * 64);
            let mut o = Out { buf: &mut hdrs, endian: e };
            for (i, h) in self.elf.sections.iter().enumerate() {
                let mut h = h.clone();
                if i != 0 && h.sh_type != 0 {
                    h.offset = new_offsets[i];
                    h.size = new_sizes[i];
                }
                if !elf::fits_word(is_64, h.offset) || !elf::fits_word(is_64, h.size) {
                    return Err(OVERFLOW);
                }
                elf::encode_section_header(&mut o, is_64, &h);
            }
            if let Some(h) = &appended {
                if !elf::fits_word(is_64, h.offset) {
                    return Err(OVERFLOW);
                }
                elf::encode_section_header(&mut o, is_64, h);
                // e_shnum (checked below 0xff00 by `xlated_section`).
                let mut n = Vec::with_capacity(2);
                Out { buf: &mut n, endian: e }.u16(u16::try_from(nsec_out).map_err(|_| OVERFLOW)?);
                let at = if is_64 { 0x3c } else { 0x30 };
                out.get_mut(at..at + 2).ok_or(OVERFLOW)?.copy_from_slice(&n);
            }
            let at = usize::try_from(shoff_new).map_err(|_| OVERFLOW)?;
            out.get_mut(at..at + hdrs.len()).ok_or(OVERFLOW)?.copy_from_slice(&hdrs);
        }
        // e_shoff.
        let mut field = Vec::with_capacity(8);
        if !elf::fits_word(is_64, shoff_new) {
            return Err(OVERFLOW);
        }
        Out { buf: &mut field, endian: e }.word(is_64, shoff_new);
        let at = if is_64 { 0x28 } else { 0x20 };
        out.get_mut(at..at + field.len()).ok_or(OVERFLOW)?.copy_from_slice(&field);
        Ok(out)
    }
}
