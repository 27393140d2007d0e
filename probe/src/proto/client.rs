//! The client: connects (or accepts a dialing probe), authenticates, then issues requests.
//!
//! Type-state: [`Client::connect`] and [`ProbeListener::accept`] return an
//! [`AuthedClient`], the only type with request methods. An `AuthedClient` is cheap to
//! clone and its calls may run concurrently (e.g. `listen` on one task, `cancel_all` on
//! another): one reader task routes replies by request id. Every call has a timeout: the
//! job's own bound plus [`ClientConfig::margin`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::auth::{client_handshake, Token};
use super::frame::{parse, read_frame, write_msg};
use super::msg::{
    ListenRequest, PlayRequest, ProbeInfo, RecordRequest, RemoteError, Request, RequestBody,
    Response, ResponseBody,
};
use super::{within, ProtoError, MAX_EVIDENCE, MAX_FRAME};
use crate::audio::{AudioError, ListenReport, PlayReport, RecordReport};

/// Timeouts of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// TCP connect.
    pub connect_timeout: Duration,
    /// Each handshake step.
    pub handshake_timeout: Duration,
    /// `info` (the probe lists devices, each query bounded by its own watchdog).
    pub info_timeout: Duration,
    /// Added to a job's own duration (device start-up, evidence transfer).
    pub margin: Duration,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            info_timeout: Duration::from_secs(20),
            margin: Duration::from_secs(15),
        }
    }
}

/// A failed client operation, naming the probe.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made (or accepted).
    #[error("probe {peer}: cannot connect: {error}")]
    Connect {
        /// Address of the probe.
        peer: String,
        /// The cause.
        error: std::io::Error,
    },
    /// Protocol failure: handshake, framing, timeout, closed connection.
    #[error("probe {peer}: {error}")]
    Proto {
        /// Address of the probe.
        peer: String,
        /// The cause.
        error: ProtoError,
    },
    /// The probe answered the request with an error.
    #[error("probe {peer}: {request} failed: {error}")]
    Remote {
        /// Address of the probe.
        peer: String,
        /// Request name.
        request: &'static str,
        /// The probe's error.
        error: RemoteError,
    },
}

impl ClientError {
    /// The probe's error reply, if this is one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            ClientError::Remote { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The device failure the probe reported, if this is one (to tell no-device apart).
    pub fn audio(&self) -> Option<AudioError> {
        self.remote().and_then(RemoteError::audio)
    }

    /// The protocol failure, if this is one.
    pub fn proto(&self) -> Option<&ProtoError> {
        match self {
            ClientError::Proto { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A finished recording, with the WAV evidence when asked for.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The probe's report.
    pub report: RecordReport,
    /// WAV file bytes (32-bit float), if `evidence` was requested.
    pub evidence: Option<Vec<u8>>,
}

/// A finished listen, with the WAV evidence when asked for.
#[derive(Debug, Clone)]
pub struct Heard {
    /// The probe's report (`report.analysis.detected` is the verdict).
    pub report: ListenReport,
    /// WAV file bytes (32-bit float), if `evidence` was requested.
    pub evidence: Option<Vec<u8>>,
}

/// Entry point: connects to a listening probe.
pub struct Client;

impl Client {
    /// Connects to the probe at `addr` (`host:port`) and authenticates with `token`
    /// (`None` only for a tokenless probe on loopback).
    ///
    /// # Errors
    /// [`ClientError::Connect`]; [`ClientError::Proto`] for the handshake (version
    /// mismatch, wrong token, refused, timeout).
    pub async fn connect(
        addr: &str,
        token: Option<&Token>,
        config: &ClientConfig,
    ) -> Result<AuthedClient, ClientError> {
        let stream =
            match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(error)) => {
                    return Err(ClientError::Connect {
                        peer: addr.to_string(),
                        error,
                    })
                }
                Err(_) => {
                    return Err(ClientError::Proto {
                        peer: addr.to_string(),
                        error: ProtoError::Timeout {
                            what: "the TCP connection".into(),
                            after: config.connect_timeout,
                        },
                    })
                }
            };
        AuthedClient::handshake(stream, addr.to_string(), token, config).await
    }
}

type Pending = Arc<Mutex<HashMap<u64, mpsc::Sender<ResponseBody>>>>;

struct Inner {
    peer: String,
    server_agent: String,
    config: ClientConfig,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    /// Why the reader stopped, once it has.
    closed: Arc<Mutex<Option<String>>>,
    next_id: AtomicU64,
    reader: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// An authenticated connection to a probe. Clones share the connection.
#[derive(Clone)]
pub struct AuthedClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuthedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthedClient")
            .field("peer", &self.inner.peer)
            .finish_non_exhaustive()
    }
}

