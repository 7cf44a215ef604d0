//! The list's read-only queries (`insn`, `is_deleted`, `origin`, `first_insn`, `iter`,
//! `Patched::len`/`is_empty`) and the cursor's accessors, on hand-built programs whose answers
//! are written out by hand: these are public API, used by passes outside the crate.
// Test code: values are small and known; panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{Insn, Slot};
use bpfpatch_patch::*;
use common::*;

fn n(s: usize) -> NodeId {
    NodeId::of_slot(Slot(s))
}

#[test]
fn a_patch_counts_its_slots_and_is_never_empty() {
    // Both the logged path (a pristine node) and the eager path (a prepatch) report the
    // buffer's slot count; a patch has at least one slot (an empty buffer is refused).
    let orig = [mov64(0, 1), mov64(0, 2), exit()];
    let mut l = PatchList::new(&orig).unwrap();
    let p = l.patch(n(0), &PatchBuf::from_insns(&[mov64(1, 1), mov64(0, 1)])).unwrap();
    assert_eq!((p.len(), p.is_empty()), (2, false));
    let q = l.prepatch(n(1), &PatchBuf::from_insns(&[mov64(2, 2)]), PrepatchMode::SkipForJumps).unwrap();
    assert_eq!((q.len(), q.is_empty()), (1, false));
    assert_eq!(l.patch(n(2), &PatchBuf::new()).unwrap_err(), Error::EmptyPatch);
}

#[test]
fn insn_answers_for_nodes_of_the_list_only() {
    // Program of 2 slots: nodes 0 and 1 are its instructions, node 2 is the end sentinel
    // (which holds no instruction), node 3 does not exist.
    let orig = [mov64(0, 1), exit()];
    let mut l = PatchList::new(&orig).unwrap();
    assert_eq!(l.node_count(), 3);
    assert_eq!(l.insn(n(0)), Some(mov64(0, 1)));
    assert_eq!(l.insn(n(2)), None, "the end sentinel");
    assert_eq!(l.insn(n(3)), None, "one past the last node");
    // A pending (logged) patch of node 0 allocates node 3 for its second slot: the queries see
    // it (I6), and node 4 is still unknown.
    let p = l.patch(n(0), &PatchBuf::from_insns(&[mov64(5, 5), mov64(0, 1)])).unwrap();
    assert_eq!((p.first, p.last), (n(0), n(3)));
    assert_eq!(l.node_count(), 4);
    assert_eq!(l.insn(n(0)), Some(mov64(5, 5)));
    assert_eq!(l.insn(n(3)), Some(mov64(0, 1)));
    assert_eq!(l.insn(n(4)), None);
    // A deleted node still holds its instruction.
    l.delete(n(1)).unwrap();
    assert_eq!(l.insn(n(1)), Some(exit()));
}

#[test]
fn deleted_nodes_are_reported_and_carry_no_origin() {
    // 0: mov ; 1: mov ; 2: exit. Deleting slot 0 leaves slot 1 first.
    let orig = [mov64(0, 1), mov64(0, 2), exit()];
    let mut l = PatchList::new(&orig).unwrap();
    assert_eq!(l.first_insn(), Some(n(0)));
    assert!(!l.is_deleted(n(0)));
    l.delete(n(0)).unwrap();
    assert!(l.is_deleted(n(0)));
    assert!(!l.is_deleted(n(1)));
    assert!(!l.is_deleted(n(9)), "an unknown node is not a deleted one");
    assert_eq!(l.origin(n(0)), None, "a deleted node carries no original slot");
    assert_eq!(l.origin(n(1)), Some(Slot(1)));
    assert_eq!(l.origin(n(9)), None);
    assert_eq!(l.first_insn(), Some(n(1)), "the first live instruction skips the deleted head");
    assert_eq!(l.iter().collect::<Vec<_>>(), vec![(n(1), mov64(0, 2)), (n(2), exit())]);
}

