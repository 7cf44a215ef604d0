//! The machine around the instructions: memory regions and faults, frames and calls, helpers,
//! legacy packet loads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use bpfpatch_insn::{AluOp, CallKind, LdImm64Kind, Op, Size, Width};
use bpfpatch_vm::memory::{MEM_BASE, PACKET_BASE, STACK_TOP};
use bpfpatch_vm::{
    Access, CODE_BASE, HelperError, HelperReturn, Input, LoadOptions, LoadedProgram, Memory, Place, RunError, Vm,
    VmConfig,
};
use common::*;

const W64: Width = Width::W64;

fn run_err(ops: &[Op], mem: &mut [u8]) -> RunError {
    match run_with(ops, VmConfig::default(), mem) {
        Ok(o) => panic!("expected a fault, got r0 = {:#x}", o.r0),
        Err(e) => e,
    }
}

#[test]
fn entry_registers_follow_the_conformance_convention() {
    let mut mem = [1u8, 2, 3, 4, 5];
    let out = run_with(&[movr(R0, R1), EXIT], VmConfig::default(), &mut mem).unwrap();
    assert_eq!(out.r0, MEM_BASE);
    let out = run_with(&[movr(R0, R2), EXIT], VmConfig::default(), &mut mem).unwrap();
    assert_eq!(out.r0, 5);
    assert_eq!(r0(&[movr(R0, R1), EXIT]), 0, "r1 is 0 without memory");
    assert_eq!(r0(&[movr(R0, R10), EXIT]), STACK_TOP);
}

#[test]
fn input_memory_is_read_and_written_in_place() {
    let mut mem = [0x11u8, 0x22, 0x33, 0x44, 0, 0, 0, 0];
    let prog = [ldx(Size::W, R0, R1, 0), stx(Size::W, R1, 4, R0), st(Size::B, R1, 0, 0x7f), EXIT];
    let out = run_with(&prog, VmConfig::default(), &mut mem).unwrap();
    assert_eq!(out.r0, 0x4433_2211);
    assert_eq!(mem, [0x7f, 0x22, 0x33, 0x44, 0x11, 0x22, 0x33, 0x44]);
}

#[test]
fn out_of_bounds_accesses_are_typed_faults_naming_the_slot() {
    let mut mem = [0u8; 12];
    // Straddling the end of the memory area, at slot 1.
    let e = run_err(&[mov(R0, 0), ldx(Size::DW, R0, R1, 8), EXIT], &mut mem);
    match e {
        RunError::Memory { slot, fault } => {
            assert_eq!(slot.0, 1);
            assert_eq!(fault.addr, MEM_BASE + 8);
            assert_eq!(fault.size, 8);
            assert_eq!(fault.access, Access::Read);
            assert_eq!(fault.place, Place::Mem { offset: 8, len: 12 });
        }
        e => panic!("{e}"),
    }
    // Entirely past the end: still described as the memory region.
    match run_err(&[ldx(Size::B, R0, R1, 100), EXIT], &mut mem) {
        RunError::Memory { fault, .. } => assert_eq!(fault.place, Place::Mem { offset: 100, len: 12 }),
        e => panic!("{e}"),
    }
    // Slots count ld_imm64 as two: the store is at slot 2.
    let e = run_err(&[lddw(R3, 0), st(Size::B, R3, 0, 1), mov(R0, 0), EXIT], &mut mem);
    match e {
        RunError::Memory { slot, fault } => {
            assert_eq!(slot.0, 2);
            assert_eq!(fault.access, Access::Write);
            assert_eq!(fault.place, Place::Unmapped);
        }
        e => panic!("{e}"),
    }
    // Above the frame pointer and below the frame.
    assert!(matches!(run_err(&[ldx(Size::B, R0, R10, 0), EXIT], &mut []), RunError::Memory { .. }));
    // (A uapi program's frame: 512 bytes; internal forms add the kernel's may_goto room, below.)
    let below = load(&[ldx(Size::DW, R0, R10, -516), EXIT]).unwrap();
    assert!(matches!(Vm::conformance().run(&below, Input::default()), Err(RunError::Memory { .. })));
    assert!(matches!(run_err(&[ldx(Size::DW, R0, R10, -532), EXIT], &mut []), RunError::Memory { .. }));
    assert!(matches!(run_err(&[st(Size::DW, R10, -4, 0), mov(R0, 0), EXIT], &mut []), RunError::Memory { .. }));
    // The whole 512-byte frame is usable.
    assert_eq!(r0(&[st(Size::DW, R10, -512, 9), ldx(Size::DW, R0, R10, -512), EXIT]), 9);
    // Address arithmetic that wraps around never reaches another region.
    let e = run_err(&[lddw(R3, u64::MAX), ldx(Size::B, R0, R3, 1), EXIT], &mut mem);
    assert!(matches!(e, RunError::Memory { .. }));
    let msg = e.to_string();
    assert!(msg.contains("slot 2") && msg.contains("out-of-bounds"), "{msg}");
}

