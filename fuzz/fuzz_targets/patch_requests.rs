//! Requests: malformed programs and requests never panic (`bpfpatch_patch::fuzzing::requests`),
//! and valid scripts of every request, target and reference kind, with predicted refusals,
//! agree with the naive oracle (`bpfpatch_testkit::naive::differential`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bpfpatch_patch::fuzzing::requests(data);
    bpfpatch_testkit::naive::differential(data);
});
