//! Fuzzes the protected channel's opener ([`earshot_probe::fuzzing::sealed_frame`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| earshot_probe::fuzzing::sealed_frame(data));
