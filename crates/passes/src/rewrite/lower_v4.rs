//! Lowering of cpu-v4 instructions to v3 sequences (beyond the kernel).
//!
//! - `sdiv`/`smod` by a register: branch on the signs, divide the magnitudes with the unsigned
//!   operation, negate where the sign rules say (quotient: sign of `a ^ b`; remainder: sign of
//!   the dividend). AX holds `|src|`; `src` is read once, before `dst` changes, so `dst == src`
//!   works. Division by zero falls out of the unsigned operation (`x / 0 = 0`, `x % 0 = x`,
//!   32-bit results zero-extended); `INT_MIN / -1 = INT_MIN` and `INT_MIN % -1 = 0` fall out of
//!   two's complement negation.
//! - `sdiv`/`smod` by an immediate: the sign of the divisor is known, so only the dividend is
//!   tested; `/ -1` is `neg`, `% -1` is `mov32 dst, 0` (as the kernel's fixups), `/ 0` is
//!   `mov dst, 0`, `% 0` is `mov dst, dst`; a 64-bit divisor of `INT32_MIN` (magnitude 2^31,
//!   not an immediate) becomes a shift or a mask.
//! - `movsx`: `mov`, `lsh`, `arsh` at the instruction's width.
//! - sign-extending loads: the plain load, then `lsh64`/`arsh64`.
//! - `bswap16/32/64`: `be` on a little-endian host, `le` on a big-endian one.
//! - `gotol`: a `goto` to the same target, if the offset fits 16 bits (else an error).
//!
//! AX discipline: AX is live only across instructions that name AX or that constant blinding
//! never rewrites (`neg`, register ALU, `ja`), so blinding after this pass cannot clobber it.

use super::ins::{alu, ja, jmp_imm, ldx, mov_imm, mov_reg, neg};
use super::{Patchlet, RewriteError};
use bpfpatch_insn::{AluOp, Cond, Endian, Op, Operand, Reg, SwapKind, Width};

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

fn div_x(p: &mut Patchlet, w: Width, dst: Reg, src: Reg) {
    let ax = Reg::AX;
    let udiv = alu(w, AluOp::Div, dst, Operand::Reg(ax));
    p.push(jmp_imm(w, Cond::Slt, dst, 0, 6)) // 0 -> 7: dividend negative
        .push(mov_reg(w, ax, src)) // 1
        .push(jmp_imm(w, Cond::Sge, ax, 0, 8)) // 2 -> 11: (+, +)
        .push(neg(w, ax)) // 3: (+, -)
        .push(udiv) // 4
        .push(neg(w, dst)) // 5
        .push(ja(5)) // 6 -> 12 (end)
        .push(mov_reg(w, ax, src)) // 7: before dst changes (dst may be src)
        .push(neg(w, dst)) // 8
        .push(jmp_imm(w, Cond::Sge, ax, 0, -6)) // 9 -> 4: (-, +) divide then negate
        .push(neg(w, ax)) // 10: (-, -)
        .push(udiv); // 11
}

