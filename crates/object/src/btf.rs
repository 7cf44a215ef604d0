//! The `.BTF` section: header, string table and, on request, the type table.
//!
//! [`Btf::parse`] interprets the header and the strings (line text and file names of `.BTF.ext`
//! line info, the section names its blocks are keyed by) and keeps the type area as bytes, so an
//! object with a type area we cannot read still parses. [`BtfTypes::parse`] reads the type area
//! into records ([`BtfType`]) for what needs the types (the listing's CO-RE descriptions). The
//! section itself is never re-encoded (the writer copies it), so nothing here needs an encoder.
//!
//! The type table is read the way llvm's `BTFParser` reads it (`llvm-objdump -r` describes CO-RE
//! relocations from it): a record is the 12-byte common part plus the tail its kind implies
//! (`INT`, `VAR`, `DECL_TAG`: 4 bytes; `ARRAY`: 12; `STRUCT`/`UNION`: 12 per member; `ENUM`: 8
//! per value; `ENUM64`: 12 per value; `FUNC_PROTO`: 8 per parameter; `DATASEC`: 12 per
//! variable; every other kind, known or not: none); id 0 is `void`; a record that does not fit
//! in the area is an error. References between types are not checked here: a reader follows
//! them through [`BtfTypes::get`], which answers `None` for an id past the table.

use crate::error::BtfError;
use bpfpatch_insn::Endian;

/// The `.BTF` magic.
pub const BTF_MAGIC: u16 = 0xeb9f;

/// Reads the `u16` at `at` in `e` order.
pub(crate) fn rd16(b: &[u8], at: usize, e: Endian) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(match e {
        Endian::Little => u16::from_le_bytes(s),
        Endian::Big => u16::from_be_bytes(s),
    })
}

/// Reads the `u32` at `at` in `e` order.
pub(crate) fn rd32(b: &[u8], at: usize, e: Endian) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(match e {
        Endian::Little => u32::from_le_bytes(s),
        Endian::Big => u32::from_be_bytes(s),
    })
}

/// The byte order a `0xeB9F` magic at the start of `b` is written in, or the magic read
/// little-endian when it matches neither.
pub(crate) fn magic_endian(b: &[u8]) -> Result<Endian, u16> {
    let le = rd16(b, 0, Endian::Little).unwrap_or(0);
    if le == BTF_MAGIC {
        Ok(Endian::Little)
    } else if le.swap_bytes() == BTF_MAGIC {
        Ok(Endian::Big)
    } else {
        Err(le)
    }
}

/// A parsed `.BTF` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Btf {
    endian: Endian,
    version: u8,
    flags: u8,
    hdr_len: u32,
    types: core::ops::Range<usize>,
    strings: core::ops::Range<usize>,
    bytes: Vec<u8>,
}

