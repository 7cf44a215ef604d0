//! The pipeline end to end: exact output of each pass on small programs (the kernel's sequence
//! where the kernel defines one), pipeline parsing and ordering, and typed errors.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::Operand::Imm;
use bpfpatch_insn::Width::W64;
use bpfpatch_insn::{AluOp, Cond, Insn, Op, Reg, Size};
use bpfpatch_passes::internals::blind::{BlindRng, SplitMix64};
use bpfpatch_passes::internals::emit::RewriteError;
use bpfpatch_passes::internals::fixups::BPF_MAX_LOOPS;
use bpfpatch_passes::{LdAbsPolicy, MayGotoForm, Options, Pass, PassError, PassStats, Pipeline, transform};
use common::*;

fn run(spec: &str, ops: &[Op]) -> Vec<Insn> {
    transform(&enc(ops), &Pipeline::parse(spec).unwrap(), &Options::default()).unwrap()
}

fn ax() -> Reg {
    Reg::AX
}

#[test]
fn dce_hard_wires_removes_dead_code_subprograms_and_nops() {
    let out = run(
        "dce",
        &[
            mov64(0, 0),             // 0
            jmp(Cond::Eq, 0, 0, 2),  // 1 always taken -> goto 4 -> lands on 5: a no-op goto
            call_local(4),           // 2 dead: the only call of subprogram 7
            mov64(0, 1),             // 3 dead
            ja(0),                   // 4 nop
            alu64(AluOp::Add, 0, 2), // 5
            exit(),                  // 6
            mov64(0, 42),            // 7 dead subprogram
            exit(),                  // 8
        ],
    );
    assert_eq!(out, enc(&[mov64(0, 0), alu64(AluOp::Add, 0, 2), exit()]));
    // A taken branch over live code becomes a goto (the kernel's hard-wiring).
    let out = run("dce", &[mov64(1, 3), jmp(Cond::Gt, 1, 2, 2), mov64(0, 1), exit(), mov64(0, 2), exit()]);
    assert_eq!(out, enc(&[mov64(1, 3), mov64(0, 2), exit()]), "goto over dead code is a no-op too");
    let out = run(
        "dce",
        &[
            mov64(1, 3),
            jmp(Cond::Eq, 2, 0, 1), // unknown
            mov64(1, 4),
            jmp(Cond::Gt, 1, 2, 1), // r1 is 3 or 4: unknown
            mov64(0, 1),
            exit(),
        ],
    );
    assert_eq!(out.len(), 6, "nothing decidable");
    let out =
        run("dce", &[mov64(1, 3), jmp(Cond::Ne, 2, 0, 2), jmp(Cond::Ge, 1, 3, 2), mov64(0, 1), mov64(0, 2), exit()]);
    // 2 is always taken (r1 = 3 >= 3): hard-wired to `goto 5`; 3 is dead (only 2 falls into
    // it); 4 is reached from 1, so the goto now jumps over it.
    assert_eq!(out, enc(&[mov64(1, 3), jmp(Cond::Ne, 2, 0, 1), ja(1), mov64(0, 2), exit()]));
}

