//! The engine bridge (`engine.rs`) on the committed objects: the kernel view of relocated
//! instructions, the identity round trip through the engine, and real engine patches (landing
//! and skipping prepatches, patches, deletions, relaxation) checked with the origin oracle of
//! tests/common (every relocation, symbol, func_info, line_info and CO-RE record points at the
//! same, rewritten, instruction) and against the engine's own remapped side tables.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

mod common;
mod engine_common;

use bpfpatch_insn::{Insn, Slot, opcode as c};
use bpfpatch_object::{BpfObject, EngineError, ProgramInfo, RelocRole, RewriteOptions, Rewriter, reloc_type};
use bpfpatch_patch::{PatchBuf, PatchList, PrepatchMode, Target};
use std::convert::Infallible;

const PROG: [&str; 2] = ["prog-el.o", "prog-eb.o"];
const CALLS: [&str; 2] = ["calls-el.o", "calls-eb.o"];

fn load(name: &str) -> (Vec<u8>, BpfObject) {
    let bytes = std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let obj = BpfObject::parse(&bytes).unwrap();
    (bytes, obj)
}

fn nothing(_: &mut PatchList, _: &ProgramInfo<'_>) -> Result<(), Infallible> {
    Ok(())
}

fn rewriter() -> Rewriter {
    Rewriter::new(RewriteOptions { relax: true })
}

/// Rewrites every program of `name` with `pass`, checked (see `engine_common::rewrite_checked`).
fn rewrite_checked<F>(name: &str, mut pass: F) -> Vec<bpfpatch_object::ProgramReport>
where
    F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), Infallible>,
{
    let (_, mut obj) = load(name);
    engine_common::rewrite_checked(&mut obj, &mut rewriter(), &mut pass).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn roles(obj: &BpfObject, section: &str) -> Vec<(usize, RelocRole)> {
    let pi = obj.program_by_name(section).unwrap().0;
    obj.engine_view(pi).unwrap().roles().to_vec()
}

#[test]
fn view_presents_relocated_instructions_in_kernel_form() {
    for name in CALLS {
        let (_, obj) = load(name);
        let text = obj.program_by_name(".text").unwrap().0;
        // walk: callback `each` by .text+0xe0, calls to the global `leaf`; each calls leaf.
        assert_eq!(
            roles(&obj, ".text"),
            [
                (2, RelocRole::Data),
                (17, RelocRole::LocalFuncAddr { target: 28 }),
                (22, RelocRole::LocalCall { target: 0 }),
                (25, RelocRole::LocalCall { target: 0 }),
                (29, RelocRole::LocalCall { target: 0 }),
            ],
            "{name}"
        );
        assert_eq!(
            roles(&obj, "xdp"),
            [
                (4, RelocRole::Data),
                (9, RelocRole::Data),
                (15, RelocRole::ExternAddr),
                (17, RelocRole::Data),
                (22, RelocRole::ExternCall),
                (29, RelocRole::ExternCall),
                (31, RelocRole::ExternCall),
                (33, RelocRole::Data),
                (39, RelocRole::ExternCall),
            ],
            "{name}"
        );
        let v = obj.engine_view(text).unwrap();
        let (p, orig) = (v.program(), obj.programs()[text].insns());
        // Local targets are PC-relative in the view: libbpf's `S / 8 + imm + 1` for calls,
        // `(S + imm) / 8` for addresses, each a function symbol's start.
        assert_eq!((p.insns[22].src(), p.insns[22].abs_target(22)), (c::PSEUDO_CALL, Some(0)));
        assert_eq!((p.insns[17].src(), p.insns[17].abs_target(17)), (c::PSEUDO_FUNC, Some(28)));
        assert_eq!(orig[17].src(), 0, "the object keeps clang's plain ld_imm64");
        assert_eq!(p.insns[2].src(), c::PSEUDO_MAP_VALUE, "`scale` is .rodata");
        let starts: Vec<u32> = p.tables.subprogs.iter().map(|s| s.start).collect();
        assert_eq!(starts, [0, 10, 28]);
        assert_eq!(p.tables.func_info.len(), 3);
        assert!(!p.tables.line_info.is_empty());
        assert!(p.aux[17].reloc.is_some() && p.aux[18].reloc.is_none() && p.aux[19].reloc.is_none());
        let xdp_index = obj.program_by_name("xdp").unwrap().0;
        let xdp = obj.engine_view(xdp_index).unwrap();
        let x = xdp.program();
        assert_eq!(x.insns[4].src(), c::PSEUDO_MAP_FD, "`table` is in .maps");
        assert_eq!(x.insns[15].src(), c::PSEUDO_BTF_ID, "callback in another section: no target");
        assert_eq!(x.insns[22].src(), c::PSEUDO_KFUNC_CALL, "call into .text: no target");
        assert_eq!(x.insns[22].target_field(), None);
        let info = xdp.info();
        assert_eq!(info.entries(), [0, 28], "two programs in one section");
        assert!(info.is_relocated(29) && !info.is_relocated(30));
        // Every slot but the relocated ones is the object's.
        for (s, (a, b)) in x.insns.iter().zip(obj.programs()[xdp_index].insns()).enumerate() {
            assert_eq!(a == b, !info.is_relocated(s), "slot {s}");
        }
    }
}

#[test]
fn identity_through_the_engine_is_byte_exact() {
    for name in PROG.iter().chain(&CALLS) {
        let (bytes, mut obj) = load(name);
        let reports = rewriter().rewrite_object(&mut obj, &mut nothing).unwrap();
        assert_eq!(reports.len(), obj.programs().len());
        for r in &reports {
            assert_eq!((r.slots_before, r.patched, r.inserted, r.deleted, r.relaxed), (r.slots_after, 0, 0, 0, 0));
            assert_eq!(r.object.relocs_dropped, vec![]);
        }
        assert!(obj.btf_ext().unwrap().is_dirty(), "the .BTF.ext was re-encoded");
        assert_eq!(obj.write().unwrap(), bytes, "{name}");
    }
}

fn with_imm(mut insn: Insn, imm: i32) -> Insn {
    insn.imm = imm;
    insn
}

fn nop() -> PatchBuf {
    PatchBuf::from_insns(&[Insn::new(c::JMP | c::JA, 0, 0, 0, 0)])
}

fn prepatch_all(mode: PrepatchMode) -> impl FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), Infallible> {
    move |list, _| {
        let nodes: Vec<_> = list.iter().map(|(n, _)| n).collect();
        for n in nodes {
            list.prepatch(n, &nop(), mode).unwrap();
        }
        Ok(())
    }
}

