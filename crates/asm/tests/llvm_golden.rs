//! Golden test against LLVM 19: every instruction form RFC 9669 lists (plus the Linux extensions
//! the insn crate decodes), in both byte orders.
//!
//! - bytes -> text: the forms are emitted as `.byte` data, assembled by llvm-mc and disassembled
//!   by llvm-objdump (default and `--mcpu=v4`). Our default ([`Fidelity::Llvm`]) text must equal
//!   llvm's for every instruction llvm does not print as `<unknown>`, with no exceptions; where
//!   it prints `<unknown>`, both fidelities must print the documented RFC meaning. The
//!   [`Fidelity::Lossless`] text must equal llvm's except for the documented lossy forms, where
//!   it must be the documented text (computed here independently) and differ from llvm's.
//! - text -> bytes: our llvm-fidelity text for every form llvm-mc can read is fed to llvm-mc
//!   (`-triple bpfel`/`bpfeb -mcpu=v4`); the `.text` bytes must equal `assemble_llvm` of the same
//!   text, and that equals our encoding exactly where the llvm text is lossless.
//! - round trips (no tools needed): the lossless text of every form reads back to its encoding,
//!   and the llvm text is a fixed point (text -> bytes -> text gives the same text).
//!
//! The llvm parts are counted skips (`bpfpatch_testkit`; failures under
//! `BPFPATCH_REQUIRE_INPUTS=1`) when llvm-mc-19 / llvm-objdump-19 / llvm-objcopy-19 are missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use bpfpatch_asm::{Dialect, Fidelity, assemble_llvm, disasm_insn_with};
use bpfpatch_insn::{
    AluOp, AtomicOp, CallKind, Cond, DecodeOptions, Endian, Insn, LdImm64Kind, Op, Operand, Reg, Size, SwapKind, Width,
    decode_program, slots_to_bytes,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const MC: &str = "llvm-mc-19";
const OBJDUMP: &str = "llvm-objdump-19";
const OBJCOPY: &str = "llvm-objcopy-19";

/// Whether the llvm-19 tools run; a counted skip when not (a failure under
/// `BPFPATCH_REQUIRE_INPUTS=1`). `tests/disasm_table.rs` checks the disassembler without them.
#[track_caller]
fn have_tools() -> bool {
    bpfpatch_testkit::require_tools(&[MC, OBJDUMP, OBJCOPY])
}

fn workdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfpatch-asm-golden-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Assembles `source` with llvm-mc into `dir/name.o`.
fn mc(dir: &Path, name: &str, source: &str, triple: &str) -> PathBuf {
    let s = dir.join(format!("{name}.s"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&s, source).unwrap();
    run(MC, &["-triple", triple, "-mcpu=v4", "-filetype=obj", s.to_str().unwrap(), "-o", o.to_str().unwrap()]);
    o
}

/// The `.text` section bytes of an object.
fn text_bytes(obj: &Path) -> Vec<u8> {
    let bin = obj.with_extension("bin");
    run(OBJCOPY, &["-O", "binary", "--only-section=.text", obj.to_str().unwrap(), bin.to_str().unwrap()]);
    std::fs::read(bin).unwrap()
}

/// llvm-objdump's text per slot, without the `<sym+off>` suffix.
fn objdump(obj: &Path, v4: bool) -> BTreeMap<usize, String> {
    let mut args = vec!["-d", "--no-show-raw-insn"];
    if v4 {
        args.push("--mcpu=v4");
    }
    args.push(obj.to_str().unwrap());
    let mut map = BTreeMap::new();
    for line in run(OBJDUMP, &args).lines() {
        let Some((slot, text)) = line.split_once(":\t") else { continue };
        let Ok(slot) = slot.trim().parse::<usize>() else { continue };
        let text = match text.rfind(" <") {
            Some(i) if text.ends_with('>') && text != "<unknown>" => &text[..i],
            _ => text,
        };
        map.insert(slot, text.to_owned());
    }
    map
}

fn regs() -> impl Iterator<Item = Reg> {
    (0..=10).filter_map(Reg::new)
}

const IMMS: [i32; 7] = [0, 1, -1, 0x7ff, -0x1234_5678, i32::MIN, i32::MAX];
const OFFS: [i16; 6] = [0, 4, -4, 0x7ff, i16::MIN, i16::MAX];

/// Every form, with operand variety. `true` marks forms whose llvm-fidelity text llvm-mc can read
/// (all but `gotol` beyond 16 bits and the kernel-internal `tail_call` / `nospec`).
fn forms() -> Vec<(Op, bool)> {
    let mut v: Vec<(Op, bool)> = Vec::new();
    let mut add = |op: Op, text_ok: bool| v.push((op, text_ok));
    let alu_ops = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::SDiv,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Mod,
        AluOp::SMod,
        AluOp::Xor,
        AluOp::Mov,
        AluOp::Arsh,
    ];
    for (k, width) in [Width::W32, Width::W64].into_iter().enumerate() {
        for (i, op) in alu_ops.into_iter().enumerate() {
            let dst = Reg::new(u8::try_from((i + k) % 11).unwrap()).unwrap();
            let src = Reg::new(u8::try_from((i * 3 + 1) % 11).unwrap()).unwrap();
            add(Op::Alu { width, op, dst, src: Operand::Reg(src) }, true);
            for imm in IMMS {
                add(Op::Alu { width, op, dst, src: Operand::Imm(imm) }, true);
            }
        }
        for dst in regs() {
            add(Op::Alu { width, op: AluOp::Neg, dst, src: Operand::Imm(0) }, true);
        }
        for bits in [8u8, 16, 32] {
            if width == Width::W32 && bits == 32 {
                continue;
            }
            add(Op::Alu { width, op: AluOp::MovSx(bits), dst: Reg::R3, src: Operand::Reg(Reg::R9) }, true);
        }
    }
    for kind in [SwapKind::Le, SwapKind::Be, SwapKind::Bswap] {
        for bits in [16u8, 32, 64] {
            add(Op::Swap { kind, bits, dst: Reg::R7 }, true);
        }
    }
    for value in [0i64, 1, -1, i64::MIN, i64::MAX, 0x1122_3344_5566_7788, 0xffff_ffff, -0x1_0000_0000] {
        let b = value.to_le_bytes();
        let lo = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let hi = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        add(Op::LdImm64 { dst: Reg::R6, kind: LdImm64Kind::Imm, lo, hi }, true);
    }
    for src in 1u8..=6 {
        let kind = LdImm64Kind::from_src(src).unwrap();
        for lo in [0, 5, -1, i32::MIN] {
            add(Op::LdImm64 { dst: Reg::R1, kind, lo, hi: 0 }, true);
        }
        // hi != 0 (map value offsets): llvm prints (and llvm-mc reads) the low word only.
        add(Op::LdImm64 { dst: Reg::R2, kind, lo: 3, hi: 0x40 }, true);
        add(Op::LdImm64 { dst: Reg::R3, kind, lo: -1, hi: -1 }, true);
    }
    for size in [Size::B, Size::H, Size::W] {
        for imm in [0, 4, -1, i32::MAX] {
            add(Op::LdPacket { size, index: None, imm }, true);
        }
        add(Op::LdPacket { size, index: Some(Reg::R2), imm: 0 }, true);
        // LD_IND with a displacement: llvm prints only the register.
        add(Op::LdPacket { size, index: Some(Reg::R3), imm: 14 }, true);
        add(Op::LdPacket { size, index: Some(Reg::R3), imm: -4 }, true);
    }
    for size in [Size::B, Size::H, Size::W, Size::DW] {
        for (i, off) in OFFS.into_iter().enumerate() {
            let a = Reg::new(u8::try_from(i % 11).unwrap()).unwrap();
            let b = Reg::new(u8::try_from((i + 5) % 11).unwrap()).unwrap();
            add(Op::Load { size, signed: false, dst: a, src: b, off }, true);
            if size != Size::DW {
                add(Op::Load { size, signed: true, dst: b, src: a, off }, true);
            }
            add(Op::Store { size, dst: a, off, src: Operand::Reg(b) }, true);
            add(Op::Store { size, dst: b, off, src: Operand::Imm(IMMS[i]) }, true);
        }
    }
    let atomics = [
        AtomicOp::Add { fetch: false },
        AtomicOp::Or { fetch: false },
        AtomicOp::And { fetch: false },
        AtomicOp::Xor { fetch: false },
        AtomicOp::Add { fetch: true },
        AtomicOp::Or { fetch: true },
        AtomicOp::And { fetch: true },
        AtomicOp::Xor { fetch: true },
        AtomicOp::Xchg,
        AtomicOp::Cmpxchg,
    ];
    for size in [Size::W, Size::DW] {
        for op in atomics {
            for off in [0, -8, i16::MAX] {
                add(Op::Atomic { size, op, dst: Reg::R10, src: Reg::R4, off }, true);
            }
        }
    }
    for delta in [0i16, 1, -1, i16::MIN, i16::MAX] {
        add(Op::Ja { delta: delta.into(), long: false }, true);
        // llvm-mc reads `gotol` targets as 16-bit numbers, so only those go through its parser.
        add(Op::Ja { delta: delta.into(), long: true }, true);
        add(Op::MayGoto { off: delta }, true);
    }
    for delta in [i32::MIN, i32::MAX, 0x8000, -0x8001] {
        add(Op::Ja { delta, long: true }, false);
    }
    for width in [Width::W32, Width::W64] {
        for (i, cond) in Cond::ALL.into_iter().enumerate() {
            let dst = Reg::new(u8::try_from(i % 11).unwrap()).unwrap();
            let src = Reg::new(u8::try_from((i + 3) % 11).unwrap()).unwrap();
            add(Op::Jump { width, cond, dst, src: Operand::Reg(src), off: OFFS[i % OFFS.len()] }, true);
            for imm in IMMS {
                add(Op::Jump { width, cond, dst, src: Operand::Imm(imm), off: -OFFS[i % 4] }, true);
            }
        }
    }
    for id in [0, 1, 5, -1, i32::MIN, i32::MAX] {
        add(Op::Call(CallKind::Helper(id)), true);
        // llvm prints both as a helper call.
        add(Op::Call(CallKind::Local(id)), true);
        add(Op::Call(CallKind::Kfunc { btf_id: id, module: 0 }), true);
    }
    add(Op::Call(CallKind::Kfunc { btf_id: 77, module: 2 }), true);
    add(Op::Call(CallKind::Kfunc { btf_id: -5, module: -1 }), true);
    for r in regs() {
        add(Op::Callx(r), true);
    }
    add(Op::Exit, true);
    v
}

/// Kernel-internal forms (decoded with `DecodeOptions::INTERNAL`).
fn internal_forms() -> Vec<(Op, bool)> {
    vec![
        (Op::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::AX, src: Operand::Reg(Reg::R1) }, true),
        (Op::Alu { width: Width::W32, op: AluOp::Xor, dst: Reg::R2, src: Operand::Reg(Reg::AX) }, true),
        (Op::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::AX, src: Operand::Imm(-3) }, true),
        (Op::Jump { width: Width::W64, cond: Cond::Ge, dst: Reg::AX, src: Operand::Reg(Reg::R3), off: 1 }, true),
        (Op::TailCall, false),
        (Op::Nospec, false),
        (Op::Zext { dst: Reg::R4 }, true),
    ]
}

