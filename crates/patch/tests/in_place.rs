//! The list reads the original program in place (invariant I7 of `list.rs`; #15 item 1, #16
//! item 1): building a list allocates nothing of the program's instruction size, and a list
//! rebuilt for a program of the same size allocates nothing at all. A counting allocator sees
//! every allocation made on the test's thread while it watches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{Insn, Slot};
use bpfpatch_patch::{LinearizeOptions, PatchBuf, PatchList};
use bpfpatch_testkit::alloc::{Counting, count};
use common::*;

#[global_allocator]
static COUNTING: Counting = Counting;

/// `n` slots: blocks of a conditional jump over a mov, an ld_imm64, a call to the last
/// subprogram, then `exit` and that subprogram.
fn program(n: usize) -> Vec<Insn> {
    let mut p = Vec::with_capacity(n);
    while p.len() + 7 < n {
        p.push(jeq(1, 0, 1));
        p.push(mov64(0, 1));
        p.extend(ld_imm64(2, 7));
        p.push(mov64(3, 3));
    }
    let call_at = p.len();
    p.push(call_local(0));
    p.push(exit());
    while p.len() + 2 < n {
        p.push(mov64(4, 4));
    }
    let sub = p.len();
    p[call_at] = call_local(i32::try_from(sub - call_at - 1).unwrap());
    p.push(mov64(0, 0));
    p.push(exit());
    assert_eq!(p.len(), n);
    p
}

#[test]
fn building_a_list_copies_no_instruction() {
    let n = 1 << 14;
    let prog = program(n);
    let (list, a) = count(0, || PatchList::new(&prog).unwrap());
    let max = a.largest;
    // Per node it keeps links, references, origins and flags (at most 4 bytes each); an
    // instruction is 8. Before I7 the list copied the program into `n + 1` instructions.
    assert!(max < n * size_of::<Insn>(), "largest allocation {max} bytes for {n} slots of 8 bytes");
    assert!(a.count > 0, "the per-node arrays are allocated");
    // And reads it: every slot, as the program holds it.
    let out = list.linearize(LinearizeOptions::default()).unwrap();
    assert_eq!(out.insns, prog);
}

#[test]
fn a_list_costs_17_bytes_per_original_until_one_is_rewritten() {
    let n = 1 << 14;
    let prog = program(n);
    // Links, reference and origin (4 bytes each, the sentinel's too), flags (1), the identity
    // table (4): the crate documentation's memory figure. No instruction, and no rewrite table.
    let (mut list, a) = count(0, || PatchList::new(&prog).unwrap());
    let b = a.bytes;
    let budget = 17 * n + 13 + 64;
    assert!(b <= budget, "{b} bytes for {n} slots (budget {budget})");
    // The first original rewritten in place sizes the table: 4 bytes per original.
    let y = list.node_of(Slot(1)).unwrap();
    let b = count(0, || list.set_insn(y, mov64(9, 9)).unwrap()).1.bytes;
    assert!((4 * n..4 * n + 256).contains(&b), "{b} bytes for the first rewritten original");
    // A patch logged for later (I6) copies its slots and writes no array.
    assert_eq!(prog[4], mov64(3, 3));
    let x = list.node_of(Slot(4)).unwrap();
    let b = count(0, || list.patch(x, &PatchBuf::from_insns(&[mov64(8, 8), prog[4]])).unwrap()).1.bytes;
    assert!(b < 256, "{b} bytes for one logged patch");
    let out = list.linearize(LinearizeOptions::default()).unwrap();
    assert_eq!((out.insns[1], out.insns[4], out.insns[5]), (mov64(9, 9), mov64(8, 8), mov64(3, 3)));
}

#[test]
fn rewritten_originals_are_the_lists_own() {
    let n = 1 << 12;
    let prog = program(n);
    let mut list = PatchList::new(&prog).unwrap();
    // Rewrite every third original in place and patch every seventh: the program is
    // untouched, the list's view and its output are the requests'.
    let mut want = prog.clone();
    for s in (0..n).step_by(3) {
        // Plain instructions only (not an ld_imm64's halves, a jump, a call or an exit).
        let Ok(x) = list.node_of(Slot(s)) else { continue };
        if !prog[s].is_ld_imm64() && prog[s].target_field().is_none() && prog[s] != exit() {
            list.set_insn(x, mov64(9, 9)).unwrap();
            want[s] = mov64(9, 9);
        }
    }
    assert!(want.iter().filter(|&&i| i == mov64(9, 9)).count() > n / 10);
    for s in (0..n).step_by(7).filter(|&s| want[s] == mov64(3, 3) || want[s] == mov64(4, 4)) {
        list.patch(list.node_of(Slot(s)).unwrap(), &PatchBuf::from_insns(&[mov64(8, 8), want[s]])).unwrap();
    }
    assert_eq!(prog, program(n), "the program is read, never written");
    let out = list.linearize(LinearizeOptions::default()).unwrap();
    for s in 0..n {
        let Some(at) = out.map.insn(Slot(s)) else { continue };
        if !prog[s].is_ld_imm64() && prog[s].target_field().is_none() {
            assert_eq!(out.insns[at.0], want[s], "slot {s}");
        }
    }
}

#[test]
fn a_list_rebuilt_for_a_program_no_larger_allocates_nothing() {
    let prog = program(1 << 12);
    let other = program(1 << 12);
    let small = program(1 << 9);
    let mut kept: PatchList<'static> = PatchList::default();
    let mut counts = Vec::new();
    for p in [&prog, &other, &prog, &other, &small, &prog] {
        let mut list = kept.recycle();
        let n = count(0, || list.reset(p, None).unwrap()).1.count;
        assert_eq!(list.linearize(LinearizeOptions::default()).unwrap().insns, *p);
        kept = list.recycle();
        counts.push(n);
    }
    // The first build sizes the arrays; every later one reuses them, a smaller program's too.
    assert!(counts[0] > 0, "{counts:?}");
    assert_eq!(counts[1..], [0, 0, 0, 0, 0], "allocations per rebuild");
}
