//! The control protocol shared by probe and harness: frames, the handshake, the
//! protected channel, messages, and the client.
//!
//! # Wire format
//!
//! Every message is one frame: a `u32` big-endian length, then that many bytes. The four
//! handshake messages are plain JSON, capped at [`HANDSHAKE_MAX_FRAME`]; every frame after
//! them is sealed ([`channel`]): ChaCha20-Poly1305 over a kind byte and a JSON message or a
//! binary evidence chunk, capped at [`MAX_FRAME`] of payload. The length is checked before
//! anything is allocated.
//!
//! # Session
//!
//! 1. Handshake ([`auth`]): `hello` (client version and nonce), `challenge` (server
//!    version and nonce), `proof` (client HMAC), `welcome` (server HMAC), each MAC over the
//!    transcript so far. Both sides prove they hold the token; the token never crosses the
//!    wire; fresh nonces on both sides make a recorded handshake useless. Both then derive
//!    one key per direction from the token and the whole transcript. A version mismatch is
//!    reported by both sides.
//! 2. Requests ([`msg::Request`]) with ids; each reply ([`msg::Response`]) names its
//!    request. Replies may arrive out of order (jobs run concurrently).
//! 3. Evidence never delays a verdict: `listened` and `recorded` carry the report and, when
//!    asked for, a reference to the recording ([`msg::EvidenceRef`]), which the probe keeps
//!    in bounded memory. A separate `fetch_evidence` request streams it, losslessly
//!    compressed (FLAC), as binary chunks after an `evidence` header; the client gives the
//!    fetch its own time budget.
//!
//! # Threat model
//!
//! The harness and the probes talk across networks an admin does not own end to end (a CI
//! agent to session hosts in a cloud, over VPNs and the internet). Against an attacker on
//! the path between harness and probe, who can read, drop, delay, replay, reorder, alter
//! and inject bytes:
//!
//! - **Confidentiality**: nothing after the handshake can be read: not the `info` answer
//!   (host name, devices, session facts), not the reports, not the recordings.
//! - **Integrity**: a frame altered, replayed (within a session or from another one),
//!   dropped, reordered or forged is detected by the receiver, which closes the connection
//!   with [`ProtoError::Tampered`]; the check in progress cannot be turned into a pass.
//! - **Authentication**: only a holder of the token completes the handshake, on either
//!   side: an impostor probe or harness fails it. The token never crosses the wire; a
//!   recorded handshake does let an attacker test guesses offline, which is hopeless
//!   against a generated 256-bit token (`earshot-probe token new`) but not against a
//!   short human-chosen one.
//!
//! Whoever holds a token is trusted: the harness and every probe that share it. Not
//! covered: traffic analysis (frame sizes and timing are visible, e.g. that evidence was
//! fetched and roughly how long it is); a compromised probe or harness host (it holds the
//! token and sees the audio); denial of service (an on-path attacker can always cut the
//! connection, which the harness reports as a connection failure, never as a verdict); a
//! tokenless probe, which is allowed on loopback only; forward secrecy (whoever later
//! steals the token and has recorded a session can derive its keys: rotate tokens, see
//! [`token`]).
//!
//! This module builds without the `devices` feature: the harness links it without cpal.

pub mod admission;
pub mod auth;
pub mod channel;
pub mod client;
pub mod frame;
pub mod msg;
pub mod token;

use std::time::Duration;

/// `text` from a peer, safe to print on a terminal: every control character (escape
/// sequences that would move the cursor, recolour or rewrite lines, as a forged
/// "output PASS" could) becomes U+FFFD; tabs and line breaks become spaces. A peer's
/// words are shown, never obeyed.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// Protocol version, exchanged first; both sides refuse a different one. Version 2: the
/// handshake binds the transcript and every later frame is sealed; evidence is fetched
/// separately as binary FLAC chunks.
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest payload of a frame after authentication (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// Largest frame accepted during the handshake, where the peer is not yet trusted.
pub const HANDSHAKE_MAX_FRAME: usize = 4 * 1024;

/// Evidence bytes per binary chunk: small enough that a reply to another request waits
/// behind at most one chunk (0.5 s on a 1 Mbit/s link).
pub const EVIDENCE_CHUNK: usize = 64 * 1024;

/// Largest evidence a client reassembles (a 60 s stereo 48 kHz 24-bit recording is
/// 17 MB before compression).
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
    Io(std::io::Error),
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
    /// A sealed frame did not authenticate: the channel was tampered with on the way.
    #[error("the channel was tampered with: {detail}")]
    Tampered {
        /// Which frame, from whom.
        detail: String,
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

// By hand rather than `#[from]`: the message already prints the cause, and a chained
// source would print it a second time under `{:#}`.
impl From<std::io::Error> for ProtoError {
    fn from(e: std::io::Error) -> ProtoError {
        ProtoError::Io(e)
    }
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

#[cfg(test)]
mod printable_tests {
    #[test]
    fn escape_sequences_from_a_peer_are_shown_never_obeyed() {
        let forged = "host\x1b[2K\r\x1b[32moutput PASS\x1b[0m\x07\nnext";
        let shown = super::printable(forged);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("output PASS"), "{shown:?}");
        assert_eq!(
            super::printable("Remote Audio (ünïcode)"),
            "Remote Audio (ünïcode)"
        );
    }
}
