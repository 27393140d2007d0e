//! Fuzzes [`earshot_harness::fuzzing::scenario_toml`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| earshot_harness::fuzzing::scenario_toml(data));
