//! The kernel's rules the passes follow where they differ from a naive reading, one test each
//! (Linux 6.18 `opt_subreg_zext_lo32_rnd_hi32`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bpfpatch_insn::{AluOp, Insn, Op, Operand, Reg, Size, Width};
use bpfpatch_passes::{Options, Pipeline};

fn enc(ops: &[Op]) -> Vec<Insn> {
    ops.iter().flat_map(|o| o.encode().as_slice().to_vec()).collect()
}

fn r(n: u8) -> Reg {
    Reg::new(n).unwrap()
}

fn run(list: &str, ops: &[Op]) -> Vec<Op> {
    let out = Pipeline::parse(list).unwrap().run(&enc(ops), &Options::default()).unwrap().insns;
    let d = bpfpatch_insn::decode_program(&out, bpfpatch_insn::DecodeOptions::INTERNAL).unwrap();
    d.into_iter().map(|(_, o)| o).collect()
}

/// A 32-bit load from the context whose upper half is read gets no zero-extension (nor random
/// upper bits): the kernel's context conversion may widen it into a 64-bit pointer load. The
/// same load from the stack gets one.
#[test]
fn no_zext_after_a_context_load() {
    for (base, off, want_zext) in [(1u8, 0i16, false), (10, -8, true)] {
        let mut ops = Vec::new();
        if base == 10 {
            ops.push(Op::Store { size: Size::DW, dst: r(10), off: -8, src: Operand::Imm(7) });
        }
        ops.push(Op::Load { size: Size::W, signed: false, dst: r(2), src: r(base), off });
        ops.push(Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(0), src: Operand::Reg(r(2)) });
        ops.push(Op::Exit);
        for list in ["zext", "rnd-hi32", "zext,rnd-hi32"] {
            let out = run(list, &ops);
            let zexts = out.iter().filter(|o| matches!(o, Op::Zext { .. })).count();
            let zext_expected = want_zext && list.contains("zext");
            assert_eq!(zexts, usize::from(zext_expected), "{list}, load from r{base}: {out:?}");
            if base == 1 {
                assert_eq!(out.len(), ops.len(), "{list}: the context load is left alone: {out:?}");
            }
        }
    }
}

// ---- kernel-dce: the verifier's `seen`, hard-wired branches, nops -----------------------------

/// A 32-bit `cmpxchg`'s r0 is zero-extended whatever reads it, or nothing (Linux 6.18 does so
/// after an r0 nobody reads), even for a JIT that zero-extends (`is_cmpxchg_insn`: the part of
/// `opt_subreg_zext_lo32_rnd_hi32` x86-64 gets, `cmpxchg-zext`); `rnd-hi32` never randomizes it;
/// a 64-bit `cmpxchg` and other 32-bit atomics get nothing from `cmpxchg-zext`. Against the
/// running kernel: the CLI's `tests/data/cmpxchg`.
#[test]
fn a_32_bit_cmpxchg_is_zero_extended_even_where_r0_is_not_read() {
    use bpfpatch_insn::AtomicOp;
    let atomic = |size, op| Op::Atomic { size, op, dst: r(10), src: r(1), off: -8 };
    let prog = |a: Op| {
        vec![
            Op::Store { size: Size::DW, dst: r(10), off: -8, src: Operand::Imm(0) },
            mov(0, 0),
            mov(1, 1),
            a,
            mov(0, 1),
            Op::Exit,
        ]
    };
    let zexts = |out: &[Op]| out.iter().filter(|o| matches!(o, Op::Zext { dst } if *dst == r(0))).count();
    let cmpxchg32 = prog(atomic(Size::W, AtomicOp::Cmpxchg));
    for list in ["cmpxchg-zext", "zext", "zext,cmpxchg-zext", "kernel", "rnd-hi32,cmpxchg-zext"] {
        let out = run(list, &cmpxchg32);
        assert_eq!(zexts(&out), 1, "{list}: {out:?}");
        let at = out.iter().position(|o| matches!(o, Op::Atomic { .. })).unwrap();
        assert!(matches!(out[at + 1], Op::Zext { .. }), "{list}: right after it: {out:?}");
    }
    // Without either, `rnd-hi32` leaves it alone (the kernel's zext_dst is set for it).
    assert_eq!(run("rnd-hi32", &cmpxchg32), cmpxchg32);
    // What each pass reports: `cmpxchg-zext` patched the one instruction, and nothing when
    // `zext` runs too (which did).
    let stats = |list: &str| {
        let r = Pipeline::parse(list).unwrap().run(&enc(&cmpxchg32), &Options::default()).unwrap();
        r.stats.iter().map(|(p, s)| (p.name(), s.patched)).collect::<Vec<_>>()
    };
    assert_eq!(stats("cmpxchg-zext"), [("cmpxchg-zext", 1)]);
    assert_eq!(stats("zext,cmpxchg-zext"), [("zext", 1), ("cmpxchg-zext", 0)]);
    for other in [
        atomic(Size::DW, AtomicOp::Cmpxchg),
        atomic(Size::W, AtomicOp::Xchg),
        atomic(Size::W, AtomicOp::Add { fetch: true }),
    ] {
        assert_eq!(run("cmpxchg-zext", &prog(other)), prog(other), "{other:?}");
    }
}

