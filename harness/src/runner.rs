//! The runner: connects to both probes, runs preflight, then the checks, and emits events.
//! It never formats; reporters do.
//!
//! Every wait is bounded: connecting (the scenario's `timeouts.connect`), each request (the
//! probe client's own timeouts: the job's duration plus a margin), and the whole check. A
//! probe that dies or hangs makes the check `inconclusive`, never a hang.
//!
//! A check plays on one probe while the other listens. The player starts only once the
//! listener's device delivers audio ("armed"), and plays the signature again and again
//! until the listener hears it or gives up: real RDP opens the microphone channel only
//! when something records, so the first second or two of a capture path can be zeros, and
//! a single play would be lost in them.
//!
//! Attribution: whatever fails on the client rig (the local probe's loopback, microphone
//! feed or microphone, or the local probe itself) is about the rig, never a finding about
//! the session. Preflight resolves the local endpoints against the local probe's catalogue
//! and says at once which check cannot be made. When a check hears nothing, the rig tests
//! itself before the absence decides anything, whether the policy wanted sound or
//! silence: the local probe plays a rig signature and must hear it on the same input.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use earshot_probe::audio::{self, AudioErrorKind, DeviceDirection, DeviceSelector};
use earshot_probe::proto::auth::Token;
use earshot_probe::proto::client::{
    AuthedClient, Client, ClientConfig, ClientError, EvidenceHandle, ProbeListener,
};
use earshot_probe::proto::msg::{
    ListenRequest, PlayRequest, ProbeInfo, RecordRequest, SessionKind,
};
use earshot_probe::signal::{Direction, Signature};
use earshot_probe::unix_ms;
use tokio_util::sync::CancellationToken;

use crate::policy::{self, Expectation, PolicyError};
use crate::proof::{ListenSpan, PlayTiming, SilenceBound, SilenceProof};
use crate::report::{CheckRecord, Event, ProbeSummary, Run, ScenarioRecord};
use crate::scenario::{Check, ProbeSpec, Product, Scenario, ScenarioError, SessionRequirement};
use crate::verdict::{
    expected_on, judge, needs_sound, Judgement, Observation, RigProof, Side, Verdict,
};

mod fleet;
pub use fleet::Fleet;

/// How a run is done.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where evidence recordings go (FLAC, created when needed); none keeps no evidence.
    pub evidence_dir: Option<PathBuf>,
    /// Base seed of the signatures; each check adds its index. Random when None.
    pub seed: Option<u64>,
    /// Every scenario against each of these session hosts (`--inventory`); none: against
    /// the scenario's own remote probe.
    pub fleet: Option<Fleet>,
}

/// Why a scenario could not be run at all (before or while reaching its probes).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The scenario file is unusable.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// Its policy layers are unusable (e.g. a malformed .rdp file).
    #[error("{path}: {error}")]
    Policy {
        /// The scenario file.
        path: PathBuf,
        /// What is wrong.
        error: PolicyError,
    },
    /// No usable token for a probe.
    #[error("probes.{role}: {message}")]
    Token {
        /// `local` or `remote`.
        role: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// A probe could not be reached, did not dial in, or failed the handshake.
    #[error("{role} probe: {error}; {hint}")]
    Connect {
        /// `local` or `remote`.
        role: &'static str,
        /// The client's error.
        error: ClientError,
        /// What to check.
        hint: String,
    },
    /// A probe connected but did not describe itself.
    #[error("{role} probe: info: {error}")]
    Info {
        /// `local` or `remote`.
        role: &'static str,
        /// The client's error.
        error: ClientError,
    },
}

/// A scenario that loaded and whose expectation is known: ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The scenario.
    pub scenario: Scenario,
    /// What the policy engine worked out.
    pub expectation: Expectation,
}

/// Loads and validates every scenario file, collecting every error, so a run touches no
/// probe until all its scenarios are known good.
///
/// # Errors
/// Every file's [`SetupError`], in order.
pub fn prepare(files: &[PathBuf]) -> Result<Vec<Prepared>, Vec<SetupError>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match prepare_one(file) {
            Ok(p) => ok.push(p),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

fn prepare_one(file: &Path) -> Result<Prepared, SetupError> {
    let scenario = Scenario::load(file)?;
    let expectation = policy::expect(&scenario).map_err(|error| SetupError::Policy {
        path: file.to_path_buf(),
        error,
    })?;
    Ok(Prepared {
        scenario,
        expectation,
    })
}

/// A connected probe and what it said about itself.
struct Probe {
    role: &'static str,
    side: Side,
    client: AuthedClient,
    info: ProbeInfo,
    /// Probe clock minus harness clock, ms (to put both probes' times on one clock).
    clock_offset_ms: f64,
    /// The control link's round trip when connecting: the `info` request's, an upper
    /// bound (the probe lists its devices meanwhile).
    rtt: Duration,
}

fn token_for(s: &Scenario, spec: &ProbeSpec, role: &'static str) -> Result<Token, SetupError> {
    let message = |m: String| SetupError::Token { role, message: m };
    if let Some(f) = &spec.token_file {
        let path = s.resolve(f);
        return Token::from_file(&path).map_err(|e| message(format!("token_file: {e}")));
    }
    if let Some(var) = &spec.token_env {
        let text = std::env::var(var).map_err(|_| {
            message(format!(
                "token_env: the environment variable {var} is not set; export it with the \
                 probe's token"
            ))
        })?;
        return Token::new(&text, var).map_err(|e| message(format!("token_env: {e}")));
    }
    Err(message("no token configured".into()))
}

/// What the runner tells the reader while it waits for a probe to dial in.
fn dial_in_hint(bind: &str, spec: &ProbeSpec) -> String {
    let port = bind.rsplit_once(':').map_or("PORT", |(_, p)| p);
    let token = spec.token_file.as_ref().map_or_else(
        || "--token-file TOKEN".to_string(),
        |t| format!("--token-file {}", t.display()),
    );
    format!(
        "start `earshot-probe connect <this machine's address>:{port} {token}` inside the \
         user's remote session"
    )
}

async fn connect(s: &Scenario, spec: &ProbeSpec, role: &'static str) -> Result<Probe, SetupError> {
    let token = token_for(s, spec, role)?;
    let config = ClientConfig {
        connect_timeout: s.timeouts.connect,
        handshake_timeout: s.timeouts.connect,
        ..ClientConfig::default()
    };
    let client = match (&spec.address, &spec.dial_in) {
        (Some(addr), _) => Client::connect(addr, Some(&token), &config)
            .await
            .map_err(|error| SetupError::Connect {
                role,
                error,
                hint: format!(
                    "is `earshot-probe serve` running on {addr}, with the same token, and does \
                     a firewall let this machine in?"
                ),
            })?,
        (None, Some(bind)) => {
            let hint = dial_in_hint(bind, spec);
            let listener = ProbeListener::bind(bind, Some(token), config.clone())
                .await
                .map_err(|error| SetupError::Connect {
                    role,
                    error,
                    hint: format!("is {bind} an address of this machine, and free?"),
                })?;
            listener
                .accept(s.timeouts.connect)
                .await
                .map_err(|error| SetupError::Connect { role, error, hint })?
        }
        (None, None) => {
            return Err(SetupError::Token {
                role,
                message: "no address or dial_in".into(),
            })
        }
    };
    Probe::described(role, client)
        .await
        .map_err(|error| SetupError::Info { role, error })
}

impl Probe {
    /// Asks a connected probe who it is: its facts, its clock against the harness's, and
    /// the control link's round trip.
    async fn described(role: &'static str, client: AuthedClient) -> Result<Probe, ClientError> {
        let sent = unix_ms();
        let asked = Instant::now();
        let info = client.info().await?;
        let rtt = asked.elapsed();
        let received = unix_ms();
        Ok(Probe {
            role,
            side: if role == "local" {
                Side::Client
            } else {
                Side::Session
            },
            clock_offset_ms: info.now_unix_ms - (sent + received) / 2.0,
            client,
            info,
            rtt,
        })
    }
}

fn switch(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "true",
        Some(false) => "false",
        None => "not set (true)",
    }
}

