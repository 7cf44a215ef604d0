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

/// SplitMix64: tiny, deterministic, good enough for generating test programs.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}
