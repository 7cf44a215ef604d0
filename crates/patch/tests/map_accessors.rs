//! The old-to-new map's accessors, and the aux and statistics of both engines, on small programs
//! whose answer is known by hand from the requests (the documented rules); node positions
//! against the list's own order.
// Test code: values are small and known; panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{Insn, Slot};
use bpfpatch_patch::*;
use common::*;

/// `mov r0; mov r1; mov r2; mov r3; exit`; `deleted_and_patched` deletes slot 1 and patches
/// slot 3 with two slots: `mov r0; mov r2; mov r4; mov r3; exit`.
fn program() -> Vec<Insn> {
    vec![mov64(0, 0), mov64(1, 1), mov64(2, 2), mov64(3, 3), exit()]
}

/// [`program`]'s list with slot 1 deleted and slot 3 patched, and its linearization.
fn deleted_and_patched(insns: &[Insn]) -> (PatchList<'_>, Linearized) {
    let mut l = PatchList::new(insns).unwrap();
    let n1 = l.node_of(Slot(1)).unwrap();
    let n3 = l.node_of(Slot(3)).unwrap();
    l.delete(n1).unwrap();
    l.patch(n3, &PatchBuf::from(&[mov64(4, 4), mov64(3, 3)][..])).unwrap();
    let out = l.linearize(LinearizeOptions::default()).unwrap();
    assert_eq!(out.insns, vec![mov64(0, 0), mov64(2, 2), mov64(4, 4), mov64(3, 3), exit()]);
    (l, out)
}

#[test]
fn is_deleted_names_exactly_the_deleted_slots() {
    let insns = program();
    let (_, out) = deleted_and_patched(&insns);
    let m = &out.map;
    let got: Vec<bool> = (0..=6).map(|s| m.is_deleted(Slot(s))).collect();
    // Slot 1 only; one past the end and beyond are no slot at all.
    assert_eq!(got, vec![false, true, false, false, false, false, false]);
}

#[test]
fn live_start_is_none_for_deleted_slots_and_past_the_end() {
    let insns = program();
    let (_, out) = deleted_and_patched(&insns);
    let m = &out.map;
    assert_eq!(m.live_start(Slot(0)), Some(Slot(0)));
    assert_eq!(m.live_start(Slot(1)), None, "deleted");
    assert_eq!(m.live_start(Slot(2)), Some(Slot(1)));
    assert_eq!(m.live_start(Slot(3)), Some(Slot(2)), "a patch is entered at its first slot");
    assert_eq!(m.live_start(Slot(4)), Some(Slot(4)));
    // One past the end is no instruction (an insn-array entry cannot point there), though
    // `start` maps it to the new length.
    assert_eq!(m.start(Slot(5)), Some(Slot(5)));
    assert_eq!(m.live_start(Slot(5)), None);
    assert_eq!(m.live_start(Slot(6)), None);
}

/// Line info follows `start` for any offset, the ones past the program included: the map's
/// words beyond the original slots (the sentinel, then the patch's new node at 6, at slot 2)
/// are no slots, so a record there is dropped, not moved to a new node's position.
#[test]
fn line_info_past_the_program_is_dropped_whatever_the_map_holds_there() {
    let insns = program();
    let (_, out) = deleted_and_patched(&insns);
    let m = &out.map;
    let rec = |o: u32| LineInfo { insn_off: o, file_name_off: 1, line_off: 2, line_col: o };
    for o in 0..9u32 {
        let mut got = Vec::new();
        m.remap_line_info(&[rec(o)], &mut got);
        let want: Vec<LineInfo> = m
            .start(Slot(o as usize))
            .filter(|s| s.0 < m.new_len())
            .map(|s| LineInfo { insn_off: u32::try_from(s.0).unwrap(), ..rec(o) })
            .into_iter()
            .collect();
        assert_eq!(got, want, "offset {o}");
    }
}

#[test]
fn node_pos_is_the_slot_the_list_order_gives() {
    let insns = program();
    let (l, out) = deleted_and_patched(&insns);
    let m = &out.map;
    let slots: Vec<(NodeId, Insn)> = l.slots().collect();
    assert_eq!(slots.len(), out.insns.len());
    for (j, (node, insn)) in slots.iter().enumerate() {
        assert_eq!(m.node_pos(*node), Some(Slot(j)), "node {node:?}");
        assert_eq!(out.insns[j], *insn);
    }
    // A deleted node: the first slot emitted after it (slot 2's `mov r2`, at 1).
    assert_eq!(m.node_pos(NodeId::of_slot(Slot(1))), Some(Slot(1)));
    assert_eq!(m.node_pos(NodeId::of_slot(Slot(1_000))), None, "no such node");
}