#[test]
fn fixups_output_is_the_kernels() {
    // chk_and_div
    let out = run("fixups", &[mov64(0, 7), mov64(1, 0), alu64r(AluOp::Div, 0, 1), exit()]);
    assert_eq!(
        out,
        enc(&[
            mov64(0, 7),
            mov64(1, 0),
            jmp(Cond::Ne, 1, 0, 2),
            alu32r(AluOp::Xor, 0, 0),
            ja(1),
            alu64r(AluOp::Div, 0, 1),
            exit()
        ])
    );
    // may_goto, counted form: its counter initialised before the first instruction (depth 0 -> fp-8)
    let counted = Options { may_goto: MayGotoForm::Counted, ..Options::default() };
    let run_counted = |ops: &[Op]| transform(&enc(ops), &Pipeline::parse("fixups").unwrap(), &counted).unwrap();
    let out = run_counted(&[mov64(0, 0), Op::MayGoto { off: 1 }, alu64(AluOp::Add, 0, 1), exit()]);
    assert_eq!(
        out,
        enc(&[
            st(Size::DW, 10, -8, BPF_MAX_LOOPS),
            mov64(0, 0),
            Op::Load { size: Size::DW, signed: false, dst: ax(), src: r(10), off: -8 },
            Op::Jump {
                width: bpfpatch_insn::Width::W64,
                cond: Cond::Eq,
                dst: ax(),
                src: bpfpatch_insn::Operand::Imm(0),
                off: 3
            },
            Op::Alu {
                width: bpfpatch_insn::Width::W64,
                op: AluOp::Sub,
                dst: ax(),
                src: bpfpatch_insn::Operand::Imm(1)
            },
            Op::Store { size: Size::DW, dst: r(10), off: -8, src: bpfpatch_insn::Operand::Reg(ax()) },
            alu64(AluOp::Add, 0, 1),
            exit(),
        ])
    );
    // the counter goes below the subprogram's own stack (16 bytes here: fp-24)
    let out = run_counted(&[st(Size::DW, 10, -16, 1), Op::MayGoto { off: 0 }, mov64(0, 0), exit()]);
    assert_eq!(out[0], st(Size::DW, 10, -24, BPF_MAX_LOOPS).encode().first());
}

/// The timed `may_goto` of Linux 6.15+ `do_misc_fixups` (the default form), written out from
/// the kernel's source: `stack_off_cnt = -stack_depth - 16`; `BPF_LDX_MEM(DW, AX, FP, cnt)`,
/// `BPF_JMP_IMM(JEQ, AX, 0, off >= 0 ? off + 5 : off - 1)`, `BPF_ALU64_IMM(SUB, AX, 1)`,
/// `BPF_JMP_IMM(JNE, AX, 0, 2)`, `BPF_MOV64_IMM(AX, cnt)`, `BPF_EMIT_CALL(arch_bpf_timed_may_goto)`,
/// `BPF_STX_MEM(DW, FP, AX, cnt)`; at each subprogram's entry `BPF_ST_MEM(DW, FP, -stack_depth,
/// BPF_MAX_TIMED_LOOPS)` and `BPF_ST_MEM(DW, FP, -stack_depth + 8, 0)` (its depth now 16 more),
/// with jumps to the entry moved past both (`adjust_jmp_off(.., 2)`).
#[test]
fn timed_may_goto_is_the_kernels() {
    const CNT: i16 = -16;
    let call = Op::Call(bpfpatch_insn::CallKind::Helper(bpfpatch_insn::TIMED_MAY_GOTO_HELPER));
    let expansion = |jeq_off: i16| {
        [
            Op::Load { size: Size::DW, signed: false, dst: ax(), src: r(10), off: CNT },
            Op::Jump { width: W64, cond: Cond::Eq, dst: ax(), src: Imm(0), off: jeq_off },
            Op::Alu { width: W64, op: AluOp::Sub, dst: ax(), src: Imm(1) },
            Op::Jump { width: W64, cond: Cond::Ne, dst: ax(), src: Imm(0), off: 2 },
            Op::Alu { width: W64, op: AluOp::Mov, dst: ax(), src: Imm(i32::from(CNT)) },
            call,
            Op::Store { size: Size::DW, dst: r(10), off: CNT, src: bpfpatch_insn::Operand::Reg(ax()) },
        ]
    };
    let init = [st(Size::DW, 10, CNT, 0xffff), st(Size::DW, 10, CNT + 8, 0)];
    // Forward: `may_goto +1` jumps over `r0 += 1` (off + 5 = 6).
    let out = run("fixups", &[mov64(0, 0), Op::MayGoto { off: 1 }, alu64(AluOp::Add, 0, 1), exit()]);
    let mut want = init.to_vec();
    want.push(mov64(0, 0));
    want.extend(expansion(6));
    want.extend([alu64(AluOp::Add, 0, 1), exit()]);
    assert_eq!(out, enc(&want));
    // Backward, to the entry: `may_goto -2` at 1 targets slot 0 (off - 1 = -3 lands on the
    // `mov` after the two stores); the loop's `ja` to the entry skips the stores too.
    let out = run("fixups", &[mov64(0, 0), Op::MayGoto { off: -2 }, ja(-3), exit()]);
    let mut want = init.to_vec();
    want.push(mov64(0, 0));
    want.extend(expansion(-3));
    want.extend([ja(-9), exit()]);
    assert_eq!(out, enc(&want));
    // Below a 12-byte frame (rounded to 16, as the verifier's grow_stack_state does): the pair at fp-32, fp-24.
    let out = run("fixups", &[st(Size::W, 10, -12, 1), Op::MayGoto { off: 0 }, mov64(0, 0), exit()]);
    assert_eq!(out[..2], enc(&[st(Size::DW, 10, -32, 0xffff), st(Size::DW, 10, -24, 0)])[..]);
}

