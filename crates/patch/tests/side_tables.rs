//! Each side table of the verification layer, on small hand-checked programs.
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
use bpfpatch_patch::*;
use common::*;

/// Aux for these tests: (original slot or 1000 + parent slot for new slots, patched-hook calls).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct A {
    tag: u32,
    touched: u32,
}

struct Hook;
impl AuxHook<A> for Hook {
    fn new_slot(&mut self, _insn: &Insn, parent: Option<&A>) -> A {
        A { tag: parent.map_or(9999, |p| 1000 + p.tag), touched: 0 }
    }
    fn patched(&mut self, aux: &mut A, _insn: &Insn) {
        aux.touched += 1;
    }
}

fn line(off: u32, line: u32) -> LineInfo {
    LineInfo { insn_off: off, file_name_off: 1, line_off: 100 + line, line_col: line << 10 }
}

/// main (0..4): mov ; call sub1 ; call sub2 ; exit ; sub1 (4..6): mov ; exit ; sub2 (6..8): mov ; exit
fn program() -> Program<A> {
    let insns = vec![mov64(0, 0), call_local(2), call_local(3), exit(), mov64(0, 1), exit(), mov64(0, 2), exit()];
    let aux = (0..insns.len() as u32).map(|tag| A { tag, touched: 0 }).collect();
    let tables = SideTables {
        subprogs: vec![
            Subprog { start: 0, linfo_idx: 0 },
            Subprog { start: 4, linfo_idx: 3 },
            Subprog { start: 6, linfo_idx: 4 },
        ],
        func_info: vec![
            FuncInfo { insn_off: 0, type_id: 10 },
            FuncInfo { insn_off: 4, type_id: 11 },
            FuncInfo { insn_off: 6, type_id: 12 },
        ],
        line_info: vec![line(0, 1), line(1, 2), line(3, 3), line(4, 4), line(6, 5), line(7, 6)],
        pokes: vec![PokeDesc { insn_idx: 2, map: 1, key: 0 }, PokeDesc { insn_idx: 5, map: 1, key: 1 }],
        insn_arrays: vec![vec![
            InsnArrayEntry { orig_off: 1, xlated_off: 1 },
            InsnArrayEntry { orig_off: 5, xlated_off: 5 },
            InsnArrayEntry { orig_off: 6, xlated_off: INSN_DELETED },
        ]],
        core_relocs: vec![Reloc { insn_off: 8, data: CoreRelocData { type_id: 3, access_str_off: 4, kind: 0 } }],
        elf_relocs: vec![
            Reloc { insn_off: 32, data: ElfRelocData { sym: 1, kind: 10 } },
            Reloc { insn_off: 48, data: ElfRelocData { sym: 2, kind: 10 } },
        ],
    };
    Program { insns, aux, tables }
}

fn run(l: &PatchList, p: &Program<A>) -> PatchedProgram<A> {
    l.linearize_program(p, &mut Hook, LinearizeOptions::default()).unwrap()
}

/// `[mov r1, 1; <the patched call, same target>]`
fn call_after_mov() -> PatchBuf {
    let mut b = PatchBuf::new();
    b.push(mov64(1, 1)).jump_to(call_local(0), Target::OrigTarget);
    b
}

fn node(l: &PatchList, s: usize) -> NodeId {
    l.node_of(Slot(s)).unwrap()
}

#[test]
fn untouched_program_round_trips() {
    let p = program();
    let l = PatchList::for_program(&p).unwrap();
    let out = run(&l, &p);
    assert_eq!(out.program, p);
    assert!(out.dropped.is_empty());
    assert_eq!(out.subprog_map, vec![Some(0), Some(1), Some(2)]);
}

