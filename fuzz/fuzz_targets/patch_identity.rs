//! `bpfpatch_patch::fuzzing::identity`: see its documentation for the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bpfpatch_patch::fuzzing::identity(data));