#[test]
fn zext_and_rnd_hi32_exact_output() {
    let out = run(
        "zext,rnd-hi32",
        &[
            mov32(0, 5), // upper read by add64: zext
            alu64(AluOp::Add, 0, 1),
            mov32(2, 3), // only a 32-bit store reads it: random upper half
            stx(Size::W, 10, -4, 2),
            exit(),
        ],
    );
    let rnd = SplitMix64::new(Options::default().seed).next_u32() as i32;
    assert_eq!(
        out,
        enc(&[
            mov32(0, 5),
            Op::Zext { dst: r(0) },
            alu64(AluOp::Add, 0, 1),
            mov32(2, 3),
            Op::Alu {
                width: bpfpatch_insn::Width::W64,
                op: AluOp::Mov,
                dst: ax(),
                src: bpfpatch_insn::Operand::Imm(rnd)
            },
            Op::Alu {
                width: bpfpatch_insn::Width::W64,
                op: AluOp::Lsh,
                dst: ax(),
                src: bpfpatch_insn::Operand::Imm(32)
            },
            Op::Alu {
                width: bpfpatch_insn::Width::W64,
                op: AluOp::Or,
                dst: r(2),
                src: bpfpatch_insn::Operand::Reg(ax())
            },
            stx(Size::W, 10, -4, 2),
            exit(),
        ])
    );
    // Only zext: the random half is not written.
    assert_eq!(run("zext", &[mov32(2, 3), stx(Size::W, 10, -4, 2), mov64(0, 0), exit()]).len(), 4);
}

#[test]
fn blind_output_and_jump_targets_survive_other_passes() {
    let out = run("blind", &[mov64(0, 5), exit()]);
    let rnd = SplitMix64::new(Options::default().seed).next_u32() as i32;
    let w64 = bpfpatch_insn::Width::W64;
    let imm = bpfpatch_insn::Operand::Imm;
    assert_eq!(
        out,
        enc(&[
            Op::Alu { width: w64, op: AluOp::Mov, dst: ax(), src: imm(rnd ^ 5) },
            Op::Alu { width: w64, op: AluOp::Xor, dst: ax(), src: imm(rnd) },
            Op::Alu { width: w64, op: AluOp::Mov, dst: r(0), src: bpfpatch_insn::Operand::Reg(ax()) },
            exit(),
        ])
    );
    // a blinded backward conditional jump still reaches its target after other insertions
    let prog = [mov64(0, 0), alu64(AluOp::Add, 0, 1), jmp(Cond::Lt, 0, 5, -2), exit()];
    let out = run("fixups,zext,rnd-hi32,blind", &prog);
    let vm = |insns: &[Insn]| {
        let p = bpfpatch_vm::LoadedProgram::load(insns, &bpfpatch_vm::LoadOptions::INTERNAL.with_check_uninit(false))
            .unwrap();
        bpfpatch_vm::Vm::new(Default::default()).unwrap().run(&p, bpfpatch_vm::Input::default()).unwrap().r0
    };
    assert_eq!(vm(&out), 5);
}

