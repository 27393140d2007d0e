//! From an expectation and an observation to a verdict with its cause in plain words.
//!
//! Pure, so every combination is tested. Every observation says which [`Side`] it is
//! about: the session (the remote probe's endpoints, what the policy governs) or the
//! client rig (the local probe's loopback, microphone feed and microphone, which only
//! carry the measurement). Only the session side can be a finding about the policy: a rig
//! that cannot listen or play makes the check `inconclusive`, whatever the policy says,
//! because "nothing heard" then proves nothing.
//!
//! The verdict table (rows: what was observed; columns: what the policy expects):
//!
//! | observed | redirected | not redirected |
//! | --- | --- | --- |
//! | `detected` | pass | fail (the policy is not in effect) |
//! | `degraded` (sound carrying part of this run's signature) | pass, degraded | fail |
//! | `unrecognised` (sound, no trace of the signature) | inconclusive | pass when the same sound is on the input with no play (and the rig heard itself, a play was proven), else inconclusive (it may be the signature, garbled) |
//! | `silent` | fail once the rig proved it hears | pass once the rig proved it hears and a play fell inside the listen |
//! | `no_device` in the session | fail | pass |
//! | `no_device` on the client rig | inconclusive | inconclusive |
//! | `error` (either side) | inconclusive | inconclusive |
//!
//! "Once the rig proved it hears": the runner makes the local probe hear its own test
//! signature on the same input before a silence decides anything ([`RigProof`]).
//!
//! Size: about 900 lines, one reason: [`judge`] is the verdict table, a match over every
//! observation and expectation, and it reads best whole; budgets, stream checks and hints
//! are in their own modules.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use crate::check::{AudioPath, Planned};
use crate::policy::{Decision, Quality};
use crate::scenario::{CaptureExpect, OutputExpect};
use earshot_probe::signal::quality::QualityClass;
pub use hints::{SessionEndpoint, RESTART_HINT};

/// Symbols of this run's signature (of 16) that must stand out for sound that was not
/// detected to count as a damaged copy of it. Noise, speech and other seeds' signatures
/// match about one symbol at their best onset (3 of the 78 tone pairs are "among the three
/// strongest" by chance); half the signature is far beyond chance.
pub const TRACE_SYMBOLS: u32 = 8;

/// Below this RMS an input counts as silent, dBFS.
pub const SILENCE_DBFS: f64 = -60.0;

/// Which side of the measurement an observation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The remote session: its output and input endpoints, governed by the policy.
    Session,
    /// The client rig: the local probe's loopback, microphone feed and microphone.
    Client,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Session => "the session",
            Side::Client => "the client rig",
        })
    }
}