#[test]
fn stack_frames_start_zeroed() {
    assert_eq!(r0(&[ldx(Size::DW, R0, R10, -8), EXIT]), 0);
    // A callee's frame is zeroed on entry even if an earlier callee left data there.
    // main: call f(store 7); call g(load); exit.
    let prog = [
        call_local(3),              // 0 -> 4
        call_local(5),              // 1 -> 7
        EXIT,                       // 2
        mov(R9, 0),                 // 3 padding
        st(Size::DW, R10, -8, 7),   // 4: f
        mov(R0, 0),                 // 5
        EXIT,                       // 6
        ldx(Size::DW, R0, R10, -8), // 7: g
        EXIT,                       // 8
    ];
    assert_eq!(r0(&prog), 0);
}

#[test]
fn local_calls_preserve_r6_to_r9_and_move_the_frame_pointer() {
    // main: r6..r9 = 6..9; r1 = 5; call f; check r6..r9; r0 = r0 * 100 + (r10 - callee_fp)...
    let prog = [
        mov(R6, 6),
        mov(R7, 7),
        mov(R8, 8),
        mov(R9, 9),
        mov(R1, 5),
        call_local(6), // 5 -> 12
        alu(W64, AluOp::Mul, R0, 1000),
        alur(W64, AluOp::Add, R0, R6),
        alur(W64, AluOp::Add, R0, R7),
        alur(W64, AluOp::Add, R0, R8),
        alur(W64, AluOp::Add, R0, R9),
        EXIT, // 11
        // 12: f clobbers r6-r9 and returns r1 * 2 + (caller fp - its fp) / 512
        mov(R6, 0),
        mov(R7, 0),
        mov(R8, 0),
        mov(R9, 0),
        movr(R0, R1),
        alu(W64, AluOp::Lsh, R0, 1),
        lddw(R2, STACK_TOP),
        alur(W64, AluOp::Sub, R2, R10),
        alu(W64, AluOp::Div, R2, 512),
        alur(W64, AluOp::Add, R0, R2),
        EXIT,
    ];
    assert_eq!(r0(&prog), 11 * 1000 + 30);
}

#[test]
fn callee_may_use_a_pointer_into_its_callers_frame() {
    let prog = [
        st(Size::DW, R10, -8, 40),
        movr(R1, R10),
        add(R1, -8),
        call_local(2), // 3 -> 6
        ldx(Size::DW, R0, R10, -8),
        EXIT,
        // 6: *r1 += 2
        ldx(Size::DW, R2, R1, 0),
        add(R2, 2),
        stx(Size::DW, R1, 0, R2),
        mov(R0, 0),
        EXIT,
    ];
    assert_eq!(r0(&prog), 42);
}

#[test]
fn stack_below_the_current_frame_faults() {
    // The region of a deeper (not live) frame is not accessible.
    let prog = [ldx(Size::DW, R0, R10, -536), EXIT];
    let e = run_err(&prog, &mut []);
    match e {
        RunError::Memory { fault, .. } => assert!(matches!(fault.place, Place::DeadStack { .. }), "{:?}", fault.place),
        e => panic!("{e}"),
    }
}

