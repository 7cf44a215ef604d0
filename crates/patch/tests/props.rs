//! Property tests: no request (however malformed) panics, the output is always well-formed, and
//! an unpatched list linearizes to its input. Case counts follow `PROPTEST_CASES`.
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

use bpfpatch_insn::{Insn, Slot, opcode as c};
use bpfpatch_patch::*;
use common::Rng;
use common::*;
use proptest::prelude::*;

/// 512 by default; `PROPTEST_CASES` for longer runs.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
}

fn raw_insn() -> impl Strategy<Value = Insn> {
    let codes = prop::sample::select(vec![
        c::ALU64 | c::MOV | c::K,
        c::ALU | c::ADD | c::K,
        c::JMP | c::JA,
        c::JMP32 | c::JA,
        c::JMP | c::JEQ | c::K,
        c::JMP32 | c::JSET | c::X,
        c::JMP | c::JCOND,
        c::JMP | c::CALL,
        c::JMP | c::EXIT,
        c::LD_IMM64,
        0,
        0xff,
    ]);
    (codes, 0u8..16, 0u8..6, -8i16..8, -8i32..8).prop_map(|(code, d, s, off, imm)| Insn::new(code, d, s, off, imm))
}

fn target() -> impl Strategy<Value = Option<Target>> {
    prop_oneof![
        Just(None),
        (0u32..12).prop_map(|k| Some(Target::Local(k))),
        Just(Some(Target::PastEnd)),
        Just(Some(Target::OrigTarget)),
        (0usize..40).prop_map(|s| Some(Target::Orig(Slot(s)))),
        (0usize..80).prop_map(|n| Some(Target::Node(NodeId::of_slot(Slot(n))))),
        (0u32..4).prop_map(|s| Some(Target::Subprog(SubprogId(s)))),
        (0usize..4).prop_map(|l| Some(Target::Label(label_from(l)))),
    ]
}

/// Labels are opaque; make one with a given index from a scratch list.
fn label_from(i: usize) -> Label {
    let mut l = PatchList::new(&[]).unwrap();
    let mut last = l.new_label().unwrap();
    for _ in 0..i {
        last = l.new_label().unwrap();
    }
    last
}

fn buf() -> impl Strategy<Value = PatchBuf> {
    prop::collection::vec((raw_insn(), target()), 0..6).prop_map(|v| {
        let mut b = PatchBuf::new();
        for (i, t) in v {
            match t {
                None => b.push(i),
                Some(t) => b.jump_to(i, t),
            };
        }
        b
    })
}

#[derive(Clone, Debug)]
enum Req {
    Patch(usize, PatchBuf),
    Prepatch(usize, PatchBuf, bool),
    Delete(usize, usize),
    Append(PatchBuf),
    SetInsn(usize, Insn),
    Retarget(usize, Option<Target>),
    NewLabel,
    Bind(usize, usize),
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        (0usize..80, buf()).prop_map(|(n, b)| Req::Patch(n, b)),
        (0usize..80, buf(), any::<bool>()).prop_map(|(n, b, m)| Req::Prepatch(n, b, m)),
        (0usize..80, 0usize..80).prop_map(|(a, b)| Req::Delete(a, b)),
        buf().prop_map(Req::Append),
        (0usize..80, raw_insn()).prop_map(|(n, i)| Req::SetInsn(n, i)),
        (0usize..80, target()).prop_map(|(n, t)| Req::Retarget(n, t)),
        Just(Req::NewLabel),
        (0usize..4, 0usize..80).prop_map(|(l, n)| Req::Bind(l, n)),
    ]
}

