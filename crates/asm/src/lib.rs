//! Text forms of eBPF: the conformance vectors' `%rN` assembler and `.data` files.
//!
//! - [`datafile`]: the conformance suite's `.data` test-vector format ([`parse_data_file`]).
//! - [`conformance`]: the `%rN` assembler of `-- asm` sections ([`assemble_conformance`]).
//!
//! Both assemblers build typed [`bpfpatch_insn::Op`]s and encode them, so every program they
//! produce decodes; errors are [`AsmError`]s carrying the 1-based source line.
#![deny(missing_docs)]

pub mod conformance;
pub mod datafile;
mod error;
pub(crate) mod num;

pub use conformance::assemble_conformance;
pub use datafile::{DataFile, DataFileError, Section, parse_data_file};
pub use error::{AsmError, AsmErrorKind};
