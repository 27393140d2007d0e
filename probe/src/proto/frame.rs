//! Frames: a `u32` big-endian length, then that many bytes of JSON.
//!
//! The length is checked against the cap before any buffer is sized, and the body is read
//! through `take`, so memory grows only with bytes that actually arrived: a peer that
//! announces 1 MiB and sends 10 bytes costs 10 bytes.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ProtoError;

/// Bytes of the length header.
pub const HEADER: usize = 4;

/// Decodes one frame from the front of `buf` without I/O (used by tests and the fuzzer).
///
/// Returns `Ok(None)` when `buf` holds no complete frame yet, else the body and the bytes
/// consumed (header + body).
///
/// # Errors
/// [`ProtoError::FrameTooLarge`] as soon as the header announces more than `max` bytes.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, ProtoError> {
    let Some(header) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > max {
        return Err(ProtoError::FrameTooLarge { len, max });
    }
    Ok(buf
        .get(HEADER..HEADER + len)
        .map(|body| (body, HEADER + len)))
}

/// Encodes `body` as one frame.
///
/// # Errors
/// [`ProtoError::FrameTooLarge`] when `body` exceeds `max` (nothing is produced then).
pub fn encode(body: &[u8], max: usize) -> Result<Vec<u8>, ProtoError> {
    if body.len() > max || u32::try_from(body.len()).is_err() {
        return Err(ProtoError::FrameTooLarge {
            len: body.len(),
            max,
        });
    }
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Reads one frame body. `Ok(None)` is a clean end of stream (between frames).
///
/// # Errors
/// [`ProtoError::FrameTooLarge`] before reading the body of an oversize frame;
/// [`ProtoError::Truncated`] when the stream ends partway through a frame; I/O errors.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, ProtoError> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(ProtoError::Truncated { got, want: HEADER })
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(ProtoError::FrameTooLarge { len, max });
    }
    // Grow with the data rather than trusting the announced length up front.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    (&mut *r).take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(ProtoError::Truncated {
            got: HEADER + body.len(),
            want: HEADER + len,
        });
    }
    Ok(Some(body))
}

/// Writes one frame and flushes.
///
/// # Errors
/// [`ProtoError::FrameTooLarge`] (nothing written) or I/O errors.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    body: &[u8],
    max: usize,
) -> Result<(), ProtoError> {
    let frame = encode(body, max)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Serializes `msg` as JSON and writes it as one frame.
///
/// # Errors
/// As [`write_frame`]; [`ProtoError::Malformed`] if `msg` cannot be serialized.
pub async fn write_msg<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
    max: usize,
) -> Result<(), ProtoError> {
    let body = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    write_frame(w, &body, max).await
}

/// Parses a frame body as a `T`.
///
/// # Errors
/// [`ProtoError::Malformed`] naming what was expected.
pub fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ProtoError> {
    serde_json::from_slice(body).map_err(|e| ProtoError::Malformed(format!("{what}: {e}")))
}

