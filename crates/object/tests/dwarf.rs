//! DWARF follows the code: after a rewrite through the engine that inserts, replaces and deletes
//! instructions, `llvm-objdump-19 -d -l -S` shows beside every surviving original instruction
//! the source line it shows in the input (oracle: `bpfpatch_testkit::objdump`, the map: the
//! engine's `OffsetMap::insn`), on small C programs built with clang-19 -g for bpfel and bpfeb
//! (tests/data/dwarf.c and the other committed objects, and dwarf.c compiled afresh as DWARF 5
//! and DWARF 4), and
//! `llvm-dwarfdump-19 --verify` accepts the output. What cannot be remapped is dropped and
//! reported, never left stale.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use bpfpatch_insn::{Insn, Slot, opcode as c};
use bpfpatch_object::{BpfObject, ProgramReport, RewriteOptions, Rewriter};
use bpfpatch_patch::{PatchBuf, PrepatchMode};
use bpfpatch_testkit::objdump;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(name)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfpatch-object-dwarf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

type Maps = BTreeMap<String, Vec<Option<usize>>>;

/// Rewrites every program: a `goto +0` before every third instruction, every fifth replaced by
/// itself and a `goto +0`, every seventh deleted when that is harmless (an ALU or memory
/// instruction nothing relocates and no subprogram starts at). Returns the output, `insn(old)`
/// per section, and the reports.
fn rewrite(bytes: &[u8]) -> (Vec<u8>, Maps, Vec<ProgramReport>) {
    rewrite_by(bytes, |_, s, plain, start| {
        if s % 7 == 2 && plain && !start && s != 0 {
            Act::Delete
        } else if s % 5 == 1 && plain {
            Act::Patch
        } else if s % 3 == 0 {
            Act::Prepatch
        } else {
            Act::Keep
        }
    })
}

/// What [`rewrite_by`] does to one instruction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Keep,
    Delete,
    /// Replace by itself and a `goto +0`.
    Patch,
    /// Two `goto +0` before it (landing on them).
    Prepatch,
}

/// Rewrites every program through the engine, instruction by instruction as `plan(program,
/// slot, plain, function start)` says (`plain`: an ALU or memory instruction nothing relocates, safe to
/// delete or patch; deletions are skipped at function starts and slot 0 whatever the plan).
fn rewrite_by(bytes: &[u8], plan: impl Fn(usize, usize, bool, bool) -> Act) -> (Vec<u8>, Maps, Vec<ProgramReport>) {
    let mut obj = BpfObject::parse(bytes).unwrap();
    let nop = Insn::new(c::JMP | c::JA, 0, 0, 0, 0);
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    let mut maps = Maps::new();
    let mut reports = Vec::new();
    for p in 0..obj.programs().len() {
        let name = obj.programs()[p].name().to_string();
        let n = obj.programs()[p].insns().len();
        let mut pass = |list: &mut bpfpatch_patch::PatchList, info: &bpfpatch_object::ProgramInfo<'_>| {
            let insns = &info.program.insns;
            let starts: Vec<usize> = info.subprograms.iter().map(|s| s.start).collect();
            let mut s = 0;
            while s < insns.len() {
                let insn = insns[s];
                let wide = insn.is_ld_imm64();
                let node = list.node_of(Slot(s))?;
                let class = insn.code & 7;
                let plain = !wide && !info.is_relocated(s) && (class == c::ALU64 || class == c::ALU || class == c::LDX);
                match plan(p, s, plain, starts.contains(&s)) {
                    Act::Delete if plain && !starts.contains(&s) && s != 0 => list.delete(node)?,
                    Act::Patch if plain => {
                        list.patch(node, &PatchBuf::from_insns(&[insn, nop]))?;
                    }
                    Act::Prepatch => {
                        list.prepatch(node, &PatchBuf::from_insns(&[nop, nop]), PrepatchMode::LandOnInserted)?;
                    }
                    _ => {}
                }
                s += if wide { 2 } else { 1 };
            }
            Ok::<(), bpfpatch_patch::Error>(())
        };
        let r = rw.rewrite_program(&mut obj, p, &mut pass).unwrap();
        maps.insert(name, (0..n).map(|s| r.patched.map.insn(Slot(s)).map(|x| x.0)).collect());
        reports.push(r.report);
    }
    (obj.write().unwrap(), maps, reports)
}

