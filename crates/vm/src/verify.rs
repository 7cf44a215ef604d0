//! The loader's checks: what must hold before a program may run.
//!
//! Deliberately small and lenient — it rejects what would make execution ill-defined or what the
//! kernel's verifier rejects for every program, and nothing a valid conformance vector needs:
//!
//! 1. every slot decodes ([`bpfpatch_insn::decode_program`]; kernel-internal forms such as AX only
//!    with [`LoadOptions::internal`]);
//! 2. the program is not empty;
//! 3. every jump, `gotol`, `may_goto`, bpf-to-bpf call and `PSEUDO_FUNC` reference targets a slot
//!    inside the program that starts an instruction (not the second slot of an ld_imm64);
//! 4. the last instruction is `exit` or an unconditional jump, so control never runs off the end;
//! 5. no instruction writes r10;
//! 6. no instruction reads a register that is uninitialized on some path to it
//!    ([`LoadOptions::check_uninit`]); a subprogram's `exit` does not read r0 (Linux does not
//!    check it there: the caller gets whatever r0 holds), the main program's does;
//! 7. with [`LoadOptions::linux`], what the Linux verifier rejects in every program: a constant
//!    shift by the operation's width or more, or by a negative amount, and `callx`.
//!
//! Check 6 is a forward "must be defined" dataflow over the instruction graph, solved with an
//! iterative worklist (no recursion; each state is a 12-bit set that only shrinks, so every
//! instruction is re-queued at most 13 times: linear time). Roots: the entry, where r1, r2
//! and r10 are defined (the conformance convention: r1 = memory, r2 = its length), and every
//! bpf-to-bpf call target, where r1-r5 and r10 are. A call defines r0 and keeps r1-r5 defined
//! if they were (lenient: the kernel's verifier marks them clobbered; in this interpreter they
//! keep the values a helper left untouched or a callee left behind, so they are never
//! undefined); helper arguments are not checked since a helper's arity is unknown here. Unreachable instructions are not
//! checked. Once checks 1-5 hold, execution can only leave the instruction array through `exit`:
//! this is the invariant the interpreter relies on.

use crate::error::LoadError;
use bpfpatch_insn::{
    AluOp, AtomicOp, CallKind, DecodeOptions, Insn, LdImm64Kind, MAX_PROGRAM_SLOTS, Op, Operand, Reg, RegSet, Slot,
    decode_program,
};

/// Options of the loader.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Accept kernel-internal forms (register AX, tail call, nospec), as rewritten programs
    /// carry them. Off by default: user input must not contain them.
    pub internal: bool,
    /// Reject reads of registers that are uninitialized on some path (check 6). On by default.
    pub check_uninit: bool,
    /// Also reject what the Linux verifier rejects in every program (check 7): constant shifts
    /// out of range, `callx`. Off by default (RFC 9669 defines them).
    pub linux: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { internal: false, check_uninit: true, linux: false }
    }
}

impl LoadOptions {
    /// Options for rewritten programs: kernel-internal forms accepted, all checks on.
    pub const INTERNAL: LoadOptions = LoadOptions { internal: true, check_uninit: true, linux: false };

    /// These options with the Linux profile (check 7) on or off.
    #[must_use]
    pub const fn with_linux(mut self, linux: bool) -> Self {
        self.linux = linux;
        self
    }

    /// These options with kernel-internal forms accepted or not.
    #[must_use]
    pub const fn with_internal(mut self, internal: bool) -> Self {
        self.internal = internal;
        self
    }

    /// These options with the uninitialized-read check on or off.
    #[must_use]
    pub const fn with_check_uninit(mut self, check: bool) -> Self {
        self.check_uninit = check;
        self
    }
}

/// Sentinel in [`Layout::index_of_slot`] for a slot that starts no instruction.
pub(crate) const NOT_AN_INSN: u32 = u32::MAX;

/// A decoded, checked program: its instructions and where each slot's instruction is.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The instructions with the slot each starts at.
    pub ops: Vec<(Slot, Op)>,
    /// For each slot, the index in `ops` of the instruction starting there, or [`NOT_AN_INSN`].
    pub index_of_slot: Vec<u32>,
}

impl Layout {
    /// The instruction index of the absolute slot `target`, if it starts an instruction.
    pub fn index(&self, target: usize) -> Option<u32> {
        self.index_of_slot.get(target).copied().filter(|&i| i != NOT_AN_INSN)
    }
}

