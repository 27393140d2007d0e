//! The runner: connects to both probes, runs preflight, then the checks, and emits events.
//! It never formats; reporters do.
//!
//! Every wait is bounded: connecting (the scenario's `timeouts.connect`), each request (the
//! probe client's own timeouts: the job's duration plus a margin), and the whole check. A
//! probe that dies or hangs makes the check `inconclusive`, never a hang.
//!
//! A check plays on one probe while the other listens. The player starts only once the
//! listener's device delivers audio ("armed"), so a slow stream start cannot swallow the
//! start of the signature. When a check hears nothing and the expectation needed sound,
//! the rig tests itself before the silence is trusted: the local probe plays a rig signature
//! and must hear it on the same input. A rig that cannot hear itself makes the check
//! inconclusive instead of a false fail.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use earshot_probe::audio::{AudioErrorKind, DeviceSelector};
use earshot_probe::proto::auth::Token;
use earshot_probe::proto::client::{
    AuthedClient, Client, ClientConfig, ClientError, EvidenceHandle, ProbeListener,
};
use earshot_probe::proto::msg::{ListenRequest, PlayRequest, ProbeInfo, SessionKind};
use earshot_probe::signal::Direction;
use earshot_probe::unix_ms;
use tokio_util::sync::CancellationToken;

use crate::policy::{self, Expectation};
use crate::report::{CheckRecord, Event, ProbeSummary, Run, ScenarioRecord};
use crate::scenario::{CaptureExpect, Check, OutputExpect, ProbeSpec, Scenario};
use crate::verdict::{expected_words, judge, Observation, Verdict};

/// How a run is done.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where evidence (FLAC recordings) goes (created when needed); none keeps no evidence.
    pub evidence_dir: Option<PathBuf>,
    /// Base seed of the signatures; each check adds its index. Random when None.
    pub seed: Option<u64>,
}

/// A connected probe and what it said about itself.
struct Probe {
    role: &'static str,
    client: AuthedClient,
    info: ProbeInfo,
    /// Probe clock minus harness clock, ms (to put both probes' times on one clock).
    clock_offset_ms: f64,
}

fn token_for(s: &Scenario, spec: &ProbeSpec, role: &str) -> Result<Token, String> {
    if let Some(f) = &spec.token_file {
        let path = s.resolve(f);
        return Token::from_file(&path).map_err(|e| format!("probes.{role}.token_file: {e}"));
    }
    if let Some(var) = &spec.token_env {
        let text = std::env::var(var).map_err(|_| {
            format!("probes.{role}.token_env: the environment variable {var} is not set")
        })?;
        return Token::new(&text, var).map_err(|e| format!("probes.{role}.token_env: {e}"));
    }
    Err(format!("probes.{role}: no token configured"))
}

async fn connect(s: &Scenario, spec: &ProbeSpec, role: &'static str) -> Result<Probe, String> {
    let token = token_for(s, spec, role)?;
    let config = ClientConfig {
        connect_timeout: s.timeouts.connect,
        handshake_timeout: s.timeouts.connect,
        ..ClientConfig::default()
    };
    let client = match (&spec.address, &spec.dial_in) {
        (Some(addr), _) => Client::connect(addr, Some(&token), &config)
            .await
            .map_err(|e| format!("{role} probe: {e}; is `earshot-probe serve` running there, with the same token?"))?,
        (None, Some(bind)) => {
            let listener = ProbeListener::bind(bind, Some(token), config.clone())
                .await
                .map_err(|e| format!("{role} probe: {e}"))?;
            listener.accept(s.timeouts.connect).await.map_err(|e| {
                format!(
                    "{role} probe: {e}; start `earshot-probe connect <this host>:{}` in the \
                     session",
                    bind.rsplit_once(':').map_or("", |(_, p)| p)
                )
            })?
        }
        (None, None) => return Err(format!("probes.{role}: no address or dial_in")),
    };
    let sent = unix_ms();
    let info = client
        .info()
        .await
        .map_err(|e| format!("{role} probe: info: {e}"))?;
    let received = unix_ms();
    Ok(Probe {
        role,
        clock_offset_ms: info.now_unix_ms - (sent + received) / 2.0,
        client,
        info,
    })
}

