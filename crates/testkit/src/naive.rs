//! A deliberately naive oracle of the patch engine, and the generator that drives both.
//!
//! [`Naive`] keeps the program as a vector of slots whose references are **absolute indices**,
//! and every request rewrites every reference (instructions, labels, subprogram starts) by one
//! rule per request kind: slow (O(n) per request) and obviously right. It is written from the
//! crate documentation of `bpfpatch-patch`, not from its code; it shares nothing with the engine
//! but the instruction type.
//!
//! The rules (one `Move` per request; `i` the request's index, `w` the old instruction's
//! slots, `l` the buffer's):
//!
//! | request | a reference to `r` becomes |
//! |---|---|
//! | `patch` | `r <= i`: `r` (the buffer's first slot); else `r + l - w` |
//! | `prepatch` landing | `r <= i`: `r` (the inserted code); else `r + l` |
//! | `prepatch` skipping | jumps: `r < i`: `r`, else `r + l` (they skip the prologue); calls: `r <= i`: `r` (they enter it), else `r + l` |
//! | `delete_range [i, j)` | `r < i`: `r`; `r < j`: `i` (the first survivor); else `r - (j - i)` |
//! | `append` at `n` | `r < n`: `r`; else `r + l` (past the end stays past the end) |
//!
//! A buffer's own references are resolved in the new vector: buffer slot `k` is `b + k`,
//! one past the end `b + l` (the next instruction, the moved original, or the instruction a
//! prologue was inserted before). A reference a request makes to a node (`Node`, `Orig`) is the
//! node's index *before* the request, moved by the request's rule like every existing
//! reference (a call is made to the instruction the position holds at request time);
//! `OrigTarget` is the patched instruction's reference, moved the same way. Labels and
//! subprogram starts are a pair of references (jump side, call side), made when bound
//! (created) and moved by every request; an instruction using one resolves it at the end, by
//! its own kind.
//!
//! [`differential`] generates a program and a script of requests of every kind (patch, both
//! prepatch modes, delete, delete_range, append, retarget, set_insn, labels bound before and
//! after), with every target spelling (buffer-local by offset, `Local`, `PastEnd`,
//! `OrigTarget`, `Orig`, `Node`, labels, `Subprog`) on every reference kind (conditional jumps
//! of every condition, source form and class, `goto`, `gotol`, `may_goto`, calls,
//! `PSEUDO_FUNC`), applied to original, inserted, prologue and deletion-adjacent nodes
//! (including nodes returned by earlier requests); it checks after every request that the
//! engine's live slots are the oracle's (node ids and opcodes), that refused requests leave the
//! list unchanged with the predicted error, and at the end that the linearized program equals
//! the oracle's, instruction for instruction.

// An oracle's job is to panic on a broken property; generator arithmetic is on small values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use bpfpatch_insn::{Insn, Slot, TargetKind, opcode as c};
use bpfpatch_patch::fuzzing::Rng;
use bpfpatch_patch::reference::KernelAux;
use bpfpatch_patch::{
    CoreRelocData, ElfRelocData, Error, FuncInfo, InsnArrayEntry, LineInfo, LinearizeOptions, NodeId, PatchBuf,
    PatchList, PokeDesc, PrepatchMode, Program, Reloc, SideTables, Subprog, SubprogId, Target,
};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The kind of a reference: jumps and calls (calls and `PSEUDO_FUNC`) land differently next to
/// skipping prologues.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Conditional jumps, `goto`, `gotol`, `may_goto`.
    Jump,
    /// bpf-to-bpf calls and ld_imm64 `PSEUDO_FUNC`.
    Call,
}

pub(crate) fn kind_of(insn: &Insn) -> Option<Kind> {
    insn.target_field().map(|(_, k)| if k == TargetKind::Jump { Kind::Jump } else { Kind::Call })
}

/// A reference held by a slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ref {
    At(usize),
    Label(usize),
    Subprog(usize),
}

#[derive(Clone, Copy, Debug)]
struct NSlot {
    insn: Insn,
    node: NodeId,
    r: Option<Ref>,
    tail: bool,
}

/// How one request moves an absolute index (see the module table).
#[derive(Clone, Copy, Debug)]
enum Move {
    Patch { i: usize, w: usize, l: usize },
    Land { i: usize, l: usize },
    Skip { i: usize, l: usize },
    Delete { i: usize, j: usize },
    Append { n: usize, l: usize },
    Stay,
}

impl Move {
    fn apply(self, r: usize, k: Kind) -> usize {
        match self {
            Move::Patch { i, w, l } => {
                if r <= i {
                    r
                } else {
                    r + l - w
                }
            }
            Move::Land { i, l } => {
                if r <= i {
                    r
                } else {
                    r + l
                }
            }
            Move::Skip { i, l } => {
                let stays = match k {
                    Kind::Jump => r < i,
                    Kind::Call => r <= i,
                };
                if stays { r } else { r + l }
            }
            Move::Delete { i, j } => {
                if r < i {
                    r
                } else if r < j {
                    i
                } else {
                    r - (j - i)
                }
            }
            Move::Append { n, l } => {
                if r < n {
                    r
                } else {
                    r + l
                }
            }
            Move::Stay => r,
        }
    }
}

/// One buffer slot as the generator wrote it: the instruction and its explicit target.
pub type Spec = (Insn, Option<Target>);

/// The naive patcher (see the module documentation).
#[derive(Clone, Debug)]
pub struct Naive {
    v: Vec<NSlot>,
    /// Per label: `[jump side, call side]` once bound.
    labels: Vec<Option<[usize; 2]>>,
    /// Per subprogram: `[jump side, call side]`.
    subprogs: Vec<[usize; 2]>,
    deleted: BTreeSet<NodeId>,
    orig_len: usize,
}