/// Reads one frame and parses it; a clean end of stream becomes [`ProtoError::Closed`].
///
/// # Errors
/// As [`read_frame`] and [`parse`].
pub async fn read_msg<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
    max: usize,
    what: &str,
) -> Result<T, ProtoError> {
    match read_frame(r, max).await? {
        Some(body) => parse(&body, what),
        None => Err(ProtoError::Closed(what.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encode_is_big_endian_length_then_body() {
        assert_eq!(encode(b"{}", 16).unwrap(), vec![0, 0, 0, 2, b'{', b'}']);
        assert_eq!(encode(b"", 16).unwrap(), vec![0, 0, 0, 0]);
        let long = vec![b'x'; 0x0102];
        assert_eq!(&encode(&long, 1 << 20).unwrap()[..4], &[0, 0, 1, 2]);
    }

    #[test]
    fn encode_refuses_oversize_bodies() {
        assert!(matches!(
            encode(&[0; 17], 16),
            Err(ProtoError::FrameTooLarge { len: 17, max: 16 })
        ));
    }

    #[test]
    fn decode_waits_for_complete_frames_and_reports_consumed_bytes() {
        assert!(decode(&[], 16).unwrap().is_none());
        assert!(decode(&[0, 0, 0], 16).unwrap().is_none());
        assert!(decode(&[0, 0, 0, 3, b'a'], 16).unwrap().is_none());
        let buf = [0, 0, 0, 2, b'h', b'i', 0xff];
        assert_eq!(decode(&buf, 16).unwrap(), Some((&b"hi"[..], 6)));
    }

    #[test]
    fn decode_rejects_by_header_alone() {
        // Only the header is present: the cap is enforced before the body arrives.
        let e = decode(&[0xff, 0xff, 0xff, 0xff], MAX_FRAME_FOR_TEST).unwrap_err();
        assert!(
            matches!(
                e,
                ProtoError::FrameTooLarge {
                    len: 0xffff_ffff,
                    ..
                }
            ),
            "{e}"
        );
    }

    const MAX_FRAME_FOR_TEST: usize = crate::proto::MAX_FRAME;

    use crate::proto::test_runtime as rt;

    #[test]
    fn read_frame_clean_eof_truncation_and_cap() {
        rt().block_on(async {
            let mut empty: &[u8] = &[];
            assert!(read_frame(&mut empty, 16).await.unwrap().is_none());

            let mut half_header: &[u8] = &[0, 0];
            let e = read_frame(&mut half_header, 16).await.unwrap_err();
            assert!(
                matches!(e, ProtoError::Truncated { got: 2, want: 4 }),
                "{e}"
            );

            let mut half_body: &[u8] = &[0, 0, 0, 5, b'a', b'b'];
            let e = read_frame(&mut half_body, 16).await.unwrap_err();
            assert!(
                matches!(e, ProtoError::Truncated { got: 6, want: 9 }),
                "{e}"
            );

            let mut big: &[u8] = &[0, 0, 0, 17];
            let e = read_frame(&mut big, 16).await.unwrap_err();
            assert!(
                matches!(e, ProtoError::FrameTooLarge { len: 17, max: 16 }),
                "{e}"
            );

            let mut two: &[u8] = &[0, 0, 0, 1, b'a', 0, 0, 0, 0];
            assert_eq!(read_frame(&mut two, 16).await.unwrap().unwrap(), b"a");
            assert_eq!(read_frame(&mut two, 16).await.unwrap().unwrap(), b"");
            assert!(read_frame(&mut two, 16).await.unwrap().is_none());
        });
    }

    #[test]
    fn write_then_read_round_trips_a_message() {
        rt().block_on(async {
            let mut buf = Vec::new();
            write_msg(&mut buf, &serde_json::json!({"type": "info"}), 64)
                .await
                .unwrap();
            assert_eq!(&buf[..4], &(buf.len() as u32 - 4).to_be_bytes());
            let mut r: &[u8] = &buf;
            let v: serde_json::Value = read_msg(&mut r, 64, "a test message").await.unwrap();
            assert_eq!(v["type"], "info");
            let e = read_msg::<_, serde_json::Value>(&mut r, 64, "the next message")
                .await
                .unwrap_err();
            assert!(e.to_string().contains("the next message"), "{e}");
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Random bytes never panic the decoder, and a decoded frame never exceeds the cap
        /// or the input: memory stays bounded by what arrived.
        #[test]
        fn decoder_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256), max in 0usize..128) {
            match decode(&bytes, max) {
                Ok(Some((body, used))) => {
                    prop_assert!(body.len() <= max);
                    prop_assert_eq!(used, body.len() + HEADER);
                    prop_assert!(used <= bytes.len());
                }
                Ok(None) => {
                    let incomplete = bytes.len() < HEADER || {
                        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
                        len <= max && bytes.len() < HEADER + len
                    };
                    prop_assert!(incomplete);
                }
                Err(ProtoError::FrameTooLarge { len, max: m }) => prop_assert!(len > m),
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
            // The async reader agrees with the pure decoder and allocates no more than arrived.
            let r = rt().block_on(async {
                let mut rd: &[u8] = &bytes;
                read_frame(&mut rd, max).await
            });
            match (decode(&bytes, max), r) {
                (Ok(Some((b, _))), Ok(Some(v))) => {
                    prop_assert_eq!(b, &v[..]);
                    prop_assert!(v.capacity() <= bytes.len().max(64 * 1024));
                }
                (Ok(None), Ok(None)) => prop_assert!(bytes.is_empty()),
                (Ok(None), Err(ProtoError::Truncated { .. })) => {}
                (Err(ProtoError::FrameTooLarge { .. }), Err(ProtoError::FrameTooLarge { .. })) => {}
                (d, r) => prop_assert!(false, "decoder {:?} vs reader {:?}", d.map(|o| o.map(|x| x.1)), r.map(|o| o.map(|v| v.len()))),
            }
        }

        /// Whatever the bytes, parsing a frame body as a request never panics.
        #[test]
        fn request_parser_on_random_bodies(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse::<crate::proto::msg::Request>(&bytes, "a request");
            let _ = parse::<crate::proto::msg::Handshake>(&bytes, "a handshake message");
        }
    }
}