/// What the probe read of its host's redirection settings, one line each.
fn host_settings(i: &ProbeInfo) -> Vec<String> {
    let Some(x) = &i.xrdp else {
        return vec![];
    };
    if let Some(e) = &x.error {
        return vec![format!("xrdp.ini {}: cannot be read: {e}", x.path)];
    }
    let mut lines = vec![format!(
        "xrdp.ini {}: allow_channels={}, rdpsnd={}, drdynvc={}",
        x.path,
        switch(x.allow_channels),
        switch(x.rdpsnd),
        switch(x.drdynvc)
    )];
    if x.xvnc_rdpsnd.is_some() || x.xorg_rdpsnd.is_some() {
        lines.push(format!(
            "xrdp.ini {}: [Xvnc] channel.rdpsnd={}, [Xorg] channel.rdpsnd={}",
            x.path,
            switch(x.xvnc_rdpsnd),
            switch(x.xorg_rdpsnd)
        ));
    }
    lines
}

/// What the session host has for check `c`, as a fact to put next to the verdict, held
/// against what the scenario says was rolled out: a switch the scenario sets that the
/// host does not have means the rollout did not reach the host.
///
/// Only for the xrdp product: a Windows or AVD scenario's verdict does not rest on an
/// xrdp.ini the host happens to have (it stays in the probe's summary).
fn host_fact(s: &Scenario, remote: &ProbeInfo, c: Check) -> Option<String> {
    if s.product != Product::Xrdp {
        return None;
    }
    let x = remote.xrdp.as_ref().filter(|x| x.error.is_none())?;
    let said = s.policy.xrdp.clone().unwrap_or_default();
    // allow_channels governs both directions; each has its own channel switch.
    let channel = match c {
        Check::Output | Check::Continuity | Check::Quality => ("rdpsnd", x.rdpsnd, said.rdpsnd),
        Check::Capture => ("drdynvc", x.drdynvc, said.drdynvc),
    };
    let switches = [
        ("allow_channels", x.allow_channels, said.allow_channels),
        channel,
    ];
    let has: Vec<String> = switches
        .iter()
        .map(|(k, v, _)| format!("{k}={}", switch(*v)))
        .collect();
    let differ: Vec<String> = switches
        .iter()
        .filter(|(_, host, said)| said.is_some_and(|want| host.unwrap_or(true) != want))
        .map(|(k, host, said)| {
            format!(
                "{k}={} where the scenario says {k}={}",
                switch(*host),
                said.unwrap_or(true)
            )
        })
        .collect();
    Some(if differ.is_empty() {
        format!("the session host's {} has {}", x.path, has.join(", "))
    } else {
        format!(
            "the session host's {} has {}: the setting did not reach this host",
            x.path,
            differ.join(", ")
        )
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
                .to_lowercase()
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
        // Only the session host's settings govern redirection.
        host_settings: if p.side == Side::Session {
            let mut lines = host_settings(i);
            lines.extend(i.host_config.iter().flat_map(crate::host::summary_lines));
            lines
        } else {
            vec![]
        },
    }
}

/// Why the probes are not the ones the scenario names, if they are not: a local and a
/// remote address that reach one probe process (the verdicts would be about the client,
/// heard by itself), or a probe on another machine than its `host` key says.
fn wrong_probes(s: &Scenario, local: &Probe, remote: &Probe) -> Option<String> {
    let id = &remote.info.instance_id;
    if !id.is_empty() && *id == local.info.instance_id {
        return Some(format!(
            "both addresses reach one probe: the local address ({}) and the remote address \
             ({}) answer as the same earshot-probe (instance {id} on {}), so the checks would \
             measure that machine against itself; point probes.remote at the probe inside the \
             user's remote session",
            local.client.peer(),
            remote.client.peer(),
            remote.info.hostname
        ));
    }
    let session = &remote.info.session;
    if s.probes.remote.session == SessionRequirement::Remote && session.kind != SessionKind::Remote
    {
        return Some(format!(
            "the remote probe on {} shows no remote desktop session ({}): its checks would \
             measure that machine's own audio, not redirection; start earshot-probe inside \
             the user's RDP session (on Windows, not on the console), or for a lab without \
             RDP set probes.remote.session = \"any\"",
            remote.info.hostname,
            session_words(session)
        ));
    }
    for (role, spec, p) in [
        ("local", &s.probes.local, local),
        ("remote", &s.probes.remote, remote),
    ] {
        if let Some(want) = &spec.host {
            if !crate::inventory::same_host(want, &p.info.hostname) {
                return Some(format!(
                    "the {role} probe ({}) runs on `{}`, but probes.{role}.host says `{want}`: \
                     the verdicts would be about the wrong machine; check probes.{role}'s \
                     address (or the host key)",
                    p.client.peer(),
                    p.info.hostname
                ));
            }
        }
    }
    None
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
    if remote.info.session.kind != SessionKind::Remote {
        // Only with probes.remote.session = "any": otherwise the scenario ended before.
        w.push(format!(
            "the remote probe on {} shows no remote desktop session ({}); the scenario accepts \
             any (probes.remote.session = \"any\"), so the verdicts are about the audio path \
             between the two probes, not an RDP session",
            remote.info.hostname,
            session_words(&remote.info.session)
        ));
    }
    w
}

/// A probe's session as it showed it, in words: its kind and markers.
fn session_words(session: &earshot_probe::proto::msg::RemoteSession) -> String {
    let kind = match session.kind {
        SessionKind::Remote => "remote",
        SessionKind::Local => "the console",
        SessionKind::Unknown => "kind unknown",
    };
    if session.evidence.is_empty() {
        format!("{kind}, no markers")
    } else {
        format!("{kind}: {}", session.evidence.join(", "))
    }
}

/// The local (client rig) endpoints a check needs, as (scenario key, selector, direction).
fn rig_endpoints(s: &Scenario, c: Check) -> Vec<(&'static str, &str, DeviceDirection)> {
    let local = &s.probes.local;
    let feed = local.mic_feed.as_deref().unwrap_or("default");
    match c {
        Check::Output | Check::Continuity | Check::Quality => vec![
            (
                "probes.local.output_loopback",
                local.output_loopback.as_str(),
                DeviceDirection::Input,
            ),
            (
                "probes.local.output",
                local.output.as_str(),
                DeviceDirection::Output,
            ),
        ],
        Check::Capture => vec![
            ("probes.local.mic_feed", feed, DeviceDirection::Output),
            (
                "probes.local.input",
                local.input.as_str(),
                DeviceDirection::Input,
            ),
        ],
    }
}

/// Whether the client rig has every endpoint check `c` needs: the first one missing, as
/// the observation that makes the check inconclusive.
fn rig_preflight(s: &Scenario, local: &Probe, c: Check) -> Option<Observation> {
    let catalog = match &local.info.devices {
        Ok(list) => list,
        Err(e) => {
            return Some(Observation::Error {
                side: Side::Client,
                detail: format!(
                    "local probe on {}: cannot list devices: {e}",
                    local.info.hostname
                ),
            })
        }
    };
    for (key, selector, direction) in rig_endpoints(s, c) {
        if let Err(e) = audio::select(catalog, &DeviceSelector::parse(selector), direction) {
            return Some(Observation::NoDevice {
                side: Side::Client,
                endpoint: selector.to_string(),
                detail: format!(
                    "{key} = \"{selector}\" on the local probe ({}): {}",
                    local.info.hostname, e.message
                ),
            });
        }
    }
    None
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

/// A recording left on the listening probe, fetched only once the verdict is out and says
/// it is kept.
#[derive(Debug, Clone)]
pub struct EvidenceAt {
    client: AuthedClient,
    handle: EvidenceHandle,
}

/// Time budget of one evidence fetch, separate from the check's: a starved link delays
/// the evidence, never the verdict.
pub const EVIDENCE_FETCH_BUDGET: Duration = Duration::from_secs(60);

/// The outcome of playing on one probe while the other listens.
struct Measured {
    observation: Observation,
    evidence: Option<EvidenceAt>,
    /// For a check that should hear nothing: the plays held against the listen.
    proof: Option<SilenceProof>,
}

/// What a failed request on `who` means for the check: the session lacking the endpoint
/// is a finding (`no_device` in the session); a client rig lacking one, and every other
/// failure, is about the side that failed.
fn failed(who: &Probe, what: &str, endpoint: &str, e: &ClientError) -> Observation {
    match e.audio() {
        Some(a)
            if matches!(a.kind, AudioErrorKind::NoDevice | AudioErrorKind::NoMatch)
                && who.side == Side::Session =>
        {
            if let Some(down) = audio_service_down(&who.info) {
                // "No endpoint" is a finding only from a live audio service.
                return Observation::Error {
                    side: who.side,
                    detail: format!(
                        "{} probe ({}): audio service unavailable: {down}, so `{endpoint}` \
                         missing proves nothing about the policy; start the service and run \
                         again",
                        who.role, who.info.hostname
                    ),
                };
            }
            Observation::NoDevice {
                side: who.side,
                endpoint: endpoint.to_string(),
                detail: format!("{} probe ({}): {}", who.role, who.info.hostname, a.message),
            }
        }
        Some(a) if matches!(a.kind, AudioErrorKind::NoDevice | AudioErrorKind::NoMatch) => {
            Observation::NoDevice {
                side: who.side,
                endpoint: endpoint.to_string(),
                detail: format!("{} probe ({}): {}", who.role, who.info.hostname, a.message),
            }
        }
        _ => Observation::Error {
            side: who.side,
            detail: format!("{} probe: {what} on `{endpoint}`: {e}", who.role),
        },
    }
}

/// What the player confirmed: each play's start on the probe's clock (for latency) and
/// its timing on the harness's clock (for a silence's proof).
struct Played {
    /// Each play's start as the probe reports it, put on the harness's wall clock.
    starts: Vec<f64>,
    /// Each play's request and answer on the harness's monotonic clock.
    timings: Vec<PlayTiming>,
    /// When the listener's `armed` note arrived.
    armed: Instant,
    /// When the player stopped the listen because a play had proven the silence.
    listen_cancelled: Option<Instant>,
}

/// Why `info`'s audio service is not up, if the probe showed it down: no audio host
/// (a PulseAudio server that stopped answering), or on Windows the Windows Audio or its
/// Endpoint Builder service in a state other than running. A service whose state could
/// not be read (not installed, unknown) is not taken as down.
fn audio_service_down(info: &ProbeInfo) -> Option<String> {
    if let Err(e) = &info.audio_host {
        return Some(e.message.clone());
    }
    const DOWN: &[&str] = &[
        "stopped",
        "stop_pending",
        "start_pending",
        "paused",
        "pause_pending",
        "continue_pending",
    ];
    info.host_config
        .iter()
        .flat_map(|c| &c.services)
        .find(|sv| {
            ["Audiosrv", "AudioEndpointBuilder"]
                .iter()
                .any(|n| sv.name.eq_ignore_ascii_case(n))
                && DOWN.contains(&sv.state.as_str())
        })
        .map(|sv| {
            format!(
                "the {} service ({}) is {}",
                sv.display_name, sv.name, sv.state
            )
        })
}

/// Plays again and again once the listener is armed, until `stop` (the listener is done)
/// or a play fails. Returns every confirmed play, or the first play's error. With
/// `silence`, once a play has proven the silence (see [`SilenceBound::proven_at`]), the
/// listener is stopped: waiting out the rest of its listen would prove nothing more.
async fn play_until_heard(
    leg: &Leg<'_>,
    req: &PlayRequest,
    armed: tokio::sync::oneshot::Receiver<()>,
    stop: &CancellationToken,
    cancel_listen: &CancellationToken,
    silence: Option<SilenceBound>,
) -> Option<Result<Played, ClientError>> {
    // A listener that never arms fails on its own (start timeout) and ends the listen.
    if armed.await.is_err() {
        return None;
    }
    let mut played = Played {
        starts: Vec::new(),
        timings: Vec::new(),
        armed: Instant::now(),
        listen_cancelled: None,
    };
    while !stop.is_cancelled() {
        let asked = Instant::now();
        match leg.player.client.play_cancellable(req, stop).await {
            Ok(r) => {
                played
                    .starts
                    .push(r.started_unix_ms - leg.player.clock_offset_ms);
                let timing = PlayTiming {
                    asked,
                    answered: Instant::now(),
                    played: Duration::from_secs_f64(r.played_ms.max(0.0) / 1000.0),
                };
                played.timings.push(timing);
                if let Some(at) = silence.and_then(|b| b.proven_at(played.armed, &timing)) {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        () = stop.cancelled() => {}
                    }
                    tracing::debug!(
                        "{} -> {}: silence proven {:.2} s after the listener armed",
                        leg.play_on,
                        leg.listen_on,
                        played.armed.elapsed().as_secs_f64()
                    );
                    played.listen_cancelled = Some(Instant::now());
                    cancel_listen.cancel();
                    break;
                }
            }
            Err(e) if played.starts.is_empty() => {
                // Nothing was played: stop listening now rather than at the timeout.
                cancel_listen.cancel();
                return Some(Err(e));
            }
            // A later play failing leaves what was played to be judged.
            Err(_) => break,
        }
    }
    Some(Ok(played))
}

/// How a measurement proves its plays: the bound they are held to, and whether the listen
/// ends as soon as one has proven a silence (a check that should hear nothing).
#[derive(Debug, Clone, Copy)]
struct Proof {
    bound: SilenceBound,
    stop_when_proven: bool,
}

/// Listens on one probe, plays on the other once armed, and returns what was heard. With
/// `proof`, the plays are held against the listen (the measurement's proof), and with
/// `stop_when_proven` the listen ends as soon as one has proven a silence, else at
/// `listen_for`.
async fn measure(leg: &Leg<'_>, listen_for: Duration, proof: Option<Proof>) -> Measured {
    let listen_req = ListenRequest {
        device: DeviceSelector::parse(leg.listen_on),
        seed: leg.seed,
        direction: leg.direction,
        timeout_ms: listen_for.as_millis() as u64,
        evidence: true,
    };
    let play_req = PlayRequest {
        continuity_ms: None,
        quality: false,
        device: DeviceSelector::parse(leg.play_on),
        seed: leg.seed,
        direction: leg.direction,
    };
    let cancel = CancellationToken::new();
    let stop_playing = CancellationToken::new();
    let (armed_tx, armed_rx) = tokio::sync::oneshot::channel();
    // Before the request is sent: the listen's earliest end counts from here.
    let t0 = Instant::now();
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
    let stop_at = proof.filter(|p| p.stop_when_proven).map(|p| p.bound);
    let playing = play_until_heard(leg, &play_req, armed_rx, &stop_playing, &cancel, stop_at);
    let (heard, played) = tokio::join!(listening, playing);
    tracing::debug!(
        "{} -> {}: {:.2} s, its device delivering after {:?} ms, {} play(s)",
        leg.play_on,
        leg.listen_on,
        t0.elapsed().as_secs_f64(),
        heard.as_ref().ok().and_then(|h| h.report.armed_ms),
        played
            .as_ref()
            .and_then(|p| p.as_ref().ok())
            .map_or(0, |p| p.starts.len())
    );
    let no_evidence = |observation| Measured {
        observation,
        evidence: None,
        proof: None,
    };
    match (played, heard) {
        (Some(Err(e)), _) => no_evidence(failed(leg.player, "play", leg.play_on, &e)),
        (_, Err(e)) => no_evidence(failed(leg.listener, "listen", leg.listen_on, &e)),
        (None, Ok(_)) => no_evidence(Observation::Error {
            side: leg.listener.side,
            detail: format!(
                "{} probe: `{}` never delivered audio",
                leg.listener.role, leg.listen_on
            ),
        }),
        (Some(Ok(played)), Ok(heard)) => {
            let r = &heard.report;
            let a = &r.analysis;
            let starts = &played.starts;
            let proof = proof.map(|Proof { bound, .. }| {
                let listen = ListenSpan {
                    asked: t0,
                    armed: played.armed,
                    ran: Duration::from_secs_f64(r.elapsed_ms.max(0.0) / 1000.0),
                    cancelled: played.listen_cancelled.filter(|_| r.cancelled),
                };
                crate::proof::prove(bound, &listen, &played.timings)
            });
            let observation = if a.detected {
                // On the harness's clock: the play heard is the last one started before
                // the onset (a little slack for the onset estimate).
                let onset = r.onset_unix_ms.map(|o| o - leg.listener.clock_offset_ms);
                // An onset estimated before every start (a stream that delivers its first
                // audio in a late burst) is put on the first play, negative as measured.
                let heard_play = onset.and_then(|o| {
                    starts
                        .iter()
                        .enumerate()
                        .rev()
                        .find(|(_, s)| **s <= o + 20.0)
                        .or_else(|| starts.first().map(|s| (0, s)))
                        .map(|(i, s)| (i, o - s))
                });
                Observation::Detected {
                    side: leg.listener.side,
                    level_dbfs: a.level_dbfs,
                    latency_ms: heard_play.map(|(_, l)| l),
                    snr_db: a.median_snr_db(),
                    dropouts: a.dropouts.len(),
                    symbols: u32::try_from(a.symbols_matched).unwrap_or(u32::MAX),
                    plays: heard_play.map_or(1, |(i, _)| i as u32 + 1),
                }
            } else {
                Observation::not_detected(
                    leg.listener.side,
                    a.rms_dbfs,
                    u32::try_from(a.symbols_matched).unwrap_or(u32::MAX),
                    a.confidence,
                    a.analyzed_ms,
                )
            };
            Measured {
                observation,
                evidence: heard.evidence.map(|handle| EvidenceAt {
                    client: leg.listener.client.clone(),
                    handle,
                }),
                proof,
            }
        }
    }
}

/// The capture check, with its rig proof made from the same plays: while the local probe
/// plays the check's signature into the microphone feed, it also listens on the client's
/// own microphone. The session's absence is then proven by the very sound that did not
/// reach it, at no extra time.
async fn measure_capture_with_rig(
    leg: &Leg<'_>,
    listen_for: Duration,
    proof: Option<Proof>,
    local: &Probe,
    rig_input: &str,
) -> (Measured, RigProof) {
    let cancel = CancellationToken::new();
    let rig_req = ListenRequest {
        device: DeviceSelector::parse(rig_input),
        seed: leg.seed,
        direction: leg.direction,
        timeout_ms: listen_for.as_millis() as u64,
        evidence: false,
    };
    let (armed_tx, _armed_rx) = tokio::sync::oneshot::channel();
    let rig = local.client.listen_armed(&rig_req, &cancel, armed_tx);
    let check = async {
        let m = measure(leg, listen_for, proof).await;
        cancel.cancel();
        m
    };
    let (m, heard) = tokio::join!(check, rig);
    let proof = match heard {
        Ok(h) if h.report.analysis.detected => RigProof::Heard,
        Ok(h) => RigProof::Failed(format!(
            "the client rig cannot hear itself: the local probe played into `{}` and its \
             microphone `{rig_input}` heard {}",
            leg.play_on,
            if h.report.analysis.rms_dbfs > crate::verdict::SILENCE_DBFS {
                "sound, but not the signature"
            } else {
                "nothing"
            }
        )),
        Err(e) => RigProof::Failed(format!(
            "the client rig cannot hear itself: listening on its microphone `{rig_input}` \
             failed: {e}"
        )),
    };
    (m, proof)
}

/// Whether the local rig hears its own signature on `input` when it plays on `output`.
async fn rig_hears_itself(
    local: &Probe,
    output: &str,
    input: &str,
    direction: Direction,
    seed: u64,
    wait: Duration,
) -> RigProof {
    let leg = Leg {
        player: local,
        play_on: output,
        listener: local,
        listen_on: input,
        direction,
        seed,
    };
    let started = Instant::now();
    let observation = measure(&leg, wait, None).await.observation;
    tracing::debug!(
        "the rig's proof ({output} -> {input}) took {:.2} s: {observation:?}",
        started.elapsed().as_secs_f64()
    );
    match observation {
        Observation::Detected { .. } => RigProof::Heard,
        other => RigProof::Failed(format!(
            "the client rig cannot hear itself: the local probe played on `{output}` and \
             heard on `{input}`: {}",
            other.describe()
        )),
    }
}

/// One check's result, before it becomes a report record.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// Which check.
    pub check: Check,
    /// What was observed.
    pub observation: Observation,
    /// What the rig proved, when an absence needed it.
    pub rig: RigProof,
    /// The verdict and its cause.
    pub judgement: Judgement,
    /// For a check that should hear nothing: its plays held against its listen.
    pub silence_proof: Option<SilenceProof>,
    /// What the session host has for this check (a Windows host's policy, as its probe
    /// read it).
    pub host: Option<crate::host::HostView>,
    /// Where the recording waits on the listening probe, when it kept one.
    pub evidence: Option<EvidenceAt>,
    /// The seed of the signature.
    pub seed: u64,
    /// When the check started (unix ms, harness clock).
    pub started_unix_ms: f64,
    /// How long it took.
    pub duration: Duration,
}

