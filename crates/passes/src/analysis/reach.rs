//! Reachability with constant propagation of branch conditions.
//!
//! Lattice per register (r0..r10, AX): `Known(v)` or `Unknown`; a block entry state is `None`
//! until the block is reached. Forward worklist over blocks of every reached subprogram; the
//! main program is reached at entry, a subprogram when a reached instruction calls it or takes
//! its address. Subprogram entries start with every register `Unknown` (values are not
//! propagated across calls; after a call r0..r5 are `Unknown`, r6..r10 keep their values because
//! they are callee-saved).
//!
//! A conditional jump whose operands are known (or are the same register, for the conditions
//! that do not depend on the value) is decided; only the feasible edge is followed. On the
//! taken edge of a 64-bit `==` (and the fall-through edge of `!=`) the unknown operand becomes
//! the known one. `le`/`be` results are `Unknown` (they depend on the host byte order); memory is
//! not tracked (loads give `Unknown`). Every step only raises states, so the fixed point is
//! reached after at most 2 changes per register per block.
//!
//! *Opaque* instructions ([`Reach::analyze_with`]) are those whose immediate or offset a loader
//! fills in later (an object's relocated and CO-RE-relocated instructions): what they define is
//! `Unknown`, whatever their encoding says, so no branch is decided on a placeholder.
//!
//! Results: reached instructions and subprograms, the [`Fate`] of every reached conditional jump,
//! and the first reached instruction that falls off the end of its subprogram (an invalid program).

use crate::analysis::cfg::{BlockId, Cfg, SubprogId};
use crate::analysis::eval::{cond_same_reg, eval_alu, eval_cond, eval_swap, imm_value};
use crate::analysis::worklist::Worklist;
use crate::program::InsnIdx;
use bpfpatch_insn::{AluOp, Cond, Endian, LdImm64Kind, Op, Operand, Reg, SwapKind, Width};

/// The outcome of a reached conditional jump.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Fate {
    /// Always jumps: the fall-through edge is never used.
    Taken,
    /// Never jumps: the jump edge is never used.
    NotTaken,
    /// Depends on run-time values.
    Unknown,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Val {
    Known(u64),
    Unknown,
}

type Regs = [Val; Reg::COUNT as usize];

const ALL_UNKNOWN: Regs = [Val::Unknown; Reg::COUNT as usize];

fn join(a: &Regs, b: &Regs) -> Regs {
    let mut out = *a;
    for (o, v) in out.iter_mut().zip(b) {
        if *o != *v {
            *o = Val::Unknown;
        }
    }
    out
}

fn known(st: &Regs, r: Reg) -> Option<u64> {
    match st.get(r.idx()) {
        Some(Val::Known(v)) => Some(*v),
        _ => None,
    }
}

fn set(st: &mut Regs, r: Reg, v: Option<u64>) {
    if let Some(slot) = st.get_mut(r.idx()) {
        *slot = v.map_or(Val::Unknown, Val::Known);
    }
}

fn operand(st: &Regs, src: Operand) -> Option<u64> {
    match src {
        Operand::Imm(i) => Some(imm_value(i)),
        Operand::Reg(r) => known(st, r),
    }
}

/// Which values the analysis computes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Model {
    /// Every result that follows from known operands (`le`/`be` excepted): the optimizer's view.
    #[default]
    Exact,
    /// What the kernel's verifier (6.18) tracks as a constant: no value for a division or modulo
    /// (`mark_reg_unknown` for `BPF_DIV`/`BPF_MOD`), nor for a shift by a register holding the
    /// width or more; `le`/`be` evaluated in the byte order of `host`, the machine that runs the
    /// program. For `kernel-dce`, whose *seen* must be the verifier's.
    Verifier {
        /// Byte order of the machine.
        host: Endian,
    },
}

impl Model {
    /// Whether the model gives `dst = dst alu b` a value.
    fn tracks(self, width: Width, alu: AluOp, b: u64) -> bool {
        let bits = if width == Width::W64 { 64 } else { 32 };
        match self {
            Model::Exact => true,
            Model::Verifier { .. } => match alu {
                AluOp::Div | AluOp::Mod | AluOp::SDiv | AluOp::SMod => false,
                AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => b < bits,
                _ => true,
            },
        }
    }

