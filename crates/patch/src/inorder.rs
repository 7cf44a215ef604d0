//! The in-order engine: requests in ascending original-slot order written straight into the
//! output, the shape of every kernel pass (blinding, fixups, instrumentation).
//!
//! [`InOrder`] borrows the original [`Program`] (read in place, never copied) and a reused
//! [`PatchedProgram`]. Between requests it streams the untouched original slots into the
//! output (`memcpy` of instructions and aux); a request writes its slots after them. At
//! [`InOrder::finish`] one pass over the recorded fixups writes every jump, call and
//! `PSEUDO_FUNC` field, and the side tables are remapped by the list's own table pass through
//! an [`OffsetMap`] filled exactly as [`PatchList`] fills it. The result, errors included, is
//! [`PatchList`]'s on the same requests (`tests/inorder.rs` checks this on random programs
//! and requests, and `fuzz/fuzz_targets/patch_inorder.rs` under libFuzzer).
//!
//! # Invariants
//!
//! - **S1 (stream)**: original slots `0..next` are *written*: each is in the output (copied,
//!   or slot 0 of its patch), or deleted; slots `next..` are untouched, and every request
//!   names a slot `>= next` ([`Error::OutOfOrder`] otherwise). So what the list would do to
//!   an untouched node is all that can happen, and every position in `0..next` is final.
//! - **S2 (node ids)**: a patch of `len` slots owns the `len - 1` node ids after those of
//!   earlier patches, starting at `n + 1` (`n` original nodes and the end sentinel), exactly
//!   the ids [`PatchList::patch`] allocates for the same requests; its slot 0 lives in the
//!   patched slot's node. `pos` (the map's per-node positions) has its original entries
//!   `0..=n` written by index as the stream passes them and its new entries pushed in id order,
//!   which is output order.
//! - **S3 (references)**: every reference a request makes is a node (no labels, no call
//!   groups: the in-order engine has no skipping prologue, so a call lands where a jump to the
//!   same node lands, [`PatchList`]'s fast case). Original instructions keep their original
//!   target node; buffer targets resolve as [`PatchList`]'s resolution does for an untouched
//!   node: slot `k` is node `x` or a new id, one past the end is the original node after the
//!   patched instruction (both slots of an ld_imm64), `OrigTarget` the patched instruction's
//!   target, `Orig(s)` node `s` (refused when `s` was deleted), `Subprog` its start's node.
//!   [`Target::Node`] and [`Target::Label`] are refused ([`Error::InOrderUnsupported`]).
//! - **S4 (fixups)**: every output slot whose instruction has a target field has one fixup,
//!   recorded in output order; the fixup pass resolves each through the final `pos`, so the
//!   first failing one is the first the list's walk would report.
//! - **S5 (identity and aux)**: as the list's I5: a patched slot's aux moves to the last
//!   instruction of its buffer through [`AuxHook::patched`], every other buffer slot gets
//!   [`AuxHook::new_slot`] with the patched slot's aux as parent; a slot with a target gets a
//!   placeholder completed once its field is final (the hook always sees final instructions).
//! - **S6 (errors)**: a request is validated completely before anything is written (the
//!   stream up to it included), so a refused request changes nothing. Errors the list reports
//!   when it is built (an invalid program) come from [`InOrder::new`]; errors it reports when
//!   it linearizes (the tables, aux length, jump ranges) come from [`InOrder::finish`].
//!
//! Relaxation ([`crate::LinearizeOptions::relax`]) is not offered: an overflowing jump is
//! [`Error::JumpOutOfRange`], as the list without relaxation; a caller that wants relaxed
//! jumps uses [`PatchList`].

// Node ids and positions are below MAX_NODES = 2^30 (checked before a request is written), so
// the usize <-> u32 conversions in this module cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use crate::append::extend_small;
use crate::buf::{PatchBuf, Target};
use crate::error::{Error, Result};
use crate::handle::pos;
use crate::ids::{NodeId, SubprogId};
use crate::linearize::LinearizeStats;
use crate::list::{MAX_NODES, NONE, Patched, is_jump_code};
use crate::tables::{AuxHook, PatchedProgram, Program, Shape, TableScratch, check_shape, remap_tables};
#[cfg(doc)]
use crate::{OffsetMap, PatchList};
use bpfpatch_insn::{Insn, Slot, TargetKind};

/// [`KIND`] bit: a jump-class opcode (`JMP`, `JMP32`).
const JUMP: u8 = 1;
/// [`KIND`] bit: the ld_imm64 opcode.
const LD_IMM64: u8 = 2;

/// Per opcode, its [`JUMP`] and [`LD_IMM64`] bits: the engine classifies a slot (the program's
/// in [`InOrder::new`], a buffer's in [`InOrder::plain`] and `resolve`) with one load.
static KIND: [u8; 256] = {
    use bpfpatch_insn::opcode as c;
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        if is_jump_code(i as u8) {
            t[i] |= JUMP;
        }
        if i as u8 == c::LD_IMM64 {
            t[i] |= LD_IMM64;
        }
        i += 1;
    }
    t
};

/// Resolution scratch: an ld_imm64 second slot of the buffer.
const TAIL: u32 = u32::MAX - 1;

