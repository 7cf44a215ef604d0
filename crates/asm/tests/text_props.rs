//! Property tests of the text forms: decode never panics; every decodable slot survives
//! lossless disassembly and `assemble_llvm` unchanged (both dialects, user and kernel-internal
//! forms); llvm-fidelity text (lossy where llvm's is) always reads back, to an instruction
//! with the same text; neither assembler panics on arbitrary or mutated input, and whatever
//! they accept decodes.
//!
//! Case counts are bounded for CI; raise them with `PROPTEST_CASES=<n>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use bpfpatch_asm::{
    Dialect, DisasmOptions, Fidelity, assemble_conformance, assemble_llvm, disasm_insn_with, disasm_listing,
    disasm_program,
};
use bpfpatch_insn::{DecodeOptions, Insn, decode, decode_program};
use proptest::prelude::*;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

const DIALECTS: [Dialect; 2] = [Dialect::Default, Dialect::McpuV4];
const FIDELITIES: [Fidelity; 2] = [Fidelity::Llvm, Fidelity::Lossless];
const OPTS: [DecodeOptions; 2] = [DecodeOptions { internal: false }, DecodeOptions::INTERNAL];

/// For one instruction at the start of `slots`, if it decodes: the lossless text reads back to
/// the same slots, and the llvm text reads back to an instruction with the same llvm text.
fn round_trip(slots: &[Insn]) -> Result<(), TestCaseError> {
    for opts in OPTS {
        let Ok((op, n)) = decode(slots, opts) else { continue };
        for dialect in DIALECTS {
            let text = disasm_insn_with(&op, dialect, Fidelity::Lossless);
            let back = assemble_llvm(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(back.as_slice(), &slots[..n], "{:?} {:?}", text, op);
            let llvm = disasm_insn_with(&op, dialect, Fidelity::Llvm);
            let back = assemble_llvm(&llvm).map_err(|e| TestCaseError::fail(format!("{llvm:?}: {e}")))?;
            let again = decode(&back, DecodeOptions::INTERNAL).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(again.1, back.len(), "{:?}", llvm);
            prop_assert_eq!(disasm_insn_with(&again.0, dialect, Fidelity::Llvm), llvm.clone(), "{:?}", op);
            if llvm == text {
                prop_assert_eq!(back.as_slice(), &slots[..n], "{:?} {:?}", llvm, op);
            }
        }
    }
    Ok(())
}

/// The opcode bytes that name an instruction (plus a few that do not), to steer generation.
fn code_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0x04u8, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c, 0x74, 0x7c, 0x84,
            0x94, 0x9c, 0xa4, 0xac, 0xb4, 0xbc, 0xc4, 0xcc, 0xd4, 0xdc, 0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37,
            0x3f, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77, 0x7f, 0x87, 0x97, 0x9f, 0xa7, 0xaf, 0xb7, 0xbf, 0xc7,
            0xcf, 0xd7, 0x18, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62,
            0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0xc2, 0x05, 0x06, 0x15, 0x1d, 0x16, 0x1e, 0x25,
            0x2d, 0x26, 0x2e, 0x35, 0x3d, 0x36, 0x3e, 0x45, 0x4d, 0x46, 0x4e, 0x55, 0x5d, 0x56, 0x5e, 0x65, 0x6d,
            0x66, 0x6e, 0x75, 0x7d, 0x76, 0x7e, 0x85, 0x8d, 0x95, 0xa5, 0xad, 0xa6, 0xae, 0xb5, 0xbd, 0xb6, 0xbe,
            0xc5, 0xcd, 0xc6, 0xce, 0xd5, 0xdd, 0xd6, 0xde, 0xe5, 0xf5,
        ]),
        1 => any::<u8>(),
    ]
}

/// A slot whose fields are biased towards values that make it decode.
fn likely_slot() -> impl Strategy<Value = Insn> {
    let nib = prop_oneof![4 => 0u8..=11, 1 => 0u8..=15];
    let off =
        prop_oneof![3 => Just(0i16), 1 => Just(1), 1 => prop::sample::select(vec![8i16, 16, 32]), 2 => any::<i16>()];
    let imm = prop_oneof![
        2 => Just(0i32),
        2 => prop::sample::select(vec![1i32, 16, 32, 64, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1]),
        3 => any::<i32>(),
    ];
    (code_byte(), nib.clone(), nib, off, imm).prop_map(|(c, d, s, o, i)| Insn::new(c, d, s, o, i))
}

