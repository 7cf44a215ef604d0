//! `do_misc_fixups` rewrites (kernel-patching.md §6.6): division guards, `LD_ABS`/`LD_IND`
//! lowering, `may_goto` expansion, the unprivileged tail-call bound check.

use crate::emit::ins::{
    alu, alu32_imm, alu32_reg, alu64_imm, alu64_reg, call_helper, exit, ja, jmp_imm, ldx, mov_imm, neg, st, stx,
};
use crate::emit::{Emit, RewriteError};
use bpfpatch_insn::{AluOp, Cond, Op, Operand, Reg, Size, Width};
use bpfpatch_patch::PatchBuf;

/// The division-by-zero / by-minus-one guard of `op` (kernel 6.12 `do_misc_fixups`):
/// - `sdiv dst, -1` -> `neg dst`; `smod dst, -1` -> `mov32 dst, 0` (1:1);
/// - `div`/`mod`/`sdiv`/`smod` by a register, 32 or 64 bit: the kernel's `chk_and_div`,
///   `chk_and_mod`, `chk_and_sdiv`, `chk_and_smod` (mod by 0 leaves dst, div by 0 gives 0,
///   `INT_MIN / -1 = INT_MIN`, `x % -1 = 0`; 32-bit forms zero-extend dst on every path).
///
/// `None` for every other instruction.
#[must_use]
pub fn div_guard(op: &Op) -> Option<PatchBuf> {
    let Op::Alu { width, op: alu_op, dst, src } = *op else { return None };
    let is64 = width == Width::W64;
    let mut p = PatchBuf::new();
    match (alu_op, src) {
        (AluOp::SDiv, Operand::Imm(-1)) => {
            p.push_op(&neg(width, dst));
        }
        (AluOp::SMod, Operand::Imm(-1)) => {
            p.push_op(&alu32_imm(AluOp::Mov, dst, 0));
        }
        (AluOp::Div, Operand::Reg(s)) => {
            p.push_op(&jmp_imm(width, Cond::Ne, s, 0, 2))
                .push_op(&alu32_reg(AluOp::Xor, dst, dst))
                .push_op(&ja(1))
                .push_op(op);
        }
        (AluOp::Mod, Operand::Reg(s)) => {
            p.push_op(&jmp_imm(width, Cond::Eq, s, 0, if is64 { 1 } else { 2 })).push_op(op);
            if !is64 {
                p.push_op(&ja(1)).push_op(&alu32_reg(AluOp::Mov, dst, dst));
            }
        }
        (AluOp::SDiv, Operand::Reg(s)) => {
            p.push_op(&alu64_reg(AluOp::Mov, Reg::AX, s))
                .push_op(&alu(width, AluOp::Add, Reg::AX, Operand::Imm(1)))
                .push_op(&jmp_imm(width, Cond::Gt, Reg::AX, 1, 4))
                .push_op(&jmp_imm(width, Cond::Eq, Reg::AX, 0, 1))
                .push_op(&mov_imm(width, dst, 0))
                .push_op(&neg(width, dst))
                .push_op(&ja(1))
                .push_op(op);
        }
        (AluOp::SMod, Operand::Reg(s)) => {
            p.push_op(&alu64_reg(AluOp::Mov, Reg::AX, s))
                .push_op(&alu(width, AluOp::Add, Reg::AX, Operand::Imm(1)))
                .push_op(&jmp_imm(width, Cond::Gt, Reg::AX, 1, 3))
                .push_op(&jmp_imm(width, Cond::Eq, Reg::AX, 1, if is64 { 3 } else { 4 }))
                .push_op(&alu32_imm(AluOp::Mov, dst, 0))
                .push_op(&ja(1))
                .push_op(op);
            if !is64 {
                p.push_op(&ja(1)).push_op(&alu32_reg(AluOp::Mov, dst, dst));
            }
        }
        _ => return None,
    }
    Some(p)
}