/// The absolute slot an instruction at `slot` transfers control to (or references), if any.
fn target_of(slot: Slot, op: &Op) -> Option<i64> {
    let delta = match *op {
        Op::Ja { delta, .. } => i64::from(delta),
        Op::Jump { off, .. } | Op::MayGoto { off } => i64::from(off),
        Op::Call(CallKind::Local(imm)) => i64::from(imm),
        Op::LdImm64 { kind: LdImm64Kind::Func, lo, .. } => i64::from(lo),
        _ => return None,
    };
    // Slots are counted in a Vec, so they fit an i64.
    let base = i64::try_from(slot.0).unwrap_or(i64::MAX);
    Some(base.saturating_add(delta).saturating_add(1))
}

/// Decodes and checks a program (checks 1-6 of the module documentation).
///
/// # Errors
/// The first violated check, naming the slot.
pub fn verify(slots: &[Insn], opts: &LoadOptions) -> Result<(), LoadError> {
    check(slots, opts).map(|_| ())
}

/// [`verify`], returning the decoded layout the interpreter is built from.
pub(crate) fn check(slots: &[Insn], opts: &LoadOptions) -> Result<Layout, LoadError> {
    // The kernel's limit; it also keeps every index below `NOT_AN_INSN` (u32).
    if slots.len() > MAX_PROGRAM_SLOTS {
        return Err(LoadError::TooLarge { len: slots.len(), limit: MAX_PROGRAM_SLOTS });
    }
    let ops = decode_program(slots, DecodeOptions { internal: opts.internal })?;
    let Some(&(last_slot, last)) = ops.last() else {
        return Err(LoadError::Empty);
    };
    let mut index_of_slot = vec![NOT_AN_INSN; slots.len()];
    for (i, (slot, _)) in ops.iter().enumerate() {
        // `ops.len() <= slots.len() < u32::MAX`, checked above.
        index_of_slot[slot.0] = u32::try_from(i).unwrap_or(NOT_AN_INSN);
    }
    let layout = Layout { ops, index_of_slot };

    for &(slot, op) in &layout.ops {
        if let Some(target) = target_of(slot, &op) {
            let t = usize::try_from(target).ok().filter(|&t| t < slots.len());
            let Some(t) = t else {
                return Err(LoadError::TargetOutOfRange { slot, target, len: slots.len() });
            };
            if layout.index(t).is_none() {
                return Err(LoadError::TargetInLdImm64 { slot, target: t });
            }
        }
        if op.defs().contains(Reg::R10) {
            return Err(LoadError::WritesFramePointer { slot });
        }
        if opts.linux
            && let Some(why) = linux_rejects(&op)
        {
            return Err(LoadError::RejectedByLinux { slot, why });
        }
    }
    if !matches!(last, Op::Exit | Op::Ja { .. }) {
        return Err(LoadError::FallsOffEnd { slot: last_slot });
    }
    if opts.check_uninit {
        check_defined(&layout)?;
    }
    Ok(layout)
}

/// Registers an instruction must find defined (calls: only what `callx` reads; the zeroing
/// idioms `xor r, r` and `sub r, r`, which constant blinding emits for `mov r, 0`, read nothing
/// since their result does not depend on the register).
fn required(op: &Op) -> RegSet {
    match *op {
        Op::Call(_) => RegSet::EMPTY,
        Op::Alu { op: AluOp::Xor | AluOp::Sub, dst, src: Operand::Reg(s), .. } if s == dst => RegSet::EMPTY,
        Op::Callx(r) => RegSet::of(r),
        _ => op.uses(),
    }
    .minus(RegSet::of(Reg::R10))
}

/// The defined set after `op`, given the set before it.
fn transfer(op: &Op, before: RegSet) -> RegSet {
    match *op {
        // Lenient: r1-r5 keep defined values across calls in this interpreter.
        Op::Call(_) | Op::Callx(_) => before.with(Reg::R0),
        // The interpreter zeroes r1-r5 (the kernel clobbers them) and writes r0.
        Op::LdPacket { .. } => before.union(RegSet::CALLER_SAVED),
        Op::Atomic { op: AtomicOp::Cmpxchg, .. } => before.with(Reg::R0),
        _ => before.union(op.defs()),
    }
}

