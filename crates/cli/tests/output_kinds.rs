//! The two kinds of output, never mixed up: `rewrite` writes a loadable program (uapi encodings
//! only) unless `--xlated` asks for the kernel's post-verifier form, and the kernel's own
//! passes are a usage error without it. Xlated outputs say so: objects carry a
//! `.bpfpatch.xlated` note, bare images a leading marker slot; `disasm`, `check` and `run` read
//! the marker and accept the kernel-internal forms without `--internal`; `load` refuses a marked
//! object in one line; loadable outputs carry no marker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use bpfpatch_object::BpfObject;
use bpfpatch_object::xlated::RAW_XLATED_MAGIC;
use std::path::{Path, PathBuf};

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
    // Nor the options of the xlated passes (`ctx`, `fixups`): they would change nothing.
    for args in [&["--may-goto", "counted"][..], &["--ctx-layout", "layout.json"]] {
        let o = bpfpatch().arg("load").arg(data("prog-el.o")).args(args).assert().code(2).get_output().clone();
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains(&format!("unexpected argument '{}'", args[0])), "{args:?}: {err}");
    }
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

/// `kernel` names the pipeline the running kernel applies (kernel-dce,fixups,cmpxchg-zext): the same output
/// as those passes by name, and, being xlated, only with `--xlated`.
#[test]
fn kernel_is_the_kernels_pipeline() {
    for name in ["prog-el.o", "calls-eb.o"] {
        let (a, b) = (temp(&format!("k-{name}")), temp(&format!("df-{name}")));
        rewrite(name, &a, &["--xlated", "--passes", "kernel"]);
        rewrite(name, &b, &["--xlated", "--passes", "kernel-dce,fixups,cmpxchg-zext"]);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{name}");
        bpfpatch().arg("rewrite").arg(data(name)).arg("-o").arg(&a).args(["--passes", "kernel"]).assert().code(2);
    }
}

/// A long jump of a program that is cpu v3 after the rewrite never becomes `gotol` (a v3 kernel
/// rejects it): `lower-v4` of a v4 program whose lowered `sdiv`s push a conditional jump beyond
/// 16 bits, and blinding of a v3 program, fail with one line naming the jump's slot, and write
/// nothing. The same growth in a program that stays v4 relaxes into `gotol`.
#[test]
fn long_jumps_of_v3_output_are_an_error_naming_the_jump() {
    let ins = |code: u8, regs: u8, off: i16, imm: i32| {
        let mut b = vec![code, regs];
        b.extend(off.to_le_bytes());
        b.extend(imm.to_le_bytes());
        b
    };
    // r1 = 7; r0 = 100; if r1 == 0 goto +n; n x BODY; exit
    let image = |body: &[u8], n: i16| {
        let mut v = [ins(0xb7, 1, 0, 7), ins(0xb7, 0, 0, 100), ins(0x15, 1, n, 0)].concat();
        (0..n).for_each(|_| v.extend_from_slice(body));
        v.extend(ins(0x95, 0, 0, 0));
        v
    };
    let sdiv = ins(0x3f, 0x10, 1, 0); // r0 s/= r1 (cpu v4)
    let add = ins(0x07, 0, 0, 3); // r0 += 3 (blinded: 3 slots)
    for (name, img, args) in [
        ("lower-v4", image(&sdiv, 32_000), &["--passes", "lower-v4"][..]),
        ("blind", image(&add, 20_000), &["--xlated", "--passes", "none", "--blind"][..]),
    ] {
        let input = temp(&format!("long-{name}.bin"));
        std::fs::write(&input, &img).unwrap();
        let out = temp(&format!("long-{name}.out"));
        let o = bpfpatch()
            .args(["rewrite", "--raw"])
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(args)
            .assert()
            .code(1)
            .get_output()
            .clone();
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains("of the rewritten program (slot 2 of the original)"), "{name}: {err}");
        assert!(err.contains("beyond its 16-bit field"), "{name}: {err}");
        assert!(!out.exists(), "{name}: nothing written");
    }
    // Blinding a program that keeps a v4 instruction (a `sdiv` at the end): `gotol`.
    let mut img = image(&add, 20_000);
    img.splice(img.len() - 8..img.len() - 8, sdiv.clone());
    let input = temp("long-v4.bin");
    std::fs::write(&input, &img).unwrap();
    let out = temp("long-v4.out");
    bpfpatch()
        .args(["rewrite", "--raw"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .args(["--xlated", "--passes", "none", "--blind"])
        .assert()
        .success();
    let text = String::from_utf8(
        bpfpatch().args(["disasm", "--raw"]).arg(&out).assert().success().get_output().stdout.clone(),
    )
    .unwrap();
    assert!(text.lines().any(|l| l.contains("gotol")), "relaxed into gotol");
}

fn rewrite_file(input: &Path, out: &Path, args: &[&str]) {
    bpfpatch().arg("rewrite").arg(input).arg("-o").arg(out).args(args).assert().success();
}

fn stdout(c: &mut Command) -> String {
    String::from_utf8(c.assert().success().get_output().stdout.clone()).unwrap()
}

/// An xlated object (internal zero-extensions, AX from blinding) passes `check` and
/// disassembles without `<unknown>` slots, without `--internal`; the loadable output of the
/// same input has no marker.
#[test]
fn xlated_objects_are_read_without_internal() {
    for name in ["prog-el.o", "prog-eb.o", "calls-el.o", "calls-eb.o", "notype-el.o", "notype-eb.o"] {
        let x = temp(&format!("marker-x-{name}"));
        rewrite_file(&data(name), &x, &["--xlated", "--passes", "all", "--blind"]);
        let obj = BpfObject::parse(&std::fs::read(&x).unwrap()).unwrap();
        assert!(obj.is_xlated(), "{name}");
        bpfpatch().arg("check").arg(&x).assert().success();
        let text = stdout(bpfpatch().arg("disasm").arg(&x));
        assert!(!text.contains("<unknown>"), "{name}:\n{text}");
        assert!(text.contains("r11"), "{name}: blinding goes through AX:\n{text}");
        // `run` of a self-contained program of a marked object loads its internal forms.
        if name.starts_with("notype") {
            let orig = stdout(bpfpatch().args(["run", "--section", ".text"]).arg(data(name)));
            assert_eq!(stdout(bpfpatch().args(["run", "--section", ".text"]).arg(&x)), orig, "{name}");
        }

        let l = temp(&format!("marker-l-{name}"));
        rewrite_file(&data(name), &l, &["--passes", "all"]);
        let obj = BpfObject::parse(&std::fs::read(&l).unwrap()).unwrap();
        assert!(!obj.is_xlated(), "{name}: loadable output is not marked");
        bpfpatch().arg("check").arg(&l).assert().success();
    }
}

/// `load` refuses an xlated object before it probes bpf(): exit 1, one line naming the file
/// and saying why.
#[test]
fn load_refuses_an_xlated_object() {
    let x = temp("marker-refuse.o");
    rewrite_file(&data("prog-el.o"), &x, &["--xlated", "--passes", "zext"]);
    let o = bpfpatch().arg("load").arg(&x).assert().code(1).get_output().clone();
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("xlated") && err.contains("not loadable") && err.contains("refuse.o"), "{err}");
}

