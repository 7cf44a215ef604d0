//! Typed views of the list's packed reference words.
//!
//! A reference (a live node's `tgt`, a label's call side, a subprogram start, a call group's
//! parent, a deleted node's call-group snapshot) is stored as one `u32` so that the per-node
//! arrays stay compact; what the word names is read and written only through [`Ref`], never
//! by testing tag bits at the use site.

use crate::list::NONE;

/// Tag bit: the low bits index `labels`.
const LABEL_BIT: u32 = 1 << 31;
/// Tag bit: the low bits index `cgroups` (an explicit call group).
const GROUP_BIT: u32 = 1 << 30;

/// What a packed reference word names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Ref {
    /// A node: its position for a jump, its implicit call group for a call (I3, I4).
    Node(u32),
    /// A label, resolved through its binding at linearization.
    Label(u32),
    /// An explicit call group (created by a skipping prepatch, I4).
    Group(u32),
}

impl Ref {
    /// Decodes a word. (`NONE`, all bits set, reads as a label no list has: callers that may
    /// hold `NONE` test for it first.)
    #[inline]
    pub(crate) const fn of(w: u32) -> Ref {
        if w & LABEL_BIT != 0 {
            Ref::Label(w & !LABEL_BIT)
        } else if w & GROUP_BIT != 0 {
            Ref::Group(w & !GROUP_BIT)
        } else {
            Ref::Node(w)
        }
    }

    /// Encodes it (indices are below `MAX_NODES` = 2^30, so the tags never collide).
    #[inline]
    pub(crate) const fn word(self) -> u32 {
        match self {
            Ref::Node(x) => x,
            Ref::Label(l) => LABEL_BIT | l,
            Ref::Group(g) => GROUP_BIT | g,
        }
    }

    /// The explicit call group it names, if it is one.
    #[inline]
    pub(crate) const fn group(w: u32) -> Option<u32> {
        match Ref::of(w) {
            Ref::Group(g) => Some(g),
            _ => None,
        }
    }
}

/// Tag bit of an origin word: the node is new and descends from the slot in the low bits.
const PARENT_BIT: u32 = 1 << 31;

/// What a live node's origin word says about the original slot behind it (I5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Origin {
    /// Appended code: no original slot.
    None,
    /// The node carries original slot `s`'s identity (its aux, relocations).
    Orig(u32),
    /// The node is new and descends from original slot `s` (it starts from `s`'s aux).
    Child(u32),
}

impl Origin {
    /// Decodes a word.
    #[inline]
    pub(crate) const fn of(w: u32) -> Origin {
        if w == NONE {
            Origin::None
        } else if w & PARENT_BIT != 0 {
            Origin::Child(w & !PARENT_BIT)
        } else {
            Origin::Orig(w)
        }
    }

    /// Encodes it.
    #[inline]
    pub(crate) const fn word(self) -> u32 {
        match self {
            Origin::None => NONE,
            Origin::Orig(s) => s,
            Origin::Child(s) => PARENT_BIT | s,
        }
    }

    /// The original slot behind it, either way.
    #[inline]
    pub(crate) const fn slot(self) -> Option<u32> {
        match self {
            Origin::None => None,
            Origin::Orig(s) | Origin::Child(s) => Some(s),
        }
    }

    /// The origin of the new slots a patch of a node of this origin creates.
    #[inline]
    pub(crate) const fn child(self) -> Origin {
        match self {
            Origin::Orig(s) => Origin::Child(s),
            o => o,
        }
    }
}

/// Position words (the map's per-node positions, call-group resolution): an output slot, and
/// whether the position was deleted (what lands there lands on the first survivor).
pub(crate) mod pos {
    /// Flag bit of a deleted position.
    const DELETED: u32 = 1 << 31;

    /// The word of a live position.
    #[inline]
    pub(crate) const fn live(slot: u32) -> u32 {
        slot
    }

    /// The word of `slot` flagged as deleted when `deleted`.
    #[inline]
    pub(crate) const fn flagged(slot: u32, deleted: bool) -> u32 {
        if deleted { slot | DELETED } else { slot }
    }

    /// The output slot of a word.
    #[inline]
    pub(crate) const fn slot(w: u32) -> u32 {
        w & !DELETED
    }

    /// Whether the position was deleted.
    #[inline]
    pub(crate) const fn is_deleted(w: u32) -> bool {
        w & DELETED != 0
    }

    /// The largest output slot a word holds.
    pub(crate) const MAX_SLOT: u32 = !DELETED;
}

#[cfg(test)]
mod tests {
    use super::{Origin, Ref, pos};

    #[test]
    fn position_words_keep_slot_and_flag() {
        for s in [0, 1, 77, pos::MAX_SLOT] {
            assert_eq!(pos::slot(pos::live(s)), s);
            assert!(!pos::is_deleted(pos::live(s)));
            assert_eq!(pos::slot(pos::flagged(s, true)), s);
            assert!(pos::is_deleted(pos::flagged(s, true)));
            assert_eq!(pos::flagged(s, false), pos::live(s));
        }
    }

    #[test]
    fn origins_round_trip() {
        for o in [Origin::None, Origin::Orig(0), Origin::Orig(12), Origin::Child(0), Origin::Child(12)] {
            assert_eq!(Origin::of(o.word()), o);
        }
        assert_eq!(Origin::Orig(4).child(), Origin::Child(4));
        assert_eq!(Origin::Child(4).child(), Origin::Child(4));
        assert_eq!(Origin::None.child(), Origin::None);
        assert_eq!(Origin::Child(4).slot(), Some(4));
        assert_eq!(Origin::None.slot(), None);
    }

    #[test]
    fn words_round_trip_and_keep_their_kind() {
        for r in [Ref::Node(0), Ref::Node((1 << 30) - 1), Ref::Label(0), Ref::Label(77), Ref::Group(0), Ref::Group(5)] {
            assert_eq!(Ref::of(r.word()), r);
        }
        assert_ne!(Ref::Node(3).word(), Ref::Group(3).word());
        assert_ne!(Ref::Label(3).word(), Ref::Group(3).word());
        assert_eq!(Ref::group(Ref::Group(9).word()), Some(9));
        assert_eq!(Ref::group(Ref::Node(9).word()), None);
        assert_eq!(Ref::group(Ref::Label(9).word()), None);
    }
}