/// Meets `s` into the state of instruction `i` and queues `i` if its state changed.
fn seed(state: &mut [Option<RegSet>], queued: &mut [bool], work: &mut Vec<u32>, i: u32, s: RegSet) {
    let Some(cur) = state.get_mut(i as usize) else { return };
    let new = cur.map_or(s, |c| RegSet(c.0 & s.0));
    if *cur != Some(new) {
        *cur = Some(new);
        if let Some(q) = queued.get_mut(i as usize)
            && !*q
        {
            *q = true;
            work.push(i);
        }
    }
}

/// Check 7: what the Linux verifier rejects in every program (`check_alu_op`: "invalid shift";
/// `bpf_check`: `callx` is an unknown opcode there).
fn linux_rejects(op: &Op) -> Option<&'static str> {
    match *op {
        Op::Alu { width, op: AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, src: Operand::Imm(k), .. } => {
            let bits = if width == bpfpatch_insn::Width::W64 { 64 } else { 32 };
            (k < 0 || k >= bits).then_some("invalid shift (the immediate must be below the width)")
        }
        Op::Callx(_) => Some("callx (unknown opcode 0x8d to Linux)"),
        _ => None,
    }
}

/// Check 6: the must-defined dataflow and the check of every reachable read.
fn check_defined(layout: &Layout) -> Result<(), LoadError> {
    let n = layout.ops.len();
    let entry = RegSet::of(Reg::R1).with(Reg::R2).with(Reg::R10);
    let callee_entry = RegSet::ARGS.with(Reg::R10);
    let mut state: Vec<Option<RegSet>> = vec![None; n];
    let mut queued = vec![false; n];
    let mut work: Vec<u32> = Vec::with_capacity(n);

    seed(&mut state, &mut queued, &mut work, 0, entry);
    for &(slot, op) in &layout.ops {
        if let (Op::Call(CallKind::Local(_)), Some(t)) = (op, target_of(slot, &op)) {
            let t = usize::try_from(t).ok().and_then(|t| layout.index(t));
            if let Some(t) = t {
                seed(&mut state, &mut queued, &mut work, t, callee_entry);
            }
        }
    }

    while let Some(i) = work.pop() {
        let iu = i as usize;
        if let Some(q) = queued.get_mut(iu) {
            *q = false;
        }
        let (Some(&(slot, op)), Some(&Some(before))) = (layout.ops.get(iu), state.get(iu)) else {
            continue;
        };
        let after = transfer(&op, before);
        let next = i.checked_add(1).filter(|&j| (j as usize) < n);
        let jump = target_of(slot, &op).and_then(|t| usize::try_from(t).ok()).and_then(|t| layout.index(t));
        let (fall, taken) = match op {
            Op::Exit => (None, None),
            Op::Ja { .. } => (None, jump),
            Op::Jump { .. } | Op::MayGoto { .. } => (next, jump),
            // The call target is a root of its own; control continues after the call.
            _ => (next, None),
        };
        for s in [fall, taken].into_iter().flatten() {
            seed(&mut state, &mut queued, &mut work, s, after);
        }
    }

    // Subprogram starts (targets of bpf-to-bpf calls and PSEUDO_FUNC), ascending: an `exit`
    // after the first of them returns to a caller, which Linux does not check for r0.
    let mut starts: Vec<usize> = layout
        .ops
        .iter()
        .filter(|(_, op)| matches!(op, Op::Call(CallKind::Local(_)) | Op::LdImm64 { kind: LdImm64Kind::Func, .. }))
        .filter_map(|&(slot, op)| target_of(slot, &op).and_then(|t| usize::try_from(t).ok()))
        .filter(|&t| t > 0)
        .collect();
    starts.sort_unstable();
    for (&(slot, op), s) in layout.ops.iter().zip(&state) {
        if let Some(defined) = s {
            let in_subprog = matches!(op, Op::Exit) && starts.first().is_some_and(|&f| slot.0 >= f);
            let need = if in_subprog { required(&op).minus(RegSet::of(Reg::R0)) } else { required(&op) };
            let missing = need.minus(*defined);
            if let Some(reg) = missing.iter().next() {
                return Err(LoadError::Uninitialized { slot, reg });
            }
        }
    }
    Ok(())
}
