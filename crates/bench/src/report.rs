//! The benchmark report: its JSON shape, the table in the RFC's shape, and the log-log plot.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One implementation measured on one workload size in one regime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `seed`, `rand-ld-dw` or `pipeline:<object>`.
    pub workload: String,
    /// `kernel`, `rfc-list`, `bpfpatch` or `copy-floor`.
    #[serde(rename = "impl")]
    pub imp: String,
    /// Patches applied.
    pub patches: usize,
    /// Input slots.
    pub insns_in: usize,
    /// Output slots.
    pub insns_out: usize,
    /// Median wall time of the runs (or the extrapolated time).
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Slowest run.
    pub max_ms: f64,
    /// Number of timed runs (0 when extrapolated).
    pub runs: usize,
    /// Peak resident bytes a run added (the largest over the runs), when measurable.
    pub peak_bytes: Option<u64>,
    /// Whether `median_ms` comes from the quadratic fit instead of a run.
    pub extrapolated: bool,
    /// `warm` (buffers reused across runs) or `cold` (a fresh process per run).
    pub regime: String,
}

impl Row {
    /// A measured row: the median, fastest and slowest of `samples` and their largest peak.
    #[must_use]
    pub fn measured(
        workload: String,
        imp: &str,
        regime: &str,
        (patches, insns_in, insns_out): (usize, usize, usize),
        samples: &[crate::measure::Sample],
    ) -> Row {
        let ms: Vec<f64> = samples.iter().map(|s| s.ms).collect();
        Row {
            workload,
            imp: imp.to_string(),
            patches,
            insns_in,
            insns_out,
            median_ms: crate::measure::median(&ms),
            min_ms: ms.iter().copied().fold(f64::INFINITY, f64::min),
            max_ms: ms.iter().copied().fold(0.0, f64::max),
            runs: samples.len(),
            peak_bytes: samples.iter().filter_map(|s| s.peak_bytes).max(),
            extrapolated: false,
            regime: regime.to_string(),
        }
    }
}

/// The whole report (`bpfpatch bench --json FILE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The machine it ran on (CPU model, cores, memory, OS).
    pub machine: String,
    /// The command line that produced it.
    pub command: String,
    /// Every measurement.
    pub results: Vec<Row>,
    /// What the tables do not show: checks made along the way (the `div-guard` workload's
    /// xlated comparisons) and why a workload or implementation is absent.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// A description of this machine: CPU model, logical cores, memory, kernel.
#[must_use]
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB, Linux {}", os.trim())
}

impl Report {
    fn find(&self, workload: &str, imp: &str, regime: &str, patches: usize) -> Option<&Row> {
        self.results
            .iter()
            .find(|r| r.workload == workload && r.imp == imp && r.regime == regime && r.patches == patches)
    }

    /// The table in the RFC's shape (`patches : time`), one row per size of `workload`, one
    /// column per implementation and regime (`bpfpatch` is the in-order engine, `list` the
    /// general one on the same requests), then the ratios the targets are stated in.
    #[must_use]
    pub fn table(&self, workload: &str) -> String {
        let mut sizes: Vec<usize> = self.results.iter().filter(|r| r.workload == workload).map(|r| r.patches).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let cols = [
            ("kernel", "warm", "kernel"),
            ("rfc-list", "warm", "rfc-list"),
            ("bpfpatch", "warm", "bpfpatch warm"),
            ("copy-floor", "warm", "floor warm"),
            ("bpfpatch", "cold", "bpfpatch cold"),
            ("copy-floor", "cold", "floor cold"),
            ("bpfpatch-list", "warm", "list warm"),
            ("bpfpatch-list", "cold", "list cold"),
        ];
        let mut out = String::new();
        let _ = write!(out, "{workload}\n{:>9} {:>9}", "patches", "insns out");
        for (_, _, h) in cols {
            let _ = write!(out, " {h:>14}");
        }
        let _ = writeln!(out, " {:>12} {:>12} {:>12}", "rfc/bpfpatch", "bp/floor(w)", "bp/floor(c)");
        for p in sizes {
            let out_len =
                self.results.iter().find(|r| r.workload == workload && r.patches == p).map_or(0, |r| r.insns_out);
            let _ = write!(out, "{p:>9} {out_len:>9}");
            for (imp, regime, _) in cols {
                let cell = match self.find(workload, imp, regime, p) {
                    Some(r) if r.extrapolated => format!("~{}", fmt_ms(r.median_ms)),
                    Some(r) => fmt_ms(r.median_ms),
                    None => "-".into(),
                };
                let _ = write!(out, " {cell:>14}");
            }
            let ratio = |a: Option<&Row>, b: Option<&Row>| match (a, b) {
                (Some(a), Some(b)) if b.median_ms > 0.0 => format!("{:.1}x", a.median_ms / b.median_ms),
                _ => "-".into(),
            };
            let bw = self.find(workload, "bpfpatch", "warm", p);
            let bc = self.find(workload, "bpfpatch", "cold", p);
            let _ = writeln!(
                out,
                " {:>12} {:>12} {:>12}",
                ratio(self.find(workload, "rfc-list", "warm", p), bw),
                ratio(bw, self.find(workload, "copy-floor", "warm", p)),
                ratio(bc, self.find(workload, "copy-floor", "cold", p)),
            );
        }
        out
    }
}

/// Milliseconds as `0.123 ms`, `12.3 ms`, `4.56 s`.
#[must_use]
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.0} s", ms / 1e3)
    } else if ms >= 1_000.0 {
        format!("{:.2} s", ms / 1e3)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(imp: &str, regime: &str, patches: usize, ms: f64) -> Row {
        Row {
            workload: "seed".into(),
            imp: imp.into(),
            patches,
            insns_in: patches,
            insns_out: 3 * patches,
            median_ms: ms,
            min_ms: ms,
            max_ms: ms,
            runs: 3,
            peak_bytes: None,
            extrapolated: false,
            regime: regime.into(),
        }
    }

    #[test]
    fn json_has_the_issue_shape() {
        let r = Report {
            machine: "m".into(),
            command: "c".into(),
            results: vec![row("bpfpatch", "warm", 10, 1.5)],
            notes: vec![],
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        let row = &v["results"][0];
        for key in [
            "workload",
            "impl",
            "patches",
            "insns_in",
            "insns_out",
            "median_ms",
            "runs",
            "peak_bytes",
            "extrapolated",
            "regime",
        ] {
            assert!(row.get(key).is_some(), "missing {key}");
        }
        assert_eq!(row["impl"], "bpfpatch");
    }

    #[test]
    fn table_shows_ratios() {
        let r = Report {
            machine: String::new(),
            command: String::new(),
            results: vec![
                row("rfc-list", "warm", 100, 50.0),
                row("bpfpatch", "warm", 100, 5.0),
                row("copy-floor", "warm", 100, 2.5),
                row("bpfpatch-list", "warm", 100, 7.25),
            ],
            notes: vec![],
        };
        let t = r.table("seed");
        assert!(t.contains("10.0x") && t.contains("2.0x"), "{t}");
        // The general list has a column of its own.
        assert!(t.contains("list warm") && t.contains("7.250 ms"), "{t}");
    }
}
