//! `bpfpatch_passes::fuzzing::semantic`: see its documentation for the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bpfpatch_passes::fuzzing::semantic(data));