/// What completing a fixup does to its slot's aux (S5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FixKind {
    /// An untouched original instruction: its aux is the original's, as copied.
    Original,
    /// A new slot: `new_slot(final insn, parent)`.
    Child,
    /// The last instruction of a patch, carrying the patched slot's identity: `patched`.
    Identity,
}

/// An output slot whose target field the fixup pass writes (S4).
#[derive(Clone, Copy, Debug)]
struct Fix {
    /// Output slot.
    at: u32,
    /// The node it references (S3).
    node: u32,
    /// The original slot behind it (its own, or the patched one's).
    parent: u32,
    kind: FixKind,
}

impl Fix {
    /// The original slot an error names: the instruction's own identity, if it has one.
    fn orig(&self) -> Option<Slot> {
        (self.kind != FixKind::Child).then_some(Slot(self.parent as usize))
    }
}

/// Reusable scratch of [`InOrder`] (regalloc2's `run_with_ctx` model): keep one and pass it to
/// every run so that warm runs allocate nothing.
#[derive(Clone, Debug, Default)]
pub struct InOrderCtx {
    /// Bitset of the original ld_imm64 second slots.
    tails: Vec<u64>,
    /// Original slots holding a reference, ascending, with their target slot.
    targets: Vec<(u32, u32)>,
    /// Subprogram starts (the table's, or computed as the list computes them).
    starts: Vec<u32>,
    /// Fixups, in output order.
    fixups: Vec<Fix>,
    /// One resolved reference per buffer slot of the request being validated.
    refs: Vec<u32>,
    tables: TableScratch,
}

impl InOrderCtx {
    /// An empty context.
    #[must_use]
    pub fn new() -> InOrderCtx {
        InOrderCtx::default()
    }

    fn is_tail(&self, s: usize) -> bool {
        self.tails.get(s / 64).is_some_and(|w| w >> (s % 64) & 1 != 0)
    }
}

/// The in-order engine (crate documentation, "In-order engine"): requests in ascending
/// original-slot order, written straight into a reused [`PatchedProgram`]; the result, errors
/// included, is [`PatchList`]'s on the same requests.
///
/// Invariants (S1-S6, stated in full in `inorder.rs`): the slots before the first one open to
/// requests are written (streamed, patched or deleted) and final; new node ids are the list's;
/// every reference is a node; every slot with a target field has one fixup, in output order;
/// aux follows the list's rule; a refused request writes nothing.
///
/// ```
/// use bpfpatch_insn::{Insn, Slot, opcode as c};
/// use bpfpatch_patch::*;
/// let jeq = |d: u8, k: i32, off: i16| Insn::new(c::JMP | c::JEQ | c::K, d, 0, off, k);
/// let mov = |d: u8, k: i32| Insn::new(c::ALU64 | c::MOV | c::K, d, 0, 0, k);
/// let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
/// let prog = Program::without_aux(vec![jeq(1, 5, 1), mov(0, 0), exit], SideTables::default());
/// // Blinding of `if r1 == 5 goto +1`, the jcc keeping its original target.
/// let mut b = PatchBuf::new();
/// b.push(mov(11, 5 ^ 0x1234))
///     .push(Insn::new(c::ALU64 | c::XOR | c::K, 11, 0, 0, 0x1234))
///     .jump_to(Insn::new(c::JMP | c::JEQ | c::X, 1, 11, 0, 0), Target::OrigTarget);
/// let (mut ctx, mut out, mut hook) = (InOrderCtx::new(), PatchedProgram::default(), NoAux);
/// let mut e = InOrder::new(&mut ctx, &prog, &mut hook, &mut out)?;
/// e.patch(Slot(0), &b)?;
/// assert_eq!(e.patch(Slot(0), &b), Err(Error::OutOfOrder { slot: Slot(0), next: Slot(1) }));
/// e.finish()?;
/// assert_eq!(out.program.insns[2].abs_target(2), Some(4)); // the exit
/// assert_eq!(out.map.insn(Slot(0)), Some(Slot(2)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct InOrder<'a, A, H> {
    prog: &'a Program<A>,
    hook: &'a mut H,
    ctx: &'a mut InOrderCtx,
    out: &'a mut PatchedProgram<A>,
    /// Original slots: the program's length.
    n: u32,
    /// The first original slot not written (S1).
    next: u32,
    /// Cursor in `ctx.targets`: the first entry at or after `next`.
    tcur: usize,
    /// Node ids allocated beyond the sentinel (S2).
    new_nodes: u32,
    /// Whether the program has one aux record per slot (otherwise aux is not written and
    /// `finish` reports [`Error::AuxLength`], as the list's linearization does).
    aux: bool,
    /// The error the list would report when linearizing (S6).
    deferred: Option<Error>,
    /// Requests written by the fast path ([`InOrder::plain`]).
    plain: usize,
}

