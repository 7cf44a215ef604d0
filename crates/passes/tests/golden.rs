//! Golden tests: each generator's exact output next to the kernel's sequence, written with
//! the kernel's own macros (include/linux/filter.h) spelled out as raw fields below, independently
//! of the generators' constructors. Sources: kernel-patching.md §4 (blinding), §6 (do_misc_fixups,
//! convert_ctx_accesses), §7 (zext / rnd_hi32), and the 6.12 verifier.c text.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::opcode::*;
use bpfpatch_insn::{
    AluOp, AtomicOp, CallKind, Cond, Endian, Insn, LdImm64Kind, Op, Operand, Reg, Size, SwapKind, Width,
};
use bpfpatch_passes::internals::blind::{BlindOptions, BlindRng, blind, blind_ld_imm64};
use bpfpatch_passes::internals::ctx::{CtxError, convert, example_layout};
use bpfpatch_passes::internals::emit::{Emit, RewriteError, check, targets, to_kernel};
use bpfpatch_passes::internals::fixups::*;
use bpfpatch_passes::internals::lower_v4::lower;
use bpfpatch_passes::internals::zext::{kernel_zext_reg, rnd_hi32_after, zext_after};
use bpfpatch_patch::{PatchBuf, Target};
use common::r;

// ---- the kernel's macros, as raw slots ------------------------------------------------------
const AX: u8 = 11;
const FP: u8 = 10;
fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn::new(code, dst, src, off, imm)
}
#[allow(non_snake_case)]
fn BPF_ALU64_IMM(op: u8, dst: u8, imm: i32) -> Insn {
    raw(ALU64 | op | K, dst, 0, 0, imm)
}
#[allow(non_snake_case)]
fn BPF_ALU32_IMM(op: u8, dst: u8, imm: i32) -> Insn {
    raw(ALU | op | K, dst, 0, 0, imm)
}
#[allow(non_snake_case)]
fn BPF_ALU64_REG_OFF(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    raw(ALU64 | op | X, dst, src, off, 0)
}
#[allow(non_snake_case)]
fn BPF_ALU32_REG_OFF(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    raw(ALU | op | X, dst, src, off, 0)
}
#[allow(non_snake_case)]
fn BPF_ALU64_REG(op: u8, dst: u8, src: u8) -> Insn {
    BPF_ALU64_REG_OFF(op, dst, src, 0)
}
#[allow(non_snake_case)]
fn BPF_ALU32_REG(op: u8, dst: u8, src: u8) -> Insn {
    BPF_ALU32_REG_OFF(op, dst, src, 0)
}
#[allow(non_snake_case)]
fn BPF_MOV64_REG(dst: u8, src: u8) -> Insn {
    BPF_ALU64_REG(MOV, dst, src)
}
#[allow(non_snake_case)]
fn BPF_MOV32_REG(dst: u8, src: u8) -> Insn {
    BPF_ALU32_REG(MOV, dst, src)
}
#[allow(non_snake_case)]
fn BPF_MOV64_IMM(dst: u8, imm: i32) -> Insn {
    BPF_ALU64_IMM(MOV, dst, imm)
}
#[allow(non_snake_case)]
fn BPF_MOV32_IMM(dst: u8, imm: i32) -> Insn {
    BPF_ALU32_IMM(MOV, dst, imm)
}
#[allow(non_snake_case)]
fn BPF_JMP_IMM(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    raw(JMP | op | K, dst, 0, off, imm)
}
#[allow(non_snake_case)]
fn BPF_JMP32_IMM(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    raw(JMP32 | op | K, dst, 0, off, imm)
}
#[allow(non_snake_case)]
fn BPF_JMP_REG(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    raw(JMP | op | X, dst, src, off, 0)
}
#[allow(non_snake_case)]
fn BPF_JMP32_REG(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    raw(JMP32 | op | X, dst, src, off, 0)
}
#[allow(non_snake_case)]
fn BPF_JMP_A(off: i16) -> Insn {
    raw(JMP | JA, 0, 0, off, 0)
}
#[allow(non_snake_case)]
fn BPF_LDX_MEM(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    raw(LDX | MEM | size, dst, src, off, 0)
}
#[allow(non_snake_case)]
fn BPF_STX_MEM(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    raw(STX | MEM | size, dst, src, off, 0)
}
#[allow(non_snake_case)]
fn BPF_ST_MEM(size: u8, dst: u8, off: i16, imm: i32) -> Insn {
    raw(ST | MEM | size, dst, 0, off, imm)
}
#[allow(non_snake_case)]
fn BPF_EMIT_CALL(id: i32) -> Insn {
    raw(JMP | CALL, 0, 0, 0, id)
}
#[allow(non_snake_case)]
fn BPF_EXIT_INSN() -> Insn {
    raw(JMP | EXIT, 0, 0, 0, 0)
}
#[allow(non_snake_case)]
fn BPF_ZEXT_REG(r: u8) -> Insn {
    raw(ALU | MOV | X, r, r, 0, 1)
}

type JmpImm = fn(u8, u8, i32, i16) -> Insn;

/// A fixed "random" source: returns the given values in turn.
struct Fixed(Vec<u32>, usize);
impl BlindRng for Fixed {
    fn next_u32(&mut self) -> u32 {
        let v = self.0[self.1 % self.0.len()];
        self.1 += 1;
        v
    }
}
const RND: u32 = 0x9abc_def1;
const RNDI: i32 = RND as i32;

fn checked(p: PatchBuf) -> PatchBuf {
    check(&p).unwrap_or_else(|e| panic!("{e}: {p:?}"));
    p
}

fn kernel(p: &PatchBuf, delta: Option<i64>) -> Vec<Insn> {
    to_kernel(&checked(p.clone()), delta).unwrap()
}

fn blinded(op: Op, zext: bool) -> Option<PatchBuf> {
    blind(&op, &mut Fixed(vec![RND, 0x1357_9bdf], 0), BlindOptions { emit_zext: zext })
}

// ---- §4 constant blinding -------------------------------------------------------------------

