//! Where calls and function references land next to prologues, deletions and labels: the four
//! reproductions of the call-targeting issue (each failed before the fix) and one test per
//! sentence of the call rule in the crate documentation.
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

fn lin(l: &PatchList) -> Vec<Insn> {
    l.linearize(LinearizeOptions::default()).expect("linearize").insns
}

/// Absolute target of slot `at`.
fn tgt(insns: &[Insn], at: usize) -> i64 {
    insns[at].abs_target(at).expect("has a target")
}

fn node(l: &PatchList, s: usize) -> NodeId {
    l.node_of(Slot(s)).unwrap()
}

/// `0: call +1 (-> 2); 1: exit; 2: r0 = 1; 3: exit` (subprogram at 2).
fn base() -> Vec<Insn> {
    vec![call_local(1), exit(), mov64(0, 1), exit()]
}

/// The buffer `r7 = 7; <reference to buffer slot 0>; r0 = 1` in each spelling of the reference.
fn self_call_bufs() -> Vec<(&'static str, PatchBuf)> {
    let mut out = Vec::new();
    let mut b = PatchBuf::new();
    b.push(mov64(7, 7)).jump_to(call_local(0), Target::Local(0)).push(mov64(0, 1));
    out.push(("call Local(0)", b));
    let mut b = PatchBuf::new();
    // The call's own imm: slot 1 + imm + 1 = slot 0.
    b.push(mov64(7, 7)).push(call_local(-2)).push(mov64(0, 1));
    out.push(("call with its own imm", b));
    let mut b = PatchBuf::new();
    let f = ld_func(2, 0);
    b.push(mov64(7, 7)).jump_to(f[0], Target::Local(0)).push(f[1]).push(mov64(0, 1));
    out.push(("ld_imm64 PSEUDO_FUNC Local(0)", b));
    let mut b = PatchBuf::new();
    b.push(mov64(7, 7)).func_ref(2, Target::Local(0)).push(mov64(0, 1));
    out.push(("PatchBuf::func_ref Local(0)", b));
    out
}

/// Reproduction 1: after a skipping prologue at x, a patch of x whose buffer calls its own first
/// slot lands on that slot (output 3), not on the old prologue (output 2).
#[test]
fn repro1_buffer_local_call_after_a_prologue_lands_in_its_own_buffer() {
    for mode in [None, Some(PrepatchMode::LandOnInserted)] {
        for (what, buf) in self_call_bufs() {
            let orig = base();
            let mut l = PatchList::new(&orig).unwrap();
            let x = node(&l, 2);
            l.prepatch(x, &PatchBuf::from_insns(&[mov64(8, 8)]), PrepatchMode::SkipForJumps).unwrap();
            match mode {
                None => l.patch(x, &buf).unwrap(),
                Some(m) => l.prepatch(x, &buf, m).unwrap(),
            };
            let out = lin(&l);
            // 0: call, 1: exit, 2: r8 = 8, 3: r7 = 7, 4: <the reference>, ...
            assert_eq!(out[2], mov64(8, 8), "{what}");
            assert_eq!(out[3], mov64(7, 7), "{what}");
            assert_eq!(tgt(&out, 4), 3, "{what} ({mode:?}): the buffer's slot 0, not the prologue");
            // The original call still enters the prologue.
            assert_eq!(tgt(&out, 0), 2, "{what}");
        }
    }
}

/// Reproduction 2: a prologue's `call PastEnd` lands on the instruction the prologue was
/// inserted before (the kernel: `[buf..., insn]` then `adjust_jmp_off`, which moves no call),
/// as `Target::PastEnd` promises; the original call enters the prologue.
#[test]
fn repro2_prologue_call_past_end_lands_on_the_instruction() {
    for how in 0..3 {
        let orig = base();
        let mut l = PatchList::new(&orig).unwrap();
        let mut b = PatchBuf::new();
        b.push(mov64(8, 8));
        match how {
            0 => b.jump_to(call_local(0), Target::PastEnd),
            1 => b.push(call_local(0)), // its own imm: slot 1 + 0 + 1 = len
            _ => b.func_ref(3, Target::PastEnd),
        };
        l.prepatch(node(&l, 2), &b, PrepatchMode::SkipForJumps).unwrap();
        let out = lin(&l);
        let insn_at = 2 + b.len();
        assert_eq!(out[insn_at], mov64(0, 1));
        assert_eq!(tgt(&out, 3), insn_at as i64, "spelling {how}: the original instruction");
        assert_eq!(tgt(&out, 0), 2, "the original call enters the prologue");
    }
}

