//! Pending patches (invariant I6): forward patches of untouched original instructions are kept
//! in a log and applied when any other request comes. A list whose patches stay pending must
//! answer every query, and linearize, exactly as the same list flushed after every request.
//! Random programs and request sequences (forward runs of patches mixed with every other kind
//! of request); `BPFPATCH_PENDING_CASES` sets the number of cases.
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
use bpfpatch_patch::reference::{KernelAux, KernelAuxHook};
use bpfpatch_patch::*;
use common::*;

fn cases() -> u64 {
    std::env::var("BPFPATCH_PENDING_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
}

/// A valid program: ALU, ld_imm64 pairs, forward and backward conditional jumps, a call into
/// a second subprogram, exits.
fn program(r: &mut Rng) -> Vec<Insn> {
    let n = 4 + r.below(40);
    let mut p: Vec<Insn> = Vec::new();
    let mut starts = Vec::new();
    while p.len() < n {
        starts.push(p.len());
        match r.below(6) {
            0 => p.extend(ld_imm64(1 + r.below(5) as u8, r.next() as i64)),
            1 | 2 => p.push(jeq(1, r.below(4) as i32, 0)), // target set below
            _ => p.push(add64(1 + r.below(5) as u8, r.below(100) as i32)),
        }
    }
    starts.push(p.len());
    p.push(exit());
    let sub = p.len();
    p.push(mov64(0, 1));
    p.push(exit());
    for (k, &s) in starts.iter().enumerate() {
        if p[s].code == jeq(0, 0, 0).code {
            let t = starts[r.below(starts.len())];
            let t = if t == s { starts[k + 1] } else { t };
            p[s].off = (t as i64 - s as i64 - 1) as i16;
        }
    }
    // Slot 0 calls the subprogram when it is an ALU slot.
    if p[0].code == add64(0, 0).code {
        p[0] = call_local((sub - 1) as i32);
    }
    p
}

/// A patch buffer of one of the shapes the log takes (plain, OrigTarget, buffer-local jump)
/// or not (ld_imm64, explicit PastEnd, a jump to an original slot).
fn buffer(r: &mut Rng, orig_len: usize) -> PatchBuf {
    let mut b = PatchBuf::new();
    for _ in 0..r.below(3) {
        b.push(mov64(11, r.below(50) as i32));
    }
    match r.below(8) {
        0 => {
            b.jump_to(jeq(2, 1, 0), Target::OrigTarget);
        }
        1 => {
            b.push(jeq(3, 1, 1)).push(mov64(4, 4));
        }
        2 => {
            let [lo, hi] = ld_imm64(5, 7);
            b.push(lo).push(hi);
        }
        3 => {
            b.jump_to(ja(0), Target::PastEnd);
        }
        4 => {
            b.jump_to(ja(0), Target::Orig(Slot(r.below(orig_len))));
        }
        _ => {}
    }
    b.push(add64(1, 1));
    b
}

/// Everything a list tells about itself.
fn snapshot(l: &PatchList, orig_len: usize) -> String {
    let mut s = format!("nodes {} live {}\n", l.node_count(), l.live_len());
    for x in 0..l.node_count() + 2 {
        let n = nodes_of(l, x);
        s +=
            &format!("{x}: {:?} del {} orig {:?} next {:?}\n", l.insn(n), l.is_deleted(n), l.origin(n), l.next_insn(n));
    }
    s += &format!("first {:?}\n", l.first_insn());
    s += &format!("iter {:?}\n", l.iter().collect::<Vec<_>>());
    s += &format!("slots {:?}\n", l.slots().collect::<Vec<_>>());
    for i in 0..orig_len {
        s += &format!("orig {i}: {:?} {:?}\n", l.node_of_orig(Slot(i)), l.node_of(Slot(i)));
    }
    s
}

/// Node id `x` (`of_slot` does not check against a list: any node id).
fn nodes_of(_l: &PatchList, x: usize) -> NodeId {
    NodeId::of_slot(Slot(x))
}

fn linearized(l: &PatchList, prog: &[Insn]) -> String {
    let mut s = String::new();
    for relax in [false, true] {
        let opts = LinearizeOptions { relax };
        match l.linearize(opts) {
            Ok(o) => {
                s += &format!("{:?} {:?}\n", o.insns, o.stats);
                for i in 0..=prog.len() {
                    let m = &o.map;
                    s += &format!("{:?} {:?} {:?}\n", m.jump_target(Slot(i)), m.start(Slot(i)), m.insn(Slot(i)));
                }
                for x in 0..l.node_count() {
                    s += &format!("{:?} ", o.map.node_pos(nodes_of(l, x)));
                }
            }
            Err(e) => s += &format!("{e:?}\n"),
        }
        let aux: Vec<KernelAux> =
            (0..prog.len() as u32).map(|i| KernelAux { orig_idx: i, ..KernelAux::default() }).collect();
        let p = Program { insns: prog.to_vec(), aux, tables: SideTables::default() };
        match l.linearize_program(&p, &mut KernelAuxHook, opts) {
            Ok(o) => s += &format!("{:?} {:?} {:?}\n", o.program, o.subprog_map, o.dropped),
            Err(e) => s += &format!("{e:?}\n"),
        }
    }
    s
}

#[test]
fn pending_patches_are_invisible() {
    let mut logged_any = 0;
    for case in 0..cases() {
        let mut r = Rng::seeded(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let prog = program(&mut r);
        let n = prog.len();
        let mut a = PatchList::new(&prog).unwrap();
        let mut b = PatchList::new(&prog).unwrap();
        let mut known: Vec<NodeId> = Vec::new();
        let mut next_fwd = 0usize;
        for step in 0..r.below(30) {
            let what = format!("case {case} step {step}");
            let pick = |r: &mut Rng, known: &[NodeId]| {
                if !known.is_empty() && r.below(4) == 0 {
                    known[r.below(known.len())]
                } else {
                    NodeId::of_slot(Slot(r.below(n)))
                }
            };
            let op = r.below(10);
            let (ra, rb) = match op {
                // Forward patches of original slots: the log's case.
                0..=4 => {
                    next_fwd += 1 + r.below(3);
                    let node = NodeId::of_slot(Slot(next_fwd.min(n + 1)));
                    let buf = buffer(&mut r, n);
                    let (ra, rb) = (a.patch(node, &buf), b.patch(node, &buf));
                    if let Ok(p) = ra {
                        known.extend([p.first, p.last, p.orig]);
                        logged_any += 1;
                    }
                    (format!("{ra:?}"), format!("{rb:?}"))
                }
                5 => {
                    let node = pick(&mut r, &known);
                    let buf = buffer(&mut r, n);
                    (format!("{:?}", a.patch(node, &buf)), format!("{:?}", b.patch(node, &buf)))
                }
                6 => {
                    let node = pick(&mut r, &known);
                    (format!("{:?}", a.delete(node)), format!("{:?}", b.delete(node)))
                }
                7 => {
                    let node = pick(&mut r, &known);
                    let mode = if r.below(2) == 0 { PrepatchMode::LandOnInserted } else { PrepatchMode::SkipForJumps };
                    let buf = buffer(&mut r, n);
                    (format!("{:?}", a.prepatch(node, &buf, mode)), format!("{:?}", b.prepatch(node, &buf, mode)))
                }
                8 => {
                    let mut buf = PatchBuf::new();
                    buf.push(mov64(0, 3)).push(exit());
                    (format!("{:?}", a.append(&buf)), format!("{:?}", b.append(&buf)))
                }
                _ => {
                    let node = pick(&mut r, &known);
                    (format!("{:?}", a.label_at(node)), format!("{:?}", b.label_at(node)))
                }
            };
            assert_eq!(ra, rb, "{what}: request result");
            // `b` applies everything now: a cursor flushes the log.
            let _ = b.cursor();
            assert_eq!(snapshot(&a, n), snapshot(&b, n), "{what}: queries");
            if step % 4 == 3 {
                assert_eq!(linearized(&a, &prog), linearized(&b, &prog), "{what}: linearization");
            }
        }
        assert_eq!(linearized(&a, &prog), linearized(&b, &prog), "case {case}: linearization");
    }
    assert!(logged_any > 100, "the forward patches were rarely accepted ({logged_any})");
}
