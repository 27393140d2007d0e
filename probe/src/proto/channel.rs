//! The protected channel: every frame after the handshake is sealed with
//! ChaCha20-Poly1305 (RFC 8439, RustCrypto `chacha20poly1305`).
//!
//! ```text
//! frame      = u32 BE length || ciphertext || 16-byte tag
//! nonce      = 4 zero bytes || u64 BE sequence number of this direction (0, 1, 2, ...)
//! aad        = the 4 length bytes
//! plaintext  = kind || payload
//!   kind 0   = a JSON message (a request or a reply)
//!   kind 1   = an evidence chunk: u64 BE request id || u64 BE byte offset || bytes
//! ```
//!
//! Each direction has its own key ([`SessionKeys`], derived from the handshake) and its
//! own counter, which both sides keep and never send: a frame that was altered, replayed,
//! dropped, reordered, reflected back to its sender or forged fails to authenticate at the
//! receiver, which reports [`ProtoError::Tampered`] and closes the connection. The cost is
//! the tag and the kind byte: 17 bytes per frame.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use super::frame::{read_frame, HEADER};
use super::{ProtoError, MAX_FRAME};

/// Bytes of the authentication tag.
pub const TAG: usize = 16;

/// Bytes of an evidence chunk's own header (request id, offset).
pub const CHUNK_HEADER: usize = 16;

/// Largest sealed frame body: a [`MAX_FRAME`] payload, its kind byte, a chunk header and
/// the tag.
pub const MAX_SEALED: usize = MAX_FRAME + 1 + CHUNK_HEADER + TAG;

const KIND_MSG: u8 = 0;
const KIND_CHUNK: u8 = 1;

/// The two keys of a session, one per direction (wiped on drop).
pub struct SessionKeys {
    /// Seals what the client sends.
    pub client_to_server: Zeroizing<[u8; 32]>,
    /// Seals what the server sends.
    pub server_to_client: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<secret>)")
    }
}

impl SessionKeys {
    /// The client's halves: it seals with `client_to_server`, opens `server_to_client`.
    pub fn client(&self) -> (Sealer, Opener) {
        (
            Sealer::new(&self.client_to_server),
            Opener::new(&self.server_to_client, "the probe"),
        )
    }

    /// The server's halves.
    pub fn server(&self) -> (Sealer, Opener) {
        (
            Sealer::new(&self.server_to_client),
            Opener::new(&self.client_to_server, "the client"),
        )
    }
}

/// What a sealed frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A JSON message.
    Msg(Vec<u8>),
    /// A piece of evidence.
    Chunk(Chunk),
}

/// A piece of evidence, in order, for the `fetch_evidence` request `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The request this answers.
    pub id: u64,
    /// Byte offset of `data` in the evidence.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::from(n)
}

/// Seals the frames of one direction, numbering them.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    seq: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(next frame {})", self.seq)
    }
}

impl Sealer {
    /// A sealer starting at frame 0.
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(key.into()),
            seq: 0,
        }
    }

    /// Seals a JSON message into a whole frame (header included).
    ///
    /// # Errors
    /// As [`Sealer::seal`].
    pub fn seal_msg(&mut self, json: &[u8]) -> Result<Vec<u8>, ProtoError> {
        self.seal(KIND_MSG, &[], json)
    }

    /// Seals an evidence chunk into a whole frame (header included).
    ///
    /// # Errors
    /// As [`Sealer::seal`].
    pub fn seal_chunk(&mut self, id: u64, offset: u64, data: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let mut head = [0u8; CHUNK_HEADER];
        head[..8].copy_from_slice(&id.to_be_bytes());
        head[8..].copy_from_slice(&offset.to_be_bytes());
        self.seal(KIND_CHUNK, &head, data)
    }

    /// Seals `kind || head || body`.
    ///
    /// # Errors
    /// [`ProtoError::FrameTooLarge`] when `body` exceeds [`MAX_FRAME`] (nothing is sealed,
    /// the counter does not move); [`ProtoError::Malformed`] if the counter is exhausted.
    fn seal(&mut self, kind: u8, head: &[u8], body: &[u8]) -> Result<Vec<u8>, ProtoError> {
        if body.len() > MAX_FRAME {
            return Err(ProtoError::FrameTooLarge {
                len: body.len(),
                max: MAX_FRAME,
            });
        }
        let sealed_len = 1 + head.len() + body.len() + TAG;
        let mut out = Vec::with_capacity(HEADER + sealed_len);
        out.extend_from_slice(&(sealed_len as u32).to_be_bytes());
        out.push(kind);
        out.extend_from_slice(head);
        out.extend_from_slice(body);
        let seq = self.seq;
        self.seq = seq
            .checked_add(1)
            .ok_or_else(|| ProtoError::Malformed("frame counter exhausted".into()))?;
        let (aad, plain) = out.split_at_mut(HEADER);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(seq), aad, plain)
            .map_err(|_| ProtoError::Malformed("frame too large to seal".into()))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }
}

