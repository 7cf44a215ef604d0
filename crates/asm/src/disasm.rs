//! llvm-objdump-style disassembler: the text `llvm-objdump-19 -d` prints for each instruction.
//!
//! [`disasm_insn`] prints the text after llvm-objdump's address and raw-byte columns, without
//! the `<symbol+offset>` suffix it appends to jump targets. See the crate documentation for the
//! syntax and the llvm quirks kept.
//!
//! Two [`Fidelity`] levels share one printer ([`Disasm`]'s `Display`): [`Fidelity::Llvm`] is
//! llvm's text verbatim, including where it loses information; [`Fidelity::Lossless`] changes
//! exactly those forms (listed on [`Fidelity::Lossless`]) so that [`crate::assemble_llvm`] reads
//! every instruction back unchanged. Where llvm prints `<unknown>` for a valid instruction both
//! levels print its meaning in llvm's style.

use bpfpatch_insn::{
    AluOp, AtomicOp, CallKind, Cond, DecodeError, DecodeOptions, Insn, LdImm64Kind, Op, Operand, Reg, Size, Slot,
    SwapKind, Width, decode_program,
};
use core::fmt::{self, Write as _};

/// Which llvm-objdump invocation to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// `llvm-objdump-19 -d` (no `--mcpu`): sub-64-bit loads, stores and `lock +=` print `r`
    /// registers. Instructions llvm prints as `<unknown>` in this mode (32-bit atomics other
    /// than `lock +=` and fetch-add) are printed as in [`Dialect::McpuV4`].
    #[default]
    Default,
    /// `llvm-objdump-19 -d --mcpu=v4` (alu32): sub-64-bit unsigned loads, register stores and
    /// 32-bit atomics print `w` registers.
    McpuV4,
}

/// Whether to print llvm's text verbatim or a text that keeps every bit of the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Fidelity {
    /// Exactly what llvm-objdump-19 prints in the chosen [`Dialect`], for every instruction it
    /// does not print as `<unknown>`, even where that text loses information (so reading it
    /// back may give a different instruction, as with llvm-mc). `<unknown>` forms print their
    /// RFC 9669 meaning in llvm's style (`tail_call`, `nospec`, the `--mcpu=v4` atomic text).
    #[default]
    Llvm,
    /// llvm's text except where it loses information, so that [`crate::assemble_llvm`] gives
    /// back the same slots for every decodable instruction. The forms that differ from llvm:
    /// - bpf-to-bpf call: `call local +0x5` (llvm: `call 0x5`, as for a helper);
    /// - kfunc call: `call kfunc 0x4d`, or `call kfunc 0x4d, 0x2` with a module index in `off`
    ///   (llvm: `call 0x4d`);
    /// - ld_imm64 with a pseudo `src_reg` and a non-zero high word (map value offsets):
    ///   `ld_pseudo\tr2, 0x2, 0x4000000003`, the whole 64-bit immediate (llvm: the low word);
    /// - LD_IND with a non-zero immediate: `r0 = *(u16 *)skb[r3 - 0x4]` (llvm: `skb[r3]`);
    /// - [`Dialect::Default`] only, 32-bit fetch-add: the `--mcpu=v4` text
    ///   `w2 = atomic_fetch_add((u32 *)(r1 + 0x0), w2)` (llvm ignores the fetch bit and prints
    ///   `lock *(u32 *)(r1 + 0x0) += r2`).
    Lossless,
}

/// Options for [`disasm_program`] and [`disasm_listing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DisasmOptions {
    /// Which instructions decode (kernel-internal forms print as `r11`, `tail_call`, `nospec`).
    pub decode: DecodeOptions,
    /// Which llvm-objdump output to reproduce.
    pub dialect: Dialect,
    /// llvm's text verbatim (default) or the round-trippable text.
    pub fidelity: Fidelity,
}

/// An instruction with an output style, printable with `{}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disasm<'a> {
    /// The instruction.
    pub op: &'a Op,
    /// Which llvm-objdump output to reproduce.
    pub dialect: Dialect,
    /// llvm's text verbatim or the round-trippable text.
    pub fidelity: Fidelity,
}

