//! A FIFO worklist of blocks without duplicates.

use crate::analysis::cfg::BlockId;
use std::collections::VecDeque;

/// Blocks waiting to be (re)processed; each block is queued at most once at a time.
#[derive(Clone, Debug, Default)]
pub(crate) struct Worklist {
    queued: Vec<bool>,
    q: VecDeque<BlockId>,
}

impl Worklist {
    /// An empty worklist for `n` blocks.
    pub(crate) fn new(n: usize) -> Worklist {
        Worklist { queued: vec![false; n], q: VecDeque::new() }
    }

    /// Queues `b` unless it is already queued.
    pub(crate) fn push(&mut self, b: BlockId) {
        if let Some(q) = self.queued.get_mut(b.idx())
            && !*q
        {
            *q = true;
            self.q.push_back(b);
        }
    }

    /// Takes the next block.
    pub(crate) fn pop(&mut self) -> Option<BlockId> {
        let b = self.q.pop_front()?;
        if let Some(q) = self.queued.get_mut(b.idx()) {
            *q = false;
        }
        Some(b)
    }
}
