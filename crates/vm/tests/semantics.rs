//! Instruction semantics, one behaviour per test, on hand-built programs.
//! Expected values come from RFC 9669 / the Linux interpreter, or from an independent
//! computation (i128 arithmetic) where a property test can check many operands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use bpfpatch_insn::{AluOp, AtomicOp, Cond, Op, Size, SwapKind, Width};
use bpfpatch_vm::{RunError, VmConfig};
use common::*;
use proptest::prelude::*;

const W32: Width = Width::W32;
const W64: Width = Width::W64;

fn binop(width: Width, op: AluOp, a: u64, b: u64) -> u64 {
    r0(&[lddw(R0, a), lddw(R1, b), alur(width, op, R0, R1), EXIT])
}

fn binop_imm(width: Width, op: AluOp, a: u64, imm: i32) -> u64 {
    r0(&[lddw(R0, a), alu(width, op, R0, imm), EXIT])
}

#[test]
fn alu32_zero_extends_and_alu64_does_not() {
    assert_eq!(binop_imm(W32, AluOp::Add, u64::MAX, 1), 0);
    assert_eq!(binop_imm(W32, AluOp::Add, 0xffff_ffff_0000_0001, 1), 2);
    assert_eq!(binop_imm(W64, AluOp::Add, 0xffff_ffff_0000_0001, 1), 0xffff_ffff_0000_0002);
    // mov32 of a negative immediate zero-extends; mov64 sign-extends.
    assert_eq!(r0(&[alu(W32, AluOp::Mov, R0, -1), EXIT]), 0xffff_ffff);
    assert_eq!(r0(&[mov(R0, -1), EXIT]), u64::MAX);
    // mov32 reg copies the low half only.
    assert_eq!(binop(W32, AluOp::Mov, 7, 0x1234_5678_9abc_def0), 0x9abc_def0);
}

#[test]
fn immediates_sign_extend_in_64_bit_ops() {
    assert_eq!(binop_imm(W64, AluOp::And, u64::MAX, -2), u64::MAX - 1);
    assert_eq!(binop_imm(W64, AluOp::Xor, 0, i32::MIN), 0xffff_ffff_8000_0000);
    // Unsigned division by a negative immediate divides by the sign-extended value.
    assert_eq!(binop_imm(W64, AluOp::Div, u64::MAX, -1), 1);
    assert_eq!(binop_imm(W32, AluOp::Div, 0xffff_ffff, -1), 1);
    assert_eq!(binop_imm(W32, AluOp::Div, 0xffff_fffe, -1), 0);
}

#[test]
fn division_by_zero_gives_zero() {
    for w in [W32, W64] {
        assert_eq!(binop(w, AluOp::Div, 1234, 0), 0);
        assert_eq!(binop_imm(w, AluOp::Div, 1234, 0), 0);
        assert_eq!(binop(w, AluOp::SDiv, 1234, 0), 0);
        assert_eq!(binop_imm(w, AluOp::SDiv, 1234, 0), 0);
    }
    // A 32-bit divisor of zero is zero even when the upper half is not.
    assert_eq!(binop(W32, AluOp::Div, 10, 0x1_0000_0000), 0);
}

#[test]
fn modulo_by_zero_leaves_dst_zero_extended_in_32_bit() {
    let a = 0xdead_beef_1234_5678;
    for op in [AluOp::Mod, AluOp::SMod] {
        assert_eq!(binop(W64, op, a, 0), a);
        assert_eq!(binop_imm(W64, op, a, 0), a);
        assert_eq!(binop(W32, op, a, 0), 0x1234_5678);
        assert_eq!(binop_imm(W32, op, a, 0), 0x1234_5678);
    }
}