#[test]
fn both_engines_give_a_pending_patch_new_aux_before_its_identity() {
    // Slot 3's patch is pending (I6: a pristine node, patched after the deletion flushed the
    // log). Rule: inserted slots get the hook's new aux from the patched instruction's aux; the
    // last slot of the patch carries slot 3's identity; deleted slot 1's aux is gone.
    let insns: Vec<Insn> = vec![mov64(0, 0), mov64(1, 1), mov64(2, 2), mov64(3, 3), exit()];
    let prog = Program { insns, aux: vec![10u32, 11, 12, 13, 14], tables: SideTables::default() };
    let mut l = PatchList::for_program(&prog).unwrap();
    l.delete(l.node_of(Slot(1)).unwrap()).unwrap();
    l.patch(l.node_of(Slot(3)).unwrap(), &PatchBuf::from(&[mov64(4, 4), mov64(3, 3)][..])).unwrap();
    // Both the fused engine (relax off) and the relaxing one (aux built after resolution).
    for relax in [false, true] {
        let mut hook = |_: &Insn, parent: Option<&u32>| parent.map_or(9999, |p| 1000 + p);
        let out = l.linearize_program(&prog, &mut hook, LinearizeOptions { relax }).unwrap();
        assert_eq!(out.program.insns, vec![mov64(0, 0), mov64(2, 2), mov64(4, 4), mov64(3, 3), exit()]);
        assert_eq!(out.program.aux, vec![10, 12, 1013, 13, 14], "relax {relax}");
    }
}

#[test]
fn both_engines_count_a_backward_jump_resolved_in_the_walk_as_a_fixup() {
    // `ja -4` at slot 3 jumps back to slot 0; slot 3 is patched (pending, I6) with a `mov`
    // before the jump, which keeps its original target: the fused engine resolves that jump in
    // its walk (its target is final already). One jump in the output: one fixup resolved.
    let insns: Vec<Insn> = vec![mov64(0, 0), mov64(1, 1), mov64(2, 2), ja(-4), exit()];
    let prog = Program { insns, aux: vec![0u32; 5], tables: SideTables::default() };
    let mut l = PatchList::for_program(&prog).unwrap();
    let mut buf = PatchBuf::from(&[mov64(4, 4)][..]);
    buf.jump_to(ja(0), Target::OrigTarget);
    l.patch(l.node_of(Slot(3)).unwrap(), &buf).unwrap();
    for relax in [false, true] {
        let mut hook = |_: &Insn, _: Option<&u32>| 0u32;
        let out = l.linearize_program(&prog, &mut hook, LinearizeOptions { relax }).unwrap();
        assert_eq!(out.program.insns, vec![mov64(0, 0), mov64(1, 1), mov64(2, 2), mov64(4, 4), ja(-5), exit()]);
        assert_eq!(out.stats.fixups, 1, "relax {relax}");
    }
    assert_eq!(l.linearize(LinearizeOptions::default()).unwrap().stats.fixups, 1);
}

#[test]
fn a_pending_patchs_backward_call_enters_a_skipping_prologue() {
    // main (0..3): mov r0; mov r1; exit; sub (3..5): call main; exit. A skipping prepatch puts
    // `mov r5` before slot 0 (jumps skip it, calls enter it); then slot 3 is patched (pending)
    // with a `mov` before its call, which keeps its original target. The call must land on
    // the inserted `mov r5` at 0, not on the original instruction at 1.
    let insns: Vec<Insn> = vec![mov64(0, 0), mov64(1, 1), exit(), call_local(-4), exit()];
    let mut l = PatchList::with_subprogs(&insns, &[0, 3]).unwrap();
    l.prepatch(l.node_of(Slot(0)).unwrap(), &PatchBuf::from(&[mov64(5, 5)][..]), PrepatchMode::SkipForJumps).unwrap();
    let mut buf = PatchBuf::from(&[mov64(4, 4)][..]);
    buf.jump_to(call_local(0), Target::OrigTarget);
    l.patch(l.node_of(Slot(3)).unwrap(), &buf).unwrap();
    let want = vec![mov64(5, 5), mov64(0, 0), mov64(1, 1), exit(), mov64(4, 4), call_local(-6), exit()];
    for relax in [false, true] {
        assert_eq!(l.linearize(LinearizeOptions { relax }).unwrap().insns, want, "relax {relax}");
        let prog = Program { insns: insns.clone(), aux: vec![0u32; 5], tables: SideTables::default() };
        let mut hook = |_: &Insn, _: Option<&u32>| 0u32;
        let out = l.linearize_program(&prog, &mut hook, LinearizeOptions { relax }).unwrap();
        assert_eq!(out.program.insns, want, "relax {relax}, with aux");
    }
}

