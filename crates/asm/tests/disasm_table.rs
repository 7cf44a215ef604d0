//! The disassembler's jump, call and exit text against an independent table, with no llvm tool
//! needed: each row is an instruction's 8 bytes (little-endian) and the text llvm-objdump-19
//! prints for it (`llvm-objdump-19 -d --no-show-raw-insn`, with and without `--mcpu=v4`, less the
//! ` <sym+off>` suffix). The rows were written from llvm's BPF printer's format (registers `rN` in
//! JMP, `wN` in JMP32; immediates as *signed* hex in both classes, `-0x1` not `0xffffffff`;
//! offsets as `+0x3` / `-0x2`; calls print the raw `imm` whatever `src_reg` says) and every row was
//! confirmed by running llvm-objdump-19 on them (`llvm-mc-19 -triple bpfel` of `.byte` lines).
//! The llvm golden test (tests/llvm_golden.rs) compares far more forms, but only where llvm-19 is
//! installed; this table catches a misprinted jump without it.
#![allow(clippy::unwrap_used, clippy::panic)]

use bpfpatch_asm::{Dialect, Fidelity, disasm_insn_with};
use bpfpatch_insn::{DecodeOptions, Endian, decode_program, slots_from_bytes};

/// Every jump condition in JMP (`r`) and JMP32 (`w`), K form with negative, positive and extreme
/// immediates and offsets, X form with forward and backward offsets; then `goto`, `gotol`,
/// helper / local / kfunc calls, `exit` and `may_goto`.
const TABLE: &[(&str, &str)] = &[
    ("15 01 03 00 ff ff ff ff", "if r1 == -0x1 goto +0x3"),
    ("15 04 fe ff 05 00 00 00", "if r4 == 0x5 goto -0x2"),
    ("15 07 ff 7f 00 00 00 80", "if r7 == -0x80000000 goto +0x7fff"),
    ("15 00 00 80 ff ff ff 7f", "if r0 == 0x7fffffff goto -0x8000"),
    ("15 03 00 00 cc ed ff ff", "if r3 == -0x1234 goto +0x0"),
    ("1d 29 01 00 00 00 00 00", "if r9 == r2 goto +0x1"),
    ("1d a0 fb ff 00 00 00 00", "if r0 == r10 goto -0x5"),
    ("25 01 03 00 ff ff ff ff", "if r1 > -0x1 goto +0x3"),
    ("25 04 fe ff 05 00 00 00", "if r4 > 0x5 goto -0x2"),
    ("25 07 ff 7f 00 00 00 80", "if r7 > -0x80000000 goto +0x7fff"),
    ("25 00 00 80 ff ff ff 7f", "if r0 > 0x7fffffff goto -0x8000"),
    ("25 03 00 00 cc ed ff ff", "if r3 > -0x1234 goto +0x0"),
    ("2d 29 01 00 00 00 00 00", "if r9 > r2 goto +0x1"),
    ("2d a0 fb ff 00 00 00 00", "if r0 > r10 goto -0x5"),
    ("35 01 03 00 ff ff ff ff", "if r1 >= -0x1 goto +0x3"),
    ("35 04 fe ff 05 00 00 00", "if r4 >= 0x5 goto -0x2"),
    ("35 07 ff 7f 00 00 00 80", "if r7 >= -0x80000000 goto +0x7fff"),
    ("35 00 00 80 ff ff ff 7f", "if r0 >= 0x7fffffff goto -0x8000"),
    ("35 03 00 00 cc ed ff ff", "if r3 >= -0x1234 goto +0x0"),
    ("3d 29 01 00 00 00 00 00", "if r9 >= r2 goto +0x1"),
    ("3d a0 fb ff 00 00 00 00", "if r0 >= r10 goto -0x5"),
    ("45 01 03 00 ff ff ff ff", "if r1 & -0x1 goto +0x3"),
    ("45 04 fe ff 05 00 00 00", "if r4 & 0x5 goto -0x2"),
    ("45 07 ff 7f 00 00 00 80", "if r7 & -0x80000000 goto +0x7fff"),
    ("45 00 00 80 ff ff ff 7f", "if r0 & 0x7fffffff goto -0x8000"),
    ("45 03 00 00 cc ed ff ff", "if r3 & -0x1234 goto +0x0"),
    ("4d 29 01 00 00 00 00 00", "if r9 & r2 goto +0x1"),
    ("4d a0 fb ff 00 00 00 00", "if r0 & r10 goto -0x5"),
    ("55 01 03 00 ff ff ff ff", "if r1 != -0x1 goto +0x3"),
    ("55 04 fe ff 05 00 00 00", "if r4 != 0x5 goto -0x2"),
    ("55 07 ff 7f 00 00 00 80", "if r7 != -0x80000000 goto +0x7fff"),
    ("55 00 00 80 ff ff ff 7f", "if r0 != 0x7fffffff goto -0x8000"),
    ("55 03 00 00 cc ed ff ff", "if r3 != -0x1234 goto +0x0"),
    ("5d 29 01 00 00 00 00 00", "if r9 != r2 goto +0x1"),
    ("5d a0 fb ff 00 00 00 00", "if r0 != r10 goto -0x5"),
    ("65 01 03 00 ff ff ff ff", "if r1 s> -0x1 goto +0x3"),
    ("65 04 fe ff 05 00 00 00", "if r4 s> 0x5 goto -0x2"),
    ("65 07 ff 7f 00 00 00 80", "if r7 s> -0x80000000 goto +0x7fff"),
    ("65 00 00 80 ff ff ff 7f", "if r0 s> 0x7fffffff goto -0x8000"),
    ("65 03 00 00 cc ed ff ff", "if r3 s> -0x1234 goto +0x0"),
    ("6d 29 01 00 00 00 00 00", "if r9 s> r2 goto +0x1"),
    ("6d a0 fb ff 00 00 00 00", "if r0 s> r10 goto -0x5"),
    ("75 01 03 00 ff ff ff ff", "if r1 s>= -0x1 goto +0x3"),
    ("75 04 fe ff 05 00 00 00", "if r4 s>= 0x5 goto -0x2"),
    ("75 07 ff 7f 00 00 00 80", "if r7 s>= -0x80000000 goto +0x7fff"),
    ("75 00 00 80 ff ff ff 7f", "if r0 s>= 0x7fffffff goto -0x8000"),
    ("75 03 00 00 cc ed ff ff", "if r3 s>= -0x1234 goto +0x0"),
    ("7d 29 01 00 00 00 00 00", "if r9 s>= r2 goto +0x1"),
    ("7d a0 fb ff 00 00 00 00", "if r0 s>= r10 goto -0x5"),
    ("a5 01 03 00 ff ff ff ff", "if r1 < -0x1 goto +0x3"),
    ("a5 04 fe ff 05 00 00 00", "if r4 < 0x5 goto -0x2"),
    ("a5 07 ff 7f 00 00 00 80", "if r7 < -0x80000000 goto +0x7fff"),
    ("a5 00 00 80 ff ff ff 7f", "if r0 < 0x7fffffff goto -0x8000"),
    ("a5 03 00 00 cc ed ff ff", "if r3 < -0x1234 goto +0x0"),
    ("ad 29 01 00 00 00 00 00", "if r9 < r2 goto +0x1"),
    ("ad a0 fb ff 00 00 00 00", "if r0 < r10 goto -0x5"),
    ("b5 01 03 00 ff ff ff ff", "if r1 <= -0x1 goto +0x3"),
    ("b5 04 fe ff 05 00 00 00", "if r4 <= 0x5 goto -0x2"),
    ("b5 07 ff 7f 00 00 00 80", "if r7 <= -0x80000000 goto +0x7fff"),
    ("b5 00 00 80 ff ff ff 7f", "if r0 <= 0x7fffffff goto -0x8000"),
    ("b5 03 00 00 cc ed ff ff", "if r3 <= -0x1234 goto +0x0"),
    ("bd 29 01 00 00 00 00 00", "if r9 <= r2 goto +0x1"),
    ("bd a0 fb ff 00 00 00 00", "if r0 <= r10 goto -0x5"),
    ("c5 01 03 00 ff ff ff ff", "if r1 s< -0x1 goto +0x3"),
    ("c5 04 fe ff 05 00 00 00", "if r4 s< 0x5 goto -0x2"),
    ("c5 07 ff 7f 00 00 00 80", "if r7 s< -0x80000000 goto +0x7fff"),
    ("c5 00 00 80 ff ff ff 7f", "if r0 s< 0x7fffffff goto -0x8000"),
    ("c5 03 00 00 cc ed ff ff", "if r3 s< -0x1234 goto +0x0"),
    ("cd 29 01 00 00 00 00 00", "if r9 s< r2 goto +0x1"),
    ("cd a0 fb ff 00 00 00 00", "if r0 s< r10 goto -0x5"),
    ("d5 01 03 00 ff ff ff ff", "if r1 s<= -0x1 goto +0x3"),
    ("d5 04 fe ff 05 00 00 00", "if r4 s<= 0x5 goto -0x2"),
    ("d5 07 ff 7f 00 00 00 80", "if r7 s<= -0x80000000 goto +0x7fff"),
    ("d5 00 00 80 ff ff ff 7f", "if r0 s<= 0x7fffffff goto -0x8000"),
    ("d5 03 00 00 cc ed ff ff", "if r3 s<= -0x1234 goto +0x0"),
    ("dd 29 01 00 00 00 00 00", "if r9 s<= r2 goto +0x1"),
    ("dd a0 fb ff 00 00 00 00", "if r0 s<= r10 goto -0x5"),
    ("16 01 03 00 ff ff ff ff", "if w1 == -0x1 goto +0x3"),
    ("16 04 fe ff 05 00 00 00", "if w4 == 0x5 goto -0x2"),
    ("16 07 ff 7f 00 00 00 80", "if w7 == -0x80000000 goto +0x7fff"),
    ("16 00 00 80 ff ff ff 7f", "if w0 == 0x7fffffff goto -0x8000"),
    ("16 03 00 00 cc ed ff ff", "if w3 == -0x1234 goto +0x0"),
    ("1e 29 01 00 00 00 00 00", "if w9 == w2 goto +0x1"),
    ("1e a0 fb ff 00 00 00 00", "if w0 == w10 goto -0x5"),
    ("26 01 03 00 ff ff ff ff", "if w1 > -0x1 goto +0x3"),
    ("26 04 fe ff 05 00 00 00", "if w4 > 0x5 goto -0x2"),
    ("26 07 ff 7f 00 00 00 80", "if w7 > -0x80000000 goto +0x7fff"),
    ("26 00 00 80 ff ff ff 7f", "if w0 > 0x7fffffff goto -0x8000"),
    ("26 03 00 00 cc ed ff ff", "if w3 > -0x1234 goto +0x0"),
    ("2e 29 01 00 00 00 00 00", "if w9 > w2 goto +0x1"),
    ("2e a0 fb ff 00 00 00 00", "if w0 > w10 goto -0x5"),
    ("36 01 03 00 ff ff ff ff", "if w1 >= -0x1 goto +0x3"),
    ("36 04 fe ff 05 00 00 00", "if w4 >= 0x5 goto -0x2"),
    ("36 07 ff 7f 00 00 00 80", "if w7 >= -0x80000000 goto +0x7fff"),
    ("36 00 00 80 ff ff ff 7f", "if w0 >= 0x7fffffff goto -0x8000"),
    ("36 03 00 00 cc ed ff ff", "if w3 >= -0x1234 goto +0x0"),
    ("3e 29 01 00 00 00 00 00", "if w9 >= w2 goto +0x1"),
    ("3e a0 fb ff 00 00 00 00", "if w0 >= w10 goto -0x5"),
    ("46 01 03 00 ff ff ff ff", "if w1 & -0x1 goto +0x3"),
    ("46 04 fe ff 05 00 00 00", "if w4 & 0x5 goto -0x2"),
    ("46 07 ff 7f 00 00 00 80", "if w7 & -0x80000000 goto +0x7fff"),
    ("46 00 00 80 ff ff ff 7f", "if w0 & 0x7fffffff goto -0x8000"),
    ("46 03 00 00 cc ed ff ff", "if w3 & -0x1234 goto +0x0"),
    ("4e 29 01 00 00 00 00 00", "if w9 & w2 goto +0x1"),
    ("4e a0 fb ff 00 00 00 00", "if w0 & w10 goto -0x5"),
    ("56 01 03 00 ff ff ff ff", "if w1 != -0x1 goto +0x3"),
    ("56 04 fe ff 05 00 00 00", "if w4 != 0x5 goto -0x2"),
    ("56 07 ff 7f 00 00 00 80", "if w7 != -0x80000000 goto +0x7fff"),
    ("56 00 00 80 ff ff ff 7f", "if w0 != 0x7fffffff goto -0x8000"),
    ("56 03 00 00 cc ed ff ff", "if w3 != -0x1234 goto +0x0"),
    ("5e 29 01 00 00 00 00 00", "if w9 != w2 goto +0x1"),
    ("5e a0 fb ff 00 00 00 00", "if w0 != w10 goto -0x5"),
    ("66 01 03 00 ff ff ff ff", "if w1 s> -0x1 goto +0x3"),
    ("66 04 fe ff 05 00 00 00", "if w4 s> 0x5 goto -0x2"),
    ("66 07 ff 7f 00 00 00 80", "if w7 s> -0x80000000 goto +0x7fff"),
    ("66 00 00 80 ff ff ff 7f", "if w0 s> 0x7fffffff goto -0x8000"),
    ("66 03 00 00 cc ed ff ff", "if w3 s> -0x1234 goto +0x0"),
    ("6e 29 01 00 00 00 00 00", "if w9 s> w2 goto +0x1"),
    ("6e a0 fb ff 00 00 00 00", "if w0 s> w10 goto -0x5"),
    ("76 01 03 00 ff ff ff ff", "if w1 s>= -0x1 goto +0x3"),
    ("76 04 fe ff 05 00 00 00", "if w4 s>= 0x5 goto -0x2"),
    ("76 07 ff 7f 00 00 00 80", "if w7 s>= -0x80000000 goto +0x7fff"),
    ("76 00 00 80 ff ff ff 7f", "if w0 s>= 0x7fffffff goto -0x8000"),
    ("76 03 00 00 cc ed ff ff", "if w3 s>= -0x1234 goto +0x0"),
    ("7e 29 01 00 00 00 00 00", "if w9 s>= w2 goto +0x1"),
    ("7e a0 fb ff 00 00 00 00", "if w0 s>= w10 goto -0x5"),
    ("a6 01 03 00 ff ff ff ff", "if w1 < -0x1 goto +0x3"),
    ("a6 04 fe ff 05 00 00 00", "if w4 < 0x5 goto -0x2"),
    ("a6 07 ff 7f 00 00 00 80", "if w7 < -0x80000000 goto +0x7fff"),
    ("a6 00 00 80 ff ff ff 7f", "if w0 < 0x7fffffff goto -0x8000"),
    ("a6 03 00 00 cc ed ff ff", "if w3 < -0x1234 goto +0x0"),
    ("ae 29 01 00 00 00 00 00", "if w9 < w2 goto +0x1"),
    ("ae a0 fb ff 00 00 00 00", "if w0 < w10 goto -0x5"),
    ("b6 01 03 00 ff ff ff ff", "if w1 <= -0x1 goto +0x3"),
    ("b6 04 fe ff 05 00 00 00", "if w4 <= 0x5 goto -0x2"),
    ("b6 07 ff 7f 00 00 00 80", "if w7 <= -0x80000000 goto +0x7fff"),
    ("b6 00 00 80 ff ff ff 7f", "if w0 <= 0x7fffffff goto -0x8000"),
    ("b6 03 00 00 cc ed ff ff", "if w3 <= -0x1234 goto +0x0"),
    ("be 29 01 00 00 00 00 00", "if w9 <= w2 goto +0x1"),
    ("be a0 fb ff 00 00 00 00", "if w0 <= w10 goto -0x5"),
    ("c6 01 03 00 ff ff ff ff", "if w1 s< -0x1 goto +0x3"),
    ("c6 04 fe ff 05 00 00 00", "if w4 s< 0x5 goto -0x2"),
    ("c6 07 ff 7f 00 00 00 80", "if w7 s< -0x80000000 goto +0x7fff"),
    ("c6 00 00 80 ff ff ff 7f", "if w0 s< 0x7fffffff goto -0x8000"),
    ("c6 03 00 00 cc ed ff ff", "if w3 s< -0x1234 goto +0x0"),
    ("ce 29 01 00 00 00 00 00", "if w9 s< w2 goto +0x1"),
    ("ce a0 fb ff 00 00 00 00", "if w0 s< w10 goto -0x5"),
    ("d6 01 03 00 ff ff ff ff", "if w1 s<= -0x1 goto +0x3"),
    ("d6 04 fe ff 05 00 00 00", "if w4 s<= 0x5 goto -0x2"),
    ("d6 07 ff 7f 00 00 00 80", "if w7 s<= -0x80000000 goto +0x7fff"),
    ("d6 00 00 80 ff ff ff 7f", "if w0 s<= 0x7fffffff goto -0x8000"),
    ("d6 03 00 00 cc ed ff ff", "if w3 s<= -0x1234 goto +0x0"),
    ("de 29 01 00 00 00 00 00", "if w9 s<= w2 goto +0x1"),
    ("de a0 fb ff 00 00 00 00", "if w0 s<= w10 goto -0x5"),
    ("05 00 07 00 00 00 00 00", "goto +0x7"),
    ("05 00 ff ff 00 00 00 00", "goto -0x1"),
    ("05 00 00 00 00 00 00 00", "goto +0x0"),
    ("06 00 00 00 45 23 01 00", "gotol +0x12345"),
    ("06 00 00 00 fd ff ff ff", "gotol -0x3"),
    ("85 00 00 00 01 00 00 00", "call 0x1"),
    ("85 00 00 00 ff ff ff ff", "call -0x1"),
    ("85 10 00 00 ff ff ff ff", "call -0x1"),
    ("85 10 00 00 07 00 00 00", "call 0x7"),
    ("85 20 00 00 d2 04 00 00", "call 0x4d2"),
    ("95 00 00 00 00 00 00 00", "exit"),
    ("e5 00 03 00 00 00 00 00", "may_goto +0x3"),
    ("e5 00 fc ff 00 00 00 00", "may_goto -0x4"),
];

