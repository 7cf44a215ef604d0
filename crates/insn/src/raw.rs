//! The raw 8-byte instruction slot, registers and byte order.

use crate::opcode as op;
use core::fmt;

/// Byte order of an instruction image.
///
/// On big-endian images `off` and `imm` are big-endian and the register nibbles swap:
/// the byte after the opcode is `dst << 4 | src` instead of `src << 4 | dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Endian {
    /// Little-endian (x86-64, arm64, the conformance vectors).
    #[default]
    Little,
    /// Big-endian (s390x, some cilium test objects).
    Big,
}

/// A register number, `r0`..`r10`, or the kernel-internal auxiliary register `AX` (11).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Reg(u8);

impl Reg {
    /// Return value and scratch.
    pub const R0: Reg = Reg(0);
    /// First argument.
    pub const R1: Reg = Reg(1);
    /// Second argument.
    pub const R2: Reg = Reg(2);
    /// Third argument.
    pub const R3: Reg = Reg(3);
    /// Fourth argument.
    pub const R4: Reg = Reg(4);
    /// Fifth argument.
    pub const R5: Reg = Reg(5);
    /// Callee-saved.
    pub const R6: Reg = Reg(6);
    /// Callee-saved.
    pub const R7: Reg = Reg(7);
    /// Callee-saved.
    pub const R8: Reg = Reg(8);
    /// Callee-saved.
    pub const R9: Reg = Reg(9);
    /// Read-only frame pointer.
    pub const R10: Reg = Reg(10);
    /// The kernel's hidden auxiliary register (`BPF_REG_AX`), used by constant blinding and guards.
    pub const AX: Reg = Reg(11);
    /// The frame pointer (alias of [`Reg::R10`]).
    pub const FP: Reg = Reg(10);

    /// Registers a user program may name (`r0`..`r10`).
    pub const USER_COUNT: u8 = 11;
    /// Registers the kernel may use (`r0`..`r10` and `AX`).
    pub const COUNT: u8 = 12;

    /// Register `n`, if `n <= 11`.
    #[must_use]
    pub const fn new(n: u8) -> Option<Reg> {
        if n < Self::COUNT { Some(Reg(n)) } else { None }
    }

    /// Register `n & 0xf` without a range check; for building instructions from trusted constants.
    ///
    /// Values 12..=15 are representable (they occur in raw slots) but are not valid registers.
    #[must_use]
    pub const fn from_nibble(n: u8) -> Reg {
        Reg(n & 0xf)
    }

    /// The register number.
    #[must_use]
    pub const fn index(self) -> u8 {
        self.0
    }

    /// The register number as a `usize`, for indexing register files.
    #[must_use]
    pub const fn idx(self) -> usize {
        self.0 as usize
    }

    /// Whether this is the kernel-internal `AX`.
    #[must_use]
    pub const fn is_ax(self) -> bool {
        self.0 == 11
    }
}

impl fmt::Debug for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 11 { f.write_str("rAX") } else { write!(f, "r{}", self.0) }
    }
}

/// One 8-byte instruction slot, as the kernel's `struct bpf_insn`.
///
/// This is the raw form: any bit pattern is representable (so a second ld_imm64 slot is an
/// `Insn` too). The decoded, validated view is [`crate::Op`]. Registers are stored as nibbles;
/// byte order only matters when converting to or from bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct Insn {
    /// The opcode byte.
    pub code: u8,
    regs: u8,
    /// The signed 16-bit offset field.
    pub off: i16,
    /// The signed 32-bit immediate field.
    pub imm: i32,
}

