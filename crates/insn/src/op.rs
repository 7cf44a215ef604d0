//! The typed, validated view of an instruction: [`Op`], with lossless [`decode`] and [`Op::encode`].
//!
//! Contract: for every slot sequence `s` that [`decode`] accepts, `Op::encode` of the result
//! reproduces `s` exactly (all fields, including ld_imm64's second slot). Reserved fields are
//! checked, so two different raw encodings never decode to the same `Op`.

use crate::error::{Field, Reason};
use crate::opcode as c;
use crate::raw::{Insn, Reg};

/// Operand width of an ALU or JMP instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Width {
    /// 32-bit (ALU / JMP32 class): results are zero-extended, comparisons use the low halves.
    W32,
    /// 64-bit (ALU64 / JMP class).
    W64,
}

/// Access size of a load or store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    /// The access width in bytes.
    #[must_use]
    pub const fn bytes(self) -> u8 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The size bits of the opcode.
    #[must_use]
    pub const fn bits(self) -> u8 {
        match self {
            Size::B => c::B,
            Size::H => c::H,
            Size::W => c::W,
            Size::DW => c::DW,
        }
    }

    /// The size named by the opcode's size bits.
    #[must_use]
    pub const fn from_code(code: u8) -> Size {
        match code & c::SIZE_MASK {
            c::B => Size::B,
            c::H => Size::H,
            c::W => Size::W,
            _ => Size::DW,
        }
    }
}

/// The second operand of an ALU or conditional jump instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Operand {
    /// `src_reg` (source bit X).
    Reg(Reg),
    /// The immediate, sign-extended to the operation width (source bit K).
    Imm(i32),
}

/// An arithmetic operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AluOp {
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// Unsigned `/=`; division by zero gives 0.
    Div,
    /// Signed `/=` (`off == 1`, cpu v4).
    SDiv,
    /// `|=`
    Or,
    /// `&=`
    And,
    /// `<<=` (amount masked to the width).
    Lsh,
    /// Logical `>>=`.
    Rsh,
    /// `dst = -dst` (the operand is always `Imm(0)`).
    Neg,
    /// Unsigned `%=`; modulo by zero leaves dst.
    Mod,
    /// Signed `%=` (`off == 1`, cpu v4).
    SMod,
    /// `^=`
    Xor,
    /// `dst = src`.
    Mov,
    /// `dst = (sN) src`, sign-extending move of the low 8, 16 or 32 bits (`off` = N, cpu v4).
    MovSx(u8),
    /// Arithmetic `>>=`.
    Arsh,
}

impl AluOp {
    /// The operation bits and the `off` field that encode this operation.
    #[must_use]
    pub const fn code_and_off(self) -> (u8, i16) {
        match self {
            AluOp::Add => (c::ADD, 0),
            AluOp::Sub => (c::SUB, 0),
            AluOp::Mul => (c::MUL, 0),
            AluOp::Div => (c::DIV, 0),
            AluOp::SDiv => (c::DIV, 1),
            AluOp::Or => (c::OR, 0),
            AluOp::And => (c::AND, 0),
            AluOp::Lsh => (c::LSH, 0),
            AluOp::Rsh => (c::RSH, 0),
            AluOp::Neg => (c::NEG, 0),
            AluOp::Mod => (c::MOD, 0),
            AluOp::SMod => (c::MOD, 1),
            AluOp::Xor => (c::XOR, 0),
            AluOp::Mov => (c::MOV, 0),
            AluOp::MovSx(bits) => (c::MOV, bits as i16),
            AluOp::Arsh => (c::ARSH, 0),
        }
    }
}

/// A byte-order operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SwapKind {
    /// Convert to little-endian (`le16/32/64`; truncation only on a little-endian machine).
    Le,
    /// Convert to big-endian (`be16/32/64`).
    Be,
    /// Unconditional byte swap (`bswap16/32/64`, ALU64 class, cpu v4).
    Bswap,
}