/// What proves a play fell inside a check's listen: the path may start carrying sound at
/// any moment up to `opens` after the listener's device delivers audio (an on-demand
/// microphone channel: what is left of `timeouts.channel_open`; an output channel is open
/// already), and a signature that crossed is heard at most `timeouts.latency` after it
/// has played out. An absence decides a check only with such a play: a check that should
/// hear nothing passes on it, one that should hear sound fails on it.
///
/// `settled` is how long the session's microphone request has stood on the current
/// connection (see [`settled_for`]): the channel's opening time counts from then, not from
/// the listen, so only what is left of `timeouts.channel_open` is waited for.
fn proof_bound(c: Check, s: &Scenario, settled: Option<Duration>) -> SilenceBound {
    let opens = match s.path_of(c) {
        Check::Output | Check::Continuity | Check::Quality => Duration::ZERO,
        Check::Capture => s
            .timeouts
            .channel_open
            .saturating_sub(settled.unwrap_or(Duration::ZERO)),
    };
    SilenceBound {
        opens,
        latency: s.timeouts.latency,
    }
}

/// How long a check listens at most: `listen` (`timeouts.listen`, or twice that for a
/// second listen) or the check's proof window, whichever is longer, plus `links`, the
/// control links' round trips (a play's request and answer cross the player's link, the
/// `armed` note the listener's): a slow link delays the plays, and must not end the listen
/// before them. Never longer than `most` (what the listener accepts).
///
/// The proof window is how long a fast link's plays take to put one whole inside the
/// listen ([`SilenceBound::proven_at`]): the first play starts within a signature's length
/// of the listener's first audio; each play holds its stream a while past its signature
/// for the server to play it out, so they repeat about every two signatures' lengths, and
/// a whole one starts within that of the path opening. A check that should hear nothing
/// ends as soon as a play has proven the silence; one that should hear sound as soon as it
/// is heard. An absence without a play inside the listen is inconclusive.
fn listen_window(b: SilenceBound, listen: Duration, links: Duration, most: Duration) -> Duration {
    let start = if b.opens.is_zero() {
        Signature::DURATION
    } else {
        b.opens + Signature::DURATION * 2
    };
    ((start + Signature::DURATION + b.latency).max(listen) + links).min(most)
}