impl fmt::Display for Disasm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_op(f, self.op, self.dialect, self.fidelity)
    }
}

/// The llvm-objdump-19 text of one instruction ([`Dialect::Default`], [`Fidelity::Llvm`]).
#[must_use]
pub fn disasm_insn(op: &Op) -> String {
    disasm_insn_with(op, Dialect::Default, Fidelity::Llvm)
}

/// The text of one instruction in the given dialect and fidelity.
#[must_use]
pub fn disasm_insn_with(op: &Op, dialect: Dialect, fidelity: Fidelity) -> String {
    Disasm { op, dialect, fidelity }.to_string()
}

/// Decodes and disassembles a program: each instruction's first slot and its text.
///
/// # Errors
/// The first slot that does not decode under `opts.decode`.
pub fn disasm_program(insns: &[Insn], opts: DisasmOptions) -> Result<Vec<(Slot, String)>, DecodeError> {
    let ops = decode_program(insns, opts.decode)?;
    Ok(ops
        .iter()
        .map(|(slot, op)| (*slot, Disasm { op, dialect: opts.dialect, fidelity: opts.fidelity }.to_string()))
        .collect())
}

/// A whole listing, one `<slot>: <text>` line per instruction (what [`crate::assemble_llvm`] reads
/// back: the same slots with [`Fidelity::Lossless`]).
///
/// # Errors
/// The first slot that does not decode under `opts.decode`.
pub fn disasm_listing(insns: &[Insn], opts: DisasmOptions) -> Result<String, DecodeError> {
    let mut out = String::new();
    for (slot, text) in disasm_program(insns, opts)? {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{slot:>6}: {text}");
    }
    Ok(out)
}

/// Signed hex as llvm prints immediates: `0x5`, `-0x5`, `0x0`.
pub(crate) struct Hex(pub i64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 { write!(f, "-{:#x}", self.0.unsigned_abs()) } else { write!(f, "{:#x}", self.0) }
    }
}

/// A relative target as llvm prints it: `+0x3`, `-0x3`, `+0x0`.
struct Rel(i64);

impl fmt::Display for Rel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 { write!(f, "-{:#x}", self.0.unsigned_abs()) } else { write!(f, "+{:#x}", self.0) }
    }
}

/// A register with a width prefix: `r1` / `w1`; AX is `r11` / `w11`.
struct R(Reg, Width);

impl fmt::Display for R {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = if self.1 == Width::W64 { 'r' } else { 'w' };
        write!(f, "{p}{}", self.0.index())
    }
}

fn r(reg: Reg) -> R {
    R(reg, Width::W64)
}

/// A memory reference `(rN + 0x4)` / `rN - 0x4` (without parentheses).
struct Addr(Reg, i16);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.1 < 0 { '-' } else { '+' };
        write!(f, "{} {sign} {:#x}", r(self.0), self.1.unsigned_abs())
    }
}

fn bits(size: Size) -> u8 {
    size.bytes() * 8
}

fn alu_sym(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div => "/=",
        AluOp::SDiv => "s/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod => "%=",
        AluOp::SMod => "s%=",
        AluOp::Xor => "^=",
        AluOp::Arsh => "s>>=",
        AluOp::Mov | AluOp::MovSx(_) | AluOp::Neg => "=",
    }
}

pub(crate) fn cond_sym(c: Cond) -> &'static str {
    match c {
        Cond::Eq => "==",
        Cond::Gt => ">",
        Cond::Ge => ">=",
        Cond::Set => "&",
        Cond::Ne => "!=",
        Cond::Sgt => "s>",
        Cond::Sge => "s>=",
        Cond::Lt => "<",
        Cond::Le => "<=",
        Cond::Slt => "s<",
        Cond::Sle => "s<=",
    }
}

