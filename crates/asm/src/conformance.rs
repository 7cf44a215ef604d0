//! Assembler for the `%rN` syntax of the conformance vectors (`-- asm` sections).
//!
//! # Syntax
//! One instruction per line; `#` starts a comment anywhere on a line; blank lines are ignored.
//! A line may start with labels (`name:`), which name the slot of the next instruction.
//! Operands are separated by commas (or, as upstream, spaces); whitespace inside `[...]` is ignored.
//!
//! | form | encodes |
//! |------|---------|
//! | `OP %rD, %rS` / `OP %rD, IMM`, OP in `add sub mul div sdiv or and lsh rsh mod smod xor mov arsh` | ALU64 (suffix `32`: ALU) |
//! | `neg %rD`, `neg32 %rD` | negation |
//! | `movsx832`, `movsx1632` (ALU), `movsx864`, `movsx1664`, `movsx3264` (ALU64) `%rD, %rS` | sign-extending move, `off` = 8/16/32 |
//! | `le16/32/64`, `be16/32/64 %rD` | ALU END to-le / to-be |
//! | `swap16/32/64`, `bswap16/32/64 %rD` | ALU64 END (unconditional swap) |
//! | `lddw %rD, IMM64` | ld_imm64 (two slots) |
//! | `ldxb/h/w/dw %rD, [%rS+OFF]`, `ldxsb/sh/sw` | LDX MEM / MEMSX |
//! | `stb/h/w/dw [%rD+OFF], IMM`, `stxb/h/w/dw [%rD+OFF], %rS` | ST / STX MEM |
//! | `ldabsb/h/w IMM`, `ldindb/h/w %rS, IMM` | legacy packet loads |
//! | `lock [fetch] OP [%rD+OFF], %rS`, OP in `add or and xor xchg cmpxchg` (suffix `32`: word) | STX ATOMIC |
//! | `ja TARGET`, `ja32 TARGET` | `goto` (off) / `gotol` (JMP32 JA, imm) |
//! | `jCC %rD, %rS/IMM, TARGET`, CC in `eq gt ge set ne sgt sge lt le slt sle` (suffix `32`: JMP32) | conditional jump |
//! | `call N`, `call helper N`, `call runtime N`, `call local TARGET`, `call %rN` | helper, kfunc (src 2), local call, callx |
//! | `exit` | exit |
//!
//! `TARGET` is `+N`, `-N` (slots, relative to the next instruction) or a label. As upstream, the
//! label `exit` names the first `exit` instruction unless a label `exit:` is defined explicitly.
//! Numbers: decimal values must fit `i32` (`mov32 %r0, 2147483648` is an
//! error), unsigned hex is a bit pattern (`0x80000000`), offsets are signed values in `i16` range.
//! Registers are `%r0`..`%r10`; anything else is "Invalid register".
//!
//! Every instruction is built as an [`Op`] and encoded with [`Op::encode`], so the output always
//! decodes (with the default, non-internal options).

use crate::error::{AsmError, AsmErrorKind};
use crate::num;
use bpfpatch_insn::{AluOp, AtomicOp, CallKind, Cond, Insn, LdImm64Kind, Op, Operand, Reg, Size, SwapKind, Width};
use std::collections::HashMap;

