//! `bpfpatch_object::fuzzing::elf`: see its documentation for the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bpfpatch_object::fuzzing::elf(data));
