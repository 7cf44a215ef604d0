//! Control-flow graph: basic blocks, successors, subprograms and the call graph.
//!
//! Subprograms are found as the kernel's `add_subprog_and_kfunc` does: instruction 0 plus the
//! target of every bpf-to-bpf call and every `PSEUDO_FUNC` ld_imm64, sorted; each subprogram runs
//! to the next start. Every intra-function jump must stay inside its subprogram (kernel
//! `check_subprogs`), which [`Cfg::build_with`] checks.
//!
//! Blocks: leaders are subprogram starts, jump targets and the instruction after any jump or
//! `exit`. Calls do not end blocks (the CFG is intra-procedural; calls are edges of the call
//! graph). A block whose last instruction falls through past the end of its subprogram has no
//! fall-through successor and `falls_off` set: such a program is only valid if that block is
//! unreachable, which [`crate::analysis::reach`] decides.
//!
//! Everything is built by forward sweeps; nothing recurses.

use crate::program::{DecodedProgram, Edge, InsnIdx, ProgramError, to_u32};
use bpfpatch_insn::{Insn, Op, Slot};

/// Index of a basic block.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct BlockId(pub u32);

impl BlockId {
    /// The index as `usize`.
    #[must_use]
    pub const fn idx(self) -> usize {
        self.0 as usize
    }
}

/// Index of a subprogram (0 is the main program).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct SubprogId(pub u32);

impl SubprogId {
    /// The main program.
    pub const MAIN: SubprogId = SubprogId(0);

    /// The index as `usize`.
    #[must_use]
    pub const fn idx(self) -> usize {
        self.0 as usize
    }
}

/// A basic block: instructions `start..end` (instruction indices, `end` exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// First instruction.
    pub start: InsnIdx,
    /// One past the last instruction.
    pub end: InsnIdx,
    /// The subprogram holding it.
    pub subprog: SubprogId,
    /// The fall-through successor (the next block of the same subprogram), if control can fall through.
    pub fall: Option<BlockId>,
    /// The jump successor (target of a `goto`/conditional/`may_goto` ending the block).
    pub jump: Option<BlockId>,
    /// The last instruction falls through past the end of the subprogram.
    pub falls_off: bool,
}

impl Block {
    /// The last instruction of the block.
    #[must_use]
    pub const fn last(&self) -> InsnIdx {
        InsnIdx(self.end.0 - 1)
    }

    /// Iterates over the instructions of the block.
    pub fn insns(&self) -> impl DoubleEndedIterator<Item = InsnIdx> + use<> {
        (self.start.0..self.end.0).map(InsnIdx)
    }

    /// Successors (fall-through first).
    pub fn succs(&self) -> impl Iterator<Item = BlockId> + use<> {
        self.fall.into_iter().chain(self.jump)
    }
}

/// A subprogram: instructions `start..end`, blocks `blocks.0..blocks.1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subprog {
    /// Its first instruction.
    pub start: InsnIdx,
    /// One past its last instruction.
    pub end: InsnIdx,
    /// Its first block (the entry) and one past its last block.
    pub blocks: (BlockId, BlockId),
    /// bpf-to-bpf call instructions that call it.
    pub callers: Vec<InsnIdx>,
    /// `PSEUDO_FUNC` ld_imm64 instructions that take its address.
    pub refs: Vec<InsnIdx>,
    /// Whether control may enter it from outside the program (the main program, and the
    /// declared entries of [`Cfg::with_entries`]: an object section's other programs, or
    /// functions called from other sections).
    pub external: bool,
}

impl Subprog {
    /// The entry block.
    #[must_use]
    pub const fn entry(&self) -> BlockId {
        self.blocks.0
    }

    /// Whether its address is taken (it is a callback).
    #[must_use]
    pub fn is_callback(&self) -> bool {
        !self.refs.is_empty()
    }
}

/// Why a CFG cannot be built.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CfgError {
    /// The program does not decode or has a bad target.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// A jump leaves its subprogram (kernel: "jump out of range").
    #[error("slot {slot}: jump to slot {target} leaves its subprogram")]
    JumpOutOfSubprog {
        /// The jump's slot.
        slot: Slot,
        /// The target's slot.
        target: Slot,
    },
}

