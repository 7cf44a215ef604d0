//! The engine against a deliberately naive oracle (`bpfpatch_testkit::naive`): an
//! absolute-index vector patcher that rewrites every reference on every request, on random
//! programs and scripts of every request kind, target spelling and reference kind, applied to
//! original, inserted, prologue and deletion-adjacent nodes. It covers what the kernel
//! reference cannot express (labels, `retarget`, references to and next to deleted code, calls
//! by node) and is checked after every request, not only at the end.
#![allow(clippy::panic, clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use bpfpatch_testkit::naive::{self, NODES, REFS, REQUESTS, TARGETS};

fn cases() -> u64 {
    std::env::var("BPFPATCH_NAIVE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000)
}

#[test]
fn engine_agrees_with_the_naive_oracle() {
    if let Some(seed) = std::env::var("BPFPATCH_NAIVE_SEED").ok().and_then(|v| v.parse().ok()) {
        naive::differential_seed(seed);
        return;
    }
    let n = cases();
    let t0 = std::time::Instant::now();
    for seed in 0..n {
        if let Err(e) = std::panic::catch_unwind(|| naive::differential_seed(seed)) {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("seed {seed} failed (replay with BPFPATCH_NAIVE_SEED={seed}): {}", msg.unwrap_or_default());
        }
    }
    let st = naive::stats();
    eprintln!(
        "naive differential: {n} cases, 0 mismatches, {:.1?}; {} requests, {} accepted ({:.0}%), {} cases linearized, {} (request, target, reference) triples, {} (request, node) pairs",
        t0.elapsed(),
        st.tried,
        st.accepted,
        100.0 * st.accepted as f64 / st.tried.max(1) as f64,
        st.linearized,
        st.cover.len(),
        st.node_cover.len()
    );
    if n < 10_000 {
        return;
    }
    // Floors: the generator does what it is for.
    assert!(st.accepted * 2 >= st.tried, "fewer than half of the requests were accepted");
    assert!(st.linearized * 2 >= st.cases, "fewer than half of the cases linearized");
    let mut missing = Vec::new();
    // Every request that carries targets x every spelling x every reference kind.
    for (req, name) in REQUESTS.iter().enumerate().take(5) {
        for (t, tn) in TARGETS.iter().enumerate() {
            for (r, rn) in REFS.iter().enumerate() {
                if !st.cover.contains(&(req as u8, t as u8, r as u8)) {
                    missing.push(format!("{name} x {tn} x {rn}"));
                }
            }
        }
    }
    // Every request on every kind of node (append names none).
    for (req, name) in REQUESTS.iter().enumerate() {
        if req == 3 {
            continue;
        }
        for (c, cn) in NODES.iter().enumerate() {
            if !st.node_cover.contains(&(req as u8, c as u8)) {
                missing.push(format!("{name} on {cn} node"));
            }
        }
    }
    assert!(missing.is_empty(), "never generated: {missing:?}");
}