fn side(k: Kind) -> usize {
    match k {
        Kind::Jump => 0,
        Kind::Call => 1,
    }
}

impl Naive {
    /// The oracle of a valid program (targets inside it, off second slots; checked by the engine).
    #[must_use]
    pub fn new(prog: &[Insn]) -> Naive {
        let mut v = Vec::with_capacity(prog.len());
        let mut starts = BTreeSet::from([0usize]);
        let mut i = 0;
        while i < prog.len() {
            let insn = prog[i];
            let r = insn.abs_target(i).map(|t| Ref::At(t as usize));
            if let (Some(Kind::Call), Some(Ref::At(t))) = (kind_of(&insn), r) {
                starts.insert(t);
            }
            v.push(NSlot { insn, node: NodeId::of_slot(Slot(i)), r, tail: false });
            if insn.is_ld_imm64() && i + 1 < prog.len() {
                v.push(NSlot { insn: prog[i + 1], node: NodeId::of_slot(Slot(i + 1)), r: None, tail: true });
                i += 2;
            } else {
                i += 1;
            }
        }
        let subprogs = if prog.is_empty() { Vec::new() } else { starts.into_iter().map(|s| [s, s]).collect() };
        Naive { v, labels: Vec::new(), subprogs, deleted: BTreeSet::new(), orig_len: prog.len() }
    }

    fn index_of(&self, n: NodeId) -> Option<usize> {
        self.v.iter().position(|s| s.node == n && !s.tail)
    }

    fn width(&self, i: usize) -> usize {
        if self.v.get(i + 1).is_some_and(|s| s.tail) { 2 } else { 1 }
    }

    /// Live instruction nodes (first slots) in program order.
    #[must_use]
    pub fn insn_nodes(&self) -> Vec<NodeId> {
        self.v.iter().filter(|s| !s.tail).map(|s| s.node).collect()
    }

    /// Live slots: node and instruction.
    #[must_use]
    pub fn slots(&self) -> Vec<(NodeId, Insn)> {
        self.v.iter().map(|s| (s.node, s.insn)).collect()
    }

    fn insn_of(&self, n: NodeId) -> Option<Insn> {
        self.index_of(n).map(|i| self.v[i].insn)
    }

    /// Moves every existing reference by `mv`.
    fn move_all(&mut self, mv: Move) {
        for s in &mut self.v {
            if let (Some(Ref::At(r)), Some(k)) = (s.r, kind_of(&s.insn)) {
                s.r = Some(Ref::At(mv.apply(r, k)));
            }
        }
        for p in self.labels.iter_mut().flatten() {
            p[0] = mv.apply(p[0], Kind::Jump);
            p[1] = mv.apply(p[1], Kind::Call);
        }
        for p in &mut self.subprogs {
            p[0] = mv.apply(p[0], Kind::Jump);
            p[1] = mv.apply(p[1], Kind::Call);
        }
    }

    /// Resolves a buffer placed at `b` (new coordinates) under `mv`. `orig`: `None` for append,
    /// `Some(None)` when the patched instruction has no reference.
    fn resolve(
        &self,
        spec: &[Spec],
        b: usize,
        mv: Move,
        orig: Option<Option<(Ref, Kind)>>,
    ) -> Result<Vec<Option<Ref>>, Error> {
        let len = spec.len();
        let mut out = vec![None; len];
        let mut j = 0;
        while j < len {
            let (insn, t) = spec[j];
            let w = if insn.is_ld_imm64() { 2 } else { 1 };
            let Some(k) = kind_of(&insn) else {
                assert!(t.is_none(), "generator: a target on a slot without a target field");
                j += w;
                continue;
            };
            let local = |kk: usize| -> Result<Ref, Error> {
                if kk == len && orig.is_none() {
                    return Err(Error::TargetNeedsPatchPoint { index: j });
                }
                Ok(Ref::At(b + kk))
            };
            let node_ref = |n: NodeId| -> Result<Ref, Error> {
                if self.deleted.contains(&n) {
                    return Err(Error::TargetDeleted { index: j, node: n });
                }
                let i = self.index_of(n).expect("generator: a known live node");
                Ok(Ref::At(mv.apply(i, k)))
            };
            let r = match t {
                None => {
                    let kk = j as i64 + insn.rel_target().expect("target field") + 1;
                    local(kk as usize)?
                }
                Some(Target::Local(kk)) => local(kk as usize)?,
                Some(Target::PastEnd) => local(len)?,
                Some(Target::OrigTarget) => match orig {
                    None => return Err(Error::TargetNeedsPatchPoint { index: j }),
                    Some(None) => return Err(Error::NoOrigTarget { index: j }),
                    Some(Some((_, ok))) if ok != k => return Err(Error::OrigTargetKind { index: j }),
                    Some(Some((Ref::At(r), ok))) => Ref::At(mv.apply(r, ok)),
                    Some(Some((r, _))) => r,
                },
                Some(Target::Orig(s)) => node_ref(NodeId::of_slot(s))?,
                Some(Target::Node(n)) => node_ref(n)?,
                Some(Target::Label(l)) => Ref::Label(l.index()),
                Some(Target::Subprog(s)) => Ref::Subprog(s.index()),
            };
            out[j] = Some(r);
            j += w;
        }
        Ok(out)
    }

    fn buffer_slots(spec: &[Spec], refs: &[Option<Ref>], nodes: &[NodeId]) -> Vec<NSlot> {
        let mut out = Vec::with_capacity(spec.len());
        let mut tail = false;
        for (j, &(insn, _)) in spec.iter().enumerate() {
            out.push(NSlot { insn, node: nodes[j], r: refs[j], tail });
            tail = !tail && insn.is_ld_imm64();
        }
        out
    }