/// Removes a call's routing entry however the call ends.
struct PendingGuard<'a>(&'a Pending, u64);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.0.lock() {
            p.remove(&self.1);
        }
    }
}

impl AuthedClient {
    /// Authenticates over an established stream (used by [`Client::connect`] and
    /// [`ProbeListener::accept`]).
    ///
    /// # Errors
    /// [`ClientError::Proto`] for the handshake.
    pub async fn handshake(
        mut stream: TcpStream,
        peer: String,
        token: Option<&Token>,
        config: &ClientConfig,
    ) -> Result<AuthedClient, ClientError> {
        let server_agent = client_handshake(&mut stream, token, config.handshake_timeout)
            .await
            .map_err(|error| ClientError::Proto {
                peer: peer.clone(),
                error,
            })?;
        let _ = stream.set_nodelay(true);
        let (mut rd, wr) = stream.into_split();
        let pending: Pending = Arc::default();
        let closed: Arc<Mutex<Option<String>>> = Arc::default();
        let (p2, c2) = (pending.clone(), closed.clone());
        let reader = tokio::spawn(async move {
            let why = loop {
                match read_frame(&mut rd, MAX_FRAME).await {
                    Ok(Some(body)) => {
                        let resp: Response = match parse(&body, "a reply") {
                            Ok(r) => r,
                            Err(e) => break e.to_string(),
                        };
                        let tx = p2.lock().ok().and_then(|p| p.get(&resp.id).cloned());
                        if let Some(tx) = tx {
                            // A call that gave up has dropped its receiver: fine.
                            let _ = tx.send(resp.body).await;
                        }
                    }
                    Ok(None) => break "the probe closed the connection".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            if let Ok(mut c) = c2.lock() {
                *c = Some(why);
            }
            // Dropping the senders wakes every waiting call with "closed".
            if let Ok(mut p) = p2.lock() {
                p.clear();
            }
        });
        Ok(AuthedClient {
            inner: Arc::new(Inner {
                peer,
                server_agent,
                config: config.clone(),
                writer: tokio::sync::Mutex::new(wr),
                pending,
                closed,
                next_id: AtomicU64::new(1),
                reader: reader.abort_handle(),
            }),
        })
    }

    /// The probe's address as given.
    pub fn peer(&self) -> &str {
        &self.inner.peer
    }

    /// The probe's software name and version from the handshake.
    pub fn server_agent(&self) -> &str {
        &self.inner.server_agent
    }

    fn proto_err(&self, error: ProtoError) -> ClientError {
        ClientError::Proto {
            peer: self.inner.peer.clone(),
            error,
        }
    }

    async fn send(&self, req: &Request, within_: Duration) -> Result<(), ProtoError> {
        let r = within(
            within_,
            || format!("sending request {} ({})", req.id, req.body.name()),
            async {
                let mut w = self.inner.writer.lock().await;
                write_msg(&mut *w, req, MAX_FRAME).await
            },
        )
        .await;
        if let Err(e) = &r {
            // A write cut short leaves half a frame on the wire: the connection cannot be
            // used any more, so later calls fail at once and say why.
            if let Ok(mut c) = self.inner.closed.lock() {
                c.get_or_insert_with(|| format!("a request could not be sent: {e}"));
            }
            self.inner.reader.abort();
            if let Ok(mut p) = self.inner.pending.lock() {
                p.clear();
            }
        }
        r
    }

    /// Sends `body` and waits for its final reply, reassembling evidence chunks.
    async fn call(
        &self,
        body: RequestBody,
        timeout: Duration,
        cancel: Option<&CancellationToken>,
        mut armed: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(ResponseBody, Vec<u8>), ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let name = body.name();
        let (tx, mut rx) = mpsc::channel(16);
        {
            let mut p = self
                .inner
                .pending
                .lock()
                .map_err(|_| self.proto_err(ProtoError::Closed("a reply (poisoned)".into())))?;
            p.insert(id, tx);
        }
        let _guard = PendingGuard(&self.inner.pending, id);
        if let Some(why) = self.inner.closed.lock().ok().and_then(|c| c.clone()) {
            return Err(self.proto_err(ProtoError::Closed(format!(
                "the reply to {name} (connection already down: {why})"
            ))));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let req = Request { id, body };
        self.send(&req, timeout)
            .await
            .map_err(|e| self.proto_err(e))?;
        let mut evidence = Vec::new();
        let mut cancel_sent = false;
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(ResponseBody::EvidenceChunk { offset, data }) => {
                        if offset != evidence.len() as u64 {
                            return Err(self.proto_err(ProtoError::Malformed(format!(
                                "evidence chunk at offset {offset}, expected {}", evidence.len()
                            ))));
                        }
                        let bytes = hex::decode(&data).map_err(|e| {
                            self.proto_err(ProtoError::Malformed(format!("evidence chunk: {e}")))
                        })?;
                        if evidence.len() + bytes.len() > MAX_EVIDENCE {
                            return Err(self.proto_err(ProtoError::Malformed(format!(
                                "evidence exceeds the {MAX_EVIDENCE}-byte limit"
                            ))));
                        }
                        evidence.extend_from_slice(&bytes);
                    }
                    Some(ResponseBody::Armed) => {
                        if let Some(tx) = armed.take() {
                            // The caller may have stopped waiting: nothing to do then.
                            let _ = tx.send(());
                        }
                    }
                    Some(ResponseBody::Error { error }) => {
                        return Err(ClientError::Remote {
                            peer: self.inner.peer.clone(),
                            request: name,
                            error,
                        });
                    }
                    Some(other) => return Ok((other, evidence)),
                    None => {
                        let why = self
                            .inner
                            .closed
                            .lock()
                            .ok()
                            .and_then(|c| c.clone())
                            .unwrap_or_else(|| "connection lost".into());
                        return Err(self.proto_err(ProtoError::Closed(format!(
                            "the reply to request {id} ({name}): {why}"
                        ))));
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    // Best effort: stop the job so the device is free for the next one.
                    let stop = Request { id: 0, body: RequestBody::Cancel { target: Some(id) } };
                    let _ = self.send(&stop, Duration::from_millis(500)).await;
                    return Err(self.proto_err(ProtoError::Timeout {
                        what: format!("the reply to request {id} ({name})"),
                        after: timeout,
                    }));
                }
                () = cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    let stop = Request { id: 0, body: RequestBody::Cancel { target: Some(id) } };
                    self.send(&stop, timeout).await.map_err(|e| self.proto_err(e))?;
                }
            }
        }
    }

