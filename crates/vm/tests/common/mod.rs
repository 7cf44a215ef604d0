//! Shared test helpers: build programs from typed instructions and run them.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]

use bpfpatch_insn::{AluOp, AtomicOp, Cond, Insn, Op, Operand, Reg, Size, Width};
use bpfpatch_vm::{Input, LoadError, LoadOptions, LoadedProgram, RunError, RunOutcome, Vm, VmConfig};

pub const R0: Reg = Reg::R0;
pub const R1: Reg = Reg::R1;
pub const R2: Reg = Reg::R2;
pub const R3: Reg = Reg::R3;
pub const R4: Reg = Reg::R4;
pub const R5: Reg = Reg::R5;
pub const R6: Reg = Reg::R6;
pub const R7: Reg = Reg::R7;
pub const R8: Reg = Reg::R8;
pub const R9: Reg = Reg::R9;
pub const R10: Reg = Reg::R10;
pub const AX: Reg = Reg::AX;

pub fn slots(ops: &[Op]) -> Vec<Insn> {
    ops.iter().flat_map(|op| op.encode().to_vec()).collect()
}

pub fn alu(width: Width, op: AluOp, dst: Reg, imm: i32) -> Op {
    Op::Alu { width, op, dst, src: Operand::Imm(imm) }
}
pub fn alur(width: Width, op: AluOp, dst: Reg, src: Reg) -> Op {
    Op::Alu { width, op, dst, src: Operand::Reg(src) }
}
pub fn mov(dst: Reg, imm: i32) -> Op {
    alu(Width::W64, AluOp::Mov, dst, imm)
}
pub fn movr(dst: Reg, src: Reg) -> Op {
    alur(Width::W64, AluOp::Mov, dst, src)
}
pub fn add(dst: Reg, imm: i32) -> Op {
    alu(Width::W64, AluOp::Add, dst, imm)
}
pub fn lddw(dst: Reg, v: u64) -> Op {
    Op::LdImm64 {
        dst,
        kind: bpfpatch_insn::LdImm64Kind::Imm,
        lo: (v as u32).cast_signed(),
        hi: ((v >> 32) as u32).cast_signed(),
    }
}
pub fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Op {
    Op::Load { size, signed: false, dst, src, off }
}
pub fn ldxs(size: Size, dst: Reg, src: Reg, off: i16) -> Op {
    Op::Load { size, signed: true, dst, src, off }
}
pub fn stx(size: Size, dst: Reg, off: i16, src: Reg) -> Op {
    Op::Store { size, dst, off, src: Operand::Reg(src) }
}
pub fn st(size: Size, dst: Reg, off: i16, imm: i32) -> Op {
    Op::Store { size, dst, off, src: Operand::Imm(imm) }
}
pub fn atomic(size: Size, op: AtomicOp, dst: Reg, off: i16, src: Reg) -> Op {
    Op::Atomic { size, op, dst, src, off }
}
pub fn jmp(width: Width, cond: Cond, dst: Reg, imm: i32, off: i16) -> Op {
    Op::Jump { width, cond, dst, src: Operand::Imm(imm), off }
}
pub fn jmpr(width: Width, cond: Cond, dst: Reg, src: Reg, off: i16) -> Op {
    Op::Jump { width, cond, dst, src: Operand::Reg(src), off }
}
pub fn ja(delta: i32) -> Op {
    Op::Ja { delta, long: false }
}
pub fn call_local(rel: i32) -> Op {
    Op::Call(bpfpatch_insn::CallKind::Local(rel))
}
pub fn call(id: i32) -> Op {
    Op::Call(bpfpatch_insn::CallKind::Helper(id))
}
pub const EXIT: Op = Op::Exit;

pub fn load(ops: &[Op]) -> Result<LoadedProgram, LoadError> {
    LoadedProgram::load(&slots(ops), &LoadOptions::default())
}

pub fn load_internal(ops: &[Op]) -> Result<LoadedProgram, LoadError> {
    LoadedProgram::load(&slots(ops), &LoadOptions::INTERNAL)
}

/// Loads (internal forms allowed) and runs with the conformance helpers and `mem`.
pub fn run_with(ops: &[Op], config: VmConfig, mem: &mut [u8]) -> Result<RunOutcome, RunError> {
    let prog = load_internal(ops).unwrap_or_else(|e| panic!("load failed: {e}"));
    let mut vm = Vm::new(config).unwrap();
    vm.register_helper(5, bpfpatch_vm::Unwind);
    vm.run(&prog, Input::mem(mem))
}

/// r0 of a program that must load and run.
pub fn r0(ops: &[Op]) -> u64 {
    match run_with(ops, VmConfig::default(), &mut []) {
        Ok(o) => o.r0,
        Err(e) => panic!("run failed: {e}"),
    }
}