#[test]
fn blind_alu_immediates() {
    for (op, code) in [
        (AluOp::Add, ADD),
        (AluOp::Sub, SUB),
        (AluOp::And, AND),
        (AluOp::Or, OR),
        (AluOp::Xor, XOR),
        (AluOp::Mul, MUL),
        (AluOp::Mov, MOV),
        (AluOp::Div, DIV),
        (AluOp::Mod, MOD),
    ] {
        let p = blinded(Op::Alu { width: Width::W64, op, dst: r(1), src: Operand::Imm(77) }, false).unwrap();
        assert_eq!(
            kernel(&p, None),
            vec![BPF_ALU64_IMM(MOV, AX, RNDI ^ 77), BPF_ALU64_IMM(XOR, AX, RNDI), BPF_ALU64_REG_OFF(code, 1, AX, 0)],
            "{op:?} 64"
        );
        let p = blinded(Op::Alu { width: Width::W32, op, dst: r(2), src: Operand::Imm(-5) }, false).unwrap();
        assert_eq!(
            kernel(&p, None),
            vec![BPF_ALU32_IMM(MOV, AX, RNDI ^ -5), BPF_ALU32_IMM(XOR, AX, RNDI), BPF_ALU32_REG_OFF(code, 2, AX, 0)],
            "{op:?} 32"
        );
    }
    // sdiv/smod keep off = 1 (6.12 BPF_ALU*_REG_OFF).
    let p = blinded(Op::Alu { width: Width::W32, op: AluOp::SDiv, dst: r(3), src: Operand::Imm(7) }, false).unwrap();
    assert_eq!(kernel(&p, None)[2], BPF_ALU32_REG_OFF(DIV, 3, AX, 1));
    let p = blinded(Op::Alu { width: Width::W64, op: AluOp::SMod, dst: r(3), src: Operand::Imm(7) }, false).unwrap();
    assert_eq!(kernel(&p, None)[2], BPF_ALU64_REG_OFF(MOD, 3, AX, 1));
}

#[test]
fn blind_mov_zero_is_xor64() {
    for w in [Width::W32, Width::W64] {
        let p = blinded(Op::Alu { width: w, op: AluOp::Mov, dst: r(4), src: Operand::Imm(0) }, false).unwrap();
        assert_eq!(kernel(&p, None), vec![BPF_ALU64_REG(XOR, 4, 4)]);
    }
}

#[test]
fn blind_conditional_jumps_move_the_jump_to_the_end() {
    for cond in Cond::ALL {
        let code = cond.code();
        let j = Op::Jump { width: Width::W64, cond, dst: r(1), src: Operand::Imm(9), off: 5 };
        let p = blinded(j, false).unwrap();
        assert_eq!(targets(&p).collect::<Vec<_>>(), vec![(2, Target::OrigTarget)]);
        let expect =
            |off| vec![BPF_ALU64_IMM(MOV, AX, RNDI ^ 9), BPF_ALU64_IMM(XOR, AX, RNDI), BPF_JMP_REG(code, 1, AX, off)];
        assert_eq!(kernel(&p, Some(5)), expect(5), "{cond:?} forward");
        // backward: the kernel's `off < 0 ? off - 2 : off`
        assert_eq!(kernel(&p, Some(-4)), expect(-6), "{cond:?} backward");
        let j = Op::Jump { width: Width::W32, cond, dst: r(2), src: Operand::Imm(-9), off: -1 };
        let p = blinded(j, false).unwrap();
        assert_eq!(
            kernel(&p, Some(-1)),
            vec![BPF_ALU32_IMM(MOV, AX, RNDI ^ -9), BPF_ALU32_IMM(XOR, AX, RNDI), BPF_JMP32_REG(code, 2, AX, -3)]
        );
    }
}

#[test]
fn blind_st_immediate_stores() {
    for (size, bits) in [(Size::B, B), (Size::H, H), (Size::W, W), (Size::DW, DW)] {
        let p = blinded(Op::Store { size, dst: r(10), off: -8, src: Operand::Imm(0x55) }, false).unwrap();
        assert_eq!(
            kernel(&p, None),
            vec![BPF_ALU64_IMM(MOV, AX, RNDI ^ 0x55), BPF_ALU64_IMM(XOR, AX, RNDI), BPF_STX_MEM(bits, FP, AX, -8)]
        );
    }
}

#[test]
fn blind_ld_imm64_into_7_or_8_instructions() {
    let (lo, hi) = (0x1122_3344, 0x5566_7788);
    let r2 = 0x1357_9bdf_u32 as i32;
    let first = vec![
        BPF_ALU64_IMM(MOV, AX, RNDI ^ hi),
        BPF_ALU64_IMM(XOR, AX, RNDI),
        BPF_ALU64_IMM(LSH, AX, 32),
        BPF_MOV64_REG(5, AX),
    ];
    let second = vec![BPF_ALU32_IMM(MOV, AX, r2 ^ lo), BPF_ALU32_IMM(XOR, AX, r2), BPF_ALU64_REG(OR, 5, AX)];
    let op = Op::LdImm64 { dst: r(5), kind: LdImm64Kind::Imm, lo, hi };
    let p = blinded(op, false).unwrap();
    assert_eq!(kernel(&p, None), [first.clone(), second.clone()].concat());
    assert_eq!(p.len(), 7);
    // with verifier_zext the second half zero-extends AX: 8 instructions
    let p = blinded(op, true).unwrap();
    let second_z = vec![second[0], second[1], BPF_ZEXT_REG(AX), second[2]];
    assert_eq!(kernel(&p, None), [first.clone(), second_z.clone()].concat());
    // per-slot form, as the kernel patches slot 0 and slot 1 separately
    let [a, b] = blind_ld_imm64(r(5), lo, hi, &mut Fixed(vec![RND, 0x1357_9bdf], 0), BlindOptions { emit_zext: true });
    assert_eq!((kernel(&a, None), kernel(&b, None)), (first, second_z));
}

