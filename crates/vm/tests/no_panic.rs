//! Robustness: random programs — every instruction form including cpu v4, atomics, calls,
//! `may_goto`, kernel-internal forms, and random raw slots — never panic the loader or the
//! interpreter; errors are fine. Loops are bounded by the instruction budget.
//!
//! Cases: `BPFPATCH_FUZZ_CASES` (default 1000 per test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use bpfpatch_insn::{AluOp, AtomicOp, CallKind, Cond, Insn, LdImm64Kind, Op, Operand, Reg, Size, SwapKind, Width};
use bpfpatch_vm::{
    HelperError, HelperReturn, Input, LoadOptions, LoadedProgram, Memory, RunError, Unwind, Vm, VmConfig,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases() -> u32 {
    std::env::var("BPFPATCH_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

fn reg() -> impl Strategy<Value = Reg> {
    prop_oneof![
        4 => (0u8..=9).prop_map(|n| Reg::new(n).unwrap()),
        1 => Just(Reg::R10),
        1 => Just(Reg::AX),
    ]
}

/// A destination: rarely r10 (the loader rejects writes to it).
fn dst() -> impl Strategy<Value = Reg> {
    prop_oneof![
        60 => (0u8..=9).prop_map(|n| Reg::new(n).unwrap()),
        6 => Just(Reg::AX),
        1 => Just(Reg::R10),
    ]
}

fn base() -> impl Strategy<Value = Reg> {
    prop_oneof![3 => Just(Reg::R10), 2 => Just(Reg::R1), 1 => reg()]
}

fn imm() -> impl Strategy<Value = i32> {
    prop_oneof![3 => -16i32..64, 1 => any::<i32>(), 1 => Just(i32::MIN), 1 => Just(-1)]
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![reg().prop_map(Operand::Reg), imm().prop_map(Operand::Imm)]
}

fn width() -> impl Strategy<Value = Width> {
    prop_oneof![Just(Width::W32), Just(Width::W64)]
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![Just(Size::B), Just(Size::H), Just(Size::W), Just(Size::DW)]
}

fn alu_op() -> impl Strategy<Value = AluOp> {
    prop_oneof![
        Just(AluOp::Add),
        Just(AluOp::Sub),
        Just(AluOp::Mul),
        Just(AluOp::Div),
        Just(AluOp::SDiv),
        Just(AluOp::Or),
        Just(AluOp::And),
        Just(AluOp::Lsh),
        Just(AluOp::Rsh),
        Just(AluOp::Neg),
        Just(AluOp::Mod),
        Just(AluOp::SMod),
        Just(AluOp::Xor),
        Just(AluOp::Mov),
        prop_oneof![Just(8u8), Just(16), Just(32)].prop_map(AluOp::MovSx),
        Just(AluOp::Arsh),
    ]
}

fn atomic_op() -> impl Strategy<Value = AtomicOp> {
    prop_oneof![
        any::<bool>().prop_map(|fetch| AtomicOp::Add { fetch }),
        any::<bool>().prop_map(|fetch| AtomicOp::Or { fetch }),
        any::<bool>().prop_map(|fetch| AtomicOp::And { fetch }),
        any::<bool>().prop_map(|fetch| AtomicOp::Xor { fetch }),
        Just(AtomicOp::Xchg),
        Just(AtomicOp::Cmpxchg),
    ]
}

fn off() -> impl Strategy<Value = i16> {
    prop_oneof![6 => 0i16..4, 2 => -4i16..0, 1 => any::<i16>()]
}

fn mem_off() -> impl Strategy<Value = i16> {
    prop_oneof![4 => -520i16..80, 1 => any::<i16>()]
}

fn op() -> impl Strategy<Value = Op> {
    let alu = (width(), alu_op(), dst(), operand()).prop_map(|(width, op, dst, src)| {
        let (op, src) = match (op, src) {
            (AluOp::Neg, _) => (op, Operand::Imm(0)),
            // movsx has only a register form, and movsx32 only in 64 bits.
            (AluOp::MovSx(_), Operand::Imm(_)) => (AluOp::Mov, src),
            (AluOp::MovSx(32), _) if width == Width::W32 => (AluOp::MovSx(16), src),
            _ => (op, src),
        };
        Op::Alu { width, op, dst, src }
    });
    let swap = (
        prop_oneof![Just(SwapKind::Le), Just(SwapKind::Be), Just(SwapKind::Bswap)],
        prop_oneof![Just(16u8), Just(32), Just(64)],
        dst(),
    )
        .prop_map(|(kind, bits, dst)| Op::Swap { kind, bits, dst });
    let ldimm = (
        dst(),
        prop_oneof![4 => Just(LdImm64Kind::Imm), 1 => Just(LdImm64Kind::Func), 1 => Just(LdImm64Kind::MapFd)],
        imm(),
        any::<i32>(),
    )
        .prop_map(|(dst, kind, lo, hi)| Op::LdImm64 { dst, kind, lo, hi });
    let packet = (prop_oneof![Just(Size::B), Just(Size::H), Just(Size::W)], proptest::option::of(reg()), imm())
        .prop_map(|(size, index, imm)| Op::LdPacket { size, index, imm });
    let load = (size(), any::<bool>(), dst(), base(), mem_off()).prop_map(|(size, signed, dst, src, off)| Op::Load {
        size,
        signed: signed && size != Size::DW,
        dst,
        src,
        off,
    });
    let store =
        (size(), base(), mem_off(), operand()).prop_map(|(size, dst, off, src)| Op::Store { size, dst, off, src });
    let atomic = (prop_oneof![Just(Size::W), Just(Size::DW)], atomic_op(), base(), dst(), mem_off())
        .prop_map(|(size, op, dst, src, off)| Op::Atomic { size, op, dst, src, off });
    let jump = (width(), proptest::sample::select(Cond::ALL.to_vec()), reg(), operand(), off())
        .prop_map(|(width, cond, dst, src, off)| Op::Jump { width, cond, dst, src, off });
    let ja = (off(), any::<bool>()).prop_map(|(d, long)| Op::Ja { delta: d.into(), long });
    let call = prop_oneof![
        prop_oneof![Just(1), Just(5), Just(7), any::<i32>()].prop_map(|id| Op::Call(CallKind::Helper(id))),
        prop_oneof![3 => 0i32..4, 1 => -4i32..0].prop_map(|d| Op::Call(CallKind::Local(d))),
        any::<i32>().prop_map(|btf_id| Op::Call(CallKind::Kfunc { btf_id, module: 0 })),
        reg().prop_map(Op::Callx),
    ];
    prop_oneof![
        8 => alu,
        1 => swap,
        1 => ldimm,
        1 => packet,
        3 => load,
        3 => store,
        2 => atomic,
        3 => jump,
        1 => ja,
        2 => call,
        2 => Just(Op::Exit),
        1 => off().prop_map(|off| Op::MayGoto { off }),
        1 => Just(Op::TailCall),
        1 => Just(Op::Nospec),
    ]
}

fn run_everything(slots: &[Insn], mem: &mut [u8], packet: &mut [u8], stats: &mut Stats) {
    for opts in [LoadOptions::INTERNAL, LoadOptions::INTERNAL.with_check_uninit(false), LoadOptions::default()] {
        let Ok(prog) = LoadedProgram::load(slots, &opts) else {
            stats.rejected += 1;
            continue;
        };
        let config = VmConfig::default().with_budget(5_000).with_may_goto_budget(3).with_max_frames(4);
        let mut vm = Vm::new(config).unwrap();
        vm.register_helper(5, Unwind);
        vm.register_helper(1, |a: [u64; 5], m: &mut Memory<'_>| -> Result<HelperReturn, HelperError> {
            let mut buf = [0u8; 8];
            m.read(a[0], &mut buf)?;
            m.write(a[1], &buf[..(a[2] % 9) as usize])?;
            Ok(HelperReturn::Value(u64::from_le_bytes(buf)))
        });
        let mut m = mem.to_vec();
        let mut p = packet.to_vec();
        match vm.run(&prog, Input { mem: &mut m, packet: &mut p }) {
            Ok(_) => stats.completed += 1,
            Err(RunError::Budget { .. }) => stats.budget += 1,
            Err(_) => stats.faulted += 1,
        }
    }
}

#[derive(Default, Debug)]
struct Stats {
    rejected: u64,
    completed: u64,
    faulted: u64,
    budget: u64,
}

#[test]
fn random_typed_programs_never_panic() {
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let strategy = (
        proptest::collection::vec(op(), 1..40),
        proptest::bool::weighted(0.9),
        proptest::collection::vec(any::<u8>(), 0..48),
        proptest::collection::vec(any::<u8>(), 0..16),
    );
    let stats = std::cell::RefCell::new(Stats::default());
    runner
        .run(&strategy, |(ops, end_with_exit, mut mem, mut packet)| {
            let mut slots: Vec<Insn> = ops.iter().flat_map(|op| op.encode().to_vec()).collect();
            if end_with_exit {
                slots.push(Op::Exit.encode().first());
            }
            run_everything(&slots, &mut mem, &mut packet, &mut stats.borrow_mut());
            Ok(())
        })
        .unwrap();
    let s = stats.into_inner();
    eprintln!("{s:?}");
    // The generator must reach the interpreter, not only the loader, in every way a run ends.
    assert!(s.completed > u64::from(cases()) / 20, "{s:?}");
    assert!(s.faulted > u64::from(cases()) / 20, "{s:?}");
    assert!(s.budget > 0, "{s:?}");
}

#[test]
fn random_raw_slots_never_panic() {
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    // Typed programs with random bit flips and random words spliced in: mostly near-valid input.
    let strategy = (
        proptest::collection::vec(op(), 1..24),
        proptest::collection::vec((any::<usize>(), 0u32..64), 0..4),
        proptest::collection::vec((any::<usize>(), any::<u64>()), 0..2),
    );
    let stats = std::cell::RefCell::new(Stats::default());
    runner
        .run(&strategy, |(ops, flips, words)| {
            let mut slots: Vec<Insn> = ops.iter().flat_map(|op| op.encode().to_vec()).collect();
            slots.push(Op::Exit.encode().first());
            for (at, bit) in flips {
                let i = at % slots.len();
                slots[i] = Insn::from_word(slots[i].to_word() ^ (1 << bit));
            }
            for (at, w) in words {
                let i = at % (slots.len() + 1);
                slots.insert(i, Insn::from_word(w));
            }
            run_everything(&slots, &mut [0u8; 16], &mut [1, 2, 3, 4], &mut stats.borrow_mut());
            Ok(())
        })
        .unwrap();
    let s = stats.into_inner();
    eprintln!("{s:?}");
    assert!(s.completed + s.faulted > u64::from(cases()) / 20, "{s:?}");
}