/// An atomic read-modify-write operation on memory.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AtomicOp {
    /// `lock *p += src` (with `fetch`: src = old value).
    Add {
        /// Whether the old value is returned in `src_reg`.
        fetch: bool,
    },
    /// `lock *p |= src`.
    Or {
        /// Whether the old value is returned in `src_reg`.
        fetch: bool,
    },
    /// `lock *p &= src`.
    And {
        /// Whether the old value is returned in `src_reg`.
        fetch: bool,
    },
    /// `lock *p ^= src`.
    Xor {
        /// Whether the old value is returned in `src_reg`.
        fetch: bool,
    },
    /// `src = xchg(p, src)`.
    Xchg,
    /// `r0 = cmpxchg(p, r0, src)`.
    Cmpxchg,
}

impl AtomicOp {
    /// The `imm` field that encodes this operation.
    #[must_use]
    pub const fn imm(self) -> i32 {
        const fn f(fetch: bool) -> i32 {
            if fetch { c::FETCH } else { 0 }
        }
        match self {
            AtomicOp::Add { fetch } => c::ADD as i32 | f(fetch),
            AtomicOp::Or { fetch } => c::OR as i32 | f(fetch),
            AtomicOp::And { fetch } => c::AND as i32 | f(fetch),
            AtomicOp::Xor { fetch } => c::XOR as i32 | f(fetch),
            AtomicOp::Xchg => c::XCHG,
            AtomicOp::Cmpxchg => c::CMPXCHG,
        }
    }

    /// The operation an `imm` field encodes, if any.
    #[must_use]
    pub const fn from_imm(imm: i32) -> Option<AtomicOp> {
        let fetch = imm & c::FETCH != 0;
        Some(match imm {
            c::XCHG => AtomicOp::Xchg,
            c::CMPXCHG => AtomicOp::Cmpxchg,
            0x00 | 0x01 => AtomicOp::Add { fetch },
            0x40 | 0x41 => AtomicOp::Or { fetch },
            0x50 | 0x51 => AtomicOp::And { fetch },
            0xa0 | 0xa1 => AtomicOp::Xor { fetch },
            _ => return None,
        })
    }

    /// Whether the instruction writes a register (`src_reg`, or r0 for cmpxchg).
    #[must_use]
    pub const fn fetches(self) -> bool {
        match self {
            AtomicOp::Add { fetch } | AtomicOp::Or { fetch } | AtomicOp::And { fetch } | AtomicOp::Xor { fetch } => {
                fetch
            }
            AtomicOp::Xchg | AtomicOp::Cmpxchg => true,
        }
    }
}

/// A jump condition.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Cond {
    /// `==`
    Eq,
    /// unsigned `>`
    Gt,
    /// unsigned `>=`
    Ge,
    /// `dst & src != 0`
    Set,
    /// `!=`
    Ne,
    /// signed `>`
    Sgt,
    /// signed `>=`
    Sge,
    /// unsigned `<`
    Lt,
    /// unsigned `<=`
    Le,
    /// signed `<`
    Slt,
    /// signed `<=`
    Sle,
}

impl Cond {
    /// All conditions, in opcode order.
    pub const ALL: [Cond; 11] = [
        Cond::Eq,
        Cond::Gt,
        Cond::Ge,
        Cond::Set,
        Cond::Ne,
        Cond::Sgt,
        Cond::Sge,
        Cond::Lt,
        Cond::Le,
        Cond::Slt,
        Cond::Sle,
    ];

    /// The operation bits of this condition.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Cond::Eq => c::JEQ,
            Cond::Gt => c::JGT,
            Cond::Ge => c::JGE,
            Cond::Set => c::JSET,
            Cond::Ne => c::JNE,
            Cond::Sgt => c::JSGT,
            Cond::Sge => c::JSGE,
            Cond::Lt => c::JLT,
            Cond::Le => c::JLE,
            Cond::Slt => c::JSLT,
            Cond::Sle => c::JSLE,
        }
    }

    /// The condition named by operation bits, if they name one.
    #[must_use]
    pub const fn from_code(op: u8) -> Option<Cond> {
        Some(match op {
            c::JEQ => Cond::Eq,
            c::JGT => Cond::Gt,
            c::JGE => Cond::Ge,
            c::JSET => Cond::Set,
            c::JNE => Cond::Ne,
            c::JSGT => Cond::Sgt,
            c::JSGE => Cond::Sge,
            c::JLT => Cond::Lt,
            c::JLE => Cond::Le,
            c::JSLT => Cond::Slt,
            c::JSLE => Cond::Sle,
            _ => return None,
        })
    }

    /// The negated condition, if one exists as an opcode (`Set` has none).
    #[must_use]
    pub const fn invert(self) -> Option<Cond> {
        Some(match self {
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Gt => Cond::Le,
            Cond::Le => Cond::Gt,
            Cond::Ge => Cond::Lt,
            Cond::Lt => Cond::Ge,
            Cond::Sgt => Cond::Sle,
            Cond::Sle => Cond::Sgt,
            Cond::Sge => Cond::Slt,
            Cond::Slt => Cond::Sge,
            Cond::Set => return None,
        })
    }
}

