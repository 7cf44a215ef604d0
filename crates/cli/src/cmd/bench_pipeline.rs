//! The `pipeline` workload of `bpfpatch bench`: the full pass pipeline (`rewrite --passes all
//! --blind`) on the largest objects of the corpus, when `scripts/corpus.sh` has built it.
//!
//! Each run rewrites every program of a fresh copy of the parsed object (the copy is made
//! before the clock starts) with one reused [`Rewriter`] (warm: its buffers are kept across
//! runs, as in the other workloads). Only bpfpatch runs it: the passes are written against the
//! patch list. `patches` counts the original instructions the passes patched, prepatched or
//! deleted.

use anyhow::{Context, Result};
use bpfpatch_bench::measure::{self, Sample};
use bpfpatch_bench::report::Row;
use bpfpatch_cli::pipeline::Passes;
use bpfpatch_object::{BpfObject, ProgramInfo, RewriteOptions, Rewriter};
use bpfpatch_patch::PatchList;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The objects of the workload (the pyperf600, pyperf180 and strobemeta), under the
/// corpus's little-endian selftests.
pub const OBJECTS: [&str; 3] = ["pyperf600", "pyperf180", "strobemeta"];

/// The corpus folder: `BPFPATCH_CORPUS` when set, else `corpus/build/objects` under the
/// current directory.
#[must_use]
pub fn default_corpus() -> PathBuf {
    std::env::var_os("BPFPATCH_CORPUS").map_or_else(|| PathBuf::from("corpus/build/objects"), PathBuf::from)
}

/// The workload's object files that exist under `corpus`, with their names.
#[must_use]
pub fn objects(corpus: &Path) -> Vec<(&'static str, PathBuf)> {
    OBJECTS.iter().map(|&n| (n, corpus.join("selftests").join(format!("{n}.o")))).filter(|(_, p)| p.is_file()).collect()
}

/// Measures the pipeline on one object: `runs` warm runs; the report row is named
/// `pipeline:<name>`.
///
/// # Errors
/// An unreadable or unparsable object, or a rewrite error.
pub fn measure_object(name: &str, path: &Path, runs: usize) -> Result<Row> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let obj = BpfObject::parse(&bytes).with_context(|| path.display().to_string())?;
    let insns_in: usize = obj.programs().iter().map(|p| p.insns().len()).sum();
    let runs = runs.max(1);
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    let mut samples: Vec<Sample> = Vec::with_capacity(runs);
    let (mut insns_out, mut patches) = (0, 0);
    // One untimed run first: it sizes the rewriter's buffers, as a warm verifier's would be.
    for k in 0..=runs {
        let mut o = obj.clone();
        let mut passes = Passes::new("all", true)?;
        passes.for_object(&o);
        let mut run = |l: &mut PatchList, info: &ProgramInfo<'_>| passes.run(l, info);
        let (reports, s) = measure::measure(|| rw.rewrite_object(&mut o, &mut run));
        let reports = reports.with_context(|| path.display().to_string())?;
        insns_out = reports.iter().map(|r| r.slots_after).sum();
        patches = reports.iter().map(|r| r.patched + r.deleted).sum();
        if k > 0 {
            samples.push(s);
        }
    }
    Ok(Row::measured(format!("pipeline:{name}"), "bpfpatch", "warm", (patches, insns_in, insns_out), &samples))
}

/// The text table of the pipeline rows of a report.
#[must_use]
pub fn table(rows: &[Row]) -> String {
    let passes = bpfpatch_cli::pipeline::pass_names("all", true).map_or_else(|_| "all".into(), |v| v.join(","));
    let mut out = format!("pipeline ({passes} on every program; bpfpatch, warm)\n");
    let _ = writeln!(
        out,
        "{:<20} {:>9} {:>9} {:>9} {:>12} {:>12} {:>14}",
        "object", "slots in", "slots out", "patches", "median", "min", "per slot in"
    );
    for r in rows.iter().filter(|r| r.workload.starts_with("pipeline:")) {
        // Nanoseconds per input slot: comparable across objects and runs of other sizes.
        let per_slot =
            if r.insns_in > 0 { format!("{:.1} ns", r.median_ms * 1e6 / r.insns_in as f64) } else { "-".into() };
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>9} {:>9} {:>12} {:>12} {:>14}",
            r.workload.trim_start_matches("pipeline:"),
            r.insns_in,
            r.insns_out,
            r.patches,
            bpfpatch_bench::report::fmt_ms(r.median_ms),
            bpfpatch_bench::report::fmt_ms(r.min_ms),
            per_slot,
        );
    }
    out
}
