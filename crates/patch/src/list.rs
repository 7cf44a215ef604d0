//! The patch list: an arena of slot nodes linked in program order, with symbolic targets.
//!
//! Storage is structure-of-arrays (one `Vec` per field, `u32` indices), so the linearizer's hot
//! loop touches only `flags`, `insn` and `next`. Nodes `0..n` are the original slots, node `n`
//! is the end sentinel, later nodes are inserted slots. See the crate documentation for the
//! model; the invariants maintained here are:
//!
//! - **I1 (ld_imm64 pairs)**: a node whose instruction is an ld_imm64 first slot is directly
//!   followed by its `F_TAIL` node; both are live or both are deleted. Nothing is ever inserted
//!   between them and no reference targets a live tail (the deleted second slot of a replaced
//!   pair stays linked after the patch and may be the "one past the end" of a later one: a
//!   position in a deleted run, I2).
//! - **I2 (deleted runs are sealed)**: nothing is inserted between a deleted node and its
//!   successor. Insertions "before x" (skip prepatch, append) go before the maximal deleted run
//!   that precedes x. Hence "first live node at or after a deleted node" never changes except by
//!   further deletions, and a jump bound to a deleted node lands where it landed when the node
//!   was deleted (the kernel's collapse to the first survivor).
//! - **I3 (jump groups)**: a jump-kind reference to node `x` resolves to the first emitted slot at
//!   or after `x`. Jump groups never move except by deletion (I2).
//! - **I4 (call groups)**: call-kind references (calls, `PSEUDO_FUNC`, subprogram starts, labels'
//!   call side) hold a *handle*: a node (its implicit call group) or an explicit group. A skip
//!   prepatch at `x` moves `x`'s current call group to the first inserted node and gives `x` a
//!   fresh explicit group; a deletion merges each newly deleted node's current group into the
//!   group current at the first survivor at that moment (a snapshot stored on the deleted node).
//!   Every edge points to a group that was current when the edge was created, which keeps the
//!   chains acyclic; linearization resolves them iteratively with memoization. A call-kind
//!   reference made by a request takes the *current* handle of the live node it names (the
//!   fresh group after a skip prepatch; past a deleted run, the survivor's), and a skipping
//!   prepatch's own reference to its instruction takes the fresh group that request creates:
//!   a call lands on the instruction its target holds when it is made (crate docs, "calls").
//! - **I5 (origins)**: each original slot's identity (aux, relocations) lives on exactly one
//!   node, `orig_node[slot]`; `patch` moves it to the last instruction of the buffer, a landing
//!   prepatch to the node that now holds the original instruction.
//! - **I6 (pending patches)**: a `patch` of a *pristine* original node (never patched, moved,
//!   deleted or re-grouped) with a node above every pending one, whose buffer holds plain slots,
//!   `OrigTarget` jumps and buffer-local jumps, is not applied to the arrays: its slots and
//!   resolved references are appended to the pending log (`pending.rs`, the only code that
//!   knows its layout), and the node gets `F_LOGGED`. Its new nodes keep the ids `patch` would have allocated (`vnodes` counts
//!   them), `orig_node` and `live_slots` are updated at once (and an ld_imm64's second slot is
//!   deleted at once, as `patch` does). Every other request first `flush`es the log, applying
//!   each pending patch exactly as `patch` would have; queries read through `view`, and the
//!   walks of `linearize` stream a pending patch's slots from the pool (original nodes are
//!   visited in increasing order, so one cursor over the log serves a whole walk). This is the
//!   common case of a pass (blinding, instrumentation) and costs one copy of the buffer (a
//!   `memcpy` of [`PatchBuf`]'s contiguous slots; a patch without jump-class slots is streamed
//!   into the output as whole slices).

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (checked whenever nodes
// or labels are allocated), so the usize <-> u32 conversions in this module cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use crate::buf::{PatchBuf, Target};
use crate::error::{Error, Result};
use crate::ids::{Label, NodeId, SubprogId};
use crate::pending::Pending;
use bpfpatch_insn::{Insn, Slot, TargetKind};
use std::collections::HashMap;

/// No node / no reference.
pub(crate) const NONE: u32 = u32::MAX;
/// Reference bit: the low bits index `labels`.
pub(crate) const LABEL_BIT: u32 = 1 << 31;
/// Reference bit: the low bits index `cgroups` (an explicit call group).
pub(crate) const EXPL_BIT: u32 = 1 << 30;
/// Origin bit: the node is new and descends from original slot `origin & !PARENT_BIT`.
pub(crate) const PARENT_BIT: u32 = 1 << 31;
/// Marker used in the resolution scratch for ld_imm64 second slots of a buffer.
const TAIL_MARK: u32 = u32::MAX - 1;
/// Maximum number of nodes (and labels, call groups): node ids, handles and positions fit in 30 bits.
pub const MAX_NODES: usize = 1 << 30;

/// Node flag: deleted.
pub(crate) const F_DELETED: u8 = 1;
/// Node flag: `tgt` holds a reference that linearization resolves.
pub(crate) const F_TGT: u8 = 2;
/// Node flag: second slot of an ld_imm64.
pub(crate) const F_TAIL: u8 = 4;
/// Node flag: the origin this node carries was involved in a patch (aux `patched` hook applies).
pub(crate) const F_TOUCHED: u8 = 8;
/// Node flag: the implicit call group of this node was moved (see `cmoved`).
pub(crate) const F_CMOVED: u8 = 16;
/// Node flag: this node's current call group is explicit (see `cfresh`).
pub(crate) const F_CFRESH: u8 = 32;
/// Node flag: a pending patch of the log replaces this original node (see `log`).
pub(crate) const F_LOGGED: u8 = 64;

/// How code inserted before an instruction is entered (see the crate documentation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PrepatchMode {
    /// Everything that reached the instruction (jumps, calls, function references, labels)
    /// now reaches the inserted code first: instrumentation. Kernel equivalent: patching the
    /// instruction with `[buf..., insn]`.
    LandOnInserted,
    /// Jumps keep landing on the instruction (they skip the inserted code); calls, function
    /// references and subprogram starts enter the inserted code: a prologue. Kernel equivalent:
    /// patching with `[buf..., insn]` followed by `adjust_jmp_off`.
    SkipForJumps,
}

/// The nodes of an applied patch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Patched {
    /// Node holding the first slot of the buffer.
    pub first: NodeId,
    /// Node holding the last slot of the buffer.
    pub last: NodeId,
    /// Node holding the original instruction after the request (for `patch` the last
    /// instruction of the buffer, which now carries the original's identity).
    pub orig: NodeId,
    /// Number of buffer slots.
    len: u32,
}

impl Patched {
    /// The node of every slot of the buffer, in program order (an ld_imm64 second slot
    /// included): `first`, then the nodes allocated for slots `1..` (contiguous, ending at `last`).
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        slot_nodes(self.first, self.last, self.len)
    }

    /// Number of buffer slots (an ld_imm64 counts two).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always `false`: a patch has at least one slot (for clippy's `len_without_is_empty`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// `first`, then `last - (len - 2) ..= last`: how every request lays out its buffer's nodes.
fn slot_nodes(first: NodeId, last: NodeId, len: u32) -> impl Iterator<Item = NodeId> {
    // Slots 1.. are `len - 1` contiguous nodes ending at `last` (none for a one-slot buffer).
    let rest = (last.0 + 2).saturating_sub(len)..last.0 + 1;
    let rest = if len > 1 { rest } else { 0..0 };
    core::iter::once(first).chain(rest.map(NodeId))
}

/// A new subprogram created by [`PatchList::append`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Appended {
    /// Its id (usable in [`Target::Subprog`]).
    pub subprog: SubprogId,
    /// Node of its first slot.
    pub first: NodeId,
    /// Node of its last slot.
    pub last: NodeId,
    /// Number of slots.
    len: u32,
}

impl Appended {
    /// The node of every slot of the new subprogram, in program order (see [`Patched::nodes`]).
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        slot_nodes(self.first, self.last, self.len)
    }
}