#[test]
fn signed_division_overflow() {
    let min64 = i64::MIN.cast_unsigned();
    assert_eq!(binop(W64, AluOp::SDiv, min64, u64::MAX), min64);
    assert_eq!(binop_imm(W64, AluOp::SDiv, min64, -1), min64);
    assert_eq!(binop(W64, AluOp::SMod, min64, u64::MAX), 0);
    assert_eq!(binop_imm(W64, AluOp::SMod, min64, -1), 0);
    assert_eq!(binop(W32, AluOp::SDiv, 0x8000_0000, 0xffff_ffff), 0x8000_0000);
    assert_eq!(binop_imm(W32, AluOp::SDiv, 0xffff_ffff_8000_0000, -1), 0x8000_0000);
    assert_eq!(binop(W32, AluOp::SMod, 0x8000_0000, 0xffff_ffff), 0);
}

#[test]
fn signed_division_truncates_toward_zero() {
    assert_eq!(binop_imm(W64, AluOp::SDiv, (-7i64).cast_unsigned(), 2), (-3i64).cast_unsigned());
    assert_eq!(binop_imm(W64, AluOp::SMod, (-7i64).cast_unsigned(), 2), (-1i64).cast_unsigned());
    assert_eq!(binop_imm(W64, AluOp::SMod, 7, -2), 1);
    assert_eq!(binop_imm(W32, AluOp::SDiv, (-7i64).cast_unsigned(), 2), 0xffff_fffd);
    assert_eq!(binop_imm(W32, AluOp::SMod, (-7i64).cast_unsigned(), 2), 0xffff_ffff);
}

/// An independent oracle for the arithmetic: the same operation on i128/u128.
fn oracle(width: Width, op: AluOp, a: u64, b: u64) -> u64 {
    let (a, b, mask) = match width {
        W64 => (a, b, u64::MAX),
        W32 => (a & 0xffff_ffff, b & 0xffff_ffff, 0xffff_ffff),
    };
    let bits = if width == W64 { 64 } else { 32 };
    let sa = if a >> (bits - 1) & 1 == 1 { i128::from(a) - (1i128 << bits) } else { i128::from(a) };
    let sb = if b >> (bits - 1) & 1 == 1 { i128::from(b) - (1i128 << bits) } else { i128::from(b) };
    let r: i128 = match op {
        AluOp::Add => i128::from(a) + i128::from(b),
        AluOp::Sub => i128::from(a) - i128::from(b),
        AluOp::Mul => (u128::from(a) * u128::from(b)).cast_signed(),
        AluOp::Div => a.checked_div(b).map_or(0, i128::from),
        AluOp::Mod => i128::from(a.checked_rem(b).unwrap_or(a)),
        AluOp::SDiv => {
            if sb == 0 {
                0
            } else {
                sa / sb
            }
        }
        AluOp::SMod => {
            if sb == 0 {
                i128::from(a)
            } else {
                sa % sb
            }
        }
        AluOp::Lsh => i128::from(a) << (b % bits),
        AluOp::Rsh => i128::from(a >> (b % bits)),
        AluOp::Arsh => sa >> (b % bits),
        _ => unreachable!(),
    };
    (r.cast_unsigned() as u64) & mask
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn arithmetic_matches_wide_integer_oracle(
        a in prop_oneof![any::<u64>(), Just(i64::MIN.cast_unsigned()), Just(0x8000_0000u64), 0u64..4],
        b in prop_oneof![any::<u64>(), Just(u64::MAX), Just(0xffff_ffffu64), 0u64..4, 60u64..70],
        w in prop_oneof![Just(W32), Just(W64)],
        op in prop_oneof![
            Just(AluOp::Add), Just(AluOp::Sub), Just(AluOp::Mul), Just(AluOp::Div), Just(AluOp::Mod),
            Just(AluOp::SDiv), Just(AluOp::SMod), Just(AluOp::Lsh), Just(AluOp::Rsh), Just(AluOp::Arsh)
        ],
    ) {
        prop_assert_eq!(binop(w, op, a, b), oracle(w, op, a, b), "{:?} {:?} {:#x} {:#x}", w, op, a, b);
    }
}