impl Btf {
    /// Parses a `.BTF` section (either byte order, detected from the magic).
    ///
    /// # Errors
    /// A [`BtfError`] for a short section, bad magic, bad header length or an area outside the
    /// section.
    pub fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
        let len = bytes.len() as u64;
        if bytes.len() < 24 {
            return Err(BtfError::TooShort { len });
        }
        let endian = magic_endian(bytes).map_err(|magic| BtfError::BadMagic { magic })?;
        let f = |at| rd32(bytes, at, endian).unwrap_or(0);
        let hdr_len = f(4);
        if hdr_len < 24 || u64::from(hdr_len) > len {
            return Err(BtfError::BadHeaderLen { hdr_len, len });
        }
        let area = |what, off: u32, size: u32| {
            let start = u64::from(hdr_len) + u64::from(off);
            let end = start + u64::from(size);
            if end > len {
                return Err(BtfError::AreaOutOfBounds { what, offset: start, size: u64::from(size), len });
            }
            // Both ends are <= len, which is a usize.
            Ok(usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0))
        };
        let types = area("type", f(8), f(12))?;
        let strings = area("string", f(16), f(20))?;
        Ok(Btf { endian, version: bytes[2], flags: bytes[3], hdr_len, types, strings, bytes: bytes.to_vec() })
    }

    /// The NUL-terminated string at `offset`, read as llvm's `BTFParser::findString` reads it:
    /// up to the first NUL or the end of the area, empty for an offset past it (lossy UTF-8).
    /// [`Btf::string`] is the strict reading.
    #[must_use]
    pub fn string_lenient(&self, offset: u32) -> String {
        let area = self.string_bytes();
        let rest = usize::try_from(offset).ok().and_then(|o| area.get(o..)).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    }

    /// Byte order of the section.
    #[must_use]
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The header's version byte.
    #[must_use]
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The header's flags byte.
    #[must_use]
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The header's length.
    #[must_use]
    pub fn hdr_len(&self) -> u32 {
        self.hdr_len
    }

    /// The raw type area.
    #[must_use]
    pub fn type_bytes(&self) -> &[u8] {
        self.bytes.get(self.types.clone()).unwrap_or_default()
    }

    /// The raw string area.
    #[must_use]
    pub fn string_bytes(&self) -> &[u8] {
        self.bytes.get(self.strings.clone()).unwrap_or_default()
    }

    /// The NUL-terminated string at `offset` in the string area (lossy UTF-8).
    ///
    /// # Errors
    /// [`BtfError::BadString`] when `offset` is past the area or the string is unterminated.
    pub fn string(&self, offset: u32) -> Result<String, BtfError> {
        let area = self.string_bytes();
        let bad = || BtfError::BadString { offset, len: area.len() as u64 };
        let start = usize::try_from(offset).map_err(|_| bad())?;
        let rest = area.get(start..).ok_or_else(bad)?;
        let nul = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
        Ok(String::from_utf8_lossy(&rest[..nul]).into_owned())
    }
}

/// `BTF_KIND_*`: the kind field (bits 24-28) of a type's `info`.
pub mod kind {
    /// Unknown / `void` (id 0 only).
    pub const UNKN: u8 = 0;
    /// Integer.
    pub const INT: u8 = 1;
    /// Pointer.
    pub const PTR: u8 = 2;
    /// Array.
    pub const ARRAY: u8 = 3;
    /// Struct.
    pub const STRUCT: u8 = 4;
    /// Union.
    pub const UNION: u8 = 5;
    /// Enumeration of 32-bit values.
    pub const ENUM: u8 = 6;
    /// Forward declaration.
    pub const FWD: u8 = 7;
    /// Typedef.
    pub const TYPEDEF: u8 = 8;
    /// `volatile` modifier.
    pub const VOLATILE: u8 = 9;
    /// `const` modifier.
    pub const CONST: u8 = 10;
    /// `restrict` modifier.
    pub const RESTRICT: u8 = 11;
    /// Function.
    pub const FUNC: u8 = 12;
    /// Function prototype.
    pub const FUNC_PROTO: u8 = 13;
    /// Variable.
    pub const VAR: u8 = 14;
    /// Data section.
    pub const DATASEC: u8 = 15;
    /// Floating point.
    pub const FLOAT: u8 = 16;
    /// Declaration tag.
    pub const DECL_TAG: u8 = 17;
    /// Type tag modifier.
    pub const TYPE_TAG: u8 = 18;
    /// Enumeration of 64-bit values.
    pub const ENUM64: u8 = 19;
}

/// One record of the type area: the common part (`struct btf_type`) and the 32-bit words of its
/// kind's tail, decoded in the section's byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfType {
    /// String offset of the name (0: anonymous).
    pub name_off: u32,
    /// `info`: vlen (bits 0-15), kind (bits 24-28), kind_flag (bit 31).
    pub info: u32,
    /// `size` or `type`, by kind.
    pub size_or_type: u32,
    /// Byte offset of the record inside the section.
    pub offset: u64,
    tail: Vec<u32>,
}

