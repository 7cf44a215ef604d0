//! The `.BTF.ext` section: func_info, line_info and CO-RE relocation records, and the
//! relocations clang puts on their `insn_off` fields (`.rel.BTF.ext`).
//!
//! Layout (all integers in the section's byte order, detected from the magic):
//! header `{magic u16, version u8, flags u8, hdr_len u32, func_info_off, func_info_len,
//! line_info_off, line_info_len[, core_relo_off, core_relo_len]}`; each area, at
//! `hdr_len + *_off`, is `rec_size u32` then blocks `{sec_name_off u32, num_info u32,
//! records[num_info]}`. `insn_off` is in bytes from the start of the section named by
//! `sec_name_off` (a `.BTF` string).
//!
//! Invariants: every parsed `insn_off` is a multiple of 8; record bytes beyond the known fields
//! (a `rec_size` above the minimum) are kept and written back. [`BtfExt::encode`] is canonical
//! (areas contiguous in the order func, line, core, as LLVM emits them) and reproduces clang's
//! output exactly; the writer still emits the original bytes while nothing was changed
//! (`dirty` is set only by the rewrite path).

use crate::btf::{Btf, magic_endian, rd32};
use crate::elf::{Out, RawReloc};
use crate::error::{BtfExtError, InfoKind};
use bpfpatch_insn::Endian;

/// A `bpf_func_info` record: a subprogram start and its BTF `FUNC` type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncInfo {
    /// Byte offset of the subprogram's first instruction in its section.
    pub insn_off: u32,
    /// BTF type id of the `FUNC`.
    pub type_id: u32,
    extra: Vec<u8>,
    rel: Option<usize>,
}

/// A `bpf_line_info` record: the source line of the instruction at `insn_off`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineInfo {
    /// Byte offset of the instruction in its section.
    pub insn_off: u32,
    /// `.BTF` string offset of the file name.
    pub file_name_off: u32,
    /// `.BTF` string offset of the line's source text.
    pub line_off: u32,
    /// `line << 10 | column`.
    pub line_col: u32,
    extra: Vec<u8>,
    rel: Option<usize>,
}

impl LineInfo {
    /// The line number.
    #[must_use]
    pub const fn line(&self) -> u32 {
        self.line_col >> 10
    }

    /// The column.
    #[must_use]
    pub const fn column(&self) -> u32 {
        self.line_col & 0x3ff
    }
}

/// A `bpf_core_relo` record: a CO-RE relocation of the instruction at `insn_off`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreRelo {
    /// Byte offset of the relocated instruction in its section.
    pub insn_off: u32,
    /// BTF type id of the root type.
    pub type_id: u32,
    /// `.BTF` string offset of the access string (`"0:1:2"`).
    pub access_str_off: u32,
    /// `enum bpf_core_relo_kind`.
    pub kind: u32,
    extra: Vec<u8>,
    rel: Option<usize>,
}