fn summary(p: &Probe) -> ProbeSummary {
    let i = &p.info;
    let devices = match &i.devices {
        Ok(list) => list
            .iter()
            .map(|d| {
                format!(
                    "{:?} {}{}{} ({})",
                    d.direction,
                    d.id,
                    if d.is_default { " [default]" } else { "" },
                    if d.is_monitor { " [monitor]" } else { "" },
                    d.name
                )
            })
            .collect(),
        Err(e) => vec![format!("cannot list devices: {e}")],
    };
    ProbeSummary {
        role: p.role.into(),
        peer: p.client.peer().into(),
        version: i.probe_version.clone(),
        host_name: i.hostname.clone(),
        os: format!("{} {}", i.os, i.arch),
        audio_host: match &i.audio_host {
            Ok(h) => h.clone(),
            Err(e) => format!("unavailable: {e}"),
        },
        remote_session: format!(
            "{:?} ({})",
            i.session.kind,
            if i.session.evidence.is_empty() {
                "no markers".into()
            } else {
                i.session.evidence.join(", ")
            }
        )
        .to_lowercase(),
        devices,
    }
}

fn preflight_warnings(local: &Probe, remote: &Probe) -> Vec<String> {
    let mut w = Vec::new();
    let me = env!("CARGO_PKG_VERSION");
    for p in [local, remote] {
        if p.info.probe_version != me {
            w.push(format!(
                "{} probe is version {}, the harness {me}: results may differ; install matching versions",
                p.role, p.info.probe_version
            ));
        }
        if let Err(e) = &p.info.audio_host {
            w.push(format!("{} probe has no usable audio host: {e}", p.role));
        }
    }
    match remote.info.session.kind {
        SessionKind::Remote => {}
        SessionKind::Local => w.push(format!(
            "the remote probe on {} is NOT in a remote desktop session (it runs on the \
             console): start it inside the user's session, or the checks test the wrong audio \
             path",
            remote.info.hostname
        )),
        SessionKind::Unknown => w.push(format!(
            "the remote probe on {} cannot tell whether it runs in a remote desktop session; \
             make sure it does",
            remote.info.hostname
        )),
    }
    w
}

/// What one direction of a check needs.
struct Leg<'a> {
    player: &'a Probe,
    play_on: &'a str,
    listener: &'a Probe,
    listen_on: &'a str,
    direction: Direction,
    seed: u64,
}

/// Evidence left on the listening probe, fetched only once the verdict says it is kept.
#[derive(Clone)]
struct EvidenceAt {
    client: AuthedClient,
    handle: EvidenceHandle,
}

/// Time budget of one evidence fetch, separate from the check's: a starved link delays
/// the evidence, never the verdict.
const EVIDENCE_FETCH_BUDGET: Duration = Duration::from_secs(60);

/// The outcome of playing on one probe while the other listens.
struct Measured {
    observation: Observation,
    evidence: Option<EvidenceAt>,
}

/// What a failed `what` request on `who` means for the check: the session lacking the
/// endpoint is a finding (`no-device`); anything else is the rig failing (`error`).
fn failed(who: &Probe, what: &str, e: &ClientError) -> Observation {
    match e.audio() {
        Some(a) if a.kind == AudioErrorKind::NoDevice => Observation::NoDevice {
            detail: format!("{} probe ({}): {}", who.role, who.info.hostname, a.message),
        },
        _ => Observation::Error {
            detail: format!("{} probe: {what}: {e}", who.role),
        },
    }
}