/// Helper id the `LD_ABS`/`LD_IND` lowering calls for a 1-byte load.
///
/// Contract of the three `HELPER_LD_ABS_*` helpers (the kernel's
/// `bpf_skb_load_helper_{8,16,32}_no_cache`): called with r1 = the context the program's r6 held
/// and r2 = the offset (only the low 32 bits, as a signed `int`, count), they read 1, 2 or 4
/// bytes at that offset of the packet exactly as the interpreter's `LD_ABS`/`LD_IND` would, and
/// return the value converted from network (big-endian) order and zero-extended, or a negative
/// value (`-EFAULT` = -14) when that read is out of bounds. The lowered sequence then returns 0
/// from the program, which is what the interpreter's `LD_ABS` does on a failed read. The ids are
/// outside the range of Linux helper ids (`0x4c44` is "LD").
pub const HELPER_LD_ABS_B: i32 = 0x4c44_0001;
/// Helper id for a 2-byte `LD_ABS`/`LD_IND` (see [`HELPER_LD_ABS_B`]).
pub const HELPER_LD_ABS_H: i32 = 0x4c44_0002;
/// Helper id for a 4-byte `LD_ABS`/`LD_IND` (see [`HELPER_LD_ABS_B`]).
pub const HELPER_LD_ABS_W: i32 = 0x4c44_0004;

/// `-EFAULT`, what the `HELPER_LD_ABS_*` helpers return for an out-of-bounds read.
#[cfg(any(test, feature = "internals"))]
pub const LD_ABS_EFAULT: i64 = -14;

/// The `HELPER_LD_ABS_*` contract as a function, for an interpreter to register: the value
/// of `bytes` (1, 2 or 4) bytes at offset `(i32) r2` of `packet`, big-endian, zero-extended; or
/// [`LD_ABS_EFAULT`] when the offset is negative or the read leaves the packet, or for any other
/// `bytes` (no helper reads that many; examples: the unit test below).
#[must_use]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
#[cfg(any(test, feature = "internals"))]
pub fn ld_abs_helper_value(packet: &[u8], bytes: u8, r2: u64) -> u64 {
    let off = (r2 as u32).cast_signed();
    let Ok(start) = usize::try_from(off) else { return LD_ABS_EFAULT as u64 };
    match packet.get(start..start.saturating_add(usize::from(bytes))) {
        Some(b) if matches!(bytes, 1 | 2 | 4) => b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
        _ => LD_ABS_EFAULT as u64,
    }
}

/// The number of bytes the helper with id `id` reads, if `id` is one of the `HELPER_LD_ABS_*`.
#[must_use]
#[cfg(any(test, feature = "internals"))]
pub const fn ld_abs_helper_bytes(id: i32) -> Option<u8> {
    match id {
        HELPER_LD_ABS_B => Some(1),
        HELPER_LD_ABS_H => Some(2),
        HELPER_LD_ABS_W => Some(4),
        _ => None,
    }
}

/// The helper a lowered `LD_ABS`/`LD_IND` of `size` calls.
#[must_use]
pub const fn ld_abs_helper(size: Size) -> i32 {
    match size {
        Size::B => HELPER_LD_ABS_B,
        Size::H => HELPER_LD_ABS_H,
        Size::W | Size::DW => HELPER_LD_ABS_W,
    }
}

/// `LD_ABS`/`LD_IND` lowered as the kernel's `bpf_gen_ld_abs`:
/// `mov64 r2, imm` (or `mov64 r2, src; [add64 r2, imm]`), `mov64 r1, r6`, `call helper`,
/// `if r0 s>= 0 goto +2`, `xor32 r0, r0`, `exit`. `None` for other instructions.
///
/// The `exit` returns from the current function, so the pass refuses this lowering in programs
/// with bpf-to-bpf calls (as the kernel refuses `LD_ABS` there).
#[must_use]
pub fn ld_abs(op: &Op) -> Option<PatchBuf> {
    let Op::LdPacket { size, index, imm } = *op else { return None };
    let mut p = PatchBuf::new();
    match index {
        None => {
            p.push_op(&mov_imm(Width::W64, Reg::R2, imm));
        }
        Some(src) => {
            p.push_op(&alu64_reg(AluOp::Mov, Reg::R2, src));
            if imm != 0 {
                p.push_op(&alu64_imm(AluOp::Add, Reg::R2, imm));
            }
        }
    }
    p.push_op(&alu64_reg(AluOp::Mov, Reg::R1, Reg::R6))
        .push_op(&call_helper(ld_abs_helper(size)))
        .push_op(&jmp_imm(Width::W64, Cond::Sge, Reg::R0, 0, 2))
        .push_op(&alu32_reg(AluOp::Xor, Reg::R0, Reg::R0))
        .push_op(&exit());
    Some(p)
}

