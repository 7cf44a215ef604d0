//! `bpfpatch bench`: the RFC's table measured side by side — the kernel's algorithm, the RFC's
//! list, bpfpatch, and the copy floor — with a progress bar, JSON and a log-log plot.

use super::{bench_linux, bench_pipeline};
use crate::out::OutFile;
use anyhow::{Context, Result, anyhow, bail};
use bpfpatch_bench::measure::Sample;
use bpfpatch_bench::suite::{self, Config, WorkloadKind};
use bpfpatch_bench::{Impl, plot};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// Arguments of `bpfpatch bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fewer runs and a 15 s kernel budget; still every seed size up to 1,000,000 patches.
    #[arg(long)]
    pub quick: bool,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw the log-log plot of the seed workload to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Seconds the quadratic kernel baseline may run in total: once they are spent, or when the
    /// sizes run so far predict a size to take over twice the whole budget, the size is
    /// extrapolated from their quadratic fit (as is the full rand-ld-dw program, from three
    /// smaller ones the kernel alone runs). The running kernel's div-guard loads (`linux`) get
    /// the same budget of their own.
    #[arg(long, value_name = "SECONDS")]
    pub kernel_budget: Option<f64>,
    /// Timed runs per measurement in the warm regime.
    #[arg(long)]
    pub runs: Option<usize>,
    /// Fresh processes per measurement in the cold regime (0 skips it).
    #[arg(long)]
    pub cold_runs: Option<usize>,
    /// Seed workload sizes (patches), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Implementations to run, comma-separated (kernel, rfc-list, bpfpatch, copy-floor, and
    /// linux: the running kernel on the div-guard workload, within --kernel-budget).
    #[arg(long, value_delimiter = ',', value_parser = impl_name)]
    pub impls: Option<Vec<String>>,
    /// The corpus whose largest objects (pyperf600, pyperf180, strobemeta) the `pipeline`
    /// workload rewrites with the full pass pipeline; skipped when they are absent (default:
    /// `corpus/build/objects`, or `BPFPATCH_CORPUS`; built by `scripts/corpus.sh`).
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,
    /// Internal: run one cold measurement (or with `warm`, one warm run's peak memory) in this
    /// fresh process and print it as JSON.
    #[arg(long, hide = true, num_args = 3..=4, value_names = ["IMPL", "WORKLOAD", "SIZE", "warm"])]
    pub cold_child: Option<Vec<String>>,
}

/// An implementation's name, checked as clap parses it (a usage error, exit 2).
fn impl_name(name: &str) -> Result<String, String> {
    match Impl::from_name(name) {
        Some(_) => Ok(name.to_string()),
        None if name == LINUX => Ok(name.to_string()),
        None => {
            Err(format!("unknown implementation `{name}` (known: {}, {LINUX})", Impl::ALL.map(Impl::name).join(", ")))
        }
    }
}

/// The running kernel's implementation (the `div-guard` workload, [`bench_linux`]).
const LINUX: &str = "linux";

