//! DWARF debug information: moving its instruction addresses with the code.
//!
//! clang's `-g` output for BPF is DWARF 5 (`-gdwarf-4` gives DWARF 4 with `.debug_ranges` and
//! `.debug_loc`, also remapped). Every address of an instruction in it is an offset
//! into a program section, carried in one of two ways:
//! - *relocated*: an address-sized field with a REL relocation (`R_BPF_64_ABS64`) against a
//!   symbol of the section (the section symbol, whose value is 0), the offset being the
//!   relocation's in-place addend: `.debug_addr` entries, `DW_FORM_addr` in `.debug_info`,
//!   `DW_LNE_set_address` in `.debug_line`, FDE initial locations in `.debug_frame`, and the
//!   address operands of list entries;
//! - *derived*: a number relative to a relocated address: line-program address advances,
//!   `DW_AT_high_pc` lengths, range and location list offset pairs and lengths, FDE address
//!   ranges.
//!
//! Both go through the rewrite's [`SlotMap`](crate::SlotMap) `start` (an address names a
//! position: where control that reached it now arrives, as for symbols and `.BTF.ext`
//! line_info); an end address (exclusive) maps to `start` of the end, so a length becomes
//! `start(low + len) - start(low)`. Relocated fields are rewritten in place (the field keeps its
//! size and its relocation), and so are fixed-size derived numbers (`DW_AT_high_pc`, FDE ranges,
//! DWARF 4 list pairs, `.debug_aranges` lengths); `.debug_line`, `.debug_rnglists` and `.debug_loclists` are
//! re-encoded, because their derived numbers are LEB128 or opcodes whose size changes, and the
//! section offsets that point into them (`DW_AT_stmt_list`, `DW_FORM_sec_offset` list references,
//! the lists' offset tables) follow. A line-table row whose code was all deleted is dropped (as a
//! line_info record is).
//!
//! What cannot be remapped — a form or version this module does not know, a parse error, RELA
//! relocations, call frame instructions that advance the location, an address that is not an
//! instruction start — makes the section *dropped*: its contents and those of its relocation
//! section become empty (sections keep their index, so nothing else moves), and the drop is
//! reported ([`DwarfDropped`]). Nothing stale is left silently.
//!
//! Everything is computed from the section contents before the rewrite, then applied: an error
//! in one section drops that section (and, for `.debug_info`, the sections that can only be read
//! through it), never leaves a half-updated one.

use crate::elf::{RawReloc, Symbol};
use crate::reloc_type::{R_BPF_64_ABS32, R_BPF_64_ABS64, R_BPF_64_NODYLD32};
use bpfpatch_insn::Endian;
use core::cell::RefCell;
use gimli::read::{EndianSlice, Reader as _, Relocate, RelocateReader};
use gimli::{RunTimeEndian, constants as dw};
use std::borrow::Cow;

/// A DWARF section dropped by a rewrite because its addresses could not be remapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DwarfDropped {
    /// The section's name (`.debug_line`, ...); its relocation section was emptied with it.
    pub section: String,
    /// Why it could not be remapped.
    pub reason: String,
}

/// One `.debug_*` section and its relocations, as the model owns them.
#[derive(Clone, Debug)]
pub(crate) struct DebugSection {
    /// Section index.
    pub index: usize,
    /// Section name.
    pub name: String,
    /// Current contents.
    pub bytes: Vec<u8>,
    /// The relocation section applying to it, if any.
    pub rel: Option<usize>,
    /// Its relocation entries (offsets into `bytes`).
    pub relocs: Vec<RawReloc>,
    /// Whether `bytes`/`relocs` differ from the input (the writer re-encodes them).
    pub dirty: bool,
    /// Why the section can never be remapped (compressed, RELA or several relocation
    /// sections), if so.
    pub unsupported: Option<&'static str>,
}

/// The debug sections of an object.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dwarf {
    pub sections: Vec<DebugSection>,
}

/// What one rewritten section needs from the rest of the object.
pub(crate) struct Remap<'a> {
    /// The rewritten program section.
    pub sec: usize,
    /// `start(old)` for every old slot and the end (`start[old_len] = new_len`).
    pub start: &'a [usize],
    /// The symbols before the rewrite.
    pub symbols: &'a [Symbol],
    /// The value of symbol `i` after the rewrite.
    pub new_value: &'a dyn Fn(u32) -> u64,
    /// The object's byte order.
    pub endian: Endian,
}

/// The computed change: new contents per section (by position in [`Dwarf::sections`]) and the
/// sections dropped.
#[derive(Debug, Default)]
pub(crate) struct Update {
    changed: Vec<(usize, Vec<u8>, Vec<RawReloc>)>,
    pub dropped: Vec<DwarfDropped>,
}

type Res<T> = Result<T, String>;

/// An address as the relocations name it: a byte offset in a section, or something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addr {
    /// Offset `off` of section `sec`.
    Code { sec: usize, off: u64 },
    /// Anything that is not in the rewritten section (data, other code, unrelocated).
    Other,
}

fn rd(bytes: &[u8], at: usize, size: usize, e: Endian) -> Res<u64> {
    let b = bytes
        .get(at..at.checked_add(size).ok_or("offset overflow")?)
        .ok_or_else(|| format!("read past the end at {at:#x}"))?;
    let mut v = 0u64;
    for k in 0..size {
        let byte = u64::from(
            b[match e {
                Endian::Little => size - 1 - k,
                Endian::Big => k,
            }],
        );
        v = (v << 8) | byte;
    }
    Ok(v)
}

fn wr(bytes: &mut [u8], at: usize, size: usize, v: u64, e: Endian) -> Res<()> {
    if size < 8 && v >> (size * 8) != 0 {
        return Err(format!("value {v:#x} does not fit the {size}-byte field at {at:#x}"));
    }
    let b = bytes.get_mut(at..at.saturating_add(size)).ok_or_else(|| format!("write past the end at {at:#x}"))?;
    for k in 0..size {
        let byte = (v >> (8 * k)) & 0xff;
        let i = match e {
            Endian::Little => k,
            Endian::Big => size - 1 - k,
        };
        b[i] = u8::try_from(byte).unwrap_or(0);
    }
    Ok(())
}

fn uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = u8::try_from(v & 0x7f).unwrap_or(0);
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_uleb(bytes: &[u8], at: &mut usize) -> Res<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*at).ok_or_else(|| format!("LEB128 past the end at {at:#x}"))?;
        *at += 1;
        if shift >= 64 {
            return Err(format!("LEB128 too long at {:#x}", *at - 1));
        }
        v |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// The end of the 32-bit DWARF unit (or CIE/FDE, set) starting at `at`: `at + 4 + length`.
/// `what` names it in errors. 64-bit DWARF and lengths past the section are refused.
fn unit_end(b: &[u8], at: usize, e: Endian, what: &str) -> Res<usize> {
    let len = rd(b, at, 4, e)?;
    if len >= 0xffff_fff0 {
        return Err(format!("{what} at {at:#x}: 64-bit DWARF or a reserved length"));
    }
    at.checked_add(4 + usize::try_from(len).map_err(|_| "length overflow")?)
        .filter(|&x| x <= b.len())
        .ok_or_else(|| format!("{what} at {at:#x} runs past the section"))
}

/// The `(start, end)` of every unit of a section of back-to-back 32-bit DWARF units.
fn units(b: &[u8], e: Endian, what: &str) -> Res<Vec<(usize, usize)>> {
    let mut v = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let end = unit_end(b, at, e, what)?;
        v.push((at, end));
        at = end;
    }
    Ok(v)
}

fn gimli_endian(e: Endian) -> RunTimeEndian {
    match e {
        Endian::Little => RunTimeEndian::Little,
        Endian::Big => RunTimeEndian::Big,
    }
}

/// The relocations of one section, sorted by offset, with what the address model needs.
struct Relocs<'a> {
    sorted: Vec<RawReloc>,
    r: &'a Remap<'a>,
}

