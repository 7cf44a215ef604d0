//! Typed instruction constructors for the generators (the kernel's `BPF_*` macros, as [`Op`]s).

use bpfpatch_insn::{AluOp, CallKind, Cond, Op, Operand, Reg, Size, Width};

/// `dst op= src` at `width`.
#[must_use]
pub const fn alu(width: Width, op: AluOp, dst: Reg, src: Operand) -> Op {
    Op::Alu { width, op, dst, src }
}

/// `BPF_ALU64_IMM(op, dst, imm)`.
#[must_use]
pub const fn alu64_imm(op: AluOp, dst: Reg, imm: i32) -> Op {
    alu(Width::W64, op, dst, Operand::Imm(imm))
}

/// `BPF_ALU32_IMM(op, dst, imm)`.
#[must_use]
pub const fn alu32_imm(op: AluOp, dst: Reg, imm: i32) -> Op {
    alu(Width::W32, op, dst, Operand::Imm(imm))
}

/// `BPF_ALU64_REG(op, dst, src)`.
#[must_use]
pub const fn alu64_reg(op: AluOp, dst: Reg, src: Reg) -> Op {
    alu(Width::W64, op, dst, Operand::Reg(src))
}

/// `BPF_ALU32_REG(op, dst, src)`.
#[must_use]
pub const fn alu32_reg(op: AluOp, dst: Reg, src: Reg) -> Op {
    alu(Width::W32, op, dst, Operand::Reg(src))
}

/// `mov dst, imm` at `width`.
#[must_use]
pub const fn mov_imm(width: Width, dst: Reg, imm: i32) -> Op {
    alu(width, AluOp::Mov, dst, Operand::Imm(imm))
}

/// `mov dst, src` at `width`.
#[must_use]
pub const fn mov_reg(width: Width, dst: Reg, src: Reg) -> Op {
    alu(width, AluOp::Mov, dst, Operand::Reg(src))
}

/// `neg dst` at `width`.
#[must_use]
pub const fn neg(width: Width, dst: Reg) -> Op {
    alu(width, AluOp::Neg, dst, Operand::Imm(0))
}

/// Conditional jump on an immediate.
#[must_use]
pub const fn jmp_imm(width: Width, cond: Cond, dst: Reg, imm: i32, off: i16) -> Op {
    Op::Jump { width, cond, dst, src: Operand::Imm(imm), off }
}

/// `goto +off`.
#[must_use]
pub const fn ja(off: i16) -> Op {
    Op::Ja { delta: off as i32, long: false }
}

/// `dst = *(size *)(src + off)`.
#[must_use]
pub const fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Op {
    Op::Load { size, signed: false, dst, src, off }
}

/// `*(size *)(dst + off) = src`.
#[must_use]
pub const fn stx(size: Size, dst: Reg, src: Reg, off: i16) -> Op {
    Op::Store { size, dst, off, src: Operand::Reg(src) }
}

/// `*(size *)(dst + off) = imm`.
#[must_use]
pub const fn st(size: Size, dst: Reg, off: i16, imm: i32) -> Op {
    Op::Store { size, dst, off, src: Operand::Imm(imm) }
}

/// `call` a helper by id.
#[must_use]
pub const fn call_helper(id: i32) -> Op {
    Op::Call(CallKind::Helper(id))
}

/// `exit`.
#[must_use]
pub const fn exit() -> Op {
    Op::Exit
}