#[test]
fn landing_prepatch_before_every_instruction() {
    for name in PROG.iter().chain(&CALLS) {
        let (_, obj) = load(name);
        for (pi, r) in rewrite_checked(name, prepatch_all(PrepatchMode::LandOnInserted)).into_iter().enumerate() {
            let ld = obj.programs()[pi].insns().iter().filter(|i| i.is_ld_imm64()).count();
            let insns = r.slots_before - ld;
            assert_eq!((r.patched, r.inserted, r.deleted, r.relaxed), (insns, insns, 0, 0), "{name} {r:?}");
            assert_eq!(r.slots_after, r.slots_before + r.inserted);
        }
    }
}

#[test]
fn skipping_prepatch_before_every_instruction() {
    for name in PROG.iter().chain(&CALLS) {
        for r in rewrite_checked(name, prepatch_all(PrepatchMode::SkipForJumps)) {
            assert_eq!(r.slots_after, r.slots_before + r.inserted, "{name}");
            assert_eq!(r.deleted, 0);
        }
    }
}

/// Splits every unrelocated `add` of an immediate into two adds (same result, wrapping) and puts
/// a `ja +0` in front of every other unrelocated ALU-immediate instruction.
#[test]
fn patch_every_alu_immediate_into_two_instructions() {
    for name in PROG.iter().chain(&CALLS) {
        let reports = rewrite_checked(name, |list, info| {
            let nodes: Vec<_> = list.iter().collect();
            for (n, insn) in nodes {
                let class = insn.class();
                let is_alu_k = (class == c::ALU || class == c::ALU64) && insn.code & c::X == 0;
                if !is_alu_k || list.origin(n).is_some_and(|s| info.is_relocated(s.0)) {
                    continue;
                }
                let buf = if insn.op() == c::ADD {
                    let (a, b) = (insn.imm / 2, insn.imm - insn.imm / 2);
                    PatchBuf::from_insns(&[with_imm(insn, a), with_imm(insn, b)])
                } else {
                    PatchBuf::from_insns(&[Insn::new(c::JMP | c::JA, 0, 0, 0, 0), insn])
                };
                list.patch(n, &buf).unwrap();
            }
            Ok(())
        });
        assert!(reports.iter().any(|r| r.patched > 0), "{name}");
        for r in reports {
            assert_eq!(r.slots_after, r.slots_before + r.patched, "{name}: each patch adds one slot");
        }
    }
}

/// Deleting relocated data loads drops their relocations, which the report counts and names.
#[test]
fn deleted_instructions_take_their_relocations() {
    for name in CALLS {
        let reports = rewrite_checked(name, |list, info| {
            let subs = info.entries();
            for (slot, role) in info.program.aux.iter().enumerate().filter_map(|(s, a)| a.reloc.map(|r| (s, r))) {
                if role == RelocRole::Data && !subs.contains(&slot) {
                    list.delete(list.node_of(Slot(slot)).unwrap()).unwrap();
                }
            }
            Ok(())
        });
        let text = &reports[0];
        let dropped: Vec<(usize, &str)> =
            text.object.relocs_dropped.iter().map(|d| (d.slot, d.symbol.as_str())).collect();
        assert_eq!(dropped, [(2, "scale")], "{name}");
        assert_eq!((text.deleted, text.slots_after), (2, text.slots_before - 2));
        let xdp = &reports[1];
        let names: Vec<&str> = xdp.object.relocs_dropped.iter().map(|d| d.symbol.as_str()).collect();
        assert_eq!(names, ["table", "total", "total", "scale"], "{name}");
        assert!(xdp.object.relocs_dropped.iter().all(|d| d.r_type == reloc_type::R_BPF_64_64));
        assert_eq!(xdp.deleted, 8);
    }
}

