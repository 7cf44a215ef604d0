//! The warm path: one `PatchList` (`reset_for_program`), one `PatchCtx` and one `PatchedProgram`
//! (`linearize_program_into`) reused across programs give exactly what fresh ones give, call the
//! aux hook once per output slot, and allocate nothing once warm.
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

/// Aux: (original slot, or 1000 + parent slot for new slots; `patched` calls on it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct A {
    tag: u32,
    touched: u32,
}

/// Counts its calls, so that a hook called twice for a slot (or not at all) shows.
#[derive(Default)]
struct Hook {
    new_slots: usize,
    patched: usize,
}

impl AuxHook<A> for Hook {
    fn new_slot(&mut self, insn: &Insn, parent: Option<&A>) -> A {
        self.new_slots += 1;
        // The instruction is final: a jump's offset is already resolved (tag it in).
        let off = if insn.target_field().is_some() { u32::from(insn.off as u16) << 16 } else { 0 };
        A { tag: parent.map_or(9999, |p| 1000 + p.tag) | off, touched: 0 }
    }
    fn patched(&mut self, aux: &mut A, insn: &Insn) {
        self.patched += 1;
        aux.touched += 1 + u32::from(insn.off as u16);
    }
}

fn line(off: u32, line: u32) -> LineInfo {
    LineInfo { insn_off: off, file_name_off: 1, line_off: 100 + line, line_col: line << 10 }
}

/// main (0..6): mov ; jeq +2 ; call sub1 ; call sub2 ; mov; exit ; sub1 (6..8) ; sub2 (8..10).
fn big() -> Program<A> {
    let insns = vec![
        mov64(0, 0),
        jeq(1, 3, 2),
        call_local(3),
        call_local(4),
        mov64(0, 9),
        exit(),
        mov64(0, 1),
        exit(),
        mov64(0, 2),
        exit(),
    ];
    let aux = (0..insns.len() as u32).map(|tag| A { tag, touched: 0 }).collect();
    let tables = SideTables {
        subprogs: vec![
            Subprog { start: 0, linfo_idx: 0 },
            Subprog { start: 6, linfo_idx: 3 },
            Subprog { start: 8, linfo_idx: 4 },
        ],
        func_info: vec![
            FuncInfo { insn_off: 0, type_id: 10 },
            FuncInfo { insn_off: 6, type_id: 11 },
            FuncInfo { insn_off: 8, type_id: 12 },
        ],
        line_info: vec![line(0, 1), line(1, 2), line(4, 3), line(6, 4), line(8, 5), line(9, 6)],
        pokes: vec![PokeDesc { insn_idx: 3, map: 1, key: 0 }],
        insn_arrays: vec![
            vec![InsnArrayEntry { orig_off: 1, xlated_off: 1 }, InsnArrayEntry { orig_off: 4, xlated_off: 4 }],
            vec![InsnArrayEntry { orig_off: 7, xlated_off: 7 }],
        ],
        core_relocs: vec![Reloc { insn_off: 8, data: CoreRelocData { type_id: 3, access_str_off: 4, kind: 0 } }],
        elf_relocs: vec![
            Reloc { insn_off: 32, data: ElfRelocData { sym: 1, kind: 10 } },
            Reloc { insn_off: 48, data: ElfRelocData { sym: 2, kind: 10 } },
        ],
    };
    Program { insns, aux, tables }
}

/// A smaller program with fewer tables (the reused output must shrink to it).
fn small() -> Program<A> {
    let insns = vec![jeq(1, 0, 1), mov64(0, 1), exit()];
    let aux = (0..insns.len() as u32).map(|tag| A { tag: 500 + tag, touched: 0 }).collect();
    let tables = SideTables { line_info: vec![line(0, 1), line(2, 2)], ..SideTables::default() };
    Program { insns, aux, tables }
}

/// Patches every instruction of `prog` that has a target (keeping it) or is a `mov`, deletes
/// the instruction before the first `exit` when asked, and appends a subprogram.
fn edit(l: &mut PatchList, prog: &Program<A>, delete: bool) {
    for (i, insn) in prog.insns.iter().enumerate() {
        let n = l.node_of(Slot(i)).unwrap();
        if insn.target_field().is_some() {
            let mut b = PatchBuf::new();
            b.push(mov64(11, 7)).push(add64(11, 1)).jump_to(*insn, Target::OrigTarget);
            l.patch(n, &b).unwrap();
        } else if insn.code == mov64(0, 0).code {
            l.patch(n, &PatchBuf::from_insns(&[mov64(2, 2), *insn])).unwrap();
        }
    }
    if delete && let Some(i) = prog.insns.iter().position(|i| *i == exit()) {
        l.delete(l.node_of(Slot(i - 1)).unwrap()).unwrap();
    }
    let mut b = PatchBuf::new();
    b.push(mov64(0, 0)).jump_to(ja(0), Target::Orig(Slot(0))).push(exit());
    l.append(&b).unwrap();
}

