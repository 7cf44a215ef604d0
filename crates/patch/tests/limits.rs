//! Request size limits: patch buffers over the kernel's 32767-slot cap (`S16_MAX`).

#![allow(clippy::unwrap_used)]

use bpfpatch_insn::{Insn, Slot, opcode as c};
use bpfpatch_patch::{Error, MAX_PATCH_SLOTS, PatchBuf, PatchList, PrepatchMode};

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
