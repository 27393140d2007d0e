//! `earshot doctor`'s probing: the tokens, both probes (who, where, which session, the
//! link), their devices and what each likely is, and the client rig proving that it
//! hears itself on the keys the scenario gives; where it does not, the rig's other
//! devices are tried, so that the diagnosis can name the keys that work.

use super::*;
use crate::doctor::{DeviceView, Diagnosis, Finding, ProbeView, RigKeys, Status};

/// How long the rig listens for its own signature on the scenario's keys.
const RIG_WAIT: Duration = Duration::from_secs(3);
/// ... and on each other candidate device.
const CANDIDATE_WAIT: Duration = Duration::from_secs(2);
/// At most this many other devices are tried for one key.
const MAX_CANDIDATES: usize = 6;
/// A round trip above this makes the latency figures loose (their uncertainty is half of
/// it) and every request slower.
const SLOW_LINK: Duration = Duration::from_millis(500);
/// A clock offset above this is worth a note: the harness corrects it, but it says the
/// machines' time is not kept.
const CLOCK_NOTE_MS: f64 = 2000.0;
/// Words in a device's id or name that say it is a virtual cable (a feed for a
/// microphone).
const CABLE_WORDS: &[&str] = &["cable", "virtual", "feed", "vb-audio", "blackhole"];
/// Words that say a session device is the RDP client's, redirected.
const REDIRECTED_WORDS: &[&str] = &["xrdp", "remote audio", "rdp", "freerdp"];

/// The client rig's keys as the scenario gives them.
fn given_rig(s: &Scenario) -> RigKeys {
    let spec = &s.probes.local;
    RigKeys {
        output: spec.output.clone(),
        output_loopback: spec.output_loopback.clone(),
        mic_feed: spec.mic_feed.clone(),
        input: spec.input.clone(),
    }
}

/// Examines `s`'s rig: tokens, probes, devices, the rig's own loopback and microphone
/// feed. Never fails: whatever cannot be reached is a finding.
pub async fn diagnose(s: &Scenario, emit: &mut dyn FnMut(Event)) -> Diagnosis {
    let mut findings = Vec::new();
    let mut rig = given_rig(s);
    let mut diagnosis = Diagnosis {
        scenario: s.path.clone(),
        probes: Vec::new(),
        findings: Vec::new(),
        rig: rig.clone(),
        keys: Vec::new(),
    };
    // Tokens first: without them no probe answers.
    let mut tokens_ok = true;
    for (role, spec) in [("local", &s.probes.local), ("remote", &s.probes.remote)] {
        match token_for(s, spec, role) {
            Ok(_) => findings.push(Finding::new(
                Status::Ok,
                "tokens",
                format!(
                    "probes.{role}: {}",
                    spec.token_file.as_ref().map_or_else(
                        || format!(
                            "token_env {} is set",
                            spec.token_env.as_deref().unwrap_or("")
                        ),
                        |f| format!("token_file {} is readable", s.resolve(f).display())
                    )
                ),
            )),
            Err(e) => {
                tokens_ok = false;
                findings.push(Finding::new(Status::Problem, "tokens", e.to_string()).fix(
                    "make one with `earshot-probe token new FILE`, start both probes with \
                     `--token-file FILE` and name it in the scenario's `token_file`",
                ));
            }
        }
    }
    if !tokens_ok {
        diagnosis.findings = findings;
        return diagnosis;
    }
    let (local, remote) = connect_both(s, emit).await;
    let mut reached = |r: Result<Probe, SetupError>, role: &str| match r {
        Ok(p) => {
            findings.push(Finding::new(
                Status::Ok,
                format!("{role} probe"),
                format!(
                    "reached on {} (earshot-probe {} on {})",
                    p.client.peer(),
                    p.info.probe_version,
                    p.info.hostname
                ),
            ));
            Some(p)
        }
        Err(e) => {
            findings.push(Finding::new(
                Status::Problem,
                format!("{role} probe"),
                format!("cannot be reached: {e}"),
            ));
            None
        }
    };
    let local = reached(local, "local");
    let remote = reached(remote, "remote");
    for p in local.iter().chain(remote.iter()) {
        diagnosis.probes.push(view(s, p));
        findings.extend(about_probe(s, p));
    }
    if let (Some(l), Some(r)) = (&local, &remote) {
        if let Some(why) = wrong_probes(s, l, r) {
            findings.push(Finding::new(Status::Problem, "probes", why));
        }
    }
    if let Some(r) = &remote {
        findings.extend(about_session(s, r));
    }
    if let Some(l) = &local {
        let (found, keys) = rig_test(s, l, &mut findings).await;
        rig = found;
        diagnosis.keys = keys;
    }
    diagnosis.rig = rig;
    diagnosis.findings = findings;
    diagnosis
}

