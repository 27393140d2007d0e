//! Agent bench: a real `earshot-probe serve` process on loopback, measured from outside.
//!
//! Reports the handshake + `info` round trip (median of fresh connections), `info` alone
//! on an open connection, the idle probe's RSS, and N concurrent authenticated connections
//! each answering `info` while all are open. Run it through `bench/agent.sh`, which builds
//! the release binary and raises the file-descriptor limit for both processes.
//!
//! Evidence transfer is measured in-process (no audio device needed): a server with a
//! handler that returns a recording-like signal (20 s, 48 kHz stereo: a signature at
//! -20 dBFS over a -60 dBFS noise floor) for `record`, reached through a byte-counting
//! relay, so the figure covers the wire bytes and the time from request to evidence in hand.
//!
//! Usage: agent_bench PROBE_BINARY [CONNECTIONS]
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use earshot_probe::audio::{
    AudioError, CancelFlag, DeviceDirection, DeviceInfo, DeviceSelector, ListenReport, PlayReport,
    RecordReport, StreamFormat, StreamHealth,
};
use earshot_probe::proto::auth::Token;
use earshot_probe::proto::client::{Client, ClientConfig};
use earshot_probe::proto::msg::{ListenRequest, PlayRequest, ProbeInfo, RecordRequest};
use earshot_probe::server::{base_info, Handler, Server, ServerConfig};
use earshot_probe::wav::Audio;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-token-0123456789abcdef";

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn median_ms(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

/// Seconds of the synthetic recording.
const EVIDENCE_SECS: u32 = 20;

/// A recording as a loopback or microphone delivers it: a signature at -20 dBFS starting
/// at 2 s, over a -60 dBFS noise floor that differs between the two channels.
fn recording_like() -> Audio {
    let rate = 48_000u32;
    let sig = earshot_probe::signal::Signature::new(7, earshot_probe::signal::Direction::Output)
        .render(rate)
        .unwrap_or_default();
    let frames = (rate * EVIDENCE_SECS) as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let floor = 10f32.powf(-60.0 / 20.0);
    let gain = 10f32.powf(-20.0 / 20.0);
    let start = 2 * rate as usize;
    let mut samples = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let tone = i
            .checked_sub(start)
            .and_then(|j| sig.get(j))
            .map_or(0.0, |v| v * gain);
        for _ in 0..2 {
            let noise: f32 = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum::<f32>() * 0.5;
            samples.push(tone + noise * floor);
        }
    }
    Audio {
        sample_rate_hz: rate,
        channels: 2,
        samples,
    }
}

/// Serves `record` with [`recording_like`] at once; nothing else is used.
struct EvidenceHandler(Audio);

fn fake_device() -> DeviceInfo {
    DeviceInfo {
        id: "bench:in".into(),
        name: "bench".into(),
        direction: DeviceDirection::Input,
        is_default: true,
        is_monitor: false,
        default_format: None,
    }
}

impl Handler for EvidenceHandler {
    fn info(&self) -> ProbeInfo {
        base_info(Duration::from_secs(60))
    }
    fn play(&self, _: &PlayRequest, _: &CancelFlag) -> Result<PlayReport, AudioError> {
        Err(AudioError {
            kind: earshot_probe::audio::AudioErrorKind::NoDevice,
            message: "bench handler".into(),
        })
    }
    fn record(
        &self,
        _: &RecordRequest,
        _: &CancelFlag,
        _: &(dyn Fn() + Send + Sync),
    ) -> Result<(RecordReport, Option<Audio>), AudioError> {
        Ok((
            RecordReport {
                continuity: None,
                quality: None,
                device: fake_device(),
                format: StreamFormat {
                    sample_rate_hz: self.0.sample_rate_hz,
                    channels: self.0.channels,
                    sample_format: "f32".into(),
                },
                recorded_ms: self.0.duration_ms(),
                health: StreamHealth::default(),
                speech: None,
            },
            Some(self.0.clone()),
        ))
    }
    fn listen(
        &self,
        _: &ListenRequest,
        _: &CancelFlag,
        _: &(dyn Fn() + Send + Sync),
    ) -> Result<(ListenReport, Option<Audio>), AudioError> {
        Err(AudioError {
            kind: earshot_probe::audio::AudioErrorKind::NoDevice,
            message: "bench handler".into(),
        })
    }
}

