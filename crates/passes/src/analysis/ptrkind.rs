//! Pointer kinds: which registers and stack slots may hold the context pointer, and what every
//! load, store and atomic uses as its base.
//!
//! # Lattice
//! A value's kind is a set of flags, `CTX` (the unmodified context pointer), `STACK` (a pointer
//! into the current frame), `PARENT` (a pointer into the frame of the caller in another section
//! that entered the section, see [`CallerFrame`]), `SCALAR` (certainly a scalar: constants, ALU
//! and 32-bit results, narrow loads not from the context, narrow stores, helper-written bytes)
//! and `OTHER` (anything else: map values, packet pointers, pointers into other frames, values
//! nothing is known about), plus the exact frame offset when the set is `{STACK}` or `{PARENT}`
//! and the offset is known. `SCALAR` is `OTHER` for [`Base`]; it only separates
//! [`PtrKinds::ctx_if_accepted`] (the context or a scalar) from the context or another pointer. Join is set union (the offset survives only if equal); the empty set is
//! bottom. Classification of a base ([`Base`]): `{CTX}` is the context, `CTX` with anything else
//! is [`Base::Unknown`] (this includes a context pointer after arithmetic, which the kernel
//! refuses to dereference too).
//!
//! # State
//! Per block entry: the kinds of r0..r10 and AX and of the 64 8-byte stack slots fp-8..fp-512
//! of the current frame. Main entry: r1 = `CTX`, r10 = fp+0, everything else `OTHER`.
//! Moves copy kinds; `fp ± constant` keeps an exact offset; other 64-bit arithmetic merges the
//! operands' pointer flags (adding `OTHER` to a context pointer); 32-bit results are `OTHER`.
//! An 8-byte aligned store through an exact stack base is a strong update of its slot (a spill)
//! and an 8-byte load from one is a fill; narrower or misaligned stores join `OTHER` into the
//! slots they touch (weakly: the bytes written may equal the bytes they replace, so a spilled
//! pointer partly overwritten becomes "maybe"); stores through an inexact stack base are weak
//! updates of every slot.
//!
//! # Escapes and calls (interprocedural)
//! Two global flags make untracked memory sound; the fixed point is rerun until they are stable:
//! - `ctx_escaped`: a context pointer was stored where slots do not track it (through a non-stack
//!   or inexact base, misaligned, out of frame), or a stack pointer was passed to a bpf-to-bpf
//!   call while a slot of the frame held it. Then 8-byte loads from untracked memory may yield it.
//! - `stack_escaped`: a stack pointer was stored to untracked memory or passed to a bpf-to-bpf
//!   call. Then 8-byte loads from untracked memory may yield a stack pointer, and every local
//!   call may write every slot of the caller's frame (with other memory, the caller's stack
//!   pointers included, and the context once it escaped) and hand the caller's stack pointers
//!   back.
//!
//! A callee's entry r0..r9 are the join of its call sites' registers (r1..r5 are the arguments;
//! r0 and r6..r9 are passed too because an interpreter that does not clear them lets the callee
//! read them; a caller's stack pointer becomes `OTHER` in the callee: it does not alias the
//! callee's own slots, and so does one the caller left in the parent frame's slots); its r0 at
//! `exit` flows back to the callers (the callee's own stack pointers, in r0..r5 or in the parent
//! frame, are `OTHER` there: they dangle), and so do r1..r5 and the parent frame's slots; if the
//! caller's stack pointers could reach the callee (the stack escaped, e.g. one was passed in, or
//! one is in the parent frame), what comes back as `OTHER` may be one of the caller's (the
//! callee saw them as `OTHER`) and gets `STACK`, what does not (the context, a scalar, a parent
//! pointer the callee left alone) cannot be one and keeps its kind. r6..r9 and r10 survive
//! calls; r0..r5 are `OTHER` after helper calls.
//! Helpers are assumed to write only scalars into memory passed to them (slots at or above the
//! passed exact offset, or all slots, are weakly joined with `OTHER`) and to hand callbacks only
//! values the program passed in r2..r5; a callback's arguments are `OTHER`, plus `CTX` if any
//! helper received a value that may be the context in r2..r5.
//!
//! Declared program entries ([`Entries::programs`]: an object section's other programs)
//! start as the main program does. Entries called from other sections ([`Entries::calls`]: a
//! `.text` function a program of another section calls) start with r0..r9 as the calls pass
//! them ([`CallSite`]: per register a [`CtxArg`], joined over every call site as for a call
//! inside the section; [`PtrKinds::call_site`] reads them off the calling section's analysis),
//! so a load through an argument that holds the context is a context load there too; and when
//! a caller may have put the context where the callee can read it (its `ctx_escaped`, or a
//! pointer into its frame passed while a slot holds the context), the section starts with
//! `ctx_escaped`. With such calls the section is a library (libbpf's `.text` beside
//! programs): its main program does not start with the context in r1 either (unless it is a
//! declared program entry), only with what calls pass.
//!
//! The main program's frame starts as `OTHER`. A callee's frame may hold stale values of an
//! earlier frame at the same addresses (an interpreter need not clear it; the kernel would
//! refuse such reads): its slots start as `OTHER`, plus `CTX` / `STACK` if any 8-byte store
//! anywhere put such a value on a stack (flags `ctx_spilled`, `stack_spilled`).
//!
//! Programs that rebuild a pointer from its bytes are outside the model (as in the kernel,
//! where such values are scalars).

use crate::analysis::cfg::{BlockId, Cfg, SubprogId};
use crate::analysis::worklist::Worklist;
use crate::program::{InsnIdx, to_u32};
use bpfpatch_insn::{AluOp, CallKind, Op, Operand, Reg, Size, Width};