impl<'a> Relocs<'a> {
    fn new(relocs: &[RawReloc], r: &'a Remap<'a>) -> Relocs<'a> {
        let mut sorted = relocs.to_vec();
        sorted.sort_by_key(|x| x.offset);
        Relocs { sorted, r }
    }

    fn at(&self, off: u64) -> Option<&RawReloc> {
        self.sorted.binary_search_by_key(&off, |x| x.offset).ok().map(|i| &self.sorted[i])
    }

    /// Whether relocation `x` names a symbol of the rewritten section.
    fn in_sec(&self, x: &RawReloc) -> bool {
        self.r.symbols.get(x.sym as usize).and_then(Symbol::section) == Some(self.r.sec)
    }

    /// The address the field at `off` (of `size` bytes, current contents `bytes`) holds.
    fn addr(&self, bytes: &[u8], off: u64, size: usize) -> Res<Addr> {
        let Some(x) = self.at(off) else { return Ok(Addr::Other) };
        if !self.in_sec(x) {
            return Ok(Addr::Other);
        }
        let at = usize::try_from(off).map_err(|_| "offset overflow")?;
        let addend = rd(bytes, at, size, self.r.endian)?;
        let sym = &self.r.symbols[x.sym as usize];
        let off = sym.value.checked_add(addend).ok_or("address overflow")?;
        Ok(Addr::Code { sec: self.r.sec, off })
    }
}

impl Remap<'_> {
    /// The new byte offset of old byte offset `off` of the rewritten section.
    fn pos(&self, off: u64) -> Res<u64> {
        let old_len = self.start.len() - 1;
        let slot = usize::try_from(off / 8).ok().filter(|&s| off.is_multiple_of(8) && s <= old_len);
        let slot = slot.ok_or_else(|| format!("address {off:#x} is not an instruction start of the section"))?;
        Ok(self.start[slot] as u64 * 8)
    }

    /// The new length of `[low, low + len)`.
    fn len(&self, low: u64, len: u64) -> Res<u64> {
        let end = low.checked_add(len).ok_or("range overflow")?;
        Ok(self.pos(end)? - self.pos(low)?)
    }

    /// The in-place addend that makes relocation `x` name new offset `new`.
    fn addend(&self, x: &RawReloc, new: u64) -> Res<u64> {
        new.checked_sub((self.new_value)(x.sym))
            .ok_or_else(|| format!("address {new:#x} lies before its symbol after the rewrite"))
    }
}

fn reloc_size(r_type: u32) -> Option<usize> {
    match r_type {
        R_BPF_64_ABS64 => Some(8),
        R_BPF_64_ABS32 | R_BPF_64_NODYLD32 => Some(4),
        _ => None,
    }
}

/// Working state of one section during a remap: its contents borrowed from the section until
/// something writes them (most sections of a rewrite are read, few are written).
struct Work<'a> {
    bytes: Cow<'a, [u8]>,
    relocs: Cow<'a, [RawReloc]>,
    changed: bool,
    dropped: Option<String>,
}

impl Dwarf {
    fn find(&self, name: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.name == name)
    }

    /// Whether any debug section holds a relocation naming a symbol of section `sec`, or
    /// derived addresses that may (a line table or list relative to one).
    fn refers_to(&self, sec: usize, symbols: &[Symbol]) -> bool {
        self.sections
            .iter()
            .flat_map(|s| s.relocs.iter())
            .any(|x| symbols.get(x.sym as usize).and_then(Symbol::section) == Some(sec))
    }

    /// Computes the change a rewrite of section `r.sec` makes to the debug sections.
    pub(crate) fn remap(&self, r: &Remap<'_>) -> Update {
        let mut up = Update::default();
        if !self.refers_to(r.sec, r.symbols) {
            return up;
        }
        let mut work: Vec<Work> = self
            .sections
            .iter()
            .map(|s| Work {
                bytes: Cow::Borrowed(&s.bytes),
                relocs: Cow::Borrowed(&s.relocs),
                changed: false,
                dropped: None,
            })
            .collect();
        let drop = |work: &mut Vec<Work>, i: usize, why: String| {
            if work[i].dropped.is_none() {
                work[i].dropped = Some(why);
            }
        };
        // Sections that cannot be touched at all.
        for (i, s) in self.sections.iter().enumerate() {
            let names_sec =
                s.relocs.iter().any(|x| r.symbols.get(x.sym as usize).and_then(Symbol::section) == Some(r.sec));
            if !names_sec && !matches!(s.name.as_str(), ".debug_line" | ".debug_rnglists" | ".debug_loclists") {
                continue;
            }
            if let Some(why) = s.unsupported {
                drop(&mut work, i, why.into());
            } else if names_sec && !KNOWN.contains(&s.name.as_str()) {
                drop(&mut work, i, "holds addresses of the rewritten code in a section bpfpatch does not remap".into());
            }
        }
        let info = self.find(".debug_info");
        let addr = self.find(".debug_addr");
        // .debug_info: the facts the other sections need, and the derived lengths.
        let facts = match info {
            Some(ii) if work[ii].dropped.is_none() => match self.info_facts(ii, addr, r) {
                Ok(f) => Some(f),
                Err(e) => {
                    drop(&mut work, ii, e);
                    None
                }
            },
            _ => None,
        };
        if facts.is_none() {
            // Without .debug_info the unit bases, offsets and lengths are unknown: everything that
            // hangs off it and names the code goes.
            for name in [".debug_info", ".debug_addr", ".debug_line", ".debug_rnglists", ".debug_loclists"] {
                if let Some(i) = self.find(name) {
                    drop(&mut work, i, "its unit (.debug_info) could not be read".into());
                }
            }
        }
        if let (Some(f), Some(ii)) = (&facts, info) {
            for h in &f.highs {
                let res = h.new_len.clone().and_then(|v| {
                    if h.uleb {
                        patch_uleb(work[ii].bytes.to_mut(), h.pos, h.size, v)
                    } else {
                        wr(work[ii].bytes.to_mut(), h.pos, h.size, v, r.endian)
                    }
                });
                match res {
                    Ok(()) => work[ii].changed = true,
                    Err(e) => {
                        drop(&mut work, ii, format!("DW_AT_high_pc at {:#x}: {e}", h.pos));
                        break;
                    }
                }
            }
        }
        // .debug_line: re-encoded.
        if let (Some(li), Some(f)) = (self.find(".debug_line"), &facts)
            && work[li].dropped.is_none()
        {
            match self.line(li, r) {
                Ok(Some((bytes, relocs, units))) => {
                    work[li].bytes = Cow::Owned(bytes);
                    work[li].relocs = Cow::Owned(relocs);
                    work[li].changed = true;
                    if let Some(ii) = info
                        && let Err(e) = patch_refs(&mut work[ii], &f.stmt_lists, &units, r.endian)
                    {
                        drop(&mut work, ii, format!("DW_AT_stmt_list: {e}"));
                    }
                }
                Ok(None) => {}
                Err(e) => drop(&mut work, li, e),
            }
        }
        // .debug_rnglists and .debug_loclists: re-encoded.
        for (name, loc) in [(".debug_rnglists", false), (".debug_loclists", true)] {
            let (Some(si), Some(f)) = (self.find(name), &facts) else { continue };
            if work[si].dropped.is_some() {
                continue;
            }
            match self.lists(si, loc, addr, f, r) {
                Ok(Some((bytes, relocs, map))) => {
                    work[si].bytes = Cow::Owned(bytes);
                    work[si].relocs = Cow::Owned(relocs);
                    work[si].changed = true;
                    let refs = if loc { &f.loc_refs } else { &f.range_refs };
                    if let Some(ii) = info
                        && let Err(e) = patch_refs(&mut work[ii], refs, &map, r.endian)
                    {
                        drop(&mut work, ii, format!("{name} reference: {e}"));
                    }
                }
                Ok(None) => {}
                Err(e) => drop(&mut work, si, e),
            }
        }
        // In-place derived numbers: DWARF 4 lists relative to a base, .debug_aranges lengths,
        // .debug_frame FDE address ranges (the addresses themselves are relocated).
        for name in [".debug_ranges", ".debug_loc", ".debug_aranges", ".debug_frame"] {
            let Some(fi) = self.find(name) else { continue };
            if work[fi].dropped.is_some() {
                continue;
            }
            let patches = match (name, &facts) {
                (".debug_ranges", Some(f)) => self.lists4(fi, false, &f.ranges4, f, r),
                (".debug_loc", Some(f)) => self.lists4(fi, true, &f.locs4, f, r),
                (".debug_ranges" | ".debug_loc", None) => Err("its unit (.debug_info) could not be read".into()),
                (".debug_aranges", _) => self.aranges(fi, r),
                _ => self.frame(fi, r),
            };
            match patches {
                Ok(patches) => {
                    for (at, v) in patches {
                        if let Err(e) = wr(work[fi].bytes.to_mut(), at, 8, v, r.endian) {
                            drop(&mut work, fi, e);
                            break;
                        }
                        work[fi].changed = true;
                    }
                }
                Err(e) => drop(&mut work, fi, e),
            }
        }
        // Relocated addresses, in place, in every section not re-encoded above (.debug_line's
        // set_address operands were re-emitted; the lists' relocations moved with their bytes
        // and are rewritten here at their new offsets).
        for (i, s) in self.sections.iter().enumerate() {
            if s.name == ".debug_line" || work[i].dropped.is_some() {
                continue;
            }
            let w = &mut work[i];
            let mut err = None;
            let mut patches = Vec::new();
            for x in w.relocs.iter() {
                if r.symbols.get(x.sym as usize).and_then(Symbol::section) != Some(r.sec) {
                    continue;
                }
                let Some(size) = reloc_size(x.r_type) else {
                    err = Some(format!("relocation type {} on an address of the rewritten code", x.r_type));
                    break;
                };
                let res = (|| {
                    let at = usize::try_from(x.offset).map_err(|_| "offset overflow")?;
                    let sym = &r.symbols[x.sym as usize];
                    let old = sym.value.checked_add(rd(&w.bytes, at, size, r.endian)?).ok_or("address overflow")?;
                    let new = r.addend(x, r.pos(old)?)?;
                    Ok::<_, String>((at, size, new))
                })();
                match res {
                    Ok(p) => patches.push(p),
                    Err(e) => {
                        err = Some(format!("relocated address at {:#x}: {e}", x.offset));
                        break;
                    }
                }
            }
            if err.is_none() {
                for (at, size, v) in patches {
                    if let Err(e) = wr(w.bytes.to_mut(), at, size, v, r.endian) {
                        err = Some(e);
                        break;
                    }
                    w.changed = true;
                }
            }
            if let Some(e) = err {
                w.dropped = Some(e);
            }
        }
        for (i, w) in work.into_iter().enumerate() {
            if let Some(reason) = w.dropped {
                up.dropped.push(DwarfDropped { section: self.sections[i].name.clone(), reason });
                up.changed.push((i, Vec::new(), Vec::new()));
            } else if w.changed {
                up.changed.push((i, w.bytes.into_owned(), w.relocs.into_owned()));
            }
        }
        up
    }

    /// Applies a computed change.
    pub(crate) fn apply(&mut self, up: Update) {
        for (i, bytes, relocs) in up.changed {
            if let Some(s) = self.sections.get_mut(i) {
                s.bytes = bytes;
                s.relocs = relocs;
                s.dirty = true;
            }
        }
    }
}

