//! Tests of the server core with a fake handler: the protocol, its security properties,
//! limits, cancellation, shutdown and dial-out, over real loopback TCP.
//!
//! Size: about 1,600 lines of tests that share one fake handler and its helpers, so they
//! stay in one file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::audio::{
    AudioErrorKind, DeviceDirection, DeviceInfo, DeviceSelector, StreamFormat, StreamHealth,
};
use crate::proto::auth::{client_handshake, Token};
use crate::proto::channel::{read_sealed, seal_json, Opener, Payload, Sealer, MAX_SEALED};
use crate::proto::client::{Client, ClientConfig, Job, ProbeListener};
use crate::proto::frame::{encode, read_frame};
use crate::proto::msg::{EvidenceFormat, Handshake, SessionKind};
use crate::signal::{Direction, Signature};

/// Plays nothing; "hears" a rendered signature after `listen_delay`; records a sine.
struct Fake {
    infos: AtomicUsize,
    jobs: AtomicUsize,
    listen_delay: Duration,
    /// Whether jobs ignore cancellation (a device that stalls).
    stubborn: bool,
}

impl Fake {
    fn new(listen_delay: Duration) -> Fake {
        Fake {
            infos: AtomicUsize::new(0),
            jobs: AtomicUsize::new(0),
            listen_delay,
            stubborn: false,
        }
    }
}

fn device(id: &str, direction: DeviceDirection) -> DeviceInfo {
    DeviceInfo {
        id: id.into(),
        name: id.into(),
        direction,
        is_default: true,
        is_monitor: false,
        default_format: None,
    }
}

fn format(rate: u32, channels: u16) -> StreamFormat {
    StreamFormat {
        sample_rate_hz: rate,
        channels,
        sample_format: "f32".into(),
    }
}

/// Waits up to `d` or until cancelled; returns whether it was cancelled.
fn wait(d: Duration, cancel: &CancelFlag, stubborn: bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        if cancel.is_cancelled() && !stubborn {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

impl Handler for Fake {
    fn info(&self) -> ProbeInfo {
        self.infos.fetch_add(1, Ordering::SeqCst);
        let mut i = base_info(Duration::from_secs(60));
        // Distinctive, so a test can look for it on the wire.
        i.hostname = "studio-pc-4711".into();
        i.audio_host = Ok("Fake".into());
        i.devices = Err(AudioError {
            kind: AudioErrorKind::HostUnavailable,
            message: "no server".into(),
        });
        i
    }

    fn play(&self, req: &PlayRequest, cancel: &CancelFlag) -> Result<PlayReport, AudioError> {
        self.jobs.fetch_add(1, Ordering::SeqCst);
        if let DeviceSelector::Match(m) = &req.device {
            if m == "none" {
                return Err(AudioError {
                    kind: AudioErrorKind::NoDevice,
                    message: "the host has no output device".into(),
                });
            }
        }
        let d = Signature::new(req.seed, req.direction).duration();
        wait(d, cancel, self.stubborn);
        Ok(PlayReport {
            device: device("fake:out", DeviceDirection::Output),
            format: format(48_000, 2),
            played_ms: d.as_secs_f64() * 1000.0,
            started_unix_ms: 0.0,
            health: StreamHealth::default(),
            output_state: None,
        })
    }

    fn record(
        &self,
        req: &RecordRequest,
        cancel: &CancelFlag,
        armed: &(dyn Fn() + Send + Sync),
    ) -> Result<(RecordReport, Option<Audio>), AudioError> {
        self.jobs.fetch_add(1, Ordering::SeqCst);
        armed();
        let d = Duration::from_millis(req.duration_ms);
        wait(d, cancel, self.stubborn);
        let rate = 48_000;
        // Device "noisy": 10 s of noise at once, which FLAC cannot shrink much.
        let noisy = matches!(&req.device, DeviceSelector::Match(m) if m == "noisy");
        let frames = if noisy {
            10 * rate as usize
        } else {
            (d.as_secs_f64() * f64::from(rate)) as usize
        };
        let mut x = 0x9e37_79b9u32;
        let samples = (0..frames * 2)
            .map(|i| {
                if noisy {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x as f32 / u32::MAX as f32 - 0.5) * 0.2
                } else {
                    (i as f32 * 0.01).sin() * 0.5
                }
            })
            .collect();
        Ok((
            RecordReport {
                continuity: None,
                quality: None,
                device: device("fake:in", DeviceDirection::Input),
                format: format(rate, 2),
                recorded_ms: d.as_secs_f64() * 1000.0,
                health: StreamHealth::default(),
                speech: None,
            },
            Some(Audio {
                sample_rate_hz: rate,
                channels: 2,
                samples,
            }),
        ))
    }

    fn listen(
        &self,
        req: &ListenRequest,
        cancel: &CancelFlag,
        armed: &(dyn Fn() + Send + Sync),
    ) -> Result<(ListenReport, Option<Audio>), AudioError> {
        self.jobs.fetch_add(1, Ordering::SeqCst);
        armed();
        let limit = Duration::from_millis(req.timeout_ms);
        let d = if self.stubborn {
            self.listen_delay
        } else {
            self.listen_delay.min(limit)
        };
        let cancelled = wait(d, cancel, self.stubborn);
        let sig = Signature::new(req.seed, req.direction);
        // Real detection on a rendered signature when the "sound" arrived in time.
        let heard = !cancelled && self.listen_delay <= limit;
        let rate = 16_000;
        let mut samples = vec![0.0f32; 4000];
        if heard {
            samples.extend(sig.render(rate).map_err(|e| AudioError {
                kind: AudioErrorKind::UnsupportedFormat,
                message: e.to_string(),
            })?);
        }
        samples.extend(vec![0.0f32; 4000]);
        let analysis = crate::analysis::analyze(&samples, rate, &sig).map_err(|e| AudioError {
            kind: AudioErrorKind::Backend,
            message: e.to_string(),
        })?;
        Ok((
            ListenReport {
                device: device("fake:in", DeviceDirection::Input),
                format: format(rate, 1),
                analysis,
                channel: 0,
                elapsed_ms: 0.0,
                armed_ms: Some(0.0),
                onset_unix_ms: None,
                verdict_unix_ms: 0.0,
                stopped_early: heard,
                cancelled: false,
                health: StreamHealth::default(),
            },
            Some(Audio::mono(rate, samples)),
        ))
    }
}

fn token() -> Token {
    Token::new("test-token-0123456789", "test").unwrap()
}

fn config() -> ServerConfig {
    ServerConfig {
        tokens: vec![token()],
        handshake_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(2),
        info_timeout: Duration::from_secs(5),
        margin: Duration::from_secs(5),
    }
}

struct Running {
    addr: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
    server: Arc<Server<Fake>>,
}

async fn start(fake: Fake, cfg: ServerConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = Server::new(fake, cfg);
    let shutdown = CancellationToken::new();
    let (s, sd) = (server.clone(), shutdown.clone());
    let task = tokio::spawn(async move { s.run(listener, sd).await });
    Running {
        addr,
        shutdown,
        task,
        server,
    }
}

async fn connect(addr: &str) -> crate::proto::client::AuthedClient {
    Client::connect(addr, Some(&token()), &client_config())
        .await
        .unwrap()
}

fn listen_req(device: &str, timeout_ms: u64, evidence: bool) -> ListenRequest {
    ListenRequest {
        device: DeviceSelector::parse(device),
        seed: 42,
        direction: Direction::Output,
        timeout_ms,
        evidence,
    }
}

/// Reads one handshake message on a raw stream (test side).
async fn raw_read(s: &mut TcpStream) -> Option<Handshake> {
    let body = tokio::time::timeout(Duration::from_secs(3), read_frame(s, 1 << 20))
        .await
        .expect("the server answers in time")
        .ok()??;
    serde_json::from_slice(&body).ok()
}

async fn raw_send(s: &mut TcpStream, v: &serde_json::Value) {
    let body = serde_json::to_vec(v).unwrap();
    s.write_all(&encode(&body, 1 << 20).unwrap()).await.unwrap();
}

/// A raw authenticated connection with its channel halves (test side).
async fn sealed_session(addr: &str) -> (TcpStream, Sealer, Opener) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let e = client_handshake(&mut s, Some(&token()), Duration::from_secs(2))
        .await
        .unwrap();
    let (sealer, opener) = e.keys.client();
    (s, sealer, opener)
}