/// `BPF_MAX_LOOPS`: the initial `may_goto` budget of the counted form.
pub const BPF_MAX_LOOPS: i32 = 8 * 1024 * 1024;

/// `BPF_MAX_TIMED_LOOPS`: the timed form's count between two looks at the clock.
pub const BPF_MAX_TIMED_LOOPS: i32 = 0xffff;

/// The frame offset of `extra` bytes below a subprogram's stack: `-(depth + extra)`, with
/// `depth` rounded up to 8 so the 8-byte words are aligned. The frame itself must fit `limit`
/// (the verifier's `MAX_BPF_STACK`); the extra bytes may lie below it, as the kernel's do:
/// `do_misc_fixups` adds them to the depth after the verifier's check and the JIT allocates
/// them (Linux 6.18 loads a full 512-byte frame with a `may_goto`; `tests/data/may-goto` in the
/// CLI holds one against the running kernel).
fn below_frame(depth: u32, extra: u32, limit: u32) -> Result<i16, RewriteError> {
    let rounded = depth.div_ceil(8).saturating_mul(8);
    if rounded > limit {
        return Err(RewriteError::StackTooDeep { depth, limit });
    }
    i16::try_from(-i64::from(rounded.saturating_add(extra))).map_err(|_| RewriteError::StackTooDeep { depth, limit })
}

/// The frame offset of a subprogram's counted `may_goto` counter: `-(depth + 8)`, with
/// `depth` rounded up to 8 so the 8-byte counter is aligned.
///
/// # Errors
/// [`RewriteError::StackTooDeep`] when the frame is deeper than `limit`.
pub fn may_goto_slot(depth: u32, limit: u32) -> Result<i16, RewriteError> {
    below_frame(depth, 8, limit)
}

/// The frame offset of a subprogram's timed `may_goto` pair (`struct bpf_timed_may_goto`:
/// the count, then the timestamp): `-(depth + 16)`, `depth` rounded up to 8 (the kernel's
/// `stack_off_cnt = -stack_depth - 16`).
///
/// # Errors
/// [`RewriteError::StackTooDeep`] when the frame is deeper than `limit`.
pub fn timed_may_goto_slot(depth: u32, limit: u32) -> Result<i16, RewriteError> {
    below_frame(depth, 16, limit)
}

/// `may_goto` expanded (counted form): `ldx AX, [fp+slot]; if AX == 0 goto <original target>;
/// AX -= 1; stx [fp+slot], AX`. The kernel writes the `JEQ` offset as `off >= 0 ? off + 2 :
/// off - 1`, which [`to_kernel`](crate::emit::to_kernel) reproduces from the escape.
#[must_use]
pub fn may_goto(slot: i16) -> PatchBuf {
    let mut p = PatchBuf::new();
    p.push_op(&ldx(Size::DW, Reg::AX, Reg::R10, slot))
        .escape(jmp_imm(Width::W64, Cond::Eq, Reg::AX, 0, 0))
        .push_op(&alu64_imm(AluOp::Sub, Reg::AX, 1))
        .push_op(&stx(Size::DW, Reg::R10, Reg::AX, slot));
    p
}

/// `may_goto` expanded (timed form, Linux 6.15+ `do_misc_fixups`): `ldx AX, [fp+slot];
/// if AX == 0 goto <original target>; AX -= 1; if AX != 0 goto +2; AX = slot;
/// call arch_bpf_timed_may_goto; stx [fp+slot], AX`. The call
/// ([`TIMED_MAY_GOTO_HELPER`](bpfpatch_insn::TIMED_MAY_GOTO_HELPER)) takes the pair's frame
/// offset in AX and returns the new count there: `BPF_MAX_TIMED_LOOPS` while the time slice
/// lasts, 0 after. The kernel writes the `JEQ` offset as `off >= 0 ? off + 5 : off - 1`, the
/// escape's placement at slot 1 of 7.
#[must_use]
pub fn timed_may_goto(slot: i16) -> PatchBuf {
    let mut p = PatchBuf::new();
    p.push_op(&ldx(Size::DW, Reg::AX, Reg::R10, slot))
        .escape(jmp_imm(Width::W64, Cond::Eq, Reg::AX, 0, 0))
        .push_op(&alu64_imm(AluOp::Sub, Reg::AX, 1))
        .push_op(&jmp_imm(Width::W64, Cond::Ne, Reg::AX, 0, 2))
        .push_op(&alu64_imm(AluOp::Mov, Reg::AX, i32::from(slot)))
        .push_op(&call_helper(bpfpatch_insn::TIMED_MAY_GOTO_HELPER))
        .push_op(&stx(Size::DW, Reg::R10, Reg::AX, slot));
    p
}

