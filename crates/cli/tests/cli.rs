//! End-to-end tests of the `bpfpatch` binary: output formats and exit codes.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::path::PathBuf;

fn bpfpatch() -> Command {
    Command::cargo_bin("bpfpatch").unwrap()
}

#[track_caller]
fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance"));
    // A counted skip when absent (a failure under BPFPATCH_REQUIRE_INPUTS=1).
    bpfpatch_testkit::require_input("../shared/conformance", &p).then_some(p)
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfpatch-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

#[test]
fn run_prints_r0_in_hex() {
    let f = temp_file("add.data", b"-- asm\nmov %r0, 40\nadd %r0, 2\nexit\n-- result\n0x2a\n");
    bpfpatch().arg("run").arg(&f).assert().success().stdout("0x2a\n");
}

#[test]
fn run_rejects_a_faulting_program_with_one_error_line() {
    // Load from address 0: out of every region.
    let f = temp_file("fault.data", b"-- asm\nmov %r1, 0\nldxdw %r0, [%r1]\nexit\n");
    let out = bpfpatch().arg("run").arg(&f).assert().code(1).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn disasm_prints_slot_and_llvm_text() {
    // mov64 r0, 1 ; lddw r1, 0x100000002 ; if r1 > 0x5 goto +0x3 ; exit
    let f = temp_file("p.data", b"-- asm\nmov %r0, 1\nlddw %r1, 0x100000002\njgt %r1, 5, +3\nexit\n");
    bpfpatch()
        .arg("disasm")
        .arg(&f)
        .assert()
        .success()
        .stdout("0: r0 = 0x1\n1: r1 = 0x100000002 ll\n3: if r1 > 0x5 goto +0x3\n4: exit\n");
}

#[test]
fn disasm_reads_raw_images_in_both_byte_orders() {
    // mov64 r1, r2 ; exit
    let le = temp_file("le.bin", &[0xbf, 0x21, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    let be = temp_file("be.bin", &[0xbf, 0x12, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    bpfpatch().args(["disasm", "--raw"]).arg(&le).assert().success().stdout("0: r1 = r2\n1: exit\n");
    bpfpatch().args(["disasm", "--raw", "--big-endian"]).arg(&be).assert().success().stdout("0: r1 = r2\n1: exit\n");
}

#[test]
fn disasm_prints_the_invalid_slot_as_unknown() {
    // As llvm-objdump: `<unknown>`, and the listing goes on (tests/conventions.rs has more).
    let f = temp_file("bad.bin", &[0x95, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0]);
    bpfpatch().args(["disasm", "--raw"]).arg(&f).assert().success().stdout("0: exit\n1: <unknown>\n");
}

#[test]
fn conformance_counts_and_exit_code() {
    let Some(dir) = shared() else { return };
    bpfpatch()
        .arg("conformance")
        .arg(dir.join("tests"))
        .arg(dir.join("negative"))
        .assert()
        .success()
        .stdout(predicates::str::is_match(r"(?m)^\d+ passed, 0 failed\n\z").unwrap());
    // A positive vector with the wrong expectation fails and the command exits 1.
    let f = temp_file("wrong.data", b"-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n");
    bpfpatch().arg("conformance").arg(&f).assert().code(1).stdout(predicates::str::contains("0 passed, 1 failed"));
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    bpfpatch().args(["disasm", "/nonexistent/x.data"]).assert().code(1);
    bpfpatch().args(["run", "/nonexistent/x.data"]).assert().code(1);
}

#[test]
fn conformance_in_the_three_modes() {
    let Some(dir) = shared() else { return };
    for mode in [&[][..], &["--passes", "all"][..], &["--passes", "all", "--blind"][..]] {
        bpfpatch()
            .arg("conformance")
            .args(mode)
            .arg(dir.join("tests"))
            .assert()
            .success()
            .stdout(predicates::str::is_match(r"(?m)^\d+ passed, 0 failed\n\z").unwrap());
    }
}

#[test]
fn conformance_with_zext_runs_on_a_machine_that_does_not_zero_extend() {
    // With `zext` in the list, rewritten programs run with random upper halves after 32-bit
    // definitions: each vector passes only if `zext` put the zero-extensions where they are read.
    if let Some(dir) = shared() {
        for mode in [&["--passes", "zext"][..], &["--passes", "zext,rnd-hi32", "--blind"][..]] {
            bpfpatch()
                .arg("conformance")
                .args(mode)
                .arg(dir.join("tests"))
                .assert()
                .success()
                .stdout(predicates::str::is_match(r"(?m)^\d+ passed, 0 failed\n\z").unwrap());
        }
    }
    // 32-bit shifts and loads whose upper half reaches r0 (read as 64 bits by exit).
    let f = temp_file(
        "shift32.data",
        b"-- asm\nmov %r0, -1\nlsh32 %r0, 4\nmov32 %r1, 0x80000000\narsh32 %r1, 3\nrsh32 %r1, 1\n\
          ldxw %r2, [%r10-8]\nadd %r0, %r2\nadd %r0, %r1\nexit\n-- result\n0x177fffff0\n",
    );
    for mode in [&["--passes", "zext"][..], &["--passes", "all", "--blind"][..], &[][..]] {
        bpfpatch().arg("conformance").args(mode).arg(&f).assert().success().stdout("1 passed, 0 failed\n");
        bpfpatch().arg("run").args(mode).arg(&f).assert().success().stdout("0x177fffff0\n");
    }
}

#[test]
fn run_with_passes_gives_the_same_r0() {
    let f = temp_file("div.data", b"-- asm\nmov %r0, 100\nmov %r1, 7\ndiv %r0, %r1\nmov32 %r2, 0\nadd %r0, 5\nexit\n");
    for mode in [&[][..], &["--passes", "all"][..], &["--passes", "dce,fixups", "--blind"][..]] {
        bpfpatch().arg("run").args(mode).arg(&f).assert().success().stdout("0x13\n");
    }
    // A bad list is a usage error (exit 2, clap's report).
    let out = bpfpatch().args(["run", "--passes", "bogus"]).arg(&f).assert().code(2).get_output().clone();
    assert!(String::from_utf8(out.stderr).unwrap().contains("unknown pass"));
}

#[test]
fn bench_writes_the_json_shape_and_a_plot() {
    let dir = std::env::temp_dir().join(format!("bpfpatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("b.json"), dir.join("b.svg"));
    bpfpatch()
        .args(["bench", "--sizes", "800,1600", "--runs", "1", "--cold-runs", "1", "--kernel-budget", "0.001", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .assert()
        .success()
        .stdout(predicates::str::contains("rfc/bpfpatch"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(v["machine"].as_str().is_some_and(|m| !m.is_empty()));
    let rows = v["results"].as_array().unwrap();
    for r in rows {
        for key in [
            "workload",
            "impl",
            "patches",
            "insns_in",
            "insns_out",
            "median_ms",
            "runs",
            "peak_bytes",
            "extrapolated",
            "regime",
        ] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
    }
    let has = |imp: &str, regime: &str| rows.iter().any(|r| r["impl"] == imp && r["regime"] == regime);
    for (imp, regime) in [
        ("kernel", "warm"),
        ("rfc-list", "warm"),
        ("bpfpatch", "warm"),
        ("bpfpatch", "cold"),
        ("copy-floor", "warm"),
        ("copy-floor", "cold"),
    ] {
        assert!(has(imp, regime), "no {imp} {regime}");
    }
    // The kernel ran the first size, exhausted its tiny budget, and the second is extrapolated;
    // on rand-ld-dw it ran the first calibration length only, and the full program is
    // extrapolated from it.
    assert!(rows.iter().any(|r| r["workload"] == "seed" && r["impl"] == "kernel" && r["extrapolated"] == true));
    let kernel_ld: Vec<_> = rows.iter().filter(|r| r["workload"] == "rand-ld-dw" && r["impl"] == "kernel").collect();
    assert_eq!(kernel_ld.len(), 2, "{kernel_ld:?}");
    assert!(kernel_ld[0]["extrapolated"] == false && kernel_ld[0]["runs"] == 1);
    assert!(kernel_ld[1]["extrapolated"] == true && kernel_ld[1]["patches"] == 666_658, "{:?}", kernel_ld[1]);
    // Every implementation wrote the same number of slots.
    let outs: std::collections::BTreeSet<_> = rows
        .iter()
        .filter(|r| r["workload"] == "seed" && r["patches"] == rows[0]["patches"])
        .map(|r| r["insns_out"].as_u64())
        .collect();
    assert_eq!(outs.len(), 1, "{outs:?}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn run_reads_raw_images() {
    // r0 = 0x2a ; exit
    let raw = temp_file("r.bin", &[0xb7, 0, 0, 0, 0x2a, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    bpfpatch().args(["run", "--raw"]).arg(&raw).assert().success().stdout("0x2a\n");
    bpfpatch().args(["run", "--raw", "--passes", "all", "--blind"]).arg(&raw).assert().success().stdout("0x2a\n");
    // --section is for objects (with --raw a usage error); a truncated object is one error line.
    let out = bpfpatch().args(["run", "--raw", "--section", "xdp"]).arg(&raw).assert().code(2).get_output().clone();
    assert!(String::from_utf8(out.stderr).unwrap().contains("'--raw' cannot be used with '--section <S>'"));
    let elf = temp_file("x.o", b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    let out = bpfpatch().arg("run").arg(&elf).assert().code(1).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: ") && err.lines().count() == 1, "{err}");
}

/// `--ctx-layout FILE` (doc/ctx-layout.json): `run` and `rewrite` convert context accesses to
/// the runtime layout; without a layout the ctx pass says what it needs; a bad file is one
/// error line naming it and the field.
#[test]
fn ctx_layout_files_drive_the_ctx_pass() {
    let layout = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../doc/ctx-layout.json"));
    // r0 = len (view 0 -> runtime 8) | ifindex low half (view 12, u16 -> runtime 16) << 32.
    let prog = temp_file(
        "ctx.data",
        b"-- asm\nldxw %r0, [%r1+0]\nldxh %r2, [%r1+12]\nlsh %r2, 32\nor %r0, %r2\nexit\n-- mem\n\
          11 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n",
    );
    bpfpatch().arg("run").arg(&prog).assert().success().stdout("0x11\n");
    bpfpatch()
        .args(["run", "--passes", "ctx", "--ctx-layout"])
        .arg(&layout)
        .arg(&prog)
        .assert()
        .success()
        .stdout("0x70000002a\n");
    let err = |args: &[&str]| {
        let out = bpfpatch().args(args).arg(&prog).assert().code(1).get_output().clone();
        let e = String::from_utf8(out.stderr).unwrap();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    };
    assert!(err(&["run", "--passes", "ctx"]).contains("the ctx pass needs --ctx-layout FILE"));
    let bad = temp_file(
        "bad-layout.json",
        br#"{"name":"x","fields":[{"name":"len","off":0,"size":4,"runtime_off":8,"runtime_size":3}]}"#,
    );
    let e = err(&["run", "--passes", "ctx", "--ctx-layout", bad.to_str().unwrap()]);
    assert!(e.contains("bad-layout.json") && e.contains("field len: runtime_size 3"), "{e}");
    // rewrite --raw: the prologue first, then the converted load.
    let raw = temp_file("ctx.bin", &[0x61, 0x10, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]); // r0 = *(u32 *)(r1 + 0)
    let out = temp_file("ctx-out.bin", b"");
    bpfpatch()
        .args(["rewrite", "--raw", "--xlated", "--passes", "ctx", "--ctx-layout"])
        .arg(&layout)
        .arg(&raw)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    bpfpatch()
        .args(["disasm", "--raw", "--internal"])
        .arg(&out)
        .assert()
        .success()
        .stdout("0: *(u32 *)(r1 + 0xc) = 0x1\n1: r0 = *(u32 *)(r1 + 0x8)\n2: exit\n");
}