/// Sections whose addresses this module remaps.
const KNOWN: [&str; 9] = [
    ".debug_info",
    ".debug_addr",
    ".debug_line",
    ".debug_rnglists",
    ".debug_loclists",
    ".debug_frame",
    ".debug_ranges",
    ".debug_loc",
    ".debug_aranges",
];

/// Rewrites a ULEB128 field in place, padded to its original length.
fn patch_uleb(bytes: &mut [u8], at: usize, size: usize, v: u64) -> Res<()> {
    let mut enc = Vec::new();
    uleb(&mut enc, v);
    if enc.len() > size {
        return Err(format!("{v:#x} does not fit the {size}-byte ULEB128"));
    }
    let b = bytes.get_mut(at..at.saturating_add(size)).ok_or("field past the end")?;
    for (k, slot) in b.iter_mut().enumerate() {
        let byte = enc.get(k).copied().unwrap_or(0);
        *slot = if k + 1 < size { byte | 0x80 } else { byte };
    }
    Ok(())
}

/// Patches 4-byte section offsets (`(position in .debug_info, old offset)`) through `map`.
fn patch_refs(info: &mut Work, refs: &[(usize, u64)], map: &[(u64, u64)], e: Endian) -> Res<()> {
    for &(pos, old) in refs {
        let new = map
            .binary_search_by_key(&old, |m| m.0)
            .map(|k| map[k].1)
            .map_err(|_| format!("offset {old:#x} (at {pos:#x}) is not the start of a unit or list"))?;
        if new != old {
            wr(info.bytes.to_mut(), pos, 4, new, e)?;
            info.changed = true;
        }
    }
    Ok(())
}

/// A `DW_AT_high_pc` holding a length.
struct High {
    pos: usize,
    size: usize,
    uleb: bool,
    new_len: Res<u64>,
}

/// A unit of `.debug_info`.
#[derive(Clone, Copy, Debug, Default)]
struct Cu {
    addr_base: Option<u64>,
    addr_size: u8,
    low: Option<Addr>,
    rnglists_base: Option<u64>,
    loclists_base: Option<u64>,
}

/// What `.debug_info` tells the other sections.
#[derive(Default)]
struct InfoFacts {
    highs: Vec<High>,
    cus: Vec<Cu>,
    /// `(position, .debug_line offset)` of every `DW_AT_stmt_list`.
    stmt_lists: Vec<(usize, u64)>,
    /// `DW_FORM_sec_offset` references into `.debug_rnglists` / `.debug_loclists`.
    range_refs: Vec<(usize, u64)>,
    loc_refs: Vec<(usize, u64)>,
    /// DWARF 4: `(unit, offset)` of every list in `.debug_ranges` / `.debug_loc`.
    ranges4: Vec<(usize, u64)>,
    locs4: Vec<(usize, u64)>,
}

impl Dwarf {
    fn bytes_of(&self, name: &str) -> &[u8] {
        self.find(name).map_or(&[], |i| &self.sections[i].bytes)
    }

    /// The address `.debug_addr` entry `index` of a unit holds.
    fn addrx(&self, addr: Option<usize>, cu: &Cu, index: u64, r: &Remap<'_>) -> Res<Addr> {
        let ai = addr.ok_or("DW_FORM_addrx without .debug_addr")?;
        let base = cu.addr_base.unwrap_or(8);
        let size = u64::from(cu.addr_size);
        let off = index.checked_mul(size).and_then(|o| o.checked_add(base)).ok_or("address index overflow")?;
        let s = &self.sections[ai];
        Relocs::new(&s.relocs, r).addr(&s.bytes, off, usize::from(cu.addr_size))
    }

