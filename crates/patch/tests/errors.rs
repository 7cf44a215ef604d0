//! Every error variant, and "a rejected request changes nothing".
// Test code: values are small and known; panicking on a broken expectation is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use bpfpatch_insn::{Insn, Slot};
use bpfpatch_patch::reference::{KernelAux, KernelAuxHook};
use bpfpatch_patch::*;
use common::*;

fn prog() -> Vec<Insn> {
    // 0: jeq -> 3 ; 1-2: ld_imm64 ; 3: mov ; 4: exit
    let mut p = vec![jeq(1, 0, 2)];
    p.extend(ld_imm64(2, 7));
    p.push(mov64(0, 0));
    p.push(exit());
    p
}

fn snapshot(l: &PatchList) -> (Vec<(NodeId, Insn)>, Option<Vec<Insn>>) {
    (l.slots().collect(), l.linearize(LinearizeOptions::default()).ok().map(|o| o.insns))
}

/// Runs a failing request and checks the list did not change.
fn rejects(l: &mut PatchList, f: impl FnOnce(&mut PatchList) -> Result<()>) -> Error {
    let before = snapshot(l);
    let n = l.node_count();
    let e = f(l).expect_err("request must fail");
    assert_eq!(snapshot(l), before, "rejected request changed the list: {e}");
    assert_eq!(l.node_count(), n);
    e
}

fn n(s: usize) -> NodeId {
    NodeId::of_slot(Slot(s))
}

#[test]
fn program_errors() {
    assert_eq!(
        PatchList::new(&[ja(5), exit()]).unwrap_err(),
        Error::OrigTargetOutOfRange { slot: Slot(0), target: 6, len: 2 }
    );
    assert_eq!(
        PatchList::new(&[ja(-2), exit()]).unwrap_err(),
        Error::OrigTargetOutOfRange { slot: Slot(0), target: -1, len: 2 }
    );
    let mut p = vec![ja(1)];
    p.extend(ld_imm64(0, 1));
    p.push(exit());
    assert_eq!(PatchList::new(&p).unwrap_err(), Error::OrigTargetIntoLdImm64 { slot: Slot(0), target: 2 });
    assert_eq!(
        PatchList::new(&[mov64(0, 0), ld_imm64(0, 1)[0]]).unwrap_err(),
        Error::TruncatedLdImm64 { slot: Slot(1) }
    );
    let p = prog();
    for bad in [&[1u32][..], &[0, 0], &[0, 2], &[0, 9], &[0, 3, 1]] {
        assert!(matches!(PatchList::with_subprogs(&p, bad), Err(Error::BadSubprogStart { .. })), "{bad:?}");
    }
    assert!(PatchList::with_subprogs(&p, &[0, 3]).is_ok());
    // Raw garbage in an ld_imm64 second slot is never interpreted as a jump.
    let mut p = vec![mov64(0, 0)];
    p.extend(ld_imm64(0, 1));
    p[2] = ja(-100);
    p.push(exit());
    assert!(PatchList::new(&p).is_ok());
}

#[test]
fn original_targets_and_subprogram_starts_lie_inside_the_program() {
    // A jump to slot `len` (one past the last instruction) has no instruction to land on.
    assert_eq!(
        PatchList::new(&[ja(1), exit()]).unwrap_err(),
        Error::OrigTargetOutOfRange { slot: Slot(0), target: 2, len: 2 }
    );
    // Nor can a subprogram start there.
    let p = prog();
    assert_eq!(
        PatchList::with_subprogs(&p, &[0, p.len() as u32]).unwrap_err(),
        Error::BadSubprogStart { index: 1, start: p.len() }
    );
    // The empty program has no subprogram (there is no slot 0 to start one).
    let orig = [];
    let l = PatchList::new(&orig).unwrap();
    assert_eq!((l.subprog_count(), l.orig_subprog_count()), (0, 0));
}

#[test]
fn node_errors() {
    let orig = prog();
    let mut l = PatchList::new(&orig).unwrap();
    let one = PatchBuf::from_insns(&[mov64(0, 1)]);
    assert_eq!(
        rejects(&mut l, |l| l.patch(NodeId::of_slot(Slot(99)), &one).map(drop)),
        Error::NoSuchNode { node: n(99) }
    );
    // The end sentinel is not an instruction.
    assert!(matches!(rejects(&mut l, |l| l.patch(n(5), &one).map(drop)), Error::NoSuchNode { .. }));
    assert!(l.node_of(Slot(5)).is_err());
    assert_eq!(rejects(&mut l, |l| l.delete(n(2))), Error::LdImm64Tail { node: n(2) });
    assert_eq!(
        rejects(&mut l, |l| l.prepatch(n(2), &one, PrepatchMode::SkipForJumps).map(drop)),
        Error::LdImm64Tail { node: n(2) }
    );
    assert_eq!(rejects(&mut l, |l| l.delete_range(n(3), n(1))), Error::BadRange { first: n(3), last: n(1) });
    assert_eq!(rejects(&mut l, |l| l.set_insn(n(1), mov64(0, 0))), Error::LengthChange { node: n(1) });
    assert_eq!(rejects(&mut l, |l| l.set_insn(n(3), ja(0))), Error::NoTargetToKeep { node: n(3) });
    assert_eq!(rejects(&mut l, |l| l.retarget(n(3), Target::PastEnd)), Error::NodeHasNoTargetField { node: n(3) });
    l.delete(n(3)).unwrap();
    assert_eq!(rejects(&mut l, |l| l.patch(n(3), &one).map(drop)), Error::NodeDeleted { node: n(3) });
    assert_eq!(rejects(&mut l, |l| l.delete(n(3))), Error::NodeDeleted { node: n(3) });
    assert_eq!(rejects(&mut l, |l| l.cursor_at(n(3)).map(drop)), Error::NodeDeleted { node: n(3) });
}