#[test]
fn aux_moves_to_last_slot_new_slots_from_hook() {
    let p = program();
    let mut l = PatchList::for_program(&p).unwrap();
    let mut b = PatchBuf::new();
    b.push(mov64(1, 1)).push(mov64(2, 2)).jump_to(call_local(0), Target::OrigTarget);
    l.patch(node(&l, 1), &b).unwrap();
    l.prepatch(node(&l, 4), &PatchBuf::from_insns(&[mov64(3, 3)]), PrepatchMode::SkipForJumps).unwrap();
    l.append(&PatchBuf::from_insns(&[mov64(0, 0), exit()])).unwrap();
    let out = run(&l, &p);
    let tags: Vec<u32> = out.program.aux.iter().map(|a| a.tag).collect();
    assert_eq!(tags, vec![0, 1001, 1001, 1, 2, 3, 1004, 4, 5, 6, 7, 9999, 9999]);
    let touched: Vec<u32> = out.program.aux.iter().map(|a| a.touched).collect();
    assert_eq!(touched, vec![0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0], "the hook ran once per involved original");
}

#[test]
fn subprogram_starts_func_info_and_appended_subprogram() {
    let p = program();
    let mut l = PatchList::for_program(&p).unwrap();
    // A prologue before sub1 belongs to sub1; a patch at sub2's start keeps it the start.
    l.prepatch(node(&l, 4), &PatchBuf::from_insns(&[mov64(3, 3)]), PrepatchMode::SkipForJumps).unwrap();
    l.patch(node(&l, 6), &PatchBuf::from_insns(&[mov64(4, 4), mov64(0, 2)])).unwrap();
    let a = l.append(&PatchBuf::from_insns(&[mov64(0, 0), exit()])).unwrap();
    let out = run(&l, &p);
    let t = &out.program.tables;
    let starts: Vec<u32> = t.subprogs.iter().map(|s| s.start).collect();
    assert_eq!(starts, vec![0, 4, 7, 10]);
    assert_eq!(
        t.func_info.iter().map(|f| (f.insn_off, f.type_id)).collect::<Vec<_>>(),
        vec![(0, 10), (4, 11), (7, 12)]
    );
    assert_eq!(out.subprog_map[a.subprog.index()], Some(3));
    // linfo_idx: the entry at each start (the appended one has none: index past the end).
    assert_eq!(t.subprogs.iter().map(|s| s.linfo_idx).collect::<Vec<_>>(), vec![0, 3, 4, 6]);
}

#[test]
fn deleting_a_whole_subprogram_removes_it_and_its_func_info() {
    let p = program();
    let mut l = PatchList::for_program(&p).unwrap();
    // nobody calls sub1 any more; then its code goes
    l.patch(node(&l, 1), &PatchBuf::from_insns(&[mov64(0, 0)])).unwrap();
    l.delete_range(node(&l, 4), node(&l, 5)).unwrap();
    let out = run(&l, &p);
    let t = &out.program.tables;
    assert_eq!(t.subprogs, vec![Subprog { start: 0, linfo_idx: 0 }, Subprog { start: 4, linfo_idx: 3 }]);
    assert_eq!(t.func_info, vec![FuncInfo { insn_off: 0, type_id: 10 }, FuncInfo { insn_off: 4, type_id: 12 }]);
    assert_eq!(out.subprog_map, vec![Some(0), None, Some(1)]);
    assert_eq!(t.line_info, vec![line(0, 1), line(1, 2), line(3, 3), line(4, 5), line(5, 6)]);
}

