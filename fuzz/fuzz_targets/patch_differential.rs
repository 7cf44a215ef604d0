//! The list engine against both oracles on the same bytes: the kernel reference
//! (`bpfpatch_patch::fuzzing::differential`) and the naive absolute-index patcher
//! (`bpfpatch_testkit::naive::differential`); see their documentation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bpfpatch_patch::fuzzing::differential(data);
    bpfpatch_testkit::naive::differential(data);
});
