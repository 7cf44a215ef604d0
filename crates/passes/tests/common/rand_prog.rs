//! Random program generator for analysis soundness tests: forward-only jumps and calls (so
//! every program terminates), r9 holds the context pointer throughout, memory accesses go to
//! the stack (r10) or the context (r9, or a register filled from a ctx spill).
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use super::*;
use bpfpatch_insn::{AluOp, Cond, Insn, Op, Operand, Size, SwapKind, Width};

pub use bpfpatch_testkit::Rng;

pub use bpfpatch_passes::fuzzing::{G, layout};

const ALU_OPS: [AluOp; 16] = [
    AluOp::Add,
    AluOp::Sub,
    AluOp::Mul,
    AluOp::Div,
    AluOp::SDiv,
    AluOp::Or,
    AluOp::And,
    AluOp::Lsh,
    AluOp::Rsh,
    AluOp::Neg,
    AluOp::Mod,
    AluOp::SMod,
    AluOp::Xor,
    AluOp::Mov,
    AluOp::Arsh,
    AluOp::MovSx(8),
];

fn imm(rng: &mut Rng) -> i32 {
    match rng.below_u64(4) {
        0 => rng.below_u64(8) as i32 - 4,
        1 => rng.choose(&[i32::MIN, i32::MAX, -1, 0x7fff, 0x8000, 0xffff, 32, 63]),
        _ => rng.next() as i32,
    }
}

/// Low halves where signed and unsigned order differ (negative as `i32`) and their neighbours.
const EDGE_LOWS: [i32; 12] = [-1, -2, -4, -0x1000, i32::MIN, i32::MIN + 1, i32::MAX, 0x7fff_fff0, 0, 1, 3, 0x1000];

/// A definition of `d` with a value constant propagation knows: `mov64` (sign-extended), `mov32`
/// (zero-extended) or `lddw` with an upper half that differs from the sign of the lower.
fn known_value(rng: &mut Rng, d: u8) -> Op {
    let lo = rng.choose(&EDGE_LOWS);
    match rng.below_u64(3) {
        0 => mov64(d, lo),
        1 => mov32(d, lo),
        _ => {
            let any = rng.next() >> 32;
            let hi = rng.choose(&[0u64, 1, 0xffff_ffff, 0x8000_0000, 0x7fff_ffff, any]);
            lddw(d, (hi << 32) | u64::from(lo as u32))
        }
    }
}

fn size(rng: &mut Rng) -> Size {
    rng.choose(&[Size::B, Size::H, Size::W, Size::DW])
}

