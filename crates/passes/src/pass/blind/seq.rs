//! Constant blinding (`bpf_jit_blind_insn`, kernel-patching.md §4).
//!
//! Which instructions: ALU/ALU64 `add, sub, and, or, xor, mul, mov, div, mod` with an immediate
//! (`sdiv`/`smod` too: the `off` field is kept), conditional jumps (JMP and JMP32) with an
//! immediate, `ST` immediate stores, and plain ld_imm64. `mov` of immediate 0 becomes
//! `xor64 dst, dst`. Never blinded: anything naming AX, `PSEUDO_FUNC` ld_imm64, shifts, `neg`,
//! byte swaps, `ja`, calls, `exit`, loads, register stores, atomics. ld_imm64 with another pseudo
//! kind (map fd, map value, BTF id) is not blinded either: in the kernel these are addresses by
//! the time blinding runs; here they are still relocations, not user constants.
//!
//! One random 32-bit value per blinded instruction (two for ld_imm64, one per slot, as the
//! kernel draws per slot) comes from an injectable [`BlindRng`].

use crate::emit::Emit;
use crate::emit::ins::{alu, alu32_imm, alu64_imm, alu64_reg, mov_imm, stx};
use crate::pass::zext::seq as zext;
use bpfpatch_insn::{AluOp, LdImm64Kind, Op, Operand, Reg};
use bpfpatch_patch::PatchBuf;

/// A source of random 32-bit values for blinding and `rnd-hi32`.
pub trait BlindRng {
    /// The next value.
    fn next_u32(&mut self) -> u32;
}

/// A seedable, deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator from a seed.
    #[must_use]
    pub const fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl BlindRng for SplitMix64 {
    /// The high half of the next [`SplitMix64::next_u64`].
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Options of the blinding rewrite.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BlindOptions {
    /// The kernel's `prog->aux->verifier_zext`: the target needs explicit zero-extension, so
    /// the second half of a blinded ld_imm64 zero-extends AX after its 32-bit move.
    pub emit_zext: bool,
}

fn uses_ax(op: &Op) -> bool {
    op.uses().union(op.defs()).contains(Reg::AX)
}

#[allow(clippy::cast_possible_wrap)]
fn rnd(rng: &mut dyn BlindRng) -> i32 {
    rng.next_u32() as i32
}

/// The blinded replacement of `op`, or `None` when the kernel leaves it alone.
///
/// A blinded conditional jump escapes to the original target (see [`to_kernel`](crate::emit::to_kernel):
/// the kernel's `off < 0 ? off - 2 : off`).
pub fn blind(op: &Op, rng: &mut dyn BlindRng, opts: BlindOptions) -> Option<PatchBuf> {
    if uses_ax(op) {
        return None;
    }
    let ax = Reg::AX;
    let mut p = PatchBuf::new();
    match *op {
        Op::Alu { op: AluOp::Mov, dst, src: Operand::Imm(0), .. } => {
            p.push_op(&alu64_reg(AluOp::Xor, dst, dst));
        }
        Op::Alu { width, op: alu_op, dst, src: Operand::Imm(imm) } => {
            if !matches!(
                alu_op,
                AluOp::Add
                    | AluOp::Sub
                    | AluOp::And
                    | AluOp::Or
                    | AluOp::Xor
                    | AluOp::Mul
                    | AluOp::Mov
                    | AluOp::Div
                    | AluOp::SDiv
                    | AluOp::Mod
                    | AluOp::SMod
            ) {
                return None;
            }
            let r = rnd(rng);
            p.push_op(&mov_imm(width, ax, r ^ imm));
            p.push_op(&alu(width, AluOp::Xor, ax, Operand::Imm(r)));
            p.push_op(&alu(width, alu_op, dst, Operand::Reg(ax)));
        }
        Op::Jump { width, cond, dst, src: Operand::Imm(imm), .. } => {
            let r = rnd(rng);
            p.push_op(&mov_imm(width, ax, r ^ imm));
            p.push_op(&alu(width, AluOp::Xor, ax, Operand::Imm(r)));
            p.escape(Op::Jump { width, cond, dst, src: Operand::Reg(ax), off: 0 });
        }
        Op::Store { size, dst, off, src: Operand::Imm(imm) } => {
            let r = rnd(rng);
            p.push_op(&alu64_imm(AluOp::Mov, ax, r ^ imm));
            p.push_op(&alu64_imm(AluOp::Xor, ax, r));
            p.push_op(&stx(size, dst, ax, off));
        }
        Op::LdImm64 { dst, kind: LdImm64Kind::Imm, lo, hi } => {
            let [a, b] = blind_ld_imm64(dst, lo, hi, rng, opts);
            p.append(&a).append(&b);
        }
        _ => return None,
    }
    Some(p)
}

/// The two per-slot patches of a blinded ld_imm64 (kernel: slot 0 -> 4 insns, slot 1 -> 3, or
/// 4 with `emit_zext`); concatenated they replace the instruction.
pub fn blind_ld_imm64(dst: Reg, lo: i32, hi: i32, rng: &mut dyn BlindRng, opts: BlindOptions) -> [PatchBuf; 2] {
    let ax = Reg::AX;
    let mut first = PatchBuf::new();
    let r = rnd(rng);
    first
        .push_op(&alu64_imm(AluOp::Mov, ax, r ^ hi))
        .push_op(&alu64_imm(AluOp::Xor, ax, r))
        .push_op(&alu64_imm(AluOp::Lsh, ax, 32))
        .push_op(&alu64_reg(AluOp::Mov, dst, ax));
    let mut second = PatchBuf::new();
    let r = rnd(rng);
    second.push_op(&alu32_imm(AluOp::Mov, ax, r ^ lo)).push_op(&alu32_imm(AluOp::Xor, ax, r));
    if opts.emit_zext {
        second.push_op(&zext::zext_op(ax));
    }
    second.push_op(&alu64_reg(AluOp::Or, dst, ax));
    [first, second]
}
