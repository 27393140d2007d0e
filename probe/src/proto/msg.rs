//! Typed protocol messages (JSON, `type`-tagged, snake_case).
//!
//! Results carry the audio types of [`crate::audio`] unchanged, so the harness can tell
//! detected (`ListenReport.analysis.detected`), silent, no-device
//! ([`AudioErrorKind::NoDevice`]) and other errors apart.

use serde::{Deserialize, Serialize};

use crate::audio::{
    AudioError, AudioErrorKind, DeviceInfo, DeviceSelector, ListenReport, PlayReport, RecordReport,
};
use crate::signal::Direction;

/// Messages of the handshake, the only ones accepted before authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Handshake {
    /// Client -> server: its protocol version and a fresh 32-byte nonce (hex).
    Hello {
        /// Protocol version the client speaks.
        version: u32,
        /// Fresh random nonce, hex.
        client_nonce: String,
        /// Software name and version, for logs.
        agent: String,
    },
    /// Server -> client: its protocol version and a fresh 32-byte nonce (hex).
    Challenge {
        /// Protocol version the server speaks.
        version: u32,
        /// Fresh random nonce, hex.
        server_nonce: String,
        /// Software name and version, for logs.
        agent: String,
    },
    /// Client -> server: HMAC-SHA256(token, "earshot-v2 client proof" || H(hello,
    /// challenge)), hex (see [`crate::proto::auth`]).
    Proof {
        /// The MAC, hex.
        mac: String,
    },
    /// Server -> client: HMAC-SHA256(token, "earshot-v2 server proof" || H(hello ..
    /// proof)), hex.
    Welcome {
        /// The MAC, hex.
        mac: String,
    },
    /// Either side: the handshake stops here, and why.
    Reject {
        /// Machine-readable reason.
        reason: RejectReason,
        /// Human explanation.
        message: String,
    },
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The peers speak different protocol versions.
    VersionMismatch,
    /// The proof did not verify.
    AuthFailed,
    /// The probe serves its maximum number of connections.
    ConnectionLimit,
    /// A message out of turn or malformed.
    Protocol,
    /// The probe is shutting down.
    ShuttingDown,
}

/// Parameters of `play`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayRequest {
    /// Output device.
    pub device: DeviceSelector,
    /// Signature seed.
    pub seed: u64,
    /// Signature direction.
    pub direction: Direction,
    /// Play the continuity stream this many ms long instead of the signature (seed and
    /// direction are then unused; a probe without `continuity` in its `info` features
    /// plays the signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuity_ms: Option<u64>,
    /// Play the quality probe signal instead of the signature (when `continuity_ms` is not
    /// set; a probe without `quality` in its `info` features plays the signature).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quality: bool,
    /// Play the speech reference instead of the signature (when neither `continuity_ms` nor
    /// `quality` is set; a probe without `speech` in its `info` features plays the
    /// signature).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub speech: bool,
}

impl PlayRequest {
    /// How long the play lasts: the continuity stream, the quality signal, the speech
    /// reference or the signature.
    pub fn length(&self) -> std::time::Duration {
        use std::time::Duration;
        match (self.continuity_ms, self.quality, self.speech) {
            (Some(ms), _, _) => Duration::from_millis(ms),
            (None, true, _) => {
                Duration::from_millis(u64::from(crate::signal::quality::duration_ms()))
            }
            (None, false, true) => {
                Duration::from_millis(u64::from(crate::signal::speech::DURATION_MS))
            }
            (None, false, false) => {
                crate::signal::Signature::new(self.seed, self.direction).duration()
            }
        }
    }
}

/// Parameters of `record`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordRequest {
    /// Input device (or `loopback:<output>`).
    pub device: DeviceSelector,
    /// How long to record, in ms (bounded by the probe's maximum).
    pub duration_ms: u64,
    /// Keep the recording as evidence: the reply then carries an [`EvidenceRef`] to fetch.
    pub evidence: bool,
    /// Account for every sample of the continuity stream in the recording: the reply's
    /// report then carries a `continuity` analysis.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continuity: bool,
    /// Measure the quality probe signal in the recording: the reply's report then carries
    /// a `quality` analysis.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quality: bool,
    /// Score the speech reference in the recording: the reply's report then carries a
    /// `speech` analysis.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub speech: bool,
}

