//! Fuzzes the protected channel's opener: arbitrary bytes never panic it and never
//! authenticate; a genuine sealed frame altered anywhere is refused as tampering, and opens
//! to exactly what was sealed when left alone.
#![no_main]

use earshot_probe::proto::channel::{Chunk, Opener, Payload, Sealer, MAX_SEALED};
use earshot_probe::proto::frame::{decode, HEADER};
use earshot_probe::proto::ProtoError;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0x5a; 32];

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes as a stream of sealed frames.
    let mut opener = Opener::new(&KEY, "the fuzzer");
    let mut rest = data;
    while let Ok(Some((body, used))) = decode(rest, MAX_SEALED) {
        assert!(body.len() <= MAX_SEALED && used <= rest.len());
        let r = opener.open(body.to_vec());
        assert!(matches!(r, Err(ProtoError::Tampered { .. })));
        rest = &rest[used..];
    }

    // A genuine frame, altered (or not) where the input says.
    let Some((ctl, payload)) = data.split_first_chunk::<3>() else {
        return;
    };
    let mut sealer = Sealer::new(&KEY);
    let chunk = ctl[0] & 1 == 1;
    let frame = if chunk {
        sealer.seal_chunk(7, 4096, payload)
    } else {
        sealer.seal_msg(payload)
    }
    .expect("fuzz inputs are below the frame cap");
    let mut body = frame[HEADER..].to_vec();
    let at = usize::from(u16::from_be_bytes([ctl[1], ctl[2]])) % body.len();
    let flip = ctl[0] >> 1;
    body[at] ^= flip;
    let r = Opener::new(&KEY, "the fuzzer").open(body);
    if flip == 0 {
        let want = if chunk {
            Payload::Chunk(Chunk {
                id: 7,
                offset: 4096,
                data: payload.to_vec(),
            })
        } else {
            Payload::Msg(payload.to_vec())
        };
        assert_eq!(r.ok(), Some(want));
    } else {
        assert!(matches!(r, Err(ProtoError::Tampered { .. })));
    }
});