/// A struct or union member (`struct btf_member`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfMember {
    /// String offset of the name (0: anonymous).
    pub name_off: u32,
    /// The member's type id.
    pub type_id: u32,
    /// Bit offset, or bitfield size (bits 24-31) and bit offset (bits 0-23) under kind_flag.
    pub offset: u32,
}

/// An enumerator of an `ENUM` or `ENUM64` type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfEnumValue {
    /// String offset of the name.
    pub name_off: u32,
    /// The value's 64 bits: an `ENUM` value is sign-extended from its 32 bits (as llvm's
    /// `BTFParser` reads it); whether it is signed is the type's kind_flag.
    pub bits: u64,
}

/// The tail of an `ARRAY` type (`struct btf_array`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfArray {
    /// Element type id.
    pub elem_type: u32,
    /// Index type id.
    pub index_type: u32,
    /// Number of elements.
    pub nelems: u32,
}

impl BtfType {
    /// The kind ([`kind`]).
    #[must_use]
    pub fn kind(&self) -> u8 {
        // Five bits: always fits.
        ((self.info >> 24) & 0x1f) as u8
    }

    /// The vlen field (members, values, parameters or variables that follow).
    #[must_use]
    pub fn vlen(&self) -> u16 {
        (self.info & 0xffff) as u16
    }

    /// The kind_flag bit (bitfield members, union forward declarations, signed enums).
    #[must_use]
    pub fn kind_flag(&self) -> bool {
        self.info >> 31 != 0
    }

    /// Whether the kind is a modifier (`const`, `volatile`, `restrict`, type tag).
    #[must_use]
    pub fn is_modifier(&self) -> bool {
        matches!(self.kind(), kind::CONST | kind::VOLATILE | kind::RESTRICT | kind::TYPE_TAG)
    }

    /// The members of a `STRUCT` or `UNION` (empty for other kinds).
    #[must_use]
    pub fn members(&self) -> Vec<BtfMember> {
        if !matches!(self.kind(), kind::STRUCT | kind::UNION) {
            return Vec::new();
        }
        self.tail.chunks_exact(3).map(|w| BtfMember { name_off: w[0], type_id: w[1], offset: w[2] }).collect()
    }