fn write_op(f: &mut fmt::Formatter<'_>, op: &Op, dialect: Dialect, fidelity: Fidelity) -> fmt::Result {
    let v4 = dialect == Dialect::McpuV4;
    let lossless = fidelity == Fidelity::Lossless;
    // Register width llvm uses for the value of a sub-64-bit memory access.
    let narrow = |size: Size| if v4 && size != Size::DW { Width::W32 } else { Width::W64 };
    match *op {
        Op::Alu { width, op: AluOp::Neg, dst, .. } => write!(f, "{} = -{}", R(dst, width), R(dst, width)),
        Op::Alu { width, op: AluOp::MovSx(n), dst, src } => {
            write!(f, "{} = (s{n})", R(dst, width))?;
            match src {
                Operand::Reg(s) => write!(f, "{}", R(s, width)),
                // Not produced by decode (MovSx always has a register source); printed as built.
                Operand::Imm(i) => write!(f, "{}", Hex(i.into())),
            }
        }
        Op::Alu { width, op, dst, src } => match src {
            Operand::Reg(s) => write!(f, "{} {} {}", R(dst, width), alu_sym(op), R(s, width)),
            Operand::Imm(i) => write!(f, "{} {} {}", R(dst, width), alu_sym(op), Hex(i.into())),
        },
        Op::Swap { kind, bits, dst } => {
            let name = match kind {
                SwapKind::Le => "le",
                SwapKind::Be => "be",
                SwapKind::Bswap => "bswap",
            };
            write!(f, "{} = {name}{bits} {}", r(dst), r(dst))
        }
        Op::LdImm64 { dst, kind: LdImm64Kind::Imm, lo, hi } => write!(f, "{} = {} ll", r(dst), Hex(join64(lo, hi))),
        Op::LdImm64 { dst, kind, lo, hi } => {
            // llvm prints the low word only (unsigned); lossless prints the whole immediate.
            let v = if lossless {
                u64::from_ne_bytes(join64(lo, hi).to_ne_bytes())
            } else {
                u32::from_ne_bytes(lo.to_ne_bytes()).into()
            };
            write!(f, "ld_pseudo\t{}, {:#x}, {v:#x}", r(dst), kind.src())
        }
        Op::LdPacket { size, index, imm } => {
            write!(f, "r0 = *(u{} *)skb[", bits(size))?;
            match index {
                None => write!(f, "{}]", Hex(imm.into())),
                // llvm drops LD_IND's immediate.
                Some(x) if imm == 0 || !lossless => write!(f, "{}]", r(x)),
                Some(x) => {
                    let sign = if imm < 0 { '-' } else { '+' };
                    write!(f, "{} {sign} {:#x}]", r(x), imm.unsigned_abs())
                }
            }
        }
        Op::Load { size, signed: false, dst, src, off } => {
            write!(f, "{} = *(u{} *)({})", R(dst, narrow(size)), bits(size), Addr(src, off))
        }
        Op::Load { size, signed: true, dst, src, off } => {
            write!(f, "{} = *(s{} *)({})", r(dst), bits(size), Addr(src, off))
        }
        Op::Store { size, dst, off, src } => {
            write!(f, "*(u{} *)({}) = ", bits(size), Addr(dst, off))?;
            match src {
                Operand::Reg(s) => write!(f, "{}", R(s, narrow(size))),
                Operand::Imm(i) => write!(f, "{}", Hex(i.into())),
            }
        }
        Op::Atomic { size, op, dst, src, off } => {
            let w = if size == Size::DW { Width::W64 } else { Width::W32 };
            let b = bits(size);
            let a = Addr(dst, off);
            match op {
                AtomicOp::Add { fetch: false } => {
                    // llvm without alu32 prints the legacy 32-bit XADD with an `r` register.
                    let rw = if size == Size::DW || !v4 { Width::W64 } else { Width::W32 };
                    write!(f, "lock *(u{b} *)({a}) += {}", R(src, rw))
                }
                AtomicOp::Or { fetch: false } => write!(f, "lock *(u{b} *)({a}) |= {}", R(src, w)),
                AtomicOp::And { fetch: false } => write!(f, "lock *(u{b} *)({a}) &= {}", R(src, w)),
                AtomicOp::Xor { fetch: false } => write!(f, "lock *(u{b} *)({a}) ^= {}", R(src, w)),
                // llvm without alu32 decodes a 32-bit fetch-add as the legacy XADD, ignoring
                // the fetch bit.
                AtomicOp::Add { fetch: true } if size == Size::W && !v4 && !lossless => {
                    write!(f, "lock *(u{b} *)({a}) += {}", r(src))
                }
                AtomicOp::Add { fetch: true } => fetch_op(f, "add", src, w, b, &a),
                AtomicOp::Or { fetch: true } => fetch_op(f, "or", src, w, b, &a),
                AtomicOp::And { fetch: true } => fetch_op(f, "and", src, w, b, &a),
                AtomicOp::Xor { fetch: true } => fetch_op(f, "xor", src, w, b, &a),
                AtomicOp::Xchg => {
                    let name = if size == Size::DW { "xchg_64" } else { "xchg32_32" };
                    write!(f, "{} = {name}({a}, {})", R(src, w), R(src, w))
                }
                AtomicOp::Cmpxchg => {
                    let name = if size == Size::DW { "cmpxchg_64" } else { "cmpxchg32_32" };
                    let r0 = R(Reg::R0, w);
                    write!(f, "{r0} = {name}({a}, {r0}, {})", R(src, w))
                }
            }
        }
        Op::Ja { delta, long: false } => write!(f, "goto {}", Rel(delta.into())),
        Op::Ja { delta, long: true } => write!(f, "gotol {}", Rel(delta.into())),
        Op::Jump { width, cond, dst, src, off } => {
            write!(f, "if {} {} ", R(dst, width), cond_sym(cond))?;
            match src {
                Operand::Reg(s) => write!(f, "{}", R(s, width))?,
                Operand::Imm(i) => write!(f, "{}", Hex(i.into()))?,
            }
            write!(f, " goto {}", Rel(off.into()))
        }
        Op::Call(CallKind::Helper(id)) => write!(f, "call {}", Hex(id.into())),
        // llvm prints every call kind as a helper call.
        Op::Call(CallKind::Local(imm) | CallKind::Kfunc { btf_id: imm, .. }) if !lossless => {
            write!(f, "call {}", Hex(imm.into()))
        }
        Op::Call(CallKind::Local(rel)) => write!(f, "call local {}", Rel(rel.into())),
        Op::Call(CallKind::Kfunc { btf_id, module: 0 }) => write!(f, "call kfunc {}", Hex(btf_id.into())),
        Op::Call(CallKind::Kfunc { btf_id, module }) => {
            write!(f, "call kfunc {}, {}", Hex(btf_id.into()), Hex(module.into()))
        }
        Op::Callx(reg) => write!(f, "callx {}", r(reg)),
        Op::Exit => f.write_str("exit"),
        Op::MayGoto { off } => write!(f, "may_goto {}", Rel(off.into())),
        Op::TailCall => f.write_str("tail_call"),
        Op::Nospec => f.write_str("nospec"),
        // llvm prints BPF_ZEXT_REG as the plain `mov32` it is encoded as (`w1 = w1`), losing the
        // imm 1 mark; lossless names it.
        Op::Zext { dst } if lossless => write!(f, "zext {}", R(dst, Width::W32)),
        Op::Zext { dst } => write!(f, "{} = {}", R(dst, Width::W32), R(dst, Width::W32)),
    }
}