#[test]
fn lower_v4_in_the_pipeline() {
    // gotol over an sdiv: lowered to goto, sdiv lowered to a v3 sequence
    let out = run(
        "lower-v4",
        &[mov64(0, -7), Op::Ja { delta: 1, long: true }, alu64(AluOp::SDiv, 0, 0), alu64(AluOp::SDiv, 0, 2), exit()],
    );
    let ops = bpfpatch_insn::decode_program(&out, bpfpatch_insn::DecodeOptions::INTERNAL).unwrap();
    assert!(ops.iter().all(|(_, op)| !bpfpatch_passes::internals::lower_v4::uses_v4(op)));
    assert_eq!(ops[1].1, Op::Ja { delta: 1, long: false }, "the goto skips the whole lowered sdiv by 0");
    let p = bpfpatch_vm::LoadedProgram::load(&out, &bpfpatch_vm::LoadOptions::INTERNAL).unwrap();
    assert_eq!(
        bpfpatch_vm::Vm::new(Default::default()).unwrap().run(&p, bpfpatch_vm::Input::default()).unwrap().r0,
        (-3i64) as u64
    );
}

#[test]
fn parsing_orders_and_names_passes() {
    let p = Pipeline::parse("rnd-hi32, zext,fixups,dce").unwrap();
    assert_eq!(p.passes(), &[Pass::Dce, Pass::Fixups, Pass::Zext, Pass::RndHi32]);
    assert_eq!(Pipeline::parse("blind,dce").unwrap().passes(), &[Pass::Dce, Pass::Blind]);
    assert_eq!(Pipeline::parse("all").unwrap(), Pipeline::all());
    assert_eq!(Pipeline::from_cli("all", true).unwrap(), Pipeline::all().with(Pass::Blind));
    assert!(Pipeline::parse("").unwrap().passes().is_empty());
    assert!(Pipeline::parse("none").unwrap().passes().is_empty());
    assert!(matches!(Pipeline::parse("dce,bogus"), Err(PassError::UnknownPass { name }) if name == "bogus"));
    for &p in Pass::ORDER {
        assert_eq!(Pass::from_name(p.name()), Some(p));
    }
    // `all` adds lower-v4 only to programs that use v4
    let v3 = bpfpatch_passes::internals::program::DecodedProgram::decode(&enc(&[mov64(0, 0), exit()])).unwrap();
    let v4 = bpfpatch_passes::internals::program::DecodedProgram::decode(&enc(&[
        mov64(0, 0),
        alu64(AluOp::SMod, 0, 3),
        exit(),
    ]))
    .unwrap();
    let passes_for = bpfpatch_passes::internals::passes_for;
    assert!(!passes_for(&Pipeline::all(), &v3).contains(&Pass::LowerV4));
    assert!(passes_for(&Pipeline::all(), &v4).contains(&Pass::LowerV4));
    // the empty pipeline is the identity
    let insns = enc(&[mov64(0, 1), jmp(Cond::Eq, 1, 0, 1), exit(), exit()]);
    assert_eq!(transform(&insns, &Pipeline::default(), &Options::default()).unwrap(), insns);
}