/// Deleting, through the engine, a run of instructions holding several line_info records
/// before an instruction without one: the run's last record moves onto the survivor
/// (`bpf_adj_linfo_after_remove`); `rewrite_checked`'s oracle compares every record with the
/// kernel's rule, and the survivor's record is named here directly.
#[test]
fn deleting_a_run_through_the_engine_keeps_its_last_line_record() {
    let mut runs = 0;
    for name in PROG.iter().chain(&CALLS) {
        let (_, obj) = load(name);
        let plan: Vec<_> = (0..obj.programs().len()).map(|pi| common::line_run_to_delete(&obj, pi)).collect();
        let mut obj2 = obj.clone();
        let mut pi = 0;
        engine_common::rewrite_checked(&mut obj2, &mut rewriter(), &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
            if let Some(run) = &plan[pi] {
                let nodes: Vec<_> = run.clone().filter_map(|s| list.node_of(Slot(s)).ok()).collect();
                for n in nodes {
                    list.delete(n).unwrap();
                }
            }
            pi += 1;
            Ok::<(), Infallible>(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (pi, run) in plan.iter().enumerate() {
            let Some(run) = run else { continue };
            let last = obj.line_info(pi).iter().rfind(|l| run.contains(&((l.insn_off / 8) as usize))).unwrap();
            let at = u32::try_from(run.start * 8).unwrap();
            let got = obj2.line_info(pi).iter().find(|l| l.insn_off == at).unwrap();
            assert_eq!((got.line_off, got.line_col), (last.line_off, last.line_col), "{name} {pi}");
            runs += 1;
        }
    }
    assert!(runs >= 4, "only {runs} programs have a collapsing run");
}

/// A prologue before a relocated local call's target (a skipping prepatch at `leaf`) is entered
/// by the call, in the engine and in the object's re-derived addend alike.
#[test]
fn relocated_calls_enter_a_prologue_at_their_target() {
    for name in CALLS {
        let reports = rewrite_checked(name, |list, info| {
            if info.name == ".text" {
                let leaf = list.node_of(Slot(0)).unwrap();
                list.prepatch(leaf, &nop(), PrepatchMode::SkipForJumps).unwrap();
                let each = list.node_of(Slot(28)).unwrap();
                list.prepatch(each, &nop(), PrepatchMode::SkipForJumps).unwrap();
            }
            Ok(())
        });
        assert_eq!(reports[0].inserted, 2);
    }
}

/// A pass may move a relocated call along with code it inserts (the engine recomputes its
/// PC-relative target), but not change it.
#[test]
fn passes_must_leave_relocated_instructions_alone() {
    for name in CALLS {
        // Carrying the call in a patch with its original target: accepted.
        rewrite_checked(name, |list, info| {
            if info.name == ".text" {
                let call = list.node_of(Slot(22)).unwrap();
                let insn = list.insn(call).unwrap();
                let mut buf = nop();
                buf.jump_to(insn, Target::OrigTarget);
                list.patch(call, &buf).unwrap();
            }
            Ok(())
        });
        let (bytes, obj) = load(name);
        let text = obj.program_by_name(".text").unwrap().0;
        // Blinding the relocated ld_imm64 of `scale`: refused, object unchanged.
        let mut o = obj.clone();
        let e = rewriter()
            .rewrite_program(&mut o, text, &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
                let n = list.node_of(Slot(2)).unwrap();
                let mut lo = list.insn(n).unwrap();
                lo.imm ^= 0x5a5a;
                list.patch(n, &PatchBuf::from_insns(&[lo, Insn::default()])).unwrap();
                Ok::<(), Infallible>(())
            })
            .unwrap_err();
        assert!(matches!(e, EngineError::RelocatedRewritten { old: 2, .. }), "{e}");
        assert_eq!(o.write().unwrap(), bytes);
        // Sending a relocated call elsewhere: the engine and the relocation would disagree.
        let e = rewriter()
            .rewrite_program(&mut o, text, &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
                let n = list.node_of(Slot(22)).unwrap();
                list.retarget(n, Target::Orig(Slot(10))).unwrap();
                Ok::<(), Infallible>(())
            })
            .unwrap_err();
        assert!(matches!(e, EngineError::TargetDisagreement { old: 22, engine: 10, object: 0, .. }), "{e}");
        // A pass error names the section; appended subprograms cannot be written.
        let e = rewriter()
            .rewrite_program(&mut o, text, &mut |_: &mut PatchList, _: &ProgramInfo<'_>| {
                Err(std::io::Error::other("no luck"))
            })
            .unwrap_err();
        assert_eq!(e.to_string(), format!("{}: no luck", o.section_ref(o.programs()[text].section())));
        let e = rewriter()
            .rewrite_program(&mut o, text, &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
                list.append(&PatchBuf::from_insns(&[Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)])).unwrap();
                Ok::<(), Infallible>(())
            })
            .unwrap_err();
        assert!(matches!(e, EngineError::AppendedSubprogram { count: 1, .. }), "{e}");
        assert_eq!(o.write().unwrap(), bytes);
    }
}