    fn info_facts(&self, ii: usize, addr: Option<usize>, r: &Remap<'_>) -> Res<InfoFacts> {
        let e = gimli_endian(r.endian);
        let s = &self.sections[ii];
        let debug_info = gimli::DebugInfo::new(&s.bytes, e);
        let debug_abbrev = gimli::DebugAbbrev::new(self.bytes_of(".debug_abbrev"), e);
        let rel = Relocs::new(&s.relocs, r);
        let mut f = InfoFacts::default();
        let mut units = debug_info.units();
        let err = |e: gimli::Error| format!("{e}");
        while let Some(h) = units.next().map_err(err)? {
            let unit_off = h.offset().as_debug_info_offset().map(|o| o.0).ok_or("type unit in .debug_info")?;
            let enc = h.encoding();
            if enc.format != gimli::Format::Dwarf32 {
                return Err("64-bit DWARF".into());
            }
            let abbrevs = h.abbreviations(&debug_abbrev).map_err(err)?;
            let mut raw = h.entries_raw(&abbrevs, None).map_err(err)?;
            let mut cu = Cu { addr_size: enc.address_size, ..Cu::default() };
            let first = f.cus.len();
            f.cus.push(cu);
            let mut is_cu = true;
            while !raw.is_empty() {
                let Some(abbrev) = raw.read_abbreviation().map_err(err)? else { continue };
                let mut low = None;
                let mut high: Option<(usize, usize, bool, u64)> = None;
                for spec in abbrev.attributes() {
                    let pos = unit_off + raw.next_offset().0;
                    let attr = raw.read_attribute(*spec).map_err(err)?;
                    let end = unit_off + raw.next_offset().0;
                    let form = spec.form();
                    match (attr.name(), attr.value()) {
                        (dw::DW_AT_low_pc, gimli::AttributeValue::Addr(_)) => low = Some(Err(pos)),
                        (dw::DW_AT_low_pc, gimli::AttributeValue::DebugAddrIndex(i)) => low = Some(Ok(i.0 as u64)),
                        (dw::DW_AT_low_pc, _) => return Err(format!("DW_AT_low_pc of form {form} at {pos:#x}")),
                        (dw::DW_AT_high_pc, v) => match form {
                            dw::DW_FORM_addr
                            | dw::DW_FORM_addrx
                            | dw::DW_FORM_addrx1
                            | dw::DW_FORM_addrx2
                            | dw::DW_FORM_addrx3
                            | dw::DW_FORM_addrx4 => {}
                            dw::DW_FORM_data1
                            | dw::DW_FORM_data2
                            | dw::DW_FORM_data4
                            | dw::DW_FORM_data8
                            | dw::DW_FORM_udata => {
                                let len = v.udata_value().ok_or_else(|| format!("DW_AT_high_pc at {pos:#x}"))?;
                                high = Some((pos, end - pos, form == dw::DW_FORM_udata, len));
                            }
                            _ => return Err(format!("DW_AT_high_pc of form {form} at {pos:#x}")),
                        },
                        (dw::DW_AT_stmt_list, gimli::AttributeValue::DebugLineRef(o)) => {
                            if form != dw::DW_FORM_sec_offset && form != dw::DW_FORM_data4 {
                                return Err(format!("DW_AT_stmt_list of form {form} at {pos:#x}"));
                            }
                            f.stmt_lists.push((pos, o.0 as u64));
                        }
                        (_, gimli::AttributeValue::RangeListsRef(o)) if enc.version >= 5 => {
                            f.range_refs.push((pos, o.0 as u64));
                        }
                        (_, gimli::AttributeValue::LocationListsRef(o)) if enc.version >= 5 => {
                            f.loc_refs.push((pos, o.0 as u64));
                        }
                        // DWARF 4: lists in .debug_ranges / .debug_loc (remapped in place).
                        (_, gimli::AttributeValue::RangeListsRef(o)) => f.ranges4.push((first, o.0 as u64)),
                        (_, gimli::AttributeValue::LocationListsRef(o)) => f.locs4.push((first, o.0 as u64)),
                        (dw::DW_AT_addr_base, gimli::AttributeValue::DebugAddrBase(b)) if is_cu => {
                            cu.addr_base = Some(b.0 as u64);
                        }
                        (dw::DW_AT_rnglists_base, gimli::AttributeValue::DebugRngListsBase(b)) if is_cu => {
                            cu.rnglists_base = Some(b.0 as u64);
                        }
                        (dw::DW_AT_loclists_base, gimli::AttributeValue::DebugLocListsBase(b)) if is_cu => {
                            cu.loclists_base = Some(b.0 as u64);
                        }
                        _ => {}
                    }
                }
                let low = match low {
                    Some(Err(pos)) => Some(rel.addr(&s.bytes, pos as u64, usize::from(enc.address_size))?),
                    Some(Ok(i)) => Some(self.addrx(addr, &cu, i, r)?),
                    None => None,
                };
                if is_cu {
                    cu.low = low;
                    f.cus[first] = cu;
                    is_cu = false;
                }
                if let Some((pos, size, is_uleb, len)) = high {
                    match low {
                        Some(Addr::Code { off, .. }) => {
                            f.highs.push(High { pos, size, uleb: is_uleb, new_len: r.len(off, len) });
                        }
                        Some(Addr::Other) => {}
                        None => return Err(format!("DW_AT_high_pc without DW_AT_low_pc at {pos:#x}")),
                    }
                }
            }
        }
        Ok(f)
    }
}

/// `Relocate` for reading `.debug_line`: a relocated address becomes `(symbol + 1) << 40 |
/// addend`, so rows name their symbol; offsets are section-relative already.
#[derive(Clone, Copy, Debug)]
struct Tagger<'a> {
    relocs: &'a [RawReloc],
    seen: &'a RefCell<Vec<usize>>,
}

const TAG_SHIFT: u32 = 40;
const OFF_MASK: u64 = (1 << TAG_SHIFT) - 1;

impl Relocate<usize> for Tagger<'_> {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        if value > OFF_MASK {
            return Err(gimli::Error::UnsupportedAddressSize(0));
        }
        let Ok(k) = self.relocs.binary_search_by_key(&(offset as u64), |x| x.offset) else { return Ok(value) };
        self.seen.borrow_mut().push(offset);
        Ok((u64::from(self.relocs[k].sym) + 1) << TAG_SHIFT | value)
    }

    fn relocate_offset(&self, _offset: usize, value: usize) -> gimli::Result<usize> {
        Ok(value)
    }
}

/// One row as read.
#[derive(Clone, Copy, Debug)]
struct Row {
    addr: u64,
    file: u64,
    line: u64,
    column: u64,
    discriminator: u64,
    isa: u64,
    is_stmt: bool,
    basic_block: bool,
    prologue_end: bool,
    epilogue_begin: bool,
}

/// The writer of a re-encoded line-number program: rows go out as gimli's
/// `write::LineProgram` encodes them (`begin_sequence`, `generate_row`, `end_sequence` and
/// `LineInstruction::write`, byte for byte), straight into the section after the unit's
/// header, without gimli's instruction list, stand-in header and second copy.
/// `tests::writer_is_gimlis` holds it to gimli's writer. Addresses are 8 bytes; the
/// relocation of a sequence's symbol address is recorded REL-style (the addend in place).
struct LineWriter<'a> {
    out: &'a mut Vec<u8>,
    relocs: &'a mut Vec<RawReloc>,
    le: gimli::LineEncoding,
    endian: Endian,
    prev: Prev,
}

/// The registers gimli's writer compares a row against (the previous row's).
#[derive(Clone, Copy)]
struct Prev {
    off: u64,
    file: u64,
    line: u64,
    column: u64,
    isa: u64,
    is_stmt: bool,
}

impl<'a> LineWriter<'a> {
    fn new(out: &'a mut Vec<u8>, relocs: &'a mut Vec<RawReloc>, le: gimli::LineEncoding, endian: Endian) -> Self {
        LineWriter { out, relocs, le, endian, prev: Self::initial(le) }
    }

    /// The state at the start of a sequence (file 1 raw, in DWARF 2 to 5).
    fn initial(le: gimli::LineEncoding) -> Prev {
        Prev { off: 0, file: 1, line: 1, column: 0, isa: 0, is_stmt: le.default_is_stmt }
    }

    /// `DW_LNE_set_address` of `symbol + addend`, or of the constant `addr`.
    fn begin_sequence(&mut self, symbol: Option<(u32, i64)>, addr: u64) {
        self.out.extend_from_slice(&[0, 9, dw::DW_LNE_set_address.0]);
        let v = match symbol {
            Some((sym, addend)) => {
                self.relocs.push(RawReloc { offset: self.out.len() as u64, sym, r_type: R_BPF_64_ABS64, addend: 0 });
                addend.cast_unsigned()
            }
            None => addr,
        };
        let bytes = match self.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        self.out.extend_from_slice(&bytes);
    }

    /// Operation advance from the previous row to address offset `off` (gimli's `op_advance`,
    /// one operation per instruction).
    fn op_advance(&self, off: u64) -> u64 {
        let advance = off.wrapping_sub(self.prev.off);
        let unit = u64::from(self.le.minimum_instruction_length);
        if unit == 1 { advance } else { advance / unit }
    }

