//! One test per targeting rule of the crate documentation.
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

fn lin(l: &PatchList) -> Linearized {
    l.linearize(LinearizeOptions::default()).expect("linearize")
}

/// Absolute target of slot `at` in a linearized program.
fn tgt(insns: &[Insn], at: usize) -> i64 {
    insns[at].abs_target(at).expect("has a target")
}

fn node(l: &PatchList, s: usize) -> NodeId {
    l.node_of(Slot(s)).unwrap()
}

#[test]
fn identity_is_a_no_op() {
    let mut p = vec![mov64(0, 1), jeq(0, 1, 2), call_local(3), ja(-3)];
    p.extend(ld_func(1, 1));
    p.push(exit());
    p.push(exit());
    let l = PatchList::new(&p).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns, p);
    for i in 0..=p.len() {
        assert_eq!(out.map.jump_target(Slot(i)), Some(Slot(i)));
        assert_eq!(out.map.start(Slot(i)), Some(Slot(i)));
    }
    for i in 0..p.len() {
        assert_eq!(out.map.insn(Slot(i)), Some(Slot(i)));
        assert_eq!(out.map.live_start(Slot(i)), Some(Slot(i)));
    }
    assert_eq!(out.map.jump_target(Slot(p.len() + 1)), None);
}

#[test]
fn jump_to_patched_lands_on_patch_start() {
    // 0: ja +1 -> 2 ; 1: exit ; 2: mov ; 3: ja -2 -> 2 ; 4: exit
    let p = vec![ja(1), exit(), mov64(0, 5), ja(-2), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let r = l.patch(node(&l, 2), &PatchBuf::from_insns(&[mov64(1, 1), mov64(2, 2), mov64(0, 5)])).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns.len(), 7);
    assert_eq!(tgt(&out.insns, 0), 2, "forward jump lands on the first patch slot");
    assert_eq!(tgt(&out.insns, 5), 2, "backward jump lands on the first patch slot");
    // The original identity moved to the last slot of the patch.
    assert_eq!(out.map.insn(Slot(2)), Some(Slot(4)));
    assert_eq!(out.map.jump_target(Slot(2)), Some(Slot(2)));
    assert_eq!(r.orig, r.last);
    assert_eq!(l.origin(r.orig), Some(Slot(2)));
}

#[test]
fn call_and_func_ref_to_patched_subprog_start_land_on_patch_start() {
    // main: call -> 4 ; ld_func -> 4 ; exit ; sub (4): mov ; exit
    let mut p = vec![call_local(3)];
    p.extend(ld_func(1, 2));
    p.push(exit());
    p.push(mov64(0, 1));
    p.push(exit());
    let mut l = PatchList::new(&p).unwrap();
    assert_eq!(l.subprog_count(), 2);
    l.patch(node(&l, 4), &PatchBuf::from_insns(&[mov64(3, 3), mov64(0, 1)])).unwrap();
    let mut b = PatchBuf::new();
    b.push(mov64(6, 6)).jump_to(call_local(0), Target::OrigTarget);
    l.patch(node(&l, 0), &b).unwrap();
    let out = lin(&l);
    // main: mov6, call, ld_func(2), exit, sub (5): mov3, mov0, exit
    assert_eq!(tgt(&out.insns, 1), 5);
    assert_eq!(tgt(&out.insns, 2), 5);
    assert_eq!(out.map.subprog_start(SubprogId(1)), Some(Slot(5)));
}

#[test]
fn jump_to_deleted_lands_on_first_survivor() {
    // 0: jeq +1 -> 2 ; 1: mov ; 2: mov (deleted) ; 3: mov (deleted) ; 4: exit
    let p = vec![jeq(1, 0, 1), mov64(0, 1), mov64(0, 2), mov64(0, 3), exit()];
    let mut l = PatchList::new(&p).unwrap();
    l.delete_range(node(&l, 2), node(&l, 3)).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns.len(), 3);
    assert_eq!(tgt(&out.insns, 0), 2);
    assert_eq!(out.map.jump_target(Slot(2)), Some(Slot(2)));
    assert_eq!(out.map.jump_target(Slot(3)), Some(Slot(2)));
    assert!(out.map.is_deleted(Slot(2)));
    assert_eq!(out.map.live_start(Slot(2)), None);
    assert_eq!(out.map.insn(Slot(3)), None);
    assert_eq!(out.map.insn(Slot(4)), Some(Slot(2)));
}