#[test]
fn blind_leaves_the_rest_alone() {
    let untouched = [
        Op::Alu { width: Width::W64, op: AluOp::Lsh, dst: r(1), src: Operand::Imm(3) },
        Op::Alu { width: Width::W32, op: AluOp::Arsh, dst: r(1), src: Operand::Imm(3) },
        Op::Alu { width: Width::W64, op: AluOp::Neg, dst: r(1), src: Operand::Imm(0) },
        Op::Alu { width: Width::W64, op: AluOp::Add, dst: r(1), src: Operand::Reg(r(2)) },
        Op::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::AX, src: Operand::Imm(1) },
        Op::Jump { width: Width::W64, cond: Cond::Gt, dst: Reg::AX, src: Operand::Imm(1), off: 2 },
        Op::Jump { width: Width::W64, cond: Cond::Gt, dst: r(1), src: Operand::Reg(r(2)), off: 2 },
        Op::Swap { kind: SwapKind::Be, bits: 32, dst: r(1) },
        Op::Ja { delta: 3, long: false },
        Op::Ja { delta: 3, long: true },
        Op::Call(CallKind::Helper(1)),
        Op::Call(CallKind::Local(1)),
        Op::Exit,
        Op::Load { size: Size::W, signed: false, dst: r(1), src: r(2), off: 0 },
        Op::Store { size: Size::W, dst: r(1), off: 0, src: Operand::Reg(r(2)) },
        Op::Store { size: Size::W, dst: Reg::AX, off: 0, src: Operand::Imm(5) },
        Op::Atomic { size: Size::DW, op: AtomicOp::Add { fetch: false }, dst: r(1), src: r(2), off: 0 },
        Op::LdImm64 { dst: r(1), kind: LdImm64Kind::Func, lo: 3, hi: 0 },
        Op::LdImm64 { dst: r(1), kind: LdImm64Kind::MapFd, lo: 3, hi: 0 },
        Op::MayGoto { off: 2 },
        Op::Zext { dst: r(1) },
    ];
    for op in untouched {
        assert!(blinded(op, false).is_none(), "{op:?} must not be blinded");
    }
}

// ---- §7 zext / rnd_hi32 ---------------------------------------------------------------------

/// The random source of `blind` and `rnd-hi32` is splitmix64: its outputs are the published
/// reference values (rand_xoshiro's `reference` test, from Vigna's splitmix64.c: seed
/// 1477776061723855037), and a 32-bit draw is the high half of the next 64-bit output. A
/// source that returns a fixed or weak value would leave blinded constants readable.
#[test]
fn blinding_rng_is_splitmix64() {
    use bpfpatch_passes::internals::blind::SplitMix64;
    const SEED: u64 = 1_477_776_061_723_855_037;
    const REFERENCE: [u64; 5] = [
        1_985_237_415_132_408_290,
        2_979_275_885_539_914_483,
        13_511_426_838_097_143_398,
        8_488_337_342_461_049_707,
        15_141_737_807_933_549_159,
    ];
    let mut g = SplitMix64::new(SEED);
    assert_eq!([(); 5].map(|()| g.next_u64()), REFERENCE);
    let mut g = SplitMix64::new(SEED);
    assert_eq!([(); 5].map(|()| g.next_u32()), REFERENCE.map(|v| (v >> 32) as u32));
}

#[test]
fn zext_and_rnd_hi32_sequences() {
    assert_eq!(kernel_zext_reg(r(3)), BPF_ZEXT_REG(3));
    assert_eq!(Op::Zext { dst: r(3) }.encode().first(), BPF_ZEXT_REG(3));
    let add32 = Op::Alu { width: Width::W32, op: AluOp::Add, dst: r(1), src: Operand::Reg(r(2)) };
    let p = zext_after(&add32).unwrap();
    assert_eq!(kernel(&p, None), vec![BPF_ALU32_REG(ADD, 1, 2), BPF_ZEXT_REG(1)]);
    let ldxw = Op::Load { size: Size::W, signed: false, dst: r(3), src: r(1), off: 4 };
    let p = rnd_hi32_after(&ldxw, RND).unwrap();
    assert_eq!(
        kernel(&p, None),
        vec![
            BPF_LDX_MEM(W, 3, 1, 4),
            BPF_ALU64_IMM(MOV, AX, RNDI),
            BPF_ALU64_IMM(LSH, AX, 32),
            BPF_ALU64_REG(OR, 3, AX)
        ]
    );
    // fetching 32-bit atomics define src
    let a = Op::Atomic { size: Size::W, op: AtomicOp::Xchg, dst: r(10), src: r(4), off: -8 };
    assert_eq!(kernel(&zext_after(&a).unwrap(), None)[1], BPF_ZEXT_REG(4));
    let c = Op::Atomic { size: Size::W, op: AtomicOp::Cmpxchg, dst: r(10), src: r(4), off: -8 };
    assert_eq!(kernel(&zext_after(&c).unwrap(), None)[1], BPF_ZEXT_REG(0));
    // no 32-bit definition: nothing to do
    for op in [
        Op::Alu { width: Width::W64, op: AluOp::Add, dst: r(1), src: Operand::Imm(1) },
        Op::Load { size: Size::DW, signed: false, dst: r(1), src: r(2), off: 0 },
        Op::Load { size: Size::W, signed: true, dst: r(1), src: r(2), off: 0 },
        Op::Call(CallKind::Helper(1)),
    ] {
        assert!(zext_after(&op).is_none() && rnd_hi32_after(&op, 1).is_none(), "{op:?}");
    }
}

// ---- §6 do_misc_fixups ----------------------------------------------------------------------

fn alu(w: Width, op: AluOp, dst: u8, src: Operand) -> Op {
    Op::Alu { width: w, op, dst: r(dst), src }
}

