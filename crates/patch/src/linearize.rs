//! Linearization: one forward walk assigning new indices, then one pass over the recorded
//! fixups (MachBuffer style), with optional jump relaxation.
//!
//! Walk: every node gets `pos[node]` = the number of slots emitted before it (so a deleted node
//! gets the index of the first slot emitted after it, and the end sentinel the new length);
//! live nodes are copied to the output and nodes with a target push a `(at, node)` fixup.
//! Resolution: each fixup's reference becomes a position (jump kind: `pos`; call kind: the call
//! group's node, see [`crate::PatchList`] I4) and the relative delta is range-checked and stored.
//! There is one walk ([`PatchList::walk`]): it visits the nodes, streams pending patches (I6)
//! and writes every position; what it emits is its parameter, an `Emit`: `SlotEmit`
//! (instructions, optionally the node behind each slot, and the expansion of relaxed jumps)
//! for [`PatchList::linearize`] and the relaxing verification layer, `AuxEmit` (instructions
//! and aux in the same pass, a pending patch without jumps streamed as slices) for the
//! verification layer's common case.
//! Nothing is allocated per instruction: all buffers live in [`PatchCtx`] and keep their
//! capacity across runs.

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (checked whenever nodes
// or labels are allocated), so the usize <-> u32 conversions in this module cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use crate::error::{Error, Result};
use crate::handle::{Origin, Ref, pos};
use crate::list::{F_CMOVED, F_DELETED, F_LOGGED, F_TGT, F_TOUCHED, NONE, PatchList, is_jump_class, node_insn};
use crate::pending::PendingPatch;
use crate::tables::AuxHook;
use bpfpatch_insn::{Cond, Insn, Slot, TargetField, TargetKind, opcode as c};

/// Options of one linearization.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct LinearizeOptions {
    /// The target accepts cpu v4 (`gotol`): a jump whose 16-bit offset overflows is relaxed
    /// (`goto` becomes `gotol`; a conditional jump becomes the inverted condition over a
    /// `gotol`, or `jcc +1; goto +1; gotol` for `jset`/`may_goto`), iterated until stable.
    /// Without it an overflow is [`Error::JumpOutOfRange`], as in the kernel.
    pub relax: bool,
}

/// What one linearization did.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct LinearizeStats {
    /// Nodes walked (live and deleted).
    pub nodes: usize,
    /// Slots emitted.
    pub emitted: usize,
    /// Fixups resolved.
    pub fixups: usize,
    /// `goto` rewritten as `gotol`.
    pub relaxed_goto: usize,
    /// Conditional jumps expanded over a `gotol`.
    pub relaxed_cond: usize,
    /// Walks performed (1 without relaxation).
    pub walks: usize,
}

/// The old-to-new index map of a linearization.
///
/// For each original slot it answers where jumps to it land, where calls (and side-table
/// entries) at it land, whether that position was deleted, and where the instruction itself
/// (its aux data and relocations) ended up. Side tables are remapped through it.
#[derive(Clone, Debug, Default)]
pub struct OffsetMap {
    /// Per node: new index, flagged deleted (`handle::pos`).
    pub(crate) pos: Vec<u32>,
    /// Per original slot: node carrying its identity.
    pub(crate) orig_node: Vec<u32>,
    /// Per original slot: call/start position word (empty: equal to `pos`).
    pub(crate) cstart: Vec<u32>,
    /// Per list subprogram: start position word.
    pub(crate) subprog_starts: Vec<u32>,
    pub(crate) orig_len: u32,
    pub(crate) new_len: u32,
}

impl OffsetMap {
    /// Slots in the original program.
    #[must_use]
    pub fn orig_len(&self) -> usize {
        self.orig_len as usize
    }

    /// Slots in the new program.
    #[must_use]
    pub fn new_len(&self) -> usize {
        self.new_len as usize
    }

    /// Where a jump to original slot `old` lands: the first slot of its replacement, the
    /// original instruction after a skipping prepatch, or the first survivor when deleted.
    /// `old == orig_len` maps to `new_len`; `None` beyond.
    #[must_use]
    pub fn jump_target(&self, old: Slot) -> Option<Slot> {
        if old.0 > self.orig_len() {
            return None;
        }
        let w = self.pos.get(old.0)?;
        Some(Slot(pos::slot(*w) as usize))
    }

    fn start_word(&self, old: Slot) -> Option<u32> {
        if old.0 > self.orig_len() {
            return None;
        }
        if old.0 == self.orig_len() {
            return Some(self.new_len);
        }
        if self.cstart.is_empty() { self.pos.get(old.0).copied() } else { self.cstart.get(old.0).copied() }
    }

    /// Where a call (or a `PSEUDO_FUNC`, a subprogram start, a line-info or poke entry) at
    /// original slot `old` lands: like [`OffsetMap::jump_target`] except that code inserted by a
    /// skipping prepatch is entered. Alias: `call_target`.
    #[doc(alias = "call_target")]
    #[must_use]
    pub fn start(&self, old: Slot) -> Option<Slot> {
        self.start_word(old).map(|w| Slot(pos::slot(w) as usize))
    }