/// Parameters of `listen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenRequest {
    /// Input device (or `loopback:<output>`).
    pub device: DeviceSelector,
    /// Signature seed.
    pub seed: u64,
    /// Signature direction.
    pub direction: Direction,
    /// Give up after listening this many ms, counted from the device's first audio
    /// (bounded by the probe's maximum; the device gets its start allowance before that).
    pub timeout_ms: u64,
    /// Keep what was heard as evidence: the reply then carries an [`EvidenceRef`] to fetch.
    pub evidence: bool,
}

/// A request; `id` is chosen by the client and echoed in every frame of the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Request id, unique per connection.
    pub id: u64,
    /// What is asked.
    #[serde(flatten)]
    pub body: RequestBody,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestBody {
    /// Probe, host and session facts plus the device catalogue.
    Info,
    /// Play a signature.
    Play(PlayRequest),
    /// Record for a fixed time.
    Record(RecordRequest),
    /// Listen for a signature.
    Listen(ListenRequest),
    /// Stream a recording kept as evidence: an `evidence` header, then binary chunks.
    FetchEvidence {
        /// [`EvidenceRef::id`] from a `listened` or `recorded` reply.
        evidence_id: u64,
    },
    /// Stop the job `target` of this connection, or all of them when `None`.
    Cancel {
        /// Request id of the job to stop.
        target: Option<u64>,
    },
}

impl RequestBody {
    /// Short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            RequestBody::Info => "info",
            RequestBody::Play(_) => "play",
            RequestBody::Record(_) => "record",
            RequestBody::Listen(_) => "listen",
            RequestBody::FetchEvidence { .. } => "fetch_evidence",
            RequestBody::Cancel { .. } => "cancel",
        }
    }
}

/// Whether the probe runs inside a remote desktop session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// Markers of a remote session were found.
    Remote,
    /// The platform says this is a console (local) session.
    Local,
    /// No reliable way to tell on this platform.
    Unknown,
}

/// The server stack that serves a remote session: it decides which host facts mean
/// anything (xrdp.ini only for xrdp) and how the session's redirected endpoints are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionServer {
    /// Windows Remote Desktop Services (a session whose protocol is RDP).
    WindowsRds,
    /// xrdp with its sesman and chansrv.
    Xrdp,
    /// GNOME Remote Desktop (a headless session, or the remote login's handover).
    GnomeRemoteDesktop,
    /// FreeRDP's shadow server, sharing an existing display.
    FreerdpShadow,
    /// Chrome Remote Desktop.
    ChromeRemoteDesktop,
    /// NoMachine / NX.
    Nx,
    /// X2Go.
    X2go,
    /// A server a newer probe recognised and this build does not know.
    #[serde(other)]
    Other,
}

impl SessionServer {
    /// The server's name as an admin knows it.
    pub fn name(self) -> &'static str {
        match self {
            SessionServer::WindowsRds => "Remote Desktop Services",
            SessionServer::Xrdp => "xrdp",
            SessionServer::GnomeRemoteDesktop => "GNOME Remote Desktop",
            SessionServer::FreerdpShadow => "FreeRDP shadow server",
            SessionServer::ChromeRemoteDesktop => "Chrome Remote Desktop",
            SessionServer::Nx => "NX",
            SessionServer::X2go => "X2Go",
            SessionServer::Other => "another remote desktop server",
        }
    }
}

/// The remote-session verdict and the markers it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSession {
    /// The verdict.
    pub kind: SessionKind,
    /// What was checked and what it showed, e.g. `XRDP_SESSION=1`, `SM_REMOTESESSION=1`,
    /// `logind session 4: REMOTE=0 SEAT=seat0 TYPE=wayland`: for every kind, `unknown`
    /// included, so that a report says what was looked at.
    pub evidence: Vec<String>,
    /// The stack that serves the session, when the evidence names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<SessionServer>,
}

