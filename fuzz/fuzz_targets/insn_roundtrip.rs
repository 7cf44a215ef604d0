//! `bpfpatch_insn::fuzzing::roundtrip`: see its documentation for the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bpfpatch_insn::fuzzing::roundtrip(data));