/// What a check saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// The signature was heard where it was expected to arrive.
    Detected {
        /// The side that heard it.
        side: Side,
        /// Level of the signature, dBFS.
        level_dbfs: Option<f64>,
        /// From the start of the play that was heard to the signature's arrival, ms (one
        /// clock in a lab; estimated across hosts otherwise). With a latency budget, the
        /// median of every play's latency in `latencies_ms`.
        latency_ms: Option<f64>,
        /// Every play's latency, ms, in order, where the path has a latency budget (the
        /// signature is then heard three times; the budget holds the worst).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        latencies_ms: Vec<f64>,
        /// Median SNR per symbol, dB.
        snr_db: Option<f64>,
        /// Gaps seen inside the signature.
        dropouts: usize,
        /// Symbols recognised of 16.
        symbols: u32,
        /// How many times the signature was played before it was heard (1: the first).
        plays: u32,
        /// The speed it arrived at against the speed played, from its tones' frequency
        /// error (1.0: as played; 1.02: 2 % fast, a sample-rate mismatch on the path).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speed: Option<f64>,
    },
    /// Sound arrived carrying part of this run's signature, too damaged to detect: the
    /// path exists but is degraded (starved, lossy).
    Degraded {
        /// The side that heard it.
        side: Side,
        /// RMS of what was recorded, dBFS.
        rms_dbfs: f64,
        /// Symbols of the signature that stood out, of 16.
        symbols: u32,
        /// The detector's confidence (0.5 is the detection threshold).
        confidence: f64,
        /// How long it listened, ms.
        listened_ms: f64,
    },
    /// Sound arrived with no trace of the signature: another source, or a path too
    /// damaged to tell.
    Unrecognised {
        /// The side that heard it.
        side: Side,
        /// RMS of what was recorded, dBFS.
        rms_dbfs: f64,
        /// Symbols of the signature that stood out at the best onset, of 16 (chance level).
        symbols: u32,
        /// The detector's confidence (0.5 is the detection threshold).
        confidence: f64,
        /// How long it listened, ms.
        listened_ms: f64,
    },
    /// The recording ran and stayed silent.
    Silent {
        /// The side that listened.
        side: Side,
        /// RMS of what was recorded, dBFS.
        rms_dbfs: f64,
        /// How long it listened, ms.
        listened_ms: f64,
    },
    /// An endpoint is missing: in the session a finding, on the client rig a rig fault.
    NoDevice {
        /// Whose endpoint is missing.
        side: Side,
        /// The endpoint as the scenario names it.
        endpoint: String,
        /// What the probe said.
        detail: String,
    },
    /// The continuity stream was recorded and every sample of it accounted for.
    Continuity {
        /// The side that recorded it.
        side: Side,
        /// Whether the stream was found in the recording at all.
        found: bool,
        /// How long it played, ms.
        played_ms: f64,
        /// How much of it arrived, from its start to its last unbroken moment, ms.
        heard_ms: f64,
        /// Gaps: the stream fell below half its level (silence inserted or substituted).
        gaps: usize,
        /// Glitches: clicks, samples lost or repeated.
        glitches: usize,
        /// The breaks in order (the first 20).
        breaks: Vec<Break>,
        /// Clock drift between player and recorder, ppm.
        drift_ppm: Option<f64>,
        /// Mean level of the stream, dBFS peak (it plays at -6).
        level_dbfs: Option<f64>,
        /// Standard deviation of its level, dB.
        level_std_db: Option<f64>,
        /// The path's error floor against a pure tone, dB.
        error_floor_db: Option<f64>,
    },
    /// The quality probe signal was recorded and measured.
    Quality {
        /// The side that recorded it.
        side: Side,
        /// Whether the signal was found in the recording at all.
        found: bool,
        /// The class the figures fall in: high, medium, low or poor.
        class: String,
        /// The sample rate the band edge shows, in words.
        rate_class: Option<String>,
        /// The highest tone carried, Hz.
        band_edge_hz: Option<f64>,
        /// The lowest tone above the band edge that was not carried, Hz.
        first_missing_hz: Option<f64>,
        /// Tones below the band edge that were not carried, Hz.
        holes_hz: Vec<f64>,
        /// Multitone signal to noise-and-distortion, dB.
        sinad_db: Option<f64>,
        /// RMS of the silence in the signal, dBFS (none: exact zeros).
        noise_floor_dbfs: Option<f64>,
        /// The low tones' level against what was played, dB.
        gain_db: Option<f64>,
        /// The -20 dB step as measured, dB.
        step_db: Option<f64>,
        /// Signs of a lossy or reduced format: band_limited, spectral_holes,
        /// noise_under_signal, level_changed, wrong_speed.
        codec_signs: Vec<String>,
        /// The signal arrived at this speed, not its own (0.5: half speed, an octave low).
        #[serde(skip_serializing_if = "Option::is_none")]
        speed: Option<f64>,
    },
    /// What the speech check heard of the speech reference.
    Speech {
        /// The side that recorded it.
        side: Side,
        /// The MOS-LQO of the best channel (none: no speech could be scored).
        mos_lqo: Option<f64>,
        /// How it was scored.
        method: String,
        /// The level heard against the level played, dB.
        level_db: Option<f64>,
        /// Why nothing was scored.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A probe, a device or the connection failed; the check could not be made.
    Error {
        /// Whose probe or device failed.
        side: Side,
        /// What failed, naming the probe and the step.
        detail: String,
    },
}

/// One break in a continuity stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Break {
    /// `gap` or `glitch`.
    pub kind: String,
    /// Where, in ms after the stream started.
    pub at_ms: f64,
    /// How long the stream was below half level (gaps), ms.
    pub length_ms: f64,
    /// Phase slip across it in samples, modulo one period of the tone.
    pub slip_samples: f64,
}

