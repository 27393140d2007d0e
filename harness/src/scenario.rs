//! Scenario files: what was rolled out (the policy layers), where the probes are, which
//! checks to run. TOML; unknown keys are rejected, and every error names the file, the line
//! and the key.
//!
//! ```toml
//! name = "AVD: GPO blocks playback despite the host pool"
//! product = "avd"                       # avd | windows365 | devbox | rds
//! checks = ["output", "capture"]        # default: both; opt-in: "continuity", "quality"
//!
//! [policy.session_host]                 # Group Policy / Intune on the session host
//! fDisableCam = 1                       # 0 allowed, 1 blocked; absent: not configured
//! fDisableAudioCapture = 0
//! AllowedAudioQualityMode = 7           # 1 dynamic, 3 medium, 7 high
//! LetAppsAccessMicrophone = 0           # 0 user in control, 1 force allow, 2 force deny
//! # import = "gpo/Registry.pol"         # or a `reg export` .reg file, instead of the values
//!
//! [policy.rdp]                          # AVD host pool RDP properties (or an .rdp file for RDS)
//! properties = "audiomode:i:0;audiocapturemode:i:1"
//! # file = "hostpool.rdp"
//! # hostpool_json = "hostpool.json"     # `az desktopvirtualization hostpool show` output
//!
//! [policy.client]                       # client device settings (Intune)
//! microphone = "disabled"               # enabled | disabled
//!
//! [probes.local]                        # on the client
//! address = "127.0.0.1:7701"
//! token_file = "local.token"            # relative to this file
//! output_loopback = "loopback:default"  # where the client's output is heard
//! mic_feed = "micfeed"                  # what the client's microphone hears
//!
//! [probes.remote]                       # inside the session
//! dial_in = "0.0.0.0:7702"              # the probe connects to the harness instead
//! token_file = "remote.token"
//!
//! [timeouts]
//! connect = "5s"
//! listen = "6s"                         # for a sound that should be heard
//! latency = "1s"                        # silence window: play to hearing, at most
//! channel_open = "2500ms"               # silence window: an on-demand mic channel opening
//!
//! [budgets]                             # optional: a redirected path must also be this good
//! output_latency = "400ms"              # play in the session to heard on the client
//! capture_latency = "300ms"             # client microphone to heard in the session
//! min_level_db = -20.0                  # heard at most 20 dB below what was played
//! max_speed_error_pct = 0.5             # arrived within 0.5 % of the speed played
//!
//! [continuity]                          # for checks = [..., "continuity"] (opt-in)
//! path = "output"                       # output | capture
//! duration = "10s"                      # the stream, 1s to 10min
//! max_breaks = 0                        # gaps + glitches a whole stream may have
//! max_drift_ppm = 1000.0
//! max_level_std_db = 3.0
//!
//! [expect]                              # optional: overrides the policy engine
//! output = "client"                     # client | session | none
//! capture = "redirected"                # redirected | blocked
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod reference;

/// A scenario that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: cannot read the scenario: {error}")]
    Read {
        /// The scenario file.
        path: PathBuf,
        /// Why (printed in the message, not chained, so it shows once).
        error: std::io::Error,
    },
    /// The file is not text the parser can read (UTF-16 without a byte order mark,
    /// invalid UTF-8, binary).
    #[error("{path}: {message}")]
    Encoding {
        /// The scenario file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The TOML is malformed or does not fit the model.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The scenario file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A file the scenario imports a policy layer from cannot be used.
    #[error("{path}: {key}: {error}")]
    Import {
        /// The scenario file.
        path: PathBuf,
        /// The key naming the file, e.g. `policy.session_host.import`.
        key: String,
        /// What is wrong with the imported file (it names that file, printed once).
        error: crate::import::ImportError,
    },
    /// Several of the errors above, found in one pass (one per line in the message).
    #[error("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several {
        /// The scenario file.
        path: PathBuf,
        /// Each error, in the file's order of discovery.
        errors: Vec<ScenarioError>,
    },
    /// The RDP layer's properties cannot be used: an unreadable .rdp file or host pool
    /// JSON, or a malformed property (the error names the file and line).
    #[error("{path}: {error}")]
    Rdp {
        /// The scenario file.
        path: PathBuf,
        /// What is wrong.
        error: crate::rdp::PolicyError,
    },
    /// The values parse but do not make sense together.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The scenario file.
        path: PathBuf,
        /// The key path, e.g. `probes.local.mic_feed`.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// Which remote desktop product the session host belongs to: it sets the defaults.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Azure Virtual Desktop (host pool RDP properties apply).
    Avd,
    /// Windows 365 Cloud PC (no host pool properties).
    Windows365,
    /// Microsoft Dev Box (no host pool properties).
    Devbox,
    /// Remote Desktop Services (an .rdp file's properties apply).
    Rds,
    /// An xrdp session host (Linux): xrdp.ini's channel switches are its session host
    /// layer (`[policy.xrdp]`), the client's .rdp file its RDP layer.
    Xrdp,
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Product::Avd => "Azure Virtual Desktop",
            Product::Windows365 => "Windows 365",
            Product::Devbox => "Microsoft Dev Box",
            Product::Rds => "Remote Desktop Services",
            Product::Xrdp => "xrdp",
        })
    }
}