/// The oracle on one object: returns (instructions compared, deleted ones).
fn check_object(path: &Path) -> (usize, usize) {
    check_object_by(path, rewrite)
}

/// [`check_object`] with the rewrite given.
fn check_object_by(path: &Path, rewrite: impl Fn(&[u8]) -> (Vec<u8>, Maps, Vec<ProgramReport>)) -> (usize, usize) {
    let bytes = std::fs::read(path).unwrap();
    let (out, maps, reports) = rewrite(&bytes);
    for r in &reports {
        assert!(r.object.dwarf_dropped.is_empty(), "{}: {:?}", path.display(), r.object.dwarf_dropped);
    }
    let deleted: usize = reports.iter().map(|r| r.deleted).sum();
    let out_path = temp(&format!("out-{}", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&out_path, &out).unwrap();
    let before = objdump::listing(path, &[]).unwrap();
    let after = objdump::listing(&out_path, &[]).unwrap();
    let c = objdump::compare(&before, &after, &maps);
    assert!(c.mismatches.is_empty(), "{}: {:#?}", path.display(), c.mismatches);
    assert!(c.with_line > 0 && c.with_line == c.checked, "{}: {c:?}", path.display());
    // The control: the same listings through a map that ignores the rewrite disagree.
    let identity: Maps = maps.iter().map(|(k, v)| (k.clone(), (0..v.len()).map(Some).collect())).collect();
    assert!(!objdump::compare(&before, &after, &identity).mismatches.is_empty(), "{}", path.display());
    // llvm-dwarfdump accepts the remapped DWARF.
    let v = Command::new("llvm-dwarfdump-19").arg("--verify").arg(&out_path).output().unwrap();
    assert!(v.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&v.stdout));
    (c.checked, deleted)
}

#[test]
fn source_lines_follow_the_code() {
    if !bpfpatch_testkit::require_tools(&["llvm-objdump-19", "llvm-dwarfdump-19"]) {
        return;
    }
    let mut total = (0, 0);
    for name in ["dwarf-el.o", "dwarf-eb.o", "calls-el.o", "calls-eb.o", "prog-el.o", "prog-eb.o"] {
        let (checked, deleted) = check_object(&data(name));
        assert!(checked > 20 && deleted > 0, "{name}: {checked} compared, {deleted} deleted");
        total.0 += checked;
        total.1 += deleted;
    }
    eprintln!("dwarf: {} surviving instructions compared, {} deleted, 0 mismatches", total.0, total.1);
}

