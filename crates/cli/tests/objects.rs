//! End-to-end tests of the object commands (`check`, `rewrite`, `disasm` on ELF objects) on the
//! committed test objects of crates/object (prog, calls, notype, ldabs; -el.o and -eb.o), plus the corpus
//! comparison of `disasm` with llvm-objdump-19 when both are available.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use assert_cmd::Command;
use bpfpatch_object::BpfObject;
use bpfpatch_testkit::corpus::corpus;
use std::path::{Path, PathBuf};

const OBJECTS: [&str; 4] = ["prog-el.o", "prog-eb.o", "calls-el.o", "calls-eb.o"];

fn bpfpatch() -> Command {
    Command::cargo_bin("bpfpatch").unwrap()
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../object/tests/data")).join(name)
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfpatch-cli-objects-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let p = temp_dir().join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

/// The executable sections (`SHF_EXECINSTR`, non-empty) of an ELF64 object and their sizes in
/// 8-byte slots, read from the section header table by hand (ELF64 layout of the System V gABI:
/// `e_shoff` at 0x28, `e_shentsize`/`e_shnum`/`e_shstrndx` at 0x3a/0x3c/0x3e; a header's
/// `sh_name`, `sh_flags`, `sh_size` at 0, 8, 0x20), so the slot counts the CLI reports are checked
/// against the file itself, not against our own earlier output.
fn exec_sections(path: &Path) -> Vec<(String, u64)> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF");
    assert_eq!(b[4], 2, "ELF64");
    let big = b[5] == 2;
    let uint = |at: usize, n: usize| -> u64 {
        let bytes = &b[at..at + n];
        let fold = |acc: u64, &x: &u8| (acc << 8) | u64::from(x);
        if big { bytes.iter().fold(0, fold) } else { bytes.iter().rev().fold(0, fold) }
    };
    let (shoff, shentsize, shnum, shstrndx) =
        (uint(0x28, 8) as usize, uint(0x3a, 2) as usize, uint(0x3c, 2) as usize, uint(0x3e, 2) as usize);
    let hdr = |i: usize| shoff + i * shentsize;
    let strtab = uint(hdr(shstrndx) + 0x18, 8) as usize;
    let mut out = Vec::new();
    for i in 0..shnum {
        let (name, flags, size) = (uint(hdr(i), 4) as usize, uint(hdr(i) + 8, 8), uint(hdr(i) + 0x20, 8));
        if flags & 0x4 != 0 && size > 0 {
            let s = &b[strtab + name..];
            let name = String::from_utf8(s[..s.iter().position(|&c| c == 0).unwrap()].to_vec()).unwrap();
            assert_eq!(size % 8, 0, "{name}");
            out.push((name, size / 8));
        }
    }
    out
}