/// Assembles a program in the conformance vectors' `%rN` syntax into raw slots.
///
/// # Errors
/// The first offending line (1-based, relative to `text`) and what is wrong with it.
pub fn assemble_conformance(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut labels: HashMap<String, (usize, usize)> = HashMap::new(); // name -> (slot, line)
    let mut first_exit: Option<usize> = None;
    let mut pending: Vec<Pending> = Vec::new();
    let mut slot = 0usize;
    for (idx, raw_line) in text.lines().enumerate() {
        let line = idx + 1;
        let err = |kind| AsmError::new(line, kind);
        let code = raw_line.split('#').next().unwrap_or("");
        let mut rest = code.trim();
        // Leading labels.
        while let Some((name, after)) = split_label(rest) {
            if let Some(&(_, first_line)) = labels.get(name) {
                return Err(err(AsmErrorKind::DuplicateLabel { label: name.to_owned(), first_line }));
            }
            labels.insert(name.to_owned(), (slot, line));
            rest = after.trim_start();
        }
        if rest.is_empty() {
            continue;
        }
        let words = tokenize(rest).map_err(err)?;
        let (op, target) = parse_insn(&words).map_err(err)?;
        if matches!(op, Op::Exit) && first_exit.is_none() {
            first_exit = Some(slot);
        }
        slot += op.slots();
        pending.push(Pending { line, op, target });
    }
    let mut out = Vec::with_capacity(slot);
    let mut pc = 0usize;
    for p in pending {
        let op = match p.target {
            None => p.op,
            Some(label) => {
                let dest = labels.get(&label).map(|&(s, _)| s).or(if label == "exit" { first_exit } else { None });
                let Some(dest) = dest else {
                    return Err(AsmError::new(p.line, AsmErrorKind::UndefinedLabel(label)));
                };
                let delta = slot_delta(dest, pc);
                patch_target(p.op, delta, &label).map_err(|k| AsmError::new(p.line, k))?
            }
        };
        pc += op.slots();
        out.extend_from_slice(&op.encode());
    }
    Ok(out)
}

/// `dest - pc - 1` as i64 (slot counts are bounded by the text length, far below i64::MAX).
pub(crate) fn slot_delta(dest: usize, pc: usize) -> i64 {
    let d = i64::try_from(dest).unwrap_or(i64::MAX);
    let p = i64::try_from(pc).unwrap_or(i64::MAX);
    d.saturating_sub(p).saturating_sub(1)
}

/// Writes a resolved label distance into the instruction's target field, checking its range.
pub(crate) fn patch_target(op: Op, delta: i64, label: &str) -> Result<Op, AsmErrorKind> {
    let short = || {
        i16::try_from(delta).map_err(|_| AsmErrorKind::TargetOutOfRange {
            label: label.to_owned(),
            delta,
            what: "16-bit offset",
        })
    };
    let long = || {
        i32::try_from(delta).map_err(|_| AsmErrorKind::TargetOutOfRange {
            label: label.to_owned(),
            delta,
            what: "32-bit immediate",
        })
    };
    Ok(match op {
        Op::Ja { long: false, .. } => Op::Ja { delta: short()?.into(), long: false },
        Op::Ja { long: true, .. } => Op::Ja { delta: long()?, long: true },
        Op::Jump { width, cond, dst, src, .. } => Op::Jump { width, cond, dst, src, off: short()? },
        Op::Call(CallKind::Local(_)) => Op::Call(CallKind::Local(long()?)),
        Op::MayGoto { .. } => Op::MayGoto { off: short()? },
        Op::LdImm64 { dst, kind: LdImm64Kind::Func, hi, .. } => {
            Op::LdImm64 { dst, kind: LdImm64Kind::Func, lo: long()?, hi }
        }
        other => other,
    })
}

struct Pending {
    line: usize,
    op: Op,
    target: Option<String>,
}

/// Splits `name:` off the front of a line, if the first word is a label.
fn split_label(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| c.is_whitespace()).unwrap_or(s.len());
    let word = &s[..end];
    let name = word.strip_suffix(':')?;
    if is_label(name) { Some((name, &s[end..])) } else { None }
}

/// Whether `s` is a label name: `[A-Za-z_.$][A-Za-z0-9_.$]*`.
pub(crate) fn is_label(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
}

/// Splits a line (comment already removed) into words: separated by whitespace and commas,
/// with `[...]` kept together and whitespace inside it dropped. Empty operands (`a,,b`) are errors.
fn tokenize(s: &str) -> Result<Vec<String>, AsmErrorKind> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_bracket = false;
    let mut after_comma = false;
    for c in s.chars() {
        if in_bracket {
            if c == ']' {
                in_bracket = false;
            }
            if !c.is_whitespace() {
                cur.push(c);
            }
            continue;
        }
        if c == ',' || c.is_whitespace() {
            if !cur.is_empty() {
                words.push(core::mem::take(&mut cur));
                after_comma = false;
            }
            if c == ',' {
                if after_comma || words.is_empty() {
                    return Err(AsmErrorKind::Syntax("empty operand".into()));
                }
                after_comma = true;
            }
            continue;
        }
        if c == '[' {
            in_bracket = true;
        }
        cur.push(c);
    }
    if in_bracket {
        return Err(AsmErrorKind::BadMemoryOperand { text: cur, expected: MEM_FORMS });
    }
    if cur.is_empty() {
        if after_comma {
            return Err(AsmErrorKind::Syntax("trailing comma".into()));
        }
    } else {
        words.push(cur);
    }
    Ok(words)
}

