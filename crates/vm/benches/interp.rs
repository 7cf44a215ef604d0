//! Interpreter throughput: instructions executed per second.
//!
//! - `loop`: a counted loop whose body mixes ALU, stack stores/loads and a conditional jump,
//!   about 10 M instructions per run.
//! - `straight_line_1m`: a program of 1 M instructions without jumps (load excluded, run only),
//!   and `load_1m`: checking and lowering that program.
//!
//! `cargo bench -p bpfpatch-vm --bench interp`; criterion reports elements (instructions) / s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bpfpatch_insn::{AluOp, Cond, Insn, Op, Operand, Reg, Size, Width};
use bpfpatch_vm::{Input, LoadOptions, LoadedProgram, Vm, VmConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn alu(op: AluOp, dst: Reg, src: Operand) -> Op {
    Op::Alu { width: Width::W64, op, dst, src }
}

fn slots(ops: &[Op]) -> Vec<Insn> {
    ops.iter().flat_map(|op| op.encode().to_vec()).collect()
}

/// `iterations` times: 9 instructions of mixed work (ALU, stack store and load, a conditional
/// jump) plus the loop control: 11 executed per iteration.
fn loop_program(iterations: i32) -> Vec<Insn> {
    use Operand::{Imm, Reg as R};
    slots(&[
        alu(AluOp::Mov, Reg::R0, Imm(0)),
        alu(AluOp::Mov, Reg::R6, Imm(iterations)),
        alu(AluOp::Mov, Reg::R3, Imm(3)),
        // loop:
        alu(AluOp::Add, Reg::R0, R(Reg::R6)),
        alu(AluOp::Xor, Reg::R0, Imm(0x5555)),
        Op::Alu { width: Width::W32, op: AluOp::Mul, dst: Reg::R3, src: R(Reg::R0) },
        Op::Store { size: Size::DW, dst: Reg::R10, off: -8, src: R(Reg::R0) },
        Op::Load { size: Size::DW, signed: false, dst: Reg::R2, src: Reg::R10, off: -8 },
        alu(AluOp::Rsh, Reg::R2, Imm(3)),
        alu(AluOp::Add, Reg::R0, R(Reg::R2)),
        Op::Jump { width: Width::W64, cond: Cond::Sgt, dst: Reg::R3, src: Imm(0), off: 1 },
        alu(AluOp::Sub, Reg::R0, Imm(1)),
        alu(AluOp::Sub, Reg::R6, Imm(1)),
        Op::Jump { width: Width::W64, cond: Cond::Ne, dst: Reg::R6, src: Imm(0), off: -11 },
        Op::Exit,
    ])
}

fn straight_line(n: usize) -> Vec<Insn> {
    let mut ops = vec![alu(AluOp::Mov, Reg::R0, Operand::Imm(1)), alu(AluOp::Mov, Reg::R3, Operand::Imm(3))];
    let body = [
        alu(AluOp::Add, Reg::R0, Operand::Reg(Reg::R3)),
        alu(AluOp::Mul, Reg::R3, Operand::Imm(7)),
        Op::Alu { width: Width::W32, op: AluOp::Xor, dst: Reg::R0, src: Operand::Imm(0x1234) },
        alu(AluOp::Lsh, Reg::R3, Operand::Imm(1)),
    ];
    while ops.len() < n - 1 {
        ops.push(body[ops.len() % body.len()]);
    }
    ops.push(Op::Exit);
    slots(&ops)
}

fn bench(c: &mut Criterion) {
    let mut vm = Vm::new(VmConfig::default().with_budget(u64::MAX)).unwrap();

    let prog = LoadedProgram::load(&loop_program(1_000_000), &LoadOptions::default()).unwrap();
    let executed = vm.run(&prog, Input::default()).unwrap().executed;
    let mut g = c.benchmark_group("interp");
    g.sample_size(20);
    g.throughput(Throughput::Elements(executed));
    g.bench_function("loop", |b| b.iter(|| black_box(vm.run(black_box(&prog), Input::default()).unwrap().r0)));

    let image = straight_line(1_000_000);
    let prog = LoadedProgram::load(&image, &LoadOptions::default()).unwrap();
    let executed = vm.run(&prog, Input::default()).unwrap().executed;
    g.throughput(Throughput::Elements(executed));
    g.bench_function("straight_line_1m", |b| {
        b.iter(|| black_box(vm.run(black_box(&prog), Input::default()).unwrap().r0));
    });
    g.throughput(Throughput::Elements(image.len() as u64));
    g.bench_function("load_1m", |b| {
        b.iter(|| black_box(LoadedProgram::load(black_box(&image), &LoadOptions::default()).unwrap().len()));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
