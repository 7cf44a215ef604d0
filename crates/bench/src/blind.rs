//! The patch every benchmark implementation applies at a site: the kernel's constant blinding
//! (`bpf_jit_blind_insn`) for the instruction kinds the workloads contain.
//!
//! Each workload generates its sites' patches once ([`crate::workload::Workload::site_patches`]),
//! from the *original* program, so every implementation applies the same instructions and the
//! measurements compare patching only.

use crate::workload::Rng;
use bpfpatch_insn::{Insn, opcode as c};

const AX: u8 = 11;

/// The replacement of one slot: up to 4 instructions; `jump_at` is the buffer index of a jump
/// whose target is the original target of the patched instruction (blinding's jcc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SitePatch {
    /// The instructions (`len` of them).
    pub insns: [Insn; 4],
    /// How many.
    pub len: usize,
    /// Index of the jump that keeps the patched instruction's target, if any.
    pub jump_at: Option<usize>,
}

impl SitePatch {
    /// The instructions as a slice.
    #[must_use]
    pub fn as_slice(&self) -> &[Insn] {
        &self.insns[..self.len]
    }
}

fn p3(a: Insn, b: Insn, op: Insn, jump: bool) -> SitePatch {
    SitePatch { insns: [a, b, op, Insn::default()], len: 3, jump_at: jump.then_some(2) }
}

/// The blinding patch of `prog[slot]`, or `None` when the slot is not blindable.
///
/// `prog` is the original program (ld_imm64 halves read their partner slot from it).
pub fn blind_site(prog: &[Insn], slot: usize, rng: &mut Rng) -> Option<SitePatch> {
    let insn = *prog.get(slot)?;
    let rnd = rng.next_i32();
    let class = insn.class();
    if insn.is_ld_imm64() {
        let hi = prog.get(slot + 1)?.imm;
        let d = insn.dst();
        return Some(SitePatch {
            insns: [
                Insn::new(c::ALU64 | c::MOV | c::K, AX, 0, 0, rnd ^ hi),
                Insn::new(c::ALU64 | c::XOR | c::K, AX, 0, 0, rnd),
                Insn::new(c::ALU64 | c::LSH | c::K, AX, 0, 0, 32),
                Insn::new(c::ALU64 | c::MOV | c::X, d, AX, 0, 0),
            ],
            len: 4,
            jump_at: None,
        });
    }
    if insn.code == 0 && slot > 0 && prog.get(slot - 1).is_some_and(Insn::is_ld_imm64) {
        let first = prog[slot - 1];
        return Some(p3(
            Insn::new(c::ALU | c::MOV | c::K, AX, 0, 0, rnd ^ first.imm),
            Insn::new(c::ALU | c::XOR | c::K, AX, 0, 0, rnd),
            Insn::new(c::ALU64 | c::OR | c::X, first.dst(), AX, 0, 0),
            false,
        ));
    }
    let is_k = insn.code & c::SRC_MASK == c::K;
    match class {
        c::ALU | c::ALU64
            if is_k
                && matches!(
                    insn.op(),
                    c::ADD | c::SUB | c::AND | c::OR | c::XOR | c::MUL | c::MOV | c::DIV | c::MOD
                ) =>
        {
            Some(p3(
                Insn::new(class | c::MOV | c::K, AX, 0, 0, rnd ^ insn.imm),
                Insn::new(class | c::XOR | c::K, AX, 0, 0, rnd),
                Insn::new(class | insn.op() | c::X, insn.dst(), AX, insn.off, 0),
                false,
            ))
        }
        c::JMP | c::JMP32 if is_k && insn.is_cond_jump() && insn.op() != c::JCOND => {
            let alu = if class == c::JMP { c::ALU64 } else { c::ALU };
            Some(p3(
                Insn::new(alu | c::MOV | c::K, AX, 0, 0, rnd ^ insn.imm),
                Insn::new(alu | c::XOR | c::K, AX, 0, 0, rnd),
                Insn::new(class | insn.op() | c::X, insn.dst(), AX, insn.off, 0),
                true,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{rand_ld_dw, seed};

    #[test]
    fn every_workload_site_is_blindable_and_others_are_not_sites() {
        for w in [seed(5000), rand_ld_dw(3000)] {
            let mut rng = Rng::new(1);
            for &s in &w.sites {
                assert!(blind_site(w.insns(), s as usize, &mut rng).is_some(), "{} slot {s}", w.name);
            }
        }
    }

    #[test]
    fn ld_imm64_halves_rebuild_the_constant() {
        // r3 = 0x1122334455667788: slot 0 builds the high half shifted, slot 1 ors the low half.
        let prog = [Insn::new(c::LD_IMM64, 3, 0, 0, 0x5566_7788), Insn::new(0, 0, 0, 0, 0x1122_3344)];
        let mut rng = Rng::new(7);
        let a = blind_site(&prog, 0, &mut rng).unwrap();
        let b = blind_site(&prog, 1, &mut rng).unwrap();
        assert_eq!((a.len, b.len), (4, 3));
        let hi = a.insns[0].imm ^ a.insns[1].imm;
        let lo = b.insns[0].imm ^ b.insns[1].imm;
        assert_eq!((hi, lo), (0x1122_3344, 0x5566_7788));
    }
}