async fn sealed_send(s: &mut TcpStream, sealer: &mut Sealer, v: &serde_json::Value) {
    s.write_all(&seal_json(sealer, v).unwrap()).await.unwrap();
}

async fn sealed_read(s: &mut TcpStream, opener: &mut Opener) -> Response {
    let p = tokio::time::timeout(Duration::from_secs(3), read_sealed(s, opener))
        .await
        .expect("the server answers in time")
        .unwrap()
        .unwrap();
    match p {
        Payload::Msg(b) => serde_json::from_slice(&b).unwrap(),
        Payload::Chunk(c) => panic!("a chunk where a reply was expected: {c:?}"),
    }
}

/// Whether the server closes `s` within `within` (EOF or reset, after any pending data).
async fn closes_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn info_play_record_listen_round_trip_with_chunked_evidence() {
    let r = start(Fake::new(Duration::from_millis(50)), config()).await;
    let c = connect(&r.addr).await;
    assert!(c.server_agent().starts_with("earshot-probe/"));

    let info = c.info().await.unwrap();
    assert_eq!(info.protocol_version, crate::proto::PROTOCOL_VERSION);
    assert_eq!(info.audio_host.as_deref().unwrap(), "Fake");
    assert_eq!(
        info.devices.unwrap_err().kind,
        AudioErrorKind::HostUnavailable
    );
    assert_ne!(info.session.kind, SessionKind::Local, "{:?}", info.session);

    let played = c
        .play(&PlayRequest {
            continuity_ms: None,
            quality: false,
            device: DeviceSelector::Default,
            seed: 1,
            direction: Direction::Output,
            speech: false,
        })
        .await
        .unwrap();
    assert_eq!(played.device.id, "fake:out");

    // 1 s of 48 kHz stereo: the reply carries a handle; the FLAC comes in binary chunks.
    let rec = c
        .record(&RecordRequest {
            continuity: false,
            quality: false,
            device: DeviceSelector::Default,
            duration_ms: 1000,
            evidence: true,
            speech: false,
        })
        .await
        .unwrap();
    let handle = rec.evidence.expect("evidence was asked for");
    assert_eq!(
        (
            handle.evidence.sample_rate_hz,
            handle.evidence.channels,
            handle.evidence.frames,
            handle.evidence.bits_per_sample
        ),
        (48_000, 2, 48_000, 24)
    );
    let mut seen = Vec::new();
    let ev = c
        .fetch_evidence(&handle, Duration::from_secs(10), |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(ev.format, EvidenceFormat::Flac);
    assert!(ev.bytes.len() > EVIDENCE_CHUNK, "{} bytes", ev.bytes.len());
    let (info, samples) = decode_flac(&ev.bytes);
    assert_eq!((info.sample_rate, info.channels), (48_000, 2));
    assert_eq!(samples.len(), 96_000);
    let want = (100.0f32 * 0.01).sin() * 0.5;
    assert!((samples[100] as f32 / 8_388_608.0 - want).abs() < 1e-6);
    // Progress: the size first, then every chunk, ending at the whole file.
    let total = ev.bytes.len() as u64;
    assert_eq!(
        seen.first().map(|p| (p.received, p.total)),
        Some((0, total))
    );
    assert_eq!(seen.last().map(|p| p.received), Some(total));
    assert_eq!(seen.len(), 1 + ev.bytes.len().div_ceil(EVIDENCE_CHUNK));
    // A second fetch of the same evidence gives the same file.
    let again = c
        .fetch_evidence(&handle, Duration::from_secs(10), |_| {})
        .await
        .unwrap();
    assert_eq!(again, ev);

    let heard = c.listen(&listen_req("default", 2000, false)).await.unwrap();
    assert!(heard.report.analysis.detected);
    assert!(heard.evidence.is_none());
    let silent = c.listen(&listen_req("default", 20, true)).await.unwrap();
    assert!(!silent.report.analysis.detected);
    let h = silent.evidence.unwrap();
    let ev = c
        .fetch_evidence(&h, Duration::from_secs(10), |_| {})
        .await
        .unwrap();
    assert_eq!(decode_flac(&ev.bytes).1.len() as u64, h.evidence.frames);
}

/// Decodes FLAC evidence with an independent decoder (claxon).
fn decode_flac(bytes: &[u8]) -> (claxon::metadata::StreamInfo, Vec<i32>) {
    let mut r = claxon::FlacReader::new(std::io::Cursor::new(bytes)).unwrap();
    let info = r.streaminfo();
    let samples = r.samples().map(Result::unwrap).collect();
    (info, samples)
}

#[tokio::test]
async fn device_errors_keep_their_kind() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let c = connect(&r.addr).await;
    let e = c
        .play(&PlayRequest {
            continuity_ms: None,
            quality: false,
            device: DeviceSelector::parse("none"),
            seed: 1,
            direction: Direction::Output,
            speech: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.audio().unwrap().kind, AudioErrorKind::NoDevice, "{e}");
    assert!(e.to_string().contains("no output device"), "{e}");
}

#[tokio::test]
async fn no_auth_nothing_but_the_handshake_is_served() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let mut s = TcpStream::connect(&r.addr).await.unwrap();
    raw_send(&mut s, &serde_json::json!({"id": 1, "type": "info"})).await;
    match raw_read(&mut s).await {
        Some(Handshake::Reject { reason, .. }) => assert_eq!(reason, RejectReason::Protocol),
        other => panic!("expected a reject, got {other:?}"),
    }
    assert!(closes_within(&mut s, Duration::from_secs(2)).await);
    assert_eq!(r.server.handler.infos.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wrong_token_is_refused_and_no_token_too() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let wrong = Token::new("another-token-987654321", "test").unwrap();
    let e = Client::connect(&r.addr, Some(&wrong), &client_config())
        .await
        .unwrap_err();
    assert!(matches!(e.proto(), Some(ProtoError::AuthFailed(_))), "{e}");
    assert!(e.to_string().contains(&r.addr), "names the probe: {e}");
    let e = Client::connect(&r.addr, None, &client_config())
        .await
        .unwrap_err();
    assert!(matches!(e.proto(), Some(ProtoError::AuthFailed(_))), "{e}");
    assert_eq!(r.server.handler.infos.load(Ordering::SeqCst), 0);
}

/// Forwards one connection to `upstream`, recording what the client sent.
async fn recording_proxy(upstream: String) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut down, _) = l.accept().await.unwrap();
        let mut up = TcpStream::connect(upstream).await.unwrap();
        let (mut dr, mut dw) = down.split();
        let (mut ur, mut uw) = up.split();
        let mut sent = Vec::new();
        let mut buf = vec![0u8; 65536];
        let mut buf2 = vec![0u8; 65536];
        loop {
            tokio::select! {
                n = dr.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => { sent.extend_from_slice(&buf[..n]); if uw.write_all(&buf[..n]).await.is_err() { break } }
                },
                n = ur.read(&mut buf2) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => { if dw.write_all(&buf2[..n]).await.is_err() { break } }
                },
            }
        }
        sent
    });
    (addr, task)
}