fn hex(v: i64) -> String {
    if v < 0 { format!("-{:#x}", v.unsigned_abs()) } else { format!("{v:#x}") }
}

/// Where llvm prints `<unknown>` for a valid instruction: the RFC meaning we document instead
/// (`v4_llvm` is llvm's `--mcpu=v4` text of the same bytes). `None`: not a documented case.
fn documented_unknown(op: &Op, v4: bool, v4_llvm: &str) -> Option<String> {
    match op {
        Op::TailCall => Some("tail_call".into()),
        Op::Nospec => Some("nospec".into()),
        // Without alu32 llvm knows only the legacy 32-bit XADD; the other 32-bit atomics
        // (except fetch-add, see below) print as in --mcpu=v4, where llvm knows them.
        Op::Atomic { size: Size::W, .. } if !v4 && v4_llvm != "<unknown>" => Some(v4_llvm.to_owned()),
        _ => None,
    }
}

/// The documented lossless text of the forms whose llvm text loses information; `None` where
/// the lossless text must be llvm's.
fn documented_lossless(op: &Op, v4: bool, v4_llvm: &str) -> Option<String> {
    let rel = |v: i64| if v < 0 { hex(v) } else { format!("+{v:#x}") };
    if let Op::Zext { dst } = op {
        return Some(format!("zext w{}", dst.index()));
    }
    Some(match *op {
        // llvm: `call <imm>` for every call kind.
        Op::Call(CallKind::Local(imm)) => format!("call local {}", rel(imm.into())),
        Op::Call(CallKind::Kfunc { btf_id, module: 0 }) => format!("call kfunc {}", hex(btf_id.into())),
        Op::Call(CallKind::Kfunc { btf_id, module }) => {
            format!("call kfunc {}, {}", hex(btf_id.into()), hex(module.into()))
        }
        // llvm: the low word only.
        Op::LdImm64 { dst, kind, lo, hi } if kind != LdImm64Kind::Imm && hi != 0 => {
            let v = (u64::from(u32::from_ne_bytes(hi.to_ne_bytes())) << 32)
                | u64::from(u32::from_ne_bytes(lo.to_ne_bytes()));
            format!("ld_pseudo\tr{}, {:#x}, {v:#x}", dst.index(), kind.src())
        }
        // llvm: `skb[rN]`, dropping the immediate.
        Op::LdPacket { size, index: Some(r), imm } if imm != 0 => {
            let sign = if imm < 0 { '-' } else { '+' };
            format!("r0 = *(u{} *)skb[r{} {sign} {:#x}]", size.bytes() * 8, r.index(), imm.unsigned_abs())
        }
        // llvm without alu32 ignores the fetch bit (`lock *(u32 *)(...) += rN`): the v4 text.
        Op::Atomic { size: Size::W, op: AtomicOp::Add { fetch: true }, .. } if !v4 => v4_llvm.to_owned(),
        _ => return None,
    })
}

