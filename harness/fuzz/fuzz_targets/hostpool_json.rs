//! Fuzzes the host pool JSON reader ([`earshot_harness::fuzzing::hostpool_json`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| earshot_harness::fuzzing::hostpool_json(data));