#[tokio::test]
async fn a_recorded_handshake_cannot_be_replayed() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let (proxy, rec) = recording_proxy(r.addr.clone()).await;
    let c = connect(&proxy).await;
    c.info().await.unwrap();
    drop(c);
    let sent = tokio::time::timeout(Duration::from_secs(3), rec)
        .await
        .unwrap()
        .unwrap();
    // The client's first two frames: hello and proof.
    let (hello, n1) = crate::proto::frame::decode(&sent, 1 << 20)
        .unwrap()
        .unwrap();
    let (proof, _) = crate::proto::frame::decode(&sent[n1..], 1 << 20)
        .unwrap()
        .unwrap();
    assert!(std::str::from_utf8(proof).unwrap().contains("\"proof\""));

    let mut s = TcpStream::connect(&r.addr).await.unwrap();
    s.write_all(&encode(hello, 4096).unwrap()).await.unwrap();
    assert!(matches!(
        raw_read(&mut s).await,
        Some(Handshake::Challenge { .. })
    ));
    s.write_all(&encode(proof, 4096).unwrap()).await.unwrap();
    match raw_read(&mut s).await {
        Some(Handshake::Reject { reason, message }) => {
            assert_eq!(reason, RejectReason::AuthFailed);
            assert!(message.contains("replayed"), "{message}");
        }
        other => panic!("a replayed proof was not rejected: {other:?}"),
    }
    assert!(closes_within(&mut s, Duration::from_secs(2)).await);
    assert_eq!(r.server.handler.infos.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_impostor_probe_without_the_token_is_detected_by_the_client() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _hello = raw_read(&mut s).await;
        let ch = serde_json::json!({"type": "challenge", "version": crate::proto::PROTOCOL_VERSION,
            "server_nonce": hex::encode([7u8; 32]), "agent": "impostor"});
        raw_send(&mut s, &ch).await;
        let _proof = raw_read(&mut s).await;
        raw_send(
            &mut s,
            &serde_json::json!({"type": "welcome", "mac": hex::encode([0u8; 32])}),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let e = Client::connect(&addr, Some(&token()), &client_config())
        .await
        .unwrap_err();
    assert!(
        matches!(e.proto(), Some(ProtoError::AuthFailed(m)) if m.contains("impostor")),
        "{e}"
    );
}

#[tokio::test]
async fn oversize_frames_close_the_connection_before_and_after_auth() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    // Before auth: a 4 GiB announcement is refused from the header alone.
    let mut s = TcpStream::connect(&r.addr).await.unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    match raw_read(&mut s).await {
        Some(Handshake::Reject { reason, message }) => {
            assert_eq!(reason, RejectReason::Protocol);
            assert!(message.contains("exceeds"), "{message}");
        }
        other => panic!("expected a reject, got {other:?}"),
    }
    assert!(closes_within(&mut s, Duration::from_secs(2)).await);

    // Before auth, a hello above the handshake cap (4 KiB) is refused too.
    let mut s = TcpStream::connect(&r.addr).await.unwrap();
    s.write_all(&(5000u32).to_be_bytes()).await.unwrap();
    assert!(matches!(
        raw_read(&mut s).await,
        Some(Handshake::Reject { .. })
    ));

    // After auth: more than 1 MiB (and its seal) announced -> closed.
    let mut s = TcpStream::connect(&r.addr).await.unwrap();
    client_handshake(&mut s, Some(&token()), Duration::from_secs(2))
        .await
        .unwrap();
    s.write_all(&((MAX_SEALED as u32) + 1).to_be_bytes())
        .await
        .unwrap();
    assert!(closes_within(&mut s, Duration::from_secs(2)).await);
    // The server still serves others.
    connect(&r.addr).await.info().await.unwrap();
}