    /// [`OffsetMap::start`], or `None` when that position was deleted (the kernel's insn-array
    /// `INSN_DELETED` rule).
    #[must_use]
    pub fn live_start(&self, old: Slot) -> Option<Slot> {
        let w = self.start_word(old)?;
        (old.0 < self.orig_len() && !pos::is_deleted(w)).then_some(Slot(w as usize))
    }

    /// Where original slot `old`'s instruction (its identity: aux data, relocations) ended up:
    /// the last instruction of its patch, itself otherwise; `None` if deleted.
    #[must_use]
    pub fn insn(&self, old: Slot) -> Option<Slot> {
        let n = *self.orig_node.get(old.0)?;
        let w = *self.pos.get(n as usize)?;
        (!pos::is_deleted(w)).then_some(Slot(w as usize))
    }

    /// Whether original slot `old`'s position was deleted (jumps to it land on the first survivor).
    #[must_use]
    pub fn is_deleted(&self, old: Slot) -> bool {
        self.pos.get(old.0).is_some_and(|&w| old.0 < self.orig_len() && pos::is_deleted(w))
    }

    /// New index of a list node (first slot emitted at or after it), `None` for unknown nodes.
    #[must_use]
    pub fn node_pos(&self, node: crate::NodeId) -> Option<Slot> {
        self.pos.get(node.index()).map(|&w| Slot(pos::slot(w) as usize))
    }

    /// Start of a list subprogram (original or appended) in the new program, `None` for an
    /// unknown id. A subprogram whose slots were all deleted starts where the next one does.
    #[must_use]
    pub fn subprog_start(&self, id: crate::SubprogId) -> Option<Slot> {
        self.subprog_starts.get(id.index()).map(|&w| Slot(pos::slot(w) as usize))
    }

    /// The identity map of a program of `len` slots (no patches).
    #[must_use]
    pub fn identity(len: usize) -> OffsetMap {
        let n = u32::try_from(len).unwrap_or(pos::MAX_SLOT).min(pos::MAX_SLOT - 1);
        OffsetMap {
            pos: (0..=n).collect(),
            orig_node: (0..n).collect(),
            cstart: Vec::new(),
            subprog_starts: Vec::new(),
            orig_len: n,
            new_len: n,
        }
    }
}

/// The result of [`PatchList::linearize`]: the new instructions, the map, statistics.
#[doc(alias = "bpf_linearize_list_insn")]
#[derive(Clone, Debug, Default)]
pub struct Linearized {
    /// The new program.
    pub insns: Vec<Insn>,
    /// Old-to-new index map.
    pub map: OffsetMap,
    /// What happened.
    pub stats: LinearizeStats,
}

/// Reusable scratch and output of linearization (regalloc2's `run_with_ctx` model): keep one per
/// thread and pass it to [`PatchList::linearize_with`] so warm runs allocate nothing.
#[derive(Clone, Debug, Default)]
pub struct PatchCtx {
    pub(crate) fixups: Vec<Fixup>,
    pub(crate) relax_mark: Vec<u8>,
    pub(crate) src: Vec<SrcNode>,
    /// Call-group resolution cache, per node handle and per explicit group: the root node
    /// flagged deleted when the path crossed a deletion, `NONE` while unknown. Filled lazily
    /// (`memo_ok`) on the first call-group resolution of a run.
    pub(crate) memo_nodes: Vec<u32>,
    pub(crate) memo_groups: Vec<u32>,
    pub(crate) memo_ok: bool,
    pub(crate) chain: Vec<(u32, bool)>,
    /// Verification layer scratch (the table pass).
    pub(crate) tables: crate::tables::TableScratch,
    /// The last output (valid after a successful `linearize_with`).
    pub out: Linearized,
}

impl PatchCtx {
    /// An empty context.
    #[must_use]
    pub fn new() -> PatchCtx {
        PatchCtx::default()
    }

    /// Node that emitted each output slot (filled when the verification layer asked for it).
    pub(crate) fn src(&self) -> &[SrcNode] {
        &self.src
    }
}

/// An output slot whose target field linearization fills in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fixup {
    /// Output slot.
    pub(crate) at: u32,
    /// The instruction emitted there (so that resolution does not read the output back).
    pub(crate) insn: Insn,
    /// The node that emitted it.
    pub(crate) x: u32,
    /// Its reference.
    pub(crate) r: u32,
    /// The node's origin and flags (for errors and aux).
    pub(crate) origin: u32,
    pub(crate) f: u8,
}

/// The node behind an output slot (relaxing engine), with its origin and flags.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SrcNode {
    pub(crate) x: u32,
    pub(crate) origin: u32,
    pub(crate) f: u8,
}

