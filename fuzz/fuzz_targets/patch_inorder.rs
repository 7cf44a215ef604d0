//! The in-order engine: on a program with every side table and a random in-order script
//! (`bpfpatch_testkit::inorder::differential`), its results, refusals and output equal the
//! list engine's, and the kernel reference's on the patch-only subset.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bpfpatch_testkit::inorder::differential(data);
});