#[tokio::test]
async fn slow_loris_clients_are_dropped_at_the_handshake_timeout() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let t0 = Instant::now();
    // Silent client.
    let mut silent = TcpStream::connect(&r.addr).await.unwrap();
    // Trickling client: half a header, then nothing.
    let mut trickle = TcpStream::connect(&r.addr).await.unwrap();
    trickle.write_all(&[0, 0]).await.unwrap();
    assert!(closes_within(&mut silent, Duration::from_secs(3)).await);
    assert!(closes_within(&mut trickle, Duration::from_secs(3)).await);
    let took = t0.elapsed();
    // handshake_timeout is 500 ms.
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // Their slots are free again.
    connect(&r.addr).await.info().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_with_a_reason() {
    let cfg = ServerConfig {
        max_connections: 2,
        ..config()
    };
    let r = start(Fake::new(Duration::ZERO), cfg).await;
    let a = connect(&r.addr).await;
    let b = connect(&r.addr).await;
    let e = Client::connect(&r.addr, Some(&token()), &client_config())
        .await
        .unwrap_err();
    match e.proto() {
        Some(ProtoError::Refused { reason, message }) => {
            assert_eq!(*reason, RejectReason::ConnectionLimit);
            assert!(message.contains("maximum of 2"), "{message}");
        }
        _ => panic!("expected a connection-limit refusal, got {e}"),
    }
    a.info().await.unwrap();
    b.info().await.unwrap();
    drop(a);
    // The freed slot is reusable (the server notices the close asynchronously).
    let t0 = Instant::now();
    loop {
        match Client::connect(&r.addr, Some(&token()), &client_config()).await {
            Ok(c) => {
                c.info().await.unwrap();
                break;
            }
            Err(e) if t0.elapsed() < Duration::from_secs(3) => {
                assert!(e.proto().is_some(), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("slot not freed: {e}"),
        }
    }
}

#[tokio::test]
async fn non_loopback_without_a_token_is_refused() {
    let l = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let server = Server::new(
        Fake::new(Duration::ZERO),
        ServerConfig {
            tokens: Vec::new(),
            ..ServerConfig::default()
        },
    );
    let e = server.run(l, CancellationToken::new()).await.unwrap_err();
    assert!(
        matches!(e, ServerError::NonLoopbackWithoutToken { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("0.0.0.0"), "{e}");
    assert!(check_bind("192.0.2.7:4000".parse().unwrap(), &[]).is_err());
    assert!(check_bind("192.0.2.7:4000".parse().unwrap(), &[token()]).is_ok());
    assert!(check_bind("[::1]:4000".parse().unwrap(), &[]).is_ok());
    let e = ProbeListener::bind("0.0.0.0:0", None, client_config())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("without a token"), "{e}");
}

#[tokio::test]
async fn tokenless_loopback_server_accepts_tokenless_clients_only() {
    let r = start(
        Fake::new(Duration::ZERO),
        ServerConfig {
            tokens: Vec::new(),
            ..config()
        },
    )
    .await;
    Client::connect(&r.addr, None, &client_config())
        .await
        .unwrap()
        .info()
        .await
        .unwrap();
    assert!(Client::connect(&r.addr, Some(&token()), &client_config())
        .await
        .is_err());
}

#[tokio::test]
async fn version_mismatch_is_reported_both_ways() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let mut s = TcpStream::connect(&r.addr).await.unwrap();
    raw_send(
        &mut s,
        &serde_json::json!({"type": "hello", "version": 99, "client_nonce": "00", "agent": "future"}),
    )
    .await;
    match raw_read(&mut s).await {
        Some(Handshake::Reject { reason, message }) => {
            assert_eq!(reason, RejectReason::VersionMismatch);
            assert!(
                message.contains(&format!("version {}", crate::proto::PROTOCOL_VERSION))
                    && message.contains("version 99"),
                "{message}"
            );
        }
        other => panic!("expected a version reject, got {other:?}"),
    }

    // A probe of another version: the client says so.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _ = raw_read(&mut s).await;
        raw_send(
            &mut s,
            &serde_json::json!({"type": "challenge", "version": 7, "future_field": true}),
        )
        .await;
        let _ = raw_read(&mut s).await;
    });
    let e = Client::connect(&addr, Some(&token()), &client_config())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.proto(),
            Some(ProtoError::VersionMismatch { ours, theirs: 7 })
                if *ours == crate::proto::PROTOCOL_VERSION
        ),
        "{e}"
    );
    assert!(e.to_string().contains("version mismatch"), "{e}");
}

