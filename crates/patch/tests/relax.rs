//! Jump relaxation: 16-bit overflow is an error without cpu v4, and with it every condition is
//! rewritten into a sequence that goes to the same place, iterated until stable.
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

use bpfpatch_insn::{Cond, Insn, Slot, opcode as c};
use bpfpatch_patch::*;
use common::*;

const FAR: usize = 40_000;

fn eval(code: u8, dst: u64, imm: i32, budget_exhausted: bool) -> bool {
    let class = code & c::CLASS_MASK;
    if code == c::JMP | c::JCOND {
        return budget_exhausted;
    }
    let (a, b) =
        if class == c::JMP32 { (u64::from(dst as u32), u64::from(imm as u32)) } else { (dst, imm as i64 as u64) };
    let (sa, sb) =
        if class == c::JMP32 { (a as u32 as i32 as i64, b as u32 as i32 as i64) } else { (a as i64, b as i64) };
    match Cond::from_code(code & c::OP_MASK).expect("a condition") {
        Cond::Eq => a == b,
        Cond::Ne => a != b,
        Cond::Gt => a > b,
        Cond::Ge => a >= b,
        Cond::Lt => a < b,
        Cond::Le => a <= b,
        Cond::Sgt => sa > sb,
        Cond::Sge => sa >= sb,
        Cond::Slt => sa < sb,
        Cond::Sle => sa <= sb,
        Cond::Set => a & b != 0,
    }
}

/// Runs the jump-only code starting at `pc` until it reaches a non-jump slot; returns that slot.
fn run(insns: &[Insn], mut pc: usize, dst: u64, budget_exhausted: bool) -> usize {
    for _ in 0..8 {
        let i = insns[pc];
        if i.target_field().is_none() {
            return pc;
        }
        pc = if i.code == c::JMP32 | c::JA {
            (pc as i64 + i64::from(i.imm) + 1) as usize
        } else if i.code == c::JMP | c::JA || eval(i.code, dst, i.imm, budget_exhausted) {
            (pc as i64 + i64::from(i.off) + 1) as usize
        } else {
            pc + 1
        };
    }
    panic!("jump sequence does not terminate");
}

/// Replaces original slot `slot` by FAR copies of `insn`, in two patches (one patch holds at
/// most `MAX_PATCH_SLOTS`): the second patches the last instruction of the first.
fn far_patch(l: &mut PatchList, slot: usize, insn: Insn) {
    let half = FAR / 2;
    let first = PatchBuf::from_insns(&vec![insn; half]);
    let p = l.patch(l.node_of(Slot(slot)).unwrap(), &first).unwrap();
    l.patch(p.orig, &PatchBuf::from_insns(&vec![insn; FAR - half + 1])).unwrap();
}

/// `[jcc r1, imm -> exit; mov r0, 7; mov r0, 8; exit]`.
fn far_insns(jcc: Insn) -> Vec<Insn> {
    vec![jcc, mov64(0, 7), mov64(0, 8), exit()]
}

/// The list of [`far_insns`] with the first mov patched into FAR movs.
fn far_program(p: &[Insn]) -> PatchList<'_> {
    let mut l = PatchList::new(p).unwrap();
    far_patch(&mut l, 1, mov64(0, 7));
    l
}

#[test]
fn overflow_without_relaxation_is_a_typed_error() {
    let p = far_insns(Insn::new(c::JMP | c::JEQ | c::K, 1, 0, 2, 0));
    let l = far_program(&p);
    let e = l.linearize(LinearizeOptions::default()).unwrap_err();
    assert_eq!(e, Error::JumpOutOfRange { at: Slot(0), orig: Some(Slot(0)), delta: FAR as i64 + 1 });
    // And a goto too.
    let p = far_insns(ja(2));
    let l = far_program(&p);
    assert!(matches!(l.linearize(LinearizeOptions::default()), Err(Error::JumpOutOfRange { at: Slot(0), .. })));
}

#[test]
fn opcodes_without_a_relaxed_form_stay_out_of_range() {
    // Relaxation rewrites `goto` (into gotol), the conditions and may_goto (JMP | JCOND). Other
    // opcodes with a 16-bit jump field are accepted as input but have no relaxed form (a jump32
    // JCOND, a goto with the X source bit, a jump32 TAIL_CALL): overflowing one stays an error.
    for code in [c::JMP32 | c::JCOND, c::JMP | c::JA | c::X, c::JMP32 | c::TAIL_CALL] {
        let p = far_insns(Insn::new(code, 0, 0, 2, 0));
        let l = far_program(&p);
        let e = l.linearize(LinearizeOptions { relax: true }).unwrap_err();
        assert_eq!(e, Error::JumpOutOfRange { at: Slot(0), orig: Some(Slot(0)), delta: FAR as i64 + 1 }, "{code:#x}");
    }
}

#[test]
fn goto_becomes_gotol_in_place() {
    let p = far_insns(ja(2));
    let l = far_program(&p);
    let out = l.linearize(LinearizeOptions { relax: true }).unwrap();
    assert_eq!(out.insns.len(), FAR + 3);
    assert_eq!(out.insns[0].code, c::JMP32 | c::JA);
    assert_eq!(out.insns[0].abs_target(0), Some(FAR as i64 + 2));
    assert_eq!(out.stats.relaxed_goto, 1);
    assert_eq!(out.stats.walks, 1, "same size: no second walk");
}

