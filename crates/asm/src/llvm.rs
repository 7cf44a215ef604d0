//! Assembler for the llvm syntax that [`crate::disasm`] prints (and `llvm-objdump-19` prints).
//!
//! One instruction per line. Before parsing, a line loses its comment (`#` or `;` to the end),
//! an optional `<slot>:` prefix (its value is not checked, so listings can be edited freely),
//! and a trailing `<symbol+offset>` annotation as llvm-objdump prints after jump targets.
//! Whitespace between tokens is free (`r0=-1` is `r0 = -1`).
//!
//! Accepted beyond the default dialect's output: the `--mcpu=v4` spellings (`w` registers for
//! sub-64-bit loads, stores and 32-bit atomics, also `r` for 32-bit atomics), the
//! [`crate::Fidelity::Lossless`] forms (`call local +0x5`, `call kfunc 0x4d, 0x2`,
//! `skb[r3 - 0x4]`, a 64-bit `ld_pseudo` immediate), decimal numbers, unsigned jump distances
//! (`goto 3`), and memory operands without displacement (`(r1)`).
//!
//! llvm's own text is read as llvm-mc-19 reads it, including where it is lossy: `call 0x5` is a
//! helper call (whatever call llvm-objdump printed it for), `skb[r3]` has a zero immediate, and
//! an `ld_pseudo` immediate that fits in 32 bits gets a zero high word.
//! Immediates follow llvm-mc: any value in `i32::MIN..=u32::MAX`, stored as its low 32 bits;
//! offsets are `i16` values; `ll` immediates are any value in `i64::MIN..=u64::MAX`.
//!
//! Every instruction is checked by decoding its encoding (with kernel-internal forms allowed),
//! so the output always decodes under [`bpfpatch_insn::DecodeOptions::INTERNAL`], and under the
//! default options unless it uses `r11`, `tail_call` or `nospec`.

use crate::error::{AsmError, AsmErrorKind};
use crate::num;
use bpfpatch_insn::{
    AluOp, AtomicOp, CallKind, Cond, DecodeOptions, Insn, LdImm64Kind, Op, Operand, Reg, Size, SwapKind, Width, decode,
};

/// Assembles llvm-syntax text (as printed by [`crate::disasm_insn`] or `llvm-objdump-19 -d`) into slots.
///
/// # Errors
/// The first offending line (1-based) and what is wrong with it.
pub fn assemble_llvm(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let n = idx + 1;
        let Some(op) = parse_llvm_line(line).map_err(|k| AsmError::new(n, k))? else { continue };
        out.extend_from_slice(&op.encode());
    }
    Ok(out)
}

/// Parses one line of llvm syntax into an instruction; `None` for a blank or comment-only line.
///
/// # Errors
/// What is wrong with the line.
pub fn parse_llvm_line(line: &str) -> Result<Option<Op>, AsmErrorKind> {
    let code = strip_line(line);
    if code.is_empty() {
        return Ok(None);
    }
    let toks = tokenize(code)?;
    let mut p = Parser { toks, pos: 0 };
    let op = p.statement()?;
    p.end()?;
    // Validate by round-tripping through the decoder: rejects forms that have no encoding
    // (`w1 = (s32)w2`, a 16-bit `goto` out of range, ...).
    let enc = op.encode();
    match decode(&enc, DecodeOptions::INTERNAL) {
        Ok((back, _)) if back == op => Ok(Some(op)),
        _ => Err(AsmErrorKind::Syntax(format!("{code:?} has no valid encoding"))),
    }
}

