//! The requests that change the list: `patch` (logged while pending, I6), `prepatch`,
//! `delete`, `append`, `set_insn`, `retarget`, and the log's `flush`.

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (see `list.rs`).
#![allow(clippy::cast_possible_truncation)]

use super::resolve::Plan;
use super::*;
use crate::handle::Origin;

impl<'p> PatchList<'p> {
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
    pub(super) fn patch_now(&mut self, node: NodeId, buf: &PatchBuf) -> Result<Patched> {
        self.flush();
        let x = self.live_insn(node)?;
        let len = buf.len();
        self.check_room(len)?;
        let old_last = self.last_slot(x);
        let was_ld = old_last != x;
        let base = self.arr() as u32;
        let orig_target = if self.flags[x as usize] & F_TGT != 0 { self.tgt[x as usize] } else { NONE };
        let succ = self.next[old_last as usize];
        // A deleted run after the instruction is skipped for calls: its call-group snapshot
        // predates any prologue inserted since before the survivor (I2, I4).
        let live = self.find_live(succ);
        let past_end_call = self.cur_handle(live);
        let orig_call = is_call_kind(&self.node_insn(x as usize));
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
    pub(super) fn try_log(&mut self, node: NodeId, buf: &PatchBuf) -> Option<Patched> {
        let x = node.0;
        let xi = x as usize;
        if x >= self.end() || self.pending.last_node().is_some_and(|lx| lx >= x) {
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
        // Plain slots need no resolution (the common case: blinding's ALU rewrites).
        let mut jumps = false;
        for insn in &buf.insns {
            // Cheap class test first: most buffer slots are neither jumps nor ld_imm64.
            if is_jump_class(insn) {
                jumps = true;
            } else if insn.is_ld_imm64() {
                return None;
            }
        }
        // An explicit target on a plain slot is an error the eager path reports.
        if !buf.targets.is_empty()
            && buf.targets.iter().zip(&buf.insns).any(|(t, insn)| t.is_some() && !is_jump_class(insn))
        {
            return None;
        }
        if jumps {
            // The one-pass rules resolve no call-kind local reference (`plain_jump_ref`).
            let plan = Plan {
                first: x,
                base: vn as u32,
                past_end: self.next[old_last as usize],
                past_end_call: NONE,
                orig_target: Some(if f & F_TGT != 0 { self.tgt[xi] } else { NONE }),
                orig_call: is_call_kind(&self.node_insn(xi)),
            };
            // A slot the one-pass rules do not cover undoes the references recorded so far.
            let mark = self.pending.mark();
            for (i, insn) in buf.insns.iter().enumerate() {
                if is_jump_class(insn) {
                    let Some(r) = Self::plain_jump_ref(insn, buf.target(i), i, len, &plan) else {
                        self.pending.rollback(mark);
                        return None;
                    };
                    self.pending.push_ref(r);
                }
            }
        }
        self.pending.commit(x, &buf.insns);
        self.flags[xi] = f | F_LOGGED;
        let last = if len == 1 { x } else { vn as u32 + len as u32 - 2 };
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
    pub(super) fn commit_patch(&mut self, x: u32, len: usize, insn_at: impl Fn(usize) -> Insn) -> Patched {
        let base = self.arr() as u32;
        let xi = x as usize;
        let o = self.origin[xi];
        let keep = self.flags[xi] & (F_CMOVED | F_CFRESH | F_TOUCHED);
        self.write_slot(x, insn_at(0), 0, keep);
        let li = self.last_insn_index(len);
        let last_insn = if li == 0 { x } else { base + (li as u32 - 1) };
        let last_slot = if len == 1 { x } else { base + (len as u32 - 2) };
        let origin = Origin::of(o);
        if len > 1 {
            let new = len - 1;
            // The new chain goes between `x` and its successor (an ld_imm64's old second slot,
            // which is deleted below and stays linked, I1/I2).
            let nx = self.next[xi];
            // New slots descend from the patched instruction's original (an original identity
            // moves to the last instruction below).
            let desc = origin.child().word();
            self.own.reserve(new);
            self.next.reserve(new);
            self.tgt.reserve(new);
            self.flags.reserve(new);
            self.origin.reserve(new);
            for k in 1..len {
                let r = self.scratch[k];
                self.own.push(insn_at(k));
                self.next.push(if k == new { nx } else { base + k as u32 });
                let (t, f) = match r {
                    TAIL_MARK => (NONE, F_TAIL),
                    NONE => (NONE, 0),
                    _ => (r, F_TGT),
                };
                self.tgt.push(t);
                self.flags.push(f | F_OWN);
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
        if let Origin::Orig(s) = origin {
            // An original identity: it moves to the last instruction, which is touched.
            if last_insn != x {
                self.origin[xi] = Origin::Child(s).word();
                self.flags[xi] &= !F_TOUCHED;
                self.origin[last_insn as usize] = o;
                self.orig_node[s as usize] = last_insn;
            }
            self.flags[last_insn as usize] |= F_TOUCHED;
        }
        Patched { first: NodeId(x), last: NodeId(last_slot), orig: NodeId(last_insn), len: len as u32 }
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
        let base = self.arr() as u32;
        let xi = x as usize;
        let orig_target = if self.flags[xi] & F_TGT != 0 { self.tgt[xi] } else { NONE };
        let o = self.origin[xi];
        let origin = Origin::of(o);
        let is_orig = matches!(origin, Origin::Orig(_));
        let desc = origin.child().word();
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
                    orig_call: is_call_kind(&self.node_insn(xi)),
                };
                self.resolve_buf(buf, &plan)?;
                self.alloc(len);
                let m = moved as usize;
                let insn = self.node_insn(xi);
                self.set_node_insn(m, insn);
                self.tgt[m] = self.tgt[xi];
                self.flags[m] = (self.flags[xi] & (F_TGT | F_TOUCHED)) | F_OWN;
                self.origin[m] = o;
                if let Origin::Orig(s) = origin {
                    self.orig_node[s as usize] = moved;
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
                let fresh = Ref::Group(self.cgroups.len() as u32).word();
                let plan = Plan {
                    first: base,
                    base: base + 1,
                    past_end: x,
                    past_end_call: fresh,
                    orig_target: Some(orig_target),
                    orig_call: is_call_kind(&self.node_insn(xi)),
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
                if let Some(g) = Ref::group(cur) {
                    self.cgroups[g as usize].parent = base;
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
    pub(super) fn delete_nodes(&mut self, f: u32, l: u32) {
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
        let base = self.arr() as u32;
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
        let old = self.node_insn(x);
        if insn.is_ld_imm64() != old.is_ld_imm64() {
            return Err(Error::LengthChange { node });
        }
        let has_field = insn.target_field().is_some();
        if has_field && self.flags[x] & F_TGT == 0 {
            return Err(Error::NoTargetToKeep { node });
        }
        if has_field && is_call_kind(&insn) != is_call_kind(&old) {
            return Err(Error::TargetKindChange { node });
        }
        self.set_node_insn(x, insn);
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
        let insn = self.node_insn(x as usize);
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
            one.push(self.node_insn(tail as usize));
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
}