/// The helper id that stands for the kernel's `arch_bpf_timed_may_goto` in xlated programs.
///
/// Linux 6.15+ expands `may_goto` on JITs with `bpf_jit_supports_timed_may_goto()` (x86-64,
/// arm64) into a sequence that calls `arch_bpf_timed_may_goto` with `AX` holding the frame
/// offset of the loop's `{count, timestamp}` pair and its new count returned in `AX` (r0-r5
/// preserved). The kernel writes that function's address relative to `__bpf_call_base` into
/// `imm`, which only the running kernel knows; the xlated model writes this id instead (a
/// comparison with a kernel dump clears every helper call's `imm`), and the interpreter runs
/// it as that function when kernel-internal forms are allowed.
pub const TIMED_MAY_GOTO_HELPER: i32 = i32::MIN + 0x7154;

/// What a `call` instruction calls.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CallKind {
    /// A helper by static id (`src_reg == 0`).
    Helper(i32),
    /// A bpf-to-bpf call; the target is `pc + imm + 1` (`src_reg == 1`).
    Local(i32),
    /// A kfunc by BTF id; `off` indexes the fd array of module BTFs (`src_reg == 2`).
    Kfunc {
        /// The BTF id.
        btf_id: i32,
        /// The module BTF fd index (0 = vmlinux).
        module: i16,
    },
}

/// What the 64-bit immediate of an ld_imm64 means (its `src_reg`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LdImm64Kind {
    /// A plain constant.
    Imm,
    /// A map, by file descriptor (`BPF_PSEUDO_MAP_FD`).
    MapFd,
    /// A map value address (`BPF_PSEUDO_MAP_VALUE`, fd in the low imm, offset in the high).
    MapValue,
    /// A kernel variable by BTF id (`BPF_PSEUDO_BTF_ID`).
    BtfId,
    /// The address of a subprogram; the low imm is PC-relative (`BPF_PSEUDO_FUNC`).
    Func,
    /// A map, by index into the fd array (`BPF_PSEUDO_MAP_IDX`).
    MapIdx,
    /// A map value address, by fd-array index (`BPF_PSEUDO_MAP_IDX_VALUE`).
    MapIdxValue,
}

impl LdImm64Kind {
    /// The kind a `src_reg` value names, if any.
    #[must_use]
    pub const fn from_src(src: u8) -> Option<LdImm64Kind> {
        Some(match src {
            c::PSEUDO_NONE => LdImm64Kind::Imm,
            c::PSEUDO_MAP_FD => LdImm64Kind::MapFd,
            c::PSEUDO_MAP_VALUE => LdImm64Kind::MapValue,
            c::PSEUDO_BTF_ID => LdImm64Kind::BtfId,
            c::PSEUDO_FUNC => LdImm64Kind::Func,
            c::PSEUDO_MAP_IDX => LdImm64Kind::MapIdx,
            c::PSEUDO_MAP_IDX_VALUE => LdImm64Kind::MapIdxValue,
            _ => return None,
        })
    }

    /// The `src_reg` value of this kind.
    #[must_use]
    pub const fn src(self) -> u8 {
        match self {
            LdImm64Kind::Imm => c::PSEUDO_NONE,
            LdImm64Kind::MapFd => c::PSEUDO_MAP_FD,
            LdImm64Kind::MapValue => c::PSEUDO_MAP_VALUE,
            LdImm64Kind::BtfId => c::PSEUDO_BTF_ID,
            LdImm64Kind::Func => c::PSEUDO_FUNC,
            LdImm64Kind::MapIdx => c::PSEUDO_MAP_IDX,
            LdImm64Kind::MapIdxValue => c::PSEUDO_MAP_IDX_VALUE,
        }
    }
}

