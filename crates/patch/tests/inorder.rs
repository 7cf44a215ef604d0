//! The in-order engine (`InOrder`) against the list engine and, on the patch-only subset, the
//! kernel reference: `bpfpatch_testkit::inorder` (the generator, the script and every
//! comparison live there, shared with `fuzz/fuzz_targets/patch_inorder.rs`).
//! `BPFPATCH_DIFF_CASES` sets the case count, `BPFPATCH_INORDER_SEED` replays one case.
#![allow(clippy::panic, clippy::cast_precision_loss)]

use bpfpatch_testkit::inorder::{differential_seed, stats};

fn cases() -> u64 {
    std::env::var("BPFPATCH_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000)
}

#[test]
fn inorder_agrees_with_the_list_and_the_kernel() {
    if let Some(seed) = std::env::var("BPFPATCH_INORDER_SEED").ok().and_then(|v| v.parse().ok()) {
        differential_seed(seed);
        return;
    }
    let n = cases();
    let t0 = std::time::Instant::now();
    for seed in 0..n {
        if let Err(e) = std::panic::catch_unwind(|| differential_seed(seed)) {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("seed {seed} failed (replay with BPFPATCH_INORDER_SEED={seed}): {}", msg.unwrap_or_default());
        }
    }
    let st = stats();
    eprintln!("in-order differential: {n} cases, 0 mismatches, {:.1?}; {st:?}", t0.elapsed());
    if n < 5_000 {
        return;
    }
    // Floors: the generator does what it is for.
    assert!(st.accepted * 2 >= st.tried, "fewer than half of the requests were accepted: {st:?}");
    assert!(st.linearized * 2 >= st.cases, "fewer than half of the cases linearized: {st:?}");
    assert!(st.kernel * 10 >= st.cases, "fewer than a tenth of the cases reached the kernel: {st:?}");
    assert!(st.refused > 0 && st.unsupported > 0 && st.bad_programs > 0, "refusals never exercised: {st:?}");
    assert!(st.deletions > 0 && st.ld_pairs > 0, "deletions or ld_imm64 pairs never exercised: {st:?}");
    assert!(st.spellings.iter().all(|&k| k > 0), "a target spelling was never accepted: {st:?}");
    // Both of the in-order engine's paths: the fast one (blinding's shapes) and the general one.
    assert!(st.fast * 20 >= st.accepted && st.fast * 2 < st.accepted, "one path barely exercised: {st:?}");
    // Each buffer length the fast path unrolls apart, and the longer ones.
    assert!(st.fast_len.iter().all(|&k| k > 0), "a fast-path length never exercised: {st:?}");
}
