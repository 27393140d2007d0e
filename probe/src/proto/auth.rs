//! The mutual handshake: both sides prove the token, and derive the session's keys.
//!
//! ```text
//! client                                   server
//!   hello {version, client_nonce}     ->
//!                                     <-   challenge {version, server_nonce}
//!   proof {HMAC(token, "earshot-v2 client proof" || H(hello, challenge))} ->
//!                                     <-   welcome {HMAC(token, "earshot-v2 server proof" || H(hello .. proof))}
//! keys = HKDF-SHA256(salt = H(hello .. welcome), ikm = token)
//!          -> "earshot-v2 client-to-server key", "earshot-v2 server-to-client key"
//! ```
//!
//! `H` is SHA-256 over the handshake messages exactly as they crossed the wire (each
//! prefixed with its length): the transcript. Both nonces are 32 bytes from the OS RNG, so
//! a recorded proof is worthless in a new handshake; the two labels differ, so one side's
//! MAC cannot be reflected as the other's; a message altered on the way (a version, an
//! agent string, a nonce) makes the proofs fail. The keys depend on the token and on the
//! whole transcript, so each session has its own, one per direction ([`super::channel`]).
//! MACs are compared in constant time. Each step has a timeout, and frames are capped at
//! [`HANDSHAKE_MAX_FRAME`] until the handshake succeeds.
//!
//! A server may hold several tokens (rotation): it accepts a proof made with any of them
//! and answers with that one. Without a token (loopback only, enforced by the server) the
//! same handshake runs with an empty key: the frames are still sealed, but anyone who can
//! reach the port can connect, which loopback confines to this machine.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

use super::channel::SessionKeys;
use super::frame::{read_frame, write_frame};
use super::msg::{Handshake, RejectReason};
use super::{within, ProtoError, HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION};

pub use super::token::{Token, TokenError, MIN_TOKEN_LEN, TOKEN_ENV};

const NONCE_LEN: usize = 32;
const CLIENT_LABEL: &[u8] = b"earshot-v2 client proof";
const SERVER_LABEL: &[u8] = b"earshot-v2 server proof";
const KEY_C2S: &[u8] = b"earshot-v2 client-to-server key";
const KEY_S2C: &[u8] = b"earshot-v2 server-to-client key";

/// A finished handshake: who the peer says it is, and the session's keys.
#[derive(Debug)]
pub struct Established {
    /// The peer's software name and version.
    pub peer_agent: String,
    /// The keys of the protected channel.
    pub keys: SessionKeys,
}

/// The running hash of the handshake messages as sent.
#[derive(Clone, Default)]
struct Transcript(Sha256);

impl Transcript {
    fn add(&mut self, message: &[u8]) {
        self.0.update((message.len() as u64).to_be_bytes());
        self.0.update(message);
    }

    fn hash(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }
}

fn key(token: Option<&Token>) -> &[u8] {
    token.map_or(&[], Token::secret)
}

fn mac(key: &[u8], label: &[u8], transcript: &[u8; 32]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(label);
    m.update(transcript);
    m.finalize().into_bytes().into()
}

fn verify(expected: &[u8], got_hex: &str) -> bool {
    match hex::decode(got_hex) {
        Ok(got) => got.len() == expected.len() && bool::from(got.ct_eq(expected)),
        Err(_) => false,
    }
}

fn session_keys(key: &[u8], transcript: &[u8; 32]) -> SessionKeys {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(transcript), key);
    let mut c2s = Zeroizing::new([0u8; 32]);
    let mut s2c = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expansion cannot fail.
    hk.expand(KEY_C2S, &mut *c2s)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF output length"));
    hk.expand(KEY_S2C, &mut *s2c)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF output length"));
    SessionKeys {
        client_to_server: c2s,
        server_to_client: s2c,
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn decode_nonce(s: &str, whose: &str) -> Result<Vec<u8>, ProtoError> {
    match hex::decode(s) {
        Ok(n) if n.len() == NONCE_LEN => Ok(n),
        _ => Err(ProtoError::Malformed(format!(
            "{whose} nonce must be {NONCE_LEN} bytes of hex"
        ))),
    }
}

fn agent() -> String {
    format!("earshot-probe/{}", crate::VERSION)
}

/// Reads one handshake message and its bytes as received; checks `version` (if present)
/// before the full shape, so a peer of another version gets a version error rather than a
/// parse error.
async fn read_handshake<S: AsyncRead + Unpin>(
    s: &mut S,
    step: Duration,
    what: &'static str,
) -> Result<(Handshake, Vec<u8>), ProtoError> {
    let body = within(step, || what.to_string(), async {
        read_frame(s, HANDSHAKE_MAX_FRAME)
            .await?
            .ok_or_else(|| ProtoError::Closed(what.to_string()))
    })
    .await?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ProtoError::Malformed(format!("{what}: {e}")))?;
    if let Some(theirs) = v.get("version").and_then(serde_json::Value::as_u64) {
        if theirs != u64::from(PROTOCOL_VERSION) {
            return Err(ProtoError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: u32::try_from(theirs).unwrap_or(u32::MAX),
            });
        }
    }
    let msg =
        serde_json::from_value(v).map_err(|e| ProtoError::Malformed(format!("{what}: {e}")))?;
    Ok((msg, body))
}

