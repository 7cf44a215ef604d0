//! Acceptance: the runner over the shared conformance vectors (tests/ and negative/) reports
//! no failure; and the runner's judging rules on small files made here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bpfpatch_insn::Insn;
use bpfpatch_vm::conformance::{check_file, collect_files, is_negative, judge};
use bpfpatch_vm::{
    ConformanceOptions, Expectation, FileError, Status, conformance_report, run_conformance, run_data_file,
};
use std::path::{Path, PathBuf};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance");

#[track_caller]
fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(SHARED);
    // A counted skip when absent (a failure under BPFPATCH_REQUIRE_INPUTS=1).
    bpfpatch_testkit::require_input("../shared/conformance", &p.join("tests")).then_some(p)
}

#[test]
fn shared_vectors_all_pass() {
    let Some(root) = shared() else { return };
    let paths = [root.join("tests"), root.join("negative")];
    let mut failures = Vec::new();
    let mut negatives = 0;
    let summary = run_conformance(&paths, &ConformanceOptions::default(), |o| {
        negatives += usize::from(o.negative);
        if !o.passed() {
            failures.push(o.to_string());
        }
    });
    assert!(failures.is_empty(), "{}\n{summary}", failures.join("\n"));
    assert!(summary.passed > 250, "{summary}");
    assert!(negatives > 30, "negative vectors are recognised by their folder");
    eprintln!("{summary}");
}

#[test]
fn shared_vectors_pass_through_an_identity_transform_and_fail_through_a_breaking_one() {
    let Some(root) = shared() else { return };
    let paths = [root.join("tests")];
    let identity = |s: &[Insn]| -> Result<Vec<Insn>, String> { Ok(s.to_vec()) };
    let opts = ConformanceOptions::default().with_transform(&identity);
    let s = run_conformance(&paths, &opts, |_| {});
    assert_eq!(s.failed, 0, "{s}");
    // A "rewrite" that adds 1 to r0 before every exit must be caught on every vector that exits
    // normally; the exact count is not the point, that failures are detected is.
    let breaking = |s: &[Insn]| -> Result<Vec<Insn>, String> {
        let mut out = Vec::new();
        for i in s {
            if i.code == 0x95 {
                out.push(Insn::new(0x07, 0, 0, 0, 1));
            }
            out.push(*i);
        }
        Ok(out)
    };
    let opts = ConformanceOptions::default().with_transform(&breaking);
    let s = run_conformance(&paths, &opts, |_| {});
    assert!(s.failed > 200, "{s}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfpatch-vm-conf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn positive_files_must_return_their_result_or_be_rejected() {
    let d = tmp("pos").join("tests");
    let ok = write(&d, "ok.data", "-- asm\nmov %r0, 7\nexit\n-- result\n0x7\n");
    let wrong = write(&d, "wrong.data", "-- asm\nmov %r0, 8\nexit\n-- result\n0x7\n");
    let err_ok = write(&d, "err.data", "-- asm\nor %r0, %r10\nexit\n-- error\nInvalid\n");
    let err_bad = write(&d, "err-runs.data", "-- asm\nmov %r0, 1\nexit\n-- error\n");
    let fault = write(&d, "fault.data", "-- asm\nldxdw %r0, [%r1+8]\nexit\n-- mem\n00 01\n-- result\n0x0\n");
    let none = write(&d, "none.data", "-- asm\nmov %r0, 1\nexit\n");
    let mem =
        write(&d, "mem.data", "-- asm\nldxh %r0, [%r1+1]\nadd %r0, %r2\nexit\n-- mem\n11 22 33\n-- result\n0x3325\n");
    let opts = ConformanceOptions::default();
    let st = |p: &Path| check_file(p, &opts);
    assert!(st(&ok).passed());
    assert_eq!(st(&wrong).status, Status::Failed("expected r0 = 0x7, got 0x8".into()));
    assert!(st(&err_ok).passed());
    let e = st(&err_ok);
    assert!(matches!(&e.observed, Err(FileError::Load(l)) if l.to_string().contains("Invalid")), "{e:?}");
    assert!(!st(&err_bad).passed());
    let f = st(&fault);
    assert!(!f.passed() && matches!(f.observed, Err(FileError::Run(_))), "{f:?}");
    assert!(!st(&none).passed());
    assert!(st(&mem).passed(), "{}", st(&mem));
    assert_eq!(run_data_file(&mem, &opts), Ok(0x3325));
    assert!(matches!(run_data_file(&fault, &opts), Err(FileError::Run(_))));
    assert!(matches!(run_data_file(&d.join("missing.data"), &opts), Err(FileError::Io(_))));
}

#[test]
fn negative_files_must_not_run_correctly() {
    let d = tmp("neg").join("negative");
    let parse = write(&d, "a.data", "-- asm\nnot_a_mnemonic %r0\nexit\n-- result\n0x0\n");
    let load = write(&d, "b.data", "-- raw\n07 10 00 00 01 00 00 00\n95 00 00 00 00 00 00 00\n-- error\n");
    let differs = write(&d, "c.data", "-- asm\nmov %r0, 2\nexit\n-- result\n0x1\n");
    let same = write(&d, "d.data", "-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n");
    let empty = write(&d, "e.data", "-- result\n0x0\n");
    let runs = write(&d, "f.data", "-- asm\nmov %r0, 1\nexit\n-- error\n");
    let opts = ConformanceOptions::default();
    for p in [&parse, &load, &differs, &empty] {
        assert!(is_negative(p));
        let o = check_file(p, &opts);
        assert!(o.passed(), "{o}");
    }
    for p in [&same, &runs] {
        let o = check_file(p, &opts);
        assert!(!o.passed(), "{o}");
    }
    // Directory expansion: only .data files, sorted; the report ends with the summary line.
    write(&d, "z.sh", "#!/bin/sh\n");
    let files = collect_files(std::slice::from_ref(&d));
    assert_eq!(files, vec![parse.clone(), load.clone(), differs.clone(), same.clone(), empty.clone(), runs.clone()]);
    let mut out = Vec::new();
    let s = conformance_report(&[d.clone(), d.join("missing.data")], &opts, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"4 passed, 3 failed"), "{text}");
    assert_eq!(lines.len(), 4, "one line per failure, then the summary: {text}");
    assert!(lines[0].starts_with("FAIL ") && lines[0].contains("d.data"), "{text}");
    assert!(!s.ok());
}