fn mov(d: u8, imm: i32) -> Op {
    Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(d), src: Operand::Imm(imm) }
}

fn jmp(cond: bpfpatch_insn::Cond, d: u8, src: Operand, off: i16) -> Op {
    Op::Jump { width: Width::W64, cond, dst: r(d), src, off }
}

fn run_with(list: &str, ops: &[Op], opts: &Options) -> Vec<Op> {
    let out = Pipeline::parse(list).unwrap().run(&enc(ops), opts).unwrap().insns;
    let d = bpfpatch_insn::decode_program(&out, bpfpatch_insn::DecodeOptions::INTERNAL).unwrap();
    d.into_iter().map(|(_, o)| o).collect()
}

/// A branch decided on every path that reaches it stays when its other successor is seen
/// through another path (`opt_hard_wire_dead_code_branches` looks at instructions, not edges);
/// one whose fall-through is never seen becomes a goto, which is a nop once the dead code after
/// it is gone. `dce` (edges) folds both.
#[test]
fn kernel_dce_keeps_a_branch_whose_both_successors_are_seen() {
    use bpfpatch_insn::Cond::Eq;
    // 0: r0 = 0; 1: r1 = 10; 2: if r1 == 11 goto 7 (never); 3: r0 = 1; 4: r1 = 11;
    // 5: if r1 == 11 goto 7 (always); 6: r0 = 2 (dead); 7: exit
    let ops = [
        mov(0, 0),
        mov(1, 10),
        jmp(Eq, 1, Operand::Imm(11), 4),
        mov(0, 1),
        mov(1, 11),
        jmp(Eq, 1, Operand::Imm(11), 1),
        mov(0, 2),
        Op::Exit,
    ];
    let want = [mov(0, 0), mov(1, 10), jmp(Eq, 1, Operand::Imm(11), 2), mov(0, 1), mov(1, 11), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), want);
    assert_eq!(run("dce", &ops), [mov(0, 0), mov(1, 10), mov(0, 1), mov(1, 11), Op::Exit]);
    // A branch whose target is never seen is `ja +0`, then removed.
    let ops = [mov(0, 0), jmp(Eq, 0, Operand::Imm(1), 2), mov(0, 1), Op::Exit, mov(0, 2), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(0, 0), mov(0, 1), Op::Exit]);
}

/// `opt_remove_nops` removes the exact `ja +0` slot; `gotol +0` stays (`dce` removes both).
#[test]
fn kernel_dce_removes_ja_0_but_not_gotol_0() {
    let ops = [Op::Ja { delta: 0, long: true }, Op::Ja { delta: 0, long: false }, mov(0, 0), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [Op::Ja { delta: 0, long: true }, mov(0, 0), Op::Exit]);
    assert_eq!(run("dce", &ops), [mov(0, 0), Op::Exit]);
}

/// `opt_hard_wire_dead_code_branches` rewrites conditional jumps only (`insn_is_cond_jump` is
/// false for `JA`): a `gotol` over dead code stays a `gotol`, with offset 0 once the dead code
/// is gone, which `opt_remove_nops` (the exact `BPF_JMP | BPF_JA` slot) does not remove.
/// (The running 6.18 kernel's xlated image of this program is the expected one.)
#[test]
fn kernel_dce_keeps_a_gotol_over_dead_code() {
    use bpfpatch_insn::Cond::Ne;
    // 0: r1 = 0; 1: if r1 != 0 goto 3 (never: `ja +0`, removed); 2: gotol +1;
    // 3: r0 = 1 (never seen); 4: r0 = 0; 5: exit
    let ops =
        [mov(1, 0), jmp(Ne, 1, Operand::Imm(0), 1), Op::Ja { delta: 1, long: true }, mov(0, 1), mov(0, 0), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(1, 0), Op::Ja { delta: 0, long: true }, mov(0, 0), Op::Exit]);
}

