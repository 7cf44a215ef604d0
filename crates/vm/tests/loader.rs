//! The loader's checks: each rule rejects its violation with the slot, and accepts what the
//! conformance vectors need.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use bpfpatch_insn::{AluOp, Cond, Insn, LdImm64Kind, Op, Reg, Size, Slot, Width};
use bpfpatch_vm::{LoadError, LoadOptions, LoadedProgram, verify};
use common::*;

const W64: Width = Width::W64;

fn err(ops: &[Op]) -> LoadError {
    match load(ops) {
        Ok(_) => panic!("expected rejection"),
        Err(e) => e,
    }
}

#[test]
fn undecodable_slots_are_rejected_with_their_slot() {
    let mut s = slots(&[mov(R0, 0), EXIT]);
    s.insert(1, Insn::new(0xff, 0, 0, 0, 0));
    let e = LoadedProgram::load(&s, &LoadOptions::default()).unwrap_err();
    assert_eq!(e.slot(), Some(Slot(1)));
    assert!(e.to_string().contains("Invalid"), "{e}");
    // Reserved field set: add64 imm with a src register.
    let s = [Insn::new(0x07, 0, 1, 0, 1), Insn::new(0x95, 0, 0, 0, 0)];
    assert!(matches!(LoadedProgram::load(&s, &LoadOptions::default()), Err(LoadError::Decode(_))));
}

#[test]
fn empty_programs_are_rejected() {
    assert_eq!(LoadedProgram::load(&[], &LoadOptions::default()).unwrap_err(), LoadError::Empty);
}

#[test]
fn targets_must_be_inside_the_program() {
    assert!(matches!(
        err(&[mov(R0, 0), ja(5), EXIT]),
        LoadError::TargetOutOfRange { slot: Slot(1), target: 7, len: 3 }
    ));
    assert!(matches!(err(&[mov(R0, 0), ja(-3), EXIT]), LoadError::TargetOutOfRange { target: -1, .. }));
    assert!(matches!(err(&[mov(R0, 0), jmp(W64, Cond::Eq, R0, 0, 1), EXIT]), LoadError::TargetOutOfRange { .. }));
    assert!(matches!(err(&[mov(R0, 0), call_local(4), EXIT]), LoadError::TargetOutOfRange { .. }));
    assert!(matches!(err(&[mov(R0, 0), Op::MayGoto { off: 9 }, EXIT]), LoadError::TargetOutOfRange { .. }));
    assert!(matches!(
        err(&[mov(R0, 0), Op::Ja { delta: 1 << 20, long: true }, EXIT]),
        LoadError::TargetOutOfRange { .. }
    ));
    let f = Op::LdImm64 { dst: R3, kind: LdImm64Kind::Func, lo: 10, hi: 0 };
    assert!(matches!(err(&[f, mov(R0, 0), EXIT]), LoadError::TargetOutOfRange { slot: Slot(0), .. }));
}

#[test]
fn targets_must_not_enter_an_ld_imm64() {
    // 0: ja +1 -> slot 2, the second half of the ld_imm64 at slot 1.
    let e = err(&[ja(1), lddw(R0, 1), EXIT]);
    assert_eq!(e, LoadError::TargetInLdImm64 { slot: Slot(0), target: 2 });
    assert!(matches!(err(&[mov(R0, 0), call_local(1), lddw(R0, 1), EXIT]), LoadError::TargetInLdImm64 { .. }));
}

#[test]
fn control_must_not_fall_off_the_end() {
    assert_eq!(err(&[mov(R0, 0)]), LoadError::FallsOffEnd { slot: Slot(0) });
    assert!(matches!(err(&[mov(R0, 0), EXIT, jmp(W64, Cond::Eq, R0, 0, -2)]), LoadError::FallsOffEnd { .. }));
    assert!(matches!(err(&[mov(R0, 0), EXIT, call(5)]), LoadError::FallsOffEnd { .. }));
    // exit-not-last is fine: a final unconditional jump.
    assert!(load(&[mov(R0, 0), ja(1), EXIT, ja(-2)]).is_ok());
    assert!(load(&[mov(R0, 0), EXIT, Op::Ja { delta: -2, long: true }]).is_ok());
}