const CTX: u8 = 1;
const STACK: u8 = 2;
const OTHER: u8 = 4;
const EXACT: u8 = 8;
const PARENT: u8 = 16;
/// Certainly a scalar (never a pointer in the kernel's eyes): `OTHER` is "anything else".
const SCALAR: u8 = 32;

/// Number of tracked 8-byte stack slots (fp-8 .. fp-512).
pub const STACK_SLOTS: usize = 64;

/// Bytes of the tracked frame.
const FRAME_BYTES: i64 = 512;

/// The abstract kind of a value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Kind {
    flags: u8,
    off: i32,
}

impl Kind {
    const BOTTOM: Kind = Kind { flags: 0, off: 0 };
    const CTX: Kind = Kind { flags: CTX, off: 0 };
    const OTHER: Kind = Kind { flags: OTHER, off: 0 };
    const SCALAR: Kind = Kind { flags: SCALAR, off: 0 };
    const STACK_ANY: Kind = Kind { flags: STACK, off: 0 };

    const fn flags(f: u8) -> Kind {
        Kind { flags: f & !EXACT, off: 0 }
    }

    const fn fp(off: i32) -> Kind {
        Kind { flags: STACK | EXACT, off }
    }

    /// A pointer at `off` into the calling section's frame ([`CallerFrame`]).
    const fn parent(off: i32) -> Kind {
        Kind { flags: PARENT | EXACT, off }
    }

    fn join(self, o: Kind) -> Kind {
        if self == o {
            self
        } else if self.flags == 0 {
            o
        } else if o.flags == 0 {
            self
        } else {
            Kind::flags(self.flags | o.flags)
        }
    }

    const fn has(self, f: u8) -> bool {
        self.flags & f != 0
    }

    const fn exact(self) -> Option<i32> {
        if self.flags == STACK | EXACT { Some(self.off) } else { None }
    }

    const fn parent_exact(self) -> Option<i32> {
        if self.flags == PARENT | EXACT { Some(self.off) } else { None }
    }

    /// The kind of a caller's value in the callee the [`CallerFrame`] describes: a pointer into
    /// the caller's frame points into the parent frame there; the caller's own parent pointers
    /// are other memory.
    fn to_callee(self) -> Kind {
        if let Some(o) = self.exact() {
            return Kind::parent(o);
        }
        let mut f = self.flags & (CTX | OTHER | SCALAR);
        if self.has(STACK) {
            f |= PARENT;
        }
        if self.has(PARENT) {
            f |= OTHER;
        }
        Kind::flags(f)
    }

    /// The kind of a value across a bpf-to-bpf call or return: a stack pointer of one activation
    /// points into another frame in the other (arguments, return values, and the parent frame's
    /// slots alike).
    const fn other_frame(self) -> Kind {
        if self.flags & STACK != 0 { Kind::flags((self.flags & !STACK) | OTHER) } else { self }
    }

    /// The kind in a caller of a value a local callee hands back (in r0..r5 or the parent
    /// frame), when the caller's stack pointers could reach the callee (`stack_in`): the callee
    /// saw them as `OTHER` ([`Kind::other_frame`]), so a value it hands back as other memory may
    /// be one of them, and one it does not may not.
    fn handed_back(self, stack_in: bool) -> Kind {
        if stack_in && self.has(OTHER) { self.join(Kind::STACK_ANY) } else { self }
    }

    /// The kind of a result computed from values with the flags `u` (not a plain move).
    const fn arith(u: u8) -> Kind {
        let mut f = u & (STACK | PARENT);
        if u & CTX != 0 {
            f |= CTX | OTHER;
        }
        if f == 0 {
            // Only scalars in, a scalar out; anything else may be a pointer moved by an offset.
            f = if u & !SCALAR == 0 && u != 0 { SCALAR } else { OTHER };
        }
        Kind::flags(f)
    }
}

/// Whether a register passed to a call may hold the context pointer (see [`crate::Options::entry_calls`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CtxArg {
    /// The unmodified context pointer on every path.
    Ctx,
    /// The context pointer on some paths (or after arithmetic), something else on others.
    MaybeCtx,
    /// Never the context pointer.
    NotCtx,
}

impl CtxArg {
    fn of(k: Kind) -> CtxArg {
        if !k.has(CTX) {
            CtxArg::NotCtx
        } else if k.flags & !EXACT == CTX {
            CtxArg::Ctx
        } else {
            CtxArg::MaybeCtx
        }
    }

    /// The kind in the callee: a caller's stack pointer does not alias the callee's frame.
    const fn kind(self) -> Kind {
        match self {
            CtxArg::Ctx => Kind::CTX,
            CtxArg::MaybeCtx => Kind::flags(CTX | OTHER),
            CtxArg::NotCtx => Kind::OTHER,
        }
    }

    /// The join (a register that may hold the context on one call site and not on another).
    #[must_use]
    pub const fn join(self, o: CtxArg) -> CtxArg {
        match (self, o) {
            (CtxArg::Ctx, CtxArg::Ctx) => CtxArg::Ctx,
            (CtxArg::NotCtx, CtxArg::NotCtx) => CtxArg::NotCtx,
            _ => CtxArg::MaybeCtx,
        }
    }
}

/// What a call into another section passes, as far as the context goes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CallSite {
    /// r0..r9 at the call (r1..r5 are the arguments; r0 and r6..r9 too, as for calls inside a
    /// section: an interpreter that does not clear them lets the callee read them).
    pub regs: [CtxArg; NARGS],
    /// Whether memory the callee may read holds the context pointer: the caller stored it where
    /// its slots do not track it, or passes a pointer into its frame while a slot holds it (a
    /// `.text` function reading `buf->skb` through a pointer to the caller's struct). Then the
    /// callee's 8-byte loads from memory it does not track may yield the context. Not set for
    /// the frame alone when [`CallSite::frame`] describes it.
    pub ctx_in_memory: bool,
    /// The caller's frame as the callee reaches it, when pointers into it are only where the
    /// caller's analysis sees them (its stack did not escape): then the callee tracks the
    /// frame's slots through the pointers (`buf->skb` for a `buf` on the caller's stack).
    pub frame: Option<CallerFrame>,
}