/// A first slot and an ld_imm64 tail (zero fields, random imm) or a random slot.
fn slot_pair() -> impl Strategy<Value = [Insn; 2]> {
    let tail = prop_oneof![3 => any::<i32>().prop_map(|i| Insn::new(0, 0, 0, 0, i)), 1 => any::<u64>().prop_map(Insn::from_word)];
    (likely_slot(), tail).prop_map(|(a, b)| [a, b])
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn random_words_never_panic_and_decodable_ones_round_trip(w in any::<u64>(), w2 in any::<u64>()) {
        let slots = [Insn::from_word(w), Insn::from_word(w2)];
        round_trip(&slots)?;
    }

    #[test]
    fn likely_valid_slots_round_trip(pair in slot_pair()) {
        round_trip(&pair)?;
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn listings_round_trip(slots in prop::collection::vec(likely_slot(), 0..40)) {
        // Keep the longest decodable prefix (internal forms allowed).
        let mut prog = Vec::new();
        let mut i = 0;
        while i < slots.len() {
            match decode(&slots[i..], DecodeOptions::INTERNAL) {
                Ok((op, _)) => { prog.extend_from_slice(&op.encode()); i += op.slots(); }
                Err(_) => i += 1,
            }
        }
        for dialect in DIALECTS {
            let opts = DisasmOptions { decode: DecodeOptions::INTERNAL, dialect, fidelity: Fidelity::Lossless };
            let listing = disasm_listing(&prog, opts).unwrap();
            prop_assert_eq!(assemble_llvm(&listing).unwrap(), prog.clone());
            let lines = disasm_program(&prog, opts).unwrap();
            prop_assert_eq!(lines.len(), decode_program(&prog, DecodeOptions::INTERNAL).unwrap().len());
            // The llvm listing reads back (lossy where llvm's text is) with the same slot count.
            let llvm_opts = DisasmOptions { fidelity: Fidelity::Llvm, ..opts };
            let back = assemble_llvm(&disasm_listing(&prog, llvm_opts).unwrap()).unwrap();
            prop_assert_eq!(back.len(), prog.len());
            prop_assert_eq!(disasm_listing(&back, llvm_opts).unwrap(), disasm_listing(&prog, llvm_opts).unwrap());
        }
    }
}

const LLVM_VOCAB: &[&str] = &[
    "r0",
    "r1",
    "w2",
    "r10",
    "r11",
    "w11",
    "r12",
    "=",
    "+=",
    "-=",
    "s>>=",
    "s/=",
    "<<=",
    "*",
    "(",
    ")",
    "u8",
    "u32",
    "u64",
    "s8",
    "s32",
    "0x10",
    "-0x1",
    "+0x3",
    "4294967295",
    "99999999999999999999",
    "-",
    "+",
    "ll",
    "goto",
    "gotol",
    "if",
    "s",
    "<",
    ">=",
    "==",
    "&",
    "lock",
    "|=",
    "atomic_fetch_add",
    "xchg_64",
    "cmpxchg32_32",
    "ld_pseudo",
    ",",
    "skb",
    "[",
    "]",
    "call",
    "local",
    "kfunc",
    "callx",
    "exit",
    "may_goto",
    "le16",
    "bswap64",
    "tail_call",
    "nospec",
    "12:",
    "#",
    ";",
    "<.text+0x8>",
    "\t",
    "\u{e9}",
];

const CONF_VOCAB: &[&str] = &[
    "mov",
    "mov32",
    "add",
    "lddw",
    "ldxw",
    "ldxsb",
    "stb",
    "stxdw",
    "lock",
    "fetch",
    "add32",
    "cmpxchg",
    "xchg32",
    "ja",
    "ja32",
    "jeq",
    "jne32",
    "call",
    "local",
    "helper",
    "runtime",
    "exit",
    "neg",
    "le16",
    "be64",
    "swap32",
    "bswap16",
    "movsx832",
    "movsx3264",
    "ldabsw",
    "ldindb",
    "%r0",
    "%r1",
    "%r10",
    "%r11",
    "%r50",
    "[%r1+4]",
    "[%r10-8]",
    "[%r1",
    "]",
    ",",
    "0x80000000",
    "2147483648",
    "-1",
    "+3",
    "-0x8000",
    "L1",
    "L1:",
    "exit:",
    "#",
    "\n",
    "  ",
    "\u{e9}",
];

fn vocab_line(vocab: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vocab), 0..10).prop_map(|ws| ws.join(" "))
}

