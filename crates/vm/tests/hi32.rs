//! The high-half randomizing mode (`Hi32Mode::Randomize`, the kernel's `BPF_F_TEST_RND_HI32`
//! machine) and the per-instruction observer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use bpfpatch_insn::{AluOp, AtomicOp, Op, Size, SwapKind, Width};
use bpfpatch_vm::{Hi32Mode, Input, Vm, VmConfig};
use common::*;

const W32: Width = Width::W32;
const W64: Width = Width::W64;

/// `setup` (which leaves its result in r6), then r0 = r6.
fn result(setup: &[Op], mode: Hi32Mode, mem: &mut [u8]) -> u64 {
    let mut ops = setup.to_vec();
    ops.extend([movr(R0, R6), EXIT]);
    run_with(&ops, VmConfig::default().with_hi32(mode), mem).unwrap().r0
}

/// Every kind of definition of r6 (after r6 = r7 = 0x1_8000_00f1 and mem = 0xf1 0xf2 ...):
/// the program, its low 32 bits, and whether it is a 32-bit definition.
fn definitions() -> Vec<(&'static str, Vec<Op>, bool)> {
    let pre = vec![lddw(R6, 0x1_8000_00f1), movr(R7, R6)];
    let with = |more: &[Op]| {
        let mut v = pre.clone();
        v.extend_from_slice(more);
        v
    };
    let swap = |kind, bits| Op::Swap { kind, bits, dst: R6 };
    let mut out = vec![
        ("add32 imm", with(&[alu(W32, AluOp::Add, R6, 1)]), true),
        ("add32 reg", with(&[alur(W32, AluOp::Add, R6, R7)]), true),
        ("mov32 imm", with(&[alu(W32, AluOp::Mov, R6, -1)]), true),
        ("mov32 r6, r6", with(&[alur(W32, AluOp::Mov, R6, R6)]), true),
        ("movsx32", with(&[alur(W32, AluOp::MovSx(8), R6, R7)]), true),
        ("neg32", with(&[alu(W32, AluOp::Neg, R6, 0)]), true),
        ("lsh32", with(&[alu(W32, AluOp::Lsh, R6, 4)]), true),
        ("rsh32", with(&[alu(W32, AluOp::Rsh, R6, 4)]), true),
        ("arsh32", with(&[alu(W32, AluOp::Arsh, R6, 4)]), true),
        ("lsh32 reg", with(&[mov(R7, 3), alur(W32, AluOp::Lsh, R6, R7)]), true),
        ("div32", with(&[alu(W32, AluOp::Div, R6, 3)]), true),
        ("le16", with(&[swap(SwapKind::Le, 16)]), true),
        ("le32", with(&[swap(SwapKind::Le, 32)]), true),
        ("be16", with(&[swap(SwapKind::Be, 16)]), true),
        ("be32", with(&[swap(SwapKind::Be, 32)]), true),
        ("bswap16", with(&[swap(SwapKind::Bswap, 16)]), true),
        ("bswap32", with(&[swap(SwapKind::Bswap, 32)]), true),
        // Loads from the stack; the context (the input area r1 points to) is the exception below.
        ("ldxb", with(&[stx(Size::DW, R10, -8, R7), ldx(Size::B, R6, R10, -8)]), true),
        ("ldxh", with(&[stx(Size::DW, R10, -8, R7), ldx(Size::H, R6, R10, -8)]), true),
        ("ldxw", with(&[stx(Size::DW, R10, -8, R7), ldx(Size::W, R6, R10, -8)]), true),
        // A load from the context is not randomized, as the kernel leaves context loads alone.
        ("ldxw from the context", with(&[ldx(Size::W, R6, R1, 0)]), false),
        (
            "atomic fetch_add w",
            with(&[stx(Size::DW, R10, -8, R7), atomic(Size::W, AtomicOp::Add { fetch: true }, R10, -8, R6)]),
            true,
        ),
        ("xchg w", with(&[stx(Size::DW, R10, -8, R7), atomic(Size::W, AtomicOp::Xchg, R10, -8, R6)]), true),
        (
            "cmpxchg w",
            with(&[
                mov(R0, 0),
                stx(Size::DW, R10, -8, R7),
                atomic(Size::W, AtomicOp::Cmpxchg, R10, -8, R7),
                movr(R6, R0),
            ]),
            true,
        ),
        // 64-bit definitions: exact in both modes.
        ("add64", with(&[alu(W64, AluOp::Add, R6, 1)]), false),
        ("mov64", with(&[alur(W64, AluOp::Mov, R6, R7)]), false),
        ("movsx64", with(&[alur(W64, AluOp::MovSx(32), R6, R7)]), false),
        ("lsh64", with(&[alu(W64, AluOp::Lsh, R6, 4)]), false),
        ("le64", with(&[swap(SwapKind::Le, 64)]), false),
        ("be64", with(&[swap(SwapKind::Be, 64)]), false),
        ("bswap64", with(&[swap(SwapKind::Bswap, 64)]), false),
        ("ldxdw", with(&[ldx(Size::DW, R6, R1, 0)]), false),
        ("ldxsb", with(&[ldxs(Size::B, R6, R1, 0)]), false),
        ("ldxsw", with(&[ldxs(Size::W, R6, R1, 0)]), false),
        ("lddw", with(&[lddw(R6, 0xdead_beef_0000_0001)]), false),
        (
            "atomic fetch_add dw",
            with(&[stx(Size::DW, R10, -8, R7), atomic(Size::DW, AtomicOp::Add { fetch: true }, R10, -8, R6)]),
            false,
        ),
        // A 32-bit definition followed by the explicit zero-extension.
        ("lsh32; zext", with(&[alu(W32, AluOp::Lsh, R6, 4), Op::Zext { dst: R6 }]), false),
        ("ldxw; zext", with(&[stx(Size::DW, R10, -8, R7), ldx(Size::W, R6, R10, -8), Op::Zext { dst: R6 }]), false),
        ("zext of a 64-bit value", with(&[Op::Zext { dst: R6 }]), false),
        // A 32-bit definition overwritten by a 64-bit one.
        ("mov32; add64", with(&[alu(W32, AluOp::Mov, R6, 5), alu(W64, AluOp::Mov, R6, 7)]), false),
    ];
    // A 32-bit definition of another register leaves r6 alone.
    out.push(("mov32 r7", with(&[alu(W32, AluOp::Mov, R7, 5)]), false));
    out
}

