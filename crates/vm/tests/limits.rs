//! The loader's size limit: the kernel's `BPF_COMPLEXITY_LIMIT_INSNS` (1,000,000 slots); the
//! run's input size limit (`REGION_SIZE`).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use bpfpatch_insn::{Insn, MAX_PROGRAM_SLOTS, opcode as c};
use bpfpatch_vm::{Input, LoadError, LoadOptions, LoadedProgram, Vm};

fn image(slots: usize) -> Vec<Insn> {
    // r0 = 0; goto +0 ...; exit
    let mut v = vec![Insn::new(c::JMP | c::JA, 0, 0, 0, 0); slots];
    v[0] = Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0);
    v[slots - 1] = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    v
}

#[test]
fn programs_over_the_kernel_limit_are_rejected_with_the_limit() {
    let err = LoadedProgram::load(&image(MAX_PROGRAM_SLOTS + 1), &LoadOptions::default()).err();
    assert_eq!(err, Some(LoadError::TooLarge { len: MAX_PROGRAM_SLOTS + 1, limit: MAX_PROGRAM_SLOTS }));
    assert_eq!(
        err.map(|e| e.to_string()).unwrap_or_default(),
        "Invalid program: 1000001 slots is more than the loader accepts (1000000)"
    );
}

#[test]
fn a_program_at_the_limit_loads_and_runs() {
    let p = LoadedProgram::load(&image(MAX_PROGRAM_SLOTS), &LoadOptions::default());
    let mut vm = Vm::new(Default::default()).ok();
    let r = p.ok().zip(vm.as_mut()).map(|(p, vm)| vm.run(&p, Input::default()).map(|o| (o.r0, o.executed)));
    assert_eq!(r, Some(Ok((0, MAX_PROGRAM_SLOTS as u64))));
}

/// An input area or packet of more than `REGION_SIZE` (4 GiB) bytes is refused before the run,
/// naming which; one of exactly `REGION_SIZE` bytes runs. (The buffers are zero-allocated and
/// never touched, so they cost address space only.)
#[test]
fn inputs_over_the_region_size_are_refused_and_at_it_run() {
    use bpfpatch_vm::RunError;
    use bpfpatch_vm::memory::REGION_SIZE;
    let prog = LoadedProgram::load(&image(2), &LoadOptions::default()).unwrap();
    let mut vm = Vm::new(Default::default()).unwrap();
    let max = REGION_SIZE as usize;
    let mut big = vec![0u8; max + 1];
    let err = vm.run(&prog, Input::mem(&mut big)).err();
    assert_eq!(err, Some(RunError::InputTooLarge { what: "input memory", len: max + 1, max: REGION_SIZE }));
    let err = vm.run(&prog, Input { mem: &mut [], packet: &mut big }).err();
    assert_eq!(err, Some(RunError::InputTooLarge { what: "packet", len: max + 1, max: REGION_SIZE }));
    let at = &mut big[..max];
    assert_eq!(vm.run(&prog, Input::mem(at)).map(|o| o.r0), Ok(0));
}

/// The VM's `Debug` form names its configuration and its helpers' ids.
#[test]
fn vm_debug_names_config_and_helpers() {
    let s = format!("{:?}", Vm::conformance());
    assert!(s.starts_with("Vm { config: VmConfig { max_frames: 8, frame_size: 512,"), "{s}");
    assert!(s.ends_with("helpers: [5], .. }"), "{s}");
}
