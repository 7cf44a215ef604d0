//! Rewriting the committed test objects (tests/data/prog-{el,eb}.o, built from prog.c) and
//! checking, with an origin oracle, that every relocation, symbol, func_info, line_info and
//! CO-RE record points at the same (rewritten) instruction as before.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use bpfpatch_insn::{Insn, opcode};
use bpfpatch_object::{BpfObject, DroppedReloc, IdentityMap, ObjectError, RewriteError, TableMap, check, reloc_type};
use common::{Edit, rewrite, verify_moved, verify_reloc_targets};
use std::process::Command;

const OBJECTS: [&str; 2] = ["prog-el.o", "prog-eb.o"];

fn load(name: &str) -> (Vec<u8>, BpfObject) {
    let bytes = std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let obj = BpfObject::parse(&bytes).unwrap();
    (bytes, obj)
}

fn prog(obj: &BpfObject, name: &str) -> usize {
    obj.program_by_name(name).unwrap().0
}

/// Applies the edit to program `pi`, checks the oracles, writes, re-parses and checks again.
fn apply(obj: &mut BpfObject, pi: usize, edit: impl Fn(usize, &Insn) -> Edit) -> bpfpatch_object::RewriteReport {
    let before = obj.clone();
    let deleted: Vec<bool> = {
        let insns = before.programs()[pi].insns();
        let mut d = vec![false; insns.len()];
        let mut i = 0;
        while i < insns.len() {
            let len = if insns[i].is_ld_imm64() { 2 } else { 1 };
            if edit(i, &insns[i]) == Edit::Delete {
                d[i..i + len].iter_mut().for_each(|x| *x = true);
            }
            i += len;
        }
        d
    };
    let rw = rewrite(&before, pi, &edit).expect("targets fit");
    let report = obj.replace_program(pi, rw.insns.clone(), &rw.map).unwrap();
    let del = |s: usize| deleted[s];
    verify_moved(&before, obj, pi, &rw, &del).unwrap();
    // The count the report gives is that of the kernel's rule, not of the implementation's.
    let kept = common::expected_line_info(before.line_info(pi), deleted.len(), &rw.map.start, &del).len();
    assert_eq!(report.line_info_dropped, before.line_info(pi).len() - kept, "line_info_dropped");
    verify_reloc_targets(&before, obj, pi, &rw, &del).unwrap();
    // Written and re-read, the object is the same and passes check.
    let out = obj.write().unwrap();
    let re = BpfObject::parse(&out).unwrap();
    assert_eq!(re.write().unwrap(), out, "write is a fixed point");
    for q in 0..obj.programs().len() {
        assert_eq!(re.programs()[q], obj.programs()[q]);
        assert_eq!(re.func_info(q), obj.func_info(q));
        assert_eq!(re.line_info(q).len(), obj.line_info(q).len());
        assert_eq!(re.core_relos(q).len(), obj.core_relos(q).len());
    }
    assert_eq!(re.symbols(), obj.symbols());
    assert_eq!(check(&re), vec![], "check after rewrite");
    // .rel.BTF.ext entries are all on record insn_off fields (encode refuses otherwise).
    let ext = re.btf_ext().unwrap();
    let (enc, relocs) = ext.encode().unwrap();
    assert_eq!(enc, ext.raw());
    let records = (0..re.programs().len())
        .map(|q| re.func_info(q).len() + re.line_info(q).len() + re.core_relos(q).len())
        .sum::<usize>();
    assert_eq!(relocs.len(), records, "clang puts one .rel.BTF.ext entry on every record");
    report
}