    /// One row at address offset `off` (gimli's `generate_row`; its release-build arithmetic).
    fn row(&mut self, x: &Row, off: u64) {
        if x.discriminator != 0 {
            let mut v = Vec::with_capacity(10);
            uleb(&mut v, x.discriminator);
            self.out.push(0);
            uleb(self.out, 1 + v.len() as u64);
            self.out.push(dw::DW_LNE_set_discriminator.0);
            self.out.extend_from_slice(&v);
        }
        for (on, op) in [
            (x.basic_block, dw::DW_LNS_set_basic_block),
            (x.prologue_end, dw::DW_LNS_set_prologue_end),
            (x.epilogue_begin, dw::DW_LNS_set_epilogue_begin),
        ] {
            if on {
                self.out.push(op.0);
            }
        }
        if x.is_stmt != self.prev.is_stmt {
            self.out.push(dw::DW_LNS_negate_stmt.0);
        }
        for (v, was, op) in [
            (x.file, self.prev.file, dw::DW_LNS_set_file),
            (x.column, self.prev.column, dw::DW_LNS_set_column),
            (x.isa, self.prev.isa, dw::DW_LNS_set_isa),
        ] {
            if v != was {
                self.out.push(op.0);
                uleb(self.out, v);
            }
        }
        let line_base = i64::from(self.le.line_base).cast_unsigned();
        let line_range = u64::from(self.le.line_range);
        let line_advance = x.line.cast_signed().wrapping_sub(self.prev.line.cast_signed());
        let op_advance = self.op_advance(off);
        let special_base = 13u64;
        let special_default = special_base.wrapping_sub(line_base);
        let mut special = special_default;
        let mut use_special = false;
        if line_advance != 0 {
            let special_line = line_advance.cast_unsigned().wrapping_sub(line_base);
            if special_line < line_range {
                special = special_base + special_line;
                use_special = true;
            } else {
                self.out.push(dw::DW_LNS_advance_line.0);
                sleb(self.out, line_advance);
            }
        }
        if op_advance != 0 {
            // `const_add_pc` can save a byte.
            let (special_op_advance, const_add_pc) = if special.wrapping_add(op_advance.wrapping_mul(line_range)) <= 255
            {
                (op_advance, false)
            } else {
                (op_advance.wrapping_sub((255 - special_base) / line_range), true)
            };
            let special_op = special_op_advance.wrapping_mul(line_range);
            if special.wrapping_add(special_op) <= 255 {
                special += special_op;
                use_special = true;
                if const_add_pc {
                    self.out.push(dw::DW_LNS_const_add_pc.0);
                }
            } else {
                self.out.push(dw::DW_LNS_advance_pc.0);
                uleb(self.out, op_advance);
            }
        }
        if use_special && special != special_default {
            self.out.push(u8::try_from(special).unwrap_or(0));
        } else {
            self.out.push(dw::DW_LNS_copy.0);
        }
        self.prev = Prev { off, file: x.file, line: x.line, column: x.column, isa: x.isa, is_stmt: x.is_stmt };
    }

    /// The end of the sequence at address offset `off`; the registers start over.
    fn end_sequence(&mut self, off: u64) {
        let op_advance = self.op_advance(off);
        if op_advance != 0 {
            self.out.push(dw::DW_LNS_advance_pc.0);
            uleb(self.out, op_advance);
        }
        self.out.extend_from_slice(&[0, 1, dw::DW_LNE_end_sequence.0]);
        self.prev = Self::initial(self.le);
    }
}

fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let mut byte = v.to_le_bytes()[0];
        v >>= 6;
        let done = v == 0 || v == -1;
        if done {
            byte &= 0x7f;
        } else {
            v >>= 1;
            byte |= 0x80;
        }
        out.push(byte);
        if done {
            return;
        }
    }
}

/// gimli's standard opcode lengths for opcode base 13 (what its writer emits).
const STD_LENGTHS: [u8; 12] = [0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1];

type Reencoded = (Vec<u8>, Vec<RawReloc>, Vec<(u64, u64)>);

impl Dwarf {
    /// Re-encodes `.debug_line`: every unit's header is kept byte for byte, its line-number
    /// program is read with gimli (relocations applied; one walk, gimli's row state machine)
    /// and written back as gimli's writer writes it ([`LineWriter`]) with the rewritten
    /// section's addresses remapped. Returns the new bytes, relocations and
    /// the old-to-new unit offsets (`None` when no sequence names the section).
    fn line(&self, li: usize, r: &Remap<'_>) -> Res<Option<Reencoded>> {
        let s = &self.sections[li];
        let mut relocs = s.relocs.clone();
        relocs.sort_by_key(|x| x.offset);
        if !relocs.iter().any(|x| r.symbols.get(x.sym as usize).and_then(Symbol::section) == Some(r.sec)) {
            return Ok(None);
        }
        let e = gimli_endian(r.endian);
        let seen = RefCell::new(Vec::new());
        let tagger = Tagger { relocs: &relocs, seen: &seen };
        let section = RelocateReader::new(EndianSlice::new(&s.bytes, e), tagger);
        let debug_line = gimli::DebugLine::from(section.clone());
        let mut out = Vec::with_capacity(s.bytes.len() + s.bytes.len() / 4);
        let mut out_relocs = Vec::with_capacity(relocs.len());
        let mut units = Vec::new();
        let mut at = 0usize;
        let err = |at: usize| move |e: gimli::Error| format!("line program at {at:#x}: {e}");
        while at < s.bytes.len() {
            let end = unit_end(&s.bytes, at, r.endian, "line program")?;
            let mut program = debug_line.program(gimli::DebugLineOffset(at), 8, None, None).map_err(err(at))?;
            let header = program.header();
            let prog_start = header.raw_program_buf().offset_from(&section);
            let enc = header.encoding();
            let le = header.line_encoding();
            let lengths: Vec<u8> = {
                let mut l = header.standard_opcode_lengths().clone();
                let mut v = Vec::new();
                while !l.is_empty() {
                    v.push(l.read_u8().map_err(err(at))?);
                }
                v
            };
            if header.opcode_base() != 13 || lengths != STD_LENGTHS {
                return Err(format!("line program at {at:#x}: opcode base {} is not 13", header.opcode_base()));
            }
            // BPF: 8 (one slot); the new addresses are multiples of 8 apart.
            if !matches!(le.minimum_instruction_length, 1 | 2 | 4 | 8) || le.maximum_operations_per_instruction != 1 {
                return Err(format!("line program at {at:#x}: instruction length or VLIW operations"));
            }
            // gimli's writer computes `line_base + line_range as i8`: keep it in range.
            let top = i16::from(le.line_base) + i16::from(le.line_range);
            if le.line_base > 0 || le.line_range == 0 || le.line_range > 127 || top <= 0 || top > 127 {
                return Err(format!("line program at {at:#x}: line_base/line_range"));
            }
            if !(2..=5).contains(&enc.version) || enc.address_size != 8 {
                return Err(format!(
                    "line program at {at:#x}: version {} address size {}",
                    enc.version, enc.address_size
                ));
            }
            // One walk over the instructions: each is checked (what gimli's row reader would
            // skip, or what names what we cannot re-emit, is refused) and executed by gimli's
            // own row state machine, as its row reader does (a row produced while the address is
            // a tombstone is skipped; skipped rows are refused below). Rows are kept flat, with
            // the end of every sequence: `(first row, end row)`, the rows between being its body.
            let hdr = header.clone();
            let mut ins = hdr.instructions();
            let mut state = gimli::LineRow::new(&hdr);
            let mut tombstone = false;
            let mut flat: Vec<Row> = Vec::new();
            let mut seqs: Vec<(usize, usize)> = Vec::new();
            let (mut first, mut max_file, mut row_insns) = (0usize, 0u64, 0usize);
            while let Some(i) = ins.next_instruction(&hdr).map_err(err(at))? {
                use gimli::LineInstruction as L;
                match i {
                    L::Special(_) | L::Copy | L::EndSequence => row_insns += 1,
                    L::SetAddress(a) => tombstone = a < state.address() || a >= u64::MAX - 1,
                    L::UnknownStandard0(_)
                    | L::UnknownStandard1(..)
                    | L::UnknownStandardN(..)
                    | L::UnknownExtended(..)
                    | L::DefineFile(_) => return Err(format!("line program at {at:#x}: unsupported opcode {i:?}")),
                    _ => {}
                }
                if !state.execute(i, &mut program).map_err(err(at))? {
                    continue;
                }
                if !tombstone {
                    let v = Row {
                        addr: state.address(),
                        file: state.file_index(),
                        line: state.line().map_or(0, core::num::NonZeroU64::get),
                        column: match state.column() {
                            gimli::ColumnType::LeftEdge => 0,
                            gimli::ColumnType::Column(c) => c.get(),
                        },
                        discriminator: state.discriminator(),
                        isa: state.isa(),
                        is_stmt: state.is_stmt(),
                        basic_block: state.basic_block(),
                        prologue_end: state.prologue_end(),
                        epilogue_begin: state.epilogue_begin(),
                    };
                    max_file = max_file.max(v.file);
                    flat.push(v);
                    if state.end_sequence() {
                        seqs.push((first, flat.len() - 1));
                        first = flat.len();
                    }
                }
                if state.end_sequence() {
                    tombstone = false;
                }
                state.reset(&hdr);
            }
            if flat.len() != row_insns || first != flat.len() {
                return Err(format!("line program at {at:#x}: rows outside a sequence or skipped (tombstones)"));
            }
            if enc.version < 5 && flat.iter().any(|x| x.file == 0) {
                return Err(format!("line program at {at:#x}: file index 0"));
            }
            if max_file > 1 << 20 {
                return Err(format!("line program at {at:#x}: file index {max_file}"));
            }
            // Every relocation in the program must be a set_address operand.
            let mut consumed = seen.borrow().clone();
            consumed.sort_unstable();
            let within = |lo: usize, hi: usize| {
                let a = relocs.partition_point(|x| x.offset < lo as u64);
                let b = relocs.partition_point(|x| x.offset < hi as u64);
                &relocs[a..b.max(a)]
            };
            for x in within(prog_start, end) {
                if usize::try_from(x.offset).ok().is_none_or(|o| consumed.binary_search(&o).is_err()) {
                    return Err(format!("line program at {at:#x}: relocation at {:#x} is not an address", x.offset));
                }
            }
            // The unit: its header byte for byte (with its relocations), then the new program.
            let new_at = out.len();
            units.push((at as u64, new_at as u64));
            out.extend_from_slice(
                s.bytes.get(at..prog_start).filter(|_| prog_start <= end).ok_or("line program header")?,
            );
            for x in within(at, prog_start) {
                out_relocs.push(RawReloc { offset: x.offset - at as u64 + new_at as u64, ..*x });
            }
            let mut w = LineWriter::new(&mut out, &mut out_relocs, le, r.endian);
            // The new address of every row of a sequence, and whether it is kept (scratch).
            let mut news: Vec<(u64, bool)> = Vec::new();
            for &(lo, end_at) in &seqs {
                let (seq, end_row) = (&flat[lo..end_at], flat[end_at]);
                let tag = end_row.addr >> TAG_SHIFT;
                if seq.iter().any(|x| x.addr >> TAG_SHIFT != tag) {
                    return Err(format!("line program at {at:#x}: a sequence spans two symbols"));
                }
                let sym = tag.checked_sub(1).and_then(|t| u32::try_from(t).ok());
                let in_sec = sym.and_then(|s| r.symbols.get(s as usize)).and_then(Symbol::section) == Some(r.sec);
                let base_value = sym.and_then(|s| r.symbols.get(s as usize)).map_or(0, |s| s.value);
                // (old in-place value, new in-place value) per row, and the end.
                let map_addr = |a: u64| -> Res<u64> {
                    let v = if tag == 0 { a } else { a & OFF_MASK };
                    if !in_sec {
                        return Ok(v);
                    }
                    let s = sym.unwrap_or(0);
                    let old = base_value.checked_add(v).ok_or("address overflow")?;
                    r.addend(&RawReloc { offset: 0, sym: s, r_type: R_BPF_64_ABS64, addend: 0 }, r.pos(old)?)
                };
                news.clear();
                for x in seq {
                    news.push((map_addr(x.addr)?, false));
                }
                let new_end = map_addr(end_row.addr)?;
                // Keep a row unless the next row at a different old address lands where it does
                // (`next`: the new address of that row, or of the end), walking back.
                let mut next = new_end;
                for k in (0..seq.len()).rev() {
                    news[k].1 = next != news[k].0;
                    if k > 0 && seq[k].addr != seq[k - 1].addr {
                        next = news[k].0;
                    }
                }
                let kept = seq.iter().zip(&news).filter(|(_, n)| n.1).map(|(x, n)| (x, n.0));
                let Some((_, first)) = kept.clone().next() else { continue };
                let mut prev = first;
                if kept.clone().any(|(_, n)| core::mem::replace(&mut prev, n) > n) || new_end < prev {
                    return Err(format!("line program at {at:#x}: addresses decrease within a sequence"));
                }
                let unit = u64::from(le.minimum_instruction_length);
                let misaligned = kept.clone().any(|(_, n)| (n - first) % unit != 0) || (new_end - first) % unit != 0;
                if misaligned {
                    return Err(format!("line program at {at:#x}: an address is not a multiple of {unit}"));
                }
                let symbol = match sym {
                    Some(symbol) => Some((symbol, i64::try_from(first).map_err(|_| "address overflow")?)),
                    None => None,
                };
                w.begin_sequence(symbol, first);
                for (x, new) in kept {
                    w.row(x, new - first);
                }
                w.end_sequence(new_end - first);
            }
            let len = u64::try_from(out.len() - new_at - 4).map_err(|_| "length")?;
            if len >= 0xffff_fff0 {
                return Err(format!("line program at {at:#x} grows past 32-bit DWARF"));
            }
            wr(&mut out, new_at, 4, len, r.endian)?;
            at = end;
        }
        if relocs.iter().any(|x| x.offset >= s.bytes.len() as u64) {
            return Err("relocation past the end of .debug_line".into());
        }
        Ok(Some((out, out_relocs, units)))
    }
}

