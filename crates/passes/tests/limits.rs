//! The passes' size limit: the kernel's `BPF_COMPLEXITY_LIMIT_INSNS` (1,000,000 slots).

use bpfpatch_insn::{Insn, MAX_PROGRAM_SLOTS, opcode as c};
use bpfpatch_passes::internals::program::{DecodedProgram, ProgramError};
use bpfpatch_passes::{Options, Pipeline, transform};

#[test]
fn programs_over_the_kernel_limit_are_rejected_with_the_limit() {
    let mut v = vec![Insn::new(c::JMP | c::JA, 0, 0, 0, 0); MAX_PROGRAM_SLOTS + 1];
    v[MAX_PROGRAM_SLOTS] = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    assert_eq!(
        DecodedProgram::decode(&v).err(),
        Some(ProgramError::TooLarge { slots: MAX_PROGRAM_SLOTS + 1, limit: MAX_PROGRAM_SLOTS })
    );
    let e = transform(&v, &Pipeline::all(), &Options::default()).err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("program of 1000001 slots is too large (limit 1000000)"));
}