#[test]
fn deleted_target_then_skip_prepatch_at_survivor_follows_the_kernel() {
    // jumps to a deleted slot collapse onto the survivor; a later skip prepatch at the survivor
    // moves those jumps past the prologue, while calls collapse onto it and enter it.
    // 0: call +2 -> 3 ; 1: ja +0 -> 2 ; 2: exit ; 3: mov (deleted) ; 4: exit
    let p = vec![call_local(2), ja(1), exit(), mov64(0, 0), exit()];
    // call_local(2) targets 3; ja(1) at 1 targets 3.
    let mut l = PatchList::with_subprogs(&p, &[0, 3]).unwrap();
    l.delete(node(&l, 3)).unwrap();
    l.prepatch(node(&l, 4), &PatchBuf::from_insns(&[mov64(9, 9)]), PrepatchMode::SkipForJumps).unwrap();
    let out = lin(&l);
    // 0 call, 1 ja, 2 exit, 3 mov9 (prologue), 4 exit
    assert_eq!(tgt(&out.insns, 0), 3, "the call enters the prologue");
    assert_eq!(tgt(&out.insns, 1), 4, "the jump skips it");
}

#[test]
fn prepatch_land_on_inserted() {
    // 0: ja +1 -> 2 ; 1: exit ; 2: mov (prepatched) ; 3: exit
    let p = vec![ja(1), exit(), mov64(0, 5), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let r = l.prepatch(node(&l, 2), &PatchBuf::from_insns(&[mov64(7, 7)]), PrepatchMode::LandOnInserted).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns[2], mov64(7, 7));
    assert_eq!(out.insns[3], mov64(0, 5));
    assert_eq!(tgt(&out.insns, 0), 2, "jumps land on the inserted code");
    assert_eq!(out.map.insn(Slot(2)), Some(Slot(3)), "the instruction keeps its identity");
    assert_eq!(l.origin(r.orig), Some(Slot(2)));
    assert_eq!(l.insn(node(&l, 2)), Some(mov64(7, 7)), "the position node holds the inserted code");
}

#[test]
fn prepatch_skip_jumps_skip_calls_enter() {
    // main: call -> 3 ; jeq -> 3 (a jump into the sub's first insn, like a loop back edge) ; exit
    // sub (3): mov ; ja -2 -> 3 ; exit
    let p = vec![call_local(2), jeq(1, 0, 1), exit(), mov64(0, 1), ja(-2), exit()];
    let mut l = PatchList::with_subprogs(&p, &[0, 3]).unwrap();
    let prologue = PatchBuf::from_insns(&[mov64(8, 8), mov64(9, 9)]);
    let r = l.prepatch(node(&l, 3), &prologue, PrepatchMode::SkipForJumps).unwrap();
    assert_eq!(r.orig, node(&l, 3));
    let out = lin(&l);
    // main 0..3, prologue 3..5, mov 5, ja 6, exit 7
    assert_eq!(tgt(&out.insns, 0), 3, "calls enter the prologue");
    assert_eq!(tgt(&out.insns, 1), 5, "jumps skip it");
    assert_eq!(tgt(&out.insns, 6), 5, "the loop back edge skips it");
    assert_eq!(out.map.start(Slot(3)), Some(Slot(3)));
    assert_eq!(out.map.jump_target(Slot(3)), Some(Slot(5)));
    assert_eq!(out.map.insn(Slot(3)), Some(Slot(5)));
    assert_eq!(out.map.subprog_start(SubprogId(1)), Some(Slot(3)));
    assert_eq!(out.map.subprog_start(SubprogId(2)), None);
}