fn encode_all(ops: &[(Op, bool)]) -> Vec<Insn> {
    ops.iter().flat_map(|(op, _)| op.encode().as_slice().to_vec()).collect()
}

/// `.byte` source for slots in memory order of `endian`.
fn byte_source(slots: &[Insn], endian: Endian) -> String {
    let mut s = String::from(".text\n");
    for i in slots {
        let b = i.to_bytes(endian);
        let list: Vec<String> = b.iter().map(|x| format!("{x:#04x}")).collect();
        s.push_str(&format!(".byte {}\n", list.join(", ")));
    }
    s
}

fn check_bytes_to_text(ops: &[(Op, bool)], opts: DecodeOptions, tag: &str) {
    let dir = workdir(tag);
    let slots = encode_all(ops);
    // Sanity: the list decodes back to itself.
    let decoded: Vec<Op> = decode_program(&slots, opts).unwrap().into_iter().map(|(_, op)| op).collect();
    assert_eq!(decoded, ops.iter().map(|(op, _)| *op).collect::<Vec<_>>());
    let mut failures = Vec::new();
    let (mut unknown, mut lossless_diffs) = (0, 0);
    for (endian, triple) in [(Endian::Little, "bpfel"), (Endian::Big, "bpfeb")] {
        let obj = mc(&dir, &format!("bytes-{triple}"), &byte_source(&slots, endian), triple);
        assert_eq!(text_bytes(&obj), slots_to_bytes(&slots, endian), "{triple}: .byte data round trip");
        let v4_llvm = objdump(&obj, true);
        for (v4, dialect) in [(false, Dialect::Default), (true, Dialect::McpuV4)] {
            let llvm = if v4 { v4_llvm.clone() } else { objdump(&obj, false) };
            let mut slot = 0;
            for (op, _) in ops {
                let ours = disasm_insn_with(op, dialect, Fidelity::Llvm);
                let lossless = disasm_insn_with(op, dialect, Fidelity::Lossless);
                let got = llvm.get(&slot).cloned().unwrap_or_default();
                let v4_got = v4_llvm.get(&slot).map_or("", String::as_str);
                let at = format!("{triple} v4={v4} slot {slot} {op:?}");
                if got == "<unknown>" {
                    unknown += 1;
                    match documented_unknown(op, v4, v4_got) {
                        None => failures.push(format!("{at}: llvm prints <unknown>, not documented")),
                        Some(want) if ours != want || lossless != want => failures.push(format!(
                            "{at}: llvm <unknown>; ours {ours:?} / lossless {lossless:?}, want {want:?}"
                        )),
                        Some(_) => {}
                    }
                    slot += op.slots();
                    continue;
                }
                if ours != got {
                    failures.push(format!("{at}: ours {ours:?}, llvm {got:?}"));
                }
                match documented_lossless(op, v4, v4_got) {
                    None if lossless != got => {
                        failures.push(format!("{at}: lossless {lossless:?} differs from llvm {got:?} (undocumented)"));
                    }
                    None => {}
                    Some(want) => {
                        lossless_diffs += 1;
                        if want == got {
                            failures.push(format!("{at}: documented lossless text {want:?} is llvm's own"));
                        }
                        if lossless != want {
                            failures.push(format!("{at}: lossless {lossless:?}, documented {want:?}"));
                        }
                    }
                }
                slot += op.slots();
            }
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
    eprintln!(
        "{tag}: {} instructions x 2 byte orders x 2 dialects: llvm text identical to llvm-objdump; \
         {unknown} <unknown> substitutions, {lossless_diffs} documented lossless differences",
        ops.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn check_text_to_bytes(ops: &[(Op, bool)], tag: &str) {
    let dir = workdir(tag);
    let text_ops: Vec<Op> = ops.iter().filter(|(_, ok)| *ok).map(|(op, _)| *op).collect();
    let mut lossy = 0;
    for dialect in [Dialect::Default, Dialect::McpuV4] {
        let lines: Vec<String> = text_ops.iter().map(|op| disasm_insn_with(op, dialect, Fidelity::Llvm)).collect();
        // assemble_llvm line by line: it reads back the encoding exactly where llvm's text is
        // lossless, and something else (read as llvm-mc reads it) where it is not.
        let mut per_line = Vec::new();
        for (op, line) in text_ops.iter().zip(&lines) {
            let back = assemble_llvm(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let exact = back.as_slice() == op.encode().as_slice();
            let lossless = *line == disasm_insn_with(op, dialect, Fidelity::Lossless);
            assert_eq!(exact, lossless, "{dialect:?} {op:?}: {line:?} reads back as {back:?}");
            lossy += usize::from(!exact);
            per_line.push(back);
        }
        let source: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let ours: Vec<Insn> = per_line.concat();
        assert_eq!(assemble_llvm(&source).unwrap(), ours, "assemble_llvm({dialect:?} listing)");
        for (endian, triple) in [(Endian::Little, "bpfel"), (Endian::Big, "bpfeb")] {
            let obj = mc(&dir, &format!("text-{triple}-{dialect:?}"), &source, triple);
            let bytes = text_bytes(&obj);
            if bytes != slots_to_bytes(&ours, endian) {
                let got = bpfpatch_insn::slots_from_bytes(&bytes, endian).unwrap();
                let mut slot = 0;
                let mut diffs = Vec::new();
                for (line, want) in lines.iter().zip(&per_line) {
                    let n = want.len();
                    if got.get(slot..slot + n) != Some(want.as_slice()) {
                        diffs.push(format!("{line:?}: llvm-mc {:?} vs ours {want:?}", got.get(slot..slot + n)));
                    }
                    slot += n;
                }
                panic!("{triple} {dialect:?}: llvm-mc bytes differ ({} lines):\n{}", diffs.len(), diffs.join("\n"));
            }
        }
    }
    eprintln!(
        "{tag}: {} llvm-text instructions x 2 dialects assemble identically with llvm-mc (bpfel, bpfeb) and \
         assemble_llvm ({lossy} of them lossy, as llvm's text is)",
        text_ops.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn disassembly_matches_llvm_objdump() {
    if !have_tools() {
        return;
    }
    let ops = forms();
    assert!(ops.len() > 500, "form list unexpectedly small: {}", ops.len());
    check_bytes_to_text(&ops, DecodeOptions::default(), "user");
    check_bytes_to_text(&internal_forms(), DecodeOptions::INTERNAL, "internal");
}

#[test]
fn our_text_assembles_like_llvm_mc() {
    if !have_tools() {
        return;
    }
    check_text_to_bytes(&forms(), "text-user");
    check_text_to_bytes(&internal_forms(), "text-internal");
}

#[test]
fn lossless_text_round_trips_every_form() {
    let mut differs = 0;
    for (op, _) in forms().into_iter().chain(internal_forms()) {
        for dialect in [Dialect::Default, Dialect::McpuV4] {
            let text = disasm_insn_with(&op, dialect, Fidelity::Lossless);
            let slots = assemble_llvm(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(slots.as_slice(), op.encode().as_slice(), "{text:?}");
            differs += usize::from(text != disasm_insn_with(&op, dialect, Fidelity::Llvm));
        }
    }
    // The lossy forms (calls, ld_pseudo high words, LD_IND immediates, 32-bit fetch-add) exist.
    assert!(differs > 40, "only {differs} forms where the lossless text differs from llvm's");
}

#[test]
fn llvm_text_is_a_fixed_point() {
    for (op, _) in forms().into_iter().chain(internal_forms()) {
        for dialect in [Dialect::Default, Dialect::McpuV4] {
            let text = disasm_insn_with(&op, dialect, Fidelity::Llvm);
            let slots = assemble_llvm(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let back = decode_program(&slots, DecodeOptions::INTERNAL).unwrap();
            assert_eq!(back.len(), 1, "{text:?}");
            assert_eq!(disasm_insn_with(&back[0].1, dialect, Fidelity::Llvm), text, "{op:?}");
        }
    }
}