/// The longest listen a check asks for.
const MAX_LISTEN: Duration = Duration::from_secs(120);

/// How long the session probe's input `device` has been held open on the current RDP
/// connection (`--prime-input`): the shorter of how long it has delivered audio and how
/// long the connection has stood unchanged. Both are needed: an input held open since
/// before a reconnect proves nothing about the new connection's microphone channel, which
/// opens anew when the session's audio asks for it. `None` when the probe holds another
/// input, none, or cannot tell the connection's age (Windows, a desktop, an older probe):
/// the window then waits the whole `timeouts.channel_open`.
pub(crate) fn settled_for(info: &ProbeInfo, device: &str) -> Option<Duration> {
    let held = info
        .primed_inputs
        .iter()
        .chain(&info.primed_input)
        .find(|held| held.device == device)?;
    let ms = held.open_ms?.min(held.connection_ms?);
    Some(Duration::from_millis(ms))
}

/// What a shortened capture window credits less than the session's ages say: the ages
/// are measured at the probe, a moment before the harness has them, and the check after
/// the window compares a second measurement with the first; this much of a difference
/// between the two is the measuring, not a reconnect.
const SETTLED_ALLOWANCE: Duration = Duration::from_millis(250);

/// Whether the credit a shortened capture window took still holds after the window: asked
/// again, the session's input and connection have stood unchanged since at least
/// `needed_before` before `window_start`, so no reconnect or reopening fell in or just
/// before the window. The probe measures its answer at some moment before it arrives:
/// taking it as of the arrival asks for the most.
async fn settled_through(
    remote: &Probe,
    device: &str,
    window_start: Instant,
    needed_before: Duration,
) -> bool {
    let Ok(info) = remote.client.info().await else {
        return false;
    };
    let Some(settled) = settled_for(&info, device) else {
        return false;
    };
    settled >= window_start.elapsed() + needed_before
}