#[test]
fn shift_amounts_are_masked() {
    assert_eq!(binop(W64, AluOp::Lsh, 1, 65), 2);
    assert_eq!(binop_imm(W64, AluOp::Lsh, 1, 64), 1);
    assert_eq!(binop(W32, AluOp::Lsh, 1, 33), 2);
    assert_eq!(binop(W32, AluOp::Rsh, 0x8000_0000, 0x21), 0x4000_0000);
    assert_eq!(binop(W32, AluOp::Arsh, 0x8000_0000, 1), 0xc000_0000);
    assert_eq!(binop(W64, AluOp::Arsh, i64::MIN.cast_unsigned(), 63), u64::MAX);
    // 32-bit arsh ignores the upper half of dst.
    assert_eq!(binop_imm(W32, AluOp::Arsh, 0xffff_ffff_7fff_ffff, 4), 0x07ff_ffff);
}

#[test]
fn negation() {
    assert_eq!(binop_imm(W64, AluOp::Neg, 1, 0), u64::MAX);
    assert_eq!(binop_imm(W32, AluOp::Neg, 1, 0), 0xffff_ffff);
    assert_eq!(binop_imm(W32, AluOp::Neg, 0x8000_0000, 0), 0x8000_0000);
    assert_eq!(binop_imm(W64, AluOp::Neg, i64::MIN.cast_unsigned(), 0), i64::MIN.cast_unsigned());
}

#[test]
fn byte_swaps() {
    let v = 0x0123_4567_89ab_cdef;
    let sw = |kind, bits| r0(&[lddw(R0, v), Op::Swap { kind, bits, dst: R0 }, EXIT]);
    assert_eq!(sw(SwapKind::Le, 16), 0xcdef);
    assert_eq!(sw(SwapKind::Le, 32), 0x89ab_cdef);
    assert_eq!(sw(SwapKind::Le, 64), v);
    assert_eq!(sw(SwapKind::Be, 16), 0xefcd);
    assert_eq!(sw(SwapKind::Be, 32), 0xefcd_ab89);
    assert_eq!(sw(SwapKind::Be, 64), 0xefcd_ab89_6745_2301);
    assert_eq!(sw(SwapKind::Bswap, 16), 0xefcd);
    assert_eq!(sw(SwapKind::Bswap, 32), 0xefcd_ab89);
    assert_eq!(sw(SwapKind::Bswap, 64), 0xefcd_ab89_6745_2301);
}

#[test]
fn sign_extending_moves() {
    let v = 0x0000_0001_8000_8080;
    assert_eq!(binop(W64, AluOp::MovSx(8), 0, v), 0xffff_ffff_ffff_ff80);
    assert_eq!(binop(W64, AluOp::MovSx(16), 0, v), 0xffff_ffff_ffff_8080);
    assert_eq!(binop(W64, AluOp::MovSx(32), 0, v), 0xffff_ffff_8000_8080);
    assert_eq!(binop(W32, AluOp::MovSx(8), 0, v), 0xffff_ff80);
    assert_eq!(binop(W32, AluOp::MovSx(16), 0, v), 0xffff_8080);
    assert_eq!(binop(W64, AluOp::MovSx(8), 0, 0x7f), 0x7f);
}

#[test]
fn sign_extending_loads() {
    let prog = |size, signed| {
        r0(&[
            lddw(R1, 0x8182_8384_8586_8788),
            stx(Size::DW, R10, -8, R1),
            Op::Load { size, signed, dst: R0, src: R10, off: -8 },
            EXIT,
        ])
    };
    assert_eq!(prog(Size::B, true), 0xffff_ffff_ffff_ff88);
    assert_eq!(prog(Size::H, true), 0xffff_ffff_ffff_8788);
    assert_eq!(prog(Size::W, true), 0xffff_ffff_8586_8788);
    assert_eq!(prog(Size::B, false), 0x88);
    assert_eq!(prog(Size::H, false), 0x8788);
    assert_eq!(prog(Size::W, false), 0x8586_8788);
    assert_eq!(prog(Size::DW, false), 0x8182_8384_8586_8788);
}