/// `opt_remove_nops` removes `may_goto +0` (the exact `BPF_JMP | BPF_JCOND` slot, every other
/// field 0) as it removes `ja +0`.
#[test]
fn kernel_dce_removes_may_goto_0() {
    let ops = [mov(0, 0), Op::MayGoto { off: 0 }, mov(0, 1), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(0, 0), mov(0, 1), Op::Exit]);
}

/// After removing a `may_goto +0`, `opt_remove_nops` steps back to the instruction before it
/// ("Go back one insn to catch may_goto +1; may_goto +0 sequence", `i -= 2`), whose offset the
/// removal may have made 0; after removing a `ja +0` it goes on with the next (`i -= 1`). Every
/// instruction here is seen (r2, r3 unknown), so only the nop rule removes anything. (The
/// running 6.18 kernel's xlated images of these programs are the expected ones.)
#[test]
fn kernel_dce_steps_back_after_removing_may_goto_0() {
    use bpfpatch_insn::Cond::Eq;
    let ja = |delta| Op::Ja { delta, long: false };
    let may_goto = |off| Op::MayGoto { off };
    let if_zero = |reg, off| jmp(Eq, reg, Operand::Imm(0), off);
    // `may_goto +1; may_goto +0`: the second goes, then the first (now +0).
    let ops = [mov(0, 0), may_goto(1), may_goto(0), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(0, 0), Op::Exit]);
    // A chain: each removal steps back to the one before (the upstream commit's example).
    let ops = [mov(0, 0), may_goto(2), may_goto(1), may_goto(0), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(0, 0), Op::Exit]);
    // `may_goto +1; ja +0`: removing the `ja` does not step back; the may_goto stays, now +0.
    let ops = [mov(0, 0), may_goto(1), ja(0), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(0, 0), may_goto(0), Op::Exit]);
    // `may_goto +1; ja +0; may_goto +0`: the `ja` goes (no step back), then the last may_goto,
    // whose step back reaches the first may_goto, now +0: all three go.
    let ops = [mov(0, 0), may_goto(1), ja(0), may_goto(0), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(0, 0), Op::Exit]);
    // 0: r0 = 0; 1: if r2 == 0 goto 3; 2: ja +1; 3: may_goto +0; 4: exit. The may_goto goes,
    // then the `ja` before it (now +0); the branch, now +0 too, is no `ja` and stays.
    let ops = [mov(0, 0), if_zero(2, 1), ja(1), may_goto(0), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(0, 0), if_zero(2, 0), Op::Exit]);
    // 0: r0 = 0; 1: if r2 == 0 goto 4; 2: if r3 == 0 goto 5; 3: ja +2; 4: ja +1;
    // 5: may_goto +0; 6: exit. The may_goto goes, the step back removes the `ja +1` (now +0)
    // and moves on: the `ja +2`, now +0 as well, stays.
    let ops = [mov(0, 0), if_zero(2, 2), if_zero(3, 2), ja(2), ja(1), may_goto(0), Op::Exit];
    assert_eq!(run("kernel-dce", &ops), [mov(0, 0), if_zero(2, 2), if_zero(3, 1), ja(0), Op::Exit]);
}

/// A jump to itself (offset -1) is no nop, whatever follows it: kept.
#[test]
fn kernel_dce_keeps_a_jump_to_itself() {
    use bpfpatch_insn::Cond::Eq;
    // 0: r0 = 0; 1: if r2 == 0 goto 3 (r2 unknown); 2: goto 2; 3: exit
    let ops = [mov(0, 0), jmp(Eq, 2, Operand::Imm(0), 1), Op::Ja { delta: -1, long: false }, Op::Exit];
    assert_eq!(run("kernel-dce", &ops), ops);
}