const MEM_FORMS: &str = "[%rN], [%rN+OFF] or [%rN-OFF]";

fn reg(text: &str) -> Result<Reg, AsmErrorKind> {
    let bad = || AsmErrorKind::InvalidRegister(text.to_owned());
    let digits = text.strip_prefix("%r").ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u8 = digits.parse().map_err(|_| bad())?;
    if n >= Reg::USER_COUNT {
        return Err(bad());
    }
    Reg::new(n).ok_or_else(bad)
}

fn reg_or_imm(text: &str) -> Result<Operand, AsmErrorKind> {
    if text.starts_with('%') { Ok(Operand::Reg(reg(text)?)) } else { Ok(Operand::Imm(num::imm32(text)?)) }
}

fn mem(text: &str) -> Result<(Reg, i16), AsmErrorKind> {
    let bad = || AsmErrorKind::BadMemoryOperand { text: text.to_owned(), expected: MEM_FORMS };
    let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).ok_or_else(bad)?;
    match inner.find(['+', '-']) {
        None => Ok((reg(inner)?, 0)),
        Some(i) => {
            let (r, off) = inner.split_at(i);
            Ok((reg(r)?, num::i16_in(off, "offset")?))
        }
    }
}

/// A jump target: `+N`/`-N` (returned as a number) or a label (returned as the name).
enum Target {
    Rel(i64),
    Label(String),
}

fn target(text: &str, min: i64, max: i64) -> Result<Target, AsmErrorKind> {
    if text.starts_with(['+', '-']) {
        Ok(Target::Rel(num::signed_in(text, "jump offset", min, max)?))
    } else if is_label(text) {
        Ok(Target::Label(text.to_owned()))
    } else {
        Err(AsmErrorKind::BadOperand { text: text.to_owned(), expected: "a label or +N/-N" })
    }
}

fn count(mnemonic: &str, ops: &[String], expected: usize) -> Result<(), AsmErrorKind> {
    if ops.len() == expected {
        Ok(())
    } else {
        Err(AsmErrorKind::OperandCount { mnemonic: mnemonic.to_owned(), expected, found: ops.len() })
    }
}

fn alu_op(name: &str) -> Option<AluOp> {
    Some(match name {
        "add" => AluOp::Add,
        "sub" => AluOp::Sub,
        "mul" => AluOp::Mul,
        "div" => AluOp::Div,
        "sdiv" => AluOp::SDiv,
        "or" => AluOp::Or,
        "and" => AluOp::And,
        "lsh" => AluOp::Lsh,
        "rsh" => AluOp::Rsh,
        "mod" => AluOp::Mod,
        "smod" => AluOp::SMod,
        "xor" => AluOp::Xor,
        "mov" => AluOp::Mov,
        "arsh" => AluOp::Arsh,
        _ => return None,
    })
}

fn cond(name: &str) -> Option<Cond> {
    Some(match name {
        "jeq" => Cond::Eq,
        "jgt" => Cond::Gt,
        "jge" => Cond::Ge,
        "jset" => Cond::Set,
        "jne" => Cond::Ne,
        "jsgt" => Cond::Sgt,
        "jsge" => Cond::Sge,
        "jlt" => Cond::Lt,
        "jle" => Cond::Le,
        "jslt" => Cond::Slt,
        "jsle" => Cond::Sle,
        _ => return None,
    })
}

fn size(suffix: &str) -> Option<Size> {
    Some(match suffix {
        "b" => Size::B,
        "h" => Size::H,
        "w" => Size::W,
        "dw" => Size::DW,
        _ => return None,
    })
}

fn swap_bits(s: &str) -> Option<u8> {
    match s {
        "16" => Some(16),
        "32" => Some(32),
        "64" => Some(64),
        _ => None,
    }
}