/// A relocation on the second slot of an ld_imm64 (not made by clang, but parseable) owns the
/// whole instruction: it is marked on the first slot, and a pass may not rewrite it.
#[test]
fn a_relocation_on_an_ld_imm64_tail_owns_the_instruction() {
    let (bytes, obj) = load("calls-el.o");
    let rel = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(".rel.text")).unwrap();
    let at = obj.section_headers()[rel].offset as usize;
    assert_eq!(bytes[at..at + 8], 0x10u64.to_le_bytes(), "first .rel.text entry: slot 2 (`scale`)");
    let mut b = bytes.clone();
    b[at..at + 8].copy_from_slice(&0x18u64.to_le_bytes());
    let mut obj = BpfObject::parse(&b).unwrap();
    let view = obj.engine_view(0).unwrap();
    assert_eq!(view.roles()[0], (2, RelocRole::Other));
    assert!(view.info().is_relocated(2) && !view.info().is_relocated(3));
    let e = rewriter()
        .rewrite_program(&mut obj, 0, &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
            let n = list.node_of(Slot(2)).unwrap();
            let lo = list.insn(n).unwrap();
            list.patch(n, &PatchBuf::from_insns(&[lo, with_imm(Insn::default(), 7)])).unwrap();
            Ok::<(), Infallible>(())
        })
        .unwrap_err();
    assert!(matches!(e, EngineError::RelocatedRewritten { old: 2, .. }), "{e}");
}

/// 40000 nops (two prepatches of 20000: one patch may hold at most 32767 slots) inside
/// `leaf`'s forward jump: without relaxation the jump cannot be encoded; with it, in a cpu-v4
/// program (nops `gotol +0`), the jump becomes a `gotol` sequence and the report counts it; in
/// a v3 program (nops `goto +0`) it stays an error, since a v3 kernel rejects `gotol`.
#[test]
fn overflowing_jumps_are_relaxed_and_counted() {
    let v3 = PatchBuf::from_insns(&vec![Insn::new(c::JMP | c::JA, 0, 0, 0, 0); 20_000]);
    for name in CALLS {
        let many = v3.clone();
        let (_, mut o) = load(name);
        let mut pass = move |list: &mut PatchList, info: &ProgramInfo<'_>| {
            if info.name == ".text" {
                for _ in 0..2 {
                    list.prepatch(list.node_of(Slot(4)).unwrap(), &many, PrepatchMode::LandOnInserted).unwrap();
                }
            }
            Ok::<(), Infallible>(())
        };
        let e = Rewriter::new(RewriteOptions { relax: true }).rewrite_program(&mut o, 0, &mut pass).unwrap_err();
        assert!(matches!(e, EngineError::Patch { .. }), "{name}: a v3 program is not relaxed: {e}");
    }
    let many = PatchBuf::from_insns(&vec![Insn::new(c::JMP32 | c::JA, 0, 0, 0, 0); 20_000]);
    let pass = || {
        let many = many.clone();
        move |list: &mut PatchList, info: &ProgramInfo<'_>| {
            if info.name == ".text" {
                for _ in 0..2 {
                    list.prepatch(list.node_of(Slot(4)).unwrap(), &many, PrepatchMode::LandOnInserted).unwrap();
                }
            }
            Ok::<(), Infallible>(())
        }
    };
    for name in CALLS {
        let (_, mut o) = load(name);
        let e = Rewriter::new(RewriteOptions { relax: false }).rewrite_program(&mut o, 0, &mut pass()).unwrap_err();
        assert!(matches!(e, EngineError::Patch { .. }), "{e}");
        let reports = rewrite_checked(name, pass());
        assert_eq!(reports[0].relaxed, 1, "{name}");
        // The oracle's rewriter (write-back through the adjuster) keeps the options it was
        // made with: it relaxes too, and writes what the engine's write-back writes.
        let (_, mut a) = load(name);
        let mut b = a.clone();
        let ra = Rewriter::new(RewriteOptions { relax: true }).rewrite_object(&mut a, &mut pass()).unwrap();
        let rb =
            Rewriter::new(RewriteOptions { relax: true }).by_adjuster().rewrite_object(&mut b, &mut pass()).unwrap();
        assert_eq!((ra[0].relaxed, rb[0].relaxed), (1, 1), "{name}");
        assert!(a.write().unwrap() == b.write().unwrap(), "{name}");
    }
}

