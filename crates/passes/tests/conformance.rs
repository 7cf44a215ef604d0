//! Acceptance: every conformance vector gives its expected result in the three modes of the
//! RFC's test matrix: (a) the interpreter on the original, (b) after `--passes all`
//! (`dce,fixups,zext,rnd-hi32`, plus `lower-v4` for cpu-v4 programs), (c) the same plus `blind`.
//! A counted skip (`bpfpatch_testkit`) when the shared folder is absent.
//!
//! Every mode goes through the VM's own runner (`run_conformance` with the transform hook), whose
//! loader re-checks each rewritten program. (b) and (c) have `zext`: they run on a machine that
//! leaves random upper halves after 32-bit definitions (`Hi32Mode::Randomize`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bpfpatch_insn::Insn;
use bpfpatch_passes::fuzzing::hi32_mode;
use bpfpatch_passes::{Options, Pass, Pipeline, transform};
use bpfpatch_vm::{ConformanceOptions, VmConfig, run_conformance};
use std::path::{Path, PathBuf};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/tests");

/// Whether the shared vectors are there; a counted skip when not (a failure under
/// `BPFPATCH_REQUIRE_INPUTS=1`).
#[track_caller]
fn present() -> bool {
    bpfpatch_testkit::require_input("../shared/conformance", Path::new(DIR))
}

fn run_official(pipeline: Option<Pipeline>) -> (usize, Vec<String>) {
    let opts = Options::default();
    let hi32 = pipeline.as_ref().map(|p| hi32_mode(p, 0x5eed)).unwrap_or_default();
    let f = move |insns: &[Insn]| -> Result<Vec<Insn>, String> {
        match &pipeline {
            Some(p) => transform(insns, p, &opts).map_err(|e| e.to_string()),
            None => Ok(insns.to_vec()),
        }
    };
    let copts = ConformanceOptions::default().with_transform(&f).with_vm(VmConfig::default().with_hi32(hi32));
    let mut failures = Vec::new();
    let s = run_conformance(&[PathBuf::from(DIR)], &copts, |o| {
        if !o.passed() {
            failures.push(o.to_string());
        }
    });
    (s.passed, failures)
}

#[test]
fn conformance_vectors_pass_in_modes_a_and_b() {
    if !present() {
        return;
    }
    for (name, p) in [("a", None), ("b", Some(Pipeline::all()))] {
        let (passed, failures) = run_official(p);
        eprintln!("mode {name}: {passed} passed, {} failed", failures.len());
        assert!(failures.is_empty(), "mode {name}:\n{}", failures.join("\n"));
        assert!(passed > 200, "mode {name}: only {passed} vectors ran");
    }
}

#[test]
fn conformance_vectors_pass_in_mode_c() {
    if !present() {
        return;
    }
    let (passed, failures) = run_official(Some(Pipeline::all().with(Pass::Blind)));
    eprintln!("mode c: {passed} passed, {} failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(passed > 200, "mode c: only {passed} vectors ran");
}
