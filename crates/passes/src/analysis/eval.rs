//! Exact value semantics of ALU operations and jump conditions (Linux / RFC 9669), for
//! constant folding.
//!
//! Division by zero gives 0, modulo by zero leaves the dividend (zero-extended for 32-bit),
//! `INT_MIN / -1 == INT_MIN`, `INT_MIN % -1 == 0`; shift amounts are masked to the width;
//! 32-bit results are zero-extended. Immediates are sign-extended to 64 bits for 64-bit
//! operations and used as their low 32 bits for 32-bit ones.

use bpfpatch_insn::{AluOp, Cond, SwapKind, Width};

/// The 64-bit value of an immediate operand at `width` (sign-extended; 32-bit ops only see the low half).
#[must_use]
pub const fn imm_value(imm: i32) -> u64 {
    (imm as i64).cast_unsigned()
}

/// `dst op src` at `width`, as the interpreter computes it (the same function:
/// [`bpfpatch_insn::eval::alu`]).
#[must_use]
pub fn eval_alu(width: Width, op: AluOp, dst: u64, src: u64) -> u64 {
    bpfpatch_insn::eval::alu(width, op, dst, src)
}

/// A byte-order operation on `v`; `None` for `le`/`be`, whose result depends on the host byte
/// order. As the interpreter computes it ([`bpfpatch_insn::eval::bswap`]).
#[must_use]
pub fn eval_swap(kind: SwapKind, bits: u8, v: u64) -> Option<u64> {
    match kind {
        SwapKind::Bswap => Some(bpfpatch_insn::eval::bswap(bits, v)),
        SwapKind::Le | SwapKind::Be => None,
    }
}

/// Whether `dst cond src` holds at `width`, as the interpreter decides it (the same function:
/// [`bpfpatch_insn::eval::cond`]).
#[must_use]
pub fn eval_cond(width: Width, cond: Cond, dst: u64, src: u64) -> bool {
    bpfpatch_insn::eval::cond(width, cond, dst, src)
}

/// The outcome of `r cond r` (both operands the same register), when it does not depend on the value.
#[must_use]
pub fn cond_same_reg(cond: Cond) -> Option<bool> {
    match cond {
        Cond::Eq | Cond::Ge | Cond::Le | Cond::Sge | Cond::Sle => Some(true),
        Cond::Ne | Cond::Gt | Cond::Lt | Cond::Sgt | Cond::Slt => Some(false),
        Cond::Set => None,
    }
}

#[cfg(test)]
#[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn linux_division_semantics() {
        assert_eq!(eval_alu(Width::W64, AluOp::Div, 7, 0), 0);
        assert_eq!(eval_alu(Width::W64, AluOp::Mod, 7, 0), 7);
        assert_eq!(eval_alu(Width::W32, AluOp::Mod, 0xffff_ffff_0000_0007, 0), 7);
        assert_eq!(eval_alu(Width::W64, AluOp::SDiv, i64::MIN as u64, u64::MAX), i64::MIN as u64);
        assert_eq!(eval_alu(Width::W64, AluOp::SMod, i64::MIN as u64, u64::MAX), 0);
        assert_eq!(eval_alu(Width::W32, AluOp::SDiv, 0x8000_0000, 0xffff_ffff), 0x8000_0000);
        assert_eq!(eval_alu(Width::W32, AluOp::SMod, 0x8000_0000, 0xffff_ffff), 0);
        assert_eq!(eval_alu(Width::W64, AluOp::SDiv, (-7i64) as u64, 2), (-3i64) as u64);
        assert_eq!(eval_alu(Width::W64, AluOp::SMod, (-7i64) as u64, 2), (-1i64) as u64);
        assert_eq!(eval_alu(Width::W32, AluOp::SMod, (-7i32) as u32 as u64, 2), (-1i32) as u32 as u64);
        assert_eq!(eval_alu(Width::W32, AluOp::SDiv, 5, 0), 0);
    }

    #[test]
    fn shifts_mask_and_32bit_zero_extends() {
        assert_eq!(eval_alu(Width::W64, AluOp::Lsh, 1, 65), 2);
        assert_eq!(eval_alu(Width::W32, AluOp::Lsh, 1, 33), 2);
        assert_eq!(eval_alu(Width::W32, AluOp::Arsh, 0x8000_0000, 31), 0xffff_ffff);
        assert_eq!(eval_alu(Width::W64, AluOp::Arsh, 1 << 63, 63), u64::MAX);
        assert_eq!(eval_alu(Width::W32, AluOp::Add, u64::MAX, 1), 0);
        assert_eq!(eval_alu(Width::W32, AluOp::Neg, 1, 0), 0xffff_ffff);
        assert_eq!(eval_alu(Width::W64, AluOp::MovSx(8), 0, 0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(eval_alu(Width::W32, AluOp::MovSx(16), 0, 0x8000), 0xffff_8000);
        assert_eq!(eval_alu(Width::W64, AluOp::MovSx(32), 0, 0x8000_0000), 0xffff_ffff_8000_0000);
    }

    #[test]
    fn conditions_compare_the_right_halves() {
        assert!(eval_cond(Width::W32, Cond::Eq, 0x1_0000_0005, 5));
        assert!(!eval_cond(Width::W64, Cond::Eq, 0x1_0000_0005, 5));
        assert!(eval_cond(Width::W32, Cond::Slt, 0xffff_ffff, 0));
        assert!(!eval_cond(Width::W64, Cond::Slt, 0xffff_ffff, 0));
        assert!(eval_cond(Width::W64, Cond::Set, 6, 2));
        assert_eq!(eval_swap(SwapKind::Bswap, 16, 0xffff_1234), Some(0x3412));
        assert_eq!(eval_swap(SwapKind::Le, 16, 1), None);
    }
}
