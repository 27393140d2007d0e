//! The client: connects (or accepts a dialing probe), authenticates, then issues requests.
//!
//! Type-state: [`Client::connect`] and [`ProbeListener::accept`] return an
//! [`AuthedClient`], the only type with request methods. An `AuthedClient` is cheap to
//! clone and its calls may run concurrently (e.g. `listen` on one task, `cancel_all` on
//! another): one reader task routes replies by request id. Every call has a timeout: the
//! job's own bound plus [`ClientConfig::margin`].
//!
//! Everything after the handshake is sealed ([`super::channel`]). A frame that does not
//! authenticate ends the connection: every call then fails with [`ProtoError::Tampered`].
//!
//! Evidence: [`AuthedClient::listen_with`] and [`AuthedClient::record_with`]
//! return as soon as the probe has its verdict, with an [`EvidenceHandle`] when evidence
//! was asked for; [`AuthedClient::fetch_evidence`] then fetches the file (FLAC) with its
//! own time budget and progress reports.
//!
//! Size: about 900 lines, one reason: `AuthedClient`'s requests share one reader task, one
//! pending-reply table and one timeout rule; each request is short, and the file reads
//! as the protocol's list of calls.

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
use super::channel::{read_sealed, seal_json, write_sealed, Chunk, Opener, Payload, Sealer};
use super::frame::parse;
use super::msg::{
    EvidenceFormat, EvidenceRef, ListenRequest, PlayRequest, ProbeInfo, RecordRequest, RemoteError,
    Request, RequestBody, Response, ResponseBody,
};
use super::{within, ProtoError, MAX_EVIDENCE};
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
    /// Added to a job's own duration (device start-up).
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

/// A finished recording, with a handle to its evidence when asked for.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The probe's report.
    pub report: RecordReport,
    /// The recording kept on the probe, to fetch with [`AuthedClient::fetch_evidence`];
    /// `None` when not asked for (or larger than the probe's evidence cap).
    pub evidence: Option<EvidenceHandle>,
}

/// How a job (play, record, listen) is asked for beyond its request: a token whose
/// cancelling stops it early, and a sender told as soon as the probe's device delivers
/// audio. The default: neither.
#[derive(Debug, Default)]
pub struct Job<'a> {
    cancel: Option<&'a CancellationToken>,
    armed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<'a> Job<'a> {
    /// A job that `cancel` stops early.
    pub fn cancel(cancel: &'a CancellationToken) -> Job<'a> {
        Job {
            cancel: Some(cancel),
            armed: None,
        }
    }

    /// The job, telling `armed` when the probe's device delivers audio.
    #[must_use]
    pub fn armed(mut self, armed: tokio::sync::oneshot::Sender<()>) -> Job<'a> {
        self.armed = Some(armed);
        self
    }
}

/// A finished listen, with a handle to its evidence when asked for.
#[derive(Debug, Clone)]
pub struct Heard {
    /// The probe's report (`report.analysis.detected` is the verdict).
    pub report: ListenReport,
    /// What was heard, kept on the probe, to fetch with [`AuthedClient::fetch_evidence`];
    /// `None` when not asked for (or larger than the probe's evidence cap).
    pub evidence: Option<EvidenceHandle>,
}

/// A recording the probe keeps as evidence: what it is, and how to fetch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceHandle {
    /// The probe's reference (id, rate, channels, frames, bits).
    pub evidence: EvidenceRef,
    /// The probe that holds it (as given to [`Client::connect`]).
    pub peer: String,
}

/// Fetched evidence: a whole file, to be written as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The file's format; [`EvidenceFormat::extension`] names the file.
    pub format: EvidenceFormat,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// How far a [`AuthedClient::fetch_evidence`] has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidenceProgress {
    /// Bytes received so far.
    pub received: u64,
    /// The file's size.
    pub total: u64,
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

/// What the reader task hands to a waiting call.
enum Incoming {
    Msg(ResponseBody),
    Chunk(Chunk),
}

type Pending = Arc<Mutex<HashMap<u64, mpsc::Sender<Incoming>>>>;

/// Why the connection is down, once it is.
#[derive(Debug, Clone)]
enum Down {
    /// A frame did not authenticate.
    Tampered(String),
    /// Anything else: closed, i/o, a write cut short.
    Other(String),
}

