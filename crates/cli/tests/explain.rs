//! `bpfpatch rewrite --explain`: every instruction's old slot -> new slot and the pass that
//! changed it. Checked against the input and output objects themselves, not against what the
//! recorder says of itself: every instruction of the output appears once, in order; every
//! instruction of the input appears once (kept, replaced or deleted); a kept instruction is the
//! input's, bit for bit but for its PC-relative field; and with one pass, every change is that
//! pass's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use bpfpatch_cli::pipeline::Passes;
use bpfpatch_cli::provenance::{Change, SlotChange};
use bpfpatch_insn::{Insn, TargetField};
use bpfpatch_object::{BpfObject, RewriteOptions, Rewriter};
use bpfpatch_passes::OutputKind;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../object/tests/data")).join(name)
}

/// First slots of the instructions of `insns`.
fn heads(insns: &[Insn]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < insns.len() {
        v.push(i);
        i += if insns[i].is_ld_imm64() { 2 } else { 1 };
    }
    v
}

fn strip(i: &Insn) -> Insn {
    let mut i = *i;
    match i.target_field() {
        Some((TargetField::Off, _)) => i.off = 0,
        Some((TargetField::Imm, _)) => i.imm = 0,
        None => {}
    }
    i
}

/// Checks the rows of one program against its input and output; returns the rows' passes.
/// `relocated`: the input's relocated slots (a local function address's immediate is the
/// section offset the linker follows: it may change where the instruction is kept).
fn check_rows(what: &str, orig: &[Insn], new: &[Insn], relocated: &[usize], rows: &[SlotChange]) {
    let news: Vec<usize> = rows.iter().filter_map(|r| r.new).collect();
    assert_eq!(news, heads(new), "{what}: every output instruction once, in order");
    let mut olds: Vec<usize> =
        rows.iter().filter(|r| r.change != Change::Inserted).map(|r| r.old.expect("an original slot")).collect();
    assert!(olds.is_sorted(), "{what}: input instructions keep their order (deleted ones where they were)");
    olds.dedup();
    assert_eq!(olds, heads(orig), "{what}: every input instruction once (kept, replaced or deleted)");
    for r in rows {
        match r.change {
            Change::Kept => {
                let (o, n) = (r.old.unwrap(), r.new.unwrap());
                let w = if orig[o].is_ld_imm64() { 2 } else { 1 };
                let imm = |i: &Insn| {
                    let mut i = strip(i);
                    if relocated.contains(&o) {
                        i.imm = 0;
                    }
                    i
                };
                let same = orig[o..o + w].iter().map(imm).eq(new[n..n + w].iter().map(imm));
                assert!(same, "{what}: kept {o} -> {n} is the input's instruction");
                assert!(r.pass.is_none(), "{what}: a kept instruction names no pass");
            }
            Change::Deleted => assert!(r.new.is_none() && r.pass.is_some(), "{what}: {r:?}"),
            Change::Replaced | Change::Inserted => {
                let n = r.new.expect("a new slot");
                // Only the linearization's jump relaxation makes code of no pass.
                assert!(r.pass.is_some() || new[n].target_field().is_some(), "{what}: {r:?} names its pass");
            }
        }
        if let (Change::Replaced, Some(o), Some(n)) = (r.change, r.old, r.new) {
            assert_ne!(strip(&orig[o]), strip(&new[n]), "{what}: replaced {o} -> {n} differs from the input");
        }
        if let (Change::Inserted, Some(p)) = (r.change, r.old) {
            assert!(p < orig.len(), "{what}: the parent of an inserted instruction is an input slot: {r:?}");
        }
    }
}

