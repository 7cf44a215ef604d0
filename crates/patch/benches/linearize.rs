//! 1M blinding-like patches (every ALU-with-immediate instruction of a 1M-slot program becomes
//! three: `mov AX, rnd^imm; xor AX, rnd; op dst, AX`), ~3M slots out, with jumps to fix.
//!
//! - `patch+linearize/cold`: build the list, patch, linearize with fresh buffers;
//! - `patch+linearize/warm`: the same through a reused `PatchList` and `PatchCtx`;
//! - `linearize/warm`: linearization alone of the patched list, reusing the context;
//! - `inorder/warm`: the same requests through the in-order engine ([`InOrder`]: requests in
//!   slot order written straight into a reused output), a program without aux;
//! - `inorder+aux/warm`: the same with the kernel's aux record per slot (`KernelAux`, written
//!   for every new slot through `KernelAuxHook`): what aux costs the in-order engine;
//! - `copy/3M`: baseline, copying a 3M-slot output into a reused buffer.
// Bench code: sizes are constants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

use bpfpatch_insn::{Insn, Reg, Slot, opcode as c};
use bpfpatch_patch::reference::{KernelAux, KernelAuxHook};
use bpfpatch_patch::{
    AuxHook, InOrder, InOrderCtx, LinearizeOptions, NoAux, PatchBuf, PatchCtx, PatchList, PatchedProgram, Program,
    SideTables, Target,
};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const N: usize = 1_000_000;

/// Every 16th slot is a conditional jump 8 slots ahead; the rest are `add r1, k`.
fn program() -> Vec<Insn> {
    let mut p: Vec<Insn> = (0..N - 1)
        .map(|i| {
            if i % 16 == 15 && i + 9 < N {
                Insn::new(c::JMP | c::JEQ | c::K, 1, 0, 8, 0)
            } else {
                Insn::new(c::ALU64 | c::ADD | c::K, 1, 0, 0, i as i32)
            }
        })
        .collect();
    p.push(Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0));
    p
}

/// The blinding requests of `prog`, in slot order: `request(slot, buffer)` for each.
fn each_blinding(prog: &[Insn], buf: &mut PatchBuf, mut request: impl FnMut(Slot, &PatchBuf)) {
    let ax = Reg::AX.index();
    for (i, insn) in prog.iter().enumerate() {
        if insn.code == c::ALU64 | c::ADD | c::K {
            let rnd = 0x5a5a_5a5a_i32 ^ i as i32;
            buf.clear();
            buf.push(Insn::new(c::ALU64 | c::MOV | c::K, ax, 0, 0, rnd ^ insn.imm))
                .push(Insn::new(c::ALU64 | c::XOR | c::K, ax, 0, 0, rnd))
                .push(Insn::new(c::ALU64 | c::ADD | c::X, insn.dst(), ax, 0, 0));
        } else if insn.code == c::JMP | c::JEQ | c::K {
            buf.clear();
            buf.push(Insn::new(c::ALU64 | c::MOV | c::K, ax, 0, 0, 7))
                .push(Insn::new(c::ALU64 | c::XOR | c::K, ax, 0, 0, 7))
                .jump_to(Insn::new(c::JMP | c::JEQ | c::X, insn.dst(), ax, 0, 0), Target::OrigTarget);
        } else {
            continue;
        }
        request(Slot(i), buf);
    }
}

fn blind(list: &mut PatchList, prog: &[Insn], buf: &mut PatchBuf) {
    each_blinding(prog, buf, |slot, b| {
        list.patch(list.node_of(slot).unwrap(), b).unwrap();
    });
}

/// [`blind`]'s requests through the in-order engine.
fn blind_in_order<A: Clone, H: AuxHook<A>>(
    ctx: &mut InOrderCtx,
    prog: &Program<A>,
    hook: &mut H,
    out: &mut PatchedProgram<A>,
    buf: &mut PatchBuf,
) -> usize {
    let mut io = InOrder::new(ctx, prog, hook, out).unwrap();
    each_blinding(&prog.insns, buf, |slot, b| {
        io.patch(slot, b).unwrap();
    });
    io.finish().unwrap();
    out.program.insns.len()
}

fn bench(cr: &mut Criterion) {
    let prog = program();
    let mut g = cr.benchmark_group("blinding-1M");
    g.sample_size(10);
    g.bench_function("patch+linearize/cold", |b| {
        b.iter(|| {
            let mut l = PatchList::new(&prog).unwrap();
            let mut buf = PatchBuf::new();
            blind(&mut l, &prog, &mut buf);
            black_box(l.linearize(LinearizeOptions::default()).unwrap().insns.len())
        });
    });
    let mut list = PatchList::default();
    let mut ctx = PatchCtx::new();
    let mut buf = PatchBuf::new();
    list.reset(&prog, None).unwrap();
    blind(&mut list, &prog, &mut buf);
    list.linearize_with(&mut ctx, LinearizeOptions::default()).unwrap();
    g.bench_function("patch+linearize/warm", |b| {
        b.iter(|| {
            list.reset(&prog, None).unwrap();
            blind(&mut list, &prog, &mut buf);
            black_box(list.linearize_with(&mut ctx, LinearizeOptions::default()).unwrap().insns.len())
        });
    });
    g.bench_function("linearize/warm", |b| {
        b.iter(|| black_box(list.linearize_with(&mut ctx, LinearizeOptions::default()).unwrap().insns.len()));
    });
    let (mut ictx, mut buf) = (InOrderCtx::new(), PatchBuf::new());
    let bare = Program::without_aux(prog.clone(), SideTables::default());
    let mut out = PatchedProgram::default();
    blind_in_order(&mut ictx, &bare, &mut NoAux, &mut out, &mut buf);
    g.bench_function("inorder/warm", |b| {
        b.iter(|| black_box(blind_in_order(&mut ictx, &bare, &mut NoAux, &mut out, &mut buf)));
    });
    let aux =
        (0..prog.len()).map(|i| KernelAux { seen: true, zext_dst: false, orig_idx: i as u32, other: 7 }).collect();
    let with_aux = Program { insns: prog.clone(), aux, tables: SideTables::default() };
    let mut out = PatchedProgram::default();
    blind_in_order(&mut ictx, &with_aux, &mut KernelAuxHook, &mut out, &mut buf);
    g.bench_function("inorder+aux/warm", |b| {
        b.iter(|| black_box(blind_in_order(&mut ictx, &with_aux, &mut KernelAuxHook, &mut out, &mut buf)));
    });
    let src = ctx.out.insns.clone();
    let mut dst: Vec<Insn> = Vec::with_capacity(src.len());
    g.bench_function("copy/3M", |b| {
        b.iter(|| {
            dst.clear();
            dst.extend_from_slice(black_box(&src));
            black_box(&mut dst).len()
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
