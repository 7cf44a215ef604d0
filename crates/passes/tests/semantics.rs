//! The generated sequences compute what they replace: lowered cpu-v4 instructions and division
//! guards against an independent reference of Linux / RFC 9669 semantics, also after constant
//! blinding of every instruction (AX must survive), and zext / rnd-hi32 sequences. Programs run
//! on the project's VM.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{AluOp, Endian, Insn, Op, Operand, Size, SwapKind, Width};
use bpfpatch_passes::internals::blind::{BlindOptions, SplitMix64, blind};
use bpfpatch_passes::internals::fixups::div_guard;
use bpfpatch_passes::internals::lower_v4::{lower, uses_v4};
use bpfpatch_passes::internals::zext::{rnd_hi32_after, zext_after};
use common::apply::rewrite_each;
use common::vm;
use common::*;

/// Independent reference: signed division and remainder with Linux semantics.
fn reference(w: Width, op: AluOp, a: u64, b: u64) -> u64 {
    match w {
        Width::W64 => {
            let (x, y) = (a as i64, b as i64);
            (match op {
                AluOp::SDiv if y == 0 => 0,
                AluOp::SDiv if x == i64::MIN && y == -1 => i64::MIN,
                AluOp::SDiv => x / y,
                AluOp::SMod if y == 0 => x,
                AluOp::SMod if y == -1 => 0,
                AluOp::SMod => x % y,
                AluOp::Div if y == 0 => 0,
                AluOp::Div => (a / b) as i64,
                AluOp::Mod if y == 0 => x,
                AluOp::Mod => (a % b) as i64,
                _ => unreachable!(),
            }) as u64
        }
        Width::W32 => {
            let (x, y) = (a as u32 as i32, b as u32 as i32);
            let (ux, uy) = (a as u32, b as u32);
            u64::from(match op {
                AluOp::SDiv if y == 0 => 0,
                AluOp::SDiv if x == i32::MIN && y == -1 => i32::MIN as u32,
                AluOp::SDiv => (x / y) as u32,
                AluOp::SMod if y == 0 => ux,
                AluOp::SMod if y == -1 => 0,
                AluOp::SMod => (x % y) as u32,
                AluOp::Div if uy == 0 => 0,
                AluOp::Div => ux / uy,
                AluOp::Mod if uy == 0 => ux,
                AluOp::Mod => ux % uy,
                _ => unreachable!(),
            })
        }
    }
}

const EDGES: [u64; 16] = [
    0,
    1,
    2,
    3,
    7,
    u64::MAX,
    u64::MAX - 6,
    i64::MIN as u64,
    i64::MAX as u64,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff,
    0xffff_ffff_8000_0000,
    0x1_0000_0007,
    0xdead_beef_f00d_0001,
    0x0000_0001_ffff_fff9,
];

/// Runs `prefix` (setting registers), then the program under test, then `r0 = r1; exit`.
fn run_with(a: u64, b: u64, body: &[Insn]) -> u64 {
    let mut insns = enc(&[lddw(1, a), lddw(2, b)]);
    insns.extend_from_slice(body);
    insns.extend(enc(&[mov64r(0, 1), exit()]));
    vm::run(&insns).expect("run").r0
}

fn blind_everything(insns: &[Insn], seed: u64) -> Vec<Insn> {
    let mut rng = SplitMix64::new(seed);
    rewrite_each(insns, |_, op| blind(op, &mut rng, BlindOptions::default()))
}

fn patch_slots(p: &bpfpatch_patch::PatchBuf) -> Vec<Insn> {
    bpfpatch_passes::internals::emit::check(p).unwrap();
    bpfpatch_passes::internals::emit::to_kernel(p, Some(0)).unwrap()
}