#[test]
fn div_mod_guards_all_eight_register_forms() {
    let (d, s) = (1u8, 2u8);
    for w in [Width::W64, Width::W32] {
        let is64 = w == Width::W64;
        let (jmp, aluc): (JmpImm, u8) = if is64 { (BPF_JMP_IMM, ALU64) } else { (BPF_JMP32_IMM, ALU) };
        let orig = |op| alu(w, op, d, Operand::Reg(r(s)));
        let raw_of = |op: AluOp| orig(op).encode().first();
        // chk_and_div
        let p = div_guard(&orig(AluOp::Div)).unwrap();
        assert_eq!(
            kernel(&p, None),
            vec![jmp(JNE, s, 0, 2), BPF_ALU32_REG(XOR, d, d), BPF_JMP_A(1), raw_of(AluOp::Div)]
        );
        // chk_and_mod (64-bit drops the last two)
        let p = div_guard(&orig(AluOp::Mod)).unwrap();
        let mut want = vec![jmp(JEQ, s, 0, if is64 { 1 } else { 2 }), raw_of(AluOp::Mod)];
        if !is64 {
            want.extend([BPF_JMP_A(1), BPF_MOV32_REG(d, d)]);
        }
        assert_eq!(kernel(&p, None), want);
        // chk_and_sdiv
        let p = div_guard(&orig(AluOp::SDiv)).unwrap();
        assert_eq!(
            kernel(&p, None),
            vec![
                BPF_MOV64_REG(AX, s),
                raw(aluc | ADD | K, AX, 0, 0, 1),
                jmp(JGT, AX, 1, 4),
                jmp(JEQ, AX, 0, 1),
                raw(aluc | MOV | K, d, 0, 0, 0),
                raw(aluc | NEG | K, d, 0, 0, 0),
                BPF_JMP_A(1),
                raw_of(AluOp::SDiv),
            ]
        );
        // chk_and_smod
        let p = div_guard(&orig(AluOp::SMod)).unwrap();
        let mut want = vec![
            BPF_MOV64_REG(AX, s),
            raw(aluc | ADD | K, AX, 0, 0, 1),
            jmp(JGT, AX, 1, 3),
            jmp(JEQ, AX, 1, 3 + if is64 { 0 } else { 1 }),
            BPF_MOV32_IMM(d, 0),
            BPF_JMP_A(1),
            raw_of(AluOp::SMod),
        ];
        if !is64 {
            want.extend([BPF_JMP_A(1), BPF_MOV32_REG(d, d)]);
        }
        assert_eq!(kernel(&p, None), want);
        // sdiv/smod by K == -1: 1:1
        let p = div_guard(&alu(w, AluOp::SDiv, d, Operand::Imm(-1))).unwrap();
        assert_eq!(kernel(&p, None), vec![raw(aluc | NEG | K, d, 0, 0, 0)]);
        let p = div_guard(&alu(w, AluOp::SMod, d, Operand::Imm(-1))).unwrap();
        assert_eq!(kernel(&p, None), vec![BPF_MOV32_IMM(d, 0)]);
        // other immediates are not guarded (the kernel rejects K == 0 at load)
        for op in [AluOp::Div, AluOp::Mod, AluOp::SDiv, AluOp::SMod] {
            assert!(div_guard(&alu(w, op, d, Operand::Imm(3))).is_none());
        }
    }
}

#[test]
fn ld_abs_and_ld_ind_lowering() {
    for (size, helper) in [(Size::B, HELPER_LD_ABS_B), (Size::H, HELPER_LD_ABS_H), (Size::W, HELPER_LD_ABS_W)] {
        let tail = vec![
            BPF_MOV64_REG(1, 6),
            BPF_EMIT_CALL(helper),
            BPF_JMP_IMM(JSGE, 0, 0, 2),
            BPF_ALU32_REG(XOR, 0, 0),
            BPF_EXIT_INSN(),
        ];
        let p = ld_abs(&Op::LdPacket { size, index: None, imm: 14 }).unwrap();
        assert_eq!(kernel(&p, None), [vec![BPF_MOV64_IMM(2, 14)], tail.clone()].concat());
        let p = ld_abs(&Op::LdPacket { size, index: Some(r(7)), imm: 0 }).unwrap();
        assert_eq!(kernel(&p, None), [vec![BPF_MOV64_REG(2, 7)], tail.clone()].concat());
        let p = ld_abs(&Op::LdPacket { size, index: Some(r(7)), imm: -2 }).unwrap();
        assert_eq!(kernel(&p, None), [vec![BPF_MOV64_REG(2, 7), BPF_ALU64_IMM(ADD, 2, -2)], tail].concat());
    }
}

#[test]
fn may_goto_expansion_and_counter() {
    assert_eq!(may_goto_slot(0, 512).unwrap(), -8);
    assert_eq!(may_goto_slot(16, 512).unwrap(), -24);
    assert_eq!(may_goto_slot(13, 512).unwrap(), -24); // rounded to an aligned slot
    assert_eq!(may_goto_slot(504, 512).unwrap(), -512);
    // Below a full frame, as the kernel's `stack_depth_extra` (after the verifier's check).
    assert_eq!(may_goto_slot(505, 512).unwrap(), -520);
    assert_eq!(may_goto_slot(512, 512).unwrap(), -520);
    assert_eq!(timed_may_goto_slot(512, 512).unwrap(), -528);
    assert_eq!(may_goto_slot(513, 512), Err(RewriteError::StackTooDeep { depth: 513, limit: 512 }));
    assert_eq!(timed_may_goto_slot(513, 512), Err(RewriteError::StackTooDeep { depth: 513, limit: 512 }));
    let p = may_goto(-24);
    assert_eq!(targets(&p).collect::<Vec<_>>(), vec![(1, Target::OrigTarget)]);
    let body = |jeq_off| {
        vec![
            BPF_LDX_MEM(DW, AX, FP, -24),
            BPF_JMP_IMM(JEQ, AX, 0, jeq_off),
            BPF_ALU64_IMM(SUB, AX, 1),
            BPF_STX_MEM(DW, FP, AX, -24),
        ]
    };
    // the kernel: off >= 0 ? off + 2 : off - 1
    assert_eq!(kernel(&p, Some(5)), body(7));
    assert_eq!(kernel(&p, Some(0)), body(2));
    assert_eq!(kernel(&p, Some(-3)), body(-4));
    assert_eq!(may_goto_init(-24).encode().first(), BPF_ST_MEM(DW, FP, -24, BPF_MAX_LOOPS));
    assert_eq!(BPF_MAX_LOOPS, 8 * 1024 * 1024);
}