#[test]
fn raw_images_go_through_the_engine_without_tables() {
    // r0 = 0; if r1 == 0 goto +1; r0 = 1; exit
    let insns = [
        Insn::new(c::ALU64 | c::MOV, 0, 0, 0, 0),
        Insn::new(c::JMP | c::JEQ, 1, 0, 1, 0),
        Insn::new(c::ALU64 | c::MOV, 0, 0, 0, 1),
        Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0),
    ];
    let mut rw = rewriter();
    let (same, r) = rw.rewrite_image(&insns, bpfpatch_insn::Endian::Little, &mut nothing).unwrap();
    assert_eq!(same, insns);
    assert_eq!((r.name.as_str(), r.slots_before, r.slots_after), ("<raw>", 4, 4));
    let (out, r) =
        rw.rewrite_image(&insns, bpfpatch_insn::Endian::Little, &mut prepatch_all(PrepatchMode::SkipForJumps)).unwrap();
    assert_eq!(r.slots_after, 8);
    // The jump skips the nop inserted before its target.
    assert_eq!(out[3].abs_target(3), Some(7));
    // The whole result names, per new slot, the original slot it carries (none for the nops):
    // nop 0 nop 1 nop 2 nop 3.
    let r = rw
        .rewrite_image_patched(&insns, bpfpatch_insn::Endian::Little, &mut prepatch_all(PrepatchMode::SkipForJumps))
        .unwrap();
    let orig: Vec<Option<u32>> = r.patched.program.aux.iter().map(|a| a.orig).collect();
    assert_eq!(orig, [None, Some(0), None, Some(1), None, Some(2), None, Some(3)]);
}

fn cases() -> u32 {
    std::env::var("BPFPATCH_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: cases(), ..Default::default() })]

    /// Random byte mutations of the code, the relocations and the symbol table of calls-*.o
    /// never make the view or a rewrite through the engine panic (identity and a landing
    /// prepatch before every instruction); a failed rewrite leaves the object unchanged.
    #[test]
    fn engine_never_panics_on_mutated_objects(
        which in 0usize..2,
        edits in proptest::collection::vec((0usize..4, proptest::prelude::any::<u32>(), proptest::prelude::any::<u8>()), 1..8),
    ) {
        let (bytes, obj) = load(CALLS[which]);
        let region = |name: &str| {
            let i = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(name)).unwrap();
            let h = &obj.section_headers()[i];
            (h.offset as usize, h.size as usize)
        };
        let regions = [region(".text"), region("xdp"), region(".rel.text"), region(".symtab")];
        let mut b = bytes.clone();
        for (r, pos, val) in edits {
            let (off, len) = regions[r];
            b[off + pos as usize % len] = val;
        }
        let Ok(mut obj) = BpfObject::parse(&b) else { return Ok(()) };
        for pi in 0..obj.programs().len() {
            let _ = obj.engine_view(pi);
        }
        let mut rw = rewriter();
        for pass in 0..2 {
            for pi in 0..obj.programs().len() {
                let before = obj.write().ok();
                let res = if pass == 0 {
                    rw.rewrite_program(&mut obj, pi, &mut nothing).map(|_| ())
                } else {
                    rw.rewrite_program(&mut obj, pi, &mut prepatch_all(PrepatchMode::LandOnInserted)).map(|_| ())
                };
                if res.is_err() {
                    proptest::prop_assert_eq!(obj.write().ok(), before, "a failed rewrite changes nothing");
                }
            }
            if let Ok(out) = obj.write() {
                proptest::prop_assert!(BpfObject::parse(&out).is_ok());
            }
        }
    }
}

const NOTYPE: [&str; 2] = ["notype-el.o", "notype-eb.o"];

/// Entry points of a section: slot 0, function symbols, global untyped code symbols (clang
/// before 10 emits functions as `STT_NOTYPE`), and targets of calls from other sections even
/// through the section symbol; local untyped symbols are basic-block labels, not entries.
#[test]
fn entry_points_include_untyped_functions_and_cross_section_targets() {
    for name in NOTYPE {
        let (_, obj) = load(name);
        let text = obj.program_by_name(".text").unwrap().0;
        let xdp = obj.program_by_name("xdp").unwrap().0;
        assert!(obj.subprograms(text).is_empty(), "{name}: no STT_FUNC symbol");
        // global_fn2 at 0, global_fn at 3 (global, untyped), local_fn at 8 (a local label,
        // called from xdp through `.text`); LBB1_2 at 7 is a jump target inside global_fn.
        assert_eq!(obj.entry_points(text), [0, 3, 8], "{name}");
        assert_eq!(obj.engine_view(text).unwrap().info().entries(), [0, 3, 8], "{name}");
        assert_eq!(obj.entry_points(xdp), [0], "{name}");
        assert_eq!(obj.entry_points(99), Vec::<usize>::new());
        // The prog and calls objects: function symbols only (their calls from other sections
        // target function starts).
        let (_, calls) = load(CALLS[0]);
        let ct = calls.program_by_name(".text").unwrap().0;
        assert_eq!(calls.entry_points(ct), [0, 10, 28]);
    }
}

