//! The shared token and the mutual HMAC-SHA256 handshake.
//!
//! ```text
//! client                                   server
//!   hello {version, client_nonce}     ->
//!                                     <-   challenge {version, server_nonce}
//!   proof {HMAC(token, "earshot-v1 client" || cn || sn)} ->
//!                                     <-   welcome {HMAC(token, "earshot-v1 server" || cn || sn)}
//! ```
//!
//! Both nonces are 32 bytes from the OS RNG, so a recorded proof is worthless in a new
//! handshake; the two labels differ, so one side's MAC cannot be reflected as the other's.
//! MACs are compared in constant time. Each step has a timeout, and frames are capped at
//! [`HANDSHAKE_MAX_FRAME`] until the handshake succeeds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{read_frame, write_msg};
use super::msg::{Handshake, RejectReason};
use super::{within, ProtoError, HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION};

/// Environment variable holding the token when no file is given.
pub const TOKEN_ENV: &str = "EARSHOT_TOKEN";

/// Shortest token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

const NONCE_LEN: usize = 32;
const CLIENT_LABEL: &[u8] = b"earshot-v1 client";
const SERVER_LABEL: &[u8] = b"earshot-v1 server";

/// Why a token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error(
        "token file {path} is readable by group or others (mode {mode:04o}); \
         expected owner-only access: chmod 600 {path}"
    )]
    Permissive {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The token is too short to be a secret.
    #[error("token from {origin} is {len} bytes; expected at least {MIN_TOKEN_LEN}")]
    TooShort {
        /// File path or variable name.
        origin: String,
        /// Its length after trimming.
        len: usize,
    },
}

/// The shared secret. Its `Debug` output never shows the bytes.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(<{} bytes>)", self.0.len())
    }
}

