//! The loaded program: the checked instructions lowered once into a compact internal form.
//!
//! Invariants established by [`LoadedProgram::load`] (and relied on by the interpreter loop):
//! - every register number in an [`Inst`] is at most 11 (the decoder checks it);
//! - every `target` is the index of an instruction in `insts` (the loader checks that each
//!   PC-relative target starts an instruction, and the slot-to-index map turns it into one);
//! - the last instruction is `exit` or an unconditional jump, so execution only leaves the
//!   array through `exit`.
//!
//! Lowering resolves what the raw form leaves to run time: targets become absolute instruction
//! indices, the ld_imm64 halves become one 64-bit value, immediates stay in their decoded form.

use crate::error::LoadError;
use crate::verify::{self, LoadOptions};
use bpfpatch_insn::{
    AluOp, AtomicOp, CallKind, Cond, Insn, LdImm64Kind, Op, Operand, Size, Slot, SwapKind, TIMED_MAY_GOTO_HELPER, Width,
};

/// Base virtual address of "code": a `PSEUDO_FUNC` ld_imm64 loads `CODE_BASE + 8 * index` of
/// the referenced instruction. No data region lies there, so dereferencing it faults.
pub const CODE_BASE: u64 = 0x5_0000_0000;

/// A byte-order operation, fully resolved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SwapOp {
    /// Truncate to 16 bits (`le16` on a little-endian machine).
    Trunc16,
    /// Truncate to 32 bits (`le32`).
    Trunc32,
    /// No-op (`le64`).
    Nop,
    /// Swap the low 16 bits, zero the rest (`be16`, `bswap16`).
    Swap16,
    /// Swap the low 32 bits, zero the rest.
    Swap32,
    /// Swap all 64 bits.
    Swap64,
}

/// One instruction in the interpreter's internal form (16 bytes).
///
/// Register fields are register numbers (0..=11); `target`s are instruction indices.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Inst {
    /// 64-bit ALU with a register operand.
    Alu64 { op: AluOp, dst: u8, src: u8 },
    /// 64-bit ALU with an immediate (sign-extended to 64 bits).
    Alu64Imm { op: AluOp, dst: u8, imm: i32 },
    /// 32-bit ALU with a register operand; the result is a 32-bit definition.
    Alu32 { op: AluOp, dst: u8, src: u8 },
    /// 32-bit ALU with an immediate.
    Alu32Imm { op: AluOp, dst: u8, imm: i32 },
    /// The explicit zero-extension `BPF_ZEXT_REG` (`mov32 dst, dst`, `imm = 1`): clears the
    /// upper half whatever [`crate::interp::Hi32Mode`] is in force.
    Zext { dst: u8 },
    /// Byte-order operation.
    /// A byte-order operation: `le` on a little-endian machine, `be` on a big-endian one.
    Swap { le: SwapOp, be: SwapOp, dst: u8 },
    /// 64-bit constant.
    LdImm64 { dst: u8, value: u64 },
    /// `dst = *(size *)(src + off)`, sign-extended when `signed`.
    Load { size: Size, signed: bool, dst: u8, src: u8, off: i16 },
    /// `*(size *)(dst + off) = src`.
    Store { size: Size, dst: u8, src: u8, off: i16 },
    /// `*(size *)(dst + off) = imm`.
    StoreImm { size: Size, dst: u8, off: i16, imm: i32 },
    /// Atomic read-modify-write.
    Atomic { size: Size, op: AtomicOp, dst: u8, src: u8, off: i16 },
    /// Unconditional jump (`goto` and `gotol`).
    Ja { target: u32 },
    /// 64-bit conditional jump, register operand.
    Jmp64 { cond: Cond, dst: u8, src: u8, target: u32 },
    /// 64-bit conditional jump, immediate operand (sign-extended).
    Jmp64Imm { cond: Cond, dst: u8, imm: i32, target: u32 },
    /// 32-bit conditional jump, register operand.
    Jmp32 { cond: Cond, dst: u8, src: u8, target: u32 },
    /// 32-bit conditional jump, immediate operand.
    Jmp32Imm { cond: Cond, dst: u8, imm: i32, target: u32 },
    /// Helper call by static id.
    CallHelper { id: i32 },
    /// Kernel-internal call of `arch_bpf_timed_may_goto` (the timed `may_goto` expansion):
    /// a helper call of id [`bpfpatch_insn::TIMED_MAY_GOTO_HELPER`] with internal forms on.
    TimedMayGoto,
    /// bpf-to-bpf call.
    CallLocal { target: u32 },
    /// Helper call by the id in a register.
    Callx { reg: u8 },
    /// kfunc call (not supported at run time).
    Kfunc { btf_id: i32, module: i16 },
    /// Return from the current frame.
    Exit,
    /// `may_goto`: jump when the frame's loop budget is exhausted, else decrement it.
    MayGoto { target: u32 },
    /// Kernel-internal tail call: falls through (no program array is modelled).
    TailCall,
    /// Kernel-internal speculation barrier: no-op.
    Nospec,
    /// Legacy packet load (`index` 0xff: LD_ABS).
    LdPacket { size: Size, index: u8, imm: i32 },
}