    /// The enumerators of an `ENUM` or `ENUM64` (empty for other kinds).
    #[must_use]
    pub fn enum_values(&self) -> Vec<BtfEnumValue> {
        match self.kind() {
            kind::ENUM => self
                .tail
                .chunks_exact(2)
                .map(|w| BtfEnumValue { name_off: w[0], bits: i64::from(w[1].cast_signed()).cast_unsigned() })
                .collect(),
            kind::ENUM64 => self
                .tail
                .chunks_exact(3)
                .map(|w| BtfEnumValue { name_off: w[0], bits: u64::from(w[2]) << 32 | u64::from(w[1]) })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The tail of an `ARRAY` (`None` for other kinds).
    #[must_use]
    pub fn array(&self) -> Option<BtfArray> {
        match (self.kind(), self.tail.as_slice()) {
            (kind::ARRAY, &[elem_type, index_type, nelems]) => Some(BtfArray { elem_type, index_type, nelems }),
            _ => None,
        }
    }
}

/// The number of tail words of a record of kind `k` with `vlen` entries (llvm's `byteSize`).
fn tail_words(k: u8, vlen: u16) -> usize {
    let n = usize::from(vlen);
    match k {
        kind::INT | kind::VAR | kind::DECL_TAG => 1,
        kind::ARRAY => 3,
        kind::STRUCT | kind::UNION | kind::ENUM64 | kind::DATASEC => 3 * n,
        kind::ENUM | kind::FUNC_PROTO => 2 * n,
        _ => 0,
    }
}

/// The type table of a `.BTF` section: [`BtfType`] by id, id 0 being `void`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfTypes {
    types: Vec<BtfType>,
}

impl BtfTypes {
    /// Reads the type area of `btf`, whose byte order must be `endian` (the object's, from its
    /// ELF header).
    ///
    /// # Errors
    /// [`BtfError::ByteOrder`] when the section's magic is in the other byte order,
    /// [`BtfError::BadVersion`] for a version other than 1 (the only one whose type records are
    /// defined), [`BtfError::TruncatedType`] for a record that does not fit in the area.
    pub fn parse(btf: &Btf, endian: Endian) -> Result<BtfTypes, BtfError> {
        if btf.endian != endian {
            return Err(BtfError::ByteOrder { elf: endian, btf: btf.endian });
        }
        if btf.version != 1 {
            return Err(BtfError::BadVersion { version: btf.version });
        }
        let area = btf.type_bytes();
        let base = btf.types.start as u64;
        let word = |at: usize| rd32(area, at, endian).unwrap_or(0);
        let void = BtfType { name_off: 0, info: 0, size_or_type: 0, offset: 0, tail: Vec::new() };
        let mut types = vec![void];
        let mut pos = 0usize;
        while pos < area.len() {
            let left = area.len() - pos;
            let id = u32::try_from(types.len()).unwrap_or(u32::MAX);
            let offset = base + pos as u64;
            if left < 12 {
                return Err(BtfError::TruncatedType { id, offset, need: 12, left: left as u64 });
            }
            let (name_off, info, size_or_type) = (word(pos), word(pos + 4), word(pos + 8));
            let k = ((info >> 24) & 0x1f) as u8;
            let words = tail_words(k, (info & 0xffff) as u16);
            let need = 12 + 4 * words;
            if left < need {
                return Err(BtfError::TruncatedType { id, offset, need: need as u64, left: left as u64 });
            }
            let tail = (0..words).map(|i| word(pos + 12 + 4 * i)).collect();
            types.push(BtfType { name_off, info, size_or_type, offset, tail });
            pos += need;
        }
        Ok(BtfTypes { types })
    }

    /// The type of id `id`; `None` past the table. Id 0 is `void` (kind [`kind::UNKN`]).
    #[must_use]
    pub fn get(&self, id: u32) -> Option<&BtfType> {
        self.types.get(usize::try_from(id).ok()?)
    }

