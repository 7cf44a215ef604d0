//! The kernel reference model on the rules of the kernel-patching notes, by example, and the
//! engine against it on 16-bit overflow (a case the differential programs are too small for).

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
use bpfpatch_patch::reference::*;
use bpfpatch_patch::*;
use common::*;

fn kp(insns: Vec<Insn>, linfo: &[u32], subprogs: &[u32]) -> KernelProg<KernelAux> {
    let n = insns.len();
    let mut subprog_info: Vec<Subprog> = subprogs
        .iter()
        .map(|&s| Subprog { start: s, linfo_idx: linfo.iter().position(|&l| l == s).unwrap_or(0) as u32 })
        .collect();
    subprog_info.push(Subprog { start: n as u32, linfo_idx: 0 });
    KernelProg {
        aux: (0..n as u32).map(|i| KernelAux { seen: true, zext_dst: false, orig_idx: i, other: 0 }).collect(),
        insns,
        subprog_info,
        func_info: subprogs.iter().map(|&s| FuncInfo { insn_off: s, type_id: s + 1 }).collect(),
        linfo: linfo.iter().map(|&o| LineInfo { insn_off: o, line_col: o, ..LineInfo::default() }).collect(),
        pokes: Vec::new(),
        insn_arrays: Vec::new(),
        hidden_subprog_cnt: 0,
    }
}

#[test]
fn patch_insn_single_fixes_branches_and_linfo() {
    // 0: ja +2 -> 3 ; 1: mov ; 2: jeq -3 -> 0 ; 3: exit
    let mut p = kp(vec![ja(2), mov64(0, 1), jeq(0, 0, -3), exit()], &[0, 1, 3], &[0]);
    p.bpf_patch_insn_data(1, &[mov64(2, 2), mov64(0, 1)]).unwrap();
    assert_eq!(p.insns, vec![ja(3), mov64(2, 2), mov64(0, 1), jeq(0, 0, -4), exit()]);
    // The entry at the patch point stays and covers the patch; later ones shift.
    assert_eq!(p.linfo.iter().map(|l| l.insn_off).collect::<Vec<_>>(), vec![0, 1, 4]);
    // Original aux moves to the last slot of the patch; the new slot copies `seen`.
    assert_eq!(p.aux[2].orig_idx, 1);
    assert_eq!(p.aux[1], KernelAux { seen: true, zext_dst: false, orig_idx: 0, other: 0 });
    assert_eq!(p.subprog_info[1].start, 5, "the fake exit moved");
}

#[test]
fn patch_insn_data_zext_and_one_to_one() {
    let mut p = kp(vec![mov64(0, 1), exit()], &[], &[0]);
    p.aux[0].zext_dst = true;
    // 1:1 patch: only zext_dst is recomputed (mov64 has no 32-bit def).
    p.bpf_patch_insn_data(0, &[mov32(0, 1)]).unwrap();
    assert!(p.aux[0].zext_dst, "mov32 defines a 32-bit subregister");
    p.bpf_patch_insn_data(0, &[mov64(0, 1)]).unwrap();
    assert!(!p.aux[0].zext_dst);
}

#[test]
fn insn_has_def32_follows_the_kernel() {
    assert!(insn_has_def32(&mov32(0, 1)));
    assert!(!insn_has_def32(&mov64(0, 1)));
    assert!(!insn_has_def32(&ja(0)));
    assert!(!insn_has_def32(&exit()));
    assert!(!insn_has_def32(&ld_imm64(1, 1)[0]));
    // ldx w: 32-bit; ldx dw: 64-bit
    assert!(insn_has_def32(&Insn::new(0x61, 1, 2, 0, 0)));
    assert!(!insn_has_def32(&Insn::new(0x79, 1, 2, 0, 0)));
    // 32-bit atomic fetch-add defines src
    assert!(insn_has_def32(&Insn::new(0xc3, 1, 2, 0, 0x01)));
    assert!(!insn_has_def32(&Insn::new(0xc3, 1, 2, 0, 0x00)));
}

#[test]
fn adjust_jmp_off_moves_jumps_not_calls() {
    // 0: call -> 2 ; 1: ja -> 2 ; 2: mov (prologue) ; 3: exit
    let mut insns = vec![call_local(1), ja(0), mov64(0, 0), exit()];
    adjust_jmp_off(&mut insns, 2, 1).unwrap();
    assert_eq!(insns, vec![call_local(1), ja(1), mov64(0, 0), exit()]);
    // A jump inside [tgt, tgt + delta) is left alone.
    let mut insns = vec![ja(0), ja(-1), exit()];
    adjust_jmp_off(&mut insns, 1, 1).unwrap();
    assert_eq!(insns, vec![ja(1), ja(-1), exit()]);
}

