//! Reference interpreter of the full RFC 9669 instruction set with Linux semantics, the loader
//! checks it runs first, and the conformance runner.
//!
//! Pipeline: raw slots → [`LoadedProgram::load`] (the [`verify`](mod@verify) checks, then lowering into a compact
//! internal form with absolute targets) → [`Vm::run`] on an [`Input`] → [`RunOutcome`] or a
//! [`RunError`] naming the slot. Programs may contain the kernel-internal forms (AX, tail call,
//! nospec) when loaded with [`LoadOptions::INTERNAL`], so rewritten programs run too.
//!
//! ```
//! use bpfpatch_insn::{AluOp, Op, Operand, Reg, Width};
//! use bpfpatch_vm::{Input, LoadOptions, LoadedProgram, Vm};
//!
//! let ops = [
//!     Op::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(-7) },
//!     Op::Alu { width: Width::W64, op: AluOp::SDiv, dst: Reg::R0, src: Operand::Imm(2) },
//!     Op::Exit,
//! ];
//! let slots: Vec<_> = ops.iter().flat_map(|op| op.encode().to_vec()).collect();
//! let prog = LoadedProgram::load(&slots, &LoadOptions::default()).unwrap();
//! let out = Vm::conformance().run(&prog, Input::default()).unwrap();
//! assert_eq!(out.r0, (-3i64) as u64);
//! ```
//!
//! Two test aids: [`VmConfig::hi32`] = [`Hi32Mode::Randomize`] runs on a machine that leaves
//! random bits in the upper half of every 32-bit definition (the kernel's `BPF_F_TEST_RND_HI32`),
//! so a program that lacks an explicit zero-extension where it reads one as 64 bits computes
//! garbage; [`Vm::run_observed`] calls an [`Observer`] with the registers before every
//! instruction.
//!
//! The semantics, instruction by instruction, are stated in the documentation of [`Vm`]'s
//! module ([`interp`]); the address space in [`memory`]; the loader's rules in [`verify`](mod@verify).
#![deny(missing_docs)]

pub mod conformance;
mod error;
pub mod helpers;
pub mod interp;
pub mod memory;
mod program;
pub mod verify;

pub use conformance::{
    ConformanceOptions, Expectation, FileError, FileOutcome, Status, Summary, Transform, conformance_report,
    run_conformance, run_data_file,
};
pub use error::{Access, ConfigError, Fault, LoadError, Place, RunError};
pub use helpers::{Helper, HelperError, HelperReturn, Unwind};
pub use interp::{Hi32Mode, Input, MAY_GOTO_STACK, Observer, RunOutcome, Vm, VmConfig};
pub use memory::Memory;
pub use program::{CODE_BASE, LoadedProgram};
pub use verify::{LoadOptions, verify};
