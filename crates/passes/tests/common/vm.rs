//! Running test programs on the project's VM (`bpfpatch-vm`), which shares no code with the
//! passes' analyses and rewrites: the oracle of the analysis soundness and rewrite semantics
//! tests. The "context" is the VM's input memory area (r1 at entry, [`CTX_LEN`] bytes); helper 1
//! is a pure function of r1 and r2. Programs load with kernel-internal forms allowed and without
//! the loader's uninitialized-register check (the random programs read registers they never
//! wrote: they start as 0).
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use bpfpatch_insn::Insn;
use bpfpatch_vm::memory::{MEM_BASE, Memory};
use bpfpatch_vm::{HelperError, HelperReturn, Hi32Mode, Input, LoadOptions, LoadedProgram, Vm, VmConfig};

/// Address of the context (the VM's input memory area) in r1 at entry.
pub const CTX_ADDR: u64 = MEM_BASE;
/// Bytes of the context.
pub const CTX_LEN: usize = 64;
/// Stack bytes per frame (the VM's default).
pub const FRAME: u64 = 512;
/// Instruction budget of one run.
pub const BUDGET: u64 = 1_000_000;

/// What a run ended with.
#[derive(Debug)]
pub struct Outcome {
    pub r0: u64,
    pub ctx: Vec<u8>,
}

/// The initial context bytes.
pub fn ctx0() -> Vec<u8> {
    (0..CTX_LEN).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect()
}

fn helper1(args: [u64; 5], _m: &mut Memory<'_>) -> Result<HelperReturn, HelperError> {
    Ok(HelperReturn::Value(args[0].rotate_left(7) ^ args[1].wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// Loads `insns` for the VM.
pub fn load(insns: &[Insn]) -> Result<LoadedProgram, String> {
    LoadedProgram::load(insns, &LoadOptions::INTERNAL.with_check_uninit(false)).map_err(|e| format!("load: {e}"))
}

/// Runs `prog` on a fresh VM in `hi32` mode, calling `observer` before each instruction.
pub fn run_prog(
    prog: &LoadedProgram,
    hi32: Hi32Mode,
    observer: &mut dyn FnMut(usize, &[u64; 16]),
) -> Result<Outcome, String> {
    let mut vm = Vm::new(VmConfig::default().with_budget(BUDGET).with_hi32(hi32)).map_err(|e| e.to_string())?;
    vm.register_helper(1, helper1);
    let mut ctx = ctx0();
    let out = vm.run_observed(prog, Input::mem(&mut ctx), observer).map_err(|e| format!("run: {e}"))?;
    Ok(Outcome { r0: out.r0, ctx })
}

/// Loads and runs `insns` zero-extending, unobserved.
pub fn run(insns: &[Insn]) -> Result<Outcome, String> {
    run_prog(&load(insns)?, Hi32Mode::ZeroExtend, &mut |_, _| {})
}
