//! Differential test: the list engine against the kernel's one-patch-at-a-time algorithm
//! (`bpfpatch_patch::reference`), on seeded cases of the fuzzing oracle
//! [`bpfpatch_patch::fuzzing::differential`] (the generator, its kernel translation and its
//! documented exclusions live there, shared with `fuzz/`).
//!
//! Each case generates a valid program (subprograms, conditional and unconditional jumps,
//! `gotol`, `may_goto`, bpf-to-bpf calls, ld_imm64 incl. `PSEUDO_FUNC`, line info with an entry
//! at every subprogram start, func_info, poke descriptors, insn arrays, relocations) and a random
//! sequence of operations (patch, both prepatch flavours, range deletion, in-place rewrite,
//! append), applies every operation to both engines and requires identical instructions, aux
//! data, subprograms, func_info, line info, poke descriptors and insn arrays, relocations where
//! the kernel moved the instruction's aux, and a monotone old-to-new map.
#![allow(clippy::panic)]

use bpfpatch_patch::fuzzing::{differential_seed, differential_stats};

fn cases() -> u64 {
    std::env::var("BPFPATCH_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000)
}

#[test]
fn differential_against_kernel_reference() {
    if let Some(seed) = std::env::var("BPFPATCH_DIFF_SEED").ok().and_then(|v| v.parse().ok()) {
        differential_seed(seed);
        return;
    }
    let n = cases();
    let t0 = std::time::Instant::now();
    for seed in 0..n {
        let r = std::panic::catch_unwind(|| differential_seed(seed));
        if let Err(e) = r {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("seed {seed} failed (replay with BPFPATCH_DIFF_SEED={seed}): {}", msg.unwrap_or_default());
        }
    }
    let st = differential_stats();
    eprintln!(
        "differential: {n} cases, 0 mismatches, {:.1?}; ops: {} patch, {} land, {} skip, {} delete, {} append, {} hard-wire; {} slots compared",
        t0.elapsed(),
        st[0],
        st[1],
        st[2],
        st[3],
        st[4],
        st[6],
        st[5]
    );
    assert!(n < 100 || st.iter().all(|&v| v > 0), "an operation kind was never exercised");
}