/// The control-flow graph of a whole program (all subprograms).
#[derive(Clone, Debug)]
pub struct Cfg {
    prog: DecodedProgram,
    blocks: Vec<Block>,
    block_of: Vec<u32>,
    subprogs: Vec<Subprog>,
    pred_start: Vec<u32>,
    preds: Vec<BlockId>,
}

/// Whether control never falls through `op` to the next instruction.
#[must_use]
pub fn is_terminator(op: &Op) -> bool {
    matches!(op, Op::Exit | Op::Ja { .. })
}

/// Whether `op` ends a basic block (jumps of any kind and `exit`).
#[must_use]
pub fn ends_block(op: &Op) -> bool {
    matches!(op, Op::Exit | Op::Ja { .. } | Op::Jump { .. } | Op::MayGoto { .. })
}

impl Cfg {
    /// Decodes `insns` and builds the CFG.
    ///
    /// # Errors
    /// See [`DecodedProgram::decode`] and [`CfgError`].
    #[cfg(any(test, feature = "internals"))]
    pub fn new(insns: &[Insn]) -> Result<Cfg, CfgError> {
        Cfg::build_with(DecodedProgram::decode(insns)?, &[])
    }

    /// Decodes `insns` and builds the CFG with extra entry points: each slot of `entries` that
    /// starts an instruction starts an external subprogram (reached from outside, like the main
    /// program). Slots that start no instruction are ignored.
    ///
    /// # Errors
    /// As [`Cfg::new`].
    pub fn with_entries(insns: &[Insn], entries: &[Slot]) -> Result<Cfg, CfgError> {
        let prog = DecodedProgram::decode(insns)?;
        let idx: Vec<InsnIdx> = entries.iter().filter_map(|s| prog.at_slot(s.0)).collect();
        Cfg::build_with(prog, &idx)
    }