/// Opens the frames of one direction, expecting them in order.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    seq: u64,
    from: &'static str,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opener(from {}, next frame {})", self.from, self.seq)
    }
}

impl Opener {
    /// An opener expecting frame 0 next; `from` names the peer in errors.
    pub fn new(key: &[u8; 32], from: &'static str) -> Opener {
        Opener {
            cipher: ChaCha20Poly1305::new(key.into()),
            seq: 0,
            from,
        }
    }

    /// Opens one frame body (what follows the length header).
    ///
    /// # Errors
    /// [`ProtoError::Tampered`] when it does not authenticate as the next frame of this
    /// direction; [`ProtoError::Malformed`] for an unknown kind or a short chunk (the peer
    /// sealed it, so that is a bug on its side, not an attack).
    pub fn open(&mut self, mut body: Vec<u8>) -> Result<Payload, ProtoError> {
        let seq = self.seq;
        let tampered = || ProtoError::Tampered {
            detail: format!(
                "frame {seq} from {} does not authenticate (altered, replayed, dropped, \
                 reordered or forged on the way)",
                self.from
            ),
        };
        let Some(split) = body.len().checked_sub(TAG) else {
            return Err(tampered());
        };
        let aad = u32::try_from(body.len())
            .map_err(|_| tampered())?
            .to_be_bytes();
        let tag = Tag::clone_from_slice(&body[split..]);
        self.cipher
            .decrypt_in_place_detached(&nonce(seq), &aad, &mut body[..split], &tag)
            .map_err(|_| tampered())?;
        body.truncate(split);
        self.seq = seq.checked_add(1).ok_or_else(tampered)?;
        match body.first().copied() {
            Some(KIND_MSG) => {
                body.remove(0);
                Ok(Payload::Msg(body))
            }
            // The kind byte and the chunk header.
            Some(KIND_CHUNK) if body.len() > CHUNK_HEADER => {
                let mut id = [0u8; 8];
                let mut offset = [0u8; 8];
                id.copy_from_slice(&body[1..9]);
                offset.copy_from_slice(&body[9..17]);
                body.drain(..1 + CHUNK_HEADER);
                Ok(Payload::Chunk(Chunk {
                    id: u64::from_be_bytes(id),
                    offset: u64::from_be_bytes(offset),
                    data: body,
                }))
            }
            Some(k) => Err(ProtoError::Malformed(format!(
                "sealed frame of unknown kind {k} or too short ({} bytes)",
                body.len()
            ))),
            None => Err(ProtoError::Malformed("empty sealed frame".into())),
        }
    }
}

/// Reads and opens one sealed frame. `Ok(None)` is a clean end of stream between frames.
///
/// # Errors
/// As [`read_frame`] (with the cap [`MAX_SEALED`]) and [`Opener::open`].
pub async fn read_sealed<R: AsyncRead + Unpin>(
    r: &mut R,
    opener: &mut Opener,
) -> Result<Option<Payload>, ProtoError> {
    match read_frame(r, MAX_SEALED).await? {
        Some(body) => opener.open(body).map(Some),
        None => Ok(None),
    }
}