    /// `le`/`be`/`bswap` of `v` in this model.
    #[allow(clippy::cast_possible_truncation)]
    fn swap(self, kind: SwapKind, bits: u8, v: u64) -> Option<u64> {
        let host = match self {
            Model::Verifier { host } if kind != SwapKind::Bswap => host,
            _ => return eval_swap(kind, bits, v),
        };
        let same_order = (kind == SwapKind::Le) == (host == Endian::Little);
        match (same_order, bits) {
            (true, 16) => Some(u64::from(v as u16)),
            (true, 32) => Some(u64::from(v as u32)),
            (true, _) => Some(v),
            (false, _) => eval_swap(SwapKind::Bswap, bits, v),
        }
    }
}

/// Applies `op` to `st`; returns the subprogram entered or referenced by `op`, if any.
fn transfer(cfg: &Cfg, i: InsnIdx, op: &Op, st: &mut Regs, model: Model) -> Option<SubprogId> {
    match *op {
        Op::Alu { width, op: alu, dst, src } => {
            let same = src == Operand::Reg(dst);
            let v = match alu {
                AluOp::Mov | AluOp::MovSx(_) => operand(st, src).map(|b| eval_alu(width, alu, 0, b)),
                AluOp::Xor | AluOp::Sub if same => Some(0),
                AluOp::Neg => known(st, dst).map(|a| eval_alu(width, alu, a, 0)),
                _ => match (known(st, dst), operand(st, src)) {
                    (Some(a), Some(b)) if model.tracks(width, alu, b) => Some(eval_alu(width, alu, a, b)),
                    _ => None,
                },
            };
            set(st, dst, v);
            None
        }
        Op::Swap { kind, bits, dst } => {
            let v = known(st, dst).and_then(|a| model.swap(kind, bits, a));
            set(st, dst, v);
            None
        }
        Op::LdImm64 { dst, kind, lo, hi } => {
            #[allow(clippy::cast_sign_loss)]
            let v = (kind == LdImm64Kind::Imm).then(|| (u64::from(hi as u32) << 32) | u64::from(lo as u32));
            set(st, dst, v);
            if kind == LdImm64Kind::Func { cfg.callee(i) } else { None }
        }
        _ => {
            for r in op.defs().iter() {
                set(st, r, None);
            }
            cfg.callee(i)
        }
    }
}

/// [`transfer`], with the definitions of an opaque instruction made `Unknown`.
fn step(cfg: &Cfg, opaque: &[bool], i: InsnIdx, st: &mut Regs, model: Model) -> Option<SubprogId> {
    let op = cfg.prog().op(i);
    let entered = transfer(cfg, i, op, st, model);
    if opaque.get(i.idx()).copied().unwrap_or(false) {
        for r in op.defs().iter() {
            set(st, r, None);
        }
    }
    entered
}

/// Joins `st` into the entry state of `b`; queues `b` when the entry state grows.
fn merge(entry: &mut [Option<Regs>], work: &mut Worklist, b: BlockId, st: &Regs) {
    let new = match &entry[b.idx()] {
        None => Some(*st),
        Some(old) => {
            let j = join(old, st);
            (j != *old).then_some(j)
        }
    };
    if let Some(n) = new {
        entry[b.idx()] = Some(n);
        work.push(b);
    }
}

/// The outcome of the conditional jump `op` in state `st`.
fn decide(op: &Op, st: &Regs) -> Fate {
    match *op {
        Op::Jump { width, cond, dst, src, .. } => {
            // The same register on both sides: decided whatever its value, except `jset`,
            // which needs the value.
            if src == Operand::Reg(dst)
                && let Some(taken) = cond_same_reg(cond)
            {
                return if taken { Fate::Taken } else { Fate::NotTaken };
            }
            match (known(st, dst), operand(st, src)) {
                (Some(a), Some(b)) => {
                    if eval_cond(width, cond, a, b) {
                        Fate::Taken
                    } else {
                        Fate::NotTaken
                    }
                }
                _ => Fate::Unknown,
            }
        }
        _ => Fate::Unknown,
    }
}