mod checks;
pub use checks::{AudioPath, Check};

mod layers;
mod load;
mod validate;
pub use layers::*;

/// Where a probe is and how to reach it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// `HOST:PORT` the probe serves on (`earshot-probe serve`).
    pub address: Option<String>,
    /// `ADDR:PORT` the harness listens on for a probe that dials in (`earshot-probe
    /// connect`).
    pub dial_in: Option<String>,
    /// File holding the shared token (relative to the scenario file).
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the token instead.
    pub token_env: Option<String>,
    /// Output device (remote probe: where the session plays).
    #[serde(default = "default_device")]
    pub output: String,
    /// Input device (remote probe: the session's microphone).
    #[serde(default = "default_device")]
    pub input: String,
    /// Local probe: where the client's output is heard (its loopback).
    #[serde(default = "default_loopback")]
    pub output_loopback: String,
    /// Local probe: the device that feeds the client's microphone.
    pub mic_feed: Option<String>,
    /// The machine this probe must answer from, as its host name (compared as fleet runs
    /// compare inventory names: case and domain suffix aside). A probe on another machine
    /// makes the scenario inconclusive: its verdicts would be about the wrong host.
    pub host: Option<String>,
    /// Remote probe: whether it must show a remote desktop session (`remote`, the default:
    /// a probe that shows none makes the scenario inconclusive, since its checks would
    /// measure a local desktop's audio) or any session will do (`any`: a lab without RDP,
    /// such as the tunnel lab; the report says so).
    #[serde(default)]
    pub session: SessionRequirement,
}

/// What session the remote probe must show (`probes.remote.session`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionRequirement {
    /// A remote desktop session, proven by its markers (xrdp's environment, Windows'
    /// SM_REMOTESESSION or session ids).
    #[default]
    Remote,
    /// Any: the path between the two probes is what is measured (a lab without RDP).
    Any,
}

fn default_device() -> String {
    "default".into()
}

fn default_loopback() -> String {
    "loopback:default".into()
}

impl ProbeSpec {
    /// A probe table that gives nothing: every device the default, no address, no token.
    /// What `expect` works with when a draft has no [probes] yet.
    pub fn unset() -> ProbeSpec {
        ProbeSpec {
            address: None,
            dial_in: None,
            token_file: None,
            token_env: None,
            output: default_device(),
            input: default_device(),
            output_loopback: default_loopback(),
            mic_feed: None,
            host: None,
            session: SessionRequirement::default(),
        }
    }
}

/// Both probes (needed to run a scenario; `expect` does without them).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    /// On the client.
    #[serde(default = "ProbeSpec::unset")]
    pub local: ProbeSpec,
    /// In the session.
    #[serde(default = "ProbeSpec::unset")]
    pub remote: ProbeSpec,
}

impl Default for Probes {
    fn default() -> Probes {
        Probes {
            local: ProbeSpec::unset(),
            remote: ProbeSpec::unset(),
        }
    }
}

/// What a scenario is read for: a run needs the probes and the client rig; `expect` works
/// from the policy layers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `earshot run`: everything is checked.
    Run,
    /// `earshot expect`: the policy layers and the checks; the probes may be absent.
    Expect,
    /// `earshot doctor`: the probes as for a run; the client rig's devices may be left
    /// for the doctor to find (a draft without `mic_feed`).
    Doctor,
}