/// Runs and expects exit 1 with exactly one `error: ...` line on stderr; returns it.
fn fails(cmd: &mut Command) -> String {
    let out = cmd.assert().code(1).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

fn json(cmd: &mut Command) -> serde_json::Value {
    serde_json::from_str(&stdout(cmd)).unwrap()
}

#[test]
fn check_passes_the_test_objects() {
    for name in OBJECTS {
        let out = stdout(bpfpatch().arg("check").arg(data(name)));
        assert!(out.contains(&format!("{name}: ok (")), "{out}");
        assert!(out.ends_with("1 passed, 0 failed\n"), "{out}");
    }
    let mut cmd = bpfpatch();
    cmd.arg("check").args(OBJECTS.map(data)).arg("--json");
    let v = json(&mut cmd);
    assert_eq!((v["passed"].as_u64(), v["failed"].as_u64()), (Some(4), Some(0)));
    // Counts read from prog-el.o's section headers (.text 43 + xdp 24 + tc 14 slots, as
    // `llvm-readelf-19 -S` also shows), not copied from the command's own earlier output.
    let sections = exec_sections(&data(OBJECTS[0]));
    assert_eq!(v["files"][0]["programs"], sections.len());
    assert_eq!(v["files"][0]["slots"], sections.iter().map(|s| s.1).sum::<u64>());
    assert_eq!(v["files"][0]["findings"].as_array().unwrap().len(), 0);
}

/// Section `xdp` of prog-el.o: the jump at slot 8 (`if w1 <= w2 goto +0x3`) made to leave the
/// section; the corrupted file is reported, the good one passes, the command exits 1.
#[test]
fn check_reports_findings_and_exits_1() {
    let bytes = std::fs::read(data("prog-el.o")).unwrap();
    let obj = BpfObject::parse(&bytes).unwrap();
    let (_, xdp) = obj.program_by_name("xdp").unwrap();
    let off = usize::try_from(obj.section_headers()[xdp.section()].offset).unwrap() + 8 * 8;
    let mut bad = bytes.clone();
    bad[off + 2..off + 4].copy_from_slice(&100i16.to_le_bytes());
    let bad = temp_file("jump-out.o", &bad);
    let mut cmd = bpfpatch();
    cmd.arg("check").arg(&bad).arg(data("prog-eb.o"));
    let out = cmd.assert().code(1).get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("jump-out.o: 1 findings\n  section 4 `xdp`: slot 8: target 109 outside the section"),
        "{text}"
    );
    assert!(text.ends_with("1 passed, 1 failed\n"), "{text}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err, "error: 1 of 2 files failed the check\n");
    // JSON carries the same, still exiting 1.
    let out = bpfpatch().args(["check", "--json"]).arg(&bad).assert().code(1).get_output().clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"][0]["findings"][0]["section"], "xdp");
}

/// An internal `tail_call` (as the fixups pass emits) in an object: a finding unless `--internal`.
#[test]
fn check_internal_accepts_kernel_forms_in_objects() {
    let bytes = std::fs::read(data("prog-el.o")).unwrap();
    let obj = BpfObject::parse(&bytes).unwrap();
    let (_, xdp) = obj.program_by_name("xdp").unwrap();
    let at = usize::try_from(obj.section_headers()[xdp.section()].offset).unwrap();
    let mut b = bytes.clone();
    b[at..at + 8].copy_from_slice(&[0xf5, 0, 0, 0, 0, 0, 0, 0]);
    let f = temp_file("tail-call.o", &b);
    fails(bpfpatch().arg("check").arg(&f));
    assert!(stdout(bpfpatch().args(["check", "--internal"]).arg(&f)).contains("tail-call.o: ok"));
}

#[test]
fn check_reads_raw_images() {
    // r0 = 0; exit, in both byte orders; then a jump past the end.
    let le = temp_file("ok-le.bin", &[0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    let be = temp_file("ok-be.bin", &[0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    assert!(stdout(bpfpatch().args(["check", "--raw"]).arg(&le)).contains("ok (1 programs, 2 slots)"));
    assert!(stdout(bpfpatch().args(["check", "--raw", "--big-endian"]).arg(&be)).contains("ok"));
    let jump = temp_file("jump.bin", &[0x05, 0, 5, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    let out = bpfpatch().args(["check", "--raw"]).arg(&jump).assert().code(1).get_output().clone();
    assert!(String::from_utf8(out.stdout).unwrap().contains("slot 0: target 6 outside the section"));
}

/// `rewrite --passes none` is the identity: the output is the input, and every section of the
/// re-parsed output is the input's (compared through our parser).
#[test]
fn rewrite_none_gives_identical_sections() {
    let dir = temp_dir();
    for name in OBJECTS {
        let out = dir.join(format!("none-{name}"));
        let text = stdout(bpfpatch().arg("rewrite").arg(data(name)).arg("-o").arg(&out).args(["--passes", "none"]));
        assert!(text.starts_with("section "), "{text}");
        assert!(text.contains("passes none"), "{text}");
        let (a, b) = (std::fs::read(data(name)).unwrap(), std::fs::read(&out).unwrap());
        let (oa, ob) = (BpfObject::parse(&a).unwrap(), BpfObject::parse(&b).unwrap());
        assert_eq!(oa.section_headers().len(), ob.section_headers().len());
        for i in 0..oa.section_headers().len() {
            assert_eq!(oa.section_name(i), ob.section_name(i));
            assert_eq!(oa.original_section_data(i), ob.original_section_data(i), "{name}: section {i}");
        }
        assert_eq!(a, b, "{name}: byte-identical");
        // The rewritten object checks clean.
        stdout(bpfpatch().arg("check").arg(&out));
    }
}

#[test]
fn rewrite_reports_per_section_in_json() {
    let out = temp_dir().join("json.o");
    let mut cmd = bpfpatch();
    cmd.arg("rewrite").arg(data("calls-el.o")).arg("-o").arg(&out).args(["--passes", "none", "--json"]);
    let wall = std::time::Instant::now();
    let v = json(&mut cmd);
    let secs: Vec<&str> = v["sections"].as_array().unwrap().iter().map(|s| s["section"].as_str().unwrap()).collect();
    assert_eq!(secs, [".text", "xdp"]);
    // Slot counts from the ELF section headers (.text 38 + xdp 42), independent of the CLI; with
    // `--passes none` every section keeps its size.
    let sections = exec_sections(&data("calls-el.o"));
    assert_eq!(sections.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), secs);
    for (i, (name, slots)) in sections.iter().enumerate() {
        assert_eq!(v["sections"][i]["slots_before"], *slots, "{name}");
        assert_eq!(v["sections"][i]["slots_after"], *slots, "{name}");
    }
    assert_eq!(v["total"]["slots_before"], sections.iter().map(|s| s.1).sum::<u64>());
    assert_eq!(v["total"]["deleted"], 0);
    assert_eq!(v["passes"].as_array().unwrap().len(), 0);
    // The time is of the rewrite inside the command: within the wall time of the whole run (a
    // `>= 0` check could not fail).
    let time_ms = v["time_ms"].as_f64().unwrap();
    assert!(time_ms >= 0.0 && time_ms <= wall.elapsed().as_secs_f64() * 1e3, "{time_ms}");
}

#[test]
fn rewrite_raw_images_in_both_byte_orders() {
    let img = [0xb7, 0x00, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let le = temp_file("img-le.bin", &img);
    let out = temp_dir().join("img-le.out");
    stdout(bpfpatch().args(["rewrite", "--raw", "--passes", "none"]).arg(&le).arg("-o").arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), img);
    let be_img = [0xb7, 0x00, 0, 0, 0, 0, 0, 1, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let be = temp_file("img-be.bin", &be_img);
    let out = temp_dir().join("img-be.out");
    stdout(bpfpatch().args(["rewrite", "--raw", "--big-endian", "--passes", "none"]).arg(&be).arg("-o").arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), be_img);
}

#[test]
fn rewrite_refuses_unknown_passes() {
    let out = temp_dir().join("never.o");
    // A usage error: exit 2 with clap's report.
    let o = bpfpatch().arg("rewrite").arg(data("prog-el.o")).arg("-o").arg(&out).args(["--passes", "bogus"]).output();
    let o = o.unwrap();
    let e = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("unknown pass"), "{e}");
    assert!(!out.exists(), "no output on error");
}

#[test]
fn rewrite_with_the_pass_pipeline_keeps_relocations_and_checks() {
    use bpfpatch_object::BpfObject;
    for name in ["calls-el.o", "calls-eb.o", "prog-el.o", "prog-eb.o"] {
        let out = temp_dir().join(format!("passes-{name}"));
        let report = json(bpfpatch().arg("rewrite").arg(data(name)).arg("-o").arg(&out).args([
            "--passes",
            "dce,fixups,zext",
            "--blind",
            "--xlated",
            "--json",
        ]));
        let before = BpfObject::parse(&std::fs::read(data(name)).unwrap()).unwrap();
        let after = BpfObject::parse(&std::fs::read(&out).unwrap()).unwrap();
        // Blinding grew the programs; every relocation survived and still sits on an
        // instruction with the same encoding (apply_patched refuses otherwise).
        let slots = |o: &BpfObject| o.programs().iter().map(|p| p.insns().len()).sum::<usize>();
        assert!(slots(&after) > slots(&before), "{name}: {report}");
        let relocs = |o: &BpfObject| o.programs().iter().map(|p| p.relocs().len()).sum::<usize>();
        assert_eq!(relocs(&after), relocs(&before), "{name}");
        for (pa, pb) in after.programs().iter().zip(before.programs()) {
            for (ra, rb) in pa.relocs().iter().zip(pb.relocs()) {
                let (ia, ib) = (pa.insns()[ra.slot], pb.insns()[rb.slot]);
                assert_eq!((ia.code, ia.src(), ia.dst()), (ib.code, ib.src(), ib.dst()), "{name}");
            }
        }
        // Our own structural check accepts it (AX and zext are kernel-internal forms).
        stdout(bpfpatch().args(["check", "--internal"]).arg(&out));
    }
}

#[test]
fn disasm_lists_objects_with_labels_relocations_and_lines() {
    let out = stdout(bpfpatch().arg("disasm").arg(data("prog-el.o")));
    for want in [
        "file format elf64-bpf",
        "Disassembly of section .text:",
        "\n0000000000000000 <bump>:\n",
        "\n00000000000000a0 <mix>:\n",
        "       3:\tr1 = 0x0 ll\n\t\t0000000000000018:  R_BPF_64_64\tcounts\n",
        "       7:\tif r0 == 0x0 goto +0xa <bump+0x90>\n",
        "; \t__u64 *v = bpf_map_lookup_elem(&counts, &key);\n       3:",
        "\t\t0000000000000050:  R_BPF_64_32\tbump\n",
        // Derived from prog.c, not from our output: `p->b` under preserve_access_index is a
        // field byte-offset relocation (`<byte_off>`) with access string `0:1` (element 0 of the
        // pointer, member #1 `b` of `struct pair`) on instruction 4 (byte 0x20); [38] is the BTF
        // id of `struct pair`. disasm_of_objects_matches_llvm_objdump compares every CO-RE line
        // with llvm's.
        "\t\t0000000000000020:  CO-RE <byte_off> [38] struct pair::b (0:1)\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let out = stdout(bpfpatch().args(["disasm", "--section", "xdp", "--no-lines"]).arg(data("calls-eb.o")));
    assert!(out.contains("Disassembly of section xdp:") && !out.contains("section .text"), "{out}");
    assert!(out.contains("\n00000000000000e0 <second>:\n") && !out.contains("; "), "{out}");
    let e = fails(bpfpatch().args(["disasm", "--section", "nosuch"]).arg(data("prog-el.o")));
    assert!(e.contains("no executable section `nosuch` (sections: .text, xdp, tc)"), "{e}");
}

#[test]
fn disasm_json_of_an_object() {
    let mut cmd = bpfpatch();
    cmd.args(["disasm", "--json"]).arg(data("prog-eb.o"));
    let v = json(&mut cmd);
    let xdp = &v["sections"][1];
    assert_eq!(xdp["name"], "xdp");
    let row = xdp["insns"].as_array().unwrap().iter().find(|r| r["slot"] == 10).unwrap();
    assert_eq!(row["text"], "call -0x1");
    assert_eq!(row["relocs"][0]["type"], "R_BPF_64_32");
    assert_eq!(row["relocs"][0]["symbol"], "bump");
    let first = &xdp["insns"][0];
    assert_eq!(first["labels"][0], "prog_xdp");
    assert!(first["source"][0]["file"].as_str().unwrap().ends_with("prog.c"));
    assert!(first["source"][0]["line"].as_u64().unwrap() > 0);
}

#[test]
fn bad_inputs_exit_1_with_one_line() {
    let empty = temp_file("empty.o", b"");
    let garbage = temp_file("garbage.o", b"\x7fELF\x02\x01\x01garbage");
    let odd = temp_file("odd.bin", &[0x95, 0, 0]);
    let out = temp_dir().join("x.out");
    for f in [&empty, &garbage] {
        fails(bpfpatch().arg("check").arg(f));
        fails(bpfpatch().arg("disasm").arg(f));
        fails(bpfpatch().arg("rewrite").arg(f).arg("-o").arg(&out).args(["--passes", "none"]));
    }
    fails(bpfpatch().args(["check", "--raw"]).arg(&odd));
    fails(bpfpatch().args(["rewrite", "--raw", "--passes", "none"]).arg(&odd).arg("-o").arg(&out));
    fails(bpfpatch().args(["check", "/nonexistent/x.o"]));
    fails(bpfpatch().args(["rewrite", "/nonexistent/x.o", "-o"]).arg(&out).args(["--passes", "none"]));
    let data_file = temp_file("p.data", b"-- asm\nexit\n");
    let e = fails(bpfpatch().arg("rewrite").arg(&data_file).arg("-o").arg(&out).args(["--passes", "none"]));
    assert!(e.contains("rewrite reads an ELF object"), "{e}");
    fails(bpfpatch().args(["disasm", "--section", "x"]).arg(&data_file));
    // Unwritable output.
    fails(bpfpatch().arg("rewrite").arg(data("prog-el.o")).args(["-o", "/nonexistent/dir/out.o", "--passes", "none"]));
    // Truncated copies of a real object: never a panic, always one line.
    let bytes = std::fs::read(data("calls-el.o")).unwrap();
    for cut in [16usize, 64, 200, bytes.len() / 2, bytes.len() - 1] {
        let f = temp_file(&format!("cut-{cut}.o"), &bytes[..cut]);
        for sub in [["check"].as_slice(), ["disasm"].as_slice()] {
            let status = bpfpatch().args(sub).arg(&f).output().unwrap().status;
            assert!(matches!(status.code(), Some(0 | 1)), "{sub:?} on {cut} bytes: {status}");
        }
    }
}

#[test]
fn help_everywhere() {
    for sub in ["check", "rewrite", "disasm"] {
        let out = stdout(bpfpatch().args([sub, "--help"]));
        assert!(out.contains("--json"), "{sub}: {out}");
    }
}

fn llvm_objdump(f: &Path) -> String {
    let out =
        std::process::Command::new("llvm-objdump-19").args(["-dr", "--no-show-raw-insn"]).arg(f).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One object's comparison: lines compared, CO-RE lines among them, the differing lines.
struct Compared {
    lines: usize,
    core: usize,
    differing: Vec<String>,
}

/// `disasm --no-lines` of `f` against `llvm-objdump-19 -dr --no-show-raw-insn`, line by line.
fn compare_with_llvm(f: &Path) -> Compared {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bpfpatch")).args(["disasm", "--no-lines"]).arg(f).output();
    let ours = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        other => return Compared { lines: 0, core: 0, differing: vec![format!("{}: {other:?}", f.display())] },
    };
    let theirs = llvm_objdump(f);
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    let differing = (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .map(|i| format!("{}:{}: ours {:?}, llvm {:?}", f.display(), i + 1, a.get(i), b.get(i)))
        .collect();
    let core = b.iter().filter(|l| l.contains(":  CO-RE <")).count();
    Compared { lines: b.len(), core, differing }
}

/// `disasm --no-lines` prints exactly what `llvm-objdump-19 -dr --no-show-raw-insn` prints,
/// relocation and CO-RE lines included (llvm names the type and field of each CO-RE record),
/// line for line, for the test objects and every corpus object (both byte orders); the figure
/// is printed: `disasm vs llvm-objdump-19: N objects, N lines (N CO-RE) compared, N differing`.
#[test]
fn disasm_of_objects_matches_llvm_objdump() {
    if !bpfpatch_testkit::require_tool("llvm-objdump-19") {
        return;
    }
    let mut files: Vec<PathBuf> = OBJECTS.map(data).to_vec();
    files.extend(corpus().unwrap_or_default());
    let workers = std::thread::available_parallelism().map_or(2, usize::from).min(8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Compared> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break mine };
                        mine.push(compare_with_llvm(f));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let lines: usize = results.iter().map(|r| r.lines).sum();
    let core: usize = results.iter().map(|r| r.core).sum();
    let differing: Vec<&String> = results.iter().flat_map(|r| &r.differing).collect();
    println!(
        "disasm vs llvm-objdump-19: {} objects, {lines} lines ({core} CO-RE) compared, {} differing",
        files.len(),
        differing.len()
    );
    // The test objects alone have CO-RE lines (prog.c's `p->b`): the CO-RE comparison is live.
    assert!(core > 0);
    let shown: Vec<&&String> = differing.iter().take(40).collect();
    assert!(differing.is_empty(), "{} differing lines, the first:\n{shown:#?}", differing.len());
}

/// Access strings written over the line text strings of the mutated objects of
/// [`core_descriptions_match_llvm_objdump_on_every_type_and_kind`]: good ones, and each way llvm
/// can fail to read one.
const ACCESS: [&str; 20] = [
    "0",
    "0:0",
    "0:1",
    "1",
    "0:0:0",
    "0:1:0",
    "2:1",
    "0:",
    "",
    ":1",
    "x",
    "0;1",
    "0:99",
    "0:1:2:3",
    "4294967297:1",
    "18446744073709551616",
    "1:0:0",
    "4294967295",
    "0:4294967295",
    "0:2147483648",
];

/// `prog-{el,eb}.o` with its CO-RE records replaced by `variants` (kind, type id, index into
/// [`ACCESS`]): the `.BTF.ext` core_relo area is pointed at the line_info area (same 16-byte
/// records, one per instruction with a source line) and the line_info area emptied, and the
/// access strings are written over line text strings (which nothing reads once line_info is
/// gone). One object per chunk of as many variants as there are records.
fn mutated_objects(name: &str, variants: &[(u32, u32, usize)]) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(data(name)).unwrap();
    let obj = BpfObject::parse(&bytes).unwrap();
    let big = obj.endian() == bpfpatch_insn::Endian::Big;
    let rd = |b: &[u8], at: usize| {
        let w: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if big { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) }
    };
    let wr = |b: &mut [u8], at: usize, v: u32| {
        b[at..at + 4].copy_from_slice(&if big { v.to_be_bytes() } else { v.to_le_bytes() });
    };
    let section = |n: &str| {
        let i = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(n)).unwrap();
        obj.section_headers()[i].offset as usize
    };
    let (btf, ext) = (section(".BTF"), section(".BTF.ext"));
    let strings = btf + rd(&bytes, btf + 4) as usize + rd(&bytes, btf + 16) as usize;
    // Line text strings, distinct, longest first: each takes one access string.
    let mut texts: Vec<(usize, u32)> = obj
        .btf_ext()
        .unwrap()
        .line_info()
        .blocks
        .iter()
        .flat_map(|b| &b.records)
        .map(|l| (obj.btf().unwrap().string(l.line_off).unwrap().len(), l.line_off))
        .collect();
    texts.sort_unstable();
    texts.dedup();
    texts.reverse();
    // The longest access string into the longest text, and so on down.
    let mut by_len: Vec<usize> = (0..ACCESS.len()).collect();
    by_len.sort_by_key(|&i| std::cmp::Reverse(ACCESS[i].len()));
    let mut base = bytes.clone();
    let mut access_off = vec![0; ACCESS.len()];
    for (&i, &(len, off)) in by_len.iter().zip(&texts) {
        assert!(ACCESS[i].len() <= len, "{:?} does not fit in {texts:?}", ACCESS[i]);
        let at = strings + off as usize;
        base[at..at + ACCESS[i].len()].copy_from_slice(ACCESS[i].as_bytes());
        base[at + ACCESS[i].len()] = 0;
        access_off[i] = off;
    }
    assert!(texts.len() >= ACCESS.len(), "{texts:?}");
    let hdr_len = rd(&base, ext + 4) as usize;
    let (line_off, line_len) = (rd(&base, ext + 16), rd(&base, ext + 20));
    wr(&mut base, ext + 24, line_off);
    wr(&mut base, ext + 28, line_len);
    wr(&mut base, ext + 20, 0);
    // The records: after the record size, blocks of (name, count, records).
    let (start, end) = (ext + hdr_len + line_off as usize, ext + hdr_len + (line_off + line_len) as usize);
    let rec_size = rd(&base, start) as usize;
    let mut records = Vec::new();
    let mut p = start + 4;
    while p < end {
        let n = rd(&base, p + 4) as usize;
        records.extend((0..n).map(|i| p + 8 + i * rec_size));
        p += 8 + n * rec_size;
    }
    variants
        .chunks(records.len())
        .map(|chunk| {
            let mut b = base.clone();
            for (&at, &(kind, type_id, access)) in records.iter().zip(chunk) {
                wr(&mut b, at + 4, type_id);
                wr(&mut b, at + 8, access_off[access]);
                wr(&mut b, at + 12, kind);
            }
            b
        })
        .collect()
}

/// llvm-objdump is the oracle of every CO-RE description, failures included: prog's CO-RE
/// records rewritten to every type id (and two past the table) under a field, a type and an
/// enum-value kind with several access strings, and to every kind (and unknown ones) with
/// every access string in [`ACCESS`] (not numbers, bad delimiters, too long, out of range,
/// overflowing), in both byte orders; `disasm` prints what llvm-objdump-19 prints, line for line.
#[test]
fn core_descriptions_match_llvm_objdump_on_every_type_and_kind() {
    if !bpfpatch_testkit::require_tool("llvm-objdump-19") {
        return;
    }
    let (mut lines, mut core, mut differing) = (0, 0, Vec::new());
    for name in ["prog-el.o", "prog-eb.o"] {
        let obj = BpfObject::parse(&std::fs::read(data(name)).unwrap()).unwrap();
        let ntypes = obj.btf_types().unwrap().unwrap().len() as u32;
        let mut variants = Vec::new();
        for type_id in (0..ntypes + 2).chain([0x7fff_ffff, 0x8000_0000, u32::MAX]) {
            for kind in [0, 8, 11] {
                for access in 0..6 {
                    variants.push((kind, type_id, access));
                }
            }
        }
        for kind in (0..=14).chain([0x8000_0000, u32::MAX]) {
            for type_id in [38, 1] {
                for access in 0..ACCESS.len() {
                    variants.push((kind, type_id, access));
                }
            }
        }
        for (i, b) in mutated_objects(name, &variants).iter().enumerate() {
            let f = temp_file(&format!("core-{i}-{name}"), b);
            let c = compare_with_llvm(&f);
            lines += c.lines;
            core += c.core;
            differing.extend(c.differing);
        }
    }
    // A type table that does not read (the first type claims 0xffff members): llvm-objdump
    // reports it and lists no CO-RE line; so do we, with a warning.
    for name in ["prog-el.o", "prog-eb.o"] {
        let mut b = std::fs::read(data(name)).unwrap();
        let obj = BpfObject::parse(&b).unwrap();
        let i = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(".BTF")).unwrap();
        let big = obj.endian() == bpfpatch_insn::Endian::Big;
        let sec = obj.section_headers()[i].offset as usize;
        let w: [u8; 4] = b[sec + 8..sec + 12].try_into().unwrap();
        let type_off = if big { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) } as usize;
        // The first type's `info`, after its name offset.
        let at = sec + obj.btf().unwrap().hdr_len() as usize + type_off + 4;
        let info: u32 = 4 << 24 | 0xffff;
        b[at..at + 4].copy_from_slice(&if big { info.to_be_bytes() } else { info.to_le_bytes() });
        let f = temp_file(&format!("bad-types-{name}"), &b);
        let c = compare_with_llvm(&f);
        assert!(c.differing.is_empty() && c.lines > 50 && c.core == 0, "{:#?}", c.differing);
        lines += c.lines;
        let err = String::from_utf8(
            bpfpatch().args(["disasm", "--no-lines"]).arg(&f).assert().success().get_output().stderr.clone(),
        )
        .unwrap();
        assert!(err.contains("warning:") && err.contains("CO-RE relocations are not listed"), "{err}");
    }
    println!(
        "CO-RE descriptions vs llvm-objdump-19: {lines} lines ({core} CO-RE) compared, {} differing",
        differing.len()
    );
    assert!(core > 1000, "{core}");
    let shown: Vec<&String> = differing.iter().take(40).collect();
    assert!(differing.is_empty(), "{} differing lines, the first:\n{shown:#?}", differing.len());
}

/// Calls from another section into `.text` of an object whose functions are untyped symbols
/// (clang before 10), one through the section symbol: the full object pipeline keeps the code
/// they reach, every call still lands on its function's (rewritten) first instruction, and
/// the result passes `check --internal`.
#[test]
fn rewrite_keeps_the_code_other_sections_call() {
    for name in ["notype-el.o", "notype-eb.o"] {
        let out = temp_dir().join(format!("rw-{name}"));
        let report = json(bpfpatch().arg("rewrite").arg(data(name)).arg("-o").arg(&out).args([
            "--passes",
            "dce,fixups,zext",
            "--blind",
            "--xlated",
            "--json",
        ]));
        assert_eq!(report["total"]["deleted"], 0, "{name}: nothing is dead\n{report}");
        assert_eq!(report["relocs_dropped"].as_array().map(Vec::len), Some(0), "{name}");
        stdout(bpfpatch().args(["check", "--internal"]).arg(&out));
        let obj = BpfObject::parse(&std::fs::read(&out).unwrap()).unwrap();
        let text = obj.program_by_name(".text").unwrap();
        let xdp = obj.program_by_name("xdp").unwrap().1;
        let sym = |n: &str| obj.symbols().iter().find(|s| s.name == n).unwrap().value as i64 / 8;
        let targets: Vec<i64> = xdp
            .relocs()
            .iter()
            .map(|r| {
                let s = &obj.symbols()[r.symbol as usize];
                s.value as i64 / 8 + i64::from(xdp.insns()[r.slot].imm) + 1
            })
            .collect();
        // global_fn keeps its symbol; local_fn (called through `.text`) is its old start's
        // image: after global_fn's exit.
        assert_eq!(targets[0], sym("global_fn"), "{name}");
        assert!(targets[1] > sym("global_fn") && targets[1] < text.1.insns().len() as i64, "{name}: {targets:?}");
        let exit = bpfpatch_insn::opcode::JMP | bpfpatch_insn::opcode::EXIT;
        assert_eq!(text.1.insns()[targets[1] as usize - 1].code, exit, "{name}: local_fn follows an exit");
    }
}

/// An empty `.text` is nothing to rewrite, and `LD_ABS`/`LD_IND` in a program with a
/// bpf-to-bpf call are left as they are and reported (text and JSON), where `run` would
/// refuse the program.
#[test]
fn rewrite_handles_empty_text_and_keeps_ld_abs_with_calls() {
    for name in ["ldabs-el.o", "ldabs-eb.o"] {
        let out = temp_dir().join(format!("rw-{name}"));
        let args = ["--passes", "dce,fixups,zext", "--blind", "--xlated"];
        let text = stdout(bpfpatch().arg("rewrite").arg(data(name)).arg("-o").arg(&out).args(args));
        assert!(text.contains("socket: 2 LD_ABS/LD_IND left as they are"), "{name}: {text}");
        let report = json(bpfpatch().arg("rewrite").arg(data(name)).arg("-o").arg(&out).args(args).arg("--json"));
        let sections = report["sections"].as_array().unwrap();
        assert_eq!(sections[0]["section"], ".text");
        assert_eq!((sections[0]["slots_before"].as_u64(), sections[0]["slots_after"].as_u64()), (Some(0), Some(0)));
        assert_eq!(sections[1]["skipped"], 2, "{report}");
        assert_eq!(report["total"]["skipped"], 2);
        stdout(bpfpatch().args(["check", "--internal"]).arg(&out));
        let obj = BpfObject::parse(&std::fs::read(&out).unwrap()).unwrap();
        let socket = obj.program_by_name("socket").unwrap().1;
        let ld_packet = |code: u8| code & 0x07 == 0 && matches!(code & 0xe0, 0x20 | 0x40);
        assert_eq!(socket.insns().iter().filter(|i| ld_packet(i.code)).count(), 2, "{name}: kept");
    }
}

/// The corpus objects that once failed `rewrite --passes dce,fixups,zext --blind` or its check:
/// clang-7 objects with untyped functions called from other sections, LD_ABS with calls, an
/// empty `.text` next to CO-RE placeholders. Skipped when the corpus is absent.
#[test]
fn rewrite_regressions_from_the_corpus() {
    let Some(files) = corpus() else { return };
    let wanted = [
        "testdata__loader-clang-7-el.elf",
        "testdata__loader-clang-7-eb.elf",
        "tailcall_bpf2bpf3.o",
        "btf__testdata__relocs-el.elf",
    ];
    let picked: Vec<&PathBuf> =
        files.iter().filter(|f| f.file_name().is_some_and(|n| wanted.iter().any(|w| n == *w))).collect();
    assert!(!picked.is_empty(), "corpus without the regression objects");
    for f in picked {
        let out = temp_dir().join(format!("reg-{}", f.file_name().unwrap().to_string_lossy()));
        let report = json(bpfpatch().arg("rewrite").arg(f).arg("-o").arg(&out).args([
            "--passes",
            "dce,fixups,zext",
            "--blind",
            "--xlated",
            "--json",
        ]));
        stdout(bpfpatch().args(["check", "--internal"]).arg(&out));
        let name = f.file_name().unwrap().to_string_lossy();
        if name.starts_with("testdata__loader-clang-7") {
            // `.text`'s global_fn is called from xdp: nothing of `.text` is dead.
            assert_eq!(report["sections"][0]["deleted"], 0, "{name}: {report}");
        }
        if name.starts_with("btf__testdata__relocs") {
            // `if (local type id == 0) return __LINE__;` for many types: the branches on the CO-RE
            // placeholders are not decided before the loader fills them in. (Other sections
            // compare one relocated value twice: the second test is decided by the first.)
            let ids = report["sections"].as_array().unwrap().iter().find(|s| s["section"] == "socket_filter/type_ids");
            assert_eq!(ids.unwrap()["deleted"], 0, "{name}: {report}");
        }
    }
}

/// The bench's `pipeline` workload rewrites the corpus's largest objects exactly as
/// `bpfpatch rewrite --passes all --blind` does (same slots in and out); without the objects
/// it says it skipped them.
#[test]
fn bench_pipeline_workload_is_the_rewrite_of_the_largest_objects() {
    let dir = std::env::temp_dir().join(format!("bpfpatch-bench-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bench = |corpus: &Path, json: &Path| {
        let out = bpfpatch()
            .args(["bench", "--sizes", "500", "--impls", "bpfpatch", "--runs", "1", "--cold-runs", "0", "--corpus"])
            .arg(corpus)
            .arg("--json")
            .arg(json)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stdout).unwrap()
    };
    // A corpus folder without the objects (a folder that does not exist is an error).
    let empty = dir.join("empty-corpus");
    std::fs::create_dir_all(&empty).unwrap();
    let absent = bench(&empty, &dir.join("absent.json"));
    assert!(absent.contains("pipeline: skipped"), "{absent}");
    let Some(files) = corpus() else { return };
    let Some(root) = files.first().and_then(|f| f.ancestors().find(|a| a.join("selftests").is_dir())) else {
        bpfpatch_testkit::skip("the corpus's selftests objects (scripts/corpus.sh)", &files[0].display().to_string());
        return;
    };
    let json = dir.join("b.json");
    let text = bench(root, &json);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows: Vec<_> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["workload"].as_str().unwrap().starts_with("pipeline:"))
        .cloned()
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    for r in &rows {
        let name = r["workload"].as_str().unwrap().trim_start_matches("pipeline:");
        assert!(text.contains(name), "{text}");
        let input = root.join("selftests").join(format!("{name}.o"));
        let out = bpfpatch()
            .args(["rewrite", "--passes", "all", "--blind", "--xlated", "--json", "-o"])
            .arg(dir.join(format!("{name}.o")))
            .arg(&input)
            .assert()
            .success()
            .get_output()
            .clone();
        let rw: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["insns_in"], rw["total"]["slots_before"], "{name}");
        assert_eq!(r["insns_out"], rw["total"]["slots_after"], "{name}");
        assert!(r["patches"].as_u64().unwrap() > 0 && r["runs"] == 1 && r["regime"] == "warm", "{r}");
    }
}