/// Answer to `info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// This probe process's instance: random, new at every start, the same on every
    /// connection to it. Two addresses whose probes show one id reach one probe (a local
    /// and a remote address that do are the same machine, not a client and its session).
    /// Empty from a probe that predates the field.
    #[serde(default)]
    pub instance_id: String,
    /// earshot-probe version.
    pub probe_version: String,
    /// Protocol version.
    pub protocol_version: u32,
    /// Host name of the machine.
    pub hostname: String,
    /// Operating system (`linux`, `windows`, ...).
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// Audio host in use (e.g. "PulseAudio"), or why none is usable.
    pub audio_host: Result<String, AudioError>,
    /// Remote-session detection.
    pub session: RemoteSession,
    /// Device catalogue, or why it could not be listed (info still answers).
    pub devices: Result<Vec<DeviceInfo>, AudioError>,
    /// Longest record/listen this probe accepts, in ms.
    pub max_capture_ms: u64,
    /// The probe's clock (unix time, ms) when it answered: with the round trip, the
    /// harness puts both probes' timestamps on one clock.
    #[serde(default)]
    pub now_unix_ms: f64,
    /// The xrdp channel settings of this host, from its xrdp.ini (absent: no such file,
    /// or a probe that predates the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xrdp: Option<XrdpSettings>,
    /// The configuration this host really has (Windows: the policy and WinStation registry
    /// values, services, privacy consent; absent: nothing applies on this OS, or a probe
    /// that predates the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_config: Option<HostConfig>,
    /// The input this probe holds open between requests (`--prime-input`), so that a path
    /// opened on demand (RDP's microphone channel) is open before a listen starts (absent:
    /// none held, or a probe that predates the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primed_input: Option<PrimedInput>,
    /// Every input this probe holds open (`--prime-input`, repeated), in the order given;
    /// `primed_input` is the first of them, for harnesses that know only that field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primed_inputs: Vec<PrimedInput>,
    /// What this probe can do beyond signatures (`continuity`: it plays the continuity
    /// stream and analyses recordings of it); empty for a probe that predates the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl ProbeInfo {
    /// The peer's words made printable ([`super::printable`]): host name, session markers,
    /// devices, audio host and catalogue errors, held inputs.
    pub fn into_printable(mut self) -> ProbeInfo {
        use super::printable as p;
        self.hostname = p(&self.hostname);
        self.instance_id = p(&self.instance_id);
        self.probe_version = p(&self.probe_version);
        self.os = p(&self.os);
        self.arch = p(&self.arch);
        self.session.evidence = self.session.evidence.iter().map(|e| p(e)).collect();
        let error = |e: &mut crate::audio::AudioError| e.message = p(&e.message);
        match &mut self.audio_host {
            Ok(h) => *h = p(h),
            Err(e) => error(e),
        }
        match &mut self.devices {
            Ok(list) => list.iter_mut().for_each(|d| {
                d.id = p(&d.id);
                d.name = p(&d.name);
            }),
            Err(e) => error(e),
        }
        for held in self.primed_inputs.iter_mut().chain(&mut self.primed_input) {
            held.device = p(&held.device);
            held.error = held.error.as_deref().map(p);
        }
        self
    }
}

/// An input held open by the probe (`--prime-input`), as it stood when `info` answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrimedInput {
    /// The device selector it holds, as given (`default`, an id or a name).
    pub device: String,
    /// How long the device has been delivering audio without a break, in ms; absent while
    /// it is not (opening, reopening after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_ms: Option<u64>,
    /// Why the last attempt to hold it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the session's RDP connection has stood unchanged, in ms, as far as the
    /// host shows it (xrdp: its socket directory, see `server::rdp_connection`): a client
    /// that reconnected brings a microphone channel that opens anew, whatever `open_ms`
    /// says. Absent where the host shows nothing (Windows, a desktop, an older probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_ms: Option<u64>,
}