/// What a redirected path must also do to pass (`[budgets]`): arrive in time and loud
/// enough. A signature heard outside a budget is a fail, "redirected but late" or
/// "redirected but quiet"; without the table only the redirection is judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// The longest the output path may take from the play in the session to the client
    /// hearing it (a duration, e.g. `400ms`; measured on RDP: 200-450 ms).
    #[serde(with = "humantime_serde", default)]
    #[schemars(with = "Option<String>")]
    pub output_latency: Option<Duration>,
    /// The longest the capture path may take from the client's microphone to the session
    /// hearing it (a duration; measured on RDP once the channel is open: 55-115 ms).
    #[serde(with = "humantime_serde", default)]
    #[schemars(with = "Option<String>")]
    pub capture_latency: Option<Duration>,
    /// How far below the level played the signature may be heard, in dB (a negative
    /// number, e.g. `-20.0`; from -90 to 0). The signature is played at -9 dBFS; a clean
    /// RDP path delivers it at that level (0 dB), and a session sink turned down to 30 %
    /// (PulseAudio's cubic volume scale) about 31 dB below it.
    pub min_level_db: Option<f64>,
    /// How far the speed a signature arrives at may be from the speed played, in percent
    /// (e.g. `0.5`; from 0 to 10). The signature is recognised from 0.89 to 1.12 times
    /// its speed (44.1 kHz audio played as 48 kHz is 8.1 % slow); half and double speed
    /// are the quality check's. Measured from the tones' frequency error, exact to 0.01 %.
    pub max_speed_error_pct: Option<f64>,
    /// The least MOS-LQO the speech check passes with (ITU-T P.862.2 wideband, from 1.0 to
    /// about 4.64; e.g. `3.5`). A clean path reads about 4.6, Opus at 24 kbit/s about 3.5,
    /// a narrowband (8 kHz) path about 2.5. Without it the score is reported, not judged.
    pub min_mos: Option<f64>,
}

impl Budgets {
    /// The latency budget of `path`, with its key.
    pub fn latency(&self, path: AudioPath) -> Option<(Duration, &'static str)> {
        match path {
            AudioPath::Output => self.output_latency.map(|d| (d, "budgets.output_latency")),
            AudioPath::Capture => self.capture_latency.map(|d| (d, "budgets.capture_latency")),
        }
    }
}

/// Bounds on every wait.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Connecting and authenticating to a probe, or waiting for it to dial in (a duration:
    /// `5s`, `800ms`; default 5s, at most 120s).
    #[serde(with = "humantime_serde", default = "default_connect")]
    #[schemars(with = "String")]
    pub connect: Duration,
    /// Listening for a signature that should be heard (a duration; default 5s, at most
    /// 120s). A check that should hear nothing listens until its plays prove the silence
    /// (`latency`, `channel_open`), never longer than this.
    #[serde(with = "humantime_serde", default = "default_listen")]
    #[schemars(with = "String")]
    pub listen: Duration,
    /// The longest a redirected path may take from play to hearing, on this rig and link
    /// (default 1s; measured: 200-450 ms for RDP output, 55-115 ms for RDP capture once
    /// open, about 1.5 s for capture through 10 % packet loss). Part of the silence window.
    #[serde(with = "humantime_serde", default = "default_latency")]
    #[schemars(with = "String")]
    pub latency: Duration,
    /// How long a microphone channel that opens on demand may take to carry sound after the
    /// session starts recording (default 2500ms; RDP opens its audio input channel only
    /// when something records: measured 1.5-2 s on xrdp + FreeRDP). Part of the capture
    /// check's silence window; `0s` where the path is always open.
    #[serde(with = "humantime_serde", default = "default_channel_open")]
    #[schemars(with = "String")]
    pub channel_open: Duration,
}

fn default_latency() -> Duration {
    Duration::from_secs(1)
}

fn default_channel_open() -> Duration {
    Duration::from_millis(2500)
}

fn default_connect() -> Duration {
    Duration::from_secs(5)
}

fn default_listen() -> Duration {
    Duration::from_secs(5)
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: default_connect(),
            listen: default_listen(),
            latency: default_latency(),
            channel_open: default_channel_open(),
        }
    }
}

/// Where output sound must go.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputExpect {
    /// Redirected: heard on the client.
    Client,
    /// Played on the session host itself: not heard on the client.
    Session,
    /// Not played at all.
    None,
}

/// Whether the client's microphone reaches the session.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaptureExpect {
    /// Heard in the session.
    Redirected,
    /// Not available in the session.
    Blocked,
    /// Redirected, but desktop apps are denied the microphone (the session's desktop-app
    /// consent): the probe in the session records nothing.
    RedirectedAppsDenied,
}