/// Runs one check and judges it.
async fn check(
    c: Check,
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
    seed: u64,
) -> CheckOutcome {
    let started_unix_ms = unix_ms();
    let started = Instant::now();
    let local_spec = &s.probes.local;
    let feed = local_spec.mic_feed.as_deref().unwrap_or("default");
    let (leg, rig_out, rig_in) = match c {
        Check::Output | Check::Continuity | Check::Quality => (
            Leg {
                player: remote,
                play_on: &s.probes.remote.output,
                listener: local,
                listen_on: &local_spec.output_loopback,
                direction: Direction::Output,
                seed,
            },
            local_spec.output.as_str(),
            local_spec.output_loopback.as_str(),
        ),
        Check::Capture => (
            Leg {
                player: local,
                play_on: feed,
                listener: remote,
                listen_on: &s.probes.remote.input,
                direction: Direction::Capture,
                seed,
            },
            feed,
            local_spec.input.as_str(),
        ),
    };
    // Capture proves the rig with its own plays (the client's microphone hears the feed);
    // output proves it afterwards, since the check holds the loopback it would listen on.
    let needs = needs_sound(c, e.output.value, e.capture.value);
    let run = |listen_for: Duration, bound: SilenceBound| {
        let leg = &leg;
        // A check that should hear nothing stops listening once a play proves it.
        let proof = Proof {
            bound,
            stop_when_proven: !needs,
        };
        async move {
            match c {
                Check::Capture => {
                    let (m, rig) =
                        measure_capture_with_rig(leg, listen_for, Some(proof), local, rig_in).await;
                    (m, Some(rig))
                }
                Check::Output | Check::Continuity | Check::Quality => {
                    (measure(leg, listen_for, Some(proof)).await, None)
                }
            }
        }
    };
    // A blocked capture's window is shorter when the session has held its input open on
    // the current connection for a while (--prime-input); the credit is checked again
    // after the window, and a window it no longer covers is listened to again in full.
    let settled = match c {
        Check::Capture if !needs => settled_for(&remote.info, &s.probes.remote.input)
            .map(|d| d.saturating_sub(SETTLED_ALLOWANCE)),
        _ => None,
    };
    let (bound, full_bound) = (proof_bound(c, s, settled), proof_bound(c, s, None));
    let links = local.rtt + remote.rtt;
    let most = Duration::from_millis(leg.listener.info.max_capture_ms).min(MAX_LISTEN);
    let window = listen_window(bound, s.timeouts.listen, links, most);
    let full_window = listen_window(full_bound, s.timeouts.listen, links, most);
    tracing::debug!(
        "{c}: listen window {:.2} s (whole {:.2} s), credited {settled:?}",
        window.as_secs_f64(),
        full_window.as_secs_f64()
    );
    let mut relistened = None;
    let (m, rig_seen) = match rig_fault {
        Some(observation) => (
            Measured {
                observation,
                evidence: None,
                proof: None,
            },
            None,
        ),
        None => {
            let window_start = Instant::now();
            let (m, rig_seen) = run(window, bound).await;
            let credit = settled.unwrap_or_default().min(s.timeouts.channel_open);
            if bound != full_bound
                && m.observation.is_absence()
                && !settled_through(remote, &s.probes.remote.input, window_start, credit).await
            {
                relistened = Some(full_window);
                run(full_window, full_bound).await
            } else {
                (m, rig_seen)
            }
        }
    };
    // A path that should carry sound but brought none may be slow (a starved link, a
    // channel that opens late): before that absence can fail the check, listen once more,
    // twice as long. A fail after a rollout sends an admin hunting; it is worth the wait.
    let mut second_listen = None;
    let (m, rig_seen) = if needs && m.observation.is_absence() {
        let longer = listen_window(full_bound, s.timeouts.listen * 2, links, most);
        let (again, rig_again) = run(longer, full_bound).await;
        second_listen = Some(longer);
        match again.observation {
            // A second attempt that failed outright says nothing new: keep the first.
            Observation::Error { .. } | Observation::NoDevice { .. } => (m, rig_seen),
            _ => (again, rig_again),
        }
    } else {
        (m, rig_seen)
    };
    // An absence decides nothing until the rig proves it could have heard.
    let rig = match (m.observation.is_absence(), rig_seen) {
        (false, _) => RigProof::NotTried,
        (true, Some(RigProof::Heard)) => RigProof::Heard,
        // The check's plays stop with its window, which can end before the client's own
        // microphone (slower to start than a primed session input) has heard a whole
        // signature: that says nothing about the rig yet. Prove it on its own, as output
        // does, before calling it broken.
        (true, _) => {
            rig_hears_itself(
                local,
                rig_out,
                rig_in,
                leg.direction,
                seed ^ 0x5eed,
                s.timeouts.listen,
            )
            .await
        }
    };
    let mut judgement = judge(c, &e.output, &e.capture, &m.observation, &rig);
    // An absence decides only with its proof: a play confirmed whole inside the listen.
    if let (true, Verdict::Pass | Verdict::Fail, Some(proof)) = (
        m.observation.is_absence(),
        judgement.verdict,
        m.proof.as_ref(),
    ) {
        if !proof.holds() {
            judgement = Judgement {
                verdict: Verdict::Inconclusive,
                cause: format!(
                    "expected {} ({}); observed {}, but {}; so the absence proves nothing: is \
                     the control link to the {} probe slow or congested (a VPN, a satellite \
                     link)? Raise timeouts.listen or run the harness nearer the probes",
                    expected_on(c, s.path_of(c), e),
                    e.decided_by(s.path_of(c)),
                    m.observation.describe(),
                    proof.shortfall(),
                    leg.player.role,
                ),
            };
        }
    }
    if let Some(full) = relistened {
        judgement.cause = format!(
            "{} (the session's RDP connection or held input changed around the shortened \
             window: listened again, crediting none of its age, for up to {:.2} s)",
            judgement.cause,
            full.as_secs_f64()
        );
    }
    if let Some(longer) = second_listen {
        judgement.cause = format!(
            "{} (after a second listen of {:.0} s)",
            judgement.cause,
            longer.as_secs_f64()
        );
    }
    if let Some(fact) = host_fact(s, &remote.info, c) {
        judgement.cause = format!("{} ({fact})", judgement.cause);
    }
    let host = remote
        .info
        .host_config
        .as_ref()
        .filter(|_| s.product != Product::Xrdp)
        .map(|cfg| crate::host::view(&s.policy.session_host, cfg, c, judgement.verdict));
    if let Some(h) = &host {
        judgement = judgement.without_restart_guess();
        judgement.cause = format!("{}; on the session host: {}", judgement.cause, h.cause);
    }
    CheckOutcome {
        check: c,
        observation: m.observation,
        rig,
        judgement,
        silence_proof: m.proof,
        host,
        evidence: m.evidence,
        seed,
        started_unix_ms,
        duration: started.elapsed(),
    }
}