#[test]
fn every_condition_relaxes_to_an_equivalent_sequence() {
    let vals: [u64; 6] = [0, 1, 5, u64::MAX, 0x8000_0000, 0x1_0000_0005];
    let imms: [i32; 4] = [0, 5, -1, i32::MIN];
    let mut codes: Vec<u8> = Vec::new();
    for class in [c::JMP, c::JMP32] {
        for cond in Cond::ALL {
            codes.push(class | cond.code() | c::K);
        }
    }
    codes.push(c::JMP | c::JCOND);
    for code in codes {
        for &imm in &imms {
            let jcc = if code == c::JMP | c::JCOND { may_goto(2) } else { Insn::new(code, 1, 0, 2, imm) };
            let p = far_insns(jcc);
            let l = far_program(&p);
            let out = l.linearize(LinearizeOptions { relax: true }).unwrap();
            let end = out.insns.len() - 1; // the exit: the jump's target
            let fall = out.map.jump_target(Slot(1)).unwrap().0; // first mov
            let grow = out.insns.len() - (FAR + 3);
            let expect_grow = if matches!(code & c::OP_MASK, c::JSET | c::JCOND) { 2 } else { 1 };
            assert_eq!(grow, expect_grow, "code {code:#x}");
            assert_eq!(out.stats.relaxed_cond, 1);
            assert_eq!(out.map.insn(Slot(0)), Some(Slot(0)), "the jump keeps its identity on the first slot");
            for &v in &vals {
                for budget in [false, true] {
                    let taken = eval(code, v, imm, budget);
                    let got = run(&out.insns, 0, v, budget);
                    assert_eq!(got, if taken { end } else { fall }, "code {code:#x} imm {imm} dst {v:#x}");
                }
            }
        }
    }
}

#[test]
fn backward_jumps_relax_too() {
    // 0: mov ; 1: mov (-> FAR movs) ; 2: jne r1, 0 -> 0 ; 3: exit
    let p = vec![mov64(0, 1), mov64(0, 2), Insn::new(c::JMP | c::JNE | c::K, 1, 0, -3, 0), exit()];
    let mut l = PatchList::new(&p).unwrap();
    far_patch(&mut l, 1, mov64(0, 2));
    let out = l.linearize(LinearizeOptions { relax: true }).unwrap();
    let at = FAR + 1;
    assert_eq!(run(&out.insns, at, 1, false), 0);
    assert_eq!(run(&out.insns, at, 0, false), at + 2);
}

#[test]
fn relaxation_iterates_until_stable() {
    // B (slot 0) fits exactly until A (slot 1) grows; A overflows after the patch.
    // 0: B jeq r2 -> orig slot 32767 ; 1: A jeq r1 -> exit ; 2..=32768: movs ; 32769: exit
    let m = 32_767usize;
    let mut p =
        vec![Insn::new(c::JMP | c::JEQ | c::K, 2, 0, 32_766, 0), Insn::new(c::JMP | c::JEQ | c::K, 1, 0, m as i16, 0)];
    p.extend((0..m).map(|i| mov64(0, i as i32)));
    p.push(exit());
    let mut l = PatchList::new(&p).unwrap();
    l.patch(l.node_of(Slot(2)).unwrap(), &PatchBuf::from_insns(&[mov64(0, 0), mov64(3, 3)])).unwrap();
    let out = l.linearize(LinearizeOptions { relax: true }).unwrap();
    assert_eq!(out.stats.relaxed_cond, 2, "A first, then B");
    assert_eq!(out.stats.walks, 3);
    // B: taken -> orig slot 32767, else -> A
    let b_tgt = out.map.jump_target(Slot(32_767)).unwrap().0;
    let a_at = out.map.jump_target(Slot(1)).unwrap().0;
    assert_eq!(run(&out.insns, 0, 0, false), b_tgt);
    // not taken: falls into A, which (same value, r1 != 0) falls through to the movs
    assert_eq!(run(&out.insns, 0, 1, false), out.map.jump_target(Slot(2)).unwrap().0);
    assert_eq!(out.insns[a_at - 1].code, c::JMP32 | c::JA, "B's gotol sits right before A");
    assert_eq!(run(&out.insns, a_at, 0, false), out.insns.len() - 1);
    assert_eq!(out.insns[b_tgt], mov64(0, 32_765));
    // Without relaxation, A is reported.
    assert!(matches!(
        l.linearize(LinearizeOptions::default()),
        Err(Error::JumpOutOfRange { at: Slot(1), orig: Some(Slot(1)), .. })
    ));
}

#[test]
fn linearize_program_relaxes_with_aux_too() {
    // The verification layer relaxes as `linearize` does when the program has aux data (the
    // relaxing engine builds aux after resolution): the goto over FAR slots becomes a gotol
    // that keeps its identity, and without relaxation the same request is out of range.
    let prog = Program {
        insns: vec![ja(2), mov64(0, 7), mov64(0, 8), exit()],
        aux: vec![0u32, 1, 2, 3],
        ..Program::default()
    };
    let mut l = PatchList::for_program(&prog).unwrap();
    far_patch(&mut l, 1, mov64(0, 7));
    let mut hook = |_: &Insn, parent: Option<&u32>| parent.map_or(99, |p| 100 + p);
    let out = l.linearize_program(&prog, &mut hook, LinearizeOptions { relax: true }).unwrap();
    assert_eq!(out.program.insns.len(), FAR + 3);
    assert_eq!(out.program.insns[0].code, c::JMP32 | c::JA);
    assert_eq!(out.program.insns[0].abs_target(0), Some(FAR as i64 + 2));
    assert_eq!(out.program.aux.len(), FAR + 3);
    assert_eq!((out.program.aux[0], out.program.aux[FAR + 1], out.program.aux[FAR + 2]), (0, 2, 3));
    let e = l.linearize_program(&prog, &mut hook, LinearizeOptions::default()).map(drop).unwrap_err();
    assert!(matches!(e, Error::JumpOutOfRange { at: Slot(0), .. }), "{e:?}");
}
