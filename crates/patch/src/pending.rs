//! The log of pending patches (invariant I6, see `list.rs`): forward patches of pristine
//! original nodes kept as their slots and resolved references, applied to the arrays only when
//! another kind of request comes (`PatchList::flush`), and streamed by linearization otherwise.
//!
//! This is the only type that knows the log's layout: the list, the walks and the checker go
//! through [`Pending`]'s methods and the borrowed [`PendingPatch`] view of one entry.
//!
//! Node ids: entry `e` (0-based) with slots `pool[start..end]` owns its original node `x` (slot
//! 0) and the `end - start - 1` new nodes `arr + (start - e) ..`, where `arr` is the number of
//! nodes in the arrays: every entry before it has one slot on its original node, so the first
//! new node of each entry is nondecreasing in `e`, and ids come out exactly as applying the
//! patches one by one would allocate them.

// Pool and reference indices are below MAX_NODES = 2^30 (checked before a patch is logged).
#![allow(clippy::cast_possible_truncation)]

use bpfpatch_insn::Insn;

/// One log entry: the original node it replaces and the ends of its slots and references.
#[derive(Clone, Copy, Debug)]
struct Entry {
    x: u32,
    pool_end: u32,
    refs_end: u32,
}

/// The pending patches, in increasing original node.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending {
    entries: Vec<Entry>,
    /// The slots of every pending patch, in order.
    pool: Vec<Insn>,
    /// The resolved references of the pool's jump-class slots, in pool order.
    refs: Vec<u32>,
}

/// One pending patch, borrowed from the log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingPatch<'a> {
    /// The original node it replaces (which keeps slot 0).
    pub(crate) x: u32,
    /// Its slots (at least one).
    pub(crate) slots: &'a [Insn],
    /// The references of its jump-class slots, in slot order.
    pub(crate) refs: &'a [u32],
    /// Offset of its first new node (slot 1) from the first node beyond the arrays.
    pub(crate) first_new: u32,
}

impl PendingPatch<'_> {
    /// The node of slot `k`, given `arr`, the number of nodes in the arrays.
    #[inline]
    pub(crate) fn node(&self, k: usize, arr: u32) -> u32 {
        if k == 0 { self.x } else { arr + self.first_new + k as u32 - 1 }
    }
}

/// The pending patches in order, each read once (no look-back at the previous entry).
#[derive(Clone, Debug)]
pub(crate) struct PendingIter<'a> {
    p: &'a Pending,
    e: usize,
    ps: usize,
    rs: usize,
}

impl<'a> Iterator for PendingIter<'a> {
    type Item = PendingPatch<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<PendingPatch<'a>> {
        let en = *self.p.entries.get(self.e)?;
        let (pe, re) = (en.pool_end as usize, en.refs_end as usize);
        let patch = PendingPatch {
            x: en.x,
            slots: self.p.pool.get(self.ps..pe).unwrap_or(&[]),
            refs: self.p.refs.get(self.rs..re).unwrap_or(&[]),
            first_new: (self.ps - self.e) as u32,
        };
        self.e += 1;
        self.ps = pe;
        self.rs = re;
        Some(patch)
    }
}

impl Pending {
    /// Number of pending patches (for the checker).
    #[cfg(any(debug_assertions, feature = "fuzzing"))]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is pending.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of node ids the pending patches own beyond the arrays.
    #[inline]
    pub(crate) fn new_nodes(&self) -> usize {
        self.pool.len() - self.entries.len()
    }

    /// The original node of the last pending patch.
    #[inline]
    pub(crate) fn last_node(&self) -> Option<u32> {
        self.entries.last().map(|e| e.x)
    }

