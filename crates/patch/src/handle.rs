//! Typed views of the list's packed reference words.
//!
//! A reference (a live node's `tgt`, a label's call side, a subprogram start, a call group's
//! parent, a deleted node's call-group snapshot) is stored as one `u32` so that the per-node
//! arrays stay compact; what the word names is read and written only through [`Ref`], never
//! by testing tag bits at the use site.

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

#[cfg(test)]
mod tests {
    use super::Ref;

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