/// The verifier's value model: a division's result is not a constant for it (the branch on it
/// stays), `le`/`be` are evaluated in the host's byte order (the branch after `be16` is decided
/// either way, in opposite directions on the two byte orders).
#[test]
fn kernel_dce_sees_values_as_the_verifier_does() {
    use bpfpatch_insn::Cond::Ne;
    use bpfpatch_insn::{Endian, SwapKind};
    // r1 = 84; r1 /= 2; if r1 != 42 goto fail; r0 = 1; exit; fail: r0 = 0; exit
    let div = [
        mov(1, 84),
        Op::Alu { width: Width::W64, op: AluOp::Div, dst: r(1), src: Operand::Imm(2) },
        jmp(Ne, 1, Operand::Imm(42), 2),
        mov(0, 1),
        Op::Exit,
        mov(0, 0),
        Op::Exit,
    ];
    assert_eq!(run("kernel-dce", &div), div, "the division is not tracked: nothing is dead");
    assert_eq!(run("dce", &div).len(), 4, "dce folds the branch: {:?}", run("dce", &div));
    // r0 = 0x1122; be16 r0; if r0 != 0x2211 goto fail; r0 = 1; exit; fail: r0 = 0; exit
    let be = [
        mov(0, 0x1122),
        Op::Swap { kind: SwapKind::Be, bits: 16, dst: r(0) },
        jmp(Ne, 0, Operand::Imm(0x2211), 2),
        mov(0, 1),
        Op::Exit,
        mov(0, 0),
        Op::Exit,
    ];
    let little = Options { host: Endian::Little, ..Options::default() };
    assert_eq!(run_with("kernel-dce", &be, &little), [be[0], be[1], mov(0, 1), Op::Exit]);
    let big = Options { host: Endian::Big, ..Options::default() };
    assert_eq!(run_with("kernel-dce", &be, &big), [be[0], be[1], mov(0, 0), Op::Exit]);
}

/// `jset` of a register with itself is decided when the register's value is known (both dead-code
/// passes): `7 & 7` is set.
#[test]
fn jset_of_a_known_register_with_itself_is_decided() {
    use bpfpatch_insn::Cond::Set;
    let ops = [mov(0, 0), mov(1, 7), jmp(Set, 1, Operand::Reg(r(1)), 1), Op::Exit, mov(0, 1), Op::Exit];
    for list in ["dce", "kernel-dce"] {
        assert_eq!(run(list, &ops), [mov(0, 0), mov(1, 7), mov(0, 1), Op::Exit], "{list}");
    }
}

/// Another program of an object section (a declared program entry) has the context in r1 as
/// the main program does: its 32-bit context loads get no zero-extension either. An entry that
/// is only a function called from elsewhere has unknown arguments: its load is zero-extended.
#[test]
fn no_zext_after_a_context_load_of_another_program_of_the_section() {
    use bpfpatch_insn::Slot;
    // 0: r0 = 0; 1: exit; 2 (second entry): r2 = *(u32 *)(r1 + 0); 3: r0 = r2; 4: exit
    let ops = [
        mov(0, 0),
        Op::Exit,
        Op::Load { size: Size::W, signed: false, dst: r(2), src: r(1), off: 0 },
        Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(0), src: Operand::Reg(r(2)) },
        Op::Exit,
    ];
    let zexts = |opts: &Options| run_with("zext", &ops, opts).iter().filter(|o| matches!(o, Op::Zext { .. })).count();
    let function = Options { entries: vec![Slot(2)], ..Options::default() };
    assert_eq!(zexts(&function), 1);
    let program = Options { entries: vec![Slot(2)], program_entries: vec![Slot(2)], ..Options::default() };
    assert_eq!(zexts(&program), 0);
}