/// Byte ranges copied verbatim from old to new offsets (relocations inside move with them).
#[derive(Default)]
struct Moves(Vec<(usize, usize, usize)>);

impl Moves {
    fn copy(&mut self, out: &mut Vec<u8>, old: &[u8], from: usize, to: usize) -> Res<()> {
        let b = old.get(from..to).ok_or_else(|| format!("entry past the end at {from:#x}"))?;
        self.0.push((from, to, out.len()));
        out.extend_from_slice(b);
        Ok(())
    }

    /// The chunks are copied in increasing old order.
    fn new_offset(&self, old: u64) -> Option<u64> {
        let o = usize::try_from(old).ok()?;
        let k = self.0.partition_point(|m| m.1 <= o);
        self.0.get(k).filter(|m| m.0 <= o && o < m.1).map(|m| (m.2 + (o - m.0)) as u64)
    }
}

impl Dwarf {
    /// Re-encodes `.debug_rnglists` (`loc == false`) or `.debug_loclists`: entries are copied,
    /// their derived offsets and lengths recomputed through the map. Returns the new bytes, the
    /// relocations at their new offsets, and the old-to-new offset of every list and unit.
    fn lists(&self, si: usize, loc: bool, addr: Option<usize>, f: &InfoFacts, r: &Remap<'_>) -> Res<Option<Reencoded>> {
        let s = &self.sections[si];
        let b = &s.bytes;
        let e = r.endian;
        let rel = Relocs::new(&s.relocs, r);
        let mut out = Vec::with_capacity(b.len() + b.len() / 4);
        let mut mv = Moves::default();
        let mut map: Vec<(u64, u64)> = Vec::new();
        let mut any = false;
        let mut at = 0usize;
        while at < b.len() {
            let end = unit_end(b, at, e, "unit")?;
            let version = rd(b, at + 4, 2, e)?;
            let asize = usize::try_from(rd(b, at + 6, 1, e)?).unwrap_or(0);
            let seg = rd(b, at + 7, 1, e)?;
            let count = usize::try_from(rd(b, at + 8, 4, e)?).map_err(|_| "count")?;
            if version != 5 || asize != 8 || seg != 0 {
                return Err(format!("unit at {at:#x}: version {version}, address size {asize}, segment {seg}"));
            }
            // List offsets (the offset table's and DW_AT_*lists_base) count from the table.
            let table = at + 12;
            let body = table + count.checked_mul(4).ok_or("count")?;
            if body > end {
                return Err(format!("unit at {at:#x}: offset table past the unit"));
            }
            // The unit this list table belongs to (its base and .debug_addr contribution).
            let base_of = |c: &Cu| if loc { c.loclists_base } else { c.rnglists_base };
            let cu = match f.cus.iter().find(|c| base_of(c) == Some(table as u64)) {
                Some(c) => *c,
                None if f.cus.len() == 1 => f.cus[0],
                None => return Err(format!("unit at {at:#x}: no compilation unit names it")),
            };
            let new_unit = out.len();
            map.push((at as u64, new_unit as u64));
            mv.copy(&mut out, b, at, body)?;
            let new_body = out.len();
            map.push((body as u64, new_body as u64));
            let mut p = body;
            let mut base = cu.low.unwrap_or(Addr::Other);
            let mut list_start = true;
            while p < end {
                if list_start {
                    map.push((p as u64, out.len() as u64));
                    list_start = false;
                }
                let kind = b[p];
                let entry = p;
                p += 1;
                let x = |i: u64| self.addrx(addr, &cu, i, r);
                let addr_at = |p: usize| rel.addr(b, p as u64, asize);
                // (range kind, has an expression)
                let rk = if loc {
                    match kind {
                        0 => 0,
                        1 => 1,
                        2 => 2,
                        3 => 3,
                        4 => 4,
                        5 => 100,
                        6 => 5,
                        7 => 6,
                        8 => 7,
                        _ => return Err(format!("location list entry kind {kind:#x} at {entry:#x}")),
                    }
                } else if kind <= 7 {
                    kind
                } else {
                    return Err(format!("range list entry kind {kind:#x} at {entry:#x}"));
                };
                out.push(kind);
                match rk {
                    0 => {
                        base = cu.low.unwrap_or(Addr::Other);
                        list_start = true;
                    }
                    1 => {
                        let s0 = p;
                        let i = read_uleb(b, &mut p)?;
                        base = x(i)?;
                        mv.copy(&mut out, b, s0, p)?;
                    }
                    2 => {
                        let s0 = p;
                        read_uleb(b, &mut p)?;
                        read_uleb(b, &mut p)?;
                        mv.copy(&mut out, b, s0, p)?;
                    }
                    3 => {
                        let s0 = p;
                        let i = read_uleb(b, &mut p)?;
                        let s1 = p;
                        let len = read_uleb(b, &mut p)?;
                        mv.copy(&mut out, b, s0, s1)?;
                        let len = match x(i)? {
                            Addr::Code { off, .. } => {
                                any = true;
                                r.len(off, len)?
                            }
                            Addr::Other => len,
                        };
                        uleb(&mut out, len);
                    }
                    4 => {
                        let a = read_uleb(b, &mut p)?;
                        let z = read_uleb(b, &mut p)?;
                        let (a, z) = match base {
                            Addr::Code { off, .. } => {
                                any = true;
                                let nb = r.pos(off)?;
                                let na = r.pos(off.checked_add(a).ok_or("overflow")?)? - nb;
                                let nz = r.pos(off.checked_add(z).ok_or("overflow")?)? - nb;
                                (na, nz)
                            }
                            Addr::Other => (a, z),
                        };
                        uleb(&mut out, a);
                        uleb(&mut out, z);
                    }
                    5 => {
                        base = addr_at(p)?;
                        mv.copy(&mut out, b, p, p + asize)?;
                        p += asize;
                    }
                    6 => {
                        mv.copy(&mut out, b, p, p + 2 * asize)?;
                        p += 2 * asize;
                    }
                    7 => {
                        let start = addr_at(p)?;
                        mv.copy(&mut out, b, p, p + asize)?;
                        p += asize;
                        let len = read_uleb(b, &mut p)?;
                        let len = match start {
                            Addr::Code { off, .. } => {
                                any = true;
                                r.len(off, len)?
                            }
                            Addr::Other => len,
                        };
                        uleb(&mut out, len);
                    }
                    _ => {} // DW_LLE_default_location: only the expression
                }
                if loc && rk != 0 && rk != 1 && rk != 5 {
                    let s0 = p;
                    let n = usize::try_from(read_uleb(b, &mut p)?).map_err(|_| "length")?;
                    let z = p
                        .checked_add(n)
                        .filter(|&z| z <= end)
                        .ok_or_else(|| format!("expression past the unit at {s0:#x}"))?;
                    mv.copy(&mut out, b, s0, z)?;
                    p = z;
                }
                if p > end {
                    return Err(format!("entry at {entry:#x} runs past its unit"));
                }
            }
            let len = u64::try_from(out.len() - new_unit - 4).map_err(|_| "length")?;
            if len >= 0xffff_fff0 {
                return Err(format!("unit at {at:#x} grows past 32-bit DWARF"));
            }
            wr(&mut out, new_unit, 4, len, e)?;
            // The offset table: offsets of lists relative to the body.
            for k in 0..count {
                let old = rd(b, table + 4 * k, 4, e)? + table as u64;
                // `map` grows in increasing old order.
                let new = map
                    .binary_search_by_key(&old, |m| m.0)
                    .ok()
                    .map(|i| map[i].1)
                    .and_then(|n| n.checked_sub((new_unit + 12) as u64))
                    .filter(|_| old >= body as u64)
                    .ok_or_else(|| format!("offset table entry {k} of unit at {at:#x} names no list"))?;
                wr(&mut out, new_unit + 12 + 4 * k, 4, new, e)?;
            }
            map.push((end as u64, out.len() as u64));
            at = end;
        }
        if !any {
            return Ok(None);
        }
        let mut relocs = Vec::with_capacity(s.relocs.len());
        for x in &s.relocs {
            let o = mv
                .new_offset(x.offset)
                .ok_or_else(|| format!("relocation at {:#x} on a re-encoded field", x.offset))?;
            relocs.push(RawReloc { offset: o, ..*x });
        }
        map.sort_unstable();
        map.dedup_by_key(|m| m.0);
        Ok(Some((out, relocs, map)))
    }