/// What a Windows session host really has, read by the probe inside it: the values an
/// admin would otherwise look up by hand in regedit and services.msc.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostConfig {
    /// The host's last boot (unix time, ms): now minus the uptime.
    #[serde(default)]
    pub boot_unix_ms: Option<f64>,
    /// Registry values read, each with its key's last-write time.
    #[serde(default)]
    pub values: Vec<RegistryValue>,
    /// Services that audio redirection needs.
    #[serde(default)]
    pub services: Vec<ServiceState>,
    /// The session's protocol as Windows reports it (`WTSClientProtocolType`): `console`,
    /// `rdp`, `ica` (a legacy value) or `unknown (N)`; `None` when it could not be read
    /// (the reason is in `errors`).
    #[serde(default)]
    pub session_protocol: Option<String>,
    /// Audio endpoints whose names mark them as the remote session's redirected devices
    /// ("Remote Audio"), one per endpoint in catalogue order: present means the RDP
    /// client's audio reached the session.
    #[serde(default)]
    pub remote_endpoints: Vec<String>,
    /// What could not be read, and why (never fatal: the rest is still reported).
    #[serde(default)]
    pub errors: Vec<String>,
}

impl HostConfig {
    /// The value `name` under `key` (the key as spelled in [`RegistryValue::key`]; the
    /// probe's keys are the constants of `server::host_config`, e.g. `TS_POLICY_KEY`).
    pub fn value(&self, key: &str, name: &str) -> Option<&RegistryValue> {
        self.values
            .iter()
            .find(|v| v.key.eq_ignore_ascii_case(key) && v.name.eq_ignore_ascii_case(name))
    }
}

/// One registry value as the host has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryValue {
    /// The full key, `HKLM\...` or `HKCU\...`, e.g.
    /// `HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services`.
    pub key: String,
    /// The value's name, e.g. `fDisableCam`.
    pub name: String,
    /// What is there.
    pub data: RegistryData,
    /// The key's last-write time (unix time, ms): a value rewritten with the same data
    /// does not move it, a change does. `None` when the key does not exist or its time
    /// could not be read.
    #[serde(default)]
    pub key_written_unix_ms: Option<f64>,
}

/// The data of a registry value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegistryData {
    /// The key does not exist.
    KeyMissing,
    /// The key exists, the value does not (policy "not configured").
    Absent,
    /// A REG_DWORD.
    Dword {
        /// The number.
        value: u32,
    },
    /// Any other type: a string where one belongs (the consent store's `Allow`), or the
    /// wrong type where a DWORD is expected (a REG_SZ `1`, a REG_BINARY): reported, never
    /// guessed at. A REG_DWORD that is not 4 bytes long is reported here too.
    Other {
        /// The registry type, e.g. `REG_SZ`, or `type N` for an undefined number.
        reg_type: String,
        /// The data as text: strings as they are (a REG_MULTI_SZ one per line), REG_QWORD
        /// as its number, anything else as hex (cut after 64 bytes).
        text: String,
    },
    /// Reading it (or its key) failed, e.g. access denied.
    Error {
        /// Why.
        message: String,
    },
}

impl RegistryData {
    /// The DWORD, if that is what the value is.
    pub fn dword(&self) -> Option<u32> {
        match self {
            RegistryData::Dword { value } => Some(*value),
            _ => None,
        }
    }
}

/// A Windows service's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Service name, e.g. `Audiosrv`.
    pub name: String,
    /// Display name as the host has it (localised), e.g. "Windows Audio"; the English
    /// one when the service is not installed or its configuration could not be read.
    pub display_name: String,
    /// `running`, `stopped`, `start_pending`, ..., `not_installed`, or `unknown: why`.
    pub state: String,
    /// `automatic`, `manual`, `disabled`, ... (`None` when it could not be read).
    #[serde(default)]
    pub start_type: Option<String>,
}

