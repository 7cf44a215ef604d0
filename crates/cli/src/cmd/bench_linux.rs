//! The `div-guard` workload of `bpfpatch bench`, implementation `linux`: the running kernel's
//! own patching, timed, beside bpfpatch's `fixups` on the same program.
//!
//! The program is a `SOCKET_FILTER` of N 64-bit register divisions (`r0 = 1000; r2 = 3;` N ×
//! `r0 /= r2`; `exit`). The verifier walks it once (straight-line code: linear), then
//! `do_misc_fixups` guards every division against a zero divisor with one
//! `bpf_patch_insn_data` call each, and every call copies the whole program and re-scans its
//! jumps: the quadratic algorithm the RFC set out to replace, still what Linux runs. The `linux`
//! row is the wall time of `BPF_PROG_LOAD` (verification, fixups, JIT); the `bpfpatch` row is
//! `fixups` on the same image (patch list, pass, linearization, and the decode check of the
//! result), each run from scratch as a load is. For every N the kernel loads, its xlated image
//! (read back) must equal ours, instruction for instruction: the benchmark compares like with
//! like or says it does not.
//!
//! N doubles from 1,000 while the kernel budget lasts (`--kernel-budget`, shared with the
//! kernel model of the seed workload), and never to a size the quadratic fit of the loads so
//! far predicts to take over twice the budget; larger N are extrapolated from that fit and
//! marked `~`. Where `bpf()` is not permitted, or the build has no kernel access, the workload
//! is absent and the report says why.

use anyhow::Result;
use bpfpatch_bench::measure::{self, Sample};
use bpfpatch_bench::report::{Row, fmt_ms};
use bpfpatch_insn::{Insn, opcode as c};
use bpfpatch_kernel::xlated::comparable;
use bpfpatch_kernel::{LoadOptions, ProgType, available, load};
use bpfpatch_passes::{Options, Pipeline};
use std::fmt::Write as _;

/// The workload's name in the report.
pub const WORKLOAD: &str = "div-guard";
/// The first N; it doubles up to [`LAST_N`].
pub const FIRST_N: usize = 1_000;
/// The largest N of the table (256,000 divisions: 256,003 instructions in, about a million
/// out, the kernel's program size limit).
pub const LAST_N: usize = 256_000;

/// The program of `n` register divisions.
#[must_use]
pub fn image(n: usize) -> Vec<Insn> {
    let mut v = Vec::with_capacity(n + 3);
    v.push(Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 1000)); // r0 = 1000
    v.push(Insn::new(c::ALU64 | c::MOV | c::K, 2, 0, 0, 3)); // r2 = 3
    v.extend(std::iter::repeat_n(Insn::new(c::ALU64 | c::DIV | c::X, 0, 2, 0, 0), n)); // r0 /= r2
    v.push(Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0));
    v
}

/// What the workload produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The `linux` and `bpfpatch` rows.
    pub rows: Vec<Row>,
    /// One line per N the kernel loaded: whether the two xlated images are the same; or why
    /// the kernel did not run at all.
    pub notes: Vec<String>,
    /// Whether the kernel's and our image differed at some N (a failed check).
    pub differs: bool,
}