fn mem() -> Vec<u8> {
    (0..16u8).map(|i| 0xf1u8.wrapping_add(i)).collect()
}

#[test]
fn randomize_fills_the_upper_half_of_exactly_the_32_bit_definitions() {
    for (name, ops, def32) in definitions() {
        let want = result(&ops, Hi32Mode::ZeroExtend, &mut mem());
        if def32 {
            assert_eq!(want >> 32, 0, "{name}: 32-bit definitions zero-extend by default");
        }
        let mut uppers = Vec::new();
        for seed in 0..8 {
            let got = result(&ops, Hi32Mode::Randomize(seed), &mut mem());
            assert_eq!(got as u32, want as u32, "{name}: the low half is the value");
            if def32 {
                uppers.push(got >> 32);
            } else {
                assert_eq!(got, want, "{name} (seed {seed}): not a 32-bit definition of r6");
            }
        }
        if def32 {
            uppers.sort_unstable();
            uppers.dedup();
            assert!(uppers.len() >= 7, "{name}: upper halves are random: {uppers:x?}");
        }
    }
}

#[test]
fn randomize_is_reproducible_per_seed_and_differs_between_seeds() {
    let ops = [mov(R6, 1), alu(W32, AluOp::Lsh, R6, 31)];
    let a = result(&ops, Hi32Mode::Randomize(42), &mut []);
    assert_eq!(a, result(&ops, Hi32Mode::Randomize(42), &mut []));
    assert_ne!(a, result(&ops, Hi32Mode::Randomize(43), &mut []));
    assert_eq!(result(&ops, Hi32Mode::ZeroExtend, &mut []), 0x8000_0000);
    assert_eq!(VmConfig::default().hi32, Hi32Mode::ZeroExtend);
}