#[test]
fn an_output_with_mismatched_buffers_is_overwritten_whole() {
    // `linearize_program_into` clears and reuses whatever buffers `out` holds: an output whose
    // instructions and aux differ in length (one of them the right length) must give the same
    // program as a fresh run.
    let insns: Vec<Insn> = vec![mov64(0, 0), mov64(1, 1), mov64(2, 2), mov64(3, 3), exit()];
    let prog = Program { insns, aux: vec![10u32, 11, 12, 13, 14], tables: SideTables::default() };
    let mut l = PatchList::for_program(&prog).unwrap();
    l.delete(l.node_of(Slot(1)).unwrap()).unwrap();
    l.patch(l.node_of(Slot(3)).unwrap(), &PatchBuf::from(&[mov64(4, 4), mov64(3, 3)][..])).unwrap();
    let mut hook = |_: &Insn, parent: Option<&u32>| parent.map_or(9999, |p| 1000 + p);
    let fresh = l.linearize_program(&prog, &mut hook, LinearizeOptions::default()).unwrap();
    let n = fresh.program.insns.len();
    assert_eq!(n, 5);
    let mut ctx = PatchCtx::new();
    for (ni, na) in [(n, 0), (0, n), (n, n + 3), (n + 3, n), (n, n)] {
        let mut out = PatchedProgram::default();
        out.program.insns = vec![Insn::default(); ni];
        out.program.aux = vec![777; na];
        l.linearize_program_into(&mut ctx, &prog, &mut hook, LinearizeOptions::default(), &mut out).unwrap();
        assert_eq!(out.program, fresh.program, "stale output of {ni} instructions and {na} aux");
    }
}

/// Counts the hook's calls.
#[derive(Default)]
struct Counting {
    new_slots: usize,
    patched: usize,
}

impl AuxHook<u32> for Counting {
    fn new_slot(&mut self, _: &Insn, parent: Option<&u32>) -> u32 {
        self.new_slots += 1;
        parent.map_or(9999, |p| 1000 + p)
    }

    fn patched(&mut self, aux: &mut u32, _: &Insn) {
        self.patched += 1;
        *aux += 500;
    }
}

#[test]
fn hooks_run_once_per_slot_when_an_output_is_reused() {
    // AuxHook's contract: each hook runs exactly once per output slot it concerns, also when
    // `linearize_program_into` overwrites a warm output of the right length in place.
    // Slot 1 patched into [mov r4, mov r1]: one new slot (new_slot) and the original's identity
    // on the last one (patched); slot 2 deleted (no hook).
    let insns: Vec<Insn> = vec![mov64(0, 0), mov64(1, 1), mov64(2, 2), exit()];
    let prog = Program { insns, aux: vec![10u32, 11, 12, 13], tables: SideTables::default() };
    let mut l = PatchList::for_program(&prog).unwrap();
    l.patch(l.node_of(Slot(1)).unwrap(), &PatchBuf::from(&[mov64(4, 4), mov64(1, 1)][..])).unwrap();
    l.delete(l.node_of(Slot(2)).unwrap()).unwrap();
    let (mut ctx, mut out) = (PatchCtx::new(), PatchedProgram::default());
    for run in 0..3 {
        let mut hook = Counting::default();
        l.linearize_program_into(&mut ctx, &prog, &mut hook, LinearizeOptions::default(), &mut out).unwrap();
        assert_eq!(out.program.aux, vec![10, 1011, 511, 13], "run {run}");
        assert_eq!((hook.new_slots, hook.patched), (1, 1), "run {run}");
    }
}

#[test]
fn both_engines_count_backward_jumps_before_the_last_slot_of_a_patch_as_fixups() {
    // As above, but the patch's backward jumps sit before its last slot (the walk resolves
    // them too, on another path) and there are two of them: two fixups, by either engine.
    let insns: Vec<Insn> = vec![mov64(0, 0), mov64(1, 1), mov64(2, 2), ja(-4), exit()];
    let prog = Program { insns, aux: vec![0u32; 5], tables: SideTables::default() };
    let mut l = PatchList::for_program(&prog).unwrap();
    let mut buf = PatchBuf::new();
    // Slot 0 keeps the original target; slot 1 jumps back to slot 0 of the patch (local).
    buf.jump_to(ja(0), Target::OrigTarget).push(ja(-2)).push(mov64(4, 4));
    l.patch(l.node_of(Slot(3)).unwrap(), &buf).unwrap();
    for relax in [false, true] {
        let mut hook = |_: &Insn, _: Option<&u32>| 0u32;
        let out = l.linearize_program(&prog, &mut hook, LinearizeOptions { relax }).unwrap();
        assert_eq!(out.program.insns, vec![mov64(0, 0), mov64(1, 1), mov64(2, 2), ja(-4), ja(-2), mov64(4, 4), exit()]);
        assert_eq!(out.stats.fixups, 2, "relax {relax}");
    }
    assert_eq!(l.linearize(LinearizeOptions::default()).unwrap().stats.fixups, 2);
}