/// Fetches a recording from its probe within [`EVIDENCE_FETCH_BUDGET`], telling `progress`
/// how far it got, and writes it as is (FLAC, or WAV beyond 8 channels).
async fn keep_evidence(
    dir: &Path,
    scenario: &str,
    c: Check,
    at: &EvidenceAt,
    mut progress: impl FnMut(u64, u64) + Send,
) -> Result<PathBuf, String> {
    let evidence = at
        .client
        .fetch_evidence(&at.handle, EVIDENCE_FETCH_BUDGET, |p| {
            progress(p.received, p.total)
        })
        .await
        .map_err(|e| format!("fetching it from the probe: {e}"))?;
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

/// Connects both probes, telling the reader every few seconds what it waits for.
async fn connect_both(
    s: &Scenario,
    emit: &mut dyn FnMut(Event),
) -> (Result<Probe, SetupError>, Result<Probe, SetupError>) {
    let dialing: Vec<(&str, String)> = [("local", &s.probes.local), ("remote", &s.probes.remote)]
        .into_iter()
        .filter_map(|(role, spec)| {
            spec.dial_in
                .as_ref()
                .map(|bind| (role, format!("on {bind}: {}", dial_in_hint(bind, spec))))
        })
        .collect();
    for (role, how) in &dialing {
        emit(Event::Waiting(format!(
            "waiting up to {} s for the {role} probe to dial in {how}",
            s.timeouts.connect.as_secs()
        )));
    }
    let both = async {
        tokio::join!(
            connect(s, &s.probes.local, "local"),
            connect(s, &s.probes.remote, "remote")
        )
    };
    tokio::pin!(both);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tokio::select! {
            r = &mut both => return r,
            _ = tick.tick() => {
                if !dialing.is_empty() {
                    emit(Event::Waiting(format!(
                        "still waiting for a probe to dial in ({} s of {} s)",
                        started.elapsed().as_secs(),
                        s.timeouts.connect.as_secs()
                    )));
                }
            }
        }
    }
}

/// Runs every prepared scenario in turn, feeding `sink` every event (after applying it to
/// the run). Returns the finished run.
pub async fn run(
    scenarios: &[Prepared],
    options: &RunOptions,
    sink: &mut dyn FnMut(&Event, &Run),
) -> Run {
    let mut run = Run::new();
    let base_seed = options.seed.unwrap_or_else(|| {
        // Unique per run: a stale recording of an earlier run can never match.
        (unix_ms() * 1000.0) as u64 ^ u64::from(std::process::id()).rotate_left(32)
    });
    if let Some(fleet) = &options.fleet {
        fleet::run(scenarios, options, fleet, base_seed, &mut run, sink).await;
        return run;
    }
    for (si, p) in scenarios.iter().enumerate() {
        let mut emit = |e: Event| {
            run.apply(&e);
            sink(&e, &run);
        };
        run_scenario(
            p,
            options,
            base_seed.wrapping_add(si as u64 * 16),
            &mut emit,
        )
        .await;
    }
    run
}

async fn run_scenario(p: &Prepared, options: &RunOptions, seed: u64, emit: &mut dyn FnMut(Event)) {
    let (s, expectation) = (&p.scenario, &p.expectation);
    emit(Event::ScenarioStarted(record(s, expectation)));
    let (local, remote) = match connect_both(s, emit).await {
        (Ok(l), Ok(r)) => (l, r),
        (l, r) => {
            let why: Vec<String> = [l.err(), r.err()]
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .collect();
            emit(Event::ScenarioError(why.join("; ")));
            emit(Event::ScenarioFinished);
            return;
        }
    };
    run_connected(s, expectation, (local, remote), options, seed, emit).await;
}

/// A scenario's run once both probes answered: preflight, the checks, the evidence.
async fn run_connected(
    s: &Scenario,
    expectation: &Expectation,
    (local, remote): (Probe, Probe),
    options: &RunOptions,
    seed: u64,
    emit: &mut dyn FnMut(Event),
) {
    // A session host layer taken from the host: the expectation follows what it has.
    let from_host = match session_layer_from_host(s, &remote) {
        Ok(None) => None,
        Ok(Some((taken, notes))) => {
            for n in notes {
                emit(Event::Warning(n));
            }
            emit(Event::Expectation(taken.1.clone()));
            Some(taken)
        }
        Err(why) => {
            emit(Event::ScenarioError(why));
            emit(Event::ScenarioFinished);
            return;
        }
    };
    let (s, expectation) = match &from_host {
        Some((scenario, e)) => (scenario, e),
        None => (s, expectation),
    };
    if let Some(why) = wrong_probes(s, &local, &remote) {
        emit(Event::ScenarioError(why));
        emit(Event::ScenarioFinished);
        return;
    }
    let mut warnings = preflight_warnings(&local, &remote);
    // Resolved once: the warning now, the check's inconclusive observation later.
    let rig_faults: Vec<(Check, Observation)> = s
        .checks
        .iter()
        .filter_map(|c| {
            // Continuity and quality need the rig of their path's check.
            let needs = match s.path_of(*c) {
                Check::Quality => Check::Output,
                path => path,
            };
            rig_preflight(s, &local, needs).map(|o| (*c, o))
        })
        .collect();
    for (c, o) in &rig_faults {
        warnings.push(format!(
            "the {c} check cannot be made: {}; it will be inconclusive",
            o.describe()
        ));
    }
    emit(Event::Preflight {
        probes: vec![summary(&local), summary(&remote)],
        warnings,
    });
    // The checks use disjoint devices and disjoint tone alphabets: they run together.
    let outcomes = run_checks(s, expectation, (&local, &remote), &rig_faults, seed).await;
    // The verdicts first; the evidence after them, each fetch on its own budget.
    let mut to_fetch = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        // A clean pass keeps no evidence; a degraded pass does.
        let clean_pass = o.judgement.verdict == crate::verdict::Verdict::Pass
            && !matches!(
                o.observation,
                Observation::Detected { dropouts: 1.., .. } | Observation::Degraded { .. }
            );
        if let (Some(dir), Some(at), false) = (&options.evidence_dir, &o.evidence, clean_pass) {
            to_fetch.push((i, o.check, dir.clone(), at.clone()));
        }
        let path = s.path_of(o.check);
        emit(Event::CheckFinished(CheckRecord {
            check: o.check,
            expected: expected_on(o.check, path, expectation).into(),
            decided_by: expectation.decided_by(path).to_string(),
            observation: o.observation,
            rig_proof: match o.rig {
                RigProof::NotTried => None,
                RigProof::Heard => Some("the rig heard its own test signature".into()),
                RigProof::Failed(why) => Some(why),
            },
            verdict: o.judgement.verdict,
            cause: o.judgement.cause,
            silence_proof: o.silence_proof,
            host: o.host,
            seed: o.seed,
            evidence: None,
            evidence_error: None,
            started_unix_ms: o.started_unix_ms,
            duration_ms: o.duration.as_secs_f64() * 1000.0,
        }));
    }
    for (index, check, dir, at) in to_fetch {
        let started = Instant::now();
        let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (r, t) = (received.clone(), total.clone());
        let fetch = keep_evidence(&dir, &s.name, check, &at, move |got, of| {
            r.store(got, std::sync::atomic::Ordering::Relaxed);
            t.store(of, std::sync::atomic::Ordering::Relaxed);
        });
        tokio::pin!(fetch);
        // Progress while a slow link carries it.
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        let kept = loop {
            tokio::select! {
                r = &mut fetch => break r,
                _ = tick.tick() => emit(Event::Waiting(format!(
                    "fetching the {check} evidence: {} of {} kB after {:.0} s (verdict already \
                     given)",
                    received.load(std::sync::atomic::Ordering::Relaxed) / 1000,
                    total.load(std::sync::atomic::Ordering::Relaxed) / 1000,
                    started.elapsed().as_secs_f64()
                ))),
            }
        };
        emit(Event::Evidence {
            index,
            outcome: kept.map_err(|e| {
                format!(
                    "the {check} evidence was not kept after {:.1} s: {e}; the verdict stands",
                    started.elapsed().as_secs_f64()
                )
            }),
        });
    }
    emit(Event::ScenarioFinished);
}

/// For a scenario whose session host layer is `from_host`: the scenario with the layer the
/// remote probe read, its expectation, and notes on values that could not be taken as
/// they are. `None` for a scenario that declares its layer.
#[allow(clippy::type_complexity)]
fn session_layer_from_host(
    s: &Scenario,
    remote: &Probe,
) -> Result<Option<((Scenario, Expectation), Vec<String>)>, String> {
    if !s.policy.session_host.from_host {
        return Ok(None);
    }
    let Some(cfg) = &remote.info.host_config else {
        return Err(format!(
            "the scenario takes the session host layer from the host (from_host = true), but \
             the remote probe ({} on {}) reported no host policy: only the Windows probe \
             reads it; run earshot-probe.exe inside the Windows session, or declare the \
             settings in [policy.session_host]",
            remote.info.os, remote.info.hostname
        ));
    };
    let (layer, mut notes) = crate::host::layer_from_host(cfg);
    let mut taken = s.clone();
    taken.policy.session_host = layer;
    let e = policy::expect(&taken).map_err(|e| {
        format!("the session host layer read from the host gives no expectation: {e}")
    })?;
    notes.insert(
        0,
        format!(
            "the session host layer was taken from the host: {}",
            crate::host::describe_layer(&taken.policy.session_host)
        ),
    );
    Ok(Some(((taken, e), notes)))
}

