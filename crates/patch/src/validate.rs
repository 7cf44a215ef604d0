//! A checker of the list's invariants I1-I7 (`list.rs`), run by the differential tests after
//! every request (regalloc2's checker model: the engine's state is checked, not only its
//! output). Compiled with debug assertions or the `fuzzing` feature; O(nodes + groups).

// Node ids, handles and group indices are below MAX_NODES = 2^30 (as in `list.rs`).
#![allow(clippy::cast_possible_truncation)]

use crate::handle::{Origin, Ref};
use crate::ids::NodeId;
use crate::list::{F_CFRESH, F_CMOVED, F_DELETED, F_LOGGED, F_OWN, F_TAIL, F_TGT, NONE, PatchList, is_jump_class};
use core::fmt;

/// An invariant of the list that does not hold: which one, where, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    /// `"I1"` .. `"I7"`, or `"links"` for the list structure itself.
    pub invariant: &'static str,
    /// The node where it was seen.
    pub node: NodeId,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant {} broken at node {}: {}", self.invariant, self.node, self.detail)
    }
}

impl std::error::Error for InvariantViolation {}

fn bad(invariant: &'static str, node: u32, detail: String) -> Result<(), InvariantViolation> {
    Err(InvariantViolation { invariant, node: NodeId(node), detail })
}

impl<'p> PatchList<'p> {
    /// Checks the invariants I1-I7 of the list (see the module notes of the list) and its link
    /// structure; `Err` names the first violation. Every request must leave a list on which this
    /// holds; the differential tests call it after each one.
    ///
    /// # Errors
    /// The first violation found.
    pub fn validate(&self) -> Result<(), InvariantViolation> {
        // First: the walks below read instructions through I7.
        self.validate_own()?;
        let arr = self.arr();
        let end = self.end();
        let nodes = self.vnodes();
        // Links: from the head, every node once, ending at the sentinel; the live count matches.
        let mut seen = vec![false; nodes];
        let mut x = self.head;
        let mut live = 0usize;
        let mut prev_live_ld = NONE; // a live ld_imm64 first slot waiting for its tail
        let mut prev = NONE;
        while x != end {
            if x == NONE || x as usize >= nodes {
                return bad("links", prev, format!("next is {x} before reaching the sentinel {end}"));
            }
            if seen[x as usize] {
                return bad("links", x, "visited twice".into());
            }
            seen[x as usize] = true;
            let v = self.view(x);
            let deleted = v.f & F_DELETED != 0;
            if !deleted {
                live += 1;
            }
            // I1: an ld_imm64 first slot is directly followed by its tail, with the same fate; a
            // live tail directly follows its live first slot (a deleted one may stay behind the
            // patch that replaced its pair).
            let tail = v.f & F_TAIL != 0;
            if prev_live_ld != NONE {
                let pf = self.view(prev_live_ld).f & F_DELETED;
                if !tail || (v.f & F_DELETED) != pf {
                    return bad("I1", prev_live_ld, format!("ld_imm64 first slot not followed by its tail (next {x})"));
                }
                prev_live_ld = NONE;
            } else if tail && !deleted {
                return bad("I1", x, "live second slot without its first".into());
            }
            if !tail && v.insn.is_ld_imm64() {
                prev_live_ld = x;
            }
            if self.prev_ok && (x as usize) < arr && self.flags[x as usize] & F_LOGGED == 0 {
                let p = self.prev[x as usize];
                // A logged node's predecessor link is that of the patch's first slot.
                if p != prev && !(prev != NONE && (prev as usize) >= arr) {
                    return bad("links", x, format!("prev is {p}, the walk came from {prev}"));
                }
            }
            prev = x;
            x = v.next;
        }
        if prev_live_ld != NONE {
            return bad("I1", prev_live_ld, "ld_imm64 first slot at the end of the list".into());
        }
        if live != self.live_slots {
            return bad("links", end, format!("{live} live slots walked, {} counted", self.live_slots));
        }
        for (i, &s) in seen.iter().enumerate() {
            // Every allocated node is linked (nodes are never unlinked, only marked deleted).
            if !s && i != end as usize {
                return bad("links", i as u32, "allocated but not linked".into());
            }
        }
        self.validate_refs()?;
        self.validate_deleted()?;
        self.validate_groups()?;
        self.validate_origins()?;
        self.validate_log()
    }

