//! Errors of the loader ([`LoadError`]) and of execution ([`RunError`]).
//!
//! Every variant names the slot it is about (the index of the 8-byte instruction slot in the
//! image as loaded, the same numbering the decoder and `llvm-objdump` use), and what went wrong.

use bpfpatch_insn::{DecodeError, Reg, Slot};
use core::fmt;

/// Why a program is rejected before it runs.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum LoadError {
    /// A slot does not decode (unknown opcode, reserved field set, kernel-internal form, ...).
    #[error("Invalid instruction: {0}")]
    Decode(DecodeError),
    /// The Linux verifier rejects this instruction in every program ([`crate::LoadOptions::linux`]).
    #[error("Invalid instruction at slot {slot}: rejected by Linux: {why}")]
    RejectedByLinux {
        /// The instruction.
        slot: Slot,
        /// Why.
        why: &'static str,
    },
    /// The image holds no instruction.
    #[error("Invalid program: no instructions")]
    Empty,
    /// The image has more slots than [`bpfpatch_insn::MAX_PROGRAM_SLOTS`] (the kernel's
    /// `BPF_COMPLEXITY_LIMIT_INSNS`).
    #[error("Invalid program: {len} slots is more than the loader accepts ({limit})")]
    TooLarge {
        /// The number of slots.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A jump, call, `gotol`, `may_goto` or function reference points outside the program.
    #[error("slot {slot}: Invalid target {target}, outside the program of {len} slots")]
    TargetOutOfRange {
        /// The instruction holding the target.
        slot: Slot,
        /// The absolute target slot (`slot + delta + 1`).
        target: i64,
        /// The number of slots in the program.
        len: usize,
    },
    /// A target lands on the second slot of an ld_imm64.
    #[error("slot {slot}: Invalid target {target}: jump into the middle of ld_imm64")]
    TargetInLdImm64 {
        /// The instruction holding the target.
        slot: Slot,
        /// The absolute target slot.
        target: usize,
    },
    /// The last instruction lets control fall off the end of the program.
    #[error("slot {slot}: Invalid last instruction: must be exit or an unconditional jump")]
    FallsOffEnd {
        /// The last instruction.
        slot: Slot,
    },
    /// An instruction writes the read-only frame pointer.
    #[error("slot {slot}: Invalid write to the read-only frame pointer r10")]
    WritesFramePointer {
        /// The instruction.
        slot: Slot,
    },
    /// An instruction reads a register that is not written on some path to it.
    #[error("slot {slot}: Invalid read of {reg}, which is uninitialized on some path")]
    Uninitialized {
        /// The instruction.
        slot: Slot,
        /// The register read.
        reg: Reg,
    },
}

// The decode error is part of the message, not a `source()`, so chains do not repeat it.
impl From<DecodeError> for LoadError {
    fn from(e: DecodeError) -> Self {
        LoadError::Decode(e)
    }
}

impl LoadError {
    /// The slot the error is about, if it is about one.
    #[must_use]
    pub fn slot(&self) -> Option<Slot> {
        match self {
            LoadError::Decode(e) => e.slot(),
            LoadError::Empty | LoadError::TooLarge { .. } => None,
            LoadError::TargetOutOfRange { slot, .. }
            | LoadError::TargetInLdImm64 { slot, .. }
            | LoadError::FallsOffEnd { slot }
            | LoadError::WritesFramePointer { slot }
            | LoadError::Uninitialized { slot, .. }
            | LoadError::RejectedByLinux { slot, .. } => Some(*slot),
        }
    }
}