/// How long the recorder runs, from its first audio, before the continuity stream starts
/// (from the request, with a probe that cannot say when its device delivers: longer than a
/// tunnel source takes to deliver its first audio, about 1 s).
const STREAM_LEAD: Duration = Duration::from_millis(1500);
/// Recording after the stream's end, beyond the path's latency allowance.
const STREAM_TAIL: Duration = Duration::from_millis(1500);
/// Less of the stream than played, beyond this, is a stream cut short.
const STREAM_CUT: Duration = Duration::from_millis(300);

/// The continuity check: one side plays the continuity stream on its path (output: the
/// session's output, recorded on the client's loopback; capture: the client's microphone
/// feed, recorded on the session's input), the recording probe accounts for every sample,
/// and the scenario's `[continuity]` limits judge it. Runs alone, after the other checks:
/// it holds the devices of the check of its path.
async fn continuity_check(
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
    seed: u64,
) -> CheckOutcome {
    let started_unix_ms = unix_ms();
    let started = Instant::now();
    let (observation, reasons, evidence) =
        measure_continuity(s, e, (local, remote), rig_fault).await;
    let path = s.continuity.check();
    let judgement =
        crate::verdict::judge_continuity(path, &e.output, &e.capture, &observation, &reasons);
    let outcome = CheckOutcome {
        check: Check::Continuity,
        observation,
        rig: RigProof::NotTried,
        judgement,
        silence_proof: None,
        host: None,
        evidence,
        seed,
        started_unix_ms,
        duration: started.elapsed(),
    };
    with_host_fact(outcome, s, &remote.info, path)
}

/// A stream check's outcome with what an xrdp host has for its path added to the cause.
fn with_host_fact(
    mut o: CheckOutcome,
    s: &Scenario,
    remote: &ProbeInfo,
    path: Check,
) -> CheckOutcome {
    if let Some(fact) = host_fact(s, remote, path) {
        o.judgement.cause = format!("{} ({fact})", o.judgement.cause);
    }
    o
}

/// One stream check's play and recording: who plays what where, who records where.
struct StreamLeg<'a> {
    /// The stream in words ("continuity stream", "quality probe signal").
    what: &'static str,
    /// The probe feature it needs on both sides.
    feature: &'static str,
    player: &'a Probe,
    play: PlayRequest,
    recorder: &'a Probe,
    record: RecordRequest,
    /// How long the recorder runs before the play starts, from its first audio.
    lead: Duration,
    /// How long the play lasts.
    length: Duration,
    /// The scenario key that sets the length, for the error that says it is too long.
    length_key: &'static str,
}

/// Plays and records one stream. `Err` is the observation that ends the check, with the
/// recording where there is one.
async fn play_and_record(
    leg: &StreamLeg<'_>,
) -> Result<
    (earshot_probe::audio::RecordReport, Option<EvidenceAt>),
    (Observation, Option<EvidenceAt>),
> {
    let (player, recorder) = (leg.player, leg.recorder);
    for p in [player, recorder] {
        if !p.info.features.iter().any(|f| f == leg.feature) {
            return Err((
                Observation::Error {
                    side: p.side,
                    detail: format!(
                        "the {} probe (earshot-probe {} on {}) cannot play or analyse the {}: \
                         it offers [{}], this harness needs `{}`; update it to the build of \
                         this harness (earshot {})",
                        p.role,
                        p.info.probe_version,
                        p.info.hostname,
                        leg.what,
                        p.info.features.join(", "),
                        leg.feature,
                        earshot_probe::VERSION
                    ),
                },
                None,
            ));
        }
    }
    let record = Duration::from_millis(leg.record.duration_ms);
    for (p, needs, what) in [(recorder, record, "record"), (player, leg.length, "play")] {
        if needs.as_millis() as u64 > p.info.max_capture_ms {
            return Err((
                Observation::Error {
                    side: p.side,
                    detail: format!(
                        "the {} needs the {} probe to {what} for {:.1} s; it accepts at most \
                         {:.1} s: start it with --max-capture-secs {}, or shorten {}",
                        leg.what,
                        p.role,
                        needs.as_secs_f64(),
                        p.info.max_capture_ms as f64 / 1000.0,
                        needs.as_secs() + 1,
                        leg.length_key
                    ),
                },
                None,
            ));
        }
    }
    let (play_on, record_on) = (leg.play.device.to_string(), leg.record.device.to_string());
    // The lead runs from the moment the recorder's device delivers audio (a first stream
    // on a client's audio server can take a second to open, and a signal played before
    // would be lost); a probe that cannot say so gets the lead from the request.
    let says_armed = recorder
        .info
        .features
        .iter()
        .any(|f| f == earshot_probe::proto::msg::RECORD_ARMED);
    let (armed_tx, armed_rx) = tokio::sync::oneshot::channel();
    let never = CancellationToken::new();
    let recording = recorder.client.record_armed(&leg.record, &never, armed_tx);
    let playing = async {
        // Dropped unsent: the recording ended (failed) before its device delivered.
        if says_armed && armed_rx.await.is_err() {
            return None;
        }
        tokio::time::sleep(leg.lead).await;
        Some(player.client.play(&leg.play).await)
    };
    let (recorded, played) = tokio::join!(recording, playing);
    let recorded = match (played, recorded) {
        (Some(Err(e)), _) => return Err((failed(player, "play", &play_on, &e), None)),
        (_, Err(e)) => return Err((failed(recorder, "record", &record_on, &e), None)),
        (None, Ok(_)) => {
            return Err((
                Observation::Error {
                    side: recorder.side,
                    detail: format!(
                        "the {} probe's recording of `{record_on}` ended before its device \
                         delivered any audio, so the {} was not played",
                        recorder.role, leg.what
                    ),
                },
                None,
            ))
        }
        (Some(Ok(_)), Ok(r)) => r,
    };
    let evidence = recorded.evidence.map(|handle| EvidenceAt {
        client: recorder.client.clone(),
        handle,
    });
    // Audio the recorder itself lost (its ring overflowed, the device reported an xrun)
    // would read as damage done by the path: the recording rig's fault, not the session's.
    let health = &recorded.report.health;
    if health.dropped_samples > 0 || health.xruns > 0 {
        return Err((
            Observation::Error {
                side: recorder.side,
                detail: format!(
                    "the {} probe's recording of `{record_on}` itself lost audio ({} samples \
                     dropped, {} xruns): what it heard cannot be put on the path; run again on \
                     a less loaded machine",
                    recorder.role, health.dropped_samples, health.xruns
                ),
            },
            evidence,
        ));
    }
    Ok((recorded.report, evidence))
}

/// The error observation of a probe that recorded but did not analyse what it was asked.
fn no_analysis(recorder: &Probe, what: &str) -> Observation {
    Observation::Error {
        side: recorder.side,
        detail: format!(
            "the {} probe recorded but returned no {what} analysis",
            recorder.role
        ),
    }
}

