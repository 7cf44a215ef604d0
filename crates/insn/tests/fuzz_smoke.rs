//! Bounded smoke run of the instruction-set fuzzing oracle (`fuzz/` runs it under libFuzzer):
//! every committed seed and reproducer under `fuzz/corpus/insn_roundtrip/` and
//! `fuzz/regressions/insn_roundtrip/`, then random images biased towards valid opcodes.
//! `BPFPATCH_SMOKE_CASES` raises the count.

#![allow(clippy::cast_possible_truncation)]

use bpfpatch_insn::fuzzing::{roundtrip, smoke_cases};
use bpfpatch_testkit::{Rng, committed_inputs};

#[test]
fn roundtrip_oracle_smoke() {
    let seeds = committed_inputs("insn_roundtrip");
    for data in &seeds {
        roundtrip(data);
    }
    // The test kit's generator; every slot's opcode comes from the byte stream, registers
    // mostly in range.
    let mut rng = Rng::seeded(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next();
    let n = smoke_cases(1_000_000);
    for _ in 0..n {
        let len = (next() % 7) as usize * 8 + (next() % 8 == 0) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for s in data.chunks_mut(8).filter(|s| s.len() == 8) {
            if next() % 2 == 0 {
                s[1] &= 0x3b; // registers 0..=11 in both byte orders' nibbles
                s[2..4].fill(0);
            }
            if next() % 3 == 0 {
                s[4..8].fill(0);
            }
        }
        roundtrip(&data);
    }
    eprintln!("insn_roundtrip: {} committed inputs and {n} random inputs passed", seeds.len());
}
