//! Building the list from a program (`new`, `with_subprogs`, `reset`, `recycle`): one pass
//! for ld_imm64 pairs, one for targets and subprogram starts. The program's instructions are
//! borrowed, not copied (I7).

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (see `list.rs`).
#![allow(clippy::cast_possible_truncation)]

use super::*;

impl<'p> PatchList<'p> {
    /// Builds the list of a program. Subprogram starts are computed as the kernel does
    /// (`add_subprog_and_kfunc`): slot 0 and every pseudo-call / `PSEUDO_FUNC` target.
    ///
    /// # Errors
    /// A target outside the program or into an ld_imm64 second slot, a truncated ld_imm64, or a
    /// program above [`MAX_NODES`].
    #[doc(alias = "bpf_create_list_insn")]
    pub fn new(insns: &'p [Insn]) -> Result<PatchList<'p>> {
        let mut l = PatchList::default();
        l.reset(insns, None)?;
        Ok(l)
    }

    /// Builds the list with an explicit subprogram start table (strictly increasing from 0).
    ///
    /// # Errors
    /// As [`PatchList::new`], plus [`Error::BadSubprogStart`].
    pub fn with_subprogs(insns: &'p [Insn], starts: &[u32]) -> Result<PatchList<'p>> {
        let mut l = PatchList::default();
        l.reset(insns, Some(starts))?;
        Ok(l)
    }

    /// This list's allocations, emptied, for a list of a program with another lifetime (the
    /// reuse path across programs: keep a `PatchList<'static>`, `recycle` it into the list of
    /// the program at hand, and back when done).
    ///
    /// ```
    /// use bpfpatch_insn::{Insn, opcode as c};
    /// use bpfpatch_patch::PatchList;
    /// let mut kept: PatchList<'static> = PatchList::default();
    /// for n in [3, 5] {
    ///     let prog = vec![Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0); n];
    ///     let mut list = kept.recycle();
    ///     list.reset(&prog, None)?;
    ///     assert_eq!(list.live_len(), n);
    ///     kept = list.recycle();
    /// }
    /// # Ok::<(), bpfpatch_patch::Error>(())
    /// ```
    #[must_use]
    pub fn recycle<'q>(mut self) -> PatchList<'q> {
        self.clear_all();
        // Every field but the borrow moves over (a struct literal: a field added to the list
        // and not named here does not compile).
        macro_rules! moved {
            ($($f:ident),* $(,)?) => { PatchList { orig: &[], $($f: self.$f),* } };
        }
        moved!(
            own,
            over,
            over_at,
            next,
            prev,
            prev_ok,
            tgt,
            origin,
            flags,
            head,
            orig_node,
            labels,
            subprogs,
            orig_subprogs,
            cgroups,
            cmoved,
            cfresh,
            live_slots,
            scratch,
            pending,
        )
    }

    /// Rebuilds this list for another program, keeping every allocation (for the reuse path).
    /// The program is borrowed: nothing of it is copied (I7).
    ///
    /// # Errors
    /// As [`PatchList::with_subprogs`] (`starts == None` computes them). On error the list is empty.
    pub fn reset(&mut self, insns: &'p [Insn], starts: Option<&[u32]>) -> Result<()> {
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
        // `over_at` is left as it is: read only under F_OWN, and sized by the first original a
        // request rewrites (I7), so a list whose originals are never rewritten has none.
        // Exact sizes first: a fresh list allocates each array once (no growth copy).
        self.next.reserve(n + 1);
        self.origin.reserve(n + 1);
        self.flags.reserve(n + 1);
        self.orig_node.reserve(n);
        self.orig = insns;
        // The sentinel's instruction (never emitted).
        self.own.push(Insn::default());
        self.next.extend(1..=n32);
        self.next.push(NONE);
        self.origin.extend(0..n32);
        self.origin.push(NONE);
        self.flags.resize(n, 0);
        // The sentinel's instruction is the list's (I7: every node from `n` on).
        self.flags.push(F_OWN);
        self.orig_node.extend(0..n32);
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
        // Pass 2: targets (the call targets go straight into the subprogram table, sorted
        // below: no allocation on a warm rebuild).
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
                self.subprogs.push(tu as u32);
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
                    self.subprogs.push(0);
                    self.subprogs.sort_unstable();
                    self.subprogs.dedup();
                }
            }
        }
        self.orig_subprogs = self.subprogs.len() as u32;
        Ok(())
    }

    pub(super) fn clear_all(&mut self) {
        self.orig = &[];
        self.own.clear();
        self.over.clear();
        // (`over_at` keeps its stale entries: read only under F_OWN, I7.)
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
        self.head = 0;
        self.orig_subprogs = 0;
        self.live_slots = 0;
    }
}
