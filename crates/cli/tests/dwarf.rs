//! DWARF after `bpfpatch rewrite`: on every corpus object with `.debug_line`,
//! `llvm-objdump-19 -d -l -S` of the output shows beside every surviving original instruction
//! the source line it shows beside that instruction in the input (the oracle:
//! `bpfpatch_testkit::objdump`). Which old slot became which new slot comes from the engine's
//! offset map (`OffsetMap::insn`) of the same pipeline run in-process; the in-process output is
//! checked to be the CLI's, byte for byte.
//!
//! `BPFPATCH_DWARF_STEP=N` checks every Nth object only (default 1: all of them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assert_cmd::Command;
use bpfpatch_cli::pipeline::Passes;
use bpfpatch_insn::Slot;
use bpfpatch_object::{BpfObject, ProgramInfo, RewriteOptions, Rewriter};
use bpfpatch_passes::OutputKind;
use bpfpatch_patch::PatchList;
use bpfpatch_testkit::objdump::{self, Comparison};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A scratch folder of this process for test `name` (tests run concurrently).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfpatch-cli-dwarf-{}", std::process::id())).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The rewrite in-process: the output and, per section, `insn(old)` of the engine's map.
fn rewrite(bytes: &[u8], kind: OutputKind, blind: bool) -> (Vec<u8>, BTreeMap<String, Vec<Option<usize>>>) {
    let mut obj = BpfObject::parse(bytes).unwrap();
    let mut passes = Passes::for_output("all", blind, kind).unwrap();
    passes.for_object(&obj);
    let mut run = |list: &mut PatchList, info: &ProgramInfo<'_>| passes.run(list, info);
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    let mut maps = BTreeMap::new();
    for p in 0..obj.programs().len() {
        let name = obj.programs()[p].name().to_string();
        let n = obj.programs()[p].insns().len();
        let r = rw.rewrite_program(&mut obj, p, &mut run).unwrap();
        maps.insert(name, (0..n).map(|s| r.patched.map.insn(Slot(s)).map(|x| x.0)).collect());
    }
    // As `rewrite --xlated` does: the output says it is the kernel's internal form.
    if kind == OutputKind::Xlated {
        obj.mark_xlated();
    }
    (obj.write().unwrap(), maps)
}

fn has_debug_line(obj: &BpfObject) -> bool {
    (0..obj.section_headers().len())
        .any(|i| obj.section_name(i) == Some(".debug_line") && obj.section_headers()[i].size > 0)
}

/// One object, one pipeline: the CLI's output and JSON report, the in-process map, the listings.
fn check_one(path: &Path, before: &objdump::Listing, out: &Path, xlated: bool, total: &mut Comparison) {
    let bytes = std::fs::read(path).unwrap();
    let kind = if xlated { OutputKind::Xlated } else { OutputKind::Loadable };
    let mut cmd = Command::cargo_bin("bpfpatch").unwrap();
    cmd.arg("rewrite").arg(path).arg("-o").arg(out).args(["--passes", "all", "--json"]);
    if xlated {
        cmd.args(["--xlated", "--blind"]);
    }
    let res = cmd.assert().success();
    let report: serde_json::Value = serde_json::from_slice(&res.get_output().stdout).unwrap();
    assert_eq!(report["dwarf_dropped"], serde_json::json!([]), "{}: {report}", path.display());
    let (mine, maps) = rewrite(&bytes, kind, xlated);
    assert!(std::fs::read(out).unwrap() == mine, "{}: the CLI's output is not the pipeline's", path.display());
    let after = objdump::listing(out, &[]).unwrap();
    let c = objdump::compare(before, &after, &maps);
    total.checked += c.checked;
    total.with_line += c.with_line;
    for m in c.mismatches {
        let how = if xlated { "--xlated --blind" } else { "loadable" };
        total.mismatches.push(format!("{} ({how}): {m}", path.display()));
    }
}

