//! Resolving a patch buffer's targets into references (I3, I4) before any request changes the
//! list: every error is found here, so a failed request leaves the list untouched.

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (see `list.rs`).
#![allow(clippy::cast_possible_truncation)]

use super::*;

/// Parameters of one buffer resolution.
pub(super) struct Plan {
    /// Node of buffer slot 0.
    pub(super) first: u32,
    /// Node of buffer slot 1 (slots follow contiguously).
    pub(super) base: u32,
    /// Node meant by "one past the end", `NONE` for append.
    pub(super) past_end: u32,
    /// The call handle a call-kind reference to "one past the end" gets: the group current at
    /// the first live node after the patch, or the fresh group a skipping prepatch is about to
    /// give its instruction (I4); `NONE` when `past_end` is a new node (its implicit group).
    pub(super) past_end_call: u32,
    /// The patched instruction's reference: `None` for append, `Some(NONE)` if it has none.
    pub(super) orig_target: Option<u32>,
    /// Whether that reference is call-kind (a call or `PSEUDO_FUNC`): `OrigTarget` keeps the kind.
    pub(super) orig_call: bool,
}

impl<'p> PatchList<'p> {
    /// Validates `buf` and resolves every target into `self.scratch` (one entry per buffer
    /// slot: a reference, `NONE`, or `TAIL_MARK`). Changes nothing else.
    #[inline]
    pub(super) fn resolve_buf(&mut self, buf: &PatchBuf, plan: &Plan) -> Result<()> {
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
    pub(super) fn resolve_plain(&self, buf: &PatchBuf, plan: &Plan, scratch: &mut Vec<u32>) -> bool {
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
    pub(super) fn plain_jump_ref(
        insn: &Insn,
        target: Option<Target>,
        i: usize,
        len: usize,
        plan: &Plan,
    ) -> Option<u32> {
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
    pub(super) fn resolve_buf_into(&self, buf: &PatchBuf, plan: &Plan, scratch: &mut [u32]) -> Result<()> {
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
                Ok(if (node as usize) < self.arr() { self.cur_handle(node) } else { node })
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
                        if n.index() >= self.arr() || n.0 == self.end() {
                            return Err(Error::TargetNoSuchNode { index: i, node: n });
                        }
                        self.node_ref(n.0, call_kind, i)?
                    }
                    Target::Label(l) => {
                        if l.index() >= self.labels.len() {
                            return Err(Error::UnknownLabel { label: l });
                        }
                        Ref::Label(l.0).word()
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

    pub(super) fn node_ref(&self, x: u32, call_kind: bool, index: usize) -> Result<u32> {
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
    /// call-group flags of `keep` (and `F_OWN`, I7).
    #[inline(always)]
    pub(super) fn write_slot(&mut self, node: u32, insn: Insn, k: usize, keep: u8) {
        let r = self.scratch[k];
        let x = node as usize;
        let mut f = keep | (self.flags[x] & F_OWN);
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
        self.set_node_insn(x, insn);
    }

    /// Index of the last instruction (not tail) of the resolved buffer in `scratch`.
    pub(super) fn last_insn_index(&self, len: usize) -> usize {
        if len >= 2 && self.scratch[len - 1] == TAIL_MARK { len - 2 } else { len - 1 }
    }
}
