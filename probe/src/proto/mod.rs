//! The control protocol shared by probe and harness: frames, messages, authentication,
//! and the client.
//!
//! # Wire format
//!
//! Every message is one frame: a `u32` big-endian length, then that many bytes of JSON.
//! Frames are capped ([`MAX_FRAME`], and [`HANDSHAKE_MAX_FRAME`] before authentication);
//! the length is checked before anything is allocated.
//!
//! # Session
//!
//! 1. Handshake ([`auth`]): `hello` (client version and nonce), `challenge` (server
//!    version and nonce), `proof` (client HMAC), `welcome` (server HMAC). Both sides prove
//!    they hold the token; the token never crosses the wire; fresh nonces on both sides
//!    make a recorded handshake useless. A version mismatch is reported by both sides.
//! 2. Requests ([`msg::Request`]) with ids; each reply ([`msg::Response`]) names its
//!    request. Replies may arrive out of order (jobs run concurrently); WAV evidence
//!    travels as [`msg::ResponseBody::EvidenceChunk`] frames before the final reply.
//!
//! This module builds without the `devices` feature: the harness links it without cpal.

pub mod auth;
pub mod client;
pub mod frame;
pub mod msg;

use std::time::Duration;

/// Protocol version, exchanged first; both sides refuse a different one.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame accepted after authentication (1 MiB of JSON).
pub const MAX_FRAME: usize = 1 << 20;

/// Largest frame accepted during the handshake, where the peer is not yet trusted.
pub const HANDSHAKE_MAX_FRAME: usize = 4 * 1024;

/// Raw WAV bytes per evidence chunk (hex-encoded on the wire: twice this, under [`MAX_FRAME`]).
pub const EVIDENCE_CHUNK: usize = 192 * 1024;

/// Largest evidence a client reassembles (a 60 s stereo 48 kHz f32 recording is 23 MB).
pub const MAX_EVIDENCE: usize = 128 * 1024 * 1024;

/// Protocol failures, on either side.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// A frame announced more bytes than the cap allows.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// The cap in force.
        max: usize,
    },
    /// The peer closed the connection partway through a frame.
    #[error("connection closed in the middle of a frame ({got} of {want} bytes received)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes expected (header + body).
        want: usize,
    },
    /// The peer closed the connection where a message was expected.
    #[error("connection closed by the peer while waiting for {0}")]
    Closed(String),
    /// Reading or writing the socket failed.
    #[error("connection i/o failed: {0}")]
    Io(#[from] std::io::Error),
    /// A frame was not the JSON message expected.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: this side speaks version {ours}, the peer speaks version {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The handshake failed: wrong token, replayed proof, or an impostor peer.
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    /// The peer refused the handshake (e.g. connection limit reached, version mismatch).
    #[error("the peer refused the connection: {message}")]
    Refused {
        /// Machine-readable reason.
        reason: msg::RejectReason,
        /// The peer's explanation.
        message: String,
    },
    /// A message arrived out of turn.
    #[error("unexpected message: expected {expected}, got {got}")]
    Unexpected {
        /// What the protocol expected here.
        expected: &'static str,
        /// What arrived.
        got: String,
    },
    /// A wait ran out.
    #[error("timed out after {} ms waiting for {what}", .after.as_millis())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        after: Duration,
    },
}

/// Runs `fut` with a timeout, mapping expiry to [`ProtoError::Timeout`] naming `what`.
pub(crate) async fn within<T>(
    after: Duration,
    what: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T, ProtoError>>,
) -> Result<T, ProtoError> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProtoError::Timeout {
            what: what(),
            after,
        }),
    }
}

/// A single-threaded runtime for the protocol's unit tests.
#[cfg(test)]
pub(crate) fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
}