/// One decoded instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    /// Arithmetic: `dst = dst op src` (or `dst = -dst`, `dst = src`).
    Alu {
        /// 32 or 64 bits.
        width: Width,
        /// The operation.
        op: AluOp,
        /// Destination (and first operand).
        dst: Reg,
        /// Second operand (`Imm(0)` for `Neg`).
        src: Operand,
    },
    /// Byte swap of the low `bits` of dst (16, 32 or 64), zero-extending the result.
    Swap {
        /// Le, Be or unconditional.
        kind: SwapKind,
        /// 16, 32 or 64.
        bits: u8,
        /// The register.
        dst: Reg,
    },
    /// 64-bit immediate load (two slots).
    LdImm64 {
        /// Destination.
        dst: Reg,
        /// What the immediate means.
        kind: LdImm64Kind,
        /// Low 32 bits (first slot's imm).
        lo: i32,
        /// High 32 bits (second slot's imm).
        hi: i32,
    },
    /// Legacy packet load `r0 = ntoh(*(size *)(skb->data + [src +] imm))` (clobbers r1-r5).
    LdPacket {
        /// Access size (B, H or W).
        size: Size,
        /// `Some(src)` for LD_IND, `None` for LD_ABS.
        index: Option<Reg>,
        /// The constant offset.
        imm: i32,
    },
    /// `dst = *(size *)(src + off)`, sign-extending when `signed` (MEMSX).
    Load {
        /// Access size.
        size: Size,
        /// Sign-extending (cpu v4).
        signed: bool,
        /// Destination.
        dst: Reg,
        /// Base address register.
        src: Reg,
        /// Displacement.
        off: i16,
    },
    /// `*(size *)(dst + off) = src` (ST with an immediate, STX with a register).
    Store {
        /// Access size.
        size: Size,
        /// Base address register.
        dst: Reg,
        /// Displacement.
        off: i16,
        /// Value stored.
        src: Operand,
    },
    /// Atomic read-modify-write on `*(size *)(dst + off)`.
    Atomic {
        /// W or DW.
        size: Size,
        /// The operation.
        op: AtomicOp,
        /// Base address register.
        dst: Reg,
        /// Operand (and fetch destination).
        src: Reg,
        /// Displacement.
        off: i16,
    },
    /// Unconditional jump to `pc + delta + 1`; `long` is `gotol` (JMP32 class, delta in imm).
    Ja {
        /// Relative target in slots.
        delta: i32,
        /// `gotol` (32-bit range) instead of `goto` (16-bit).
        long: bool,
    },
    /// Conditional jump to `pc + off + 1`.
    Jump {
        /// Comparison width.
        width: Width,
        /// The condition.
        cond: Cond,
        /// First operand.
        dst: Reg,
        /// Second operand.
        src: Operand,
        /// Relative target in slots.
        off: i16,
    },
    /// `call`.
    Call(CallKind),
    /// `callx reg`: call the helper whose id is in a register (conformance vectors; not Linux).
    Callx(Reg),
    /// Return from the current function with r0.
    Exit,
    /// `may_goto +off` (`JMP | JCOND`, `src_reg == 0`): jump while the loop budget lasts.
    MayGoto {
        /// Relative target in slots.
        off: i16,
    },
    /// Kernel-internal tail call (`JMP | TAIL_CALL`).
    TailCall,
    /// Kernel-internal speculation barrier (`ST | NOSPEC`).
    Nospec,
    /// Kernel-internal explicit zero-extension (`BPF_ZEXT_REG`): `mov32 dst, dst` with `imm == 1`,
    /// the marked form the zext pass inserts for JITs that need it (`insn_is_zext`). Zeroes the
    /// upper half of `dst`; decodes only with [`DecodeOptions::INTERNAL`].
    Zext {
        /// The register.
        dst: Reg,
    },
}

/// Options for [`decode`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct DecodeOptions {
    /// Accept kernel-internal forms: register AX (11), `TAIL_CALL`, `ST_NOSPEC`.
    /// A loader must reject them in user input, so this is off by default.
    pub internal: bool,
}

impl DecodeOptions {
    /// Options that accept kernel-internal forms (for rewritten programs).
    pub const INTERNAL: DecodeOptions = DecodeOptions { internal: true };
}

struct Checker<'a> {
    insn: &'a Insn,
    max_reg: u8,
}