/// A caller's frame at a call into another section (see [`CallSite::frame`]): r0..r9 and the
/// frame's 8-byte slots as the callee sees them, a pointer into the caller's frame being a
/// pointer into the callee's parent frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CallerFrame {
    regs: [Kind; NARGS],
    slots: [Kind; STACK_SLOTS],
}

impl CallerFrame {
    /// Whether the register `r` (r0..r9) points into the caller's frame.
    #[must_use]
    pub fn points_into_frame(&self, r: usize) -> bool {
        self.regs.get(r).is_some_and(|k| k.has(PARENT))
    }

    /// Whether the 8-byte slot at `fp - 8 * (slot + 1)` of the caller's frame may hold the
    /// context pointer.
    #[must_use]
    pub fn slot_may_be_ctx(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(|k| k.has(CTX))
    }
}

/// How control enters a section besides its main program (see [`PtrKinds::analyze_calls`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Entries<'a> {
    /// External subprograms that are programs of their own: r1 holds the context at entry.
    pub programs: &'a [InsnIdx],
    /// Calls into external subprograms from other sections: the subprogram's start and the
    /// registers one call passes (one record per call site).
    pub calls: &'a [(InsnIdx, CallSite)],
}

/// What a memory instruction uses as its base address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Base {
    /// The (unmodified) context pointer.
    Ctx,
    /// The current stack frame.
    Stack,
    /// Definitely not the context and not the current frame.
    Other,
    /// The current frame or other memory, never the context.
    MaybeStack,
    /// May or may not be the context (including a context pointer after arithmetic): a ctx
    /// rewrite cannot classify it.
    Unknown,
}

impl Base {
    fn of(k: Kind) -> Base {
        let mut f = k.flags & !EXACT;
        if f & SCALAR != 0 {
            f = (f & !SCALAR) | OTHER;
        }
        // A pointer into a caller's frame is other memory here.
        if f & PARENT != 0 {
            f = (f & !PARENT) | OTHER;
        }
        if f & CTX != 0 {
            if f == CTX { Base::Ctx } else { Base::Unknown }
        } else if f == STACK {
            Base::Stack
        } else if f == STACK | OTHER {
            Base::MaybeStack
        } else {
            Base::Other
        }
    }

    /// Whether the base may be the context.
    #[must_use]
    #[cfg(any(test, feature = "internals"))]
    pub const fn may_be_ctx(self) -> bool {
        matches!(self, Base::Ctx | Base::Unknown)
    }
}

const NREGS: usize = Reg::COUNT as usize;

/// Registers handed to a callee's entry state: r0..r9 (an interpreter that does not clear
/// r0 and r6..r9 at a call lets the callee see the caller's values).
pub const NARGS: usize = 10;

#[derive(Clone, PartialEq, Eq, Debug)]
struct State {
    regs: [Kind; NREGS],
    slots: [Kind; STACK_SLOTS],
    /// The slots of the parent frame (the frame of the caller in another section that entered
    /// the section), as read through `PARENT` pointers.
    pslots: [Kind; STACK_SLOTS],
}

impl State {
    fn entry(args: [Kind; NARGS], slots: Kind, pslots: [Kind; STACK_SLOTS]) -> State {
        let mut regs = [Kind::OTHER; NREGS];
        regs[..NARGS].copy_from_slice(&args);
        regs[Reg::R10.idx()] = Kind::fp(0);
        State { regs, slots: [slots; STACK_SLOTS], pslots }
    }

    fn reg(&self, r: Reg) -> Kind {
        self.regs.get(r.idx()).copied().unwrap_or(Kind::OTHER)
    }

    fn set(&mut self, r: Reg, k: Kind) {
        if let Some(x) = self.regs.get_mut(r.idx()) {
            *x = k;
        }
    }

    /// Joins `o` into `self`; whether anything changed. Without a parent frame (`parent`
    /// false: no call into the section passes a [`CallerFrame`], so no `PARENT` kind exists
    /// and every state's `pslots` stay `NO_PARENT`) the parent slots are not visited.
    fn join_from(&mut self, o: &State, parent: bool) -> bool {
        let mut changed = join_into(&mut self.regs, &o.regs);
        changed |= join_into(&mut self.slots, &o.slots);
        if parent {
            changed |= join_into(&mut self.pslots, &o.pslots);
        }
        changed
    }

    fn any_slot_has(&self, f: u8) -> bool {
        self.slots.iter().any(|k| k.has(f))
    }

    /// Weakly joins `k` into the slots an access at exact offset `o` (or anywhere, `None`) may reach upwards.
    fn weak_from(&mut self, o: Option<i32>, k: Kind) {
        weak_from(&mut self.slots, o, k);
    }
}

/// Joins `b` into `a` kind by kind; whether anything changed.
fn join_into(a: &mut [Kind], b: &[Kind]) -> bool {
    let mut changed = false;
    for (x, y) in a.iter_mut().zip(b) {
        let j = x.join(*y);
        changed |= j != *x;
        *x = j;
    }
    changed
}

