//! Classification helpers the patching engine and analyses need: where an instruction's
//! PC-relative target lives, what it defines and uses.

use crate::op::{AluOp, AtomicOp, CallKind, Op, Operand, Size, Width};
use crate::opcode as c;
use crate::raw::{Insn, Reg};

/// Which field of a slot holds a PC-relative target (`target = pc + field + 1`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TargetField {
    /// The signed 16-bit `off` (conditional jumps, `goto`, `may_goto`).
    Off,
    /// The signed 32-bit `imm` (`gotol`, bpf-to-bpf `call`, ld_imm64 `PSEUDO_FUNC`).
    Imm,
}

impl TargetField {
    /// The range of relative deltas this field can hold.
    #[must_use]
    pub const fn range(self) -> (i64, i64) {
        match self {
            TargetField::Off => (i16::MIN as i64, i16::MAX as i64),
            TargetField::Imm => (i32::MIN as i64, i32::MAX as i64),
        }
    }

    /// Whether `delta` fits this field.
    #[must_use]
    pub const fn fits(self, delta: i64) -> bool {
        let (lo, hi) = self.range();
        delta >= lo && delta <= hi
    }
}

/// What kind of control transfer a PC-relative field encodes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TargetKind {
    /// A jump inside the current function (conditional, `goto`, `gotol`, `may_goto`).
    Jump,
    /// A bpf-to-bpf call: enters a subprogram.
    Call,
    /// An ld_imm64 `PSEUDO_FUNC`: takes the address of a subprogram.
    FuncRef,
}

impl Insn {
    /// The field holding this slot's PC-relative target, and what kind of target it is.
    ///
    /// Follows the kernel's `bpf_adj_branches`: the first slot of a `PSEUDO_FUNC` ld_imm64;
    /// JMP/JMP32 except `exit`, helper/kfunc calls and the internal tail call (whose target is
    /// always the next slot). Decides on the raw fields only, so it is total.
    #[must_use]
    pub const fn target_field(&self) -> Option<(TargetField, TargetKind)> {
        let class = self.class();
        if self.code == c::LD_IMM64 {
            return if self.src() == c::PSEUDO_FUNC { Some((TargetField::Imm, TargetKind::FuncRef)) } else { None };
        }
        if class != c::JMP && class != c::JMP32 {
            return None;
        }
        match self.op() {
            c::EXIT => None,
            c::CALL => {
                if class == c::JMP && self.code & c::SRC_MASK == c::K && self.src() == c::PSEUDO_CALL {
                    Some((TargetField::Imm, TargetKind::Call))
                } else {
                    None
                }
            }
            c::TAIL_CALL if class == c::JMP => None,
            c::JA if class == c::JMP32 => Some((TargetField::Imm, TargetKind::Jump)),
            _ => Some((TargetField::Off, TargetKind::Jump)),
        }
    }

    /// The relative delta stored in the target field, if the slot has one.
    #[must_use]
    #[inline]
    pub fn rel_target(&self) -> Option<i64> {
        self.target_field().map(|(f, _)| match f {
            TargetField::Off => i64::from(self.off),
            TargetField::Imm => i64::from(self.imm),
        })
    }

    /// The absolute slot this slot at `pc` targets, if it has a target (may be out of range).
    #[must_use]
    #[inline]
    pub fn abs_target(&self, pc: usize) -> Option<i64> {
        let pc = i64::try_from(pc).ok()?;
        self.rel_target().map(|d| pc + d + 1)
    }

    /// Stores `delta` into the target field.
    ///
    /// # Errors
    /// `Err(())`-like `false` return when the slot has no target field or `delta` does not fit;
    /// the slot is then unchanged.
    #[must_use]
    #[inline]
    pub fn set_rel_target(&mut self, delta: i64) -> bool {
        match self.target_field() {
            Some((TargetField::Off, _)) => match i16::try_from(delta) {
                Ok(v) => {
                    self.off = v;
                    true
                }
                Err(_) => false,
            },
            Some((TargetField::Imm, _)) => match i32::try_from(delta) {
                Ok(v) => {
                    self.imm = v;
                    true
                }
                Err(_) => false,
            },
            None => false,
        }
    }