/// One node as the walks see it (pending patches included).
#[derive(Clone, Copy, Debug)]
struct Node {
    x: u32,
    f: u8,
    insn: Insn,
    /// The reference when `F_TGT`.
    r: u32,
    origin: u32,
}

impl Node {
    /// The fixup of `insn`, emitted at `at` for this node.
    fn fixup(&self, at: u32, insn: Insn) -> Fixup {
        Fixup { at, insn, x: self.x, r: self.r, origin: self.origin, f: self.f }
    }
}

/// Where a walk writes its slots, in order.
trait Sink<T> {
    fn put(&mut self, v: T);
    /// Writes every item of `it`, in order.
    fn put_all(&mut self, it: impl ExactSizeIterator<Item = T>);
}

/// Appends.
struct Push<'a, T>(&'a mut Vec<T>);

impl<T> Sink<T> for Push<'_, T> {
    #[inline(always)]
    fn put(&mut self, v: T) {
        self.0.push(v);
    }

    #[inline(always)]
    fn put_all(&mut self, it: impl ExactSizeIterator<Item = T>) {
        self.0.extend(it);
    }
}

/// Overwrites a buffer of the final length from the start (writes past its end are dropped;
/// the caller checks the count).
struct Fill<'a, T> {
    s: &'a mut [T],
    j: usize,
}

impl<T> Sink<T> for Fill<'_, T> {
    #[inline(always)]
    fn put(&mut self, v: T) {
        if let Some(x) = self.s.get_mut(self.j) {
            *x = v;
        }
        self.j += 1;
    }

    #[inline(always)]
    fn put_all(&mut self, it: impl ExactSizeIterator<Item = T>) {
        let n = it.len();
        if let Some(d) = self.s.get_mut(self.j..self.j + n) {
            for (d, v) in d.iter_mut().zip(it) {
                *d = v;
            }
        }
        self.j += n;
    }
}

/// A variant of [`PatchList::walk`]: what is emitted for a live node and for a pending patch.
trait Emit {
    /// Emits live arena node `n` from output slot `o` (its position is written already);
    /// returns the number of slots emitted.
    fn node(&mut self, n: Node, o: u32, pos: &mut [u32]) -> u32;

    /// Emits pending patch `p` from output slot `o` (its original node's position is written
    /// already; this writes its new nodes'); returns the number of slots emitted.
    fn pending(&mut self, p: PendingPatch<'_>, o: u32, pos: &mut [u32]) -> u32;
}

/// The walk of [`PatchList::run`]: instructions and fixups, the node behind every slot when
/// asked (`record_src`), and the expansion of the jumps relaxation marked (`marks`, by node).
struct SlotEmit<'a, S> {
    out: S,
    fixups: &'a mut Vec<Fixup>,
    src: &'a mut Vec<SrcNode>,
    record_src: bool,
    marks: &'a [u8],
    arr: u32,
}

impl<S: Sink<Insn>> Emit for SlotEmit<'_, S> {
    #[inline(always)]
    fn node(&mut self, n: Node, o: u32, _pos: &mut [u32]) -> u32 {
        let sn = SrcNode { x: n.x, origin: n.origin, f: n.f };
        if self.marks.get(n.x as usize).is_some_and(|&m| m != 0) {
            let (head, mid) = relaxed_head(n.insn);
            self.out.put(head);
            let mut k = 1;
            if mid {
                self.out.put(Insn::new(GOTO, 0, 0, 1, 0));
                k += 1;
            }
            let gotol = Insn::new(GOTOL, 0, 0, 0, 0);
            self.out.put(gotol);
            self.fixups.push(n.fixup(o + k, gotol));
            if self.record_src {
                for _ in 0..=k {
                    self.src.push(sn);
                }
            }
            return k + 1;
        }
        self.out.put(n.insn);
        if n.f & F_TGT != 0 {
            self.fixups.push(n.fixup(o, n.insn));
        }
        if self.record_src {
            self.src.push(sn);
        }
        1
    }

    /// Slot by slot, each as the node it becomes when the log is flushed.
    fn pending(&mut self, p: PendingPatch<'_>, o: u32, pos: &mut [u32]) -> u32 {
        let mut at = o;
        let mut refs = p.refs.iter().copied();
        let n = p.slots.len();
        for (k, &insn) in p.slots.iter().enumerate() {
            let x = p.node(k, self.arr);
            if k > 0
                && let Some(w) = pos.get_mut(x as usize)
            {
                *w = pos::live(at);
            }
            let last = k + 1 == n;
            let (f, r) = if is_jump_class(&insn) { (F_TGT, refs.next().unwrap_or(NONE)) } else { (0, NONE) };
            let f = f | if last { F_TOUCHED } else { 0 };
            let origin = if last { Origin::Orig(p.x) } else { Origin::Child(p.x) }.word();
            at += self.node(Node { x, f, insn, r, origin }, at, pos);
        }
        at - o
    }
}