/// `rewrite --raw --xlated` writes the marker slot first (opcode 0: every loader rejects the
/// image at slot 0); `disasm --raw`, `check --raw` and `run --raw` skip it and accept the
/// internal zero-extension; a loadable `--raw` output has no marker, and a marked input stays
/// marked through a further rewrite.
#[test]
fn xlated_raw_images_start_with_the_marker() {
    // `w0 = 1; exit` (r0 is read in full at exit, so zext follows the mov32), both byte orders.
    for (big, image) in [
        (false, [0xb4u8, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]),
        (true, [0xb4u8, 0, 0, 0, 0, 0, 0, 1, 0x95, 0, 0, 0, 0, 0, 0, 0]),
    ] {
        let endian: &[&str] = if big { &["--raw", "--big-endian"] } else { &["--raw"] };
        let input = temp(&format!("marker-in-{big}.bin"));
        std::fs::write(&input, image).unwrap();
        let x = temp(&format!("marker-x-{big}.bin"));
        rewrite_file(&input, &x, &[endian, &["--xlated", "--passes", "zext"]].concat());
        let bytes = std::fs::read(&x).unwrap();
        assert_eq!(&bytes[..8], &RAW_XLATED_MAGIC, "big={big}");
        assert_eq!(bytes.len(), 8 + 3 * 8, "marker, mov32, zext, exit");
        let text = stdout(bpfpatch().arg("disasm").args(endian).arg(&x));
        assert_eq!(text, "0: w0 = 0x1\n1: w0 = w0\n2: exit\n", "big={big}");
        bpfpatch().arg("check").args(endian).arg(&x).assert().success();
        assert_eq!(stdout(bpfpatch().arg("run").args(endian).arg(&x)), "0x1\n");
        // A marked input stays marked, even through a rewrite without --xlated.
        let again = temp(&format!("marker-again-{big}.bin"));
        rewrite_file(&x, &again, &[endian, &["--passes", "dce"]].concat());
        assert_eq!(std::fs::read(&again).unwrap(), bytes, "big={big}");

        let l = temp(&format!("marker-l-{big}.bin"));
        rewrite_file(&input, &l, &[endian, &["--passes", "all"]].concat());
        assert_eq!(std::fs::read(&l).unwrap(), image, "big={big}: loadable output, no marker");
    }
}

/// `rewrite --may-goto`: `fixups` expands a surviving `may_goto` in the timed form by default
/// (Linux 6.15+ on x86-64 and arm64: two stores at the entry, seven slots for the `may_goto`,
/// the count at fp-16) and in the counted form on request (one store, four slots, the counter
/// at fp-8), and the run of the result on the interpreter gives the program's r0 either way.
#[test]
fn rewrite_expands_may_goto_in_the_form_asked() {
    // r0 = 0; may_goto +2; r0 += 1; if r0 < 5 goto -3; exit
    let image = [
        [0xb7u8, 0, 0, 0, 0, 0, 0, 0],
        [0xe5, 0, 2, 0, 0, 0, 0, 0],
        [0x07, 0, 0, 0, 1, 0, 0, 0],
        [0xa5, 0, 0xfd, 0xff, 5, 0, 0, 0],
        [0x95, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let input = temp("may-goto-in.bin");
    std::fs::write(&input, &image).unwrap();
    for (form, slots, first) in [
        (None, 5 + 2 + 6, "*(u64 *)(r10 - 0x10) = 0xffff"),
        (Some("counted"), 5 + 1 + 3, "*(u64 *)(r10 - 0x8) = 0x800000"),
    ] {
        let out = temp(&format!("may-goto-{}.bin", form.unwrap_or("default")));
        let mut args = vec!["--raw", "--xlated", "--passes", "fixups"];
        if let Some(f) = form {
            args.extend(["--may-goto", f]);
        }
        rewrite_file(&input, &out, &args);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), 8 * (1 + slots), "{form:?}: the marker and {slots} slots");
        let text = stdout(bpfpatch().args(["disasm", "--raw"]).arg(&out));
        assert!(text.starts_with(&format!("0: {first}\n")), "{form:?}:\n{text}");
        assert_eq!(stdout(bpfpatch().args(["run", "--raw"]).arg(&out)), "0x5\n", "{form:?}");
    }
}