/// What the three record types share.
pub trait Record: Clone {
    /// The kind of record.
    const KIND: InfoKind;
    /// Byte offset of the instruction the record is about.
    fn insn_off(&self) -> u32;
    /// Sets it.
    fn set_insn_off(&mut self, v: u32);
    /// The `.rel.BTF.ext` entry on its `insn_off`, if any (index into the parsed list).
    fn rel(&self) -> Option<usize>;
    /// Sets it.
    fn set_rel(&mut self, r: Option<usize>);
    /// Extra bytes beyond the known fields.
    fn extra(&self) -> &[u8];
    /// Parses from `b` (at least the minimum record size) with `extra` following bytes.
    fn read(b: &[u8], e: Endian, extra: Vec<u8>) -> Self;
    /// Encodes the known fields.
    fn write(&self, o: &mut Out<'_>);
}

macro_rules! record_common {
    () => {
        fn insn_off(&self) -> u32 {
            self.insn_off
        }
        fn set_insn_off(&mut self, v: u32) {
            self.insn_off = v;
        }
        fn rel(&self) -> Option<usize> {
            self.rel
        }
        fn set_rel(&mut self, r: Option<usize>) {
            self.rel = r;
        }
        fn extra(&self) -> &[u8] {
            &self.extra
        }
    };
}

fn w(b: &[u8], i: usize, e: Endian) -> u32 {
    rd32(b, i * 4, e).unwrap_or(0)
}

impl Record for FuncInfo {
    const KIND: InfoKind = InfoKind::FuncInfo;
    record_common!();
    fn read(b: &[u8], e: Endian, extra: Vec<u8>) -> Self {
        FuncInfo { insn_off: w(b, 0, e), type_id: w(b, 1, e), extra, rel: None }
    }
    fn write(&self, o: &mut Out<'_>) {
        o.u32(self.insn_off);
        o.u32(self.type_id);
    }
}

impl Record for LineInfo {
    const KIND: InfoKind = InfoKind::LineInfo;
    record_common!();
    fn read(b: &[u8], e: Endian, extra: Vec<u8>) -> Self {
        LineInfo {
            insn_off: w(b, 0, e),
            file_name_off: w(b, 1, e),
            line_off: w(b, 2, e),
            line_col: w(b, 3, e),
            extra,
            rel: None,
        }
    }
    fn write(&self, o: &mut Out<'_>) {
        o.u32(self.insn_off);
        o.u32(self.file_name_off);
        o.u32(self.line_off);
        o.u32(self.line_col);
    }
}

impl Record for CoreRelo {
    const KIND: InfoKind = InfoKind::CoreRelo;
    record_common!();
    fn read(b: &[u8], e: Endian, extra: Vec<u8>) -> Self {
        CoreRelo {
            insn_off: w(b, 0, e),
            type_id: w(b, 1, e),
            access_str_off: w(b, 2, e),
            kind: w(b, 3, e),
            extra,
            rel: None,
        }
    }
    fn write(&self, o: &mut Out<'_>) {
        o.u32(self.insn_off);
        o.u32(self.type_id);
        o.u32(self.access_str_off);
        o.u32(self.kind);
    }
}

/// The records of one section in one area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoBlock<T> {
    /// `.BTF` string offset of the section name.
    pub sec_name_off: u32,
    /// The section name, if it resolves in `.BTF`'s string table.
    pub sec_name: Option<String>,
    /// The records, in file order.
    pub records: Vec<T>,
}

/// One area (func_info, line_info or core_relo).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoArea<T> {
    /// The record size in bytes (from the file; the minimum for an absent area).
    pub rec_size: u32,
    /// Whether the file held just the record size and no blocks (re-emitted as such).
    header_only: bool,
    /// Blocks in file order.
    pub blocks: Vec<InfoBlock<T>>,
}

impl<T: Record> InfoArea<T> {
    fn empty() -> Self {
        InfoArea { rec_size: T::KIND.min_record_size(), header_only: false, blocks: Vec::new() }
    }

    /// The block for section `name`, if any.
    #[must_use]
    pub fn block(&self, name: &str) -> Option<&InfoBlock<T>> {
        self.blocks.iter().find(|b| b.sec_name.as_deref() == Some(name))
    }

    pub(crate) fn block_mut(&mut self, name: &str) -> Option<&mut InfoBlock<T>> {
        self.blocks.iter_mut().find(|b| b.sec_name.as_deref() == Some(name))
    }

    /// Number of records over all blocks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.blocks.iter().map(|b| b.records.len()).sum()
    }

    /// Whether the area holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.blocks.iter().all(|b| b.records.is_empty())
    }

    fn encode(&self, o: &mut Out<'_>, relocs: &[(RawReloc, bool)], out_relocs: &mut Vec<RawReloc>) {
        let blocks: Vec<&InfoBlock<T>> = self.blocks.iter().filter(|b| !b.records.is_empty()).collect();
        if blocks.is_empty() && !self.header_only {
            return;
        }
        o.u32(self.rec_size);
        let extra_len = usize::try_from(self.rec_size.saturating_sub(T::KIND.min_record_size())).unwrap_or(0);
        for b in blocks {
            o.u32(b.sec_name_off);
            o.u32(u32::try_from(b.records.len()).unwrap_or(u32::MAX));
            for r in &b.records {
                if let Some((raw, true)) = r.rel().and_then(|i| relocs.get(i)) {
                    let at = o.buf.len() as u64;
                    out_relocs.push(RawReloc { offset: at, ..*raw });
                }
                r.write(o);
                let ex = r.extra();
                let n = ex.len().min(extra_len);
                o.buf.extend_from_slice(&ex[..n]);
                o.buf.resize(o.buf.len() + (extra_len - n), 0);
            }
        }
    }
}