    fn orig_ref(&self, i: usize) -> Option<(Ref, Kind)> {
        let s = self.v[i];
        Some((s.r?, kind_of(&s.insn)?))
    }

    /// What `patch(x, spec)` will resolve to, or its error.
    fn plan_patch(&self, x: NodeId, spec: &[Spec]) -> Result<(usize, usize, Vec<Option<Ref>>), Error> {
        let i = self.index_of(x).expect("generator: a live node");
        let w = self.width(i);
        let mv = Move::Patch { i, w, l: spec.len() };
        let refs = self.resolve(spec, i, mv, Some(self.orig_ref(i)))?;
        Ok((i, w, refs))
    }

    fn apply_patch(&mut self, i: usize, w: usize, spec: &[Spec], refs: &[Option<Ref>], nodes: &[NodeId]) {
        self.move_all(Move::Patch { i, w, l: spec.len() });
        let new = Naive::buffer_slots(spec, refs, nodes);
        self.v.splice(i..i + w, new);
    }

    fn plan_prepatch(&self, x: NodeId, spec: &[Spec], mode: PrepatchMode) -> Result<(usize, Vec<Option<Ref>>), Error> {
        let i = self.index_of(x).expect("generator: a live node");
        let l = spec.len();
        let mv = match mode {
            PrepatchMode::LandOnInserted => Move::Land { i, l },
            PrepatchMode::SkipForJumps => Move::Skip { i, l },
        };
        let refs = self.resolve(spec, i, mv, Some(self.orig_ref(i)))?;
        Ok((i, refs))
    }

    fn apply_prepatch(
        &mut self,
        i: usize,
        spec: &[Spec],
        refs: &[Option<Ref>],
        nodes: &[NodeId],
        mode: PrepatchMode,
        orig: NodeId,
    ) {
        let l = spec.len();
        self.move_all(match mode {
            PrepatchMode::LandOnInserted => Move::Land { i, l },
            PrepatchMode::SkipForJumps => Move::Skip { i, l },
        });
        if mode == PrepatchMode::LandOnInserted {
            // The original instruction moves to a new node (its second slot keeps its own).
            self.v[i].node = orig;
        }
        let new = Naive::buffer_slots(spec, refs, nodes);
        self.v.splice(i..i, new);
    }

    fn plan_append(&self, spec: &[Spec]) -> Result<Vec<Option<Ref>>, Error> {
        let n = self.v.len();
        self.resolve(spec, n, Move::Append { n, l: spec.len() }, None)
    }

    fn apply_append(&mut self, spec: &[Spec], refs: &[Option<Ref>], nodes: &[NodeId]) {
        let n = self.v.len();
        self.move_all(Move::Append { n, l: spec.len() });
        self.v.extend(Naive::buffer_slots(spec, refs, nodes));
        self.subprogs.push([n, n]);
    }

    fn delete_range(&mut self, first: NodeId, last: NodeId) {
        let i = self.index_of(first).expect("live");
        let li = self.index_of(last).expect("live");
        let j = li + self.width(li);
        self.move_all(Move::Delete { i, j });
        // Deleted instruction nodes (second slots are never named on their own).
        for s in self.v.drain(i..j) {
            if !s.tail {
                self.deleted.insert(s.node);
            }
        }
    }

    fn plan_retarget(&self, x: NodeId, t: Target) -> Result<Option<Ref>, Error> {
        let i = self.index_of(x).expect("live");
        let insn = self.v[i].insn;
        if insn.target_field().is_none() {
            return Err(Error::NodeHasNoTargetField { node: x });
        }
        let mut spec = vec![(insn, Some(t))];
        if self.width(i) == 2 {
            spec.push((self.v[i + 1].insn, None));
        }
        let refs = self.resolve(&spec, i, Move::Stay, Some(self.orig_ref(i)))?;
        Ok(refs[0])
    }

    fn bind(&mut self, label: usize, n: NodeId) {
        let i = self.index_of(n).expect("live");
        self.labels[label] = Some([i, i]);
    }

    /// The linearized program, or `None` where linearization must fail (a reference past the
    /// end, an unbound label).
    #[must_use]
    pub fn materialize(&self) -> Option<Vec<Insn>> {
        let len = self.v.len();
        let mut out: Vec<Insn> = self.v.iter().map(|s| s.insn).collect();
        for (at, s) in self.v.iter().enumerate() {
            let (Some(r), Some(k)) = (s.r, kind_of(&s.insn)) else { continue };
            let t = match r {
                Ref::At(t) => t,
                Ref::Label(l) => self.labels.get(l).copied().flatten()?[side(k)],
                Ref::Subprog(p) => self.subprogs.get(p)?[side(k)],
            };
            if t >= len {
                return None;
            }
            assert!(!self.v[t].tail, "oracle: a reference into a second slot");
            let ok = out[at].set_rel_target(t as i64 - at as i64 - 1);
            assert!(ok, "small programs: every delta fits");
        }
        Some(out)
    }
}

// ---------------------------------------------------------------------------- the generator

/// Request kinds, for coverage.
pub const REQUESTS: [&str; 10] =
    ["patch", "land", "skip", "append", "retarget", "delete", "delete_range", "set_insn", "bind_label", "label_at"];
/// Target spellings, for coverage.
pub const TARGETS: [&str; 9] =
    ["own-offset", "Local", "PastEnd", "OrigTarget", "Orig", "Node", "Label-before", "Label-after", "Subprog"];
/// Reference kinds, for coverage.
pub const REFS: [&str; 6] = ["cond-jump", "goto", "gotol", "may_goto", "call", "PSEUDO_FUNC"];
/// Node categories a request is applied to, for coverage.
pub const NODES: [&str; 4] = ["original", "inserted", "prologue", "next-to-deleted"];

