//! Fuzzes [`earshot_harness::fuzzing::reg_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| earshot_harness::fuzzing::reg_file(data));