impl Token {
    /// A token from its text (surrounding whitespace trimmed).
    ///
    /// # Errors
    /// [`TokenError::TooShort`] below [`MIN_TOKEN_LEN`] bytes; `origin` names the source.
    pub fn new(text: &str, origin: &str) -> Result<Token, TokenError> {
        let t = text.trim();
        if t.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort {
                origin: origin.to_string(),
                len: t.len(),
            });
        }
        Ok(Token(t.as_bytes().to_vec()))
    }

    /// Reads a token file. On Unix a file that group or others can read is refused.
    ///
    /// # Errors
    /// [`TokenError`] naming the file (and its mode when too open).
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let read_err = |source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(read_err)?
                .permissions()
                .mode()
                & 0o7777;
            if mode & 0o077 != 0 {
                return Err(TokenError::Permissive {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Token::new(&text, &path.display().to_string())
    }

    /// The token in [`TOKEN_ENV`], if set.
    ///
    /// # Errors
    /// [`TokenError::TooShort`].
    pub fn from_env() -> Result<Option<Token>, TokenError> {
        match std::env::var(TOKEN_ENV) {
            Ok(v) => Token::new(&v, TOKEN_ENV).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The token from `file` if given, else from [`TOKEN_ENV`], else none.
    ///
    /// # Errors
    /// As [`Token::from_file`] / [`Token::from_env`].
    pub fn load(file: Option<&Path>) -> Result<Option<Token>, TokenError> {
        match file {
            Some(p) => Token::from_file(p).map(Some),
            None => Token::from_env(),
        }
    }
}

fn key(token: Option<&Token>) -> &[u8] {
    // Without a token (loopback only, enforced by the server) the MACs use the empty key:
    // the handshake still runs, so the protocol has one shape.
    token.map_or(&[], |t| t.0.as_slice())
}

fn mac(token: Option<&Token>, label: &[u8], cn: &[u8], sn: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key(token))
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(label);
    m.update(cn);
    m.update(sn);
    m.finalize().into_bytes().to_vec()
}

fn verify(expected: &[u8], got_hex: &str) -> bool {
    match hex::decode(got_hex) {
        Ok(got) => got.len() == expected.len() && bool::from(got.ct_eq(expected)),
        Err(_) => false,
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

/// Reads one handshake message; checks `version` (if present) before the full shape, so a
/// peer of another version gets a version error rather than a parse error.
async fn read_handshake<S: AsyncRead + Unpin>(
    s: &mut S,
    step: Duration,
    what: &'static str,
) -> Result<Handshake, ProtoError> {
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
    serde_json::from_value(v).map_err(|e| ProtoError::Malformed(format!("{what}: {e}")))
}

async fn send<S: AsyncWrite + Unpin>(
    s: &mut S,
    msg: &Handshake,
    step: Duration,
    what: &'static str,
) -> Result<(), ProtoError> {
    within(
        step,
        || format!("sending {what}"),
        write_msg(s, msg, HANDSHAKE_MAX_FRAME),
    )
    .await
}

fn refused(reason: RejectReason, message: String) -> ProtoError {
    match reason {
        RejectReason::AuthFailed => ProtoError::AuthFailed(message),
        _ => ProtoError::Refused { reason, message },
    }
}

fn unexpected(expected: &'static str, got: &Handshake) -> ProtoError {
    let got = serde_json::to_value(got)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
        .unwrap_or_else(|| "?".into());
    ProtoError::Unexpected { expected, got }
}

/// Runs the client side of the handshake; returns the server's agent string.
///
/// # Errors
/// [`ProtoError::VersionMismatch`], [`ProtoError::AuthFailed`] (wrong token either way,
/// or an impostor server), [`ProtoError::Refused`], timeouts and I/O errors.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    token: Option<&Token>,
    step: Duration,
) -> Result<String, ProtoError> {
    let cn = nonce();
    let hello = Handshake::Hello {
        version: PROTOCOL_VERSION,
        client_nonce: hex::encode(cn),
        agent: agent(),
    };
    // A probe at its connection limit may refuse before reading: still read its reason.
    let sent = send(s, &hello, step, "hello").await;
    let reply = read_handshake(s, step, "the probe's challenge").await;
    let (sn, server_agent) = match reply {
        Ok(Handshake::Challenge {
            server_nonce,
            agent,
            ..
        }) => {
            sent?;
            (decode_nonce(&server_nonce, "server")?, agent)
        }
        Ok(Handshake::Reject { reason, message }) => return Err(refused(reason, message)),
        Ok(other) => return Err(unexpected("challenge", &other)),
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
        mac: hex::encode(mac(token, CLIENT_LABEL, &cn, &sn)),
    };
    send(s, &proof, step, "proof").await?;
    match read_handshake(s, step, "the probe's welcome").await? {
        Handshake::Welcome { mac: m } => {
            if verify(&mac(token, SERVER_LABEL, &cn, &sn), &m) {
                Ok(server_agent)
            } else {
                Err(ProtoError::AuthFailed(
                    "the probe's proof does not verify: it does not hold our token \
                     (wrong token or an impostor)"
                        .into(),
                ))
            }
        }
        Handshake::Reject { reason, message } => Err(refused(reason, message)),
        other => Err(unexpected("welcome", &other)),
    }
}

/// Runs the server side of the handshake; returns the client's agent string. On failure
/// the client is sent a `reject` naming the reason (best effort) before the error returns.
///
/// # Errors
/// [`ProtoError::VersionMismatch`], [`ProtoError::AuthFailed`], [`ProtoError::Unexpected`]
/// (anything but the handshake), timeouts and I/O errors.
pub async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    token: Option<&Token>,
    step: Duration,
) -> Result<String, ProtoError> {
    let result = server_steps(s, token, step).await;
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

async fn server_steps<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    token: Option<&Token>,
    step: Duration,
) -> Result<String, ProtoError> {
    let (cn, client_agent) = match read_handshake(s, step, "the client's hello").await? {
        Handshake::Hello {
            client_nonce,
            agent,
            ..
        } => (decode_nonce(&client_nonce, "client")?, agent),
        other => return Err(unexpected("hello", &other)),
    };
    let sn = nonce();
    let challenge = Handshake::Challenge {
        version: PROTOCOL_VERSION,
        server_nonce: hex::encode(sn),
        agent: agent(),
    };
    send(s, &challenge, step, "challenge").await?;
    match read_handshake(s, step, "the client's proof").await? {
        Handshake::Proof { mac: m } => {
            if !verify(&mac(token, CLIENT_LABEL, &cn, &sn), &m) {
                return Err(ProtoError::AuthFailed(
                    "the client's proof does not verify (wrong token or a replayed handshake)"
                        .into(),
                ));
            }
        }
        Handshake::Reject { reason, message } => return Err(refused(reason, message)),
        other => return Err(unexpected("proof", &other)),
    }
    let welcome = Handshake::Welcome {
        mac: hex::encode(mac(token, SERVER_LABEL, &cn, &sn)),
    };
    send(s, &welcome, step, "welcome").await?;
    Ok(client_agent)
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
    fn macs_depend_on_token_label_and_both_nonces() {
        let t = tok("0123456789abcdef-secret");
        let a = mac(Some(&t), CLIENT_LABEL, &[1; 32], &[2; 32]);
        assert_eq!(a.len(), 32);
        assert!(verify(&a, &hex::encode(&a)));
        assert_ne!(a, mac(Some(&t), SERVER_LABEL, &[1; 32], &[2; 32]));
        assert_ne!(a, mac(Some(&t), CLIENT_LABEL, &[1; 32], &[3; 32]));
        assert_ne!(a, mac(Some(&t), CLIENT_LABEL, &[0; 32], &[2; 32]));
        assert_ne!(
            a,
            mac(
                Some(&tok("another-secret-token")),
                CLIENT_LABEL,
                &[1; 32],
                &[2; 32]
            )
        );
        assert!(!verify(&a, &hex::encode(&a[..31])));
        assert!(!verify(&a, "zz"));
    }

    #[test]
    fn short_tokens_are_refused_and_debug_hides_the_bytes() {
        let e = Token::new("  short \n", "EARSHOT_TOKEN").unwrap_err();
        assert!(e.to_string().contains("EARSHOT_TOKEN"), "{e}");
        let t = tok("a-token-long-enough\n");
        assert_eq!(format!("{t:?}"), "Token(<19 bytes>)");
    }

    #[cfg(unix)]
    #[test]
    fn token_file_readable_by_others_is_refused_naming_file_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Token::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains(&p.display().to_string()) && e.contains("0644"),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::from_file(&p).is_ok());
        let e = Token::from_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }

    use crate::proto::test_runtime as rt;

    #[test]
    fn handshake_succeeds_with_the_same_token_and_fails_with_another() {
        rt().block_on(async {
            let step = Duration::from_secs(2);
            let (mut a, mut b) = tokio::io::duplex(8192);
            let t = tok("the-shared-token-1234");
            let t2 = t.clone();
            let server =
                tokio::spawn(async move { server_handshake(&mut b, Some(&t2), step).await });
            client_handshake(&mut a, Some(&t), step).await.unwrap();
            server.await.unwrap().unwrap();

            let (mut a, mut b) = tokio::io::duplex(8192);
            let server = tokio::spawn(async move {
                server_handshake(&mut b, Some(&tok("the-shared-token-1234")), step).await
            });
            let e = client_handshake(&mut a, Some(&tok("a-different-token-99")), step)
                .await
                .unwrap_err();
            assert!(matches!(e, ProtoError::AuthFailed(_)), "{e}");
            let e = server.await.unwrap().unwrap_err();
            assert!(matches!(e, ProtoError::AuthFailed(_)), "{e}");
        });
    }
}