fn assert_same(a: &PatchedProgram<A>, b: &PatchedProgram<A>, what: &str) {
    assert_eq!(a.program, b.program, "{what}: program");
    assert_eq!(a.subprog_map, b.subprog_map, "{what}: subprog_map");
    assert_eq!(a.dropped, b.dropped, "{what}: dropped");
    assert_eq!(a.stats, b.stats, "{what}: stats");
    assert_eq!(a.map.new_len(), b.map.new_len(), "{what}: new_len");
    for s in 0..=a.map.orig_len() {
        let s = Slot(s);
        assert_eq!(
            (a.map.jump_target(s), a.map.start(s), a.map.insn(s), a.map.is_deleted(s)),
            (b.map.jump_target(s), b.map.start(s), b.map.insn(s), b.map.is_deleted(s)),
            "{what}: map at {s}"
        );
    }
}

#[test]
fn reused_list_ctx_and_output_match_fresh_ones() {
    // The list's allocations, kept across programs (each list borrows its program).
    let mut kept: PatchList<'static> = PatchList::default();
    let mut ctx = PatchCtx::new();
    let mut out = PatchedProgram::default();
    for round in 0..3 {
        for (name, prog) in [("big", big()), ("small", small())] {
            for delete in [false, true] {
                // Without overflow, the fused engine (relax off) and the relaxing one (which
                // builds aux after resolving) must agree, hook inputs included.
                let mut by_mode = Vec::new();
                for relax in [false, true] {
                    let what = format!("round {round} {name} delete {delete} relax {relax}");
                    let opts = LinearizeOptions { relax };
                    let mut fresh_list = PatchList::for_program(&prog).unwrap();
                    edit(&mut fresh_list, &prog, delete);
                    let mut fresh_hook = Hook::default();
                    let fresh = fresh_list.linearize_program(&prog, &mut fresh_hook, opts).unwrap();

                    let mut list = kept.recycle();
                    list.reset_for_program(&prog).unwrap();
                    edit(&mut list, &prog, delete);
                    let mut hook = Hook::default();
                    list.linearize_program_into(&mut ctx, &prog, &mut hook, opts, &mut out).unwrap();
                    kept = list.recycle();
                    assert_same(&out, &fresh, &what);
                    // Once per slot: every new slot once, every patched identity once.
                    let new = out.program.aux.iter().filter(|a| a.tag & 0xffff >= 1000).count();
                    let touched = out.program.aux.iter().filter(|a| a.touched > 0).count();
                    assert_eq!((hook.new_slots, hook.patched), (new, touched), "{what}: hook calls");
                    assert_eq!((fresh_hook.new_slots, fresh_hook.patched), (new, touched), "{what}");
                    by_mode.push(fresh);
                }
                assert_same(&by_mode[0], &by_mode[1], &format!("round {round} {name} delete {delete}: modes"));
            }
        }
    }
}

#[test]
fn warm_runs_allocate_nothing() {
    let prog = big();
    let mut list = PatchList::default();
    let mut ctx = PatchCtx::new();
    let mut out = PatchedProgram::default();
    let mut ptrs = Vec::new();
    let mut fresh_list = PatchList::for_program(&prog).unwrap();
    edit(&mut fresh_list, &prog, true);
    let fresh = fresh_list.linearize_program(&prog, &mut Hook::default(), LinearizeOptions::default()).unwrap();
    for run in 0..3 {
        list.reset_for_program(&prog).unwrap();
        edit(&mut list, &prog, true);
        // From the second run on, the output already has the right length and is overwritten
        // in place: the result must not depend on what it held.
        out.program.insns.fill(Insn::default());
        out.program.aux.fill(A { tag: 77_777, touched: 9 });
        list.linearize_program_into(&mut ctx, &prog, &mut Hook::default(), LinearizeOptions::default(), &mut out)
            .unwrap();
        assert_same(&out, &fresh, &format!("warm run {run}"));
        let t = &out.program.tables;
        ptrs.push((
            out.program.insns.as_ptr() as usize,
            out.program.aux.as_ptr() as usize,
            t.line_info.as_ptr() as usize,
            t.subprogs.as_ptr() as usize,
            t.insn_arrays[0].as_ptr() as usize,
            t.elf_relocs.as_ptr() as usize,
            out.subprog_map.as_ptr() as usize,
        ));
    }
    // The first run sizes the buffers; later runs write into the same ones.
    assert_eq!(ptrs[1], ptrs[2]);
}
