//! A test-only linearizer: replace every instruction of a program by a patchlet and fix the
//! jumps (targets of original instructions land on the start of their replacement, escapes go
//! to the replaced instruction's original target). Stands in for the patching engine in tests.
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use bpfpatch_insn::{Insn, Op};
use bpfpatch_passes::program::{InsnIdx, Program};
use bpfpatch_passes::rewrite::Patchlet;

pub fn rewrite_each(insns: &[Insn], mut f: impl FnMut(InsnIdx, &Op) -> Option<Patchlet>) -> Vec<Insn> {
    let prog = Program::decode(insns).expect("decode");
    let n = prog.len();
    let mut patches: Vec<(Patchlet, bool)> = Vec::with_capacity(n);
    for (i, op) in prog.iter() {
        match f(i, op) {
            Some(p) => patches.push((p, true)),
            None => {
                let mut p = Patchlet::new();
                if prog.target(i).is_some() {
                    p.push_escape(*op);
                } else {
                    p.push(*op);
                }
                patches.push((p, false));
            }
        }
    }
    let mut start = Vec::with_capacity(n + 1);
    let mut pos = 0usize;
    for (p, _) in &patches {
        start.push(pos);
        pos += p.len();
    }
    start.push(pos);
    let mut out = Vec::with_capacity(pos);
    for (i, (p, _)) in patches.iter().enumerate() {
        let mut slots = p.insns().to_vec();
        for &k in p.escapes() {
            let (t, _) = prog.target(InsnIdx(i as u32)).expect("escape without target");
            let here = (start[i] + k) as i64;
            let rel = start[t.idx()] as i64 - here - 1;
            assert!(slots[k].set_rel_target(rel), "offset {rel} does not fit");
        }
        out.extend(slots);
    }
    out
}
