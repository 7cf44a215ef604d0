//! The command line as a BPF developer expects it: a closed pipe ends a command quietly, an
//! output file is replaced whole or not at all, errors speak plainly, `--passes` lists are
//! checked as usage, and every subcommand keeps the exit codes 0 (success), 1 (bad input or a
//! failed check) and 2 (usage), never 101.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The status of a command whose standard output was closed under it (llvm-objdump-19's
/// `EX_IOERR`).
const BROKEN_PIPE_EXIT: i32 = 74;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("bpfpatch")
}

fn bpfpatch() -> Command {
    Command::cargo_bin("bpfpatch").unwrap()
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../object/tests/data")).join(name)
}

/// A fresh directory of its own for one test.
fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfpatch-cli-conv-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn slot(code: u8, regs: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut s = [code, regs, 0, 0, 0, 0, 0, 0];
    s[2..4].copy_from_slice(&off.to_le_bytes());
    s[4..8].copy_from_slice(&imm.to_le_bytes());
    s
}

/// A little-endian image: `goto +n` over `n` constant moves, then `r0 = 0; exit`. Blinding
/// triples the moves, so the jump no longer fits its 16-bit field without relaxation.
fn far_jump_image(dir: &Path, n: i16) -> PathBuf {
    let mut img = slot(0x05, 0, n, 0).to_vec();
    for _ in 0..n {
        img.extend(slot(0xb7, 0, 0, 0x12345));
    }
    img.extend(slot(0xb7, 0, 0, 0));
    img.extend(slot(0x95, 0, 0, 0));
    let p = dir.join("far.bin");
    std::fs::write(&p, img).unwrap();
    p
}

/// Runs and expects a usage error: exit 2, clap's `error: ...` first; returns stderr.
fn usage(cmd: &mut Command) -> String {
    let out = cmd.assert().code(2).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    err
}

// ----- item 2: a closed pipe -----

/// `bpfpatch disasm BIG | head -1`: the reader takes one line and goes away; the command ends
/// quietly with llvm-objdump-19's status.
#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let d = temp_dir("head");
    let img = far_jump_image(&d, 20000); // ~300 KB of listing: far more than a pipe holds
    for json in [false, true] {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["disasm", "--raw"]).arg(&img);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(!line.is_empty());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err, "", "quiet");
        assert_eq!(out.status.code(), Some(BROKEN_PIPE_EXIT), "json {json}: {err}");
    }
}

/// Every command that prints to stdout, with stdout a pipe nobody reads any more.
#[test]
fn every_command_ends_quietly_on_a_closed_pipe() {
    let d = temp_dir("pipe");
    let obj = data("calls-el.o");
    let vec = d.join("v.data");
    std::fs::write(&vec, "-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n").unwrap();
    let o = d.join("out.o").display().to_string();
    let (obj, vec) = (obj.display().to_string(), vec.display().to_string());
    let empty = temp_dir("pipe-corpus").display().to_string();
    let runs: Vec<Vec<&str>> = vec![
        vec!["disasm", &obj],
        vec!["disasm", "--json", &obj],
        vec!["disasm", &vec],
        vec!["disasm", "--json", &vec],
        vec!["rewrite", &obj, "-o", &o, "--passes", "all"],
        vec!["rewrite", &obj, "-o", &o, "--passes", "all", "--json"],
        vec!["run", &vec],
        vec!["run", "--json", &vec],
        vec!["check", &obj],
        vec!["check", "--json", &obj],
        vec!["conformance", &vec],
        vec!["conformance", "--json", &vec],
        vec!["bench", "--sizes", "100", "--runs", "1", "--cold-runs", "0", "--impls", "bpfpatch", "--corpus", &empty],
        vec!["bench", "--cold-child", "bpfpatch", "seed", "100"],
        vec!["--help"],
        vec!["--version"],
    ];
    for args in runs {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(bin()).args(&args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // clap prints help and version itself and ignores the failed write (status 0).
        let expected = if args[0].starts_with("--") { 0 } else { BROKEN_PIPE_EXIT };
        assert_eq!(out.status.code(), Some(expected), "{args:?}: {err}");
        if expected != 0 {
            assert_eq!(err, "", "{args:?}: quiet");
        }
    }
}
// ----- item 3: output files replaced whole or not at all -----

/// `rewrite a.o -o a.o` under a file size limit: the write fails (EFBIG), the original is
/// byte-identical afterwards, and no temporary file is left beside it.
#[test]
fn a_failed_in_place_rewrite_leaves_the_target_untouched() {
    let d = temp_dir("inplace");
    let target = d.join("a.o");
    let original = std::fs::read(data("calls-el.o")).unwrap();
    assert!(original.len() > 4096);
    std::fs::write(&target, &original).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -f 1; trap "" XFSZ; exec "$0" rewrite "$1" -o "$1" --passes all --blind --xlated"#)
        .arg(bin())
        .arg(&target)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: ") && err.lines().count() == 1, "{err}");
    assert!(err.contains(&target.display().to_string()), "names the file: {err}");
    assert!(std::fs::read(&target).unwrap() == original, "the target was changed");
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("a.o")], "files left beside the target");
    // Without the limit the same command replaces it, keeping its permissions.
    bpfpatch()
        .arg("rewrite")
        .arg(&target)
        .arg("-o")
        .arg(&target)
        .args(["--passes", "all", "--blind", "--xlated"])
        .assert()
        .success();
    assert!(std::fs::read(&target).unwrap() != original);
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