    /// I7: every node from `n` on has `F_OWN`; an original with `F_OWN` has its own entry of
    /// `over`, and every entry belongs to one of them; `own` covers the nodes from `n` on.
    fn validate_own(&self) -> Result<(), InvariantViolation> {
        let n = self.orig.len();
        if self.own.len() + n != self.arr() {
            return bad(
                "I7",
                self.end(),
                format!("{n} originals and {} own slots for {} nodes", self.own.len(), self.arr()),
            );
        }
        let mut owner = vec![NONE; self.over.len()];
        for x in 0..self.arr() {
            let own = self.flags[x] & F_OWN != 0;
            if x >= n && !own {
                return bad("I7", x as u32, "a node the list made reads the program's instruction".into());
            }
            if x >= n || !own {
                continue;
            }
            let Some(&k) = self.over_at.get(x) else {
                return bad(
                    "I7",
                    x as u32,
                    format!("a rewritten original beyond the {}-entry table", self.over_at.len()),
                );
            };
            let k = k as usize;
            match owner.get(k) {
                Some(&NONE) => owner[k] = x as u32,
                Some(&o) => return bad("I7", x as u32, format!("shares its instruction {k} with node {o}")),
                None => return bad("I7", x as u32, format!("instruction {k} of {}", self.over.len())),
            }
        }
        if let Some(k) = owner.iter().position(|&o| o == NONE) {
            return bad("I7", self.end(), format!("rewritten instruction {k} belongs to no node"));
        }
        Ok(())
    }

    /// I1 (no reference to a tail) and I3/I4 (references are well-formed handles).
    fn validate_refs(&self) -> Result<(), InvariantViolation> {
        let arr = self.arr();
        let check =
            |from: u32, r: u32, what: &str| -> Result<(), InvariantViolation> { self.check_ref(from, r, what, arr) };
        for x in 0..arr {
            let f = self.flags[x];
            if f & (F_TGT | F_DELETED | F_LOGGED) == F_TGT {
                check(x as u32, self.tgt[x], "reference")?;
                if self.node_insn(x).target_field().is_none() {
                    return bad("I3", x as u32, "a reference on an instruction without a target field".into());
                }
            }
        }
        for (l, &(n, h)) in self.labels.iter().enumerate() {
            if n != NONE {
                check(n, n, &format!("label {l} (jump side)"))?;
                check(n, h, &format!("label {l} (call side)"))?;
            }
        }
        for (k, &h) in self.subprogs.iter().enumerate() {
            check(h, h, &format!("subprogram {k}"))?;
        }
        // A pending patch may reference its own (not yet allocated) nodes.
        for &r in self.pending.all_refs() {
            self.check_ref(NONE, r, "pending reference", self.vnodes())?;
        }
        Ok(())
    }

    fn check_ref(&self, from: u32, r: u32, what: &str, bound: usize) -> Result<(), InvariantViolation> {
        let arr = self.arr();
        {
            if let Ref::Label(l) = Ref::of(r) {
                if l as usize >= self.labels.len() {
                    return bad("I3", from, format!("{what}: unknown label {l}"));
                }
            } else if let Some(g) = Ref::group(r) {
                if g as usize >= self.cgroups.len() {
                    return bad("I4", from, format!("{what}: unknown call group {g}"));
                }
            } else if r as usize >= bound {
                return bad("I3", from, format!("{what}: reference to unknown node {r}"));
            } else if (r as usize) < arr && self.flags[r as usize] & (F_TAIL | F_DELETED) == F_TAIL {
                return bad("I1", from, format!("{what}: reference to a live ld_imm64 second slot {r}"));
            }
            Ok(())
        }
    }