/// A program under patching: create it from a program, patch it (any number of passes), then
/// linearize it once. Alias of the RFC's `bpf_create_list_insn` result.
#[doc(alias = "bpf_create_list_insn")]
#[doc(alias = "bpf_list_insn")]
#[derive(Clone, Debug, Default)]
pub struct PatchList {
    pub(crate) insn: Vec<Insn>,
    pub(crate) next: Vec<u32>,
    /// Predecessor links, maintained only once an insertion "before" a node needed them
    /// (`prev_ok`): most lists are only patched forward and never read them.
    pub(crate) prev: Vec<u32>,
    pub(crate) prev_ok: bool,
    /// Live node: its reference (if `F_TGT`). Deleted node: find-live parent pointer. Any
    /// other entry is stale and never read.
    pub(crate) tgt: Vec<u32>,
    /// Live node: original slot, `PARENT_BIT | slot`, or `NONE`. Deleted node: call-group
    /// snapshot handle or `NONE` (lazy: the group of the next node).
    pub(crate) origin: Vec<u32>,
    pub(crate) flags: Vec<u8>,
    pub(crate) orig_len: u32,
    pub(crate) head: u32,
    pub(crate) orig_node: Vec<u32>,
    /// Per label: (jump node, call handle), `NONE` while unbound.
    pub(crate) labels: Vec<(u32, u32)>,
    /// Per subprogram: call handle of its start.
    pub(crate) subprogs: Vec<u32>,
    pub(crate) orig_subprogs: u32,
    /// Explicit call groups (created by skip prepatches).
    pub(crate) cgroups: Vec<CGroup>,
    pub(crate) cmoved: HashMap<u32, u32>,
    pub(crate) cfresh: HashMap<u32, u32>,
    pub(crate) live_slots: usize,
    pub(crate) scratch: Vec<u32>,
    /// Pending patches (I6), in increasing original node.
    pub(crate) pending: Pending,
}

/// An explicit call group: a set of call-kind references that land together.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CGroup {
    /// The group it was merged into, or `NONE` while it is bound to `node`.
    pub(crate) parent: u32,
    /// The node it is bound to while it has no parent.
    pub(crate) node: u32,
    /// Whether the merge into `parent` was caused by a deletion (insn-array "deleted" marker).
    pub(crate) crossed: bool,
}

/// A node's fields as seen through the log of pending patches (see [`PatchList::view`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodeView {
    pub(crate) insn: Insn,
    pub(crate) f: u8,
    pub(crate) next: u32,
    pub(crate) origin: u32,
}

impl Default for NodeView {
    /// The view of an unknown node: deleted, linked nowhere.
    fn default() -> NodeView {
        NodeView { insn: Insn::default(), f: F_DELETED, next: NONE, origin: NONE }
    }
}

/// Whether a slot is of the jump classes (the slots of a logged patch that hold a reference).
#[inline]
pub(crate) fn is_jump_class(insn: &Insn) -> bool {
    let class = insn.code & bpfpatch_insn::opcode::CLASS_MASK;
    class == bpfpatch_insn::opcode::JMP || class == bpfpatch_insn::opcode::JMP32
}

/// `at + rel + 1` (a PC-relative target), and the same as an index when it is not negative.
fn abs_target(at: usize, rel: i64) -> (i64, Option<usize>) {
    let t = i64::try_from(at).unwrap_or(i64::MAX).saturating_add(rel).saturating_add(1);
    (t, usize::try_from(t).ok())
}

/// Parameters of one buffer resolution.
struct Plan {
    /// Node of buffer slot 0.
    first: u32,
    /// Node of buffer slot 1 (slots follow contiguously).
    base: u32,
    /// Node meant by "one past the end", `NONE` for append.
    past_end: u32,
    /// The call handle a call-kind reference to "one past the end" gets: the group current at
    /// the first live node after the patch, or the fresh group a skipping prepatch is about to
    /// give its instruction (I4); `NONE` when `past_end` is a new node (its implicit group).
    past_end_call: u32,
    /// The patched instruction's reference: `None` for append, `Some(NONE)` if it has none.
    orig_target: Option<u32>,
    /// Whether that reference is call-kind (a call or `PSEUDO_FUNC`): `OrigTarget` keeps the kind.
    orig_call: bool,
}

/// Whether `insn`'s target field (if any) is call-kind (a bpf-to-bpf call or `PSEUDO_FUNC`).
#[inline]
fn is_call_kind(insn: &Insn) -> bool {
    matches!(insn.target_field(), Some((_, TargetKind::Call | TargetKind::FuncRef)))
}

impl PatchList {
    /// Builds the list of a program. Subprogram starts are computed as the kernel does
    /// (`add_subprog_and_kfunc`): slot 0 and every pseudo-call / `PSEUDO_FUNC` target.
    ///
    /// # Errors
    /// A target outside the program or into an ld_imm64 second slot, a truncated ld_imm64, or a
    /// program above [`MAX_NODES`].
    #[doc(alias = "bpf_create_list_insn")]
    pub fn new(insns: &[Insn]) -> Result<PatchList> {
        let mut l = PatchList::default();
        l.reset(insns, None)?;
        Ok(l)
    }

    /// Builds the list with an explicit subprogram start table (strictly increasing from 0).
    ///
    /// # Errors
    /// As [`PatchList::new`], plus [`Error::BadSubprogStart`].
    pub fn with_subprogs(insns: &[Insn], starts: &[u32]) -> Result<PatchList> {
        let mut l = PatchList::default();
        l.reset(insns, Some(starts))?;
        Ok(l)
    }

    /// Rebuilds this list for another program, keeping every allocation (for the reuse path).
    ///
    /// # Errors
    /// As [`PatchList::with_subprogs`] (`starts == None` computes them). On error the list is empty.
    pub fn reset(&mut self, insns: &[Insn], starts: Option<&[u32]>) -> Result<()> {
        let mut tgt = core::mem::take(&mut self.tgt);
        self.clear_all();
        let n = insns.len();
        if n + 1 > MAX_NODES {
            return Err(Error::TooLarge { nodes: n + 1, limit: MAX_NODES });
        }
        let n32 = u32::try_from(n).map_err(|_| Error::TooLarge { nodes: n, limit: MAX_NODES })?;
        // `tgt` is read only under F_TGT or F_DELETED, which both write it first: a reused
        // table keeps its old contents (no fill), a new one comes zeroed from the allocator.
        if tgt.capacity() < n + 1 {
            tgt = vec![0; n + 1];
        } else {
            tgt.truncate(n + 1);
            tgt.resize(n + 1, NONE);
        }
        self.tgt = tgt;
        // Exact sizes first: a fresh list allocates each array once (no growth copy).
        self.insn.reserve(n + 1);
        self.next.reserve(n + 1);
        self.origin.reserve(n + 1);
        self.flags.reserve(n + 1);
        self.orig_node.reserve(n);
        self.insn.extend_from_slice(insns);
        self.insn.push(Insn::default());
        self.next.extend(1..=n32);
        self.next.push(NONE);
        self.origin.extend(0..n32);
        self.origin.push(NONE);
        self.flags.resize(n + 1, 0);
        self.orig_node.extend(0..n32);
        self.orig_len = n32;
        self.head = 0;
        self.live_slots = n;
        // Pass 1: ld_imm64 pairs.
        let mut i = 0;
        while i < n {
            if insns[i].is_ld_imm64() {
                if i + 1 >= n {
                    let e = Error::TruncatedLdImm64 { slot: Slot(i) };
                    self.clear_all();
                    return Err(e);
                }
                self.flags[i + 1] = F_TAIL;
                i += 2;
            } else {
                i += 1;
            }
        }
        // Pass 2: targets.
        let mut calls: Vec<u32> = Vec::new();
        for (i, insn) in insns.iter().enumerate() {
            // Only jumps, calls and ld_imm64 have a target field (cheap test first).
            if self.flags[i] & F_TAIL != 0 || !(is_jump_class(insn) || insn.is_ld_imm64()) {
                continue;
            }
            let Some(rel) = insn.rel_target() else { continue };
            let (t, idx) = abs_target(i, rel);
            let Some(tu) = idx.filter(|&u| u < n) else {
                self.clear_all();
                return Err(Error::OrigTargetOutOfRange { slot: Slot(i), target: t, len: n });
            };
            if self.flags[tu] & F_TAIL != 0 {
                self.clear_all();
                return Err(Error::OrigTargetIntoLdImm64 { slot: Slot(i), target: tu });
            }
            self.tgt[i] = tu as u32;
            self.flags[i] |= F_TGT;
            if starts.is_none() && matches!(insn.target_field(), Some((_, TargetKind::Call | TargetKind::FuncRef))) {
                calls.push(tu as u32);
            }
        }
        match starts {
            Some(s) => {
                for (k, &st) in s.iter().enumerate() {
                    let ok = (k == 0 && st == 0 || k > 0 && st > s[k - 1])
                        && (st as usize) < n
                        && self.flags[st as usize] & F_TAIL == 0;
                    if !ok {
                        self.clear_all();
                        return Err(Error::BadSubprogStart { index: k, start: st as usize });
                    }
                }
                self.subprogs.extend_from_slice(s);
            }
            None => {
                if n > 0 {
                    calls.push(0);
                    calls.sort_unstable();
                    calls.dedup();
                    self.subprogs.extend_from_slice(&calls);
                }
            }
        }
        self.orig_subprogs = self.subprogs.len() as u32;
        Ok(())
    }