#[test]
fn tail_call_bound_check() {
    let tc = raw(JMP | TAIL_CALL, 0, 0, 0, 0);
    assert_eq!(kernel(&tail_call(None).unwrap(), None), vec![tc]);
    let p = tail_call(Some(5)).unwrap();
    assert_eq!(kernel(&p, None), vec![BPF_JMP_IMM(JGE, 3, 5, 2), BPF_ALU32_IMM(AND, 3, 7), tc]);
    // +2 lands one past the patch: the instruction after the tail call
    assert_eq!(targets(&p).collect::<Vec<_>>(), vec![(0, Target::Local(3))]);
    assert_eq!(index_mask(1), 0);
    assert_eq!(index_mask(8), 7);
    assert_eq!(index_mask(9), 15);
    assert_eq!(tail_call(Some(u32::MAX)), Err(RewriteError::TailCallBound { max_entries: u32::MAX }));
}

// ---- §6.5 convert_ctx_accesses with the example layout ---------------------------------------

fn ctx_conv(op: Op) -> Result<Vec<Insn>, CtxError> {
    let p = convert(&example_layout(), &op, Endian::Little).map(|p| p.expect("memory op"))?;
    Ok(kernel(&p, None))
}

fn load(size: Size, signed: bool, dst: u8, off: i16) -> Op {
    Op::Load { size, signed, dst: r(dst), src: r(1), off }
}

#[test]
fn ctx_full_width_accesses() {
    // len: u32 @0 -> runtime u32 @8
    assert_eq!(ctx_conv(load(Size::W, false, 0, 0)).unwrap(), vec![BPF_LDX_MEM(W, 0, 1, 8)]);
    // tstamp: u64 @16 -> runtime u64 @24, read and write
    assert_eq!(ctx_conv(load(Size::DW, false, 2, 16)).unwrap(), vec![BPF_LDX_MEM(DW, 2, 1, 24)]);
    let w = Op::Store { size: Size::DW, dst: r(1), off: 16, src: Operand::Reg(r(3)) };
    assert_eq!(ctx_conv(w).unwrap(), vec![BPF_STX_MEM(DW, 1, 3, 24)]);
    let w = Op::Store { size: Size::W, dst: r(1), off: 4, src: Operand::Imm(9) };
    assert_eq!(ctx_conv(w).unwrap(), vec![BPF_ST_MEM(W, 1, 0, 9)]);
    // custom converter: wire_len = len + 4
    assert_eq!(ctx_conv(load(Size::W, false, 5, 24)).unwrap(), vec![BPF_LDX_MEM(W, 5, 1, 8), BPF_ALU32_IMM(ADD, 5, 4)]);
}

#[test]
fn ctx_narrow_loads_shift_and_mask_as_the_kernel() {
    // byte 2 of len (u32 field, runtime u32): widened load, rsh32 16, and32 0xff
    assert_eq!(
        ctx_conv(load(Size::B, false, 0, 2)).unwrap(),
        vec![BPF_LDX_MEM(W, 0, 1, 8), BPF_ALU32_IMM(RSH, 0, 16), BPF_ALU32_IMM(AND, 0, 0xff)]
    );
    // low half of len: no shift
    assert_eq!(
        ctx_conv(load(Size::H, false, 0, 0)).unwrap(),
        vec![BPF_LDX_MEM(W, 0, 1, 8), BPF_ALU32_IMM(AND, 0, 0xffff)]
    );
    // upper word of tstamp (8-byte field): rsh64 32, and32 with (1ULL << 32) - 1 == -1
    assert_eq!(
        ctx_conv(load(Size::W, false, 3, 20)).unwrap(),
        vec![BPF_LDX_MEM(DW, 3, 1, 24), BPF_ALU64_IMM(RSH, 3, 32), BPF_ALU32_IMM(AND, 3, -1)]
    );
    // sign-extending narrow load: ... then movsx64 dst, dst, 8
    assert_eq!(
        ctx_conv(load(Size::B, true, 4, 1)).unwrap(),
        vec![
            BPF_LDX_MEM(W, 4, 1, 8),
            BPF_ALU32_IMM(RSH, 4, 8),
            BPF_ALU32_IMM(AND, 4, 0xff),
            raw(ALU64 | MOV | X, 4, 4, 8, 0)
        ]
    );
    // ifindex: u32 view of a u16 runtime field: a 2-byte read is not narrower than what the
    // converter reads (size == target_size), so neither shift nor mask (the kernel's quirk).
    assert_eq!(ctx_conv(load(Size::H, false, 0, 14)).unwrap(), vec![BPF_LDX_MEM(H, 0, 1, 16)]);
    // and the full 4-byte read is just the 2-byte runtime load
    assert_eq!(ctx_conv(load(Size::W, false, 0, 12)).unwrap(), vec![BPF_LDX_MEM(H, 0, 1, 16)]);
}

#[test]
fn ctx_narrow_loads_on_big_endian_hosts_count_from_the_other_end() {
    let p = convert(&example_layout(), &load(Size::B, false, 0, 3), Endian::Big).unwrap().unwrap();
    assert_eq!(kernel(&p, None), vec![BPF_LDX_MEM(W, 0, 1, 8), BPF_ALU32_IMM(AND, 0, 0xff)]);
    let p = convert(&example_layout(), &load(Size::B, false, 0, 0), Endian::Big).unwrap().unwrap();
    assert_eq!(kernel(&p, None), vec![BPF_LDX_MEM(W, 0, 1, 8), BPF_ALU32_IMM(RSH, 0, 24), BPF_ALU32_IMM(AND, 0, 0xff)]);
}