/// The counter initialisation inserted before the first instruction of every subprogram that
/// uses `may_goto` (counted form): `st [fp+slot], BPF_MAX_LOOPS` (intra-function jumps to that
/// first instruction skip it; calls enter through it).
#[must_use]
pub const fn may_goto_init(slot: i16) -> Op {
    st(Size::DW, Reg::R10, slot, BPF_MAX_LOOPS)
}

/// The pair's initialisation (timed form): `st [fp+slot], BPF_MAX_TIMED_LOOPS;
/// st [fp+slot+8], 0` (the timestamp 0: the first call of `arch_bpf_timed_may_goto` starts the
/// slice), inserted as [`may_goto_init`] is: jumps to the subprogram's first instruction skip
/// both (the kernel's `adjust_jmp_off` by 2).
#[must_use]
pub const fn timed_may_goto_init(slot: i16) -> [Op; 2] {
    [st(Size::DW, Reg::R10, slot, BPF_MAX_TIMED_LOOPS), st(Size::DW, Reg::R10, slot.wrapping_add(8), 0)]
}

/// Helper id of `bpf_tail_call`.
pub const HELPER_TAIL_CALL: i32 = 12;

/// The kernel's `index_mask` of an array map of `max_entries`: `roundup_pow_of_two(n) - 1`.
#[must_use]
pub const fn index_mask(max_entries: u32) -> u32 {
    match max_entries.checked_next_power_of_two() {
        Some(p) => p - 1,
        None => u32::MAX,
    }
}

/// The tail-call rewrite of `call bpf_tail_call`: the internal `TAIL_CALL` instruction, preceded,
/// when the program array's size is known (unprivileged programs), by the bound check
/// `if r3 >= max_entries goto <after>; w3 &= index_mask`.
///
/// # Errors
/// [`RewriteError::TailCallBound`] when `max_entries` does not fit a positive 32-bit immediate.
pub fn tail_call(max_entries: Option<u32>) -> Result<PatchBuf, RewriteError> {
    let mut p = PatchBuf::new();
    if let Some(n) = max_entries {
        let imm = i32::try_from(n).map_err(|_| RewriteError::TailCallBound { max_entries: n })?;
        #[allow(clippy::cast_possible_wrap)]
        let mask = index_mask(n) as i32;
        p.push_op(&jmp_imm(Width::W64, Cond::Ge, Reg::R3, imm, 2)).push_op(&alu32_imm(AluOp::And, Reg::R3, mask));
    }
    p.push_op(&Op::TailCall);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The helper contract's value: big-endian inside the packet, `-EFAULT` past its end or at
    /// a negative offset (the low 32 bits of r2, signed).
    #[test]
    #[allow(clippy::cast_sign_loss)]
    fn ld_abs_helper_value_reads_big_endian_or_efault() {
        let pkt = [0x12, 0x34, 0x56];
        assert_eq!(ld_abs_helper_value(&pkt, 2, 1), 0x3456);
        assert_eq!(ld_abs_helper_value(&pkt, 2, 2), LD_ABS_EFAULT as u64);
        assert_eq!(ld_abs_helper_value(&pkt, 1, u64::MAX), LD_ABS_EFAULT as u64); // offset -1
        // widths no LD_ABS helper has, even where the packet holds that many bytes
        assert_eq!(ld_abs_helper_value(&pkt, 3, 0), LD_ABS_EFAULT as u64);
        assert_eq!(ld_abs_helper_value(&[0; 8], 8, 0), LD_ABS_EFAULT as u64);
    }
}