#[tokio::test]
async fn a_killed_server_mid_request_errors_the_client_promptly() {
    // The server runs on its own runtime; dropping it closes every socket at once.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let th = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(start(Fake::new(Duration::from_secs(30)), config()));
        addr_tx.send(r.addr.clone()).unwrap();
        let _ = kill_rx.recv_timeout(Duration::from_secs(10));
        rt.shutdown_background();
    });
    let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    let c = connect(&addr).await;
    let call = tokio::spawn({
        let c = c.clone();
        async move { c.listen(&listen_req("default", 20_000, false)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    kill_tx.send(()).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(4), call)
        .await
        .expect("the client notices within its timeout")
        .unwrap()
        .unwrap_err();
    assert!(matches!(e.proto(), Some(ProtoError::Closed(_))), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    th.join().unwrap();
    // Later calls fail at once too.
    assert!(c.info().await.is_err());
}

#[tokio::test]
async fn a_vanished_server_that_never_answers_hits_the_call_timeout() {
    // Authenticates, then swallows requests (like a frozen host: no FIN, no reply).
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        server_handshake(&mut s, &[token()], Duration::from_secs(2))
            .await
            .unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
    });
    let cfg = ClientConfig {
        margin: Duration::from_millis(300),
        ..client_config()
    };
    let c = Client::connect(&addr, Some(&token()), &cfg).await.unwrap();
    let t0 = Instant::now();
    let e = c
        .listen(&listen_req("default", 200, false))
        .await
        .unwrap_err();
    assert!(matches!(e.proto(), Some(ProtoError::Timeout { .. })), "{e}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn one_job_per_device_and_bounded_durations() {
    let r = start(Fake::new(Duration::from_secs(30)), config()).await;
    let c = connect(&r.addr).await;
    let c2 = connect(&r.addr).await;
    let first = tokio::spawn({
        let c = c.clone();
        async move { c.listen(&listen_req("mic", 20_000, false)).await }
    });
    // Wait until the first job holds the device.
    let t0 = Instant::now();
    while r.server.busy_devices().is_empty() && t0.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let e = c2
        .listen(&listen_req("mic", 1000, false))
        .await
        .unwrap_err();
    let re = e.remote().unwrap();
    assert_eq!(re.code, ErrorCode::DeviceBusy);
    assert!(
        re.message.contains("input `mic`") && re.message.contains("listen request"),
        "{e}"
    );
    // Another device is free; info is not a device job.
    c2.info().await.unwrap();
    let other = tokio::spawn({
        let c2 = c2.clone();
        async move { c2.listen(&listen_req("other", 100, false)).await }
    });
    assert!(!other.await.unwrap().unwrap().report.analysis.detected);

    let e = c2
        .listen(&listen_req("x", 60_001, false))
        .await
        .unwrap_err();
    assert_eq!(e.remote().unwrap().code, ErrorCode::BadRequest);
    assert!(e.to_string().contains("60000 ms"), "{e}");
    let e = c2
        .record(&RecordRequest {
            continuity: false,
            quality: false,
            device: DeviceSelector::Default,
            duration_ms: 0,
            evidence: false,
            speech: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.remote().unwrap().code, ErrorCode::BadRequest);

    assert_eq!(c.cancel_all().await.unwrap(), 1);
    let report = tokio::time::timeout(Duration::from_secs(2), first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!report.report.analysis.detected);
}

#[tokio::test]
async fn cancelling_a_call_stops_the_job_early() {
    let r = start(Fake::new(Duration::from_secs(30)), config()).await;
    let c = connect(&r.addr).await;
    let cancel = CancellationToken::new();
    let call = tokio::spawn({
        let (c, cancel) = (c.clone(), cancel.clone());
        async move {
            c.listen_with(&listen_req("default", 20_000, false), Job::cancel(&cancel))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    cancel.cancel();
    let heard = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!heard.report.analysis.detected);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_job_past_its_bound_is_abandoned_with_a_timeout_error() {
    let mut fake = Fake::new(Duration::from_secs(3));
    fake.stubborn = true;
    let cfg = ServerConfig {
        job_margin: Duration::from_millis(200),
        ..config()
    };
    let r = start(fake, cfg).await;
    let c = connect(&r.addr).await;
    let e = c
        .listen(&listen_req("default", 100, false))
        .await
        .unwrap_err();
    assert_eq!(e.remote().unwrap().code, ErrorCode::Timeout, "{e}");
    // The device stays reserved while the stubborn job still runs.
    let e = c
        .listen(&listen_req("default", 100, false))
        .await
        .unwrap_err();
    assert_eq!(e.remote().unwrap().code, ErrorCode::DeviceBusy, "{e}");
}

#[tokio::test]
async fn shutdown_answers_requests_in_flight_and_stops_jobs() {
    let r = start(Fake::new(Duration::from_secs(30)), config()).await;
    let c = connect(&r.addr).await;
    let call = tokio::spawn({
        let c = c.clone();
        async move { c.listen(&listen_req("default", 20_000, false)).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    r.shutdown.cancel();
    let e = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.remote().unwrap().code, ErrorCode::ShuttingDown, "{e}");
    tokio::time::timeout(Duration::from_secs(5), r.task)
        .await
        .expect("run returns after shutdown")
        .unwrap()
        .unwrap();
    // The job saw its cancel flag: the device is released soon after.
    let t0 = Instant::now();
    while !r.server.busy_devices().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(2), "job not stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        TcpStream::connect(&r.addr).await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let cfg = ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    };
    let r = start(Fake::new(Duration::ZERO), cfg).await;
    let c = connect(&r.addr).await;
    c.info().await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let e = c.info().await.unwrap_err();
    assert!(matches!(e.proto(), Some(ProtoError::Closed(_))), "{e}");
}

#[tokio::test]
async fn malformed_requests_are_answered_and_the_connection_survives() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let (mut s, mut sealer, mut opener) = sealed_session(&r.addr).await;
    sealed_send(
        &mut s,
        &mut sealer,
        &serde_json::json!({"id": 9, "type": "format_disk"}),
    )
    .await;
    let resp = sealed_read(&mut s, &mut opener).await;
    assert_eq!(resp.id, 9);
    assert!(
        matches!(resp.body, ResponseBody::Error { ref error } if error.code == ErrorCode::BadRequest)
    );
    sealed_send(
        &mut s,
        &mut sealer,
        &serde_json::json!({"id": 10, "type": "info"}),
    )
    .await;
    let resp = sealed_read(&mut s, &mut opener).await;
    assert!(matches!(resp.body, ResponseBody::Info { .. }));
}

#[tokio::test]
async fn dial_out_probe_is_accepted_and_authenticated_by_the_harness_listener() {
    let pl = ProbeListener::bind("127.0.0.1:0", Some(token()), client_config())
        .await
        .unwrap();
    let addr = pl.local_addr().unwrap().to_string();
    let server = Server::new(Fake::new(Duration::from_millis(10)), config());
    let shutdown = CancellationToken::new();
    let dial = tokio::spawn({
        let (server, shutdown, addr) = (server.clone(), shutdown.clone(), addr.clone());
        async move {
            server
                .serve_dialed(&addr, Duration::from_secs(2), &shutdown)
                .await
        }
    });
    let c = pl.accept(Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        c.info().await.unwrap().protocol_version,
        crate::proto::PROTOCOL_VERSION
    );
    assert!(
        c.listen(&listen_req("default", 1000, false))
            .await
            .unwrap()
            .report
            .analysis
            .detected
    );
    drop(c);
    tokio::time::timeout(Duration::from_secs(2), dial)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // A dialing probe with the wrong token is not accepted.
    let bad = Server::new(
        Fake::new(Duration::ZERO),
        ServerConfig {
            tokens: vec![Token::new("not-the-right-token-xx", "test").unwrap()],
            ..config()
        },
    );
    let dial = tokio::spawn(async move {
        bad.serve_dialed(&addr, Duration::from_secs(2), &CancellationToken::new())
            .await
    });
    let e = pl.accept(Duration::from_secs(3)).await.unwrap_err();
    assert!(matches!(e.proto(), Some(ProtoError::AuthFailed(_))), "{e}");
    assert!(dial.await.unwrap().is_err());
    // Nobody dials: the wait is bounded.
    let e = pl.accept(Duration::from_millis(100)).await.unwrap_err();
    assert!(matches!(e.proto(), Some(ProtoError::Timeout { .. })), "{e}");
}

/// What a man in the middle does to one direction's frames after the handshake (frame
/// numbers count sealed frames of that direction from 0).
#[derive(Debug, Clone)]
enum Attack {
    /// Relay untouched.
    None,
    /// Flip one bit in the middle of frame `at`.
    FlipBit { at: usize },
    /// Send frame `of` again in place of frame `at`.
    Replay { of: usize, at: usize },
    /// Send frame `at` twice.
    Duplicate { at: usize },
    /// Swallow frame `at`.
    Drop { at: usize },
    /// Send `frame` (header included) just before frame `at`.
    Inject { at: usize, frame: Vec<u8> },
}

/// Each side sends two handshake frames (hello + proof, challenge + welcome).
const HANDSHAKE_FRAMES: usize = 2;

/// Relays whole frames from `src` to `dst`, attacking as told; returns what it saw.
async fn relay_frames(
    mut src: tokio::net::tcp::OwnedReadHalf,
    mut dst: tokio::net::tcp::OwnedWriteHalf,
    attack: Attack,
) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut n = 0usize;
    while let Ok(Some(body)) = read_frame(&mut src, MAX_SEALED).await {
        let frame = encode(&body, MAX_SEALED).unwrap();
        seen.extend_from_slice(&frame);
        n += 1;
        let out: Vec<Vec<u8>> = match n.checked_sub(HANDSHAKE_FRAMES + 1) {
            None => vec![frame.clone()],
            Some(i) => match &attack {
                Attack::FlipBit { at } if *at == i => {
                    let mut f = frame.clone();
                    let mid = f.len() / 2;
                    f[mid] ^= 0x10;
                    vec![f]
                }
                Attack::Replay { of, at } if *at == i => vec![sent[HANDSHAKE_FRAMES + of].clone()],
                Attack::Duplicate { at } if *at == i => vec![frame.clone(), frame.clone()],
                Attack::Drop { at } if *at == i => vec![],
                Attack::Inject { at, frame: forged } if *at == i => {
                    vec![forged.clone(), frame.clone()]
                }
                _ => vec![frame.clone()],
            },
        };
        sent.push(frame);
        for f in out {
            if dst.write_all(&f).await.is_err() {
                return seen;
            }
        }
    }
    seen
}

/// A TCP proxy for one connection that relays a real handshake and then attacks each
/// direction as told; the task returns every byte it saw (both directions).
async fn mitm(
    upstream: String,
    to_client: Attack,
    to_server: Attack,
) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (down, _) = l.accept().await.unwrap();
        let up = TcpStream::connect(upstream).await.unwrap();
        let (dr, dw) = down.into_split();
        let (ur, uw) = up.into_split();
        let (a, b) = tokio::join!(
            relay_frames(dr, uw, to_server),
            relay_frames(ur, dw, to_client)
        );
        [a, b].concat()
    });
    (addr, task)
}

fn tampered(e: &crate::proto::client::ClientError) -> bool {
    matches!(e.proto(), Some(ProtoError::Tampered { .. }))
        && e.to_string().contains("tampered with")
}

#[tokio::test]
async fn mitm_flipping_one_bit_of_a_reply_is_detected_as_tampering() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let (proxy, _) = mitm(r.addr.clone(), Attack::FlipBit { at: 0 }, Attack::None).await;
    let c = connect(&proxy).await;
    let e = c.info().await.unwrap_err();
    assert!(tampered(&e), "{e}");
    // The connection is over: later calls fail at once with the same cause.
    let t0 = Instant::now();
    let e = c.info().await.unwrap_err();
    assert!(tampered(&e), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn mitm_replaying_an_earlier_reply_is_detected_as_tampering() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let (proxy, _) = mitm(
        r.addr.clone(),
        Attack::Replay { of: 0, at: 1 },
        Attack::None,
    )
    .await;
    let c = connect(&proxy).await;
    c.info().await.unwrap();
    let e = c.info().await.unwrap_err();
    assert!(tampered(&e), "{e}");
}

#[tokio::test]
async fn mitm_dropping_a_reply_is_detected_as_tampering() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let (proxy, _) = mitm(r.addr.clone(), Attack::Drop { at: 0 }, Attack::None).await;
    let c = connect(&proxy).await;
    // Two requests in flight: the first reply vanishes, the second arrives out of turn.
    let (a, b) = tokio::join!(c.info(), c.info());
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    assert!(tampered(&a) && tampered(&b), "{a} / {b}");
}

#[tokio::test]
async fn mitm_injecting_a_forged_detected_reply_is_detected_as_tampering() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    // A genuine `detected` report, as an attacker could have seen one under protocol v1.
    let honest = connect(&r.addr).await;
    let real = honest
        .listen(&listen_req("default", 2000, false))
        .await
        .unwrap();
    assert!(real.report.analysis.detected);
    let forged_reply = Response {
        id: 1,
        body: ResponseBody::Listened {
            report: Box::new(real.report),
            evidence: None,
        },
    };
    // The listen below would hear nothing (5 ms): the forged frame claims it did. It goes
    // in before the probe's first frame (`armed`), both as plain JSON and as a frame sealed
    // with a key of the attacker's own.
    for forged in [
        encode(&serde_json::to_vec(&forged_reply).unwrap(), MAX_SEALED).unwrap(),
        seal_json(&mut Sealer::new(&[0x42; 32]), &forged_reply).unwrap(),
    ] {
        let (proxy, _) = mitm(
            r.addr.clone(),
            Attack::Inject {
                at: 0,
                frame: forged,
            },
            Attack::None,
        )
        .await;
        let c = connect(&proxy).await;
        let e = c
            .listen(&listen_req("default", 5, false))
            .await
            .unwrap_err();
        assert!(tampered(&e), "{e}");
    }
}

#[tokio::test]
async fn a_replayed_request_is_tampering_on_the_probe_side_and_never_runs_twice() {
    // The probe's own session, so its error can be read.
    let fake = Fake::new(Duration::ZERO);
    let server = Server::new(fake, config());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            let (s, peer) = l.accept().await.unwrap();
            server
                .serve_stream(s, peer.to_string(), &CancellationToken::new())
                .await
        }
    });
    let (proxy, _) = mitm(addr, Attack::None, Attack::Duplicate { at: 0 }).await;
    let c = connect(&proxy).await;
    let play = PlayRequest {
        continuity_ms: None,
        quality: false,
        device: DeviceSelector::Default,
        seed: 1,
        direction: Direction::Output,
        speech: false,
    };
    let e = c.play(&play).await.unwrap_err();
    assert!(e.proto().is_some(), "{e}");
    let e = tokio::time::timeout(Duration::from_secs(3), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ProtoError::Tampered { .. }), "{e}");
    assert!(e.to_string().contains("frame 1 from the client"), "{e}");
    // The job may have started once; the replay never started a second one.
    assert!(server.handler.jobs.load(Ordering::SeqCst) <= 1);
}