    /// I2: the find-live pointer of a deleted node leads to the first live node after it in
    /// list order (nothing was inserted inside or right after a deleted run).
    fn validate_deleted(&self) -> Result<(), InvariantViolation> {
        let arr = self.arr();
        for d in 0..arr {
            if self.flags[d] & F_DELETED == 0 {
                continue;
            }
            let mut by_list = self.next[d];
            let mut guard = arr;
            while by_list != NONE
                && (by_list as usize) < arr
                && self.flags[by_list as usize] & F_DELETED != 0
                && guard > 0
            {
                by_list = self.next[by_list as usize];
                guard -= 1;
            }
            let mut by_ptr = self.tgt[d];
            let mut guard = arr;
            while by_ptr != NONE && (by_ptr as usize) < arr && self.flags[by_ptr as usize] & F_DELETED != 0 && guard > 0
            {
                by_ptr = self.tgt[by_ptr as usize];
                guard -= 1;
            }
            if by_list != by_ptr {
                return bad(
                    "I2",
                    d as u32,
                    format!("first survivor by list order {by_list}, by find-live pointer {by_ptr}"),
                );
            }
        }
        Ok(())
    }

    /// I4: every call handle resolves without a cycle; moved and fresh flags match their maps.
    fn validate_groups(&self) -> Result<(), InvariantViolation> {
        let arr = self.arr();
        let limit = arr + self.cgroups.len() + 2;
        for x in 0..arr as u32 {
            let f = self.flags[x as usize];
            if (f & F_CMOVED != 0) != self.cmoved.contains_key(&x)
                || (f & F_CFRESH != 0) != self.cfresh.contains_key(&x)
            {
                return bad("I4", x, "call-group flags disagree with the moved/fresh tables".into());
            }
        }
        let handles = (0..arr as u32).chain((0..self.cgroups.len() as u32).map(|g| Ref::Group(g).word()));
        for start in handles {
            let mut h = start;
            let mut steps = 0usize;
            loop {
                steps += 1;
                if steps > limit {
                    let at = Ref::group(start).unwrap_or(start);
                    return bad("I4", at, format!("call handle {start:#x} does not resolve (cycle)"));
                }
                let next = if let Some(gi) = Ref::group(h) {
                    // A corrupt handle is a violation to report, not an index to trust.
                    let Some(&g) = self.cgroups.get(gi as usize) else {
                        let at = Ref::group(start).unwrap_or(start);
                        return bad("I4", at, format!("call handle {h:#x}: no such group"));
                    };
                    if g.node as usize >= arr || (g.parent == NONE && self.next[g.node as usize] == NONE) {
                        return bad("I4", g.node, format!("call group {gi:#x} bound to no linked node"));
                    }
                    if g.parent != NONE {
                        g.parent
                    } else if self.flags[g.node as usize] & F_DELETED != 0 {
                        self.cur_handle(self.next[g.node as usize])
                    } else {
                        break;
                    }
                } else if h as usize >= arr {
                    break; // a pending patch's node: live, its implicit group
                } else {
                    let f = self.flags[h as usize];
                    if f & F_CMOVED != 0 {
                        self.cmoved.get(&h).copied().unwrap_or(h)
                    } else if f & F_DELETED != 0 {
                        // A deleted node is never the sentinel, so it has a successor.
                        let snap = self.origin[h as usize];
                        if snap != NONE { snap } else { self.cur_handle(self.next[h as usize]) }
                    } else {
                        break;
                    }
                };
                if next == NONE {
                    return bad("I4", Ref::group(h).unwrap_or(h), "call handle leads nowhere".into());
                }
                h = next;
            }
        }
        Ok(())
    }

    /// I5: each original slot's identity lives on exactly one live node, `orig_node[slot]`.
    fn validate_origins(&self) -> Result<(), InvariantViolation> {
        let n = self.orig_len();
        let mut owner = vec![NONE; n];
        let nodes = self.vnodes();
        for x in 0..nodes as u32 {
            if x == self.end() {
                continue;
            }
            let v = self.view(x);
            if v.f & F_DELETED != 0 || !matches!(Origin::of(v.origin), Origin::Orig(_)) {
                continue;
            }
            let s = v.origin as usize;
            if s >= n {
                return bad("I5", x, format!("origin {s} outside the original program"));
            }
            if owner[s] != NONE {
                return bad("I5", x, format!("original slot {s} also carried by node {}", owner[s]));
            }
            owner[s] = x;
        }
        for (s, &o) in owner.iter().enumerate() {
            if o != NONE && self.orig_node[s] != o {
                return bad("I5", o, format!("carries slot {s} but orig_node says {}", self.orig_node[s]));
            }
        }
        Ok(())
    }

