//! Opcode field constants, named as in the Linux UAPI (`BPF_*`) and RFC 9669.
//!
//! An opcode byte is `class | (size | mode)` for loads and stores and `class | source | operation`
//! for arithmetic and jumps. These constants are the bit patterns; [`crate::Op`] is the typed view.

/// Mask of the class bits (the low three bits).
pub const CLASS_MASK: u8 = 0x07;
/// Non-standard load (ld_imm64, legacy packet access).
pub const LD: u8 = 0x00;
/// Load into a register.
pub const LDX: u8 = 0x01;
/// Store an immediate.
pub const ST: u8 = 0x02;
/// Store a register (and atomics).
pub const STX: u8 = 0x03;
/// 32-bit arithmetic.
pub const ALU: u8 = 0x04;
/// 64-bit jumps, calls and exit.
pub const JMP: u8 = 0x05;
/// 32-bit jumps (and `gotol`).
pub const JMP32: u8 = 0x06;
/// 64-bit arithmetic.
pub const ALU64: u8 = 0x07;

/// Mask of the size bits of a load or store.
pub const SIZE_MASK: u8 = 0x18;
/// 4 bytes.
pub const W: u8 = 0x00;
/// 2 bytes.
pub const H: u8 = 0x08;
/// 1 byte.
pub const B: u8 = 0x10;
/// 8 bytes.
pub const DW: u8 = 0x18;

/// Mask of the mode bits of a load or store.
pub const MODE_MASK: u8 = 0xe0;
/// 64-bit immediate (with `DW`: ld_imm64).
pub const IMM: u8 = 0x00;
/// Legacy packet load, absolute offset.
pub const ABS: u8 = 0x20;
/// Legacy packet load, register-relative offset.
pub const IND: u8 = 0x40;
/// Regular memory access.
pub const MEM: u8 = 0x60;
/// Sign-extending load (cpu v4).
pub const MEMSX: u8 = 0x80;
/// Atomic operation (STX class).
pub const ATOMIC: u8 = 0xc0;
/// Speculation barrier (ST class, kernel-internal `BPF_ST | BPF_NOSPEC`).
pub const NOSPEC: u8 = 0xc0;

/// Mask of the source bit of an ALU or JMP opcode.
pub const SRC_MASK: u8 = 0x08;
/// Source operand is the 32-bit immediate.
pub const K: u8 = 0x00;
/// Source operand is `src_reg`.
pub const X: u8 = 0x08;
/// Byte swap to little-endian (END in the ALU class).
pub const TO_LE: u8 = 0x00;
/// Byte swap to big-endian (END in the ALU class).
pub const TO_BE: u8 = 0x08;

/// Mask of the operation bits of an ALU or JMP opcode.
pub const OP_MASK: u8 = 0xf0;
/// `dst += src`.
pub const ADD: u8 = 0x00;
/// `dst -= src`.
pub const SUB: u8 = 0x10;
/// `dst *= src`.
pub const MUL: u8 = 0x20;
/// `dst /= src` (unsigned; signed when `off == 1`).
pub const DIV: u8 = 0x30;
/// `dst |= src`.
pub const OR: u8 = 0x40;
/// `dst &= src`.
pub const AND: u8 = 0x50;
/// `dst <<= src`.
pub const LSH: u8 = 0x60;
/// `dst >>= src` (logical).
pub const RSH: u8 = 0x70;
/// `dst = -dst`.
pub const NEG: u8 = 0x80;
/// `dst %= src` (unsigned; signed when `off == 1`).
pub const MOD: u8 = 0x90;
/// `dst ^= src`.
pub const XOR: u8 = 0xa0;
/// `dst = src` (sign-extending when `off` is 8, 16 or 32).
pub const MOV: u8 = 0xb0;
/// `dst >>= src` (arithmetic).
pub const ARSH: u8 = 0xc0;
/// Byte swap.
pub const END: u8 = 0xd0;

/// Unconditional jump (`goto`; `gotol` in the JMP32 class).
pub const JA: u8 = 0x00;
/// Jump if equal.
pub const JEQ: u8 = 0x10;
/// Jump if greater (unsigned).
pub const JGT: u8 = 0x20;
/// Jump if greater or equal (unsigned).
pub const JGE: u8 = 0x30;
/// Jump if `dst & src` is non-zero.
pub const JSET: u8 = 0x40;
/// Jump if not equal.
pub const JNE: u8 = 0x50;
/// Jump if greater (signed).
pub const JSGT: u8 = 0x60;
/// Jump if greater or equal (signed).
pub const JSGE: u8 = 0x70;
/// Function call.
pub const CALL: u8 = 0x80;
/// Return.
pub const EXIT: u8 = 0x90;
/// Jump if lower (unsigned).
pub const JLT: u8 = 0xa0;
/// Jump if lower or equal (unsigned).
pub const JLE: u8 = 0xb0;
/// Jump if lower (signed).
pub const JSLT: u8 = 0xc0;
/// Jump if lower or equal (signed).
pub const JSLE: u8 = 0xd0;
/// Conditional pseudo-jump (`may_goto` with `src_reg == 0`).
pub const JCOND: u8 = 0xe0;
/// Kernel-internal tail call (`BPF_JMP | BPF_TAIL_CALL`).
pub const TAIL_CALL: u8 = 0xf0;

/// Atomic `imm` flag: return the old value in `src_reg`.
pub const FETCH: i32 = 0x01;
/// Atomic exchange (`imm`, always with FETCH).
pub const XCHG: i32 = 0xe0 | FETCH;
/// Atomic compare-and-exchange (`imm`, always with FETCH; compares with r0).
pub const CMPXCHG: i32 = 0xf0 | FETCH;

/// `src_reg` of a helper call (static helper id in `imm`).
pub const PSEUDO_HELPER: u8 = 0;
/// `src_reg` of a bpf-to-bpf call (`imm` is PC-relative).
pub const PSEUDO_CALL: u8 = 1;
/// `src_reg` of a kfunc call (`imm` is a BTF id, `off` a module BTF fd index).
pub const PSEUDO_KFUNC_CALL: u8 = 2;

/// ld_imm64 `src_reg`: plain 64-bit constant.
pub const PSEUDO_NONE: u8 = 0;
/// ld_imm64 `src_reg`: map by file descriptor.
pub const PSEUDO_MAP_FD: u8 = 1;
/// ld_imm64 `src_reg`: address of a map value (fd + offset).
pub const PSEUDO_MAP_VALUE: u8 = 2;
/// ld_imm64 `src_reg`: kernel variable by BTF id.
pub const PSEUDO_BTF_ID: u8 = 3;
/// ld_imm64 `src_reg`: address of a subprogram (`imm` is PC-relative).
pub const PSEUDO_FUNC: u8 = 4;
/// ld_imm64 `src_reg`: map by index into the fd array.
pub const PSEUDO_MAP_IDX: u8 = 5;
/// ld_imm64 `src_reg`: map value by index into the fd array.
pub const PSEUDO_MAP_IDX_VALUE: u8 = 6;

/// The opcode byte of ld_imm64's first slot (`LD | IMM | DW`).
pub const LD_IMM64: u8 = LD | IMM | DW;
