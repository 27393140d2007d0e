//! Fuzzes [`earshot_harness::fuzzing::inventory`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| earshot_harness::fuzzing::inventory(data));