/// Removes comments, the `<slot>:` prefix and a trailing `<sym+off>` annotation.
fn strip_line(line: &str) -> &str {
    let mut s = line;
    if let Some(i) = s.find(['#', ';']) {
        s = &s[..i];
    }
    s = s.trim();
    // `<slot>:` prefix.
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && s[digits..].starts_with(':') {
        s = s[digits + 1..].trim_start();
    }
    // ` <symbol+0x10>` suffix.
    if let Some(i) = s.rfind(" <").filter(|&i| s.ends_with('>') && !s[i + 2..].contains(char::is_whitespace)) {
        s = s[..i].trim_end();
    }
    s
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Ident(&'a str),
    Num(&'a str),
    Punct(&'static str),
}

const OPS: [&str; 24] = [
    "<<=", ">>=", "+=", "-=", "*=", "/=", "|=", "&=", "%=", "^=", "==", "!=", ">=", "<=", "<", ">", "=", "+", "-", "*",
    "/", "&", "|", "%",
];
const SINGLE: [&str; 5] = ["(", ")", "[", "]", ","];

fn tokenize(s: &str) -> Result<Vec<Tok<'_>>, AsmErrorKind> {
    let mut toks = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &s[start..i];
            toks.push(if c.is_ascii_digit() { Tok::Num(word) } else { Tok::Ident(word) });
        } else if let Some(p) = SINGLE.iter().find(|p| p.as_bytes()[0] == c) {
            toks.push(Tok::Punct(p));
            i += 1;
        } else if let Some(p) = OPS.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            toks.push(Tok::Punct(p));
            i += p.len();
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            return Err(AsmErrorKind::Syntax(format!("unexpected character {ch:?}")));
        }
    }
    Ok(toks)
}

fn describe(t: Option<Tok<'_>>) -> String {
    match t {
        None => "end of line".into(),
        Some(Tok::Ident(s) | Tok::Num(s) | Tok::Punct(s)) => format!("{s:?}"),
    }
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    pos: usize,
}

