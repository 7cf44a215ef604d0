//! What instructions compute: the RFC 9669 / Linux semantics of every [`AluOp`], jump condition
//! ([`Cond`]) and byte swap, shared by the interpreter and by the passes' constant propagation so
//! the two can never disagree. The interpreter is checked against the conformance vectors and
//! the running kernel, which share nothing with this module: a wrong line here fails there.
//!
//! Division by zero gives 0; modulo by zero leaves the dividend; signed overflow (`MIN / -1`)
//! wraps; shift amounts are masked to the width; 32-bit results are zero-extended.

use crate::op::{AluOp, Cond, Width};

/// The ALU at one width, written once for both: `$t`/`$s` the unsigned/signed type, `$mask`
/// the shift mask, `$sx32` what `movsx` from 32 bits gives of `$b`.
macro_rules! alu_at {
    ($(#[$doc:meta])* $name:ident, $t:ty, $s:ty, $mask:expr, |$b:ident| $sx32:expr) => {
        $(#[$doc])*
        #[inline(always)]
        #[must_use]
        #[allow(clippy::cast_possible_truncation)]
        pub fn $name(op: AluOp, a: $t, b: $t) -> $t {
            match op {
                AluOp::Add => a.wrapping_add(b),
                AluOp::Sub => a.wrapping_sub(b),
                AluOp::Mul => a.wrapping_mul(b),
                AluOp::Div => a.checked_div(b).unwrap_or(0),
                AluOp::SDiv => {
                    if b == 0 {
                        0
                    } else {
                        a.cast_signed().wrapping_div(b.cast_signed()).cast_unsigned()
                    }
                }
                AluOp::Or => a | b,
                AluOp::And => a & b,
                AluOp::Lsh => a << (b & $mask),
                AluOp::Rsh => a >> (b & $mask),
                AluOp::Neg => a.wrapping_neg(),
                AluOp::Mod => a.checked_rem(b).unwrap_or(a),
                AluOp::SMod => {
                    if b == 0 {
                        a
                    } else {
                        a.cast_signed().wrapping_rem(b.cast_signed()).cast_unsigned()
                    }
                }
                AluOp::Xor => a ^ b,
                AluOp::Mov => b,
                AluOp::MovSx(8) => <$s>::from((b as u8).cast_signed()).cast_unsigned(),
                AluOp::MovSx(16) => <$s>::from((b as u16).cast_signed()).cast_unsigned(),
                AluOp::MovSx(_) => {
                    let $b = b;
                    $sx32
                }
                AluOp::Arsh => (a.cast_signed() >> (b & $mask)).cast_unsigned(),
            }
        }
    };
}

alu_at!(
    /// `a op b` on 64 bits (`Neg` ignores `b`; `Mov`/`MovSx` ignore `a`).
    alu64, u64, i64, 63, |b| i64::from((b as u32).cast_signed()).cast_unsigned()
);

alu_at!(
    /// `a op b` on 32 bits (the decoder accepts `movsx` 8 and 16 only in this width).
    alu32, u32, i32, 31, |b| b
);

/// `dst op src` at `width`; a 32-bit result is zero-extended.
#[inline(always)]
#[must_use]
#[allow(clippy::cast_possible_truncation)]
pub fn alu(width: Width, op: AluOp, dst: u64, src: u64) -> u64 {
    match width {
        Width::W64 => alu64(op, dst, src),
        Width::W32 => u64::from(alu32(op, dst as u32, src as u32)),
    }
}

/// One jump condition on two values of one unsigned type; the signed conditions compare the
/// same bits as the signed type of that width.
macro_rules! condition {
    ($cond:expr, $a:expr, $b:expr) => {{
        let (a, b) = ($a, $b);
        match $cond {
            Cond::Eq => a == b,
            Cond::Ne => a != b,
            Cond::Gt => a > b,
            Cond::Ge => a >= b,
            Cond::Lt => a < b,
            Cond::Le => a <= b,
            Cond::Set => a & b != 0,
            Cond::Sgt => a.cast_signed() > b.cast_signed(),
            Cond::Sge => a.cast_signed() >= b.cast_signed(),
            Cond::Slt => a.cast_signed() < b.cast_signed(),
            Cond::Sle => a.cast_signed() <= b.cast_signed(),
        }
    }};
}

/// Whether `a cond b` holds on 64 bits.
#[inline(always)]
#[must_use]
pub fn cond64(cond: Cond, a: u64, b: u64) -> bool {
    condition!(cond, a, b)
}

/// Whether `a cond b` holds on 32 bits (`JMP32`).
#[inline(always)]
#[must_use]
pub fn cond32(cond: Cond, a: u32, b: u32) -> bool {
    condition!(cond, a, b)
}

/// Whether `dst cond src` holds at `width` (32-bit: the low halves).
#[inline(always)]
#[must_use]
#[allow(clippy::cast_possible_truncation)]
pub fn cond(width: Width, cond: Cond, dst: u64, src: u64) -> bool {
    match width {
        Width::W64 => cond64(cond, dst, src),
        Width::W32 => cond32(cond, dst as u32, src as u32),
    }
}

/// `bswap` of the low `bits` bits of `v` (16, 32; anything else swaps all 64), zero-extended.
#[inline(always)]
#[must_use]
#[allow(clippy::cast_possible_truncation)]
pub fn bswap(bits: u8, v: u64) -> u64 {
    match bits {
        16 => u64::from((v as u16).swap_bytes()),
        32 => u64::from((v as u32).swap_bytes()),
        _ => v.swap_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_and_swaps() {
        assert!(cond(Width::W32, Cond::Sge, 0xffff_ffff, 0xffff_fffe)); // -1 >= -2
        assert!(cond(Width::W32, Cond::Sge, 1, 0xffff_ffff)); // 1 >= -1 (unsigned it is not)
        assert!(!cond(Width::W32, Cond::Sgt, 0x8000_0000, 0)); // i32::MIN > 0 is false
        assert!(!cond(Width::W32, Cond::Ge, 0x1_0000_0000, 1)); // low halves: 0 >= 1
        assert!(cond(Width::W64, Cond::Slt, u64::MAX, 0));
        assert!(!cond(Width::W64, Cond::Lt, u64::MAX, 0));
        assert!(cond64(Cond::Set, 6, 2) && !cond32(Cond::Set, 4, 2));
        assert_eq!(bswap(16, 0xaabb_1234), 0x3412);
        assert_eq!(bswap(32, 0x11_2233_4455), 0x5544_3322);
        assert_eq!(bswap(64, 0x0102_0304_0506_0708), 0x0807_0605_0403_0201);
    }

    #[test]
    fn linux_edge_cases() {
        assert_eq!(alu64(AluOp::Div, 7, 0), 0);
        assert_eq!(alu64(AluOp::Mod, 7, 0), 7);
        assert_eq!(alu32(AluOp::Mod, 7, 0), 7);
        assert_eq!(alu64(AluOp::SDiv, i64::MIN.cast_unsigned(), u64::MAX), i64::MIN.cast_unsigned());
        assert_eq!(alu64(AluOp::SMod, i64::MIN.cast_unsigned(), u64::MAX), 0);
        assert_eq!(alu32(AluOp::SDiv, i32::MIN.cast_unsigned(), u32::MAX), i32::MIN.cast_unsigned());
        assert_eq!(alu64(AluOp::Lsh, 1, 65), 2);
        assert_eq!(alu32(AluOp::Lsh, 1, 33), 2);
        assert_eq!(alu64(AluOp::MovSx(8), 0, 0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(alu(Width::W32, AluOp::MovSx(16), 0, 0x8000), 0xffff_8000);
        assert_eq!(alu(Width::W32, AluOp::Add, u64::MAX, 1), 0);
        assert_eq!(alu64(AluOp::Arsh, u64::MAX << 4, 4), u64::MAX);
    }
}