/// An explicit expectation that overrides the policy engine.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectOverride {
    /// Expected output.
    pub output: Option<OutputExpect>,
    /// Expected capture.
    pub capture: Option<CaptureExpect>,
    /// Why (shown in the report).
    pub reason: Option<String>,
}

/// A scenario file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in reports.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The product (defaults differ).
    pub product: Product,
    /// The policy layers.
    #[serde(default)]
    pub policy: PolicyLayers,
    /// The probes.
    #[serde(default)]
    pub probes: Probes,
    /// Which checks, in order.
    #[serde(default = "default_checks")]
    pub checks: Vec<Check>,
    /// Bounds on the waits.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What a redirected path must also do: its latency and level budgets.
    #[serde(default)]
    pub budgets: Budgets,
    /// The continuity check's stream and when it is degraded.
    #[serde(default)]
    pub continuity: ContinuitySpec,
    /// Overrides the engine.
    pub expect: Option<ExpectOverride>,
    /// The file it came from (set by [`Scenario::load`]).
    #[serde(skip)]
    #[schemars(skip)]
    pub path: PathBuf,
    /// The RDP layer's properties as the loader read them: inline, from the .rdp file or
    /// from the host pool JSON `[policy.rdp]` names. `None` without an RDP layer.
    #[serde(skip)]
    #[schemars(skip)]
    pub rdp: Option<crate::rdp::RdpProperties>,
}

/// The `[continuity]` table: how long the stream plays and what a whole stream may show.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContinuitySpec {
    /// Which path carries the stream: `output` (the session plays, the client's loopback
    /// records; default) or `capture` (the client's microphone feed plays, the session's
    /// input records).
    #[serde(default)]
    pub path: AudioPath,
    /// How long the stream plays (a duration; default 10s, 1s to 10min; the probes'
    /// `--max-capture-secs` must allow it plus 3 s).
    #[serde(with = "humantime_serde", default = "default_stream")]
    #[schemars(with = "String")]
    pub duration: Duration,
    /// Breaks (gaps and glitches) a whole stream may have (default 0).
    #[serde(default)]
    pub max_breaks: usize,
    /// Largest clock drift between session and client, in ppm (default 1000).
    #[serde(default = "default_max_drift_ppm")]
    pub max_drift_ppm: f64,
    /// Largest standard deviation of the stream's level, in dB (default 3).
    #[serde(default = "default_max_level_std_db")]
    pub max_level_std_db: f64,
}

fn default_stream() -> Duration {
    Duration::from_secs(10)
}

fn default_max_drift_ppm() -> f64 {
    1000.0
}

fn default_max_level_std_db() -> f64 {
    3.0
}

impl Default for ContinuitySpec {
    fn default() -> ContinuitySpec {
        ContinuitySpec {
            path: AudioPath::Output,
            duration: default_stream(),
            max_breaks: 0,
            max_drift_ppm: default_max_drift_ppm(),
            max_level_std_db: default_max_level_std_db(),
        }
    }
}

impl ContinuitySpec {
    /// The limits as the probe's analysis takes them.
    pub fn limits(&self) -> earshot_probe::signal::continuity::Limits {
        earshot_probe::signal::continuity::Limits {
            max_breaks: self.max_breaks,
            max_drift_ppm: self.max_drift_ppm,
            max_level_std_db: self.max_level_std_db,
        }
    }
}

fn default_checks() -> Vec<Check> {
    vec![Check::Output, Check::Capture]
}

impl Scenario {
    /// The path check `c` follows, whose policy, host settings and rig apply: continuity
    /// streams on the path `[continuity] path` names; every other check on its own.
    pub fn path_of(&self, c: Check) -> AudioPath {
        match c {
            Check::Continuity => self.continuity.path,
            c => c.default_path(),
        }
    }

    /// Resolves a path given in the scenario relative to the scenario's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

/// What the unit tests of the scenario and the policy engine share.
#[cfg(test)]
pub(crate) mod test_support {
    /// A valid `[probes]` section, to append to a scenario under test.
    pub(crate) const PROBES: &str = r#"
[probes.local]
address = "127.0.0.1:7701"
token_file = "t"
mic_feed = "micfeed"
[probes.remote]
address = "127.0.0.1:7702"
token_file = "t"
"#;
}

#[cfg(test)]
mod tests;