/// Listens on one probe, plays on the other once armed, and returns what was heard.
async fn measure(leg: &Leg<'_>, listen_for: Duration) -> Measured {
    let listen_req = ListenRequest {
        device: DeviceSelector::parse(leg.listen_on),
        seed: leg.seed,
        direction: leg.direction,
        timeout_ms: listen_for.as_millis() as u64,
        evidence: true,
    };
    let play_req = PlayRequest {
        device: DeviceSelector::parse(leg.play_on),
        seed: leg.seed,
        direction: leg.direction,
    };
    let cancel = CancellationToken::new();
    let stop_playing = CancellationToken::new();
    let (armed_tx, armed_rx) = tokio::sync::oneshot::channel();
    let listening = async {
        let r = leg
            .listener
            .client
            .listen_armed(&listen_req, &cancel, armed_tx)
            .await;
        // Heard (or given up): the player need not keep its stream open for the tail.
        stop_playing.cancel();
        r
    };
    let playing = async {
        // A listener that never arms fails on its own (start timeout) and ends the listen.
        if armed_rx.await.is_err() {
            return None;
        }
        let r = leg
            .player
            .client
            .play_cancellable(&play_req, &stop_playing)
            .await;
        if r.is_err() {
            // Nothing will be played: stop listening now rather than at the timeout.
            cancel.cancel();
        }
        Some(r)
    };
    let (heard, played) = tokio::join!(listening, playing);
    match (played, heard) {
        (Some(Err(e)), _) => Measured {
            observation: failed(leg.player, "play", &e),
            evidence: None,
        },
        (_, Err(e)) => Measured {
            observation: failed(leg.listener, "listen", &e),
            evidence: None,
        },
        (None, Ok(_)) => Measured {
            observation: Observation::Error {
                detail: format!(
                    "{} probe: the input never delivered audio",
                    leg.listener.role
                ),
            },
            evidence: None,
        },
        (Some(Ok(play)), Ok(heard)) => {
            let r = &heard.report;
            let a = &r.analysis;
            let observation = if a.detected {
                // Both times on the harness's clock.
                let latency_ms = r.onset_unix_ms.map(|onset| {
                    (onset - leg.listener.clock_offset_ms)
                        - (play.started_unix_ms - leg.player.clock_offset_ms)
                });
                Observation::Detected {
                    level_dbfs: a.level_dbfs,
                    latency_ms,
                    snr_db: a.median_snr_db(),
                    dropouts: a.dropouts.len(),
                    symbols: u32::try_from(a.symbols_matched).unwrap_or(u32::MAX),
                }
            } else {
                Observation::Silent {
                    rms_dbfs: a.rms_dbfs,
                    listened_ms: a.analyzed_ms,
                }
            };
            Measured {
                observation,
                evidence: heard.evidence.map(|handle| EvidenceAt {
                    client: leg.listener.client.clone(),
                    handle,
                }),
            }
        }
    }
}

/// Whether the local rig hears its own signature on `input` when it plays on `output`.
async fn rig_hears_itself(
    local: &Probe,
    output: &str,
    input: &str,
    seed: u64,
    wait: Duration,
) -> Result<(), String> {
    let leg = Leg {
        player: local,
        play_on: output,
        listener: local,
        listen_on: input,
        direction: Direction::Output,
        seed,
    };
    match measure(&leg, wait).await.observation {
        Observation::Detected { .. } => Ok(()),
        other => Err(format!(
            "the rig cannot hear itself: the local probe played on `{output}` and heard on \
             `{input}`: {}",
            other.describe()
        )),
    }
}