/// [`State::weak_from`] on `slots` (the frame's or the parent frame's).
fn weak_from(slots: &mut [Kind; STACK_SLOTS], o: Option<i32>, k: Kind) {
    for (idx, s) in slots.iter_mut().enumerate() {
        let slot_off = -8 * (i32::try_from(idx).unwrap_or(0) + 1);
        if o.is_none_or(|o| slot_off >= o.saturating_sub(7)) {
            *s = s.join(k);
        }
    }
}

/// The slot index of an aligned 8-byte access at frame offset `addr`, if it is tracked.
fn slot_of(addr: i64) -> Option<usize> {
    if (-FRAME_BYTES..0).contains(&addr) && addr % 8 == 0 { usize::try_from(-addr / 8 - 1).ok() } else { None }
}

/// Slots overlapping `[addr, addr + len)` in the tracked frame.
fn slots_touching(addr: i64, len: i64) -> impl Iterator<Item = usize> {
    let lo = addr.max(-FRAME_BYTES);
    let hi = (addr + len).min(0);
    let first = if lo < hi { Some(lo.div_euclid(8)) } else { None };
    let last = (hi - 1).div_euclid(8);
    first
        .into_iter()
        .flat_map(move |f| f..=last)
        .filter_map(|blk| usize::try_from(-blk - 1).ok())
        .filter(|k| *k < STACK_SLOTS)
}

#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
struct Flags {
    ctx_escaped: bool,
    stack_escaped: bool,
    ctx_to_callbacks: bool,
    ctx_spilled: bool,
    stack_spilled: bool,
    /// A parent-frame pointer was stored where slots do not track it or handed to a helper
    /// that may call a callback with it: parent slots may change behind the analysis's back.
    parent_escaped: bool,
    parent_spilled: bool,
}

/// One memory access as recorded in the final sweep.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Access {
    base: Base,
    /// The base is the context or a scalar, and may be the context.
    ctx_or_scalar: bool,
    exact: Option<i32>,
    stacky: bool,
}

struct Solver<'a> {
    cfg: &'a Cfg,
    opaque: &'a [bool],
    ctx_entries: &'a [InsnIdx],
    calls: &'a [(InsnIdx, CallSite)],
    flags: Flags,
    has_callbacks: bool,
    /// Some call into the section passes a [`CallerFrame`]: only then can a `PARENT` kind,
    /// hence a parent slot other than `NO_PARENT`, exist ([`State::join_from`]).
    with_parent: bool,
    entry: Vec<Option<State>>,
    ret: Vec<[Kind; NRET]>,
    /// The parent frame's slots at each subprogram's exits.
    ret_parent: Vec<[Kind; STACK_SLOTS]>,
    work: Worklist,
}

/// After a helper call, `LD_ABS`/`LD_IND` or a tail call: r0 is a new scalar; r1..r5 may be
/// clobbered with scalars or keep their values (the kernel forbids reading them, an
/// interpreter may not clobber them).
fn clobber_args(st: &mut State) {
    st.regs[0] = Kind::OTHER;
    for r in 1..6 {
        st.regs[r] = st.regs[r].join(Kind::OTHER);
    }
}

/// Registers a callee hands back: r0..r5 (r1..r5 on an interpreter that does not clobber them).
const NRET: usize = 6;

enum Event {
    Call(SubprogId, [Kind; NARGS], [Kind; STACK_SLOTS]),
    Callback(SubprogId),
    Exit([Kind; NRET], [Kind; STACK_SLOTS]),
}

/// The parent frame of an activation no call from another section with a [`CallerFrame`]
/// started: no pointer into it exists there, so it adds nothing where activations meet.
const NO_PARENT: [Kind; STACK_SLOTS] = [Kind::BOTTOM; STACK_SLOTS];

/// A parent slot nothing is known about.
const PARENT_UNKNOWN: Kind = Kind::flags(CTX | OTHER | PARENT);