impl Insn {
    /// An instruction from its fields; register numbers are truncated to 4 bits.
    #[must_use]
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (dst & 0xf) | ((src & 0xf) << 4), off, imm }
    }

    /// An instruction from its fields with typed registers.
    #[must_use]
    pub const fn with_regs(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(code, dst.0, src.0, off, imm)
    }

    /// The destination register nibble.
    #[must_use]
    pub const fn dst(&self) -> u8 {
        self.regs & 0xf
    }

    /// The source register nibble.
    #[must_use]
    pub const fn src(&self) -> u8 {
        self.regs >> 4
    }

    /// The destination register (nibble values 12..=15 are returned as-is; see [`Reg::from_nibble`]).
    #[must_use]
    pub const fn dst_reg(&self) -> Reg {
        Reg::from_nibble(self.dst())
    }

    /// The source register (nibble values 12..=15 are returned as-is).
    #[must_use]
    pub const fn src_reg(&self) -> Reg {
        Reg::from_nibble(self.src())
    }

    /// Replaces the destination register nibble.
    pub const fn set_dst(&mut self, dst: u8) {
        self.regs = (self.regs & 0xf0) | (dst & 0xf);
    }

    /// Replaces the source register nibble.
    pub const fn set_src(&mut self, src: u8) {
        self.regs = (self.regs & 0x0f) | ((src & 0xf) << 4);
    }

    /// The instruction class (`code & 7`).
    #[must_use]
    pub const fn class(&self) -> u8 {
        self.code & op::CLASS_MASK
    }

    /// The operation bits (`code & 0xf0`) of an ALU or JMP opcode.
    #[must_use]
    pub const fn op(&self) -> u8 {
        self.code & op::OP_MASK
    }

    /// The size bits of a load or store.
    #[must_use]
    pub const fn size(&self) -> u8 {
        self.code & op::SIZE_MASK
    }

    /// The mode bits of a load or store.
    #[must_use]
    pub const fn mode(&self) -> u8 {
        self.code & op::MODE_MASK
    }

    /// Decodes one slot from its 8 bytes; infallible since every bit pattern is a raw slot.
    #[must_use]
    pub const fn from_bytes(b: [u8; 8], endian: Endian) -> Insn {
        match endian {
            Endian::Little => Insn {
                code: b[0],
                regs: b[1],
                off: i16::from_le_bytes([b[2], b[3]]),
                imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            },
            Endian::Big => Insn {
                code: b[0],
                regs: b[1].rotate_left(4),
                off: i16::from_be_bytes([b[2], b[3]]),
                imm: i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            },
        }
    }

    /// Encodes one slot to its 8 bytes; `from_bytes(to_bytes(i, e), e) == i` for every `i` and `e`.
    #[must_use]
    pub const fn to_bytes(self, endian: Endian) -> [u8; 8] {
        let (regs, off, imm) = match endian {
            Endian::Little => (self.regs, self.off.to_le_bytes(), self.imm.to_le_bytes()),
            Endian::Big => (self.regs.rotate_left(4), self.off.to_be_bytes(), self.imm.to_be_bytes()),
        };
        [self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3]]
    }

    /// The slot as the conformance vectors' `0x` word: its little-endian bytes read as a `u64`
    /// (`imm << 32 | off << 16 | src << 12 | dst << 8 | code`).
    #[must_use]
    pub const fn to_word(self) -> u64 {
        u64::from_le_bytes(self.to_bytes(Endian::Little))
    }

    /// The inverse of [`Insn::to_word`].
    #[must_use]
    pub const fn from_word(w: u64) -> Insn {
        Insn::from_bytes(w.to_le_bytes(), Endian::Little)
    }

    /// Whether this is the first slot of a 16-byte ld_imm64 (`LD | IMM | DW`).
    #[must_use]
    pub const fn is_ld_imm64(&self) -> bool {
        self.code == op::LD_IMM64
    }
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Insn {{ code: {:#04x}, dst: {}, src: {}, off: {}, imm: {} }}",
            self.code,
            self.dst(),
            self.src(),
            self.off,
            self.imm
        )
    }
}

/// Decodes a byte image into raw slots.
///
/// # Errors
/// [`crate::DecodeError::TrailingBytes`] when the length is not a multiple of 8.
pub fn slots_from_bytes(bytes: &[u8], endian: Endian) -> Result<Vec<Insn>, crate::DecodeError> {
    let chunks = bytes.chunks_exact(8);
    if !chunks.remainder().is_empty() {
        return Err(crate::DecodeError::TrailingBytes { len: bytes.len() });
    }
    Ok(chunks
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            Insn::from_bytes(b, endian)
        })
        .collect())
}

/// Encodes raw slots into a byte image.
#[must_use]
pub fn slots_to_bytes(insns: &[Insn], endian: Endian) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for i in insns {
        out.extend_from_slice(&i.to_bytes(endian));
    }
    out
}
