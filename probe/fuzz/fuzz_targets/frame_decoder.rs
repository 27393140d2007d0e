//! Fuzzes the frame decoder and the message parsers ([`earshot_probe::fuzzing::frame_decoder`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| earshot_probe::fuzzing::frame_decoder(data));