    /// Forgets every pending patch, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.pool.clear();
        self.refs.clear();
    }

    /// Starts recording a patch: the mark to pass to [`Pending::rollback`].
    #[inline]
    pub(crate) fn mark(&self) -> usize {
        self.refs.len()
    }

    /// Records the reference of the next jump-class slot of the patch being recorded.
    #[inline]
    pub(crate) fn push_ref(&mut self, r: u32) {
        self.refs.push(r);
    }

    /// Drops the references recorded since `mark` (the patch does not qualify).
    #[inline]
    pub(crate) fn rollback(&mut self, mark: usize) {
        self.refs.truncate(mark);
    }

    /// Completes the patch of original node `x` whose references were pushed: its slots.
    #[inline(always)]
    pub(crate) fn commit(&mut self, x: u32, slots: &[Insn]) {
        // A few slots: pushes beat a `memcpy` call.
        self.pool.reserve(slots.len());
        for &insn in slots {
            self.pool.push(insn);
        }
        self.entries.push(Entry { x, pool_end: self.pool.len() as u32, refs_end: self.refs.len() as u32 });
    }

    /// Entry `e`, `None` past the end.
    #[inline]
    pub(crate) fn get(&self, e: usize) -> Option<PendingPatch<'_>> {
        let en = *self.entries.get(e)?;
        let (ps, rs) = match e.checked_sub(1).and_then(|p| self.entries.get(p)) {
            Some(p) => (p.pool_end as usize, p.refs_end as usize),
            None => (0, 0),
        };
        Some(PendingPatch {
            x: en.x,
            slots: self.pool.get(ps..en.pool_end as usize).unwrap_or(&[]),
            refs: self.refs.get(rs..en.refs_end as usize).unwrap_or(&[]),
            first_new: (ps - e) as u32,
        })
    }

    /// Every pending patch, in order (the walks' cursor: each entry is read once).
    pub(crate) fn iter(&self) -> PendingIter<'_> {
        PendingIter { p: self, e: 0, ps: 0, rs: 0 }
    }

    /// The entry of original node `x`, if it is pending.
    pub(crate) fn find_orig(&self, x: u32) -> Option<usize> {
        self.entries.binary_search_by_key(&x, |e| e.x).ok()
    }

    /// The entry and slot (`>= 1`) of the `d`-th node beyond the arrays, if a pending patch owns it.
    pub(crate) fn find_new(&self, d: usize) -> Option<(usize, usize)> {
        let first_new = |e: usize| {
            let ps = if e == 0 { 0 } else { self.entries.get(e - 1).map_or(0, |p| p.pool_end as usize) };
            ps - e
        };
        let (mut lo, mut hi) = (0usize, self.entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if first_new(mid) <= d {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let e = lo.checked_sub(1)?;
        let k = d - first_new(e) + 1;
        (k < self.get(e)?.slots.len()).then_some((e, k))
    }

    /// Every recorded reference (for the checker).
    #[cfg(any(debug_assertions, feature = "fuzzing"))]
    pub(crate) fn all_refs(&self) -> &[u32] {
        &self.refs
    }

    /// The recorded references, writable (for the checker's own tests, which corrupt them).
    #[cfg(test)]
    pub(crate) fn refs_mut(&mut self) -> &mut [u32] {
        &mut self.refs
    }

    /// Whether the entries tile the pool and the references exactly (for the checker).
    #[cfg(any(debug_assertions, feature = "fuzzing"))]
    pub(crate) fn tiles(&self) -> bool {
        let (mut ps, mut rs) = (0u32, 0u32);
        for en in &self.entries {
            if en.pool_end <= ps || en.refs_end < rs {
                return false;
            }
            ps = en.pool_end;
            rs = en.refs_end;
        }
        ps as usize == self.pool.len() && rs as usize == self.refs.len()
    }
}

#[cfg(all(test, any(debug_assertions, feature = "fuzzing")))]
mod tests {
    use super::*;

    fn slot(k: i32) -> Insn {
        Insn::new(0xb7, 0, 0, 0, k)
    }

    #[test]
    fn tiles_holds_for_recorded_patches_only() {
        let mut p = Pending::default();
        assert!(p.tiles(), "an empty log tiles");
        p.push_ref(3);
        p.commit(1, &[slot(1), slot(2)]);
        p.commit(4, &[slot(3)]);
        assert!(p.tiles());

        // An entry without slots (its pool end does not grow), the references still in order.
        let mut q = p.clone();
        q.entries.push(Entry { x: 5, pool_end: 3, refs_end: 1 });
        assert!(!q.tiles(), "an empty entry");

        // References going backwards, the pool in order.
        let mut q = p.clone();
        q.pool.push(slot(4));
        q.entries.push(Entry { x: 6, pool_end: 4, refs_end: 0 });
        assert!(!q.tiles(), "references out of order");

        // A pool or references longer than the entries cover.
        let mut q = p.clone();
        q.pool.push(slot(5));
        assert!(!q.tiles(), "pool slots no entry owns");
        let mut q = p.clone();
        q.refs.push(7);
        assert!(!q.tiles(), "references no entry owns");
    }
}