impl Checker<'_> {
    fn reg(&self, field: Field) -> Result<Reg, Reason> {
        let n = if field == Field::Dst { self.insn.dst() } else { self.insn.src() };
        if n > self.max_reg {
            return Err(if n == 11 { Reason::InternalOnly } else { Reason::BadRegister { field, reg: n } });
        }
        Ok(Reg::from_nibble(n))
    }
    fn zero(&self, field: Field) -> Result<(), Reason> {
        let nz = match field {
            Field::Code => self.insn.code != 0,
            Field::Dst => self.insn.dst() != 0,
            Field::Src => self.insn.src() != 0,
            Field::Off => self.insn.off != 0,
            Field::Imm => self.insn.imm != 0,
        };
        if nz { Err(Reason::Reserved(field)) } else { Ok(()) }
    }
    fn zeros(&self, fields: &[Field]) -> Result<(), Reason> {
        fields.iter().try_for_each(|f| self.zero(*f))
    }
}

/// Decodes the instruction starting at `slots[0]`; returns it with its length in slots (1 or 2).
///
/// `slots` is the rest of the program from the instruction on (the second slot of an ld_imm64 is
/// read from `slots[1]`). The error carries no slot index; [`decode_program`] adds it.
///
/// # Errors
/// A [`Reason`] when the slot is not a valid instruction under `opts`.
pub fn decode(slots: &[Insn], opts: DecodeOptions) -> Result<(Op, usize), Reason> {
    let Some(insn) = slots.first() else {
        return Err(Reason::UnknownOpcode);
    };
    let ck = Checker { insn, max_reg: if opts.internal { 11 } else { 10 } };
    let code = insn.code;
    let class = insn.class();
    let op = match class {
        c::ALU | c::ALU64 => decode_alu(&ck, class, opts)?,
        c::JMP | c::JMP32 => decode_jmp(&ck, class, opts)?,
        c::LD => return decode_ld(&ck, slots),
        c::LDX => {
            let signed = match insn.mode() {
                c::MEM => false,
                c::MEMSX if insn.size() != c::DW => true,
                _ => return Err(Reason::UnknownOpcode),
            };
            ck.zero(Field::Imm)?;
            Op::Load {
                size: Size::from_code(code),
                signed,
                dst: ck.reg(Field::Dst)?,
                src: ck.reg(Field::Src)?,
                off: insn.off,
            }
        }
        c::ST => match insn.mode() {
            c::MEM => {
                ck.zero(Field::Src)?;
                Op::Store {
                    size: Size::from_code(code),
                    dst: ck.reg(Field::Dst)?,
                    off: insn.off,
                    src: Operand::Imm(insn.imm),
                }
            }
            c::NOSPEC if code == c::ST | c::NOSPEC => {
                if !opts.internal {
                    return Err(Reason::InternalOnly);
                }
                ck.zeros(&[Field::Dst, Field::Src, Field::Off, Field::Imm])?;
                Op::Nospec
            }
            _ => return Err(Reason::UnknownOpcode),
        },
        _ => match insn.mode() {
            // STX
            c::MEM => {
                ck.zero(Field::Imm)?;
                Op::Store {
                    size: Size::from_code(code),
                    dst: ck.reg(Field::Dst)?,
                    off: insn.off,
                    src: Operand::Reg(ck.reg(Field::Src)?),
                }
            }
            c::ATOMIC if matches!(insn.size(), c::W | c::DW) => {
                let op = AtomicOp::from_imm(insn.imm)
                    .ok_or(Reason::BadValue { field: Field::Imm, value: insn.imm.into() })?;
                Op::Atomic {
                    size: Size::from_code(code),
                    op,
                    dst: ck.reg(Field::Dst)?,
                    src: ck.reg(Field::Src)?,
                    off: insn.off,
                }
            }
            _ => return Err(Reason::UnknownOpcode),
        },
    };
    Ok((op, 1))
}

