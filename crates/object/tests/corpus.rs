//! Corpus tests: every object under `corpus/build` (built by `scripts/corpus.sh`; the directory
//! can be overridden with `BPFPATCH_CORPUS`). A counted skip (`bpfpatch_testkit`) when the corpus is absent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_object::{BpfObject, IdentityMap, check};
use bpfpatch_testkit::corpus::corpus;
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

/// Our reading of a type against bpftool's (`bpftool btf dump file F -j`, libbpf's reader, which
/// swaps a foreign byte order itself): kind, name, referenced type or size, members, enumerators,
/// array tail. `None` when they agree, else what differs.
fn type_differs(btf: &bpfpatch_object::Btf, t: &bpfpatch_object::BtfType, j: &serde_json::Value) -> Option<String> {
    use bpfpatch_object::btf_kind as k;
    const KINDS: [&str; 20] = [
        "UNKNOWN",
        "INT",
        "PTR",
        "ARRAY",
        "STRUCT",
        "UNION",
        "ENUM",
        "FWD",
        "TYPEDEF",
        "VOLATILE",
        "CONST",
        "RESTRICT",
        "FUNC",
        "FUNC_PROTO",
        "VAR",
        "DATASEC",
        "FLOAT",
        "DECL_TAG",
        "TYPE_TAG",
        "ENUM64",
    ];
    let name = btf.string(t.name_off).ok()?;
    let name = if name.is_empty() { "(anon)".to_string() } else { name };
    let mut want = serde_json::json!({ "kind": KINDS.get(usize::from(t.kind()))?, "name": name });
    match t.kind() {
        k::PTR | k::TYPEDEF | k::VOLATILE | k::CONST | k::RESTRICT | k::FUNC | k::VAR | k::TYPE_TAG | k::DECL_TAG => {
            want["type_id"] = t.size_or_type.into();
        }
        k::FUNC_PROTO => want["ret_type_id"] = t.size_or_type.into(),
        k::INT | k::STRUCT | k::UNION | k::ENUM | k::ENUM64 | k::DATASEC | k::FLOAT => {
            want["size"] = t.size_or_type.into();
        }
        _ => {}
    }
    if let Some(a) = t.array() {
        want["type_id"] = a.elem_type.into();
        want["index_type_id"] = a.index_type.into();
        want["nr_elems"] = a.nelems.into();
    }
    let members: Vec<serde_json::Value> = t
        .members()
        .iter()
        .map(|m| {
            let (bits, size) = if t.kind_flag() { (m.offset & 0xff_ffff, m.offset >> 24) } else { (m.offset, 0) };
            let mut v = serde_json::json!({
                "name": btf.string(m.name_off).map(|n| if n.is_empty() { "(anon)".into() } else { n }).ok(),
                "type_id": m.type_id, "bits_offset": bits });
            if size != 0 {
                v["bitfield_size"] = size.into();
            }
            v
        })
        .collect();
    if !members.is_empty() {
        want["members"] = members.into();
    }
    let values: Vec<serde_json::Value> = t
        .enum_values()
        .iter()
        .map(|v| {
            // bpftool, like llvm, widens a 32-bit value as signed even in an unsigned enum
            // (`D = 4294967295` prints 18446744073709551615), which is what `bits` holds.
            let val: serde_json::Value = if t.kind_flag() { v.bits.cast_signed().into() } else { v.bits.into() };
            serde_json::json!({ "name": btf.string(v.name_off).ok(), "val": val })
        })
        .collect();
    if !values.is_empty() {
        want["values"] = values.into();
    }
    let got = j.as_object()?;
    for (key, w) in want.as_object()? {
        let g = got.get(key);
        let same = match (key.as_str(), g) {
            // bpftool leaves out a zero bitfield size and may add fields per member.
            ("members" | "values", Some(serde_json::Value::Array(gs))) => {
                let ws = w.as_array()?;
                ws.len() == gs.len()
                    && ws
                        .iter()
                        .zip(gs)
                        .all(|(w, g)| w.as_object().is_some_and(|w| w.iter().all(|(k2, v)| g.get(k2) == Some(v))))
            }
            _ => g == Some(w),
        };
        if !same {
            return Some(format!("[{}] {key}: ours {w}, bpftool {g:?}", j["id"]));
        }
    }
    None
}

/// Every corpus object's `.BTF` type table reads in the object's byte order, and equals what
/// bpftool reads from it (kinds, names, sizes, referenced types, members with their bit
/// offsets, enumerators, array tails), for both byte orders.
#[test]
fn corpus_btf_types_match_bpftool() {
    let Some(files) = corpus() else { return };
    if !bpfpatch_testkit::require_tool("bpftool") {
        return;
    }
    let (mut tables, mut types, mut big, mut failed) = (0usize, 0usize, 0usize, Vec::new());
    for f in &files {
        let obj = BpfObject::parse(&std::fs::read(f).unwrap()).unwrap();
        let (Some(btf), Some(read)) = (obj.btf(), obj.btf_types()) else { continue };
        let t = match read {
            Ok(t) => t,
            Err(e) => {
                failed.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        let out =
            std::process::Command::new("bpftool").args(["btf", "dump", "file"]).arg(f).arg("-j").output().unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let js = j["types"].as_array().unwrap();
        if js.len() != t.len() - 1 {
            failed.push(format!("{}: {} types, bpftool {}", f.display(), t.len() - 1, js.len()));
            continue;
        }
        for (id, jt) in (1u32..).zip(js) {
            if let Some(d) = type_differs(btf, t.get(id).unwrap(), jt) {
                failed.push(format!("{}: {d}", f.display()));
                break;
            }
        }
        tables += 1;
        types += js.len();
        big += usize::from(obj.endian() == bpfpatch_insn::Endian::Big);
    }
    println!("corpus BTF types vs bpftool: {tables} tables ({big} big-endian), {types} types compared");
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(big > 0 && tables > big, "the corpus has both byte orders");
}
