//! 32-bit subregister liveness: for every 32-bit definition, whether the upper half of the
//! defined value may be read as 64 bits.
//!
//! This is a backward "upper half live" analysis per register (r0..r10, AX) on the
//! intra-procedural CFG of every subprogram, with conservative summaries at calls, following the
//! kernel's `is_reg64` classification of reads:
//! - 64-bit reads: ALU64 operands (including `mov64`, shifts, `movsx64`), 64-bit jump operands,
//!   `le64`/`be64`/`bswap64`, load and store base registers, the value of an 8-byte store or
//!   atomic (and r0 of an 8-byte cmpxchg), `LD_IND`'s index and r6, tail call r1..r3,
//!   helper and `callx` arguments r1..r5 (and the `callx` register), r0..r9 at a bpf-to-bpf
//!   call (the callee may read its arguments r1..r5 as 64 bits; r0 and r6..r9 too, on an
//!   interpreter that does not clear them at the call, although the kernel verifier would reject
//!   such a callee), and r0 at `exit` (the caller, or the program's user, reads it as 64 bits).
//! - 32-bit reads (do not read the upper half): ALU32 operands, 32-bit jump operands, the value
//!   of 1/2/4-byte stores and 4-byte atomics, `le16/32`, `be16/32`, `bswap16/32`, the internal
//!   `Zext` (`BPF_ZEXT_REG`).
//! - Definitions kill: every register in [`bpfpatch_insn::Op::defs`], except that calls,
//!   `LD_ABS`/`LD_IND` and tail calls kill only r0 (helpers and tail calls: nothing): whether
//!   r1..r5 are clobbered is the interpreter's business, so their old values may survive.
//!   r6..r9 flow through bpf-to-bpf calls untouched (they are callee-saved).
//! - `exit` of a subprogram reads r0, plus every register of r1..r5 that is live right after
//!   some call of that subprogram (an interpreter that does not clobber r1..r5 at return hands the
//!   callee's values to the caller). This summary is computed by rerunning the intra-procedural
//!   fixed point until it is stable (at most 5 registers per subprogram can be added).
//! - A block that falls off the end of its subprogram (an invalid program) treats every register
//!   as read.
//!
//! The instruction at `i` with a 32-bit definition of `r` (see [`bpfpatch_insn::Op::is_def32`])
//! *needs zero-extension* iff `r`'s upper half is live right after `i`. The analysis is sound
//! for any path, feasible or not, so a program whose upper halves are overwritten with random
//! bits wherever it says "not needed" computes the same results (the kernel's
//! `BPF_F_TEST_RND_HI32`).

use crate::analysis::cfg::{BlockId, Cfg};
use crate::analysis::worklist::Worklist;
use crate::program::{InsnIdx, to_u32};
use bpfpatch_insn::{AtomicOp, CallKind, Op, Operand, Reg, RegSet, Size, Width};

/// Registers whose full 64-bit value `op` reads (see the module documentation).
#[must_use]
pub fn reads64(op: &Op) -> RegSet {
    let reg = |o: Operand| match o {
        Operand::Reg(r) => RegSet::of(r),
        Operand::Imm(_) => RegSet::EMPTY,
    };
    match *op {
        Op::Alu { width: Width::W64, .. } | Op::Jump { width: Width::W64, .. } => op.uses(),
        Op::Alu { width: Width::W32, .. } | Op::Jump { width: Width::W32, .. } => RegSet::EMPTY,
        Op::Swap { bits, dst, .. } => {
            if bits == 64 {
                RegSet::of(dst)
            } else {
                RegSet::EMPTY
            }
        }
        // `Zext` reads only the low half of its register.
        Op::LdImm64 { .. } | Op::Ja { .. } | Op::MayGoto { .. } | Op::Nospec | Op::Zext { .. } => RegSet::EMPTY,
        Op::Call(CallKind::Local(_)) => RegSet(0x3ff),
        Op::LdPacket { .. } | Op::Call(_) | Op::Callx(_) | Op::Exit | Op::TailCall => op.uses(),
        Op::Load { src, .. } => RegSet::of(src),
        Op::Store { size, dst, src, .. } => {
            let base = RegSet::of(dst);
            if size == Size::DW { base.union(reg(src)) } else { base }
        }
        Op::Atomic { size, op: aop, dst, src, .. } => {
            let mut s = RegSet::of(dst);
            if size == Size::DW {
                s = s.with(src);
                if aop == AtomicOp::Cmpxchg {
                    s = s.with(Reg::R0);
                }
            }
            s
        }
    }
}

