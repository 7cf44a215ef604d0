//! The `.BTF` section: header and string table.
//!
//! Only the strings are interpreted (line text and file names of `.BTF.ext` line info, the
//! section names its blocks are keyed by). The type area is kept as bytes; the section itself is
//! never re-encoded (the writer copies it), so nothing here needs an encoder.

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