/// A valid program from a seed: movs, ld_imm64 and jumps/gotol with in-range targets.
fn valid_program(n: usize, seed: u64) -> Vec<Insn> {
    let mut rng = Rng::seeded(seed);
    let mut p: Vec<Insn> = Vec::new();
    while p.len() < n {
        if rng.chance(15) {
            p.extend(ld_imm64(1, rng.next() as i64));
        } else {
            p.push(mov64(0, rng.below(9) as i32));
        }
    }
    p.push(exit());
    let heads: Vec<usize> = (0..p.len()).filter(|&i| i == 0 || !p[i - 1].is_ld_imm64()).collect();
    for &i in &heads {
        if !p[i].is_ld_imm64() && rng.chance(40) {
            let t = *rng.pick(&heads) as i64;
            let rel = t - i as i64 - 1;
            p[i] = match rng.below(4) {
                0 => jeq(1, 0, rel as i16),
                1 => gotol(rel as i32),
                2 => may_goto(rel as i16),
                _ => call_local(rel as i32),
            };
        }
    }
    p
}

fn program() -> impl Strategy<Value = Vec<Insn>> {
    prop_oneof![
        prop::collection::vec(raw_insn(), 0..30),
        (1usize..40, any::<u64>()).prop_map(|(n, s)| valid_program(n, s)),
    ]
}

fn nd(n: usize) -> NodeId {
    NodeId::of_slot(Slot(n))
}

/// Every emitted target is inside the program and not on an ld_imm64 second slot.
fn well_formed(insns: &[Insn]) -> bool {
    let mut tail = vec![false; insns.len()];
    let mut i = 0;
    while i < insns.len() {
        if insns[i].is_ld_imm64() && i + 1 < insns.len() {
            tail[i + 1] = true;
            i += 2;
        } else {
            i += 1;
        }
    }
    (0..insns.len()).filter(|&i| !tail[i]).all(|i| match insns[i].abs_target(i) {
        None => true,
        Some(t) => t >= 0 && (t as usize) < insns.len() && !tail[t as usize],
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn no_request_panics(prog in program(), reqs in prop::collection::vec(req(), 0..25)) {
        let Ok(mut l) = PatchList::new(&prog) else { return Ok(()) };
        for r in reqs {
            let _ = match r {
                Req::Patch(n, b) => l.patch(nd(n), &b).map(drop),
                Req::Prepatch(n, b, land) => {
                    let m = if land { PrepatchMode::LandOnInserted } else { PrepatchMode::SkipForJumps };
                    l.prepatch(nd(n), &b, m).map(drop)
                }
                Req::Delete(a, b) => l.delete_range(nd(a), nd(b)),
                Req::Append(b) => l.append(&b).map(drop),
                Req::SetInsn(n, i) => l.set_insn(nd(n), i),
                Req::Retarget(n, t) => l.retarget(nd(n), t.unwrap_or(Target::PastEnd)),
                Req::NewLabel => l.new_label().map(drop),
                Req::Bind(lab, n) => l.bind_label(label_from(lab), nd(n)),
            };
            let mut c = l.cursor();
            while c.advance().is_some() {}
        }
        for relax in [false, true] {
            if let Ok(out) = l.linearize(LinearizeOptions { relax }) {
                prop_assert!(well_formed(&out.insns));
                if !relax {
                    prop_assert_eq!(out.insns.len(), l.live_len());
                }
                for s in 0..=prog.len() {
                    prop_assert!(out.map.jump_target(Slot(s)).is_some_and(|t| t.0 <= out.insns.len()));
                    prop_assert!(out.map.start(Slot(s)).is_some_and(|t| t.0 <= out.insns.len()));
                }
            }
        }
        let p = Program { insns: prog.clone(), aux: vec![(); prog.len()], tables: SideTables::default() };
        let _ = l.linearize_program(&p, &mut |_: &Insn, _: Option<&()>| (), LinearizeOptions::default());
    }

    #[test]
    fn unpatched_list_is_identity(n in 1usize..60, seed in any::<u64>()) {
        let p = valid_program(n, seed);
        let l = PatchList::new(&p).unwrap();
        let out = l.linearize(LinearizeOptions::default()).unwrap();
        prop_assert_eq!(&out.insns, &p);
        for s in 0..p.len() {
            prop_assert_eq!(out.map.insn(Slot(s)), Some(Slot(s)));
            prop_assert_eq!(out.map.jump_target(Slot(s)), Some(Slot(s)));
        }
    }
}
