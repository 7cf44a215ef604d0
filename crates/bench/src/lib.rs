//! Patching benchmarks: the workloads of the RFC's table, the baselines bpfpatch is compared
//! with, and the measurement and report code behind `bpfpatch bench`.
//!
//! The baselines (`rfc_list`, `copy_floor`) exist for comparison only: this crate is not
//! published and nothing in the library crates depends on it.
#![deny(missing_docs)]

pub mod blind;
pub mod copy_floor;
pub mod measure;
pub mod plot;
pub mod report;
pub mod rfc_list;
pub mod workload;

use bpfpatch_insn::Insn;
use workload::{Aux, Line};

/// What every implementation produces: the patched program and its side tables. Warm runs
/// reuse one `Output` (its buffers keep their capacity); cold runs start from a fresh one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// The patched instructions.
    pub insns: Vec<Insn>,
    /// One aux record per output slot.
    pub aux: Vec<Aux>,
    /// Line info with new offsets.
    pub lines: Vec<Line>,
    /// Subprogram starts with new offsets.
    pub subprogs: Vec<u32>,
}

impl Output {
    /// Empties every table, keeping capacity.
    pub fn clear(&mut self) {
        self.insns.clear();
        self.aux.clear();
        self.lines.clear();
        self.subprogs.clear();
    }
}
