//! Zero-extension and `rnd-hi32` sequences (`opt_subreg_zext_lo32_rnd_hi32`, kernel-patching.md §7).
//!
//! The kernel's explicit zero-extension is `BPF_ZEXT_REG(r)`: `mov32 r, r` with `imm = 1`, a
//! marker JITs recognise ([`Op::Zext`], kernel-internal: it decodes with
//! `DecodeOptions::INTERNAL`). [`kernel_zext_reg`] spells the kernel's slot out field by field
//! for the golden tests.

use crate::emit::ins::{alu64_imm, alu64_reg};
use bpfpatch_insn::{AluOp, Insn, Op, Reg, opcode as c};
use bpfpatch_patch::PatchBuf;

/// The zero-extension the passes emit: `BPF_ZEXT_REG(r)`.
#[must_use]
pub const fn zext_op(r: Reg) -> Op {
    Op::Zext { dst: r }
}

/// The kernel's `BPF_ZEXT_REG(r)` slot: `BPF_ALU | BPF_MOV | BPF_X`, dst = src = r, imm = 1.
#[must_use]
pub const fn kernel_zext_reg(r: Reg) -> Insn {
    Insn::with_regs(c::ALU | c::MOV | c::X, r, r, 0, 1)
}

/// `[op; zext(def)]` for an instruction with a 32-bit definition; `None` otherwise.
#[must_use]
pub fn zext_after(op: &Op) -> Option<PatchBuf> {
    let r = def32_reg(op)?;
    let mut p = PatchBuf::new();
    p.push_op(op).push_op(&zext_op(r));
    Some(p)
}

/// `[op; mov64 AX, rnd; lsh64 AX, 32; or64 def, AX]` for an instruction with a 32-bit
/// definition of a register other than AX; `None` otherwise.
#[must_use]
#[allow(clippy::cast_possible_wrap)]
pub fn rnd_hi32_after(op: &Op, rnd: u32) -> Option<PatchBuf> {
    let r = def32_reg(op)?;
    if r.is_ax() {
        return None;
    }
    let mut p = PatchBuf::new();
    p.push_op(op)
        .push_op(&alu64_imm(AluOp::Mov, Reg::AX, rnd as i32))
        .push_op(&alu64_imm(AluOp::Lsh, Reg::AX, 32))
        .push_op(&alu64_reg(AluOp::Or, r, Reg::AX));
    Some(p)
}

/// The register a 32-bit definition writes (the kernel's `insn_def_regno` when `insn_has_def32`).
#[must_use]
pub fn def32_reg(op: &Op) -> Option<Reg> {
    if op.is_def32() { op.def_reg() } else { None }
}
