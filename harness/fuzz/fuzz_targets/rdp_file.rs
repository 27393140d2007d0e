//! Fuzzes [`earshot_harness::fuzzing::rdp_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| earshot_harness::fuzzing::rdp_file(data));