/// `bench --json F` and `--plot F` with F unwritable: refused before the run, naming F.
#[test]
fn bench_checks_its_output_files_before_running() {
    let d = temp_dir("bench");
    let bad = d.join("no-such-dir").join("b.svg");
    for flag in ["--plot", "--json"] {
        let out = bpfpatch()
            .args(["bench", "--sizes", "100", "--runs", "1", "--cold-runs", "0", "--impls", "bpfpatch", "--corpus"])
            .arg(&d)
            .arg(flag)
            .arg(&bad)
            .assert()
            .code(1)
            .get_output()
            .clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: ") && err.lines().count() == 1, "{err}");
        assert!(err.contains(&bad.display().to_string()), "{flag}: names the file: {err}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "", "{flag}: refused before the run");
    }
}

/// Runs and expects exit 1 with exactly one `error: ...` line on stderr; returns it.
fn fails(cmd: &mut Command) -> String {
    let out = cmd.assert().code(1).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

// ----- item 4: errors in plain words -----

#[test]
fn no_relax_errors_name_the_slots_in_plain_words() {
    let d = temp_dir("norelax");
    let img = far_jump_image(&d, 20000);
    let out = d.join("out.bin");
    let e = fails(
        bpfpatch()
            .args(["rewrite", "--raw", "--no-relax", "--passes", "none", "--blind", "--xlated"])
            .arg(&img)
            .arg("-o")
            .arg(&out),
    );
    assert!(!e.contains("Some(") && !e.contains("Slot("), "{e}");
    assert!(e.contains("slot 0 of the rewritten program") && e.contains("slot 0 of the original"), "{e}");
    assert!(e.contains("60000"), "the offset it needs: {e}");
    assert!(!out.exists());
}

#[test]
fn conformance_on_a_directory_without_vectors_is_an_error() {
    let d = temp_dir("noconf");
    std::fs::write(d.join("README"), "not a vector").unwrap();
    let e = fails(bpfpatch().arg("conformance").arg(&d));
    assert!(e.contains("no") && e.contains("vectors") && e.contains(&d.display().to_string()), "{e}");
}
// ----- item 5: disasm --raw carries on past an undecodable slot -----

#[test]
fn disasm_prints_unknown_for_an_undecodable_slot_and_carries_on() {
    let d = temp_dir("unknown");
    let img: Vec<u8> = [slot(0xb7, 0, 0, 1), slot(0xff, 0, 0, 0), slot(0x95, 0, 0, 0)].concat();
    let f = d.join("bad.bin");
    std::fs::write(&f, img).unwrap();
    bpfpatch().args(["disasm", "--raw"]).arg(&f).assert().success().stdout("0: r0 = 0x1\n1: <unknown>\n2: exit\n");
    let out = bpfpatch().args(["disasm", "--raw", "--json"]).arg(&f).assert().success().get_output().clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[1]["text"], "<unknown>");
    assert_eq!(v[2]["slot"], 2);
    // An ld_imm64 cut short at the end is one unknown slot too.
    std::fs::write(&f, [slot(0x95, 0, 0, 0), slot(0x18, 0, 0, 1)].concat()).unwrap();
    bpfpatch().args(["disasm", "--raw"]).arg(&f).assert().success().stdout("0: exit\n1: <unknown>\n");
}
// ----- item 9: passes and exit codes -----

#[test]
fn pass_lists_are_checked_as_usage() {
    let d = temp_dir("passes");
    let vec = d.join("v.data");
    std::fs::write(&vec, "-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n").unwrap();
    let out = d.join("out.o");
    for (list, says) in [
        ("dce,dce", "dce"),
        ("none,dce", "none"),
        ("dce,none", "none"),
        ("all,dce", "dce"),
        ("bogus", "unknown pass"),
        ("dce,,zext", "empty"),
    ] {
        let e = usage(bpfpatch().args(["run", "--passes", list]).arg(&vec));
        assert!(e.contains(says) && e.contains(list), "{list}: {e}");
        usage(bpfpatch().args(["conformance", "--passes", list]).arg(&vec));
        usage(bpfpatch().arg("rewrite").arg(data("prog-el.o")).arg("-o").arg(&out).args(["--passes", list]));
        assert!(!out.exists());
    }
    for list in ["none", "all", "all,blind", "dce,fixups", "zext , dce"] {
        bpfpatch().args(["run", "--passes", list]).arg(&vec).assert().success().stdout("0x1\n");
    }
}

#[test]
fn help_says_what_each_pass_does_on_one_line() {
    for cmd in ["run", "rewrite", "conformance"] {
        let out = bpfpatch().args([cmd, "--help"]).assert().success().get_output().clone();
        let help = String::from_utf8(out.stdout).unwrap();
        for name in ["dce", "ctx", "lower-v4", "fixups", "zext", "rnd-hi32", "blind", "all", "none"] {
            let line = help.lines().find(|l| l.split_whitespace().next() == Some(name));
            let words = line.map_or(0, |l| l.split_whitespace().count());
            assert!(words >= 4, "{cmd} --help: no line saying what {name} does:\n{help}");
        }
    }
}

/// Every subcommand: a bad flag (or flag value, or combination) is a usage error, exit 2; a
/// missing input is exit 1 with one `error:` line.
#[test]
fn exit_codes_are_the_same_in_every_subcommand() {
    let d = temp_dir("codes");
    let vec = d.join("v.data");
    std::fs::write(&vec, "-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n").unwrap();
    let v = vec.display().to_string();
    let o = d.join("out.o").display().to_string();
    let obj = data("prog-el.o").display().to_string();
    let nope = d.join("missing").display().to_string();
    let quick = ["--sizes", "100", "--runs", "1", "--cold-runs", "0", "--impls", "bpfpatch"];
    let bad: Vec<Vec<&str>> = vec![
        vec!["disasm", "--no-such-flag", &v],
        vec!["disasm", "--raw", "--section", "xdp", &v],
        vec!["run", "--no-such-flag", &v],
        vec!["run", "--raw", "--section", "xdp", &v],
        vec!["run", "--passes", "dce,dce", &v],
        vec!["check", "--no-such-flag", &obj],
        vec!["rewrite", "--no-such-flag", &obj, "-o", &o, "--passes", "all"],
        vec!["rewrite", &obj, "-o", &o, "--passes", "none,blind"],
        vec!["rewrite", &obj, "-o", &o],
        vec!["conformance", "--no-such-flag", &v],
        vec!["conformance", "--passes", "fixups,fixups", &v],
        vec!["bench", "--no-such-flag"],
        vec!["bench", "--impls", "bogus"],
        vec!["no-such-command"],
    ];
    for args in bad {
        let out = bpfpatch().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    let corpus = d.join("no-corpus").display().to_string();
    let missing: Vec<Vec<&str>> = vec![
        vec!["disasm", &nope],
        vec!["disasm", "--raw", &nope],
        vec!["run", &nope],
        vec!["check", &nope],
        vec!["rewrite", &nope, "-o", &o, "--passes", "all"],
        vec!["conformance", &nope],
        [&["bench"][..], &quick, &["--corpus", &corpus]].concat(),
    ];
    for args in missing {
        let e = fails(bpfpatch().args(&args));
        let named = if args[0] == "bench" { &corpus } else { &nope };
        assert!(e.contains(named.as_str()), "{args:?}: {e}");
    }
}