/// Each source of entries on its own: `global_fn2` (global, untyped) moved from slot 0 to the
/// jump target at 7, which nothing else makes an entry (its symbol's `st_value` rewritten in the
/// file): 7 is now an entry through that symbol alone, and 0 stays one as the program's start
/// though no symbol is there any more.
#[test]
fn a_global_untyped_symbol_alone_makes_an_entry_and_slot_0_is_one_without_a_symbol() {
    for (name, big) in [(NOTYPE[0], false), (NOTYPE[1], true)] {
        let (mut bytes, obj) = load(name);
        let text = obj.program_by_name(".text").unwrap().0;
        let sym = obj.symbols().iter().position(|s| s.name == "global_fn2").unwrap();
        assert_eq!(obj.symbols()[sym].value, 0, "{name}");
        let symtab = (0..obj.section_headers().len()).find(|&i| obj.section_name(i) == Some(".symtab")).unwrap();
        let at = obj.section_headers()[symtab].offset as usize + 24 * sym + 8;
        let v: u64 = 7 * 8;
        bytes[at..at + 8].copy_from_slice(&if big { v.to_be_bytes() } else { v.to_le_bytes() });
        let moved = BpfObject::parse(&bytes).unwrap();
        assert_eq!(moved.entry_points(text), [0, 3, 7, 8], "{name}");
    }
}

/// An empty program (ldabs.s's empty `.text`) has no entry: slot 0 is an entry only of a
/// non-empty program, in the object's list and in the view's alike.
#[test]
fn an_empty_program_has_no_entries() {
    for name in ["ldabs-el.o", "ldabs-eb.o"] {
        let (_, obj) = load(name);
        let text = obj.program_by_name(".text").unwrap().0;
        assert!(obj.programs()[text].insns().is_empty(), "{name}");
        assert_eq!(obj.entry_points(text), Vec::<usize>::new(), "{name}");
        assert_eq!(obj.engine_view(text).unwrap().info().entries(), Vec::<usize>::new(), "{name}");
    }
}

/// The calls into a section from other sections, with the calling program and slot: the
/// `.text` functions `xdp` calls (`walk` at 10, `leaf` at 0; in the untyped objects also
/// through the section symbol); not kfunc calls (undefined symbols), calls inside `.text`, nor function
/// addresses (`each` at 28 is a callback).
#[test]
fn calls_into_name_the_caller_and_the_target() {
    for name in CALLS {
        let (_, obj) = load(name);
        let text = obj.program_by_name(".text").unwrap().0;
        let xdp = obj.program_by_name("xdp").unwrap().0;
        let calls: Vec<(usize, usize, usize)> =
            obj.calls_into(text).iter().map(|c| (c.from, c.slot, c.target)).collect();
        assert_eq!(calls, [(xdp, 22, 10), (xdp, 31, 0)], "{name}");
        assert!(obj.calls_into(xdp).is_empty(), "{name}");
        assert!(obj.calls_into(99).is_empty(), "{name}");
    }
    for name in NOTYPE {
        let (_, obj) = load(name);
        let text = obj.program_by_name(".text").unwrap().0;
        let targets: Vec<usize> = obj.calls_into(text).iter().map(|c| c.target).collect();
        // global_fn at 3; local_fn at 8, called through the section symbol.
        assert_eq!(targets, [3, 8], "{name}");
    }
}

/// A call from another section whose target code is deleted (with everything after it) has
/// nothing left to reach: the rewrite is refused and the object left as it was, instead of
/// writing a call past the end of the section.
#[test]
fn a_cross_section_call_into_deleted_code_is_refused() {
    for name in NOTYPE {
        let (bytes, mut obj) = load(name);
        let text = obj.program_by_name(".text").unwrap().0;
        let e = rewriter()
            .rewrite_program(&mut obj, text, &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
                for s in [8, 9] {
                    let n = list.node_of(Slot(s)).unwrap();
                    list.delete(n).unwrap();
                }
                Ok::<(), Infallible>(())
            })
            .unwrap_err();
        let EngineError::Object(bpfpatch_object::ObjectError::Rewrite { error, .. }) = &e else { panic!("{e}") };
        assert!(
            matches!(error, bpfpatch_object::RewriteError::RelocTargetDeleted { reloc: 1, target: 8, .. }),
            "{name}: {e}"
        );
        assert_eq!(obj.write().unwrap(), bytes, "{name}: unchanged");
    }
}