#[test]
fn lowered_signed_division_matches_the_reference() {
    let mut checked = 0;
    for w in [Width::W64, Width::W32] {
        for op in [AluOp::SDiv, AluOp::SMod] {
            // register divisor, distinct registers and dst == src
            for &a in &EDGES {
                for &b in &EDGES {
                    for same in [false, true] {
                        let src = if same { 1 } else { 2 };
                        let orig = alu(w, op, 1, Operand::Reg(r(src)));
                        let p = lower(&orig, Endian::Little).unwrap().unwrap();
                        let body = patch_slots(&p);
                        let want = if same { reference(w, op, a, a) } else { reference(w, op, a, b) };
                        assert_eq!(run_with(a, b, &body), want, "{w:?} {op:?} a={a:#x} b={b:#x} same={same}");
                        // blinding after lowering must not clobber AX
                        let mut full = enc(&[lddw(1, a), lddw(2, b)]);
                        full.extend(body.iter().copied());
                        full.extend(enc(&[mov64r(0, 1), exit()]));
                        let blinded = blind_everything(&full, a ^ b);
                        assert_eq!(vm::run(&blinded).unwrap().r0, want, "blinded {w:?} {op:?} {a:#x} {b:#x}");
                        checked += 1;
                    }
                }
            }
            // immediate divisor
            for k in [0, 1, -1, 2, -2, 3, -7, 7, i32::MIN, i32::MAX, i32::MIN + 1, 0x4000_0000, -0x4000_0000] {
                for &a in &EDGES {
                    let orig = alu(w, op, 1, Operand::Imm(k));
                    let p = lower(&orig, Endian::Little).unwrap().unwrap();
                    let body = patch_slots(&p);
                    let want = reference(w, op, a, i64::from(k) as u64);
                    assert_eq!(run_with(a, 0, &body), want, "{w:?} {op:?} a={a:#x} k={k}");
                    let mut full = enc(&[lddw(1, a), lddw(2, 0)]);
                    full.extend(body.iter().copied());
                    full.extend(enc(&[mov64r(0, 1), exit()]));
                    assert_eq!(vm::run(&blind_everything(&full, a)).unwrap().r0, want, "blinded K");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 2000);
}

#[test]
fn lowered_sign_extensions_and_swaps_match_the_originals() {
    for &v in &EDGES {
        for (w, bits) in [(Width::W64, 8), (Width::W64, 16), (Width::W64, 32), (Width::W32, 8), (Width::W32, 16)] {
            let orig = alu(w, AluOp::MovSx(bits), 1, Operand::Reg(r(2)));
            let want = run_with(0, v, &enc(&[orig]));
            let got = run_with(0, v, &patch_slots(&lower(&orig, Endian::Little).unwrap().unwrap()));
            assert_eq!(got, want, "movsx {w:?} {bits} {v:#x}");
        }
        for bits in [16, 32, 64] {
            let orig = Op::Swap { kind: SwapKind::Bswap, bits, dst: r(1) };
            let want = run_with(v, 0, &enc(&[orig]));
            let got = run_with(v, 0, &patch_slots(&lower(&orig, Endian::Little).unwrap().unwrap()));
            assert_eq!(got, want, "bswap{bits} {v:#x}");
        }
        for size in [Size::B, Size::H, Size::W] {
            let store = stx(Size::DW, 10, -8, 2);
            let orig = Op::Load { size, signed: true, dst: r(1), src: r(10), off: -8 };
            let want = run_with(0, v, &enc(&[store, orig]));
            let mut body = enc(&[store]);
            body.extend(patch_slots(&lower(&orig, Endian::Little).unwrap().unwrap()));
            assert_eq!(run_with(0, v, &body), want, "ldxs{size:?} {v:#x}");
        }
    }
}

#[test]
fn gotol_lowering_keeps_the_target_after_relinearization() {
    // r0 = 1; gotol +2; r0 = 2; r0 = 3; exit  -> 1 (skips both)
    let insns = enc(&[mov64(0, 1), Op::Ja { delta: 2, long: true }, mov64(0, 2), mov64(0, 3), exit()]);
    let lowered = rewrite_each(&insns, |_, op| lower(op, Endian::Little).unwrap());
    assert!(bpfpatch_insn::decode_program(&lowered, Default::default()).unwrap().iter().all(|(_, op)| !uses_v4(op)));
    assert_eq!(vm::run(&lowered).unwrap().r0, 1);
}

#[test]
fn division_guards_preserve_linux_semantics() {
    for w in [Width::W64, Width::W32] {
        for op in [AluOp::Div, AluOp::Mod, AluOp::SDiv, AluOp::SMod] {
            for &a in &EDGES {
                for &b in &EDGES {
                    let orig = alu(w, op, 1, Operand::Reg(r(2)));
                    let body = patch_slots(&div_guard(&orig).unwrap());
                    let want = reference(w, op, a, b);
                    assert_eq!(run_with(a, b, &body), want, "{w:?} {op:?} {a:#x} {b:#x}");
                    let mut full = enc(&[lddw(1, a), lddw(2, b)]);
                    full.extend(body);
                    full.extend(enc(&[mov64r(0, 1), exit()]));
                    assert_eq!(vm::run(&blind_everything(&full, b)).unwrap().r0, want, "blinded guard");
                }
            }
            for k in [-1] {
                if matches!(op, AluOp::SDiv | AluOp::SMod) {
                    for &a in &EDGES {
                        let body = patch_slots(&div_guard(&alu(w, op, 1, Operand::Imm(k))).unwrap());
                        assert_eq!(run_with(a, 0, &body), reference(w, op, a, u64::MAX), "{w:?} {op:?} by -1");
                    }
                }
            }
        }
    }
}

#[test]
fn zext_and_rnd_hi32_sequences_do_what_they_say() {
    let add32 = alu(Width::W32, AluOp::Add, 1, Operand::Reg(r(2)));
    for &a in &EDGES {
        for &b in &EDGES {
            let want = (a.wrapping_add(b)) & 0xffff_ffff;
            assert_eq!(run_with(a, b, &patch_slots(&zext_after(&add32).unwrap())), want);
            let got = run_with(a, b, &patch_slots(&rnd_hi32_after(&add32, 0xdead_beef).unwrap()));
            assert_eq!(got, 0xdead_beef_0000_0000 | want, "rnd hi32 sets the upper half, keeps the lower");
        }
    }
    // On a machine that does not zero-extend, only the zext sequence gives the 64-bit value.
    let run_rnd = |body: &[Insn]| {
        let mut insns = enc(&[lddw(1, 0xffff_ffff_ffff_fff0), lddw(2, 0x20)]);
        insns.extend_from_slice(body);
        insns.extend(enc(&[mov64r(0, 1), exit()]));
        let prog = vm::load(&insns).unwrap();
        vm::run_prog(&prog, bpfpatch_vm::Hi32Mode::Randomize(9), &mut |_, _| {}).unwrap().r0
    };
    assert_eq!(run_rnd(&patch_slots(&zext_after(&add32).unwrap())), 0x10);
    assert_ne!(run_rnd(&enc(&[add32])), 0x10, "without zext the upper half is garbage");
}

#[test]
fn blinding_preserves_semantics_of_random_programs() {
    // The analysis generator's programs (with jumps, calls, memory, ld_imm64), blinded whole.
    let cases = rand_prog::cases(400);
    let mut ran = 0;
    for seed in 0..cases {
        let insns = rand_prog::program(seed, 1 + (seed % 3) as usize, 20);
        let Ok(want) = vm::run(&insns) else { continue };
        let blinded = blind_everything(&insns, seed);
        let got = vm::run(&blinded).unwrap_or_else(|e| panic!("seed {seed}: blinded program failed: {e}"));
        assert_eq!((got.r0, got.ctx), (want.r0, want.ctx), "seed {seed}");
        ran += 1;
    }
    assert!(ran > 0);
}