fn bytes(hex: &str) -> Vec<u8> {
    hex.split(' ').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

#[test]
fn jumps_calls_and_exit_print_as_llvm_objdump_does() {
    let mut bad = Vec::new();
    for &(hex, want) in TABLE {
        let slots = slots_from_bytes(&bytes(hex), Endian::Little).unwrap();
        let ops = decode_program(&slots, DecodeOptions::default()).unwrap_or_else(|e| panic!("{hex}: {e}"));
        let op = &ops[0].1;
        for dialect in [Dialect::Default, Dialect::McpuV4] {
            let got = disasm_insn_with(op, dialect, Fidelity::Llvm);
            if got != want {
                bad.push(format!("{hex} ({dialect:?}): got {got:?}, want {want:?}"));
            }
        }
    }
    assert!(bad.is_empty(), "{} of {} rows differ:\n{}", bad.len(), TABLE.len(), bad.join("\n"));
}

/// The table covers what it says: all 11 conditions in both classes and both source forms, and
/// each K-form row with a negative immediate in both classes.
#[test]
fn the_table_covers_every_condition_in_both_classes() {
    for class in [0x05u8, 0x06] {
        for op in [0x10u8, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0] {
            for src in [0x00u8, 0x08] {
                let code = class | op | src;
                let rows: Vec<_> = TABLE.iter().filter(|(hex, _)| bytes(hex)[0] == code).collect();
                assert!(!rows.is_empty(), "no row for opcode {code:#04x}");
                if src == 0 {
                    assert!(rows.iter().any(|(hex, _)| bytes(hex)[7] & 0x80 != 0), "{code:#04x}: no negative imm");
                    assert!(rows.iter().any(|(hex, _)| bytes(hex)[7] & 0x80 == 0), "{code:#04x}: no positive imm");
                }
            }
        }
    }
}