    fn clear_all(&mut self) {
        self.insn.clear();
        self.next.clear();
        self.prev.clear();
        self.prev_ok = false;
        self.tgt.clear();
        self.origin.clear();
        self.flags.clear();
        self.orig_node.clear();
        self.labels.clear();
        self.subprogs.clear();
        self.cgroups.clear();
        self.cmoved.clear();
        self.cfresh.clear();
        self.pending.clear();
        self.orig_len = 0;
        self.head = 0;
        self.orig_subprogs = 0;
        self.live_slots = 0;
    }

    // ------------------------------------------------------------------ queries

    /// Number of slots in the original program.
    #[must_use]
    pub fn orig_len(&self) -> usize {
        self.orig_len as usize
    }

    /// Number of slots the list would linearize to now (before any jump relaxation).
    #[must_use]
    pub fn live_len(&self) -> usize {
        self.live_slots
    }

    /// Number of nodes allocated (original, sentinel and inserted, live or deleted).
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.vnodes()
    }

    /// Number of nodes including the new nodes of pending patches (their ids are allocated).
    #[inline]
    pub(crate) fn vnodes(&self) -> usize {
        self.insn.len() + self.pending.new_nodes()
    }

    /// The end sentinel's node.
    pub(crate) fn end(&self) -> u32 {
        self.orig_len
    }

    /// The node of original slot `slot` (its position; after a landing prepatch it holds the
    /// inserted code).
    ///
    /// # Errors
    /// [`Error::NoSuchNode`] when `slot` is outside the original program,
    /// [`Error::LdImm64Tail`] when it is the second slot of an original ld_imm64 (nothing can
    /// target, patch or delete it on its own).
    pub fn node_of(&self, slot: Slot) -> Result<NodeId> {
        if slot.0 >= self.orig_len() {
            return Err(Error::NoSuchNode { node: NodeId::of_slot(slot) });
        }
        let node = NodeId(slot.0 as u32);
        // I1: an original second slot keeps `F_TAIL` for good (only slot 0 of a buffer is ever
        // written to an original node, and it is never a tail).
        if self.flags[slot.0] & F_TAIL != 0 {
            return Err(Error::LdImm64Tail { node });
        }
        Ok(node)
    }

    /// The node now carrying original slot `slot`'s identity (aux data, relocations), if the
    /// slot exists and was not deleted.
    #[must_use]
    pub fn node_of_orig(&self, slot: Slot) -> Option<NodeId> {
        let x = *self.orig_node.get(slot.0)?;
        // A node of a pending patch (beyond the arrays) is live.
        (self.flags.get(x as usize).is_none_or(|f| f & F_DELETED == 0)).then_some(NodeId(x))
    }

    /// The instruction held by a node (`None` for unknown nodes and the sentinel).
    #[must_use]
    pub fn insn(&self, node: NodeId) -> Option<Insn> {
        let x = node.index();
        (x < self.vnodes() && node.0 != self.end()).then(|| self.view(node.0).insn)
    }

    /// Whether the node was deleted.
    #[must_use]
    pub fn is_deleted(&self, node: NodeId) -> bool {
        self.flags.get(node.index()).is_some_and(|f| f & F_DELETED != 0)
    }

    /// The original slot whose identity this live node carries, if any.
    #[must_use]
    pub fn origin(&self, node: NodeId) -> Option<Slot> {
        if node.index() >= self.vnodes() {
            return None;
        }
        let v = self.view(node.0);
        let o = v.origin;
        (v.f & F_DELETED == 0 && o != NONE && o & PARENT_BIT == 0).then_some(Slot(o as usize))
    }

    /// The next live instruction after `node` (skipping ld_imm64 second slots and deleted
    /// nodes), `None` at the end. Works from deleted nodes too.
    #[must_use]
    pub fn next_insn(&self, node: NodeId) -> Option<NodeId> {
        let end = self.end();
        if node.index() >= self.vnodes() {
            return None;
        }
        let mut x = self.view(node.0).next;
        while x != end && x != NONE {
            let v = self.view(x);
            if v.f & (F_DELETED | F_TAIL) == 0 {
                return Some(NodeId(x));
            }
            x = v.next;
        }
        None
    }

    /// The first live instruction, `None` for an empty list.
    #[must_use]
    pub fn first_insn(&self) -> Option<NodeId> {
        let x = self.head;
        if x == self.end() {
            return None;
        }
        if self.view(x).f & (F_DELETED | F_TAIL) == 0 { Some(NodeId(x)) } else { self.next_insn(NodeId(x)) }
    }

    /// Live instructions in program order: node and first slot.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, Insn)> + '_ {
        let mut cur = self.first_insn();
        core::iter::from_fn(move || {
            let n = cur?;
            cur = self.next_insn(n);
            Some((n, self.view(n.0).insn))
        })
    }

    /// Live slots in program order (ld_imm64 second slots included): what `linearize` will emit,
    /// before jump fields are resolved.
    pub fn slots(&self) -> impl Iterator<Item = (NodeId, Insn)> + '_ {
        let end = self.end();
        let mut x = self.head;
        core::iter::from_fn(move || {
            while x != end && x != NONE {
                let cur = x;
                let v = self.view(cur);
                x = v.next;
                if v.f & F_DELETED == 0 {
                    return Some((NodeId(cur), v.insn));
                }
            }
            None
        })
    }

    /// Number of subprograms known to the list (original and appended).
    #[must_use]
    pub fn subprog_count(&self) -> usize {
        self.subprogs.len()
    }

    /// Number of original subprograms.
    #[must_use]
    pub fn orig_subprog_count(&self) -> usize {
        self.orig_subprogs as usize
    }

    // ------------------------------------------------------------------ helpers

    /// A live instruction node (not sentinel, not deleted, not a tail).
    #[inline]
    fn live_insn(&self, node: NodeId) -> Result<u32> {
        let x = node.0;
        if x as usize >= self.insn.len() || x == self.end() {
            return Err(Error::NoSuchNode { node });
        }
        let f = self.flags[x as usize];
        if f & F_DELETED != 0 {
            return Err(Error::NodeDeleted { node });
        }
        if f & F_TAIL != 0 {
            return Err(Error::LdImm64Tail { node });
        }
        Ok(x)
    }

    /// The last slot node of the instruction at `x` (its tail for an ld_imm64).
    #[inline]
    fn last_slot(&self, x: u32) -> u32 {
        // Pending patches hold no ld_imm64.
        if x as usize >= self.insn.len() || self.flags[x as usize] & F_LOGGED != 0 {
            return x;
        }
        let nx = self.next[x as usize];
        if self.insn[x as usize].is_ld_imm64() && nx != NONE && self.flags[nx as usize] & F_TAIL != 0 { nx } else { x }
    }

    /// The current call handle of node `x`.
    #[inline]
    pub(crate) fn cur_handle(&self, x: u32) -> u32 {
        if self.flags[x as usize] & F_CFRESH != 0 {
            match self.cfresh.get(&x) {
                Some(&g) => EXPL_BIT | g,
                None => x,
            }
        } else {
            x
        }
    }

    /// First live node at or after `x` (the sentinel counts as live), compressing the
    /// find-live pointers of deleted nodes.
    fn find_live(&mut self, x: u32) -> u32 {
        let mut r = x;
        let mut guard = self.insn.len();
        while r != NONE && self.flags[r as usize] & F_DELETED != 0 && guard > 0 {
            r = self.tgt[r as usize];
            guard -= 1;
        }
        let mut c = x;
        while c != NONE && c != r && self.flags[c as usize] & F_DELETED != 0 {
            let nx = self.tgt[c as usize];
            self.tgt[c as usize] = r;
            c = nx;
        }
        r
    }

    /// The node after which code goes to be inserted "before `x`": `x`'s predecessor, skipping
    /// the deleted run directly before `x` (invariant I2). `NONE` means "at the head".
    fn insert_point_before(&mut self, x: u32) -> u32 {
        self.ensure_prev();
        let mut q = self.prev[x as usize];
        while q != NONE && self.flags[q as usize] & F_DELETED != 0 {
            q = self.prev[q as usize];
        }
        q
    }

    /// Builds the predecessor links from the list (once per list: afterwards every request
    /// maintains them).
    fn ensure_prev(&mut self) {
        if self.prev_ok {
            return;
        }
        self.prev.clear();
        self.prev.resize(self.insn.len(), NONE);
        let mut p = NONE;
        let mut x = self.head;
        let mut guard = self.insn.len();
        while x != NONE && guard > 0 {
            self.prev[x as usize] = p;
            p = x;
            x = self.next[x as usize];
            guard -= 1;
        }
        self.prev_ok = true;
    }

    fn check_room(&self, extra: usize) -> Result<()> {
        let nodes = self.vnodes() + extra;
        if nodes > MAX_NODES {
            return Err(Error::TooLarge { nodes, limit: MAX_NODES });
        }
        Ok(())
    }

    /// Allocates `k` unlinked nodes; returns the first id. (Pushes rather than `resize`: patch
    /// buffers are a few slots, and this is on the per-patch path.)
    #[inline]
    fn alloc(&mut self, k: usize) -> u32 {
        let base = self.insn.len() as u32;
        for _ in 0..k {
            self.insn.push(Insn::default());
            self.next.push(NONE);
            if self.prev_ok {
                self.prev.push(NONE);
            }
            self.tgt.push(NONE);
            self.origin.push(NONE);
            self.flags.push(0);
        }
        base
    }

    /// Links the chain `first..=last` (already linked internally) between `after` (`NONE` = head) and its successor.
    #[inline]
    fn link_after(&mut self, after: u32, first: u32, last: u32) {
        let succ = if after == NONE { self.head } else { self.next[after as usize] };
        self.next[last as usize] = succ;
        if self.prev_ok {
            self.prev[first as usize] = after;
            if succ != NONE {
                self.prev[succ as usize] = last;
            }
        }
        if after == NONE {
            self.head = first;
        } else {
            self.next[after as usize] = first;
        }
    }

    /// Validates `buf` and resolves every target into `self.scratch` (one entry per buffer
    /// slot: a reference, `NONE`, or `TAIL_MARK`). Changes nothing else.
    #[inline]
    fn resolve_buf(&mut self, buf: &PatchBuf, plan: &Plan) -> Result<()> {
        let len = buf.len();
        if len == 0 {
            return Err(Error::EmptyPatch);
        }
        if len > crate::MAX_PATCH_SLOTS {
            return Err(Error::PatchTooLarge { len, limit: crate::MAX_PATCH_SLOTS });
        }
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.clear();
        if self.resolve_plain(buf, plan, &mut scratch) {
            self.scratch = scratch;
            return Ok(());
        }
        scratch.clear();
        // Pass 1: ld_imm64 second slots. Filled with plain pushes, not `resize`: a `memset`
        // (rep stos) of a few slots cannot forward to the loads of pass 2 and stalls them.
        let mut i = 0;
        let mut r = Ok(());
        while i < len {
            scratch.push(NONE);
            if buf.insns[i].is_ld_imm64() {
                if i + 1 >= len {
                    r = Err(Error::BufTruncatedLdImm64 { index: i });
                    break;
                }
                scratch.push(TAIL_MARK);
                i += 2;
            } else {
                i += 1;
            }
        }
        if r.is_ok() {
            r = self.resolve_buf_into(buf, plan, &mut scratch);
        }
        self.scratch = scratch;
        r
    }

    /// The common case of [`PatchList::resolve_buf`] in one pass: no ld_imm64 in the buffer,
    /// every slot either plain (no target field, no explicit target) or a jump whose target is
    /// [`Target::OrigTarget`] (the patched instruction has one) or a buffer-local offset.
    /// Returns `false`, with `scratch` partly written, when the general path must decide
    /// (including every error).
    #[inline]
    fn resolve_plain(&self, buf: &PatchBuf, plan: &Plan, scratch: &mut Vec<u32>) -> bool {
        let len = buf.len();
        for (i, insn) in buf.insns.iter().enumerate() {
            let target = buf.target(i);
            let r = if is_jump_class(insn) {
                match Self::plain_jump_ref(insn, target, i, len, plan) {
                    Some(r) => r,
                    None => return false,
                }
            } else if insn.is_ld_imm64() || target.is_some() {
                return false;
            } else {
                NONE
            };
            scratch.push(r);
        }
        true
    }

    /// The reference of jump-class buffer slot `i` for [`PatchList::resolve_plain`]: its
    /// `OrigTarget`, or a buffer-local jump; `None` for anything else.
    #[inline(always)]
    fn plain_jump_ref(insn: &Insn, target: Option<Target>, i: usize, len: usize, plan: &Plan) -> Option<u32> {
        let (field, kind) = insn.target_field()?;
        match target {
            Some(Target::OrigTarget) if (kind != TargetKind::Jump) == plan.orig_call => {
                plan.orig_target.filter(|&r| r != NONE)
            }
            None if kind == TargetKind::Jump => {
                let rel = match field {
                    bpfpatch_insn::TargetField::Off => i64::from(insn.off),
                    bpfpatch_insn::TargetField::Imm => i64::from(insn.imm),
                };
                let k = usize::try_from(abs_target(i, rel).0).ok().filter(|&k| k <= len)?;
                let node = if k == 0 {
                    plan.first
                } else if k == len {
                    plan.past_end
                } else {
                    plan.base + (k as u32 - 1)
                };
                (node != NONE).then_some(node)
            }
            _ => None,
        }
    }

    /// Pass 2 of [`PatchList::resolve_buf`]: `scratch` already marks the tails.
    fn resolve_buf_into(&self, buf: &PatchBuf, plan: &Plan, scratch: &mut [u32]) -> Result<()> {
        let len = buf.len();
        let node_of = |k: usize| -> u32 {
            if k == 0 {
                plan.first
            } else if k == len {
                plan.past_end
            } else {
                plan.base + (k as u32 - 1)
            }
        };
        for i in 0..len {
            let insn = buf.insns[i];
            let target = buf.target(i);
            if scratch[i] == TAIL_MARK {
                if target.is_some() {
                    return Err(Error::NotATargetInsn { index: i, code: insn.code });
                }
                continue;
            }
            // Cheap class test first: most buffer slots are not jumps, calls or ld_imm64.
            let class = insn.code & bpfpatch_insn::opcode::CLASS_MASK;
            let maybe = class == bpfpatch_insn::opcode::JMP
                || class == bpfpatch_insn::opcode::JMP32
                || insn.code == bpfpatch_insn::opcode::LD_IMM64;
            let field = if maybe { insn.target_field() } else { None };
            let call_kind = matches!(field, Some((_, TargetKind::Call | TargetKind::FuncRef)));
            let local = |k: i64| -> Result<u32> {
                let Some(k) = usize::try_from(k).ok().filter(|&k| k <= len) else {
                    return Err(Error::LocalTargetOutOfRange { index: i, target: k, len });
                };
                if k < len && scratch[k] == TAIL_MARK {
                    return Err(Error::TargetIntoLdImm64 { index: i });
                }
                let node = node_of(k);
                if node == NONE {
                    return Err(Error::TargetNeedsPatchPoint { index: i });
                }
                if !call_kind {
                    // I3: a jump lands on the first slot emitted at or after the node.
                    return Ok(node);
                }
                // I4: a call lands on the instruction the buffer slot names *now* and moves
                // like every call from then on. One past the end is the plan's handle (the
                // first live node's current group, or the fresh group of a skipping prepatch's
                // instruction). Existing nodes (slot 0 of `patch`, a landing prepatch and
                // `retarget`) may have moved their implicit group into an earlier prologue:
                // their current handle is the one that lands on them. New nodes (not allocated
                // yet) have their implicit group current.
                if k == len && plan.past_end_call != NONE {
                    return Ok(plan.past_end_call);
                }
                Ok(if (node as usize) < self.insn.len() { self.cur_handle(node) } else { node })
            };
            let r = match (target, field) {
                (None, None) => NONE,
                (Some(_), None) => return Err(Error::NotATargetInsn { index: i, code: insn.code }),
                (None, Some(_)) => {
                    let rel = insn.rel_target().unwrap_or(0);
                    local(abs_target(i, rel).0)?
                }
                (Some(t), Some(_)) => match t {
                    Target::Local(k) => local(i64::from(k))?,
                    Target::PastEnd => local(i64::try_from(len).unwrap_or(i64::MAX))?,
                    Target::OrigTarget => match plan.orig_target {
                        None => return Err(Error::TargetNeedsPatchPoint { index: i }),
                        Some(NONE) => return Err(Error::NoOrigTarget { index: i }),
                        Some(_) if call_kind != plan.orig_call => return Err(Error::OrigTargetKind { index: i }),
                        Some(r) => r,
                    },
                    Target::Orig(s) => {
                        if s.0 >= self.orig_len() {
                            return Err(Error::OrigSlotOutOfRange { index: i, slot: s, len: self.orig_len() });
                        }
                        self.node_ref(s.0 as u32, call_kind, i)?
                    }
                    Target::Node(n) => {
                        if n.index() >= self.insn.len() || n.0 == self.end() {
                            return Err(Error::TargetNoSuchNode { index: i, node: n });
                        }
                        self.node_ref(n.0, call_kind, i)?
                    }
                    Target::Label(l) => {
                        if l.index() >= self.labels.len() {
                            return Err(Error::UnknownLabel { label: l });
                        }
                        LABEL_BIT | l.0
                    }
                    Target::Subprog(s) => match self.subprogs.get(s.index()) {
                        Some(&h) => h,
                        None => return Err(Error::UnknownSubprog { index: i, subprog: s }),
                    },
                },
            };
            scratch[i] = r;
        }
        Ok(())
    }

    fn node_ref(&self, x: u32, call_kind: bool, index: usize) -> Result<u32> {
        let f = self.flags[x as usize];
        if f & F_TAIL != 0 {
            return Err(Error::TargetIntoLdImm64 { index });
        }
        if f & F_DELETED != 0 {
            // A new reference to deleted code has no position of its own (crate docs, "calls").
            return Err(Error::TargetDeleted { index, node: NodeId(x) });
        }
        Ok(if call_kind { self.cur_handle(x) } else { x })
    }

    /// Writes buffer slot `k` (with its resolved reference) into node `node`, keeping only the
    /// call-group flags of `keep`.
    #[inline(always)]
    fn write_slot(&mut self, node: u32, insn: Insn, k: usize, keep: u8) {
        let r = self.scratch[k];
        let x = node as usize;
        self.insn[x] = insn;
        let mut f = keep;
        if r == TAIL_MARK {
            f |= F_TAIL;
            self.tgt[x] = NONE;
        } else if r != NONE {
            f |= F_TGT;
            self.tgt[x] = r;
        } else {
            self.tgt[x] = NONE;
        }
        self.flags[x] = f;
    }

    /// Index of the last instruction (not tail) of the resolved buffer in `scratch`.
    fn last_insn_index(&self, len: usize) -> usize {
        if len >= 2 && self.scratch[len - 1] == TAIL_MARK { len - 2 } else { len - 1 }
    }

    // ------------------------------------------------------------------ requests

    /// Replaces the instruction at `node` (both slots of an ld_imm64) by `buf`.
    ///
    /// Everything that reached `node` reaches the first instruction of `buf`; the original
    /// instruction's identity (aux data, relocations) moves to the last instruction of `buf`.
    /// Returns the nodes of the patch; `node` itself holds `buf[0]`.
    ///
    /// # Errors
    /// An invalid node or buffer; the list is unchanged.
    #[doc(alias = "bpf_patch_list_insn")]
    #[doc(alias = "bpf_list_insn_replace")]
    pub fn patch(&mut self, node: NodeId, buf: &PatchBuf) -> Result<Patched> {
        match self.try_log(node, buf) {
            Some(p) => Ok(p),
            None => self.patch_now(node, buf),
        }
    }

    /// [`PatchList::patch`] applied to the arrays (after the pending ones).
    #[inline(never)]
    fn patch_now(&mut self, node: NodeId, buf: &PatchBuf) -> Result<Patched> {
        self.flush();
        let x = self.live_insn(node)?;
        let len = buf.len();
        self.check_room(len)?;
        let old_last = self.last_slot(x);
        let was_ld = old_last != x;
        let base = self.insn.len() as u32;
        let orig_target = if self.flags[x as usize] & F_TGT != 0 { self.tgt[x as usize] } else { NONE };
        let succ = self.next[old_last as usize];
        // A deleted run after the instruction is skipped for calls: its call-group snapshot
        // predates any prologue inserted since before the survivor (I2, I4).
        let live = self.find_live(succ);
        let past_end_call = self.cur_handle(live);
        let orig_call = is_call_kind(&self.insn[x as usize]);
        let plan = Plan { first: x, base, past_end: succ, past_end_call, orig_target: Some(orig_target), orig_call };
        self.resolve_buf(buf, &plan)?;
        let p = self.commit_patch(x, len, |k| buf.insns[k]);
        self.live_slots += len - 1;
        if was_ld {
            // The old second slot goes away with its first (I1).
            self.delete_nodes(old_last, old_last);
        }
        Ok(p)
    }

    /// The patch of a pristine original node, in increasing node order, with a buffer the
    /// one-pass resolution accepts: appended to the log instead of the arrays (I6). `None`
    /// when the request does not qualify (the caller then flushes and patches eagerly, which
    /// also reports every error).
    #[inline]
    fn try_log(&mut self, node: NodeId, buf: &PatchBuf) -> Option<Patched> {
        let x = node.0;
        let xi = x as usize;
        if x >= self.orig_len || self.pending.last_node().is_some_and(|lx| lx >= x) {
            return None;
        }
        let f = self.flags[xi];
        let len = buf.len();
        if f & !F_TGT != 0 || self.origin[xi] != x || len == 0 || len > crate::MAX_PATCH_SLOTS {
            return None;
        }
        let vn = self.vnodes();
        if vn + len > MAX_NODES {
            return None;
        }
        // An ld_imm64's second slot is deleted with it, as `patch` does (it stays linked
        // after the patch's slots, I1/I2). An original pair is nodes x, x + 1, and only the
        // second slot of a pair has F_TAIL (`x + 1 <= orig_len`: the sentinel at most).
        let old_last = if self.flags[xi + 1] & F_TAIL != 0 { x + 1 } else { x };
        let past_end = self.next[old_last as usize];
        let orig_target = if f & F_TGT != 0 { self.tgt[xi] } else { NONE };
        // The one-pass rules resolve no call-kind local reference (`plain_jump_ref`).
        let plan = Plan {
            first: x,
            base: vn as u32,
            past_end,
            past_end_call: NONE,
            orig_target: Some(orig_target),
            orig_call: is_call_kind(&self.insn[xi]),
        };
        // Resolve the references first; a slot the one-pass rules do not cover undoes them.
        let mark = self.pending.mark();
        for (i, insn) in buf.insns.iter().enumerate() {
            // Cheap class test first: most buffer slots are neither jumps nor ld_imm64.
            if is_jump_class(insn) {
                let Some(r) = Self::plain_jump_ref(insn, buf.target(i), i, len, &plan) else {
                    self.pending.rollback(mark);
                    return None;
                };
                self.pending.push_ref(r);
            } else if insn.is_ld_imm64() {
                self.pending.rollback(mark);
                return None;
            }
        }
        // An explicit target on a plain slot is an error the eager path reports.
        if !buf.targets.is_empty()
            && buf.targets.iter().zip(&buf.insns).any(|(t, insn)| t.is_some() && !is_jump_class(insn))
        {
            self.pending.rollback(mark);
            return None;
        }
        self.pending.commit(x, &buf.insns);
        self.flags[xi] = f | F_LOGGED;
        let last = if len == 1 { x } else { plan.base + len as u32 - 2 };
        self.orig_node[xi] = last;
        self.live_slots += len - 1;
        if old_last != x {
            self.delete_nodes(old_last, old_last);
        }
        Some(Patched { first: NodeId(x), last: NodeId(last), orig: NodeId(last), len: len as u32 })
    }

    /// Applies the pending patches to the arrays (I6), exactly as `patch` would have applied
    /// them one by one: node ids, links, origins and flags come out the same. Every request
    /// other than a loggable patch starts here.
    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = core::mem::take(&mut self.pending);
        for p in pending.iter() {
            let mut scratch = core::mem::take(&mut self.scratch);
            scratch.clear();
            let mut refs = p.refs.iter();
            for insn in p.slots {
                scratch.push(if is_jump_class(insn) { refs.next().copied().unwrap_or(NONE) } else { NONE });
            }
            self.scratch = scratch;
            self.flags[p.x as usize] &= !F_LOGGED;
            self.commit_patch(p.x, p.slots.len(), |k| p.slots[k]);
        }
        // Keep the allocations for the next log.
        self.pending = pending;
        self.pending.clear();
    }

    /// The mutation of `patch` once `self.scratch` holds the resolved buffer: slot 0 goes to
    /// `x`, slots 1.. to new nodes appended to the arrays; the identity moves to the last
    /// instruction. `live_slots` is the caller's.
    #[inline]
    fn commit_patch(&mut self, x: u32, len: usize, insn_at: impl Fn(usize) -> Insn) -> Patched {
        let base = self.insn.len() as u32;
        let xi = x as usize;
        let o = self.origin[xi];
        let keep = self.flags[xi] & (F_CMOVED | F_CFRESH | F_TOUCHED);
        self.write_slot(x, insn_at(0), 0, keep);
        let li = self.last_insn_index(len);
        let last_insn = if li == 0 { x } else { base + (li as u32 - 1) };
        let last_slot = if len == 1 { x } else { base + (len as u32 - 2) };
        let is_orig = o & PARENT_BIT == 0;
        if len > 1 {
            let new = len - 1;
            // The new chain goes between `x` and its successor (an ld_imm64's old second slot,
            // which is deleted below and stays linked, I1/I2).
            let nx = self.next[xi];
            // New slots descend from the patched instruction's original (an original identity
            // moves to the last instruction below).
            let desc = if is_orig { o | PARENT_BIT } else { o };
            self.insn.reserve(new);
            self.next.reserve(new);
            self.tgt.reserve(new);
            self.flags.reserve(new);
            self.origin.reserve(new);
            for k in 1..len {
                let r = self.scratch[k];
                self.insn.push(insn_at(k));
                self.next.push(if k == new { nx } else { base + k as u32 });
                let (t, f) = match r {
                    TAIL_MARK => (NONE, F_TAIL),
                    NONE => (NONE, 0),
                    _ => (r, F_TGT),
                };
                self.tgt.push(t);
                self.flags.push(f);
                self.origin.push(desc);
            }
            if self.prev_ok {
                self.prev.push(x);
                self.prev.extend(base..base + new as u32 - 1);
                if nx != NONE {
                    self.prev[nx as usize] = last_slot;
                }
            }
            self.next[xi] = base;
        }
        if is_orig {
            // An original identity: it moves to the last instruction, which is touched.
            if last_insn != x {
                self.origin[xi] = o | PARENT_BIT;
                self.flags[xi] &= !F_TOUCHED;
                self.origin[last_insn as usize] = o;
                self.orig_node[o as usize] = last_insn;
            }
            self.flags[last_insn as usize] |= F_TOUCHED;
        }
        Patched { first: NodeId(x), last: NodeId(last_slot), orig: NodeId(last_insn), len: len as u32 }
    }

    /// A node as the queries see it, pending patches included (I6): `x` must be below
    /// [`PatchList::vnodes`]. O(log pending) for a node of a pending patch.
    pub(crate) fn view(&self, x: u32) -> NodeView {
        let xi = x as usize;
        let arr = self.insn.len();
        if xi < arr && self.flags[xi] & F_LOGGED == 0 {
            return NodeView { insn: self.insn[xi], f: self.flags[xi], next: self.next[xi], origin: self.origin[xi] };
        }
        // Entry `e` of the log and slot `k` of its patch.
        let found = if xi < arr { self.pending.find_orig(x).map(|e| (e, 0)) } else { self.pending.find_new(xi - arr) };
        let Some(p) = found.and_then(|(e, k)| Some((self.pending.get(e)?, k))) else { return NodeView::default() };
        let (p, k) = p;
        let Some(&insn) = p.slots.get(k) else { return NodeView::default() };
        let last = k + 1 == p.slots.len();
        NodeView {
            insn,
            f: if is_jump_class(&insn) { F_TGT } else { 0 } | if last { F_TOUCHED } else { 0 },
            next: if last { self.next[p.x as usize] } else { p.node(k + 1, arr as u32) },
            origin: if last { p.x } else { p.x | PARENT_BIT },
        }
    }

    /// Inserts `buf` before the instruction at `node`, keeping the instruction and its identity.
    ///
    /// With [`PrepatchMode::LandOnInserted`] the position `node` now holds `buf[0]` and the
    /// original instruction moves to a new node (returned as [`Patched::orig`]); with
    /// [`PrepatchMode::SkipForJumps`] the inserted code gets new nodes and `node` keeps the
    /// instruction. `Target::PastEnd` in `buf` means the original instruction.
    ///
    /// # Errors
    /// An invalid node or buffer; the list is unchanged.
    #[doc(alias = "bpf_prepatch_list_insn")]
    #[doc(alias = "bpf_list_insn_prepend")]
    #[doc(alias = "adjust_jmp_off")]
    pub fn prepatch(&mut self, node: NodeId, buf: &PatchBuf, mode: PrepatchMode) -> Result<Patched> {
        self.flush();
        let x = self.live_insn(node)?;
        let len = buf.len();
        self.check_room(len)?;
        let base = self.insn.len() as u32;
        let xi = x as usize;
        let orig_target = if self.flags[xi] & F_TGT != 0 { self.tgt[xi] } else { NONE };
        let o = self.origin[xi];
        let is_orig = o != NONE && o & PARENT_BIT == 0;
        let desc = if is_orig { o | PARENT_BIT } else { o };
        match mode {
            PrepatchMode::LandOnInserted => {
                // Nodes: buf[0] -> x, buf[1..] -> base.., the original -> base + len - 1.
                let moved = base + len as u32 - 1;
                // One past the end is the moved original: a new node, its implicit group.
                let plan = Plan {
                    first: x,
                    base,
                    past_end: moved,
                    past_end_call: NONE,
                    orig_target: Some(orig_target),
                    orig_call: is_call_kind(&self.insn[xi]),
                };
                self.resolve_buf(buf, &plan)?;
                self.alloc(len);
                let m = moved as usize;
                self.insn[m] = self.insn[xi];
                self.tgt[m] = self.tgt[xi];
                self.flags[m] = self.flags[xi] & (F_TGT | F_TOUCHED);
                self.origin[m] = o;
                if is_orig {
                    self.orig_node[o as usize] = moved;
                    self.flags[m] |= F_TOUCHED;
                }
                let keep = self.flags[xi] & (F_CMOVED | F_CFRESH);
                self.write_slot(x, buf.insns[0], 0, keep);
                self.origin[xi] = desc;
                for k in 1..len {
                    let nd = base + (k as u32 - 1);
                    self.write_slot(nd, buf.insns[k], k, 0);
                    self.origin[nd as usize] = desc;
                }
                // chain base..=moved, then link after x
                for nd in base..moved {
                    self.next[nd as usize] = nd + 1;
                    if self.prev_ok {
                        self.prev[nd as usize + 1] = nd;
                    }
                }
                self.link_after(x, base, moved);
                self.live_slots += len;
                let last = if len == 1 { x } else { moved - 1 };
                Ok(Patched { first: NodeId(x), last: NodeId(last), orig: NodeId(moved), len: len as u32 })
            }
            PrepatchMode::SkipForJumps => {
                self.ensure_prev();
                // A call to one past the end lands on the instruction (as in the kernel, where
                // `adjust_jmp_off` moves no call): it takes the fresh group `x` gets below, not
                // `x`'s current one, which moves into this prologue.
                let fresh = EXPL_BIT | self.cgroups.len() as u32;
                let plan = Plan {
                    first: base,
                    base: base + 1,
                    past_end: x,
                    past_end_call: fresh,
                    orig_target: Some(orig_target),
                    orig_call: is_call_kind(&self.insn[xi]),
                };
                self.resolve_buf(buf, &plan)?;
                self.alloc(len);
                let last = base + len as u32 - 1;
                for k in 0..len {
                    let nd = base + k as u32;
                    self.write_slot(nd, buf.insns[k], k, 0);
                    self.origin[nd as usize] = desc;
                    if k > 0 {
                        self.next[nd as usize - 1] = nd;
                        if self.prev_ok {
                            self.prev[nd as usize] = nd - 1;
                        }
                    }
                }
                let at = self.insert_point_before(x);
                self.link_after(at, base, last);
                // Move x's current call group to the inserted code; x gets a fresh one (I4).
                let cur = self.cur_handle(x);
                if cur & EXPL_BIT != 0 {
                    self.cgroups[(cur & !EXPL_BIT) as usize].parent = base;
                } else {
                    self.cmoved.insert(x, base);
                    self.flags[xi] |= F_CMOVED;
                }
                let g = self.cgroups.len() as u32;
                self.cgroups.push(CGroup { parent: NONE, node: x, crossed: false });
                self.cfresh.insert(x, g);
                self.flags[xi] |= F_CFRESH;
                if is_orig {
                    self.flags[xi] |= F_TOUCHED;
                }
                self.live_slots += len;
                Ok(Patched { first: NodeId(base), last: NodeId(last), orig: NodeId(x), len: len as u32 })
            }
        }
    }

    /// Deletes the instruction at `node` (both slots of an ld_imm64).
    ///
    /// # Errors
    /// An invalid node; the list is unchanged.
    pub fn delete(&mut self, node: NodeId) -> Result<()> {
        self.delete_range(node, node)
    }

    /// Deletes every node from `first` through `last` (inclusive, list order, including the
    /// second slot of an ld_imm64 `last`). Both must be live instructions and `last` must not
    /// come before `first`. References to deleted nodes land on the first surviving slot after
    /// them (the kernel's rule).
    ///
    /// # Errors
    /// Invalid nodes or [`Error::BadRange`]; the list is unchanged.
    pub fn delete_range(&mut self, first: NodeId, last: NodeId) -> Result<()> {
        self.flush();
        let f = self.live_insn(first)?;
        let l = self.live_insn(last)?;
        let end = self.end();
        let mut x = f;
        while x != l {
            x = self.next[x as usize];
            if x == end || x == NONE {
                return Err(Error::BadRange { first, last });
            }
        }
        let l = self.last_slot(l);
        self.delete_nodes(f, l);
        Ok(())
    }

    /// Marks `f..=l` deleted (validated by the caller) and records the call-group snapshot.
    ///
    /// Every newly deleted node merges its current call group into the group current at the
    /// first survivor *now* (a snapshot): later moves of that survivor's group (a skip prepatch)
    /// then carry these references along, exactly as the kernel's collapsed slot indices are
    /// carried by `adjust_jmp_off`. Earlier-deleted nodes inside the range keep their own
    /// snapshots. Each edge goes from a group retiring now to a group current now, so the call
    /// group graph stays acyclic (I4).
    fn delete_nodes(&mut self, f: u32, l: u32) {
        let succ = self.next[l as usize];
        let y = self.find_live(succ);
        let y = if y == NONE { self.end() } else { y };
        let snap = self.cur_handle(y);
        let mut x = f;
        loop {
            let xi = x as usize;
            if self.flags[xi] & F_DELETED == 0 {
                self.flags[xi] |= F_DELETED;
                self.tgt[xi] = y;
                self.live_slots -= 1;
                let fresh = if self.flags[xi] & F_CFRESH != 0 { self.cfresh.get(&x).copied() } else { None };
                match fresh {
                    Some(g) => {
                        let grp = &mut self.cgroups[g as usize];
                        grp.parent = snap;
                        grp.crossed = true;
                        self.origin[xi] = NONE;
                    }
                    None => self.origin[xi] = snap,
                }
            }
            if x == l {
                break;
            }
            x = self.next[xi];
        }
    }

    /// Appends `buf` at the end of the program as a new subprogram (e.g. a hidden exception
    /// callback). `Target::PastEnd`/`OrigTarget` are errors here.
    ///
    /// # Errors
    /// An invalid buffer; the list is unchanged.
    pub fn append(&mut self, buf: &PatchBuf) -> Result<Appended> {
        self.flush();
        let len = buf.len();
        self.check_room(len)?;
        self.ensure_prev();
        let base = self.insn.len() as u32;
        let plan = Plan {
            first: base,
            base: base + 1,
            past_end: NONE,
            past_end_call: NONE,
            orig_target: None,
            orig_call: false,
        };
        self.resolve_buf(buf, &plan)?;
        self.alloc(len);
        let last = base + len as u32 - 1;
        for k in 0..len {
            let nd = base + k as u32;
            self.write_slot(nd, buf.insns[k], k, 0);
            if k > 0 {
                self.next[nd as usize - 1] = nd;
                if self.prev_ok {
                    self.prev[nd as usize] = nd - 1;
                }
            }
        }
        let at = self.insert_point_before(self.end());
        self.link_after(at, base, last);
        let id = SubprogId(self.subprogs.len() as u32);
        self.subprogs.push(base);
        self.live_slots += len;
        Ok(Appended { subprog: id, first: NodeId(base), last: NodeId(last), len: len as u32 })
    }

    /// Replaces the instruction at `node` in place (a 1:1 rewrite, e.g. hard-wiring a branch):
    /// no aux hook runs and the node keeps its target reference if the new instruction has a
    /// target field. Cannot turn an ld_imm64 into a one-slot instruction or back.
    ///
    /// # Errors
    /// An invalid node, [`Error::LengthChange`], or [`Error::NoTargetToKeep`].
    pub fn set_insn(&mut self, node: NodeId, insn: Insn) -> Result<()> {
        self.flush();
        let x = self.live_insn(node)? as usize;
        if insn.is_ld_imm64() != self.insn[x].is_ld_imm64() {
            return Err(Error::LengthChange { node });
        }
        let has_field = insn.target_field().is_some();
        if has_field && self.flags[x] & F_TGT == 0 {
            return Err(Error::NoTargetToKeep { node });
        }
        if has_field && is_call_kind(&insn) != is_call_kind(&self.insn[x]) {
            return Err(Error::TargetKindChange { node });
        }
        self.insn[x] = insn;
        if !has_field {
            self.flags[x] &= !F_TGT;
            self.tgt[x] = NONE;
        }
        Ok(())
    }

    /// Gives the jump/call at `node` a new target, resolved as for a one-slot patch buffer at
    /// `node` (`Local(0)` is the instruction itself, `Local(1)`/`PastEnd` the next one,
    /// `OrigTarget` keeps the current target).
    ///
    /// # Errors
    /// An invalid node or target, or [`Error::NodeHasNoTargetField`].
    pub fn retarget(&mut self, node: NodeId, target: Target) -> Result<()> {
        self.flush();
        let x = self.live_insn(node)?;
        let insn = self.insn[x as usize];
        if insn.target_field().is_none() {
            return Err(Error::NodeHasNoTargetField { node });
        }
        let tail = self.last_slot(x);
        let after = self.next[tail as usize];
        let live = self.find_live(after);
        let past_end_call = self.cur_handle(live);
        let cur = if self.flags[x as usize] & F_TGT != 0 { self.tgt[x as usize] } else { NONE };
        // The instruction as a buffer of its own slots (both halves of an ld_imm64 PSEUDO_FUNC).
        let mut one = PatchBuf::with_capacity(2);
        one.jump_to(insn, target);
        if tail != x {
            one.push(self.insn[tail as usize]);
        }
        let plan = Plan {
            first: x,
            base: x,
            past_end: after,
            past_end_call,
            orig_target: Some(cur),
            orig_call: is_call_kind(&insn),
        };
        self.resolve_buf(&one, &plan)?;
        self.tgt[x as usize] = self.scratch[0];
        self.flags[x as usize] |= F_TGT;
        Ok(())
    }

    // ------------------------------------------------------------------ labels

    /// A new, unbound label.
    ///
    /// # Errors
    /// [`Error::TooLarge`] past 2^30 labels.
    pub fn new_label(&mut self) -> Result<Label> {
        if self.labels.len() >= MAX_NODES {
            return Err(Error::TooLarge { nodes: self.labels.len(), limit: MAX_NODES });
        }
        self.labels.push((NONE, NONE));
        Ok(Label(self.labels.len() as u32 - 1))
    }

    /// Binds `label` to `node`'s position (once). Jumps through the label land where jumps to
    /// `node` land; calls through it where a call made to `node` at binding time lands (on its
    /// instruction now, into any skipping prologue inserted at it later), exactly as
    /// [`Target::Node`] in a request made at binding time.
    ///
    /// # Errors
    /// Unknown label, already bound, or a node that is not a live instruction.
    pub fn bind_label(&mut self, label: Label, node: NodeId) -> Result<()> {
        self.flush();
        let x = self.live_insn(node)?;
        let slot = self.labels.get_mut(label.index()).ok_or(Error::UnknownLabel { label })?;
        if slot.0 != NONE {
            return Err(Error::LabelAlreadyBound { label });
        }
        let handle = self.cur_handle(x);
        self.labels[label.index()] = (x, handle);
        Ok(())
    }

    /// A new label bound to `node`.
    ///
    /// # Errors
    /// As [`PatchList::bind_label`].
    pub fn label_at(&mut self, node: NodeId) -> Result<Label> {
        self.flush();
        self.live_insn(node)?;
        let l = self.new_label()?;
        self.bind_label(l, node)?;
        Ok(l)
    }

    // ------------------------------------------------------------------ cursor

    /// A cursor on the first live instruction.
    pub fn cursor(&mut self) -> Cursor<'_> {
        self.flush();
        let node = self.first_insn().map_or(NONE, |n| n.0);
        Cursor { list: self, node }
    }

    /// A cursor on `node`.
    ///
    /// # Errors
    /// When `node` is not a live instruction.
    pub fn cursor_at(&mut self, node: NodeId) -> Result<Cursor<'_>> {
        self.flush();
        let x = self.live_insn(node)?;
        Ok(Cursor { list: self, node: x })
    }
}