    /// Builds the CFG of a decoded program with extra external entry points (see
    /// [`Cfg::with_entries`]).
    ///
    /// # Errors
    /// [`CfgError::JumpOutOfSubprog`] when a jump crosses a subprogram boundary.
    pub fn build_with(prog: DecodedProgram, entries: &[InsnIdx]) -> Result<Cfg, CfgError> {
        let n = prog.len();
        // 1. Subprogram starts.
        let mut is_start = vec![false; n];
        is_start[0] = true;
        let mut is_entry = vec![false; n];
        is_entry[0] = true;
        for e in entries {
            if let (Some(s), Some(x)) = (is_start.get_mut(e.idx()), is_entry.get_mut(e.idx())) {
                *s = true;
                *x = true;
            }
        }
        for (i, _) in prog.iter() {
            if let Some((t, Edge::Call | Edge::FuncRef)) = prog.target(i) {
                is_start[t.idx()] = true;
            }
        }
        let mut subprog_of = vec![0u32; n];
        let mut starts = Vec::new();
        for (i, &s) in is_start.iter().enumerate() {
            if s {
                starts.push(InsnIdx(to_u32(i)));
            }
            subprog_of[i] = to_u32(starts.len() - 1);
        }
        // 2. Jumps stay inside their subprogram; collect leaders.
        let mut leader = is_start;
        for (i, op) in prog.iter() {
            if let Some((t, Edge::Jump)) = prog.target(i) {
                if subprog_of[t.idx()] != subprog_of[i.idx()] {
                    return Err(CfgError::JumpOutOfSubprog { slot: prog.slot(i), target: prog.slot(t) });
                }
                leader[t.idx()] = true;
            }
            if let (true, Some(nx)) = (ends_block(op), prog.next(i)) {
                leader[nx.idx()] = true;
            }
        }
        // 3. Blocks.
        let mut blocks: Vec<Block> = Vec::new();
        let mut block_of = vec![0u32; n];
        for i in 0..n {
            if leader[i] {
                if let Some(b) = blocks.last_mut() {
                    b.end = InsnIdx(to_u32(i));
                }
                blocks.push(Block {
                    start: InsnIdx(to_u32(i)),
                    end: InsnIdx(to_u32(n)),
                    subprog: SubprogId(subprog_of[i]),
                    fall: None,
                    jump: None,
                    falls_off: false,
                });
            }
            block_of[i] = to_u32(blocks.len() - 1);
        }
        // 4. Successors.
        let nblocks = blocks.len();
        for blk in &mut blocks {
            let last = blk.last();
            if let Some((t, Edge::Jump)) = prog.target(last) {
                blk.jump = Some(BlockId(block_of[t.idx()]));
            }
            if !is_terminator(prog.op(last)) {
                match prog.next(last) {
                    Some(nx) if subprog_of[nx.idx()] == blk.subprog.0 => {
                        blk.fall = Some(BlockId(block_of[nx.idx()]));
                    }
                    _ => blk.falls_off = true,
                }
            }
        }
        // 5. Subprograms and the call graph.
        let mut subprogs: Vec<Subprog> = Vec::with_capacity(starts.len());
        for (k, &s) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(InsnIdx(to_u32(n)));
            let first = BlockId(block_of[s.idx()]);
            let last = BlockId(block_of[end.idx() - 1] + 1);
            subprogs.push(Subprog {
                start: s,
                end,
                blocks: (first, last),
                callers: Vec::new(),
                refs: Vec::new(),
                external: is_entry[s.idx()],
            });
        }
        for (i, _) in prog.iter() {
            match prog.target(i) {
                Some((t, Edge::Call)) => subprogs[subprog_of[t.idx()] as usize].callers.push(i),
                Some((t, Edge::FuncRef)) => subprogs[subprog_of[t.idx()] as usize].refs.push(i),
                _ => {}
            }
        }
        // 6. Predecessors (CSR).
        let mut count = vec![0u32; nblocks + 1];
        for b in &blocks {
            for s in b.succs() {
                count[s.idx() + 1] += 1;
            }
        }
        for k in 0..nblocks {
            count[k + 1] += count[k];
        }
        let mut fill = count.clone();
        let mut preds = vec![BlockId(0); count[nblocks] as usize];
        for (b, blk) in blocks.iter().enumerate() {
            for s in blk.succs() {
                preds[fill[s.idx()] as usize] = BlockId(to_u32(b));
                fill[s.idx()] += 1;
            }
        }
        Ok(Cfg { prog, blocks, block_of, subprogs, pred_start: count, preds })
    }

    /// The decoded program.
    #[must_use]
    pub fn prog(&self) -> &DecodedProgram {
        &self.prog
    }

    /// All blocks, in layout order.
    #[must_use]
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// One block.
    #[must_use]
    pub fn block(&self, b: BlockId) -> &Block {
        &self.blocks[b.idx()]
    }

    /// The block holding instruction `i`.
    #[must_use]
    pub fn block_of(&self, i: InsnIdx) -> BlockId {
        BlockId(self.block_of[i.idx()])
    }

    /// Predecessors of `b`.
    #[must_use]
    pub fn preds(&self, b: BlockId) -> &[BlockId] {
        let lo = self.pred_start[b.idx()] as usize;
        let hi = self.pred_start[b.idx() + 1] as usize;
        &self.preds[lo..hi]
    }

    /// All subprograms; index 0 is the main program.
    #[must_use]
    pub fn subprogs(&self) -> &[Subprog] {
        &self.subprogs
    }

    /// One subprogram.
    #[must_use]
    pub fn subprog(&self, s: SubprogId) -> &Subprog {
        &self.subprogs[s.idx()]
    }

    /// The subprogram holding instruction `i`.
    #[must_use]
    pub fn subprog_of(&self, i: InsnIdx) -> SubprogId {
        self.block(self.block_of(i)).subprog
    }

    /// The subprogram starting at instruction `i`, if one does.
    #[must_use]
    pub fn subprog_at(&self, i: InsnIdx) -> Option<SubprogId> {
        let s = self.subprog_of(i);
        (self.subprog(s).start == i).then_some(s)
    }

    /// The subprogram a bpf-to-bpf call or `PSEUDO_FUNC` reference at `i` enters, if it is one.
    #[must_use]
    pub fn callee(&self, i: InsnIdx) -> Option<SubprogId> {
        match self.prog.target(i) {
            Some((t, Edge::Call | Edge::FuncRef)) => self.subprog_at(t),
            _ => None,
        }
    }
}
