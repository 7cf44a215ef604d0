//! Decoding errors: every rejection names the slot and the reason.

use core::fmt;

/// The index of an 8-byte slot in an instruction image (ld_imm64 occupies two).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Slot(pub usize);

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Which field of a slot a rejection is about.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Field {
    /// The opcode byte.
    Code,
    /// The destination register nibble.
    Dst,
    /// The source register nibble.
    Src,
    /// The 16-bit offset.
    Off,
    /// The 32-bit immediate.
    Imm,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Code => "opcode",
            Field::Dst => "dst_reg",
            Field::Src => "src_reg",
            Field::Off => "offset",
            Field::Imm => "imm",
        })
    }
}

/// Why one slot does not decode.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum Reason {
    /// The opcode byte names no instruction.
    #[error("unknown opcode")]
    UnknownOpcode,
    /// A field this instruction does not use is not zero.
    #[error("reserved field {0} is not zero")]
    Reserved(Field),
    /// A register field is above r10 (or above AX with kernel-internal forms enabled).
    #[error("invalid register {reg} in {field}")]
    BadRegister {
        /// The field holding it.
        field: Field,
        /// The nibble value.
        reg: u8,
    },
    /// A field holds a value the instruction does not define.
    #[error("invalid value {value} in {field}")]
    BadValue {
        /// The field holding it.
        field: Field,
        /// The value.
        value: i64,
    },
    /// A kernel-internal form (AX, tail call, nospec) in input that must not carry one.
    #[error("kernel-internal instruction or register not allowed here")]
    InternalOnly,
    /// The second slot of an ld_imm64 is missing (the image ends).
    #[error("ld_imm64 is missing its second slot")]
    TruncatedLdImm64,
    /// The second slot of an ld_imm64 has a non-zero opcode, register or offset.
    #[error("second slot of ld_imm64 has non-zero {0}")]
    BadLdImm64Tail(Field),
}

/// A slot that does not decode: where and why.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum DecodeError {
    /// One slot is invalid.
    #[error("slot {slot}: {reason} (opcode {code:#04x})")]
    Invalid {
        /// The slot index.
        slot: Slot,
        /// Its opcode byte.
        code: u8,
        /// Why it is rejected.
        reason: Reason,
    },
    /// A byte image whose length is not a multiple of 8.
    #[error("image of {len} bytes is not a whole number of 8-byte slots")]
    TrailingBytes {
        /// Its length in bytes.
        len: usize,
    },
}

impl DecodeError {
    /// The slot the error is about, if it is about one.
    #[must_use]
    pub fn slot(&self) -> Option<Slot> {
        match self {
            DecodeError::Invalid { slot, .. } => Some(*slot),
            DecodeError::TrailingBytes { .. } => None,
        }
    }
}
