//! The agent: serves authenticated protocol requests on a [`Handler`].
//!
//! The core is generic over [`Handler`] (blocking device operations) so it is tested with
//! a fake one and builds without cpal; [`device`] (feature `devices`) is the real one.
//!
//! - One task per connection, at most [`ServerConfig::max_connections`] (a semaphore);
//!   beyond that a connection is told `connection_limit` and closed.
//! - Nothing but the handshake before it succeeds, each step under
//!   [`ServerConfig::handshake_timeout`]; a connection with no job and no request for
//!   [`ServerConfig::idle_timeout`] is closed.
//! - Jobs run on `spawn_blocking`, several per connection; one job per device across the
//!   whole probe (a second gets `device_busy`); record/listen are bounded by
//!   [`ServerConfig::max_capture`]; each job is abandoned (and cancelled) past its bound.
//! - Shutdown (a [`CancellationToken`]): stop accepting, cancel running jobs, answer each
//!   with `shutting_down`, wait for connection tasks (bounded).
//! - Dial-out: [`Server::serve_dialed`] connects to a harness and serves that connection,
//!   same handshake, the probe still in the server role.
//! - After the handshake every frame is sealed ([`crate::proto::channel`]); a frame that
//!   does not authenticate ends the connection with [`ProtoError::Tampered`].
//! - Evidence ([`evidence`]): a job's recording is kept in bounded memory and its reply
//!   goes out at once with a reference; `fetch_evidence` streams the FLAC file as binary
//!   chunks, one at a time, so other replies on the connection overtake it.
//!
//! Size: about 1,000 lines, one reason: `impl Server` is one connection state machine
//! (handshake, dispatch, jobs, evidence, shutdown) over the same connection and job
//! tables; split by step, each part would take every field as a parameter. What stands
//! apart is in its own module: the device handler, evidence, host facts, the session.

#[cfg(feature = "devices")]
pub mod device;
pub mod evidence;
pub mod host_config;
pub mod rdp_connection;
pub mod session;
pub mod xrdp_ini;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audio::{AudioError, CancelFlag, ListenReport, PlayReport, RecordReport};
use crate::proto::auth::{reject, server_handshake, Token};
use crate::proto::channel::{read_sealed, seal_json, write_sealed, Payload, Sealer};
use crate::proto::frame::{parse, read_frame};
use crate::proto::msg::{
    ErrorCode, EvidenceRef, ListenRequest, PlayRequest, ProbeInfo, RecordRequest, RejectReason,
    RemoteError, Request, RequestBody, Response, ResponseBody,
};
use crate::proto::{ProtoError, EVIDENCE_CHUNK};
use crate::wav::Audio;
use evidence::EvidenceStore;

/// The blocking operations the agent serves. Each runs on a blocking thread and must
/// return within its own bound, and soon after `cancel` is set.
pub trait Handler: Send + Sync + 'static {
    /// Probe, host and session facts and the device catalogue (never fails as a whole).
    fn info(&self) -> ProbeInfo;
    /// Plays a signature.
    ///
    /// # Errors
    /// The device failure.
    fn play(&self, req: &PlayRequest, cancel: &CancelFlag) -> Result<PlayReport, AudioError>;
    /// Records for `req.duration_ms` of audio; the audio when `req.evidence`. Calls `armed`
    /// once the device delivers audio: the recording's time runs from then, and the
    /// harness starts the player then.
    ///
    /// # Errors
    /// The device failure.
    fn record(
        &self,
        req: &RecordRequest,
        cancel: &CancelFlag,
        armed: &(dyn Fn() + Send + Sync),
    ) -> Result<(RecordReport, Option<Audio>), AudioError>;
    /// Listens for a signature; the audio when `req.evidence`. Calls `armed` once the
    /// device delivers audio (the harness starts the player then).
    ///
    /// # Errors
    /// The device failure.
    fn listen(
        &self,
        req: &ListenRequest,
        cancel: &CancelFlag,
        armed: &(dyn Fn() + Send + Sync),
    ) -> Result<(ListenReport, Option<Audio>), AudioError>;
}

