//! Patch buffers: the instructions of one patch and where their jumps, calls and function
//! references go.

use crate::ids::{Label, NodeId, SubprogId};
use bpfpatch_insn::{Insn, Op, Slot};

/// The longest patch buffer a request may carry: the kernel's `S16_MAX` (32767), past which
/// `bpf_patch_insn_single` cannot guarantee that 16-bit jumps across the patch still fit.
pub const MAX_PATCH_SLOTS: usize = 32767;

/// Where a jump, call or `PSEUDO_FUNC` instruction of a patch buffer goes.
///
/// Every target is symbolic until [`crate::PatchList::linearize`]; it is resolved through the
/// kind of the instruction that holds it (jumps through a position's *jump* entry, calls and
/// function references through its *call* entry, see [`crate::PrepatchMode`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Target {
    /// Buffer slot `k` of this patch (`k == len` means one past the end, as [`Target::PastEnd`]).
    /// This is what an instruction pushed with [`PatchBuf::push`] gets from its own offset field.
    /// A call lands on that slot even when the patched position had a prologue inserted before
    /// it (slot 0 of a `patch` lives in the patched node).
    Local(u32),
    /// One past the end of this patch: the instruction that follows the replaced instruction
    /// (`patch`), or the instruction the code is inserted before (`prepatch`; for a skipping
    /// prologue, calls and jumps alike land on that instruction, not on the prologue).
    PastEnd,
    /// The target of the instruction being patched (e.g. the jcc of constant blinding, the
    /// may_goto guard): follows that target wherever later patches move it.
    OrigTarget,
    /// Original slot `slot`'s position (its node, as [`Target::Node`]).
    Orig(Slot),
    /// A node's position (from [`crate::PatchList::node_of`], a cursor or an earlier patch). A
    /// jump lands on the first slot emitted at or after it; a call lands on the instruction the
    /// node holds now (past a skipping prologue inserted before this request, into one inserted
    /// after it; crate documentation, "calls"). A deleted node is
    /// [`crate::Error::TargetDeleted`].
    Node(NodeId),
    /// A label, bound before or after this patch (but before linearization): as
    /// [`Target::Node`] of its node, the call side taken when the label is bound.
    Label(Label),
    /// The start of a subprogram (an original one or one created by `append`): calls and
    /// function references enter a prologue inserted there by a skipping prepatch; a jump lands
    /// where jumps to the subprogram's first slot land (after such a prologue).
    Subprog(SubprogId),
}

/// One slot of a patch buffer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct BufSlot {
    pub(crate) insn: Insn,
    /// `None`: a target-field instruction's own off/imm is a buffer-local relative offset.
    pub(crate) target: Option<Target>,
}

/// The instructions of one patch, with explicit targets where the default (a buffer-local
/// relative offset taken from the instruction's own field) is not wanted.
///
/// Built with [`PatchBuf::push`] / [`PatchBuf::push_op`] / [`PatchBuf::jump_to`]; validated when
/// applied (so a malformed buffer is a typed error, never a panic). Reuse one buffer across
/// patches with [`PatchBuf::clear`] to avoid allocation.
///
/// ```
/// use bpfpatch_insn::{Insn, opcode as c};
/// use bpfpatch_patch::{PatchBuf, Target};
/// // if r1 == 0 goto <one past the patch>; r0 = 1
/// let mut buf = PatchBuf::new();
/// buf.jump_to(Insn::new(c::JMP | c::JEQ | c::K, 1, 0, 0, 0), Target::PastEnd)
///     .push(Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 1));
/// assert_eq!(buf.len(), 2);
/// ```
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct PatchBuf {
    pub(crate) slots: Vec<BufSlot>,
}

impl PatchBuf {
    /// An empty buffer.
    #[must_use]
    pub fn new() -> PatchBuf {
        PatchBuf { slots: Vec::new() }
    }

    /// An empty buffer with room for `n` slots.
    #[must_use]
    pub fn with_capacity(n: usize) -> PatchBuf {
        PatchBuf { slots: Vec::with_capacity(n) }
    }

    /// A buffer of raw slots; targets are buffer-local relative offsets in their own fields.
    #[must_use]
    pub fn from_insns(insns: &[Insn]) -> PatchBuf {
        PatchBuf { slots: insns.iter().map(|&insn| BufSlot { insn, target: None }).collect() }
    }

    /// Removes all slots, keeping the allocation.
    #[inline]
    pub fn clear(&mut self) {
        self.slots.clear();
    }

    /// Number of slots (an ld_imm64 counts two).
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the buffer is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The raw slots.
    pub fn insns(&self) -> impl Iterator<Item = Insn> + '_ {
        self.slots.iter().map(|s| s.insn)
    }

    /// Appends one raw slot. If it has a target field, the field is a relative offset inside
    /// this buffer (`index + field + 1`, where `len` means one past the end).
    #[inline]
    pub fn push(&mut self, insn: Insn) -> &mut PatchBuf {
        self.slots.push(BufSlot { insn, target: None });
        self
    }

    /// Appends an instruction's slots (two for ld_imm64); targets as for [`PatchBuf::push`].
    pub fn push_op(&mut self, op: &Op) -> &mut PatchBuf {
        for &insn in op.encode().as_slice() {
            self.slots.push(BufSlot { insn, target: None });
        }
        self
    }

    /// Appends a jump, call or `PSEUDO_FUNC` (first slot) whose target is `target`; the
    /// instruction's own offset field is ignored and rewritten at linearization. For an
    /// ld_imm64 push its second slot next with [`PatchBuf::push`].
    #[inline]
    pub fn jump_to(&mut self, insn: Insn, target: Target) -> &mut PatchBuf {
        self.slots.push(BufSlot { insn, target: Some(target) });
        self
    }

    /// Appends both slots of `dst = <function at target>` (an ld_imm64 `PSEUDO_FUNC`, the
    /// reference a callback argument loads); the target resolves as a call's.
    ///
    /// ```
    /// use bpfpatch_patch::{PatchBuf, Target, SubprogId};
    /// let mut buf = PatchBuf::new();
    /// buf.func_ref(2, Target::Subprog(SubprogId(1)));
    /// assert_eq!(buf.len(), 2);
    /// ```
    pub fn func_ref(&mut self, dst: u8, target: Target) -> &mut PatchBuf {
        let lo = Insn::new(bpfpatch_insn::opcode::LD_IMM64, dst, bpfpatch_insn::opcode::PSEUDO_FUNC, 0, 0);
        self.slots.push(BufSlot { insn: lo, target: Some(target) });
        self.slots.push(BufSlot { insn: Insn::default(), target: None });
        self
    }

    /// Sets (or replaces) the target of buffer slot `index`; returns `false` if there is no such slot.
    pub fn set_target(&mut self, index: usize, target: Target) -> bool {
        match self.slots.get_mut(index) {
            Some(s) => {
                s.target = Some(target);
                true
            }
            None => false,
        }
    }
}

impl From<&[Insn]> for PatchBuf {
    fn from(insns: &[Insn]) -> PatchBuf {
        PatchBuf::from_insns(insns)
    }
}