/// A parsed `.BTF.ext` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfExt {
    endian: Endian,
    version: u8,
    flags: u8,
    hdr_len: u32,
    has_core: bool,
    extra_header: Vec<u8>,
    /// func_info records.
    pub(crate) func_info: InfoArea<FuncInfo>,
    /// line_info records.
    pub(crate) line_info: InfoArea<LineInfo>,
    /// CO-RE relocation records.
    pub(crate) core_relo: InfoArea<CoreRelo>,
    raw: Vec<u8>,
    /// Set when records were changed; the writer then re-encodes.
    pub(crate) dirty: bool,
    /// Entries of `.rel.BTF.ext`, each with whether it sits on a record's `insn_off`.
    relocs: Vec<(RawReloc, bool)>,
}

fn parse_area<T: Record>(b: &[u8], e: Endian, hdr_len: u32, off: u32, len: u32) -> Result<InfoArea<T>, BtfExtError> {
    let kind = T::KIND;
    let sec_len = b.len() as u64;
    if len == 0 {
        return Ok(InfoArea::empty());
    }
    let start = u64::from(hdr_len) + u64::from(off);
    let end = start + u64::from(len);
    if end > sec_len {
        return Err(BtfExtError::AreaOutOfBounds { kind, offset: start, size: u64::from(len), len: sec_len });
    }
    // start < end <= b.len(): these conversions are exact.
    let (start, end) = (usize::try_from(start).unwrap_or(0), usize::try_from(end).unwrap_or(0));
    let rec_size = rd32(b, start, e).filter(|_| end - start >= 4).ok_or(BtfExtError::Truncated {
        what: "record size",
        offset: start as u64,
        need: 4,
        len: sec_len,
    })?;
    if rec_size < kind.min_record_size() || rec_size % 4 != 0 {
        return Err(BtfExtError::BadRecordSize { kind, size: rec_size, offset: start as u64 });
    }
    let rs = rec_size as usize;
    let min = kind.min_record_size() as usize;
    let mut area = InfoArea { rec_size, header_only: end - start == 4, blocks: Vec::new() };
    let mut pos = start + 4;
    while pos < end {
        let block = area.blocks.len();
        if end - pos < 8 {
            return Err(BtfExtError::BlockOverrun {
                kind,
                block,
                offset: pos as u64,
                num: 0,
                rec_size,
                end: end as u64,
            });
        }
        let sec_name_off = rd32(b, pos, e).unwrap_or(0);
        let num = rd32(b, pos + 4, e).unwrap_or(0);
        if num == 0 {
            return Err(BtfExtError::EmptyBlock { kind, block, offset: pos as u64 });
        }
        let need = u64::from(num) * u64::from(rec_size);
        if need > (end - pos - 8) as u64 {
            return Err(BtfExtError::BlockOverrun { kind, block, offset: pos as u64, num, rec_size, end: end as u64 });
        }
        let mut records = Vec::with_capacity(num as usize);
        let mut r = pos + 8;
        for record in 0..num as usize {
            let bytes = &b[r..r + rs];
            let rec = T::read(&bytes[..min], e, bytes[min..].to_vec());
            if rec.insn_off() % 8 != 0 {
                return Err(BtfExtError::UnalignedInsnOff {
                    kind,
                    block,
                    record,
                    offset: r as u64,
                    insn_off: rec.insn_off(),
                });
            }
            records.push(rec);
            r += rs;
        }
        area.blocks.push(InfoBlock { sec_name_off, sec_name: None, records });
        pos = r;
    }
    Ok(area)
}