/// What an xrdp host's xrdp.ini says about the channels audio needs. A switch that is
/// `None` is not in the file: xrdp's default for each of them is true (allowed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct XrdpSettings {
    /// The file read.
    pub path: String,
    /// Its last modification (unix time, ms): a change after xrdp started is not yet in
    /// effect for new connections until xrdp restarts.
    #[serde(default)]
    pub modified_unix_ms: Option<f64>,
    /// `[Globals] allow_channels`: false blocks every virtual channel.
    #[serde(default)]
    pub allow_channels: Option<bool>,
    /// `[Channels] rdpsnd`: false blocks output redirection.
    #[serde(default)]
    pub rdpsnd: Option<bool>,
    /// `[Channels] drdynvc`: false blocks the dynamic channels, capture (audin) among them.
    #[serde(default)]
    pub drdynvc: Option<bool>,
    /// `[Xvnc] channel.rdpsnd`: output for sessions on Xvnc.
    #[serde(default)]
    pub xvnc_rdpsnd: Option<bool>,
    /// `[Xorg] channel.rdpsnd`: output for sessions on Xorg (xorgxrdp).
    #[serde(default)]
    pub xorg_rdpsnd: Option<bool>,
    /// Why the file exists but could not be read.
    #[serde(default)]
    pub error: Option<String>,
}

/// Error classes of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The device operation failed; `audio_kind` says how.
    Audio,
    /// Another job holds the device.
    DeviceBusy,
    /// The probe is shutting down; the job was stopped.
    ShuttingDown,
    /// The request was invalid (e.g. duration beyond the maximum).
    BadRequest,
    /// The job did not finish within its own bound.
    Timeout,
    /// The evidence asked for is no longer held (the probe keeps the latest recordings
    /// within a byte and count cap, and nothing across a restart).
    EvidenceGone,
    /// Anything else on the probe's side.
    Internal,
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// The class.
    pub code: ErrorCode,
    /// The audio failure kind, for `code == Audio`.
    pub audio_kind: Option<AudioErrorKind>,
    /// What happened, naming the device or limit.
    pub message: String,
}

impl RemoteError {
    /// This error with its message made printable ([`super::printable`]).
    pub fn into_printable(mut self) -> RemoteError {
        self.message = super::printable(&self.message);
        self
    }

    /// An error of `code` with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RemoteError {
        RemoteError {
            code,
            audio_kind: None,
            message: message.into(),
        }
    }

    /// The audio error this carries, if it is one.
    pub fn audio(&self) -> Option<AudioError> {
        self.audio_kind.map(|kind| AudioError {
            kind,
            message: self.message.clone(),
        })
    }
}

impl From<AudioError> for RemoteError {
    fn from(e: AudioError) -> RemoteError {
        RemoteError {
            code: ErrorCode::Audio,
            audio_kind: Some(e.kind),
            message: e.message,
        }
    }
}

/// A recording the probe keeps as evidence, to be fetched with `fetch_evidence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// Evidence id, unique within the probe's run.
    pub id: u64,
    /// Sample rate of the recording.
    pub sample_rate_hz: u32,
    /// Channels.
    pub channels: u16,
    /// Frames (samples per channel).
    pub frames: u64,
    /// Bits per sample of the lossless file (24, or 16 when the device delivered 16-bit).
    pub bits_per_sample: u8,
}

impl EvidenceRef {
    /// Length of the recording, in ms.
    pub fn duration_ms(&self) -> f64 {
        self.frames as f64 * 1000.0 / f64::from(self.sample_rate_hz.max(1))
    }
}

/// File format of fetched evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceFormat {
    /// FLAC (lossless).
    Flac,
    /// WAV, 32-bit float: for what FLAC cannot hold (more than 8 channels).
    Wav,
}

impl EvidenceFormat {
    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            EvidenceFormat::Flac => "flac",
            EvidenceFormat::Wav => "wav",
        }
    }
}