#[test]
fn passes_that_cannot_apply_return_typed_errors() {
    let p = |s: &str| Pipeline::parse(s).unwrap();
    let o = Options::default();
    // LD_ABS in a program with bpf-to-bpf calls
    let e = transform(
        &enc(&[
            mov64r(6, 1),
            call_local(2),
            Op::LdPacket { size: Size::B, index: None, imm: 0 },
            exit(),
            mov64(0, 0),
            exit(),
        ]),
        &p("fixups"),
        &o,
    );
    assert!(matches!(e, Err(PassError::LdAbsWithCalls { slot }) if slot.0 == 2), "{e:?}");
    // may_goto where the stack depth is unknown (fp + unknown offset)
    let e = transform(
        &enc(&[
            mov64r(3, 10),
            alu64r(AluOp::Add, 3, 2),
            st(Size::B, 3, -1, 0),
            Op::MayGoto { off: 0 },
            mov64(0, 0),
            exit(),
        ]),
        &p("fixups"),
        &o,
    );
    assert!(matches!(e, Err(PassError::StackDepthUnknown { slot }) if slot.0 == 3), "{e:?}");
    // a frame above the verifier's 512 bytes gets no counter (a full one does: below it, as the
    // kernel's; tests/golden.rs, and the CLI's tests/data/may-goto against the running kernel)
    let full = [st(Size::DW, 10, -512, 0), Op::MayGoto { off: 0 }, mov64(0, 0), exit()];
    assert!(transform(&enc(&full), &p("fixups"), &o).is_ok());
    let e =
        transform(&enc(&[st(Size::DW, 10, -520, 0), Op::MayGoto { off: 0 }, mov64(0, 0), exit()]), &p("fixups"), &o);
    assert!(
        matches!(e, Err(PassError::Rewrite { pass: Pass::Fixups, source: RewriteError::StackTooDeep { .. }, .. })),
        "{e:?}"
    );
    // control can fall off the end
    let e = transform(&enc(&[mov64(0, 0), jmp(Cond::Eq, 1, 0, 1), exit(), mov64(0, 1)]), &p("dce"), &o);
    assert!(matches!(e, Err(PassError::FallsOffEnd { slot }) if slot.0 == 3), "{e:?}");
    // gotol beyond 16 bits stays gotol (tests/loadable.rs)
    let mut ops = vec![mov64(0, 0), Op::Ja { delta: 40_000, long: true }];
    ops.extend(std::iter::repeat_n(mov64(0, 1), 40_000));
    ops.push(exit());
    let e = transform(&enc(&ops), &p("lower-v4"), &o);
    assert!(e.is_ok(), "{e:?}");
    // a program that does not decode
    let e = transform(&[Insn::new(0xff, 0, 0, 0, 0)], &p("dce"), &o);
    assert!(matches!(e, Err(PassError::Analysis(_))), "{e:?}");
    // a jump that overflows after insertions, without relaxation
    let mut ops = vec![mov64(0, 0), jmp(Cond::Eq, 1, 0, 32_000)];
    ops.extend(std::iter::repeat_n(mov64(0, 1), 32_000));
    ops.push(exit());
    let e = transform(&enc(&ops), &p("blind"), &o);
    assert!(matches!(e, Err(PassError::Engine { pass: "linearize", .. })), "{e:?}");
}

/// An empty program (an object's empty `.text`) is nothing to do: `run` gives an empty program
/// and `apply` reports every requested pass with nothing done, whatever the options.
#[test]
fn empty_program_is_nothing_to_do() {
    let opts = Options { entries: vec![bpfpatch_insn::Slot(0)], ..Options::default() };
    for spec in ["dce", "fixups", "zext", "dce,fixups,zext,blind", "all"] {
        let p = Pipeline::parse(spec).unwrap();
        let r = p.run(&[], &opts).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert!(r.insns.is_empty(), "{spec}");
        assert_eq!(r.map.new_len(), 0, "{spec}");
        let names: Vec<Pass> = r.stats.iter().map(|s| s.0).collect();
        assert_eq!(names, p.passes(), "{spec}: one entry per requested pass, in order");
        assert!(r.stats.iter().all(|s| s.1 == PassStats::default()), "{spec}: {:?}", r.stats);
        let mut list = bpfpatch_patch::PatchList::new(&[]).unwrap();
        let stats = p.apply(&mut list, &[], &opts).unwrap();
        assert_eq!(stats, r.stats, "{spec}");
        assert_eq!(list.live_len(), 0);
    }
}

