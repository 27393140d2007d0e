//! Audio devices: catalogue, selection, and the play / record / listen operations.
//!
//! The data types here are always built (the harness and the protocol use them); the
//! cpal backend that touches real devices needs the `devices` feature.
//!
//! CONTRACT (filled in by the device work).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;

/// Which audio host (cpal backend) to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostChoice {
    /// PulseAudio when a server is reachable (Linux), else the platform default.
    Auto,
    /// cpal's PulseAudio host (Linux).
    PulseAudio,
    /// ALSA (Linux).
    Alsa,
    /// WASAPI (Windows).
    Wasapi,
    /// CoreAudio (macOS).
    CoreAudio,
}

/// Whether a device plays or records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceDirection {
    /// A sink / render endpoint.
    Output,
    /// A source / capture endpoint (microphones and monitors).
    Input,
}

/// A device's default stream format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFormat {
    /// Samples per second per channel.
    pub sample_rate_hz: u32,
    /// Channel count.
    pub channels: u16,
    /// Sample format as cpal names it, e.g. "f32", "i16".
    pub sample_format: String,
}

/// One entry of the device catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Stable id, e.g. `pulseaudio:speakers.monitor`.
    pub id: String,
    /// Human name, e.g. "Monitor of Client-Speakers".
    pub name: String,
    /// Output or input.
    pub direction: DeviceDirection,
    /// Whether it is the host's default for its direction.
    pub is_default: bool,
    /// Whether it is a loopback/monitor of an output rather than a microphone.
    pub is_monitor: bool,
    /// Its default format, if the host reports one.
    pub default_format: Option<StreamFormat>,
}

/// How the user picks a device: `default`, an exact id, an exact name, a unique
/// substring of id or name, or `loopback:<output selector>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "value")]
pub enum DeviceSelector {
    /// The host's default device for the direction.
    Default,
    /// Matches id exactly, else name exactly, else a unique substring of either.
    Match(String),
    /// The loopback (monitor) of the output device that the inner selector picks.
    LoopbackOf(Box<DeviceSelector>),
}

impl DeviceSelector {
    /// Parses the command-line form: `default`, `loopback:<sel>`, or anything else as a match.
    pub fn parse(s: &str) -> DeviceSelector {
        if s == "default" {
            DeviceSelector::Default
        } else if let Some(rest) = s.strip_prefix("loopback:") {
            DeviceSelector::LoopbackOf(Box::new(DeviceSelector::parse(rest)))
        } else {
            DeviceSelector::Match(s.to_string())
        }
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Default => f.write_str("default"),
            DeviceSelector::Match(s) => f.write_str(s),
            DeviceSelector::LoopbackOf(inner) => write!(f, "loopback:{inner}"),
        }
    }
}

/// What kind of audio failure happened, so callers can retry, skip or abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioErrorKind {
    /// No audio host/server could be reached.
    HostUnavailable,
    /// The host has no device for this direction at all (e.g. no session microphone).
    NoDevice,
    /// The selector matched nothing, or more than one device.
    NoMatch,
    /// The device vanished or the server died.
    DeviceNotAvailable,
    /// The device is in use.
    DeviceBusy,
    /// The OS refused access.
    PermissionDenied,
    /// A stream stopped delivering and was abandoned by the watchdog.
    Stalled,
    /// The device cannot do a format we can use.
    UnsupportedFormat,
    /// Anything else the backend reported.
    Backend,
}

/// An audio failure with its kind and a message naming the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AudioError {
    /// The kind, for branching.
    pub kind: AudioErrorKind,
    /// What happened, naming the device.
    pub message: String,
}

/// Stream health counters gathered during an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHealth {
    /// Buffer underruns (output) or overruns (input) reported or detected.
    pub xruns: u64,
    /// Samples lost because the analysis side fell behind the callback.
    pub dropped_samples: u64,
    /// Stream errors reported by the backend.
    pub stream_errors: Vec<String>,
}