#[test]
fn iter_lists_live_instructions_once_per_ld_imm64() {
    // 0: mov ; 1-2: ld_imm64 ; 3: exit: `iter` gives the first slot of each instruction,
    // `slots` every slot.
    let mut p = vec![mov64(0, 1)];
    p.extend(ld_imm64(1, 0x1_0000_0002));
    p.push(exit());
    let l = PatchList::new(&p).unwrap();
    let want: Vec<(NodeId, Insn)> = vec![(n(0), p[0]), (n(1), p[1]), (n(3), p[3])];
    assert_eq!(l.iter().collect::<Vec<_>>(), want);
    assert_eq!(l.slots().count(), 4);
    assert_eq!(l.next_insn(n(1)), Some(n(3)), "the second slot is skipped");
    let orig = [];
    let empty = PatchList::new(&orig).unwrap();
    assert_eq!(empty.first_insn(), None);
    assert_eq!(empty.iter().count(), 0);
}

#[test]
fn the_cursor_reports_the_second_slot_and_the_original_slot() {
    // 0: mov ; 1-2: ld_imm64 ; 3: mov ; 4: exit.
    let mut p = vec![mov64(0, 1)];
    let ld = ld_imm64(1, 0x7_0000_0003);
    p.extend(ld);
    p.push(mov64(0, 3));
    p.push(exit());
    let mut l = PatchList::new(&p).unwrap();
    let mut c = l.cursor();
    assert_eq!((c.insn(), c.insn_hi(), c.orig_slot()), (Some(mov64(0, 1)), None, Some(Slot(0))));
    c.advance();
    assert_eq!((c.insn(), c.insn_hi(), c.orig_slot()), (Some(ld[0]), Some(ld[1]), Some(Slot(1))));
    c.advance();
    assert_eq!((c.insn_hi(), c.orig_slot()), (None, Some(Slot(3))));
    // Patched: the cursor sits on the patch's last instruction, which carries slot 3; its
    // first instruction is new code, with no original slot.
    let r = c.patch(&PatchBuf::from_insns(&[mov64(2, 2), mov64(0, 3)])).unwrap();
    assert_eq!(c.orig_slot(), Some(Slot(3)));
    assert_eq!(c.list().origin(r.first), None);
    // The cursor's list is the list itself.
    assert_eq!(c.list().live_len(), 6);
    c.advance();
    assert_eq!(c.insn(), Some(exit()));
    // Deleting through the cursor deletes the node.
    c.delete().unwrap();
    assert!(c.list().is_deleted(n(4)));
    assert_eq!(c.list().live_len(), 5);
    c.advance();
    assert_eq!((c.node(), c.insn(), c.insn_hi(), c.orig_slot()), (None, None, None, None));
    assert_eq!(c.delete().unwrap_err(), Error::NoSuchNode { node: NodeId::of_slot(Slot(u32::MAX as usize)) });
}

#[test]
fn an_ld_imm64_patched_into_plain_slots_has_no_second_slot() {
    // 0-1: ld_imm64 ; 2: mov ; 3-4: ld_imm64 ; 5: exit. Patching an ld_imm64 deletes its old
    // second slot, which stays linked after the patch (I1): the patch's instructions are
    // one-slot ones, whether the patch is still pending (logged) or applied, and whether the
    // cursor is on its first or its last node.
    let (a, b) = (ld_imm64(1, 0x1_0000_0001), ld_imm64(2, 0x2_0000_0002));
    let p = [a[0], a[1], mov64(0, 0), b[0], b[1], exit()];
    let mut l = PatchList::new(&p).unwrap();
    let mut c = l.cursor();
    assert_eq!(c.insn_hi(), Some(a[1]));
    // One slot: the patch stays logged and keeps node 0.
    c.patch(&PatchBuf::from_insns(&[mov64(1, 1)])).unwrap();
    assert_eq!((c.node(), c.insn(), c.insn_hi()), (Some(n(0)), Some(mov64(1, 1)), None));
    c.advance();
    c.advance();
    assert_eq!(c.insn_hi(), Some(b[1]));
    // Two slots: the cursor goes to the last one, a new node of the logged patch.
    let r = c.patch(&PatchBuf::from_insns(&[mov64(2, 2), mov64(3, 3)])).unwrap();
    assert_eq!((c.insn(), c.insn_hi()), (Some(mov64(3, 3)), None));
    // Applied (a cursor flushes the log): the last node is followed by the deleted old second
    // slot, and is still no ld_imm64.
    let c = l.cursor_at(r.last).unwrap();
    assert_eq!((c.insn(), c.insn_hi()), (Some(mov64(3, 3)), None));
    let c = l.cursor_at(n(0)).unwrap();
    assert_eq!((c.insn(), c.insn_hi()), (Some(mov64(1, 1)), None));
}