/// Sends one handshake message; returns its bytes as sent (for the transcript).
async fn send<S: AsyncWrite + Unpin>(
    s: &mut S,
    msg: &Handshake,
    step: Duration,
    what: &'static str,
) -> Result<Vec<u8>, ProtoError> {
    let body = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    within(
        step,
        || format!("sending {what}"),
        write_frame(s, &body, HANDSHAKE_MAX_FRAME),
    )
    .await?;
    Ok(body)
}

fn refused(reason: RejectReason, message: String) -> ProtoError {
    // Before authentication anyone can say anything: keep it printable.
    let message = super::printable(&message);
    match reason {
        // The peer's words often start with what the variant says already.
        RejectReason::AuthFailed => ProtoError::AuthFailed(
            message
                .strip_prefix("authentication failed: ")
                .map_or(message.clone(), str::to_string),
        ),
        _ => ProtoError::Refused { reason, message },
    }
}

fn unexpected(expected: &'static str, got: &Handshake) -> ProtoError {
    let got = serde_json::to_value(got)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(super::printable)))
        .unwrap_or_else(|| "?".into());
    ProtoError::Unexpected { expected, got }
}

/// Runs the client side of the handshake with `token` (`None`: a tokenless probe on
/// loopback); returns the server's agent string and the session's keys.
///
/// # Errors
/// [`ProtoError::VersionMismatch`], [`ProtoError::AuthFailed`] (wrong token either way,
/// or an impostor server), [`ProtoError::Refused`], timeouts and I/O errors.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    token: Option<&Token>,
    step: Duration,
) -> Result<Established, ProtoError> {
    let mut transcript = Transcript::default();
    let cn = nonce();
    let hello = Handshake::Hello {
        version: PROTOCOL_VERSION,
        client_nonce: hex::encode(cn),
        agent: agent(),
    };
    // A probe at its connection limit may refuse before reading: still read its reason.
    let sent = send(s, &hello, step, "hello").await;
    let reply = read_handshake(s, step, "the probe's challenge").await;
    let server_agent = match reply {
        Ok((
            Handshake::Challenge {
                server_nonce,
                agent,
                ..
            },
            bytes,
        )) => {
            transcript.add(&sent?);
            decode_nonce(&server_nonce, "server")?;
            transcript.add(&bytes);
            agent
        }
        Ok((Handshake::Reject { reason, message }, _)) => return Err(refused(reason, message)),
        Ok((other, _)) => return Err(unexpected("challenge", &other)),
        Err(e @ ProtoError::VersionMismatch { ours, theirs }) => {
            let reject = Handshake::Reject {
                reason: RejectReason::VersionMismatch,
                message: format!(
                    "protocol version mismatch: the client speaks version {ours}, the probe \
                     speaks version {theirs}"
                ),
            };
            let _ = send(s, &reject, step, "reject").await;
            return Err(e);
        }
        Err(e) => return Err(sent.err().unwrap_or(e)),
    };
    let proof = Handshake::Proof {
        mac: hex::encode(mac(key(token), CLIENT_LABEL, &transcript.hash())),
    };
    transcript.add(&send(s, &proof, step, "proof").await?);
    match read_handshake(s, step, "the probe's welcome").await? {
        (Handshake::Welcome { mac: m }, bytes) => {
            if !verify(&mac(key(token), SERVER_LABEL, &transcript.hash()), &m) {
                return Err(ProtoError::AuthFailed(
                    "the probe's proof does not verify: it does not hold our token \
                     (wrong token, an impostor, or the handshake was altered on the way)"
                        .into(),
                ));
            }
            transcript.add(&bytes);
            Ok(Established {
                peer_agent: server_agent,
                keys: session_keys(key(token), &transcript.hash()),
            })
        }
        (Handshake::Reject { reason, message }, _) => Err(refused(reason, message)),
        (other, _) => Err(unexpected("welcome", &other)),
    }
}