fn syntax(msg: String) -> AsmErrorKind {
    AsmErrorKind::Syntax(msg)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<Tok<'a>> {
        self.toks.get(self.pos + k).copied()
    }

    fn bump(&mut self) -> Option<Tok<'a>> {
        let t = self.peek();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn expected(&self, what: &str) -> AsmErrorKind {
        syntax(format!("expected {what}, found {}", describe(self.peek())))
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn punct(&mut self, p: &str) -> Result<(), AsmErrorKind> {
        if self.eat_punct(p) { Ok(()) } else { Err(self.expected(&format!("{p:?}"))) }
    }

    fn eat_ident(&mut self, k: &str) -> bool {
        if self.peek() == Some(Tok::Ident(k)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn keyword(&mut self, k: &str) -> Result<(), AsmErrorKind> {
        if self.eat_ident(k) { Ok(()) } else { Err(self.expected(&format!("{k:?}"))) }
    }

    fn end(&self) -> Result<(), AsmErrorKind> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(syntax(format!("unexpected {} after the instruction", describe(Some(t))))),
        }
    }

    /// The next token as a register, if it is one.
    fn peek_reg(&self) -> Option<(Reg, Width)> {
        match self.peek() {
            Some(Tok::Ident(s)) => reg_name(s),
            _ => None,
        }
    }

    fn reg(&mut self) -> Result<(Reg, Width), AsmErrorKind> {
        match self.bump() {
            Some(Tok::Ident(s)) => reg_name(s).ok_or_else(|| AsmErrorKind::InvalidRegister(s.to_owned())),
            t => Err(syntax(format!("expected a register, found {}", describe(t)))),
        }
    }

    fn reg64(&mut self) -> Result<Reg, AsmErrorKind> {
        match self.reg()? {
            (r, Width::W64) => Ok(r),
            (r, Width::W32) => {
                Err(AsmErrorKind::BadOperand { text: format!("w{}", r.index()), expected: "an r register" })
            }
        }
    }

    /// A register that must have width `w` (and, when `same` is given, be that register).
    fn reg_as(&mut self, w: Width, same: Option<Reg>) -> Result<Reg, AsmErrorKind> {
        let (r, rw) = self.reg()?;
        if rw != w || same.is_some_and(|s| s != r) {
            let want = match (w, same) {
                (Width::W64, None) => "an r register",
                (Width::W32, None) => "a w register",
                (_, Some(_)) => "the destination register again",
            };
            return Err(AsmErrorKind::BadOperand { text: fmt_reg(r, rw), expected: want });
        }
        Ok(r)
    }

    /// An optionally signed number, returned as text for the range-checking parsers.
    fn number(&mut self) -> Result<String, AsmErrorKind> {
        let sign = if self.eat_punct("-") {
            "-"
        } else if self.eat_punct("+") {
            "+"
        } else {
            ""
        };
        match self.bump() {
            Some(Tok::Num(n)) => Ok(format!("{sign}{n}")),
            t => Err(syntax(format!("expected a number, found {}", describe(t)))),
        }
    }

    fn at_number(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) => true,
            Some(Tok::Punct("-" | "+")) => matches!(self.peek_at(1), Some(Tok::Num(_))),
            _ => false,
        }
    }

    fn rel16(&mut self) -> Result<i16, AsmErrorKind> {
        num::i16_in(&self.number()?, "jump offset")
    }

    fn rel32(&mut self) -> Result<i32, AsmErrorKind> {
        num::i32_in(&self.number()?, "jump offset")
    }

    fn imm32(&mut self) -> Result<i32, AsmErrorKind> {
        num::imm32_llvm(&self.number()?)
    }

    /// `(u32 *)` / `(s8 *)`: returns the size and whether it is signed.
    fn cast(&mut self) -> Result<(Size, bool), AsmErrorKind> {
        self.punct("(")?;
        let t = self.bump();
        let (size, signed) = match t {
            Some(Tok::Ident(s)) => match s {
                "u8" => (Size::B, false),
                "u16" => (Size::H, false),
                "u32" => (Size::W, false),
                "u64" => (Size::DW, false),
                "s8" => (Size::B, true),
                "s16" => (Size::H, true),
                "s32" => (Size::W, true),
                _ => return Err(syntax(format!("expected u8/u16/u32/u64/s8/s16/s32, found {s:?}"))),
            },
            t => return Err(syntax(format!("expected a type, found {}", describe(t)))),
        };
        self.punct("*")?;
        self.punct(")")?;
        Ok((size, signed))
    }

    /// `rN + 0x4` / `rN - 0x4` / `rN` (no parentheses).
    fn addr(&mut self) -> Result<(Reg, i16), AsmErrorKind> {
        let base = self.reg64()?;
        let off = if self.eat_punct("+") {
            num::i16_in(&self.number()?, "offset")?
        } else if self.eat_punct("-") {
            let n = self.number()?;
            num::i16_in(&format!("-{}", n.trim_start_matches('+')), "offset")?
        } else {
            0
        };
        Ok((base, off))
    }

    /// `(rN + 0x4)`.
    fn paren_addr(&mut self) -> Result<(Reg, i16), AsmErrorKind> {
        self.punct("(")?;
        let a = self.addr()?;
        self.punct(")")?;
        Ok(a)
    }

    fn statement(&mut self) -> Result<Op, AsmErrorKind> {
        let Some(first) = self.peek() else { return Err(self.expected("an instruction")) };
        match first {
            Tok::Ident("exit") => {
                self.pos += 1;
                Ok(Op::Exit)
            }
            Tok::Ident("tail_call") => {
                self.pos += 1;
                Ok(Op::TailCall)
            }
            Tok::Ident("nospec") => {
                self.pos += 1;
                Ok(Op::Nospec)
            }
            Tok::Ident("zext") => {
                self.pos += 1;
                Ok(Op::Zext { dst: self.reg()?.0 })
            }
            Tok::Ident("call") => {
                self.pos += 1;
                if self.eat_ident("local") {
                    Ok(Op::Call(CallKind::Local(self.rel32()?)))
                } else if self.eat_ident("kfunc") {
                    let btf_id = self.imm32()?;
                    let module = if self.eat_punct(",") { num::i16_in(&self.number()?, "module index")? } else { 0 };
                    Ok(Op::Call(CallKind::Kfunc { btf_id, module }))
                } else {
                    Ok(Op::Call(CallKind::Helper(self.imm32()?)))
                }
            }
            Tok::Ident("callx") => {
                self.pos += 1;
                Ok(Op::Callx(self.reg64()?))
            }
            Tok::Ident("goto") => {
                self.pos += 1;
                Ok(Op::Ja { delta: self.rel16()?.into(), long: false })
            }
            Tok::Ident("gotol") => {
                self.pos += 1;
                Ok(Op::Ja { delta: self.rel32()?, long: true })
            }
            Tok::Ident("may_goto") => {
                self.pos += 1;
                Ok(Op::MayGoto { off: self.rel16()? })
            }
            Tok::Ident("if") => {
                self.pos += 1;
                self.cond_jump()
            }
            Tok::Ident("lock") => {
                self.pos += 1;
                self.lock()
            }
            Tok::Ident("ld_pseudo") => {
                self.pos += 1;
                let dst = self.reg64()?;
                self.punct(",")?;
                let src_text = self.number()?;
                let src = num::signed_in(&src_text, "ld_pseudo kind", 0, 6)?;
                let kind = u8::try_from(src).ok().and_then(LdImm64Kind::from_src).ok_or_else(|| {
                    AsmErrorKind::BadOperand { text: src_text.clone(), expected: "an ld_imm64 src_reg kind 0..=6" }
                })?;
                self.punct(",")?;
                let [lo, hi] = split64(num::imm64(&self.number()?)?);
                Ok(Op::LdImm64 { dst, kind, lo, hi })
            }
            Tok::Punct("*") => {
                self.pos += 1;
                self.store()
            }
            Tok::Ident(_) if self.peek_reg().is_some() => self.reg_statement(),
            _ => Err(match first {
                Tok::Ident(s) => unknown_word(s),
                _ => self.expected("an instruction"),
            }),
        }
    }

    fn cond_jump(&mut self) -> Result<Op, AsmErrorKind> {
        let (dst, width) = self.reg()?;
        let signed = self.eat_ident("s");
        let cond = match (signed, self.bump()) {
            (false, Some(Tok::Punct("=="))) => Cond::Eq,
            (false, Some(Tok::Punct("!="))) => Cond::Ne,
            (false, Some(Tok::Punct("&"))) => Cond::Set,
            (false, Some(Tok::Punct(">"))) => Cond::Gt,
            (false, Some(Tok::Punct(">="))) => Cond::Ge,
            (false, Some(Tok::Punct("<"))) => Cond::Lt,
            (false, Some(Tok::Punct("<="))) => Cond::Le,
            (true, Some(Tok::Punct(">"))) => Cond::Sgt,
            (true, Some(Tok::Punct(">="))) => Cond::Sge,
            (true, Some(Tok::Punct("<"))) => Cond::Slt,
            (true, Some(Tok::Punct("<="))) => Cond::Sle,
            (_, t) => return Err(syntax(format!("expected a comparison, found {}", describe(t)))),
        };
        let src = if self.at_number() { Operand::Imm(self.imm32()?) } else { Operand::Reg(self.reg_as(width, None)?) };
        self.keyword("goto")?;
        let off = self.rel16()?;
        Ok(Op::Jump { width, cond, dst, src, off })
    }

    fn lock(&mut self) -> Result<Op, AsmErrorKind> {
        self.punct("*")?;
        let (size, signed) = self.cast()?;
        if signed || !matches!(size, Size::W | Size::DW) {
            return Err(AsmErrorKind::BadOperand { text: "cast".into(), expected: "(u32 *) or (u64 *)" });
        }
        let (dst, off) = self.paren_addr()?;
        let op = match self.bump() {
            Some(Tok::Punct("+=")) => AtomicOp::Add { fetch: false },
            Some(Tok::Punct("|=")) => AtomicOp::Or { fetch: false },
            Some(Tok::Punct("&=")) => AtomicOp::And { fetch: false },
            Some(Tok::Punct("^=")) => AtomicOp::Xor { fetch: false },
            t => return Err(syntax(format!("expected +=, |=, &= or ^=, found {}", describe(t)))),
        };
        let src = self.atomic_reg(size, None)?;
        Ok(Op::Atomic { size, op, dst, src, off })
    }

    /// A register operand of a `size` atomic: `r` for 64-bit, `w` or `r` for 32-bit.
    fn atomic_reg(&mut self, size: Size, same: Option<Reg>) -> Result<Reg, AsmErrorKind> {
        let (r, w) = self.reg()?;
        let ok = (w == Width::W64 || size == Size::W) && same.is_none_or(|s| s == r);
        if ok {
            Ok(r)
        } else {
            Err(AsmErrorKind::BadOperand {
                text: fmt_reg(r, w),
                expected: if same.is_some() {
                    "the same register on both sides"
                } else {
                    "a register of the access width"
                },
            })
        }
    }

    fn store(&mut self) -> Result<Op, AsmErrorKind> {
        let (size, signed) = self.cast()?;
        if signed {
            return Err(AsmErrorKind::BadOperand { text: "cast".into(), expected: "an unsigned type in a store" });
        }
        let (dst, off) = self.paren_addr()?;
        self.punct("=")?;
        let src = if self.at_number() {
            Operand::Imm(self.imm32()?)
        } else {
            let (r, w) = self.reg()?;
            if w == Width::W32 && size == Size::DW {
                return Err(AsmErrorKind::BadOperand { text: fmt_reg(r, w), expected: "an r register for u64" });
            }
            Operand::Reg(r)
        };
        Ok(Op::Store { size, dst, off, src })
    }

    fn reg_statement(&mut self) -> Result<Op, AsmErrorKind> {
        let (dst, width) = self.reg()?;
        if self.eat_punct("=") {
            return self.assign(dst, width);
        }
        let signed = self.eat_ident("s");
        let op = match (signed, self.bump()) {
            (false, Some(Tok::Punct("+="))) => AluOp::Add,
            (false, Some(Tok::Punct("-="))) => AluOp::Sub,
            (false, Some(Tok::Punct("*="))) => AluOp::Mul,
            (false, Some(Tok::Punct("/="))) => AluOp::Div,
            (false, Some(Tok::Punct("|="))) => AluOp::Or,
            (false, Some(Tok::Punct("&="))) => AluOp::And,
            (false, Some(Tok::Punct("<<="))) => AluOp::Lsh,
            (false, Some(Tok::Punct(">>="))) => AluOp::Rsh,
            (false, Some(Tok::Punct("%="))) => AluOp::Mod,
            (false, Some(Tok::Punct("^="))) => AluOp::Xor,
            (true, Some(Tok::Punct("/="))) => AluOp::SDiv,
            (true, Some(Tok::Punct("%="))) => AluOp::SMod,
            (true, Some(Tok::Punct(">>="))) => AluOp::Arsh,
            (_, t) => return Err(syntax(format!("expected an assignment operator, found {}", describe(t)))),
        };
        let src = if self.at_number() { Operand::Imm(self.imm32()?) } else { Operand::Reg(self.reg_as(width, None)?) };
        Ok(Op::Alu { width, op, dst, src })
    }

    /// The right-hand side of `dst = ...`.
    fn assign(&mut self, dst: Reg, width: Width) -> Result<Op, AsmErrorKind> {
        let w64 = || {
            if width == Width::W64 {
                Ok(())
            } else {
                Err(AsmErrorKind::BadOperand { text: fmt_reg(dst, width), expected: "an r register" })
            }
        };
        match self.peek() {
            Some(Tok::Punct("-")) if !self.at_number() => {
                self.pos += 1;
                self.reg_as(width, Some(dst))?;
                Ok(Op::Alu { width, op: AluOp::Neg, dst, src: Operand::Imm(0) })
            }
            _ if self.at_number() => {
                let n = self.number()?;
                if self.eat_ident("ll") {
                    w64()?;
                    let [lo, hi] = split64(num::imm64(&n)?);
                    Ok(Op::LdImm64 { dst, kind: LdImm64Kind::Imm, lo, hi })
                } else {
                    Ok(Op::Alu { width, op: AluOp::Mov, dst, src: Operand::Imm(num::imm32_llvm(&n)?) })
                }
            }
            Some(Tok::Punct("(")) => {
                self.pos += 1;
                let bits = match self.bump() {
                    Some(Tok::Ident("s8")) => 8,
                    Some(Tok::Ident("s16")) => 16,
                    Some(Tok::Ident("s32")) => 32,
                    t => return Err(syntax(format!("expected s8, s16 or s32, found {}", describe(t)))),
                };
                self.punct(")")?;
                let src = self.reg_as(width, None)?;
                Ok(Op::Alu { width, op: AluOp::MovSx(bits), dst, src: Operand::Reg(src) })
            }
            Some(Tok::Punct("*")) => {
                self.pos += 1;
                let (size, signed) = self.cast()?;
                if self.eat_ident("skb") {
                    w64()?;
                    return self.skb(dst, size, signed);
                }
                let (src, off) = self.paren_addr()?;
                if width == Width::W32 && (signed || size == Size::DW) {
                    return Err(AsmErrorKind::BadOperand {
                        text: fmt_reg(dst, width),
                        expected: "an r register for u64 and sign-extending loads",
                    });
                }
                Ok(Op::Load { size, signed, dst, src, off })
            }
            Some(Tok::Ident(name)) if self.peek_reg().is_none() => {
                self.pos += 1;
                self.named_rhs(name, dst, width)
            }
            Some(Tok::Ident(_)) => {
                let src = self.reg_as(width, None)?;
                Ok(Op::Alu { width, op: AluOp::Mov, dst, src: Operand::Reg(src) })
            }
            _ => Err(self.expected("a value")),
        }
    }

    /// `skb[0x4]`, `skb[r2]`, `skb[r2 + 0x4]` after `r0 = *(uN *)`.
    fn skb(&mut self, dst: Reg, size: Size, signed: bool) -> Result<Op, AsmErrorKind> {
        if dst != Reg::R0 || signed || size == Size::DW {
            return Err(AsmErrorKind::BadOperand {
                text: "skb".into(),
                expected: "r0 = *(u8/u16/u32 *)skb[...] (legacy packet loads write r0)",
            });
        }
        self.punct("[")?;
        let op = if self.at_number() {
            Op::LdPacket { size, index: None, imm: self.imm32()? }
        } else {
            let index = self.reg64()?;
            let imm = if self.eat_punct("+") {
                self.imm32()?
            } else if self.eat_punct("-") {
                let n = self.number()?;
                num::imm32_llvm(&format!("-{}", n.trim_start_matches('+')))?
            } else {
                0
            };
            Op::LdPacket { size, index: Some(index), imm }
        };
        self.punct("]")?;
        Ok(op)
    }

    /// `dst = NAME ...` where NAME is a byte swap or an atomic.
    fn named_rhs(&mut self, name: &str, dst: Reg, width: Width) -> Result<Op, AsmErrorKind> {
        let swap =
            |prefix: &str| name.strip_prefix(prefix).and_then(|b| ["16", "32", "64"].iter().position(|x| *x == b));
        for (prefix, kind) in [("le", SwapKind::Le), ("be", SwapKind::Be), ("bswap", SwapKind::Bswap)] {
            if let Some(i) = swap(prefix) {
                let bits = [16u8, 32, 64][i];
                if width != Width::W64 {
                    return Err(AsmErrorKind::BadOperand { text: fmt_reg(dst, width), expected: "an r register" });
                }
                self.reg_as(Width::W64, Some(dst))?;
                return Ok(Op::Swap { kind, bits, dst });
            }
        }
        let fetch = match name {
            "atomic_fetch_add" => Some(AtomicOp::Add { fetch: true }),
            "atomic_fetch_or" => Some(AtomicOp::Or { fetch: true }),
            "atomic_fetch_and" => Some(AtomicOp::And { fetch: true }),
            "atomic_fetch_xor" => Some(AtomicOp::Xor { fetch: true }),
            _ => None,
        };
        if let Some(op) = fetch {
            self.punct("(")?;
            let (size, signed) = self.cast()?;
            if signed || !matches!(size, Size::W | Size::DW) || (size == Size::DW && width == Width::W32) {
                return Err(AsmErrorKind::BadOperand { text: name.into(), expected: "(u32 *) or (u64 *)" });
            }
            let (addr_reg, off) = self.paren_addr()?;
            self.punct(",")?;
            let src = self.atomic_reg(size, Some(dst))?;
            self.punct(")")?;
            return Ok(Op::Atomic { size, op, dst: addr_reg, src, off });
        }
        let (op, size, operands) = match name {
            "xchg_64" => (AtomicOp::Xchg, Size::DW, 1),
            "xchg32_32" => (AtomicOp::Xchg, Size::W, 1),
            "cmpxchg_64" => (AtomicOp::Cmpxchg, Size::DW, 2),
            "cmpxchg32_32" => (AtomicOp::Cmpxchg, Size::W, 2),
            _ => return Err(unknown_word(name)),
        };
        if size == Size::DW && width == Width::W32 {
            return Err(AsmErrorKind::BadOperand { text: fmt_reg(dst, width), expected: "an r register" });
        }
        self.punct("(")?;
        let (addr_reg, off) = self.addr()?;
        self.punct(",")?;
        let src = if operands == 1 {
            self.atomic_reg(size, Some(dst))?
        } else {
            if dst != Reg::R0 {
                return Err(AsmErrorKind::BadOperand { text: fmt_reg(dst, width), expected: "r0/w0 for cmpxchg" });
            }
            self.atomic_reg(size, Some(Reg::R0))?;
            self.punct(",")?;
            self.atomic_reg(size, None)?
        };
        self.punct(")")?;
        Ok(Op::Atomic { size, op, dst: addr_reg, src, off })
    }
}