#[test]
fn parse_model_of_test_object() {
    for name in OBJECTS {
        let (_, obj) = load(name);
        let names: Vec<&str> = obj.programs().iter().map(|p| p.name()).collect();
        assert_eq!(names, [".text", "xdp", "tc"], "{name}");
        let text = prog(&obj, ".text");
        let subs: Vec<(String, usize)> = obj.subprograms(text).into_iter().map(|s| (s.name, s.start)).collect();
        assert_eq!(subs, [("bump".to_string(), 0), ("mix".to_string(), 20), ("loop_cb".to_string(), 34)]);
        let xdp = prog(&obj, "xdp");
        let relocs: Vec<(usize, u32, &str)> = obj.programs()[xdp]
            .relocs()
            .iter()
            .map(|r| (r.slot, r.r_type, obj.symbols()[r.symbol as usize].name.as_str()))
            .collect();
        assert_eq!(
            relocs,
            [
                (5, reloc_type::R_BPF_64_64, "limit"),
                (10, reloc_type::R_BPF_64_32, "bump"),
                (15, reloc_type::R_BPF_64_64, ".text")
            ]
        );
        let tc = prog(&obj, "tc");
        assert_eq!(obj.core_relos(tc).iter().map(|c| c.insn_off).collect::<Vec<_>>(), [32]);
        assert_eq!(obj.func_info(text).iter().map(|f| f.insn_off).collect::<Vec<_>>(), [0, 160, 272]);
        let li = &obj.line_info(xdp)[0];
        let (file, text_line) = obj.line_text(li).unwrap();
        assert!(file.ends_with("prog.c"), "{file}");
        assert!(text_line.contains("prog_xdp"), "{text_line}");
        assert_eq!(check(&obj), vec![]);
    }
}

#[test]
fn identity_write_is_byte_exact() {
    for name in OBJECTS {
        let (bytes, mut obj) = load(name);
        assert_eq!(obj.write().unwrap(), bytes);
        for pi in 0..obj.programs().len() {
            let insns = obj.programs()[pi].insns().to_vec();
            let n = insns.len();
            let report = obj.replace_program(pi, insns, &IdentityMap(n)).unwrap();
            assert_eq!(report.relocs_dropped, vec![]);
        }
        assert!(obj.btf_ext().unwrap().is_dirty());
        assert_eq!(obj.write().unwrap(), bytes, "{name}: re-encoded .BTF.ext and relocations are exact");
    }
}

#[test]
fn nop_before_every_instruction_of_every_program() {
    for name in OBJECTS {
        let (bytes, mut obj) = load(name);
        for pi in 0..obj.programs().len() {
            let report = apply(&mut obj, pi, |_, _| Edit::NopBefore);
            assert_eq!(report.relocs_dropped, vec![]);
            assert_eq!(report.core_relos_dropped, 0);
            assert_eq!(report.line_info_dropped, 0);
        }
        let out = obj.write().unwrap();
        assert!(out.len() > bytes.len());
        // Every section the model does not own is byte-identical.
        let re = BpfObject::parse(&out).unwrap();
        let (_, orig) = load(name);
        for i in 0..orig.section_headers().len() {
            let n = orig.section_name(i).unwrap();
            let owned = orig.programs().iter().any(|p| p.section() == i || p.rel_section() == Some(i))
                || matches!(n, ".symtab" | ".BTF.ext" | ".rel.BTF.ext")
                // DWARF is remapped with the code (tests/dwarf.rs checks it).
                || n.starts_with(".debug_")
                || n.starts_with(".rel.debug_");
            if !owned {
                assert_eq!(re.original_section_data(i), orig.original_section_data(i), "{name}: section {n}");
            }
            let (a, b) = (&orig.section_headers()[i], &re.section_headers()[i]);
            assert_eq!(
                (a.sh_type, a.flags, a.link, a.info, a.entsize, a.addralign),
                (b.sh_type, b.flags, b.link, b.info, b.entsize, b.addralign)
            );
        }
    }
}

