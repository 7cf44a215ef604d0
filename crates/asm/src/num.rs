//! Number parsing shared by both assemblers.
//!
//! A number is an optional sign, then decimal digits or `0x`/`0X` and hex digits. Decimal numbers
//! are values and must fit the field's signed range (for ld_imm64, also the unsigned range).
//! Unsigned hex numbers are bit patterns and must fit the field's width (`0x80000000` is `i32::MIN`
//! in an immediate); signed hex numbers are values like decimals.

use crate::error::AsmErrorKind;

/// A parsed number: its sign, magnitude and whether it was written in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Number {
    /// A leading `-`.
    pub negative: bool,
    /// A leading `+` or `-`.
    pub signed: bool,
    /// `0x` prefix.
    pub hex: bool,
    /// The magnitude.
    pub magnitude: u64,
}

impl Number {
    /// The signed value.
    pub(crate) fn value(self) -> i128 {
        let m = i128::from(self.magnitude);
        if self.negative { -m } else { m }
    }
}

/// Parses `text` as a number, without range checks beyond `u64` magnitude.
pub(crate) fn parse(text: &str) -> Result<Number, AsmErrorKind> {
    let bad = || AsmErrorKind::BadNumber(text.to_owned());
    let (negative, signed, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, true, &text[1..]),
        Some(b'+') => (false, true, &text[1..]),
        _ => (false, false, text),
    };
    let (hex, digits) = match rest.get(..2) {
        Some("0x" | "0X") => (true, &rest[2..]),
        _ => (false, rest),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let radix = if hex { 16 } else { 10 };
    if !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return Err(bad());
    }
    let magnitude = u64::from_str_radix(digits, radix).map_err(|_| AsmErrorKind::OutOfRange {
        what: "number",
        text: text.to_owned(),
        min: -i128::from(u64::MAX),
        max: i128::from(u64::MAX),
    })?;
    Ok(Number { negative, signed, hex, magnitude })
}

fn out_of_range(what: &'static str, text: &str, min: i128, max: i128) -> AsmErrorKind {
    AsmErrorKind::OutOfRange { what, text: text.to_owned(), min, max }
}

/// A 32-bit immediate: a decimal (or signed hex) value in `i32` range, or an unsigned hex bit
/// pattern up to `0xffffffff`.
pub(crate) fn imm32(text: &str) -> Result<i32, AsmErrorKind> {
    let n = parse(text)?;
    if n.hex && !n.signed {
        let v = u32::try_from(n.magnitude).map_err(|_| out_of_range("immediate", text, 0, u32::MAX.into()))?;
        return Ok(i32::from_ne_bytes(v.to_ne_bytes()));
    }
    i32::try_from(n.value()).map_err(|_| out_of_range("immediate", text, i32::MIN.into(), i32::MAX.into()))
}

/// A 64-bit immediate: any value in `i64::MIN..=u64::MAX`, as its two's-complement bit pattern.
pub(crate) fn imm64(text: &str) -> Result<u64, AsmErrorKind> {
    let n = parse(text)?;
    let v = n.value();
    if v < i128::from(i64::MIN) {
        return Err(out_of_range("immediate", text, i64::MIN.into(), u64::MAX.into()));
    }
    // `v` is in i64::MIN..=u64::MAX, so its low 64 bits are the bit pattern.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bits = v as u64;
    Ok(bits)
}

/// A signed value in `min..=max` (offsets, jump distances); hex is a value here, not a pattern.
pub(crate) fn signed_in(text: &str, what: &'static str, min: i64, max: i64) -> Result<i64, AsmErrorKind> {
    let v = parse(text)?.value();
    if v < i128::from(min) || v > i128::from(max) {
        return Err(out_of_range(what, text, min.into(), max.into()));
    }
    // In range of i64 by the check above.
    #[allow(clippy::cast_possible_truncation)]
    let v = v as i64;
    Ok(v)
}

/// A 16-bit signed value (memory offsets, short jump distances).
pub(crate) fn i16_in(text: &str, what: &'static str) -> Result<i16, AsmErrorKind> {
    let v = signed_in(text, what, i16::MIN.into(), i16::MAX.into())?;
    i16::try_from(v).map_err(|_| out_of_range(what, text, i16::MIN.into(), i16::MAX.into()))
}