impl Down {
    fn error(&self, waiting_for: String) -> ProtoError {
        match self {
            Down::Tampered(detail) => ProtoError::Tampered {
                detail: detail.clone(),
            },
            Down::Other(why) => ProtoError::Closed(format!("{waiting_for}: {why}")),
        }
    }
}

/// The writing half and the sealer, locked together so frames are numbered in the order
/// they hit the wire.
struct Writer {
    wr: OwnedWriteHalf,
    sealer: Sealer,
}

struct Inner {
    peer: String,
    server_agent: String,
    config: ClientConfig,
    writer: tokio::sync::Mutex<Writer>,
    pending: Pending,
    /// Why the connection is down, once it is.
    closed: Arc<Mutex<Option<Down>>>,
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
        let established = client_handshake(&mut stream, token, config.handshake_timeout)
            .await
            .map_err(|error| ClientError::Proto {
                peer: peer.clone(),
                error,
            })?;
        let server_agent = established.peer_agent;
        let (sealer, opener) = established.keys.client();
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let pending: Pending = Arc::default();
        let closed: Arc<Mutex<Option<Down>>> = Arc::default();
        let (p2, c2) = (pending.clone(), closed.clone());
        let reader = tokio::spawn(async move {
            let why = route_replies(rd, opener, &p2).await;
            if let Down::Tampered(detail) = &why {
                tracing::warn!("the channel was tampered with: {detail}");
            }
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
                writer: tokio::sync::Mutex::new(Writer { wr, sealer }),
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
                let frame = seal_json(&mut w.sealer, req)?;
                write_sealed(&mut w.wr, &frame).await
            },
        )
        .await;
        if let Err(e) = &r {
            // A write cut short leaves half a frame on the wire: the connection cannot be
            // used any more, so later calls fail at once and say why.
            if let Ok(mut c) = self.inner.closed.lock() {
                c.get_or_insert_with(|| Down::Other(format!("a request could not be sent: {e}")));
            }
            self.inner.reader.abort();
            if let Ok(mut p) = self.inner.pending.lock() {
                p.clear();
            }
        }
        r
    }

    /// Registers a call's routing entry and checks that the connection is still up.
    fn open_call(
        &self,
        name: &'static str,
    ) -> Result<(u64, mpsc::Receiver<Incoming>, PendingGuard<'_>), ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(16);
        {
            let mut p = self
                .inner
                .pending
                .lock()
                .map_err(|_| self.proto_err(ProtoError::Closed("a reply (poisoned)".into())))?;
            p.insert(id, tx);
        }
        let guard = PendingGuard(&self.inner.pending, id);
        if let Some(down) = self.inner.closed.lock().ok().and_then(|c| c.clone()) {
            return Err(self
                .proto_err(down.error(format!("the reply to {name} (connection already down)"))));
        }
        Ok((id, rx, guard))
    }

    /// The error for a call whose routing entry was dropped: the connection went down.
    fn down(&self, id: u64, name: &str) -> ClientError {
        let down = self
            .inner
            .closed
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or_else(|| Down::Other("connection lost".into()));
        self.proto_err(down.error(format!("the reply to request {id} ({name})")))
    }

    /// Best effort: stops the job `id` on the probe so its device is free for the next one.
    async fn cancel_job(&self, id: u64) {
        let stop = Request {
            id: 0,
            body: RequestBody::Cancel { target: Some(id) },
        };
        let _ = self.send(&stop, Duration::from_millis(500)).await;
    }

    /// Sends `body` and waits for its final reply.
    async fn call(
        &self,
        body: RequestBody,
        timeout: Duration,
        cancel: Option<&CancellationToken>,
        mut armed: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<ResponseBody, ClientError> {
        let name = body.name();
        let (id, mut rx, _guard) = self.open_call(name)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let req = Request { id, body };
        self.send(&req, timeout)
            .await
            .map_err(|e| self.proto_err(e))?;
        let mut cancel_sent = false;
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Incoming::Msg(ResponseBody::Armed)) => {
                        if let Some(tx) = armed.take() {
                            // The caller may have stopped waiting: nothing to do then.
                            let _ = tx.send(());
                        }
                    }
                    Some(Incoming::Msg(ResponseBody::Error { error })) => {
                        return Err(ClientError::Remote {
                            peer: self.inner.peer.clone(),
                            request: name,
                            error: error.into_printable(),
                        });
                    }
                    Some(Incoming::Msg(other)) => return Ok(other),
                    Some(Incoming::Chunk(c)) => {
                        return Err(self.proto_err(ProtoError::Unexpected {
                            expected: "a message",
                            got: format!("an evidence chunk at byte {} for {name}", c.offset),
                        }));
                    }
                    None => return Err(self.down(id, name)),
                },
                () = tokio::time::sleep_until(deadline) => {
                    self.cancel_job(id).await;
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

    /// Fetches evidence kept by the probe: the whole file, within `timeout` (its own
    /// budget, independent of the request that recorded it). `progress` is called once the
    /// size is known and after every chunk; it runs on the fetching task and should be
    /// quick, since replies to this connection's other calls wait while it runs.
    ///
    /// # Errors
    /// [`ClientError::Remote`] with [`super::msg::ErrorCode::EvidenceGone`] when the probe
    /// no longer holds it (it keeps the latest few, none across a restart); a timeout (the
    /// probe is then told to stop sending); [`ClientError::Proto`] for a handle of another
    /// probe, an oversize or out-of-order stream, or a connection failure.
    pub async fn fetch_evidence(
        &self,
        handle: &EvidenceHandle,
        timeout: Duration,
        mut progress: impl FnMut(EvidenceProgress) + Send,
    ) -> Result<Evidence, ClientError> {
        if handle.peer != self.inner.peer {
            return Err(self.proto_err(ProtoError::Unexpected {
                expected: "an evidence handle from this probe",
                got: format!("one from probe {}", handle.peer),
            }));
        }
        let name = "fetch_evidence";
        let (id, mut rx, _guard) = self.open_call(name)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let req = Request {
            id,
            body: RequestBody::FetchEvidence {
                evidence_id: handle.evidence.id,
            },
        };
        self.send(&req, timeout)
            .await
            .map_err(|e| self.proto_err(e))?;
        let mut file: Option<(EvidenceFormat, u64, Vec<u8>)> = None;
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                () = tokio::time::sleep_until(deadline) => {
                    self.cancel_job(id).await;
                    let got = file.as_ref().map_or(0, |f| f.2.len());
                    return Err(self.proto_err(ProtoError::Timeout {
                        what: format!(
                            "evidence {} ({got} bytes received)",
                            handle.evidence.id
                        ),
                        after: timeout,
                    }));
                }
            };
            let bad = |why: String| {
                self.proto_err(ProtoError::Malformed(format!("evidence stream: {why}")))
            };
            match msg {
                Some(Incoming::Msg(ResponseBody::Evidence { format, bytes })) => {
                    if file.is_some() {
                        return Err(bad("a second header".into()));
                    }
                    if bytes > MAX_EVIDENCE as u64 {
                        return Err(bad(format!(
                            "{bytes} bytes exceed the {MAX_EVIDENCE}-byte limit"
                        )));
                    }
                    progress(EvidenceProgress {
                        received: 0,
                        total: bytes,
                    });
                    // Grow with what arrives rather than trusting the announced size.
                    let buf = Vec::with_capacity((bytes as usize).min(1 << 22));
                    file = Some((format, bytes, buf));
                }
                Some(Incoming::Chunk(c)) => {
                    let Some((format, total, buf)) = file.as_mut() else {
                        return Err(bad("a chunk before the header".into()));
                    };
                    if c.offset != buf.len() as u64 {
                        return Err(bad(format!(
                            "chunk at byte {}, expected byte {}",
                            c.offset,
                            buf.len()
                        )));
                    }
                    if buf.len() as u64 + c.data.len() as u64 > *total {
                        return Err(bad(format!("more than the {total} bytes announced")));
                    }
                    buf.extend_from_slice(&c.data);
                    progress(EvidenceProgress {
                        received: buf.len() as u64,
                        total: *total,
                    });
                    if buf.len() as u64 == *total {
                        return Ok(Evidence {
                            format: *format,
                            bytes: std::mem::take(buf),
                        });
                    }
                }
                Some(Incoming::Msg(ResponseBody::Error { error })) => {
                    return Err(ClientError::Remote {
                        peer: self.inner.peer.clone(),
                        request: name,
                        error: error.into_printable(),
                    });
                }
                Some(Incoming::Msg(other)) => return Err(self.unexpected("evidence", &other)),
                None => return Err(self.down(id, name)),
            }
        }
    }

    fn evidence_handle(&self, evidence: Option<EvidenceRef>) -> Option<EvidenceHandle> {
        evidence.map(|evidence| EvidenceHandle {
            evidence,
            peer: self.inner.peer.clone(),
        })
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
            ResponseBody::Info { info } => Ok(info.into_printable()),
            other => Err(self.unexpected("info", &other)),
        }
    }

    /// Plays a signature on the probe.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::audio`] gives the device failure.
    pub async fn play(&self, req: &PlayRequest) -> Result<PlayReport, ClientError> {
        self.play_with(req, Job::default()).await
    }

    /// [`AuthedClient::play`] as `job` says: cancelling its token asks the probe to stop
    /// early.
    ///
    /// # Errors
    /// As [`AuthedClient::play`].
    pub async fn play_with(
        &self,
        req: &PlayRequest,
        job: Job<'_>,
    ) -> Result<PlayReport, ClientError> {
        let t = req.length() + self.inner.config.margin;
        match self
            .call(RequestBody::Play(req.clone()), t, job.cancel, job.armed)
            .await?
        {
            ResponseBody::Played { report } => Ok(report),
            other => Err(self.unexpected("played", &other)),
        }
    }

    /// Records on the probe for `req.duration_ms`.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::audio`] gives the device failure.
    pub async fn record(&self, req: &RecordRequest) -> Result<Recording, ClientError> {
        self.record_with(req, Job::default()).await
    }

    /// [`AuthedClient::record`] as `job` says: cancelling its token stops the recording
    /// early; its `armed` sender is told as soon as the probe's device delivers audio (from
    /// a probe with [`super::msg::RECORD_ARMED`] in its features; an older probe never
    /// tells, and it is dropped unsent when the reply comes): the recording's time runs
    /// from then, so that is when to start the player.
    ///
    /// # Errors
    /// As [`AuthedClient::record`].
    pub async fn record_with(
        &self,
        req: &RecordRequest,
        job: Job<'_>,
    ) -> Result<Recording, ClientError> {
        let t = Duration::from_millis(req.duration_ms) + self.inner.config.margin;
        match self
            .call(RequestBody::Record(req.clone()), t, job.cancel, job.armed)
            .await?
        {
            ResponseBody::Recorded { report, evidence } => Ok(Recording {
                report,
                evidence: self.evidence_handle(evidence),
            }),
            other => Err(self.unexpected("recorded", &other)),
        }
    }

    /// Listens on the probe for a signature, up to `req.timeout_ms`.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::audio`] gives the device failure (e.g. `NoDevice`).
    pub async fn listen(&self, req: &ListenRequest) -> Result<Heard, ClientError> {
        self.listen_with(req, Job::default()).await
    }

    /// [`AuthedClient::listen`] as `job` says: cancelling its token stops listening early;
    /// its `armed` sender is told as soon as the probe's device delivers audio (from then
    /// on anything played on the path is heard, so that is when to start the player), and
    /// dropped unsent if the listen fails before.
    ///
    /// # Returns
    /// As soon as the probe has its verdict: the report, and with `req.evidence` an
    /// [`EvidenceHandle`] for [`AuthedClient::fetch_evidence`] (the recording does not
    /// travel with the verdict).
    ///
    /// # Errors
    /// As [`AuthedClient::listen`].
    pub async fn listen_with(
        &self,
        req: &ListenRequest,
        job: Job<'_>,
    ) -> Result<Heard, ClientError> {
        let t = Duration::from_millis(req.timeout_ms) + self.inner.config.margin;
        match self
            .call(RequestBody::Listen(req.clone()), t, job.cancel, job.armed)
            .await?
        {
            ResponseBody::Listened { report, evidence } => Ok(Heard {
                report: *report,
                evidence: self.evidence_handle(evidence),
            }),
            other => Err(self.unexpected("listened", &other)),
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
            ResponseBody::Cancelled { jobs } => Ok(jobs),
            other => Err(self.unexpected("cancelled", &other)),
        }
    }
}

