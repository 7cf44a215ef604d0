//! Fuzzing oracle of the passes, shared by `fuzz/` (libFuzzer) and the smoke test.
//!
//! [`semantic`] takes arbitrary bytes and **panics when a property is violated**: the
//! interpreter (`bpfpatch-vm`) must give the same `r0` and the same memory before and after each
//! pass and the whole pipeline. The bytes drive a [`Rng`] (one to eight bytes per decision, then
//! a SplitMix64 stream seeded from the input). Not part of the stable API: compiled only with
//! the `fuzzing` feature, which brings in the VM.
// An oracle's job is to panic on a broken property; generator arithmetic is on small values.
#![allow(
    clippy::should_implement_trait,
    clippy::needless_range_loop,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use crate::{Options, Pass, Pipeline, transform};
use bpfpatch_insn::{
    AluOp, AtomicOp, CallKind, Cond, DecodeOptions, Endian, Insn, LdImm64Kind, Op, Operand, Reg, Size, SwapKind, Width,
    decode_program, slots_from_bytes,
};
use bpfpatch_vm::memory::Memory;
use bpfpatch_vm::{HelperError, HelperReturn, Hi32Mode, Input, LoadOptions, LoadedProgram, Vm, VmConfig};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Inputs whose original ran to completion, and rewritten programs compared with it.
static STATS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

/// [`semantic`]'s counters since the process started: original programs that ran to
/// completion, and rewritten programs whose results were compared with theirs.
pub fn semantic_stats() -> [usize; 2] {
    core::array::from_fn(|i| STATS[i].load(Relaxed))
}

/// The workspace's one generator randomness (see [`bpfpatch_insn::fuzzing::Rng`]).
pub use bpfpatch_insn::fuzzing::Rng;

fn r(n: u8) -> Reg {
    Reg::new(n).expect("register in range")
}
fn alu(w: Width, op: AluOp, d: u8, src: Operand) -> Op {
    Op::Alu { width: w, op, dst: r(d), src }
}
fn alu64(op: AluOp, d: u8, imm: i32) -> Op {
    alu(Width::W64, op, d, Operand::Imm(imm))
}
fn mov64(d: u8, imm: i32) -> Op {
    alu64(AluOp::Mov, d, imm)
}
fn mov64r(d: u8, s: u8) -> Op {
    alu(Width::W64, AluOp::Mov, d, Operand::Reg(r(s)))
}
fn exit() -> Op {
    Op::Exit
}
fn call_local(rel: i32) -> Op {
    Op::Call(CallKind::Local(rel))
}
fn call_helper(id: i32) -> Op {
    Op::Call(CallKind::Helper(id))
}
fn stx(size: Size, d: u8, off: i16, s: u8) -> Op {
    Op::Store { size, dst: r(d), off, src: Operand::Reg(r(s)) }
}
fn st(size: Size, d: u8, off: i16, imm: i32) -> Op {
    Op::Store { size, dst: r(d), off, src: Operand::Imm(imm) }
}
fn lddw(d: u8, v: u64) -> Op {
    Op::LdImm64 { dst: r(d), kind: LdImm64Kind::Imm, lo: v as u32 as i32, hi: (v >> 32) as u32 as i32 }
}

/// Size of the memory area the generated programs read and write through r9 (`r1` on entry).
pub const MEM_LEN: usize = 64;