type Parsed = (Op, Option<String>);

fn with_target(op: Op, t: Target, set: impl FnOnce(i64) -> Op) -> Parsed {
    match t {
        Target::Rel(d) => (set(d), None),
        Target::Label(l) => (op, Some(l)),
    }
}

fn narrow16(v: i64) -> i16 {
    i16::try_from(v).unwrap_or(0)
}

fn narrow32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(0)
}

fn parse_insn(words: &[String]) -> Result<Parsed, AsmErrorKind> {
    let Some((m, ops)) = words.split_first() else {
        return Err(AsmErrorKind::Syntax("empty instruction".into()));
    };
    let m = m.as_str();
    let invalid = || AsmErrorKind::InvalidMnemonic(m.to_owned());
    let (base, width) = match m.strip_suffix("32") {
        Some(b) if !b.is_empty() => (b, Width::W32),
        _ => (m, Width::W64),
    };

    if m == "lock" {
        return parse_lock(ops);
    }
    if m == "exit" {
        count(m, ops, 0)?;
        return Ok((Op::Exit, None));
    }
    if m == "call" {
        return parse_call(ops);
    }
    if m == "ja" || m == "ja32" {
        count(m, ops, 1)?;
        let long = m == "ja32";
        let (lo, hi) = if long { (i32::MIN.into(), i32::MAX.into()) } else { (i16::MIN.into(), i16::MAX.into()) };
        let t = target(&ops[0], lo, hi)?;
        let placeholder = Op::Ja { delta: 0, long };
        return Ok(with_target(placeholder, t, |d| Op::Ja { delta: narrow32(d), long }));
    }
    if let Some(c) = cond(base) {
        count(m, ops, 3)?;
        let dst = reg(&ops[0])?;
        let src = reg_or_imm(&ops[1])?;
        let t = target(&ops[2], i16::MIN.into(), i16::MAX.into())?;
        let mk = |off| Op::Jump { width, cond: c, dst, src, off };
        return Ok(with_target(mk(0), t, |d| mk(narrow16(d))));
    }
    if base == "neg" {
        count(m, ops, 1)?;
        return Ok((Op::Alu { width, op: AluOp::Neg, dst: reg(&ops[0])?, src: Operand::Imm(0) }, None));
    }
    if let Some(op) = alu_op(base) {
        count(m, ops, 2)?;
        return Ok((Op::Alu { width, op, dst: reg(&ops[0])?, src: reg_or_imm(&ops[1])? }, None));
    }
    if let Some(rest) = m.strip_prefix("movsx") {
        let (bits, width) = match rest {
            "832" => (8, Width::W32),
            "1632" => (16, Width::W32),
            "864" => (8, Width::W64),
            "1664" => (16, Width::W64),
            "3264" => (32, Width::W64),
            _ => return Err(invalid()),
        };
        count(m, ops, 2)?;
        let dst = reg(&ops[0])?;
        let src = reg(&ops[1])?;
        return Ok((Op::Alu { width, op: AluOp::MovSx(bits), dst, src: Operand::Reg(src) }, None));
    }
    for (prefix, kind) in
        [("le", SwapKind::Le), ("be", SwapKind::Be), ("swap", SwapKind::Bswap), ("bswap", SwapKind::Bswap)]
    {
        if let Some(bits) = m.strip_prefix(prefix).and_then(swap_bits) {
            count(m, ops, 1)?;
            return Ok((Op::Swap { kind, bits, dst: reg(&ops[0])? }, None));
        }
    }
    if m == "lddw" {
        count(m, ops, 2)?;
        let dst = reg(&ops[0])?;
        let v = num::imm64(&ops[1])?;
        let [lo, hi] = split64(v);
        return Ok((Op::LdImm64 { dst, kind: LdImm64Kind::Imm, lo, hi }, None));
    }
    if let Some(rest) = m.strip_prefix("ldxs") {
        let sz = size(rest).filter(|s| *s != Size::DW).ok_or_else(invalid)?;
        count(m, ops, 2)?;
        let dst = reg(&ops[0])?;
        let (src, off) = mem(&ops[1])?;
        return Ok((Op::Load { size: sz, signed: true, dst, src, off }, None));
    }
    if let Some(rest) = m.strip_prefix("ldx") {
        let sz = size(rest).ok_or_else(invalid)?;
        count(m, ops, 2)?;
        let dst = reg(&ops[0])?;
        let (src, off) = mem(&ops[1])?;
        return Ok((Op::Load { size: sz, signed: false, dst, src, off }, None));
    }
    if let Some(rest) = m.strip_prefix("stx") {
        let sz = size(rest).ok_or_else(invalid)?;
        count(m, ops, 2)?;
        let (dst, off) = mem(&ops[0])?;
        let src = reg(&ops[1])?;
        return Ok((Op::Store { size: sz, dst, off, src: Operand::Reg(src) }, None));
    }
    if let Some(rest) = m.strip_prefix("st") {
        let sz = size(rest).ok_or_else(invalid)?;
        count(m, ops, 2)?;
        let (dst, off) = mem(&ops[0])?;
        let imm = num::imm32(&ops[1])?;
        return Ok((Op::Store { size: sz, dst, off, src: Operand::Imm(imm) }, None));
    }
    if let Some(rest) = m.strip_prefix("ldabs") {
        let sz = size(rest).filter(|s| *s != Size::DW).ok_or_else(invalid)?;
        count(m, ops, 1)?;
        return Ok((Op::LdPacket { size: sz, index: None, imm: num::imm32(&ops[0])? }, None));
    }
    if let Some(rest) = m.strip_prefix("ldind") {
        let sz = size(rest).filter(|s| *s != Size::DW).ok_or_else(invalid)?;
        count(m, ops, 2)?;
        let index = reg(&ops[0])?;
        return Ok((Op::LdPacket { size: sz, index: Some(index), imm: num::imm32(&ops[1])? }, None));
    }
    Err(invalid())
}

