//! Shared test helpers: short constructors for instructions, random programs, a test-only
//! linearizer, and running programs on the project's VM (the oracle of the analyses).
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use bpfpatch_insn::{AluOp, CallKind, Cond, Insn, LdImm64Kind, Op, Operand, Reg, Size, Width};

pub fn r(n: u8) -> Reg {
    Reg::new(n).unwrap()
}

pub fn enc(ops: &[Op]) -> Vec<Insn> {
    ops.iter().flat_map(|o| o.encode().as_slice().to_vec()).collect()
}

pub fn alu(w: Width, op: AluOp, d: u8, src: Operand) -> Op {
    Op::Alu { width: w, op, dst: r(d), src }
}
pub fn alu64(op: AluOp, d: u8, imm: i32) -> Op {
    alu(Width::W64, op, d, Operand::Imm(imm))
}
pub fn alu64r(op: AluOp, d: u8, s: u8) -> Op {
    alu(Width::W64, op, d, Operand::Reg(r(s)))
}
pub fn alu32(op: AluOp, d: u8, imm: i32) -> Op {
    alu(Width::W32, op, d, Operand::Imm(imm))
}
pub fn alu32r(op: AluOp, d: u8, s: u8) -> Op {
    alu(Width::W32, op, d, Operand::Reg(r(s)))
}
pub fn mov64(d: u8, imm: i32) -> Op {
    alu64(AluOp::Mov, d, imm)
}
pub fn mov64r(d: u8, s: u8) -> Op {
    alu64r(AluOp::Mov, d, s)
}
pub fn mov32(d: u8, imm: i32) -> Op {
    alu32(AluOp::Mov, d, imm)
}
pub fn mov32r(d: u8, s: u8) -> Op {
    alu32r(AluOp::Mov, d, s)
}
pub fn jmp(cond: Cond, d: u8, imm: i32, off: i16) -> Op {
    Op::Jump { width: Width::W64, cond, dst: r(d), src: Operand::Imm(imm), off }
}
pub fn jmpr(cond: Cond, d: u8, s: u8, off: i16) -> Op {
    Op::Jump { width: Width::W64, cond, dst: r(d), src: Operand::Reg(r(s)), off }
}
pub fn jmp32(cond: Cond, d: u8, imm: i32, off: i16) -> Op {
    Op::Jump { width: Width::W32, cond, dst: r(d), src: Operand::Imm(imm), off }
}
pub fn ja(off: i32) -> Op {
    Op::Ja { delta: off, long: false }
}
pub fn exit() -> Op {
    Op::Exit
}
pub fn call_local(rel: i32) -> Op {
    Op::Call(CallKind::Local(rel))
}
pub fn call_helper(id: i32) -> Op {
    Op::Call(CallKind::Helper(id))
}
pub fn ldx(size: Size, d: u8, s: u8, off: i16) -> Op {
    Op::Load { size, signed: false, dst: r(d), src: r(s), off }
}
pub fn stx(size: Size, d: u8, off: i16, s: u8) -> Op {
    Op::Store { size, dst: r(d), off, src: Operand::Reg(r(s)) }
}
pub fn st(size: Size, d: u8, off: i16, imm: i32) -> Op {
    Op::Store { size, dst: r(d), off, src: Operand::Imm(imm) }
}
pub fn lddw(d: u8, v: u64) -> Op {
    Op::LdImm64 { dst: r(d), kind: LdImm64Kind::Imm, lo: v as u32 as i32, hi: (v >> 32) as u32 as i32 }
}
pub fn func_ref(d: u8, rel: i32) -> Op {
    Op::LdImm64 { dst: r(d), kind: LdImm64Kind::Func, lo: rel, hi: 0 }
}

pub mod apply;
pub mod rand_prog;
pub mod vm;