/// `LdPacket::index` value of LD_ABS (no index register).
pub(crate) const NO_INDEX: u8 = 0xff;

/// A checked program, lowered for execution. Immutable; run it with [`crate::Vm::run`].
#[derive(Clone, Debug)]
pub struct LoadedProgram {
    insts: Vec<Inst>,
    slots: Vec<Slot>,
    n_slots: usize,
    /// Loaded with internal forms: a program as the kernel made it, whose frames may hold a
    /// `may_goto` count below the verified 512 bytes ([`crate::MAY_GOTO_STACK`]).
    internal: bool,
}

impl LoadedProgram {
    /// Checks a program with the loader ([`crate::verify()`]) and lowers it.
    ///
    /// # Errors
    /// The first check the program fails, naming the slot.
    pub fn load(slots: &[Insn], opts: &LoadOptions) -> Result<LoadedProgram, LoadError> {
        let layout = verify::check(slots, opts)?;
        let resolve = |slot: Slot, delta: i64| -> u32 {
            // The loader checked that this target starts an instruction.
            let abs = i64::try_from(slot.0).unwrap_or(0).saturating_add(delta).saturating_add(1);
            usize::try_from(abs).ok().and_then(|t| layout.index(t)).unwrap_or(0)
        };
        let mut insts = Vec::with_capacity(layout.ops.len());
        let mut slot_of = Vec::with_capacity(layout.ops.len());
        for &(slot, op) in &layout.ops {
            insts.push(lower(slot, op, &resolve, opts.internal));
            slot_of.push(slot);
        }
        Ok(LoadedProgram { insts, slots: slot_of, n_slots: slots.len(), internal: opts.internal })
    }

    /// Number of instructions (an ld_imm64 counts once).
    #[must_use]
    pub fn len(&self) -> usize {
        self.insts.len()
    }

    /// Whether the program has no instruction (never true for a loaded program).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }

    /// Number of 8-byte slots of the image it was loaded from.
    #[must_use]
    pub fn slot_count(&self) -> usize {
        self.n_slots
    }

    /// Whether it was loaded with internal forms ([`crate::LoadOptions::internal`]).
    pub(crate) fn internal(&self) -> bool {
        self.internal
    }

    pub(crate) fn insts(&self) -> &[Inst] {
        &self.insts
    }

    /// The slot of instruction `index` (slot 0 for an index out of range).
    pub(crate) fn slot(&self, index: usize) -> Slot {
        self.slots.get(index).copied().unwrap_or_default()
    }
}

fn reg(r: bpfpatch_insn::Reg) -> u8 {
    r.index()
}