/// Appends the positions `o + 1 .. o + len` (a buffer's new nodes, written at `o`): one
/// fixed-size copy for the lengths a pass writes most, pushes after one reservation beyond
/// (`extend` over the range was an out-of-line call per buffer: +15M instructions per
/// `bpfpatch bench` run on `rand-ld-dw`, whose buffers have 6 slots).
#[inline(always)]
fn new_positions(p: &mut Vec<u32>, o: u32, len: usize) {
    let live = |k: u32| pos::live(o + k);
    match len {
        0 | 1 => {}
        2 => p.push(live(1)),
        3 => p.extend_from_slice(&[live(1), live(2)]),
        4 => p.extend_from_slice(&[live(1), live(2), live(3)]),
        _ => {
            p.reserve(len - 1);
            for k in 1..len as u32 {
                p.push(live(k));
            }
        }
    }
}

/// `at + rel + 1`, the absolute target of a PC-relative field at `at` (saturating).
fn abs(at: usize, rel: i64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX).saturating_add(rel).saturating_add(1)
}

impl<'a, A: Clone, H: AuxHook<A>> InOrder<'a, A, H> {
    /// Starts the in-order patching of `prog` into `out` (its buffers are cleared and reused),
    /// with `ctx`'s scratch and `hook` for new slots' aux. Post (S1, S2): nothing written,
    /// `next = 0`, no new node.
    ///
    /// # Errors
    /// What [`PatchList::for_program`] reports for `prog`: a target outside the program or
    /// into an ld_imm64 second slot, a truncated ld_imm64, an invalid subprogram table, a
    /// program above [`MAX_NODES`].
    pub fn new(
        ctx: &'a mut InOrderCtx,
        prog: &'a Program<A>,
        hook: &'a mut H,
        out: &'a mut PatchedProgram<A>,
    ) -> Result<InOrder<'a, A, H>> {
        let insns = &prog.insns;
        let n = insns.len();
        if n + 1 > MAX_NODES {
            return Err(Error::TooLarge { nodes: n + 1, limit: MAX_NODES });
        }
        // Pass 1 (the list's build, both passes): ld_imm64 second slots, and the slots that
        // hold a reference.
        ctx.tails.clear();
        ctx.tails.resize(n / 64 + 1, 0);
        ctx.targets.clear();
        let mut i = 0;
        while i < n {
            let insn = &insns[i];
            // Most slots are neither: one table load each.
            let kind = KIND[insn.code as usize];
            if kind == 0 {
                i += 1;
                continue;
            }
            if kind & LD_IMM64 != 0 {
                if i + 1 >= n {
                    return Err(Error::TruncatedLdImm64 { slot: Slot(i) });
                }
                ctx.tails[(i + 1) / 64] |= 1 << ((i + 1) % 64);
                if insn.target_field().is_some() {
                    ctx.targets.push((i as u32, 0));
                }
                i += 2;
                continue;
            }
            if insn.target_field().is_some() {
                ctx.targets.push((i as u32, 0));
            }
            i += 1;
        }
        // Pass 2, over the references only: inside the program, off second slots.
        let from_table = !prog.tables.subprogs.is_empty();
        ctx.starts.clear();
        for k in 0..ctx.targets.len() {
            let s = ctx.targets[k].0 as usize;
            let insn = &insns[s];
            let t = abs(s, insn.rel_target().unwrap_or(0));
            let Some(tu) = usize::try_from(t).ok().filter(|&u| u < n) else {
                return Err(Error::OrigTargetOutOfRange { slot: Slot(s), target: t, len: n });
            };
            if ctx.is_tail(tu) {
                return Err(Error::OrigTargetIntoLdImm64 { slot: Slot(s), target: tu });
            }
            ctx.targets[k].1 = tu as u32;
            if !from_table && matches!(insn.target_field(), Some((_, TargetKind::Call | TargetKind::FuncRef))) {
                ctx.starts.push(tu as u32);
            }
        }
        if from_table {
            let s = &prog.tables.subprogs;
            for (k, sp) in s.iter().enumerate() {
                let st = sp.start;
                let ok = (k == 0 && st == 0 || k > 0 && st > s[k - 1].start)
                    && (st as usize) < n
                    && !ctx.is_tail(st as usize);
                if !ok {
                    return Err(Error::BadSubprogStart { index: k, start: st as usize });
                }
                ctx.starts.push(st);
            }
        } else if n > 0 {
            ctx.starts.push(0);
            ctx.starts.sort_unstable();
            ctx.starts.dedup();
        }
        let deferred = {
            let c = &*ctx;
            let tail = |s: usize| c.is_tail(s);
            let shape = Shape { n, tail, subprogs: &c.starts, orig_subprogs: c.starts.len() };
            check_shape(&shape, prog).err()
        };
        ctx.fixups.clear();
        // The output: cleared, capacity kept. `pos` holds the original nodes and the sentinel
        // by index (every entry is written before `finish` reads it, S1), new nodes pushed.
        let o = &mut out.program;
        o.insns.clear();
        o.insns.reserve(n);
        o.aux.clear();
        let aux = prog.aux.len() == n;
        if aux {
            o.aux.reserve(n);
        }
        let p = &mut out.map.pos;
        if p.capacity() < n + 1 {
            *p = vec![0; n + 1];
        } else if p.len() < n + 1 {
            p.resize(n + 1, 0);
        } else {
            p.truncate(n + 1);
        }
        out.map.orig_node.clear();
        out.map.orig_node.reserve(n);
        Ok(InOrder { prog, hook, ctx, out, n: n as u32, next: 0, tcur: 0, new_nodes: 0, aux, deferred, plain: 0 })
    }

    /// The first original slot still open to requests.
    #[must_use]
    pub fn next_slot(&self) -> Slot {
        Slot(self.next as usize)
    }

    /// How many accepted patches took the fast path: buffers of 1 to 64 slots without
    /// ld_imm64 whose only references are jumps to [`Target::OrigTarget`] of a patched jump
    /// (blinding, most guards). The others are resolved slot by slot, with the same result; a
    /// pass whose requests never take the fast path pays for that.
    #[must_use]
    pub fn plain_patches(&self) -> usize {
        self.plain
    }

    /// The errors of the list's `node_of(slot)`: outside the program, an ld_imm64 second slot.
    fn node_of(&self, slot: Slot) -> Result<u32> {
        if slot.0 >= self.n as usize {
            return Err(Error::NoSuchNode { node: NodeId::of_slot(slot) });
        }
        if self.ctx.is_tail(slot.0) {
            return Err(Error::LdImm64Tail { node: NodeId::of_slot(slot) });
        }
        Ok(slot.0 as u32)
    }

    /// Whether original node `x` is deleted: written (S1) with a deleted position.
    fn deleted(&self, x: u32) -> bool {
        x < self.next && self.out.map.pos.get(x as usize).is_some_and(|&w| pos::is_deleted(w))
    }

    /// The list's `live_insn` on an original node: [`Error::NodeDeleted`].
    fn live(&self, x: u32) -> Result<u32> {
        if self.deleted(x) {
            return Err(Error::NodeDeleted { node: NodeId(x) });
        }
        Ok(x)
    }

    /// [`InOrder::node_of`] and [`InOrder::live`], then the order (S1): `slot` is not written yet.
    fn check_slot(&self, slot: Slot) -> Result<u32> {
        let x = self.live(self.node_of(slot)?)?;
        if x < self.next {
            return Err(Error::OutOfOrder { slot, next: Slot(self.next as usize) });
        }
        Ok(x)
    }

    /// Slots of the untouched instruction at `x` (2 for an ld_imm64).
    fn width(&self, x: u32) -> u32 {
        if self.prog.insns[x as usize].is_ld_imm64() { 2 } else { 1 }
    }

    /// Streams the untouched original slots `next..end` into the output (S1): instructions and
    /// aux copied, positions and identities written, their references recorded as fixups
    /// (S4). Post: `next == end`.
    #[inline]
    fn stream_to(&mut self, end: u32) {
        let (a, b) = (self.next as usize, end as usize);
        if a >= b {
            return;
        }
        let out = &mut *self.out;
        let o = out.program.insns.len() as u32;
        // Runs between two patched slots are short in a pass: no `memmove` call for them.
        extend_small(&mut out.program.insns, &self.prog.insns[a..b]);
        if self.aux {
            extend_small(&mut out.program.aux, &self.prog.aux[a..b]);
        }
        if let Some(p) = out.map.pos.get_mut(a..b) {
            for (k, w) in p.iter_mut().enumerate() {
                *w = pos::live(o + k as u32);
            }
        }
        out.map.orig_node.extend(self.next..end);
        let ctx = &mut *self.ctx;
        let (t, fixups) = (&ctx.targets, &mut ctx.fixups);
        let mut c = self.tcur;
        while let Some(&(s, node)) = t.get(c) {
            if s >= end {
                break;
            }
            fixups.push(Fix { at: o + (s - self.next), node, parent: s, kind: FixKind::Original });
            c += 1;
        }
        self.tcur = c;
        self.next = end;
    }

    /// Marks original slots `next..end` written without output (a patched ld_imm64's second
    /// slot, a deletion): their position is the next slot emitted, flagged deleted (the list's
    /// walk). Post: `next == end`, the cursor past their references.
    fn skip_to(&mut self, end: u32) {
        let o = self.out.program.insns.len() as u32;
        for s in self.next..end {
            if let Some(w) = self.out.map.pos.get_mut(s as usize) {
                *w = pos::flagged(o, true);
            }
            self.out.map.orig_node.push(s);
        }
        while self.ctx.targets.get(self.tcur).is_some_and(|&(s, _)| s < end) {
            self.tcur += 1;
        }
        self.next = end;
    }

    /// Replaces original slot `slot`'s instruction (both slots of an ld_imm64) by `buf`, as
    /// [`PatchList::patch`] on its node: everything that reached it reaches `buf[0]`, its
    /// identity moves to the last instruction of `buf`. Returns the nodes the list would
    /// return. Post (S1-S5): the slots before `slot` are streamed, the buffer's slots written
    /// after them, `next` is past the instruction.
    ///
    /// # Errors
    /// [`Error::OutOfOrder`], [`Error::InOrderUnsupported`] (a [`Target::Node`] or
    /// [`Target::Label`]), or what [`PatchList::patch`] reports for the same request; nothing
    /// is written (S6).
    #[inline]
    pub fn patch(&mut self, slot: Slot, buf: &PatchBuf) -> Result<Patched> {
        let x = self.check_slot(slot)?;
        let len = buf.len();
        let vnodes = self.n as usize + 1 + self.new_nodes as usize;
        if vnodes + len > MAX_NODES {
            return Err(Error::TooLarge { nodes: vnodes + len, limit: MAX_NODES });
        }
        let w = self.width(x);
        let base = self.n + 1 + self.new_nodes;
        let node_of = |k: usize| if k == 0 { x } else { base + k as u32 - 1 };
        // The node of the buffer's last instruction, which takes the identity (S5).
        // The plain buffers of 1 to 4 slots are classified and written unrolled.
        let plain = match buf.insns.as_slice() {
            [a] => self.plain_n(x, &[*a], buf),
            [a, b] => self.plain_n(x, &[*a, *b], buf),
            [a, b, c] => self.plain_n(x, &[*a, *b, *c], buf),
            [a, b, c, d] => self.plain_n(x, &[*a, *b, *c, *d], buf),
            insns => self.plain(x, buf).map(|t| self.write_plain(x, insns, t)).is_some(),
        };
        let orig = if plain {
            self.plain += 1;
            node_of(len - 1)
        } else {
            self.resolve(x, w, buf)?;
            // Validated: write (S6).
            self.write(x, buf);
            let tail_last = len >= 2 && buf.insns[len - 2].is_ld_imm64() && self.ctx.refs.get(len - 1) == Some(&TAIL);
            node_of(if tail_last { len - 2 } else { len - 1 })
        };
        self.new_nodes += len as u32 - 1;
        self.next = x + 1;
        if w == 1 {
            // The cursor is at the first reference at or after `x` (`stream_to`).
            if self.ctx.targets.get(self.tcur).is_some_and(|&(s, _)| s == x) {
                self.tcur += 1;
            }
        } else {
            // An ld_imm64's second slot goes with it (the list deletes it).
            self.skip_to(x + w);
        }
        Ok(Patched { first: NodeId(x), last: NodeId(node_of(len - 1)), orig: NodeId(orig), len: len as u32 })
    }

    /// The common case of a pass (blinding, instrumentation): a buffer of 1 to 64 slots
    /// without ld_imm64 whose only references are jumps to [`Target::OrigTarget`] of a
    /// patched jump. Returns the patched instruction's target node (`NONE` if no slot uses
    /// it) and the mask of the jump slots; `None` for anything else (the general path decides,
    /// errors included). Such a buffer cannot be refused.
    #[inline]
    fn plain(&self, x: u32, buf: &PatchBuf) -> Option<(u32, u64)> {
        let len = buf.len();
        if len == 0 || len > 64 {
            return None;
        }
        // One table load per slot: which are jumps, whether any is an ld_imm64.
        let (mut mask, mut any) = (0u64, 0u8);
        for (k, insn) in buf.insns.iter().enumerate() {
            let kind = KIND[insn.code as usize];
            any |= kind;
            mask |= u64::from(kind & JUMP) << k;
        }
        self.plain_targets(x, buf, mask, any)
    }

    /// [`InOrder::plain`] on a buffer of `L` slots, unrolled; writes it when it is plain
    /// ([`InOrder::write_plain`], unrolled too) and says so.
    #[inline(always)]
    fn plain_n<const L: usize>(&mut self, x: u32, insns: &[Insn; L], buf: &PatchBuf) -> bool {
        // `plain`'s loop over an array. Not a shared helper: one called from both changed how
        // the slice path inlined, +10.7M instructions per `bpfpatch bench` run on `rand-ld-dw`.
        let (mut mask, mut any) = (0u64, 0u8);
        for (k, insn) in insns.iter().enumerate() {
            let kind = KIND[insn.code as usize];
            any |= kind;
            mask |= u64::from(kind & JUMP) << k;
        }
        match self.plain_targets(x, buf, mask, any) {
            Some(t) => {
                self.write_plain(x, insns, t);
                true
            }
            None => false,
        }
    }

    /// The rest of [`InOrder::plain`], given the buffer's jump slots (`mask`) and the union of
    /// its [`KIND`] bits (`any`).
    #[inline(always)]
    fn plain_targets(&self, x: u32, buf: &PatchBuf, mask: u64, any: u8) -> Option<(u32, u64)> {
        if any & LD_IMM64 != 0 {
            return None;
        }
        // An explicit target is only allowed on a jump.
        let explicit = buf.targets.len().min(buf.len());
        for (k, t) in buf.targets[..explicit].iter().enumerate() {
            if t.is_some() && mask >> k & 1 == 0 {
                return None;
            }
        }
        if mask == 0 {
            return Some((NONE, 0));
        }
        let orig = &self.prog.insns[x as usize];
        if !matches!(orig.target_field(), Some((_, TargetKind::Jump))) {
            return None;
        }
        let mut m = mask;
        while m != 0 {
            let k = m.trailing_zeros() as usize;
            m &= m - 1;
            let ok = buf.target(k) == Some(Target::OrigTarget)
                && matches!(buf.insns[k].target_field(), Some((_, TargetKind::Jump)));
            if !ok {
                return None;
            }
        }
        // Inside the program (checked by `new`).
        Some((orig.abs_target(x as usize).and_then(|t| u32::try_from(t).ok()).unwrap_or(NONE), mask))
    }

    /// Writes a buffer [`InOrder::plain`] accepted, whose jumps (`mask`) go to node `t`
    /// (S2-S5). Every vector grows once per buffer. Inlined at each call: called with the
    /// slots of a 1-to-4-slot buffer copied into an array ([`InOrder::plain_n`]), the length is
    /// a constant and every copy and loop below unrolls.
    #[inline(always)]
    fn write_plain(&mut self, x: u32, insns: &[Insn], (t, mask): (u32, u64)) {
        if self.next < x {
            self.stream_to(x);
        }
        let out = &mut *self.out;
        let o = out.program.insns.len() as u32;
        let len = insns.len();
        let last = len - 1;
        out.program.insns.extend_from_slice(insns);
        if let Some(p) = out.map.pos.get_mut(x as usize) {
            *p = pos::live(o);
        }
        new_positions(&mut out.map.pos, o, len);
        out.map.orig_node.push(if last == 0 { x } else { self.n + self.new_nodes + last as u32 });
        let mut m = mask;
        while m != 0 {
            let k = m.trailing_zeros() as usize;
            m &= m - 1;
            let kind = if k == last { FixKind::Identity } else { FixKind::Child };
            self.ctx.fixups.push(Fix { at: o + k as u32, node: t, parent: x, kind });
        }
        if !self.aux {
            return;
        }
        let parent = &self.prog.aux[x as usize];
        let hook = &mut *self.hook;
        // A slot with a target gets a placeholder, completed by the fixup pass (S5); the last
        // carries the patched slot's identity.
        let aux = &mut out.program.aux;
        aux.reserve(len);
        for (k, insn) in insns[..last].iter().enumerate() {
            aux.push(if mask >> k & 1 != 0 { parent.clone() } else { hook.new_slot(insn, Some(parent)) });
        }
        let mut a = parent.clone();
        if mask >> last & 1 == 0 {
            hook.patched(&mut a, &insns[last]);
        }
        aux.push(a);
    }

    /// Writes a buffer [`InOrder::resolve`] validated into `ctx.refs` (S2-S5).
    fn write(&mut self, x: u32, buf: &PatchBuf) {
        self.stream_to(x);
        let len = buf.len();
        let base = self.n + 1 + self.new_nodes;
        let ctx = &mut *self.ctx;
        let (refs, fixups) = (&ctx.refs, &mut ctx.fixups);
        let hook = &mut *self.hook;
        let li = if len >= 2 && refs[len - 1] == TAIL { len - 2 } else { len - 1 };
        let node_of = |k: usize| if k == 0 { x } else { base + k as u32 - 1 };
        let out = &mut *self.out;
        let o = out.program.insns.len() as u32;
        extend_small(&mut out.program.insns, &buf.insns);
        if let Some(p) = out.map.pos.get_mut(x as usize) {
            *p = pos::live(o);
        }
        out.map.pos.extend((1..len as u32).map(|k| pos::live(o + k)));
        out.map.orig_node.push(node_of(li));
        let parent = self.prog.aux.get(x as usize).filter(|_| self.aux);
        for (k, &r) in refs.iter().enumerate() {
            let insn = &buf.insns[k];
            let target = r != NONE && r != TAIL;
            if target {
                let kind = if k == li { FixKind::Identity } else { FixKind::Child };
                fixups.push(Fix { at: o + k as u32, node: r, parent: x, kind });
            }
            let Some(parent) = parent else { continue };
            // A slot with a target gets a placeholder, completed by the fixup pass (S5).
            let a = if target {
                parent.clone()
            } else if k == li {
                let mut a = parent.clone();
                hook.patched(&mut a, insn);
                a
            } else {
                hook.new_slot(insn, Some(parent))
            };
            out.program.aux.push(a);
        }
    }

    /// Deletes original slot `slot`'s instruction (both slots of an ld_imm64), as
    /// [`PatchList::delete`].
    ///
    /// # Errors
    /// As [`InOrder::delete_range`].
    pub fn delete(&mut self, slot: Slot) -> Result<()> {
        self.delete_range(slot, slot)
    }

    /// Deletes original slots `first..=last` (both slots of an ld_imm64 `last`), as
    /// [`PatchList::delete_range`] on their nodes: references to them land on the first
    /// surviving slot after them. Post (S1): the slots before `first` are streamed, the range
    /// is written as deleted, `next` is past it.
    ///
    /// # Errors
    /// [`Error::OutOfOrder`], or what [`PatchList::node_of`] and [`PatchList::delete_range`]
    /// report ([`Error::BadRange`] when `last` is before `first`); nothing is written.
    pub fn delete_range(&mut self, first: Slot, last: Slot) -> Result<()> {
        // The list: `node_of(first)`, `node_of(last)`, both live, then the range.
        let f = self.node_of(first);
        let l = self.node_of(last);
        let (f, l) = (self.live(f?)?, self.live(l?)?);
        if f < self.next {
            return Err(Error::OutOfOrder { slot: first, next: Slot(self.next as usize) });
        }
        if l < f {
            return Err(Error::BadRange { first: NodeId(f), last: NodeId(l) });
        }
        self.stream_to(f);
        let end = l + self.width(l);
        self.skip_to(end);
        Ok(())
    }

    /// Validates `buf` as a patch of untouched slot `x` (`w` slots) and resolves every target
    /// into `ctx.refs` (S3): one entry per buffer slot, a node, `NONE` or `TAIL`. The list's
    /// `resolve_buf` rules and errors, in its order.
    fn resolve(&mut self, x: u32, w: u32, buf: &PatchBuf) -> Result<()> {
        let len = buf.len();
        if len == 0 {
            return Err(Error::EmptyPatch);
        }
        if len > crate::MAX_PATCH_SLOTS {
            return Err(Error::PatchTooLarge { len, limit: crate::MAX_PATCH_SLOTS });
        }
        let mut refs = core::mem::take(&mut self.ctx.refs);
        refs.clear();
        let r = self.resolve_into(x, w, buf, &mut refs);
        self.ctx.refs = refs;
        r
    }

    fn resolve_into(&self, x: u32, w: u32, buf: &PatchBuf, refs: &mut Vec<u32>) -> Result<()> {
        let len = buf.len();
        // Pass 1: the buffer's ld_imm64 second slots.
        let mut i = 0;
        while i < len {
            refs.push(NONE);
            if buf.insns[i].is_ld_imm64() {
                if i + 1 >= len {
                    return Err(Error::BufTruncatedLdImm64 { index: i });
                }
                refs.push(TAIL);
                i += 2;
            } else {
                i += 1;
            }
        }
        let base = self.n + 1 + self.new_nodes;
        let past_end = x + w;
        let orig = &self.prog.insns[x as usize];
        let orig_target = orig.abs_target(x as usize).and_then(|t| u32::try_from(t).ok());
        let orig_call = matches!(orig.target_field(), Some((_, TargetKind::Call | TargetKind::FuncRef)));
        for i in 0..len {
            let insn = buf.insns[i];
            let target = buf.target(i);
            if refs[i] == TAIL {
                if target.is_some() {
                    return Err(Error::NotATargetInsn { index: i, code: insn.code });
                }
                continue;
            }
            let maybe = KIND[insn.code as usize] != 0;
            let field = if maybe { insn.target_field() } else { None };
            let call_kind = matches!(field, Some((_, TargetKind::Call | TargetKind::FuncRef)));
            let local = |k: i64| -> Result<u32> {
                let Some(k) = usize::try_from(k).ok().filter(|&k| k <= len) else {
                    return Err(Error::LocalTargetOutOfRange { index: i, target: k, len });
                };
                if k < len && refs[k] == TAIL {
                    return Err(Error::TargetIntoLdImm64 { index: i });
                }
                Ok(if k == 0 {
                    x
                } else if k == len {
                    past_end
                } else {
                    base + k as u32 - 1
                })
            };
            let r = match (target, field) {
                (None, None) => NONE,
                (Some(_), None) => return Err(Error::NotATargetInsn { index: i, code: insn.code }),
                (None, Some(_)) => local(abs(i, insn.rel_target().unwrap_or(0)))?,
                (Some(t), Some(_)) => match t {
                    Target::Local(k) => local(i64::from(k))?,
                    Target::PastEnd => local(i64::try_from(len).unwrap_or(i64::MAX))?,
                    Target::OrigTarget => match orig_target {
                        None => return Err(Error::NoOrigTarget { index: i }),
                        Some(_) if call_kind != orig_call => return Err(Error::OrigTargetKind { index: i }),
                        Some(t) => t,
                    },
                    Target::Orig(s) => {
                        if s.0 >= self.n as usize {
                            return Err(Error::OrigSlotOutOfRange { index: i, slot: s, len: self.n as usize });
                        }
                        if self.ctx.is_tail(s.0) {
                            return Err(Error::TargetIntoLdImm64 { index: i });
                        }
                        if self.deleted(s.0 as u32) {
                            return Err(Error::TargetDeleted { index: i, node: NodeId::of_slot(s) });
                        }
                        s.0 as u32
                    }
                    Target::Subprog(s) => match self.ctx.starts.get(s.index()) {
                        Some(&st) => st,
                        None => return Err(Error::UnknownSubprog { index: i, subprog: SubprogId(s.0) }),
                    },
                    Target::Node(_) => {
                        return Err(Error::InOrderUnsupported {
                            slot: Slot(x as usize),
                            index: i,
                            what: "Target::Node",
                        });
                    }
                    Target::Label(_) => {
                        return Err(Error::InOrderUnsupported {
                            slot: Slot(x as usize),
                            index: i,
                            what: "Target::Label",
                        });
                    }
                },
            };
            refs[i] = r;
        }
        Ok(())
    }

    /// Streams the rest of the program, resolves every fixup (S4) and remaps every side table
    /// through the map with the list's table pass. Post: `out` is what
    /// [`PatchList::linearize_program_into`] writes for the same requests (without relaxation).
    ///
    /// # Errors
    /// What the list's linearization reports: the table and aux checks, then
    /// [`Error::TargetPastEnd`] or [`Error::JumpOutOfRange`] at the first failing slot in
    /// output order. On error `out` holds no valid program.
    pub fn finish(mut self) -> Result<()> {
        self.stream_to(self.n);
        let out = &mut *self.out;
        let new_len = out.program.insns.len() as u32;
        if let Some(p) = out.map.pos.get_mut(self.n as usize) {
            *p = pos::live(new_len);
        }
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let map = &mut out.map;
        map.orig_len = self.n;
        map.new_len = new_len;
        map.cstart.clear();
        map.subprog_starts.clear();
        for &s in &self.ctx.starts {
            map.subprog_starts.push(map.pos.get(s as usize).copied().unwrap_or(pos::flagged(0, true)));
        }
        let fixups = &self.ctx.fixups;
        for fx in fixups {
            let t = pos::slot(map.pos.get(fx.node as usize).copied().unwrap_or(0));
            if t >= new_len {
                return Err(Error::TargetPastEnd { at: Slot(fx.at as usize), orig: fx.orig() });
            }
            let delta = i64::from(t) - i64::from(fx.at) - 1;
            let Some(slot) = out.program.insns.get_mut(fx.at as usize) else { continue };
            if !slot.set_rel_target(delta) {
                return Err(Error::JumpOutOfRange { at: Slot(fx.at as usize), orig: fx.orig(), delta });
            }
            let insn = *slot;
            if !self.aux {
                continue;
            }
            let Some(a) = out.program.aux.get_mut(fx.at as usize) else { continue };
            match fx.kind {
                FixKind::Original => {}
                FixKind::Identity => self.hook.patched(a, &insn),
                FixKind::Child => *a = self.hook.new_slot(&insn, self.prog.aux.get(fx.parent as usize)),
            }
        }
        out.stats = LinearizeStats {
            nodes: self.n as usize + 1 + self.new_nodes as usize,
            emitted: new_len as usize,
            fixups: fixups.len(),
            walks: 1,
            ..LinearizeStats::default()
        };
        remap_tables(&self.prog.tables, &mut self.ctx.tables, out)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Error, InOrder, InOrderCtx, NoAux, PatchBuf, PatchedProgram, Program, SideTables, Target};
    use bpfpatch_insn::{Insn, Slot, opcode as c};

    /// The fast path takes exactly the buffers `plain` documents (the general path gives the
    /// same result, so only this count tells them apart): blinding's shapes do, a slot with a
    /// reference of its own, an ld_imm64, a jump-class slot without a target (`exit`) or an
    /// `OrigTarget` of an instruction that has none do not.
    #[test]
    fn the_fast_path_takes_exactly_the_plain_buffers() {
        let alu = |k: i32| Insn::new(c::ALU64 | c::ADD | c::K, 1, 0, 0, k);
        let mov = |d: u8, k: i32| Insn::new(c::ALU64 | c::MOV | c::K, d, 0, 0, k);
        let jeq = |off: i16| Insn::new(c::JMP | c::JEQ | c::K, 1, 0, off, 5);
        let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
        let ld = Insn::new(c::LD_IMM64, 2, 0, 0, 1);
        let prog = vec![jeq(2), alu(1), alu(2), alu(3), alu(4), alu(5), alu(6), mov(0, 0), exit];
        let prog = Program::without_aux(prog, SideTables::default());
        let (mut ctx, mut out, mut hook) = (InOrderCtx::new(), PatchedProgram::default(), NoAux);
        let mut e = InOrder::new(&mut ctx, &prog, &mut hook, &mut out).unwrap();
        // Blinding of the jcc (its jump keeps the original target) and of an ALU: fast.
        let mut b = PatchBuf::new();
        b.push(mov(11, 7)).push(mov(11, 7)).jump_to(Insn::new(c::JMP | c::JEQ | c::X, 1, 11, 0, 0), Target::OrigTarget);
        e.patch(Slot(0), &b).unwrap();
        b.clear();
        b.push(mov(11, 1)).push(mov(11, 1)).push(Insn::new(c::ALU64 | c::ADD | c::X, 1, 11, 0, 0));
        e.patch(Slot(1), &b).unwrap();
        assert_eq!(e.plain_patches(), 2);
        // A jump of its own (a local offset), an ld_imm64, an exit: the general path.
        b.clear();
        b.push(jeq(0)).push(alu(2));
        e.patch(Slot(2), &b).unwrap();
        b.clear();
        b.push(ld).push(Insn::default()).push(alu(3));
        e.patch(Slot(3), &b).unwrap();
        b.clear();
        b.push(alu(4)).push(exit);
        e.patch(Slot(4), &b).unwrap();
        // The original has no jump target: refused by the general path, not taken.
        b.clear();
        b.jump_to(jeq(0), Target::OrigTarget);
        assert_eq!(e.patch(Slot(5), &b), Err(Error::NoOrigTarget { index: 0 }));
        assert_eq!(e.plain_patches(), 2);
        // Still fast after them: 1 to 64 slots, 65 are not.
        e.patch(Slot(5), &PatchBuf::from_insns(&[alu(5); 64])).unwrap();
        e.patch(Slot(6), &PatchBuf::from_insns(&[alu(6); 65])).unwrap();
        assert_eq!(e.plain_patches(), 3);
        e.finish().unwrap();
    }
}