/// A program loaded with internal forms (as the kernel made it) has the kernel's 16 bytes for a
/// `may_goto` count below each full 512-byte frame (`MAY_GOTO_STACK`), and its frames are that
/// much further apart; below them, the stack is dead as before.
#[test]
fn internal_forms_have_room_for_the_may_goto_count_below_a_frame() {
    let deep = [st(Size::DW, R10, -528, 7), ldx(Size::DW, R0, R10, -528), EXIT];
    let mut vm = Vm::conformance();
    assert_eq!(vm.run(&load_internal(&deep).unwrap(), Input::default()).unwrap().r0, 7);
    let e = vm.run(&load(&deep).unwrap(), Input::default()).unwrap_err();
    assert!(matches!(e, RunError::Memory { fault, .. } if matches!(fault.place, Place::DeadStack { .. })), "{e}");
    let below = [ldx(Size::DW, R0, R10, -536), EXIT];
    let e = vm.run(&load_internal(&below).unwrap(), Input::default()).unwrap_err();
    assert!(matches!(e, RunError::Memory { fault, .. } if matches!(fault.place, Place::DeadStack { .. })), "{e}");
    // The callee's frame pointer: 528 bytes below its caller's; its count does not overlap the
    // caller's frame, and the caller's count survives the call.
    let prog = [
        st(Size::DW, R10, -528, 5),
        call_local(3),
        ldx(Size::DW, R1, R10, -528),
        alur(W64, AluOp::Add, R0, R1),
        EXIT,
        // 5: r0 = caller fp - own fp; own count slot written
        st(Size::DW, R10, -528, 99),
        lddw(R0, STACK_TOP),
        alur(W64, AluOp::Sub, R0, R10),
        EXIT,
    ];
    assert_eq!(vm.run(&load_internal(&prog).unwrap(), Input::default()).unwrap().r0, 528 + 5);
    let vm = Vm::new(VmConfig::default().with_frame_size(1024)).unwrap();
    assert_eq!(vm.config().frame_size, 1024, "the configured size stays what was asked");
}

#[test]
fn call_depth_is_limited() {
    // f: call f (infinite recursion).
    let prog = [call_local(1), EXIT, mov(R9, 0), call_local(-1), EXIT];
    let e = run_with(&prog, VmConfig::default(), &mut []).unwrap_err();
    assert_eq!(e, RunError::CallDepth { slot: bpfpatch_insn::Slot(3), max: 8 });
    // Exactly max_frames frames are allowed: main + 2 nested with max 3.
    let chain = [call_local(1), EXIT, mov(R9, 0), call_local(1), EXIT, mov(R9, 0), mov(R0, 3), EXIT];
    let ok = run_with(&chain, VmConfig::default().with_max_frames(3), &mut []).unwrap();
    assert_eq!(ok.r0, 3);
    assert!(matches!(
        run_with(&chain, VmConfig::default().with_max_frames(2), &mut []),
        Err(RunError::CallDepth { .. })
    ));
}

#[test]
fn helpers_get_arguments_and_memory() {
    let prog = [
        st(Size::DW, R10, -8, 0x55),
        movr(R1, R10),
        add(R1, -8),
        mov(R2, 7),
        mov(R3, 8),
        mov(R4, 9),
        mov(R5, 10),
        call(42),
        // r1-r5 survive a helper call.
        alur(W64, AluOp::Add, R0, R2),
        EXIT,
    ];
    let p = load(&prog).unwrap();
    let mut seen = Vec::new();
    let mut vm = Vm::new(VmConfig::default()).unwrap();
    vm.register_helper(42, |args: [u64; 5], mem: &mut Memory<'_>| -> Result<HelperReturn, HelperError> {
        let mut b = [0u8; 8];
        mem.read(args[0], &mut b)?;
        mem.write(args[0], &[1])?;
        seen.push(args);
        Ok(HelperReturn::Value(u64::from_le_bytes(b) + args[1..].iter().sum::<u64>()))
    });
    let out = vm.run(&p, Input::default()).unwrap();
    assert_eq!(out.r0, 0x55 + 7 + 8 + 9 + 10 + 7);
    drop(vm);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0][0], STACK_TOP - 8);
}

#[test]
fn helper_errors_and_unknown_helpers_are_reported_with_the_slot() {
    let prog = [mov(R1, 0), call(3), EXIT];
    let p = load(&prog).unwrap();
    let mut vm = Vm::new(VmConfig::default()).unwrap();
    assert_eq!(
        vm.run(&p, Input::default()).unwrap_err(),
        RunError::UnknownHelper { slot: bpfpatch_insn::Slot(1), id: 3 }
    );
    vm.register_helper(3, |_: [u64; 5], m: &mut Memory<'_>| -> Result<HelperReturn, HelperError> {
        m.write(0, &[0])?; // address 0 is unmapped
        Ok(HelperReturn::Value(0))
    });
    let e = vm.run(&p, Input::default()).unwrap_err();
    assert!(matches!(&e, RunError::Helper { id: 3, message, .. } if message.contains("out-of-bounds")), "{e}");
}