/// Runs the server side of the handshake, accepting a proof made with any of `tokens`
/// (none: a tokenless probe on loopback); returns the client's agent string and the
/// session's keys. On failure the client is sent a `reject` naming the reason (best
/// effort) before the error returns.
///
/// # Errors
/// [`ProtoError::VersionMismatch`], [`ProtoError::AuthFailed`], [`ProtoError::Unexpected`]
/// (anything but the handshake), timeouts and I/O errors.
pub async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    tokens: &[Token],
    step: Duration,
) -> Result<Established, ProtoError> {
    let result = server_steps(s, tokens, step).await;
    if let Err(e) = &result {
        let reason = match e {
            ProtoError::VersionMismatch { .. } => Some(RejectReason::VersionMismatch),
            ProtoError::AuthFailed(_) => Some(RejectReason::AuthFailed),
            ProtoError::Unexpected { .. } | ProtoError::Malformed(_) => {
                Some(RejectReason::Protocol)
            }
            ProtoError::FrameTooLarge { .. } => Some(RejectReason::Protocol),
            _ => None,
        };
        if let Some(reason) = reason {
            let message = match e {
                ProtoError::VersionMismatch { ours, theirs } => format!(
                    "protocol version mismatch: the probe speaks version {ours}, the client \
                     speaks version {theirs}"
                ),
                other => other.to_string(),
            };
            let _ = send(s, &Handshake::Reject { reason, message }, step, "reject").await;
        }
    }
    result
}

/// The key whose proof matches, among `tokens` (or the empty key when there are none).
/// Every candidate is checked, so the time taken does not say which one matched.
fn matching_key<'a>(tokens: &'a [Token], transcript: &[u8; 32], got_hex: &str) -> Option<&'a [u8]> {
    if tokens.is_empty() {
        return verify(&mac(&[], CLIENT_LABEL, transcript), got_hex).then_some(&[][..]);
    }
    let mut found = None;
    for t in tokens {
        if verify(&mac(t.secret(), CLIENT_LABEL, transcript), got_hex) && found.is_none() {
            found = Some(t.secret());
        }
    }
    found
}

async fn server_steps<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    tokens: &[Token],
    step: Duration,
) -> Result<Established, ProtoError> {
    let mut transcript = Transcript::default();
    let client_agent = match read_handshake(s, step, "the client's hello").await? {
        (
            Handshake::Hello {
                client_nonce,
                agent,
                ..
            },
            bytes,
        ) => {
            decode_nonce(&client_nonce, "client")?;
            transcript.add(&bytes);
            agent
        }
        (other, _) => return Err(unexpected("hello", &other)),
    };
    let sn = nonce();
    let challenge = Handshake::Challenge {
        version: PROTOCOL_VERSION,
        server_nonce: hex::encode(sn),
        agent: agent(),
    };
    transcript.add(&send(s, &challenge, step, "challenge").await?);
    let key = match read_handshake(s, step, "the client's proof").await? {
        (Handshake::Proof { mac: m }, bytes) => {
            let Some(key) = matching_key(tokens, &transcript.hash(), &m) else {
                return Err(ProtoError::AuthFailed(
                    "the client's proof does not verify (wrong token, a replayed handshake, \
                     or one altered on the way)"
                        .into(),
                ));
            };
            transcript.add(&bytes);
            key
        }
        (Handshake::Reject { reason, message }, _) => return Err(refused(reason, message)),
        (other, _) => return Err(unexpected("proof", &other)),
    };
    let welcome = Handshake::Welcome {
        mac: hex::encode(mac(key, SERVER_LABEL, &transcript.hash())),
    };
    transcript.add(&send(s, &welcome, step, "welcome").await?);
    Ok(Established {
        peer_agent: client_agent,
        keys: session_keys(key, &transcript.hash()),
    })
}