impl Solver<'_> {
    /// The kind of an 8-byte value read from memory nobody tracks.
    fn untracked(&self) -> Kind {
        let mut f = OTHER;
        if self.flags.ctx_escaped {
            f |= CTX;
        }
        if self.flags.stack_escaped {
            f |= STACK;
        }
        if self.flags.parent_escaped {
            f |= PARENT;
        }
        Kind::flags(f)
    }

    /// Slot `k` of the parent frame (plus what untracked stores may have put there once a
    /// parent pointer escaped).
    fn pslot(&self, st: &State, k: usize) -> Kind {
        let v = st.pslots[k];
        if v.flags == 0 {
            PARENT_UNKNOWN
        } else if self.flags.parent_escaped {
            v.join(self.untracked())
        } else {
            v
        }
    }

    /// A parent pointer escaped: the parent frame may hold the context as far as anyone knows.
    fn parent_escapes(&mut self) {
        self.flags.parent_escaped = true;
        self.flags.ctx_escaped = true;
    }

    /// What a never-written slot of a callee's frame may hold: stale values an earlier frame
    /// at the same addresses spilled (an interpreter need not clear frames).
    fn stale(&self) -> Kind {
        let mut f = OTHER;
        if self.flags.ctx_spilled {
            f |= CTX;
        }
        if self.flags.stack_spilled {
            f |= STACK;
        }
        if self.flags.parent_spilled {
            f |= PARENT;
        }
        Kind::flags(f)
    }

    fn spilled(&mut self, v: Kind) {
        if v.has(CTX) {
            self.flags.ctx_spilled = true;
        }
        if v.has(STACK) {
            self.flags.stack_spilled = true;
        }
        if v.has(PARENT) {
            self.flags.parent_spilled = true;
        }
    }

    fn escape(&mut self, v: Kind) {
        if v.has(CTX) {
            self.flags.ctx_escaped = true;
        }
        if v.has(STACK) {
            self.flags.stack_escaped = true;
        }
        if v.has(PARENT) {
            self.parent_escapes();
        }
    }

    fn callback_args(&self) -> [Kind; NARGS] {
        let a =
            if self.flags.ctx_to_callbacks || self.flags.ctx_escaped { Kind::flags(CTX | OTHER) } else { Kind::OTHER };
        let mut args = [Kind::OTHER; NARGS];
        args[1..6].fill(a);
        args
    }

    /// Reads `size` bytes at `base + off`.
    fn load(&self, st: &State, base: Kind, off: i16, size: Size) -> Kind {
        if size != Size::DW {
            // A narrow load yields a scalar, except from the context (`skb->data` is a packet
            // pointer).
            return if base.has(CTX) { Kind::OTHER } else { Kind::SCALAR };
        }
        if let Some(o) = base.exact() {
            match slot_of(i64::from(o) + i64::from(off)) {
                Some(k) => st.slots[k],
                None => self.untracked(),
            }
        } else if let Some(o) = base.parent_exact() {
            match slot_of(i64::from(o) + i64::from(off)) {
                Some(k) => self.pslot(st, k),
                None => self.untracked(),
            }
        } else {
            let mut v = self.untracked();
            if base.has(STACK) {
                v = st.slots.iter().fold(v, |a, s| a.join(*s));
            }
            if base.has(PARENT) {
                // An inexact parent pointer may be a stale one of another activation.
                v = v.join(PARENT_UNKNOWN);
            }
            v
        }
    }

    /// Writes `v` (`size` bytes) at `base + off`.
    fn store(&mut self, st: &mut State, base: Kind, off: i16, size: Size, v: Kind) {
        let wide = size == Size::DW;
        let stored = if wide { v } else { Kind::SCALAR };
        if wide && (base.has(STACK | PARENT)) {
            self.spilled(v);
        }
        let exact = base.exact().map(|o| (o, &mut st.slots)).or(base.parent_exact().map(|o| (o, &mut st.pslots)));
        if let Some((o, slots)) = exact {
            let addr = i64::from(o) + i64::from(off);
            match (wide, slot_of(addr)) {
                (true, Some(k)) => slots[k] = v,
                _ => {
                    // Weak: the bytes written may equal the ones they replace.
                    let w = if wide { Kind::OTHER } else { Kind::SCALAR };
                    for k in slots_touching(addr, i64::from(size.bytes())) {
                        slots[k] = slots[k].join(w);
                    }
                    if wide {
                        self.escape(v);
                    }
                }
            }
        } else {
            if base.has(STACK) {
                st.weak_from(None, stored);
            }
            if base.has(PARENT) {
                weak_from(&mut st.pslots, None, stored);
            }
            if wide {
                self.escape(v);
            }
        }
    }

    /// [`Solver::transfer_op`], for an opaque instruction (see [`PtrKinds::analyze_calls`]) with
    /// its immediate and offset unknown: an exact stack base is used as an inexact one, and a
    /// stack pointer it defines loses its exact offset.
    fn transfer(
        &mut self,
        st: &mut State,
        op: &Op,
        i: InsnIdx,
        rec: Option<&mut Vec<Option<Access>>>,
    ) -> Option<Event> {
        if !self.opaque.get(i.idx()).copied().unwrap_or(false) {
            return self.transfer_op(st, op, i, rec);
        }
        let base = match *op {
            Op::Load { src, .. } => Some(src),
            Op::Store { dst, .. } | Op::Atomic { dst, .. } => Some(dst),
            _ => None,
        };
        let saved = base.map(|b| (b, st.reg(b)));
        if let Some((b, k)) = saved {
            st.set(b, Kind::flags(k.flags));
        }
        let ev = self.transfer_op(st, op, i, rec);
        let defs = op.defs();
        if let Some((b, k)) = saved
            && !defs.contains(b)
        {
            st.set(b, k);
        }
        for r in defs.iter() {
            let k = st.reg(r);
            st.set(r, Kind::flags(k.flags));
        }
        ev
    }

    fn transfer_op(
        &mut self,
        st: &mut State,
        op: &Op,
        i: InsnIdx,
        mut rec: Option<&mut Vec<Option<Access>>>,
    ) -> Option<Event> {
        let mut record = |k: Kind| {
            if let Some(r) = rec.as_deref_mut() {
                r[i.idx()] = Some(Access {
                    base: Base::of(k),
                    ctx_or_scalar: k.has(CTX) && k.flags & !(CTX | SCALAR) == 0,
                    exact: k.exact(),
                    stacky: k.has(STACK),
                });
            }
        };
        match *op {
            Op::Alu { width: Width::W32, dst, .. } | Op::Zext { dst } => st.set(dst, Kind::SCALAR),
            Op::Alu { width: Width::W64, op: AluOp::Mov, dst, src } => {
                let k = match src {
                    Operand::Reg(r) => st.reg(r),
                    Operand::Imm(_) => Kind::SCALAR,
                };
                st.set(dst, k);
            }
            Op::Alu { width: Width::W64, op: AluOp::MovSx(_), dst, .. } => st.set(dst, Kind::SCALAR),
            Op::Alu { width: Width::W64, op: alu @ (AluOp::Add | AluOp::Sub), dst, src: Operand::Imm(imm) }
                if st.reg(dst).exact().is_some() || st.reg(dst).parent_exact().is_some() =>
            {
                let k = st.reg(dst);
                let (o, parent) = k.exact().map_or((k.off, true), |o| (o, false));
                let n = if alu == AluOp::Add { o.checked_add(imm) } else { o.checked_sub(imm) };
                st.set(
                    dst,
                    match (n, parent) {
                        (Some(n), false) => Kind::fp(n),
                        (Some(n), true) => Kind::parent(n),
                        (None, false) => Kind::STACK_ANY,
                        (None, true) => Kind::flags(PARENT),
                    },
                );
            }
            Op::Alu { dst, .. } | Op::Swap { dst, .. } => {
                let u = op.uses().iter().fold(0u8, |a, r| a | st.reg(r).flags);
                st.set(dst, Kind::arith(u));
            }
            Op::LdImm64 { dst, .. } => {
                st.set(dst, Kind::OTHER);
                if let Some(s) = self.cfg.callee(i) {
                    return Some(Event::Callback(s));
                }
            }
            Op::Load { size, dst, src, off, .. } => {
                let base = st.reg(src);
                record(base);
                let v = self.load(st, base, off, size);
                st.set(dst, v);
            }
            Op::Store { size, dst, off, src } => {
                let base = st.reg(dst);
                record(base);
                let v = match src {
                    Operand::Reg(r) => st.reg(r),
                    Operand::Imm(_) => Kind::SCALAR,
                };
                self.store(st, base, off, size, v);
            }
            Op::Atomic { size, op: aop, dst, src, off } => {
                let base = st.reg(dst);
                record(base);
                let old = self.load(st, base, off, size);
                // xchg stores src, cmpxchg old or src, the others a combination of both.
                let either = old.join(st.reg(src));
                let new = either.join(Kind::arith(either.flags));
                self.store(st, base, off, size, new);
                if aop.fetches() {
                    let r = if aop == bpfpatch_insn::AtomicOp::Cmpxchg { Reg::R0 } else { src };
                    st.set(r, if old.flags == 0 { Kind::OTHER } else { old });
                }
            }
            Op::Call(CallKind::Local(_)) => {
                let mut args = [Kind::OTHER; NARGS];
                args.copy_from_slice(&st.regs[..NARGS]);
                let stack_arg = args.iter().any(|a| a.has(STACK));
                if stack_arg {
                    self.flags.stack_escaped = true;
                    if st.any_slot_has(CTX) {
                        self.flags.ctx_escaped = true;
                    }
                }
                if self.flags.stack_escaped {
                    // The callee may write the caller's slots with what it has, the caller's
                    // stack pointers included (which it sees as `OTHER`).
                    let mut w = OTHER | STACK;
                    if self.flags.ctx_escaped {
                        w |= CTX;
                    }
                    st.weak_from(None, Kind::flags(w));
                }
                let callee = self.cfg.callee(i);
                // The caller's stack pointers in the parent frame point into another frame there;
                // the callee may hand them back (in r0..r5 or the parent frame) as it may the
                // stack pointers passed in registers, as `OTHER` (`Kind::handed_back`).
                let entry_parent = st.pslots.map(Kind::other_frame);
                let stack_in = self.flags.stack_escaped || st.pslots.iter().any(|k| k.has(STACK));
                // The callee may change the parent frame if it can reach it.
                let reach = args.iter().any(|a| a.has(PARENT))
                    || (stack_arg && st.any_slot_has(PARENT))
                    || self.flags.parent_escaped
                    || self.flags.parent_spilled;
                if reach {
                    let exit =
                        callee.map_or([Kind::flags(CTX | OTHER | PARENT); STACK_SLOTS], |s| self.ret_parent[s.idx()]);
                    for (p, x) in st.pslots.iter_mut().zip(exit) {
                        *p = p.join(x.handed_back(stack_in));
                    }
                }
                let ret = callee.map_or([Kind::OTHER; NRET], |s| self.ret[s.idx()]);
                // r0 is the callee's; r1..r5 may keep the caller's values or get the callee's.
                for (r, k) in ret.iter().enumerate() {
                    let k = k.handed_back(stack_in);
                    st.regs[r] = if r == 0 { k } else { st.regs[r].join(k) };
                }
                let callee_args = args.map(Kind::other_frame);
                return callee.map(|s| Event::Call(s, callee_args, entry_parent));
            }
            Op::Call(_) | Op::Callx(_) => {
                for r in 1..6 {
                    let a = st.regs[r];
                    if a.has(STACK) {
                        // Helpers write scalars (the kernel marks the bytes STACK_MISC).
                        let mut w = SCALAR;
                        if self.has_callbacks {
                            // A callback may write any pointer.
                            w |= OTHER;
                            self.flags.stack_escaped = true;
                            if self.flags.ctx_escaped {
                                w |= CTX;
                            }
                        }
                        st.weak_from(a.exact(), Kind::flags(w));
                    }
                    if a.has(PARENT) {
                        // As for the frame; a callback may get the pointer.
                        let mut w = SCALAR;
                        if self.has_callbacks {
                            self.parent_escapes();
                            w |= CTX | OTHER;
                        }
                        weak_from(&mut st.pslots, a.parent_exact(), Kind::flags(w));
                    }
                    if r >= 2 && a.has(CTX) {
                        self.flags.ctx_to_callbacks = true;
                    }
                }
                clobber_args(st);
            }
            Op::LdPacket { .. } | Op::TailCall => clobber_args(st),
            Op::Exit => {
                let mut ret = [Kind::OTHER; NRET];
                ret.copy_from_slice(&st.regs[..NRET]);
                // The callee's own stack pointers dangle after return (in registers and in the
                // parent frame alike).
                let ret = ret.map(Kind::other_frame);
                return Some(Event::Exit(ret, st.pslots.map(Kind::other_frame)));
            }
            Op::Ja { .. } | Op::Jump { .. } | Op::MayGoto { .. } | Op::Nospec => {}
        }
        None
    }

    fn merge(&mut self, b: BlockId, st: &State) {
        match &mut self.entry[b.idx()] {
            slot @ None => {
                *slot = Some(st.clone());
                self.work.push(b);
            }
            Some(old) => {
                if old.join_from(st, self.with_parent) {
                    self.work.push(b);
                }
            }
        }
    }

    fn enter(&mut self, s: SubprogId, args: [Kind; NARGS], parent: [Kind; STACK_SLOTS]) {
        let e = self.cfg.subprog(s).entry();
        let slots = if s == SubprogId::MAIN { Kind::OTHER } else { self.stale() };
        self.merge(e, &State::entry(args, slots, parent));
    }

    fn handle(&mut self, ev: Event, sp: SubprogId) {
        match ev {
            Event::Call(s, args, parent) => self.enter(s, args, parent),
            Event::Callback(s) => {
                let a = self.callback_args();
                self.enter(s, a, NO_PARENT);
            }
            Event::Exit(k, parent) => {
                let old = self.ret[sp.idx()];
                let mut j = old;
                for (x, y) in j.iter_mut().zip(k) {
                    *x = x.join(y);
                }
                let old_p = self.ret_parent[sp.idx()];
                let mut jp = old_p;
                for (x, y) in jp.iter_mut().zip(parent) {
                    *x = x.join(y);
                }
                if j != old || jp != old_p {
                    self.ret[sp.idx()] = j;
                    self.ret_parent[sp.idx()] = jp;
                    let callers: Vec<InsnIdx> = self.cfg.subprog(sp).callers.clone();
                    for c in callers {
                        self.work.push(self.cfg.block_of(c));
                    }
                }
            }
        }
    }

    fn run(&mut self) {
        let nb = self.cfg.blocks().len();
        self.entry = vec![None; nb];
        self.ret = vec![[Kind::BOTTOM; NRET]; self.cfg.subprogs().len()];
        self.ret_parent = vec![[Kind::BOTTOM; STACK_SLOTS]; self.cfg.subprogs().len()];
        self.work = Worklist::new(nb);
        let mut main = [Kind::OTHER; NARGS];
        main[1] = Kind::CTX;
        // A section other sections call into is a library (libbpf's `.text` beside programs):
        // its first function is not a program either (unless declared one); it starts with
        // what calls pass, if any.
        let main_start = self.cfg.subprog(SubprogId::MAIN).start;
        if self.calls.is_empty() || self.ctx_entries.contains(&main_start) {
            self.merge(self.cfg.subprog(SubprogId::MAIN).entry(), &State::entry(main, Kind::OTHER, NO_PARENT));
        }
        // Other programs of the section start as the main program does.
        for sp in self.cfg.subprogs().iter().skip(1) {
            if sp.external && self.ctx_entries.contains(&sp.start) {
                self.merge(sp.entry(), &State::entry(main, Kind::OTHER, NO_PARENT));
            }
        }
        // Entries called from other sections start with what the calls pass.
        for (k, sp) in self.cfg.subprogs().iter().enumerate() {
            for (_, site) in self.calls.iter().filter(|(at, _)| *at == sp.start) {
                match site.frame {
                    Some(f) => self.enter(SubprogId(to_u32(k)), f.regs, f.slots),
                    None => self.enter(SubprogId(to_u32(k)), site.regs.map(CtxArg::kind), NO_PARENT),
                }
            }
        }
        while let Some(b) = self.work.pop() {
            let Some(mut st) = self.entry[b.idx()].clone() else { continue };
            let blk = self.cfg.block(b).clone();
            for i in blk.insns() {
                if let Some(ev) = self.transfer(&mut st, self.cfg.prog().op(i), i, None) {
                    self.handle(ev, blk.subprog);
                }
            }
            for s in blk.succs() {
                self.merge(s, &st);
            }
        }
    }
}