/// `LD_ABS`/`LD_IND` in a program with bpf-to-bpf calls: refused by default, and under
/// `LdAbsPolicy::Keep` left exactly as they are (counted as skipped) while the rest of `fixups`
/// still applies. A program without calls is lowered under both policies.
#[test]
fn ld_abs_with_calls_is_refused_or_kept_by_policy() {
    let ld_abs = Op::LdPacket { size: Size::H, index: None, imm: 12 };
    let ld_ind = Op::LdPacket { size: Size::W, index: Some(r(7)), imm: 2 };
    let with_calls = [
        mov64r(6, 1),             // 0
        call_local(4),            // 1 -> 6
        ld_abs,                   // 2
        ld_ind,                   // 3
        alu64r(AluOp::Div, 0, 1), // 4: still guarded
        exit(),                   // 5
        mov64(0, 0),              // 6
        exit(),                   // 7
    ];
    let insns = enc(&with_calls);
    let fixups = Pipeline::parse("fixups").unwrap();
    let e = fixups.run(&insns, &Options::default());
    assert!(matches!(e, Err(PassError::LdAbsWithCalls { slot }) if slot.0 == 2), "{e:?}");
    let keep = Options { ld_abs_with_calls: LdAbsPolicy::Keep, ..Options::default() };
    let r = fixups.run(&insns, &keep).unwrap();
    assert_eq!(r.stats, [(Pass::Fixups, PassStats { patched: 1, skipped: 2, ..PassStats::default() })]);
    let mut want = with_calls.to_vec();
    want.splice(4..5, [jmp(Cond::Ne, 1, 0, 2), alu32r(AluOp::Xor, 0, 0), ja(1), alu64r(AluOp::Div, 0, 1)]);
    if let Op::Call(bpfpatch_insn::CallKind::Local(rel)) = &mut want[1] {
        *rel += 3; // the call now jumps over the guard
    }
    assert_eq!(r.insns, enc(&want));
    // A second entry point (another program of the section) makes subprograms too.
    let two_entries = enc(&[mov64r(6, 1), ld_abs, exit(), mov64r(6, 1), ld_ind, exit()]);
    let entries = vec![bpfpatch_insn::Slot(3)];
    let e = fixups.run(&two_entries, &Options { entries: entries.clone(), ..Options::default() });
    assert!(matches!(e, Err(PassError::LdAbsWithCalls { slot }) if slot.0 == 1), "{e:?}");
    let r = fixups.run(&two_entries, &Options { entries, ..keep.clone() }).unwrap();
    assert_eq!((r.insns, r.stats[0].1.skipped), (two_entries, 2));
    // The whole object pipeline keeps them too (zext and blinding leave them alone).
    let r = Pipeline::parse("dce,fixups,zext,blind").unwrap().run(&insns, &keep).unwrap();
    let kept: Vec<Op> = bpfpatch_insn::decode_program(&r.insns, bpfpatch_insn::DecodeOptions::INTERNAL)
        .unwrap()
        .into_iter()
        .map(|(_, op)| op)
        .filter(|op| matches!(op, Op::LdPacket { .. }))
        .collect();
    assert_eq!(kept, [ld_abs, ld_ind]);
    // Without calls the policy does not matter: lowered (the helper call replaces it).
    let no_calls = enc(&[mov64r(6, 1), ld_abs, exit()]);
    let a = fixups.run(&no_calls, &Options::default()).unwrap();
    let b = fixups.run(&no_calls, &keep).unwrap();
    assert_eq!(a.insns, b.insns);
    assert_eq!(b.stats, [(Pass::Fixups, PassStats { patched: 1, ..PassStats::default() })]);
    assert!(a.insns.len() > no_calls.len(), "lowered");
}