#[test]
fn rewriting_text_moves_calls_and_callbacks_from_other_sections() {
    for name in OBJECTS {
        let (_, mut obj) = load(name);
        let text = prog(&obj, ".text");
        // A nop before every instruction of `mix` and `loop_cb` only (from slot 20 on).
        apply(&mut obj, text, |i, _| if i >= 20 { Edit::NopBefore } else { Edit::Keep });
        let subs: Vec<(String, usize, usize)> =
            obj.subprograms(text).into_iter().map(|s| (s.name, s.start, s.len)).collect();
        assert_eq!(subs, [("bump".into(), 0, 20), ("mix".into(), 20, 28), ("loop_cb".into(), 48, 18)]);
        // tc calls `mix` through the .text section symbol: imm = new slot - 1.
        let tc = prog(&obj, "tc");
        let call =
            obj.programs()[tc].relocs().iter().find(|r| obj.symbols()[r.symbol as usize].name == ".text").unwrap();
        assert_eq!(obj.programs()[tc].insns()[call.slot].imm, 20 - 1);
        // xdp takes the address of `loop_cb`: imm = byte offset of its new start.
        let xdp = prog(&obj, "xdp");
        let addr =
            obj.programs()[xdp].relocs().iter().find(|r| obj.symbols()[r.symbol as usize].name == ".text").unwrap();
        assert_eq!(obj.programs()[xdp].insns()[addr.slot].imm, 48 * 8);
        // The call to the global `bump` stays -1 (the symbol moved, not the addend).
        let bump =
            obj.programs()[xdp].relocs().iter().find(|r| obj.symbols()[r.symbol as usize].name == "bump").unwrap();
        assert_eq!(obj.programs()[xdp].insns()[bump.slot].imm, -1);
        // The pc-relative call bump -> mix inside .text was fixed by the rewriter.
        assert_eq!(obj.programs()[text].insns()[16].abs_target(16), Some(20));
    }
}

#[test]
fn deleting_relocated_instructions_drops_and_reports() {
    for name in OBJECTS {
        let (_, mut obj) = load(name);
        let xdp = prog(&obj, "xdp");
        // Delete the ld_imm64 of `limit` (slots 5-6) and the load after it.
        let report = apply(&mut obj, xdp, |i, _| if i == 5 || i == 7 { Edit::Delete } else { Edit::Keep });
        assert_eq!(
            report.relocs_dropped,
            vec![DroppedReloc { slot: 5, r_type: reloc_type::R_BPF_64_64, symbol: "limit".into() }]
        );
        assert_eq!(obj.programs()[xdp].insns().len(), 21);
        let tc = prog(&obj, "tc");
        // Delete the CO-RE relocated load (slot 4) in tc.
        // (`apply` checks every line_info record, and `line_info_dropped`, by the kernel's rule.)
        let report = apply(&mut obj, tc, |i, _| if i == 4 { Edit::Delete } else { Edit::Keep });
        assert_eq!(report.core_relos_dropped, 1);
        assert_eq!(obj.core_relos(tc), &[]);
    }
}

