//! Robustness of the binary: every subcommand that reads a program, on hostile inputs (random
//! bytes, truncated and mutated objects, malformed `.data` text, raw images with garbage), exits
//! 0 or 1 — never 101 (a panic) — and a failure is exactly one stderr line `error: ...`
//! (`conformance` reports a failing vector in its `N passed, M failed` summary instead).
//! `BPFPATCH_CLI_FUZZ_CASES` raises the number of random inputs.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn cases() -> usize {
    std::env::var("BPFPATCH_CLI_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(30)
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfpatch-cli-robust-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

use bpfpatch_testkit::Rng;

fn objects() -> Vec<Vec<u8>> {
    let d = concat!(env!("CARGO_MANIFEST_DIR"), "/../object/tests/data");
    ["prog-el.o", "prog-eb.o", "calls-el.o", "calls-eb.o"]
        .iter()
        .map(|n| std::fs::read(format!("{d}/{n}")).unwrap())
        .collect()
}

/// The hostile inputs: (name, bytes).
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng::seeded(0x0bad_5eed_1234_5678);
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("elf-magic-only".into(), b"\x7fELF".to_vec()),
        ("seven-bytes".into(), vec![0x95, 0, 0, 0, 0, 0, 0]),
        ("lddw-missing-tail".into(), vec![0x18, 0, 0, 0, 1, 0, 0, 0]),
        ("jump-outside".into(), [[0x05u8, 0, 0x10, 0, 0, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]].concat()),
        ("data-bad-asm".into(), b"-- asm\nmov %r0, \nexit\n".to_vec()),
        ("data-bad-raw".into(), b"-- raw\n0xzz\n-- result\n0x0\n".to_vec()),
        ("data-bad-mem".into(), b"-- asm\nexit\n-- mem\n00 0g\n".to_vec()),
        ("data-unknown-label".into(), b"-- asm\nja nowhere\nexit\n".to_vec()),
        ("not-utf8".into(), vec![0xff, 0xfe, 0x00, 0x80]),
    ];
    let objs = objects();
    for (k, o) in objs.iter().enumerate() {
        out.push((format!("truncated-{k}"), o[..o.len() / 2].to_vec()));
        out.push((format!("header-only-{k}"), o[..64.min(o.len())].to_vec()));
    }
    for i in 0..cases() {
        let len = rng.below(200);
        out.push((format!("random-{i}"), (0..len).map(|_| rng.next() as u8).collect()));
        let mut m = objs[rng.below(objs.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(m.len());
            m[at] = rng.next() as u8;
        }
        out.push((format!("mutated-{i}"), m));
    }
    out
}

/// The commands run on `file` (the output of `rewrite` goes to `out`).
fn commands(file: &Path, out: &Path) -> Vec<Vec<String>> {
    let f = file.display().to_string();
    let o = out.display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    vec![
        s(&["disasm", &f]),
        s(&["disasm", "--raw", &f]),
        s(&["disasm", "--raw", "--big-endian", "--lossless", "--internal", &f]),
        s(&["check", &f]),
        s(&["check", "--raw", &f]),
        s(&["rewrite", &f, "-o", &o, "--passes", "all"]),
        s(&["rewrite", "--raw", &f, "-o", &o, "--passes", "all", "--blind", "--xlated"]),
        s(&["run", &f]),
        s(&["conformance", &f]),
    ]
}

#[test]
fn hostile_inputs_exit_0_or_1_with_one_error_line() {
    let d = dir();
    let out = d.join("out");
    let mut failures = Vec::new();
    let mut runs = 0;
    for (name, bytes) in inputs() {
        let file = d.join(&name);
        std::fs::write(&file, &bytes).unwrap();
        for args in commands(&file, &out) {
            runs += 1;
            let o = Command::cargo_bin("bpfpatch").unwrap().args(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            let ok = match o.status.code() {
                Some(0) => !stderr.contains("panicked"),
                // `check` reports findings on stdout and exits 1 with its one error line;
                // `conformance` reports a failing vector in its summary (`N passed, M failed`).
                Some(1) if args[0] == "conformance" => {
                    String::from_utf8_lossy(&o.stdout).contains(" failed") && lines.len() <= 1
                }
                Some(1) => lines.len() == 1 && lines[0].starts_with("error: "),
                _ => false,
            };
            if !ok {
                failures.push(format!("{name}: bpfpatch {}: exit {:?}\n{stderr}", args.join(" "), o.status.code()));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {runs} runs misbehaved:\n{}", failures.len(), failures.join("\n"));
    eprintln!("{runs} runs on hostile inputs: all exit 0/1 with one error line");
}