fn decode_alu(ck: &Checker<'_>, class: u8, opts: DecodeOptions) -> Result<Op, Reason> {
    let insn = ck.insn;
    let width = if class == c::ALU64 { Width::W64 } else { Width::W32 };
    let is_x = insn.code & c::SRC_MASK == c::X;
    let operation = insn.op();
    if operation == c::END {
        let kind = match (class, is_x) {
            (c::ALU, false) => SwapKind::Le,
            (c::ALU, true) => SwapKind::Be,
            (_, false) => SwapKind::Bswap,
            (_, true) => return Err(Reason::UnknownOpcode),
        };
        ck.zeros(&[Field::Src, Field::Off])?;
        let bits = match insn.imm {
            16 => 16,
            32 => 32,
            64 => 64,
            v => return Err(Reason::BadValue { field: Field::Imm, value: v.into() }),
        };
        return Ok(Op::Swap { kind, bits, dst: ck.reg(Field::Dst)? });
    }
    if opts.internal
        && class == c::ALU
        && is_x
        && operation == c::MOV
        && insn.imm == 1
        && insn.off == 0
        && insn.src() == insn.dst()
    {
        return Ok(Op::Zext { dst: ck.reg(Field::Dst)? });
    }
    let off_op = |plain: AluOp, signed: AluOp| match insn.off {
        0 => Ok(plain),
        1 => Ok(signed),
        v => Err(Reason::BadValue { field: Field::Off, value: v.into() }),
    };
    let op = match operation {
        c::ADD => AluOp::Add,
        c::SUB => AluOp::Sub,
        c::MUL => AluOp::Mul,
        c::DIV => off_op(AluOp::Div, AluOp::SDiv)?,
        c::OR => AluOp::Or,
        c::AND => AluOp::And,
        c::LSH => AluOp::Lsh,
        c::RSH => AluOp::Rsh,
        c::NEG => {
            if is_x {
                return Err(Reason::UnknownOpcode);
            }
            ck.zeros(&[Field::Src, Field::Off, Field::Imm])?;
            return Ok(Op::Alu { width, op: AluOp::Neg, dst: ck.reg(Field::Dst)?, src: Operand::Imm(0) });
        }
        c::MOD => off_op(AluOp::Mod, AluOp::SMod)?,
        c::XOR => AluOp::Xor,
        c::MOV => match (insn.off, is_x, width) {
            (0, _, _) => AluOp::Mov,
            (8, true, _) => AluOp::MovSx(8),
            (16, true, _) => AluOp::MovSx(16),
            (32, true, Width::W64) => AluOp::MovSx(32),
            (v, _, _) => return Err(Reason::BadValue { field: Field::Off, value: v.into() }),
        },
        c::ARSH => AluOp::Arsh,
        _ => return Err(Reason::UnknownOpcode),
    };
    let (_, off) = op.code_and_off();
    if off == 0 {
        ck.zero(Field::Off)?;
    }
    let src = if is_x {
        ck.zero(Field::Imm)?;
        Operand::Reg(ck.reg(Field::Src)?)
    } else {
        ck.zero(Field::Src)?;
        Operand::Imm(insn.imm)
    };
    Ok(Op::Alu { width, op, dst: ck.reg(Field::Dst)?, src })
}

fn decode_jmp(ck: &Checker<'_>, class: u8, opts: DecodeOptions) -> Result<Op, Reason> {
    let insn = ck.insn;
    let is_x = insn.code & c::SRC_MASK == c::X;
    let w64 = class == c::JMP;
    match insn.op() {
        c::JA if !is_x => {
            if w64 {
                ck.zeros(&[Field::Dst, Field::Src, Field::Imm])?;
                Ok(Op::Ja { delta: insn.off.into(), long: false })
            } else {
                ck.zeros(&[Field::Dst, Field::Src, Field::Off])?;
                Ok(Op::Ja { delta: insn.imm, long: true })
            }
        }
        c::CALL if w64 => {
            if is_x {
                ck.zeros(&[Field::Src, Field::Off, Field::Imm])?;
                return Ok(Op::Callx(ck.reg(Field::Dst)?));
            }
            ck.zero(Field::Dst)?;
            let kind = match insn.src() {
                c::PSEUDO_HELPER => CallKind::Helper(insn.imm),
                c::PSEUDO_CALL => CallKind::Local(insn.imm),
                c::PSEUDO_KFUNC_CALL => CallKind::Kfunc { btf_id: insn.imm, module: insn.off },
                v => return Err(Reason::BadValue { field: Field::Src, value: v.into() }),
            };
            if !matches!(kind, CallKind::Kfunc { .. }) {
                ck.zero(Field::Off)?;
            }
            Ok(Op::Call(kind))
        }
        c::EXIT if w64 && !is_x => {
            ck.zeros(&[Field::Dst, Field::Src, Field::Off, Field::Imm])?;
            Ok(Op::Exit)
        }
        c::JCOND if w64 && !is_x => {
            // src_reg 0 is may_goto; other values are reserved for future conditions.
            ck.zeros(&[Field::Dst, Field::Src, Field::Imm])?;
            Ok(Op::MayGoto { off: insn.off })
        }
        c::TAIL_CALL if w64 && !is_x => {
            if !opts.internal {
                return Err(Reason::InternalOnly);
            }
            ck.zeros(&[Field::Dst, Field::Src, Field::Off, Field::Imm])?;
            Ok(Op::TailCall)
        }
        operation => {
            let cond = Cond::from_code(operation).ok_or(Reason::UnknownOpcode)?;
            let src = if is_x {
                ck.zero(Field::Imm)?;
                Operand::Reg(ck.reg(Field::Src)?)
            } else {
                ck.zero(Field::Src)?;
                Operand::Imm(insn.imm)
            };
            Ok(Op::Jump {
                width: if w64 { Width::W64 } else { Width::W32 },
                cond,
                dst: ck.reg(Field::Dst)?,
                src,
                off: insn.off,
            })
        }
    }
}