/// The generator is SplitMix64, as documented: the upper halves are the low 32 bits of its
/// outputs in order. Reference outputs for seed 1234567 (Rosetta Code, "Pseudo-random
/// numbers/Splitmix64"): 6457827717110365317, 3203168211198807973, 9817491932198370423.
#[test]
fn randomize_is_the_splitmix64_stream() {
    let want: [u64; 3] = [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423];
    for (n, &z) in want.iter().enumerate() {
        // n 32-bit definitions of r7, then the (n + 1)th, of r6.
        let mut ops = vec![alu(W32, AluOp::Mov, R7, 9); n];
        ops.push(alu(W32, AluOp::Mov, R6, 5));
        assert_eq!(result(&ops, Hi32Mode::Randomize(1_234_567), &mut []), (z << 32) | 5, "output {n}");
    }
}

#[test]
fn reads_of_the_low_half_do_not_see_the_garbage() {
    // mov32 r6, -1; jmp32 / stxw / add32 read only the low half: same results in both modes.
    let ops = [
        alu(W32, AluOp::Mov, R6, -1),
        alu(W32, AluOp::Add, R6, 2), // r6 = 1 (32-bit)
        stx(Size::W, R10, -8, R6),
        st(Size::W, R10, -4, 0),
        ldx(Size::DW, R7, R10, -8),
        jmp(W32, bpfpatch_insn::Cond::Ne, R6, 1, 1),
        alu(W64, AluOp::Add, R7, 10),
        movr(R6, R7),
    ];
    for seed in 0..4 {
        assert_eq!(result(&ops, Hi32Mode::Randomize(seed), &mut []), 11);
    }
}

#[test]
fn packet_loads_define_r0_as_32_bits() {
    let mut packet = [0x12u8, 0x34, 0x56, 0x78];
    let ops = [movr(R6, R1), Op::LdPacket { size: Size::H, index: None, imm: 1 }, EXIT];
    let prog = load_internal(&ops).unwrap();
    let run = |mode, packet: &mut [u8]| {
        let mut vm = Vm::new(VmConfig::default().with_hi32(mode)).unwrap();
        vm.run(&prog, Input { mem: &mut [], packet }).unwrap().r0
    };
    assert_eq!(run(Hi32Mode::ZeroExtend, &mut packet), 0x3456);
    let got = run(Hi32Mode::Randomize(7), &mut packet);
    assert_eq!(got as u32, 0x3456);
    assert_ne!(got >> 32, 0);
}

#[test]
fn the_observer_sees_every_executed_instruction_before_it_runs() {
    // 0: r0 = 1; 1: lddw r2 (one instruction); 2: if r0 == 1 goto 4; 3: r0 = 9; 4: r0 += r2; 5: exit
    let ops = [
        mov(R0, 1),
        lddw(R2, 0x1_0000_0000),
        jmp(W64, bpfpatch_insn::Cond::Eq, R0, 1, 1),
        mov(R0, 9),
        add(R0, 1),
        EXIT,
    ];
    let prog = load(&ops).unwrap();
    let mut vm = Vm::new(VmConfig::default()).unwrap();
    let mut seen: Vec<(usize, u64, u64)> = Vec::new();
    let mut obs = |i: usize, regs: &[u64; 16]| seen.push((i, regs[0], regs[2]));
    let out = vm.run_observed(&prog, Input::default(), &mut obs).unwrap();
    assert_eq!(out.r0, 2);
    assert_eq!(out.executed, 5);
    assert_eq!(seen, vec![(0, 0, 0), (1, 1, 0), (2, 1, 0x1_0000_0000), (4, 1, 0x1_0000_0000), (5, 2, 0x1_0000_0000)]);
    // The same run without an observer.
    assert_eq!(vm.run(&prog, Input::default()).unwrap(), out);
}