#[test]
fn line_info_patch_point_covers_patch_and_deletion_inherits_last() {
    let p = program();
    let mut l = PatchList::for_program(&p).unwrap();
    l.patch(node(&l, 1), &call_after_mov()).unwrap();
    let out = run(&l, &p);
    let offs: Vec<u32> = out.program.tables.line_info.iter().map(|x| x.insn_off).collect();
    assert_eq!(offs, vec![0, 1, 4, 5, 7, 8], "the entry at the patch point covers the patch");

    // Delete slots 1..=2: slot 1 has a line, slot 2 none, slot 3 has its own: the removed line
    // disappears. Delete slot 0..=1 in another list: slot 2 has no line: it inherits line 2.
    let mut l = PatchList::for_program(&p).unwrap();
    l.delete_range(node(&l, 1), node(&l, 2)).unwrap();
    let lines: Vec<(u32, u32)> =
        run(&l, &p).program.tables.line_info.iter().map(|x| (x.insn_off, x.line_col >> 10)).collect();
    assert_eq!(lines, vec![(0, 1), (1, 3), (2, 4), (4, 5), (5, 6)]);
    let mut l = PatchList::for_program(&p).unwrap();
    l.delete_range(node(&l, 0), node(&l, 1)).unwrap();
    let out = run(&l, &p);
    let lines: Vec<(u32, u32)> = out.program.tables.line_info.iter().map(|x| (x.insn_off, x.line_col >> 10)).collect();
    assert_eq!(lines, vec![(0, 2), (1, 3), (2, 4), (4, 5), (5, 6)], "first survivor inherits the last removed line");
    assert_eq!(out.program.tables.subprogs[0].linfo_idx, 0);
    // Deleting the tail drops its lines.
    let mut l = PatchList::for_program(&p).unwrap();
    l.delete_range(node(&l, 6), node(&l, 7)).unwrap();
    l.patch(node(&l, 2), &PatchBuf::from_insns(&[mov64(0, 0)])).unwrap();
    let out = run(&l, &p);
    assert_eq!(out.program.tables.line_info.len(), 4);
    assert_eq!(out.program.tables.subprogs.len(), 2);
}

#[test]
fn pokes_insn_arrays_and_relocations() {
    let p = program();
    let mut l = PatchList::for_program(&p).unwrap();
    // Patch at the poke's slot: the poke stays at the patch start; the ELF reloc on slot 4
    // follows the instruction (last slot of its patch).
    l.patch(node(&l, 2), &call_after_mov()).unwrap();
    l.patch(node(&l, 4), &PatchBuf::from_insns(&[mov64(1, 1), mov64(0, 1)])).unwrap();
    // Delete slot 5 (a poke, an insn-array entry) and slot 1 (a CO-RE reloc, an insn-array entry).
    l.delete(node(&l, 5)).unwrap();
    l.patch(node(&l, 1), &PatchBuf::from_insns(&[mov64(0, 0)])).unwrap();
    l.delete(node(&l, 1)).unwrap();
    let out = run(&l, &p);
    let t = &out.program.tables;
    // new: 0 mov, 1 mov1 (poke 0), 2 call, 3 exit, 4 mov1, 5 mov0 (elf 0), 6 mov, 7 exit (elf 1)
    assert_eq!(t.pokes, vec![PokeDesc { insn_idx: 1, map: 1, key: 0 }, PokeDesc { insn_idx: 6, map: 1, key: 1 }]);
    assert_eq!(
        t.insn_arrays[0],
        vec![
            InsnArrayEntry { orig_off: 1, xlated_off: INSN_DELETED },
            InsnArrayEntry { orig_off: 5, xlated_off: INSN_DELETED },
            InsnArrayEntry { orig_off: 6, xlated_off: INSN_DELETED },
        ]
    );
    assert!(t.core_relocs.is_empty());
    assert_eq!(t.elf_relocs.iter().map(|r| r.insn_off).collect::<Vec<_>>(), vec![40, 48]);
    assert_eq!(
        out.dropped,
        vec![Dropped::StalePoke { index: 1, insn_idx: 5 }, Dropped::CoreReloc { index: 0, insn_off: 8 }]
    );
}

#[test]
fn remap_functions_are_usable_alone() {
    let m = OffsetMap::identity(4);
    let mut out = Vec::new();
    m.remap_line_info(&[line(0, 1), line(3, 2)], &mut out);
    assert_eq!(out, vec![line(0, 1), line(3, 2)]);
    let mut dropped = Vec::new();
    let mut r = Vec::new();
    m.remap_relocs("x", &[Reloc { insn_off: 24, data: 7u8 }], &mut r, &mut dropped).unwrap();
    assert_eq!(r, vec![Reloc { insn_off: 24, data: 7u8 }]);
    assert!(m.remap_relocs("x", &[Reloc { insn_off: 4, data: 7u8 }], &mut r, &mut dropped).is_err());
}
