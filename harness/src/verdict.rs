//! From an expectation and an observation to a verdict with its cause in plain words.
//!
//! Pure, so every combination is tested. `inconclusive` means the rig failed (a probe, a
//! device of the rig, a timeout), never the redirection under test: it is not a pass and
//! not a fail.

use serde::Serialize;

use crate::policy::Decision;
use crate::scenario::{CaptureExpect, Check, OutputExpect};

/// What a check saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// The signature was heard where it was expected to arrive.
    Detected {
        /// Level of the signature, dBFS.
        level_dbfs: Option<f64>,
        /// From the start of playing to the signature's arrival, ms (one clock in a lab;
        /// estimated across hosts otherwise).
        latency_ms: Option<f64>,
        /// Median SNR per symbol, dB.
        snr_db: Option<f64>,
        /// Gaps seen inside the signature.
        dropouts: usize,
        /// Symbols recognised of 16.
        symbols: u32,
    },
    /// The recording ran; the signature was not in it.
    Silent {
        /// RMS of what was recorded, dBFS (sound that was not the signature, or silence).
        rms_dbfs: f64,
        /// How long it listened, ms.
        listened_ms: f64,
    },
    /// The session has no endpoint for this direction at all.
    NoDevice {
        /// Which side and what the probe said.
        detail: String,
    },
    /// Something in the rig failed; the check could not be made.
    Error {
        /// What failed, naming the probe and the step.
        detail: String,
    },
}

