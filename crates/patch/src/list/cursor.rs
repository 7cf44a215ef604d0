//! The cursor: walks live instructions in program order and patches where it stands.

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (see `list.rs`).
#![allow(clippy::cast_possible_truncation)]

use super::*;

impl<'p> PatchList<'p> {
    /// A cursor on the first live instruction.
    pub fn cursor(&mut self) -> Cursor<'_, 'p> {
        self.flush();
        let node = self.first_insn().map_or(NONE, |n| n.0);
        Cursor { list: self, node }
    }

    /// A cursor on `node`.
    ///
    /// # Errors
    /// When `node` is not a live instruction.
    pub fn cursor_at(&mut self, node: NodeId) -> Result<Cursor<'_, 'p>> {
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
pub struct Cursor<'a, 'p> {
    list: &'a mut PatchList<'p>,
    node: u32,
}

impl<'p> Cursor<'_, 'p> {
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
        (t != n.0).then(|| self.list.node_insn(t as usize))
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
    pub fn list(&mut self) -> &mut PatchList<'p> {
        self.list
    }
}