/// The spelling of each observation kind, the same in JSON (`kind`), JUnit (`observed`),
/// tables and the README.
pub const OBSERVATION_KINDS: &[&str] = &[
    "detected",
    "degraded",
    "unrecognised",
    "silent",
    "no_device",
    "error",
    "continuity",
    "quality",
    "speech",
];

impl Observation {
    /// The kind's one spelling: detected, degraded, unrecognised, silent, no_device, error.
    pub fn kind(&self) -> &'static str {
        match self {
            Observation::Detected { .. } => "detected",
            Observation::Degraded { .. } => "degraded",
            Observation::Unrecognised { .. } => "unrecognised",
            Observation::Silent { .. } => "silent",
            Observation::NoDevice { .. } => "no_device",
            Observation::Error { .. } => "error",
            Observation::Continuity { .. } => "continuity",
            Observation::Quality { .. } => "quality",
            Observation::Speech { .. } => "speech",
        }
    }

    /// The side the observation is about.
    pub fn side(&self) -> Side {
        match self {
            Observation::Detected { side, .. }
            | Observation::Degraded { side, .. }
            | Observation::Unrecognised { side, .. }
            | Observation::Silent { side, .. }
            | Observation::NoDevice { side, .. }
            | Observation::Continuity { side, .. }
            | Observation::Quality { side, .. }
            | Observation::Speech { side, .. }
            | Observation::Error { side, .. } => *side,
        }
    }

    /// Whether the verdict rests on an absence of the signature, which the rig must prove
    /// it could have heard.
    pub fn is_absence(&self) -> bool {
        matches!(
            self,
            Observation::Silent { .. } | Observation::Unrecognised { .. }
        )
    }

    /// Classifies a finished listen that did not detect the signature.
    pub fn not_detected(
        side: Side,
        rms_dbfs: f64,
        symbols: u32,
        confidence: f64,
        listened_ms: f64,
    ) -> Observation {
        if symbols >= TRACE_SYMBOLS {
            Observation::Degraded {
                side,
                rms_dbfs,
                symbols,
                confidence,
                listened_ms,
            }
        } else if rms_dbfs > SILENCE_DBFS {
            Observation::Unrecognised {
                side,
                rms_dbfs,
                symbols,
                confidence,
                listened_ms,
            }
        } else {
            Observation::Silent {
                side,
                rms_dbfs,
                listened_ms,
            }
        }
    }

    /// The observation in words with its figures.
    pub fn describe(&self) -> String {
        match self {
            Observation::Detected {
                level_dbfs,
                latency_ms,
                latencies_ms,
                snr_db,
                dropouts,
                symbols,
                plays,
                speed,
                ..
            } => {
                let mut s = "detected".to_string();
                if let Some(l) = level_dbfs {
                    let _ = write!(s, " at {l:.0} dBFS");
                }
                match (latency_ms, latencies_ms.iter().copied().reduce(f64::max)) {
                    (Some(l), Some(worst)) if latencies_ms.len() > 1 => {
                        let _ = write!(
                            s,
                            " after {l:.0} ms (median of {} plays, worst {worst:.0} ms)",
                            latencies_ms.len()
                        );
                    }
                    (Some(l), _) => {
                        let _ = write!(s, " after {l:.0} ms");
                    }
                    _ => {}
                }
                if let Some(x) = snr_db {
                    let _ = write!(s, ", SNR {x:.0} dB");
                }
                let _ = write!(s, ", {symbols}/16 symbols");
                if *dropouts > 0 {
                    let _ = write!(s, ", {dropouts} dropout(s)");
                }
                if *plays > 1 {
                    let _ = write!(s, ", heard on play {plays}");
                }
                if let Some(x) = speed.filter(|x| (x - 1.0).abs() >= SPEED_SAID) {
                    let _ = write!(s, ", at {x:.4}× speed");
                }
                s
            }
            Observation::Degraded {
                rms_dbfs,
                symbols,
                confidence,
                listened_ms,
                ..
            } => format!(
                "sound at {rms_dbfs:.0} dBFS RMS carrying {symbols}/16 symbols of the signature \
                 (confidence {confidence:.2}, detection needs 0.50) in {listened_ms:.0} ms"
            ),
            Observation::Unrecognised {
                rms_dbfs,
                symbols,
                confidence,
                listened_ms,
                ..
            } => format!(
                "sound at {rms_dbfs:.0} dBFS RMS for {listened_ms:.0} ms with no trace of the \
                 signature ({symbols}/16 symbols, confidence {confidence:.2}; a trace needs \
                 {TRACE_SYMBOLS})"
            ),
            Observation::Silent { listened_ms, .. } => format!("silent for {listened_ms:.0} ms"),
            Observation::NoDevice {
                side,
                endpoint,
                detail,
            } => format!("no device `{endpoint}` on {side}: {detail}"),
            Observation::Error { side, detail } => format!("error on {side}: {detail}"),
            Observation::Quality { found: false, .. } => {
                "no quality probe signal in the recording".into()
            }
            Observation::Speech {
                mos_lqo: Some(m),
                level_db,
                ..
            } => {
                let mut s = format!("speech scored MOS-LQO {m:.2}");
                if let Some(l) = level_db {
                    let l = if l.abs() < 0.05 { 0.0 } else { *l };
                    let _ = write!(s, ", heard {l:+.1} dB from the level played");
                }
                s
            }
            Observation::Speech { reason, .. } => format!(
                "no speech scored: {}",
                reason.as_deref().unwrap_or("nothing arrived")
            ),
            Observation::Quality {
                class,
                rate_class,
                band_edge_hz,
                first_missing_hz,
                holes_hz,
                sinad_db,
                noise_floor_dbfs,
                gain_db,
                step_db,
                codec_signs,
                speed,
                ..
            } => {
                let mut s = format!("{class} quality");
                if let Some(x) = speed {
                    let _ = write!(s, ", arrived at {x}× speed");
                }
                if let Some(e) = band_edge_hz {
                    let _ = write!(s, ", band to {e:.0} Hz");
                    if let Some(m) = first_missing_hz {
                        let _ = write!(s, " ({m:.0} Hz lost)");
                    }
                }
                if let Some(r) = rate_class {
                    let _ = write!(s, ", rate {r}");
                }
                if let Some(x) = sinad_db {
                    let _ = write!(s, ", SINAD {x:.0} dB");
                }
                match noise_floor_dbfs {
                    Some(f) => {
                        let _ = write!(s, ", noise floor {f:.0} dBFS");
                    }
                    None => s.push_str(", digital silence between"),
                }
                if let Some(g) = gain_db {
                    // No "-0.0": a gain that rounds to zero reads +0.0.
                    let g = if g.abs() < 0.05 { 0.0 } else { *g };
                    let _ = write!(s, ", gain {g:+.1} dB");
                }
                if let Some(st) = step_db {
                    let _ = write!(s, ", step {st:.1} dB");
                }
                if !holes_hz.is_empty() {
                    let h: Vec<String> = holes_hz.iter().map(|h| format!("{h:.0}")).collect();
                    let _ = write!(s, ", holes at {} Hz", h.join("/"));
                }
                if !codec_signs.is_empty() {
                    let _ = write!(s, " [{}]", codec_signs.join(", ").replace('_', " "));
                }
                s
            }
            Observation::Continuity {
                found: false,
                played_ms,
                ..
            } => format!(
                "no continuity stream in the recording (it played for {:.1} s)",
                played_ms / 1000.0
            ),
            Observation::Continuity {
                heard_ms,
                gaps,
                glitches,
                breaks,
                drift_ppm,
                level_std_db,
                ..
            } => {
                let mut s = format!(
                    "{:.1} s of stream, {gaps} gap(s), {glitches} glitch(es)",
                    heard_ms / 1000.0
                );
                if let Some(d) = drift_ppm {
                    // No "-0": a drift that rounds to zero reads +0.
                    let d = if d.abs() < 0.5 { 0.0 } else { *d };
                    let _ = write!(s, ", drift {d:+.0} ppm");
                }
                if let Some(l) = level_std_db {
                    let _ = write!(s, ", level σ {l:.1} dB");
                }
                let first: Vec<String> = breaks
                    .iter()
                    .take(3)
                    .map(|b| match b.kind.as_str() {
                        "gap" => format!("gap {:.0} ms at {:.2} s", b.length_ms, b.at_ms / 1000.0),
                        _ => format!("glitch at {:.2} s", b.at_ms / 1000.0),
                    })
                    .collect();
                if !first.is_empty() {
                    let _ = write!(
                        s,
                        " ({}{})",
                        first.join(", "),
                        if breaks.len() > 3 { ", ..." } else { "" }
                    );
                }
                s
            }
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Observed what the policy says.
    Pass,
    /// Observed something else: the rollout is not in effect (or not as designed).
    Fail,
    /// The rig failed; nothing can be said about the redirection.
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// Whether the client rig proved it can hear, which an absence needs before it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RigProof {
    /// Not tried: enough when the signature was heard or an endpoint is missing; an
    /// absence without a proof is inconclusive.
    NotTried,
    /// The local probe heard its own test signature on the same input.
    Heard,
    /// It did not: why, in words.
    Failed(String),
}

/// A verdict and its cause in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// Why: what was expected (and which layer said so), what was observed, what it means
    /// and what to try.
    pub cause: String,
}