#[test]
fn stores_truncate_and_store_immediates_sign_extend() {
    assert_eq!(r0(&[st(Size::DW, R10, -8, -2), ldx(Size::DW, R0, R10, -8), EXIT]), u64::MAX - 1);
    assert_eq!(
        r0(&[
            st(Size::DW, R10, -8, 0),
            lddw(R1, u64::MAX),
            stx(Size::H, R10, -8, R1),
            ldx(Size::DW, R0, R10, -8),
            EXIT
        ]),
        0xffff
    );
    // Little-endian layout.
    assert_eq!(r0(&[st(Size::W, R10, -8, 0x1122_3344), ldx(Size::B, R0, R10, -8), EXIT]), 0x44);
}

/// Runs `atomic op [r10-8], r1` with memory `old` and r1 = `v`, r0 = `r0v`;
/// returns (memory after, r1 after, r0 after).
fn atomic_run(size: Size, op: AtomicOp, old: u64, v: u64, r0v: u64) -> (u64, u64, u64) {
    let prog = [
        lddw(R2, old),
        stx(Size::DW, R10, -8, R2),
        lddw(R1, v),
        lddw(R0, r0v),
        atomic(size, op, R10, -8, R1),
        // Pack the three results: memory to r3, then r0 into r4, r1 into r5 via the stack.
        stx(Size::DW, R10, -16, R0),
        stx(Size::DW, R10, -24, R1),
        ldx(Size::DW, R0, R10, -8),
        EXIT,
    ];
    let mem = r0(&prog);
    let mut r1_prog = prog.to_vec();
    let n = r1_prog.len();
    r1_prog[n - 2] = ldx(Size::DW, R0, R10, -24);
    let r1 = r0(&r1_prog);
    r1_prog[n - 2] = ldx(Size::DW, R0, R10, -16);
    let r0v_after = r0(&r1_prog);
    (mem, r1, r0v_after)
}

#[test]
fn atomic_read_modify_write() {
    let old = 0xffff_0000_f0f0_1234_u64;
    let v = 0x0f0f_0000_0f0f_0001_u64;
    let hi = old & 0xffff_ffff_0000_0000;
    for fetch in [false, true] {
        type Case = (fn(bool) -> AtomicOp, fn(u64, u64) -> u64);
        let cases: [Case; 4] = [
            (|f| AtomicOp::Add { fetch: f }, |a, b| a.wrapping_add(b)),
            (|f| AtomicOp::Or { fetch: f }, |a, b| a | b),
            (|f| AtomicOp::And { fetch: f }, |a, b| a & b),
            (|f| AtomicOp::Xor { fetch: f }, |a, b| a ^ b),
        ];
        for (mk, f) in cases {
            let (m, r1, _) = atomic_run(Size::DW, mk(fetch), old, v, 0);
            assert_eq!(m, f(old, v), "{:?}", mk(fetch));
            assert_eq!(r1, if fetch { old } else { v });
            // 32-bit: only the low word changes; the fetched value is zero-extended.
            let (m, r1, _) = atomic_run(Size::W, mk(fetch), old, v, 0);
            assert_eq!(m, hi | (f(old, v) & 0xffff_ffff), "{:?} W", mk(fetch));
            assert_eq!(r1, if fetch { old & 0xffff_ffff } else { v });
        }
    }
    // Add carries do not leak out of a 32-bit atomic.
    let (m, _, _) = atomic_run(Size::W, AtomicOp::Add { fetch: false }, 0x0000_0005_ffff_ffff, 1, 0);
    assert_eq!(m, 0x0000_0005_0000_0000);
}