/// Relays one connection from `listener` to `upstream`, counting the bytes sent downstream.
async fn counting_relay(
    listener: tokio::net::TcpListener,
    upstream: String,
    down: Arc<std::sync::atomic::AtomicU64>,
) {
    let Ok((mut a, _)) = listener.accept().await else {
        return;
    };
    let Ok(mut b) = tokio::net::TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    let up = tokio::io::copy(&mut ar, &mut bw);
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match br.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    down.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    if aw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::join!(up, downstream);
}

/// Figures of one evidence transfer.
struct EvidenceFigures {
    audio_secs: f64,
    wav_f32_bytes: usize,
    wire_bytes: u64,
    evidence_bytes: usize,
    /// Request to the report in hand (the evidence not yet fetched).
    verdict: Duration,
    /// Request to the evidence in hand.
    took: Duration,
}

async fn evidence_transfer(token: &Token) -> anyhow::Result<EvidenceFigures> {
    let audio = recording_like();
    let audio_secs = audio.duration_ms() / 1000.0;
    let wav_f32_bytes = audio.samples.len() * 4 + 44;
    let cfg = ServerConfig {
        tokens: vec![token.clone()],
        ..ServerConfig::default()
    };
    let server = Server::new(EvidenceHandler(audio), cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream = listener.local_addr()?.to_string();
    let shutdown = CancellationToken::new();
    let serving = {
        let (server, shutdown) = (server.clone(), shutdown.clone());
        tokio::spawn(async move { server.run(listener, shutdown).await })
    };
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let relay_addr = relay.local_addr()?.to_string();
    let down = Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(counting_relay(relay, upstream, down.clone()));
    let c = Client::connect(&relay_addr, Some(token), &ClientConfig::default()).await?;
    let before = down.load(std::sync::atomic::Ordering::Relaxed);
    let req = RecordRequest {
        continuity: false,
        quality: false,
        device: DeviceSelector::Default,
        duration_ms: 1000,
        evidence: true,
        speech: false,
    };
    let t0 = Instant::now();
    let rec = c.record(&req).await?;
    let verdict = t0.elapsed();
    let handle = rec
        .evidence
        .ok_or_else(|| anyhow::anyhow!("no evidence came back"))?;
    let evidence_bytes = c
        .fetch_evidence(&handle, Duration::from_secs(60), |_| {})
        .await?
        .bytes
        .len();
    let took = t0.elapsed();
    let wire_bytes = down.load(std::sync::atomic::Ordering::Relaxed) - before;
    drop(c);
    shutdown.cancel();
    let _ = serving.await;
    Ok(EvidenceFigures {
        audio_secs,
        wav_f32_bytes,
        wire_bytes,
        evidence_bytes,
        verdict,
        took,
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let probe = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: agent_bench PROBE_BINARY [CONNECTIONS]"))?;
    let conns: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let tf = dir.path().join("token");
    std::fs::write(&tf, TOKEN)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600))?;
    }
    let mut child = Command::new(&probe)
        .args(["serve", "--listen", "127.0.0.1:0", "--max-connections"])
        .arg((conns + 16).to_string())
        .arg("--token-file")
        .arg(&tf)
        .env("EARSHOT_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
    )
    .read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("earshot-probe: listening on ")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
        .to_string();
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = rss_kb(pid);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let token = Token::new(TOKEN, "bench")?;
    let cfg = ClientConfig::default();
    let report = rt.block_on(async {
        // Warm up: the first info lists devices; later ones within 2 s reuse that answer.
        let t0 = Instant::now();
        Client::connect(&addr, Some(&token), &cfg)
            .await?
            .info()
            .await?;
        let cold = t0.elapsed();
        let mut round = Vec::new();
        for _ in 0..200 {
            let t0 = Instant::now();
            let c = Client::connect(&addr, Some(&token), &cfg).await?;
            c.info().await?;
            round.push(t0.elapsed());
        }
        let c = Client::connect(&addr, Some(&token), &cfg).await?;
        let mut info_only = Vec::new();
        for _ in 0..200 {
            let t0 = Instant::now();
            c.info().await?;
            info_only.push(t0.elapsed());
        }
        drop(c);

        // N connections at once: each authenticates and answers info, then all stay open
        // until every one has answered.
        let barrier = Arc::new(tokio::sync::Barrier::new(conns + 1));
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (addr, token, cfg, barrier) =
                (addr.clone(), token.clone(), cfg.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let r = async {
                    let c = Client::connect(&addr, Some(&token), &cfg).await?;
                    c.info().await?;
                    Ok::<_, earshot_probe::proto::client::ClientError>(c)
                }
                .await;
                barrier.wait().await;
                // Keep the connection open until the RSS is read.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                r.map(drop)
            }));
        }
        barrier.wait().await;
        let all_open = t0.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy_rss = rss_kb(pid);
        let mut errors = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let ev = evidence_transfer(&token).await?;
        Ok::<_, anyhow::Error>((cold, round, info_only, all_open, busy_rss, errors, ev))
    });
    let (cold, round, info_only, all_open, busy_rss, errors, ev) = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            return Err(e);
        }
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (hm, hp) = median_ms(round);
    let (im, ip) = median_ms(info_only);
    println!(
        "first handshake + info (device catalogue listed): {:.1} ms",
        cold.as_secs_f64() * 1000.0
    );
    println!("handshake + info, fresh connection: median {hm:.3} ms, p90 {hp:.3} ms (200 runs)");
    println!("info on an open connection:        median {im:.3} ms, p90 {ip:.3} ms (200 runs)");
    println!(
        "idle probe RSS: {} kB",
        idle_rss.map_or("?".into(), |v| v.to_string())
    );
    println!(
        "{conns} concurrent authenticated connections: {} ok, {} errors, all answered in {:.0} ms; probe RSS with all open: {} kB",
        conns - errors.len(),
        errors.len(),
        all_open.as_secs_f64() * 1000.0,
        busy_rss.map_or("?".into(), |v| v.to_string())
    );
    let mb = |b: f64| b / 1e6;
    println!(
        "evidence of {:.0} s 48 kHz stereo (f32 WAV {:.2} MB): {:.2} MB received as evidence, \
         {:.2} MB on the wire, in {:.0} ms ({:.1} MB/s of wire bytes, {:.0}x real time)",
        ev.audio_secs,
        mb(ev.wav_f32_bytes as f64),
        mb(ev.evidence_bytes as f64),
        mb(ev.wire_bytes as f64),
        ev.took.as_secs_f64() * 1000.0,
        mb(ev.wire_bytes as f64) / ev.took.as_secs_f64(),
        ev.audio_secs / ev.took.as_secs_f64()
    );
    println!(
        "  report (verdict) in hand after {:.1} ms; evidence {:.1}% of the f32 WAV",
        ev.verdict.as_secs_f64() * 1000.0,
        100.0 * ev.evidence_bytes as f64 / ev.wav_f32_bytes as f64
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    println!(
        "SIGTERM: exit {:?} after {:.0} ms",
        status.and_then(|s| s.code()),
        t0.elapsed().as_secs_f64() * 1000.0
    );
    if !errors.is_empty() || status.and_then(|s| s.code()) != Some(0) {
        anyhow::bail!("the agent bench saw errors");
    }
    Ok(())
}