#[test]
fn transform_errors_and_invalid_rewrites_fail_even_negative_files() {
    let d = tmp("tr").join("negative");
    let differs = write(&d, "c.data", "-- asm\nmov %r0, 2\nexit\n-- result\n0x1\n");
    let failing = |_: &[Insn]| -> Result<Vec<Insn>, String> { Err("pass exploded".into()) };
    let o = check_file(&differs, &ConformanceOptions::default().with_transform(&failing));
    assert_eq!(o.status, Status::Failed("transform failed: pass exploded".into()));
    let invalid = |_: &[Insn]| -> Result<Vec<Insn>, String> { Ok(vec![Insn::new(0xb7, 0, 0, 0, 1)]) };
    let o = check_file(&differs, &ConformanceOptions::default().with_transform(&invalid));
    assert!(matches!(o.observed, Err(FileError::TransformedLoad(_))), "{o:?}");
    assert!(!o.passed());
    // Kernel-internal forms are accepted in the transformed program.
    let uses_ax = |_: &[Insn]| -> Result<Vec<Insn>, String> {
        Ok(vec![Insn::new(0xb7, 11, 0, 0, 2), Insn::new(0xbf, 0, 11, 0, 0), Insn::new(0x95, 0, 0, 0, 0)])
    };
    let o = check_file(&differs, &ConformanceOptions::default().with_transform(&uses_ax));
    assert_eq!(o.observed, Ok(2));
}

#[test]
fn judge_table() {
    let rej = Err(FileError::Load(bpfpatch_vm::LoadError::Empty));
    let io = Err(FileError::Io("x".into()));
    assert_eq!(judge(false, Expectation::Rejected, &rej), Status::Passed);
    assert!(matches!(judge(false, Expectation::Returns(0), &rej), Status::Failed(_)));
    assert_eq!(judge(true, Expectation::Returns(0), &rej), Status::Passed);
    assert!(matches!(judge(true, Expectation::Rejected, &io), Status::Failed(_)));
    assert_eq!(judge(true, Expectation::Returns(1), &Ok(2)), Status::Passed);
    assert!(matches!(judge(true, Expectation::Unspecified, &Ok(2)), Status::Failed(_)));
}