/// Rewrites `obj` with `list` and checks every program's explanation; returns the rows.
fn explain(what: &str, bytes: &[u8], list: &str, blind: bool, kind: OutputKind) -> Vec<SlotChange> {
    let mut obj = BpfObject::parse(bytes).unwrap();
    let mut passes = Passes::for_output(list, blind, kind).unwrap().explaining();
    passes.for_object(&obj);
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    let mut all = Vec::new();
    for p in 0..obj.programs().len() {
        let orig = obj.programs()[p].insns().to_vec();
        let relocated = obj.relocated_slots(p);
        let Ok(r) = rw.rewrite_program(&mut obj, p, &mut |l, i| passes.run(l, i)) else { return all };
        let rec = passes.stats().iter().find(|s| s.index == p).and_then(|s| s.provenance.as_ref()).unwrap();
        let rows = rec.changes(&orig, &r.patched);
        assert_eq!(r.patched.program.insns, obj.programs()[p].insns(), "{what}: the rows describe the object's code");
        check_rows(&format!("{what} program {p} --passes {list}"), &orig, &r.patched.program.insns, &relocated, &rows);
        all.extend(rows);
    }
    all
}

/// One pass at a time: every change is that pass's (or the linearization's relaxation), and
/// the pass's own counts agree with the rows.
#[test]
fn one_pass_owns_every_change() {
    for f in ["prog-el.o", "prog-eb.o", "calls-el.o", "calls-eb.o"] {
        let bytes = std::fs::read(data(f)).unwrap();
        for (pass, kind) in [
            ("dce", OutputKind::Loadable),
            ("fixups", OutputKind::Xlated),
            ("zext", OutputKind::Xlated),
            ("blind", OutputKind::Xlated),
        ] {
            let (list, blind) = if pass == "blind" { ("none", true) } else { (pass, false) };
            let rows = explain(f, &bytes, list, blind, kind);
            for r in rows.iter().filter(|r| r.change != Change::Kept) {
                assert_eq!(r.pass.map(|p| p.name()), Some(pass), "{f} {pass}: {r:?}");
            }
            if matches!(pass, "zext" | "blind") {
                assert!(rows.iter().any(|r| r.change == Change::Inserted), "{f} {pass}: the pass inserts code here");
            }
        }
    }
}

/// A pipeline names each change's own pass: in `--xlated --passes all --blind`, blinding's
/// inserted `r11 = ...` moves are blind's, zero-extensions are zext's, and deletions dce's.
#[test]
fn pipeline_attributes_each_pass() {
    let bytes = std::fs::read(data("prog-el.o")).unwrap();
    let rows = explain("prog-el.o", &bytes, "all", true, OutputKind::Xlated);
    let by = |p: &str| rows.iter().filter(|r| r.pass.is_some_and(|x| x.name() == p)).count();
    assert!(by("blind") > 0 && by("zext") > 0, "both passes changed something: {rows:?}");
    assert!(rows.iter().filter(|r| r.change == Change::Deleted).all(|r| r.pass.is_some_and(|p| p.name() == "dce")));
}

/// Every corpus object, loadable `all` and `--xlated all --blind`: the rows describe the input
/// and output exactly.
#[test]
fn corpus_rows_describe_input_and_output() {
    let Some(files) = bpfpatch_testkit::corpus::corpus() else { return };
    let mut rows = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        if BpfObject::parse(&bytes).is_err() {
            continue;
        }
        let what = f.display().to_string();
        rows += explain(&what, &bytes, "all", false, OutputKind::Loadable).len();
        rows += explain(&what, &bytes, "all", true, OutputKind::Xlated).len();
    }
    assert!(rows > 100_000, "the corpus was explained ({rows} rows)");
}