/// Runs the benchmark (or, with the hidden `--cold-child`, one cold measurement).
pub fn main(args: &Args) -> Result<ExitCode> {
    if let Some(child) = &args.cold_child {
        return cold_child(child);
    }
    let mut cfg = if args.quick { Config::quick() } else { Config::full() };
    if let Some(b) = args.kernel_budget {
        cfg.kernel_budget_s = b;
    }
    if let Some(r) = args.runs {
        cfg.runs = r.max(1);
    }
    if let Some(r) = args.cold_runs {
        cfg.cold_runs = r;
    }
    if let Some(s) = &args.sizes {
        cfg.seed_sizes.clone_from(s);
    }
    if let Some(names) = &args.impls {
        cfg.impls = names
            .iter()
            .filter(|n| *n != LINUX)
            .map(|n| Impl::from_name(n).ok_or_else(|| anyhow!("unknown implementation {n}")))
            .collect::<Result<_>>()?;
    }
    // What cannot be written or read is found now, not after the whole run.
    let json_out = args.json.as_deref().map(OutFile::create).transpose()?;
    let plot_out = args.plot.as_deref().map(OutFile::create).transpose()?;
    if let Some(dir) = &args.corpus
        && !dir.is_dir()
    {
        bail!("cannot read the corpus {}: no such directory", dir.display());
    }
    let exe = std::env::current_exe().context("cannot find the bpfpatch executable for cold runs")?;
    let mut cold = |imp: Impl, kind: WorkloadKind, size: usize, warm: bool| -> Result<(Sample, usize), String> {
        let out = Command::new(&exe)
            .args(["bench", "--cold-child", imp.name(), kind.name(), &size.to_string()])
            .args(warm.then_some("warm"))
            .output()
            .map_err(|e| format!("cannot start a cold run: {e}"))?;
        if !out.status.success() {
            return Err(format!("cold run failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("cold run output: {e}"))?;
        let ms = v["ms"].as_f64().ok_or("cold run output lacks ms")?;
        let insns_out =
            v["insns_out"].as_u64().and_then(|n| usize::try_from(n).ok()).ok_or("cold run output lacks insns_out")?;
        Ok((Sample { ms, peak_bytes: v["peak_bytes"].as_u64() }, insns_out))
    };
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    let mut progress = |done: usize, total: usize, what: &str| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(what.to_string());
    };
    let mut report = suite::run(&cfg, &mut cold, &mut progress).map_err(|e| anyhow!(e))?;
    let corpus = args.corpus.clone().unwrap_or_else(bench_pipeline::default_corpus);
    let objects = if cfg.impls.contains(&Impl::Bpfpatch) { bench_pipeline::objects(&corpus) } else { Vec::new() };
    for (k, (name, path)) in objects.iter().enumerate() {
        progress(k, objects.len(), &format!("pipeline {name}"));
        report.results.push(bench_pipeline::measure_object(name, path, cfg.runs)?);
    }
    let linux = args.impls.as_ref().is_none_or(|v| v.iter().any(|n| n == LINUX));
    let mut differs = false;
    if linux {
        let mut step = |what: &str| progress(objects.len(), objects.len() + 1, what);
        let o = bench_linux::run(cfg.kernel_budget_s, cfg.runs, &mut step)?;
        report.results.extend(o.rows);
        report.notes.extend(o.notes);
        differs = o.differs;
    }
    bar.finish_and_clear();
    report.command = std::env::args().collect::<Vec<_>>().join(" ");
    outln!("machine: {}", report.machine)?;
    for w in ["seed", "rand-ld-dw"] {
        if report.results.iter().any(|r| r.workload == w) {
            outln!("\n{}", report.table(w))?;
        }
    }
    if objects.is_empty() {
        outln!(
            "\npipeline: skipped ({} has none of {:?}; scripts/corpus.sh builds them)",
            corpus.display(),
            bench_pipeline::OBJECTS
        )?;
    } else {
        outln!("\n{}", bench_pipeline::table(&report.results))?;
    }
    if report.results.iter().any(|r| r.workload == bench_linux::WORKLOAD) {
        outln!("\n{}", bench_linux::table(&report.results, &report.machine))?;
    }
    for n in &report.notes {
        outln!("{n}")?;
    }
    if let Some(mut f) = json_out {
        f.write_all(serde_json::to_string_pretty(&report)?.as_bytes())?;
        let path = f.commit()?;
        outln!("JSON report: {}", path.display())?;
    }
    if let Some(svg) = plot_out {
        plot::plot(&report, "seed", svg.path()).with_context(|| format!("cannot write {}", svg.target().display()))?;
        let path = svg.commit()?;
        outln!("plot: {}", path.display())?;
    }
    // The kernel's image and ours differ: the comparison failed, whatever the timings say.
    Ok(if differs { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn cold_child(args: &[String]) -> Result<ExitCode> {
    let (imp, kind, size, warm) = match args {
        [imp, kind, size] => (imp, kind, size, false),
        [imp, kind, size, w] if w == "warm" => (imp, kind, size, true),
        _ => bail!("--cold-child takes IMPL WORKLOAD SIZE [warm]"),
    };
    let imp = Impl::from_name(imp).ok_or_else(|| anyhow!("unknown implementation {imp}"))?;
    let kind = WorkloadKind::from_name(kind).ok_or_else(|| anyhow!("unknown workload {kind}"))?;
    let size: usize = size.parse().context("size")?;
    let run = if warm { suite::run_warm_peak_here } else { suite::run_cold_here };
    let (s, insns_out) = run(imp, kind, size).map_err(|e| anyhow!(e))?;
    outln!("{}", serde_json::json!({ "ms": s.ms, "peak_bytes": s.peak_bytes, "insns_out": insns_out }))?;
    Ok(ExitCode::SUCCESS)
}