#[test]
fn replace_rejects_inconsistent_maps_and_leaves_object_unchanged() {
    let (bytes, mut obj) = load("prog-el.o");
    let xdp = prog(&obj, "xdp");
    let insns = obj.programs()[xdp].insns().to_vec();
    let n = insns.len();
    let rewrite_err = |r: Result<_, ObjectError>| match r {
        Err(ObjectError::Rewrite { section, error }) => {
            assert!(section.name == "xdp" || section.name == ".text", "{section}");
            error
        }
        other => panic!("expected a rewrite error, got {other:?}"),
    };
    let e = rewrite_err(obj.replace_program(xdp, insns[..n - 1].to_vec(), &IdentityMap(n)));
    assert_eq!(e, RewriteError::LengthMismatch { map: n, insns: n - 1 });
    let mut start: Vec<usize> = (0..n).collect();
    start[3] = n + 1;
    let map = TableMap { start: start.clone(), insn: (0..n).map(Some).collect(), new_len: n };
    assert_eq!(
        rewrite_err(obj.replace_program(xdp, insns.clone(), &map)),
        RewriteError::MapOutOfRange { old: 3, new: n + 1, new_len: n }
    );
    start[3] = 1;
    let map = TableMap { start, insn: (0..n).map(Some).collect(), new_len: n };
    assert_eq!(rewrite_err(obj.replace_program(xdp, insns.clone(), &map)), RewriteError::NotMonotonic { old: 3 });
    // A pass that turned the relocated ld_imm64 into something else.
    let mut bad = insns.clone();
    bad[5] = Insn::new(opcode::ALU64 | opcode::MOV, 2, 0, 0, 0);
    let e = rewrite_err(obj.replace_program(xdp, bad, &IdentityMap(n)));
    assert_eq!(
        e,
        RewriteError::RelocatedInsnChanged { reloc: 0, r_type: reloc_type::R_BPF_64_64, old: 5, new: 5, code: 0xb7 }
    );
    // Deleting a whole subprogram.
    let text = prog(&obj, ".text");
    let m = obj.programs()[text].insns().len();
    let keep: Vec<usize> = (0..m).filter(|&i| !(20..34).contains(&i)).collect();
    let mut start = vec![0; m];
    let mut insn = vec![None; m];
    for (k, &o) in keep.iter().enumerate() {
        insn[o] = Some(k);
        start[o] = k;
    }
    (20..34).for_each(|o| start[o] = 20);
    let new: Vec<Insn> = keep.iter().map(|&o| obj.programs()[text].insns()[o]).collect();
    let e = rewrite_err(obj.replace_program(text, new, &TableMap { start, insn, new_len: keep.len() })).to_string();
    assert!(e.contains("`mix` became empty"), "{e}");
    assert_eq!(obj.write().unwrap(), bytes, "failed rewrites change nothing");
    assert_eq!(obj.replace_program(9, vec![], &IdentityMap(0)), Err(ObjectError::NoProgram { index: 9 }));
}

/// Whether `tool` can be run; a counted skip of that tool's part otherwise (a failure under
/// `BPFPATCH_REQUIRE_INPUTS=1`).
#[track_caller]
fn have(tool: &str) -> bool {
    bpfpatch_testkit::require_tool(tool)
}