/// An instruction of a generated function with a symbolic target, placed by [`layout`].
#[derive(Clone, Copy, Debug)]
pub enum G {
    /// An instruction without a target.
    Plain(Op),
    /// A jump to op index `.1` of the same function (one past the last: the function's end).
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

fn imm(rng: &mut Rng<'_>) -> i32 {
    match rng.below_u64(4) {
        0 => rng.below_u64(9) as i32 - 4,
        1 => rng.choose(&[i32::MIN, i32::MAX, -1, 0x7fff, 0x8000, 0xffff, 32, 63, 0x7fff_fff0]),
        _ => rng.next() as i32,
    }
}

struct Ctx {
    main: bool,
    /// Registers a straight-line instruction may write.
    dst_max: u64,
}

fn mem_access(rng: &mut Rng<'_>, cx: &Ctx, sz: Size) -> (u8, i16) {
    let n = i16::from(sz.bytes());
    if !cx.main || rng.chance(55) {
        // Mostly the top 64 bytes of the frame; sometimes its last two slots, so that a frame is
        // full (512 bytes) and a `may_goto` count goes below it, as the kernel puts it.
        let slot = if rng.chance(5) { 63 + rng.below_u64(2) as i16 } else { 1 + rng.below_u64(8) as i16 };
        (10, -8 * slot + (rng.below_u64(u64::from(8 / sz.bytes())) as i16) * n)
    } else {
        (9, (rng.below_u64((MEM_LEN as u64) / u64::from(sz.bytes())) as i16) * n)
    }
}

/// One straight-line instruction (no jumps, no calls).
fn straight(rng: &mut Rng<'_>, cx: &Ctx) -> Op {
    let dst = rng.below_u64(cx.dst_max + 1) as u8;
    let nsrc = if cx.main { 10 } else { 9 };
    let src = rng.below_u64(nsrc) as u8;
    let w = if rng.chance(50) { Width::W64 } else { Width::W32 };
    match rng.below_u64(100) {
        0..=12 => alu(w, AluOp::Mov, dst, Operand::Imm(imm(rng))),
        13..=54 => {
            let op = rng.choose(&ALU_OPS);
            if op == AluOp::Neg {
                return alu(w, op, dst, Operand::Imm(0));
            }
            if rng.chance(6) {
                let bits = if w == Width::W64 { rng.choose(&[8, 16, 32]) } else { rng.choose(&[8, 16]) };
                return alu(w, AluOp::MovSx(bits), dst, Operand::Reg(r(src)));
            }
            let s = if rng.chance(50) { Operand::Reg(r(src)) } else { Operand::Imm(imm(rng)) };
            alu(w, op, dst, s)
        }
        55..=59 => {
            let kind = rng.choose(&[SwapKind::Le, SwapKind::Be, SwapKind::Bswap]);
            Op::Swap { kind, bits: rng.choose(&[16, 32, 64]), dst: r(dst) }
        }
        60..=62 => lddw(dst, rng.next()),
        63..=75 => {
            let sz = rng.choose(&[Size::B, Size::H, Size::W, Size::DW]);
            let (base, off) = mem_access(rng, cx, sz);
            if rng.chance(30) { st(sz, base, off, imm(rng)) } else { stx(sz, base, off, src) }
        }
        76..=88 => {
            let sz = rng.choose(&[Size::B, Size::H, Size::W, Size::DW]);
            let (base, off) = mem_access(rng, cx, sz);
            let signed = sz != Size::DW && rng.chance(25);
            Op::Load { size: sz, signed, dst: r(dst), src: r(base), off }
        }
        _ => {
            let sz = rng.choose(&[Size::W, Size::DW]);
            let (base, off) = mem_access(rng, cx, sz);
            let fetch = rng.chance(50);
            let op = rng.choose(&[
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

/// A 32-bit definition of `dst` (a shift two times in three) and a 64-bit read of it: the shape
/// whose missing zero-extension a machine that does not zero-extend
/// ([`Hi32Mode::Randomize`]) turns into a wrong result. The read stores to the memory area (main
/// program) or the stack, or folds the value into another register or r0, or compares it.
fn def32_read64(rng: &mut Rng<'_>, cx: &Ctx, dst: u8) -> [Op; 2] {
    let w = Width::W32;
    let src = rng.below_u64(if cx.main { 10 } else { 9 }) as u8;
    let def = if rng.chance(67) {
        let op = rng.choose(&[AluOp::Lsh, AluOp::Rsh, AluOp::Arsh]);
        let amount = if rng.chance(50) { Operand::Reg(r(src)) } else { Operand::Imm(rng.choose(&[0, 1, 4, 16, 31])) };
        alu(w, op, dst, amount)
    } else {
        match rng.below_u64(4) {
            0 => alu(w, rng.choose(&ALU_OPS), dst, Operand::Imm(imm(rng))),
            1 => alu(w, AluOp::Mov, dst, Operand::Reg(r(src))),
            2 => Op::Swap { kind: rng.choose(&[SwapKind::Le, SwapKind::Be, SwapKind::Bswap]), bits: 32, dst: r(dst) },
            _ => {
                let sz = rng.choose(&[Size::B, Size::H, Size::W]);
                let (base, off) = mem_access(rng, cx, sz);
                Op::Load { size: sz, signed: false, dst: r(dst), src: r(base), off }
            }
        }
    };
    let def = match def {
        Op::Alu { op: AluOp::Neg, .. } => alu(w, AluOp::Neg, dst, Operand::Imm(0)),
        other => other,
    };
    let read = match rng.below_u64(4) {
        0 => {
            let (base, off) = mem_access(rng, cx, Size::DW);
            stx(Size::DW, base, off, dst)
        }
        1 => alu(Width::W64, rng.choose(&[AluOp::Add, AluOp::Xor, AluOp::Mov]), 0, Operand::Reg(r(dst))),
        2 => alu(
            Width::W64,
            rng.choose(&[AluOp::Add, AluOp::Or, AluOp::Sub]),
            rng.below_u64(9) as u8,
            Operand::Reg(r(dst)),
        ),
        _ => alu(Width::W64, AluOp::Rsh, dst, Operand::Imm(rng.choose(&[1, 8, 31, 32]))),
    };
    [def, read]
}

fn function(rng: &mut Rng<'_>, f: usize, nfuncs: usize, len: usize) -> Vec<G> {
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
        match rng.below_u64(100) {
            0..=61 => ops.push(G::Plain(straight(rng, &cx))),
            62..=69 => {
                let dst = rng.below_u64(cx.dst_max + 1) as u8;
                ops.extend(def32_read64(rng, &cx, dst).map(G::Plain));
            }
            70..=79 => {
                let w = if rng.chance(50) { Width::W64 } else { Width::W32 };
                let cond = rng.choose(&Cond::ALL);
                let k = if rng.chance(60) { rng.below_u64(9) as i32 - 4 } else { imm(rng) };
                let s = if rng.chance(40) {
                    Operand::Reg(r(rng.below_u64(if main { 10 } else { 9 }) as u8))
                } else {
                    Operand::Imm(k)
                };
                forward.push(ops.len());
                ops.push(G::Jump(
                    Op::Jump { width: w, cond, dst: r(rng.below_u64(9) as u8), src: s, off: 0 },
                    usize::MAX,
                ));
            }
            80..=82 => {
                forward.push(ops.len());
                ops.push(G::Jump(Op::Ja { delta: 0, long: rng.chance(40) }, usize::MAX));
            }
            83..=87 => {
                // for (r8 = k; r8 != 0; r8--) { [may_goto out;] body }
                ops.push(G::Plain(mov64(8, 1 + rng.below_u64(4) as i32)));
                let head = ops.len();
                let guard = rng.chance(50);
                let guard_at = ops.len();
                if guard {
                    ops.push(G::Jump(Op::MayGoto { off: 0 }, usize::MAX));
                }
                for _ in 0..1 + rng.below_u64(4) {
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
            92..=96 if f + 1 < nfuncs => ops.push(G::Call(f + 1 + rng.below_u64((nfuncs - f - 1) as u64) as usize)),
            _ => ops.push(G::Plain(straight(rng, &cx))),
        }
    }
    let end = ops.len();
    let allowed: Vec<usize> = (0..=end).filter(|&t| !in_loop.iter().any(|&(a, b)| t >= a && t < b)).collect();
    for at in forward {
        if let G::Jump(op, _) = ops[at] {
            let later: Vec<usize> = allowed.iter().copied().filter(|&t| t > at).collect();
            let t = later[rng.below_u64(later.len() as u64) as usize];
            ops[at] = G::Jump(op, t);
        }
    }
    ops.push(G::Plain(exit()));
    ops
}

/// A random program of `nfuncs` functions of about `len` instructions each, from `rng`: every
/// register is initialised before use, r9 holds the memory area (main program), jumps and calls
/// go forward except bounded loops (a counter in r8, optionally guarded by `may_goto`), memory
/// goes to the stack and the [`MEM_LEN`]-byte area, cpu-v4 forms included; helper 1 is called.
pub fn vm_program(rng: &mut Rng<'_>, nfuncs: usize, len: usize) -> Vec<Insn> {
    let funcs: Vec<Vec<G>> = (0..nfuncs).map(|f| function(rng, f, nfuncs, len)).collect();
    layout(&funcs)
}

/// The slots of generated functions laid out one after the other: each symbolic jump and call
/// gets its PC-relative field (every generator of random programs shares this).
#[must_use]
pub fn layout(funcs: &[Vec<G>]) -> Vec<Insn> {
    let mut starts = Vec::new();
    let mut slot_of: Vec<Vec<usize>> = Vec::new();
    let mut slot = 0;
    for ops in funcs {
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

/// Helper 1 of the generated programs: a pure function of its first two arguments.
fn helper1(args: [u64; 5], _m: &mut Memory<'_>) -> Result<HelperReturn, HelperError> {
    Ok(HelperReturn::Value(args[0].rotate_left(13) ^ args[1].wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// Instruction budget of the original run; the rewritten one gets room for the growth.
const BUDGET: u64 = 200_000;

/// Runs `insns` on the VM: `Ok(Some((r0, memory, executed)))`, `Ok(None)` when the run faults or
/// runs out of budget, `Err` when the loader rejects the program.
fn run(
    insns: &[Insn],
    load: LoadOptions,
    mem0: &[u8],
    budget: u64,
    hi32: Hi32Mode,
) -> Result<Option<(u64, Vec<u8>, u64)>, String> {
    let prog = LoadedProgram::load(insns, &load).map_err(|e| e.to_string())?;
    // The default `may_goto` budget (the kernel's): the fixups pass expands `may_goto` into a
    // counter of that size, so a smaller one here would change the original's behaviour.
    let mut vm = Vm::new(VmConfig::default().with_budget(budget).with_hi32(hi32)).map_err(|e| e.to_string())?;
    vm.register_helper(1, helper1);
    let mut mem = mem0.to_vec();
    Ok(vm.run(&prog, Input::mem(&mut mem)).ok().map(|o| (o.r0, mem, o.executed)))
}

/// The pipelines compared with the original: each pass alone (except `ctx`, which changes the
/// context layout by design), the whole pipeline, and the whole pipeline with blinding.
fn pipelines() -> Vec<(String, Pipeline)> {
    let mut out: Vec<(String, Pipeline)> = Pass::ORDER
        .iter()
        .copied()
        .filter(|p| *p != Pass::Ctx)
        .filter_map(|p| Pipeline::parse(p.name()).ok().map(|pl| (p.name().to_string(), pl)))
        .collect();
    out.push(("all".into(), Pipeline::all()));
    out.push(("all+blind".into(), Pipeline::all().with(Pass::Blind)));
    out
}

/// How the VM runs the output of `pipeline`: with random upper halves after 32-bit definitions
/// ([`Hi32Mode::Randomize`], a machine that does not zero-extend) when the pipeline has `zext`,
/// whose job is to make the program correct on such a machine; zero-extending otherwise.
#[must_use]
pub fn hi32_mode(pipeline: &Pipeline, seed: u64) -> Hi32Mode {
    if pipeline.passes().contains(&Pass::Zext) { Hi32Mode::Randomize(seed) } else { Hi32Mode::ZeroExtend }
}

/// The semantic oracle. The first byte chooses the program:
/// - even: a generated program ([`vm_program`]: 1–3 functions with calls, helper calls, bounded
///   loops, `may_goto`, stack and memory-area accesses, atomics, cpu-v4 forms), which the VM
///   must load; every pipeline must rewrite it, the rewritten program must decode and load
///   (kernel-internal forms allowed) and give the same `r0` and memory, on a machine that
///   leaves random upper halves after 32-bit definitions when the pipeline has `zext`
///   ([`hi32_mode`]; the original runs zero-extending);
/// - odd: the remaining bytes as a raw little-endian image: every pipeline returns a result or a
///   typed error (never panics); if the VM loads and runs the original, every rewritten program
///   must decode, load and give the same `r0` and memory.
///
/// # Panics
/// When a rewritten program behaves differently from the original, does not decode or load,
/// or a pass fails on a generated program.
pub fn semantic(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut rng = Rng::from_bytes_seeded(rest, u64::from(mode));
    let generated = mode % 2 == 0;
    let insns = if generated {
        let nfuncs = 1 + rng.below_u64(3) as usize;
        let len = 4 + rng.below_u64(40) as usize;
        vm_program(&mut rng, nfuncs, len)
    } else {
        match slots_from_bytes(&rest[..rest.len() / 8 * 8], Endian::Little) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    let mem0: Vec<u8> = (0..MEM_LEN).map(|_| rng.next() as u8).collect();
    let seed = rng.next();
    let want = match run(&insns, LoadOptions::default(), &mem0, BUDGET, Hi32Mode::ZeroExtend) {
        Ok(Some(w)) => Some(w),
        Ok(None) => None,
        Err(e) if generated => panic!("the generator made a program the VM rejects: {e}\n{insns:?}"),
        Err(_) => None,
    };
    if want.is_some() {
        STATS[0].fetch_add(1, Relaxed);
    }
    let opts = Options { seed, ..Options::default() };
    for (name, pipeline) in pipelines() {
        let out = match transform(&insns, &pipeline, &opts) {
            Ok(out) => out,
            Err(e) if generated => panic!("{name}: failed on a generated program: {e}\n{insns:?}"),
            Err(_) => continue,
        };
        if generated || want.is_some() {
            decode_program(&out, DecodeOptions::INTERNAL)
                .unwrap_or_else(|e| panic!("{name}: output does not decode: {e}\n{insns:?}"));
        }
        let Some((r0, mem, executed)) = &want else { continue };
        // Blinding's `xor dst, dst` for `mov dst, 0` reads dst as far as the loader can tell.
        let load = LoadOptions::INTERNAL.with_check_uninit(!name.contains("blind"));
        let budget = executed.saturating_mul(16).saturating_add(10_000);
        let got = run(&out, load, &mem0, budget, hi32_mode(&pipeline, seed))
            .unwrap_or_else(|e| panic!("{name}: the VM rejects the rewritten program: {e}\n{insns:?}\n{out:?}"));
        let Some((r0b, memb, _)) = got else {
            panic!("{name}: the rewritten program faults or loops where the original ran\n{insns:?}\n{out:?}")
        };
        assert_eq!((r0b, &memb), (*r0, mem), "{name}: different result\n{insns:?}\n{out:?}");
        STATS[1].fetch_add(1, Relaxed);
    }
}