/// Result of the pointer-kind analysis.
#[derive(Clone, Debug)]
pub struct PtrKinds {
    access: Vec<Option<Access>>,
    depth: Vec<Option<u32>>,
    #[cfg_attr(not(any(test, feature = "internals")), allow(dead_code))] // read by the tests
    ctx_escaped: bool,
    call_sites: Vec<(InsnIdx, CallSite)>,
}

impl PtrKinds {
    /// Runs the analysis on `cfg` (r1 holds the context at entry of the main program).
    #[must_use]
    #[cfg(any(test, feature = "internals"))]
    pub fn analyze(cfg: &Cfg) -> PtrKinds {
        PtrKinds::analyze_calls(cfg, &[], &Entries::default())
    }

    /// Runs the analysis on `cfg`, where `opaque[i]` marks instruction `i` as one whose
    /// immediate and offset a loader fills in later (indices past the end are not opaque): its
    /// memory access has an unknown offset from its base, and a stack pointer it defines has an
    /// unknown offset (so a stack access through either makes the frame's depth unknown).
    /// The external subprograms starting at [`Entries::programs`] are programs of their own (an
    /// object section's other programs): r1 holds the context at their entry, as at the main
    /// program's. Other external entries are only reached through calls: the calls into the
    /// section from other sections ([`Entries::calls`]) each start their external subprogram
    /// with the registers they pass.
    #[must_use]
    pub fn analyze_calls(cfg: &Cfg, opaque: &[bool], entries: &Entries<'_>) -> PtrKinds {
        let has_callbacks = cfg.subprogs().iter().any(|s| s.is_callback());
        // Memory a caller in another section hands over may hold the context.
        let ctx_escaped = entries.calls.iter().any(|c| c.1.ctx_in_memory);
        let mut solver = Solver {
            cfg,
            opaque,
            ctx_entries: entries.programs,
            calls: entries.calls,
            flags: Flags { ctx_escaped, ..Flags::default() },
            has_callbacks,
            with_parent: entries.calls.iter().any(|c| c.1.frame.is_some()),
            entry: Vec::new(),
            ret: Vec::new(),
            ret_parent: Vec::new(),
            work: Worklist::new(0),
        };
        // Flags only ever get set; rerun until a whole run starts and ends with the same flags.
        loop {
            let before = solver.flags;
            solver.run();
            if solver.flags == before {
                break;
            }
        }
        let n = cfg.prog().len();
        let mut access = vec![None; n];
        let mut call_sites = Vec::new();
        let mut depth: Vec<Option<u32>> = vec![Some(0); cfg.subprogs().len()];
        for (bi, blk) in cfg.blocks().iter().enumerate() {
            let Some(mut st) = solver.entry[bi].clone() else { continue };
            for i in blk.insns() {
                let op = cfg.prog().op(i);
                // What calls leaving the section pass (a local call's target is in the section).
                if matches!(op, Op::Call(c) if !matches!(c, CallKind::Local(_))) {
                    let mut regs = [CtxArg::NotCtx; NARGS];
                    for (r, k) in regs.iter_mut().zip(&st.regs) {
                        *r = CtxArg::of(*k);
                    }
                    let stack_arg = st.regs[..NARGS].iter().any(|k| k.has(STACK));
                    let parent_arg = st.regs[..NARGS].iter().any(|k| k.has(PARENT));
                    // The frame is the callee's to track unless pointers into it may be in memory.
                    let frame = (stack_arg && !solver.flags.stack_escaped).then(|| {
                        let mut regs = [Kind::OTHER; NARGS];
                        for (r, k) in regs.iter_mut().zip(&st.regs) {
                            *r = k.to_callee();
                        }
                        CallerFrame { regs, slots: st.slots.map(Kind::to_callee) }
                    });
                    let ctx_in_memory = solver.flags.ctx_escaped
                        || (stack_arg && frame.is_none() && st.any_slot_has(CTX))
                        || (parent_arg && st.pslots.iter().any(|k| k.has(CTX)));
                    call_sites.push((i, CallSite { regs, ctx_in_memory, frame }));
                }
                // Stack pointers handed to calls extend the frame the callee or helper may touch.
                if matches!(op, Op::Call(_) | Op::Callx(_)) {
                    for r in 1..6 {
                        let a = st.regs[r];
                        let d = &mut depth[blk.subprog.idx()];
                        match a.exact() {
                            Some(o) => raise(d, -i64::from(o)),
                            None if a.has(STACK) => *d = None,
                            None => {}
                        }
                    }
                }
                let _ = solver.transfer(&mut st, op, i, Some(&mut access));
                if let (Some(acc), Some(off)) = (access[i.idx()], mem_off(op)) {
                    let d = &mut depth[blk.subprog.idx()];
                    match acc.exact {
                        Some(o) => raise(d, -(i64::from(o) + i64::from(off))),
                        None if acc.stacky => *d = None,
                        None => {}
                    }
                }
            }
        }
        call_sites.sort_unstable_by_key(|c| c.0);
        PtrKinds { access, depth, ctx_escaped: solver.flags.ctx_escaped, call_sites }
    }