/// A reply frame; `id` names the request it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Id of the request answered.
    pub id: u64,
    /// The answer.
    #[serde(flatten)]
    pub body: ResponseBody,
}

/// The feature (in [`ProbeInfo::features`]) of a probe that sends `armed` for `record`
/// too, not only for `listen`, and counts a recording's time from its first audio.
pub const RECORD_ARMED: &str = "record_armed";

/// What a reply carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBody {
    /// Answer to `info`.
    Info {
        /// The facts.
        info: Box<ProbeInfo>,
    },
    /// Answer to `play`.
    Played {
        /// The device's report.
        report: PlayReport,
    },
    /// Answer to `record`.
    Recorded {
        /// The device's report.
        report: RecordReport,
        /// The recording kept as evidence, when asked for.
        evidence: Option<EvidenceRef>,
    },
    /// Answer to `listen`: the verdict, never delayed by evidence.
    Listened {
        /// The device's report.
        report: Box<ListenReport>,
        /// What was heard, kept as evidence, when asked for.
        evidence: Option<EvidenceRef>,
    },
    /// Answer to `cancel`: how many jobs were told to stop.
    Cancelled {
        /// Jobs signalled.
        jobs: u32,
    },
    /// Progress of `listen` and `record`: the device delivers audio, so anything played
    /// from now on is heard (a recording's time runs from here). The final reply follows.
    /// A harness starts the player only after this; probes without [`RECORD_ARMED`] in
    /// their features send it for `listen` only.
    Armed,
    /// Answer to `fetch_evidence`: the file's format and size. Exactly `bytes` bytes
    /// follow as binary chunks of this request, in order; the last one ends the request.
    Evidence {
        /// The file's format.
        format: EvidenceFormat,
        /// The file's size.
        bytes: u64,
    },
    /// The request failed.
    Error {
        /// What went wrong.
        error: RemoteError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_type_tagged_with_their_id() {
        let r = Request {
            id: 7,
            body: RequestBody::Listen(ListenRequest {
                device: DeviceSelector::parse("loopback:speakers"),
                seed: 42,
                direction: Direction::Output,
                timeout_ms: 5000,
                evidence: true,
            }),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["type"], "listen");
        assert_eq!(v["direction"], "output");
        assert_eq!(v["device"]["by"], "loopback_of");
        let back: Request = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let c: Request = serde_json::from_str(r#"{"id":1,"type":"cancel","target":null}"#).unwrap();
        assert_eq!(c.body, RequestBody::Cancel { target: None });
        let i: Request = serde_json::from_str(r#"{"id":2,"type":"info"}"#).unwrap();
        assert_eq!(i.body, RequestBody::Info);
    }

    #[test]
    fn unknown_request_types_are_errors_not_panics() {
        assert!(serde_json::from_str::<Request>(r#"{"id":1,"type":"format_disk"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type":"info"}"#).is_err());
    }

    #[test]
    fn audio_errors_keep_their_kind_across_the_wire() {
        let e = RemoteError::from(AudioError {
            kind: AudioErrorKind::NoDevice,
            message: "the host has no input device".into(),
        });
        let r = Response {
            id: 3,
            body: ResponseBody::Error { error: e },
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(
            s.contains(r#""type":"error""#) && s.contains(r#""audio_kind":"no_device""#),
            "{s}"
        );
        let back: Response = serde_json::from_str(&s).unwrap();
        let ResponseBody::Error { error } = back.body else {
            panic!("not an error: {s}");
        };
        assert_eq!(error.audio().unwrap().kind, AudioErrorKind::NoDevice);
    }

    #[test]
    fn handshake_messages_are_tagged() {
        let h = Handshake::Reject {
            reason: RejectReason::VersionMismatch,
            message: "x".into(),
        };
        let s = serde_json::to_string(&h).unwrap();
        assert_eq!(
            s,
            r#"{"type":"reject","reason":"version_mismatch","message":"x"}"#
        );
    }
}