/// `run` on objects: a self-contained program section runs (calls inside the section resolved
/// as a loader would), in both byte orders and after the passes; one that needs a loader, or an
/// ambiguous choice of section, is one error line naming why.
#[test]
fn run_reads_self_contained_programs_of_objects() {
    for order in ["el", "eb"] {
        let notype = data(&format!("notype-{order}.o"));
        for extra in [&[][..], &["--passes", "all", "--blind"][..]] {
            bpfpatch().args(["run", "--section", ".text"]).args(extra).arg(&notype).assert().success().stdout("0x2\n");
        }
        let err = |args: &[&str], file: &Path| {
            let out = bpfpatch().arg("run").args(args).arg(file).assert().code(1).get_output().clone();
            let e = String::from_utf8(out.stderr).unwrap();
            assert_eq!(e.lines().count(), 1, "{e}");
            e
        };
        let prog = data(&format!("prog-{order}.o"));
        assert!(err(&[], &prog).contains("3 program sections (.text, xdp, tc); choose one with --section"));
        assert!(err(&["--section", "xdp"], &prog).contains(
            "section `xdp`: slot 5 has relocation R_BPF_64_64 against `limit`: only self-contained programs run"
        ));
        // A call to another section's code needs a loader.
        assert!(err(&["--section", "xdp"], &notype).contains("slot 1 has relocation R_BPF_64_32 against `global_fn`"));
        assert!(err(&["--section", "nope"], &prog).contains("no program section `nope`"));
    }
}