#[test]
fn r10_is_read_only() {
    for op in [
        mov(R10, 0),
        alu(W64, AluOp::Add, R10, 8),
        lddw(R10, 0),
        ldx(Size::DW, R10, R1, 0),
        Op::Swap { kind: bpfpatch_insn::SwapKind::Be, bits: 16, dst: R10 },
        atomic(Size::DW, bpfpatch_insn::AtomicOp::Xchg, R1, 0, R10),
    ] {
        let e = err(&[op, mov(R0, 0), EXIT]);
        assert_eq!(e, LoadError::WritesFramePointer { slot: Slot(0) }, "{op:?}");
        assert!(e.to_string().contains("Invalid"));
    }
    // Reading and storing through r10 is fine, as is a non-fetching atomic on the stack.
    assert!(
        load(&[
            st(Size::DW, R10, -8, 0),
            atomic(Size::DW, bpfpatch_insn::AtomicOp::Add { fetch: false }, R10, -8, R1),
            movr(R0, R10),
            EXIT
        ])
        .is_ok()
    );
}

#[test]
fn reading_an_uninitialized_register_is_rejected() {
    // The conformance vector negative/error.data: `or %r0, %r10; exit`.
    let e = err(&[alur(W64, AluOp::Or, R0, R10), EXIT]);
    assert_eq!(e, LoadError::Uninitialized { slot: Slot(0), reg: Reg::R0 });
    assert!(e.to_string().contains("Invalid"), "{e}");
    // exit reads r0.
    assert_eq!(err(&[EXIT]), LoadError::Uninitialized { slot: Slot(0), reg: Reg::R0 });
    // Defined on one path only: 0: if r1 == 0 goto 2; 1: r0 = 1; 2: exit.
    assert!(matches!(
        err(&[jmp(W64, Cond::Eq, R1, 0, 1), mov(R0, 1), EXIT]),
        LoadError::Uninitialized { slot: Slot(2), .. }
    ));
    // Defined on both paths.
    assert!(load(&[mov(R0, 0), jmp(W64, Cond::Eq, R1, 0, 1), mov(R0, 1), EXIT]).is_ok());
    // A loop that defines a register only in its body does not define it at the exit.
    let looped = [mov(R3, 3), add(R3, -1), jmp(W64, Cond::Eq, R3, 0, 2), mov(R0, 1), ja(-4), EXIT];
    assert!(matches!(err(&looped), LoadError::Uninitialized { reg: Reg::R0, .. }));
    // The zeroing idioms (blinding's `mov r0, 0` -> `xor r0, r0`) define without reading,
    // in both widths; with another register they read both.
    for w in [Width::W32, W64] {
        assert!(load(&[alur(w, AluOp::Xor, R0, R0), EXIT]).is_ok());
        assert!(load(&[alur(w, AluOp::Sub, R0, R0), EXIT]).is_ok());
        assert!(matches!(err(&[alur(w, AluOp::Xor, R0, R3), EXIT]), LoadError::Uninitialized { .. }));
    }
    assert!(matches!(err(&[alur(W64, AluOp::Or, R0, R0), EXIT]), LoadError::Uninitialized { .. }));
    // r1, r2, r10 are defined at entry; the others are not.
    assert!(load(&[movr(R0, R1), alur(W64, AluOp::Add, R0, R2), alur(W64, AluOp::Add, R0, R10), EXIT]).is_ok());
    for r in [R3, R4, R5, R6, R7, R8, R9] {
        assert!(matches!(err(&[movr(R0, r), EXIT]), LoadError::Uninitialized { .. }), "{r}");
    }
    // Stores read their base and source; loads their base.
    assert!(matches!(
        err(&[stx(Size::DW, R10, -8, R3), mov(R0, 0), EXIT]),
        LoadError::Uninitialized { reg: Reg::R3, .. }
    ));
    assert!(matches!(err(&[ldx(Size::DW, R0, R4, 0), EXIT]), LoadError::Uninitialized { reg: Reg::R4, .. }));
    // cmpxchg reads r0.
    let cx = atomic(Size::DW, bpfpatch_insn::AtomicOp::Cmpxchg, R10, -8, R1);
    assert!(matches!(err(&[cx, EXIT]), LoadError::Uninitialized { reg: Reg::R0, .. }));
    // Unreachable code is not checked.
    assert!(load(&[mov(R0, 0), EXIT, movr(R0, R7), EXIT]).is_ok());
    // The check can be switched off.
    let s = slots(&[EXIT]);
    assert!(LoadedProgram::load(&s, &LoadOptions::default().with_check_uninit(false)).is_ok());
    assert!(verify(&s, &LoadOptions::default()).is_err());
}