/// Each pass reports what it did in `Rewritten::stats` (public, and the CLI's `--json`): the
/// counts on hand-built programs, each derived by hand in the comments from the pass's rules.
#[test]
fn every_pass_reports_its_counts() {
    let stats = |spec: &str, ops: &[Op], opts: &Options| {
        Pipeline::parse(spec).unwrap().run(&enc(ops), opts).unwrap_or_else(|e| panic!("{spec}: {e}")).stats
    };
    let o = Options::default();
    let none = PassStats::default();

    // dce: 1 is always taken (r0 = 0) and would be hard-wired to `goto 4`, but that lands on the
    // next survivor (5), so it is deleted; 2 and 3 are dead, 4 is `ja 0`, 7-8 an uncalled
    // subprogram: deleted = 6 (the runs 1..=4 and 7..=8), rewritten = 0.
    let prog = [
        mov64(0, 0),             // 0
        jmp(Cond::Eq, 0, 0, 2),  // 1
        call_local(4),           // 2
        mov64(0, 1),             // 3
        ja(0),                   // 4
        alu64(AluOp::Add, 0, 2), // 5
        exit(),                  // 6
        mov64(0, 42),            // 7
        exit(),                  // 8
    ];
    assert_eq!(stats("dce", &prog, &o), [(Pass::Dce, PassStats { deleted: 6, ..none })]);
    // 2 is always taken (r1 = 3 >= 3) over the live 4: hard-wired (rewritten = 1); 3 is only
    // reached from 2's fall-through: deleted = 1.
    let prog = [mov64(1, 3), jmp(Cond::Ne, 2, 0, 2), jmp(Cond::Ge, 1, 3, 2), mov64(0, 1), mov64(0, 2), exit()];
    assert_eq!(stats("dce", &prog, &o), [(Pass::Dce, PassStats { rewritten: 1, deleted: 1, ..none })]);

    // blind: mov 5, add 7, mov 0 (as xor64) and the jump on an immediate are blinded; the
    // shift, the register move and exit are not: patched = 4.
    let prog = [
        mov64(0, 5),
        alu64(AluOp::Add, 0, 7),
        alu64(AluOp::Lsh, 0, 1),
        mov64(1, 0),
        jmp(Cond::Eq, 0, 3, 1),
        mov64r(0, 1),
        exit(),
    ];
    assert_eq!(stats("blind", &prog, &o), [(Pass::Blind, PassStats { patched: 4, ..none })]);

    // ctx with the example layout (a one-instruction prologue): the load of `len` and the
    // store to `mark` through r1 are converted, the stack accesses are not: patched = 2,
    // prepatched = 1.
    let layout = bpfpatch_passes::internals::ctx::example_layout();
    assert_eq!(layout.prologue().len(), 1);
    let ctx_opts = Options { ctx_layout: Some(layout), ..Options::default() };
    let prog =
        [st(Size::DW, 10, -8, 1), ldx(Size::W, 0, 1, 0), stx(Size::W, 1, 4, 0), ldx(Size::DW, 2, 10, -8), exit()];
    assert_eq!(stats("ctx", &prog, &ctx_opts), [(Pass::Ctx, PassStats { patched: 2, prepatched: 1, ..none })]);

    // fixups: two may_goto (one per subprogram) and a division by a register are patched (3);
    // each subprogram that uses may_goto gets its pair initialised, two stores (the timed form):
    // prepatched = 4; one store each in the counted form: 2.
    let prog = [
        mov64(0, 0),              // 0
        Op::MayGoto { off: 0 },   // 1
        call_local(2),            // 2 -> 5
        alu64r(AluOp::Div, 0, 1), // 3
        exit(),                   // 4
        Op::MayGoto { off: 0 },   // 5
        mov64(0, 1),              // 6
        exit(),                   // 7
    ];
    assert_eq!(stats("fixups", &prog, &o), [(Pass::Fixups, PassStats { patched: 3, prepatched: 4, ..none })]);
    let counted = Options { may_goto: MayGotoForm::Counted, ..o.clone() };
    assert_eq!(stats("fixups", &prog, &counted), [(Pass::Fixups, PassStats { patched: 3, prepatched: 2, ..none })]);

    // lower-v4: the sdiv and the movsx are v4 (patched = 2), the rest is not.
    let prog = [
        mov64(0, -7),
        alu64(AluOp::SDiv, 0, 2),
        alu(bpfpatch_insn::Width::W64, AluOp::MovSx(8), 1, bpfpatch_insn::Operand::Reg(r(0))),
        alu64r(AluOp::Add, 0, 1),
        exit(),
    ];
    assert_eq!(stats("lower-v4", &prog, &o), [(Pass::LowerV4, PassStats { patched: 2, ..none })]);

    // zext / rnd-hi32: mov32 r0 is read as 64 bits by add64 (zext), mov32 r2 and mov32 r3 only
    // by 32-bit stores (random upper halves). zext alone patches 1; rnd-hi32 alone 2; together
    // zext does both (3) and rnd-hi32 reports nothing of its own.
    let prog = [
        mov32(0, 5),
        alu64(AluOp::Add, 0, 1),
        mov32(2, 3),
        stx(Size::W, 10, -4, 2),
        mov32(3, 4),
        stx(Size::W, 10, -8, 3),
        exit(),
    ];
    assert_eq!(stats("zext", &prog, &o), [(Pass::Zext, PassStats { patched: 1, ..none })]);
    assert_eq!(stats("rnd-hi32", &prog, &o), [(Pass::RndHi32, PassStats { patched: 2, ..none })]);
    assert_eq!(
        stats("zext,rnd-hi32", &prog, &o),
        [(Pass::Zext, PassStats { patched: 3, ..none }), (Pass::RndHi32, none)]
    );
}

