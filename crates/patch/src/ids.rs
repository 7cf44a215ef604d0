//! Typed indices: list nodes, labels, subprograms.

use core::fmt;

/// A node of a [`crate::PatchList`]: one instruction slot *position*.
///
/// Nodes `0..n` are the original slots (`NodeId::from(Slot(i))` is original slot `i`); nodes
/// created by patches follow. A node id names a position, not an instruction: every reference
/// bound to a node lands on whatever that node holds when the list is linearized (see the
/// crate documentation, "targeting rules").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    /// The node's index in the arena.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The node of original slot `slot` (not checked against a list; the list validates).
    #[must_use]
    pub fn of_slot(slot: bpfpatch_insn::Slot) -> NodeId {
        NodeId(u32::try_from(slot.0).unwrap_or(u32::MAX))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// An opaque label: created unbound (or bound at creation), bound once to a node, referenced by
/// any number of instructions through [`crate::Target::Label`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Label(pub(crate) u32);

impl Label {
    /// The label's index.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// A subprogram of a list: original subprograms are `0..k` in start order, appended ones follow.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SubprogId(pub u32);

impl SubprogId {
    /// The subprogram's index.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for SubprogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subprog {}", self.0)
    }
}