/// Reproduction 3: `retarget` takes an ld_imm64 `PSEUDO_FUNC` (both of its slots).
#[test]
fn repro3_retarget_a_pseudo_func() {
    let mut p = vec![call_local(3)];
    p.extend(ld_func(1, 2)); // -> 4
    p.extend([exit(), mov64(0, 1), exit()]);
    let mut l = PatchList::new(&p).unwrap();
    let f = node(&l, 1);
    l.retarget(f, Target::Orig(Slot(3))).unwrap();
    let out = lin(&l);
    assert_eq!(out[2], p[2], "the second slot is kept");
    assert_eq!(tgt(&out, 1), 3);
    // Every spelling of a target works on it.
    let mut l = PatchList::new(&p).unwrap();
    l.retarget(f, Target::Subprog(SubprogId(1))).unwrap();
    assert_eq!(tgt(&lin(&l), 1), 4);
    let mut l = PatchList::new(&p).unwrap();
    l.retarget(f, Target::PastEnd).unwrap();
    assert_eq!(tgt(&lin(&l), 1), 3);
    let mut l = PatchList::new(&p).unwrap();
    assert_eq!(l.retarget(f, Target::Local(1)), Err(Error::TargetIntoLdImm64 { index: 0 }));
}

/// `0: call -> 2; 1: exit; 2: r8 = 0; 3: r0 = 1; 4: exit`.
fn repro4() -> Vec<Insn> {
    vec![call_local(1), exit(), mov64(8, 0), mov64(0, 1), exit()]
}

/// [`repro4`] with slot 2 deleted (when `delete`), a skipping prologue `r9 = 0` before 3:
/// the list the fourth reproduction starts from.
fn repro4_list(p: &[Insn], delete: bool) -> (PatchList<'_>, Patched) {
    let mut l = PatchList::new(p).unwrap();
    if delete {
        l.delete(node(&l, 2)).unwrap();
    }
    let pp = l.prepatch(node(&l, 3), &PatchBuf::from_insns(&[mov64(9, 0)]), PrepatchMode::SkipForJumps).unwrap();
    (l, pp)
}

/// Reproduction 4: a deleted instruction never changes where anything lands.
#[test]
fn repro4_a_deleted_slot_does_not_move_a_call_past_end() {
    for delete in [false, true] {
        // patch(p.first, [r9 = 0; call PastEnd]): the call lands on `r0 = 1`.
        let p = repro4();
        let (mut l, pp) = repro4_list(&p, delete);
        let mut b = PatchBuf::new();
        b.push(mov64(9, 0)).jump_to(call_local(0), Target::PastEnd);
        l.patch(pp.first, &b).unwrap();
        let out = lin(&l);
        let r0 = out.iter().position(|&i| i == mov64(0, 1)).unwrap();
        let call = out.iter().rposition(|i| *i == call_local(i.imm)).unwrap();
        assert_eq!(tgt(&out, call), r0 as i64, "patch, deleted slot: {delete}");
        assert_eq!(tgt(&out, 0), 2, "the original call enters the prologue (deleted slot: {delete})");

        // retarget(.., PastEnd) of a call in the prologue: the same.
        let p = repro4();
        let (mut l, pp) = repro4_list(&p, delete);
        l.patch(pp.first, &PatchBuf::from_insns(&[call_local(0)])).unwrap();
        l.retarget(pp.first, Target::PastEnd).unwrap();
        let out = lin(&l);
        let r0 = out.iter().position(|&i| i == mov64(0, 1)).unwrap();
        assert_eq!(out[r0 - 1], call_local(0), "the prologue is the call, right before r0 = 1");
        assert_eq!(tgt(&out, r0 - 1), r0 as i64, "retarget, deleted slot: {delete}");
    }
}

