//! `bpfpatch_cli::fuzzing::object_pipeline`: see its documentation for the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bpfpatch_cli::fuzzing::object_pipeline(data));