#[test]
fn atomic_exchange_and_compare_exchange() {
    let (m, r1, _) = atomic_run(Size::DW, AtomicOp::Xchg, 11, 22, 0);
    assert_eq!((m, r1), (22, 11));
    let (m, r1, _) = atomic_run(Size::W, AtomicOp::Xchg, 0xaaaa_aaaa_0000_0011, 0xbbbb_bbbb_0000_0022, 0);
    assert_eq!((m, r1), (0xaaaa_aaaa_0000_0022, 0x11));
    // cmpxchg: equal -> store, r0 = old; different -> no store, r0 = old.
    let (m, r1, r0v) = atomic_run(Size::DW, AtomicOp::Cmpxchg, 5, 9, 5);
    assert_eq!((m, r1, r0v), (9, 9, 5));
    let (m, _, r0v) = atomic_run(Size::DW, AtomicOp::Cmpxchg, 5, 9, 6);
    assert_eq!((m, r0v), (5, 5));
    // 32-bit compares the low half of r0 and zero-extends r0.
    let (m, _, r0v) = atomic_run(Size::W, AtomicOp::Cmpxchg, 0x7777_7777_0000_0005, 9, 0xffff_ffff_0000_0005);
    assert_eq!((m, r0v), (0x7777_7777_0000_0009, 5));
    let (m, _, r0v) = atomic_run(Size::W, AtomicOp::Cmpxchg, 0x7777_7777_0000_0005, 9, 6);
    assert_eq!((m, r0v), (0x7777_7777_0000_0005, 5));
}

/// 1 if the jump is taken, else 0.
fn taken(width: Width, cond: Cond, a: u64, b: Result<u64, i32>) -> u64 {
    let j = match b {
        Ok(_) => jmpr(width, cond, R1, R2, 2),
        Err(imm) => jmp(width, cond, R1, imm, 2),
    };
    r0(&[lddw(R1, a), lddw(R2, b.unwrap_or(0)), j, mov(R0, 0), EXIT, mov(R0, 1), EXIT])
}

#[test]
fn conditional_jumps() {
    use Cond::*;
    let m1 = u64::MAX;
    let cases: &[(Cond, u64, u64, u64)] = &[
        (Eq, 3, 3, 1),
        (Eq, 3, 4, 0),
        (Ne, 3, 4, 1),
        (Gt, m1, 1, 1),
        (Sgt, m1, 1, 0),
        (Ge, 2, 2, 1),
        (Lt, 1, m1, 1),
        (Slt, m1, 1, 1),
        (Le, 2, 2, 1),
        (Sle, 2, m1, 0),
        (Sge, 0, m1, 1),
        (Set, 6, 2, 1),
        (Set, 6, 1, 0),
    ];
    for &(c, a, b, want) in cases {
        assert_eq!(taken(W64, c, a, Ok(b)), want, "{c:?} {a:#x} {b:#x}");
    }
    // JMP32 compares only the low halves.
    assert_eq!(taken(W32, Eq, 0x1_0000_0000, Ok(0)), 1);
    assert_eq!(taken(W64, Eq, 0x1_0000_0000, Ok(0)), 0);
    assert_eq!(taken(W32, Slt, 0x0000_0000_8000_0000, Ok(0)), 1);
    assert_eq!(taken(W64, Slt, 0x0000_0000_8000_0000, Ok(0)), 0);
    // 64-bit immediates are sign-extended; 32-bit ones compare with the low half.
    assert_eq!(taken(W64, Eq, m1, Err(-1)), 1);
    assert_eq!(taken(W64, Gt, m1 - 1, Err(-1)), 0);
    assert_eq!(taken(W32, Eq, 0xffff_ffff, Err(-1)), 1);
    assert_eq!(taken(W32, Sgt, 0, Err(-1)), 1);
    assert_eq!(taken(W64, Set, 0x8000_0000_0000_0000, Err(i32::MIN)), 1);
}

#[test]
fn gotol_jumps_both_ways() {
    // 0: mov r0,1; 1: gotol +2 (to 4); 2: mov r0,2; 3: exit; 4: add r0,10; 5: gotol -4 (to 2)
    let prog = [
        mov(R0, 1),
        Op::Ja { delta: 2, long: true },
        add(R0, 100),
        EXIT,
        add(R0, 10),
        Op::Ja { delta: -4, long: true },
    ];
    assert_eq!(r0(&prog), 111);
}