/// Writes one sealed frame (from [`Sealer::seal_msg`] or [`Sealer::seal_chunk`]) and flushes.
///
/// # Errors
/// I/O errors.
pub async fn write_sealed<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
) -> Result<(), ProtoError> {
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

/// Serializes `msg` as JSON and seals it.
///
/// # Errors
/// [`ProtoError::Malformed`] if `msg` cannot be serialized; as [`Sealer::seal_msg`].
pub fn seal_json<T: serde::Serialize>(sealer: &mut Sealer, msg: &T) -> Result<Vec<u8>, ProtoError> {
    let body = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    sealer.seal_msg(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair() -> (Sealer, Opener) {
        let key = [7u8; 32];
        (Sealer::new(&key), Opener::new(&key, "the peer"))
    }

    fn body(frame: &[u8]) -> Vec<u8> {
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - HEADER);
        frame[HEADER..].to_vec()
    }

    #[test]
    fn messages_and_chunks_round_trip_with_17_bytes_of_overhead() {
        let (mut s, mut o) = pair();
        let f = s.seal_msg(br#"{"id":1,"type":"info"}"#).unwrap();
        assert_eq!(f.len(), HEADER + 1 + 22 + TAG);
        assert_eq!(
            o.open(body(&f)).unwrap(),
            Payload::Msg(br#"{"id":1,"type":"info"}"#.to_vec())
        );
        let data = vec![0xa5u8; 4096];
        let f = s.seal_chunk(9, 8192, &data).unwrap();
        assert_eq!(f.len(), HEADER + 1 + CHUNK_HEADER + data.len() + TAG);
        assert_eq!(
            o.open(body(&f)).unwrap(),
            Payload::Chunk(Chunk {
                id: 9,
                offset: 8192,
                data
            })
        );
    }

    #[test]
    fn the_plaintext_is_not_on_the_wire() {
        let (mut s, _) = pair();
        let f = s.seal_msg(b"hostname: studio-pc-4711").unwrap();
        assert!(!f.windows(6).any(|w| w == b"studio"));
    }

    #[test]
    fn a_flipped_bit_a_replay_a_drop_a_reorder_or_another_key_is_tampering() {
        let (mut s, mut o) = pair();
        let frames: Vec<Vec<u8>> = (0..4)
            .map(|i| s.seal_msg(format!("message {i}").as_bytes()).unwrap())
            .collect();
        let is_tampered =
            |r: Result<Payload, ProtoError>| matches!(r, Err(ProtoError::Tampered { .. }));
        // Every single bit of a frame matters, the length's included (it is the AAD).
        for bit in 0..(frames[0].len() - HEADER) * 8 {
            let mut b = body(&frames[0]);
            b[bit / 8] ^= 1 << (bit % 8);
            let (_, mut fresh) = pair();
            assert!(is_tampered(fresh.open(b)), "bit {bit}");
        }
        assert!(o.open(body(&frames[0])).is_ok());
        // Replay of frame 0 where frame 1 is due.
        let e = o.open(body(&frames[0])).unwrap_err();
        assert!(e.to_string().contains("frame 1 from the peer"), "{e}");
        // Drop frame 1: frame 2 arrives where 1 is due.
        let (_, mut o2) = pair();
        o2.open(body(&frames[0])).unwrap();
        assert!(is_tampered(o2.open(body(&frames[2]))));
        // Reorder.
        let (_, mut o3) = pair();
        assert!(is_tampered(o3.open(body(&frames[1]))));
        // Another key (another session, or the other direction reflected).
        let mut other = Opener::new(&[8u8; 32], "the peer");
        assert!(is_tampered(other.open(body(&frames[0]))));
        // Too short to hold a tag.
        assert!(is_tampered(o.open(vec![1, 2, 3])));
    }

    #[test]
    fn oversize_payloads_are_refused_before_sealing_and_keep_the_counter() {
        let (mut s, mut o) = pair();
        let e = s.seal_msg(&vec![b' '; MAX_FRAME + 1]).unwrap_err();
        assert!(matches!(e, ProtoError::FrameTooLarge { .. }), "{e}");
        let f = s.seal_msg(b"{}").unwrap();
        assert!(o.open(body(&f)).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// Random bodies never panic the opener and never authenticate.
        #[test]
        fn random_bodies_are_tampering_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (_, mut o) = pair();
            let tampered = matches!(o.open(bytes), Err(ProtoError::Tampered { .. }));
            prop_assert!(tampered);
        }
    }
}