/// CO-RE-relocated instructions are patched by the loader in place: they are reported with the
/// relocated ones (for the passes' protected set), and a pass that rewrites one is refused.
#[test]
fn core_relocated_instructions_are_patched_at_load_and_guarded() {
    for name in PROG {
        let (bytes, mut obj) = load(name);
        let text = (0..obj.programs().len()).find(|&p| !obj.core_relos(p).is_empty()).expect("CO-RE records");
        let section = obj.programs()[text].name().to_string();
        let core: Vec<usize> = obj.core_relos(text).iter().map(|c| (c.insn_off / 8) as usize).collect();
        let view = obj.engine_view(text).unwrap();
        let info = view.info();
        let mut want: Vec<usize> = view.roles().iter().map(|r| r.0).chain(core.iter().copied()).collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(info.patched_at_load(), want, "{name}");
        assert!(core.iter().all(|&s| !info.is_relocated(s)), "{name}: no ELF relocation there");
        let at = core[0];
        // Moving it with a patch is fine; changing its offset is not.
        rewrite_checked(name, |list, info| {
            if info.name == section {
                let n = list.node_of(Slot(at)).unwrap();
                let insn = list.insn(n).unwrap();
                list.patch(n, &PatchBuf::from_insns(&[Insn::new(c::JMP | c::JA, 0, 0, 0, 0), insn])).unwrap();
            }
            Ok(())
        });
        let e = rewriter()
            .rewrite_program(&mut obj, text, &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
                let n = list.node_of(Slot(at)).unwrap();
                let mut insn = list.insn(n).unwrap();
                insn.off += 8;
                list.patch(n, &PatchBuf::from_insns(&[insn])).unwrap();
                Ok::<(), Infallible>(())
            })
            .unwrap_err();
        assert!(matches!(e, EngineError::RelocatedRewritten { old, .. } if old == at), "{name}: {e}");
        assert_eq!(obj.write().unwrap(), bytes, "{name}: unchanged");
    }
}

/// An external call (a relocated `call` into another section, a kfunc call in the view) whose
/// `imm` a pass changed is refused, though a local call's `imm` may change with its target:
/// only local calls and function addresses are compared without their `imm`.
/// Rewrites program `xdp` of a `calls-*.o` with a pass that adds 5 to the `imm` of its
/// external call (slot 22): the write-back's refusal.
fn bump_the_external_calls_imm(obj: &mut BpfObject, xdp: usize) -> EngineError {
    rewriter()
        .rewrite_program(obj, xdp, &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
            let n = list.node_of(Slot(22)).unwrap();
            let mut call = list.insn(n).unwrap();
            call.imm += 5;
            list.patch(n, &PatchBuf::from_insns(&[call])).unwrap();
            Ok::<(), Infallible>(())
        })
        .unwrap_err()
}

#[test]
fn an_external_calls_imm_is_guarded() {
    for name in CALLS {
        let (bytes, mut obj) = load(name);
        let xdp = obj.program_by_name("xdp").unwrap().0;
        assert!(roles(&obj, "xdp").contains(&(22, RelocRole::ExternCall)), "{name}");
        let e = bump_the_external_calls_imm(&mut obj, xdp);
        assert!(matches!(e, EngineError::RelocatedRewritten { old: 22, .. }), "{name}: {e}");
        assert_eq!(obj.write().unwrap(), bytes, "{name}: unchanged");
    }
}

/// `apply_patched_by_adjuster`, the write-back through the object's own adjuster, writes what
/// `apply_patched` writes (the one remap path's oracle, here called directly), and rewrites.
#[test]
fn both_write_backs_write_the_same_object() {
    for name in PROG.iter().chain(&CALLS) {
        let (bytes, obj) = load(name);
        for prog in 0..obj.programs().len() {
            let view = obj.engine_view(prog).unwrap();
            let hook = |_: &Insn, a: Option<&bpfpatch_object::SlotAux>| a.cloned().unwrap_or_default();
            let mut list = PatchList::for_program(view.program()).unwrap();
            prepatch_all(PrepatchMode::LandOnInserted)(&mut list, &view.info()).unwrap();
            let patched = list
                .linearize_program(view.program(), &mut { hook }, bpfpatch_patch::LinearizeOptions::default())
                .unwrap();
            let (mut a, mut b) = (obj.clone(), obj.clone());
            let ra = a.apply_patched(&view, &mut patched.clone()).unwrap();
            let rb = b.apply_patched_by_adjuster(&view, &mut patched.clone()).unwrap();
            assert_eq!(ra, rb, "{name} {prog}");
            let (wa, wb) = (a.write().unwrap(), b.write().unwrap());
            assert!(wa == wb, "{name} {prog}: the write-backs differ");
            assert!(wa != bytes, "{name} {prog}: rewritten");
        }
    }
}

/// How a relocation role reads in reports (`--explain`, `check`).
#[test]
fn relocation_roles_print_what_they_are() {
    let roles = [
        (RelocRole::LocalCall { target: 3 }, "local call to slot 3"),
        (RelocRole::LocalFuncAddr { target: 9 }, "address of slot 9"),
        (RelocRole::ExternCall, "external call"),
        (RelocRole::ExternAddr, "external address"),
        (RelocRole::Data, "data address"),
        (RelocRole::Other, "other"),
    ];
    for (role, text) in roles {
        assert_eq!(role.to_string(), text);
    }
}