    /// `.debug_frame`: the new address range of every FDE whose location is in the section
    /// (`(position, value)`); an FDE with call frame instructions other than `DW_CFA_nop` is not
    /// supported (its advances would need remapping).
    fn frame(&self, fi: usize, r: &Remap<'_>) -> Res<Vec<(usize, u64)>> {
        let s = &self.sections[fi];
        let b = &s.bytes;
        let e = r.endian;
        let rel = Relocs::new(&s.relocs, r);
        let mut out = Vec::new();
        for (at, end) in units(b, e, "entry")? {
            if end == at + 4 {
                continue;
            }
            let id = rd(b, at + 4, 4, e)?;
            if id != 0xffff_ffff {
                // An FDE: CIE pointer, initial location, address range, instructions.
                if end < at + 24 {
                    return Err(format!("FDE at {at:#x} is too short"));
                }
                if let Addr::Code { off, .. } = rel.addr(b, (at + 8) as u64, 8)? {
                    if b[at + 24..end].iter().any(|&c| c != 0) {
                        return Err(format!("FDE at {at:#x} has call frame instructions"));
                    }
                    let range = rd(b, at + 16, 8, e)?;
                    out.push((at + 16, r.len(off, range)?));
                }
            }
        }
        Ok(out)
    }
}

impl Dwarf {
    /// DWARF 4 `.debug_ranges` (`loc == false`) or `.debug_loc`: the new value of every
    /// `(begin, end)` pair relative to a base in the rewritten section (`(position, value)`),
    /// walking each list a unit references from its start with the unit's `DW_AT_low_pc` as the
    /// first base. Relocated pairs and base selections are absolute addresses (remapped with the
    /// other relocated fields); a pair with one relocated half is not supported.
    fn lists4(
        &self,
        si: usize,
        loc: bool,
        refs: &[(usize, u64)],
        f: &InfoFacts,
        r: &Remap<'_>,
    ) -> Res<Vec<(usize, u64)>> {
        let s = &self.sections[si];
        let b = &s.bytes;
        let e = r.endian;
        let rel = Relocs::new(&s.relocs, r);
        let mut refs = refs.to_vec();
        refs.sort_unstable_by_key(|x| x.1);
        refs.dedup_by_key(|x| x.1);
        let mut out = Vec::new();
        for &(cu, start) in &refs {
            let mut base = f.cus.get(cu).and_then(|c| c.low).unwrap_or(Addr::Other);
            let mut p = usize::try_from(start).map_err(|_| "offset")?;
            loop {
                let (begin, end) = (rd(b, p, 8, e)?, rd(b, p + 8, 8, e)?);
                let (rb, re) = (rel.at(p as u64).is_some(), rel.at(p as u64 + 8).is_some());
                if !rb && !re && begin == 0 && end == 0 {
                    break;
                }
                if begin == u64::MAX && !rb {
                    base = rel.addr(b, p as u64 + 8, 8)?;
                    p += 16;
                    continue;
                }
                if rb != re {
                    return Err(format!("entry at {p:#x} has one relocated address"));
                }
                if let (false, Addr::Code { off, .. }) = (rb, base) {
                    let nb = r.pos(off)?;
                    let at = |v: u64| off.checked_add(v).ok_or_else(|| "overflow".to_string()).and_then(|a| r.pos(a));
                    out.push((p, at(begin)? - nb));
                    out.push((p + 8, at(end)? - nb));
                }
                p += 16;
                if loc {
                    let n = usize::try_from(rd(b, p, 2, e)?).map_err(|_| "length")?;
                    p = p.checked_add(2 + n).ok_or("overflow")?;
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// `.debug_aranges`: the new length of every `(address, length)` tuple whose address is in
    /// the rewritten section (`(position, value)`).
    fn aranges(&self, ai: usize, r: &Remap<'_>) -> Res<Vec<(usize, u64)>> {
        let s = &self.sections[ai];
        let b = &s.bytes;
        let e = r.endian;
        let rel = Relocs::new(&s.relocs, r);
        let mut out = Vec::new();
        for (at, end) in units(b, e, "set")? {
            let (asize, seg) = (rd(b, at + 10, 1, e)?, rd(b, at + 11, 1, e)?);
            if asize != 8 || seg != 0 {
                return Err(format!("set at {at:#x}: address size {asize}, segment size {seg}"));
            }
            // Tuples start at the first multiple of twice the address size after the header.
            let mut p = at + 16;
            while p + 16 <= end {
                let (a, l) = (rd(b, p, 8, e)?, rd(b, p + 8, 8, e)?);
                if a == 0 && l == 0 && rel.at(p as u64).is_none() {
                    break;
                }
                if let Addr::Code { off, .. } = rel.addr(b, p as u64, 8)? {
                    out.push((p + 8, r.len(off, l)?));
                }
                p += 16;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{LineWriter, RawReloc, Row, RunTimeEndian};
    use crate::reloc_type::R_BPF_64_ABS64;
    use bpfpatch_insn::Endian;
    use gimli::write::{Address, DebugLine, DebugLineStrOffsets, DebugStrOffsets, EndianVec, LineProgram, LineString};
    use proptest::prelude::*;

    /// A `gimli::write::Writer` that records relocations REL-style (addend in place).
    struct RelWriter {
        buf: gimli::write::EndianVec<RunTimeEndian>,
        relocs: Vec<(usize, u32, u64)>,
    }

    impl gimli::write::Writer for RelWriter {
        type Endian = RunTimeEndian;
        fn endian(&self) -> RunTimeEndian {
            self.buf.endian()
        }
        fn len(&self) -> usize {
            self.buf.len()
        }
        fn write(&mut self, bytes: &[u8]) -> gimli::write::Result<()> {
            self.buf.write(bytes)
        }
        fn write_at(&mut self, offset: usize, bytes: &[u8]) -> gimli::write::Result<()> {
            self.buf.write_at(offset, bytes)
        }
        fn write_address(&mut self, address: gimli::write::Address, size: u8) -> gimli::write::Result<()> {
            match address {
                gimli::write::Address::Constant(v) => self.buf.write_udata(v, size),
                gimli::write::Address::Symbol { symbol, addend } => {
                    self.relocs.push((
                        self.buf.len(),
                        u32::try_from(symbol).unwrap_or(u32::MAX),
                        addend.cast_unsigned(),
                    ));
                    self.buf.write_udata(addend.cast_unsigned(), size)
                }
            }
        }
    }

    /// What gimli's writer makes of `seqs` (the program bytes after its header, and the
    /// relocations at offsets into them), with the file numbering `Dwarf::line` used with it.
    fn by_gimli(
        version: u16,
        le: gimli::LineEncoding,
        e: Endian,
        seqs: &[(Vec<(Row, u64)>, u64)],
    ) -> (Vec<u8>, Vec<usize>) {
        let enc = gimli::Encoding { format: gimli::Format::Dwarf32, version, address_size: 8 };
        let mut lp = LineProgram::new(
            enc,
            le,
            LineString::String(b"w".to_vec()),
            None,
            LineString::String(b"f0".to_vec()),
            None,
        );
        let dir = lp.default_directory();
        let mut ids: Vec<gimli::write::FileId> = lp.files().map(|f| f.0).collect();
        for k in ids.len()..=8 {
            ids.push(lp.add_file(LineString::String(format!("f{k}").into_bytes()), dir, None));
        }
        for (k, (rows, end)) in seqs.iter().enumerate() {
            let first = rows.first().map_or(0, |r| r.1);
            lp.begin_sequence(Some(if k % 2 == 0 {
                Address::Symbol { symbol: 3, addend: first.cast_signed() }
            } else {
                Address::Constant(first)
            }));
            for (x, new) in rows {
                let row = lp.row();
                row.address_offset = new - first;
                row.file = ids[usize::try_from(if version < 5 { x.file - 1 } else { x.file }).unwrap()];
                row.line = x.line;
                row.column = x.column;
                row.discriminator = x.discriminator;
                row.is_statement = x.is_stmt;
                row.basic_block = x.basic_block;
                row.prologue_end = x.prologue_end;
                row.epilogue_begin = x.epilogue_begin;
                row.isa = x.isa;
                lp.generate_row();
            }
            lp.end_sequence(end - first);
        }
        let endian = if e == Endian::Little { RunTimeEndian::Little } else { RunTimeEndian::Big };
        let mut w = DebugLine(RelWriter { buf: EndianVec::new(endian), relocs: Vec::new() });
        lp.write(&mut w, enc, &DebugLineStrOffsets::none(), &DebugStrOffsets::none()).unwrap();
        let buf = w.0.buf.into_vec();
        let hl_at = 6 + if version >= 5 { 2 } else { 0 };
        let hl = u32::from_le_bytes(buf[hl_at..hl_at + 4].try_into().unwrap());
        let hl = if e == Endian::Little { hl } else { hl.swap_bytes() };
        let prog = hl_at + 4 + hl as usize;
        (buf[prog..].to_vec(), w.0.relocs.iter().map(|r| r.0 - prog).collect())
    }

    fn row() -> impl Strategy<Value = (Row, u64)> {
        // Below 2^62: gimli's writer subtracts lines as i64 (overflow checks in test builds).
        let big = prop_oneof![0u64..4, 0u64..300, 0u64..1 << 62];
        (1u64..=8, big.clone(), 0u64..200, prop_oneof![Just(0u64), 0u64..1000], 0u64..3, any::<[bool; 4]>(), 0u64..40)
            .prop_map(|(file, line, column, discriminator, isa, f, step)| {
                let x = Row {
                    addr: 0,
                    file,
                    line,
                    column,
                    discriminator,
                    isa,
                    is_stmt: f[0],
                    basic_block: f[1],
                    prologue_end: f[2],
                    epilogue_begin: f[3],
                };
                (x, step)
            })
    }

    proptest! {
        /// `LineWriter` writes what gimli's `write::LineProgram` writes, byte for byte and
        /// relocation for relocation, for any rows and line encoding `Dwarf::line` accepts.
        #[test]
        fn writer_is_gimlis(
            version in 2u16..=5,
            unit in prop_oneof![Just(1u8), Just(2), Just(4), Just(8)],
            line_base in -20i8..=0,
            line_range in 1u8..=30,
            default_is_stmt: bool,
            big_endian: bool,
            seqs in prop::collection::vec((prop::collection::vec(row(), 0..40), 0u64..1000), 0..4),
        ) {
            // What `Dwarf::line` accepts (gimli's writer asserts it).
            prop_assume!(i16::from(line_base) + i16::from(line_range) > 0);
            let le = gimli::LineEncoding { minimum_instruction_length: unit, maximum_operations_per_instruction: 1, default_is_stmt, line_base, line_range };
            let e = if big_endian { Endian::Big } else { Endian::Little };
            // Absolute new addresses: increasing, multiples of the unit from a base.
            let seqs: Vec<(Vec<(Row, u64)>, u64)> = seqs
                .into_iter()
                .map(|(rows, tail)| {
                    let mut a = 0x1000u64;
                    let rows: Vec<(Row, u64)> = rows.into_iter().map(|(x, step)| { a += step * u64::from(unit) * 37; (x, a) }).collect();
                    (rows, a + tail * u64::from(unit))
                })
                .collect();
            let want = by_gimli(version, le, e, &seqs);
            let (mut out, mut relocs) = (Vec::new(), Vec::new());
            let mut w = LineWriter::new(&mut out, &mut relocs, le, e);
            for (k, (rows, end)) in seqs.iter().enumerate() {
                let first = rows.first().map_or(0, |r| r.1);
                w.begin_sequence((k % 2 == 0).then_some((3, first.cast_signed())), first);
                for (x, new) in rows {
                    w.row(x, new - first);
                }
                w.end_sequence(end - first);
            }
            prop_assert_eq!(&out, &want.0);
            prop_assert!(relocs.iter().all(|r: &RawReloc| r.sym == 3 && r.r_type == R_BPF_64_ABS64 && r.addend == 0));
            prop_assert_eq!(relocs.iter().map(|r| r.offset).collect::<Vec<_>>(), want.1.iter().map(|&o| o as u64).collect::<Vec<_>>());
        }
    }
}