/// A rewrite that keeps every section's length but moves code in it (two `goto +0` before the
/// first instruction, two plain instructions deleted further on) still remaps the DWARF: only
/// a map that leaves every slot where it was may leave DWARF alone.
#[test]
fn a_rewrite_of_the_same_length_remaps_dwarf() {
    if !bpfpatch_testkit::require_tools(&["llvm-objdump-19", "llvm-dwarfdump-19"]) {
        return;
    }
    for name in ["dwarf-el.o", "dwarf-eb.o"] {
        let bytes = std::fs::read(data(name)).unwrap();
        let obj = BpfObject::parse(&bytes).unwrap();
        // Per program, the first two deletable slots (a plain instruction after slot 0 at no
        // function start); programs without two keep everything.
        let mut deletable: Vec<Vec<usize>> = Vec::new();
        for p in 0..obj.programs().len() {
            let v = obj.engine_view(p).unwrap();
            let info = v.info();
            let insns = &info.program.insns;
            let starts: Vec<usize> = info.subprograms.iter().map(|s| s.start).collect();
            let mut d = Vec::new();
            let mut s = 0;
            while s < insns.len() && d.len() < 2 {
                let class = insns[s].code & 7;
                let plain = !insns[s].is_ld_imm64()
                    && !info.is_relocated(s)
                    && (class == c::ALU64 || class == c::ALU || class == c::LDX);
                if plain && s != 0 && !starts.contains(&s) {
                    d.push(s);
                }
                s += if insns[s].is_ld_imm64() { 2 } else { 1 };
            }
            deletable.push(if d.len() == 2 { d } else { Vec::new() });
        }
        assert!(deletable.iter().any(|d| !d.is_empty()), "{name}: nothing to move");
        let path = temp(&format!("same-len-{name}"));
        std::fs::write(&path, &bytes).unwrap();
        let (checked, deleted) = check_object_by(&path, |b| {
            rewrite_by(b, |p, s, _, _| {
                let d = &deletable[p];
                if d.is_empty() {
                    Act::Keep
                } else if s == 0 {
                    Act::Prepatch
                } else if d.contains(&s) {
                    Act::Delete
                } else {
                    Act::Keep
                }
            })
        });
        assert!(checked > 20 && deleted > 0, "{name}: {checked} compared, {deleted} deleted");
        let out = BpfObject::parse(&std::fs::read(temp(&format!("out-same-len-{name}"))).unwrap()).unwrap();
        for p in 0..obj.programs().len() {
            assert_eq!(out.programs()[p].insns().len(), obj.programs()[p].insns().len(), "{name}: same length");
        }
    }
}

#[test]
fn freshly_compiled_both_byte_orders() {
    if !bpfpatch_testkit::require_tools(&["clang-19", "llvm-objdump-19", "llvm-dwarfdump-19"]) {
        return;
    }
    // clang-19's default for BPF (DWARF 5), and DWARF 4 with .debug_aranges (.debug_ranges,
    // .debug_loc, version-4 line tables).
    let versions: [&[&str]; 2] = [&["-gdwarf-5"], &["-gdwarf-4", "-gdwarf-aranges"]];
    for ((suffix, target), flags) in [("el", "bpf"), ("eb", "bpfeb")].into_iter().flat_map(|t| versions.map(|v| (t, v)))
    {
        let out = temp(&format!("fresh-{suffix}{}.o", flags[0]));
        let st = Command::new("clang-19")
            .args(["-O2", "-g"])
            .args(flags)
            .args(["-target", target, "-mcpu=v3", "-I/usr/include/x86_64-linux-gnu", "-c"])
            .arg(data("dwarf.c"))
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        let obj = BpfObject::parse(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(obj.endian() == bpfpatch_insn::Endian::Big, suffix == "eb");
        let (checked, deleted) = check_object(&out);
        assert!(checked > 20 && deleted > 0);
        // The source file is where clang saw it: -S prints its text too.
        let l = objdump::listing(&out, &[]).unwrap();
        assert!(l.values().flatten().any(|(_, s)| !s.text.is_empty()), "no source text in the listing");
    }
}

/// The (offset, size) of section `name` in an object file.
fn section(bytes: &[u8], name: &str) -> (usize, usize) {
    let obj = BpfObject::parse(bytes).unwrap();
    let i = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(name)).unwrap();
    let h = &obj.section_headers()[i];
    (h.offset as usize, h.size as usize)
}

#[test]
fn unremappable_line_table_is_dropped_and_reported() {
    for name in ["dwarf-el.o", "dwarf-eb.o"] {
        let mut bytes = std::fs::read(data(name)).unwrap();
        // maximum_operations_per_instruction (DWARF 5 header byte 13) = 2: VLIW, not remapped.
        let (off, _) = section(&bytes, ".debug_line");
        assert_eq!(bytes[off + 13], 1);
        bytes[off + 13] = 2;
        let (out, _, reports) = rewrite(&bytes);
        let dropped: Vec<_> = reports.iter().flat_map(|r| r.object.dwarf_dropped.iter()).collect();
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        assert_eq!(dropped[0].section, ".debug_line");
        assert!(dropped[0].reason.contains("VLIW"), "{}", dropped[0].reason);
        assert_eq!(section(&out, ".debug_line").1, 0);
        assert_eq!(section(&out, ".rel.debug_line").1, 0);
        // The rest was remapped: .debug_addr changed, and the output parses again.
        assert_ne!(section(&out, ".debug_addr").1, 0);
        let (a, n) = section(&bytes, ".debug_addr");
        let (b, m) = section(&out, ".debug_addr");
        assert_eq!(n, m);
        assert_ne!(bytes[a..a + n], out[b..b + m]);
    }
}