/// The walk of [`PatchList::run_aux`]: instructions and aux in one pass, backward jumps of
/// pending patches resolved on the spot, every other jump left to the fixups with a
/// placeholder aux.
struct AuxEmit<'a, A, H, S, T> {
    out: S,
    aux: T,
    hook: &'a mut H,
    prog_aux: &'a [A],
    fixups: &'a mut Vec<Fixup>,
    /// Jumps resolved in the walk.
    inline: usize,
    fast_calls: bool,
    arr: u32,
    orig_len: u32,
}

impl<A: Clone, H: AuxHook<A>, S: Sink<Insn>, T: Sink<A>> Emit for AuxEmit<'_, A, H, S, T> {
    #[inline(always)]
    fn node(&mut self, n: Node, o: u32, _pos: &mut [u32]) -> u32 {
        let (insn, f, org) = (n.insn, n.f, n.origin);
        self.out.put(insn);
        let prog_aux = self.prog_aux;
        if let Origin::Orig(s) = Origin::of(org) {
            // The identity of original slot `s`.
            let mut a = prog_aux[s as usize].clone();
            if f & (F_TOUCHED | F_TGT) == F_TOUCHED {
                self.hook.patched(&mut a, &insn);
            }
            self.aux.put(a);
        } else {
            let parent = Origin::of(org).slot().and_then(|s| prog_aux.get(s as usize));
            if f & F_TGT == 0 {
                self.aux.put(self.hook.new_slot(&insn, parent));
            } else if let Some(p) = parent.or(prog_aux.first()) {
                self.aux.put(p.clone());
            }
        }
        if f & F_TGT != 0 {
            self.fixups.push(Fixup { at: o, insn, x: n.x, r: n.r, origin: org, f });
        }
        1
    }

    /// Its slots are contiguous in the pool, its new nodes contiguous in the node space, and
    /// the parent aux is the same for every slot: a patch without jumps is streamed as slices.
    #[inline(always)]
    fn pending(&mut self, p: PendingPatch<'_>, o: u32, pos: &mut [u32]) -> u32 {
        let slots = p.slots;
        let n = slots.len() as u32;
        let base = self.arr + p.first_new;
        if let Some(w) = pos.get_mut(base as usize..(base + n).saturating_sub(1) as usize) {
            for (k, w) in w.iter_mut().enumerate() {
                *w = pos::live(o + 1 + k as u32);
            }
        }
        let prog_aux = self.prog_aux;
        let parent = &prog_aux[p.x as usize];
        let Some((last, init)) = slots.split_last() else { return 0 };
        if !p.refs.is_empty() {
            return self.pending_jumps(p, o, pos, parent);
        }
        // No jump-class slot: every slot is final as recorded.
        self.out.put_all(slots.iter().copied());
        let hook = &mut *self.hook;
        self.aux.put_all(init.iter().map(|insn| hook.new_slot(insn, Some(parent))));
        let mut a = parent.clone();
        self.hook.patched(&mut a, last);
        self.aux.put(a);
        n
    }
}

impl<A: Clone, H: AuxHook<A>, S: Sink<Insn>, T: Sink<A>> AuxEmit<'_, A, H, S, T> {
    /// A pending patch holding jump-class slots (out of the hot loop): each jump to an
    /// original node already walked is resolved here, any other goes to the fixups with a
    /// placeholder aux. Returns the number of slots emitted.
    #[inline(never)]
    fn pending_jumps(&mut self, p: PendingPatch<'_>, o: u32, pos: &[u32], parent: &A) -> u32 {
        let lx = p.x;
        let Some((last, init)) = p.slots.split_last() else { return 0 };
        let mut at = o;
        let mut refs = p.refs.iter().copied();
        for (k, insn) in init.iter().enumerate() {
            if is_jump_class(insn) {
                let r = refs.next().unwrap_or(NONE);
                if let Some(done) = backward(self.orig_len, pos, r, lx, at, insn, self.fast_calls) {
                    self.out.put(done);
                    self.aux.put(self.hook.new_slot(&done, Some(parent)));
                    self.inline += 1;
                } else {
                    let x = p.node(k, self.arr);
                    self.fixups.push(Fixup { at, insn: *insn, x, r, origin: Origin::Child(lx).word(), f: F_TGT });
                    self.out.put(*insn);
                    self.aux.put(parent.clone());
                }
            } else {
                self.out.put(*insn);
                self.aux.put(self.hook.new_slot(insn, Some(parent)));
            }
            at += 1;
        }
        // The last slot carries the identity (touched).
        let mut a = parent.clone();
        if is_jump_class(last) {
            let r = refs.next().unwrap_or(NONE);
            if let Some(done) = backward(self.orig_len, pos, r, lx, at, last, self.fast_calls) {
                self.out.put(done);
                self.hook.patched(&mut a, &done);
                self.inline += 1;
            } else {
                let x = p.node(init.len(), self.arr);
                self.fixups.push(Fixup { at, insn: *last, x, r, origin: lx, f: F_TGT | F_TOUCHED });
                self.out.put(*last);
            }
        } else {
            self.out.put(*last);
            self.hook.patched(&mut a, last);
        }
        self.aux.put(a);
        at + 1 - o
    }
}

