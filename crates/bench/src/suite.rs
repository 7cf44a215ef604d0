//! The benchmark plan and its execution: which implementation runs which workload size in
//! which regime, how many times, and the time budget of the quadratic `kernel` baseline.
//!
//! Warm runs happen in this process with one reusable [`State`] per implementation (the model
//! is a verifier or JIT that processes many programs). Cold runs are delegated to a caller
//! supplied function, which the CLI implements by starting a fresh process per run.
//!
//! The implementations that keep their buffers run interleaved, one run of each per round, in
//! both regimes ([`run_warm_interleaved`], [`Impl::interleaved`]): on a shared machine whose
//! speed drifts, a slow phase then falls on all of them, and the ratios the README's targets are
//! stated in hold still when the times do not. The RFC list runs back to back (its best case)
//! and the quadratic kernel model alone under its time budget.

use crate::measure::{self, Sample};
use crate::report::{Report, Row};
use crate::workload::{self, Workload};
use crate::{Impl, Output, State};

/// Which workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// [`workload::seed`].
    Seed,
    /// [`workload::rand_ld_dw`] (size = program length).
    RandLdDw,
}

impl WorkloadKind {
    /// The name used in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Seed => "seed",
            WorkloadKind::RandLdDw => "rand-ld-dw",
        }
    }

    /// Parses a report name.
    #[must_use]
    pub fn from_name(s: &str) -> Option<WorkloadKind> {
        match s {
            "seed" => Some(WorkloadKind::Seed),
            "rand-ld-dw" => Some(WorkloadKind::RandLdDw),
            _ => None,
        }
    }

    /// Generates the workload of this kind and size.
    #[must_use]
    pub fn generate(self, size: usize) -> Workload {
        match self {
            WorkloadKind::Seed => workload::seed(size),
            WorkloadKind::RandLdDw => workload::rand_ld_dw(size),
        }
    }
}

/// The sizes of the RFC's table.
pub const SEED_SIZES: [usize; 5] = [15_000, 45_000, 95_000, 195_000, 1_000_000];
/// The kernel's scale-test length.
pub const RAND_LD_DW_LEN: usize = 1_000_000 - 6;
/// Smaller rand-ld-dw programs the `kernel` baseline alone runs, so that its time at
/// [`RAND_LD_DW_LEN`] (hours) can be extrapolated from a quadratic fit as for the seed sizes.
pub const RAND_LD_DW_KERNEL_LENS: [usize; 3] = [12_000, 24_000, 48_000];
/// Seconds the `kernel` baseline may spend on [`RAND_LD_DW_KERNEL_LENS`] (apart from the
/// seed workload's budget, and at most that budget); the first length always runs.
pub const RAND_LD_DW_KERNEL_BUDGET_S: f64 = 20.0;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Timed runs per (implementation, size) in the warm regime.
    pub runs: usize,
    /// Timed runs (fresh processes) per size in the cold regime; 0 skips the cold regime.
    pub cold_runs: usize,
    /// Seconds the `kernel` baseline may spend in total; larger sizes are extrapolated.
    pub kernel_budget_s: f64,
    /// Sizes of the seed workload.
    pub seed_sizes: Vec<usize>,
    /// Whether to run the rand-ld-dw workload.
    pub rand_ld_dw: bool,
    /// Implementations to run.
    pub impls: Vec<Impl>,
}

impl Config {
    /// The full benchmark.
    #[must_use]
    pub fn full() -> Config {
        Config {
            runs: 7,
            cold_runs: 5,
            kernel_budget_s: 60.0,
            seed_sizes: SEED_SIZES.to_vec(),
            rand_ld_dw: true,
            impls: Impl::ALL.to_vec(),
        }
    }

    /// `--quick`: every seed size for every fast implementation, fewer runs, a smaller kernel budget.
    #[must_use]
    pub fn quick() -> Config {
        Config { runs: 3, cold_runs: 3, kernel_budget_s: 15.0, rand_ld_dw: false, ..Config::full() }
    }
}

