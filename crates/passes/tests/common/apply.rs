//! Applying per-instruction generated patches through the patching engine: `rewrite_each`
//! replaces every instruction `f` returns a patch for (escapes jump to the replaced
//! instruction's original target) on a [`PatchList`] and linearizes it. The engine is tested
//! against its own oracles (crates/patch); the tests here check what the patches compute.
#![allow(dead_code)]

use bpfpatch_insn::{Insn, Op, Slot};
use bpfpatch_passes::internals::program::{DecodedProgram, InsnIdx};
use bpfpatch_patch::{LinearizeOptions, PatchBuf, PatchList};

pub fn rewrite_each(insns: &[Insn], mut f: impl FnMut(InsnIdx, &Op) -> Option<PatchBuf>) -> Vec<Insn> {
    let prog = DecodedProgram::decode(insns).expect("decode");
    let mut list = PatchList::new(insns).expect("patch list");
    for (i, op) in prog.iter() {
        let Some(p) = f(i, op) else { continue };
        let node = list.node_of(Slot(prog.slot(i).0)).expect("an instruction's node");
        list.patch(node, &p).expect("patch");
    }
    list.linearize(LinearizeOptions { relax: true }).expect("linearize").insns
}