fn reg_name(s: &str) -> Option<(Reg, Width)> {
    let (w, digits) =
        if let Some(d) = s.strip_prefix('r') { (Width::W64, d) } else { (Width::W32, s.strip_prefix('w')?) };
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() == 2 && digits.starts_with('0') {
        return None;
    }
    let n: u8 = digits.parse().ok()?;
    Reg::new(n).map(|r| (r, w))
}

/// The error for an unknown word: a bad register if it looks like one, else a bad mnemonic.
fn unknown_word(s: &str) -> AsmErrorKind {
    let looks_reg = s.len() > 1 && s.starts_with(['r', 'w']) && s[1..].bytes().all(|b| b.is_ascii_digit());
    if looks_reg { AsmErrorKind::InvalidRegister(s.to_owned()) } else { AsmErrorKind::InvalidMnemonic(s.to_owned()) }
}

fn fmt_reg(r: Reg, w: Width) -> String {
    format!("{}{}", if w == Width::W64 { 'r' } else { 'w' }, r.index())
}

fn split64(v: u64) -> [i32; 2] {
    let b = v.to_le_bytes();
    [i32::from_le_bytes([b[0], b[1], b[2], b[3]]), i32::from_le_bytes([b[4], b[5], b[6], b[7]])]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Op {
        match parse_llvm_line(s) {
            Ok(Some(op)) => op,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    fn bad(s: &str) -> AsmErrorKind {
        match parse_llvm_line(s) {
            Err(e) => e,
            Ok(v) => panic!("{s:?} parsed as {v:?}"),
        }
    }

    #[test]
    fn prefixes_comments_and_annotations() {
        assert_eq!(one("  17:\tgoto +0x3 <.text+0x100>"), Op::Ja { delta: 3, long: false });
        assert_eq!(one("17: exit # done"), Op::Exit);
        assert_eq!(one("exit ; done"), Op::Exit);
        assert_eq!(parse_llvm_line("   # nothing").unwrap(), None);
        assert_eq!(parse_llvm_line("").unwrap(), None);
        assert_eq!(
            one("if r1 < r2 goto +0x1"),
            Op::Jump { width: Width::W64, cond: Cond::Lt, dst: Reg::R1, src: Operand::Reg(Reg::R2), off: 1 }
        );
        assert_eq!(one("r0=-1"), Op::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(-1) });
    }

    #[test]
    fn v4_spellings_are_accepted() {
        assert_eq!(
            one("w1 = *(u32 *)(r2 - 0x4)"),
            Op::Load { size: Size::W, signed: false, dst: Reg::R1, src: Reg::R2, off: -4 }
        );
        assert_eq!(
            one("*(u8 *)(r1 + 0x4) = w2"),
            Op::Store { size: Size::B, dst: Reg::R1, off: 4, src: Operand::Reg(Reg::R2) }
        );
        assert_eq!(
            one("lock *(u32 *)(r1 + 0x8) += w2"),
            Op::Atomic { size: Size::W, op: AtomicOp::Add { fetch: false }, dst: Reg::R1, src: Reg::R2, off: 8 }
        );
        assert_eq!(
            one("w0 = cmpxchg32_32(r1 + 0x8, w0, w2)"),
            Op::Atomic { size: Size::W, op: AtomicOp::Cmpxchg, dst: Reg::R1, src: Reg::R2, off: 8 }
        );
    }

    #[test]
    fn rejections() {
        assert!(matches!(bad("w1 = (s32)w2"), AsmErrorKind::Syntax(_)));
        assert!(matches!(bad("w1 += r2"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("r1 = -r2"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("r1 = be16 r2"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("w1 = *(u64 *)(r2 + 0x0)"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("w1 = 0x1 ll"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("r1 = *(u32 *)skb[0x1]"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("r12 = 1"), AsmErrorKind::InvalidRegister(_)));
        assert!(matches!(bad("r0 = r12"), AsmErrorKind::InvalidRegister(_)));
        assert!(matches!(bad("r0 = *(u32 *)(w1 + 0x0)"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("goto +0x8000"), AsmErrorKind::OutOfRange { .. }));
        assert!(matches!(bad("r0 = *(u32 *)(r1 + 0xffff)"), AsmErrorKind::OutOfRange { .. }));
        assert!(matches!(bad("w1 = -2147483649"), AsmErrorKind::OutOfRange { .. }));
        assert!(matches!(bad("r2 = atomic_fetch_add((u64 *)(r1 + 0x0), r3)"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("r1 = cmpxchg_64(r1 + 0x0, r0, r2)"), AsmErrorKind::BadOperand { .. }));
        assert!(matches!(bad("exit exit"), AsmErrorKind::Syntax(_)));
        assert!(matches!(bad("frobnicate r1"), AsmErrorKind::InvalidMnemonic(_)));
        assert!(matches!(bad("r1 @ r2"), AsmErrorKind::Syntax(_)));
        assert!(matches!(bad("ld_pseudo r1, 0x7, 0x1"), AsmErrorKind::OutOfRange { .. }));
        assert!(matches!(bad("r1 = r01"), AsmErrorKind::InvalidRegister(_)));
    }

    #[test]
    fn llvm_lossy_and_lossless_call_forms() {
        // llvm-objdump prints every call kind as `call <imm>`; llvm-mc reads that as a helper call.
        assert_eq!(one("call 0x5"), Op::Call(CallKind::Helper(5)));
        assert_eq!(one("call -0x1"), Op::Call(CallKind::Helper(-1)));
        assert_eq!(one("call local -0x1"), Op::Call(CallKind::Local(-1)));
        assert_eq!(one("call kfunc 0x4d"), Op::Call(CallKind::Kfunc { btf_id: 77, module: 0 }));
        assert_eq!(one("call kfunc 0x4d, 0x2"), Op::Call(CallKind::Kfunc { btf_id: 77, module: 2 }));
        assert_eq!(
            one("ld_pseudo\tr2, 0x2, 0x3"),
            Op::LdImm64 { dst: Reg::R2, kind: LdImm64Kind::MapValue, lo: 3, hi: 0 }
        );
        assert_eq!(
            one("ld_pseudo r2, 0x2, 0x4000000003"),
            Op::LdImm64 { dst: Reg::R2, kind: LdImm64Kind::MapValue, lo: 3, hi: 0x40 }
        );
        assert_eq!(one("r0 = *(u16 *)skb[r3]"), Op::LdPacket { size: Size::H, index: Some(Reg::R3), imm: 0 });
        assert_eq!(one("r0 = *(u16 *)skb[r3 - 0x4]"), Op::LdPacket { size: Size::H, index: Some(Reg::R3), imm: -4 });
    }

    #[test]
    fn errors_carry_lines() {
        let e = assemble_llvm("r0 = 0x1\n\nr0 +=\nexit").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
