//! Labels: positions named before or after the code they mark (I3, I4).

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (see `list.rs`).
#![allow(clippy::cast_possible_truncation)]

use super::*;

impl<'p> PatchList<'p> {
    /// A new, unbound label.
    ///
    /// # Errors
    /// [`Error::TooLarge`] past 2^30 labels.
    pub fn new_label(&mut self) -> Result<Label> {
        if self.labels.len() >= MAX_NODES {
            return Err(Error::TooLarge { nodes: self.labels.len(), limit: MAX_NODES });
        }
        self.labels.push((NONE, NONE));
        Ok(Label(self.labels.len() as u32 - 1))
    }

    /// Binds `label` to `node`'s position (once). Jumps through the label land where jumps to
    /// `node` land; calls through it where a call made to `node` at binding time lands (on its
    /// instruction now, into any skipping prologue inserted at it later), exactly as
    /// [`Target::Node`] in a request made at binding time.
    ///
    /// # Errors
    /// Unknown label, already bound, or a node that is not a live instruction.
    pub fn bind_label(&mut self, label: Label, node: NodeId) -> Result<()> {
        self.flush();
        let x = self.live_insn(node)?;
        let slot = self.labels.get_mut(label.index()).ok_or(Error::UnknownLabel { label })?;
        if slot.0 != NONE {
            return Err(Error::LabelAlreadyBound { label });
        }
        let handle = self.cur_handle(x);
        self.labels[label.index()] = (x, handle);
        Ok(())
    }

    /// A new label bound to `node`.
    ///
    /// # Errors
    /// As [`PatchList::bind_label`].
    pub fn label_at(&mut self, node: NodeId) -> Result<Label> {
        self.flush();
        self.live_insn(node)?;
        let l = self.new_label()?;
        self.bind_label(l, node)?;
        Ok(l)
    }
}