#[tokio::test]
async fn a_passive_mitm_sees_no_plaintext_of_info_or_of_a_recording() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let (proxy, capture) = mitm(r.addr.clone(), Attack::None, Attack::None).await;
    let c = connect(&proxy).await;
    let info = c.info().await.unwrap();
    let rec = c
        .record(&RecordRequest {
            continuity: false,
            quality: false,
            device: DeviceSelector::Default,
            duration_ms: 300,
            evidence: true,
            speech: false,
        })
        .await
        .unwrap();
    let ev = c
        .fetch_evidence(&rec.evidence.unwrap(), Duration::from_secs(10), |_| {})
        .await
        .unwrap();
    drop(c);
    let seen = tokio::time::timeout(Duration::from_secs(3), capture)
        .await
        .unwrap()
        .unwrap();
    assert!(
        seen.len() > ev.bytes.len(),
        "the evidence crossed the proxy"
    );
    let contains = |needle: &[u8]| seen.windows(needle.len()).any(|w| w == needle);
    // Info: the host name, the audio host, the field names of the JSON.
    assert_eq!(info.hostname, "studio-pc-4711");
    assert!(!contains(info.hostname.as_bytes()), "host name in clear");
    assert!(!contains(b"\"hostname\""));
    assert!(!contains(b"\"audio_host\""));
    assert!(!contains(b"Fake"));
    // The recording: neither the FLAC file nor the samples appear, anywhere.
    assert!(!contains(b"fLaC"));
    for at in (0..ev.bytes.len() - 16).step_by(997) {
        assert!(
            !contains(&ev.bytes[at..at + 16]),
            "FLAC bytes at {at} in clear"
        );
    }
    let raw: Vec<u8> = (1000..1004)
        .flat_map(|i| ((i as f32 * 0.01).sin() * 0.5).to_le_bytes())
        .collect();
    assert!(!contains(&raw), "f32 samples in clear");
}