    /// Whether this slot is an instruction of cpu v4 (`sdiv`/`smod`, `movsx`, a sign-extending
    /// load, `bswap`, `gotol`), by its raw fields: a program holding one targets cpu v4, so a
    /// jump of it may be relaxed into `gotol`; a v3 program's may not (a v3 kernel rejects it).
    #[must_use]
    pub const fn is_cpu_v4(&self) -> bool {
        let class = self.class();
        let alu = class == c::ALU || class == c::ALU64;
        (alu && (self.op() == c::DIV || self.op() == c::MOD) && self.off == 1)
            || (alu && self.op() == c::MOV && self.code & c::SRC_MASK == c::X && matches!(self.off, 8 | 16 | 32))
            || (class == c::LDX && self.code & c::MODE_MASK == c::MEMSX)
            || (class == c::ALU64 && self.op() == c::END)
            || (class == c::JMP32 && self.op() == c::JA)
    }

    /// Whether this is a conditional jump (JMP/JMP32 with a condition, or `may_goto`).
    #[must_use]
    pub const fn is_cond_jump(&self) -> bool {
        let class = self.class();
        (class == c::JMP || class == c::JMP32)
            && !matches!(self.op(), c::JA | c::CALL | c::EXIT | c::TAIL_CALL)
            && !(class == c::JMP32 && self.op() == c::JCOND)
    }

    /// Whether control never falls through to the next slot (`exit`, `goto`, `gotol`).
    #[must_use]
    pub const fn is_terminator(&self) -> bool {
        let class = self.class();
        (class == c::JMP && (self.op() == c::EXIT || (self.op() == c::JA && self.code & c::SRC_MASK == c::K)))
            || (class == c::JMP32 && self.op() == c::JA && self.code & c::SRC_MASK == c::K)
    }
}

/// A set of registers (r0..r10 and AX) as a bit mask.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct RegSet(pub u16);

impl RegSet {
    /// The empty set.
    pub const EMPTY: RegSet = RegSet(0);
    /// r1..r5, the argument registers a call reads and clobbers.
    pub const ARGS: RegSet = RegSet(0b11_1110);
    /// r0..r5, the caller-saved registers.
    pub const CALLER_SAVED: RegSet = RegSet(0b11_1111);

    /// The set holding one register.
    #[must_use]
    pub const fn of(r: Reg) -> RegSet {
        RegSet(1 << r.index())
    }

    /// Adds a register.
    #[must_use]
    pub const fn with(self, r: Reg) -> RegSet {
        RegSet(self.0 | (1 << r.index()))
    }

    /// Whether the set holds `r`.
    #[must_use]
    pub const fn contains(self, r: Reg) -> bool {
        self.0 & (1 << r.index()) != 0
    }

    /// Union.
    #[must_use]
    pub const fn union(self, o: RegSet) -> RegSet {
        RegSet(self.0 | o.0)
    }