/// Every decodable instruction text of a small field grid (both dialects and fidelities,
/// internal forms too).
fn valid_llvm_lines() -> Vec<String> {
    let mut out = Vec::new();
    for code in 0..=255u8 {
        for (d, s) in [(1u8, 2u8), (0, 11), (10, 0)] {
            for (o, i) in [(0i16, 0i32), (-8, 0x41), (16, 64), (1, -5), (8, 0xe1), (32, 0xf1)] {
                let slots = [Insn::new(code, d, s, o, i), Insn::new(0, 0, 0, 0, 7)];
                if let Ok((op, _)) = decode(&slots, DecodeOptions::INTERNAL) {
                    for dialect in DIALECTS {
                        for fidelity in FIDELITIES {
                            out.push(disasm_insn_with(&op, dialect, fidelity));
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A valid llvm line with random character-level edits.
fn mutated_llvm_line() -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..4);
    (prop::sample::select(valid_llvm_lines()), edits).prop_map(|(s, edits)| mutate(s, &edits))
}

fn mutate(s: String, edits: &[(prop::sample::Index, u8, char)]) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for (idx, kind, c) in edits {
        let at = if chars.is_empty() { 0 } else { idx.index(chars.len()) };
        match kind {
            0 => chars.insert(at, *c),
            1 if !chars.is_empty() => {
                chars.remove(at);
            }
            2 if !chars.is_empty() => chars[at] = *c,
            _ => {
                let tail: Vec<char> = chars[at..].to_vec();
                chars.extend(tail);
            }
        }
    }
    chars.into_iter().collect()
}

/// Whatever an assembler accepts must decode (internal forms allowed for the llvm syntax).
fn accepted_decodes(out: &[Insn], opts: DecodeOptions) -> Result<(), TestCaseError> {
    prop_assert!(decode_program(out, opts).is_ok(), "accepted output does not decode: {:?}", out);
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        if let Ok(v) = assemble_llvm(&s) { accepted_decodes(&v, DecodeOptions::INTERNAL)?; }
        if let Ok(v) = assemble_conformance(&s) { accepted_decodes(&v, DecodeOptions::default())?; }
    }

    #[test]
    fn token_soup_never_panics(a in vocab_line(LLVM_VOCAB), b in prop::collection::vec(vocab_line(CONF_VOCAB), 1..6)) {
        if let Ok(v) = assemble_llvm(&a) { accepted_decodes(&v, DecodeOptions::INTERNAL)?; }
        let conf = b.join("\n");
        if let Ok(v) = assemble_conformance(&conf) { accepted_decodes(&v, DecodeOptions::default())?; }
    }

    #[test]
    fn mutated_valid_lines_never_panic(s in mutated_llvm_line()) {
        if let Ok(v) = assemble_llvm(&s) { accepted_decodes(&v, DecodeOptions::INTERNAL)?; }
    }

    #[test]
    fn mutated_conformance_lines_never_panic(
        line in prop::sample::select(CONFORMANCE_LINES),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..4),
    ) {
        let s = mutate(line.to_owned(), &edits);
        if let Ok(v) = assemble_conformance(&s) { accepted_decodes(&v, DecodeOptions::default())?; }
    }
}

const CONFORMANCE_LINES: &[&str] = &[
    "mov %r0, 1",
    "mov32 %r1, 0x80000000",
    "lddw %r1, 0x1122334455667788",
    "ldxdw %r0, [%r1+2]",
    "ldxsh %r0, [%r10-2]",
    "stw [%r1+4], -1",
    "stxb [%r10-1], %r2",
    "lock fetch add32 [%r10-8], %r1",
    "lock cmpxchg [%r10-8], %r1 # comment",
    "jne %r0, 0x10, exit",
    "jsge32 %r1, %r2, +3",
    "ja32 L1\nL1:\nexit",
    "call local f\nexit\nf: exit",
    "call %r2",
    "movsx1664 %r8, %r7",
    "bswap64 %r0",
    "ldindh %r2, 12",
];

/// Every opcode byte against a grid of field values: decoding never panics, and every
/// decodable combination round-trips through both dialects as lossless text, and reads back
/// from llvm text to the same llvm text (deterministic complement of the random tests above).
#[test]
fn opcode_grid_round_trips() {
    let regs = [0u8, 1, 10, 11, 12];
    let offs = [0i16, 1, 8, 16, 32, -1, i16::MIN];
    let imms = [0i32, 1, -1, 16, 32, 64, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];
    let tail = Insn::new(0, 0, 0, 0, 0x1234);
    let (mut decodable, mut lossy) = (0usize, 0usize);
    for code in 0..=255u8 {
        for &d in &regs {
            for &s in &regs {
                for &o in &offs {
                    for &i in &imms {
                        let slots = [Insn::new(code, d, s, o, i), tail];
                        for opts in OPTS {
                            let Ok((op, n)) = decode(&slots, opts) else { continue };
                            decodable += 1;
                            for dialect in DIALECTS {
                                let text = disasm_insn_with(&op, dialect, Fidelity::Lossless);
                                let back = assemble_llvm(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                                assert_eq!(back.as_slice(), &slots[..n], "{text:?}");
                                let llvm = disasm_insn_with(&op, dialect, Fidelity::Llvm);
                                let back = assemble_llvm(&llvm).unwrap_or_else(|e| panic!("{llvm:?}: {e}"));
                                let (again, _) = decode(&back, DecodeOptions::INTERNAL).unwrap();
                                assert_eq!(disasm_insn_with(&again, dialect, Fidelity::Llvm), llvm, "{op:?}");
                                lossy += usize::from(back.as_slice() != &slots[..n]);
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("opcode grid: {decodable} decodable combinations round-trip ({lossy} llvm texts lossy)");
    assert!(decodable > 10_000, "grid reached only {decodable} decodable combinations");
    assert!(lossy > 0, "the grid reached none of llvm's lossy forms");
}