/// Runs one check and judges it.
async fn check(
    c: Check,
    s: &Scenario,
    e: &Expectation,
    local: &Probe,
    remote: &Probe,
    seed: u64,
) -> (Observation, Verdict, String, Option<EvidenceAt>) {
    let leg = match c {
        Check::Output => Leg {
            player: remote,
            play_on: &s.probes.remote.output,
            listener: local,
            listen_on: &s.probes.local.output_loopback,
            direction: Direction::Output,
            seed,
        },
        Check::Capture => Leg {
            player: local,
            play_on: s.probes.local.mic_feed.as_deref().unwrap_or("default"),
            listener: remote,
            listen_on: &s.probes.remote.input,
            direction: Direction::Capture,
            seed,
        },
    };
    let m = measure(&leg, s.timeouts.listen).await;
    let (mut verdict, mut cause) = judge(c, &e.output, &e.capture, &m.observation);
    // A silence that fails the check is trusted only if the rig can hear itself.
    let needed_sound = match c {
        Check::Output => e.output.value == OutputExpect::Client,
        Check::Capture => e.capture.value == CaptureExpect::Redirected,
    };
    if verdict == Verdict::Fail
        && needed_sound
        && matches!(m.observation, Observation::Silent { .. })
    {
        let (out, inp) = match c {
            Check::Output => (
                s.probes.local.output.as_str(),
                s.probes.local.output_loopback.as_str(),
            ),
            Check::Capture => (
                s.probes.local.mic_feed.as_deref().unwrap_or("default"),
                s.probes.local.input.as_str(),
            ),
        };
        if let Err(why) = rig_hears_itself(local, out, inp, seed ^ 0x5eed, s.timeouts.listen).await
        {
            verdict = Verdict::Inconclusive;
            cause = format!(
                "{cause}; but {why}, so the silence proves nothing: fix the rig and run again"
            );
        } else {
            cause =
                format!("{cause} (the rig heard its own test signature, so the silence is real)");
        }
    }
    (m.observation, verdict, cause, m.evidence)
}

/// Fetches evidence from its probe (own budget) and writes the file as is.
async fn keep_evidence(
    dir: &Path,
    scenario: &str,
    c: Check,
    at: &EvidenceAt,
) -> Result<PathBuf, String> {
    let evidence = at
        .client
        .fetch_evidence(&at.handle, EVIDENCE_FETCH_BUDGET, |_| {})
        .await
        .map_err(|e| format!("fetching it: {e}"))?;
    write_evidence(
        dir,
        scenario,
        c,
        evidence.format.extension(),
        &evidence.bytes,
    )
}

