//! Bounded smoke run of the object fuzzing oracle (`fuzz/` runs it under libFuzzer): every
//! committed seed and reproducer under `fuzz/corpus/object_elf/` and
//! `fuzz/regressions/object_elf/` (clean objects: the full rewrite oracle runs), then mutations
//! of them (byte and word overwrites with boundary values, truncations). `BPFPATCH_SMOKE_CASES`
//! raises the count.

use bpfpatch_insn::fuzzing::smoke_cases;
use bpfpatch_object::fuzzing::{elf, smoke_objects};

#[test]
fn elf_oracle_smoke() {
    let n = smoke_cases(30_000);
    let committed =
        smoke_objects("object_elf", bpfpatch_testkit::committed_inputs("object_elf"), elf, n, 0x1234_5678_9abc_def1);
    eprintln!("object_elf: {committed} committed objects and {n} mutations passed");
}