/// A full-width read of a field whose runtime value is wider (as `xdp_md->data`: a u32 in the
/// program's view, an 8-byte pointer at run time) is not a narrow load: the kernel's
/// `is_narrower_load` is `size < ctx_field_size`, so the converter's 8-byte load stands alone,
/// with no mask that would cut the pointer to 32 bits.
#[test]
fn ctx_full_width_read_of_a_wider_runtime_field_is_not_masked() {
    use bpfpatch_passes::{Converter, CtxField, CtxLayout};
    let data = CtxField {
        name: "data".into(),
        off: 0,
        size: 4,
        writable: false,
        conv: Converter::Direct { off: 0, size: Size::DW },
    };
    let layout = CtxLayout::new("xdp_like", vec![data]).unwrap();
    let p = convert(&layout, &load(Size::W, false, 2, 0), Endian::Little).unwrap().unwrap();
    assert_eq!(kernel(&p, None), vec![BPF_LDX_MEM(DW, 2, 1, 0)]);
    // a 2-byte read of it is narrow: shifted (not here: offset 0) and masked to 16 bits
    let p = convert(&layout, &load(Size::H, false, 2, 0), Endian::Little).unwrap().unwrap();
    assert_eq!(kernel(&p, None), vec![BPF_LDX_MEM(DW, 2, 1, 0), BPF_ALU32_IMM(AND, 2, 0xffff)]);
}

/// A layout keeps its name, gives its fields by offset whatever order they came in, and a
/// converter's `Debug` shows the runtime field or the custom converter's read size.
#[test]
fn ctx_layout_name_fields_and_converter_debug() {
    use bpfpatch_passes::{Converter, CtxField, CtxLayout};
    let field = |name: &str, off| CtxField {
        name: name.into(),
        off,
        size: 4,
        writable: false,
        conv: Converter::Direct { off: 8, size: Size::W },
    };
    let layout = CtxLayout::new("my_ctx", vec![field("second", 4), field("first", 0)]).unwrap();
    assert_eq!(layout.name(), "my_ctx");
    let names: Vec<&str> = layout.fields().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(format!("{:?}", layout.fields()[0].conv), "Direct { off: 8, size: W }");
    let example = example_layout();
    let custom = &example.fields().iter().find(|f| f.name == "wire_len").unwrap().conv;
    assert_eq!(format!("{custom:?}"), "Custom { target_size: 4 }");
}

#[test]
fn ctx_refuses_invalid_accesses() {
    assert_eq!(ctx_conv(load(Size::H, false, 0, 10)), Err(CtxError::NoField { off: 10, size: 2 }));
    assert_eq!(ctx_conv(load(Size::W, false, 0, 32)), Err(CtxError::NoField { off: 32, size: 4 }));
    assert!(matches!(ctx_conv(load(Size::W, false, 0, 2)), Err(CtxError::NoField { .. } | CtxError::BadAccess { .. })));
    assert!(matches!(ctx_conv(load(Size::H, false, 0, 1)), Err(CtxError::BadAccess { .. })));
    // an 8-byte read at len's offset covers len and mark: no one field covers it
    assert_eq!(ctx_conv(load(Size::DW, false, 0, 0)), Err(CtxError::NoField { off: 0, size: 8 }));
    let st = |size, off| Op::Store { size, dst: r(1), off, src: Operand::Imm(1) };
    assert_eq!(ctx_conv(st(Size::W, 0)), Err(CtxError::ReadOnly { field: "len".into() }));
    assert_eq!(ctx_conv(st(Size::H, 4)), Err(CtxError::NarrowWrite { field: "mark".into() }));
    let a = Op::Atomic { size: Size::W, op: AtomicOp::Add { fetch: false }, dst: r(1), src: r(2), off: 4 };
    assert_eq!(ctx_conv(a), Err(CtxError::Atomic));
    assert!(convert(&example_layout(), &Op::Exit, Endian::Little).unwrap().is_none());
}

// ---- lower-v4 (ours; no kernel sequence) ------------------------------------------------------
//
// The kernel has no lowering of cpu-v4 instructions to compare with, and a sequence copied from
// our own output would only check that the output did not change. So each lowering is checked by
// what it computes: the v4 instruction and its lowered sequence run in the project's VM
// (bpfpatch-vm, whose v4 semantics are checked by the conformance vectors and, where rbpf has
// them, by the rbpf differential test) on the same registers and memory, over values chosen to
// hit every sign and width edge, and must leave the same destination and source registers.

/// The values the registers under test take: zero, one, all ones, every sign boundary of 8, 16,
/// 32 and 64 bits, divisors that divide and do not, and a few mixed patterns.
const EDGE: [u64; 22] = [
    0,
    1,
    2,
    7,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_ffff_fff9, // -7
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0x8000_0000_0000_0001,
    0x0123_4567_89ab_cdef,
    0xfedc_ba98_7654_3210,
    0xffff_ffff_8000_0000, // i32::MIN sign-extended
];

/// Runs `body` after loading `regs` (register, value) with ld_imm64, then returns `ret`.
/// `r1` holds the input memory's address on entry and is saved in r6 first.
fn vm_run(body: &[Insn], regs: &[(u8, u64)], ret: u8, mem: &[u8], internal: bool) -> u64 {
    let mut insns = vec![BPF_MOV64_REG(6, 1)];
    for &(reg, v) in regs {
        insns.extend(
            Op::LdImm64 { dst: r(reg), kind: LdImm64Kind::Imm, lo: v as i32, hi: (v >> 32) as i32 }.encode().as_slice(),
        );
    }
    insns.extend_from_slice(body);
    insns.push(BPF_MOV64_REG(0, ret));
    insns.push(BPF_EXIT_INSN());
    let opts = if internal { bpfpatch_vm::LoadOptions::INTERNAL } else { bpfpatch_vm::LoadOptions::default() };
    let prog = bpfpatch_vm::LoadedProgram::load(&insns, &opts).unwrap_or_else(|e| panic!("{e}: {insns:?}"));
    let mut mem = mem.to_vec();
    bpfpatch_vm::Vm::new(bpfpatch_vm::VmConfig::default())
        .unwrap()
        .run(&prog, bpfpatch_vm::Input::mem(&mut mem))
        .unwrap_or_else(|e| panic!("{e}: {insns:?}"))
        .r0
}