/// The command: text rows with their marks, the per-pass table, and the JSON form.
#[test]
fn command_prints_rows_and_pass_table() {
    let out = std::env::temp_dir().join(format!("bpfpatch-explain-{}.o", std::process::id()));
    let o = Command::cargo_bin("bpfpatch")
        .unwrap()
        .arg("rewrite")
        .arg(data("prog-el.o"))
        .arg("-o")
        .arg(&out)
        .args(["--xlated", "--passes", "zext", "--explain"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("pass ") && l.contains("prepatched")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("zext ")), "{text}");
    assert!(text.contains(".text: 43 -> "), "{text}");
    assert!(text.lines().any(|l| l.contains(" + zext ") && l.trim_start().starts_with('(')), "{text}");
    let o = Command::cargo_bin("bpfpatch")
        .unwrap()
        .arg("rewrite")
        .arg(data("prog-el.o"))
        .arg("-o")
        .arg(&out)
        .args(["--xlated", "--passes", "zext", "--explain", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let programs = v["explain"].as_array().unwrap();
    assert_eq!(programs.len(), 3, "{v}");
    let inserted = programs
        .iter()
        .flat_map(|p| p["rows"].as_array().unwrap())
        .filter(|r| r["change"] == "inserted" && r["pass"] == "zext")
        .count();
    let zext = v["pass_totals"].as_array().unwrap().iter().find(|p| p["pass"] == "zext").unwrap();
    assert!(inserted > 0 && zext["patched"].as_u64().unwrap() > 0, "{v}");
    std::fs::remove_file(&out).ok();
}

/// Dead code removed by `dce`, in the middle (behind a `goto`) and at the end: each deleted
/// instruction is dce's and sits where it was, between the instructions around it.
#[test]
fn deleted_instructions_sit_where_they_were() {
    use bpfpatch_insn::Endian;
    let mov = |imm| Insn::new(0xb7, 0, 0, 0, imm); // r0 = imm
    let (goto2, exit) = (Insn::new(0x05, 0, 0, 2, 0), Insn::new(0x95, 0, 0, 0, 0));
    let jeq = Insn::new(0x15, 1, 0, 1, 0); // if r1 == 0 goto +1
    for prog in [
        vec![mov(0), goto2, mov(1), mov(2), exit],
        vec![mov(0), exit, mov(1), exit],
        vec![mov(0), jeq, mov(3), exit, mov(1), exit],
    ] {
        let mut passes = Passes::for_output("dce", false, OutputKind::Loadable).unwrap().explaining();
        let mut rw = Rewriter::new(RewriteOptions { relax: true });
        let r = rw.rewrite_image_patched(&prog, Endian::Little, &mut |l, i| passes.run(l, i)).unwrap();
        let rows = passes.stats()[0].provenance.as_ref().unwrap().changes(&prog, &r.patched);
        check_rows("image", &prog, &r.patched.program.insns, &[], &rows);
        let deleted: Vec<usize> = rows.iter().filter(|r| r.change == Change::Deleted).filter_map(|r| r.old).collect();
        assert_eq!(prog.len() - r.patched.program.insns.len(), deleted.len(), "{prog:?}: {rows:?}");
        assert!(!deleted.is_empty(), "{prog:?}: dce removes the dead code");
        assert!(rows.iter().filter(|r| r.change == Change::Deleted).all(|r| r.pass.is_some_and(|p| p.name() == "dce")));
    }
}

/// The report's table is as wide as its longest section name: on the corpus object with the
/// longest one, every row of both tables lines up (same length), the header included.
#[test]
fn report_columns_fit_long_section_names() {
    let Some(files) = bpfpatch_testkit::corpus::corpus() else { return };
    let longest = |f: &PathBuf| {
        let bytes = std::fs::read(f).unwrap();
        BpfObject::parse(&bytes).map_or(0, |o| o.programs().iter().map(|p| p.name().len()).max().unwrap_or(0))
    };
    let f = files.iter().max_by_key(|f| longest(f)).unwrap();
    assert!(longest(f) > 24, "{}: a name longer than the old fixed column", f.display());
    let out = std::env::temp_dir().join(format!("bpfpatch-report-{}.o", std::process::id()));
    let o = Command::cargo_bin("bpfpatch")
        .unwrap()
        .arg("rewrite")
        .arg(f)
        .arg("-o")
        .arg(&out)
        .args(["--xlated", "--passes", "all", "--blind"])
        .assert()
        .success()
        .get_output()
        .clone();
    std::fs::remove_file(&out).ok();
    let text = String::from_utf8(o.stdout).unwrap();
    for table in text.split("\n\n").take(2) {
        let lens: Vec<usize> = table.lines().filter(|l| !l.contains(" -> ")).map(str::len).collect();
        assert!(lens.len() > 1 && lens.iter().all(|&l| l == lens[0]), "columns line up:\n{text}");
    }
    assert!(text.contains("relocs_dropped") && !text.contains("relocs- "), "{text}");
}