/// Offsets of every record's `insn_off` field, as (offset, area, block, record), sorted.
fn field_positions(ext: &BtfExt) -> Vec<(u64, InfoKind, usize, usize)> {
    let mut v = Vec::new();
    let mut walk = |kind: InfoKind, off: u32, len: u32, area_blocks: &[usize], rec_size: u32| {
        if len == 0 {
            return;
        }
        let mut pos = u64::from(ext.hdr_len) + u64::from(off) + 4;
        for (bi, &n) in area_blocks.iter().enumerate() {
            pos += 8;
            for ri in 0..n {
                v.push((pos, kind, bi, ri));
                pos += u64::from(rec_size);
            }
        }
    };
    let f = |i| rd32(&ext.raw, i, ext.endian).unwrap_or(0);
    walk(InfoKind::FuncInfo, f(8), f(12), &counts(&ext.func_info.blocks), ext.func_info.rec_size);
    walk(InfoKind::LineInfo, f(16), f(20), &counts(&ext.line_info.blocks), ext.line_info.rec_size);
    if ext.has_core {
        walk(InfoKind::CoreRelo, f(24), f(28), &counts(&ext.core_relo.blocks), ext.core_relo.rec_size);
    }
    v.sort_unstable_by_key(|x| x.0);
    v
}

fn counts<T>(blocks: &[InfoBlock<T>]) -> Vec<usize> {
    blocks.iter().map(|b| b.records.len()).collect()
}

/// Marks record `ri` of block `bi` as carrying relocation `i`; false if it already carries one.
fn attach<T: Record>(area: &mut InfoArea<T>, bi: usize, ri: usize, i: usize) -> bool {
    match area.blocks.get_mut(bi).and_then(|b| b.records.get_mut(ri)) {
        Some(r) if r.rel().is_none() => {
            r.set_rel(Some(i));
            true
        }
        _ => false,
    }
}

impl BtfExt {
    /// Parses a `.BTF.ext` section; section names resolve through `btf`'s strings when given.
    ///
    /// # Errors
    /// A [`BtfExtError`] naming the byte offset: truncation, bad magic/version/header length,
    /// areas outside the section, bad record sizes, overrunning or empty blocks, unaligned
    /// `insn_off`.
    pub fn parse(b: &[u8], btf: Option<&Btf>) -> Result<BtfExt, BtfExtError> {
        let len = b.len() as u64;
        if b.len() < 8 {
            return Err(BtfExtError::Truncated { what: "header", offset: 0, need: 8, len });
        }
        let e = magic_endian(b).map_err(|magic| BtfExtError::BadMagic { magic })?;
        let version = b[2];
        if version != 1 {
            return Err(BtfExtError::BadVersion { version });
        }
        let hdr_len = rd32(b, 4, e).unwrap_or(0);
        if hdr_len < 24 || u64::from(hdr_len) > len {
            return Err(BtfExtError::BadHeaderLen { hdr_len, len });
        }
        let f = |i| rd32(b, i, e).unwrap_or(0);
        let has_core = hdr_len >= 32;
        let known = if has_core { 32 } else { 24 };
        let func_info = parse_area(b, e, hdr_len, f(8), f(12))?;
        let line_info = parse_area(b, e, hdr_len, f(16), f(20))?;
        let core_relo = if has_core { parse_area(b, e, hdr_len, f(24), f(28))? } else { InfoArea::empty() };
        let mut ext = BtfExt {
            endian: e,
            version,
            flags: b[3],
            hdr_len,
            has_core,
            extra_header: b[known..hdr_len as usize].to_vec(),
            func_info,
            line_info,
            core_relo,
            raw: b.to_vec(),
            dirty: false,
            relocs: Vec::new(),
        };
        if let Some(btf) = btf {
            let name = |off| btf.string(off).ok();
            ext.func_info.blocks.iter_mut().for_each(|bl| bl.sec_name = name(bl.sec_name_off));
            ext.line_info.blocks.iter_mut().for_each(|bl| bl.sec_name = name(bl.sec_name_off));
            ext.core_relo.blocks.iter_mut().for_each(|bl| bl.sec_name = name(bl.sec_name_off));
        }
        Ok(ext)
    }

    /// Attaches the entries of `.rel.BTF.ext`: each one on a record's `insn_off` follows that
    /// record through rewrites; others are kept only while the section is not re-encoded.
    pub(crate) fn attach_relocs(&mut self, relocs: &[RawReloc]) {
        let pos = field_positions(self);
        self.relocs = Vec::with_capacity(relocs.len());
        for (i, r) in relocs.iter().enumerate() {
            let hit = pos.binary_search_by_key(&r.offset, |p| p.0).ok().and_then(|k| pos.get(k));
            let attached = match hit {
                Some(&(_, InfoKind::FuncInfo, bi, ri)) => attach(&mut self.func_info, bi, ri, i),
                Some(&(_, InfoKind::LineInfo, bi, ri)) => attach(&mut self.line_info, bi, ri, i),
                Some(&(_, InfoKind::CoreRelo, bi, ri)) => attach(&mut self.core_relo, bi, ri, i),
                None => false,
            };
            self.relocs.push((*r, attached));
        }
    }

