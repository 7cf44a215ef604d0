//! Corpus tests: every object under `corpus/build` (built by `scripts/corpus.sh`; the directory
//! can be overridden with `BPFPATCH_CORPUS`). A counted skip (`bpfpatch_testkit`) when the corpus is absent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod corpus_files;

use bpfpatch_object::{BpfObject, IdentityMap, check};
use corpus_files::corpus;
use std::path::PathBuf;

/// Identity round trip: parse + write gives the input byte for byte; re-encoding `.BTF.ext` and
/// replacing every program by itself (identity map) too; `check` finds nothing.
#[test]
fn corpus_identity_round_trip_and_check() {
    let Some(files) = corpus() else { return };
    let (mut ok, mut failed, mut insns, mut progs) = (0usize, Vec::new(), 0usize, 0usize);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let res = (|| -> Result<(usize, usize), String> {
            let obj = BpfObject::parse(&bytes).map_err(|e| format!("parse: {e}"))?;
            let out = obj.write().map_err(|e| format!("write: {e}"))?;
            if out != bytes {
                return Err(format!("identity write differs at byte {:?}", common::first_diff(&out, &bytes)));
            }
            if let Some(ext) = obj.btf_ext() {
                let (enc, _) = ext.encode().map_err(|e| format!("encode: {e}"))?;
                if enc != ext.raw() {
                    return Err(format!(
                        "BTF.ext canonical encoding differs at {:?}",
                        common::first_diff(&enc, ext.raw())
                    ));
                }
            }
            let mut obj2 = obj.clone();
            for pi in 0..obj2.programs().len() {
                let insns = obj2.programs()[pi].insns().to_vec();
                let n = insns.len();
                obj2.replace_program(pi, insns, &IdentityMap(n)).map_err(|e| format!("replace: {e}"))?;
            }
            let out2 = obj2.write().map_err(|e| format!("write after identity rewrite: {e}"))?;
            if out2 != bytes {
                return Err(format!("identity rewrite differs at byte {:?}", common::first_diff(&out2, &bytes)));
            }
            let findings = check(&obj);
            if let Some(f) = findings.first() {
                return Err(format!("check: {} findings, first: {f}", findings.len()));
            }
            Ok((obj.programs().iter().map(|p| p.insns().len()).sum(), obj.programs().len()))
        })();
        match res {
            Ok((n, p)) => {
                ok += 1;
                insns += n;
                progs += p;
            }
            Err(e) => failed.push(format!("{}: {e}", f.display())),
        }
    }
    println!("corpus: {} objects, {progs} program sections, {insns} instruction slots", files.len());
    for f in &failed {
        println!("FAILED {f}");
    }
    println!("identity round trip + check: {ok} passed, {} failed", failed.len());
    assert!(failed.is_empty());
}

/// Rewrites every program of every object by inserting `ja +0` before every instruction (the
/// reference rewriter in tests/common), then checks with the origin oracle that each relocation,
/// symbol, func_info, line_info and CO-RE record — and each relocated call or function address
/// into the rewritten section — points at the same instruction as before; the written object
/// re-parses, passes `check`, and its `.rel.BTF.ext` entries all sit on records. Programs whose
/// jumps no longer fit 16 bits after doubling are skipped and counted. With
/// `BPFPATCH_CORPUS_OUT=DIR` the rewritten objects are written there (for
/// `scripts/tool-acceptance.sh DIR --baseline corpus/build/objects`).
#[test]
fn corpus_nop_rewrite_keeps_every_table_on_its_instruction() {
    let Some(files) = corpus() else { return };
    let out_dir = std::env::var_os("BPFPATCH_CORPUS_OUT").map(PathBuf::from);
    let (mut ok, mut failed, mut skipped) = (0usize, Vec::new(), 0usize);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let res = (|| -> Result<(), String> {
            let mut obj = BpfObject::parse(&bytes).map_err(|e| format!("parse: {e}"))?;
            for pi in 0..obj.programs().len() {
                let before = obj.clone();
                let Some(rw) = common::rewrite(&before, pi, |_, _| common::Edit::NopBefore) else {
                    skipped += 1;
                    continue;
                };
                obj.replace_program(pi, rw.insns.clone(), &rw.map).map_err(|e| format!("replace: {e}"))?;
                common::verify_moved(&before, &obj, pi, &rw, &|_| false)?;
                common::verify_reloc_targets(&before, &obj, pi, &rw, &|_| false)?;
            }
            let out = obj.write().map_err(|e| format!("write: {e}"))?;
            let re = BpfObject::parse(&out).map_err(|e| format!("re-parse: {e}"))?;
            if let Some(f) = check(&re).first() {
                return Err(format!("check: {f}"));
            }
            if let Some(ext) = re.btf_ext() {
                ext.encode().map_err(|e| format!("re-parsed .BTF.ext: {e}"))?;
            }
            if let Some(dir) = &out_dir {
                // <out>/<group>/<file>, mirroring the corpus (for scripts/tool-acceptance.sh --baseline).
                let group = dir.join(f.parent().unwrap().file_name().unwrap());
                std::fs::create_dir_all(&group).unwrap();
                std::fs::write(group.join(f.file_name().unwrap()), &out).unwrap();
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
        "nop rewrite ({skipped} programs skipped: jumps out of 16-bit range): {ok} passed, {} failed",
        failed.len()
    );
    assert!(failed.is_empty());
}