#[test]
fn subprog_target_calls_enter_prologue_jumps_skip_it() {
    let p = vec![mov64(0, 0), call_local(1), exit(), mov64(0, 1), exit()];
    let mut l = PatchList::new(&p).unwrap();
    l.prepatch(node(&l, 3), &PatchBuf::from_insns(&[mov64(8, 8)]), PrepatchMode::SkipForJumps).unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(call_local(0), Target::Subprog(SubprogId(1)))
        .jump_to(ja(0), Target::Subprog(SubprogId(1)))
        .push(mov64(0, 0));
    l.patch(node(&l, 0), &b).unwrap();
    let out = lin(&l);
    // 0 call, 1 ja, 2 mov, 3 call, 4 exit, 5 prologue, 6 mov, 7 exit
    assert_eq!(tgt(&out.insns, 0), 5);
    assert_eq!(tgt(&out.insns, 1), 6);
    assert_eq!(tgt(&out.insns, 3), 5);
}

#[test]
fn two_skip_prepatches_keep_calls_on_the_first() {
    let p = vec![call_local(1), exit(), mov64(0, 1), exit()];
    let mut l = PatchList::new(&p).unwrap();
    l.prepatch(node(&l, 2), &PatchBuf::from_insns(&[mov64(8, 8)]), PrepatchMode::SkipForJumps).unwrap();
    l.prepatch(node(&l, 2), &PatchBuf::from_insns(&[mov64(9, 9)]), PrepatchMode::SkipForJumps).unwrap();
    let out = lin(&l);
    assert_eq!(&out.insns[2..5], &[mov64(8, 8), mov64(9, 9), mov64(0, 1)]);
    assert_eq!(tgt(&out.insns, 0), 2);
}