fn decode_ld(ck: &Checker<'_>, slots: &[Insn]) -> Result<(Op, usize), Reason> {
    let insn = ck.insn;
    match insn.mode() {
        c::IMM if insn.size() == c::DW => {
            ck.zero(Field::Off)?;
            let kind = LdImm64Kind::from_src(insn.src())
                .ok_or(Reason::BadValue { field: Field::Src, value: insn.src().into() })?;
            let dst = ck.reg(Field::Dst)?;
            let Some(tail) = slots.get(1) else {
                return Err(Reason::TruncatedLdImm64);
            };
            let tail_ck = Checker { insn: tail, max_reg: 0 };
            for f in [Field::Code, Field::Dst, Field::Src, Field::Off] {
                tail_ck.zero(f).map_err(|_| Reason::BadLdImm64Tail(f))?;
            }
            Ok((Op::LdImm64 { dst, kind, lo: insn.imm, hi: tail.imm }, 2))
        }
        mode @ (c::ABS | c::IND) if insn.size() != c::DW => {
            ck.zeros(&[Field::Dst, Field::Off])?;
            let index = if mode == c::IND {
                Some(ck.reg(Field::Src)?)
            } else {
                ck.zero(Field::Src)?;
                None
            };
            Ok((Op::LdPacket { size: Size::from_code(insn.code), index, imm: insn.imm }, 1))
        }
        _ => Err(Reason::UnknownOpcode),
    }
}

/// An encoded instruction: one slot, or two for ld_imm64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Encoded {
    slots: [Insn; 2],
    len: u8,
}

impl Encoded {
    /// The slots (one or two).
    #[must_use]
    pub fn as_slice(&self) -> &[Insn] {
        &self.slots[..usize::from(self.len)]
    }

    /// The first slot.
    #[must_use]
    pub const fn first(&self) -> Insn {
        self.slots[0]
    }
}

impl core::ops::Deref for Encoded {
    type Target = [Insn];
    fn deref(&self) -> &[Insn] {
        self.as_slice()
    }
}

fn one(i: Insn) -> Encoded {
    Encoded { slots: [i, Insn::default()], len: 1 }
}

fn operand_fields(src: Operand) -> (u8, u8, i32) {
    match src {
        Operand::Reg(r) => (c::X, r.index(), 0),
        Operand::Imm(i) => (c::K, 0, i),
    }
}

