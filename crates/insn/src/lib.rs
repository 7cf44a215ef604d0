//! The eBPF instruction set: RFC 9669 plus the Linux-internal forms.
//!
//! Two views of an instruction:
//! - [`Insn`], the raw 8-byte slot (`struct bpf_insn`): any bit pattern, byte-order aware
//!   ([`Insn::from_bytes`], [`Insn::to_bytes`]). The patching engine works on this view, and
//!   [`Insn::target_field`] tells it where a PC-relative target lives.
//! - [`Op`], the typed, validated view produced by [`decode`]: every reserved field is
//!   checked and [`Op::encode`] is its lossless inverse.
//!
//! ```
//! use bpfpatch_insn::{decode, DecodeOptions, Endian, Insn, Op, Operand, AluOp, Width, Reg};
//!
//! // mov64 r0, 1 ; little-endian bytes
//! let insn = Insn::from_bytes([0xb7, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], Endian::Little);
//! let (op, len) = decode(&[insn], DecodeOptions::default()).unwrap();
//! assert_eq!(len, 1);
//! assert_eq!(op, Op::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(1) });
//! assert_eq!(op.encode()[0], insn);
//! ```
#![deny(missing_docs)]

mod error;
pub mod eval;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod info;
mod op;
pub mod opcode;
mod raw;

pub use error::{DecodeError, Field, Reason, Slot};
pub use info::{RegSet, TargetField, TargetKind};
pub use op::{
    AluOp, AtomicOp, CallKind, Cond, DecodeOptions, Decoded, Encoded, LdImm64Kind, Op, Operand, Size, SwapKind,
    TIMED_MAY_GOTO_HELPER, Width, decode, decode_program,
};
pub use raw::{Endian, Insn, Reg, slots_from_bytes, slots_to_bytes};

/// The most slots (8-byte instructions) a program may have: the kernel's
/// `BPF_COMPLEXITY_LIMIT_INSNS` (1,000,000), the bound `bpf_prog_load` puts on `insn_cnt`
/// (`-E2BIG`). The loaders of this workspace (object sections, the VM, the passes) refuse
/// longer programs with a typed error naming the limit.
pub const MAX_PROGRAM_SLOTS: usize = 1_000_000;