/// A 32-bit immediate as llvm-mc reads it: any value in `i32::MIN..=u32::MAX`, decimal or hex,
/// stored as its low 32 bits (`4294967295` and `0xffffffff` are both `-1`).
pub(crate) fn imm32_llvm(text: &str) -> Result<i32, AsmErrorKind> {
    let v = parse(text)?.value();
    if v < i128::from(i32::MIN) || v > i128::from(u32::MAX) {
        return Err(out_of_range("immediate", text, i32::MIN.into(), u32::MAX.into()));
    }
    // In i32::MIN..=u32::MAX: the low 32 bits are the bit pattern.
    #[allow(clippy::cast_possible_truncation)]
    let bits = v as i32;
    Ok(bits)
}

/// A 32-bit signed value (long jump and call distances).
pub(crate) fn i32_in(text: &str, what: &'static str) -> Result<i32, AsmErrorKind> {
    let v = signed_in(text, what, i32::MIN.into(), i32::MAX.into())?;
    i32::try_from(v).map_err(|_| out_of_range(what, text, i32::MIN.into(), i32::MAX.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imm32_forms() {
        assert_eq!(imm32("1"), Ok(1));
        assert_eq!(imm32("-1"), Ok(-1));
        assert_eq!(imm32("2147483647"), Ok(i32::MAX));
        assert_eq!(imm32("-2147483648"), Ok(i32::MIN));
        assert!(matches!(imm32("2147483648"), Err(AsmErrorKind::OutOfRange { .. })));
        assert!(matches!(imm32("-2147483649"), Err(AsmErrorKind::OutOfRange { .. })));
        assert_eq!(imm32("0x80000000"), Ok(i32::MIN));
        assert_eq!(imm32("0xffffffff"), Ok(-1));
        assert_eq!(imm32("0XfF"), Ok(255));
        assert_eq!(imm32("-0x1"), Ok(-1));
        assert!(matches!(imm32("0x100000000"), Err(AsmErrorKind::OutOfRange { .. })));
        assert!(matches!(imm32("-0x80000001"), Err(AsmErrorKind::OutOfRange { .. })));
        for bad in ["", "-", "0x", "1a", "0xg", "--1", " 1", "+-1"] {
            assert!(matches!(imm32(bad), Err(AsmErrorKind::BadNumber(_))), "{bad}");
        }
        assert!(matches!(imm32("99999999999999999999999"), Err(AsmErrorKind::OutOfRange { .. })));
    }

    #[test]
    fn imm64_forms() {
        assert_eq!(imm64("0xFFFFFFFFFFFFFFFF"), Ok(u64::MAX));
        assert_eq!(imm64("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(imm64("-1"), Ok(u64::MAX));
        assert_eq!(imm64("-9223372036854775808"), Ok(1 << 63));
        assert!(matches!(imm64("-9223372036854775809"), Err(AsmErrorKind::OutOfRange { .. })));
        assert!(matches!(imm64("0x10000000000000000"), Err(AsmErrorKind::OutOfRange { .. })));
    }

    #[test]
    fn imm32_llvm_forms() {
        assert_eq!(imm32_llvm("4294967295"), Ok(-1));
        assert_eq!(imm32_llvm("0xffffffff"), Ok(-1));
        assert_eq!(imm32_llvm("-0x80000000"), Ok(i32::MIN));
        assert!(matches!(imm32_llvm("-2147483649"), Err(AsmErrorKind::OutOfRange { .. })));
        assert!(matches!(imm32_llvm("4294967296"), Err(AsmErrorKind::OutOfRange { .. })));
        assert_eq!(i32_in("-0x80000000", "x"), Ok(i32::MIN));
        assert!(matches!(i32_in("0x80000000", "x"), Err(AsmErrorKind::OutOfRange { .. })));
    }

    #[test]
    fn i16_forms() {
        assert_eq!(i16_in("+4", "offset"), Ok(4));
        assert_eq!(i16_in("-0x8000", "offset"), Ok(i16::MIN));
        assert_eq!(i16_in("+0x7fff", "offset"), Ok(i16::MAX));
        assert!(matches!(i16_in("+0x8000", "offset"), Err(AsmErrorKind::OutOfRange { .. })));
        assert!(matches!(i16_in("+0x10000", "offset"), Err(AsmErrorKind::OutOfRange { .. })));
        assert!(matches!(i16_in("32768", "offset"), Err(AsmErrorKind::OutOfRange { .. })));
    }
}