#[test]
fn unwind_helper_returns_its_argument_or_ends_the_program() {
    assert_eq!(r0(&[mov(R1, 9), call(5), EXIT]), 9);
    // From a nested frame, r1 = 0 ends the whole program with r0 = 0.
    let prog = [mov(R0, 1), call_local(2), mov(R0, 77), EXIT, mov(R1, 0), call(5), mov(R0, 5), EXIT];
    assert_eq!(r0(&prog), 0);
}

#[test]
fn callx_calls_the_helper_whose_id_is_in_the_register() {
    assert_eq!(r0(&[mov(R1, 3), mov(R2, 5), Op::Callx(R2), EXIT]), 3);
    let e = run_with(&[mov(R2, -1), Op::Callx(R2), EXIT], VmConfig::default(), &mut []).unwrap_err();
    assert!(matches!(e, RunError::UnknownHelper { id: -1, .. }), "{e}");
    let e = run_with(&[lddw(R2, 1 << 40), Op::Callx(R2), EXIT], VmConfig::default(), &mut []).unwrap_err();
    assert!(matches!(e, RunError::UnknownHelper { id, .. } if id == 1 << 40), "{e}");
}

#[test]
fn kfunc_calls_are_reported() {
    let prog = [Op::Call(CallKind::Kfunc { btf_id: 1234, module: 0 }), EXIT];
    let e = run_with(&prog, VmConfig::default(), &mut []).unwrap_err();
    assert!(matches!(e, RunError::Kfunc { btf_id: 1234, .. }));
}

#[test]
fn pseudo_func_loads_a_code_address_that_cannot_be_dereferenced() {
    let f = Op::LdImm64 { dst: R3, kind: LdImm64Kind::Func, lo: 3, hi: 0 };
    // 0-1: ld_imm64 r3 = &f (slot 0 + 3 + 1 = 4); 2: r0 = r3; 3: exit; 4: f: exit
    let prog = [f, movr(R0, R3), EXIT, EXIT];
    // The target is instruction index 3 (slot 4).
    assert_eq!(r0(&prog), CODE_BASE + 8 * 3);
    let prog = [f, ldx(Size::B, R0, R3, 0), EXIT, EXIT];
    assert!(matches!(run_err(&prog, &mut []), RunError::Memory { .. }));
}

fn run_packet(ops: &[Op], packet: &mut [u8]) -> u64 {
    let p = LoadedProgram::load(&slots(ops), &LoadOptions::default()).unwrap();
    let mut vm = Vm::conformance();
    vm.run(&p, Input { mem: &mut [], packet }).unwrap().r0
}

#[test]
fn legacy_packet_loads_are_big_endian_and_bounds_checked() {
    let mut pkt = [0x12u8, 0x34, 0x56, 0x78, 0x9a];
    let abs = |size, imm| Op::LdPacket { size, index: None, imm };
    let ind = |size, imm| Op::LdPacket { size, index: Some(R7), imm };
    assert_eq!(run_packet(&[mov(R6, 0), abs(Size::B, 1), EXIT], &mut pkt), 0x34);
    assert_eq!(run_packet(&[mov(R6, 0), abs(Size::H, 1), EXIT], &mut pkt), 0x3456);
    assert_eq!(run_packet(&[mov(R6, 0), abs(Size::W, 1), EXIT], &mut pkt), 0x3456_789a);
    assert_eq!(run_packet(&[mov(R6, 0), mov(R7, 2), ind(Size::H, 1), EXIT], &mut pkt), 0x789a);
    // Out of bounds (past the end, negative offset): the function returns 0 at once.
    assert_eq!(run_packet(&[mov(R6, 0), abs(Size::W, 2), mov(R0, 9), EXIT], &mut pkt), 0);
    assert_eq!(run_packet(&[mov(R6, 0), mov(R7, -1), ind(Size::B, 0), mov(R0, 9), EXIT], &mut pkt), 0);
    // The offset is a 32-bit int: 2^32 + 1 is offset 1.
    let prog = [mov(R6, 0), lddw(R7, (1 << 32) + 1), ind(Size::B, 0), EXIT];
    assert_eq!(run_packet(&prog, &mut pkt), 0x34);
    // r1-r5 are clobbered (zeroed).
    assert_eq!(run_packet(&[mov(R6, 0), mov(R1, 5), abs(Size::B, 0), movr(R0, R1), EXIT], &mut pkt), 0);
    // In a subprogram, a failed load returns 0 to the caller, which continues.
    let prog =
        [mov(R6, 0), call_local(3), add(R0, 100), EXIT, mov(R9, 0), mov(R6, 0), abs(Size::W, 4), mov(R0, 9), EXIT];
    assert_eq!(run_packet(&prog, &mut pkt), 100);
}