fn lower(slot: Slot, op: Op, resolve: &dyn Fn(Slot, i64) -> u32, internal: bool) -> Inst {
    match op {
        Op::Alu { width, op, dst, src } => {
            let dst = reg(dst);
            match (width, src) {
                (Width::W64, Operand::Reg(s)) => Inst::Alu64 { op, dst, src: reg(s) },
                (Width::W64, Operand::Imm(imm)) => Inst::Alu64Imm { op, dst, imm },
                (Width::W32, Operand::Reg(s)) => Inst::Alu32 { op, dst, src: reg(s) },
                (Width::W32, Operand::Imm(imm)) => Inst::Alu32Imm { op, dst, imm },
            }
        }
        Op::Swap { kind, bits, dst } => {
            // On a little-endian machine `le` only truncates and `be` swaps; on a big-endian one
            // the reverse; `bswap` always swaps.
            let keep = match bits {
                16 => SwapOp::Trunc16,
                32 => SwapOp::Trunc32,
                _ => SwapOp::Nop,
            };
            let swap = match bits {
                16 => SwapOp::Swap16,
                32 => SwapOp::Swap32,
                _ => SwapOp::Swap64,
            };
            let (le, be) = match kind {
                SwapKind::Le => (keep, swap),
                SwapKind::Be => (swap, keep),
                SwapKind::Bswap => (swap, swap),
            };
            Inst::Swap { le, be, dst: reg(dst) }
        }
        Op::LdImm64 { dst, kind, lo, hi } => {
            let value = if kind == LdImm64Kind::Func {
                let target = resolve(slot, i64::from(lo));
                CODE_BASE + 8 * u64::from(target)
            } else {
                // Constants, and map references as their raw immediate (no maps are modelled).
                (u64::from(hi.cast_unsigned()) << 32) | u64::from(lo.cast_unsigned())
            };
            Inst::LdImm64 { dst: reg(dst), value }
        }
        Op::LdPacket { size, index, imm } => Inst::LdPacket { size, index: index.map_or(NO_INDEX, reg), imm },
        Op::Load { size, signed, dst, src, off } => Inst::Load { size, signed, dst: reg(dst), src: reg(src), off },
        Op::Store { size, dst, off, src: Operand::Reg(s) } => Inst::Store { size, dst: reg(dst), src: reg(s), off },
        Op::Store { size, dst, off, src: Operand::Imm(imm) } => Inst::StoreImm { size, dst: reg(dst), off, imm },
        Op::Atomic { size, op, dst, src, off } => Inst::Atomic { size, op, dst: reg(dst), src: reg(src), off },
        Op::Ja { delta, .. } => Inst::Ja { target: resolve(slot, i64::from(delta)) },
        Op::Jump { width, cond, dst, src, off } => {
            let target = resolve(slot, i64::from(off));
            let dst = reg(dst);
            match (width, src) {
                (Width::W64, Operand::Reg(s)) => Inst::Jmp64 { cond, dst, src: reg(s), target },
                (Width::W64, Operand::Imm(imm)) => Inst::Jmp64Imm { cond, dst, imm, target },
                (Width::W32, Operand::Reg(s)) => Inst::Jmp32 { cond, dst, src: reg(s), target },
                (Width::W32, Operand::Imm(imm)) => Inst::Jmp32Imm { cond, dst, imm, target },
            }
        }
        Op::Call(CallKind::Helper(TIMED_MAY_GOTO_HELPER)) if internal => Inst::TimedMayGoto,
        Op::Call(CallKind::Helper(id)) => Inst::CallHelper { id },
        Op::Call(CallKind::Local(imm)) => Inst::CallLocal { target: resolve(slot, i64::from(imm)) },
        Op::Call(CallKind::Kfunc { btf_id, module }) => Inst::Kfunc { btf_id, module },
        Op::Callx(r) => Inst::Callx { reg: reg(r) },
        Op::Exit => Inst::Exit,
        Op::MayGoto { off } => Inst::MayGoto { target: resolve(slot, i64::from(off)) },
        Op::TailCall => Inst::TailCall,
        Op::Nospec => Inst::Nospec,
        Op::Zext { dst } => Inst::Zext { dst: reg(dst) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inst_is_16_bytes() {
        assert!(core::mem::size_of::<Inst>() <= 16, "{}", core::mem::size_of::<Inst>());
    }
}