fn split64(v: u64) -> [i32; 2] {
    let b = v.to_le_bytes();
    [i32::from_le_bytes([b[0], b[1], b[2], b[3]]), i32::from_le_bytes([b[4], b[5], b[6], b[7]])]
}

fn parse_lock(ops: &[String]) -> Result<Parsed, AsmErrorKind> {
    let lock_count = |found| AsmErrorKind::OperandCount { mnemonic: "lock".into(), expected: 3, found };
    let (fetch, rest) = match ops.split_first() {
        None => return Err(lock_count(0)),
        Some((f, rest)) if f == "fetch" => (true, rest),
        Some(_) => (false, ops),
    };
    let Some((name, operands)) = rest.split_first() else {
        return Err(lock_count(ops.len()));
    };
    let (base, size) = match name.strip_suffix("32") {
        Some(b) => (b, Size::W),
        None => (name.as_str(), Size::DW),
    };
    let op = match base {
        "add" => AtomicOp::Add { fetch },
        "or" => AtomicOp::Or { fetch },
        "and" => AtomicOp::And { fetch },
        "xor" => AtomicOp::Xor { fetch },
        "xchg" => AtomicOp::Xchg,
        "cmpxchg" => AtomicOp::Cmpxchg,
        _ => return Err(AsmErrorKind::InvalidMnemonic(format!("lock {name}"))),
    };
    let mnemonic = if fetch { format!("lock fetch {name}") } else { format!("lock {name}") };
    count(&mnemonic, operands, 2)?;
    let (dst, off) = mem(&operands[0])?;
    let src = reg(&operands[1])?;
    Ok((Op::Atomic { size, op, dst, src, off }, None))
}

