//! Fuzzes the frame decoder and the message parsers with arbitrary bytes: no input may
//! panic them, and no decoded frame may exceed the cap or the input.
#![no_main]

use earshot_probe::proto::frame::{decode, HEADER};
use earshot_probe::proto::msg::{Handshake, Request, Response};
use earshot_probe::proto::{HANDSHAKE_MAX_FRAME, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for max in [HANDSHAKE_MAX_FRAME, MAX_FRAME] {
        let mut rest = data;
        while let Ok(Some((body, used))) = decode(rest, max) {
            assert!(body.len() <= max && used == body.len() + HEADER && used <= rest.len());
            let _ = serde_json::from_slice::<Handshake>(body);
            let _ = serde_json::from_slice::<Request>(body);
            let _ = serde_json::from_slice::<Response>(body);
            rest = &rest[used..];
        }
    }
});