    /// I6: the log of pending patches is well-formed.
    fn validate_log(&self) -> Result<(), InvariantViolation> {
        let mut last = None::<u32>;
        if !self.pending.tiles() {
            return bad("I6", NONE, "log entries do not tile the pool and the references".into());
        }
        for p in self.pending.iter() {
            let x = p.x;
            if last.is_some_and(|l| l >= x) || x >= self.end() {
                return bad("I6", x, "log entries not increasing original nodes".into());
            }
            if self.flags[x as usize] & F_LOGGED == 0 {
                return bad("I6", x, "logged node without F_LOGGED".into());
            }
            let jumps = p.slots.iter().filter(|i| is_jump_class(i)).count();
            if jumps != p.refs.len() {
                return bad("I6", x, format!("{jumps} jump-class slots, {} references", p.refs.len()));
            }
            last = Some(x);
        }
        let logged = self.flags.iter().filter(|&&f| f & F_LOGGED != 0).count();
        if logged != self.pending.len() {
            return bad("I6", NONE, format!("{logged} nodes flagged logged, {} log entries", self.pending.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The checker must fail where an invariant is broken: each test corrupts one part of a
    //! valid list and expects the violation named.
    use crate::list::F_OWN;
    use crate::{PatchBuf, PatchList, Target};
    use bpfpatch_insn::{Insn, Slot, opcode as c};

    fn mov(d: u8, k: i32) -> Insn {
        Insn::new(c::ALU64 | c::MOV | c::K, d, 0, 0, k)
    }

    const JEQ: Insn = Insn::new(c::JMP | c::JEQ | c::K, 1, 0, 1, 0);
    const PENDING_JUMP: [Insn; 4] = [
        Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0),
        JEQ,
        Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 1),
        Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0),
    ];

    /// A list with one pending patch (I6) whose last slot is a jump to the original target.
    fn with_pending_jump() -> PatchList<'static> {
        let jeq = JEQ;
        let mut l = PatchList::new(&PENDING_JUMP).unwrap();
        let mut b = PatchBuf::new();
        b.push(mov(9, 9)).jump_to(jeq, Target::OrigTarget);
        l.patch(l.node_of(Slot(1)).unwrap(), &b).unwrap();
        assert_eq!(l.pending.len(), 1, "the patch is logged, not applied");
        assert_eq!(l.validate(), Ok(()));
        l
    }

    #[test]
    fn a_pending_reference_to_no_node_is_reported() {
        let mut l = with_pending_jump();
        let beyond = u32::try_from(l.vnodes()).unwrap() + 5;
        l.pending.refs_mut()[0] = beyond;
        let e = l.validate().unwrap_err();
        assert_eq!((e.invariant, e.detail.contains("pending reference")), ("I3", true), "{e}");
    }

    #[test]
    fn a_pending_reference_to_an_ld_imm64_tail_is_reported() {
        let lo = Insn::new(c::LD | c::IMM | c::DW, 1, 0, 0, 7);
        let hi = Insn::new(0, 0, 0, 0, 0);
        let jeq = Insn::new(c::JMP | c::JEQ | c::K, 1, 0, 2, 0);
        let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
        let orig = [jeq, lo, hi, exit];
        let mut l = PatchList::new(&orig).unwrap();
        let mut b = PatchBuf::new();
        b.push(mov(9, 9)).jump_to(jeq, Target::OrigTarget);
        l.patch(l.node_of(Slot(0)).unwrap(), &b).unwrap();
        assert_eq!(l.validate(), Ok(()));
        l.pending.refs_mut()[0] = 2;
        let e = l.validate().unwrap_err();
        assert_eq!(e.invariant, "I1", "{e}");
    }

    /// The invariant and node `validate` reports for a list a test corrupted.
    fn reported(l: &PatchList<'_>) -> (&'static str, crate::NodeId) {
        let e = l.validate().expect_err("the planted corruption is reported");
        (e.invariant, e.node)
    }