    /// What r0..r9 hold at the call at `i`, for calls that leave the section (helpers, kfuncs,
    /// and calls an object relocates into another section, which the section sees as kfunc
    /// calls); `None` for other instructions and unreached calls. The callee's
    /// [`Entries::calls`] record.
    #[must_use]
    pub fn call_site(&self, i: InsnIdx) -> Option<CallSite> {
        self.call_sites.binary_search_by_key(&i, |c| c.0).ok().map(|k| self.call_sites[k].1)
    }

    /// The base of the load, store or atomic at `i`; `None` if `i` is not one or is never reached.
    #[must_use]
    pub fn base(&self, i: InsnIdx) -> Option<Base> {
        self.access[i.idx()].map(|a| a.base)
    }

    /// Whether the load, store or atomic at `i` is a context access in every program the kernel
    /// accepts: its base is [`Base::Ctx`], or may be the context and is otherwise a scalar (the
    /// verifier refuses an access through a scalar, and one instruction used with the context
    /// on one path and another pointer on another, `reg_type_mismatch_ok()`: so where it
    /// accepts the program the base is the context on every path). Not for a context rewrite
    /// (an interpreter runs programs the kernel refuses); for `zext`, which follows the kernel.
    #[must_use]
    pub fn ctx_if_accepted(&self, i: InsnIdx) -> bool {
        self.access[i.idx()].is_some_and(|a| a.base == Base::Ctx || a.ctx_or_scalar)
    }

    /// The exact frame offset of the base register of the access at `i`, when it is a stack
    /// pointer with a known offset.
    #[must_use]
    #[cfg(any(test, feature = "internals"))]
    pub fn stack_offset(&self, i: InsnIdx) -> Option<i32> {
        self.access[i.idx()].and_then(|a| a.exact)
    }

    /// Bytes of stack subprogram `s` uses below its frame pointer (the largest `-offset` of any
    /// access or of any stack pointer passed to a call); `None` when a stack access has an
    /// unknown offset.
    #[must_use]
    pub fn stack_depth(&self, s: SubprogId) -> Option<u32> {
        self.depth[s.idx()]
    }

    /// Whether the context pointer may have been stored where the analysis cannot follow it.
    #[must_use]
    #[cfg(any(test, feature = "internals"))]
    pub fn ctx_escaped(&self) -> bool {
        self.ctx_escaped
    }
}

fn raise(d: &mut Option<u32>, v: i64) {
    if let Some(x) = d {
        let v = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        *x = (*x).max(v);
    }
}

fn mem_off(op: &Op) -> Option<i16> {
    match *op {
        Op::Load { off, .. } | Op::Store { off, .. } | Op::Atomic { off, .. } => Some(off),
        _ => None,
    }
}
