//! Bounded smoke runs of the engine's fuzzing oracles (`fuzz/` runs the same functions under
//! libFuzzer): random byte inputs, plus every committed seed and crash reproducer under
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`. `BPFPATCH_SMOKE_CASES` raises
//! the count.

use bpfpatch_patch::fuzzing::{Rng, differential, identity, requests};

fn cases(default: usize) -> usize {
    std::env::var("BPFPATCH_SMOKE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Random inputs of random lengths (0..512 bytes) from a fixed seed.
fn inputs(n: usize, salt: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = Rng::seeded(salt);
    (0..n).map(move |_| {
        let len = rng.below(512);
        (0..len).map(|_| rng.byte()).collect()
    })
}

/// Every file of `fuzz/<dir>/<target>` (absent directories contribute nothing).
fn committed(target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(dir).join(target);
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        let mut files: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        out.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    out
}

fn run(target: &str, n: usize, salt: u64, oracle: fn(&[u8])) {
    let seeds = committed(target);
    for data in seeds.iter().cloned().chain(inputs(n, salt)) {
        oracle(&data);
    }
    eprintln!("{target}: {} committed inputs and {n} random inputs passed", seeds.len());
}

#[test]
fn differential_oracle_smoke() {
    run("patch_differential", cases(20_000), 1, differential);
}

#[test]
fn identity_oracle_smoke() {
    run("patch_identity", cases(10_000), 2, identity);
}

#[test]
fn requests_oracle_smoke() {
    run("patch_requests", cases(20_000), 3, requests);
}
