//! The engine bridge over the corpus (`corpus/build/objects`, built by `scripts/corpus.sh`; the
//! directory can be overridden with `BPFPATCH_CORPUS`). A counted skip (`bpfpatch_testkit`) when absent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod engine_common;

use bpfpatch_insn::{Insn, opcode as c};
use bpfpatch_object::{BpfObject, ProgramInfo, RelocRole, RewriteOptions, Rewriter};
use bpfpatch_patch::{PatchBuf, PatchList, PrepatchMode};
use bpfpatch_testkit::corpus::corpus;
use std::convert::Infallible;
use std::path::PathBuf;

/// `rewrite --passes none` through the library: every object's programs go through the view,
/// the patch list, linearization and back; the written object is the input, byte for byte (so
/// every section is identical). Every relocated local call or function address of the view
/// targets a function symbol's start (libbpf's arithmetic agrees with the symbols).
#[test]
fn corpus_identity_through_the_engine() {
    let Some(files) = corpus() else { return };
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    let (mut ok, mut failed, mut local) = (0usize, Vec::new(), 0usize);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let res = (|| -> Result<(), String> {
            let mut obj = BpfObject::parse(&bytes).map_err(|e| format!("parse: {e}"))?;
            for pi in 0..obj.programs().len() {
                let subs = obj.subprograms(pi);
                for (slot, role) in obj.engine_view(pi).map_err(|e| e.to_string())?.roles() {
                    if let RelocRole::LocalCall { target } | RelocRole::LocalFuncAddr { target } = role {
                        local += 1;
                        if !subs.iter().any(|s| s.start == *target) {
                            return Err(format!("slot {slot}: {role} is not a function start"));
                        }
                    }
                }
            }
            rw.rewrite_object(&mut obj, &mut |_: &mut PatchList, _: &ProgramInfo<'_>| Ok::<(), Infallible>(()))
                .map_err(|e| format!("rewrite: {e}"))?;
            let out = obj.write().map_err(|e| format!("write: {e}"))?;
            if let Some(at) = common::first_diff(&out, &bytes) {
                return Err(format!("output differs at byte {at}"));
            }
            Ok(())
        })();
        match res {
            Ok(()) => ok += 1,
            Err(e) => failed.push(format!("{}: {e}", f.display())),
        }
    }
    for f in &failed {
        println!("FAILED {f}");
    }
    println!(
        "identity through the engine ({local} local relocated calls/addresses): {ok} passed, {} failed",
        failed.len()
    );
    assert!(failed.is_empty());
}

/// A landing `ja +0` before every instruction of every program, through the engine with
/// relaxation, checked by the oracle and the engine's own tables (`engine_common`). With
/// `BPFPATCH_CORPUS_OUT=DIR` the rewritten objects are written there (mirroring the corpus,
/// for `scripts/tool-acceptance.sh`).
#[test]
fn corpus_engine_prepatch_keeps_every_table_on_its_instruction() {
    let Some(files) = corpus() else { return };
    let out_dir = std::env::var_os("BPFPATCH_CORPUS_OUT").map(PathBuf::from);
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    let nop = PatchBuf::from_insns(&[Insn::new(c::JMP | c::JA, 0, 0, 0, 0)]);
    let mut pass = |list: &mut PatchList, _: &ProgramInfo<'_>| {
        let nodes: Vec<_> = list.iter().map(|(n, _)| n).collect();
        for n in nodes {
            list.prepatch(n, &nop, PrepatchMode::LandOnInserted)?;
        }
        Ok::<(), bpfpatch_patch::Error>(())
    };
    let (mut ok, mut failed, mut relaxed) = (0usize, Vec::new(), 0usize);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let res = (|| -> Result<(), String> {
            let mut obj = BpfObject::parse(&bytes).map_err(|e| format!("parse: {e}"))?;
            let reports = engine_common::rewrite_checked(&mut obj, &mut rw, &mut pass)?;
            relaxed += reports.iter().map(|r| r.relaxed).sum::<usize>();
            if let Some(dir) = &out_dir {
                let group = dir.join(f.parent().unwrap().file_name().unwrap());
                std::fs::create_dir_all(&group).unwrap();
                std::fs::write(group.join(f.file_name().unwrap()), obj.write().unwrap()).unwrap();
            }
            Ok(())
        })();
        match res {
            Ok(()) => ok += 1,
            Err(e) => failed.push(format!("{}: {e}", f.display())),
        }
    }
    for f in &failed {
        println!("FAILED {f}");
    }
    println!("engine nop prepatch ({relaxed} jumps relaxed): {ok} passed, {} failed", failed.len());
    assert!(failed.is_empty());
}

/// The one remap path against its oracle: every corpus object rewritten with patches,
/// prepatches and deletions (every third unprotected instruction in a run of plain ALU ones
/// deleted, a landing `ja +0` before every seventh, every fifth ALU instruction patched into
/// itself and a `ja +0`), once with the records taken from the engine's remapped tables (the
/// rewrite path) and once moved by the object's own adjuster through the same map: the two
/// objects are byte-identical, and the report's counts agree.
#[test]
fn corpus_engine_tables_equal_the_adjusters() {
    let Some(files) = corpus() else { return };
    let nop = Insn::new(c::JMP | c::JA, 0, 0, 0, 0);
    let mut pass = |list: &mut PatchList, info: &ProgramInfo<'_>| {
        let nodes: Vec<_> = list.iter().collect();
        for (k, (n, insn)) in nodes.into_iter().enumerate() {
            let plain =
                matches!(insn.class(), c::ALU | c::ALU64) && list.origin(n).is_some_and(|s| !info.is_relocated(s.0));
            if plain && k % 3 == 1 {
                list.delete(n)?;
            } else if plain && k % 5 == 0 {
                list.patch(n, &PatchBuf::from_insns(&[insn, nop]))?;
            } else if k % 7 == 0 {
                list.prepatch(n, &PatchBuf::from_insns(&[nop]), PrepatchMode::LandOnInserted)?;
            }
        }
        Ok::<(), bpfpatch_patch::Error>(())
    };
    let (mut same, mut refused, mut line_dropped) = (0usize, 0usize, 0usize);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let Ok(mut a) = BpfObject::parse(&bytes) else { continue };
        let mut b = a.clone();
        let ra = Rewriter::new(RewriteOptions { relax: true }).rewrite_object(&mut a, &mut pass);
        let rb = Rewriter::new(RewriteOptions { relax: true }).by_adjuster().rewrite_object(&mut b, &mut pass);
        match (ra, rb) {
            (Ok(x), Ok(y)) => {
                let (x, y): (Vec<_>, Vec<_>) =
                    (x.into_iter().map(|r| r.object).collect(), y.into_iter().map(|r| r.object).collect());
                assert_eq!(x, y, "{}: reports", f.display());
                line_dropped += x.iter().map(|r| r.line_info_dropped).sum::<usize>();
                assert!(
                    a.write().unwrap() == b.write().unwrap(),
                    "{}: the two paths wrote different objects",
                    f.display()
                );
                same += 1;
            }
            (Err(x), Err(y)) => {
                assert_eq!(x.to_string(), y.to_string(), "{}", f.display());
                refused += 1;
            }
            (x, y) => panic!("{}: engine path {:?}, adjuster {:?}", f.display(), x.err(), y.err()),
        }
    }
    println!(
        "one remap path: {same} objects identical to the adjuster's ({line_dropped} line_info records collapsed), {refused} refused by both"
    );
    assert!(same > 100 && line_dropped > 0, "the corpus exercised the path");
}