#[test]
fn buffer_errors() {
    let orig = prog();
    let mut l = PatchList::new(&orig).unwrap();
    let empty = PatchBuf::new();
    assert_eq!(rejects(&mut l, |l| l.patch(n(3), &empty).map(drop)), Error::EmptyPatch);
    assert_eq!(
        rejects(&mut l, |l| l.prepatch(n(3), &empty, PrepatchMode::LandOnInserted).map(drop)),
        Error::EmptyPatch
    );
    assert_eq!(rejects(&mut l, |l| l.append(&empty).map(drop)), Error::EmptyPatch);

    let lone = PatchBuf::from_insns(&[mov64(0, 0), ld_imm64(1, 1)[0]]);
    assert_eq!(rejects(&mut l, |l| l.patch(n(3), &lone).map(drop)), Error::BufTruncatedLdImm64 { index: 1 });

    let mut b = PatchBuf::new();
    b.jump_to(mov64(0, 0), Target::PastEnd);
    assert_eq!(
        rejects(&mut l, |l| l.patch(n(3), &b).map(drop)),
        Error::NotATargetInsn { index: 0, code: mov64(0, 0).code }
    );
    let mut b = PatchBuf::new();
    let ld = ld_imm64(1, 1);
    b.push(ld[0]).jump_to(ld[1], Target::PastEnd);
    assert!(matches!(rejects(&mut l, |l| l.patch(n(3), &b).map(drop)), Error::NotATargetInsn { index: 1, .. }));

    let b = PatchBuf::from_insns(&[ja(5)]);
    assert_eq!(
        rejects(&mut l, |l| l.patch(n(3), &b).map(drop)),
        Error::LocalTargetOutOfRange { index: 0, target: 6, len: 1 }
    );
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::Local(9));
    assert!(matches!(rejects(&mut l, |l| l.patch(n(3), &b).map(drop)), Error::LocalTargetOutOfRange { target: 9, .. }));

    let mut b = PatchBuf::new();
    b.push(ja(1)).push(ld[0]).push(ld[1]); // local target 2 = the buffer's ld_imm64 tail
    assert_eq!(rejects(&mut l, |l| l.patch(n(3), &b).map(drop)), Error::TargetIntoLdImm64 { index: 0 });
    for t in [Target::Orig(Slot(2)), Target::Node(n(2))] {
        let mut b = PatchBuf::new();
        b.jump_to(ja(0), t);
        assert_eq!(rejects(&mut l, |l| l.patch(n(3), &b).map(drop)), Error::TargetIntoLdImm64 { index: 0 });
    }

    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::OrigTarget);
    assert_eq!(rejects(&mut l, |l| l.patch(n(3), &b).map(drop)), Error::NoOrigTarget { index: 0 });
    assert_eq!(rejects(&mut l, |l| l.append(&b).map(drop)), Error::TargetNeedsPatchPoint { index: 0 });
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::PastEnd);
    assert_eq!(rejects(&mut l, |l| l.append(&b).map(drop)), Error::TargetNeedsPatchPoint { index: 0 });

    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::Orig(Slot(9)));
    assert_eq!(
        rejects(&mut l, |l| l.patch(n(3), &b).map(drop)),
        Error::OrigSlotOutOfRange { index: 0, slot: Slot(9), len: 5 }
    );
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::Node(n(999)));
    assert_eq!(rejects(&mut l, |l| l.patch(n(3), &b).map(drop)), Error::TargetNoSuchNode { index: 0, node: n(999) });
    let mut b = PatchBuf::new();
    b.jump_to(call_local(0), Target::Subprog(SubprogId(7)));
    assert_eq!(
        rejects(&mut l, |l| l.patch(n(3), &b).map(drop)),
        Error::UnknownSubprog { index: 0, subprog: SubprogId(7) }
    );
}

#[test]
fn label_errors() {
    let orig = prog();
    let mut other = PatchList::new(&orig).unwrap();
    for _ in 0..3 {
        other.new_label().unwrap();
    }
    let foreign = other.new_label().unwrap();
    let orig = prog();
    let mut l = PatchList::new(&orig).unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::Label(foreign));
    assert_eq!(rejects(&mut l, |l| l.patch(n(3), &b).map(drop)), Error::UnknownLabel { label: foreign });
    assert_eq!(rejects(&mut l, |l| l.bind_label(foreign, n(3))), Error::UnknownLabel { label: foreign });
    let lab = l.label_at(n(3)).unwrap();
    assert_eq!(rejects(&mut l, |l| l.bind_label(lab, n(0))), Error::LabelAlreadyBound { label: lab });
    let unbound = l.new_label().unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::Label(unbound));
    l.patch(n(3), &b).unwrap();
    assert_eq!(
        l.linearize(LinearizeOptions::default()).unwrap_err(),
        Error::UnboundLabel { at: Slot(3), label: unbound }
    );
}

