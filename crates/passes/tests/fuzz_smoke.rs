//! Bounded smoke run of the passes' semantic fuzzing oracle (`fuzz/` runs it under libFuzzer):
//! every committed seed and reproducer under `fuzz/corpus/passes_semantic/` and
//! `fuzz/regressions/passes_semantic/`, then random inputs (generated programs and raw images).
//! `BPFPATCH_SMOKE_CASES` raises the count.

#![allow(clippy::cast_possible_truncation)]

use bpfpatch_insn::fuzzing::smoke_cases;
use bpfpatch_passes::fuzzing::{Rng, semantic, semantic_stats};
use bpfpatch_testkit::committed_inputs;

#[test]
fn semantic_oracle_smoke() {
    let seeds = committed_inputs("passes_semantic");
    for data in &seeds {
        semantic(data);
    }
    let mut rng = Rng::from_bytes_seeded(&[], 0x5eed);
    let n = smoke_cases(20_000);
    for i in 0..n {
        let len = rng.below_u64(200) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Mostly generated programs; every fourth a raw image.
        if let Some(first) = data.first_mut() {
            *first = if i % 4 == 3 { *first | 1 } else { *first & !1 };
        }
        semantic(&data);
    }
    let [ran, compared] = semantic_stats();
    eprintln!(
        "passes_semantic: {} committed inputs and {n} random inputs passed; {ran} originals ran, {compared} rewrites compared",
        seeds.len()
    );
    assert!(ran * 2 >= n && compared >= ran, "too few programs ran ({ran} of {n}) or were compared ({compared})");
}
