//! The loader's size limit: the kernel's `BPF_COMPLEXITY_LIMIT_INSNS` (1,000,000 slots).

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
