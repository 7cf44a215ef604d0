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
#[derive(Clone, Default, Debug)]
pub struct PatchBuf {
    /// The slots, stored as they are copied into the list (one `memcpy` for a plain buffer).
    pub(crate) insns: Vec<Insn>,
    /// Explicit targets by slot index; slots at or past its length have none (a buffer of
    /// plain slots never touches it).
    pub(crate) targets: Vec<Option<Target>>,
}

impl PartialEq for PatchBuf {
    fn eq(&self, other: &PatchBuf) -> bool {
        self.insns == other.insns && (0..self.insns.len()).all(|k| self.target(k) == other.target(k))
    }
}

impl Eq for PatchBuf {}

impl PatchBuf {
    /// An empty buffer.
    #[must_use]
    pub fn new() -> PatchBuf {
        PatchBuf { insns: Vec::new(), targets: Vec::new() }
    }

    /// An empty buffer with room for `n` slots.
    #[must_use]
    pub fn with_capacity(n: usize) -> PatchBuf {
        PatchBuf { insns: Vec::with_capacity(n), targets: Vec::new() }
    }

    /// A buffer of raw slots; targets are buffer-local relative offsets in their own fields.
    #[must_use]
    pub fn from_insns(insns: &[Insn]) -> PatchBuf {
        PatchBuf { insns: insns.to_vec(), targets: Vec::new() }
    }

    /// Removes all slots, keeping the allocation.
    #[inline]
    pub fn clear(&mut self) {
        self.insns.clear();
        self.targets.clear();
    }

    /// Number of slots (an ld_imm64 counts two).
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the buffer is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The raw slots.
    pub fn insns(&self) -> impl Iterator<Item = Insn> + '_ {
        self.insns.iter().copied()
    }

    /// The explicit target of slot `k` (given by [`PatchBuf::jump_to`], [`PatchBuf::func_ref`]
    /// or [`PatchBuf::set_target`]), if any: `None` for a slot whose target, if it has a target
    /// field, is the buffer-local relative offset in that field, and for `k` past the end.
    ///
    /// ```
    /// use bpfpatch_insn::{Insn, opcode as c};
    /// use bpfpatch_patch::{PatchBuf, Target};
    /// let mut buf = PatchBuf::new();
    /// buf.push(Insn::new(c::JMP | c::JA, 0, 0, 0, 0)).jump_to(Insn::new(c::JMP | c::JA, 0, 0, 0, 0), Target::OrigTarget);
    /// assert_eq!((buf.target(0), buf.target(1), buf.target(2)), (None, Some(Target::OrigTarget), None));
    /// ```
    #[must_use]
    #[inline]
    pub fn target(&self, k: usize) -> Option<Target> {
        self.targets.get(k).copied().flatten()
    }

    /// Gives slot `k` (already pushed or about to be) the explicit target `t`.
    #[inline]
    fn set_target_at(&mut self, k: usize, t: Target) {
        if self.targets.len() <= k {
            self.targets.resize(k + 1, None);
        }
        self.targets[k] = Some(t);
    }

    /// Appends one raw slot. If it has a target field, the field is a relative offset inside
    /// this buffer (`index + field + 1`, where `len` means one past the end).
    #[inline]
    pub fn push(&mut self, insn: Insn) -> &mut PatchBuf {
        self.insns.push(insn);
        self
    }

    /// Appends raw slots in one copy; targets as for [`PatchBuf::push`]. The cheap way to
    /// build a buffer from pregenerated instructions (then [`PatchBuf::set_target`] for the
    /// slots whose target is not their own field).
    ///
    /// ```
    /// use bpfpatch_insn::{Insn, opcode as c};
    /// use bpfpatch_patch::{PatchBuf, Target};
    /// let ja = Insn::new(c::JMP | c::JA, 0, 0, 0, 0);
    /// let mut buf = PatchBuf::new();
    /// buf.extend_from_slice(&[Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 1), ja]);
    /// assert!(buf.set_target(1, Target::OrigTarget));
    /// assert_eq!((buf.len(), buf.target(0), buf.target(1)), (2, None, Some(Target::OrigTarget)));
    /// ```
    #[inline]
    pub fn extend_from_slice(&mut self, insns: &[Insn]) -> &mut PatchBuf {
        crate::append::extend_small(&mut self.insns, insns);
        self
    }

    /// Appends an instruction's slots (two for ld_imm64); targets as for [`PatchBuf::push`].
    pub fn push_op(&mut self, op: &Op) -> &mut PatchBuf {
        self.insns.extend_from_slice(op.encode().as_slice());
        self
    }

    /// Appends a jump, call or `PSEUDO_FUNC` (first slot) whose target is `target`; the
    /// instruction's own offset field is ignored and rewritten at linearization. For an
    /// ld_imm64 push its second slot next with [`PatchBuf::push`].
    #[inline]
    pub fn jump_to(&mut self, insn: Insn, target: Target) -> &mut PatchBuf {
        self.set_target_at(self.insns.len(), target);
        self.insns.push(insn);
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
        self.set_target_at(self.insns.len(), target);
        self.insns.push(lo);
        self.insns.push(Insn::default());
        self
    }

    /// Sets (or replaces) the target of buffer slot `index`; returns `false` if there is no such slot.
    #[inline]
    pub fn set_target(&mut self, index: usize, target: Target) -> bool {
        if index >= self.insns.len() {
            return false;
        }
        self.set_target_at(index, target);
        true
    }
}

impl From<&[Insn]> for PatchBuf {
    fn from(insns: &[Insn]) -> PatchBuf {
        PatchBuf::from_insns(insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SubprogId;
    use bpfpatch_insn::opcode as c;

    /// `extend_from_slice` appends exactly the slice, whatever its length (the short ones are
    /// pushed one by one), after what is there, and returns the same buffer.
    #[test]
    fn extend_from_slice_appends_exactly_the_slice() {
        let src: Vec<Insn> = (0..9).map(|k| Insn::new(c::ALU64 | c::MOV | c::K, 1, 0, 0, k)).collect();
        for len in 0..=src.len() {
            let mut buf = PatchBuf::new();
            buf.push(Insn::default()).extend_from_slice(&src[..len]).push(Insn::default());
            let got: Vec<Insn> = buf.insns().collect();
            assert_eq!(got.len(), len + 2, "length {len}");
            assert_eq!(got[1..=len], src[..len], "length {len}");
        }
    }

    /// `target` reads back exactly the explicit targets given, whichever way they were given,
    /// and nothing for plain slots, slots past the end, or after `clear`.
    #[test]
    fn target_reads_back_the_explicit_targets() {
        let ja = Insn::new(c::JMP | c::JA, 0, 0, 3, 0);
        let mut buf = PatchBuf::new();
        buf.push(ja).jump_to(ja, Target::OrigTarget).func_ref(1, Target::Subprog(SubprogId(0))).push(ja);
        let got: Vec<_> = (0..6).map(|k| buf.target(k)).collect();
        assert_eq!(got, [None, Some(Target::OrigTarget), Some(Target::Subprog(SubprogId(0))), None, None, None]);
        assert!(buf.set_target(4, Target::PastEnd));
        assert_eq!(buf.target(4), Some(Target::PastEnd));
        assert!(buf.set_target(1, Target::Local(0)));
        assert_eq!(buf.target(1), Some(Target::Local(0)));
        buf.clear();
        assert_eq!(buf.target(1), None);
    }
}