/// Relays one connection with the probe-to-client direction limited to `bytes_per_s`
/// (a starved link); small socket buffers, so bytes queue at the probe, as they would
/// behind a slow link.
async fn throttled_proxy(upstream: String, bytes_per_s: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (down, _) = l.accept().await.unwrap();
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(32 * 1024).unwrap();
        let up = sock.connect(upstream.parse().unwrap()).await.unwrap();
        let (mut dr, mut dw) = down.into_split();
        let (mut ur, mut uw) = up.into_split();
        let to_server = async { tokio::io::copy(&mut dr, &mut uw).await };
        let to_client = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match ur.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if dw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let pause = n as f64 / bytes_per_s as f64;
                        tokio::time::sleep(Duration::from_secs_f64(pause)).await;
                    }
                }
            }
        };
        let _ = tokio::join!(to_server, to_client);
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_starved_link_a_reply_overtakes_the_evidence_being_streamed() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let proxy = throttled_proxy(r.addr.clone(), 2_000_000).await;
    let c = connect(&proxy).await;
    let t0 = Instant::now();
    let rec = c
        .record(&RecordRequest {
            continuity: false,
            quality: false,
            device: DeviceSelector::parse("noisy"),
            duration_ms: 10,
            evidence: true,
            speech: false,
        })
        .await
        .unwrap();
    // The report came at once: 10 s of stereo evidence did not travel with it.
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    let handle = rec.evidence.unwrap();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let fetch = tokio::spawn({
        let c = c.clone();
        async move {
            let mut first = Some(first_tx);
            let t0 = Instant::now();
            let ev = c
                .fetch_evidence(&handle, Duration::from_secs(30), |p| {
                    if p.received > 0 {
                        if let Some(tx) = first.take() {
                            let _ = tx.send(Instant::now());
                        }
                    }
                })
                .await;
            (ev, t0.elapsed())
        }
    });
    let streaming_since = first_rx.await.unwrap();
    let t0 = Instant::now();
    c.info().await.unwrap();
    let info_took = t0.elapsed();
    let (ev, fetch_took) = fetch.await.unwrap();
    let ev = ev.unwrap();
    assert!(ev.bytes.len() > 1_000_000, "{} bytes", ev.bytes.len());
    assert!(streaming_since.elapsed() <= fetch_took);
    eprintln!(
        "info {info_took:?} during a fetch of {} bytes that took {fetch_took:?}",
        ev.bytes.len()
    );
    // The stream needs about a second at 2 MB/s; the reply waited for a chunk or two,
    // not for the rest of the file.
    assert!(
        fetch_took > Duration::from_millis(600) && info_took * 3 < fetch_took,
        "info took {info_took:?} while the fetch took {fetch_took:?}"
    );
}