fn fetch_op(f: &mut fmt::Formatter<'_>, name: &str, src: Reg, w: Width, b: u8, a: &Addr) -> fmt::Result {
    write!(f, "{} = atomic_fetch_{name}((u{b} *)({a}), {})", R(src, w), R(src, w))
}

/// The 64-bit value of an ld_imm64: `hi << 32 | (lo as u32)`.
pub(crate) fn join64(lo: i32, hi: i32) -> i64 {
    let l = lo.to_le_bytes();
    let h = hi.to_le_bytes();
    i64::from_le_bytes([l[0], l[1], l[2], l[3], h[0], h[1], h[2], h[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(op: Op) -> String {
        disasm_insn(&op)
    }

    #[test]
    fn examples_from_llvm_objdump() {
        let load = Op::Load { size: Size::W, signed: false, dst: Reg::R0, src: Reg::R1, off: 4 };
        assert_eq!(d(load), "r0 = *(u32 *)(r1 + 0x4)");
        assert_eq!(disasm_insn_with(&load, Dialect::McpuV4, Fidelity::Llvm), "w0 = *(u32 *)(r1 + 0x4)");
        let j = Op::Jump { width: Width::W64, cond: Cond::Gt, dst: Reg::R1, src: Operand::Imm(5), off: 3 };
        assert_eq!(d(j), "if r1 > 0x5 goto +0x3");
        let sdiv = Op::Alu { width: Width::W32, op: AluOp::SDiv, dst: Reg::R0, src: Operand::Reg(Reg::R1) };
        assert_eq!(d(sdiv), "w0 s/= w1");
        let sx = Op::Alu { width: Width::W64, op: AluOp::MovSx(8), dst: Reg::R1, src: Operand::Reg(Reg::R2) };
        assert_eq!(d(sx), "r1 = (s8)r2");
        assert_eq!(d(Op::Ja { delta: 1, long: true }), "gotol +0x1");
        assert_eq!(d(Op::Ja { delta: 0, long: false }), "goto +0x0");
        let lock =
            Op::Atomic { size: Size::DW, op: AtomicOp::Add { fetch: false }, dst: Reg::R1, src: Reg::R2, off: 0 };
        assert_eq!(d(lock), "lock *(u64 *)(r1 + 0x0) += r2");
        let ld = Op::LdImm64 { dst: Reg::R0, kind: LdImm64Kind::Imm, lo: 0x5566_7788, hi: 0x1122_3344 };
        assert_eq!(d(ld), "r0 = 0x1122334455667788 ll");
        let ld = Op::LdImm64 { dst: Reg::R1, kind: LdImm64Kind::Imm, lo: 0, hi: i32::MIN };
        assert_eq!(d(ld), "r1 = -0x8000000000000000 ll");
        let ld = Op::LdImm64 { dst: Reg::R0, kind: LdImm64Kind::MapFd, lo: -1, hi: 0 };
        assert_eq!(d(ld), "ld_pseudo\tr0, 0x1, 0xffffffff");
        assert_eq!(d(Op::Call(CallKind::Helper(5))), "call 0x5");
        assert_eq!(d(Op::Call(CallKind::Helper(i32::MIN))), "call -0x80000000");
        assert_eq!(d(Op::Exit), "exit");
        assert_eq!(d(Op::Swap { kind: SwapKind::Be, bits: 16, dst: Reg::R1 }), "r1 = be16 r1");
        assert_eq!(d(Op::MayGoto { off: 2 }), "may_goto +0x2");
        let st = Op::Store { size: Size::DW, dst: Reg::R1, off: i16::MIN, src: Operand::Imm(-1) };
        assert_eq!(d(st), "*(u64 *)(r1 - 0x8000) = -0x1");
        assert_eq!(d(Op::LdPacket { size: Size::W, index: None, imm: -1 }), "r0 = *(u32 *)skb[-0x1]");
        assert_eq!(d(Op::LdPacket { size: Size::B, index: Some(Reg::R2), imm: 0 }), "r0 = *(u8 *)skb[r2]");
        let mov = Op::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::AX, src: Operand::Reg(Reg::R10) };
        assert_eq!(d(mov), "r11 = r10");
    }

    /// The text in both fidelities: llvm's, then the lossless one.
    fn both(op: Op, dialect: Dialect) -> (String, String) {
        (disasm_insn_with(&op, dialect, Fidelity::Llvm), disasm_insn_with(&op, dialect, Fidelity::Lossless))
    }

    #[test]
    fn llvm_fidelity_keeps_llvm_losses_and_lossless_does_not() {
        let cases: [(Op, Dialect, &str, &str); 9] = [
            (Op::Call(CallKind::Local(5)), Dialect::Default, "call 0x5", "call local +0x5"),
            (Op::Call(CallKind::Local(-1)), Dialect::McpuV4, "call -0x1", "call local -0x1"),
            (Op::Call(CallKind::Kfunc { btf_id: 77, module: 0 }), Dialect::Default, "call 0x4d", "call kfunc 0x4d"),
            (
                Op::Call(CallKind::Kfunc { btf_id: 77, module: 2 }),
                Dialect::Default,
                "call 0x4d",
                "call kfunc 0x4d, 0x2",
            ),
            (
                Op::LdImm64 { dst: Reg::R2, kind: LdImm64Kind::MapValue, lo: -3, hi: 0x40 },
                Dialect::Default,
                "ld_pseudo\tr2, 0x2, 0xfffffffd",
                "ld_pseudo\tr2, 0x2, 0x40fffffffd",
            ),
            (
                Op::LdPacket { size: Size::H, index: Some(Reg::R2), imm: -4 },
                Dialect::Default,
                "r0 = *(u16 *)skb[r2]",
                "r0 = *(u16 *)skb[r2 - 0x4]",
            ),
            (
                Op::LdPacket { size: Size::W, index: Some(Reg::R3), imm: 14 },
                Dialect::McpuV4,
                "r0 = *(u32 *)skb[r3]",
                "r0 = *(u32 *)skb[r3 + 0xe]",
            ),
            (
                Op::Atomic { size: Size::W, op: AtomicOp::Add { fetch: true }, dst: Reg::R1, src: Reg::R2, off: -8 },
                Dialect::Default,
                "lock *(u32 *)(r1 - 0x8) += r2",
                "w2 = atomic_fetch_add((u32 *)(r1 - 0x8), w2)",
            ),
            (
                Op::LdImm64 { dst: Reg::R1, kind: LdImm64Kind::MapFd, lo: 7, hi: 0 },
                Dialect::Default,
                "ld_pseudo\tr1, 0x1, 0x7",
                "ld_pseudo\tr1, 0x1, 0x7",
            ),
        ];
        for (op, dialect, llvm, lossless) in cases {
            assert_eq!(both(op, dialect), (llvm.to_owned(), lossless.to_owned()), "{op:?} {dialect:?}");
        }
        // In --mcpu=v4 llvm prints the fetch bit, so both fidelities agree.
        let fetch = Op::Atomic { size: Size::W, op: AtomicOp::Add { fetch: true }, dst: Reg::R1, src: Reg::R2, off: 0 };
        let v4 = "w2 = atomic_fetch_add((u32 *)(r1 + 0x0), w2)";
        assert_eq!(both(fetch, Dialect::McpuV4), (v4.to_owned(), v4.to_owned()));
        // `<unknown>` in llvm: the RFC meaning in both fidelities.
        let or = Op::Atomic { size: Size::W, op: AtomicOp::Or { fetch: false }, dst: Reg::R1, src: Reg::R2, off: 0 };
        let or_text = "lock *(u32 *)(r1 + 0x0) |= w2";
        assert_eq!(both(or, Dialect::Default), (or_text.to_owned(), or_text.to_owned()));
        assert_eq!(both(Op::TailCall, Dialect::Default), ("tail_call".to_owned(), "tail_call".to_owned()));
        assert_eq!(both(Op::Nospec, Dialect::McpuV4), ("nospec".to_owned(), "nospec".to_owned()));
    }

    #[test]
    fn options_reach_the_printer() {
        let slots: Vec<Insn> = [Op::Call(CallKind::Local(1)), Op::Exit, Op::Exit]
            .iter()
            .flat_map(|op| op.encode().as_slice().to_vec())
            .collect();
        let llvm = disasm_listing(&slots, DisasmOptions::default()).unwrap();
        assert_eq!(llvm, "     0: call 0x1\n     1: exit\n     2: exit\n");
        let opts = DisasmOptions { fidelity: Fidelity::Lossless, ..DisasmOptions::default() };
        let lines = disasm_program(&slots, opts).unwrap();
        assert_eq!(lines[0], (Slot(0), "call local +0x1".to_owned()));
    }
}