/// Whether a memory access reads or writes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Access {
    /// A load (or the read half of an atomic).
    Read,
    /// A store (or the write half of an atomic).
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// Where a faulting address lies, for the error message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Place {
    /// In no region.
    Unmapped,
    /// In the input memory region, past the end of the area or straddling it.
    Mem {
        /// Offset of the access from the start of the area.
        offset: u64,
        /// Length of the area.
        len: u64,
    },
    /// In the packet region, past the end of the packet or straddling it.
    Packet {
        /// Offset of the access from the start of the packet.
        offset: u64,
        /// Length of the packet.
        len: u64,
    },
    /// In the stack of a frame that is not live (deeper than the current call), or straddling
    /// the top of the stack.
    DeadStack {
        /// Bytes below the current frame pointer.
        below_fp: u64,
    },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Place::Unmapped => f.write_str("no mapped region"),
            Place::Mem { offset, len } => write!(f, "input memory at offset {offset}, area of {len} bytes"),
            Place::Packet { offset, len } => write!(f, "packet at offset {offset}, packet of {len} bytes"),
            Place::DeadStack { below_fp } => write!(f, "stack outside the live frames, fp-{below_fp}"),
        }
    }
}

/// A memory access outside every mapped region.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[error("out-of-bounds {size}-byte {access} at {addr:#x} ({place})")]
pub struct Fault {
    /// The virtual address of the first byte.
    pub addr: u64,
    /// The access width in bytes.
    pub size: usize,
    /// Read or write.
    pub access: Access,
    /// Where the address lies.
    pub place: Place,
}

/// Why a running program stopped without returning.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RunError {
    /// A load, store or atomic touched memory outside every region.
    #[error("slot {slot}: {fault}")]
    Memory {
        /// The instruction.
        slot: Slot,
        /// The access.
        fault: Fault,
    },
    /// The instruction budget ran out (a runaway loop).
    #[error("slot {slot}: instruction budget of {budget} exhausted")]
    Budget {
        /// The instruction that would have exceeded it.
        slot: Slot,
        /// The budget.
        budget: u64,
    },
    /// A bpf-to-bpf call would exceed the maximum number of frames.
    #[error("slot {slot}: call depth limit of {max} frames exceeded")]
    CallDepth {
        /// The call.
        slot: Slot,
        /// The maximum number of frames (the main program counts as one).
        max: usize,
    },
    /// A call to a helper id that no helper is registered for.
    #[error("slot {slot}: call to unknown helper {id}")]
    UnknownHelper {
        /// The call.
        slot: Slot,
        /// The helper id (for `callx`, the register value).
        id: i64,
    },
    /// A helper reported an error.
    #[error("slot {slot}: helper {id} failed: {message}")]
    Helper {
        /// The call.
        slot: Slot,
        /// The helper id.
        id: i32,
        /// The helper's message.
        message: String,
    },
    /// A kfunc call; the interpreter models no kernel functions.
    #[error("slot {slot}: kfunc call (btf id {btf_id}, module {module}) is not supported")]
    Kfunc {
        /// The call.
        slot: Slot,
        /// The BTF id.
        btf_id: i32,
        /// The module BTF fd index.
        module: i16,
    },
    /// Execution left the instruction array. Cannot happen for a program that passed the
    /// loader (it ends in `exit` or a jump, and every target is checked); reported, not panicked.
    #[error("instruction index {index} is outside the program")]
    PcOutOfRange {
        /// The instruction index.
        index: usize,
    },
    /// The input memory or packet is larger than its region of the address space.
    #[error("{what} of {len} bytes is larger than its {max}-byte region")]
    InputTooLarge {
        /// Which input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The region size.
        max: u64,
    },
}

impl RunError {
    /// The slot the error is about, if it is about one.
    #[must_use]
    pub fn slot(&self) -> Option<Slot> {
        match self {
            RunError::Memory { slot, .. }
            | RunError::Budget { slot, .. }
            | RunError::CallDepth { slot, .. }
            | RunError::UnknownHelper { slot, .. }
            | RunError::Helper { slot, .. }
            | RunError::Kfunc { slot, .. } => Some(*slot),
            RunError::InputTooLarge { .. } | RunError::PcOutOfRange { .. } => None,
        }
    }
}

/// An invalid [`crate::VmConfig`].
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("invalid VM configuration: {0}")]
pub struct ConfigError(pub String);