impl Op {
    /// Encodes the instruction into its slot(s). Lossless inverse of [`decode`].
    #[must_use]
    pub fn encode(&self) -> Encoded {
        match *self {
            Op::Alu { width, op, dst, src } => {
                let class = if width == Width::W64 { c::ALU64 } else { c::ALU };
                let (bits, off) = op.code_and_off();
                let (s, sreg, imm) = operand_fields(src);
                one(Insn::new(class | s | bits, dst.index(), sreg, off, imm))
            }
            Op::Swap { kind, bits, dst } => {
                let code = match kind {
                    SwapKind::Le => c::ALU | c::END | c::TO_LE,
                    SwapKind::Be => c::ALU | c::END | c::TO_BE,
                    SwapKind::Bswap => c::ALU64 | c::END | c::TO_LE,
                };
                one(Insn::new(code, dst.index(), 0, 0, i32::from(bits)))
            }
            Op::LdImm64 { dst, kind, lo, hi } => Encoded {
                slots: [Insn::new(c::LD_IMM64, dst.index(), kind.src(), 0, lo), Insn::new(0, 0, 0, 0, hi)],
                len: 2,
            },
            Op::LdPacket { size, index, imm } => {
                let (mode, src) = index.map_or((c::ABS, 0), |r| (c::IND, r.index()));
                one(Insn::new(c::LD | mode | size.bits(), 0, src, 0, imm))
            }
            Op::Load { size, signed, dst, src, off } => {
                let mode = if signed { c::MEMSX } else { c::MEM };
                one(Insn::new(c::LDX | mode | size.bits(), dst.index(), src.index(), off, 0))
            }
            Op::Store { size, dst, off, src } => match src {
                Operand::Imm(imm) => one(Insn::new(c::ST | c::MEM | size.bits(), dst.index(), 0, off, imm)),
                Operand::Reg(r) => one(Insn::new(c::STX | c::MEM | size.bits(), dst.index(), r.index(), off, 0)),
            },
            Op::Atomic { size, op, dst, src, off } => {
                one(Insn::new(c::STX | c::ATOMIC | size.bits(), dst.index(), src.index(), off, op.imm()))
            }
            Op::Ja { delta, long } => {
                if long {
                    one(Insn::new(c::JMP32 | c::JA, 0, 0, 0, delta))
                } else {
                    // A short `Ja` always holds a value that came from (or fits) the 16-bit field;
                    // out-of-range values are truncated, which `fits` lets callers check first.
                    one(Insn::new(c::JMP | c::JA, 0, 0, truncate_i16(delta), 0))
                }
            }
            Op::Jump { width, cond, dst, src, off } => {
                let class = if width == Width::W64 { c::JMP } else { c::JMP32 };
                let (s, sreg, imm) = operand_fields(src);
                one(Insn::new(class | s | cond.code(), dst.index(), sreg, off, imm))
            }
            Op::Call(kind) => one(match kind {
                CallKind::Helper(id) => Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_HELPER, 0, id),
                CallKind::Local(rel) => Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, rel),
                CallKind::Kfunc { btf_id, module } => {
                    Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_KFUNC_CALL, module, btf_id)
                }
            }),
            Op::Callx(r) => one(Insn::new(c::JMP | c::CALL | c::X, r.index(), 0, 0, 0)),
            Op::Exit => one(Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)),
            Op::MayGoto { off } => one(Insn::new(c::JMP | c::JCOND, 0, 0, off, 0)),
            Op::TailCall => one(Insn::new(c::JMP | c::TAIL_CALL, 0, 0, 0, 0)),
            Op::Nospec => one(Insn::new(c::ST | c::NOSPEC, 0, 0, 0, 0)),
            Op::Zext { dst } => one(Insn::new(c::ALU | c::MOV | c::X, dst.index(), dst.index(), 0, 1)),
        }
    }

    /// Length of the instruction in slots (2 for ld_imm64, else 1).
    #[must_use]
    pub const fn slots(&self) -> usize {
        if matches!(self, Op::LdImm64 { .. }) { 2 } else { 1 }
    }
}

fn truncate_i16(v: i32) -> i16 {
    #[allow(clippy::cast_possible_truncation)]
    let t = v as i16;
    t
}

/// A decoded program: each instruction with the slot it starts at.
pub type Decoded = Vec<(crate::Slot, Op)>;

/// Decodes a whole program, instruction by instruction.
///
/// # Errors
/// The first invalid slot, with its index, opcode and reason.
pub fn decode_program(slots: &[Insn], opts: DecodeOptions) -> Result<Decoded, crate::DecodeError> {
    let mut out = Vec::with_capacity(slots.len());
    let mut i = 0;
    while i < slots.len() {
        let (op, n) = decode(&slots[i..], opts).map_err(|reason| crate::DecodeError::Invalid {
            slot: crate::Slot(i),
            code: slots[i].code,
            reason,
        })?;
        out.push((crate::Slot(i), op));
        i += n;
    }
    Ok(out)
}