/// A function of a library section (`.text`) that a program of another section calls with the
/// context in an argument gets it as the context, as the kernel (which verifies the function
/// as part of that program) does: its 32-bit loads through that argument get no
/// zero-extension. Called with something else there, the load is zero-extended; a section
/// called from elsewhere is a library, so its slot 0 does not start with the context either.
#[test]
fn no_zext_after_a_context_load_through_an_argument_from_another_section() {
    use bpfpatch_insn::Slot;
    use bpfpatch_passes::internals::analysis::ptrkind::{CallSite, CtxArg};
    // 0 (first function): r2 = *(u32 *)(r1 + 0); r0 = r2; exit
    // 3 (second function): r0 = *(u32 *)(r2 + 4); r0 += 0; exit
    let ops = [
        Op::Load { size: Size::W, signed: false, dst: r(2), src: r(1), off: 0 },
        Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(0), src: Operand::Reg(r(2)) },
        Op::Exit,
        Op::Load { size: Size::W, signed: false, dst: r(0), src: r(2), off: 4 },
        Op::Alu { width: Width::W64, op: AluOp::Add, dst: r(0), src: Operand::Imm(0) },
        Op::Exit,
    ];
    let site = |r1: CtxArg, r2: CtxArg| {
        let mut regs = [CtxArg::NotCtx; 10];
        regs[1] = r1;
        regs[2] = r2;
        CallSite { regs, ctx_in_memory: false, frame: None }
    };
    let zexts_after = |opts: &Options| {
        let out = run_with("zext", &ops, opts);
        let after = |k: usize| matches!(out.get(k + 1), Some(Op::Zext { .. }));
        let loads: Vec<usize> = (0..out.len()).filter(|&k| matches!(out[k], Op::Load { .. })).collect();
        loads.iter().map(|&k| after(k)).collect::<Vec<bool>>()
    };
    let entries = vec![Slot(0), Slot(3)];
    use CtxArg::{Ctx, MaybeCtx, NotCtx};
    // Without records: slot 0 is a program (r1 the context), slot 3 a function of unknown arguments.
    assert_eq!(zexts_after(&Options { entries: entries.clone(), ..Options::default() }), [false, true]);
    for (calls, want) in [
        // The second function called with the context in r2 (r1 a scalar): its load is a context load.
        (vec![(Slot(3), site(NotCtx, Ctx))], [true, false]),
        // Both called with the context where they read it.
        (vec![(Slot(0), site(Ctx, NotCtx)), (Slot(3), site(NotCtx, Ctx))], [false, false]),
        // The first called with a scalar in r1: a library's slot 0 is no program.
        (vec![(Slot(0), site(NotCtx, NotCtx)), (Slot(3), site(NotCtx, Ctx))], [true, false]),
        // Two call sites disagree: maybe the context, maybe not (zero-extended, as for any load
        // the analysis cannot classify).
        (vec![(Slot(3), site(NotCtx, Ctx)), (Slot(3), site(NotCtx, NotCtx))], [true, true]),
        (vec![(Slot(3), site(NotCtx, MaybeCtx))], [true, true]),
    ] {
        // A slot 0 declared a program keeps the context in r1 whatever calls pass elsewhere.
        let program = Options {
            entries: entries.clone(),
            program_entries: vec![Slot(0)],
            entry_calls: calls.clone(),
            ..Options::default()
        };
        assert_eq!(
            zexts_after(&program)[0],
            calls.iter().any(|c| c.0 == Slot(0) && c.1.regs[1] == NotCtx),
            "{calls:?}"
        );
        let opts = Options { entries: entries.clone(), entry_calls: calls.clone(), ..Options::default() };
        assert_eq!(zexts_after(&opts), want, "{calls:?}");
    }
}

/// What the calling section passes: `call_sites` reads r0..r9 at a call the section sees as a
/// kfunc call (an object's call into `.text`), and whether the context is in memory the callee
/// may read (a pointer into the frame passed while a slot holds the context).
#[test]
fn call_sites_read_what_a_call_into_another_section_passes() {
    use bpfpatch_insn::{CallKind, Slot};
    use bpfpatch_passes::internals::analysis::ptrkind::CtxArg;
    let call = Op::Call(CallKind::Kfunc { btf_id: -1, module: 0 });
    // 0: r6 = r1; 1: r2 = r6; 2: r1 = 3; 3: call; 4: *(u64 *)(r10 - 8) = r6; 5: r1 = r10;
    // 6: r1 += -8; 7: call; 8: r0 = 0; 9: exit
    let ops = [
        Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(6), src: Operand::Reg(r(1)) },
        Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(2), src: Operand::Reg(r(6)) },
        mov(1, 3),
        call,
        Op::Store { size: Size::DW, dst: r(10), off: -8, src: Operand::Reg(r(6)) },
        Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(1), src: Operand::Reg(r(10)) },
        Op::Alu { width: Width::W64, op: AluOp::Add, dst: r(1), src: Operand::Imm(-8) },
        call,
        mov(0, 0),
        Op::Exit,
    ];
    let sites = bpfpatch_passes::call_sites(&enc(&ops), &Options::default(), &[Slot(3), Slot(7), Slot(8)]).unwrap();
    let first = sites[0].expect("a call");
    assert_eq!((first.regs[1], first.regs[2], first.regs[6]), (CtxArg::NotCtx, CtxArg::Ctx, CtxArg::Ctx));
    assert!(!first.ctx_in_memory);
    let second = sites[1].expect("a call");
    assert_eq!(second.regs[1], CtxArg::NotCtx, "a pointer into the caller's frame is not the context");
    assert!(!second.ctx_in_memory, "the callee tracks the frame (its stack did not escape)");
    let frame = second.frame.expect("a pointer into the frame is passed");
    assert!(frame.points_into_frame(1));
    assert!(frame.slot_may_be_ctx(0), "the frame it points into holds the context at fp-8");
    assert!(!frame.slot_may_be_ctx(1));
    assert!(first.frame.is_none(), "no pointer into the frame is passed");
    assert_eq!(sites[2], None, "not a call");
}