/// One random body instruction of function `f` at position `i` of `len` (the exit is at `len`).
fn body(rng: &mut Rng, f: usize, nfuncs: usize, i: usize, len: usize) -> Vec<G> {
    let dst = rng.below_u64(9) as u8; // r0..r8
    let src = rng.below_u64(10) as u8; // r0..r9
    let w = if rng.chance(50) { Width::W64 } else { Width::W32 };
    match rng.below_u64(112) {
        0..=14 => vec![G::Plain(alu(w, AluOp::Mov, dst, Operand::Imm(imm(rng))))],
        15..=44 => {
            let mut op = rng.choose(&ALU_OPS);
            if let AluOp::MovSx(_) = op {
                op = AluOp::MovSx(if w == Width::W64 { rng.choose(&[8, 16, 32]) } else { rng.choose(&[8, 16]) });
                return vec![G::Plain(alu(w, op, dst, Operand::Reg(r(src))))];
            }
            if op == AluOp::Neg {
                return vec![G::Plain(alu(w, op, dst, Operand::Imm(0)))];
            }
            let s = if rng.chance(50) { Operand::Reg(r(src)) } else { Operand::Imm(imm(rng)) };
            vec![G::Plain(alu(w, op, dst, s))]
        }
        45..=56 => {
            let cond = rng.choose(&Cond::ALL);
            let k = if rng.chance(60) { rng.below_u64(8) as i32 - 4 } else { imm(rng) };
            let s = if rng.chance(40) { Operand::Reg(r(src)) } else { Operand::Imm(k) };
            let target = i + 1 + rng.below_u64((len - i) as u64) as usize;
            vec![G::Jump(Op::Jump { width: w, cond, dst: r(dst), src: s, off: 0 }, target)]
        }
        57..=59 => {
            let target = i + 1 + rng.below_u64((len - i) as u64) as usize;
            vec![G::Jump(Op::Ja { delta: 0, long: rng.chance(30) }, target)]
        }
        60..=62 => {
            let kind = rng.choose(&[SwapKind::Le, SwapKind::Be, SwapKind::Bswap]);
            vec![G::Plain(Op::Swap { kind, bits: rng.choose(&[16, 32, 64]), dst: r(dst) })]
        }
        63..=65 => vec![G::Plain(lddw(dst, rng.next()))],
        66..=73 => {
            // store to stack or context
            let sz = size(rng);
            let (base, off) = if rng.chance(60) {
                (
                    10u8,
                    -8 * (1 + rng.below_u64(8) as i16)
                        + (rng.below_u64(u64::from(8 / sz.bytes())) as i16) * sz.bytes() as i16,
                )
            } else {
                (9u8, (rng.below_u64(u64::from(64 / sz.bytes())) as i16) * sz.bytes() as i16)
            };
            if rng.chance(30) {
                vec![G::Plain(st(sz, base, off, imm(rng)))]
            } else {
                vec![G::Plain(stx(sz, base, off, src))]
            }
        }
        74..=81 => {
            let sz = size(rng);
            let (base, off) = if rng.chance(60) {
                (10u8, -8 * (1 + rng.below_u64(8) as i16))
            } else {
                (9u8, (rng.below_u64(u64::from(64 / sz.bytes())) as i16) * sz.bytes() as i16)
            };
            let signed = sz != Size::DW && rng.chance(20);
            vec![G::Plain(Op::Load { size: sz, signed, dst: r(dst), src: r(base), off })]
        }
        82..=85 => {
            // spill the context, fill it into a register and access through it
            let k = -8 * (1 + rng.below_u64(8) as i16);
            let d = 6 + rng.below_u64(3) as u8;
            let mut v = vec![G::Plain(stx(Size::DW, 10, k, 9)), G::Plain(ldx(Size::DW, d, 10, k))];
            if rng.chance(50) {
                v.push(G::Plain(ldx(Size::W, dst, d, 4 * rng.below_u64(16) as i16)));
            } else {
                v.push(G::Plain(stx(Size::B, d, rng.below_u64(64) as i16, src)));
            }
            v
        }
        86..=88 => vec![G::Plain(call_helper(1))],
        89..=93 if f + 1 < nfuncs => vec![G::Call(f + 1 + rng.below_u64((nfuncs - f - 1) as u64) as usize)],
        100..=111 => {
            // A conditional jump on values constant propagation knows, both source forms and
            // both classes, with operands whose signed and unsigned order differ.
            let cond = rng.choose(&Cond::ALL);
            let s = (dst + 1 + rng.below_u64(8) as u8) % 9; // r0..r8, not dst
            let mut v = vec![G::Plain(known_value(rng, dst))];
            let src = if rng.chance(50) {
                v.push(G::Plain(known_value(rng, s)));
                Operand::Reg(r(s))
            } else {
                Operand::Imm(rng.choose(&EDGE_LOWS))
            };
            let at = i + v.len();
            let target = at + 1 + rng.below_u64(len.saturating_sub(at) as u64) as usize;
            v.push(G::Jump(Op::Jump { width: w, cond, dst: r(dst), src, off: 0 }, target));
            v
        }
        _ => vec![G::Plain(alu(w, AluOp::Add, dst, Operand::Reg(r(src))))],
    }
}

/// A random program of `nfuncs` functions with about `len` instructions each.
pub fn program(seed: u64, nfuncs: usize, len: usize) -> Vec<Insn> {
    let mut rng = Rng::seeded(seed);
    let mut funcs: Vec<Vec<G>> = Vec::new();
    for f in 0..nfuncs {
        let mut ops: Vec<G> = Vec::new();
        if f == 0 {
            ops.push(G::Plain(mov64r(9, 1)));
        }
        let n = len / 2 + rng.below_u64(len as u64) as usize;
        while ops.len() < n {
            let at = ops.len();
            ops.extend(body(&mut rng, f, nfuncs, at, n.max(at + 1)));
        }
        // Jumps may target `n` (or beyond, after multi-op bodies): clamp to the final exit.
        let end = ops.len();
        for g in &mut ops {
            if let G::Jump(_, t) = g {
                *t = (*t).min(end);
            }
        }
        ops.push(G::Plain(exit()));
        funcs.push(ops);
    }
    layout(&funcs)
}

/// Number of random cases: `BPFPATCH_CASES` or `default`.
pub fn cases(default: u64) -> u64 {
    std::env::var("BPFPATCH_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