/// `op` (dst `d`, register source `s` if any) and its little-endian lowering compute the same
/// `d` and leave `s` alone, for every pair of EDGE values in (d, s).
fn same_in_vm(op: Op, d: u8, s: Option<u8>) {
    let original = op.encode().as_slice().to_vec();
    let lowered = kernel(&lower(&op, Endian::Little).unwrap().unwrap_or_else(|| panic!("{op:?} not lowered")), Some(0));
    assert_ne!(lowered, original, "{op:?}: lowered to itself");
    for a in EDGE {
        for b in s.map_or(&[0][..], |_| &EDGE[..]) {
            let regs: Vec<(u8, u64)> = std::iter::once((d, a)).chain(s.map(|s| (s, *b))).collect();
            for ret in std::iter::once(d).chain(s) {
                let want = vm_run(&original, &regs, ret, &[], false);
                let got = vm_run(&lowered, &regs, ret, &[], true);
                assert_eq!(got, want, "{op:?} with {regs:x?}: r{ret} {got:#x}, want {want:#x}");
            }
        }
    }
}

#[test]
fn lower_v4_sequences_compute_what_the_v4_instruction_computes() {
    // Sign-extending moves, 64- and 32-bit.
    for bits in [8u8, 16, 32] {
        same_in_vm(alu(Width::W64, AluOp::MovSx(bits), 1, Operand::Reg(r(2))), 1, Some(2));
        same_in_vm(alu(Width::W64, AluOp::MovSx(bits), 3, Operand::Reg(r(3))), 3, None);
    }
    for bits in [8u8, 16] {
        same_in_vm(alu(Width::W32, AluOp::MovSx(bits), 1, Operand::Reg(r(2))), 1, Some(2));
    }
    // Byte swaps (on a little-endian host, as the VM runs).
    for bits in [16u8, 32, 64] {
        same_in_vm(Op::Swap { kind: SwapKind::Bswap, bits, dst: r(4) }, 4, None);
    }
    // Signed division and modulo, register and immediate, both widths; division by zero (a
    // register holding 0) included through EDGE.
    for width in [Width::W64, Width::W32] {
        for op in [AluOp::SDiv, AluOp::SMod] {
            same_in_vm(alu(width, op, 1, Operand::Reg(r(2))), 1, Some(2));
            same_in_vm(alu(width, op, 5, Operand::Reg(r(5))), 5, None);
            for imm in [0, -7, -1, 1, 3, i32::MIN, i32::MAX] {
                same_in_vm(alu(width, op, 1, Operand::Imm(imm)), 1, None);
            }
        }
    }
    // Sign-extending loads: the same bytes in memory, every size, offsets that reach each byte.
    for size in [Size::B, Size::H, Size::W] {
        for off in [0i16, 1, 6] {
            let op = Op::Load { size, signed: true, dst: r(3), src: r(4), off };
            let original = op.encode().as_slice().to_vec();
            let lowered = kernel(&lower(&op, Endian::Little).unwrap().unwrap(), Some(0));
            for v in EDGE {
                let mut mem = [0u8; 16];
                mem[..8].copy_from_slice(&v.to_le_bytes());
                mem[8..].copy_from_slice(&v.rotate_left(12).to_le_bytes());
                let body = |b: &[Insn]| [&[BPF_MOV64_REG(4, 6)][..], b].concat();
                let want = vm_run(&body(&original), &[(3, v)], 3, &mem, false);
                let got = vm_run(&body(&lowered), &[(3, v)], 3, &mem, true);
                assert_eq!(got, want, "{op:?} on {mem:x?}");
            }
        }
    }
    // gotol -> goto to the same target: `r0 = 1; gotol +n; (n times r0 = 2); exit` returns 1
    // either way (and 2 if the jump fell short).
    for delta in [0i32, 1, 300] {
        let p = lower(&Op::Ja { delta, long: true }, Endian::Little).unwrap().unwrap();
        let run = |jump: &[Insn]| {
            let mut insns = vec![BPF_MOV64_IMM(0, 1)];
            insns.extend_from_slice(jump);
            insns.extend(std::iter::repeat_n(BPF_MOV64_IMM(0, 2), usize::try_from(delta).unwrap()));
            insns.push(BPF_EXIT_INSN());
            vm_run(&insns, &[], 0, &[], true)
        };
        let original = Op::Ja { delta, long: true }.encode().as_slice().to_vec();
        assert_eq!((run(&original), run(&kernel(&p, Some(i64::from(delta))))), (1, 1), "gotol {delta}");
    }
    // beyond 16 bits it stays (the program is cpu v4; tests/loadable.rs)
    assert_eq!(lower(&Op::Ja { delta: 40_000, long: true }, Endian::Little), Ok(None));
    // bswap on a big-endian host: RFC 9669 §5.3 defines BPF_TO_LE (`le`) as a conversion between
    // host order and little-endian, a byte swap on a big-endian host; so `bswap64` there is
    // exactly `le64` (the VM runs little-endian, so this row is derived from the RFC, not run).
    let p = lower(&Op::Swap { kind: SwapKind::Bswap, bits: 64, dst: r(1) }, Endian::Big).unwrap().unwrap();
    assert_eq!(kernel(&p, None), vec![raw(ALU | END | TO_LE, 1, 0, 0, 64)]);
    // non-v4 instructions are left alone
    assert!(lower(&alu(Width::W64, AluOp::Div, 1, Operand::Reg(r(2))), Endian::Little).unwrap().is_none());
}

/// `sdiv`/`smod` by the immediate -1 lower to exactly what the kernel's `do_misc_fixups`
/// patches them into ("Make sdiv/smod divide-by-minus-one exceptions impossible"): `neg dst` at
/// the instruction's width, and `BPF_MOV32_IMM(dst, 0)`. By the immediate 0, the lowering never
/// leaves a division or modulo by the immediate 0, which the verifier refuses (`check_alu_op`:
/// "div by zero").
#[test]
fn lower_v4_division_by_minus_one_is_the_kernels_and_by_zero_loads() {
    for (class, w) in [(ALU64, Width::W64), (ALU, Width::W32)] {
        let lowered = |op: AluOp, imm: i32| {
            kernel(&lower(&alu(w, op, 3, Operand::Imm(imm)), Endian::Little).unwrap().unwrap(), None)
        };
        assert_eq!(lowered(AluOp::SDiv, -1), vec![raw(class | NEG | K, 3, 0, 0, 0)], "{w:?}");
        assert_eq!(lowered(AluOp::SMod, -1), vec![BPF_MOV32_IMM(3, 0)], "{w:?}");
        for op in [AluOp::SDiv, AluOp::SMod] {
            let out = lowered(op, 0);
            let ops = bpfpatch_insn::decode_program(&out, bpfpatch_insn::DecodeOptions::default()).unwrap();
            let by_zero = ops.iter().any(|(_, o)| {
                matches!(
                    o,
                    Op::Alu { op: AluOp::Div | AluOp::Mod | AluOp::SDiv | AluOp::SMod, src: Operand::Imm(0), .. }
                )
            });
            assert!(!by_zero, "{op:?} {w:?} by 0: {ops:?}");
        }
    }
}

