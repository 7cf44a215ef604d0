//! Request size limits: patch buffers over the kernel's 32767-slot cap (`S16_MAX`), and the
//! node limit `MAX_NODES`.

#![allow(clippy::unwrap_used)]

use bpfpatch_insn::{Insn, Slot, opcode as c};
use bpfpatch_patch::{
    Error, InOrder, InOrderCtx, LinearizeOptions, MAX_NODES, MAX_PATCH_SLOTS, NoAux, NodeId, PatchBuf, PatchList,
    PatchedProgram, PrepatchMode, Program, SideTables,
};

fn mov(k: i32) -> Insn {
    Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, k)
}

#[test]
fn patch_buffers_over_the_cap_are_rejected_and_change_nothing() {
    let prog = [mov(1), Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)];
    let big = PatchBuf::from_insns(&vec![mov(2); MAX_PATCH_SLOTS + 1]);
    let want = Error::PatchTooLarge { len: MAX_PATCH_SLOTS + 1, limit: MAX_PATCH_SLOTS };
    let mut l = PatchList::new(&prog).unwrap();
    let n = l.node_of(Slot(0)).unwrap();
    assert_eq!(l.patch(n, &big).err(), Some(want.clone()));
    assert_eq!(l.prepatch(n, &big, PrepatchMode::LandOnInserted).err(), Some(want.clone()));
    assert_eq!(l.append(&big).err(), Some(want.clone()));
    assert_eq!(want.to_string(), "patch buffer of 32768 slots exceeds the limit of 32767");
    let out = l.linearize(Default::default()).unwrap();
    assert_eq!(out.insns, prog, "rejected requests leave the list unchanged");
}

#[test]
fn patch_buffers_at_the_cap_are_accepted() {
    let prog = [mov(1), Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)];
    let mut l = PatchList::new(&prog).unwrap();
    let n = l.node_of(Slot(0)).unwrap();
    l.patch(n, &PatchBuf::from_insns(&vec![mov(2); MAX_PATCH_SLOTS])).unwrap();
    assert_eq!(l.linearize(Default::default()).unwrap().insns.len(), MAX_PATCH_SLOTS + 1);
}

#[test]
fn buffers_at_the_cap_are_accepted_by_the_eager_requests_too() {
    // The cap is inclusive for every request, not only for the first patch of an untouched
    // node (which is logged): a prepatch, then a second patch of the same node.
    let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    let orig = [mov(1), exit];
    let mut l = PatchList::new(&orig).unwrap();
    let n = l.node_of(Slot(0)).unwrap();
    let cap = PatchBuf::from_insns(&vec![mov(2); MAX_PATCH_SLOTS]);
    let p = l.prepatch(n, &cap, PrepatchMode::SkipForJumps).unwrap();
    l.patch(p.orig, &cap).unwrap();
    // 2 slots, plus MAX_PATCH_SLOTS inserted, plus MAX_PATCH_SLOTS - 1 by the patch.
    assert_eq!(l.linearize(Default::default()).unwrap().insns.len(), 2 * MAX_PATCH_SLOTS + 1);
}

#[test]
fn the_node_limit_bounds_the_sum_of_nodes() {
    // MAX_NODES (2^30) bounds how many nodes the list holds: 100_001 nodes plus a buffer of
    // 20_000 slots is about 120_000, far below it (their product, 2 * 10^9, is above it).
    const { assert!(100_001 * 20_000 > MAX_NODES) };
    let mut prog = vec![mov(1); 100_000];
    prog.push(Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0));
    let mut l = PatchList::new(&prog).unwrap();
    let buf = PatchBuf::from_insns(&vec![mov(2); 20_000]);
    l.prepatch(NodeId::of_slot(Slot(5)), &buf, PrepatchMode::LandOnInserted).unwrap();
    l.patch(NodeId::of_slot(Slot(5)), &buf).unwrap();
    l.append(&PatchBuf::from_insns(&[mov(3), Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)])).unwrap();
    assert_eq!(l.live_len(), 100_001 + 20_000 + 19_999 + 2);
}

#[test]
fn the_in_order_engine_bounds_the_sum_of_nodes_and_takes_buffers_up_to_the_cap() {
    // As the list: MAX_NODES bounds the sum of the nodes (100_002 with the sentinel, then
    // 32_766 new ones, plus the buffer), not a product (100_002 * 32_767 and 100_002 * 32_766
    // are above 2^30); the cap of MAX_PATCH_SLOTS slots is inclusive, one more is refused.
    const { assert!(100_002 * (MAX_PATCH_SLOTS - 1) > MAX_NODES) };
    let mut insns = vec![mov(1); 100_000];
    insns.push(Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0));
    let prog = Program::without_aux(insns, SideTables::default());
    let cap = PatchBuf::from_insns(&vec![mov(2); MAX_PATCH_SLOTS]);
    let two = PatchBuf::from_insns(&[mov(3), mov(4)]);
    let over = PatchBuf::from_insns(&vec![mov(5); MAX_PATCH_SLOTS + 1]);
    let too_large = Error::PatchTooLarge { len: MAX_PATCH_SLOTS + 1, limit: MAX_PATCH_SLOTS };

    let mut list = PatchList::for_program(&prog).unwrap();
    let want_cap = list.patch(NodeId::of_slot(Slot(5)), &cap).unwrap();
    let want_two = list.patch(NodeId::of_slot(Slot(6)), &two).unwrap();
    assert_eq!(list.patch(NodeId::of_slot(Slot(7)), &over).err(), Some(too_large.clone()));
    let want = list.linearize_program(&prog, &mut NoAux, LinearizeOptions::default()).unwrap();

    let (mut ctx, mut out, mut hook) = (InOrderCtx::new(), PatchedProgram::default(), NoAux);
    let mut io = InOrder::new(&mut ctx, &prog, &mut hook, &mut out).unwrap();
    assert_eq!(io.patch(Slot(5), &cap), Ok(want_cap));
    assert_eq!(io.patch(Slot(6), &two), Ok(want_two));
    assert_eq!(io.patch(Slot(7), &over), Err(too_large));
    io.finish().unwrap();
    // 100_001 slots, plus MAX_PATCH_SLOTS - 1 and 1 inserted.
    assert_eq!(out.program.insns.len(), 100_001 + MAX_PATCH_SLOTS);
    assert_eq!(out.program.insns, want.program.insns);
}
