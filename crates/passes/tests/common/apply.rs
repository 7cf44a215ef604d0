//! Applying per-instruction patchlets through the patching engine: `rewrite_each` replaces
//! every instruction `f` returns a patchlet for (escapes jump to the replaced instruction's
//! original target) on a [`PatchList`] and linearizes it. The engine is tested against its own
//! oracles (crates/patch); the tests here check what the patchlets compute.
#![allow(dead_code)]

use bpfpatch_insn::{Insn, Op, Slot};
use bpfpatch_passes::program::{DecodedProgram, InsnIdx};
use bpfpatch_passes::rewrite::Patchlet;
use bpfpatch_patch::{LinearizeOptions, PatchBuf, PatchList, Target};

pub fn rewrite_each(insns: &[Insn], mut f: impl FnMut(InsnIdx, &Op) -> Option<Patchlet>) -> Vec<Insn> {
    let prog = DecodedProgram::decode(insns).expect("decode");
    let mut list = PatchList::new(insns).expect("patch list");
    let mut buf = PatchBuf::new();
    for (i, op) in prog.iter() {
        let Some(p) = f(i, op) else { continue };
        buf.clear();
        for (k, &insn) in p.insns().iter().enumerate() {
            if p.escapes().contains(&k) {
                buf.jump_to(insn, Target::OrigTarget);
            } else {
                buf.push(insn);
            }
        }
        let node = list.node_of(Slot(prog.slot(i).0)).expect("an instruction's node");
        list.patch(node, &buf).expect("patch");
    }
    list.linearize(LinearizeOptions { relax: true }).expect("linearize").insns
}