    fn unexpected(&self, expected: &'static str, got: &ResponseBody) -> ClientError {
        let got = serde_json::to_value(got)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
            .unwrap_or_else(|| "?".into());
        self.proto_err(ProtoError::Unexpected { expected, got })
    }

    /// Probe version, host, OS, audio host, remote-session verdict, device catalogue.
    ///
    /// # Errors
    /// [`ClientError`]; a catalogue failure is not an error (see [`ProbeInfo::devices`]).
    pub async fn info(&self) -> Result<ProbeInfo, ClientError> {
        let t = self.inner.config.info_timeout;
        match self.call(RequestBody::Info, t, None, None).await? {
            (ResponseBody::Info { info }, _) => Ok(*info),
            (other, _) => Err(self.unexpected("info", &other)),
        }
    }

    /// Plays a signature on the probe.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::audio`] gives the device failure.
    pub async fn play(&self, req: &PlayRequest) -> Result<PlayReport, ClientError> {
        self.play_cancellable(req, &CancellationToken::new()).await
    }

    /// As [`AuthedClient::play`]; cancelling `cancel` asks the probe to stop early.
    ///
    /// # Errors
    /// As [`AuthedClient::play`].
    pub async fn play_cancellable(
        &self,
        req: &PlayRequest,
        cancel: &CancellationToken,
    ) -> Result<PlayReport, ClientError> {
        let sig = crate::signal::Signature::new(req.seed, req.direction).duration();
        let t = sig + self.inner.config.margin;
        match self
            .call(RequestBody::Play(req.clone()), t, Some(cancel), None)
            .await?
        {
            (ResponseBody::Played { report }, _) => Ok(report),
            (other, _) => Err(self.unexpected("played", &other)),
        }
    }

    /// Records on the probe for `req.duration_ms`.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::audio`] gives the device failure.
    pub async fn record(&self, req: &RecordRequest) -> Result<Recording, ClientError> {
        self.record_cancellable(req, &CancellationToken::new())
            .await
    }

    /// As [`AuthedClient::record`]; cancelling `cancel` stops the recording early.
    ///
    /// # Errors
    /// As [`AuthedClient::record`].
    pub async fn record_cancellable(
        &self,
        req: &RecordRequest,
        cancel: &CancellationToken,
    ) -> Result<Recording, ClientError> {
        let t = Duration::from_millis(req.duration_ms) + self.inner.config.margin;
        match self
            .call(RequestBody::Record(req.clone()), t, Some(cancel), None)
            .await?
        {
            (
                ResponseBody::Recorded {
                    report,
                    evidence_bytes,
                },
                ev,
            ) => Ok(Recording {
                report,
                evidence: self.evidence(req.evidence, evidence_bytes, ev)?,
            }),
            (other, _) => Err(self.unexpected("recorded", &other)),
        }
    }

    /// Listens on the probe for a signature, up to `req.timeout_ms`.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::audio`] gives the device failure (e.g. `NoDevice`).
    pub async fn listen(&self, req: &ListenRequest) -> Result<Heard, ClientError> {
        self.listen_cancellable(req, &CancellationToken::new())
            .await
    }

