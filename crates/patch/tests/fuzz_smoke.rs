//! Bounded smoke runs of the engine's fuzzing oracles (`fuzz/` runs the same functions under
//! libFuzzer): random byte inputs, plus every committed seed and crash reproducer under
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`. `BPFPATCH_SMOKE_CASES` raises
//! the count.

use bpfpatch_insn::fuzzing::smoke_cases;
use bpfpatch_patch::fuzzing::{Rng, differential, identity, requests};
use bpfpatch_testkit::committed_inputs;

/// Random inputs of random lengths (0..512 bytes) from a fixed seed.
fn inputs(n: usize, salt: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = Rng::seeded(salt);
    (0..n).map(move |_| {
        let len = rng.below(512);
        (0..len).map(|_| rng.byte()).collect()
    })
}

fn run(target: &str, n: usize, salt: u64, oracle: fn(&[u8])) {
    let seeds = committed_inputs(target);
    for data in seeds.iter().cloned().chain(inputs(n, salt)) {
        oracle(&data);
    }
    eprintln!("{target}: {} committed inputs and {n} random inputs passed", seeds.len());
}

#[test]
fn differential_oracle_smoke() {
    // As the fuzz target: both oracles on the same bytes.
    run("patch_differential", smoke_cases(100_000), 1, |d| {
        differential(d);
        bpfpatch_testkit::naive::differential(d);
    });
}

#[test]
fn identity_oracle_smoke() {
    run("patch_identity", smoke_cases(50_000), 2, identity);
}

#[test]
fn requests_oracle_smoke() {
    run("patch_requests", smoke_cases(100_000), 3, |d| {
        requests(d);
        bpfpatch_testkit::naive::differential(d);
    });
}

#[test]
fn inorder_oracle_smoke() {
    run("patch_inorder", smoke_cases(20_000), 4, bpfpatch_testkit::inorder::differential);
}