/// `zext` in an object knows what programs of other sections pass to the `.text` functions
/// they call (test_pkt_access.o: `test_pkt_write_access_subprog(skb, off)`,
/// `test_pkt_access_subprog3(val, skb)`): the 32-bit context loads there (`skb->data`,
/// `skb->data_end`, `skb->ifindex`) get no zero-extension, as in the kernel, which verifies
/// those functions as part of the calling program; 32-bit results that are not context loads
/// still get theirs.
#[test]
fn zext_skips_context_loads_through_arguments_from_other_sections() {
    let Some(files) = corpus() else { return };
    let Some(f) = files.iter().find(|f| f.ends_with("selftests/test_pkt_access.o")) else {
        bpfpatch_testkit::inputs::skip("test_pkt_access.o", "not in the corpus");
        return;
    };
    let out = temp_dir().join("pkt-access-zext.o");
    bpfpatch().args(["rewrite", "--xlated", "--passes", "zext"]).arg(f).arg("-o").arg(&out).assert().success();
    let obj = BpfObject::parse(&std::fs::read(&out).unwrap()).unwrap();
    let (_, text) = obj.program_by_name(".text").unwrap();
    let insns = text.insns();
    // The kernel-internal zero-extension: `mov32 r, r` with imm = 1.
    let zext_of = |k: usize, r| insns.get(k).is_some_and(|z| z.code == 0xbc && z.imm == 1 && z.dst_reg() == r);
    let (mut ctx_loads, mut zexts) = (0, 0);
    for (k, i) in insns.iter().enumerate() {
        // ldxw: every 32-bit load of this .text is from the context (its functions' skb).
        if i.code == 0x61 {
            ctx_loads += 1;
            assert!(!zext_of(k + 1, i.dst_reg()), "slot {k}: zext after a context load");
        }
        zexts += usize::from(zext_of(k, i.dst_reg()));
    }
    assert!(ctx_loads >= 6, "{ctx_loads} context loads");
    assert!(zexts > 0, "the pass zero-extends other 32-bit results");
}