/// The result of playing a signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayReport {
    /// The device used.
    pub device: DeviceInfo,
    /// The stream format used.
    pub format: StreamFormat,
    /// How long it played, in ms.
    pub played_ms: f64,
    /// When the stream started playing the signature, as unix time in ms.
    pub started_unix_ms: f64,
    /// Health counters.
    pub health: StreamHealth,
    /// The output's mute and volume as the session's sound settings had them when the
    /// play ended (PulseAudio and PipeWire sinks; absent where unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_state: Option<OutputState>,
}

/// An output's mute and volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputState {
    /// The sink or endpoint, as its audio server names it.
    pub name: String,
    /// Muted.
    pub muted: bool,
    /// The loudest channel's volume in percent (100: as played).
    pub volume_pct: f64,
}

/// The result of listening for a signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenReport {
    /// The device used.
    pub device: DeviceInfo,
    /// The stream format used.
    pub format: StreamFormat,
    /// The detector's result (best channel).
    pub analysis: Analysis,
    /// Which channel the result came from, numbered from 1 as in every output; picked by
    /// [`crate::analysis::best_channel`] (detected first, then the highest confidence,
    /// then the lowest number).
    pub channel: u16,
    /// Time from the start of listening to the verdict, in ms.
    pub elapsed_ms: f64,
    /// Time from the start of listening to the first audio from the device, in ms: only
    /// what is played after this can be heard.
    pub armed_ms: Option<f64>,
    /// When the signature's first sample reached this probe, as unix time in ms: when the
    /// delivery carrying it arrived (never before it was captured; late by one delivery at
    /// most). With the player's [`PlayReport::started_unix_ms`] (taken before its stream
    /// starts) on the same clock, the path's latency, never below the true one.
    pub onset_unix_ms: Option<f64>,
    /// When the verdict was reached, as unix time in ms.
    pub verdict_unix_ms: f64,
    /// Whether it stopped because the signature was found (else: timeout or cancel).
    pub stopped_early: bool,
    /// Whether it stopped because its caller cancelled it while it was still listening
    /// (not its timeout, not the signature): the listen then ran at least until the cancel
    /// arrived, which a harness uses to prove a play fell inside it.
    #[serde(default)]
    pub cancelled: bool,
    /// Health counters.
    pub health: StreamHealth,
}

/// Options for recording and listening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureOptions {
    /// Give up after this long: a listen counts it from the device's first audio, a
    /// recording is this long from its first sample.
    pub timeout: Duration,
    /// Keep the recorded samples (for WAV evidence).
    pub keep_audio: bool,
}

/// The result of a plain recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordReport {
    /// The device used.
    pub device: DeviceInfo,
    /// The stream format used.
    pub format: StreamFormat,
    /// How much was recorded, in ms.
    pub recorded_ms: f64,
    /// Health counters.
    pub health: StreamHealth,
    /// The continuity stream accounted for (asked with `continuity`), best channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuity: Option<Box<crate::signal::continuity::ContinuityReport>>,
    /// The quality analysis of the recording, when the request asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Box<crate::signal::quality::QualityReport>>,
    /// The speech score of the recording, when the request asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech: Option<Box<crate::signal::speech::SpeechReport>>,
}

/// A flag a caller sets to stop a running device operation early (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> CancelFlag {
        CancelFlag::default()
    }
    /// Asks the operation to stop.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
    /// Whether stopping was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

#[cfg(feature = "devices")]
pub mod backend;
#[cfg(all(feature = "devices", target_os = "linux"))]
pub mod pulse;
pub mod ring;

/// Whether a catalogue entry is the loopback of another device: PulseAudio and PipeWire
/// name an output's monitor source `<sink>.monitor`.
pub fn looks_like_monitor(id: &str, name: &str) -> bool {
    id.ends_with(".monitor") || name.starts_with("Monitor of ")
}