/// Limits and credentials of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted tokens (several while one is rotated out); empty only on loopback.
    pub tokens: Vec<Token>,
    /// Authenticated connections served at once.
    pub max_connections: usize,
    /// Handshakes in progress at once, apart from authenticated connections; a new
    /// connection over it evicts the oldest handshake in progress.
    pub max_handshakes: usize,
    /// Handshakes in progress at once from one address.
    pub max_handshakes_per_addr: usize,
    /// Bound on each handshake step.
    pub handshake_timeout: Duration,
    /// A connection without jobs or requests for this long is closed.
    pub idle_timeout: Duration,
    /// Longest record/listen accepted.
    pub max_capture: Duration,
    /// Added to a job's own duration to bound it (device start-up, catalogue).
    pub job_margin: Duration,
    /// Jobs in flight per connection.
    pub max_jobs_per_connection: usize,
    /// Bound on writing one reply frame to a slow client.
    pub write_timeout: Duration,
    /// How long shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
    /// Recordings kept for `fetch_evidence`, at most (the oldest is dropped first).
    pub evidence_max_count: usize,
    /// Bytes of samples (f32) kept for `fetch_evidence`, at most.
    pub evidence_max_bytes: usize,
    /// Bound on one `fetch_evidence` from start to last chunk.
    pub evidence_fetch_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            tokens: Vec::new(),
            max_connections: 64,
            max_handshakes: crate::proto::admission::MAX_HANDSHAKES,
            max_handshakes_per_addr: crate::proto::admission::MAX_HANDSHAKES_PER_ADDR,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            max_capture: Duration::from_secs(60),
            job_margin: Duration::from_secs(15),
            max_jobs_per_connection: 8,
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(3),
            evidence_max_count: 16,
            // Three 60 s stereo 48 kHz recordings.
            evidence_max_bytes: 72 * 1024 * 1024,
            evidence_fetch_timeout: Duration::from_secs(600),
        }
    }
}

/// Why the server could not start or a dialed connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Listening beyond loopback needs a token.
    #[error(
        "refusing to serve on non-loopback address {addr} without a token: give \
         --token-file or set EARSHOT_TOKEN (or listen on 127.0.0.1)"
    )]
    NonLoopbackWithoutToken {
        /// The address.
        addr: SocketAddr,
    },
    /// The listener failed.
    #[error("listener: {0}")]
    Io(std::io::Error),
    /// Dialing the harness failed.
    #[error("cannot dial {addr}: {error}")]
    Dial {
        /// Where.
        addr: String,
        /// The cause.
        error: std::io::Error,
    },
    /// The dialed connection's handshake or session failed.
    #[error("connection to {addr}: {error}")]
    Session {
        /// Peer.
        addr: String,
        /// The cause.
        error: ProtoError,
    },
}

// By hand rather than `#[from]`: the message already prints the cause, and a chained
// source would print it a second time under `{:#}`.
impl From<std::io::Error> for ServerError {
    fn from(e: std::io::Error) -> ServerError {
        ServerError::Io(e)
    }
}

/// Refuses a non-loopback `addr` without a token.
///
/// # Errors
/// [`ServerError::NonLoopbackWithoutToken`].
pub fn check_bind(addr: SocketAddr, tokens: &[Token]) -> Result<(), ServerError> {
    if tokens.is_empty() && !addr.ip().is_loopback() {
        return Err(ServerError::NonLoopbackWithoutToken { addr });
    }
    Ok(())
}

/// The agent's shared state.
pub struct Server<H: Handler> {
    handler: Arc<H>,
    config: ServerConfig,
    connections: Arc<Semaphore>,
    /// Devices with a job running, across all connections.
    busy: Arc<Mutex<HashMap<String, String>>>,
    /// Recordings waiting to be fetched, across all connections.
    evidence: Arc<Mutex<EvidenceStore>>,
    /// This server's instance ([`ProbeInfo::instance_id`]): random, new at every start.
    instance_id: String,
    /// Handshakes in progress, with their own budget.
    admission: Arc<crate::proto::admission::Admission>,
}

/// Releases a device when its job's blocking work really ends.
struct BusyGuard {
    map: Arc<Mutex<HashMap<String, String>>>,
    key: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&self.key);
        }
    }
}