/// `fixups` rewrites `call bpf_tail_call` (helper 12) into the kernel-internal tail call, as
/// `do_misc_fixups` does (`insn->imm = 0; insn->code = BPF_JMP | BPF_TAIL_CALL`: code
/// 0x05 | 0xf0, every other field 0); given the program array's size it puts the unprivileged
/// bound check before it: `if r3 >= max_entries goto +2; w3 &= index_mask; tail_call`, where
/// the array map's index_mask is the next power of two minus one (max_entries 5: 7).
#[test]
fn fixups_rewrites_bpf_tail_call_into_the_internal_tail_call() {
    let tail_call = Insn::new(0x05 | 0xf0, 0, 0, 0, 0);
    let prog = [mov64(3, 0), call_helper(12), mov64(0, 0), exit()];
    let out = run("fixups", &prog);
    assert_eq!(out, [enc(&prog[..1]), vec![tail_call], enc(&prog[2..])].concat());
    let opts = Options { tail_call_max_entries: Some(5), ..Options::default() };
    let out = transform(&enc(&prog), &Pipeline::parse("fixups").unwrap(), &opts).unwrap();
    let check = enc(&[mov64(3, 0), jmp(Cond::Ge, 3, 5, 2), alu32(AluOp::And, 3, 7)]);
    assert_eq!(out, [check, vec![tail_call], enc(&prog[2..])].concat());
    // another helper call is left alone
    let prog = [call_helper(1), exit()];
    assert_eq!(run("fixups", &prog), enc(&prog));
}

/// A jump to itself never reaches the next instruction, so it is no no-op whatever follows:
/// `dce` keeps it (deleting it would turn a program that never ends into one that does).
#[test]
fn dce_keeps_a_jump_to_itself() {
    // 0: r0 = 0; 1: if r2 == 0 goto 3 (r2 unknown); 2: goto 2; 3: exit
    let prog = [mov64(0, 0), jmp(Cond::Eq, 2, 0, 1), ja(-1), exit()];
    assert_eq!(run("dce", &prog), enc(&prog));
    // 0: r1 = 1; 1: if r2 == 0 goto 4; 2: if r1 == 1 goto 2 (always taken: hard-wired to a
    // goto to itself, which stays); 3: r0 = 1 (dead); 4: exit
    let prog = [mov64(1, 1), jmp(Cond::Eq, 2, 0, 2), jmp(Cond::Eq, 1, 1, -1), mov64(0, 1), exit()];
    assert_eq!(run("dce", &prog), enc(&[mov64(1, 1), jmp(Cond::Eq, 2, 0, 1), ja(-1), exit()]));
}

/// An input that already holds the kernel's zero-extension marker (`BPF_ZEXT_REG`, as an
/// xlated image does): the marker's result has a zero upper half by definition, so `zext` adds
/// nothing after it (and nothing after the `mov32` it extends, whose upper half only the marker
/// reads).
#[test]
fn zext_adds_nothing_after_an_existing_zero_extension() {
    let prog = [mov32(0, 5), Op::Zext { dst: r(0) }, alu64(AluOp::Add, 0, 1), exit()];
    assert_eq!(run("zext", &prog), enc(&prog));
}