impl Observation {
    /// A short word for tables: detected / silent / no-device / error.
    pub fn word(&self) -> &'static str {
        match self {
            Observation::Detected { .. } => "detected",
            Observation::Silent { .. } => "silent",
            Observation::NoDevice { .. } => "no-device",
            Observation::Error { .. } => "error",
        }
    }

    /// The observation in words with its figures.
    pub fn describe(&self) -> String {
        match self {
            Observation::Detected {
                level_dbfs,
                latency_ms,
                snr_db,
                dropouts,
                symbols,
            } => {
                let mut s = "detected".to_string();
                if let Some(l) = level_dbfs {
                    s += &format!(" at {l:.0} dBFS");
                }
                if let Some(l) = latency_ms {
                    s += &format!(" after {l:.0} ms");
                }
                if let Some(x) = snr_db {
                    s += &format!(", SNR {x:.0} dB");
                }
                s += &format!(", {symbols}/16 symbols");
                if *dropouts > 0 {
                    s += &format!(", {dropouts} dropout(s)");
                }
                s
            }
            Observation::Silent {
                rms_dbfs,
                listened_ms,
            } => {
                if *rms_dbfs > -60.0 {
                    format!(
                        "not detected in {listened_ms:.0} ms (the input carried other sound at \
                         {rms_dbfs:.0} dBFS RMS)"
                    )
                } else {
                    format!("silent for {listened_ms:.0} ms")
                }
            }
            Observation::NoDevice { detail } => format!("no device: {detail}"),
            Observation::Error { detail } => format!("error: {detail}"),
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// What the check expects, in words (for tables and causes).
pub fn expected_words(check: Check, output: OutputExpect, capture: CaptureExpect) -> &'static str {
    match check {
        Check::Output => match output {
            OutputExpect::Client => "heard on the client",
            OutputExpect::Session => "plays in the session, not on the client",
            OutputExpect::None => "not played on the client",
        },
        Check::Capture => match capture {
            CaptureExpect::Redirected => "microphone heard in the session",
            CaptureExpect::Blocked => "microphone not available in the session",
            CaptureExpect::RedirectedAppsDenied => "microphone redirected, apps denied it",
        },
    }
}

const RESTART_HINT: &str = "has the session host restarted since the rollout?";

/// Judges `observed` against the expectation for `check`.
pub fn judge(
    check: Check,
    output: &Decision<OutputExpect>,
    capture: &Decision<CaptureExpect>,
    observed: &Observation,
) -> (Verdict, String) {
    let expected = expected_words(check, output.value, capture.value);
    let by = match check {
        Check::Output => &output.decided_by,
        Check::Capture => &capture.decided_by,
    };
    let seen = observed.describe();
    let head = format!("expected {expected} ({by}); observed {seen}");
    let rig_failed = || {
        (
            Verdict::Inconclusive,
            format!("{head}: the rig, not the redirection, failed; fix the probe or device named and run again"),
        )
    };
    use Observation as Ob;
    match check {
        Check::Output => match (output.value, observed) {
            (OutputExpect::Client, Ob::Detected { dropouts, .. }) => {
                if *dropouts > 0 {
                    (Verdict::Pass, format!("{head}: redirected, but degraded; check the network between client and session host"))
                } else {
                    (Verdict::Pass, format!("{head}: redirected as the policy says"))
                }
            }
            (OutputExpect::Client, Ob::Silent { rms_dbfs, .. }) => (
                Verdict::Fail,
                if *rms_dbfs > -60.0 {
                    format!("{head}: sound arrives but not the session's signature; is the client loopback hearing another source, or is the path too degraded?")
                } else {
                    format!("{head}: the session played but the client heard nothing; redirection is off somewhere (session host policy, RDP properties, client settings) or the client's output device is muted")
                },
            ),
            (OutputExpect::Client, Ob::NoDevice { .. }) => (
                Verdict::Fail,
                format!("{head}: the session has no audio output, so playback is not redirected; check audiomode and fDisableCam on the session host; {RESTART_HINT}"),
            ),
            (OutputExpect::Session | OutputExpect::None, Ob::Detected { .. }) => (
                Verdict::Fail,
                format!("{head}: the policy is not in effect; {RESTART_HINT}"),
            ),
            (OutputExpect::Session | OutputExpect::None, Ob::Silent { .. }) => (
                Verdict::Pass,
                format!("{head}: not redirected, as the policy says"),
            ),
            (OutputExpect::None, Ob::NoDevice { .. }) => (
                Verdict::Pass,
                format!("{head}: the session has no audio output, as the policy says"),
            ),
            (OutputExpect::Session, Ob::NoDevice { .. }) => (
                Verdict::Pass,
                format!("{head}: not redirected, as the policy says (the session host has no audio device of its own to play on)"),
            ),
            (_, Ob::Error { .. }) => rig_failed(),
        },
        Check::Capture => match (capture.value, observed) {
            (CaptureExpect::Redirected, Ob::Detected { dropouts, .. }) => {
                if *dropouts > 0 {
                    (Verdict::Pass, format!("{head}: redirected, but degraded; check the network between client and session host"))
                } else {
                    (Verdict::Pass, format!("{head}: redirected as the policy says"))
                }
            }
            (CaptureExpect::Redirected, Ob::Silent { .. }) => (
                Verdict::Fail,
                format!("{head}: the session has a microphone but it does not hear the client's; is the right client microphone redirected, or is it muted?"),
            ),
            (CaptureExpect::Redirected, Ob::NoDevice { .. }) => (
                Verdict::Fail,
                format!("{head}: the session has no microphone, so recording is not redirected; check audiocapturemode, fDisableAudioCapture and the client device settings; {RESTART_HINT}"),
            ),
            (CaptureExpect::Blocked, Ob::Detected { .. }) => (
                Verdict::Fail,
                format!("{head}: the policy is not in effect; {RESTART_HINT}"),
            ),
            (CaptureExpect::Blocked, Ob::Silent { .. } | Ob::NoDevice { .. }) => (
                Verdict::Pass,
                format!("{head}: the microphone does not reach the session, as the policy says"),
            ),
            (CaptureExpect::RedirectedAppsDenied, Ob::Detected { .. }) => (
                Verdict::Fail,
                format!("{head}: an app recorded the client's microphone although LetAppsAccessMicrophone=2 should deny it; is the privacy policy applied?"),
            ),
            (CaptureExpect::RedirectedAppsDenied, Ob::Silent { .. }) => (
                Verdict::Pass,
                format!("{head}: the microphone is there but apps hear nothing, as the privacy policy says"),
            ),
            (CaptureExpect::RedirectedAppsDenied, Ob::NoDevice { .. }) => (
                Verdict::Fail,
                format!("{head}: the privacy policy denies apps a redirected microphone, but none is redirected; check audiocapturemode and fDisableAudioCapture"),
            ),
            (_, Ob::Error { .. }) => rig_failed(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d<T>(value: T, by: &str) -> Decision<T> {
        Decision {
            value,
            decided_by: by.into(),
            trail: vec![],
        }
    }

    fn detected() -> Observation {
        Observation::Detected {
            level_dbfs: Some(-12.0),
            latency_ms: Some(104.0),
            snr_db: Some(50.0),
            dropouts: 0,
            symbols: 16,
        }
    }

    fn silent() -> Observation {
        Observation::Silent {
            rms_dbfs: -120.0,
            listened_ms: 5000.0,
        }
    }

    fn none() -> Observation {
        Observation::NoDevice {
            detail: "the session host has no output device".into(),
        }
    }

    fn error() -> Observation {
        Observation::Error {
            detail: "remote probe: connection refused".into(),
        }
    }

    #[test]
    fn output_matrix() {
        use OutputExpect::*;
        use Verdict::*;
        let cap = d(CaptureExpect::Blocked, "x");
        let table = [
            (Client, detected(), Pass),
            (Client, silent(), Fail),
            (Client, none(), Fail),
            (Client, error(), Inconclusive),
            (Session, detected(), Fail),
            (Session, silent(), Pass),
            (Session, none(), Pass),
            (Session, error(), Inconclusive),
            (None, detected(), Fail),
            (None, silent(), Pass),
            (None, none(), Pass),
            (None, error(), Inconclusive),
        ];
        for (exp, obs, want) in table {
            let (v, cause) = judge(Check::Output, &d(exp, "policy X"), &cap, &obs);
            assert_eq!(v, want, "{exp:?} / {obs:?}: {cause}");
            assert!(cause.contains("policy X"), "{cause}");
        }
    }

    #[test]
    fn capture_matrix() {
        use CaptureExpect::*;
        use Verdict::*;
        let out = d(OutputExpect::Client, "x");
        let table = [
            (Redirected, detected(), Pass),
            (Redirected, silent(), Fail),
            (Redirected, none(), Fail),
            (Redirected, error(), Inconclusive),
            (Blocked, detected(), Fail),
            (Blocked, silent(), Pass),
            (Blocked, none(), Pass),
            (Blocked, error(), Inconclusive),
            (RedirectedAppsDenied, detected(), Fail),
            (RedirectedAppsDenied, silent(), Pass),
            (RedirectedAppsDenied, none(), Fail),
            (RedirectedAppsDenied, error(), Inconclusive),
        ];
        for (exp, obs, want) in table {
            let (v, cause) = judge(Check::Capture, &out, &d(exp, "policy Y"), &obs);
            assert_eq!(v, want, "{exp:?} / {obs:?}: {cause}");
        }
    }

    #[test]
    fn a_rollout_not_in_effect_says_so_with_figures() {
        let (v, cause) = judge(
            Check::Output,
            &d(OutputExpect::None, "session host policy fDisableCam=1"),
            &d(CaptureExpect::Blocked, "x"),
            &detected(),
        );
        assert_eq!(v, Verdict::Fail);
        assert_eq!(
            cause,
            "expected not played on the client (session host policy fDisableCam=1); observed \
             detected at -12 dBFS after 104 ms, SNR 50 dB, 16/16 symbols: the policy is not in \
             effect; has the session host restarted since the rollout?"
        );
    }
}