    /// Difference.
    #[must_use]
    pub const fn minus(self, o: RegSet) -> RegSet {
        RegSet(self.0 & !o.0)
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The registers in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = Reg> {
        (0..Reg::COUNT).filter(move |i| self.0 & (1 << i) != 0).map(Reg::from_nibble)
    }
}

fn operand_regs(src: Operand) -> RegSet {
    match src {
        Operand::Reg(r) => RegSet::of(r),
        Operand::Imm(_) => RegSet::EMPTY,
    }
}

impl Op {
    /// Registers this instruction reads.
    ///
    /// Calls read r1..r5 conservatively (the helper's real arity is unknown here);
    /// `exit` reads r0; `LdPacket` reads r6 (the implicit context) and its index register.
    #[must_use]
    pub fn uses(&self) -> RegSet {
        match *self {
            Op::Alu { op: AluOp::Mov | AluOp::MovSx(_), src, .. } => operand_regs(src),
            Op::Alu { dst, src, .. } => RegSet::of(dst).union(operand_regs(src)),
            Op::Swap { dst, .. } | Op::Zext { dst } => RegSet::of(dst),
            Op::LdImm64 { .. } | Op::Ja { .. } | Op::MayGoto { .. } | Op::Nospec => RegSet::EMPTY,
            Op::LdPacket { index, .. } => {
                let base = RegSet::of(Reg::R6);
                index.map_or(base, |r| base.with(r))
            }
            Op::Load { src, .. } => RegSet::of(src),
            Op::Store { dst, src, .. } => RegSet::of(dst).union(operand_regs(src)),
            Op::Atomic { op, dst, src, .. } => {
                let s = RegSet::of(dst).with(src);
                if op == AtomicOp::Cmpxchg { s.with(Reg::R0) } else { s }
            }
            Op::Jump { dst, src, .. } => RegSet::of(dst).union(operand_regs(src)),
            Op::Call(_) => RegSet::ARGS,
            Op::Callx(r) => RegSet::ARGS.with(r),
            Op::Exit => RegSet::of(Reg::R0),
            Op::TailCall => RegSet::of(Reg::R1).with(Reg::R2).with(Reg::R3),
        }
    }

    /// Registers this instruction writes (calls: r0..r5, the caller-saved set they clobber).
    #[must_use]
    pub fn defs(&self) -> RegSet {
        match *self {
            Op::Alu { dst, .. }
            | Op::Swap { dst, .. }
            | Op::LdImm64 { dst, .. }
            | Op::Load { dst, .. }
            | Op::Zext { dst } => RegSet::of(dst),
            Op::LdPacket { .. } | Op::Call(_) | Op::Callx(_) => RegSet::CALLER_SAVED,
            Op::Atomic { op: AtomicOp::Cmpxchg, .. } => RegSet::of(Reg::R0),
            Op::Atomic { op, src, .. } if op.fetches() => RegSet::of(src),
            _ => RegSet::EMPTY,
        }
    }

    /// The register this instruction defines with a value, as the kernel's `insn_def_regno`:
    /// `None` for jumps, stores and non-fetching atomics; r0 for calls and packet loads.
    #[must_use]
    pub fn def_reg(&self) -> Option<Reg> {
        match *self {
            Op::Alu { dst, .. }
            | Op::Swap { dst, .. }
            | Op::LdImm64 { dst, .. }
            | Op::Load { dst, .. }
            | Op::Zext { dst } => Some(dst),
            Op::LdPacket { .. } | Op::Call(_) | Op::Callx(_) => Some(Reg::R0),
            Op::Atomic { op: AtomicOp::Cmpxchg, .. } => Some(Reg::R0),
            Op::Atomic { op, src, .. } if op.fetches() => Some(src),
            _ => None,
        }
    }

    /// Whether the defined register gets a 32-bit value whose upper half is architecturally zero
    /// (the kernel's `insn_has_def32`): ALU32, `le`/`be` 16/32, loads narrower than 8 bytes
    /// (not sign-extending), `bswap16/32`, 32-bit fetching atomics, LD_ABS/IND.
    ///
    /// Helper calls return 64-bit values here (the kernel decides per helper prototype).
    #[must_use]
    pub fn is_def32(&self) -> bool {
        match *self {
            Op::Alu { width, .. } => width == Width::W32,
            Op::Swap { bits, .. } => bits < 64,
            Op::Load { size, signed, .. } => size != Size::DW && !signed,
            Op::Atomic { size, op, .. } => op.fetches() && size == Size::W,
            Op::LdPacket { .. } | Op::Zext { .. } => true,
            _ => false,
        }
    }

    /// The bpf-to-bpf call or PSEUDO_FUNC delta, if this is one.
    #[must_use]
    pub const fn local_call(&self) -> Option<i32> {
        match *self {
            Op::Call(CallKind::Local(d)) => Some(d),
            _ => None,
        }
    }
}