fn no_match(kind: AudioErrorKind, what: String, candidates: &[&DeviceInfo]) -> AudioError {
    let list: Vec<&str> = candidates.iter().map(|d| d.id.as_str()).collect();
    AudioError {
        kind,
        message: format!("{what}; candidates: [{}]", list.join(", ")),
    }
}

/// Picks the one device `selector` names among the `direction` devices of `catalog`.
///
/// `Default` on the input side refuses a monitor: a monitor is a loopback of an output,
/// not a microphone, so asking the default microphone of a host whose default source is a
/// monitor yields `NoDevice`. Ask for a monitor explicitly (`loopback:<output>` or its id).
///
/// # Errors
/// `NoDevice` when the catalogue has no device of that direction (or only a monitor as
/// the default input); `NoMatch` when the selector matches nothing or several devices,
/// with the candidates listed in the message.
pub fn select<'a>(
    catalog: &'a [DeviceInfo],
    selector: &DeviceSelector,
    direction: DeviceDirection,
) -> Result<&'a DeviceInfo, AudioError> {
    let dir_name = match direction {
        DeviceDirection::Output => "output",
        DeviceDirection::Input => "input",
    };
    let pool: Vec<&DeviceInfo> = catalog
        .iter()
        .filter(|d| d.direction == direction)
        .collect();
    if pool.is_empty() {
        return Err(AudioError {
            kind: AudioErrorKind::NoDevice,
            message: format!("the host has no {dir_name} device"),
        });
    }
    match selector {
        DeviceSelector::Default => {
            let dev = pool.iter().find(|d| d.is_default).ok_or_else(|| {
                no_match(
                    AudioErrorKind::NoDevice,
                    format!("the host reports no default {dir_name} device"),
                    &pool,
                )
            })?;
            if direction == DeviceDirection::Input && dev.is_monitor {
                return Err(AudioError {
                    kind: AudioErrorKind::NoDevice,
                    message: format!(
                        "the default input `{}` is a monitor (loopback of an output), not a \
                         microphone; select it explicitly to record it",
                        dev.id
                    ),
                });
            }
            Ok(dev)
        }
        DeviceSelector::Match(text) => {
            if let Some(d) = pool.iter().find(|d| &d.id == text) {
                return Ok(d);
            }
            // Ids may be shown with or without the host prefix (`pulseaudio:`).
            if let Some(d) = pool
                .iter()
                .find(|d| d.id.split_once(':').is_some_and(|(_, rest)| rest == text))
            {
                return Ok(d);
            }
            let by_name: Vec<&DeviceInfo> =
                pool.iter().copied().filter(|d| &d.name == text).collect();
            if by_name.len() == 1 {
                return Ok(by_name[0]);
            }
            let sub: Vec<&DeviceInfo> = pool
                .iter()
                .copied()
                .filter(|d| d.id.contains(text.as_str()) || d.name.contains(text.as_str()))
                .collect();
            match sub.len() {
                1 => Ok(sub[0]),
                0 => Err(no_match(
                    AudioErrorKind::NoMatch,
                    format!("no {dir_name} device matches `{text}`"),
                    &pool,
                )),
                _ => Err(no_match(
                    AudioErrorKind::NoMatch,
                    format!("`{text}` matches several {dir_name} devices"),
                    &sub,
                )),
            }
        }
        DeviceSelector::LoopbackOf(inner) => {
            let out = select(catalog, inner, DeviceDirection::Output)?;
            let raw = out.id.split_once(':').map_or(out.id.as_str(), |(_, r)| r);
            let want = format!("{raw}.monitor");
            catalog
                .iter()
                .filter(|d| d.direction == DeviceDirection::Input && d.is_monitor)
                .find(|d| d.id == want || d.id.ends_with(&format!(":{want}")))
                .ok_or_else(|| {
                    let monitors: Vec<&DeviceInfo> = catalog
                        .iter()
                        .filter(|d| d.direction == DeviceDirection::Input && d.is_monitor)
                        .collect();
                    no_match(
                        AudioErrorKind::NoMatch,
                        format!("output `{}` has no loopback (monitor) source", out.id),
                        &monitors,
                    )
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: &str, name: &str, direction: DeviceDirection, is_default: bool) -> DeviceInfo {
        DeviceInfo {
            id: id.to_string(),
            name: name.to_string(),
            direction,
            is_default,
            is_monitor: looks_like_monitor(id, name),
            default_format: None,
        }
    }

    fn lab() -> Vec<DeviceInfo> {
        use DeviceDirection::{Input, Output};
        vec![
            dev("pulseaudio:speakers", "Client-Speakers", Output, true),
            dev("pulseaudio:headset", "Client-Headset", Output, false),
            dev(
                "pulseaudio:speakers.monitor",
                "Monitor of Client-Speakers",
                Input,
                true,
            ),
            dev(
                "pulseaudio:headset.monitor",
                "Monitor of Client-Headset",
                Input,
                false,
            ),
            dev("pulseaudio:mic", "Client-Mic", Input, false),
        ]
    }

    fn sel(s: &str, d: DeviceDirection) -> Result<String, AudioError> {
        let cat = lab();
        select(&cat, &DeviceSelector::parse(s), d).map(|d| d.id.clone())
    }

    #[test]
    fn default_output_is_the_flagged_one() {
        assert_eq!(
            sel("default", DeviceDirection::Output).unwrap(),
            "pulseaudio:speakers"
        );
    }

    #[test]
    fn default_input_that_is_a_monitor_is_no_microphone() {
        let e = sel("default", DeviceDirection::Input).unwrap_err();
        assert_eq!(e.kind, AudioErrorKind::NoDevice);
        assert!(e.message.contains("speakers.monitor"), "{}", e.message);
    }

    #[test]
    fn exact_id_with_or_without_host_prefix_and_exact_name() {
        use DeviceDirection::*;
        assert_eq!(
            sel("pulseaudio:headset", Output).unwrap(),
            "pulseaudio:headset"
        );
        assert_eq!(sel("headset", Output).unwrap(), "pulseaudio:headset");
        assert_eq!(sel("Client-Mic", Input).unwrap(), "pulseaudio:mic");
        // `speakers` is an exact raw id even though it is also a substring of the monitor.
        assert_eq!(
            sel("speakers.monitor", Input).unwrap(),
            "pulseaudio:speakers.monitor"
        );
    }

    #[test]
    fn ambiguous_and_unknown_list_candidates() {
        let e = sel("Monitor", DeviceDirection::Input).unwrap_err();
        assert_eq!(e.kind, AudioErrorKind::NoMatch);
        assert!(e.message.contains("headset.monitor") && e.message.contains("speakers.monitor"));
        assert!(!e.message.contains("pulseaudio:mic"), "{}", e.message);
        let e = sel("nope", DeviceDirection::Output).unwrap_err();
        assert_eq!(e.kind, AudioErrorKind::NoMatch);
        assert!(e.message.contains("pulseaudio:headset"), "{}", e.message);
    }

    #[test]
    fn loopback_of_an_output() {
        use DeviceDirection::Input;
        assert_eq!(
            sel("loopback:Headset", Input).unwrap(),
            "pulseaudio:headset.monitor"
        );
        assert_eq!(
            sel("loopback:default", Input).unwrap(),
            "pulseaudio:speakers.monitor"
        );
        let cat: Vec<DeviceInfo> = lab()
            .into_iter()
            .filter(|d| d.id != "pulseaudio:headset.monitor")
            .collect();
        let e = select(&cat, &DeviceSelector::parse("loopback:headset"), Input).unwrap_err();
        assert_eq!(e.kind, AudioErrorKind::NoMatch);
    }

    #[test]
    fn empty_direction_is_no_device() {
        let cat: Vec<DeviceInfo> = lab()
            .into_iter()
            .filter(|d| d.direction == DeviceDirection::Input)
            .collect();
        let e = select(&cat, &DeviceSelector::Default, DeviceDirection::Output).unwrap_err();
        assert_eq!(e.kind, AudioErrorKind::NoDevice);
    }
}