#[test]
fn calls_define_r0_and_callees_start_with_arguments() {
    // Helper calls do not require their arguments (arity unknown) and define r0.
    assert!(load(&[mov(R1, 1), call(5), EXIT]).is_ok());
    assert!(load(&[call(5), EXIT]).is_ok());
    // callx requires its register.
    assert!(matches!(err(&[Op::Callx(R3), mov(R0, 0), EXIT]), LoadError::Uninitialized { reg: Reg::R3, .. }));
    // A callee sees r1-r5 defined, but not r6-r9.
    let ok = [call_local(1), EXIT, movr(R0, R5), EXIT];
    assert!(load(&ok).is_ok());
    let bad = [mov(R6, 1), call_local(1), EXIT, movr(R0, R6), EXIT];
    assert!(matches!(err(&bad), LoadError::Uninitialized { slot: Slot(3), reg: Reg::R6 }));
    // r6-r9 survive a call in the caller (callee-saved), r1-r5 too (lenient).
    assert!(
        load(&[mov(R6, 1), mov(R3, 2), call_local(2), alur(W64, AluOp::Add, R0, R3), EXIT, mov(R0, 0), EXIT]).is_ok()
    );
}

#[test]
fn kernel_internal_forms_need_the_option() {
    let prog = [alu(W64, AluOp::Mov, AX, 1), movr(R0, AX), EXIT];
    assert!(matches!(err(&prog), LoadError::Decode(_)));
    assert!(load_internal(&prog).is_ok());
    assert!(matches!(err(&[Op::Nospec, mov(R0, 0), EXIT]), LoadError::Decode(_)));
    // AX is not defined at entry.
    assert!(matches!(load_internal(&[movr(R0, AX), EXIT]), Err(LoadError::Uninitialized { reg: Reg::AX, .. })));
}

#[test]
fn load_reports_sizes() {
    let p = load(&[lddw(R0, 1), EXIT]).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p.slot_count(), 3);
    assert!(!p.is_empty());
}

/// Linux does not check r0 at a subprogram's `exit` (the caller gets whatever r0 holds); it
/// does at the main program's.
#[test]
fn a_subprogram_may_exit_with_r0_unset() {
    use bpfpatch_insn::{Insn, opcode as c};
    let call = Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, 1);
    let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    let mov0 = Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 7);
    // 0: call 2; 1: exit; 2: exit (r0 unset in the callee)
    assert!(bpfpatch_vm::LoadedProgram::load(&[call, exit, exit], &bpfpatch_vm::LoadOptions::default()).is_ok());
    // The main program's exit with r0 unset is still refused.
    let e = bpfpatch_vm::LoadedProgram::load(&[exit], &bpfpatch_vm::LoadOptions::default()).unwrap_err();
    assert!(matches!(e, bpfpatch_vm::LoadError::Uninitialized { .. }), "{e:?}");
    assert!(bpfpatch_vm::LoadedProgram::load(&[mov0, exit], &bpfpatch_vm::LoadOptions::default()).is_ok());
}

/// The Linux profile rejects constant shifts by the width or more or by a negative amount, and
/// `callx`; the default (RFC 9669) accepts them.
#[test]
fn the_linux_profile_rejects_what_linux_rejects() {
    use bpfpatch_insn::{Insn, opcode as c};
    let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    let mov0 = Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 7);
    let linux = bpfpatch_vm::LoadOptions::default().with_linux(true);
    for (insn, ok) in [
        (Insn::new(c::ALU64 | c::LSH | c::K, 0, 0, 0, 63), true),
        (Insn::new(c::ALU64 | c::LSH | c::K, 0, 0, 0, 64), false),
        (Insn::new(c::ALU | c::RSH | c::K, 0, 0, 0, 31), true),
        (Insn::new(c::ALU | c::RSH | c::K, 0, 0, 0, 32), false),
        (Insn::new(c::ALU64 | c::ARSH | c::K, 0, 0, 0, -1), false),
        (Insn::new(c::JMP | c::CALL | c::X, 0, 0, 0, 0), false),
    ] {
        let p = [mov0, insn, exit];
        assert!(
            bpfpatch_vm::LoadedProgram::load(&p, &bpfpatch_vm::LoadOptions::default()).is_ok()
                || insn.code == c::JMP | c::CALL | c::X
        );
        let got = bpfpatch_vm::LoadedProgram::load(&p, &linux);
        assert_eq!(got.is_ok(), ok, "{insn:?}: {got:?}");
        if !ok {
            assert!(matches!(got, Err(bpfpatch_vm::LoadError::RejectedByLinux { .. })), "{got:?}");
        }
    }
}
