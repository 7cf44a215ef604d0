//! Bounded smoke run of the text fuzzing oracle (`fuzz/` runs it under libFuzzer): every
//! committed seed and reproducer under `fuzz/corpus/asm_text/` and `fuzz/regressions/asm_text/`,
//! then mutations of them (byte flips, splices, truncations). `BPFPATCH_SMOKE_CASES` raises the
//! count.

#![allow(clippy::cast_possible_truncation)]

use bpfpatch_asm::fuzzing::text;
use bpfpatch_insn::fuzzing::smoke_cases;
use bpfpatch_testkit::committed_inputs;

#[test]
fn text_oracle_smoke() {
    let mut seeds = committed_inputs("asm_text");
    for data in &seeds {
        text(data);
    }
    if seeds.is_empty() {
        seeds.push(b"r0 = 0x1\nexit\n".to_vec());
    }
    let mut rng = bpfpatch_testkit::Rng::seeded(0x2545_f491_4f6c_dd1d);
    let mut next = move || rng.next() as usize;
    const ALPHABET: &[u8] = b" \n\t+-*()[],:;#<>=&|^%!su0123456789abcdefxrwl";
    let n = smoke_cases(200_000);
    for _ in 0..n {
        let mut d = seeds[next() % seeds.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = if d.is_empty() { 0 } else { next() % d.len() };
            match next() % 4 {
                0 if !d.is_empty() => d[at] = ALPHABET[next() % ALPHABET.len()],
                1 => d.insert(at, ALPHABET[next() % ALPHABET.len()]),
                2 if !d.is_empty() => d.truncate(at),
                _ => {
                    let other = &seeds[next() % seeds.len()];
                    let from = if other.is_empty() { 0 } else { next() % other.len() };
                    let take = other.len().min(from + 40);
                    d.splice(at..at, other[from..take].iter().copied());
                }
            }
        }
        text(&d);
    }
    eprintln!("asm_text: {} committed inputs and {n} mutations passed", seeds.len());
}