fn write_evidence(
    dir: &Path,
    scenario: &str,
    c: Check,
    extension: &str,
    bytes: &[u8],
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let slug: String = scenario
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() {
                ch.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = String::new();
    for ch in slug.trim_matches('-').chars() {
        if !(ch == '-' && name.ends_with('-')) {
            name.push(ch);
        }
    }
    let path = dir.join(format!("{name}-{c}.{extension}"));
    std::fs::write(&path, bytes).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    Ok(path)
}

/// Runs every scenario file in turn, feeding `sink` every event (after applying it to the
/// run). Returns the finished run.
pub async fn run(
    files: &[PathBuf],
    options: &RunOptions,
    sink: &mut dyn FnMut(&Event, &Run),
) -> Run {
    let mut run = Run::new();
    let mut emit = |run: &mut Run, e: Event| {
        run.apply(&e);
        sink(&e, run);
    };
    let base_seed = options.seed.unwrap_or_else(|| {
        // Unique per run: a stale recording of an earlier run can never match.
        (unix_ms() * 1000.0) as u64 ^ u64::from(std::process::id()).rotate_left(32)
    });
    for (si, file) in files.iter().enumerate() {
        let loaded = Scenario::load(file)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                policy::expect(&s)
                    .map(|e| (s, e))
                    .map_err(|e| format!("{}: {e}", file.display()))
            });
        let (s, expectation) = match loaded {
            Ok(x) => x,
            Err(e) => {
                emit(&mut run, Event::ScenarioStarted(record(file, None, None)));
                emit(&mut run, Event::ScenarioError(e));
                emit(&mut run, Event::ScenarioFinished);
                continue;
            }
        };
        emit(
            &mut run,
            Event::ScenarioStarted(record(file, Some(&s), Some(expectation.clone()))),
        );
        let (local, remote) = tokio::join!(
            connect(&s, &s.probes.local, "local"),
            connect(&s, &s.probes.remote, "remote")
        );
        let (local, remote) = match (local, remote) {
            (Ok(l), Ok(r)) => (l, r),
            (l, r) => {
                let why: Vec<String> = [l.err(), r.err()].into_iter().flatten().collect();
                emit(&mut run, Event::ScenarioError(why.join("; ")));
                emit(&mut run, Event::ScenarioFinished);
                continue;
            }
        };
        emit(
            &mut run,
            Event::Preflight {
                probes: vec![summary(&local), summary(&remote)],
                warnings: preflight_warnings(&local, &remote),
            },
        );
        // The checks use disjoint devices and disjoint tone alphabets: they run together.
        let started = Instant::now();
        let seed = base_seed.wrapping_add(si as u64 * 16);
        let results = run_checks(&s, &expectation, &local, &remote, seed).await;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        for (i, (c, (observation, verdict, cause, evidence))) in results.into_iter().enumerate() {
            let evidence = match (&options.evidence_dir, evidence) {
                // Evidence for anything but a clean pass.
                (Some(dir), Some(at))
                    if verdict != Verdict::Pass
                        || matches!(observation, Observation::Detected { dropouts, .. } if dropouts > 0) =>
                {
                    match keep_evidence(dir, &s.name, c, &at).await {
                        Ok(p) => Some(p),
                        Err(e) => {
                            emit(&mut run, Event::Warning(format!("evidence not kept: {e}")));
                            None
                        }
                    }
                }
                _ => None,
            };
            let decided_by = match c {
                Check::Output => expectation.output.decided_by.clone(),
                Check::Capture => expectation.capture.decided_by.clone(),
            };
            emit(
                &mut run,
                Event::CheckFinished(CheckRecord {
                    check: c,
                    expected: expected_words(
                        c,
                        expectation.output.value,
                        expectation.capture.value,
                    )
                    .into(),
                    decided_by,
                    observation,
                    verdict,
                    cause,
                    seed: seed.wrapping_add(i as u64),
                    evidence,
                    duration_ms: took,
                }),
            );
        }
        emit(&mut run, Event::ScenarioFinished);
    }
    run
}

/// Runs the scenario's checks concurrently, in the scenario's order of results.
async fn run_checks(
    s: &Scenario,
    e: &Expectation,
    local: &Probe,
    remote: &Probe,
    seed: u64,
) -> Vec<(Check, (Observation, Verdict, String, Option<EvidenceAt>))> {
    let has = |c| s.checks.contains(&c);
    let out = async {
        if has(Check::Output) {
            Some(check(Check::Output, s, e, local, remote, seed).await)
        } else {
            None
        }
    };
    let cap = async {
        if has(Check::Capture) {
            Some(check(Check::Capture, s, e, local, remote, seed.wrapping_add(1)).await)
        } else {
            None
        }
    };
    let (o, c) = tokio::join!(out, cap);
    let mut by_check = vec![(Check::Output, o), (Check::Capture, c)];
    by_check.retain(|(_, r)| r.is_some());
    let mut results: Vec<_> = by_check
        .into_iter()
        .filter_map(|(k, r)| r.map(|r| (k, r)))
        .collect();
    results.sort_by_key(|(k, _)| s.checks.iter().position(|c| c == k));
    results
}

fn record(file: &Path, s: Option<&Scenario>, e: Option<Expectation>) -> ScenarioRecord {
    ScenarioRecord {
        name: s.map_or_else(|| file.display().to_string(), |s| s.name.clone()),
        file: file.to_path_buf(),
        product: s.map(|s| s.product),
        expectation: e,
        probes: vec![],
        warnings: vec![],
        checks: vec![],
        error: None,
        finished_unix_ms: None,
    }
}
