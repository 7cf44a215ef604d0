//! Bounded smoke run of the object fuzzing oracle (`fuzz/` runs it under libFuzzer): every
//! committed seed and reproducer under `fuzz/corpus/object_elf/` and
//! `fuzz/regressions/object_elf/` (clean objects: the full rewrite oracle runs), then mutations
//! of them (byte and word overwrites with boundary values, truncations). `BPFPATCH_SMOKE_CASES`
//! raises the count.
#![allow(clippy::cast_possible_truncation)]

use bpfpatch_insn::fuzzing::{committed_inputs, smoke_cases};
use bpfpatch_object::fuzzing::elf;

#[test]
fn elf_oracle_smoke() {
    let mut seeds = committed_inputs("object_elf");
    for data in &seeds {
        elf(data);
    }
    if seeds.is_empty() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        for name in ["prog-el.o", "prog-eb.o", "calls-el.o", "calls-eb.o"] {
            seeds.push(std::fs::read(format!("{data}/{name}")).unwrap_or_default());
        }
    }
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    const WORDS: [u64; 8] = [0, 1, 7, 8, 0x7fff_ffff, 0xffff_ffff, u64::MAX, 0x8000_0000_0000_0000];
    let n = smoke_cases(30_000);
    for _ in 0..n {
        let mut d = seeds[next() % seeds.len()].clone();
        if d.is_empty() {
            continue;
        }
        for _ in 0..1 + next() % 3 {
            let at = next() % d.len();
            match next() % 5 {
                0 => d[at] = next() as u8,
                1 => d[at] ^= 1 << (next() % 8),
                2 => {
                    let w = WORDS[next() % WORDS.len()].to_le_bytes();
                    let k = [1usize, 2, 4, 8][next() % 4];
                    let end = (at + k).min(d.len());
                    d[at..end].copy_from_slice(&w[..end - at]);
                }
                3 => d.truncate(at),
                _ => {
                    let from = next() % d.len();
                    let end = (from + 8).min(d.len());
                    let chunk = d[from..end].to_vec();
                    let e2 = (at + chunk.len()).min(d.len());
                    d[at..e2].copy_from_slice(&chunk[..e2 - at]);
                }
            }
            if d.is_empty() {
                break;
            }
        }
        if let Err(e) = std::panic::catch_unwind(|| elf(&d)) {
            // Keep the input for `fuzz/regressions/object_elf/`.
            let path = std::env::temp_dir().join("object_elf-smoke-failure");
            let _ = std::fs::write(&path, &d);
            eprintln!("failing input written to {}", path.display());
            std::panic::resume_unwind(e);
        }
    }
    eprintln!("object_elf: {} committed objects and {n} mutations passed", seeds.len());
}