    /// Byte order of the section.
    #[must_use]
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The header's version, flags and length.
    #[must_use]
    pub fn header(&self) -> (u8, u8, u32) {
        (self.version, self.flags, self.hdr_len)
    }

    /// func_info records, per section.
    #[must_use]
    pub fn func_info(&self) -> &InfoArea<FuncInfo> {
        &self.func_info
    }

    /// line_info records, per section.
    #[must_use]
    pub fn line_info(&self) -> &InfoArea<LineInfo> {
        &self.line_info
    }

    /// CO-RE relocation records, per section (empty when the header has no core_relo fields).
    #[must_use]
    pub fn core_relo(&self) -> &InfoArea<CoreRelo> {
        &self.core_relo
    }

    /// The section bytes as parsed.
    #[must_use]
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Whether a program's records were replaced since parsing (a rewrite of a program with
    /// `.BTF.ext` records sets it even when the records come out the same); the section is then
    /// encoded from the records, which gives back the same bytes for unchanged records.
    #[must_use]
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Index and `r_offset` of each `.rel.BTF.ext` entry that is not on a record's `insn_off`
    /// (so [`BtfExt::encode`] refuses the section).
    pub(crate) fn unattached_relocs(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.relocs.iter().enumerate().filter(|(_, r)| !r.1).map(|(i, r)| (i, r.0.offset))
    }

    /// The `.rel.BTF.ext` entries as parsed.
    pub(crate) fn raw_relocs(&self) -> impl Iterator<Item = RawReloc> + '_ {
        self.relocs.iter().map(|r| r.0)
    }

    /// Encodes the section canonically, with the `.rel.BTF.ext` entries that follow the records.
    ///
    /// # Errors
    /// [`BtfExtError::UnattachedReloc`] when a `.rel.BTF.ext` entry is not on a record's
    /// `insn_off` (its new position is unknown).
    pub fn encode(&self) -> Result<(Vec<u8>, Vec<RawReloc>), BtfExtError> {
        if let Some((index, offset)) = self.unattached_relocs().next() {
            return Err(BtfExtError::UnattachedReloc { index, offset });
        }
        let mut buf = Vec::with_capacity(self.raw.len());
        let mut relocs = Vec::with_capacity(self.relocs.len());
        let hdr = self.hdr_len as usize;
        let mut o = Out { buf: &mut buf, endian: self.endian };
        o.u16(crate::btf::BTF_MAGIC);
        o.u8(self.version);
        o.u8(self.flags);
        o.u32(self.hdr_len);
        o.buf.resize(hdr, 0);
        let fstart = o.buf.len();
        self.func_info.encode(&mut o, &self.relocs, &mut relocs);
        let lstart = o.buf.len();
        self.line_info.encode(&mut o, &self.relocs, &mut relocs);
        let cstart = o.buf.len();
        if self.has_core {
            self.core_relo.encode(&mut o, &self.relocs, &mut relocs);
        }
        let cend = o.buf.len();
        let rel = |x: usize| u32::try_from(x - hdr).unwrap_or(u32::MAX);
        let len = |a: usize, b: usize| u32::try_from(b - a).unwrap_or(u32::MAX);
        let mut fields = vec![rel(fstart), len(fstart, lstart), rel(lstart), len(lstart, cstart)];
        if self.has_core {
            fields.extend([rel(cstart), len(cstart, cend)]);
        }
        let mut h = Vec::with_capacity(24);
        let mut ho = Out { buf: &mut h, endian: self.endian };
        fields.iter().for_each(|&v| ho.u32(v));
        buf[8..8 + h.len()].copy_from_slice(&h);
        let known = if self.has_core { 32 } else { 24 };
        buf[known..hdr].copy_from_slice(&self.extra_header);
        Ok((buf, relocs))
    }
}