#[tokio::test]
async fn evidence_beyond_the_store_caps_is_gone_and_says_so() {
    let cfg = ServerConfig {
        evidence_max_count: 1,
        ..config()
    };
    let r = start(Fake::new(Duration::ZERO), cfg).await;
    let c = connect(&r.addr).await;
    let req = RecordRequest {
        continuity: false,
        quality: false,
        device: DeviceSelector::Default,
        duration_ms: 50,
        evidence: true,
        speech: false,
    };
    let first = c.record(&req).await.unwrap().evidence.unwrap();
    let second = c.record(&req).await.unwrap().evidence.unwrap();
    let e = c
        .fetch_evidence(&first, Duration::from_secs(5), |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        e.remote().map(|r| r.code),
        Some(ErrorCode::EvidenceGone),
        "{e}"
    );
    assert!(e.to_string().contains("no longer held"), "{e}");
    // The connection goes on, and the newer evidence is there.
    c.fetch_evidence(&second, Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    // A handle from another probe is refused without asking this one.
    let other = crate::proto::client::EvidenceHandle {
        peer: "elsewhere:1".into(),
        ..second
    };
    let e = c
        .fetch_evidence(&other, Duration::from_secs(5), |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("elsewhere:1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_past_its_budget_times_out_stops_the_stream_and_leaves_the_connection_usable() {
    let r = start(Fake::new(Duration::ZERO), config()).await;
    let proxy = throttled_proxy(r.addr.clone(), 1_000_000).await;
    let c = connect(&proxy).await;
    let rec = c
        .record(&RecordRequest {
            continuity: false,
            quality: false,
            device: DeviceSelector::parse("noisy"),
            duration_ms: 10,
            evidence: true,
            speech: false,
        })
        .await
        .unwrap();
    let handle = rec.evidence.unwrap();
    let t0 = Instant::now();
    let e = c
        .fetch_evidence(&handle, Duration::from_millis(400), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e.proto(), Some(ProtoError::Timeout { .. })), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The probe was told to stop; the connection still answers, and the evidence is
    // still held for a fetch with a bigger budget.
    c.info().await.unwrap();
    let ev = c
        .fetch_evidence(&handle, Duration::from_secs(30), |_| {})
        .await
        .unwrap();
    assert!(ev.bytes.len() > 1_000_000);
}

#[tokio::test]
async fn a_record_says_armed_before_it_ends_and_the_probe_offers_the_feature() {
    let r = start(Fake::new(Duration::from_millis(50)), config()).await;
    let c = connect(&r.addr).await;
    let info = c.info().await.unwrap();
    assert!(
        info.features
            .iter()
            .any(|f| f == crate::proto::msg::RECORD_ARMED),
        "{:?}",
        info.features
    );
    let req = RecordRequest {
        continuity: false,
        quality: false,
        device: DeviceSelector::Default,
        duration_ms: 1500,
        evidence: false,
        speech: false,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cancel = CancellationToken::new();
    let recording = c.record_with(&req, Job::cancel(&cancel).armed(tx));
    tokio::pin!(recording);
    // The fake device delivers at once and records for 1.5 s: armed comes first.
    let armed_at = tokio::select! {
        r = &mut recording => panic!("the record ended before it said armed: {r:?}"),
        a = rx => {
            a.expect("armed was sent");
            std::time::Instant::now()
        }
    };
    let rec = tokio::time::timeout(Duration::from_secs(5), recording)
        .await
        .expect("the record ends")
        .unwrap();
    assert!(
        armed_at.elapsed() >= Duration::from_millis(1000),
        "the reply came {:?} after armed",
        armed_at.elapsed()
    );
    assert!(rec.evidence.is_none());
}

/// Opens `n` connections to `addr` that never say a word.
async fn half_open(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    held
}

#[tokio::test]
async fn a_harness_gets_in_within_1_s_while_80_half_open_handshakes_are_held() {
    // Handshakes wait up to 5 s a step here, as by default: held connections would keep
    // every place for that long if they counted against the connection limit.
    let cfg = ServerConfig {
        handshake_timeout: Duration::from_secs(5),
        ..config()
    };
    let r = start(Fake::new(Duration::ZERO), cfg).await;
    let held = half_open(&r.addr, 80).await;
    let t0 = Instant::now();
    let c = tokio::time::timeout(Duration::from_secs(1), connect(&r.addr))
        .await
        .expect("the harness got in within 1 s");
    c.info().await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(
        r.server.admission.pending() <= crate::proto::admission::MAX_HANDSHAKES_PER_ADDR,
        "held handshakes over their budget: {}",
        r.server.admission.pending()
    );
    drop(held);
}

#[tokio::test]
async fn a_dialing_probe_gets_in_within_1_s_while_80_half_open_connections_are_held() {
    let pl = ProbeListener::bind("127.0.0.1:0", Some(token()), client_config())
        .await
        .unwrap();
    let addr = pl.local_addr().unwrap().to_string();
    let held = half_open(&addr, 80).await;
    let server = Server::new(Fake::new(Duration::from_millis(10)), config());
    let shutdown = CancellationToken::new();
    let t0 = Instant::now();
    let dial = tokio::spawn({
        let (server, shutdown, addr) = (server.clone(), shutdown.clone(), addr.clone());
        async move {
            server
                .serve_dialed(&addr, Duration::from_secs(2), &shutdown)
                .await
        }
    });
    let c = pl
        .accept(Duration::from_secs(1))
        .await
        .expect("the dialing probe got in within 1 s");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    c.info().await.unwrap();
    drop(held);
    shutdown.cancel();
    let _ = dial.await;
}