/// A message from a job to its connection.
struct JobDone {
    id: u64,
    body: ResponseBody,
    /// A progress frame (e.g. `Armed`, the `evidence` header): sent, and the job goes on.
    progress: bool,
}

/// A piece of evidence from a fetch job; the last one ends the job.
struct JobChunk {
    id: u64,
    offset: u64,
    data: Vec<u8>,
    last: bool,
}

struct Conn {
    peer: String,
    wr: OwnedWriteHalf,
    sealer: Sealer,
    jobs: HashMap<u64, (CancelFlag, &'static str)>,
}

impl<H: Handler> Server<H> {
    /// A server for `handler`.
    pub fn new(handler: H, config: ServerConfig) -> Arc<Server<H>> {
        let admission = crate::proto::admission::Admission::new(
            config.max_handshakes,
            config.max_handshakes_per_addr,
        );
        Arc::new(Server {
            handler: Arc::new(handler),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            evidence: Arc::new(Mutex::new(EvidenceStore::new(
                config.evidence_max_bytes,
                config.evidence_max_count,
            ))),
            config,
            busy: Arc::default(),
            instance_id: new_instance_id(),
            admission,
        })
    }

    /// This server's instance id, as `info` reports it.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Serves `listener` until `shutdown` is cancelled, then stops jobs, answers requests
    /// in flight with `shutting_down`, and waits (bounded) for connections to close.
    ///
    /// # Errors
    /// [`ServerError::NonLoopbackWithoutToken`] before serving anything.
    pub async fn run(
        self: &Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        check_bind(listener.local_addr()?, &self.config.tokens)?;
        let tracker = TaskTracker::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((stream, peer)) => self.admit(&tracker, stream, peer, &shutdown),
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        tracker.close();
        if tokio::time::timeout(self.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} connection(s) still open after {} ms of shutdown; leaving them",
                tracker.len(),
                self.config.shutdown_grace.as_millis()
            );
        }
        Ok(())
    }

    /// Takes a new connection: its handshake runs within the handshake budget (a later
    /// arrival may evict it while it says nothing), and only an authenticated connection
    /// takes one of the `max_connections` places.
    fn admit(
        self: &Arc<Self>,
        tracker: &TaskTracker,
        mut stream: TcpStream,
        peer: SocketAddr,
        shutdown: &CancellationToken,
    ) {
        if self.connections.available_permits() == 0 {
            let step = self.config.handshake_timeout.min(Duration::from_secs(1));
            let max = self.config.max_connections;
            tracker.spawn(async move {
                tracing::warn!("refusing {peer}: connection limit {max} reached");
                let msg = format!("the probe serves its maximum of {max} connections");
                reject(&mut stream, RejectReason::ConnectionLimit, msg, step).await;
                // Read what the client sent (its hello) before closing, so the close
                // is not a reset that could discard our reason on its side.
                let _ = tokio::time::timeout(step, read_frame(&mut stream, 4096)).await;
            });
            return;
        }
        let ticket = self.admission.admit(peer.ip());
        let me = self.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let evicted = ticket.evicted();
            let who = peer.to_string();
            let authed = tokio::select! {
                r = me.authenticate(stream, &who, &shutdown) => r,
                () = evicted => {
                    tracing::info!("connection from {peer}: evicted before it authenticated");
                    return;
                }
            };
            drop(ticket);
            let (stream, sealer, opener) = match authed {
                Ok(Some(a)) => a,
                Ok(None) => return,
                Err(e) => {
                    tracing::info!("connection from {peer}: {e}");
                    return;
                }
            };
            // Taken only now: a connection that never authenticates holds no place.
            let Ok(_permit) = me.connections.clone().try_acquire_owned() else {
                tracing::warn!("closing {peer}: connection limit reached while it authenticated");
                return;
            };
            if let Err(e) = me
                .session(stream, peer.to_string(), sealer, opener, &shutdown)
                .await
            {
                tracing::info!("connection from {peer}: {e}");
            }
        });
    }

    /// Dials `addr` (the harness) and serves that one connection until it closes or
    /// `shutdown` is cancelled.
    ///
    /// # Errors
    /// [`ServerError::Dial`] or [`ServerError::Session`].
    pub async fn serve_dialed(
        self: &Arc<Self>,
        addr: &str,
        connect_timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<(), ServerError> {
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(error)) => {
                return Err(ServerError::Dial {
                    addr: addr.to_string(),
                    error,
                })
            }
            Err(_) => {
                return Err(ServerError::Dial {
                    addr: addr.to_string(),
                    error: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {} ms", connect_timeout.as_millis()),
                    ),
                })
            }
        };
        self.serve_stream(stream, addr.to_string(), shutdown)
            .await
            .map_err(|error| ServerError::Session {
                addr: addr.to_string(),
                error,
            })
    }

    /// Authenticates `stream` as the server, then serves its requests.
    ///
    /// # Errors
    /// The handshake's or the session's [`ProtoError`]; a clean close is `Ok`.
    pub async fn serve_stream(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: String,
        shutdown: &CancellationToken,
    ) -> Result<(), ProtoError> {
        match self.authenticate(stream, &peer, shutdown).await? {
            Some((stream, sealer, opener)) => {
                self.session(stream, peer, sealer, opener, shutdown).await
            }
            None => Ok(()),
        }
    }

    /// The server side of the handshake on `stream`, within its deadline (every step
    /// bounded, and the whole at most [`crate::proto::admission::HANDSHAKE_STEPS`] steps);
    /// `None` when shutdown came first (the peer is told).
    async fn authenticate(
        self: &Arc<Self>,
        mut stream: TcpStream,
        peer: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<(TcpStream, Sealer, crate::proto::channel::Opener)>, ProtoError> {
        let _ = stream.set_nodelay(true);
        limit_unsent(&stream);
        let step = self.config.handshake_timeout;
        let deadline = step * crate::proto::admission::HANDSHAKE_STEPS;
        let established = tokio::select! {
            r = tokio::time::timeout(deadline, server_handshake(&mut stream, &self.config.tokens, step)) => match r {
                Ok(r) => r?,
                Err(_) => return Err(ProtoError::Timeout {
                    what: "the handshake".into(),
                    after: deadline,
                }),
            },
            () = shutdown.cancelled() => {
                reject(&mut stream, RejectReason::ShuttingDown, "the probe is shutting down".into(), step).await;
                return Ok(None);
            }
        };
        tracing::info!("{peer} authenticated ({})", established.peer_agent);
        let (sealer, opener) = established.keys.server();
        Ok(Some((stream, sealer, opener)))
    }

    async fn session(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: String,
        sealer: Sealer,
        mut opener: crate::proto::channel::Opener,
        shutdown: &CancellationToken,
    ) -> Result<(), ProtoError> {
        let (mut rd, wr) = stream.into_split();
        // Reading on its own task keeps frames whole: select! may drop a read midway.
        let (req_tx, mut req_rx) = mpsc::channel::<Result<Vec<u8>, ProtoError>>(4);
        let reader = tokio::spawn(async move {
            loop {
                let r = read_sealed(&mut rd, &mut opener).await;
                let item = match r {
                    Ok(Some(Payload::Msg(b))) => Ok(b),
                    Ok(Some(Payload::Chunk(_))) => Err(ProtoError::Malformed(
                        "a binary chunk from the client (only the probe sends evidence)".into(),
                    )),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                let stop = item.is_err();
                if req_tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        let (done_tx, mut done_rx) = mpsc::channel::<JobDone>(8);
        // One chunk at a time: a reply to another request waits behind one chunk at most.
        let (chunk_tx, mut chunk_rx) = mpsc::channel::<JobChunk>(1);
        let mut conn = Conn {
            peer,
            wr,
            sealer,
            jobs: HashMap::new(),
        };
        let idle = self.config.idle_timeout;
        let mut idle_at = tokio::time::Instant::now() + idle;
        let result = loop {
            tokio::select! {
                // Replies and requests first; evidence chunks only when nothing else waits.
                biased;
                () = shutdown.cancelled() => {
                    let ids: Vec<u64> = conn.jobs.keys().copied().collect();
                    for id in ids {
                        if let Some((flag, name)) = conn.jobs.remove(&id) {
                            flag.cancel();
                            let e = RemoteError::new(
                                ErrorCode::ShuttingDown,
                                format!("the probe is shutting down; {name} request {id} was stopped"),
                            );
                            let _ = self.reply(&mut conn, id, ResponseBody::Error { error: e }).await;
                        }
                    }
                    break Ok(());
                }
                frame = req_rx.recv() => {
                    idle_at = tokio::time::Instant::now() + idle;
                    match frame {
                        None => break Ok(()),
                        Some(Err(e)) => break Err(e),
                        Some(Ok(body)) => {
                            if let Err(e) = self.request(&mut conn, &body, &done_tx, &chunk_tx).await {
                                break Err(e);
                            }
                        }
                    }
                }
                Some(done) = done_rx.recv() => {
                    idle_at = tokio::time::Instant::now() + idle;
                    if done.progress {
                        if conn.jobs.contains_key(&done.id) {
                            if let Err(e) = self.reply(&mut conn, done.id, done.body).await {
                                break Err(e);
                            }
                        }
                        continue;
                    }
                    // A job already answered (cancelled at shutdown) is not answered twice.
                    if conn.jobs.remove(&done.id).is_some() {
                        if let Err(e) = self.reply(&mut conn, done.id, done.body).await {
                            break Err(e);
                        }
                    }
                }
                Some(chunk) = chunk_rx.recv() => {
                    idle_at = tokio::time::Instant::now() + idle;
                    if conn.jobs.contains_key(&chunk.id) {
                        if chunk.last {
                            conn.jobs.remove(&chunk.id);
                        }
                        if let Err(e) = self.send_chunk(&mut conn, chunk).await {
                            break Err(e);
                        }
                    }
                }
                () = tokio::time::sleep_until(idle_at), if conn.jobs.is_empty() => {
                    tracing::info!("{}: idle for {} s, closing", conn.peer, idle.as_secs());
                    break Ok(());
                }
            }
        };
        // However the session ends, stop its streams.
        for (flag, _) in conn.jobs.values() {
            flag.cancel();
        }
        reader.abort();
        result
    }

    /// Reserves a device for one job, or says who holds it.
    fn reserve(&self, key: String, holder: String) -> Result<BusyGuard, String> {
        let mut busy = self
            .busy
            .lock()
            .map_err(|_| "the probe's device table is unusable (a job panicked)".to_string())?;
        if let Some(h) = busy.get(&key) {
            return Err(format!(
                "device {key} is busy: {h} is running on it; one job per device at a time"
            ));
        }
        busy.insert(key.clone(), holder);
        Ok(BusyGuard {
            map: self.busy.clone(),
            key,
        })
    }

    async fn reply(&self, conn: &mut Conn, id: u64, body: ResponseBody) -> Result<(), ProtoError> {
        let t = self.config.write_timeout;
        let frame = seal_json(&mut conn.sealer, &Response { id, body })?;
        crate::proto::within(
            t,
            || format!("{} to read the reply to request {id}", conn.peer),
            write_sealed(&mut conn.wr, &frame),
        )
        .await
    }

    async fn send_chunk(&self, conn: &mut Conn, chunk: JobChunk) -> Result<(), ProtoError> {
        let t = self.config.write_timeout;
        let frame = conn
            .sealer
            .seal_chunk(chunk.id, chunk.offset, &chunk.data)?;
        crate::proto::within(
            t,
            || {
                format!(
                    "{} to read evidence of request {} at byte {}",
                    conn.peer, chunk.id, chunk.offset
                )
            },
            write_sealed(&mut conn.wr, &frame),
        )
        .await
    }

    /// Starts streaming evidence `evidence_id` as request `id`: the encoding runs on a
    /// blocking thread, then the header and the chunks go to the connection's loop.
    fn fetch(
        &self,
        conn: &mut Conn,
        id: u64,
        evidence_id: u64,
        done_tx: &mpsc::Sender<JobDone>,
        chunk_tx: &mpsc::Sender<JobChunk>,
    ) -> Result<(), RemoteError> {
        let kept = {
            let store = self.evidence.lock().map_err(|_| {
                RemoteError::new(ErrorCode::Internal, "the evidence store is unusable")
            })?;
            store.get(evidence_id).ok_or_else(|| {
                let (count, bytes) = store.caps();
                RemoteError::new(
                    ErrorCode::EvidenceGone,
                    format!(
                        "evidence {evidence_id} is no longer held (the probe keeps its latest \
                         {count} recordings within {} MB, and none across a restart)",
                        bytes / 1_000_000
                    ),
                )
            })?
        };
        let flag = CancelFlag::new();
        conn.jobs.insert(id, (flag.clone(), "fetch_evidence"));
        let (done_tx, chunk_tx) = (done_tx.clone(), chunk_tx.clone());
        let bound = self.config.evidence_fetch_timeout;
        tokio::spawn(async move {
            let stream = async {
                let encoded = tokio::task::spawn_blocking(move || evidence::encode(&kept))
                    .await
                    .map_err(|e| format!("encoding panicked: {e}"))?
                    .map_err(|e| format!("encoding the evidence: {e}"))?;
                let (format, bytes) = encoded;
                if bytes.is_empty() {
                    return Err("the encoder produced no bytes".to_string());
                }
                let header = JobDone {
                    id,
                    body: ResponseBody::Evidence {
                        format,
                        bytes: bytes.len() as u64,
                    },
                    progress: true,
                };
                done_tx
                    .send(header)
                    .await
                    .map_err(|_| "the connection ended".to_string())?;
                let n = bytes.len().div_ceil(EVIDENCE_CHUNK);
                for (i, piece) in bytes.chunks(EVIDENCE_CHUNK).enumerate() {
                    if flag.is_cancelled() {
                        return Err(format!(
                            "fetch_evidence request {id} was cancelled at byte {}",
                            i * EVIDENCE_CHUNK
                        ));
                    }
                    let chunk = JobChunk {
                        id,
                        offset: (i * EVIDENCE_CHUNK) as u64,
                        data: piece.to_vec(),
                        last: i + 1 == n,
                    };
                    chunk_tx
                        .send(chunk)
                        .await
                        .map_err(|_| "the connection ended".to_string())?;
                }
                Ok(())
            };
            let error = match tokio::time::timeout(bound, stream).await {
                Ok(Ok(())) => return,
                Ok(Err(why)) => RemoteError::new(ErrorCode::Internal, why),
                Err(_) => RemoteError::new(
                    ErrorCode::Timeout,
                    format!(
                        "fetch_evidence request {id} did not finish within {} s",
                        bound.as_secs()
                    ),
                ),
            };
            let _ = done_tx
                .send(JobDone {
                    id,
                    body: ResponseBody::Error { error },
                    progress: false,
                })
                .await;
        });
        Ok(())
    }

    async fn request(
        self: &Arc<Self>,
        conn: &mut Conn,
        body: &[u8],
        done_tx: &mpsc::Sender<JobDone>,
        chunk_tx: &mpsc::Sender<JobChunk>,
    ) -> Result<(), ProtoError> {
        let req: Request = match parse(body, "a request") {
            Ok(r) => r,
            Err(e) => {
                // Answer with the id if one can be read, then carry on: the frame
                // boundary is intact, only this message is bad.
                let id = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
                    .unwrap_or(0);
                let error = RemoteError::new(ErrorCode::BadRequest, e.to_string());
                return self.reply(conn, id, ResponseBody::Error { error }).await;
            }
        };
        let id = req.id;
        let bad = |msg: String| ResponseBody::Error {
            error: RemoteError::new(ErrorCode::BadRequest, msg),
        };
        if let RequestBody::Cancel { target } = req.body {
            let mut n = 0;
            for (jid, (flag, _)) in &conn.jobs {
                if target.is_none() || target == Some(*jid) {
                    flag.cancel();
                    n += 1;
                }
            }
            return self
                .reply(conn, id, ResponseBody::Cancelled { jobs: n })
                .await;
        }
        if conn.jobs.contains_key(&id) {
            return self
                .reply(conn, id, bad(format!("request id {id} is already running")))
                .await;
        }
        if conn.jobs.len() >= self.config.max_jobs_per_connection {
            let msg = format!(
                "{} jobs already running on this connection (the maximum)",
                conn.jobs.len()
            );
            return self.reply(conn, id, bad(msg)).await;
        }
        if let RequestBody::FetchEvidence { evidence_id } = req.body {
            return match self.fetch(conn, id, evidence_id, done_tx, chunk_tx) {
                Ok(()) => Ok(()),
                Err(error) => self.reply(conn, id, ResponseBody::Error { error }).await,
            };
        }
        let max_ms = self.config.max_capture.as_millis() as u64;
        let (duration, device) = match &req.body {
            RequestBody::Info => (Duration::ZERO, None),
            RequestBody::Play(p) => (p.length(), Some(format!("output `{}`", p.device))),
            RequestBody::Record(r) => (
                Duration::from_millis(r.duration_ms),
                Some(format!("input `{}`", r.device)),
            ),
            RequestBody::Listen(l) => (
                Duration::from_millis(l.timeout_ms),
                Some(format!("input `{}`", l.device)),
            ),
            RequestBody::Cancel { .. } | RequestBody::FetchEvidence { .. } => {
                (Duration::ZERO, None)
            }
        };
        let long_play = matches!(&req.body, RequestBody::Play(p) if p.continuity_ms.is_some());
        if (long_play || matches!(req.body, RequestBody::Record(_) | RequestBody::Listen(_)))
            && (duration.is_zero() || duration > self.config.max_capture)
        {
            let msg = format!(
                "{} of {} ms is outside 1..={max_ms} ms (the probe's maximum capture)",
                req.body.name(),
                duration.as_millis()
            );
            return self.reply(conn, id, bad(msg)).await;
        }
        let guard = match device {
            None => None,
            Some(key) => match self.reserve(
                key,
                format!("{} request {id} from {}", req.body.name(), conn.peer),
            ) {
                Ok(g) => Some(g),
                Err(msg) => {
                    let error = RemoteError::new(ErrorCode::DeviceBusy, msg);
                    return self.reply(conn, id, ResponseBody::Error { error }).await;
                }
            },
        };
        let flag = CancelFlag::new();
        conn.jobs.insert(id, (flag.clone(), req.body.name()));
        let bound = duration + self.config.job_margin;
        let handler = self.handler.clone();
        let store = self.evidence.clone();
        let done_tx = done_tx.clone();
        let name = req.body.name();
        let instance = self.instance_id.clone();
        tokio::spawn(async move {
            let f2 = flag.clone();
            let progress = done_tx.clone();
            let work = tokio::task::spawn_blocking(move || {
                // The device stays reserved until the blocking work really returns.
                let _guard = guard;
                let armed = move || {
                    // Never blocks the device loop: a full queue only loses the progress note.
                    let _ = progress.try_send(JobDone {
                        id,
                        body: ResponseBody::Armed,
                        progress: true,
                    });
                };
                let keep = |audio: Audio, sample_format: &str| -> Option<EvidenceRef> {
                    let kept = store.lock().ok()?.keep(audio, sample_format);
                    if kept.is_none() {
                        tracing::warn!(
                            "{name} request {id}: the recording exceeds the evidence cap; not kept"
                        );
                    }
                    kept
                };
                run_job(&*handler, req.body, &f2, &armed, &keep)
            });
            let body = match tokio::time::timeout(bound, work).await {
                // The instance is the server's, whatever the handler says: two addresses
                // that reach one server must show one id.
                Ok(Ok(ResponseBody::Info { mut info })) => {
                    info.instance_id = instance;
                    ResponseBody::Info { info }
                }
                Ok(Ok(body)) => body,
                Ok(Err(e)) => ResponseBody::Error {
                    error: RemoteError::new(
                        ErrorCode::Internal,
                        format!("{name} request {id} failed inside the probe: {e}"),
                    ),
                },
                Err(_) => {
                    flag.cancel();
                    ResponseBody::Error {
                        error: RemoteError::new(
                            ErrorCode::Timeout,
                            format!(
                                "{name} request {id} did not finish within {} ms; it was cancelled",
                                bound.as_millis()
                            ),
                        ),
                    }
                }
            };
            let _ = done_tx
                .send(JobDone {
                    id,
                    body,
                    progress: false,
                })
                .await;
        });
        Ok(())
    }
}

/// Keeps a recording as evidence (the device's sample format decides the bit depth).
type Keep<'a> = &'a (dyn Fn(Audio, &str) -> Option<EvidenceRef> + Send + Sync);

fn run_job<H: Handler + ?Sized>(
    h: &H,
    body: RequestBody,
    cancel: &CancelFlag,
    armed: &(dyn Fn() + Send + Sync),
    keep: Keep<'_>,
) -> ResponseBody {
    let err = |error: RemoteError| ResponseBody::Error { error };
    match body {
        RequestBody::Info => ResponseBody::Info {
            info: Box::new(h.info()),
        },
        RequestBody::Play(p) => match h.play(&p, cancel) {
            Ok(report) => ResponseBody::Played { report },
            Err(e) => err(e.into()),
        },
        RequestBody::Record(r) => match h.record(&r, cancel, armed) {
            Ok((report, audio)) => {
                let evidence = audio
                    .filter(|_| r.evidence)
                    .and_then(|a| keep(a, &report.format.sample_format));
                ResponseBody::Recorded { report, evidence }
            }
            Err(e) => err(e.into()),
        },
        RequestBody::Listen(l) => match h.listen(&l, cancel, armed) {
            Ok((report, audio)) => {
                let evidence = audio
                    .filter(|_| l.evidence)
                    .and_then(|a| keep(a, &report.format.sample_format));
                ResponseBody::Listened {
                    report: Box::new(report),
                    evidence,
                }
            }
            Err(e) => err(e.into()),
        },
        RequestBody::Cancel { .. } | RequestBody::FetchEvidence { .. } => err(RemoteError::new(
            ErrorCode::Internal,
            format!("{} is not a device job", body.name()),
        )),
    }
}

/// Unsent bytes the kernel may queue on a connection before a write waits.
const UNSENT_LOWAT: usize = 128 * 1024;

/// Keeps the kernel's queue of unsent bytes short (`TCP_NOTSENT_LOWAT`), so a reply sent
/// while evidence streams waits behind at most this much plus one chunk, not behind a send
/// buffer that autotuning grew to megabytes: on a 1 Mbit/s link that is 1.5 s instead of
/// tens of seconds. Throughput is unaffected: the window still grows. Best effort, Linux
/// and macOS.
fn limit_unsent(stream: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        use std::os::fd::AsRawFd;
        let v = UNSENT_LOWAT as libc::c_int;
        // SAFETY: the descriptor is a live socket for the duration of the call; the value
        // is a c_int and its size is passed with it.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(
                "TCP_NOTSENT_LOWAT not set: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    let _ = (stream, UNSENT_LOWAT);
}

/// Facts every handler reports the same way (version, host name, OS, session).
pub fn base_info(max_capture: Duration) -> ProbeInfo {
    ProbeInfo {
        instance_id: String::new(),
        probe_version: crate::VERSION.to_string(),
        protocol_version: crate::proto::PROTOCOL_VERSION,
        hostname: hostname(),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        audio_host: Err(AudioError {
            kind: crate::audio::AudioErrorKind::HostUnavailable,
            message: "no audio backend in this build".into(),
        }),
        session: session::detect(),
        devices: Ok(Vec::new()),
        max_capture_ms: max_capture.as_millis() as u64,
        now_unix_ms: crate::unix_ms(),
        xrdp: None,
        host_config: None,
        primed_input: None,
        primed_inputs: Vec::new(),
        features: vec![
            crate::signal::continuity::FEATURE.to_string(),
            crate::signal::quality::FEATURE.to_string(),
            crate::signal::speech::FEATURE.to_string(),
            crate::proto::msg::RECORD_ARMED.to_string(),
        ],
    }
}

/// A fresh instance id: 64 random bits in hex.
fn new_instance_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn hostname() -> String {
    // No extra dependency: the kernel's name on Linux, the environment elsewhere.
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Unused-set helper kept private: the device keys in use (for tests).
#[cfg(test)]
impl<H: Handler> Server<H> {
    fn busy_devices(&self) -> std::collections::HashSet<String> {
        self.busy
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