/// The rule for `Node`/`Orig`/labels: a call made by a request lands on the instruction the
/// position holds when the request is made, and from then on moves like every call. After a
/// skipping prologue at x, an original call (made before it) enters the prologue and a new
/// `Node(x)` / `Orig(x)` / label call lands on x's instruction; a prologue inserted *after* the
/// request is entered by both.
#[test]
fn node_orig_and_label_calls_land_on_the_instruction_at_request_time() {
    let spell = |l: &mut PatchList, how: u8, x: NodeId| -> Target {
        match how {
            0 => Target::Node(x),
            1 => Target::Orig(Slot(x.index())),
            _ => Target::Label(l.label_at(x).unwrap()),
        }
    };
    for how in 0..3u8 {
        // Prologue first, then the new call: the call skips it.
        let orig = base();
        let mut l = PatchList::new(&orig).unwrap();
        let x = node(&l, 2);
        l.prepatch(x, &PatchBuf::from_insns(&[mov64(8, 8)]), PrepatchMode::SkipForJumps).unwrap();
        let t = spell(&mut l, how, x);
        let mut b = PatchBuf::new();
        b.jump_to(call_local(0), t).push(exit());
        l.patch(node(&l, 1), &b).unwrap();
        let out = lin(&l);
        // 0: call, 1: call (new), 2: exit, 3: r8 = 8, 4: r0 = 1
        assert_eq!(tgt(&out, 0), 3, "original call: the prologue");
        assert_eq!(tgt(&out, 1), 4, "spelling {how}: new call made after the prologue lands on x");

        // New call first, then the prologue: both enter it.
        let orig = base();
        let mut l = PatchList::new(&orig).unwrap();
        let x = node(&l, 2);
        let t = spell(&mut l, how, x);
        let mut b = PatchBuf::new();
        b.jump_to(call_local(0), t).push(exit());
        l.patch(node(&l, 1), &b).unwrap();
        l.prepatch(x, &PatchBuf::from_insns(&[mov64(8, 8)]), PrepatchMode::SkipForJumps).unwrap();
        let out = lin(&l);
        assert_eq!((tgt(&out, 0), tgt(&out, 1)), (3, 3), "spelling {how}: both enter a later prologue");
    }
}

/// A label bound before a prologue and used by a call made after it lands where the label's
/// position was at binding time: the binding is the request.
#[test]
fn a_label_takes_its_call_landing_when_bound() {
    let orig = base();
    let mut l = PatchList::new(&orig).unwrap();
    let x = node(&l, 2);
    let lab = l.label_at(x).unwrap();
    l.prepatch(x, &PatchBuf::from_insns(&[mov64(8, 8)]), PrepatchMode::SkipForJumps).unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(call_local(0), Target::Label(lab)).jump_to(ja(0), Target::Label(lab)).push(exit());
    l.patch(node(&l, 1), &b).unwrap();
    let out = lin(&l);
    // 0: call, 1: call L, 2: goto L, 3: exit, 4: r8 = 8, 5: r0 = 1
    assert_eq!(tgt(&out, 1), 4, "bound before the prologue: calls enter it, as original calls do");
    assert_eq!(tgt(&out, 2), 5, "jumps through a label land where jumps to the node land");
}