    /// A list whose original slot 0 was rewritten by `set_insn` (I7: `F_OWN`, one `over` entry).
    fn with_rewritten_original() -> PatchList<'static> {
        let mut l = PatchList::new(&PENDING_JUMP).unwrap();
        l.set_insn(l.node_of(Slot(0)).unwrap(), mov(0, 42)).unwrap();
        assert_eq!((l.over.len(), l.flags[0] & F_OWN), (1, F_OWN));
        assert_eq!(l.insn(l.node_of(Slot(0)).unwrap()), Some(mov(0, 42)));
        assert_eq!(l.orig[0], PENDING_JUMP[0], "the program is not written");
        assert_eq!(l.validate(), Ok(()));
        l
    }

    #[test]
    fn a_rewritten_original_without_its_instruction_is_reported() {
        let mut l = with_rewritten_original();
        l.over.clear();
        assert_eq!(reported(&l).0, "I7");
    }

    #[test]
    fn two_originals_sharing_a_rewritten_instruction_are_reported() {
        let mut l = with_rewritten_original();
        l.flags[2] |= F_OWN;
        l.over_at[2] = 0;
        assert_eq!(reported(&l), ("I7", crate::NodeId(2)));
    }

    #[test]
    fn a_rewritten_instruction_of_no_node_is_reported() {
        let mut l = with_rewritten_original();
        l.over.push(mov(1, 1));
        assert_eq!(reported(&l).0, "I7");
    }

    #[test]
    fn an_inserted_node_reading_the_program_is_reported() {
        let mut l = with_rewritten_original();
        let p = l.patch(l.node_of(Slot(2)).unwrap(), &PatchBuf::from_insns(&[mov(7, 7), mov(0, 1)])).unwrap();
        l.flush();
        assert_eq!(l.validate(), Ok(()));
        l.flags[p.last.index()] &= !F_OWN;
        assert_eq!(reported(&l), ("I7", p.last));
    }

    #[test]
    fn own_storage_that_does_not_cover_the_new_nodes_is_reported() {
        let mut l = with_rewritten_original();
        l.own.push(mov(1, 1));
        assert_eq!(reported(&l).0, "I7");
    }

    #[test]
    fn a_find_live_pointer_past_the_first_survivor_is_reported() {
        let mut l = PatchList::new(&PENDING_JUMP).unwrap();
        l.delete(l.node_of(Slot(2)).unwrap()).unwrap();
        assert_eq!(l.validate(), Ok(()));
        // Deleted node 2's first survivor is node 3 (the exit); point it past, at the sentinel.
        l.tgt[2] = l.end();
        assert_eq!(reported(&l), ("I2", crate::NodeId(2)));
    }

    #[test]
    fn call_group_flags_without_their_table_entry_are_reported() {
        use crate::list::{F_CFRESH, F_CMOVED};
        for flag in [F_CFRESH, F_CMOVED] {
            let mut l = PatchList::new(&PENDING_JUMP).unwrap();
            l.flags[0] |= flag;
            assert_eq!(reported(&l), ("I4", crate::NodeId(0)));
        }
    }

    #[test]
    fn a_rewritten_original_beyond_the_rewrite_table_is_reported() {
        // A fresh list has no rewrite table (the first rewrite sizes it).
        let mut l = PatchList::new(&PENDING_JUMP).unwrap();
        l.flags[0] |= F_OWN;
        assert_eq!(reported(&l), ("I7", crate::NodeId(0)));
    }

    #[test]
    fn an_identity_table_naming_another_node_is_reported() {
        let mut l = PatchList::new(&PENDING_JUMP).unwrap();
        l.orig_node[0] = 3;
        assert_eq!(reported(&l), ("I5", crate::NodeId(0)));
    }

    #[test]
    fn log_entries_out_of_order_or_past_the_program_are_reported() {
        for x in [0, 4] {
            let mut l = with_pending_jump();
            // After the logged patch of node 1: an entry for node 0, or for the sentinel.
            l.pending.commit(x, &[mov(7, 7)]);
            // (The log's own check: the walks before it read the log through the entries.)
            let e = l.validate_log().expect_err("the planted entry is reported");
            assert_eq!((e.invariant, e.node), ("I6", crate::NodeId(x)), "{e}");
            assert!(e.detail.contains("not increasing"), "{e}");
        }
    }
}