/// The kernel refuses a load through a scalar, and one instruction that loads through the
/// context on one path and through another pointer on another (`reg_type_mismatch_ok()` is
/// false for PTR_TO_CTX). So a 32-bit load whose base is the context on one path and a scalar
/// on the other is a context load wherever the kernel accepts the program: no zero-extension,
/// as in the kernel. The context on one path and another pointer (a helper's r0) on the other
/// stays unclassified and zero-extended.
#[test]
fn no_zext_after_a_load_whose_base_is_the_context_or_a_scalar() {
    use bpfpatch_insn::{CallKind, Cond};
    // 0: r6 = r1; 1: if r1 == 0 goto 4; 2: r0 = 7 | call 1; 3: r6 = r0;
    // 4: r2 = *(u32 *)(r6 + 0); 5: r0 = r2; 6: exit
    let with = |other: Op| {
        vec![
            Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(6), src: Operand::Reg(r(1)) },
            jmp(Cond::Eq, 1, Operand::Imm(0), 2),
            other,
            Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(6), src: Operand::Reg(r(0)) },
            Op::Load { size: Size::W, signed: false, dst: r(2), src: r(6), off: 0 },
            Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(0), src: Operand::Reg(r(2)) },
            Op::Exit,
        ]
    };
    let zexts = |ops: &[Op]| run("zext", ops).iter().filter(|o| matches!(o, Op::Zext { .. })).count();
    assert_eq!(zexts(&with(mov(0, 7))), 0, "the context or a scalar");
    assert_eq!(zexts(&with(Op::Call(CallKind::Helper(1)))), 1, "the context or a helper's r0");
}

/// `cls_redirect`'s pattern within one frame: the context spilled to fp-8, then a helper
/// handed fp-16 (`bpf_skb_load_bytes` into a buffer below it) may write scalars over fp-8;
/// the context read back from fp-8 is the context or a scalar, so the 32-bit load through it
/// is a context load (no zero-extension). A narrow store over fp-8 leaves a scalar there
/// too; a helper's r0 stored there is another pointer (zero-extended).
#[test]
fn no_zext_after_a_load_through_a_spilled_context_helpers_wrote_scalars_near() {
    use bpfpatch_insn::{CallKind, Cond};
    // *(u64 *)(r10 - 8) = r1; if r1 == 0 goto L; <tail>; L: r3 = *(u64 *)(r10 - 8);
    // r4 = *(u32 *)(r3 + 76); r0 = r4; exit
    let with = |tail: &[Op]| {
        let mut ops = vec![
            Op::Store { size: Size::DW, dst: r(10), off: -8, src: Operand::Reg(r(1)) },
            jmp(Cond::Eq, 1, Operand::Imm(0), i16::try_from(tail.len()).unwrap()),
        ];
        ops.extend_from_slice(tail);
        ops.extend([
            Op::Load { size: Size::DW, signed: false, dst: r(3), src: r(10), off: -8 },
            Op::Load { size: Size::W, signed: false, dst: r(4), src: r(3), off: 76 },
            Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(0), src: Operand::Reg(r(4)) },
            Op::Exit,
        ]);
        ops
    };
    let zexts = |ops: &[Op]| run("zext", ops).iter().filter(|o| matches!(o, Op::Zext { .. })).count();
    let helper_writes = [
        Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(3), src: Operand::Reg(r(10)) },
        Op::Alu { width: Width::W64, op: AluOp::Add, dst: r(3), src: Operand::Imm(-16) },
        Op::Call(CallKind::Helper(26)),
    ];
    assert_eq!(zexts(&with(&helper_writes)), 0, "a helper writes scalars");
    let narrow = [Op::Store { size: Size::W, dst: r(10), off: -8, src: Operand::Imm(0) }];
    assert_eq!(zexts(&with(&narrow)), 0, "a narrow store writes a scalar");
    let pointer =
        [Op::Call(CallKind::Helper(1)), Op::Store { size: Size::DW, dst: r(10), off: -8, src: Operand::Reg(r(0)) }];
    assert_eq!(zexts(&with(&pointer)), 1, "a helper's r0 may be a pointer");
}
