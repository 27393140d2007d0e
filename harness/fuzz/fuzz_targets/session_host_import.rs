//! Fuzzes the session host import ([`earshot_harness::fuzzing::session_host_import`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| earshot_harness::fuzzing::session_host_import(data));
