//! Random programs for the three-mode property test on the project's VM: every register is
//! initialised before use (the VM's loader checks), r9 holds the memory area (main program),
//! jumps and calls go forward except bounded loops (a counter in r8, optionally guarded by
//! `may_goto`), memory goes to the stack and the 64-byte memory area, cpu-v4 forms included.
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use super::rand_prog::Rng;
use super::*;
use bpfpatch_insn::{AluOp, AtomicOp, Cond, Insn, Op, Operand, Size, SwapKind, Width};

pub const MEM_LEN: usize = 64;

#[derive(Clone, Copy, Debug)]
enum G {
    Plain(Op),
    /// A jump to op index `.1` of the same function.
    Jump(Op, usize),
    /// A call of function `.0`.
    Call(usize),
}

const ALU_OPS: [AluOp; 15] = [
    AluOp::Add,
    AluOp::Sub,
    AluOp::Mul,
    AluOp::Div,
    AluOp::SDiv,
    AluOp::Or,
    AluOp::And,
    AluOp::Lsh,
    AluOp::Rsh,
    AluOp::Mod,
    AluOp::SMod,
    AluOp::Xor,
    AluOp::Mov,
    AluOp::Arsh,
    AluOp::Neg,
];

fn imm(rng: &mut Rng) -> i32 {
    match rng.below(4) {
        0 => rng.below(9) as i32 - 4,
        1 => rng.pick(&[i32::MIN, i32::MAX, -1, 0x7fff, 0x8000, 0xffff, 32, 63, 0x7fff_fff0]),
        _ => rng.next() as i32,
    }
}

struct Ctx {
    main: bool,
    /// Registers a straight-line instruction may write.
    dst_max: u64,
}

fn mem_access(rng: &mut Rng, cx: &Ctx, sz: Size) -> (u8, i16) {
    let n = i16::from(sz.bytes());
    if !cx.main || rng.chance(55) {
        (10, -8 * (1 + rng.below(8) as i16) + (rng.below(u64::from(8 / sz.bytes())) as i16) * n)
    } else {
        (9, (rng.below((MEM_LEN as u64) / u64::from(sz.bytes())) as i16) * n)
    }
}

/// One straight-line instruction (no jumps, no calls).
fn straight(rng: &mut Rng, cx: &Ctx) -> Op {
    let dst = rng.below(cx.dst_max + 1) as u8;
    let nsrc = if cx.main { 10 } else { 9 };
    let src = rng.below(nsrc) as u8;
    let w = if rng.chance(50) { Width::W64 } else { Width::W32 };
    match rng.below(100) {
        0..=12 => alu(w, AluOp::Mov, dst, Operand::Imm(imm(rng))),
        13..=54 => {
            let op = rng.pick(&ALU_OPS);
            if op == AluOp::Neg {
                return alu(w, op, dst, Operand::Imm(0));
            }
            if rng.chance(6) {
                let bits = if w == Width::W64 { rng.pick(&[8, 16, 32]) } else { rng.pick(&[8, 16]) };
                return alu(w, AluOp::MovSx(bits), dst, Operand::Reg(r(src)));
            }
            let s = if rng.chance(50) { Operand::Reg(r(src)) } else { Operand::Imm(imm(rng)) };
            alu(w, op, dst, s)
        }
        55..=59 => {
            let kind = rng.pick(&[SwapKind::Le, SwapKind::Be, SwapKind::Bswap]);
            Op::Swap { kind, bits: rng.pick(&[16, 32, 64]), dst: r(dst) }
        }
        60..=62 => lddw(dst, rng.next()),
        63..=75 => {
            let sz = rng.pick(&[Size::B, Size::H, Size::W, Size::DW]);
            let (base, off) = mem_access(rng, cx, sz);
            if rng.chance(30) { st(sz, base, off, imm(rng)) } else { stx(sz, base, off, src) }
        }
        76..=88 => {
            let sz = rng.pick(&[Size::B, Size::H, Size::W, Size::DW]);
            let (base, off) = mem_access(rng, cx, sz);
            let signed = sz != Size::DW && rng.chance(25);
            Op::Load { size: sz, signed, dst: r(dst), src: r(base), off }
        }
        _ => {
            let sz = rng.pick(&[Size::W, Size::DW]);
            let (base, off) = mem_access(rng, cx, sz);
            let fetch = rng.chance(50);
            let op = rng.pick(&[
                AtomicOp::Add { fetch },
                AtomicOp::Or { fetch },
                AtomicOp::And { fetch },
                AtomicOp::Xor { fetch },
                AtomicOp::Xchg,
                AtomicOp::Cmpxchg,
            ]);
            // The fetched register must be writable here.
            let src = if op.fetches() { dst } else { src };
            Op::Atomic { size: sz, op, dst: r(base), src: r(src), off }
        }
    }
}

