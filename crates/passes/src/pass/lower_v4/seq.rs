//! Lowering of cpu-v4 instructions to v3 sequences (beyond the kernel).
//!
//! - `sdiv`/`smod` by a register: branch on the signs, divide the magnitudes with the unsigned
//!   operation, negate where the sign rules say (quotient: sign of `a ^ b`; remainder: sign of
//!   the dividend). No scratch register (the output is loadable: never the kernel-internal AX,
//!   and no register or stack slot the program may use): `src` is negated in place when negative
//!   and negated back with 64-bit negations, which restore its whole value; `dst == src` has
//!   its own two-instruction form (`x / x`, `x % x`). Division by zero falls out of the unsigned operation (`x / 0 = 0`, `x % 0 = x`,
//!   32-bit results zero-extended); `INT_MIN / -1 = INT_MIN` and `INT_MIN % -1 = 0` fall out of
//!   two's complement negation.
//! - `sdiv`/`smod` by an immediate: the sign of the divisor is known, so only the dividend is
//!   tested; `/ -1` is `neg`, `% -1` is `mov32 dst, 0` (as the kernel's fixups), `/ 0` is
//!   `mov dst, 0`, `% 0` is `mov dst, dst`; a 64-bit divisor of `INT32_MIN` (magnitude 2^31,
//!   not an immediate) becomes a shift or a mask.
//! - `movsx`: `mov`, `lsh`, `arsh` at the instruction's width.
//! - sign-extending loads: the plain load, then `lsh64`/`arsh64`.
//! - `bswap16/32/64`: `be` on a little-endian host, `le` on a big-endian one.
//! - `gotol`: a `goto` to the same target if the offset fits 16 bits; otherwise it stays (a
//!   program with `gotol` is a cpu-v4 program, and no v3 form reaches that far in one slot).

use crate::emit::ins::{alu, ja, jmp_imm, ldx, mov_imm, mov_reg, neg};
use crate::emit::{Emit, RewriteError};
use bpfpatch_insn::{AluOp, Cond, Endian, Op, Operand, Reg, SwapKind, Width};
use bpfpatch_patch::PatchBuf;

/// Whether `op` needs cpu v4 (`sdiv`, `smod`, `movsx`, sign-extending loads, `bswap`, `gotol`).
#[must_use]
pub const fn uses_v4(op: &Op) -> bool {
    matches!(
        op,
        Op::Alu { op: AluOp::SDiv | AluOp::SMod | AluOp::MovSx(_), .. }
            | Op::Load { signed: true, .. }
            | Op::Swap { kind: SwapKind::Bswap, .. }
            | Op::Ja { long: true, .. }
    )
}

fn neg64(r: Reg) -> Op {
    neg(Width::W64, r)
}

/// `sdiv`/`smod dst, src` with `dst != src`, without a scratch register: `src` is negated in
/// place when negative and negated back afterwards (64-bit negation is an involution and its
/// low half is the 32-bit negation, so the register's whole 64-bit value is restored, even for
/// `INT_MIN` and at width 32).
fn signed_x(p: &mut PatchBuf, w: Width, op: AluOp, dst: Reg, src: Reg) {
    let u = alu(w, if op == AluOp::SDiv { AluOp::Div } else { AluOp::Mod }, dst, Operand::Reg(src));
    let neg_q = |p: &mut PatchBuf, q: bool| {
        if q {
            p.push_op(&neg(w, dst));
        } else {
            p.push_op(&alu(w, AluOp::Mov, dst, Operand::Reg(dst))); // width-exact no-op
        }
    };
    let div = op == AluOp::SDiv;
    // The sign rules: quotient negative iff exactly one operand is; remainder has the dividend's sign.
    let (pos_neg, neg_neg) = if div { (true, false) } else { (false, true) };
    p.push_op(&jmp_imm(w, Cond::Slt, src, 0, 7)) // 0 -> 8: divisor negative
        .push_op(&jmp_imm(w, Cond::Slt, dst, 0, 2)) // 1 -> 4
        .push_op(&u) // 2: (+, +)
        .push_op(&ja(13)) // 3 -> 17 (end; src untouched)
        .push_op(&neg(w, dst)) // 4: (-, +)
        .push_op(&u) // 5
        .push_op(&neg(w, dst)) // 6
        .push_op(&ja(9)) // 7 -> 17 (end)
        .push_op(&neg64(src)) // 8: |src|
        .push_op(&jmp_imm(w, Cond::Slt, dst, 0, 3)) // 9 -> 13
        .push_op(&u); // 10: (+, -)
    neg_q(p, pos_neg); // 11
    p.push_op(&ja(3)) // 12 -> 16 (restore)
        .push_op(&neg(w, dst)) // 13: (-, -)
        .push_op(&u); // 14
    neg_q(p, neg_neg); // 15
    p.push_op(&neg64(src)); // 16: restore src
}

