//! A decoded program: the typed view of every instruction, with its slot and jump targets.
//!
//! Analyses index instructions by [`InsnIdx`] (position in the decoded list) because an
//! ld_imm64 occupies two slots but is one instruction. Facts handed to the patching engine are
//! per slot; [`DecodedProgram::slot`] and [`DecodedProgram::at_slot`] convert between the two.
//!
//! Invariant (checked by [`DecodedProgram::decode`]): every slot is either the start of exactly one
//! decoded instruction or the second slot of an ld_imm64; the instruction count fits `u32`.

use bpfpatch_insn::{CallKind, DecodeError, DecodeOptions, Insn, LdImm64Kind, Op, Slot, decode_program};

/// Index of an instruction in the decoded list (not a slot: ld_imm64 counts once).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct InsnIdx(pub u32);

impl InsnIdx {
    /// The index as `usize`, for indexing per-instruction tables.
    #[must_use]
    pub const fn idx(self) -> usize {
        self.0 as usize
    }
}

/// What a PC-relative field of an instruction points at.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Edge {
    /// An intra-function jump (conditional, `goto`, `gotol`, `may_goto`).
    Jump,
    /// A bpf-to-bpf call.
    Call,
    /// An ld_imm64 `PSEUDO_FUNC`: the address of a subprogram (a callback).
    FuncRef,
}

/// Why a program cannot be analysed.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ProgramError {
    /// A slot does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The program has no instruction.
    #[error("empty program")]
    Empty,
    /// More slots than [`bpfpatch_insn::MAX_PROGRAM_SLOTS`] (the kernel's
    /// `BPF_COMPLEXITY_LIMIT_INSNS`).
    #[error("program of {slots} slots is too large (limit {limit})")]
    TooLarge {
        /// Its length in slots.
        slots: usize,
        /// The limit.
        limit: usize,
    },
    /// A jump, call or function reference points outside the program.
    #[error("slot {slot}: target {target} is outside the program")]
    TargetOutOfRange {
        /// The slot of the instruction.
        slot: Slot,
        /// The absolute target slot it names.
        target: i64,
    },
    /// A jump, call or function reference points at the second slot of an ld_imm64.
    #[error("slot {slot}: target {target} is the middle of an ld_imm64")]
    TargetInLdImm64 {
        /// The slot of the instruction.
        slot: Slot,
        /// The absolute target slot it names.
        target: usize,
    },
}

const NO_INSN: u32 = u32::MAX;

/// A decoded program (kernel-internal forms accepted) with slot <-> instruction maps.
#[derive(Clone, Debug)]
pub struct DecodedProgram {
    ops: Vec<Op>,
    slots: Vec<u32>,
    by_slot: Vec<u32>,
    targets: Vec<u32>,
}

impl DecodedProgram {
    /// Decodes `insns` (with [`DecodeOptions::INTERNAL`]) and resolves every PC-relative target.
    ///
    /// # Errors
    /// The first undecodable slot, an empty program, or a target outside the program or inside
    /// an ld_imm64.
    pub fn decode(insns: &[Insn]) -> Result<DecodedProgram, ProgramError> {
        if insns.is_empty() {
            return Err(ProgramError::Empty);
        }
        // The kernel's limit; it also keeps every index inside `u32`.
        if insns.len() > bpfpatch_insn::MAX_PROGRAM_SLOTS {
            return Err(ProgramError::TooLarge { slots: insns.len(), limit: bpfpatch_insn::MAX_PROGRAM_SLOTS });
        }
        let decoded = decode_program(insns, DecodeOptions::INTERNAL)?;
        let mut ops = Vec::with_capacity(decoded.len());
        let mut slots = Vec::with_capacity(decoded.len());
        let mut by_slot = vec![NO_INSN; insns.len()];
        for (i, (slot, op)) in decoded.into_iter().enumerate() {
            // Both fit u32: checked above (instruction count <= slot count).
            by_slot[slot.0] = to_u32(i);
            slots.push(to_u32(slot.0));
            ops.push(op);
        }
        let mut prog = DecodedProgram { ops, slots, by_slot, targets: Vec::new() };
        let mut targets = vec![NO_INSN; prog.ops.len()];
        for (i, t) in targets.iter_mut().enumerate() {
            if let Some((delta, _)) = rel_target(&prog.ops[i]) {
                let slot = prog.slots[i] as usize;
                let abs = i64::from(prog.slots[i]) + delta + 1;
                let Ok(abs_u) = usize::try_from(abs) else {
                    return Err(ProgramError::TargetOutOfRange { slot: Slot(slot), target: abs });
                };
                match prog.by_slot.get(abs_u) {
                    None => return Err(ProgramError::TargetOutOfRange { slot: Slot(slot), target: abs }),
                    Some(&NO_INSN) => return Err(ProgramError::TargetInLdImm64 { slot: Slot(slot), target: abs_u }),
                    Some(&ti) => *t = ti,
                }
            }
        }
        prog.targets = targets;
        Ok(prog)
    }

    /// Number of instructions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there is no instruction (never true for a decoded program; beside `len` for
    /// the internals' users).
    #[must_use]
    #[cfg(any(test, feature = "internals"))]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The instruction at `i` (`i` must come from this program).
    #[must_use]
    pub fn op(&self, i: InsnIdx) -> &Op {
        &self.ops[i.idx()]
    }

    /// All instructions in order.
    #[must_use]
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The first slot of instruction `i`.
    #[must_use]
    pub fn slot(&self, i: InsnIdx) -> Slot {
        Slot(self.slots[i.idx()] as usize)
    }

    /// The instruction starting at slot `s`, if one does (not for ld_imm64 second slots).
    #[must_use]
    pub fn at_slot(&self, s: usize) -> Option<InsnIdx> {
        match self.by_slot.get(s) {
            Some(&i) if i != NO_INSN => Some(InsnIdx(i)),
            _ => None,
        }
    }

    /// The instruction after `i` in layout order, if any.
    #[must_use]
    pub fn next(&self, i: InsnIdx) -> Option<InsnIdx> {
        let n = i.0 + 1;
        if (n as usize) < self.ops.len() { Some(InsnIdx(n)) } else { None }
    }

    /// The resolved target of a jump, bpf-to-bpf call or `PSEUDO_FUNC` reference at `i`.
    #[must_use]
    pub fn target(&self, i: InsnIdx) -> Option<(InsnIdx, Edge)> {
        let t = self.targets[i.idx()];
        if t == NO_INSN {
            return None;
        }
        rel_target(&self.ops[i.idx()]).map(|(_, e)| (InsnIdx(t), e))
    }

    /// Iterates over `(index, op)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (InsnIdx, &Op)> {
        self.ops.iter().enumerate().map(|(i, op)| (InsnIdx(to_u32(i)), op))
    }
}

/// The relative delta (in slots, `target = slot + delta + 1`) and edge kind of `op`, if it has one.
#[must_use]
pub fn rel_target(op: &Op) -> Option<(i64, Edge)> {
    match *op {
        Op::Ja { delta, .. } => Some((i64::from(delta), Edge::Jump)),
        Op::Jump { off, .. } | Op::MayGoto { off } => Some((i64::from(off), Edge::Jump)),
        Op::Call(CallKind::Local(d)) => Some((i64::from(d), Edge::Call)),
        Op::LdImm64 { kind: LdImm64Kind::Func, lo, .. } => Some((i64::from(lo), Edge::FuncRef)),
        _ => None,
    }
}

/// `usize` to `u32` for values already bounded by the program length (checked in `decode`).
pub(crate) fn to_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
