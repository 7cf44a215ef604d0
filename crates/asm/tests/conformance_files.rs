//! The conformance vectors in /work/shared/conformance: every positive file parses and assembles
//! (asm == raw where both exist), and every negative file is rejected at the layer listed here.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers outside #[test] fns

use bpfpatch_asm::{AsmErrorKind, DataFile, DataFileError, assemble_conformance, parse_data_file};
use bpfpatch_insn::{DecodeError, DecodeOptions, decode_program};
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance");

/// The `.data` files of `sub`, or `None` after a counted skip (a failure under
/// `BPFPATCH_REQUIRE_INPUTS=1`) when the shared folder is absent.
#[track_caller]
fn data_files(sub: &str) -> Option<Vec<PathBuf>> {
    let dir = Path::new(ROOT).join(sub);
    if !bpfpatch_testkit::require_input("../shared/conformance", &dir) {
        return None;
    }
    let rd = std::fs::read_dir(&dir).unwrap();
    let mut v: Vec<PathBuf> =
        rd.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "data")).collect();
    v.sort();
    Some(v)
}

fn name(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn load(p: &Path) -> DataFile {
    let text = std::fs::read_to_string(p).unwrap();
    parse_data_file(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_positive_vector_parses_assembles_and_decodes() {
    let Some(files) = data_files("tests") else { return };
    assert!(files.len() >= 200, "expected the full vector set, found {}", files.len());
    let (mut with_asm, mut with_both) = (0, 0);
    for p in &files {
        let df = load(p);
        assert!(df.error.is_none(), "{}: positive vector has -- error", p.display());
        assert!(df.result.is_some(), "{}: no -- result", p.display());
        let prog = df.program().unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!prog.is_empty(), "{}: empty program", p.display());
        decode_program(&prog, DecodeOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if let Some(asm) = &df.asm {
            with_asm += 1;
            assert_eq!(assemble_conformance(&asm.value).unwrap(), prog);
        }
        if let Some(raw) = &df.raw {
            decode_program(&raw.value, DecodeOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if df.asm.is_some() {
                with_both += 1;
                assert_eq!(prog, raw.value, "{}: -- asm and -- raw differ", p.display());
            }
        }
    }
    assert_eq!(with_asm, files.len(), "every positive vector has assembly");
    assert!(with_both >= 1, "at least one vector (lddw.data) has both -- asm and -- raw");
}

/// Where a negative vector is expected to be caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// `-- asm` does not assemble.
    Assembler,
    /// `-- raw` parses but `decode_program` rejects it.
    Decoder,
    /// No program section: `DataFile::program` reports `NoProgram`.
    NoProgram,
    /// Assembles and decodes: the runner must catch it (wrong expected result, or an `-- error`
    /// expectation that a correct VM does not meet, i.e. a self-test of the harness).
    Runtime,
}

fn expected_layer(file: &str) -> Option<Layer> {
    Some(match file {
        "invalid_imm32_dec_range"
        | "invalid_label"
        | "invalid_lock2"
        | "invalid_mnemonic"
        | "invalid_offset"
        | "invalid_offset_range"
        | "invalid_operand_count"
        | "invalid_register" => Layer::Assembler,
        "empty_instructions" => Layer::NoProgram,
        "error" | "incorrect_return_value_high_bits" => Layer::Runtime,
        f if f.starts_with("unused-") => Layer::Decoder,
        _ => return None,
    })
}

/// The assembler error each assembler-level negative must produce.
fn expected_asm_error(file: &str, kind: &AsmErrorKind) -> bool {
    match file {
        "invalid_imm32_dec_range" | "invalid_offset_range" => matches!(kind, AsmErrorKind::OutOfRange { .. }),
        "invalid_label" => matches!(kind, AsmErrorKind::UndefinedLabel(l) if l == "NOT_A_LABEL"),
        "invalid_lock2" => matches!(kind, AsmErrorKind::OperandCount { mnemonic, found: 0, .. } if mnemonic == "lock"),
        "invalid_mnemonic" => matches!(kind, AsmErrorKind::InvalidMnemonic(m) if m == "ldxq"),
        "invalid_offset" => matches!(kind, AsmErrorKind::BadMemoryOperand { .. }),
        "invalid_operand_count" => matches!(kind, AsmErrorKind::OperandCount { expected: 2, found: 1, .. }),
        "invalid_register" => matches!(kind, AsmErrorKind::InvalidRegister(r) if r == "%r50"),
        _ => false,
    }
}

#[test]
fn every_negative_vector_is_rejected_at_its_layer() {
    let Some(files) = data_files("negative") else { return };
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for p in &files {
        let file = name(p);
        let text = std::fs::read_to_string(p).unwrap();
        let df = parse_data_file(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let layer = expected_layer(&file);
        let got = match df.program() {
            Err(DataFileError::Asm(e)) => {
                if layer == Some(Layer::Assembler) {
                    assert!(expected_asm_error(&file, &e.kind), "{file}: unexpected assembler error {e}");
                    // The error line is the file line of the offending instruction.
                    let line = text.lines().nth(e.line - 1).unwrap();
                    assert!(!line.trim().is_empty() && !line.starts_with('#'), "{file}: line {} is {line:?}", e.line);
                    if let Some(msg) = df.error.as_deref().filter(|m| !m.is_empty()) {
                        assert!(e.to_string().contains(msg), "{file}: {e} does not contain {msg:?}");
                    }
                }
                Layer::Assembler
            }
            Err(DataFileError::NoProgram) => Layer::NoProgram,
            Err(e) => panic!("{file}: {e}"),
            Ok(prog) => match decode_program(&prog, DecodeOptions::default()) {
                Err(DecodeError::Invalid { slot, .. }) => {
                    // Every decoder-level vector breaks its first slot; the trailing exit is valid.
                    assert_eq!(slot.0, 0, "{file}");
                    assert!(df.raw.is_some() && df.asm.is_none(), "{file}: decoder negatives are raw");
                    Layer::Decoder
                }
                Err(e) => panic!("{file}: {e}"),
                Ok(_) => Layer::Runtime,
            },
        };
        match layer {
            Some(l) => assert_eq!(got, l, "{file}"),
            // A vector this list does not know (the public set has more): it must at least be
            // rejected before run time, or be classified here.
            None => {
                assert_ne!(got, Layer::Runtime, "{file}: unclassified negative vector passes assembly and decoding")
            }
        }
        *seen.entry(format!("{got:?}")).or_default() += 1;
    }
    eprintln!("negative vectors by layer: {seen:?}");
    for (file, layer) in [
        ("invalid_register", Layer::Assembler),
        ("empty_instructions", Layer::NoProgram),
        ("error", Layer::Runtime),
        ("unused-stxw-imm", Layer::Decoder),
    ] {
        assert!(files.iter().any(|p| name(p) == file), "{file}.data ({layer:?}) missing from the set");
    }
}

#[test]
fn runtime_negatives_carry_what_the_runner_needs() {
    let Some(_) = data_files("negative") else { return };
    let df = load(&Path::new(ROOT).join("negative/error.data"));
    assert_eq!(df.error.as_deref(), Some("Invalid"));
    let df = load(&Path::new(ROOT).join("negative/incorrect_return_value_high_bits.data"));
    assert_eq!(df.result, Some(0x8977_6655_4433_2211));
    assert_eq!(df.mem, vec![0xaa, 0xbb, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xcc, 0xdd]);
}