/// Checks `files` (those with `.debug_line`) under both pipelines; returns the objects checked.
fn check_files(files: &[&PathBuf], dir: &Path, total: &mut Comparison) -> usize {
    let mut objects = 0;
    for path in files {
        let Ok(obj) = BpfObject::parse(&std::fs::read(path).unwrap()) else { continue };
        if !has_debug_line(&obj) {
            continue;
        }
        objects += 1;
        let before = objdump::listing(path, &[]).unwrap();
        for xlated in [false, true] {
            check_one(path, &before, &dir.join("out.o"), xlated, total);
        }
    }
    objects
}

#[test]
fn corpus_source_lines_survive_rewrite() {
    let Some(files) = bpfpatch_testkit::corpus::corpus() else { return };
    if !bpfpatch_testkit::require_tool("llvm-objdump-19") {
        return;
    }
    let step = std::env::var("BPFPATCH_DWARF_STEP").ok().and_then(|s| s.parse().ok()).unwrap_or(1usize).max(1);
    let files: Vec<&PathBuf> = files.iter().step_by(step).collect();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(4);
    let dir = temp_dir("corpus");
    let results: Vec<(usize, Comparison)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<&PathBuf> = files.iter().skip(t).step_by(threads).copied().collect();
                let d = dir.join(t.to_string());
                std::fs::create_dir_all(&d).unwrap();
                s.spawn(move || {
                    let mut c = Comparison::default();
                    (check_files(&mine, &d, &mut c), c)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let _ = std::fs::remove_dir_all(&dir);
    let mut total = Comparison::default();
    let mut objects = 0;
    for (n, c) in results {
        objects += n;
        total.checked += c.checked;
        total.with_line += c.with_line;
        total.mismatches.extend(c.mismatches);
    }
    eprintln!(
        "dwarf corpus: {objects} objects with .debug_line, 2 pipelines each: {} surviving instructions compared ({} beside a source line), {} mismatches",
        total.checked,
        total.with_line,
        total.mismatches.len()
    );
    assert!(objects > 0, "no corpus object has .debug_line");
    assert!(total.with_line > 0);
    let first = &total.mismatches[..total.mismatches.len().min(20)];
    assert!(total.mismatches.is_empty(), "{} mismatches, first: {first:#?}", total.mismatches.len());
}

/// A line table bpfpatch cannot remap is dropped and said so, in the text report and in
/// `--json`, never left stale.
#[test]
fn a_dropped_line_table_is_reported() {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../object/tests/data/dwarf-el.o"));
    let mut bytes = std::fs::read(&path).unwrap();
    let obj = BpfObject::parse(&bytes).unwrap();
    let i = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(".debug_line")).unwrap();
    let at = usize::try_from(obj.section_headers()[i].offset).unwrap() + 13;
    assert_eq!(bytes[at], 1, "maximum_operations_per_instruction");
    bytes[at] = 2;
    let dir = temp_dir("dropped");
    let (input, out) = (dir.join("vliw.o"), dir.join("vliw-out.o"));
    std::fs::write(&input, &bytes).unwrap();
    let run = |json: bool| {
        let mut cmd = Command::cargo_bin("bpfpatch").unwrap();
        cmd.arg("rewrite").arg(&input).arg("-o").arg(&out).args(["--xlated", "--passes", "all", "--blind"]);
        if json {
            cmd.arg("--json");
        }
        String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
    };
    let text = run(false);
    assert!(text.contains("DWARF section .debug_line dropped"), "{text}");
    let report: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    let dropped = report["dwarf_dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{report}");
    assert_eq!(dropped[0]["section"], ".debug_line");
    assert!(dropped[0]["reason"].as_str().unwrap().contains("VLIW"));
    let written = BpfObject::parse(&std::fs::read(&out).unwrap()).unwrap();
    let k = (0..written.section_headers().len()).find(|&k| written.section_name(k) == Some(".debug_line")).unwrap();
    assert_eq!(written.section_headers()[k].size, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