/// Walks a list's live instructions in program order and patches at the current position.
///
/// After [`Cursor::patch`] the cursor sits on the last instruction of the patch, after a
/// prepatch on the original instruction, after [`Cursor::delete`] on the deleted node; in all
/// cases [`Cursor::advance`] moves to the instruction that followed, so inserted code is not
/// revisited by the same walk (a later pass walks it).
#[derive(Debug)]
pub struct Cursor<'a> {
    list: &'a mut PatchList,
    node: u32,
}

impl Cursor<'_> {
    /// The current node, `None` past the end.
    #[must_use]
    pub fn node(&self) -> Option<NodeId> {
        (self.node != NONE).then_some(NodeId(self.node))
    }

    /// The current instruction (first slot), `None` past the end.
    #[must_use]
    pub fn insn(&self) -> Option<Insn> {
        self.node().and_then(|n| self.list.insn(n))
    }

    /// The second slot when the current instruction is an ld_imm64.
    #[must_use]
    pub fn insn_hi(&self) -> Option<Insn> {
        let n = self.node()?;
        self.list.insn(n)?;
        let t = self.list.last_slot(n.0);
        (t != n.0).then(|| self.list.insn[t as usize])
    }

    /// The original slot whose identity the current instruction carries.
    #[must_use]
    pub fn orig_slot(&self) -> Option<Slot> {
        self.node().and_then(|n| self.list.origin(n))
    }

    /// Moves to the next live instruction; returns it.
    pub fn advance(&mut self) -> Option<NodeId> {
        let n = self.node()?;
        self.node = self.list.next_insn(n).map_or(NONE, |m| m.0);
        self.node()
    }

    /// Patches the current instruction (see [`PatchList::patch`]).
    ///
    /// # Errors
    /// As [`PatchList::patch`]; also past the end.
    pub fn patch(&mut self, buf: &PatchBuf) -> Result<Patched> {
        let n = self.node().ok_or(Error::NoSuchNode { node: NodeId(NONE) })?;
        let p = self.list.patch(n, buf)?;
        self.node = p.orig.0;
        Ok(p)
    }

    /// Inserts before the current instruction (see [`PatchList::prepatch`]); the cursor follows
    /// the original instruction.
    ///
    /// # Errors
    /// As [`PatchList::prepatch`]; also past the end.
    pub fn prepatch(&mut self, buf: &PatchBuf, mode: PrepatchMode) -> Result<Patched> {
        let n = self.node().ok_or(Error::NoSuchNode { node: NodeId(NONE) })?;
        let p = self.list.prepatch(n, buf, mode)?;
        self.node = p.orig.0;
        Ok(p)
    }

    /// Deletes the current instruction.
    ///
    /// # Errors
    /// As [`PatchList::delete`]; also past the end.
    pub fn delete(&mut self) -> Result<()> {
        let n = self.node().ok_or(Error::NoSuchNode { node: NodeId(NONE) })?;
        self.list.delete(n)
    }

    /// A label bound to the current position.
    ///
    /// # Errors
    /// As [`PatchList::label_at`]; also past the end.
    pub fn label(&mut self) -> Result<Label> {
        let n = self.node().ok_or(Error::NoSuchNode { node: NodeId(NONE) })?;
        self.list.label_at(n)
    }

    /// The list (for queries and requests at other positions).
    pub fn list(&mut self) -> &mut PatchList {
        self.list
    }
}