/// The original slot whose identity a fixup's node carries (for errors).
fn orig_of(fx: &Fixup) -> Option<Slot> {
    let o = fx.origin;
    match Origin::of(o) {
        Origin::Orig(s) => Some(Slot(s as usize)),
        Origin::Child(_) | Origin::None => None,
    }
}

/// Relaxed form of a conditional jump: (first slot, has a `goto +1` in the middle).
fn relaxed_head(insn: Insn) -> (Insn, bool) {
    let class = insn.class();
    let op = insn.op();
    if (class == c::JMP || class == c::JMP32)
        && op != c::JCOND
        && let Some(inv) = Cond::from_code(op).and_then(Cond::invert)
    {
        let mut i = insn;
        i.code = (insn.code & !c::OP_MASK) | inv.code();
        i.off = 1;
        return (i, false);
    }
    let mut i = insn;
    i.off = 1;
    (i, true)
}

/// A jump-class slot of a pending patch of original node `lx`, emitted at `at`, whose
/// reference `r` is an original node at or before `lx`: that node's position is final
/// already (original nodes are walked in increasing order), so the slot is resolved in
/// the walk. `None` (resolve it with the fixups) for any other reference, and when the
/// delta does not fit (the fixup pass reports it, in order).
#[inline]
fn backward(orig_len: u32, pos: &[u32], r: u32, lx: u32, at: u32, insn: &Insn, fast_calls: bool) -> Option<Insn> {
    if r > lx || r >= orig_len {
        return None;
    }
    let (_, kind) = insn.target_field()?;
    if kind != TargetKind::Jump && !fast_calls {
        return None;
    }
    // At or before the slot being emitted, so before the end.
    let t = pos::slot(*pos.get(r as usize)?);
    let mut done = *insn;
    done.set_rel_target(i64::from(t) - i64::from(at) - 1).then_some(done)
}

const GOTOL: u8 = c::JMP32 | c::JA;
const GOTO: u8 = c::JMP | c::JA;

impl<'p> PatchList<'p> {
    /// Linearizes into a fresh [`Linearized`] (allocating; see [`PatchList::linearize_with`]).
    ///
    /// # Errors
    /// [`Error::JumpOutOfRange`], [`Error::TargetPastEnd`], [`Error::UnboundLabel`].
    #[doc(alias = "bpf_linearize_list_insn")]
    pub fn linearize(&self, opts: LinearizeOptions) -> Result<Linearized> {
        let mut ctx = PatchCtx::new();
        self.linearize_with(&mut ctx, opts)?;
        Ok(core::mem::take(&mut ctx.out))
    }