/// A run in a fresh process: implementation, workload, size, and whether it is warm (one
/// untimed run first, see [`run_warm_peak_here`]) -> one sample and the output length. The CLI
/// runs it in a child process; the cold regime's times and every peak memory figure come from
/// such runs, where no earlier measurement's freed memory is still resident.
pub type ColdRunner<'a> = &'a mut dyn FnMut(Impl, WorkloadKind, usize, bool) -> Result<(Sample, usize), String>;

/// Progress reports: (steps done, steps in all, what is running).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

fn row(w: &Workload, imp: Impl, regime: &str, samples: &[Sample], insns_out: usize) -> Row {
    Row::measured(w.name.to_string(), imp.name(), regime, (w.patches(), w.insns().len(), insns_out), samples)
}

/// Runs `imp` warm on `w`: one untimed run to size the buffers, then `runs` timed ones.
pub fn run_warm(imp: Impl, w: &Workload, runs: usize, state: &mut State) -> Result<(Vec<Sample>, usize), String> {
    let mut out = Output::default();
    imp.run(w, &mut out, state)?;
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let (r, s) = measure::measure(|| imp.run(w, &mut out, state));
        r?;
        samples.push(s);
        // The kernel baseline is only repeated while it is cheap.
        if imp == Impl::Kernel && s.ms > 2_000.0 && i + 1 >= 1 {
            break;
        }
    }
    Ok((samples, out.insns.len()))
}

/// Runs every implementation of `imps` warm on `w`, interleaved: one untimed run each to size
/// its buffers, then `runs` rounds of one timed run per implementation. A slow phase of the
/// machine (another tenant, a frequency change) then falls on every implementation of the round
/// alike instead of on whichever ran during it, so the ratios between them hold still when the
/// times do not. Returns each implementation's samples and output length, in `imps`' order.
///
/// # Errors
/// The first implementation error.
pub fn run_warm_interleaved(
    imps: &mut [(Impl, &mut State)],
    w: &Workload,
    runs: usize,
) -> Result<Vec<(Vec<Sample>, usize)>, String> {
    let mut outs: Vec<Output> = imps.iter().map(|_| Output::default()).collect();
    for ((imp, state), out) in imps.iter_mut().zip(&mut outs) {
        imp.run(w, out, state)?;
    }
    let mut samples: Vec<Vec<Sample>> = imps.iter().map(|_| Vec::with_capacity(runs)).collect();
    round_robin(imps.len(), runs, |i| {
        let ((imp, state), out) = (&mut imps[i], &mut outs[i]);
        let (r, s) = measure::measure(|| imp.run(w, out, state));
        r?;
        samples[i].push(s);
        Ok::<(), String>(())
    })?;
    Ok(samples.into_iter().zip(&outs).map(|(s, o)| (s, o.insns.len())).collect())
}

/// Calls `one(i)` for `runs` rounds of every `i` in `0..k`, in order: the measurement order of
/// interleaved runs (warm and cold). Stops at the first error.
fn round_robin<E>(k: usize, runs: usize, mut one: impl FnMut(usize) -> Result<(), E>) -> Result<(), E> {
    for _ in 0..runs {
        for i in 0..k {
            one(i)?;
        }
    }
    Ok(())
}

/// Sets a warm row's peak memory from a fresh process running `imp` warm, when child processes
/// run at all (`cold_runs > 0`): in-process runs reuse memory earlier sizes freed.
fn warm_peak(
    r: &mut Row,
    cfg: &Config,
    cold: ColdRunner<'_>,
    kind: WorkloadKind,
    size: usize,
    imp: Impl,
) -> Result<(), String> {
    if cfg.cold_runs > 0 {
        r.peak_bytes = cold(imp, kind, size, true)?.0.peak_bytes;
    }
    Ok(())
}

/// Runs `imp` once on a fresh [`State`] and [`Output`] (what one cold process does).
///
/// # Errors
/// The implementation's error.
pub fn run_cold_here(imp: Impl, kind: WorkloadKind, size: usize) -> Result<(Sample, usize), String> {
    let w = kind.generate(size);
    let mut state = State::default();
    let mut out = Output::default();
    let (r, s) = measure::measure(|| imp.run(&w, &mut out, &mut state));
    r?;
    Ok((s, out.insns.len()))
}