static CASES: AtomicUsize = AtomicUsize::new(0);
static TRIED: AtomicUsize = AtomicUsize::new(0);
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
static LINEARIZED: AtomicUsize = AtomicUsize::new(0);
static COVER: Mutex<BTreeSet<(u8, u8, u8)>> = Mutex::new(BTreeSet::new());
static NODE_COVER: Mutex<BTreeSet<(u8, u8)>> = Mutex::new(BTreeSet::new());

/// What [`differential`] exercised since the process started.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Cases run.
    pub cases: usize,
    /// Requests generated.
    pub tried: usize,
    /// Requests the engine (and the oracle) accepted.
    pub accepted: usize,
    /// Cases whose final program linearized (the rest fail by prediction: past end, unbound label).
    pub linearized: usize,
    /// (request, target spelling, reference kind) triples exercised (indices into the tables).
    pub cover: BTreeSet<(u8, u8, u8)>,
    /// (request, node category) pairs exercised.
    pub node_cover: BTreeSet<(u8, u8)>,
}

/// The counters of [`differential`].
#[must_use]
pub fn stats() -> Stats {
    Stats {
        cases: CASES.load(Relaxed),
        tried: TRIED.load(Relaxed),
        accepted: ACCEPTED.load(Relaxed),
        linearized: LINEARIZED.load(Relaxed),
        cover: COVER.lock().map(|c| c.clone()).unwrap_or_default(),
        node_cover: NODE_COVER.lock().map(|c| c.clone()).unwrap_or_default(),
    }
}

const CONDS: [u8; 11] = [c::JEQ, c::JGT, c::JGE, c::JSET, c::JNE, c::JSGT, c::JSGE, c::JLT, c::JLE, c::JSLT, c::JSLE];

/// A reference-holding instruction of kind `rk` (index into [`REFS`]) with field 0; for ld_imm64
/// both slots.
pub(crate) fn ref_insn(rng: &mut Rng<'_>, rk: u8) -> Vec<Insn> {
    let dst = rng.below(10) as u8;
    match rk {
        0 => {
            let class = if rng.chance(50) { c::JMP } else { c::JMP32 };
            let cond = *rng.pick(&CONDS);
            if rng.chance(50) {
                vec![Insn::new(class | cond | c::K, dst, 0, 0, rng.below(9) as i32 - 4)]
            } else {
                vec![Insn::new(class | cond | c::X, dst, rng.below(10) as u8, 0, 0)]
            }
        }
        1 => vec![Insn::new(c::JMP | c::JA, 0, 0, 0, 0)],
        2 => vec![Insn::new(c::JMP32 | c::JA, 0, 0, 0, 0)],
        3 => vec![Insn::new(c::JMP | c::JCOND, 0, 0, 0, 0)],
        4 => vec![Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, 0)],
        _ => vec![Insn::new(c::LD_IMM64, dst, c::PSEUDO_FUNC, 0, 0), Insn::new(0, 0, 0, 0, 0)],
    }
}

fn ref_kind_index(insn: &Insn) -> Option<u8> {
    let (_, k) = insn.target_field()?;
    Some(match k {
        TargetKind::Call => 4,
        TargetKind::FuncRef => 5,
        TargetKind::Jump if insn.code == c::JMP | c::JA => 1,
        TargetKind::Jump if insn.code == c::JMP32 | c::JA => 2,
        TargetKind::Jump if insn.code == c::JMP | c::JCOND => 3,
        TargetKind::Jump => 0,
    })
}

pub(crate) fn plain_insn(rng: &mut Rng<'_>) -> Vec<Insn> {
    let dst = rng.below(10) as u8;
    match rng.below(6) {
        0 => vec![Insn::new(c::ALU | c::MOV | c::K, dst, 0, 0, rng.below(100) as i32)],
        1 => vec![Insn::new(c::ALU64 | c::ADD | c::X, dst, rng.below(10) as u8, 0, 0)],
        2 => vec![Insn::new(c::LD_IMM64, dst, 0, 0, rng.next() as i32), Insn::new(0, 0, 0, 0, rng.next() as i32)],
        3 => vec![Insn::new(c::JMP | c::CALL, 0, 0, 0, rng.below(200) as i32)],
        4 => vec![Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)],
        _ => vec![Insn::new(c::ALU64 | c::MOV | c::K, dst, 0, 0, rng.below(100) as i32)],
    }
}

/// A valid program: 1-3 subprograms of plain instructions and references of every kind, jumps
/// to any instruction, calls and `PSEUDO_FUNC` to subprogram starts or any instruction.
pub(crate) fn gen_program(rng: &mut Rng<'_>) -> Vec<Insn> {
    let mut p: Vec<Insn> = Vec::new();
    let mut starts = Vec::new();
    let mut fix = Vec::new();
    for _ in 0..rng.range(1, 3) {
        starts.push(p.len());
        for _ in 0..rng.range(1, 9) {
            if rng.chance(45) {
                fix.push(p.len());
                let rk = rng.below(6) as u8;
                p.extend(ref_insn(rng, rk));
            } else {
                p.extend(plain_insn(rng));
            }
        }
        p.push(Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0));
    }
    let mut heads = Vec::new();
    let mut i = 0;
    while i < p.len() {
        heads.push(i);
        i += if p[i].is_ld_imm64() { 2 } else { 1 };
    }
    for at in fix {
        let t =
            if kind_of(&p[at]) == Some(Kind::Call) && rng.chance(70) { *rng.pick(&starts) } else { *rng.pick(&heads) };
        assert!(p[at].set_rel_target(t as i64 - at as i64 - 1));
    }
    p
}

