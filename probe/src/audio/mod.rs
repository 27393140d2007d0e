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
    /// Health counters.
    pub health: StreamHealth,
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
    /// Which channel the result came from.
    pub channel: u16,
    /// Time from the start of listening to the verdict, in ms.
    pub elapsed_ms: f64,
    /// Whether it stopped because the signature was found (else: timeout).
    pub stopped_early: bool,
    /// Health counters.
    pub health: StreamHealth,
}

/// Options for recording and listening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureOptions {
    /// Give up after this long.
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