/// A deleted position cannot be named as a new target; references made before the deletion
/// follow it to the first survivor (calls: into a prologue inserted there later, as the
/// kernel's collapsed indices are).
#[test]
fn deleted_targets_are_refused_and_old_references_follow_the_survivor() {
    let p = vec![call_local(1), exit(), mov64(8, 0), mov64(0, 1), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let d = node(&l, 2);
    l.delete(d).unwrap();
    for t in [Target::Node(d), Target::Orig(Slot(2))] {
        let mut b = PatchBuf::new();
        b.jump_to(call_local(0), t).push(exit());
        assert_eq!(l.patch(node(&l, 1), &b), Err(Error::TargetDeleted { index: 0, node: d }));
        let mut b = PatchBuf::new();
        b.jump_to(ja(0), t).push(exit());
        assert_eq!(l.patch(node(&l, 1), &b), Err(Error::TargetDeleted { index: 0, node: d }));
        assert_eq!(l.retarget(node(&l, 0), t), Err(Error::TargetDeleted { index: 0, node: d }));
    }
    assert_eq!(l.label_at(d), Err(Error::NodeDeleted { node: d }));
    // The original call (made before the deletion) follows the first survivor into its prologue.
    l.prepatch(node(&l, 3), &PatchBuf::from_insns(&[mov64(9, 0)]), PrepatchMode::SkipForJumps).unwrap();
    let out = lin(&l);
    assert_eq!(out, vec![call_local(1), exit(), mov64(9, 0), mov64(0, 1), exit()]);
}

/// `node_of` refuses the second slot of an ld_imm64 at once, not at use.
#[test]
fn node_of_refuses_an_ld_imm64_second_slot() {
    let mut p = ld_imm64(1, 5).to_vec();
    p.push(exit());
    let mut l = PatchList::new(&p).unwrap();
    assert_eq!(l.node_of(Slot(1)), Err(Error::LdImm64Tail { node: NodeId::of_slot(Slot(1)) }));
    // Still refused once the pair was patched away.
    l.patch(node(&l, 0), &PatchBuf::from_insns(&[mov64(1, 5)])).unwrap();
    assert_eq!(l.node_of(Slot(1)), Err(Error::LdImm64Tail { node: NodeId::of_slot(Slot(1)) }));
    assert_eq!(l.node_of(Slot(3)), Err(Error::NoSuchNode { node: NodeId::of_slot(Slot(3)) }));
}

/// `Patched::nodes` lists every slot node of the patch in program order (ld_imm64 second
/// slots included), for each request kind.
#[test]
fn patched_lists_its_nodes() {
    let p = vec![mov64(0, 0), mov64(0, 1), exit()];
    let mut b = PatchBuf::new();
    let ld = ld_imm64(2, 7);
    b.push(mov64(1, 1)).push(ld[0]).push(ld[1]).push(mov64(3, 3));
    for req in 0..4 {
        let mut l = PatchList::new(&p).unwrap();
        let x = node(&l, 1);
        let (nodes, first, last): (Vec<NodeId>, NodeId, NodeId) = match req {
            0..=2 => {
                let got = match req {
                    0 => l.patch(x, &b).unwrap(),
                    1 => l.prepatch(x, &b, PrepatchMode::LandOnInserted).unwrap(),
                    _ => l.prepatch(x, &b, PrepatchMode::SkipForJumps).unwrap(),
                };
                assert_eq!(got.len(), b.len());
                (got.nodes().collect(), got.first, got.last)
            }
            _ => {
                let a = l.append(&b).unwrap();
                (a.nodes().collect(), a.first, a.last)
            }
        };
        assert_eq!(nodes.len(), b.len(), "request {req}");
        assert_eq!((nodes[0], nodes[nodes.len() - 1]), (first, last), "request {req}");
        let slots: Vec<(NodeId, Insn)> = l.slots().collect();
        let at = slots.iter().position(|&(n, _)| n == first).unwrap();
        let listed: Vec<NodeId> = slots[at..at + b.len()].iter().map(|&(n, _)| n).collect();
        assert_eq!(nodes, listed, "request {req}: the nodes, in program order");
        let insns: Vec<Insn> = nodes.iter().map(|&n| l.insn(n).unwrap()).collect();
        assert_eq!(insns, b.insns().collect::<Vec<_>>(), "request {req}");
    }
}

/// A target keeps its kind: `OrigTarget` on a call for a patched jump (or the reverse) and
/// `set_insn` turning a jump into a call are refused (the kinds land differently next to
/// prologues), and the list is unchanged.
#[test]
fn a_target_keeps_its_kind() {
    let p = vec![ja(1), call_local(1), exit(), mov64(0, 1), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(call_local(0), Target::OrigTarget);
    assert_eq!(l.patch(node(&l, 0), &b), Err(Error::OrigTargetKind { index: 0 }));
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::OrigTarget);
    assert_eq!(l.patch(node(&l, 1), &b), Err(Error::OrigTargetKind { index: 0 }));
    assert_eq!(l.set_insn(node(&l, 0), call_local(0)), Err(Error::TargetKindChange { node: node(&l, 0) }));
    assert_eq!(l.set_insn(node(&l, 1), ja(0)), Err(Error::TargetKindChange { node: node(&l, 1) }));
    assert_eq!(lin(&l), p, "unchanged");
    // Same kind: fine (a PSEUDO_FUNC keeps a call's target).
    let mut b = PatchBuf::new();
    b.func_ref(1, Target::OrigTarget).push(exit());
    l.patch(node(&l, 1), &b).unwrap();
    let out = lin(&l);
    assert_eq!(out[5], mov64(0, 1));
    assert_eq!(tgt(&out, 1), 5, "the call's old target");
}

/// The buffer's own accessors (killed mutants of `buf.rs`, doc/MUTANTS.md).
#[test]
fn patch_buffer_accessors() {
    let mut b = PatchBuf::with_capacity(4);
    assert!(b.is_empty());
    assert_eq!(b.len(), 0, "len agrees");
    b.push(mov64(0, 1));
    assert!(!b.is_empty() && b.len() == 1);
    assert!(b.set_target(0, Target::PastEnd));
    assert!(!b.set_target(1, Target::PastEnd), "no slot 1");
    b.clear();
    assert!(b.is_empty());
    b.func_ref(3, Target::Local(0)).push(exit());
    assert_eq!(b.insns().collect::<Vec<_>>(), vec![ld_func(3, 0)[0], ld_func(3, 0)[1], exit()]);
    assert_eq!(PatchBuf::from(&[exit()][..]), PatchBuf::from_insns(&[exit()]));
    // push_op appends an instruction's slots: two for an ld_imm64.
    let ld = ld_imm64(2, 0x1_0000_0005);
    let op = bpfpatch_insn::decode(&ld, bpfpatch_insn::DecodeOptions::default()).unwrap().0;
    let mut b = PatchBuf::new();
    b.push_op(&op).push(exit());
    assert_eq!(b.insns().collect::<Vec<_>>(), vec![ld[0], ld[1], exit()]);
}

/// Two buffers are equal when their slots and every slot's explicit target are: cargo-mutants
/// showed an equality that held for any buffers, or for buffers equal in either part alone,
/// unnoticed.
#[test]
fn patch_buffers_compare_slots_and_targets() {
    let plain = PatchBuf::from_insns(&[mov64(0, 1), exit()]);
    assert_eq!(plain, PatchBuf::from_insns(&[mov64(0, 1), exit()]));
    assert_ne!(plain, PatchBuf::from_insns(&[mov64(0, 2), exit()]), "another instruction");
    assert_ne!(plain, PatchBuf::from_insns(&[mov64(0, 1)]), "a prefix");
    // The same slots, one with an explicit target.
    let mut with_target = PatchBuf::new();
    with_target.jump_to(ja(0), Target::PastEnd).push(exit());
    let mut other_target = PatchBuf::new();
    other_target.jump_to(ja(0), Target::Local(0)).push(exit());
    let mut no_target = PatchBuf::new();
    no_target.push(ja(0)).push(exit());
    assert_eq!(with_target.insns().collect::<Vec<_>>(), no_target.insns().collect::<Vec<_>>());
    assert_ne!(with_target, no_target, "a target the other has not");
    assert_ne!(with_target, other_target, "another target");
    assert_eq!(with_target, with_target.clone());
    // The same target set again changes nothing; set on the plain buffer, it makes them equal.
    let mut again = with_target.clone();
    assert!(again.set_target(0, Target::PastEnd));
    assert_eq!(again, with_target);
    assert!(no_target.set_target(0, Target::PastEnd));
    assert_eq!(no_target, with_target);
}

#[test]
fn a_call_follows_any_number_of_deleted_prologues() {
    // 0: call -> 2 ; 1: exit ; 2: mov r0, 0 ; 3: exit (a subprogram at 2).
    // Ten skip prepatches of slot 2 insert P1..P10 in that order (each goes right before the
    // instruction, after the earlier ones); the call enters P1, as the kernel's call to the
    // first inserted slot is not moved by later insertions after it. Deleting P1..P9 one by
    // one moves the call to the first survivor each time (the kernel's rule): it ends on P10,
    // through a chain of ten call handles.
    let p = vec![call_local(1), exit(), mov64(0, 0), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let x = node(&l, 2);
    let mut pro = Vec::new();
    for k in 1..=10 {
        pro.push(l.prepatch(x, &PatchBuf::from_insns(&[mov64(1, k)]), PrepatchMode::SkipForJumps).unwrap().first);
    }
    assert_eq!(tgt(&lin(&l), 0), 2, "the call enters P1");
    for &q in &pro[..9] {
        l.delete(q).unwrap();
    }
    assert_eq!(lin(&l), vec![call_local(1), exit(), mov64(1, 10), mov64(0, 0), exit()]);
}

#[test]
fn a_call_to_a_deleted_instruction_enters_a_prologue_added_later_at_its_survivor() {
    // 0: call -> 2 ; 1: exit ; 2: x mov ; 3: y mov ; 4: exit.
    // A skip prepatch of x gives it prologue Px; then the call is replaced by one to x itself
    // (a call to a node lands on its instruction at request time, past Px). Deleting x moves
    // the call to its survivor y (the kernel: the call keeps the index, which y now holds);
    // a skip prepatch of y later inserts Py at that index, so the call enters Py.
    let p = vec![call_local(1), exit(), mov64(1, 1), mov64(0, 0), exit()];
    let mut l = PatchList::new(&p).unwrap();
    let (x, y) = (node(&l, 2), node(&l, 3));
    l.prepatch(x, &PatchBuf::from_insns(&[mov64(5, 5)]), PrepatchMode::SkipForJumps).unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(call_local(0), Target::Node(x));
    l.patch(node(&l, 0), &b).unwrap();
    assert_eq!(tgt(&lin(&l), 0), 3, "the call lands on x, past Px");
    l.delete(x).unwrap();
    l.prepatch(y, &PatchBuf::from_insns(&[mov64(6, 6)]), PrepatchMode::SkipForJumps).unwrap();
    // 0: call ; 1: exit ; 2: Px ; 3: Py ; 4: y ; 5: exit
    let out = lin(&l);
    assert_eq!(out[2..], [mov64(5, 5), mov64(6, 6), mov64(0, 0), exit()]);
    assert_eq!(tgt(&out, 0), 3, "the call enters Py");
}