fn parse_call(ops: &[String]) -> Result<Parsed, AsmErrorKind> {
    match ops {
        [one] if one.starts_with('%') => Ok((Op::Callx(reg(one)?), None)),
        [one] => Ok((Op::Call(CallKind::Helper(num::imm32(one)?)), None)),
        [mode, t] => match mode.as_str() {
            "helper" if t.starts_with('%') => Ok((Op::Callx(reg(t)?), None)),
            "helper" => Ok((Op::Call(CallKind::Helper(num::imm32(t)?)), None)),
            "runtime" => Ok((Op::Call(CallKind::Kfunc { btf_id: num::imm32(t)?, module: 0 }), None)),
            "local" => {
                let t = target(t, i32::MIN.into(), i32::MAX.into())?;
                Ok(with_target(Op::Call(CallKind::Local(0)), t, |d| Op::Call(CallKind::Local(narrow32(d)))))
            }
            _ => Err(AsmErrorKind::BadOperand { text: mode.clone(), expected: "helper, local or runtime" }),
        },
        _ => Err(AsmErrorKind::OperandCount { mnemonic: "call".into(), expected: 1, found: ops.len() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfpatch_insn::{DecodeOptions, decode_program};

    fn asm1(s: &str) -> Vec<Insn> {
        assemble_conformance(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn word(s: &str) -> u64 {
        let v = asm1(s);
        assert_eq!(v.len(), 1, "{s}");
        v[0].to_word()
    }

    #[test]
    fn encodings_match_hand_computed_words() {
        // imm<<32 | off<<16 | src<<12 | dst<<8 | code
        assert_eq!(word("mov %r0, 1"), 0x0000_0001_0000_00b7);
        assert_eq!(word("mov32 %r1, %r2"), 0x0000_0000_0000_21bc);
        assert_eq!(word("mov32 %r0, 0x80000000"), 0x8000_0000_0000_00b4);
        assert_eq!(word("mov %r0, -1"), 0xffff_ffff_0000_00b7);
        assert_eq!(word("sdiv %r1, 3"), 0x0000_0003_0001_0137);
        assert_eq!(word("smod32 %r1, %r2"), 0x0000_0000_0001_219c);
        assert_eq!(word("neg32 %r3"), 0x0000_0000_0000_0384);
        assert_eq!(word("movsx832 %r2, %r1"), 0x0000_0000_0008_12bc);
        assert_eq!(word("movsx3264 %r0, %r9"), 0x0000_0000_0020_90bf);
        assert_eq!(word("le16 %r0"), 0x0000_0010_0000_00d4);
        assert_eq!(word("be64 %r0"), 0x0000_0040_0000_00dc);
        assert_eq!(word("swap32 %r0"), 0x0000_0020_0000_00d7);
        assert_eq!(word("bswap16 %r0"), 0x0000_0010_0000_00d7);
        assert_eq!(word("ldxh %r0, [%r1+2]"), 0x0000_0000_0002_1069);
        assert_eq!(word("ldxsw %r0, [%r10-4]"), 0x0000_0000_fffc_a081);
        assert_eq!(word("stb [%r10-1], 0x80"), 0x0000_0080_ffff_0a72);
        assert_eq!(word("sth [%r1], 5"), 0x0000_0005_0000_016a);
        assert_eq!(word("stxdw [%r10 - 8], %r0"), 0x0000_0000_fff8_0a7b);
        assert_eq!(word("lock fetch add32 [%r10-8], %r1"), 0x0000_0001_fff8_1ac3);
        assert_eq!(word("lock xchg [%r1+0], %r2"), 0x0000_00e1_0000_21db);
        assert_eq!(word("lock cmpxchg32 [%r1], %r2"), 0x0000_00f1_0000_21c3);
        assert_eq!(word("lock or [%r1], %r2"), 0x0000_0040_0000_21db);
        assert_eq!(word("jeq %r1, 0xb, +1"), 0x0000_000b_0001_0115);
        assert_eq!(word("jsle32 %r1, %r2, -2"), 0x0000_0000_fffe_21de);
        assert_eq!(word("ja +5"), 0x0000_0000_0005_0005);
        assert_eq!(word("ja32 -1"), 0xffff_ffff_0000_0006);
        assert_eq!(word("call 5"), 0x0000_0005_0000_0085);
        assert_eq!(word("call %r2"), 0x0000_0000_0000_028d);
        assert_eq!(word("call local +3"), 0x0000_0003_0000_1085);
        assert_eq!(word("call runtime 7"), 0x0000_0007_0000_2085);
        assert_eq!(word("ldabsh 12"), 0x0000_000c_0000_0028);
        assert_eq!(word("ldindw %r3, 4"), 0x0000_0004_0000_3040);
        assert_eq!(word("exit"), 0x0000_0000_0000_0095);
        let v = asm1("lddw %r0, 0x1122334455667788");
        assert_eq!((v[0].to_word(), v[1].to_word()), (0x5566_7788_0000_0018, 0x1122_3344_0000_0000));
    }

    #[test]
    fn labels_comments_and_exit_label() {
        let src = "# header\nmov %r0, 0 # trailing\nstart: jne %r0, 0, exit\nlddw %r1, 1\nja start\n\nexit\nend:\n";
        let v = asm1(src);
        let words: Vec<u64> = v.iter().map(|i| i.to_word()).collect();
        // slots: 0 mov, 1 jne, 2-3 lddw, 4 ja, 5 exit
        assert_eq!(words[1], 0x0000_0000_0003_0055);
        assert_eq!(words[4], 0x0000_0000_fffc_0005);
        // Explicit `exit:` wins over the first exit instruction.
        let v = asm1("ja exit\nexit\nexit:\nexit");
        assert_eq!(v[0].off, 1);
        // Call to a label is imm-relative.
        let v = asm1("call local f\nexit\nf:\nexit");
        assert_eq!(v[0].imm, 1);
        assert!(decode_program(&v, DecodeOptions::default()).is_ok());
    }

    fn err(s: &str) -> AsmError {
        match assemble_conformance(s) {
            Ok(v) => panic!("{s:?} assembled to {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn errors_name_line_and_reason() {
        let e = err("mov %r0, 1\nor %r0, %r50\nexit");
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("Invalid register"), "{e}");
        assert!(err("lock\nexit").to_string().contains("Invalid number of operands for lock"));
        assert!(err("lock fetch\nexit").to_string().contains("Invalid number of operands for lock"));
        assert!(matches!(err("lddw %r0").kind, AsmErrorKind::OperandCount { expected: 2, found: 1, .. }));
        assert!(matches!(err("ldxq %r0, %r1").kind, AsmErrorKind::InvalidMnemonic(_)));
        assert!(matches!(err("ldxb %r0, %r1").kind, AsmErrorKind::BadMemoryOperand { .. }));
        assert!(matches!(err("ldxb %r0, [%r1+0x10000]").kind, AsmErrorKind::OutOfRange { .. }));
        assert!(matches!(err("mov32 %r0, 2147483648").kind, AsmErrorKind::OutOfRange { .. }));
        assert!(matches!(err("ja NOT_A_LABEL\nexit").kind, AsmErrorKind::UndefinedLabel(_)));
        assert!(matches!(err("a:\na:\nexit").kind, AsmErrorKind::DuplicateLabel { first_line: 1, .. }));
        assert!(matches!(err("ja +32768").kind, AsmErrorKind::OutOfRange { .. }));
        assert!(matches!(err("mov %r0,, 1").kind, AsmErrorKind::Syntax(_)));
        assert!(matches!(err("mov %r0, 1,").kind, AsmErrorKind::Syntax(_)));
        assert!(matches!(err("ldxb %r0, [%r1+1").kind, AsmErrorKind::BadMemoryOperand { .. }));
        assert!(matches!(err("movsx3232 %r0, %r1").kind, AsmErrorKind::InvalidMnemonic(_)));
        assert!(matches!(err("ldxsdw %r0, [%r1]").kind, AsmErrorKind::InvalidMnemonic(_)));
        assert!(matches!(err("mov %r11, 1").kind, AsmErrorKind::InvalidRegister(_)));
        assert!(matches!(err("jeq %r1, 1, 5").kind, AsmErrorKind::BadOperand { .. }));
        assert!(matches!(err("lock nand [%r1], %r2").kind, AsmErrorKind::InvalidMnemonic(_)));
        assert!(matches!(err("call foo 1").kind, AsmErrorKind::BadOperand { .. }));
    }

    #[test]
    fn far_label_is_range_checked() {
        let mut src = String::from("ja far\n");
        for _ in 0..40_000 {
            src.push_str("mov %r0, 0\n");
        }
        src.push_str("far: exit\n");
        assert!(matches!(err(&src).kind, AsmErrorKind::TargetOutOfRange { .. }));
        let long = src.replacen("ja far", "ja32 far", 1);
        let v = asm1(&long);
        assert_eq!(v[0].imm, 40_000);
    }
}