#[test]
fn linearize_errors() {
    // A jump past the end: a patch of the last instruction jumping "past end".
    let orig = prog();
    let mut l = PatchList::new(&orig).unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::PastEnd);
    l.patch(n(4), &b).unwrap();
    assert_eq!(
        l.linearize(LinearizeOptions::default()).unwrap_err(),
        Error::TargetPastEnd { at: Slot(4), orig: Some(Slot(4)) }
    );
    // ... or a jump whose target and everything after it was deleted.
    let orig = prog();
    let mut l = PatchList::new(&orig).unwrap();
    l.delete_range(n(3), n(4)).unwrap();
    assert_eq!(
        l.linearize(LinearizeOptions::default()).unwrap_err(),
        Error::TargetPastEnd { at: Slot(0), orig: Some(Slot(0)) }
    );
    // JumpOutOfRange: see tests/relax.rs.
}

#[test]
fn table_errors() {
    let p = prog();
    let aux = vec![KernelAux::default(); p.len()];
    let base = Program { insns: p.clone(), aux: aux.clone(), tables: SideTables::default() };
    let l = PatchList::for_program(&base).unwrap();
    let run = |prog: &Program<KernelAux>| {
        l.linearize_program(prog, &mut KernelAuxHook, LinearizeOptions::default()).map(drop)
    };
    assert!(run(&base).is_ok());
    let mut x = base.clone();
    x.insns.push(exit());
    x.aux.push(KernelAux::default());
    assert_eq!(run(&x).unwrap_err(), Error::ProgramMismatch { expected: 5, got: 6 });
    let mut x = base.clone();
    x.aux.pop();
    assert_eq!(run(&x).unwrap_err(), Error::AuxLength { expected: 5, got: 4 });
    let mut x = base.clone();
    x.tables.subprogs = vec![Subprog { start: 0, linfo_idx: 0 }, Subprog { start: 3, linfo_idx: 0 }];
    assert_eq!(run(&x).unwrap_err(), Error::SubprogMismatch { index: 1 });
    // The table names the program's own subprograms only, not one appended to the list (even
    // at the start the list gives it): cargo-mutants showed the bound of that rule unchecked.
    let mut la = PatchList::for_program(&base).unwrap();
    let appended = la.append(&PatchBuf::from_insns(&[mov64(0, 0), exit()])).unwrap();
    let start = u32::try_from(appended.first.index()).unwrap();
    let mut x = base.clone();
    x.tables.subprogs = vec![Subprog { start: 0, linfo_idx: 0 }, Subprog { start, linfo_idx: 0 }];
    assert_eq!(
        la.linearize_program(&x, &mut KernelAuxHook, LinearizeOptions::default()).map(drop).unwrap_err(),
        Error::SubprogMismatch { index: 1 }
    );
    let mut x = base.clone();
    x.tables.func_info = vec![FuncInfo::default(); 2];
    assert_eq!(run(&x).unwrap_err(), Error::FuncInfoCount { got: 2, subprogs: 1 });
    let mut x = base.clone();
    x.tables.line_info = vec![LineInfo { insn_off: 2, ..LineInfo::default() }];
    assert_eq!(run(&x).unwrap_err(), Error::BadTableSlot { table: "line_info", index: 0, slot: 2 });
    let mut x = base.clone();
    x.tables.line_info =
        vec![LineInfo { insn_off: 3, ..LineInfo::default() }, LineInfo { insn_off: 3, ..LineInfo::default() }];
    assert_eq!(run(&x).unwrap_err(), Error::LineInfoOrder { index: 1, insn_off: 3 });
    let mut x = base.clone();
    x.tables.pokes = vec![PokeDesc { insn_idx: 5, ..PokeDesc::default() }];
    assert_eq!(run(&x).unwrap_err(), Error::BadTableSlot { table: "pokes", index: 0, slot: 5 });
    let mut x = base.clone();
    x.tables.insn_arrays = vec![vec![InsnArrayEntry { orig_off: 0, xlated_off: 7 }]];
    assert_eq!(run(&x).unwrap_err(), Error::BadTableSlot { table: "insn_array", index: 0, slot: 7 });
    let mut x = base.clone();
    x.tables.core_relocs = vec![Reloc { insn_off: 12, data: CoreRelocData::default() }];
    assert_eq!(run(&x).unwrap_err(), Error::RelocMisaligned { table: "core_relocs", index: 0, offset: 12 });
    let mut x = base.clone();
    x.tables.elf_relocs = vec![Reloc { insn_off: 80, data: ElfRelocData::default() }];
    assert_eq!(run(&x).unwrap_err(), Error::BadTableSlot { table: "elf_relocs", index: 0, slot: 10 });
}