    /// The number of ids (the types plus `void`).
    #[must_use]
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether the table holds `void` only (never empty otherwise).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    /// The type `id` with its modifiers and typedefs skipped: the id reached by following
    /// `type` from `id` while the type is a modifier or a typedef, stopping at an id past the
    /// table (as llvm's `skipModsAndTypedefs`).
    ///
    /// # Errors
    /// [`BtfError::TypeLoop`] when the chain comes back on itself (it is longer than the table).
    pub fn skip_mods_and_typedefs(&self, id: u32) -> Result<u32, BtfError> {
        let mut cur = id;
        for _ in 0..self.types.len() {
            match self.get(cur) {
                Some(t) if t.is_modifier() || t.kind() == kind::TYPEDEF => {
                    if self.get(t.size_or_type).is_none() {
                        return Ok(cur);
                    }
                    cur = t.size_or_type;
                }
                _ => return Ok(cur),
            }
        }
        Err(BtfError::TypeLoop { id })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
    use super::*;

    /// A version-1 `.BTF` section of `types` (raw bytes) and `strings` in `e` order.
    fn section(types: &[u8], strings: &[u8], e: Endian) -> Vec<u8> {
        let w = |v: u32| match e {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let mut b = match e {
            Endian::Little => BTF_MAGIC.to_le_bytes(),
            Endian::Big => BTF_MAGIC.to_be_bytes(),
        }
        .to_vec();
        b.extend([1, 0]);
        let tl = types.len() as u32;
        for v in [24, 0, tl, tl, strings.len() as u32] {
            b.extend(w(v));
        }
        b.extend(types);
        b.extend(strings);
        b
    }

    fn words(ws: &[u32], e: Endian) -> Vec<u8> {
        ws.iter()
            .flat_map(|&v| match e {
                Endian::Little => v.to_le_bytes(),
                Endian::Big => v.to_be_bytes(),
            })
            .collect()
    }

    fn info(k: u8, vlen: u32) -> u32 {
        u32::from(k) << 24 | vlen
    }

    /// int; struct s { int a; int b; }; enum e { X = -1 } (32-bit); enum64 f { Y = 2^32 + 5 };
    /// int[4]; an unknown kind 31 (no tail, as llvm reads it); a func_proto with one parameter.
    fn sample() -> Vec<u32> {
        vec![
            1,
            info(kind::INT, 0),
            4,
            32, //
            3,
            info(kind::STRUCT, 2),
            8,
            5,
            1,
            0,
            7,
            1,
            32, //
            9,
            info(kind::ENUM, 1),
            4,
            11,
            u32::MAX, //
            13,
            info(kind::ENUM64, 1),
            8,
            15,
            5,
            1, //
            0,
            info(kind::ARRAY, 0),
            0,
            1,
            1,
            4, //
            0,
            info(31, 0),
            0, //
            0,
            info(kind::FUNC_PROTO, 1),
            1,
            0,
            1,
        ]
    }

    const STRS: &[u8] = b"\0int\0s\0a\0e\0X\0f\0Y\0";

    #[test]
    fn reads_every_record_in_both_byte_orders() {
        let mut tables = Vec::new();
        for e in [Endian::Little, Endian::Big] {
            let btf = Btf::parse(&section(&words(&sample(), e), STRS, e)).unwrap();
            let t = BtfTypes::parse(&btf, e).unwrap();
            assert_eq!(t.len(), 8);
            assert_eq!(t.get(0).unwrap().kind(), kind::UNKN);
            assert!(t.get(8).is_none() && t.get(u32::MAX).is_none());
            let s = t.get(2).unwrap();
            assert_eq!((s.kind(), s.vlen(), s.offset), (kind::STRUCT, 2, 24 + 16));
            assert_eq!(
                s.members(),
                [BtfMember { name_off: 5, type_id: 1, offset: 0 }, BtfMember { name_off: 7, type_id: 1, offset: 32 }]
            );
            assert_eq!(btf.string_lenient(s.members()[1].name_off), "a");
            assert_eq!(t.get(3).unwrap().enum_values(), [BtfEnumValue { name_off: 11, bits: u64::MAX }]);
            assert_eq!(t.get(4).unwrap().enum_values(), [BtfEnumValue { name_off: 15, bits: (1 << 32) | 5 }]);
            assert_eq!(t.get(5).unwrap().array(), Some(BtfArray { elem_type: 1, index_type: 1, nelems: 4 }));
            assert_eq!(t.get(6).unwrap().kind(), 31);
            assert!(t.get(6).unwrap().members().is_empty() && t.get(1).unwrap().array().is_none());
            tables.push(t);
        }
        assert_eq!(tables[0], tables[1]);
    }

    /// The byte order is the object's: a section in the other order is refused, not guessed.
    #[test]
    fn refuses_a_section_in_the_other_byte_order() {
        let btf = Btf::parse(&section(&words(&sample(), Endian::Big), STRS, Endian::Big)).unwrap();
        assert_eq!(
            BtfTypes::parse(&btf, Endian::Little),
            Err(BtfError::ByteOrder { elf: Endian::Little, btf: Endian::Big })
        );
        let mut v2 = section(&[], STRS, Endian::Little);
        v2[2] = 2;
        let btf = Btf::parse(&v2).unwrap();
        assert_eq!(BtfTypes::parse(&btf, Endian::Little), Err(BtfError::BadVersion { version: 2 }));
    }

    /// Every cut of the type area inside a record is a typed error naming the record; a cut on
    /// a record boundary is a shorter table. Never a panic.
    #[test]
    fn truncated_type_areas_are_errors() {
        let all = words(&sample(), Endian::Little);
        let bounds = [0usize, 16, 52, 72, 96, 120, 132, 152];
        for cut in 0..=all.len() {
            let btf = Btf::parse(&section(&all[..cut], STRS, Endian::Little)).unwrap();
            let r = BtfTypes::parse(&btf, Endian::Little);
            match bounds.iter().position(|&b| b == cut) {
                Some(n) => assert_eq!(r.unwrap().len(), n + 1, "cut {cut}"),
                None => {
                    let at = bounds.iter().rposition(|&b| b < cut).unwrap();
                    let Err(BtfError::TruncatedType { id, offset, left, .. }) = r else { panic!("cut {cut}: {r:?}") };
                    assert_eq!(
                        (id as usize, offset, left),
                        (at + 1, 24 + bounds[at] as u64, (cut - bounds[at]) as u64)
                    );
                }
            }
        }
        // A vlen of 0xffff members in a 12-byte record: refused before reading past the area.
        let huge = words(&[0, info(kind::STRUCT, 0xffff), 0], Endian::Little);
        let btf = Btf::parse(&section(&huge, STRS, Endian::Little)).unwrap();
        assert_eq!(
            BtfTypes::parse(&btf, Endian::Little),
            Err(BtfError::TruncatedType { id: 1, offset: 24, need: 12 + 12 * 0xffff, left: 12 })
        );
    }

    /// Type references past the table and strings past the area are answered, not followed.
    #[test]
    fn bad_references_and_strings() {
        let btf =
            Btf::parse(&section(&words(&[0, info(kind::TYPEDEF, 0), 77], Endian::Little), b"\0ab", Endian::Little))
                .unwrap();
        let t = BtfTypes::parse(&btf, Endian::Little).unwrap();
        // The typedef's target does not exist: the chain stops at the typedef.
        assert_eq!(t.skip_mods_and_typedefs(1), Ok(1));
        assert_eq!(t.skip_mods_and_typedefs(5), Ok(5));
        assert_eq!(btf.string_lenient(1), "ab"); // unterminated: to the end, as llvm
        assert_eq!(btf.string_lenient(3), "");
        assert_eq!(btf.string_lenient(u32::MAX), "");
        assert!(btf.string(1).is_err());
    }

    /// Chains of typedefs and modifiers that loop end with an error after at most one step per
    /// type, iteratively (a chain of 100 000 is followed without recursion).
    #[test]
    fn loops_in_type_chains_end() {
        // [1] typedef -> [2] const -> [3] volatile -> [1].
        let ring = [0, info(kind::TYPEDEF, 0), 2, 0, info(kind::CONST, 0), 3, 0, info(kind::VOLATILE, 0), 1];
        let btf = Btf::parse(&section(&words(&ring, Endian::Big), b"\0", Endian::Big)).unwrap();
        let t = BtfTypes::parse(&btf, Endian::Big).unwrap();
        for id in 1..=3 {
            assert_eq!(t.skip_mods_and_typedefs(id), Err(BtfError::TypeLoop { id }));
        }
        // A self-referencing typedef.
        let me = [0, info(kind::TYPEDEF, 0), 1];
        let btf = Btf::parse(&section(&words(&me, Endian::Little), b"\0", Endian::Little)).unwrap();
        assert_eq!(
            BtfTypes::parse(&btf, Endian::Little).unwrap().skip_mods_and_typedefs(1),
            Err(BtfError::TypeLoop { id: 1 })
        );
        // A long chain ending on int: [n] const -> [n-1] ... -> [1] int.
        let n = 100_000u32;
        let mut chain = vec![0, info(kind::INT, 0), 4, 32];
        for i in 2..=n {
            chain.extend([0, info(kind::CONST, 0), i - 1]);
        }
        let btf = Btf::parse(&section(&words(&chain, Endian::Little), b"\0", Endian::Little)).unwrap();
        let t = BtfTypes::parse(&btf, Endian::Little).unwrap();
        assert_eq!(t.skip_mods_and_typedefs(n), Ok(1));
    }
}