/// Runs `imp` warm on a fresh [`State`] and [`Output`] in this process: one untimed run sizes
/// the buffers, then one measured run whose peak counts from before the buffers existed (the
/// memory a warm implementation holds plus what a run adds on top). What a child process runs
/// for a warm row's peak memory.
///
/// # Errors
/// The implementation's error.
pub fn run_warm_peak_here(imp: Impl, kind: WorkloadKind, size: usize) -> Result<(Sample, usize), String> {
    let w = kind.generate(size);
    let baseline = measure::rss_bytes();
    let mut state = State::default();
    let mut out = Output::default();
    imp.run(&w, &mut out, &mut state)?;
    let (r, s) = measure::measure_since(baseline, || imp.run(&w, &mut out, &mut state));
    r?;
    Ok((s, out.insns.len()))
}

/// Runs the whole plan.
///
/// # Errors
/// The first implementation or cold-run error.
pub fn run(cfg: &Config, cold: ColdRunner<'_>, progress: Progress<'_>) -> Result<Report, String> {
    let start = std::time::Instant::now();
    run_with_clock(cfg, cold, progress, &mut || start.elapsed().as_secs_f64())
}

/// [`run`], charging the kernel model's budgets by `clock` (seconds from any fixed point), so
/// that a test can give each kernel run the time it wants.
fn run_with_clock(
    cfg: &Config,
    cold: ColdRunner<'_>,
    progress: Progress<'_>,
    clock: &mut dyn FnMut() -> f64,
) -> Result<Report, String> {
    let mut results = Vec::new();
    let mut plan: Vec<(WorkloadKind, usize)> = cfg.seed_sizes.iter().map(|&s| (WorkloadKind::Seed, s)).collect();
    let kernel = cfg.impls.contains(&Impl::Kernel);
    if cfg.rand_ld_dw {
        if kernel {
            plan.extend(RAND_LD_DW_KERNEL_LENS.iter().map(|&n| (WorkloadKind::RandLdDw, n)));
        }
        plan.push((WorkloadKind::RandLdDw, RAND_LD_DW_LEN));
    }
    // A calibration length: only the kernel runs it.
    let calibration = |kind: WorkloadKind, size: usize| kind == WorkloadKind::RandLdDw && size != RAND_LD_DW_LEN;
    let cold_impls: Vec<Impl> = cfg.impls.iter().copied().filter(|i| i.has_cold_regime()).collect();
    let per_size = cfg.impls.len() + if cfg.cold_runs > 0 { cold_impls.len() } else { 0 };
    let total = plan.iter().map(|&(k, n)| if calibration(k, n) { 1 } else { per_size }).sum();
    let mut done = 0;
    let mut kernel_spent_s = 0.0;
    let mut calibration_spent_s = 0.0;
    let mut states: Vec<(Impl, State)> = cfg.impls.iter().map(|&i| (i, State::default())).collect();
    for &(kind, size) in &plan {
        if calibration(kind, size) {
            let budget = RAND_LD_DW_KERNEL_BUDGET_S.min(cfg.kernel_budget_s);
            if size != RAND_LD_DW_KERNEL_LENS[0] && calibration_spent_s >= budget {
                done += 1;
                continue;
            }
            let w = kind.generate(size);
            progress(done, total, &format!("{} {} kernel warm (calibration)", kind.name(), size));
            let t0 = clock();
            let state = states.iter_mut().find(|(i, _)| *i == Impl::Kernel).map(|(_, s)| s);
            let mut scratch = State::default();
            let (samples, out_len) = run_warm(Impl::Kernel, &w, cfg.runs, state.unwrap_or(&mut scratch))?;
            calibration_spent_s += clock() - t0;
            results.push(row(&w, Impl::Kernel, "warm", &samples, out_len));
            done += 1;
            continue;
        }
        let w = kind.generate(size);
        let mut kernel_points: Vec<(f64, f64)> = results
            .iter()
            .filter(|r: &&Row| r.imp == "kernel" && r.workload == w.name && !r.extrapolated)
            .map(|r| (r.patches as f64, r.median_ms))
            .collect();
        // The kernel's algorithm (budgeted) and the RFC list, back to back (`Impl::interleaved`).
        for (imp, state) in states.iter_mut().filter(|(i, _)| !i.interleaved()) {
            let imp = *imp;
            progress(done, total, &format!("{} {} {} warm", kind.name(), size, imp.name()));
            // The kernel runs while its budget lasts (the last run may overshoot it), and never
            // a size that the fit of what it ran so far predicts to take more than twice the
            // whole budget by itself (so a large budget cannot start an hours-long run); beyond,
            // it is extrapolated from that fit.
            let fit = measure::quadratic_fit(&kernel_points);
            let p = w.patches() as f64;
            let predicted_s = fit.map(|(a, b)| (a * p * p + b * p) / 1e3);
            if imp == Impl::Kernel
                && (kernel_spent_s >= cfg.kernel_budget_s || predicted_s.is_some_and(|t| t > 2.0 * cfg.kernel_budget_s))
            {
                if let Some((a, b)) = fit {
                    let ms = a * p * p + b * p;
                    let out_len = results
                        .iter()
                        .find(|r: &&Row| r.workload == w.name && r.patches == w.patches())
                        .map_or(0, |r| r.insns_out);
                    results.push(Row {
                        median_ms: ms,
                        min_ms: ms,
                        max_ms: ms,
                        runs: 0,
                        extrapolated: true,
                        ..row(&w, imp, "warm", &[], out_len)
                    });
                }
                done += 1;
                continue;
            }
            let t0 = clock();
            let (samples, out_len) = run_warm(imp, &w, cfg.runs, state)?;
            let mut r = row(&w, imp, "warm", &samples, out_len);
            if imp == Impl::Kernel {
                kernel_spent_s += clock() - t0;
                kernel_points.push((r.patches as f64, r.median_ms));
            } else {
                warm_peak(&mut r, cfg, cold, kind, size, imp)?;
            }
            results.push(r);
            done += 1;
        }
        // The implementations that keep their buffers, interleaved (`run_warm_interleaved`).
        let mut fast: Vec<(Impl, &mut State)> =
            states.iter_mut().filter(|(i, _)| i.interleaved()).map(|(i, s)| (*i, s)).collect();
        if !fast.is_empty() {
            let names = fast.iter().map(|(i, _)| i.name()).collect::<Vec<_>>().join(", ");
            progress(done, total, &format!("{} {} warm, interleaved: {names}", kind.name(), size));
        }
        let measured = run_warm_interleaved(&mut fast, &w, cfg.runs)?;
        for ((imp, _), (samples, out_len)) in fast.iter().zip(measured) {
            let mut r = row(&w, *imp, "warm", &samples, out_len);
            warm_peak(&mut r, cfg, cold, kind, size, *imp)?;
            results.push(r);
            done += 1;
        }
        if cfg.cold_runs > 0 && !cold_impls.is_empty() {
            // Interleaved as the warm runs: round after round, one fresh process per
            // implementation.
            let names = cold_impls.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ");
            progress(done, total, &format!("{} {} cold, interleaved: {names}", kind.name(), size));
            let mut samples: Vec<Vec<Sample>> = cold_impls.iter().map(|_| Vec::with_capacity(cfg.cold_runs)).collect();
            let mut out_lens = vec![0; cold_impls.len()];
            round_robin(cold_impls.len(), cfg.cold_runs, |i| {
                let (s, n) = cold(cold_impls[i], kind, size, false)?;
                samples[i].push(s);
                out_lens[i] = n;
                Ok::<(), String>(())
            })?;
            for ((&imp, samples), out_len) in cold_impls.iter().zip(&samples).zip(out_lens) {
                results.push(row(&w, imp, "cold", samples, out_len));
                done += 1;
            }
        }
    }
    // Extrapolated rows take the output length the measured implementations agree on.
    for i in 0..results.len() {
        if results[i].extrapolated {
            let (w, p) = (results[i].workload.clone(), results[i].patches);
            if let Some(n) =
                results.iter().find(|r| r.workload == w && r.patches == p && !r.extrapolated).map(|r| r.insns_out)
            {
                results[i].insns_out = n;
            }
        }
    }
    progress(total, total, "done");
    Ok(Report { machine: crate::report::machine(), command: String::new(), results, notes: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_visits_every_implementation_once_per_round() {
        let mut order = Vec::new();
        round_robin(3, 2, |i| {
            order.push(i);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
        // The first error stops it.
        let mut seen = 0;
        let r = round_robin(2, 3, |i| {
            seen += 1;
            if i == 1 { Err("second") } else { Ok(()) }
        });
        assert_eq!((r, seen), (Err("second"), 2));
    }

    /// One seed size of 300 patches, `runs` warm and `cold_runs` cold runs, a kernel budget
    /// large enough for it.
    fn small_plan((runs, cold_runs): (usize, usize), impls: Vec<Impl>) -> Config {
        Config { runs, cold_runs, kernel_budget_s: 60.0, seed_sizes: vec![300], rand_ld_dw: false, impls }
    }

    /// The arrangement of one size: the kernel model and the RFC list back to back, the
    /// implementations that keep their buffers interleaved warm and cold (round after round,
    /// so a slow phase of the machine falls on all of them), one warm child per row for its
    /// peak, progress counted up to the total.
    #[test]
    fn buffer_keeping_implementations_run_interleaved() {
        let cfg = small_plan((2, 3), vec![Impl::Kernel, Impl::RfcList, Impl::Bpfpatch, Impl::CopyFloor]);
        let mut calls: Vec<(&str, bool)> = Vec::new();
        let mut cold = |imp: Impl, kind: WorkloadKind, size: usize, warm: bool| {
            calls.push((imp.name(), warm));
            run_cold_here(imp, kind, size)
        };
        let mut steps: Vec<(usize, usize, String)> = Vec::new();
        let report = run(&cfg, &mut cold, &mut |d, t, m| steps.push((d, t, m.to_string()))).unwrap();
        let timed: Vec<&str> = calls.iter().filter(|c| !c.1).map(|c| c.0).collect();
        assert_eq!(timed, ["bpfpatch", "copy-floor", "bpfpatch", "copy-floor", "bpfpatch", "copy-floor"]);
        let peaks: Vec<&str> = calls.iter().filter(|c| c.1).map(|c| c.0).collect();
        assert_eq!(peaks, ["rfc-list", "bpfpatch", "copy-floor"]);
        let rows: Vec<(&str, &str, usize)> =
            report.results.iter().map(|r| (r.imp.as_str(), r.regime.as_str(), r.runs)).collect();
        assert_eq!(
            rows,
            [
                ("kernel", "warm", 2),
                ("rfc-list", "warm", 2),
                ("bpfpatch", "warm", 2),
                ("copy-floor", "warm", 2),
                ("bpfpatch", "cold", 3),
                ("copy-floor", "cold", 3)
            ]
        );
        let msgs: Vec<&str> = steps.iter().map(|s| s.2.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "seed 300 kernel warm",
                "seed 300 rfc-list warm",
                "seed 300 warm, interleaved: bpfpatch, copy-floor",
                "seed 300 cold, interleaved: bpfpatch, copy-floor",
                "done"
            ]
        );
        // Steps count up to the total, which the last report reaches.
        assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0), "{steps:?}");
        assert!(steps.iter().all(|&(d, t, _)| d <= t && t == 6), "{steps:?}");
        assert_eq!(&steps[2..4].iter().map(|s| s.0).collect::<Vec<_>>(), &[2, 4]);
    }

    /// Without cold runs no child process starts: no cold rows, warm peaks from this process.
    #[test]
    fn no_cold_runs_start_no_child() {
        let cfg = small_plan((1, 0), vec![Impl::RfcList, Impl::Bpfpatch, Impl::CopyFloor]);
        let mut calls = 0;
        let mut cold = |imp: Impl, kind: WorkloadKind, size: usize, _: bool| {
            calls += 1;
            run_cold_here(imp, kind, size)
        };
        let report = run(&cfg, &mut cold, &mut |_, _, _| {}).unwrap();
        assert_eq!(calls, 0);
        assert!(report.results.iter().all(|r| r.regime == "warm"), "{:?}", report.results);
        assert_eq!(report.results.len(), 3);
        // Nothing to interleave: no such step reported.
        let mut msgs = Vec::new();
        run(&small_plan((1, 0), vec![Impl::RfcList]), &mut |_, _, _, _| Err("no child".to_string()), &mut |_, _, m| {
            msgs.push(m.to_string());
        })
        .unwrap();
        assert_eq!(msgs, ["seed 300 rfc-list warm", "done"]);
    }

    /// The kernel model runs sizes while its budget lasts and is extrapolated beyond: with each
    /// size charged 5 s against a 12 s budget, three sizes run and the fourth is extrapolated
    /// (its fit predicts milliseconds, so only the spent time can stop it).
    #[test]
    fn the_kernel_budget_stops_measured_sizes() {
        let cfg = Config {
            seed_sizes: vec![300, 301, 302, 303],
            kernel_budget_s: 12.0,
            ..small_plan((1, 0), vec![Impl::Kernel])
        };
        // Each kernel run reads the clock twice: 5 s apart.
        let mut now = 0.0;
        let mut clock = || {
            now += 5.0;
            now
        };
        let report =
            run_with_clock(&cfg, &mut |_, _, _, _| Err("no child".to_string()), &mut |_, _, _| {}, &mut clock).unwrap();
        let rows: Vec<(usize, bool)> = report.results.iter().map(|r| (r.patches, r.extrapolated)).collect();
        assert_eq!(rows, [(300, false), (301, false), (302, false), (303, true)]);
    }

    /// The kernel model's calibration runs on small `rand-ld-dw` programs have a budget of
    /// their own: with each charged 5 s against 8 s, the first two lengths run, the third does
    /// not, and the full program is extrapolated from the two.
    #[test]
    fn the_calibration_budget_stops_calibration_lengths() {
        let cfg = Config {
            seed_sizes: vec![],
            rand_ld_dw: true,
            kernel_budget_s: 8.0,
            ..small_plan((1, 0), vec![Impl::Kernel])
        };
        let mut now = 0.0;
        let mut clock = || {
            now += 5.0;
            now
        };
        let report =
            run_with_clock(&cfg, &mut |_, _, _, _| Err("no child".to_string()), &mut |_, _, _| {}, &mut clock).unwrap();
        // A program generated for `n` slots is a little shorter (whole ld_imm64 groups).
        let len = |n: usize| workload::rand_ld_dw(n).insns().len();
        let rows: Vec<(usize, bool)> = report.results.iter().map(|r| (r.insns_in, r.extrapolated)).collect();
        let lens = RAND_LD_DW_KERNEL_LENS;
        assert_eq!(rows, [(len(lens[0]), false), (len(lens[1]), false), (len(RAND_LD_DW_LEN), true)]);
    }

    /// Interleaved warm runs measure what sequential ones do: the same outputs, `runs` samples
    /// each, in the order given.
    #[test]
    fn interleaved_warm_runs_match_sequential_ones() {
        let w = workload::seed(2000);
        let (mut a, mut b) = (State::default(), State::default());
        let mut imps = [(Impl::Bpfpatch, &mut a), (Impl::CopyFloor, &mut b)];
        let got = run_warm_interleaved(&mut imps, &w, 3).unwrap();
        for ((imp, _), (samples, out_len)) in imps.iter().zip(&got) {
            let (seq, seq_len) = run_warm(*imp, &w, 1, &mut State::default()).unwrap();
            assert_eq!((samples.len(), *out_len), (3, seq_len), "{}", imp.name());
            assert!(seq_len > w.insns().len() && seq.len() == 1);
        }
    }

    /// A warm run's peak counts the buffers it keeps: at least its output's instructions
    /// (8 bytes a slot) for the implementations that write one. In-process measurements after
    /// the buffers exist report (next to) nothing, which is what this replaced.
    #[test]
    fn warm_peak_counts_kept_buffers() {
        for imp in [Impl::Bpfpatch, Impl::CopyFloor] {
            let (s, out_len) = run_warm_peak_here(imp, WorkloadKind::Seed, 200_000).unwrap();
            let peak = s.peak_bytes.expect("Linux's /proc/self/status has VmHWM");
            assert!(peak >= 8 * out_len as u64, "{}: peak {peak} for {out_len} slots", imp.name());
        }
    }
}