/// Harness side of dial-out: listens for probes started with `earshot-probe connect` and
/// authenticates each as a client (the dialing probe is the protocol's server).
///
/// Handshakes run several at once, each as its own task, within a budget of their own
/// ([`super::admission`]): connections that open and say nothing are evicted by later
/// arrivals, so they cannot keep a probe out. A handshake in progress when an
/// [`ProbeListener::accept`] returns goes on and is taken by the next one; all end with the
/// listener.
#[derive(Debug)]
pub struct ProbeListener {
    listener: TcpListener,
    token: Option<Token>,
    config: ClientConfig,
    admission: Arc<super::admission::Admission>,
    /// Handshakes in progress; `None` from one a later arrival evicted.
    pending: tokio::sync::Mutex<tokio::task::JoinSet<Option<Result<AuthedClient, ClientError>>>>,
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
        use super::admission::{Admission, MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDR};
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
            admission: Admission::new(MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDR),
            pending: tokio::sync::Mutex::default(),
        })
    }

    /// The bound address (for `earshot-probe connect`).
    ///
    /// # Errors
    /// The socket's error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Waits up to `wait` for a probe that dials in and authenticates. A connection whose
    /// handshake fails is turned away (logged) and the wait goes on: whoever can reach the
    /// port cannot end it early.
    ///
    /// # Errors
    /// When no probe got in within `wait`: the last turned-away connection's error (a probe
    /// with another token, say), else a timeout.
    pub async fn accept(&self, wait: Duration) -> Result<AuthedClient, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        let here = self
            .listener
            .local_addr()
            .map_or_else(|_| "listener".to_string(), |a| a.to_string());
        let none_within = || ClientError::Proto {
            peer: here.clone(),
            error: ProtoError::Timeout {
                what: "a probe to dial in".into(),
                after: wait,
            },
        };
        let Ok(mut pending) = tokio::time::timeout_at(deadline, self.pending.lock()).await else {
            return Err(none_within());
        };
        let mut last = None;
        loop {
            tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((stream, peer)) => {
                        pending.spawn(self.handshake(stream, peer));
                    }
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!("accept failed on {here}: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = pending.join_next(), if !pending.is_empty() => match done {
                    Ok(Some(Ok(client))) => return Ok(client),
                    Ok(Some(Err(e))) => {
                        tracing::warn!("a probe dialing in on {here} was turned away: {e}");
                        last = Some(e);
                    }
                    Ok(None) | Err(_) => {}
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(last.unwrap_or_else(none_within));
                }
            }
        }
    }

    /// The handshake of a connection from `peer`, within the budget and its deadline
    /// ([`super::admission::HANDSHAKE_STEPS`] steps); `None` when a later arrival evicted it.
    fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = Option<Result<AuthedClient, ClientError>>> + Send + 'static
    {
        let ticket = self.admission.admit(peer.ip());
        let (token, config) = (self.token.clone(), self.config.clone());
        async move {
            let evicted = ticket.evicted();
            let deadline = config.handshake_timeout * super::admission::HANDSHAKE_STEPS;
            let handshake =
                AuthedClient::handshake(stream, peer.to_string(), token.as_ref(), &config);
            tokio::select! {
                r = tokio::time::timeout(deadline, handshake) => Some(r.unwrap_or_else(|_| {
                    Err(ClientError::Proto {
                        peer: peer.to_string(),
                        error: ProtoError::Timeout { what: "the handshake".into(), after: deadline },
                    })
                })),
                () = evicted => None,
            }
        }
    }
}

/// Reads sealed frames and hands each to the call it answers, until the connection ends;
/// returns why it ended.
async fn route_replies(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut opener: Opener,
    pending: &Pending,
) -> Down {
    loop {
        let (id, item) = match read_sealed(&mut rd, &mut opener).await {
            Ok(Some(Payload::Msg(body))) => match parse::<Response>(&body, "a reply") {
                Ok(r) => (r.id, Incoming::Msg(r.body)),
                Err(e) => return Down::Other(e.to_string()),
            },
            Ok(Some(Payload::Chunk(c))) => (c.id, Incoming::Chunk(c)),
            Ok(None) => return Down::Other("the probe closed the connection".into()),
            Err(ProtoError::Tampered { detail }) => return Down::Tampered(detail),
            Err(e) => return Down::Other(e.to_string()),
        };
        let tx = pending.lock().ok().and_then(|p| p.get(&id).cloned());
        if let Some(tx) = tx {
            // A call that gave up has dropped its receiver: fine.
            let _ = tx.send(item).await;
        }
    }
}