/// The rewritten objects are accepted by llvm-objdump, llvm-readelf, bpftool's BTF dump and
/// libbpf's open (through `bpftool gen skeleton`, which opens the object with libbpf).
#[test]
fn rewritten_objects_accepted_by_external_tools() {
    let dir = std::env::temp_dir().join(format!("bpfpatch-object-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Each tool absent is one counted skip (a failure under BPFPATCH_REQUIRE_INPUTS=1).
    let (objdump, readelf, bpftool) = (have("llvm-objdump-19"), have("llvm-readelf-19"), have("bpftool"));
    for name in OBJECTS {
        let (_, mut obj) = load(name);
        for pi in 0..obj.programs().len() {
            apply(&mut obj, pi, |_, _| Edit::NopBefore);
        }
        let path = dir.join(name);
        std::fs::write(&path, obj.write().unwrap()).unwrap();
        let run = |tool: &str, args: &[&str]| {
            let o = Command::new(tool).args(args).arg(&path).output().unwrap();
            assert!(o.status.success(), "{tool} {args:?} {name}: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        if objdump {
            let d = run("llvm-objdump-19", &["-d", "-r"]);
            assert!(d.contains("<loop_cb>:") && d.contains("R_BPF_64_32"), "{d}");
        }
        if readelf {
            run("llvm-readelf-19", &["-a"]);
        }
        // bpftool and libbpf read little-endian objects of the host's order only.
        if name == "prog-el.o" && bpftool {
            run("bpftool", &["btf", "dump", "file"]);
            let skel = run("bpftool", &["gen", "skeleton"]);
            assert!(skel.contains("prog_xdp"), "skeleton");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Deleting a run of instructions that holds several line_info records, followed by an
/// instruction without one: by the kernel's `bpf_adj_linfo_after_remove`, the record of the
/// run's *last* record-holding instruction moves onto the survivor and the others are dropped
/// (the oracle in `apply` checks every record; here the survivor's record is named directly).
#[test]
fn deleting_a_run_keeps_its_last_line_record() {
    let mut runs = 0;
    for name in OBJECTS.iter().chain(&["calls-el.o", "calls-eb.o"]) {
        let (_, mut obj) = load(name);
        for pi in 0..obj.programs().len() {
            let Some(run) = common::line_run_to_delete(&obj, pi) else { continue };
            eprintln!("{name} {}: deleting {run:?}", obj.programs()[pi].name());
            let before = obj.clone();
            let li = before.line_info(pi);
            let in_run: Vec<_> = li.iter().filter(|l| run.contains(&((l.insn_off / 8) as usize))).collect();
            assert!(in_run.len() >= 2);
            let report = apply(&mut obj, pi, |i, _| if run.contains(&i) { Edit::Delete } else { Edit::Keep });
            assert_eq!(report.line_info_dropped, in_run.len() - 1, "{name}");
            let last = in_run.last().unwrap();
            let at = u32::try_from(run.start * 8).unwrap(); // the survivor's new offset: nothing before it moved
            let got = obj.line_info(pi).iter().find(|l| l.insn_off == at).unwrap();
            assert_eq!(
                (got.file_name_off, got.line_off, got.line_col),
                (last.file_name_off, last.line_off, last.line_col),
                "{name}: the survivor carries the run's last record"
            );
            runs += 1;
        }
    }
    assert!(runs >= 4, "only {runs} programs have a collapsing run");
}

/// Byte offset in `bytes` of the block of `.BTF.ext` area `k` (0 func_info, 1 line_info,
/// 2 CO-RE) that names section `sec` (where its `sec_name_off` is), and the area's record size.
fn ext_block(bytes: &[u8], obj: &BpfObject, k: usize, sec: &str) -> (usize, usize) {
    let rd = |at: usize| {
        let x: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        let v = if obj.endian() == bpfpatch_insn::Endian::Big { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) };
        v as usize
    };
    let i = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(".BTF.ext")).unwrap();
    let x = obj.section_headers()[i].offset as usize;
    let area = x + rd(x + 4) + rd(x + 8 + 8 * k);
    let ext = obj.btf_ext().unwrap();
    let (rec, names_counts): (usize, Vec<(Option<String>, usize)>) = match k {
        0 => (
            ext.func_info().rec_size as usize,
            ext.func_info().blocks.iter().map(|b| (b.sec_name.clone(), b.records.len())).collect(),
        ),
        1 => (
            ext.line_info().rec_size as usize,
            ext.line_info().blocks.iter().map(|b| (b.sec_name.clone(), b.records.len())).collect(),
        ),
        _ => (
            ext.core_relo().rec_size as usize,
            ext.core_relo().blocks.iter().map(|b| (b.sec_name.clone(), b.records.len())).collect(),
        ),
    };
    assert_eq!(rd(area), rec);
    let mut pos = area + 4;
    for (name, count) in names_counts {
        if name.as_deref() == Some(sec) {
            return (pos, rec);
        }
        pos += 8 + count * rec;
    }
    panic!("no block for {sec} in area {k}");
}

fn put32(bytes: &mut [u8], obj: &BpfObject, at: usize, v: u32) {
    let x = if obj.endian() == bpfpatch_insn::Endian::Big { v.to_be_bytes() } else { v.to_le_bytes() };
    bytes[at..at + 4].copy_from_slice(&x);
}

/// A program's `.BTF.ext` records move with its code whichever kinds it has: xdp with its
/// func_info block renamed away (to "dp", no section) keeps line_info only, and a rewrite still
/// moves every line_info record by the kernel's rule (the origin oracle of tests/common).
#[test]
fn line_info_moves_without_func_info_or_core_records() {
    for name in OBJECTS {
        let (mut bytes, obj) = load(name);
        let (at, _) = ext_block(&bytes, &obj, 0, "xdp");
        let off = obj.btf_ext().unwrap().func_info().block("xdp").unwrap().sec_name_off;
        put32(&mut bytes, &obj, at, off + 1);
        let mut obj = BpfObject::parse(&bytes).unwrap();
        let xdp = prog(&obj, "xdp");
        assert!(obj.func_info(xdp).is_empty() && obj.core_relos(xdp).is_empty(), "{name}");
        assert!(obj.line_info(xdp).len() >= 2, "{name}");
        let before = obj.clone();
        let rw = rewrite(&before, xdp, |_, _| Edit::NopBefore).unwrap();
        obj.replace_program(xdp, rw.insns.clone(), &rw.map).unwrap();
        verify_moved(&before, &obj, xdp, &rw, &|_| false).unwrap();
        assert_ne!(obj.line_info(xdp), before.line_info(xdp), "{name}: the records moved");
    }
}

/// A func_info record whose function was deleted whole lands on the next function's record:
/// refused even when no function symbol gives the function a size (`mix`'s size set to 0, so
/// the symbol check does not see it), by the func_info check itself.
#[test]
fn a_func_info_record_of_a_deleted_function_is_refused() {
    for name in OBJECTS {
        let (mut bytes, obj) = load(name);
        let text = prog(&obj, ".text");
        let mix = obj.symbols().iter().position(|s| s.name == "mix").unwrap();
        assert_eq!(obj.symbols()[mix].value, 20 * 8, "{name}");
        let symtab = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(".symtab")).unwrap();
        let size_at = obj.section_headers()[symtab].offset as usize + 24 * mix + 16;
        bytes[size_at..size_at + 8].copy_from_slice(&[0; 8]);
        let mut obj = BpfObject::parse(&bytes).unwrap();
        let k = obj.func_info(text).iter().position(|f| f.insn_off == 20 * 8).unwrap();
        // Delete old slots 20..34 (`mix`), as in replace_rejects_inconsistent_maps_and_leaves_object_unchanged.
        let m = obj.programs()[text].insns().len();
        let keep: Vec<usize> = (0..m).filter(|&i| !(20..34).contains(&i)).collect();
        let mut start = vec![0; m];
        let mut insn = vec![None; m];
        for (j, &o) in keep.iter().enumerate() {
            insn[o] = Some(j);
            start[o] = j;
        }
        (20..34).for_each(|o| start[o] = 20);
        let new: Vec<Insn> = keep.iter().map(|&o| obj.programs()[text].insns()[o]).collect();
        match obj.replace_program(text, new, &TableMap { start, insn, new_len: keep.len() }) {
            Err(ObjectError::Rewrite { error: RewriteError::EmptySubprogram { name: n }, .. }) => {
                // `mix`'s record k lands on new slot 20, and so does the next function's (k + 1),
                // the one found on a slot already taken.
                assert_eq!(n, format!("func_info record {}", k + 1), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(obj.write().unwrap(), bytes, "{name}: unchanged");
    }
}

/// A func_info record at the program's end (`insn_off` = its length in bytes) names no
/// instruction: `RecordOutOfRange`, not taken for a deleted function.
#[test]
fn a_func_info_record_past_the_last_instruction_is_refused() {
    for name in OBJECTS {
        let (mut bytes, obj) = load(name);
        let xdp = prog(&obj, "xdp");
        let n = obj.programs()[xdp].insns().len();
        assert_eq!(obj.func_info(xdp).len(), 1, "{name}");
        let (at, _) = ext_block(&bytes, &obj, 0, "xdp");
        let end = u32::try_from(n * 8).unwrap();
        put32(&mut bytes, &obj, at + 8, end); // the first record's insn_off
        let mut obj = BpfObject::parse(&bytes).unwrap();
        let insns = obj.programs()[xdp].insns().to_vec();
        match obj.replace_program(xdp, insns, &IdentityMap(n)) {
            Err(ObjectError::Rewrite { error, .. }) => assert_eq!(
                error,
                RewriteError::RecordOutOfRange { kind: bpfpatch_object::InfoKind::FuncInfo, record: 0, insn_off: end },
                "{name}"
            ),
            other => panic!("{name}: {other:?}"),
        }
    }
}