#[test]
fn vm_config_is_validated() {
    assert!(Vm::new(VmConfig::default().with_max_frames(0)).is_err());
    assert!(Vm::new(VmConfig::default().with_frame_size(usize::MAX)).is_err());
    let vm = Vm::new(VmConfig::default().with_frame_size(1024)).unwrap();
    assert_eq!(vm.config().frame_size, 1024);
}

#[test]
fn a_vm_is_reusable_and_runs_start_fresh() {
    let p = load(&[ldx(Size::DW, R0, R10, -8), add(R0, 1), stx(Size::DW, R10, -8, R0), EXIT]).unwrap();
    let mut vm = Vm::conformance();
    for _ in 0..3 {
        assert_eq!(vm.run(&p, Input::default()).unwrap().r0, 1);
    }
}

#[test]
fn packet_is_addressable_too() {
    let mut pkt = [1u8, 2, 3];
    let prog = [lddw(R3, PACKET_BASE), ldx(Size::B, R0, R3, 2), EXIT];
    assert_eq!(run_packet(&prog, &mut pkt), 3);
}

/// The timed `may_goto`'s call of `arch_bpf_timed_may_goto` (kernel-internal): AX holds the
/// frame offset of the `{count, timestamp}` pair, the new count comes back in AX (0xffff while
/// the slice lasts, 0 after), r0-r5 are kept, and the timestamp word counts the refreshes: the
/// slice is `may_goto_budget / 0xffff` of them (3 here). Without internal forms it is an
/// ordinary call of an unknown helper.
#[test]
fn timed_may_goto_call_refreshes_until_the_slice_ends() {
    let timed = call(bpfpatch_insn::TIMED_MAY_GOTO_HELPER);
    let at = |k: i32| [mov(AX, -16), timed, movr(R6, AX), stx(Size::DW, R10, -32 - 8 * k as i16, R6)];
    let mut ops = vec![mov(R1, 41), st(Size::DW, R10, -8, 0)];
    for k in 0..4 {
        ops.extend(at(k));
    }
    // r0 = the four counts as bytes (0xff or 0), then the timestamp word, then r1.
    ops.extend([mov(R0, 0)]);
    for k in 0..4 {
        ops.extend([
            alu(W64, AluOp::Lsh, R0, 8),
            ldx(Size::B, R7, R10, -32 - 8 * k as i16),
            alur(W64, AluOp::Or, R0, R7),
        ]);
    }
    ops.extend([
        alu(W64, AluOp::Lsh, R0, 8),
        ldx(Size::DW, R7, R10, -8),
        alur(W64, AluOp::Or, R0, R7),
        alu(W64, AluOp::Lsh, R0, 8),
        alur(W64, AluOp::Or, R0, R1),
        EXIT,
    ]);
    let prog = load_internal(&ops).unwrap();
    let config = VmConfig::default().with_may_goto_budget(3 * 0xffff + 5);
    let mut vm = Vm::new(config).unwrap();
    let out = vm.run(&prog, Input::default()).unwrap();
    assert_eq!(out.r0, 0xff_ff_ff_00_03_29, "three refreshes, then 0; timestamp word 3; r1 kept");
    // A user program (no internal forms, no AX) calling that id calls an unknown helper.
    let user = [timed, EXIT];
    let prog = load(&user).unwrap();
    let err = Vm::new(VmConfig::default()).unwrap().run(&prog, Input::default()).unwrap_err();
    assert!(matches!(err, RunError::UnknownHelper { .. }), "{err}");
}