fn function(rng: &mut Rng, f: usize, nfuncs: usize, len: usize) -> Vec<G> {
    let main = f == 0;
    let cx = Ctx { main, dst_max: 8 };
    let loop_cx = Ctx { main, dst_max: 7 };
    let mut ops: Vec<G> = Vec::new();
    if main {
        ops.push(G::Plain(mov64r(9, 1)));
        for d in [0u8, 3, 4, 5, 6, 7, 8] {
            ops.push(G::Plain(if rng.chance(50) { mov64(d, imm(rng)) } else { lddw(d, rng.next()) }));
        }
    } else {
        for d in [0u8, 6, 7, 8] {
            ops.push(G::Plain(mov64(d, imm(rng))));
        }
    }
    // Forward jumps are patched to real targets once the body length is known: `usize::MAX`
    // marks "somewhere ahead".
    let mut forward: Vec<usize> = Vec::new();
    // Op indices inside a loop (after its counter init): no forward jump may land there.
    let mut in_loop: Vec<(usize, usize)> = Vec::new();
    while ops.len() < len {
        match rng.below(100) {
            0..=69 => ops.push(G::Plain(straight(rng, &cx))),
            70..=79 => {
                let w = if rng.chance(50) { Width::W64 } else { Width::W32 };
                let cond = rng.pick(&Cond::ALL);
                let k = if rng.chance(60) { rng.below(9) as i32 - 4 } else { imm(rng) };
                let s = if rng.chance(40) {
                    Operand::Reg(r(rng.below(if main { 10 } else { 9 }) as u8))
                } else {
                    Operand::Imm(k)
                };
                forward.push(ops.len());
                ops.push(G::Jump(Op::Jump { width: w, cond, dst: r(rng.below(9) as u8), src: s, off: 0 }, usize::MAX));
            }
            80..=82 => {
                forward.push(ops.len());
                ops.push(G::Jump(Op::Ja { delta: 0, long: rng.chance(40) }, usize::MAX));
            }
            83..=87 => {
                // for (r8 = k; r8 != 0; r8--) { [may_goto out;] body }
                ops.push(G::Plain(mov64(8, 1 + rng.below(4) as i32)));
                let head = ops.len();
                let guard = rng.chance(50);
                let guard_at = ops.len();
                if guard {
                    ops.push(G::Jump(Op::MayGoto { off: 0 }, usize::MAX));
                }
                for _ in 0..1 + rng.below(4) {
                    ops.push(G::Plain(straight(rng, &loop_cx)));
                }
                ops.push(G::Plain(alu64(AluOp::Sub, 8, 1)));
                ops.push(G::Jump(
                    Op::Jump { width: Width::W64, cond: Cond::Ne, dst: r(8), src: Operand::Imm(0), off: 0 },
                    head,
                ));
                if guard {
                    let out = ops.len();
                    ops[guard_at] = G::Jump(Op::MayGoto { off: 0 }, out);
                    ops.push(G::Plain(mov64(8, 0)));
                }
                in_loop.push((head, ops.len()));
            }
            88..=91 => ops.push(G::Plain(call_helper(1))),
            92..=96 if f + 1 < nfuncs => ops.push(G::Call(f + 1 + rng.below((nfuncs - f - 1) as u64) as usize)),
            _ => ops.push(G::Plain(straight(rng, &cx))),
        }
    }
    let end = ops.len();
    let allowed: Vec<usize> = (0..=end).filter(|&t| !in_loop.iter().any(|&(a, b)| t >= a && t < b)).collect();
    for at in forward {
        if let G::Jump(op, _) = ops[at] {
            let later: Vec<usize> = allowed.iter().copied().filter(|&t| t > at).collect();
            let t = later[rng.below(later.len() as u64) as usize];
            ops[at] = G::Jump(op, t);
        }
    }
    ops.push(G::Plain(exit()));
    ops
}

/// A random program of `nfuncs` functions of about `len` instructions each.
pub fn program(seed: u64, nfuncs: usize, len: usize) -> Vec<Insn> {
    let mut rng = Rng(seed);
    let funcs: Vec<Vec<G>> = (0..nfuncs).map(|f| function(&mut rng, f, nfuncs, len)).collect();
    let mut starts = Vec::new();
    let mut slot_of: Vec<Vec<usize>> = Vec::new();
    let mut slot = 0;
    for ops in &funcs {
        starts.push(slot);
        let mut v = Vec::new();
        for g in ops {
            v.push(slot);
            slot += match g {
                G::Plain(op) | G::Jump(op, _) => op.slots(),
                G::Call(_) => 1,
            };
        }
        v.push(slot);
        slot_of.push(v);
    }
    let mut out = Vec::new();
    for (f, ops) in funcs.iter().enumerate() {
        for (i, g) in ops.iter().enumerate() {
            let here = slot_of[f][i] as i64;
            let op = match *g {
                G::Plain(op) => op,
                G::Jump(op, t) => {
                    let d = slot_of[f][t] as i64 - here - 1;
                    match op {
                        Op::Ja { long, .. } => Op::Ja { delta: d as i32, long },
                        Op::Jump { width, cond, dst, src, .. } => Op::Jump { width, cond, dst, src, off: d as i16 },
                        Op::MayGoto { .. } => Op::MayGoto { off: d as i16 },
                        other => other,
                    }
                }
                G::Call(g2) => call_local((starts[g2] as i64 - here - 1) as i32),
            };
            out.extend_from_slice(op.encode().as_slice());
        }
    }
    out
}
