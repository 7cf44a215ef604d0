//! Bounded smoke run of the passes' semantic fuzzing oracle (`fuzz/` runs it under libFuzzer):
//! every committed seed and reproducer under `fuzz/corpus/passes_semantic/` and
//! `fuzz/regressions/passes_semantic/`, then random inputs (generated programs and raw images).
//! `BPFPATCH_SMOKE_CASES` raises the count.

#![allow(clippy::cast_possible_truncation)]

use bpfpatch_passes::fuzzing::{Rng, semantic, semantic_stats};

fn cases() -> usize {
    std::env::var("BPFPATCH_SMOKE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
}

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

#[test]
fn semantic_oracle_smoke() {
    let seeds = committed("passes_semantic");
    for data in &seeds {
        semantic(data);
    }
    let mut rng = Rng::new(&[], 0x5eed);
    let n = cases();
    for i in 0..n {
        let len = rng.below(200) as usize;
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