#[test]
fn remove_insns_linfo_inherits_last_removed_and_subprogs_go() {
    // main 0..3: mov ; mov ; exit | sub 3..5: mov ; exit | sub 5..7: mov ; exit
    let insns = vec![mov64(0, 0), mov64(0, 1), exit(), mov64(0, 2), exit(), mov64(0, 3), exit()];
    let mut p = kp(insns.clone(), &[0, 1, 3, 4, 5], &[0, 3, 5]);
    // Removing [0, 2): slot 2 has no line, it inherits the last removed (1).
    p.verifier_remove_insns(0, 2).unwrap();
    assert_eq!(
        p.linfo.iter().map(|l| (l.insn_off, l.line_col)).collect::<Vec<_>>(),
        vec![(0, 1), (1, 3), (2, 4), (3, 5)]
    );
    // Removing a whole subprogram removes its func_info and shifts the rest.
    let mut p = kp(insns, &[0, 1, 3, 4, 5], &[0, 3, 5]);
    p.verifier_remove_insns(3, 2).unwrap();
    assert_eq!(p.subprog_info.iter().map(|s| s.start).collect::<Vec<_>>(), vec![0, 3, 5]);
    assert_eq!(p.func_info.iter().map(|f| f.type_id).collect::<Vec<_>>(), vec![1, 6]);
    assert_eq!(p.subprog_info[1].linfo_idx, 2);
    p.adjust_btf_func();
    assert_eq!(p.func_info[1].insn_off, 3);
}

#[test]
fn add_hidden_subprog_appends_once() {
    let mut p = kp(vec![mov64(0, 0), exit()], &[0], &[0]);
    p.add_hidden_subprog(&[exit(), mov64(0, 1), exit()]).unwrap();
    assert_eq!(p.insns.len(), 4);
    assert_eq!(p.subprog_info.iter().map(|s| s.start).collect::<Vec<_>>(), vec![0, 2, 4]);
    assert_eq!(p.add_hidden_subprog(&[exit(), exit()]), Err(KernelError::Fault));
}

/// A jump near the 16-bit limit, as `bpf_fill_jump_around_ld_abs`: the kernel probes once the
/// program exceeds 32767 slots and refuses the patch that would overflow; the engine reports
/// the same jump at linearization.
#[test]
fn sixteen_bit_overflow_both_engines() {
    // 0: jeq -> exit ; 1..=32766: movs ; 32767: exit
    let n = 32_766usize;
    let mut insns = vec![jeq(1, 0, n as i16)];
    insns.extend((0..n).map(|i| mov64(0, i as i32)));
    insns.push(exit());
    let mut k = kp(insns.clone(), &[], &[0]);
    // First +1 fits exactly (off 32767), the second overflows: -ERANGE, image unchanged.
    k.bpf_patch_insn_data(5, &[mov64(1, 1), mov64(0, 4)]).unwrap();
    assert_eq!(k.insns[0].off, i16::MAX);
    let before = k.clone();
    assert_eq!(k.bpf_patch_insn_data(9, &[mov64(1, 1), mov64(0, 8)]), Err(KernelError::Range { off: 9 }));
    assert_eq!(k, before, "a refused patch changes nothing");

    let mut l = PatchList::new(&insns).unwrap();
    l.patch(l.node_of(Slot(5)).unwrap(), &PatchBuf::from_insns(&[mov64(1, 1), mov64(0, 4)])).unwrap();
    assert_eq!(l.linearize(LinearizeOptions::default()).unwrap().insns, k.insns);
    l.patch(l.node_of(Slot(8)).unwrap(), &PatchBuf::from_insns(&[mov64(1, 1), mov64(0, 8)])).unwrap();
    assert_eq!(
        l.linearize(LinearizeOptions::default()).unwrap_err(),
        Error::JumpOutOfRange { at: Slot(0), orig: Some(Slot(0)), delta: 32_768 }
    );
}

#[test]
fn probe_pass_at_the_last_instruction_stays_in_bounds() {
    // Patching the last slot of a > 32767-slot program: the C probe reads one slot past the image.
    let mut insns: Vec<Insn> = (0..32_767).map(|i| mov64(0, i)).collect();
    insns.push(exit());
    let mut k = kp(insns, &[], &[0]);
    let last = k.insns.len() as u32 - 1;
    k.bpf_patch_insn_data(last, &[mov64(0, 0), exit()]).unwrap();
    assert_eq!(k.insns.len(), 32_769);
}