/// Sends a `reject` before any handshake (e.g. connection limit), best effort.
pub async fn reject<S: AsyncWrite + Unpin>(
    s: &mut S,
    reason: RejectReason,
    message: String,
    step: Duration,
) {
    let _ = send(s, &Handshake::Reject { reason, message }, step, "reject").await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> Token {
        Token::new(s, "test").unwrap()
    }

    #[test]
    fn macs_depend_on_key_label_and_transcript() {
        let t = tok("0123456789abcdef-secret");
        let th = [1u8; 32];
        let a = mac(t.secret(), CLIENT_LABEL, &th);
        assert!(verify(&a, &hex::encode(a)));
        assert_ne!(a, mac(t.secret(), SERVER_LABEL, &th));
        assert_ne!(a, mac(t.secret(), CLIENT_LABEL, &[2u8; 32]));
        assert_ne!(
            a,
            mac(tok("another-secret-token").secret(), CLIENT_LABEL, &th)
        );
        assert!(!verify(&a, &hex::encode(&a[..31])));
        assert!(!verify(&a, "zz"));
    }

    #[test]
    fn keys_differ_per_direction_per_transcript_and_per_token() {
        let t = tok("0123456789abcdef-secret");
        let k = session_keys(t.secret(), &[1u8; 32]);
        assert_ne!(*k.client_to_server, *k.server_to_client);
        let k2 = session_keys(t.secret(), &[2u8; 32]);
        assert_ne!(*k.client_to_server, *k2.client_to_server);
        let k3 = session_keys(tok("another-secret-token").secret(), &[1u8; 32]);
        assert_ne!(*k.client_to_server, *k3.client_to_server);
        assert_eq!(format!("{k:?}"), "SessionKeys(<secret>)");
    }

    #[test]
    fn the_transcript_frames_each_message_with_its_length() {
        let mut a = Transcript::default();
        a.add(b"ab");
        a.add(b"c");
        let mut b = Transcript::default();
        b.add(b"a");
        b.add(b"bc");
        assert_ne!(a.hash(), b.hash());
    }

    use crate::proto::test_runtime as rt;

    #[test]
    fn handshake_succeeds_with_the_same_token_and_fails_with_another() {
        rt().block_on(async {
            let step = Duration::from_secs(2);
            let (mut a, mut b) = tokio::io::duplex(8192);
            let t = tok("the-shared-token-1234");
            let t2 = t.clone();
            let server = tokio::spawn(async move { server_handshake(&mut b, &[t2], step).await });
            let c = client_handshake(&mut a, Some(&t), step).await.unwrap();
            let s = server.await.unwrap().unwrap();
            assert_eq!(*c.keys.client_to_server, *s.keys.client_to_server);
            assert_eq!(*c.keys.server_to_client, *s.keys.server_to_client);

            let (mut a, mut b) = tokio::io::duplex(8192);
            let server = tokio::spawn(async move {
                server_handshake(&mut b, &[tok("the-shared-token-1234")], step).await
            });
            let e = client_handshake(&mut a, Some(&tok("a-different-token-99")), step)
                .await
                .unwrap_err();
            assert!(matches!(e, ProtoError::AuthFailed(_)), "{e}");
            let e = server.await.unwrap().unwrap_err();
            assert!(matches!(e, ProtoError::AuthFailed(_)), "{e}");
        });
    }

    #[test]
    fn a_server_with_two_tokens_accepts_either_and_each_session_has_its_own_keys() {
        rt().block_on(async {
            let step = Duration::from_secs(2);
            let (old, new) = (
                tok("the-old-token-0123456789"),
                tok("the-new-token-0123456789"),
            );
            let mut keys = Vec::new();
            for t in [&old, &new, &old] {
                let (mut a, mut b) = tokio::io::duplex(8192);
                let both = vec![new.clone(), old.clone()];
                let server =
                    tokio::spawn(async move { server_handshake(&mut b, &both, step).await });
                let c = client_handshake(&mut a, Some(t), step).await.unwrap();
                let s = server.await.unwrap().unwrap();
                assert_eq!(*c.keys.server_to_client, *s.keys.server_to_client);
                keys.push(*c.keys.client_to_server);
            }
            assert_ne!(keys[0], keys[2], "fresh nonces, fresh keys");
        });
    }
}
