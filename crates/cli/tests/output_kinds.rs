//! The two kinds of output, never mixed up: `rewrite` writes a loadable program (uapi encodings
//! only) unless `--xlated` asks for the kernel's post-verifier form, and the kernel's own
//! passes are a usage error without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use std::path::PathBuf;

fn bpfpatch() -> Command {
    Command::cargo_bin("bpfpatch").unwrap()
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../object/tests/data")).join(name)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bpfpatch-kinds-{}-{name}", std::process::id()))
}

/// Every pass of the kernel's internal form, and `--blind`, need `--xlated`: one line naming
/// the flag, exit 2 (a usage error), and no output written.
#[test]
fn kernel_passes_need_xlated() {
    let out = temp("refused.o");
    for args in [
        &["--passes", "zext"][..],
        &["--passes", "dce,fixups"],
        &["--passes", "ctx"],
        &["--passes", "none", "--blind"],
        &["--passes", "rnd-hi32"],
    ] {
        let o = bpfpatch()
            .arg("rewrite")
            .arg(data("prog-el.o"))
            .arg("-o")
            .arg(&out)
            .args(args)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains("--xlated") && err.lines().count() == 1, "{args:?}: {err}");
        assert!(!out.exists(), "{args:?}: nothing written");
    }
    // `load` loads into the kernel: only loadable passes.
    let o = bpfpatch()
        .args(["load"])
        .arg(data("prog-el.o"))
        .args(["--passes", "zext"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8(o.stderr).unwrap().contains("--xlated"));
}

/// `bpfpatch rewrite IN -o OUT ARGS... --json` (which must succeed): the passes it ran.
fn rewrite(name: &str, out: &std::path::Path, args: &[&str]) -> Vec<String> {
    let report =
        bpfpatch().arg("rewrite").arg(data(name)).arg("-o").arg(out).args(args).arg("--json").assert().success();
    let v: serde_json::Value = serde_json::from_slice(&report.get_output().stdout).unwrap();
    v["passes"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

/// `--passes all` without `--xlated` is the loadable pipeline: its output passes `check`
/// without `--internal` (no kernel-internal encoding); with `--xlated` it is the kernel's
/// pipeline, whose internal zero-extensions `check` refuses unless told.
#[test]
fn all_means_the_passes_of_the_output_kind() {
    for name in ["prog-el.o", "prog-eb.o", "calls-el.o", "calls-eb.o", "notype-el.o"] {
        let loadable = temp(&format!("l-{name}"));
        let passes = rewrite(name, &loadable, &["--passes", "all"]);
        assert!(passes.iter().all(|p| ["dce", "lower-v4"].contains(&p.as_str())), "{name}: {passes:?}");
        bpfpatch().arg("check").arg(&loadable).assert().success();
        let xlated = temp(&format!("x-{name}"));
        let passes = rewrite(name, &xlated, &["--xlated", "--passes", "all"]);
        assert!(passes.iter().any(|p| p == "zext") && passes.iter().any(|p| p == "fixups"), "{name}: {passes:?}");
        bpfpatch().args(["check", "--internal"]).arg(&xlated).assert().success();
    }
}

/// `kernel` names the pipeline the running kernel applies (dce,fixups): the same output as
/// those passes by name, and, being xlated, only with `--xlated`.
#[test]
fn kernel_is_the_kernels_pipeline() {
    for name in ["prog-el.o", "calls-eb.o"] {
        let (a, b) = (temp(&format!("k-{name}")), temp(&format!("df-{name}")));
        rewrite(name, &a, &["--xlated", "--passes", "kernel"]);
        rewrite(name, &b, &["--xlated", "--passes", "dce,fixups"]);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{name}");
        bpfpatch().arg("rewrite").arg(data(name)).arg("-o").arg(&a).args(["--passes", "kernel"]).assert().code(2);
    }
}