impl Judgement {
    /// The cause without its guess about a restart, for a host whose probe read when its
    /// policy was written and when it booted: the host's own facts answer that instead.
    pub fn without_restart_guess(mut self) -> Judgement {
        for gap in [format!("; {RESTART_HINT}"), format!(" {RESTART_HINT}")] {
            self.cause = self.cause.replace(&gap, "");
        }
        self
    }
}

/// The opening every cause has: what was expected (and which setting said so), then what
/// was observed; a judgement adds why it follows.
pub(crate) struct Cause(String);

impl Cause {
    /// "expected `expected` (`by`); observed ..." (without `by` when none decided).
    pub(crate) fn new(expected: &str, by: Option<&str>, observed: &Observation) -> Cause {
        Cause(match by {
            Some(by) => format!(
                "expected {expected} ({by}); observed {}",
                observed.describe()
            ),
            None => format!("expected {expected}; observed {}", observed.describe()),
        })
    }

    /// The judgement `verdict`, its cause this opening and `why`.
    pub(crate) fn judged(&self, verdict: Verdict, why: impl std::fmt::Display) -> Judgement {
        Judgement {
            verdict,
            cause: format!("{}: {why}", self.0),
        }
    }
}

/// Judges `observed` against what the planned check `p` must observe, given what the rig
/// proved and what the session showed of its redirected endpoint on the check's path.
pub fn judge(
    p: &Planned,
    observed: &Observation,
    rig: &RigProof,
    endpoint: &SessionEndpoint,
) -> Judgement {
    let expected = p.expected();
    let (by, layer) = (p.decided_by(), p.layer());
    let capture = &p.expectation().capture;
    let output = &p.expectation().output;
    // Where the deciding layer lives and what makes it take effect.
    let arrival = hints::arrival(layer, by);
    let head = Cause::new(expected, Some(by), observed);
    let j = |verdict, why: String| head.judged(verdict, why);
    use Observation as Ob;
    if observed.is_absence() {
        match rig {
            RigProof::Failed(why) => {
                return j(
                    Verdict::Inconclusive,
                    format!(
                        "but {why}, so the absence proves nothing; fix the client rig and run \
                         again"
                    ),
                )
            }
            RigProof::NotTried => {
                return j(
                    Verdict::Inconclusive,
                    "the client rig did not prove it could hear the signature, so the absence \
                     proves nothing"
                        .into(),
                )
            }
            RigProof::Heard => {}
        }
    }
    let proven = if observed.is_absence() {
        " (the rig heard its own test signature, so the absence is real)"
    } else {
        ""
    };
    let degraded_hint =
        "check the network between client and session host (loss, bandwidth) and the RDP audio \
         quality";
    let on_capture = p.path == AudioPath::Capture;
    match (p.needs_sound(), observed) {
        // A continuity measurement is judged against its limits, by judge_continuity.
        (_, Ob::Continuity { .. }) => Judgement {
            verdict: Verdict::Inconclusive,
            cause: "a continuity measurement is judged against the scenario's limits, not \
                    as a signature"
                .into(),
        },
        // A quality measurement is judged against the policy's quality, by judge_quality.
        (_, Ob::Quality { .. }) => Judgement {
            verdict: Verdict::Inconclusive,
            cause: "a quality measurement is judged against the expected quality, not as a \
                    signature"
                .into(),
        },
        // A speech score is judged against budgets.min_mos, by judge_speech.
        (_, Ob::Speech { .. }) => Judgement {
            verdict: Verdict::Inconclusive,
            cause: "a speech score is judged against budgets.min_mos, not as a signature".into(),
        },
        // Rig faults say nothing about the policy, whatever it expects.
        (
            _,
            Ob::NoDevice {
                side: Side::Client,
                endpoint,
                ..
            },
        ) => j(
            Verdict::Inconclusive,
            format!(
                "the client rig has no usable `{endpoint}`, so this check could not be made; \
                 fix the rig (name an endpoint the local probe lists: `earshot-probe devices` \
                 on the client) and run again"
            ),
        ),
        (_, Ob::Error { side, .. }) => j(
            Verdict::Inconclusive,
            format!(
                "{side} failed, not the redirection; fix the probe or device named and run again"
            ),
        ),
        (true, Ob::Detected { dropouts, .. }) if *dropouts > 0 => j(
            Verdict::Pass,
            format!("redirected as the policy says, but degraded; {degraded_hint}"),
        ),
        (true, Ob::Detected { .. }) => j(Verdict::Pass, "redirected as the policy says".into()),
        (true, Ob::Degraded { .. }) => j(
            Verdict::Pass,
            format!(
                "redirected as the policy says (this run's signature arrives), but the path is \
                 degraded too far to recognise it whole; {degraded_hint}"
            ),
        ),
        (true, Ob::Unrecognised { .. }) => j(
            Verdict::Inconclusive,
            "sound arrives but carries no trace of the signature: another source is playing \
             into the input, or the path is too degraded to tell; silence other sources (or \
             check the network) and run again"
                .into(),
        ),
        (true, Ob::Silent { .. }) => j(
            Verdict::Fail,
            match p.path {
                AudioPath::Output => format!(
                    "the session played but the client heard nothing{proven}: {}; {arrival}",
                    endpoint.silence_words(false).unwrap_or_else(|| {
                        "playback is not redirected, or the session's output is muted or at \
                             zero volume"
                            .into()
                    })
                ),
                AudioPath::Capture => format!(
                    "the session's microphone does not hear the client's{proven}: {}; \
                     {arrival}",
                    endpoint.silence_words(true).unwrap_or_else(|| {
                        "is the right client microphone redirected, or is it muted?".into()
                    })
                ),
            },
        ),
        (true, Ob::NoDevice { .. }) => j(
            Verdict::Fail,
            match p.path {
                AudioPath::Output => format!(
                    "the session has no audio output, so playback is not redirected; {arrival}"
                ),
                AudioPath::Capture => format!(
                    "the session has no microphone, so recording is not redirected{}; \
                     {arrival}",
                    match endpoint.silence_words(true) {
                        Some(w) if matches!(endpoint, SessionEndpoint::Never { .. }) =>
                            format!(" ({w})"),
                        _ => String::new(),
                    }
                ),
            },
        ),
        (false, Ob::Detected { .. } | Ob::Degraded { .. }) => j(
            Verdict::Fail,
            if on_capture && capture.value == CaptureExpect::RedirectedAppsDenied {
                "the probe, a desktop app, recorded the client's microphone although the \
                 session's desktop-app consent should deny it; is the consent as the scenario \
                 says (Settings > Privacy > Microphone > Let desktop apps access your \
                 microphone)?"
                    .into()
            } else {
                format!("the policy is not in effect: {arrival}")
            },
        ),
        // Sound during the plays that carries no trace of the signature may be the
        // signature garbled on its way: it proves no silence.
        (false, Ob::Unrecognised { .. }) => j(
            Verdict::Inconclusive,
            "sound arrived while the signature played, but carries no trace of it: a \
             signature garbled on its way cannot be told from other sound, so this proves no \
             silence; silence other sources on the input (notifications, media, a \
             microphone's room) and run again"
                .into(),
        ),
        (false, Ob::Silent { .. }) => j(
            Verdict::Pass,
            match p.path {
                AudioPath::Capture if capture.value == CaptureExpect::RedirectedAppsDenied => {
                    format!(
                        "the microphone is there but desktop apps hear nothing, as the \
                         session's consent says{proven}"
                    )
                }
                AudioPath::Capture => {
                    format!("the microphone does not reach the session, as the policy says{proven}")
                }
                AudioPath::Output => format!("not redirected, as the policy says{proven}"),
            },
        ),
        (false, Ob::NoDevice { .. }) => match (p.path, output.value, capture.value) {
            (AudioPath::Capture, _, CaptureExpect::RedirectedAppsDenied) => j(
                Verdict::Fail,
                "the desktop-app consent denies apps a redirected microphone, but none is \
                 redirected; check audiocapturemode and fDisableAudioCapture"
                    .into(),
            ),
            (AudioPath::Capture, _, _) => j(
                Verdict::Pass,
                "the session has no microphone, so the client's does not reach it, as the \
                 policy says"
                    .into(),
            ),
            (AudioPath::Output, OutputExpect::Session, _) => j(
                Verdict::Pass,
                "not redirected, as the policy says (the session host has no audio device of \
                 its own to play on)"
                    .into(),
            ),
            (AudioPath::Output, _, _) => j(
                Verdict::Pass,
                "the session has no audio output, as the policy says".into(),
            ),
        },
    }
}