    /// Linearizes into `ctx.out`, reusing every buffer of `ctx`. The list is not modified and
    /// may be linearized again (or patched further).
    ///
    /// # Errors
    /// As [`PatchList::linearize`].
    pub fn linearize_with<'c>(&self, ctx: &'c mut PatchCtx, opts: LinearizeOptions) -> Result<&'c Linearized> {
        self.run(ctx, opts, false)?;
        Ok(&ctx.out)
    }

    /// The engine: walk, resolve, relax until stable; `record_src` fills `ctx.src`.
    pub(crate) fn run(&self, ctx: &mut PatchCtx, opts: LinearizeOptions, record_src: bool) -> Result<()> {
        let nodes = self.vnodes();
        ctx.out.stats = LinearizeStats { nodes, ..LinearizeStats::default() };
        ctx.relax_mark.clear();
        ctx.memo_ok = false;
        let mut relaxing = false;
        loop {
            ctx.out.stats.walks += 1;
            self.walk_slots(ctx, record_src, relaxing);
            let grew = self.resolve(ctx, opts)?;
            if !grew {
                break;
            }
            relaxing = true;
        }
        self.finish_map(ctx)?;
        Ok(())
    }

    /// The walk of [`PatchList::run`]: instructions, fixups and (with `record_src`) the node
    /// behind every slot; `relaxing` expands the jumps marked by the previous resolution.
    fn walk_slots(&self, ctx: &mut PatchCtx, record_src: bool, relaxing: bool) {
        self.size_pos(ctx);
        ctx.fixups.clear();
        ctx.src.clear();
        if record_src {
            ctx.src.reserve(self.live_slots);
        }
        let marks: &[u8] = if relaxing { &ctx.relax_mark } else { &[] };
        let arr = self.arr() as u32;
        let insns = &mut ctx.out.insns;
        let pos = &mut ctx.out.map.pos;
        let (fixups, src) = (&mut ctx.fixups, &mut ctx.src);
        let need = self.live_slots;
        // Without relaxation the length is known: a warm output is overwritten in place (no
        // capacity check per slot). Relaxation grows it: the walk appends.
        if !relaxing && insns.len() >= need {
            let mut e = SlotEmit { out: Fill { s: insns, j: 0 }, fixups, src, record_src, marks, arr };
            let o = self.walk(pos, &mut e);
            if o as usize == need {
                insns.truncate(need);
                return;
            }
            // (The fallback should the live count ever disagree with the walk.)
            e.fixups.clear();
            e.src.clear();
        }
        insns.clear();
        insns.reserve(need);
        let mut e = SlotEmit { out: Push(insns), fixups, src, record_src, marks, arr };
        self.walk(pos, &mut e);
    }

    /// The one walk over the list: every node in list order, a pending patch (I6) in place of
    /// its original node (pending patches come in the order of their original nodes, which is
    /// list order, so one cursor over the log serves the whole walk). It writes every node's
    /// position (a deleted node: the next slot emitted, flagged deleted; the end sentinel: the
    /// new length) and leaves what is emitted to `e`, the variant; returns the slots emitted.
    #[inline(always)]
    fn walk(&self, pos: &mut [u32], e: &mut impl Emit) -> u32 {
        let end = self.end();
        let mut o: u32 = 0;
        let mut pending = self.pending.iter();
        // The arrays as slices, once: the loop's stores cannot make the compiler reload them.
        let (flags, next, origins, tgts) = (&self.flags[..], &self.next[..], &self.origin[..], &self.tgt[..]);
        // The instructions: the program's, read in place, and the list's own (I7).
        let (orig, own, over, over_at) = (self.orig, &self.own[..], &self.over[..], &self.over_at[..]);
        let mut x = self.head;
        while x != end && x != NONE {
            let xi = x as usize;
            let f = flags[xi];
            x = next[xi];
            if f & F_DELETED != 0 {
                pos[xi] = pos::flagged(o, true);
                continue;
            }
            pos[xi] = pos::live(o);
            if f & F_LOGGED != 0
                && let Some(p) = pending.next()
            {
                o += e.pending(p, o, pos);
                continue;
            }
            let r = if f & F_TGT != 0 { tgts[xi] } else { NONE };
            let insn = node_insn(orig, own, over, over_at, f, xi);
            o += e.node(Node { x: xi as u32, f, insn, r, origin: origins[xi] }, o, pos);
        }
        if let Some(w) = pos.get_mut(end as usize) {
            *w = o;
        }
        o
    }

    /// The verification layer's engine without relaxation: one walk that emits instructions
    /// *and* aux, then one pass over the fixups, which also completes the aux of the slots
    /// they rewrite (so every hook call sees the slot's final instruction, once).
    ///
    /// `prog_aux` is the original program's aux (non-empty: a fixup slot's aux is first a
    /// clone of an existing record, replaced once the slot's instruction is final).
    pub(crate) fn run_aux<A: Clone, H: AuxHook<A>>(
        &self,
        ctx: &mut PatchCtx,
        prog_aux: &[A],
        hook: &mut H,
        aux: &mut Vec<A>,
    ) -> Result<()> {
        let nodes = self.vnodes();
        ctx.out.stats = LinearizeStats { nodes, walks: 1, ..LinearizeStats::default() };
        ctx.relax_mark.clear();
        ctx.memo_ok = false;
        let inline = self.walk_aux(ctx, prog_aux, hook, aux);
        // Without relaxation nothing moves after the walk: each fixup slot's aux is completed
        // as soon as its instruction is final.
        self.resolve_then(ctx, LinearizeOptions { relax: false }, |fx, insn| {
            let Some(a) = aux.get_mut(fx.at as usize) else { return };
            match Origin::of(fx.origin) {
                Origin::Orig(_) => {
                    if fx.f & F_TOUCHED != 0 {
                        hook.patched(a, insn);
                    }
                }
                o => *a = hook.new_slot(insn, o.slot().and_then(|s| prog_aux.get(s as usize))),
            }
        })?;
        ctx.out.stats.fixups += inline;
        self.finish_map(ctx)
    }

    /// Sizes `pos` for this list; a fresh table comes from the zeroing allocator (no memset:
    /// the walk writes every entry).
    fn size_pos(&self, ctx: &mut PatchCtx) {
        let nodes = self.vnodes();
        let pos = &mut ctx.out.map.pos;
        if pos.capacity() < nodes {
            *pos = vec![0; nodes];
        } else if pos.len() < nodes {
            pos.resize(nodes, 0);
        } else {
            pos.truncate(nodes);
        }
    }

    /// The walk of [`PatchList::run_aux`]: positions, instructions, aux (fixup slots get a
    /// placeholder record and are listed in `ctx.fixups`); returns the jumps resolved in the walk.
    fn walk_aux<A: Clone, H: AuxHook<A>>(
        &self,
        ctx: &mut PatchCtx,
        prog_aux: &[A],
        hook: &mut H,
        aux: &mut Vec<A>,
    ) -> usize {
        self.size_pos(ctx);
        ctx.fixups.clear();
        let need = self.live_slots;
        let (fast_calls, arr, orig_len) = (self.cgroups.is_empty(), self.arr() as u32, self.end());
        let insns = &mut ctx.out.insns;
        let pos = &mut ctx.out.map.pos;
        let fixups = &mut ctx.fixups;
        // A warm output of the right length (the same program again) is overwritten in place:
        // no length or capacity bookkeeping per slot. Otherwise the walk appends.
        if insns.len() == need && aux.len() == need {
            let (out, aux) = (Fill { s: &mut insns[..], j: 0 }, Fill { s: &mut aux[..], j: 0 });
            let mut e = AuxEmit { out, aux, hook: &mut *hook, prog_aux, fixups, inline: 0, fast_calls, arr, orig_len };
            if self.walk(pos, &mut e) as usize == need {
                return e.inline;
            }
            // (The fallback should the live count ever disagree with the walk.)
            e.fixups.clear();
        }
        insns.clear();
        insns.reserve(need);
        aux.clear();
        aux.reserve(need);
        let mut e =
            AuxEmit { out: Push(insns), aux: Push(aux), hook, prog_aux, fixups, inline: 0, fast_calls, arr, orig_len };
        self.walk(pos, &mut e);
        e.inline
    }

    /// Resolves all fixups; returns whether a conditional jump was newly marked for expansion.
    fn resolve(&self, ctx: &mut PatchCtx, opts: LinearizeOptions) -> Result<bool> {
        self.resolve_then(ctx, opts, |_, _| {})
    }

    /// [`PatchList::resolve`], calling `done` on each fixup whose slot is final (its target
    /// field written, in place), while the slot is at hand.
    #[inline]
    fn resolve_then(
        &self,
        ctx: &mut PatchCtx,
        opts: LinearizeOptions,
        mut done: impl FnMut(&Fixup, &Insn),
    ) -> Result<bool> {
        let new_len = ctx.out.map.pos[self.end() as usize];
        let fast_calls = self.cgroups.is_empty();
        let mut grew = false;
        ctx.out.stats.relaxed_goto = 0;
        ctx.out.stats.fixups = ctx.fixups.len();
        let fixups = core::mem::take(&mut ctx.fixups);
        let mut result = Ok(());
        for fx in &fixups {
            let (at, x, r, insn) = (fx.at, fx.x, fx.r, fx.insn);
            let Some((field, kind)) = insn.target_field() else {
                done(fx, &insn);
                continue;
            };
            let word = match self.ref_word(ctx, r, kind, fast_calls) {
                Ok(w) => w,
                Err(label) => {
                    result = Err(Error::UnboundLabel { at: Slot(at as usize), label });
                    break;
                }
            };
            let t = pos::slot(word);
            if t >= new_len {
                result = Err(Error::TargetPastEnd { at: Slot(at as usize), orig: orig_of(fx) });
                break;
            }
            let delta = i64::from(t) - i64::from(at) - 1;
            let mut resolved = insn;
            if resolved.set_rel_target(delta) {
                // Written only: the slot's instruction came with the fixup.
                if let Some(slot) = ctx.out.insns.get_mut(at as usize) {
                    *slot = resolved;
                }
                done(fx, &resolved);
                continue;
            }
            if opts.relax && field == TargetField::Off {
                if insn.code == GOTO {
                    // Same size: rewrite in place (positions are < 2^31, so `delta` fits 32 bits).
                    if let Some(slot) = ctx.out.insns.get_mut(at as usize) {
                        *slot = Insn::new(GOTOL, 0, 0, 0, i32::try_from(delta).unwrap_or(i32::MAX));
                    }
                    ctx.out.stats.relaxed_goto += 1;
                    continue;
                }
                // (`may_goto`, `JMP | JCOND`, is a conditional jump here too.)
                if insn.is_cond_jump() {
                    let nodes = self.vnodes();
                    if ctx.relax_mark.len() < nodes {
                        ctx.relax_mark.resize(nodes, 0);
                    }
                    if ctx.relax_mark[x as usize] == 0 {
                        ctx.relax_mark[x as usize] = 1;
                        ctx.out.stats.relaxed_cond += 1;
                        grew = true;
                    }
                    continue;
                }
            }
            result = Err(Error::JumpOutOfRange { at: Slot(at as usize), orig: orig_of(fx), delta });
            break;
        }
        ctx.fixups = fixups;
        result.map(|()| grew)
    }

    /// Position word of a reference used by an instruction of `kind`; `Err(label)` if unbound.
    #[inline]
    fn ref_word(
        &self,
        ctx: &mut PatchCtx,
        r: u32,
        kind: TargetKind,
        fast_calls: bool,
    ) -> core::result::Result<u32, crate::Label> {
        let call = kind != TargetKind::Jump;
        let h = match Ref::of(r) {
            Ref::Label(l) => {
                let (n, ch) = self.labels.get(l as usize).copied().unwrap_or((NONE, NONE));
                if n == NONE {
                    return Err(crate::Label(l));
                }
                if call { ch } else { n }
            }
            Ref::Node(_) | Ref::Group(_) => r,
        };
        Ok(self.handle_word(ctx, h, call, fast_calls))
    }

    /// Position word of a handle: jumps use the node's walk position, calls its call group.
    #[inline]
    fn handle_word(&self, ctx: &mut PatchCtx, h: u32, call: bool, fast_calls: bool) -> u32 {
        if Ref::group(h).is_none() && (!call || fast_calls) {
            return ctx.out.map.pos.get(h as usize).copied().unwrap_or(pos::flagged(0, true));
        }
        let (node, crossed) = self.call_node(ctx, h);
        let w = ctx.out.map.pos.get(node as usize).copied().unwrap_or(0);
        pos::flagged(w, crossed || pos::is_deleted(w))
    }

    /// Resolves a call handle to its live node (or the sentinel), memoized, iterative.
    /// Returns whether the path crossed a deletion.
    pub(crate) fn call_node(&self, ctx: &mut PatchCtx, start: u32) -> (u32, bool) {
        if !ctx.memo_ok {
            ctx.memo_nodes.clear();
            ctx.memo_nodes.resize(self.vnodes(), NONE);
            ctx.memo_groups.clear();
            ctx.memo_groups.resize(self.cgroups.len(), NONE);
            ctx.memo_ok = true;
        }
        let memo = |ctx: &PatchCtx, h: u32| -> Option<(u32, bool)> {
            let w = match Ref::group(h) {
                Some(g) => ctx.memo_groups.get(g as usize),
                None => ctx.memo_nodes.get(h as usize),
            };
            w.copied().filter(|&w| w != NONE).map(|w| (pos::slot(w), pos::is_deleted(w)))
        };
        let remember = |ctx: &mut PatchCtx, h: u32, (root, crossed): (u32, bool)| {
            let slot = match Ref::group(h) {
                Some(g) => ctx.memo_groups.get_mut(g as usize),
                None => ctx.memo_nodes.get_mut(h as usize),
            };
            if let Some(w) = slot {
                *w = pos::flagged(root, crossed);
            }
        };
        ctx.chain.clear();
        let mut h = start;
        let limit = self.arr() + self.cgroups.len() + 2;
        let (root, mut crossed) = loop {
            if let Some(r) = memo(ctx, h) {
                break r;
            }
            if ctx.chain.len() > limit {
                // Unreachable by invariant I4 (acyclic); stop at the sentinel rather than spin.
                break (self.end(), true);
            }
            let (next, edge_crossed) = if let Some(g) = Ref::group(h) {
                let g = self.cgroups[g as usize];
                if g.parent != NONE {
                    (g.parent, g.crossed)
                } else if self.flags[g.node as usize] & F_DELETED != 0 {
                    (self.cur_handle(self.next[g.node as usize]), true)
                } else {
                    remember(ctx, h, (g.node, false));
                    break (g.node, false);
                }
            } else {
                let f = self.flags[h as usize];
                if f & F_CMOVED != 0 {
                    (self.cmoved.get(&h).copied().unwrap_or(h), false)
                } else if f & F_DELETED != 0 {
                    let snap = self.origin[h as usize];
                    (if snap != NONE { snap } else { self.cur_handle(self.next[h as usize]) }, true)
                } else {
                    remember(ctx, h, (h, false));
                    break (h, false);
                }
            };
            ctx.chain.push((h, edge_crossed));
            h = next;
        };
        let chain = core::mem::take(&mut ctx.chain);
        for &(hh, e) in chain.iter().rev() {
            crossed |= e;
            remember(ctx, hh, (root, crossed));
        }
        ctx.chain = chain;
        (root, crossed)
    }

    /// Fills the map's per-original-slot tables once positions are final.
    fn finish_map(&self, ctx: &mut PatchCtx) -> Result<()> {
        let n = self.orig_len();
        let fast = self.cgroups.is_empty();
        ctx.out.map.orig_len = self.end();
        ctx.out.map.new_len = ctx.out.map.pos[self.end() as usize];
        ctx.out.map.orig_node.clear();
        ctx.out.map.orig_node.extend_from_slice(&self.orig_node);
        ctx.out.map.cstart.clear();
        if !fast {
            ctx.out.map.cstart.reserve(n);
            for i in 0..n as u32 {
                let w = self.handle_word(ctx, i, true, false);
                ctx.out.map.cstart.push(w);
            }
        }
        ctx.out.map.subprog_starts.clear();
        for k in 0..self.subprogs.len() {
            let w = self.handle_word(ctx, self.subprogs[k], true, fast);
            ctx.out.map.subprog_starts.push(w);
        }
        ctx.out.stats.emitted = ctx.out.insns.len();
        Ok(())
    }
}