#[test]
fn buffer_local_targets_default_and_explicit() {
    let p = vec![mov64(0, 0), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let mut b = PatchBuf::new();
    b.push(jeq(1, 0, 1)) // local: 0 + 1 + 1 = slot 2
        .push(mov64(2, 2))
        .jump_to(ja(0), Target::Local(0)) // explicit: back to slot 0
        .push(mov64(0, 0));
    l.patch(node(&l, 0), &b).unwrap();
    let out = lin(&l);
    assert_eq!(tgt(&out.insns, 0), 2);
    assert_eq!(tgt(&out.insns, 2), 0);
}

#[test]
fn buffer_past_end_and_orig_target() {
    // blinding-like: jeq r1, K, +2 -> 3 becomes mov AX; xor AX; jeq r1, AX -> original target.
    // 0: jeq +2 -> 3 ; 1: mov ; 2: mov ; 3: exit
    let p = vec![jeq(1, 5, 2), mov64(0, 1), mov64(0, 2), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let mut b = PatchBuf::new();
    b.push(mov64(11, 5)).push(add64(11, 0)).jump_to(jeq(1, 0, 0), Target::OrigTarget);
    l.patch(node(&l, 0), &b).unwrap();
    // 1: may_goto-like guard: if r0 == 0 goto past end, keep going otherwise.
    let mut g = PatchBuf::new();
    g.jump_to(jeq(0, 0, 0), Target::PastEnd).push(mov64(0, 1));
    l.patch(node(&l, 1), &g).unwrap();
    let out = lin(&l);
    // 0 mov, 1 add, 2 jeq -> exit, 3 jeq -> past end (4), 4 mov, 5 mov, 6 exit
    assert_eq!(out.insns.len(), 7);
    assert_eq!(tgt(&out.insns, 2), 6, "OrigTarget follows the original target");
    assert_eq!(tgt(&out.insns, 3), 5, "PastEnd is the instruction after the patched one");
}

#[test]
fn buffer_targets_orig_node_label_subprog() {
    // main: mov ; mov ; call sub ; exit ; sub: mov ; exit
    let p = vec![mov64(0, 0), mov64(1, 1), call_local(1), exit(), mov64(0, 2), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let fwd = l.new_label().unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::Orig(Slot(3))) // to the exit
        .jump_to(jeq(0, 0, 0), Target::Node(node(&l, 1)))
        .jump_to(jeq(0, 1, 0), Target::Label(fwd))
        .jump_to(call_local(0), Target::Subprog(SubprogId(1)))
        .push(mov64(0, 0));
    l.patch(node(&l, 0), &b).unwrap();
    l.bind_label(fwd, node(&l, 2)).unwrap(); // bound after use
    let out = lin(&l);
    // 0 ja, 1 jeq, 2 jeq, 3 call, 4 mov, 5 mov1, 6 call, 7 exit, 8 mov, 9 exit
    assert_eq!(tgt(&out.insns, 0), 7);
    assert_eq!(tgt(&out.insns, 1), 5);
    assert_eq!(tgt(&out.insns, 2), 6);
    assert_eq!(tgt(&out.insns, 3), 8);
}

#[test]
fn later_pass_patches_inserted_code() {
    let p = vec![ja(1), exit(), mov64(0, 5), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let r = l.patch(node(&l, 2), &PatchBuf::from_insns(&[mov64(1, 1), mov64(0, 5)])).unwrap();
    // second pass: patch the first inserted slot (node 2 holds it) and the moved original.
    l.patch(r.first, &PatchBuf::from_insns(&[mov64(3, 3), mov64(1, 1)])).unwrap();
    l.prepatch(r.orig, &PatchBuf::from_insns(&[mov64(4, 4)]), PrepatchMode::LandOnInserted).unwrap();
    let out = lin(&l);
    assert_eq!(&out.insns[2..6], &[mov64(3, 3), mov64(1, 1), mov64(4, 4), mov64(0, 5)]);
    assert_eq!(tgt(&out.insns, 0), 2);
    assert_eq!(out.map.insn(Slot(2)), Some(Slot(5)));
}

#[test]
fn ld_imm64_is_two_slots_everywhere() {
    // 0: ja +2 -> 3 ; 1-2: ld_imm64 ; 3: exit
    let mut p = vec![ja(2)];
    p.extend(ld_imm64(1, 0x1_0000_0002));
    p.push(exit());
    let mut l = PatchList::new(&p).unwrap();
    let tail = NodeId::of_slot(Slot(2));
    assert_eq!(l.insn(tail), Some(p[2]));
    assert_eq!(l.node_of(Slot(2)), Err(Error::LdImm64Tail { node: tail }), "refused at node_of");
    assert!(matches!(l.patch(tail, &PatchBuf::from_insns(&[mov64(0, 0)])), Err(Error::LdImm64Tail { .. })));
    // Patching the ld_imm64 replaces both slots.
    l.patch(node(&l, 1), &PatchBuf::from_insns(&[mov64(1, 2), mov64(2, 1)])).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns, vec![ja(2), mov64(1, 2), mov64(2, 1), exit()]);
    assert_eq!(out.map.insn(Slot(1)), Some(Slot(2)));
    assert_eq!(out.map.insn(Slot(2)), None, "the second slot is gone with the first");
    // Cursor sees one instruction per ld_imm64.
    let mut l = PatchList::new(&p).unwrap();
    let mut c = l.cursor();
    let mut n = 0;
    while c.node().is_some() {
        n += 1;
        c.advance();
    }
    assert_eq!(n, 3);
}

#[test]
fn append_creates_a_callable_subprogram() {
    let p = vec![mov64(0, 0), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let a = l.append(&PatchBuf::from_insns(&[mov64(0, 1), exit()])).unwrap();
    assert_eq!(a.subprog, SubprogId(1));
    let mut b = PatchBuf::new();
    b.jump_to(call_local(0), Target::Subprog(a.subprog)).push(mov64(0, 0));
    l.patch(node(&l, 0), &b).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns.len(), 5);
    assert_eq!(tgt(&out.insns, 0), 3);
}

#[test]
fn cursor_walks_and_patches_in_one_pass() {
    // Insert a nop-like mov before every exit, then rewrite every mov64 imm 0 in a second pass.
    let p = vec![mov64(0, 0), jeq(0, 0, 1), exit(), mov64(0, 0), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let mut c = l.cursor();
    while let Some(insn) = c.insn() {
        if insn == exit() {
            c.prepatch(&PatchBuf::from_insns(&[mov64(5, 5)]), PrepatchMode::LandOnInserted).unwrap();
        }
        c.advance();
    }
    let mut c = l.cursor();
    while let Some(insn) = c.insn() {
        if insn == mov64(0, 0) {
            c.patch(&PatchBuf::from_insns(&[mov64(0, 1)])).unwrap();
        }
        c.advance();
    }
    let out = lin(&l);
    assert_eq!(
        out.insns,
        vec![mov64(0, 1), jeq(0, 0, 2), mov64(5, 5), exit(), mov64(0, 1), mov64(5, 5), exit()],
        "the jeq lands on the instrumentation before the second exit"
    );
}

#[test]
fn set_insn_and_retarget() {
    let p = vec![jeq(1, 0, 1), mov64(0, 0), exit()];
    let mut l = PatchList::new(&p).unwrap();
    // hard-wire: the conditional jump becomes a goto keeping its target.
    l.set_insn(node(&l, 0), ja(0)).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns[0], ja(1));
    l.retarget(node(&l, 0), Target::PastEnd).unwrap();
    assert_eq!(lin(&l).insns[0], ja(0));
    assert!(matches!(l.set_insn(node(&l, 1), ja(0)), Err(Error::NoTargetToKeep { .. })));
    assert!(matches!(l.retarget(node(&l, 1), Target::PastEnd), Err(Error::NodeHasNoTargetField { .. })));
}

#[test]
fn deleting_a_whole_prefix_with_prologue_keeps_calls_on_survivor() {
    // skip-prepatch a subprogram start, then delete the prologue: calls land on the original.
    let p = vec![call_local(1), exit(), mov64(0, 1), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let r = l.prepatch(node(&l, 2), &PatchBuf::from_insns(&[mov64(8, 8)]), PrepatchMode::SkipForJumps).unwrap();
    l.delete(r.first).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns, p);
}

#[test]
fn map_is_monotone() {
    let p: Vec<Insn> = (0..20).map(|i| mov64(0, i)).chain([exit()]).collect();
    let mut l = PatchList::new(&p).unwrap();
    for i in (0..20).step_by(3) {
        l.patch(node(&l, i), &PatchBuf::from_insns(&[mov64(1, 1), mov64(0, i as i32)])).unwrap();
    }
    for i in (1..20).step_by(4) {
        l.delete(node(&l, i)).unwrap();
    }
    l.prepatch(node(&l, 2), &PatchBuf::from_insns(&[mov64(2, 2)]), PrepatchMode::SkipForJumps).unwrap();
    let out = lin(&l);
    let (mut last_j, mut last_s) = (0, 0);
    for i in 0..=p.len() {
        let j = out.map.jump_target(Slot(i)).unwrap().0;
        let s = out.map.start(Slot(i)).unwrap().0;
        // A prologue may precede the survivor of a deleted slot: start(i) >= jump(i-1) need not hold.
        assert!(j >= last_j && s >= last_s && s <= j, "slot {i}");
        (last_j, last_s) = (j, s);
    }
    assert_eq!(out.map.jump_target(Slot(p.len())), Some(Slot(out.insns.len())));
}

/// Regression (found by the no-panic property test): a call-kind "past end" in a landing
/// prepatch names the node that will hold the original instruction.
#[test]
fn call_past_end_in_landing_prepatch_enters_the_original() {
    let p = vec![mov64(0, 0), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(call_local(0), Target::PastEnd);
    l.prepatch(node(&l, 0), &b, PrepatchMode::LandOnInserted).unwrap();
    let out = lin(&l);
    assert_eq!(out.insns[1..], p[..]);
    assert_eq!(tgt(&out.insns, 0), 1);
}