/// 0: r0 = 0; 1: may_goto +2; 2: r0 += 1; 3: goto -3; 4: exit — counts the fall-throughs.
fn may_goto_loop() -> Vec<Op> {
    vec![mov(R0, 0), Op::MayGoto { off: 2 }, add(R0, 1), ja(-3), EXIT]
}

#[test]
fn may_goto_falls_through_while_budget_lasts_then_jumps() {
    for b in [0u64, 1, 5] {
        let out = run_with(&may_goto_loop(), VmConfig::default().with_may_goto_budget(b), &mut []).unwrap();
        assert_eq!(out.r0, b);
        assert_eq!(out.executed, 1 + 3 * b + 2);
    }
}

#[test]
fn may_goto_default_budget_is_bpf_max_loops() {
    let out = run_with(&may_goto_loop(), VmConfig::default(), &mut []).unwrap();
    assert_eq!(out.r0, 8 * 1024 * 1024);
}

#[test]
fn may_goto_budget_is_per_frame_and_reset_on_entry() {
    // 0: call 6; 1: r6 = r0; 2: call 6; 3: r0 += r6; 4: exit; 5: padding; 6..: the counting loop.
    let mut prog = vec![call_local(5), movr(R6, R0), call_local(3), alur(W64, AluOp::Add, R0, R6), EXIT, mov(R9, 0)];
    prog.extend(may_goto_loop());
    let out = run_with(&prog, VmConfig::default().with_may_goto_budget(3), &mut []).unwrap();
    assert_eq!(out.r0, 6, "each call starts with a full budget");
    // The caller's budget is its own: 0: call 7; 1..5: counting loop in main; 6: padding; 7..: callee loop.
    let mut p2 = vec![call_local(6), mov(R0, 0), Op::MayGoto { off: 2 }, add(R0, 1), ja(-3), EXIT, mov(R9, 0)];
    p2.extend(may_goto_loop());
    let out = run_with(&p2, VmConfig::default().with_may_goto_budget(4), &mut []).unwrap();
    assert_eq!(out.r0, 4, "the callee's loop does not consume the caller's budget");
}

#[test]
fn instruction_budget_stops_runaway_loops() {
    let err = run_with(&[mov(R0, 0), add(R0, 1), ja(-2)], VmConfig::default().with_budget(1000), &mut []).unwrap_err();
    match err {
        RunError::Budget { slot, budget } => {
            assert_eq!(budget, 1000);
            assert!(slot.0 == 1 || slot.0 == 2);
        }
        e => panic!("{e}"),
    }
    let out = run_with(&[mov(R0, 0), EXIT], VmConfig::default().with_budget(2), &mut []).unwrap();
    assert_eq!(out.executed, 2);
    assert!(run_with(&[mov(R0, 0), EXIT], VmConfig::default().with_budget(1), &mut []).is_err());
}

#[test]
fn ld_imm64_loads_both_halves() {
    assert_eq!(r0(&[lddw(R0, 0x1122_3344_8899_aabb), EXIT]), 0x1122_3344_8899_aabb);
    assert_eq!(r0(&[lddw(R0, 0xffff_ffff), EXIT]), 0xffff_ffff);
}

#[test]
fn kernel_internal_forms_run_when_loaded_as_internal() {
    // Constant blinding of `mov r0, 42`: AX = 42 ^ k; AX ^= k; r0 = AX.
    let k = 0x5a5a_1234;
    let prog = [
        alu(W64, AluOp::Mov, AX, 42 ^ k),
        alu(W64, AluOp::Xor, AX, k),
        movr(R0, AX),
        Op::Nospec,
        mov(R3, 0),
        Op::TailCall,
        EXIT,
    ];
    assert_eq!(r0(&prog), 42);
    assert!(load(&prog).is_err(), "user programs must not name AX");
}

#[test]
fn kernel_zext_clears_the_upper_half() {
    // BPF_ZEXT_REG: the marked mov32 the zext pass inserts (loaded with internal forms allowed).
    assert_eq!(r0(&[lddw(R0, 0xdead_beef_1234_5678), Op::Zext { dst: R0 }, EXIT]), 0x1234_5678);
}