    /// As [`AuthedClient::listen`]; cancelling `cancel` stops listening early.
    ///
    /// # Errors
    /// As [`AuthedClient::listen`].
    pub async fn listen_cancellable(
        &self,
        req: &ListenRequest,
        cancel: &CancellationToken,
    ) -> Result<Heard, ClientError> {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        self.listen_armed(req, cancel, tx).await
    }

    /// As [`AuthedClient::listen_cancellable`], telling `armed` as soon as the probe's device
    /// delivers audio: from then on anything played on the path is heard, so that is when
    /// to start the player. `armed` is dropped unsent if the listen fails before.
    ///
    /// # Errors
    /// As [`AuthedClient::listen`].
    pub async fn listen_armed(
        &self,
        req: &ListenRequest,
        cancel: &CancellationToken,
        armed: tokio::sync::oneshot::Sender<()>,
    ) -> Result<Heard, ClientError> {
        let t = Duration::from_millis(req.timeout_ms) + self.inner.config.margin;
        match self
            .call(
                RequestBody::Listen(req.clone()),
                t,
                Some(cancel),
                Some(armed),
            )
            .await?
        {
            (
                ResponseBody::Listened {
                    report,
                    evidence_bytes,
                },
                ev,
            ) => Ok(Heard {
                report: *report,
                evidence: self.evidence(req.evidence, evidence_bytes, ev)?,
            }),
            (other, _) => Err(self.unexpected("listened", &other)),
        }
    }

    /// Asks the probe to stop every job of this connection; returns how many it signalled.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn cancel_all(&self) -> Result<u32, ClientError> {
        let t = self.inner.config.handshake_timeout;
        match self
            .call(RequestBody::Cancel { target: None }, t, None, None)
            .await?
        {
            (ResponseBody::Cancelled { jobs }, _) => Ok(jobs),
            (other, _) => Err(self.unexpected("cancelled", &other)),
        }
    }

    fn evidence(
        &self,
        wanted: bool,
        announced: u64,
        got: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        if announced != got.len() as u64 {
            return Err(self.proto_err(ProtoError::Malformed(format!(
                "evidence: {} bytes received, {announced} announced",
                got.len()
            ))));
        }
        Ok((wanted && announced > 0).then_some(got))
    }
}

/// Harness side of dial-out: listens for probes started with `earshot-probe connect` and
/// authenticates each as a client (the dialing probe is the protocol's server).
#[derive(Debug)]
pub struct ProbeListener {
    listener: TcpListener,
    token: Option<Token>,
    config: ClientConfig,
}

impl ProbeListener {
    /// Binds `addr`. A non-loopback address needs a token.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when binding fails or a token is missing.
    pub async fn bind(
        addr: &str,
        token: Option<Token>,
        config: ClientConfig,
    ) -> Result<ProbeListener, ClientError> {
        let err = |error| ClientError::Connect {
            peer: addr.to_string(),
            error,
        };
        let listener = TcpListener::bind(addr).await.map_err(err)?;
        let local = listener.local_addr().map_err(err)?;
        if token.is_none() && !local.ip().is_loopback() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("refusing to listen on non-loopback address {local} without a token"),
            )));
        }
        Ok(ProbeListener {
            listener,
            token,
            config,
        })
    }

    /// The bound address (for `earshot-probe connect`).
    ///
    /// # Errors
    /// The socket's error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Waits up to `wait` for a probe to dial in, then authenticates it.
    ///
    /// # Errors
    /// A timeout when no probe dials; [`ClientError::Proto`] when its handshake fails.
    pub async fn accept(&self, wait: Duration) -> Result<AuthedClient, ClientError> {
        let here = self
            .listener
            .local_addr()
            .map_or_else(|_| "listener".to_string(), |a| a.to_string());
        let (stream, peer) = match tokio::time::timeout(wait, self.listener.accept()).await {
            Ok(Ok(x)) => x,
            Ok(Err(error)) => return Err(ClientError::Connect { peer: here, error }),
            Err(_) => {
                return Err(ClientError::Proto {
                    peer: here,
                    error: ProtoError::Timeout {
                        what: "a probe to dial in".into(),
                        after: wait,
                    },
                })
            }
        };
        AuthedClient::handshake(stream, peer.to_string(), self.token.as_ref(), &self.config).await
    }
}

/// Decodes WAV evidence bytes received from a probe.
///
/// # Errors
/// [`crate::wav::WavError`] when the bytes are not a WAV file.
pub fn decode_evidence(bytes: &[u8]) -> Result<crate::wav::Audio, crate::wav::WavError> {
    crate::wav::read_from(
        std::io::Cursor::new(bytes),
        std::path::Path::new("<probe evidence>"),
    )
}
