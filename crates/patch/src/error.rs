//! Errors of the patch engine: every variant says where (node, buffer slot, original slot or
//! new slot) and what.

use crate::ids::{Label, NodeId, SubprogId};
use bpfpatch_insn::Slot;

/// Why a patch request, a program or a linearization was rejected.
///
/// Requests (`patch`, `prepatch`, `delete`, `append`, label binding) are validated completely
/// before the list changes: an `Err` from them leaves the list exactly as it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ----- the input program -----
    /// An original jump, call or `PSEUDO_FUNC` points outside the program.
    #[error("original slot {slot}: target {target} is outside the program of {len} slots")]
    OrigTargetOutOfRange {
        /// The instruction holding the target.
        slot: Slot,
        /// The absolute target it encodes.
        target: i64,
        /// The program length in slots.
        len: usize,
    },
    /// An original jump, call or `PSEUDO_FUNC` points at the second slot of an ld_imm64.
    #[error("original slot {slot}: target {target} is the second slot of an ld_imm64")]
    OrigTargetIntoLdImm64 {
        /// The instruction holding the target.
        slot: Slot,
        /// The absolute target.
        target: usize,
    },
    /// The program ends in the middle of an ld_imm64.
    #[error("original slot {slot}: ld_imm64 is missing its second slot")]
    TruncatedLdImm64 {
        /// The first slot of the ld_imm64.
        slot: Slot,
    },
    /// The program (plus everything inserted) would exceed the engine's 2^30-slot limit.
    #[error("program too large: {nodes} list nodes (limit {limit})")]
    TooLarge {
        /// Nodes requested.
        nodes: usize,
        /// The limit.
        limit: usize,
    },
    /// A subprogram start table is not strictly increasing from 0 or names an invalid slot.
    #[error(
        "subprogram {index}: start {start} is invalid (must increase strictly from 0, inside the program, not an ld_imm64 second slot)"
    )]
    BadSubprogStart {
        /// Index in the subprogram table.
        index: usize,
        /// The start given.
        start: usize,
    },

    // ----- nodes named by a request -----
    /// A node id that this list never allocated (or the end sentinel).
    #[error("node {node} does not exist in this list")]
    NoSuchNode {
        /// The node.
        node: NodeId,
    },
    /// The node was deleted by an earlier request.
    #[error("node {node} was deleted")]
    NodeDeleted {
        /// The node.
        node: NodeId,
    },
    /// The node is the second slot of an ld_imm64: it is patched, deleted and targeted only
    /// together with its first slot.
    #[error("node {node} is the second slot of an ld_imm64")]
    LdImm64Tail {
        /// The node.
        node: NodeId,
    },
    /// `delete_range(first, last)` where `last` does not follow `first` in list order.
    #[error("delete range: node {last} does not follow node {first}")]
    BadRange {
        /// First node of the range.
        first: NodeId,
        /// Last node of the range.
        last: NodeId,
    },
    /// `set_insn` would turn an ld_imm64 into a one-slot instruction or back.
    #[error("node {node}: set_insn cannot change the instruction's length in slots")]
    LengthChange {
        /// The node.
        node: NodeId,
    },
    /// `set_insn` was given an instruction with a target field for a node that has no target to keep.
    #[error("node {node}: the new instruction has a target field but the node has no target to keep")]
    NoTargetToKeep {
        /// The node.
        node: NodeId,
    },
    /// `set_insn` would turn a jump into a call or function reference (or the reverse) while
    /// keeping its target: the two kinds land differently next to prologues (crate docs, "calls").
    #[error("node {node}: the new instruction's target kind differs from the kept target's")]
    TargetKindChange {
        /// The node.
        node: NodeId,
    },
    /// `retarget` on an instruction without a target field.
    #[error("node {node}: the instruction has no target field")]
    NodeHasNoTargetField {
        /// The node.
        node: NodeId,
    },

    // ----- patch buffers -----
    /// `patch` and `append` need at least one instruction.
    #[error("empty patch buffer")]
    EmptyPatch,
    /// A buffer longer than [`crate::MAX_PATCH_SLOTS`] (the kernel's `S16_MAX`: no 16-bit jump
    /// could cross it).
    #[error("patch buffer of {len} slots exceeds the limit of {limit}")]
    PatchTooLarge {
        /// Its length in slots.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A buffer ends in the middle of an ld_imm64.
    #[error("patch buffer slot {index}: ld_imm64 is missing its second slot")]
    BufTruncatedLdImm64 {
        /// The buffer slot of the ld_imm64's first slot.
        index: usize,
    },
    /// An explicit target was attached to an instruction that has no target field.
    #[error("patch buffer slot {index}: instruction {code:#04x} has no target field")]
    NotATargetInsn {
        /// The buffer slot.
        index: usize,
        /// Its opcode.
        code: u8,
    },
    /// A buffer-local target outside `0..=len`.
    #[error("patch buffer slot {index}: local target {target} is outside the buffer of {len} slots")]
    LocalTargetOutOfRange {
        /// The buffer slot.
        index: usize,
        /// The buffer slot it targets.
        target: i64,
        /// The buffer length.
        len: usize,
    },
    /// A buffer target that lands on the second slot of an ld_imm64 (buffer-local, original or node).
    #[error("patch buffer slot {index}: target is the second slot of an ld_imm64")]
    TargetIntoLdImm64 {
        /// The buffer slot.
        index: usize,
    },
    /// `Target::OrigTarget` when the patched instruction has no target.
    #[error("patch buffer slot {index}: OrigTarget, but the instruction being patched has no target")]
    NoOrigTarget {
        /// The buffer slot.
        index: usize,
    },
    /// `Target::OrigTarget` on a jump when the patched instruction is a call or function
    /// reference, or the reverse: a target keeps its kind.
    #[error("patch buffer slot {index}: OrigTarget of another kind (jump vs call) than the patched instruction's")]
    OrigTargetKind {
        /// The buffer slot.
        index: usize,
    },
    /// `Target::PastEnd`/`OrigTarget` where no patched instruction exists (append).
    #[error("patch buffer slot {index}: target kind is meaningless for an append")]
    TargetNeedsPatchPoint {
        /// The buffer slot.
        index: usize,
    },
    /// `Target::Orig(slot)` outside the original program.
    #[error("patch buffer slot {index}: original slot {slot} is outside the program of {len} slots")]
    OrigSlotOutOfRange {
        /// The buffer slot.
        index: usize,
        /// The slot named.
        slot: Slot,
        /// The original length.
        len: usize,
    },
    /// `Target::Node` naming a node that does not exist.
    #[error("patch buffer slot {index}: node {node} does not exist")]
    TargetNoSuchNode {
        /// The buffer slot.
        index: usize,
        /// The node.
        node: NodeId,
    },
    /// `Target::Node` or `Target::Orig` naming a deleted position: a request may not make a new
    /// reference to deleted code (references made before the deletion follow it to the first
    /// survivor, see the crate documentation, "calls").
    #[error("patch buffer slot {index}: target node {node} was deleted")]
    TargetDeleted {
        /// The buffer slot.
        index: usize,
        /// The node.
        node: NodeId,
    },
    /// `Target::Subprog` naming a subprogram the list does not know.
    #[error("patch buffer slot {index}: unknown subprogram {subprog}")]
    UnknownSubprog {
        /// The buffer slot.
        index: usize,
        /// The subprogram.
        subprog: SubprogId,
    },

    // ----- labels -----
    /// A label this list never created.
    #[error("unknown label {label}")]
    UnknownLabel {
        /// The label.
        label: Label,
    },
    /// `bind_label` on a label that is already bound.
    #[error("label {label} is already bound")]
    LabelAlreadyBound {
        /// The label.
        label: Label,
    },
    /// A label used by an instruction was never bound.
    #[error("new slot {at}: label {label} was never bound")]
    UnboundLabel {
        /// The instruction (new slot) that uses it.
        at: Slot,
        /// The label.
        label: Label,
    },

    // ----- linearization -----
    /// A target resolved to one past the end of the new program (everything after it was deleted,
    /// or a patch at the end jumps "past end").
    #[error("new slot {at} (original {orig:?}): target resolves past the end of the program")]
    TargetPastEnd {
        /// The instruction (new slot).
        at: Slot,
        /// The original slot it came from, if it is an original instruction.
        orig: Option<Slot>,
    },
    /// A relative target does not fit its field (16-bit `off` without relaxation, or 32-bit `imm`).
    #[error("new slot {at} (original {orig:?}): jump delta {delta} does not fit its field")]
    JumpOutOfRange {
        /// The instruction (new slot).
        at: Slot,
        /// The original slot it came from, if it is an original instruction.
        orig: Option<Slot>,
        /// The delta that does not fit.
        delta: i64,
    },

    // ----- the in-order engine -----
    /// [`crate::InOrder`]: a request for an original slot before the first one it has not
    /// written yet (requests must come in ascending original-slot order, each slot once).
    #[error("original slot {slot}: in-order request, but slots before {next} are written already")]
    OutOfOrder {
        /// The slot requested.
        slot: Slot,
        /// The first slot still open to requests.
        next: Slot,
    },
    /// [`crate::InOrder`]: a request the in-order engine does not express (a target naming a
    /// list node or a label); [`crate::PatchList`] accepts it.
    #[error("original slot {slot}, patch buffer slot {index}: the in-order engine does not support {what}")]
    InOrderUnsupported {
        /// The slot of the request.
        slot: Slot,
        /// The buffer slot.
        index: usize,
        /// What it cannot do.
        what: &'static str,
    },

    // ----- verification layer -----
    /// The program given to `linearize_program` is not the one the list was built from.
    #[error("program has {got} slots but the list was built from {expected}")]
    ProgramMismatch {
        /// Slots of the list's original program.
        expected: usize,
        /// Slots of the program given.
        got: usize,
    },
    /// The aux vector does not have one entry per slot.
    #[error("aux has {got} entries for {expected} slots")]
    AuxLength {
        /// Slots.
        expected: usize,
        /// Entries.
        got: usize,
    },
    /// The subprogram table given does not match the list's.
    #[error("subprogram table differs from the one the list was built with (entry {index})")]
    SubprogMismatch {
        /// First differing index.
        index: usize,
    },
    /// `func_info` must be empty or have one entry per (original) subprogram.
    #[error("func_info has {got} entries for {subprogs} subprograms")]
    FuncInfoCount {
        /// Entries.
        got: usize,
        /// Subprograms.
        subprogs: usize,
    },
    /// A side-table entry names a slot outside the program or the second slot of an ld_imm64.
    #[error("{table}[{index}]: slot {slot} is invalid")]
    BadTableSlot {
        /// Which table.
        table: &'static str,
        /// Entry index.
        index: usize,
        /// The slot.
        slot: u64,
    },
    /// Line info must be strictly increasing.
    #[error("line_info[{index}]: insn_off {insn_off} does not increase")]
    LineInfoOrder {
        /// Entry index.
        index: usize,
        /// Its offset.
        insn_off: u32,
    },
    /// A relocation's byte offset is not a multiple of 8.
    #[error("{table}[{index}]: byte offset {offset} is not a multiple of 8")]
    RelocMisaligned {
        /// Which table.
        table: &'static str,
        /// Entry index.
        index: usize,
        /// The byte offset.
        offset: u64,
    },
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = core::result::Result<T, E>;
