//! The patch list: an arena of slot nodes linked in program order, with symbolic targets.
//!
//! Storage is structure-of-arrays (one `Vec` per field, `u32` indices), so the linearizer's hot
//! loop touches only `flags`, the instructions and `next`. Nodes `0..n` are the original slots,
//! node `n` is the end sentinel, later nodes are inserted slots. The original instructions are
//! read in place from the program the list borrows (I7): the list stores only the instructions
//! of the nodes it made and of the originals a request rewrote. See the crate documentation for
//! the model. This file holds the data, the queries and the helpers every request shares; the
//! requests live by job in `list/`: `build` (from a program), `resolve` (a buffer's targets,
//! validated before anything changes), `edit` (patch, prepatch, delete, append, set_insn,
//! retarget, the log's flush), `labels` and `cursor`; the pending log is `pending.rs`. The
//! invariants maintained here are:
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
//!   call side) hold a *handle*: a node (its implicit call group) or an explicit group (one
//!   packed word, read and written only through `handle::Ref`). A skip
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
//! - **I7 (originals in place)**: a node without `F_OWN` is an original node whose
//!   instruction is the borrowed program's, `orig[x]`. `F_OWN` (never cleared) means the list
//!   holds the instruction: nodes from `n` on (the sentinel, inserted nodes) always, in
//!   `own[x - n]`; an original node once a request wrote it, in `over[over_at[x]]`, its own
//!   entry (`over_at`, one index per original, is sized by the first such write). Every read
//!   and write of a node's instruction goes through `node_insn` / `set_node_insn`, so building
//!   a list copies no instruction, a request that rewrites an original costs one entry of
//!   `over`, and the walk's common case (an untouched original) is one flag test.

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (checked whenever nodes
// or labels are allocated), so the usize <-> u32 conversions in this module cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use crate::buf::{PatchBuf, Target};
use crate::error::{Error, Result};
use crate::handle::{Origin, Ref};
use crate::ids::{Label, NodeId, SubprogId};
use crate::pending::Pending;
use bpfpatch_insn::{Insn, Slot, TargetKind};
use std::collections::HashMap;

mod build;
mod cursor;
mod edit;
mod labels;
mod resolve;

pub use cursor::Cursor;

/// No node / no reference.
pub(crate) const NONE: u32 = u32::MAX;
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
/// Node flag: the list holds this node's instruction, not the program (I7): every node from
/// `n` on, and an original a request wrote (then in `over[over_at[x]]`).
pub(crate) const F_OWN: u8 = 128;

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
    pub(crate) len: u32,
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
///
/// The list borrows the program's instructions for its lifetime `'p` (read in place, I7);
/// [`PatchList::recycle`] keeps a list's allocations for another program.
#[derive(Clone, Debug, Default)]
pub struct PatchList<'p> {
    /// The original program's instructions (I7).
    pub(crate) orig: &'p [Insn],
    /// Instructions of nodes `n..` (the sentinel's first), by `x - n` (I7).
    pub(crate) own: Vec<Insn>,
    /// Instructions of the original nodes a request wrote (`F_OWN`), by `over_at` (I7).
    pub(crate) over: Vec<Insn>,
    /// Per original node with `F_OWN`: its index in `over`. Any other entry is stale and
    /// never read; sized by the first original a request rewrites (none until then).
    pub(crate) over_at: Vec<u32>,
    pub(crate) next: Vec<u32>,
    /// Predecessor links, maintained only once an insertion "before" a node needed them
    /// (`prev_ok`): most lists are only patched forward and never read them.
    pub(crate) prev: Vec<u32>,
    pub(crate) prev_ok: bool,
    /// Live node: its reference (if `F_TGT`). Deleted node: find-live parent pointer. Any
    /// other entry is stale and never read.
    pub(crate) tgt: Vec<u32>,
    /// Live node: its [`Origin`] word. Deleted node: call-group
    /// snapshot handle or `NONE` (lazy: the group of the next node).
    pub(crate) origin: Vec<u32>,
    pub(crate) flags: Vec<u8>,
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

/// The instruction of array node `x` whose flags are `f` (I7), from the list's parts (the
/// linearizer's walk holds them as slices).
#[inline(always)]
pub(crate) fn node_insn(orig: &[Insn], own: &[Insn], over: &[Insn], over_at: &[u32], f: u8, x: usize) -> Insn {
    if f & F_OWN == 0 {
        orig[x]
    } else if x >= orig.len() {
        own[x - orig.len()]
    } else {
        over[over_at[x] as usize]
    }
}

/// Whether a slot is of the jump classes (the slots of a logged patch that hold a reference).
#[inline]
pub(crate) fn is_jump_class(insn: &Insn) -> bool {
    is_jump_code(insn.code)
}

/// [`is_jump_class`] on an opcode byte, usable in constant tables (the in-order engine's
/// `KIND`).
pub(crate) const fn is_jump_code(code: u8) -> bool {
    let class = code & bpfpatch_insn::opcode::CLASS_MASK;
    class == bpfpatch_insn::opcode::JMP || class == bpfpatch_insn::opcode::JMP32
}

/// `at + rel + 1` (a PC-relative target), and the same as an index when it is not negative.
fn abs_target(at: usize, rel: i64) -> (i64, Option<usize>) {
    let t = i64::try_from(at).unwrap_or(i64::MAX).saturating_add(rel).saturating_add(1);
    (t, usize::try_from(t).ok())
}

/// Whether `insn`'s target field (if any) is call-kind (a bpf-to-bpf call or `PSEUDO_FUNC`).
#[inline]
fn is_call_kind(insn: &Insn) -> bool {
    matches!(insn.target_field(), Some((_, TargetKind::Call | TargetKind::FuncRef)))
}

impl<'p> PatchList<'p> {
    /// Number of slots in the original program.
    #[must_use]
    pub fn orig_len(&self) -> usize {
        self.orig.len()
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
        self.arr() + self.pending.new_nodes()
    }

    /// Number of nodes in the arrays (original, sentinel, inserted; not the pending ones).
    #[inline]
    pub(crate) fn arr(&self) -> usize {
        self.flags.len()
    }

    /// The instruction of array node `x` (I7): the program's for an original the requests left
    /// alone, the list's own otherwise. `x` must be below [`PatchList::arr`].
    #[inline(always)]
    pub(crate) fn node_insn(&self, x: usize) -> Insn {
        node_insn(self.orig, &self.own, &self.over, &self.over_at, self.flags[x], x)
    }

    /// Writes the instruction of array node `x` (I7): an original gets `F_OWN` and an entry of
    /// `over` the first time (a node from `n` on has `F_OWN` from its allocation). Keeps every
    /// other flag.
    #[inline]
    pub(crate) fn set_node_insn(&mut self, x: usize, insn: Insn) {
        let n = self.orig.len();
        if x >= n {
            self.own[x - n] = insn;
        } else if self.flags[x] & F_OWN != 0 {
            self.over[self.over_at[x] as usize] = insn;
        } else {
            if self.over_at.len() < n {
                // The first original this list rewrites sizes the table (I7).
                self.over_at.resize(n, 0);
            }
            self.flags[x] |= F_OWN;
            self.over_at[x] = self.over.len() as u32;
            self.over.push(insn);
        }
    }

    /// The end sentinel's node: the number of original slots (the program is below
    /// [`MAX_NODES`], checked when the list is built).
    #[inline]
    pub(crate) fn end(&self) -> u32 {
        self.orig.len() as u32
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
        match Origin::of(o) {
            Origin::Orig(s) if v.f & F_DELETED == 0 => Some(Slot(s as usize)),
            _ => None,
        }
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

    /// A live instruction node (not sentinel, not deleted, not a tail).
    #[inline]
    fn live_insn(&self, node: NodeId) -> Result<u32> {
        let x = node.0;
        if x as usize >= self.arr() || x == self.end() {
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
        if x as usize >= self.arr() || self.flags[x as usize] & F_LOGGED != 0 {
            return x;
        }
        let nx = self.next[x as usize];
        if self.node_insn(x as usize).is_ld_imm64() && nx != NONE && self.flags[nx as usize] & F_TAIL != 0 {
            nx
        } else {
            x
        }
    }

    /// The current call handle of node `x`.
    #[inline]
    pub(crate) fn cur_handle(&self, x: u32) -> u32 {
        if self.flags[x as usize] & F_CFRESH != 0 {
            match self.cfresh.get(&x) {
                Some(&g) => Ref::Group(g).word(),
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
        let mut guard = self.arr();
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
        self.prev.resize(self.arr(), NONE);
        let mut p = NONE;
        let mut x = self.head;
        let mut guard = self.arr();
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
        let base = self.arr() as u32;
        for _ in 0..k {
            self.own.push(Insn::default());
            self.next.push(NONE);
            if self.prev_ok {
                self.prev.push(NONE);
            }
            self.tgt.push(NONE);
            self.origin.push(NONE);
            // The list holds a new node's instruction (I7).
            self.flags.push(F_OWN);
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

    /// A node as the queries see it, pending patches included (I6): `x` must be below
    /// [`PatchList::vnodes`]. O(log pending) for a node of a pending patch.
    pub(crate) fn view(&self, x: u32) -> NodeView {
        let xi = x as usize;
        let arr = self.arr();
        if xi < arr && self.flags[xi] & F_LOGGED == 0 {
            return NodeView {
                insn: self.node_insn(xi),
                f: self.flags[xi],
                next: self.next[xi],
                origin: self.origin[xi],
            };
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
            origin: if last { Origin::Orig(p.x) } else { Origin::Child(p.x) }.word(),
        }
    }
}