#[test]
fn a_view_applied_to_a_changed_program_is_refused() {
    // The write-back borrows the object's instructions instead of keeping a copy in the view:
    // a view of a program that has since changed length is refused, the object left alone.
    let (_, mut obj) = load(CALLS[0]);
    let prog = obj.program_by_name(".text").unwrap().0;
    let view = obj.engine_view(prog).unwrap();
    let hook = |_: &Insn, a: Option<&bpfpatch_object::SlotAux>| a.cloned().unwrap_or_default();
    let mut patched = PatchList::for_program(view.program())
        .unwrap()
        .linearize_program(view.program(), &mut { hook }, bpfpatch_patch::LinearizeOptions::default())
        .unwrap();
    let mut grow = prepatch_all(PrepatchMode::LandOnInserted);
    rewriter().rewrite_program(&mut obj, prog, &mut grow).unwrap();
    let before = obj.clone();
    let err = obj.apply_patched(&view, &mut patched).unwrap_err();
    assert!(matches!(err, EngineError::StaleView { .. }), "{err}");
    assert_eq!(obj.write().unwrap(), before.write().unwrap());
}

/// The write-back takes the engine's remapped tables as given: a relocation or CO-RE record
/// the tables put at the end of the new image (past its last instruction) has no instruction
/// to sit on, so it is dropped and reported like one deleted with its instruction, never
/// followed past the image.
#[test]
fn engine_tables_past_the_new_image_drop_their_records() {
    for name in PROG {
        let (_, mut obj) = load(name);
        let pi = (0..obj.programs().len())
            .find(|&p| !obj.core_relos(p).is_empty() && !obj.programs()[p].relocs().is_empty())
            .unwrap();
        let view = obj.engine_view(pi).unwrap();
        let hook = |_: &Insn, a: Option<&bpfpatch_object::SlotAux>| a.cloned().unwrap_or_default();
        let mut patched = PatchList::for_program(view.program())
            .unwrap()
            .linearize_program(view.program(), &mut { hook }, bpfpatch_patch::LinearizeOptions::default())
            .unwrap();
        let end = patched.program.insns.len() as u64 * 8;
        let t = &mut patched.program.tables;
        let last = t.elf_relocs.len() - 1;
        t.elf_relocs[last].insn_off = end;
        t.core_relocs[0].insn_off = end;
        let reloc = obj.programs()[pi].relocs()[last];
        let cores = obj.core_relos(pi).len();
        let report = obj.apply_patched(&view, &mut patched).unwrap();
        assert_eq!(report.relocs_dropped.len(), 1, "{name}");
        assert_eq!(report.relocs_dropped[0].slot, reloc.slot, "{name}");
        assert_eq!(report.core_relos_dropped, 1, "{name}");
        assert_eq!(obj.core_relos(pi).len(), cores - 1, "{name}");
    }
}

/// The rewrite path's view takes the object's instructions instead of copying them
/// (`take_engine_view`, doc/DESIGN.md "Copies and decodes"), so every way a rewrite can fail
/// must give them back in the object's encodings: a pass that fails (its error, after it
/// patched), a pass the write-back refuses (a relocated instruction rewritten). After each the
/// object writes its input byte for byte, its programs read as before, and the next rewrite
/// (which sees the kernel view again, relocated roles included) succeeds.
#[test]
fn a_failed_rewrite_gives_the_instructions_back() {
    for name in CALLS {
        let (bytes, mut obj) = load(name);
        let before: Vec<Vec<Insn>> = obj.programs().iter().map(|p| p.insns().to_vec()).collect();
        let xdp = obj.program_by_name("xdp").unwrap().0;
        let roles_before = roles(&obj, "xdp");
        assert!(!roles_before.is_empty(), "{name}: relocated instructions to restore");
        let e = rewriter()
            .rewrite_program(&mut obj, xdp, &mut |list: &mut PatchList, _: &ProgramInfo<'_>| {
                let n = list.node_of(Slot(0)).unwrap();
                list.prepatch(
                    n,
                    &PatchBuf::from_insns(&[Insn::new(c::JMP | c::JA, 0, 0, 0, 0)]),
                    PrepatchMode::LandOnInserted,
                )
                .unwrap();
                Err("the pass failed")
            })
            .unwrap_err();
        assert!(matches!(e, EngineError::Pass { .. }), "{name}: {e}");
        let after: Vec<Vec<Insn>> = obj.programs().iter().map(|p| p.insns().to_vec()).collect();
        assert_eq!(after, before, "{name}: the instructions are the object's again");
        assert_eq!(obj.write().unwrap(), bytes, "{name}: unchanged after a failed pass");
        let e = bump_the_external_calls_imm(&mut obj, xdp);
        assert!(matches!(e, EngineError::RelocatedRewritten { old: 22, .. }), "{name}: {e}");
        assert_eq!(obj.write().unwrap(), bytes, "{name}: unchanged after a refused write-back");
        assert_eq!(roles(&obj, "xdp"), roles_before, "{name}: the same view again");
        let r = rewriter()
            .rewrite_program(&mut obj, xdp, &mut |_: &mut PatchList, _: &ProgramInfo<'_>| Ok::<(), Infallible>(()))
            .unwrap();
        assert_eq!(r.report.slots_before, before[xdp].len(), "{name}");
        assert_eq!(obj.write().unwrap(), bytes, "{name}: a rewrite that changes nothing");
    }
}