/// Runs the workload: `runs` bpfpatch runs per N, the kernel within `budget_s` seconds.
///
/// # Errors
/// A pass error on the image (a bug: it is a valid program).
pub fn run(budget_s: f64, runs: usize, progress: &mut dyn FnMut(&str)) -> Result<Outcome> {
    let mut out = Outcome::default();
    let kernel = match available() {
        Ok(()) => true,
        Err(reason) => {
            out.notes.push(format!("{WORKLOAD}: linux skipped: {reason}"));
            false
        }
    };
    let pipeline = Pipeline::from_cli("fixups", false)?;
    let opts = Options::default();
    let mut spent_s = 0.0;
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut n = FIRST_N;
    while n <= LAST_N {
        let img = image(n);
        progress(&format!("{WORKLOAD} {n} bpfpatch"));
        let mut samples: Vec<Sample> = Vec::with_capacity(runs.max(1));
        let mut ours = Vec::new();
        for _ in 0..runs.max(1) {
            let (r, s) = measure::measure(|| pipeline.run(&img, &opts));
            ours = r?.insns;
            samples.push(s);
        }
        let shape = (n, img.len(), ours.len());
        out.rows.push(Row::measured(WORKLOAD.into(), "bpfpatch", "single", shape, &samples));
        if kernel {
            let fit = measure::quadratic_fit(&points);
            let p = n as f64;
            let predicted_s = fit.map(|(a, b)| (a * p * p + b * p) / 1e3);
            let within = spent_s < budget_s && predicted_s.is_none_or(|t| t <= 2.0 * budget_s);
            if within {
                progress(&format!("{WORKLOAD} {n} linux"));
                let loaded = load(ProgType::SocketFilter, &img, &LoadOptions::default().with_name("div_guard"));
                match loaded {
                    Ok(l) => {
                        let ms = l.stats().load_time.as_secs_f64() * 1e3;
                        spent_s += ms / 1e3;
                        points.push((p, ms));
                        let xl = l.xlated().map(|x| comparable(&x, true));
                        drop(l); // closed before the next load
                        let sample = Sample { ms, peak_bytes: None };
                        let kernel_len = xl.as_ref().map_or(0, Vec::len);
                        out.rows.push(Row::measured(
                            WORKLOAD.into(),
                            "linux",
                            "single",
                            (n, img.len(), kernel_len),
                            &[sample],
                        ));
                        match xl {
                            Ok(k) if k == comparable(&ours, false) => {
                                out.notes.push(format!("{WORKLOAD} N={n}: same xlated image ({} slots)", k.len()));
                            }
                            Ok(k) => {
                                out.differs = true;
                                let at =
                                    k.iter().zip(&ours).position(|(a, b)| a != b).unwrap_or(k.len().min(ours.len()));
                                out.notes.push(format!(
                                    "{WORKLOAD} N={n}: xlated images DIFFER (kernel {} slots, ours {}; first at slot {at})",
                                    k.len(),
                                    ours.len()
                                ));
                            }
                            Err(e) => out.notes.push(format!("{WORKLOAD} N={n}: xlated image not read: {e}")),
                        }
                    }
                    Err(e) => {
                        out.notes.push(format!("{WORKLOAD} N={n}: linux rejected the program: {e}"));
                        break;
                    }
                }
            } else if let Some((a, b)) = fit {
                let ms = a * p * p + b * p;
                let mut r = Row::measured(WORKLOAD.into(), "linux", "single", shape, &[]);
                (r.median_ms, r.min_ms, r.max_ms, r.extrapolated) = (ms, ms, ms, true);
                out.rows.push(r);
            }
        }
        n *= 2;
    }
    Ok(out)
}

/// The text table of the workload's rows.
#[must_use]
pub fn table(rows: &[Row], machine: &str) -> String {
    let mut out = format!(
        "{WORKLOAD} (N register divisions, one zero-divisor guard each; BPF_PROG_LOAD on the running kernel vs \
         bpfpatch fixups; {machine})\n"
    );
    let _ = writeln!(out, "{:>9} {:>10} {:>12} {:>12} {:>15}", "N", "slots out", "linux", "bpfpatch", "linux/bpfpatch");
    let find = |imp: &str, n: usize| rows.iter().find(|r| r.workload == WORKLOAD && r.imp == imp && r.patches == n);
    let mut n = FIRST_N;
    while n <= LAST_N {
        if let Some(b) = find("bpfpatch", n) {
            let l = find("linux", n);
            let cell = l.map_or_else(
                || "-".to_string(),
                |l| if l.extrapolated { format!("~{}", fmt_ms(l.median_ms)) } else { fmt_ms(l.median_ms) },
            );
            let ratio = l
                .filter(|_| b.median_ms > 0.0)
                .map_or_else(|| "-".into(), |l| format!("{:.0}x", l.median_ms / b.median_ms));
            let _ = writeln!(out, "{n:>9} {:>10} {cell:>12} {:>12} {ratio:>15}", b.insns_out, fmt_ms(b.median_ms));
        }
        n *= 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_has_n_register_divisions() {
        let img = image(5);
        assert_eq!(img.len(), 8);
        assert_eq!(img.iter().filter(|i| i.code == c::ALU64 | c::DIV | c::X).count(), 5);
        assert_eq!(img.last().map(|i| i.code), Some(c::JMP | c::EXIT));
    }
}