#[test]
fn unknown_debug_section_naming_code_is_dropped() {
    let mut bytes = std::fs::read(data("dwarf-el.o")).unwrap();
    // Rename .debug_frame to .debug_fxame in the section name table: a section this crate does
    // not know that names the code through relocations.
    let obj = BpfObject::parse(&bytes).unwrap();
    let i = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(".debug_frame")).unwrap();
    let name_off = obj.section_headers()[i].name_off as usize;
    let shstrndx = (0..obj.section_headers().len())
        .find(|&k| obj.section_name(k) == Some(".strtab") || obj.section_name(k) == Some(".shstrtab"))
        .unwrap();
    let at = obj.section_headers()[shstrndx].offset as usize + name_off;
    assert_eq!(&bytes[at..at + 12], b".debug_frame");
    bytes[at + 8] = b'x';
    let (out, _, reports) = rewrite(&bytes);
    let dropped: Vec<_> = reports.iter().flat_map(|r| r.object.dwarf_dropped.iter()).collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].section, ".debug_fxame");
    assert_eq!(section(&out, ".debug_fxame").1, 0);
    assert_eq!(section(&out, ".rel.debug_fxame").1, 0);
}

#[test]
fn a_rewrite_that_changes_nothing_leaves_dwarf_alone() {
    for name in ["dwarf-el.o", "dwarf-eb.o"] {
        let bytes = std::fs::read(data(name)).unwrap();
        let mut obj = BpfObject::parse(&bytes).unwrap();
        let mut rw = Rewriter::new(RewriteOptions::default());
        let reports = rw
            .rewrite_object(&mut obj, &mut |_: &mut bpfpatch_patch::PatchList, _: &bpfpatch_object::ProgramInfo<'_>| {
                Ok::<(), bpfpatch_patch::Error>(())
            })
            .unwrap();
        assert!(reports.iter().all(|r| r.object.dwarf_dropped.is_empty()));
        assert!(obj.write().unwrap() == bytes);
    }
}

#[test]
fn corrupted_dwarf_is_dropped_or_remapped_never_a_panic() {
    // Deterministic byte corruption of the debug sections (and their relocations' addends):
    // every rewrite must succeed, each debug section either remapped or dropped and named.
    let mut rng = bpfpatch_testkit::Rng::seeded(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next();
    let mut dropped = 0;
    for name in ["dwarf-el.o", "dwarf-eb.o"] {
        let bytes = std::fs::read(data(name)).unwrap();
        let spans: Vec<(usize, usize)> =
            [".debug_line", ".debug_info", ".debug_addr", ".debug_rnglists", ".debug_loclists", ".debug_frame"]
                .iter()
                .map(|n| section(&bytes, n))
                .filter(|s| s.1 > 0)
                .collect();
        for _ in 0..400 {
            let mut b = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let (off, size) = spans[(next() % spans.len() as u64) as usize];
                let at = off + (next() % size as u64) as usize;
                b[at] = match next() % 3 {
                    0 => 0,
                    1 => 0xff,
                    _ => (next() & 0xff) as u8,
                };
            }
            let (out, _, reports) = rewrite(&b);
            dropped += reports.iter().map(|r| r.object.dwarf_dropped.len()).sum::<usize>();
            for d in reports.iter().flat_map(|r| r.object.dwarf_dropped.iter()) {
                assert_eq!(section(&out, &d.section).1, 0, "{d:?}");
                assert!(!d.reason.is_empty());
            }
            BpfObject::parse(&out).unwrap();
        }
    }
    assert!(dropped > 0, "no corruption was detected");
}