fn mod_x(p: &mut Patchlet, w: Width, dst: Reg, src: Reg) {
    let ax = Reg::AX;
    let umod = alu(w, AluOp::Mod, dst, Operand::Reg(ax));
    p.push(jmp_imm(w, Cond::Slt, dst, 0, 5)) // 0 -> 6
        .push(mov_reg(w, ax, src)) // 1
        .push(jmp_imm(w, Cond::Sge, ax, 0, 1)) // 2 -> 4
        .push(neg(w, ax)) // 3
        .push(umod) // 4
        .push(ja(6)) // 5 -> 12 (end)
        .push(mov_reg(w, ax, src)) // 6
        .push(neg(w, dst)) // 7
        .push(jmp_imm(w, Cond::Sge, ax, 0, 1)) // 8 -> 10
        .push(neg(w, ax)) // 9
        .push(umod) // 10
        .push(neg(w, dst)); // 11
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

fn div_k(p: &mut Patchlet, w: Width, dst: Reg, k: i32) {
    match k {
        0 => {
            p.push(mov_imm(w, dst, 0));
        }
        -1 => {
            p.push(neg(w, dst));
        }
        _ => {
            let udiv = by_magnitude(w, AluOp::Div, dst, k);
            if k > 0 {
                p.push(jmp_imm(w, Cond::Slt, dst, 0, 2))
                    .push(udiv)
                    .push(ja(3))
                    .push(neg(w, dst))
                    .push(udiv)
                    .push(neg(w, dst));
            } else {
                p.push(jmp_imm(w, Cond::Slt, dst, 0, 3))
                    .push(udiv)
                    .push(neg(w, dst))
                    .push(ja(2))
                    .push(neg(w, dst))
                    .push(udiv);
            }
        }
    }
}

fn mod_k(p: &mut Patchlet, w: Width, dst: Reg, k: i32) {
    match k {
        0 => {
            p.push(mov_reg(w, dst, dst));
        }
        -1 => {
            p.push(mov_imm(Width::W32, dst, 0));
        }
        _ => {
            let umod = by_magnitude(w, AluOp::Mod, dst, k);
            p.push(jmp_imm(w, Cond::Slt, dst, 0, 2))
                .push(umod)
                .push(ja(3))
                .push(neg(w, dst))
                .push(umod)
                .push(neg(w, dst));
        }
    }
}

fn sign_extend(p: &mut Patchlet, w: Width, dst: Reg, bits: u8) {
    let total: i32 = if w == Width::W64 { 64 } else { 32 };
    let sh = total - i32::from(bits);
    p.push(alu(w, AluOp::Lsh, dst, Operand::Imm(sh))).push(alu(w, AluOp::Arsh, dst, Operand::Imm(sh)));
}

/// The v3 replacement of a cpu-v4 instruction; `Ok(None)` for instructions that are not v4.
/// `host` is the byte order of the machine that will run the result (for `bswap`).
///
/// # Errors
/// [`RewriteError::GotolOutOfRange`] for a `gotol` whose offset does not fit 16 bits.
pub fn lower(op: &Op, host: Endian) -> Result<Option<Patchlet>, RewriteError> {
    let mut p = Patchlet::new();
    match *op {
        Op::Alu { width, op: AluOp::SDiv, dst, src: Operand::Reg(s) } => div_x(&mut p, width, dst, s),
        Op::Alu { width, op: AluOp::SMod, dst, src: Operand::Reg(s) } => mod_x(&mut p, width, dst, s),
        Op::Alu { width, op: AluOp::SDiv, dst, src: Operand::Imm(k) } => div_k(&mut p, width, dst, k),
        Op::Alu { width, op: AluOp::SMod, dst, src: Operand::Imm(k) } => mod_k(&mut p, width, dst, k),
        Op::Alu { width, op: AluOp::MovSx(bits), dst, src } => {
            match src {
                Operand::Reg(s) => p.push(mov_reg(width, dst, s)),
                Operand::Imm(i) => p.push(mov_imm(width, dst, i)),
            };
            sign_extend(&mut p, width, dst, bits);
        }
        Op::Load { size, signed: true, dst, src, off } => {
            p.push(ldx(size, dst, src, off));
            sign_extend(&mut p, Width::W64, dst, size.bytes() * 8);
        }
        Op::Swap { kind: SwapKind::Bswap, bits, dst } => {
            let kind = if host == Endian::Little { SwapKind::Be } else { SwapKind::Le };
            p.push(Op::Swap { kind, bits, dst });
        }
        Op::Ja { delta, long: true } => {
            let off = i16::try_from(delta).map_err(|_| RewriteError::GotolOutOfRange { delta })?;
            p.push_escape(ja(off));
        }
        _ => return Ok(None),
    }
    Ok(Some(p))
}