/// Instruction starts of a valid program (ld_imm64 second slots left out).
pub(crate) fn heads_of(p: &[Insn]) -> Vec<usize> {
    let mut heads = Vec::new();
    let mut i = 0;
    while i < p.len() {
        heads.push(i);
        i += if p[i].is_ld_imm64() { 2 } else { 1 };
    }
    heads
}

/// The naive differential's program generator (`gen_program`) with aux data and every side
/// table: the subprogram table the kernel computes (slot 0 and every call and `PSEUDO_FUNC`
/// target; given, or left empty for the engine to compute), func_info, line info at every subprogram start and some other
/// instructions, poke descriptors, insn arrays, CO-RE relocations and an ELF relocation on
/// every ld_imm64. All valid: the in-order differential breaks them on purpose separately.
pub fn program_with_tables(rng: &mut Rng<'_>) -> Program<KernelAux> {
    let insns = gen_program(rng);
    let heads = heads_of(&insns);
    let mut starts: Vec<u32> = vec![0];
    for &h in &heads {
        if kind_of(&insns[h]) == Some(Kind::Call) {
            starts.push(insns[h].abs_target(h).expect("a call has a target") as u32);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let mut line_info = Vec::new();
    for &h in &heads {
        if starts.contains(&(h as u32)) || rng.chance(35) {
            line_info.push(LineInfo {
                insn_off: h as u32,
                file_name_off: rng.below(3) as u32,
                line_off: rng.below(1000) as u32,
                line_col: (h as u32) << 10 | rng.below(80) as u32,
            });
        }
    }
    let subprogs: Vec<Subprog> = if rng.chance(70) {
        starts
            .iter()
            .map(|&s| Subprog {
                start: s,
                linfo_idx: line_info.iter().position(|l| l.insn_off == s).unwrap_or(0) as u32,
            })
            .collect()
    } else {
        Vec::new()
    };
    let func_info = if rng.chance(80) {
        starts.iter().map(|&s| FuncInfo { insn_off: s, type_id: rng.range(1, 99) as u32 }).collect()
    } else {
        Vec::new()
    };
    let pokes = (0..rng.below(3))
        .map(|k| PokeDesc { insn_idx: *rng.pick(&heads) as u32, map: k as u32, key: rng.below(9) as u32 })
        .collect();
    let insn_arrays = (0..rng.below(3))
        .map(|_| {
            (0..rng.range(1, 3))
                .map(|_| {
                    let h = *rng.pick(&heads) as u32;
                    InsnArrayEntry { orig_off: h, xlated_off: h }
                })
                .collect()
        })
        .collect();
    let core_relocs = (0..rng.below(4))
        .map(|k| Reloc {
            insn_off: *rng.pick(&heads) as u64 * 8,
            data: CoreRelocData { type_id: k as u32, access_str_off: 0, kind: rng.below(4) as u32 },
        })
        .collect();
    let elf_relocs = heads
        .iter()
        .filter(|&&h| insns[h].is_ld_imm64())
        .map(|&h| Reloc { insn_off: h as u64 * 8, data: ElfRelocData { sym: h as u32, kind: 1 } })
        .collect();
    let aux = (0..insns.len())
        .map(|i| KernelAux {
            seen: rng.chance(80),
            zext_dst: rng.chance(30),
            orig_idx: i as u32 + 1,
            other: rng.next() as u32,
        })
        .collect();
    Program {
        insns,
        aux,
        tables: SideTables { subprogs, func_info, line_info, pokes, insn_arrays, core_relocs, elf_relocs },
    }
}

struct Driver<'a, 'p> {
    rng: Rng<'a>,
    list: PatchList<'p>,
    naive: Naive,
    /// Node categories (index into [`NODES`]) beyond "original".
    inserted: BTreeSet<NodeId>,
    prologue: BTreeSet<NodeId>,
    near_deleted: BTreeSet<NodeId>,
    /// Labels created unbound by a buffer, to bind after the request.
    to_bind: Vec<bpfpatch_patch::Label>,
    log: Vec<String>,
}

impl Driver<'_, '_> {
    fn fail(&self, what: &str) -> ! {
        panic!("naive differential: {what}\n{}", self.log.join("\n"))
    }

    fn live(&self) -> Vec<NodeId> {
        self.naive.insn_nodes()
    }

    /// A live instruction node, picked by category; returns it and its category.
    fn pick_node(&mut self) -> Option<(NodeId, u8)> {
        let live = self.live();
        if live.is_empty() {
            return None;
        }
        let cat = |n: &NodeId, s: &Self| -> u8 {
            if s.near_deleted.contains(n) {
                3
            } else if s.prologue.contains(n) {
                2
            } else if s.inserted.contains(n) {
                1
            } else {
                0
            }
        };
        let want = self.rng.below(4) as u8;
        let of_cat: Vec<NodeId> = live.iter().copied().filter(|n| cat(n, self) == want).collect();
        let n = if of_cat.is_empty() { *self.rng.pick(&live) } else { *self.rng.pick(&of_cat) };
        Some((n, cat(&n, self)))
    }

    /// A target spelling for a reference of kind `k` at buffer slot `j` of a buffer whose
    /// instruction starts are `starts` and length `len`; writes buffer-local offsets into `insn`.
    fn gen_target(
        &mut self,
        insn: &mut Insn,
        j: usize,
        starts: &[usize],
        len: usize,
        append: bool,
    ) -> (Option<Target>, u8) {
        let mut spelling = self.rng.below(9) as u8;
        if matches!(spelling, 5 | 6) && self.live().is_empty() {
            spelling = 2; // no node to name
        }
        let local = |rng: &mut Rng<'_>| -> usize {
            let mut c: Vec<usize> = starts.to_vec();
            if !append || rng.chance(5) {
                c.push(len);
            }
            *rng.pick(&c)
        };
        let t = match spelling {
            0 => {
                let k = local(&mut self.rng);
                assert!(insn.set_rel_target(k as i64 - j as i64 - 1));
                None
            }
            1 => Some(Target::Local(local(&mut self.rng) as u32)),
            2 => Some(Target::PastEnd),
            3 => Some(Target::OrigTarget),
            4 => {
                let orig: Vec<NodeId> = self.live().into_iter().filter(|n| n.index() < self.naive.orig_len).collect();
                if orig.is_empty() || self.rng.chance(3) && !self.naive.deleted.is_empty() {
                    let d: Vec<NodeId> =
                        self.naive.deleted.iter().copied().filter(|n| n.index() < self.naive.orig_len).collect();
                    match d.first() {
                        Some(_) => Some(Target::Orig(Slot(self.rng.pick(&d).index()))),
                        None => Some(Target::PastEnd),
                    }
                } else {
                    Some(Target::Orig(Slot(self.rng.pick(&orig).index())))
                }
            }
            5 => {
                if self.rng.chance(3) && !self.naive.deleted.is_empty() {
                    let d: Vec<NodeId> = self.naive.deleted.iter().copied().collect();
                    Some(Target::Node(*self.rng.pick(&d)))
                } else {
                    let (n, _) = self.pick_node().expect("a live node");
                    Some(Target::Node(n))
                }
            }
            6 => {
                let (n, _) = self.pick_node().expect("a live node");
                let l = self.list.label_at(n).unwrap_or_else(|e| self.fail(&format!("label_at({n}): {e}")));
                self.naive.labels.push(None);
                self.naive.bind(l.index(), n);
                self.log.push(format!("label_at({n}) = {l}"));
                Some(Target::Label(l))
            }
            7 => {
                let l = self.list.new_label().unwrap_or_else(|e| self.fail(&format!("new_label: {e}")));
                self.naive.labels.push(None);
                self.to_bind.push(l);
                self.log.push(format!("new_label() = {l}"));
                Some(Target::Label(l))
            }
            _ => {
                let s = self.rng.below(self.naive.subprogs.len().max(1));
                Some(Target::Subprog(SubprogId(s as u32)))
            }
        };
        (t, spelling)
    }

    /// A buffer of 1-4 instructions; returns the spec and the (target, reference) coverage.
    fn gen_buf(&mut self, append: bool) -> (Vec<Spec>, Vec<(u8, u8)>) {
        let mut insns: Vec<Vec<Insn>> = Vec::new();
        for _ in 0..self.rng.range(1, 4) {
            insns.push(if self.rng.chance(55) {
                let rk = self.rng.below(6) as u8;
                ref_insn(&mut self.rng, rk)
            } else {
                plain_insn(&mut self.rng)
            });
        }
        let mut starts = Vec::new();
        let mut len = 0;
        for i in &insns {
            starts.push(len);
            len += i.len();
        }
        let mut spec = Vec::with_capacity(len);
        let mut cover = Vec::new();
        for (idx, group) in insns.into_iter().enumerate() {
            let j = starts[idx];
            let mut first = group[0];
            let t = if first.target_field().is_some() {
                let (t, sp) = self.gen_target(&mut first, j, &starts, len, append);
                cover.push((sp, ref_kind_index(&first).unwrap_or(0)));
                t
            } else {
                None
            };
            spec.push((first, t));
            for &s in &group[1..] {
                spec.push((s, None));
            }
        }
        (spec, cover)
    }

    fn buf_of(spec: &[Spec]) -> PatchBuf {
        let mut b = PatchBuf::with_capacity(spec.len());
        for &(insn, t) in spec {
            match t {
                None => b.push(insn),
                Some(t) => b.jump_to(insn, t),
            };
        }
        b
    }

    fn note(req: u8, cover: &[(u8, u8)], cat: Option<u8>) {
        if let Ok(mut c) = COVER.lock() {
            for &(t, r) in cover {
                c.insert((req, t, r));
            }
        }
        if let (Some(cat), Ok(mut c)) = (cat, NODE_COVER.lock()) {
            c.insert((req, cat));
        }
    }

    /// Compares the engine's live slots with the oracle's (node ids and opcodes; reference
    /// fields are symbolic in the engine until linearization).
    fn check_slots(&self, what: &str) {
        let got: Vec<(NodeId, Insn)> = self.list.slots().collect();
        let want = self.naive.slots();
        let same = got.len() == want.len()
            && got.iter().zip(&want).all(|(&(gn, gi), &(wn, wi))| {
                gn == wn
                    && gi.code == wi.code
                    && gi.dst() == wi.dst()
                    && gi.src() == wi.src()
                    && (gi.target_field().is_some() || gi == wi)
            });
        if !same {
            self.fail(&format!("{what}: live slots differ\n engine {got:?}\n oracle {want:?}"));
        }
    }

    /// Checks an engine result against the oracle's prediction; on a refusal, that the list is
    /// unchanged.
    fn expect<T>(
        &self,
        what: &str,
        got: Result<T, Error>,
        want: Result<(), Error>,
        before: &[(NodeId, Insn)],
    ) -> Option<T> {
        match (got, want) {
            (Ok(v), Ok(())) => Some(v),
            (Err(e), Err(w)) => {
                if e != w {
                    self.fail(&format!("{what}: engine refused with {e:?}, oracle predicted {w:?}"));
                }
                let now: Vec<(NodeId, Insn)> = self.list.slots().collect();
                if now != before {
                    self.fail(&format!("{what}: refused ({e}) but the list changed"));
                }
                None
            }
            (Ok(_), Err(w)) => self.fail(&format!("{what}: engine accepted, oracle predicted {w:?}")),
            (Err(e), Ok(())) => self.fail(&format!("{what}: engine refused with {e:?}, oracle accepted")),
        }
    }

    fn after_request(&mut self, req: &str) {
        // Labels a buffer created unbound are bound now (to any live node), or left unbound (rarely).
        for lab in core::mem::take(&mut self.to_bind) {
            if self.rng.chance(3) {
                continue;
            }
            let Some((n, cat)) = self.pick_node() else { continue };
            self.list.bind_label(lab, n).unwrap_or_else(|e| self.fail(&format!("bind_label({lab}, {n}): {e}")));
            self.naive.bind(lab.index(), n);
            self.log.push(format!("bind_label({lab}, {n})"));
            Driver::note(8, &[], Some(cat));
        }
        self.check_slots(req);
        // The engine's own invariants (I1-I7), after every request, refused ones included.
        if let Err(e) = self.list.validate() {
            self.fail(&format!("{req}: {e}"));
        }
    }

    fn step(&mut self) {
        let before: Vec<(NodeId, Insn)> = self.list.slots().collect();
        let r = self.rng.below(100);
        TRIED.fetch_add(1, Relaxed);
        let accepted = match r {
            0..=59 => {
                let req = match r {
                    0..=24 => 0u8,
                    25..=36 => 1,
                    37..=49 => 2,
                    50..=53 => 3,
                    _ => 4,
                };
                if req == 4 {
                    self.retarget(&before)
                } else if req == 3 {
                    self.append(&before)
                } else {
                    self.patch(req, &before)
                }
            }
            60..=79 => self.delete(&before),
            80..=89 => self.set_insn(&before),
            _ => {
                let Some((n, cat)) = self.pick_node() else { return };
                let l = self.list.label_at(n).unwrap_or_else(|e| self.fail(&format!("label_at({n}): {e}")));
                self.naive.labels.push(None);
                self.naive.bind(l.index(), n);
                self.log.push(format!("label_at({n}) = {l} (unused)"));
                Driver::note(9, &[], Some(cat));
                true
            }
        };
        if accepted {
            ACCEPTED.fetch_add(1, Relaxed);
        }
        self.after_request("request");
    }

    fn patch(&mut self, req: u8, before: &[(NodeId, Insn)]) -> bool {
        let Some((x, cat)) = self.pick_node() else { return false };
        let (spec, cover) = self.gen_buf(false);
        Driver::note(req, &cover, Some(cat));
        let buf = Driver::buf_of(&spec);
        let what = format!("{} at {x} with {spec:?}", REQUESTS[req as usize]);
        self.log.push(what.clone());
        if req == 0 {
            let plan = self.naive.plan_patch(x, &spec);
            let got = self.list.patch(x, &buf);
            let Some(p) = self.expect(&what, got, plan.as_ref().map(|_| ()).map_err(Clone::clone), before) else {
                return false;
            };
            let (i, w, refs) = plan.expect("accepted");
            let nodes: Vec<NodeId> = p.nodes().collect();
            self.naive.apply_patch(i, w, &spec, &refs, &nodes);
            self.inserted.extend(nodes.iter().skip(1));
            true
        } else {
            let mode = if req == 1 { PrepatchMode::LandOnInserted } else { PrepatchMode::SkipForJumps };
            let plan = self.naive.plan_prepatch(x, &spec, mode);
            let got = self.list.prepatch(x, &buf, mode);
            let Some(p) = self.expect(&what, got, plan.as_ref().map(|_| ()).map_err(Clone::clone), before) else {
                return false;
            };
            let (i, refs) = plan.expect("accepted");
            let nodes: Vec<NodeId> = p.nodes().collect();
            self.naive.apply_prepatch(i, &spec, &refs, &nodes, mode, p.orig);
            if mode == PrepatchMode::SkipForJumps {
                self.prologue.extend(nodes);
            } else {
                self.inserted.extend(nodes.iter().skip(1));
                self.inserted.insert(p.orig);
            }
            true
        }
    }

    fn append(&mut self, before: &[(NodeId, Insn)]) -> bool {
        let (spec, cover) = self.gen_buf(true);
        Driver::note(3, &cover, None);
        let buf = Driver::buf_of(&spec);
        let what = format!("append {spec:?}");
        self.log.push(what.clone());
        let plan = self.naive.plan_append(&spec);
        let got = self.list.append(&buf);
        let Some(a) = self.expect(&what, got, plan.as_ref().map(|_| ()).map_err(Clone::clone), before) else {
            return false;
        };
        let nodes: Vec<NodeId> = a.nodes().collect();
        self.naive.apply_append(&spec, &plan.expect("accepted"), &nodes);
        self.inserted.extend(nodes);
        true
    }

    fn retarget(&mut self, before: &[(NodeId, Insn)]) -> bool {
        let live = self.live();
        let with: Vec<NodeId> =
            live.into_iter().filter(|&n| self.naive.insn_of(n).is_some_and(|i| i.target_field().is_some())).collect();
        if with.is_empty() {
            return false;
        }
        let x = *self.rng.pick(&with);
        let mut insn = self.naive.insn_of(x).expect("live");
        let w = if insn.is_ld_imm64() { 2 } else { 1 };
        let (t, sp) = self.gen_target(&mut insn, 0, &[0], w, false);
        // Retarget always names its target: the buffer-local offset spelling is `Local`.
        let t = t.unwrap_or(Target::Local((insn.rel_target().unwrap_or(0) + 1) as u32));
        let cat = self.category(x);
        Driver::note(4, &[(sp, ref_kind_index(&insn).unwrap_or(0))], Some(cat));
        let what = format!("retarget {x} to {t:?}");
        self.log.push(what.clone());
        let plan = self.naive.plan_retarget(x, t);
        let got = self.list.retarget(x, t);
        if self.expect(&what, got, plan.as_ref().map(|_| ()).map_err(Clone::clone), before).is_none() {
            return false;
        }
        let i = self.naive.index_of(x).expect("live");
        self.naive.v[i].r = plan.expect("accepted");
        true
    }

    fn category(&self, n: NodeId) -> u8 {
        if self.near_deleted.contains(&n) {
            3
        } else if self.prologue.contains(&n) {
            2
        } else if self.inserted.contains(&n) {
            1
        } else {
            0
        }
    }

    fn delete(&mut self, before: &[(NodeId, Insn)]) -> bool {
        let live = self.live();
        if live.len() < 2 {
            return false;
        }
        let Some((first, cat)) = self.pick_node() else { return false };
        let at = live.iter().position(|&n| n == first).expect("live");
        let m = self.rng.range(1, 3).min(live.len() - at);
        let last = live[at + m - 1];
        let range = m > 1 || self.rng.chance(50);
        Driver::note(if range { 6 } else { 5 }, &[], Some(cat));
        let what = format!("delete_range({first}, {last})");
        self.log.push(what.clone());
        let got = if range { self.list.delete_range(first, last) } else { self.list.delete(first) };
        self.expect(&what, got, Ok(()), before);
        self.naive.delete_range(first, last);
        // The survivor after the run and the instruction before it.
        let live = self.live();
        for n in [live.get(at), at.checked_sub(1).and_then(|a| live.get(a))].into_iter().flatten() {
            self.near_deleted.insert(*n);
        }
        true
    }

    fn set_insn(&mut self, before: &[(NodeId, Insn)]) -> bool {
        let Some((x, cat)) = self.pick_node() else { return false };
        let old = self.naive.insn_of(x).expect("live");
        Driver::note(7, &[], Some(cat));
        // A same-length, same-kind replacement: another condition or register for references
        // (their target is kept), another plain instruction otherwise.
        let new = match ref_kind_index(&old) {
            Some(0..=3) => {
                let rk = self.rng.below(4) as u8;
                let mut n = ref_insn(&mut self.rng, rk)[0];
                n.off = old.off;
                n.imm = if n.code == c::JMP32 | c::JA { old.imm } else { n.imm };
                n
            }
            Some(4) => old,
            Some(_) => Insn::new(c::LD_IMM64, self.rng.below(10) as u8, c::PSEUDO_FUNC, 0, old.imm),
            None if old.is_ld_imm64() => Insn::new(c::LD_IMM64, self.rng.below(10) as u8, 0, 0, self.rng.next() as i32),
            None => plain_insn(&mut self.rng).into_iter().find(|i| !i.is_ld_imm64()).unwrap_or(old),
        };
        let new = if new.is_ld_imm64() != old.is_ld_imm64() { old } else { new };
        let what = format!("set_insn({x}, {new:?})");
        self.log.push(what.clone());
        let want = if new.target_field().is_some() && old.target_field().is_none() {
            Err(Error::NoTargetToKeep { node: x })
        } else {
            Ok(())
        };
        let got = self.list.set_insn(x, new);
        if self.expect(&what, got, want, before).is_none() {
            return false;
        }
        let i = self.naive.index_of(x).expect("live");
        self.naive.v[i].insn = new;
        if new.target_field().is_none() {
            self.naive.v[i].r = None;
        }
        true
    }

    fn finish(&mut self) {
        let want = self.naive.materialize();
        let got = self.list.linearize(LinearizeOptions::default());
        match (got, want) {
            (Ok(out), Some(w)) => {
                if out.insns != w {
                    let diff: Vec<String> = out
                        .insns
                        .iter()
                        .zip(&w)
                        .enumerate()
                        .filter(|(_, (a, b))| a != b)
                        .map(|(i, (a, b))| format!("  slot {i}: engine {a:?}, oracle {b:?}"))
                        .collect();
                    self.fail(&format!("linearized programs differ\n{}", diff.join("\n")));
                }
                LINEARIZED.fetch_add(1, Relaxed);
            }
            (Err(e), None) => {
                if !matches!(e, Error::TargetPastEnd { .. } | Error::UnboundLabel { .. }) {
                    self.fail(&format!("linearize refused with {e:?}; the oracle expected past-end or unbound"));
                }
            }
            (Ok(_), None) => self.fail("linearize succeeded; the oracle has a reference past the end or unbound"),
            (Err(e), Some(_)) => self.fail(&format!("linearize refused with {e:?}; the oracle linearized")),
        }
    }
}

/// Engine vs the naive oracle on a program and request script made from `data` (see the module
/// documentation).
///
/// # Panics
/// On any disagreement: a finding.
pub fn differential(data: &[u8]) {
    run(Rng::from_bytes(data));
}

/// [`differential`] on a seeded stream.
///
/// # Panics
/// On any disagreement.
pub fn differential_seed(seed: u64) {
    run(Rng::seeded(seed));
}

fn run(mut rng: Rng<'_>) {
    let prog = gen_program(&mut rng);
    let list = PatchList::new(&prog).unwrap_or_else(|e| panic!("generator made an invalid program: {e}\n{prog:?}"));
    let naive = Naive::new(&prog);
    let mut d = Driver {
        rng,
        list,
        naive,
        inserted: BTreeSet::new(),
        prologue: BTreeSet::new(),
        near_deleted: BTreeSet::new(),
        to_bind: Vec::new(),
        log: vec![format!("program {prog:?}")],
    };
    CASES.fetch_add(1, Relaxed);
    let steps = d.rng.range(1, 10);
    for _ in 0..steps {
        d.step();
    }
    d.finish();
}
