//! Patching benchmarks: the workloads of the RFC's table, the baselines bpfpatch is compared
//! with, and the measurement and report code behind `bpfpatch bench`.
//!
//! The baselines (`rfc_list`, `copy_floor`) exist for comparison only: nothing in the library
//! crates depends on this crate; the command uses it for `bpfpatch bench` only (its `bench`
//! feature).
#![deny(missing_docs)]

pub mod blind;
pub mod copy_floor;
pub mod impls;
pub mod measure;
pub mod plot;
pub mod report;
pub mod rfc_list;
pub mod suite;
pub mod workload;

pub use impls::{Impl, State};
use workload::Aux;

/// What every implementation produces: the patched program and its side tables. Warm runs
/// reuse one `Output` (its buffers keep their capacity); cold runs start from a fresh one.
pub type Output = bpfpatch_patch::Program<Aux>;

/// Empties every table of an [`Output`], keeping capacity.
pub fn clear(out: &mut Output) {
    out.insns.clear();
    out.aux.clear();
    let t = &mut out.tables;
    t.subprogs.clear();
    t.func_info.clear();
    t.line_info.clear();
    t.pokes.clear();
    t.insn_arrays.clear();
    t.core_relocs.clear();
    t.elf_relocs.clear();
}
