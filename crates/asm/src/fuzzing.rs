//! Fuzzing oracle of the text forms, shared by `fuzz/` (libFuzzer) and the smoke test.
//!
//! [`text`] takes arbitrary bytes and **panics when a property is violated**. Not part of the
//! stable API: compiled only with the `fuzzing` feature.
// An oracle's job is to panic on a broken property.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use crate::{
    Dialect, DisasmOptions, Fidelity, assemble_conformance, assemble_llvm, disasm_insn_with, disasm_listing,
    parse_data_file, parse_llvm_line,
};
use bpfpatch_insn::{DecodeOptions, Endian, Insn, decode_program, slots_from_bytes};

const DIALECTS: [Dialect; 2] = [Dialect::Default, Dialect::McpuV4];

/// Both assemblers, the `.data` reader and the disassembler on `data`:
/// - as text (lossy UTF-8): neither assembler nor [`parse_data_file`] panics; what
///   [`assemble_llvm`] accepts decodes (kernel-internal forms allowed) and what
///   [`assemble_conformance`] accepts decodes as user input; either way the accepted program,
///   printed losslessly in both dialects, reads back to the same slots, and its llvm-fidelity
///   listing reads back to a program with the same listing (parsed text re-prints equal);
/// - as an instruction image (both byte orders, whole slots): when it decodes, its lossless
///   listing reads back to the same slots and its llvm listing re-prints equal.
///
/// # Panics
/// When a property is violated.
pub fn text(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    for line in s.lines() {
        let _ = parse_llvm_line(line);
    }
    if let Ok(slots) = assemble_llvm(&s) {
        decode_program(&slots, DecodeOptions::INTERNAL)
            .unwrap_or_else(|e| panic!("assemble_llvm accepted {s:?} but its output does not decode: {e}"));
        reprints_equal(&slots, DecodeOptions::INTERNAL, &s);
    }
    if let Ok(slots) = assemble_conformance(&s) {
        decode_program(&slots, DecodeOptions::default())
            .unwrap_or_else(|e| panic!("assemble_conformance accepted {s:?} but its output does not decode: {e}"));
        reprints_equal(&slots, DecodeOptions::default(), &s);
    }
    if let Ok(df) = parse_data_file(&s)
        && let Ok(slots) = df.program()
        && decode_program(&slots, DecodeOptions::default()).is_ok()
    {
        reprints_equal(&slots, DecodeOptions::default(), &s);
    }
    let whole = &data[..data.len() / 8 * 8];
    for endian in [Endian::Little, Endian::Big] {
        let slots = slots_from_bytes(whole, endian).expect("whole slots");
        for opts in [DecodeOptions::default(), DecodeOptions::INTERNAL] {
            if decode_program(&slots, opts).is_ok() {
                reprints_equal(&slots, opts, "<image>");
            }
        }
    }
}

/// `slots` decode under `decode`: lossless listings read back to them; llvm listings read
/// back to slots whose llvm listing is the same text.
fn reprints_equal(slots: &[Insn], decode: DecodeOptions, src: &str) {
    for dialect in DIALECTS {
        let lossless = DisasmOptions { decode, dialect, fidelity: Fidelity::Lossless };
        let text = disasm_listing(slots, lossless).unwrap_or_else(|e| panic!("{src:?}: listing: {e}"));
        let back = assemble_llvm(&text).unwrap_or_else(|e| panic!("{src:?}: lossless listing {text:?} rejected: {e}"));
        assert_eq!(back, slots, "{src:?}: lossless listing {text:?} reads back differently ({dialect:?})");
        let llvm = DisasmOptions { decode: DecodeOptions::INTERNAL, dialect, fidelity: Fidelity::Llvm };
        let text = disasm_listing(slots, llvm).unwrap_or_else(|e| panic!("{src:?}: listing: {e}"));
        let back = assemble_llvm(&text).unwrap_or_else(|e| panic!("{src:?}: llvm listing {text:?} rejected: {e}"));
        let again = disasm_listing(&back, llvm).unwrap_or_else(|e| panic!("{src:?}: re-read llvm listing: {e}"));
        assert_eq!(again, text, "{src:?}: llvm listing does not re-print equal ({dialect:?})");
    }
    // Single-instruction printing agrees with the listing printer.
    if let Ok(ops) = decode_program(slots, decode) {
        for (_, op) in ops.iter().take(4) {
            let one = disasm_insn_with(op, Dialect::Default, Fidelity::Lossless);
            assert_eq!(assemble_llvm(&one).ok().as_deref(), Some(op.encode().as_slice()), "{one:?}");
        }
    }
}