/// The state on the taken (`taken == true`) or fall-through edge of `op`, refined by equality.
fn edge_state(op: &Op, st: &Regs, taken: bool) -> Regs {
    let mut out = *st;
    if let Op::Jump { width: Width::W64, cond, dst, src, .. } = *op {
        let equal_on_edge = (cond == Cond::Eq && taken) || (cond == Cond::Ne && !taken);
        if equal_on_edge {
            match (known(st, dst), operand(st, src)) {
                (None, Some(b)) => set(&mut out, dst, Some(b)),
                (Some(a), None) => {
                    if let Operand::Reg(s) = src {
                        set(&mut out, s, Some(a));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Result of the reachability analysis.
#[derive(Clone, Debug)]
pub struct Reach {
    insn_reached: Vec<bool>,
    fate: Vec<Option<Fate>>,
    #[cfg_attr(not(any(test, feature = "internals")), allow(dead_code))] // read by the tests
    subprog_reached: Vec<bool>,
    fall_off: Option<InsnIdx>,
}

impl Reach {
    /// Runs the analysis on `cfg`.
    #[must_use]
    #[cfg(any(test, feature = "internals"))]
    pub fn analyze(cfg: &Cfg) -> Reach {
        Reach::analyze_with(cfg, &[])
    }

    /// Runs the analysis on `cfg`, where `opaque[i]` marks instruction `i` as opaque (see the
    /// module documentation; indices past the end of `opaque` are not opaque).
    #[must_use]
    pub fn analyze_with(cfg: &Cfg, opaque: &[bool]) -> Reach {
        Reach::analyze_model(cfg, opaque, Model::Exact)
    }

    /// [`Reach::analyze_with`] computing values as `model` says.
    #[must_use]
    pub fn analyze_model(cfg: &Cfg, opaque: &[bool], model: Model) -> Reach {
        let nb = cfg.blocks().len();
        let mut entry: Vec<Option<Regs>> = vec![None; nb];
        let mut work = Worklist::new(nb);
        let mut sp_reached = vec![false; cfg.subprogs().len()];
        // The main program and every declared entry are reached from outside.
        for (k, sp) in cfg.subprogs().iter().enumerate() {
            if sp.external || k == SubprogId::MAIN.idx() {
                sp_reached[k] = true;
                merge(&mut entry, &mut work, sp.entry(), &ALL_UNKNOWN);
            }
        }

        while let Some(b) = work.pop() {
            let Some(mut st) = entry[b.idx()] else { continue };
            let blk = cfg.block(b);
            let mut entered: Vec<SubprogId> = Vec::new();
            for i in blk.insns() {
                if let Some(s) = step(cfg, opaque, i, &mut st, model) {
                    entered.push(s);
                }
            }
            let last = cfg.prog().op(blk.last());
            let fate = decide(last, &st);
            let is_cond = matches!(last, Op::Jump { .. } | Op::MayGoto { .. });
            if let (Some(f), true) = (blk.fall, !is_cond || fate != Fate::Taken) {
                let es = if is_cond { edge_state(last, &st, false) } else { st };
                merge(&mut entry, &mut work, f, &es);
            }
            if let (Some(j), true) = (blk.jump, !is_cond || fate != Fate::NotTaken) {
                let es = if is_cond { edge_state(last, &st, true) } else { st };
                merge(&mut entry, &mut work, j, &es);
            }
            for s in entered {
                if !sp_reached[s.idx()] {
                    sp_reached[s.idx()] = true;
                    merge(&mut entry, &mut work, cfg.subprog(s).entry(), &ALL_UNKNOWN);
                }
            }
        }

        // Final sweep over the fixed point.
        let n = cfg.prog().len();
        let mut insn_reached = vec![false; n];
        let mut fate = vec![None; n];
        let mut fall_off = None;
        for (bi, blk) in cfg.blocks().iter().enumerate() {
            let Some(mut st) = entry[bi] else { continue };
            for i in blk.insns() {
                insn_reached[i.idx()] = true;
                step(cfg, opaque, i, &mut st, model);
            }
            let last = cfg.prog().op(blk.last());
            if matches!(last, Op::Jump { .. } | Op::MayGoto { .. }) {
                fate[blk.last().idx()] = Some(decide(last, &st));
            }
            let falls = blk.falls_off && fate[blk.last().idx()] != Some(Fate::Taken);
            if falls && fall_off.is_none() {
                fall_off = Some(blk.last());
            }
        }
        Reach { insn_reached, fate, subprog_reached: sp_reached, fall_off }
    }

    /// Whether instruction `i` can execute.
    #[must_use]
    pub fn reached(&self, i: InsnIdx) -> bool {
        self.insn_reached[i.idx()]
    }

    /// The fate of the conditional jump (or `may_goto`) at `i`, if it is one and is reached.
    #[must_use]
    pub fn fate(&self, i: InsnIdx) -> Option<Fate> {
        self.fate[i.idx()]
    }

    /// Whether subprogram `s` can execute.
    #[must_use]
    #[cfg(any(test, feature = "internals"))]
    pub fn subprog_reached(&self, s: SubprogId) -> bool {
        self.subprog_reached[s.idx()]
    }

    /// The first reached instruction whose fall-through leaves its subprogram, if any.
    #[must_use]
    pub fn fall_off(&self) -> Option<InsnIdx> {
        self.fall_off
    }
}