// ---- every generator's output decodes, over a grid of inputs -----------------------------------

fn op_grid() -> Vec<Op> {
    let mut v = Vec::new();
    let regs = [r(0), r(1), r(9), Reg::AX];
    let imms = [0, 1, -1, 7, -7, i32::MIN, i32::MAX];
    let alu_ops = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::SDiv,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Mod,
        AluOp::SMod,
        AluOp::Xor,
        AluOp::Mov,
        AluOp::Arsh,
    ];
    for w in [Width::W32, Width::W64] {
        for &d in &regs {
            v.push(Op::Alu { width: w, op: AluOp::Neg, dst: d, src: Operand::Imm(0) });
            for op in alu_ops {
                for &s in &regs {
                    v.push(Op::Alu { width: w, op, dst: d, src: Operand::Reg(s) });
                }
                for &i in &imms {
                    v.push(Op::Alu { width: w, op, dst: d, src: Operand::Imm(i) });
                }
            }
            for bits in [8u8, 16, 32] {
                if bits < 32 || w == Width::W64 {
                    v.push(Op::Alu { width: w, op: AluOp::MovSx(bits), dst: d, src: Operand::Reg(r(2)) });
                }
            }
            for cond in Cond::ALL {
                for &i in &imms {
                    v.push(Op::Jump { width: w, cond, dst: d, src: Operand::Imm(i), off: -3 });
                }
                v.push(Op::Jump { width: w, cond, dst: d, src: Operand::Reg(r(2)), off: 4 });
            }
        }
    }
    for size in [Size::B, Size::H, Size::W, Size::DW] {
        for &d in &regs {
            v.push(Op::Store { size, dst: d, off: -8, src: Operand::Imm(3) });
            v.push(Op::Store { size, dst: d, off: 4, src: Operand::Reg(r(2)) });
            v.push(Op::Load { size, signed: false, dst: d, src: r(1), off: 0 });
            if size != Size::DW {
                v.push(Op::Load { size, signed: true, dst: d, src: r(1), off: 2 });
                v.push(Op::LdPacket { size, index: None, imm: 12 });
                v.push(Op::LdPacket { size, index: Some(d), imm: 3 });
            }
        }
    }
    for kind in [SwapKind::Le, SwapKind::Be, SwapKind::Bswap] {
        for bits in [16, 32, 64] {
            v.push(Op::Swap { kind, bits, dst: r(3) });
        }
    }
    v.extend([
        Op::LdImm64 { dst: r(1), kind: LdImm64Kind::Imm, lo: -1, hi: 5 },
        Op::LdImm64 { dst: r(1), kind: LdImm64Kind::Func, lo: 2, hi: 0 },
        Op::Ja { delta: -5, long: true },
        Op::Ja { delta: 5, long: false },
        Op::MayGoto { off: 3 },
        Op::Call(CallKind::Helper(HELPER_TAIL_CALL)),
        Op::Exit,
        Op::Zext { dst: r(4) },
        Op::Atomic { size: Size::W, op: AtomicOp::Cmpxchg, dst: r(1), src: r(2), off: 0 },
    ]);
    v
}

#[test]
fn every_generator_output_decodes_with_valid_local_targets() {
    let mut rng = bpfpatch_passes::internals::blind::SplitMix64::new(7);
    let layout = example_layout();
    let mut n = 0;
    for op in op_grid() {
        let mut outs: Vec<PatchBuf> = Vec::new();
        for z in [false, true] {
            outs.extend(blind(&op, &mut rng, BlindOptions { emit_zext: z }));
        }
        outs.extend(zext_after(&op));
        outs.extend(rnd_hi32_after(&op, 0xffff_ffff));
        outs.extend(div_guard(&op));
        outs.extend(ld_abs(&op));
        for host in [Endian::Little, Endian::Big] {
            match lower(&op, host) {
                Ok(p) => outs.extend(p),
                Err(e) => panic!("{op:?}: {e}"),
            }
            if let Ok(p) = convert(&layout, &op, host) {
                outs.extend(p);
            }
        }
        for p in outs {
            check(&p).unwrap_or_else(|e| panic!("{op:?}: {e}"));
            // and the kernel placement of escapes fits for small deltas
            to_kernel(&p, Some(3)).unwrap();
            n += 1;
        }
    }
    outs_extra_checks();
    assert!(n > 1000, "{n}");
}

fn outs_extra_checks() {
    for p in [may_goto(-8), tail_call(None).unwrap(), tail_call(Some(3)).unwrap()] {
        check(&p).unwrap();
    }
    let mut p = PatchBuf::new();
    p.push_op(&Op::Jump { width: Width::W64, cond: Cond::Eq, dst: r(1), src: Operand::Imm(0), off: 5 });
    assert!(check(&p).is_err(), "a local target past the end must be refused");
    let mut p = PatchBuf::new();
    p.push_op(&Op::Ja { delta: 0, long: false }).push_op(&Op::LdImm64 {
        dst: r(1),
        kind: LdImm64Kind::Imm,
        lo: 0,
        hi: 0,
    });
    let mut q = PatchBuf::new();
    q.push_op(&Op::Ja { delta: 2, long: false }).append(&p);
    assert!(check(&q).is_err(), "a local target inside an ld_imm64 must be refused");
}