/// Judges sound that arrived while a blocked check's signature played but carried no
/// trace of it, given the level of the same input listened to with no play (`quiet`): the
/// sound is unrelated to the plays, and the check passes, only when the same sound is
/// there without them (within 3 dB, above silence), the rig proved it hears its own
/// signature on that input, and a play was proven inside the listen (`play_proven`).
/// Anything else is inconclusive, with the figures.
pub fn judge_unrelated(
    p: &Planned,
    observed: &Observation,
    quiet: Result<f64, String>,
    rig: &RigProof,
    play_proven: bool,
) -> Judgement {
    let head = Cause::new(p.expected(), Some(p.decided_by()), observed);
    let j = |verdict, why: String| head.judged(verdict, why);
    let Observation::Unrecognised { rms_dbfs, .. } = observed else {
        return j(Verdict::Inconclusive, "not an unrecognised sound".into());
    };
    let during = *rms_dbfs;
    let quiet = match quiet {
        Ok(q) => q,
        Err(e) => {
            return j(
                Verdict::Inconclusive,
                format!(
                    "sound arrived while the signature played but carries no trace of it, and \
                     whether it is there without the plays could not be told ({e}); silence \
                     other sources on the input and run again"
                ),
            )
        }
    };
    let same = quiet > SILENCE_DBFS && (during - quiet).abs() <= 3.0;
    if !same {
        return j(
            Verdict::Inconclusive,
            format!(
                "sound arrived while the signature played ({during:.0} dBFS) but carries no \
                 trace of it, and without the plays the input is at {quiet:.0} dBFS: it came \
                 with the plays, so it may be the signature garbled on its way, which proves \
                 no silence; check the path's quality, or silence other sources, and run again"
            ),
        );
    }
    match (rig, play_proven) {
        (RigProof::Heard, true) => j(
            Verdict::Pass,
            format!(
                "the same sound is on the input with no play at all ({quiet:.0} dBFS; \
                 {during:.0} dBFS during the plays), so it is not the signature: not \
                 redirected, as the policy says (the rig heard its own test signature on this \
                 input, and a play was proven inside the listen)"
            ),
        ),
        (RigProof::Failed(why), _) => j(
            Verdict::Inconclusive,
            format!(
                "the sound on the input is there without the plays too ({quiet:.0} dBFS), but \
                 {why}, so it proves nothing; fix the client rig and run again"
            ),
        ),
        (RigProof::NotTried, _) => j(
            Verdict::Inconclusive,
            "the sound on the input is there without the plays too, but the client rig did \
             not prove it could hear the signature through it, so it proves nothing"
                .into(),
        ),
        (RigProof::Heard, false) => j(
            Verdict::Inconclusive,
            format!(
                "the sound on the input is there without the plays too ({quiet:.0} dBFS), but \
                 no play was proven inside the listen, so nothing was there to hear; is the \
                 control link slow? Raise timeouts.listen and run again"
            ),
        ),
    }
}

mod budgets;
pub use budgets::{hold_to_budgets, name_a_muted_output, SPEED_SAID};

mod streams;
pub use streams::{judge_continuity, judge_quality, judge_speech, least_class};

pub mod hints;

#[cfg(test)]
mod tests;
