//! Measuring one run: wall time and peak resident memory.
//!
//! Peak memory is read from Linux's per-process counters without instrumenting the allocator:
//! writing `5` to `/proc/self/clear_refs` resets the peak resident set (`VmHWM`) to the current
//! one, so `VmHWM` after a run minus `VmRSS` before it is the most the run added. Where those
//! files are missing the figure is `None`.

use std::time::Instant;

/// One measured run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Wall time in milliseconds.
    pub ms: f64,
    /// Peak resident bytes the run added above the resident set at its start.
    pub peak_bytes: Option<u64>,
}

fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Current resident set in bytes.
#[must_use]
pub fn rss_bytes() -> Option<u64> {
    status_kb("VmRSS:").map(|k| k * 1024)
}

fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `f` once, timing it and measuring the peak resident memory it added.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Sample) {
    measure_since(rss_bytes(), f)
}

/// Runs `f` once, timing it and measuring the peak resident memory above `baseline` (a
/// [`rss_bytes`] taken earlier, before the buffers a warm implementation keeps were allocated):
/// what a warm run needs in all, its kept buffers included.
pub fn measure_since<T>(baseline: Option<u64>, f: impl FnOnce() -> T) -> (T, Sample) {
    let can_peak = reset_peak();
    let t0 = Instant::now();
    let out = f();
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let peak = status_kb("VmHWM:").map(|k| k * 1024);
    let peak_bytes = match (can_peak, baseline, peak) {
        (true, Some(b), Some(p)) => Some(p.saturating_sub(b)),
        _ => None,
    };
    (out, Sample { ms, peak_bytes })
}

/// The median of a non-empty sample of times (the mean of the middle two for even counts).
#[must_use]
pub fn median(ms: &[f64]) -> f64 {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Least-squares fit of `t = a * n^2 + b * n` through measured points (n, t), for extrapolating
/// a quadratic implementation to sizes it was not run at. `None` with fewer than one point.
#[must_use]
pub fn quadratic_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    match points {
        [] => None,
        [(n, t)] => Some((t / (n * n), 0.0)),
        _ => {
            // Normal equations for the basis (n^2, n).
            let (mut s44, mut s33, mut s22, mut s2t, mut s1t) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &(n, t) in points {
                s44 += n.powi(4);
                s33 += n.powi(3);
                s22 += n.powi(2);
                s2t += n * n * t;
                s1t += n * t;
            }
            let det = s44 * s22 - s33 * s33;
            if det.abs() < f64::EPSILON {
                return None;
            }
            let a = (s2t * s22 - s33 * s1t) / det;
            let b = (s44 * s1t - s33 * s2t) / det;
            Some((a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_samples() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-12);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn quadratic_fit_recovers_coefficients() {
        let pts: Vec<_> = [1e3, 2e3, 5e3].iter().map(|&n| (n, 3e-6 * n * n + 0.01 * n)).collect();
        let (a, b) = quadratic_fit(&pts).unwrap();
        assert!((a - 3e-6).abs() < 1e-12 && (b - 0.01).abs() < 1e-9, "{a} {b}");
    }

    #[test]
    fn measure_sees_memory_the_run_touches() {
        // The peak is per process: a sibling test freeing memory during the run lowers it. So the
        // check runs alone, in a child process of this test binary (`peak_in_a_process_of_its_own`).
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["measure::tests::peak_in_a_process_of_its_own", "--exact", "--ignored", "--test-threads", "1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        // The child ran the check (a filter matching nothing would also succeed).
        assert!(text.contains("1 passed"), "{text}");
    }

    #[test]
    #[ignore = "run by measure_sees_memory_the_run_touches in a process of its own"]
    fn peak_in_a_process_of_its_own() {
        // The time is that of the closure: at least its 20 ms sleep, at most the wall time around
        // the whole call (a `>= 0` check could not fail).
        let wall = Instant::now();
        let (v, s) = measure(|| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            vec![1u8; 64 << 20]
        });
        let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
        assert_eq!(v.len(), 64 << 20);
        assert!(s.ms >= 20.0 && s.ms <= wall_ms, "{} ms measured, {wall_ms} ms around it", s.ms);
        if let Some(p) = s.peak_bytes {
            assert!(p >= 32 << 20, "peak {p}");
        }
    }
}