/// What a probe is, for the diagnosis: its facts and its devices with their likely roles.
fn view(s: &Scenario, p: &Probe) -> ProbeView {
    let i = &p.info;
    let (devices, devices_error) = match &i.devices {
        Ok(list) => (
            list.iter()
                .map(|d| DeviceView {
                    direction: match d.direction {
                        DeviceDirection::Output => "output",
                        DeviceDirection::Input => "input",
                    },
                    id: d.id.clone(),
                    name: d.name.clone(),
                    is_default: d.is_default,
                    is_monitor: d.is_monitor,
                    roles: roles(s, p, list, d),
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.message.clone())),
    };
    ProbeView {
        role: p.role,
        peer: p.client.peer().to_string(),
        version: i.probe_version.clone(),
        host: i.hostname.clone(),
        os: format!("{} {}", i.os, i.arch),
        audio: match &i.audio_host {
            Ok(h) => h.clone(),
            Err(e) => format!("unavailable: {}", e.message),
        },
        session: session_words(&i.session),
        rtt_ms: p.rtt.as_secs_f64() * 1000.0,
        clock_offset_ms: p.clock_offset_ms,
        devices,
        devices_error,
    }
}

/// What `d` likely is on `p`'s machine, and the scenario keys that select it.
fn roles(
    s: &Scenario,
    p: &Probe,
    catalog: &[earshot_probe::audio::DeviceInfo],
    d: &earshot_probe::audio::DeviceInfo,
) -> Vec<String> {
    let mut roles = Vec::new();
    let words = format!("{} {}", d.id, d.name).to_lowercase();
    let has = |list: &[&str]| list.iter().any(|w| words.contains(w));
    match (p.side, d.direction) {
        (Side::Client, DeviceDirection::Input) if d.is_monitor => {
            roles.push("a loopback: it hears an output (an output_loopback)".into())
        }
        (Side::Client, DeviceDirection::Output) if has(CABLE_WORDS) => {
            roles.push("a virtual cable? (a mic_feed if the microphone hears it)".into())
        }
        (Side::Client, DeviceDirection::Output) if d.is_default => {
            roles.push("where the RDP client plays".into())
        }
        (Side::Client, DeviceDirection::Input) if d.is_default => {
            roles.push("what the RDP client records".into())
        }
        (Side::Session, DeviceDirection::Input) if d.is_monitor => {
            roles.push("a loopback of a session output, not a microphone".into())
        }
        (Side::Session, _) if has(REDIRECTED_WORDS) => {
            roles.push("the session's redirected endpoint".into())
        }
        (Side::Session, DeviceDirection::Output) if d.is_default => {
            roles.push("where the session plays".into())
        }
        (Side::Session, DeviceDirection::Input) if d.is_default => {
            roles.push("the session's microphone".into())
        }
        _ => {}
    }
    let spec = if p.side == Side::Client {
        &s.probes.local
    } else {
        &s.probes.remote
    };
    let mut keys: Vec<(&str, &str, DeviceDirection)> = vec![
        ("output", spec.output.as_str(), DeviceDirection::Output),
        ("input", spec.input.as_str(), DeviceDirection::Input),
    ];
    if p.side == Side::Client {
        keys.push((
            "output_loopback",
            spec.output_loopback.as_str(),
            DeviceDirection::Input,
        ));
        if let Some(f) = &spec.mic_feed {
            keys.push(("mic_feed", f.as_str(), DeviceDirection::Output));
        }
    }
    for (key, selector, direction) in keys {
        if audio::select(catalog, &DeviceSelector::parse(selector), direction)
            .is_ok_and(|picked| picked.id == d.id)
        {
            roles.push(format!("probes.{}.{key}", p.role));
        }
    }
    roles
}

/// What one probe's facts say: its version, its audio service, the link.
fn about_probe(s: &Scenario, p: &Probe) -> Vec<Finding> {
    let mut out = Vec::new();
    let topic = format!("{} probe", p.role);
    let me = env!("CARGO_PKG_VERSION");
    if p.info.probe_version != me {
        out.push(
            Finding::new(
                Status::Note,
                &topic,
                format!(
                    "is version {}, the harness {me}: results may differ",
                    p.info.probe_version
                ),
            )
            .fix("install the same earshot version on the harness and both probes"),
        );
    }
    if let Some(down) = audio_service_down(&p.info) {
        out.push(
            Finding::new(
                Status::Problem,
                &topic,
                format!("its audio service is not up: {down}"),
            )
            .fix(if p.side == Side::Session {
                "start the session's audio service (Windows: the Windows Audio service; \
                 xrdp: the session's PipeWire or PulseAudio with the xrdp module), then \
                 restart the probe"
            } else {
                "start the client's audio service, then restart the probe"
            }),
        );
    } else if let Err(e) = &p.info.devices {
        out.push(Finding::new(
            Status::Problem,
            &topic,
            format!("cannot list its devices: {}", e.message),
        ));
    }
    let rtt_ms = p.rtt.as_secs_f64() * 1000.0;
    if p.rtt > SLOW_LINK {
        out.push(
            Finding::new(
                Status::Note,
                &topic,
                format!(
                    "the control link's round trip is {rtt_ms:.0} ms: every request waits \
                     that long, and latency figures are uncertain by ±{:.0} ms",
                    rtt_ms / 2.0
                ),
            )
            .fix(format!(
                "run the harness nearer the probes, or allow for it: timeouts.connect (now \
                 {} s) and timeouts.listen (now {} s)",
                s.timeouts.connect.as_secs_f64(),
                s.timeouts.listen.as_secs_f64()
            )),
        );
    } else {
        out.push(Finding::new(
            Status::Ok,
            &topic,
            format!(
                "control link round trip {rtt_ms:.0} ms, clock offset {:+.0} ms",
                p.clock_offset_ms
            ),
        ));
    }
    if p.clock_offset_ms.abs() > CLOCK_NOTE_MS {
        out.push(
            Finding::new(
                Status::Note,
                &topic,
                format!(
                    "its clock is {:+.1} s off the harness's: the harness corrects latency \
                     for it, but evidence file times will disagree",
                    p.clock_offset_ms / 1000.0
                ),
            )
            .fix("keep both machines' time (NTP, or `w32tm /resync` on Windows)"),
        );
    }
    // The continuity stream needs the probes to allow its length: the recorder records
    // it with its lead and tail, the player plays it.
    if s.checks.contains(&Check::Continuity) {
        let path = s.continuity.path;
        let records = (p.side == Side::Client) == (path == AudioPath::Output);
        let need = if records {
            continuity_record_length(s, path)
        } else {
            s.continuity.duration
        };
        if p.info.max_capture_ms < need.as_millis() as u64 {
            out.push(
                Finding::new(
                    Status::Problem,
                    &topic,
                    format!(
                        "takes at most {:.1} s per request, but the continuity stream needs it \
                         to {} for {:.1} s",
                        p.info.max_capture_ms as f64 / 1000.0,
                        if records { "record" } else { "play" },
                        need.as_secs_f64()
                    ),
                )
                .fix(format!(
                    "start the probe with `--max-capture-secs {}`, or shorten \
                     continuity.duration",
                    need.as_secs() + 1
                )),
            );
        }
    }
    out
}

/// What the session's probe shows of the session's endpoints: a missing one is not the
/// rig's fault (a blocked policy removes it), so it is a note, not a problem.
fn about_session(s: &Scenario, remote: &Probe) -> Vec<Finding> {
    let mut out = Vec::new();
    let Ok(catalog) = &remote.info.devices else {
        return out;
    };
    let paths: Vec<AudioPath> = s.checks.iter().map(|c| s.path_of(*c)).collect();
    for (path, key, selector, direction) in [
        (
            AudioPath::Output,
            "probes.remote.output",
            &s.probes.remote.output,
            DeviceDirection::Output,
        ),
        (
            AudioPath::Capture,
            "probes.remote.input",
            &s.probes.remote.input,
            DeviceDirection::Input,
        ),
    ] {
        if !paths.contains(&path) {
            continue;
        }
        match audio::select(catalog, &DeviceSelector::parse(selector), direction) {
            Ok(d) => out.push(Finding::new(
                Status::Ok,
                "session",
                format!("{key} = \"{selector}\" is {} ({})", d.id, d.name),
            )),
            Err(e) => out.push(
                Finding::new(
                    Status::Note,
                    "session",
                    format!("{key} = \"{selector}\" selects nothing now: {}", e.message),
                )
                .fix(
                    "if the policy redirects this direction, the run will report the missing \
                     endpoint as the finding; if it should be there, reconnect the RDP client",
                ),
            ),
        }
    }
    // A capture check on a session whose input is opened on demand waits for the channel.
    if paths.contains(&AudioPath::Capture)
        && remote.info.session.kind == SessionKind::Remote
        && remote.info.primed_inputs.is_empty()
        && remote.info.primed_input.is_none()
    {
        out.push(
            Finding::new(
                Status::Note,
                "session",
                "the session's probe holds no input open: RDP opens the microphone channel \
                 only when something records, so each capture check first waits for it \
                 (timeouts.channel_open)",
            )
            .fix("start the session's probe with `--prime-input default`"),
        );
    }
    out
}

/// Whether the client rig hears itself on the scenario's keys, for each path a check
/// needs; where it does not, the other devices are tried. Returns the keys that work and
/// the changes to make.
async fn rig_test(
    s: &Scenario,
    local: &Probe,
    findings: &mut Vec<Finding>,
) -> (RigKeys, Vec<(String, String)>) {
    let spec = &s.probes.local;
    let mut rig = given_rig(s);
    let mut keys = Vec::new();
    let Ok(catalog) = &local.info.devices else {
        return (rig, keys);
    };
    let paths: Vec<AudioPath> = s.checks.iter().map(|c| s.path_of(*c)).collect();
    let seed = unix_ms() as u64;
    if paths.contains(&AudioPath::Output) {
        // The loopback is what is tried: the RDP client plays on `output`.
        let candidates = candidates(
            catalog,
            DeviceDirection::Input,
            &spec.output_loopback,
            |d| d.is_monitor,
        );
        let outcome = prove(
            local,
            (&spec.output, Some(spec.output_loopback.as_str())),
            &candidates,
            Tried::Input,
            Direction::Output,
            seed,
        )
        .await;
        match outcome {
            Proved::AsGiven(took) => findings.push(Finding::new(
                Status::Ok,
                "rig: output loopback",
                format!(
                    "the local probe played on `{}` and heard it on `{}` ({took:.1} s)",
                    spec.output, spec.output_loopback
                ),
            )),
            Proved::Instead(found, why) => {
                findings.push(
                    Finding::new(
                        Status::Problem,
                        "rig: output loopback",
                        format!(
                            "{why}; it does hear it on `{found}`: that is the loopback of \
                             the client's output"
                        ),
                    )
                    .fix(format!("probes.local.output_loopback = \"{found}\"")),
                );
                keys.push(("probes.local.output_loopback".into(), found.clone()));
                rig.output_loopback = found;
            }
            Proved::Not(why) => findings.push(
                Finding::new(Status::Problem, "rig: output loopback", why).fix(format!(
                    "give the client a loopback of `{}` (PulseAudio/PipeWire: its monitor, \
                     `loopback:{}`; Windows: WASAPI loopback works with `loopback:default`, \
                     or enable Stereo Mix, or route the client through a virtual cable) and \
                     name it in probes.local.output_loopback",
                    spec.output, spec.output
                )),
            ),
        }
    }
    if paths.contains(&AudioPath::Capture) {
        let feed = spec.mic_feed.clone();
        let candidates = candidates(
            catalog,
            DeviceDirection::Output,
            feed.as_deref().unwrap_or(""),
            |d| {
                let words = format!("{} {}", d.id, d.name).to_lowercase();
                CABLE_WORDS.iter().any(|w| words.contains(w))
            },
        );
        let outcome = prove(
            local,
            (&spec.input, feed.as_deref()),
            &candidates,
            Tried::Output,
            Direction::Capture,
            seed ^ 0xfeed,
        )
        .await;
        match outcome {
            Proved::AsGiven(took) => findings.push(Finding::new(
                Status::Ok,
                "rig: microphone feed",
                format!(
                    "the local probe played on `{}` and its microphone `{}` heard it \
                     ({took:.1} s)",
                    feed.as_deref().unwrap_or_default(),
                    spec.input
                ),
            )),
            Proved::Instead(found, why) => {
                findings.push(
                    Finding::new(
                        Status::Problem,
                        "rig: microphone feed",
                        format!("{why}; the microphone does hear `{found}`: that is its feed"),
                    )
                    .fix(format!("probes.local.mic_feed = \"{found}\"")),
                );
                keys.push(("probes.local.mic_feed".into(), found.clone()));
                rig.mic_feed = Some(found);
            }
            Proved::Not(why) => findings.push(
                Finding::new(Status::Problem, "rig: microphone feed", why).fix(format!(
                    "give the client's microphone `{}` a feed: a virtual cable whose other \
                     end is that microphone (PulseAudio/PipeWire: a null sink and a \
                     remap-source of its monitor; Windows: VB-CABLE's \"CABLE Input\"), or a \
                     speaker next to the microphone; name it in probes.local.mic_feed",
                    spec.input
                )),
            ),
        }
    }
    (rig, keys)
}

/// Which side of a rig test a candidate replaces.
#[derive(Clone, Copy)]
enum Tried {
    /// The listening input (the loopback of a fixed output).
    Input,
    /// The playing output (the feed of a fixed microphone).
    Output,
}

/// What a rig test proved.
enum Proved {
    /// The scenario's keys work; the seconds it took.
    AsGiven(f64),
    /// They do not (why), but this other device does.
    Instead(String, String),
    /// Nothing worked: why.
    Not(String),
}

/// The devices to try for a key in `direction`, other than `given`'s pick: the likely ones
/// (`likely`) first, at most [`MAX_CANDIDATES`].
fn candidates(
    catalog: &[earshot_probe::audio::DeviceInfo],
    direction: DeviceDirection,
    given: &str,
    likely: impl Fn(&earshot_probe::audio::DeviceInfo) -> bool,
) -> Vec<String> {
    let picked = audio::select(catalog, &DeviceSelector::parse(given), direction)
        .ok()
        .map(|d| d.id.clone());
    let mut pool: Vec<&earshot_probe::audio::DeviceInfo> = catalog
        .iter()
        .filter(|d| d.direction == direction && Some(&d.id) != picked.as_ref())
        .collect();
    pool.sort_by_key(|d| !likely(d));
    pool.into_iter()
        .take(MAX_CANDIDATES)
        .map(|d| d.id.clone())
        .collect()
}

/// Plays and listens on the local probe with `fixed` on one side and the given device
/// (`given`, None: not set) on the `tried` side; when that does not hear the signature,
/// tries each candidate in its place.
async fn prove(
    local: &Probe,
    (fixed, given): (&str, Option<&str>),
    candidates: &[String],
    tried: Tried,
    direction: Direction,
    seed: u64,
) -> Proved {
    let pair = |other: &str| -> (String, String) {
        match tried {
            Tried::Input => (fixed.to_string(), other.to_string()),
            Tried::Output => (other.to_string(), fixed.to_string()),
        }
    };
    let why = match given {
        Some(given) => {
            let (out, inp) = pair(given);
            let started = Instant::now();
            match rig_hears_itself(local, &out, &inp, direction, seed, RIG_WAIT).await {
                RigProof::Heard => return Proved::AsGiven(started.elapsed().as_secs_f64()),
                RigProof::Failed(why) => why,
                RigProof::NotTried => String::new(),
            }
        }
        None => "not set in the scenario".to_string(),
    };
    for (k, c) in candidates.iter().enumerate() {
        let (out, inp) = pair(c);
        let proof = rig_hears_itself(
            local,
            &out,
            &inp,
            direction,
            seed.wrapping_add(k as u64 + 1),
            CANDIDATE_WAIT,
        )
        .await;
        if proof == RigProof::Heard {
            return Proved::Instead(c.clone(), why);
        }
    }
    let tried_words = if candidates.is_empty() {
        "and there is no other device to try".to_string()
    } else {
        format!(
            "and none of the other devices tried instead worked ({})",
            candidates.join(", ")
        )
    };
    Proved::Not(format!("{why}; {tried_words}"))
}
