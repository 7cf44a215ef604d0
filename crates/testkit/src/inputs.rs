//! Counted skips: tests whose inputs are absent say so, and fail under `BPFPATCH_REQUIRE_INPUTS=1`.
//!
//! Some tests need an input that a checkout may lack: the shared conformance vectors
//! (`../shared/conformance`), the llvm-19 tools, or the corpus `scripts/corpus.sh` builds into
//! `corpus/build`. Such a test asks [`require_input`] or [`require_tool`] first and returns at once
//! when told `false`. The test then passes (stable Rust cannot mark a test ignored at run time),
//! but never silently:
//!
//! - `SKIPPED: <test> needs <what> (<path>)` is written to the process's real stderr, past the
//!   test harness's output capture, so it shows in `cargo test`'s output;
//! - when `BPFPATCH_SKIP_LOG` names a file, one line `<test>\t<what>\t<path>` is appended to it, so
//!   the skips of a whole `cargo test --workspace` can be counted (`wc -l`);
//! - when `BPFPATCH_REQUIRE_INPUTS=1` (CI, which has every input), the test panics instead: an
//!   absent input is then a failure, not a pass.

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// The environment variable that turns an absent input into a test failure when set to `1`.
pub const REQUIRE_ENV: &str = "BPFPATCH_REQUIRE_INPUTS";
/// The environment variable naming a file that every skip appends one line to.
pub const SKIP_LOG_ENV: &str = "BPFPATCH_SKIP_LOG";

/// Whether `path` exists (a file or a directory). When it does not, records a counted skip
/// (see the crate documentation) and returns `false`; panics instead under
/// `BPFPATCH_REQUIRE_INPUTS=1`.
#[track_caller]
pub fn require_input(what: &str, path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    skip(what, &path.display().to_string());
    false
}

/// Whether `tool --version` runs and succeeds. When it does not, records a counted skip and
/// returns `false`; panics instead under `BPFPATCH_REQUIRE_INPUTS=1`.
#[track_caller]
pub fn require_tool(tool: &str) -> bool {
    let ok = runs(tool);
    if !ok {
        skip(tool, "not on PATH or does not run");
    }
    ok
}

fn runs(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Whether every one of `tools` runs (see [`require_tool`]); records one skip naming the first
/// that does not.
#[track_caller]
pub fn require_tools(tools: &[&str]) -> bool {
    for t in tools {
        if !runs(t) {
            skip(t, "not on PATH or does not run");
            return false;
        }
    }
    true
}

/// Whether `BPFPATCH_REQUIRE_INPUTS=1` is set.
#[must_use]
pub fn inputs_required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1")
}

/// Records a counted skip of the running test, which needs `what` (found missing at `where_`):
/// the `SKIPPED:` line on stderr and the skip log line. Panics instead under
/// `BPFPATCH_REQUIRE_INPUTS=1`. For inputs [`require_input`] and [`require_tool`] cannot test
/// (a folder that exists but holds nothing, for one).
#[track_caller]
#[allow(clippy::panic)] // failing the test is the point under BPFPATCH_REQUIRE_INPUTS=1
pub fn skip(what: &str, where_: &str) {
    let test = test_name();
    let at = std::panic::Location::caller();
    if inputs_required() {
        panic!("{test} needs {what} ({where_}), and {REQUIRE_ENV}=1 forbids skipping [{at}]");
    }
    // `eprintln!` would be captured by the test harness and shown only for failing tests; the
    // handle's own writes are not captured.
    // One write of the whole line, so that concurrent tests do not split it.
    let _ = std::io::stderr().write_all(format!("SKIPPED: {test} needs {what} ({where_}) [{at}]\n").as_bytes());
    if let Some(log) = std::env::var_os(SKIP_LOG_ENV) {
        // One `write` of one short line to an O_APPEND file: concurrent tests do not interleave.
        let line = format!("{test}\t{what}\t{where_}\n");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            let _ = writeln!(std::io::stderr(), "SKIPPED: cannot append to {}: {e}", Path::new(&log).display());
        }
    }
}

/// The running test's name: the harness names each test's thread after the test.
fn test_name() -> String {
    let exe = std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| s.rsplit_once('-').map_or(s.clone(), |(bin, _hash)| bin.to_owned()))
        .unwrap_or_default();
    let thread = std::thread::current().name().unwrap_or("<unnamed test>").to_owned();
    if exe.is_empty() { thread } else { format!("{exe}::{thread}") }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const ABSENT: &str = "/nonexistent/bpfpatch-testkit-probe";

    #[test]
    fn present_inputs_are_not_skips() {
        assert!(require_input("this crate", Path::new(env!("CARGO_MANIFEST_DIR"))));
    }

    #[test]
    fn names_the_test() {
        assert_eq!(test_name(), "bpfpatch_testkit::inputs::tests::names_the_test");
    }

    /// Run only by `absent_inputs_are_counted_or_fatal`, in a child process with the
    /// environment it sets.
    #[test]
    #[ignore = "a probe run by absent_inputs_are_counted_or_fatal in a child process"]
    fn absent_input_probe() {
        if std::env::var_os("BPFPATCH_TESTKIT_PROBE").is_none() {
            return; // `cargo test -- --ignored` by hand: nothing to probe
        }
        assert!(!require_input("the probe input", Path::new(ABSENT)));
    }

    fn probe(require: &str, log: &Path) -> std::process::Output {
        Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "inputs::tests::absent_input_probe", "--test-threads=1"])
            .env("BPFPATCH_TESTKIT_PROBE", "1")
            .env(REQUIRE_ENV, require)
            .env(SKIP_LOG_ENV, log)
            .output()
            .unwrap()
    }

    #[test]
    fn absent_inputs_are_counted_or_fatal() {
        let log = std::env::temp_dir().join(format!("bpfpatch-testkit-skips-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        // Counted: the test passes, says SKIPPED on the uncaptured stderr, and logs one line.
        for _ in 0..2 {
            let out = probe("0", &log);
            assert!(out.status.success(), "{out:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(
                    "SKIPPED: bpfpatch_testkit::inputs::tests::absent_input_probe needs the probe input (/nonexistent/"
                ),
                "{err}"
            );
        }
        let lines = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            lines,
            format!("bpfpatch_testkit::inputs::tests::absent_input_probe\tthe probe input\t{ABSENT}\n").repeat(2)
        );
        // Fatal under BPFPATCH_REQUIRE_INPUTS=1, and not logged as a skip.
        let out = probe("1", &log);
        assert!(!out.status.success(), "{out:?}");
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(all.contains("BPFPATCH_REQUIRE_INPUTS=1 forbids skipping"), "{all}");
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
        std::fs::remove_file(&log).unwrap();
    }
}