/// What the continuity check observed, the limits it broke and where its recording waits.
async fn measure_continuity(
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
) -> (Observation, Vec<String>, Option<EvidenceAt>) {
    let nothing = |o: Observation| (o, Vec::new(), None);
    let path = s.continuity.check();
    if !needs_sound(path, e.output.value, e.capture.value) {
        return nothing(Observation::Error {
            side: Side::Session,
            detail: format!("not measured: the policy does not redirect {path}"),
        });
    }
    if let Some(fault) = rig_fault {
        return nothing(fault);
    }
    let feed = s.probes.local.mic_feed.as_deref().unwrap_or("default");
    // (player, its device, recorder, its device); a capture path's recorder waits for the
    // on-demand microphone channel before the stream starts.
    let (player, play_on, recorder, record_on, lead) = match path {
        Check::Capture => (
            local,
            feed,
            remote,
            s.probes.remote.input.as_str(),
            STREAM_LEAD.max(s.timeouts.channel_open + Duration::from_millis(500)),
        ),
        _ => (
            remote,
            s.probes.remote.output.as_str(),
            local,
            s.probes.local.output_loopback.as_str(),
            STREAM_LEAD,
        ),
    };
    let stream = s.continuity.duration;
    let record = lead + stream + s.timeouts.latency + STREAM_TAIL;
    let leg = StreamLeg {
        what: "continuity stream",
        feature: earshot_probe::signal::continuity::FEATURE,
        player,
        play: PlayRequest {
            device: DeviceSelector::parse(play_on),
            seed: 0,
            direction: match path {
                Check::Capture => Direction::Capture,
                _ => Direction::Output,
            },
            continuity_ms: Some(stream.as_millis() as u64),
            quality: false,
        },
        recorder,
        record: RecordRequest {
            device: DeviceSelector::parse(record_on),
            duration_ms: record.as_millis() as u64,
            evidence: true,
            continuity: true,
            quality: false,
        },
        lead,
        length: stream,
        length_key: "continuity.duration",
    };
    let (report, evidence) = match play_and_record(&leg).await {
        Ok(r) => r,
        Err((o, evidence)) => return (o, Vec::new(), evidence),
    };
    let Some(c) = report.continuity else {
        return (no_analysis(recorder, "continuity"), Vec::new(), evidence);
    };
    let played_ms = stream.as_secs_f64() * 1000.0;
    let mut reasons = if c.found {
        s.continuity.limits().reasons(&c)
    } else {
        Vec::new()
    };
    if c.found && c.tone_ms + STREAM_CUT.as_secs_f64() * 1000.0 < played_ms {
        reasons.push(format!(
            "only {:.1} s of the {:.1} s stream arrived: it stopped or started late",
            c.tone_ms / 1000.0,
            played_ms / 1000.0
        ));
    }
    use earshot_probe::signal::continuity::EventKind;
    let observation = Observation::Continuity {
        side: recorder.side,
        found: c.found,
        played_ms,
        heard_ms: c.tone_ms,
        gaps: c.count(EventKind::Gap),
        glitches: c.count(EventKind::Glitch),
        breaks: c
            .events
            .iter()
            .take(20)
            .map(|b| crate::verdict::Break {
                kind: match b.kind {
                    EventKind::Gap => "gap".into(),
                    EventKind::Glitch => "glitch".into(),
                },
                at_ms: b.at_ms,
                length_ms: b.length_ms,
                slip_samples: b.slip_samples,
            })
            .collect(),
        drift_ppm: c.drift_ppm,
        level_dbfs: c.level_dbfs,
        level_std_db: c.level_std_db,
        error_floor_db: c.error_floor_db,
    };
    (observation, reasons, evidence)
}

/// How long the client's recorder runs, from its first audio, before the quality signal
/// plays; the analysis needs only half of the signal's first part. The recording then lasts
/// the signal and the path's latency allowance, no more: the check's whole time is the
/// recorder's start, this lead, 1.15 s and `timeouts.latency`.
const QUALITY_LEAD: Duration = Duration::from_millis(300);

/// The quality check: the session plays the quality probe signal on its output, the client
/// records it on its loopback and measures it, and the class is judged against the quality
/// the policy allows. Runs after the output and capture checks: it holds their devices.
async fn quality_check(
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
    seed: u64,
) -> CheckOutcome {
    let started_unix_ms = unix_ms();
    let started = Instant::now();
    let (observation, evidence) = if !needs_sound(Check::Quality, e.output.value, e.capture.value) {
        (
            Observation::Error {
                side: Side::Session,
                detail: "not measured: the policy does not redirect output".into(),
            },
            None,
        )
    } else if let Some(fault) = rig_fault {
        (fault, None)
    } else {
        measure_quality(s, (local, remote)).await
    };
    let judgement = crate::verdict::judge_quality(&e.output, &e.quality, &observation);
    let outcome = CheckOutcome {
        check: Check::Quality,
        observation,
        rig: RigProof::NotTried,
        judgement,
        silence_proof: None,
        host: None,
        evidence,
        seed,
        started_unix_ms,
        duration: started.elapsed(),
    };
    with_host_fact(outcome, s, &remote.info, Check::Quality)
}

/// What the quality check observed, and where its recording waits.
async fn measure_quality(
    s: &Scenario,
    (local, remote): (&Probe, &Probe),
) -> (Observation, Option<EvidenceAt>) {
    use earshot_probe::signal::quality;
    let length = Duration::from_millis(u64::from(quality::duration_ms()));
    let record = QUALITY_LEAD + length + s.timeouts.latency;
    let leg = StreamLeg {
        what: "quality probe signal",
        feature: quality::FEATURE,
        player: remote,
        play: PlayRequest {
            device: DeviceSelector::parse(&s.probes.remote.output),
            seed: 0,
            direction: Direction::Output,
            continuity_ms: None,
            quality: true,
        },
        recorder: local,
        record: RecordRequest {
            device: DeviceSelector::parse(&s.probes.local.output_loopback),
            duration_ms: record.as_millis() as u64,
            evidence: true,
            continuity: false,
            quality: true,
        },
        lead: QUALITY_LEAD,
        length,
        length_key: "timeouts.latency",
    };
    let (report, evidence) = match play_and_record(&leg).await {
        Ok(r) => r,
        Err(ended) => return ended,
    };
    let Some(q) = report.quality else {
        return (no_analysis(local, "quality"), evidence);
    };
    let observation = Observation::Quality {
        side: local.side,
        found: q.found,
        class: q.class.words().into(),
        rate_class: q.rate_class.map(|r| r.words().into()),
        band_edge_hz: q.band_edge_hz,
        first_missing_hz: q.first_missing_hz,
        holes_hz: q.holes_hz.clone(),
        sinad_db: q.sinad_db,
        noise_floor_dbfs: (!q.digital_silence).then_some(q.noise_floor_dbfs).flatten(),
        gain_db: q.gain_db,
        step_db: q.step_db,
        codec_signs: q
            .codec_signs
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| c.words().into())
            })
            .collect(),
        speed: q.speed,
    };
    (observation, evidence)
}

/// Runs the scenario's checks concurrently, in the scenario's order of results.
async fn run_checks(
    s: &Scenario,
    e: &Expectation,
    probes: (&Probe, &Probe),
    rig_faults: &[(Check, Observation)],
    seed: u64,
) -> Vec<CheckOutcome> {
    let fault_for = |c: Check| {
        rig_faults
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, o)| o.clone())
    };
    let one = |c: Check, seed: u64| async move {
        if !s.checks.contains(&c) {
            return None;
        }
        Some(check(c, s, e, probes, fault_for(c), seed).await)
    };
    let (o, c) = tokio::join!(
        one(Check::Output, seed),
        one(Check::Capture, seed.wrapping_add(1))
    );
    // Continuity and quality hold their path's devices: after the others, one at a time.
    let stream = if s.checks.contains(&Check::Continuity) {
        let fault = fault_for(Check::Continuity);
        Some(continuity_check(s, e, probes, fault, seed.wrapping_add(2)).await)
    } else {
        None
    };
    let quality = if s.checks.contains(&Check::Quality) {
        let fault = fault_for(Check::Quality);
        Some(quality_check(s, e, probes, fault, seed.wrapping_add(3)).await)
    } else {
        None
    };
    let mut results: Vec<CheckOutcome> = [o, c, stream, quality].into_iter().flatten().collect();
    results.sort_by_key(|r| s.checks.iter().position(|c| *c == r.check));
    results
}

fn record(s: &Scenario, e: &Expectation) -> ScenarioRecord {
    ScenarioRecord {
        name: s.name.clone(),
        file: s.path.clone(),
        product: Some(s.product),
        expectation: Some(e.clone()),
        probes: vec![],
        warnings: vec![],
        checks: vec![],
        error: None,
        host: None,
        started_unix_ms: unix_ms(),
        finished_unix_ms: None,
    }
}