/// `sdiv`/`smod dst, dst`: `x / x` is 1 (0 for 0, BPF's division by zero), `x % x` is 0.
fn signed_self(p: &mut PatchBuf, w: Width, op: AluOp, dst: Reg) {
    if op == AluOp::SMod {
        p.push_op(&mov_imm(w, dst, 0));
    } else {
        p.push_op(&jmp_imm(w, Cond::Eq, dst, 0, 2)) // 0 -> 3
            .push_op(&mov_imm(w, dst, 1)) // 1
            .push_op(&ja(1)) // 2 -> 4 (end)
            .push_op(&mov_imm(w, dst, 0)); // 3
    }
}

/// The unsigned operation on the magnitude `|k|` of a non-zero, non-(-1) immediate divisor.
fn by_magnitude(w: Width, op: AluOp, dst: Reg, k: i32) -> Op {
    let m = k.unsigned_abs();
    match (w, i32::try_from(m)) {
        (Width::W64, Err(_)) => {
            // |INT32_MIN| = 2^31 is not an immediate of a 64-bit operation: shift or mask.
            if op == AluOp::Div {
                alu(w, AluOp::Rsh, dst, Operand::Imm(31))
            } else {
                alu(w, AluOp::And, dst, Operand::Imm(0x7fff_ffff))
            }
        }
        #[allow(clippy::cast_possible_wrap)]
        _ => alu(w, op, dst, Operand::Imm(m as i32)),
    }
}

fn div_k(p: &mut PatchBuf, w: Width, dst: Reg, k: i32) {
    match k {
        0 => {
            p.push_op(&mov_imm(w, dst, 0));
        }
        -1 => {
            p.push_op(&neg(w, dst));
        }
        _ => {
            let udiv = by_magnitude(w, AluOp::Div, dst, k);
            if k > 0 {
                p.push_op(&jmp_imm(w, Cond::Slt, dst, 0, 2))
                    .push_op(&udiv)
                    .push_op(&ja(3))
                    .push_op(&neg(w, dst))
                    .push_op(&udiv)
                    .push_op(&neg(w, dst));
            } else {
                p.push_op(&jmp_imm(w, Cond::Slt, dst, 0, 3))
                    .push_op(&udiv)
                    .push_op(&neg(w, dst))
                    .push_op(&ja(2))
                    .push_op(&neg(w, dst))
                    .push_op(&udiv);
            }
        }
    }
}

fn mod_k(p: &mut PatchBuf, w: Width, dst: Reg, k: i32) {
    match k {
        0 => {
            p.push_op(&mov_reg(w, dst, dst));
        }
        -1 => {
            p.push_op(&mov_imm(Width::W32, dst, 0));
        }
        _ => {
            let umod = by_magnitude(w, AluOp::Mod, dst, k);
            p.push_op(&jmp_imm(w, Cond::Slt, dst, 0, 2))
                .push_op(&umod)
                .push_op(&ja(3))
                .push_op(&neg(w, dst))
                .push_op(&umod)
                .push_op(&neg(w, dst));
        }
    }
}

fn sign_extend(p: &mut PatchBuf, w: Width, dst: Reg, bits: u8) {
    let total: i32 = if w == Width::W64 { 64 } else { 32 };
    let sh = total - i32::from(bits);
    p.push_op(&alu(w, AluOp::Lsh, dst, Operand::Imm(sh))).push_op(&alu(w, AluOp::Arsh, dst, Operand::Imm(sh)));
}

/// The v3 replacement of a cpu-v4 instruction; `Ok(None)` for instructions that are not v4 and
/// for a `gotol` beyond 16 bits (it stays). `host` is the byte order of the machine that will
/// run the result (for `bswap`).
///
/// # Errors
/// None today (the `Result` is for lowerings that may refuse).
pub fn lower(op: &Op, host: Endian) -> Result<Option<PatchBuf>, RewriteError> {
    let mut p = PatchBuf::new();
    match *op {
        Op::Alu { width, op: aop @ (AluOp::SDiv | AluOp::SMod), dst, src: Operand::Reg(s) } => {
            if s == dst {
                signed_self(&mut p, width, aop, dst);
            } else {
                signed_x(&mut p, width, aop, dst, s);
            }
        }
        Op::Alu { width, op: AluOp::SDiv, dst, src: Operand::Imm(k) } => div_k(&mut p, width, dst, k),
        Op::Alu { width, op: AluOp::SMod, dst, src: Operand::Imm(k) } => mod_k(&mut p, width, dst, k),
        Op::Alu { width, op: AluOp::MovSx(bits), dst, src } => {
            match src {
                Operand::Reg(s) => p.push_op(&mov_reg(width, dst, s)),
                Operand::Imm(i) => p.push_op(&mov_imm(width, dst, i)),
            };
            sign_extend(&mut p, width, dst, bits);
        }
        Op::Load { size, signed: true, dst, src, off } => {
            p.push_op(&ldx(size, dst, src, off));
            sign_extend(&mut p, Width::W64, dst, size.bytes() * 8);
        }
        Op::Swap { kind: SwapKind::Bswap, bits, dst } => {
            let kind = if host == Endian::Little { SwapKind::Be } else { SwapKind::Le };
            p.push_op(&Op::Swap { kind, bits, dst });
        }
        Op::Ja { delta, long: true } => {
            let Ok(off) = i16::try_from(delta) else { return Ok(None) };
            p.escape(ja(off));
        }
        _ => return Ok(None),
    }
    Ok(Some(p))
}