/// Result of the liveness analysis.
#[derive(Clone, Debug)]
pub struct Liveness {
    /// Per instruction: `None` if it has no 32-bit definition, else whether the upper half is read.
    upper_read: Vec<Option<bool>>,
}

/// Registers `op` certainly overwrites (see the module documentation).
fn kills(op: &Op) -> RegSet {
    match op {
        Op::Call(_) | Op::Callx(_) | Op::LdPacket { .. } => RegSet::of(Reg::R0),
        Op::TailCall => RegSet::EMPTY,
        _ => op.defs(),
    }
}

/// Applies `op` backwards to the live set; `exit_reads` is what `exit` reads in this subprogram.
fn step(op: &Op, live: u16, exit_reads: u16) -> u16 {
    let reads = if matches!(op, Op::Exit) { exit_reads } else { reads64(op).0 };
    (live & !kills(op).0) | reads
}

/// r1..r5.
const ARGS: u16 = RegSet::ARGS.0;

const ALL: u16 = (1 << Reg::COUNT) - 1;

/// Upper halves live at the end of block `b`.
fn live_out(cfg: &Cfg, b: BlockId, live_in: &[u16]) -> u16 {
    let blk = cfg.block(b);
    let mut out = if blk.falls_off { ALL } else { 0 };
    for s in blk.succs() {
        out |= live_in[s.idx()];
    }
    out
}

/// The intra-procedural backward fixed point: upper halves live at each block entry.
fn fixpoint(cfg: &Cfg, exit_reads: &[u16]) -> Vec<u16> {
    let nb = cfg.blocks().len();
    let mut live_in = vec![0u16; nb];
    let mut work = Worklist::new(nb);
    for b in (0..nb).rev() {
        work.push(BlockId(to_u32(b)));
    }
    while let Some(b) = work.pop() {
        let blk = cfg.block(b);
        let er = exit_reads[blk.subprog.idx()];
        let mut live = live_out(cfg, b, &live_in);
        for i in blk.insns().rev() {
            live = step(cfg.prog().op(i), live, er);
        }
        if live != live_in[b.idx()] {
            // Live sets only grow: `step` is monotone and the start is empty.
            live_in[b.idx()] = live;
            for &p in cfg.preds(b) {
                work.push(p);
            }
        }
    }
    live_in
}

impl Liveness {
    /// Runs the analysis on `cfg`.
    #[must_use]
    pub fn analyze(cfg: &Cfg) -> Liveness {
        let prog = cfg.prog();
        let nsub = cfg.subprogs().len();
        let r0 = RegSet::of(Reg::R0).0;
        let mut exit_reads = vec![r0; nsub];
        let mut live_in;
        loop {
            live_in = fixpoint(cfg, &exit_reads);
            // Registers live right after each bpf-to-bpf call flow into the callee's exit.
            let mut next = exit_reads.clone();
            for (bi, blk) in cfg.blocks().iter().enumerate() {
                let er = exit_reads[blk.subprog.idx()];
                let mut live = live_out(cfg, BlockId(to_u32(bi)), &live_in);
                for i in blk.insns().rev() {
                    if let Some(callee) = cfg.callee(i)
                        && matches!(prog.op(i), Op::Call(_))
                    {
                        next[callee.idx()] |= live & ARGS;
                    }
                    live = step(prog.op(i), live, er);
                }
            }
            if next == exit_reads {
                break;
            }
            exit_reads = next;
        }
        let mut upper_read = vec![None; prog.len()];
        for (bi, blk) in cfg.blocks().iter().enumerate() {
            let er = exit_reads[blk.subprog.idx()];
            let mut live = live_out(cfg, BlockId(to_u32(bi)), &live_in);
            for i in blk.insns().rev() {
                let op = prog.op(i);
                if op.is_def32()
                    && let Some(r) = op.def_reg()
                {
                    upper_read[i.idx()] = Some(live & RegSet::of(r).0 != 0);
                }
                live = step(op, live, er);
            }
        }
        Liveness { upper_read }
    }

    /// For a 32-bit definition at `i`: whether the upper half of the value may be read as 64
    /// bits (the instruction needs zero-extension where the target does not zero-extend).
    /// `None` when `i` has no 32-bit definition.
    #[must_use]
    pub fn upper_read(&self, i: InsnIdx) -> Option<bool> {
        self.upper_read[i.idx()]
    }
}
