//! Instruction builders and a small deterministic RNG shared by the integration tests.
// Test code: values are small and known; panicking on a broken expectation is the point.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use bpfpatch_insn::{Insn, opcode as c};

pub fn mov64(dst: u8, imm: i32) -> Insn {
    Insn::new(c::ALU64 | c::MOV | c::K, dst, 0, 0, imm)
}
pub fn mov32(dst: u8, imm: i32) -> Insn {
    Insn::new(c::ALU | c::MOV | c::K, dst, 0, 0, imm)
}
pub fn add64(dst: u8, imm: i32) -> Insn {
    Insn::new(c::ALU64 | c::ADD | c::K, dst, 0, 0, imm)
}
pub fn ja(off: i16) -> Insn {
    Insn::new(c::JMP | c::JA, 0, 0, off, 0)
}
pub fn gotol(imm: i32) -> Insn {
    Insn::new(c::JMP32 | c::JA, 0, 0, 0, imm)
}
pub fn jeq(dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(c::JMP | c::JEQ | c::K, dst, 0, off, imm)
}
pub fn jgt32(dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(c::JMP32 | c::JGT | c::K, dst, 0, off, imm)
}
pub fn jset(dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(c::JMP | c::JSET | c::K, dst, 0, off, imm)
}
pub fn may_goto(off: i16) -> Insn {
    Insn::new(c::JMP | c::JCOND, 0, 0, off, 0)
}
pub fn call_local(imm: i32) -> Insn {
    Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, imm)
}
pub fn call_helper(id: i32) -> Insn {
    Insn::new(c::JMP | c::CALL, 0, 0, 0, id)
}
pub fn exit() -> Insn {
    Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)
}
pub fn ld_imm64(dst: u8, v: i64) -> [Insn; 2] {
    [Insn::new(c::LD_IMM64, dst, 0, 0, v as i32), Insn::new(0, 0, 0, 0, (v >> 32) as i32)]
}
pub fn ld_func(dst: u8, rel: i32) -> [Insn; 2] {
    [Insn::new(c::LD_IMM64, dst, c::PSEUDO_FUNC, 0, rel), Insn::new(0, 0, 0, 0, 0)]
}

#[allow(unused_imports)] // not every test binary generates
pub use bpfpatch_testkit::Rng;
