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

pub use crate::check::{AudioPath, Check};

/// A registry DWORD that is 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Flag(pub u32);

impl TryFrom<i64> for Flag {
    type Error = String;
    fn try_from(v: i64) -> Result<Flag, String> {
        match v {
            0 | 1 => Ok(Flag(v as u32)),
            _ => Err(format!(
                "{v} is not a valid value: expected 0 (allowed) or 1 (blocked)"
            )),
        }
    }
}

/// `AllowedAudioQualityMode`: 1 dynamic, 3 medium, 7 high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct QualityPolicy(pub u32);

impl TryFrom<i64> for QualityPolicy {
    type Error = String;
    fn try_from(v: i64) -> Result<QualityPolicy, String> {
        match v {
            1 | 3 | 7 => Ok(QualityPolicy(v as u32)),
            _ => Err(format!(
                "{v} is not a valid value: expected 1 (dynamic), 3 (medium) or 7 (high)"
            )),
        }
    }
}

/// A privacy consent as Windows stores it (`Allow`, `Deny`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// `LetAppsAccessMicrophone`: 0 user in control, 1 force allow, 2 force deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct AppAccess(pub u32);

impl TryFrom<i64> for AppAccess {
    type Error = String;
    fn try_from(v: i64) -> Result<AppAccess, String> {
        match v {
            0..=2 => Ok(AppAccess(v as u32)),
            _ => Err(format!(
                "{v} is not a valid value: expected 0 (user in control), 1 (force allow) or 2 \
                 (force deny)"
            )),
        }
    }
}

/// A Group Policy setting's state as the editor shows it: Enabled, Disabled, Not configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum GpoState {
    /// Enabled.
    Enabled,
    /// Disabled.
    Disabled,
    /// Not configured (no registry value).
    NotConfigured,
}

impl TryFrom<String> for GpoState {
    type Error = String;
    fn try_from(v: String) -> Result<GpoState, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "enabled" => Ok(GpoState::Enabled),
            "disabled" => Ok(GpoState::Disabled),
            "not configured" | "not_configured" | "notconfigured" => Ok(GpoState::NotConfigured),
            _ => Err(format!(
                "`{v}` is not a state of this setting: expected \"Enabled\", \"Disabled\" or \"Not \
                 configured\" (as the Group Policy editor shows it)"
            )),
        }
    }
}

/// "Limit audio playback quality" as the Group Policy editor shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct QualityChoice(pub Option<QualityPolicy>);

impl TryFrom<String> for QualityChoice {
    type Error = String;
    fn try_from(v: String) -> Result<QualityChoice, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "dynamic" => Ok(QualityChoice(Some(QualityPolicy(1)))),
            "medium" => Ok(QualityChoice(Some(QualityPolicy(3)))),
            "high" => Ok(QualityChoice(Some(QualityPolicy(7)))),
            "disabled" | "not configured" | "not_configured" => Ok(QualityChoice(None)),
            _ => Err(format!(
                "`{v}` is not a choice of this setting: expected \"Dynamic\", \"Medium\" or \
                 \"High\" (Enabled with that audio quality), or \"Disabled\" / \"Not configured\""
            )),
        }
    }
}

/// "Let Windows apps access the microphone" as the Group Policy editor shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AppAccessChoice(pub Option<AppAccess>);

impl TryFrom<String> for AppAccessChoice {
    type Error = String;
    fn try_from(v: String) -> Result<AppAccessChoice, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "user is in control" | "user in control" => Ok(AppAccessChoice(Some(AppAccess(0)))),
            "force allow" => Ok(AppAccessChoice(Some(AppAccess(1)))),
            "force deny" => Ok(AppAccessChoice(Some(AppAccess(2)))),
            "disabled" | "not configured" | "not_configured" => Ok(AppAccessChoice(None)),
            _ => Err(format!(
                "`{v}` is not a choice of this setting: expected \"User is in control\", \"Force \
                 Allow\" or \"Force Deny\" (Enabled with that default), or \"Not configured\""
            )),
        }
    }
}

/// A schema for a value that is one of `values`, described by `description`.
fn values_schema(values: serde_json::Value, description: &str) -> schemars::Schema {
    schemars::json_schema!({ "enum": values, "description": description })
}

macro_rules! value_schema {
    ($t:ty, $values:tt, $description:expr) => {
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                values_schema(serde_json::json!($values), $description)
            }
        }
    };
}

value_schema!(Flag, [0, 1], "0 allowed, 1 blocked");
value_schema!(QualityPolicy, [1, 3, 7], "1 Dynamic, 3 Medium, 7 High");
value_schema!(
    AppAccess,
    [0, 1, 2],
    "0 user in control, 1 force allow, 2 force deny"
);
value_schema!(
    GpoState,
    ["Enabled", "Disabled", "Not configured"],
    "as the Group Policy editor shows it"
);
value_schema!(
    QualityChoice,
    ["Dynamic", "Medium", "High", "Not configured"],
    "Enabled with that audio quality, or not configured"
);
value_schema!(
    AppAccessChoice,
    [
        "User is in control",
        "Force Allow",
        "Force Deny",
        "Not configured"
    ],
    "Enabled with that default, or not configured"
);

/// Group Policy / Intune settings on the session host (absent: not configured), by their
/// registry value names or by the names the Group Policy editor and Intune show. Each
/// setting may be given one way, not both; [`Scenario::load`] folds the display names into
/// the registry fields.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionHostPolicy {
    /// Allow audio and video playback redirection (1 = blocked).
    #[serde(rename = "fDisableCam")]
    pub f_disable_cam: Option<Flag>,
    /// Allow audio recording redirection (1 = blocked).
    #[serde(rename = "fDisableAudioCapture")]
    pub f_disable_audio_capture: Option<Flag>,
    /// Limit audio playback quality.
    #[serde(rename = "AllowedAudioQualityMode")]
    pub allowed_audio_quality_mode: Option<QualityPolicy>,
    /// App privacy: microphone access.
    #[serde(rename = "LetAppsAccessMicrophone")]
    pub let_apps_access_microphone: Option<AppAccess>,
    /// App privacy, per app: Windows (packaged) apps always allowed the microphone,
    /// whatever LetAppsAccessMicrophone says (package family names, e.g.
    /// `Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe`). Reported; desktop apps, the probe
    /// among them, are in no such list.
    #[serde(rename = "LetAppsAccessMicrophone_ForceAllowTheseApps")]
    pub mic_force_allow_apps: Option<Vec<String>>,
    /// App privacy, per app: Windows (packaged) apps denied the microphone. Reported; it
    /// does not deny the probe, a desktop app.
    #[serde(rename = "LetAppsAccessMicrophone_ForceDenyTheseApps")]
    pub mic_force_deny_apps: Option<Vec<String>>,
    /// App privacy, per app: Windows (packaged) apps whose microphone access the user
    /// decides. Reported.
    #[serde(rename = "LetAppsAccessMicrophone_UserInControlOfTheseApps")]
    pub mic_user_in_control_apps: Option<Vec<String>>,
    /// "Allow audio and video playback redirection" (Enabled: fDisableCam=0, Disabled: 1).
    #[serde(rename = "Allow audio and video playback redirection")]
    pub allow_playback: Option<GpoState>,
    /// "Allow audio recording redirection" (Enabled: fDisableAudioCapture=0, Disabled: 1).
    #[serde(rename = "Allow audio recording redirection")]
    pub allow_recording: Option<GpoState>,
    /// "Limit audio playback quality": Dynamic, Medium, High (AllowedAudioQualityMode 1, 3, 7).
    #[serde(rename = "Limit audio playback quality")]
    pub limit_quality: Option<QualityChoice>,
    /// "Let Windows apps access the microphone": User is in control, Force Allow, Force Deny.
    #[serde(rename = "Let Windows apps access the microphone")]
    pub let_apps_mic: Option<AppAccessChoice>,
    /// "Let desktop apps access your microphone" in the session (the consent store's
    /// `microphone\NonPackaged` value): `allow` or `deny`. It, not LetAppsAccessMicrophone
    /// (which governs Windows packaged apps only), decides whether a desktop app such as
    /// the probe may record a redirected microphone. Read from the host with `from_host`.
    pub desktop_apps_microphone: Option<Consent>,
    /// Take this whole layer from the session host instead: the values its registry really
    /// has, as the Windows probe in the session reads them (no other key of this table may
    /// be given with it).
    #[serde(default)]
    pub from_host: bool,
    /// Take the settings from a Group Policy object's `Registry.pol` or from a `reg
    /// export` .reg file (relative to the scenario file; the format is told from the
    /// content, not the extension). Only fDisableCam, fDisableAudioCapture, AllowedAudioQualityMode and
    /// LetAppsAccessMicrophone are read; other entries are ignored and counted. A setting
    /// the file sets or deletes may not be given in this table too.
    pub import: Option<PathBuf>,
    /// What `import` gave (set by [`Scenario::load`]).
    #[serde(skip)]
    #[schemars(skip)]
    pub imported: Option<crate::import::HostImport>,
}

impl SessionHostPolicy {
    /// The per-app microphone list `list`.
    pub fn app_list(&self, list: crate::import::AppList) -> Option<&Vec<String>> {
        use crate::import::AppList;
        match list {
            AppList::ForceAllow => self.mic_force_allow_apps.as_ref(),
            AppList::ForceDeny => self.mic_force_deny_apps.as_ref(),
            AppList::UserInControl => self.mic_user_in_control_apps.as_ref(),
        }
    }

    /// The per-app microphone list `list`, to set.
    pub fn app_list_mut(&mut self, list: crate::import::AppList) -> &mut Option<Vec<String>> {
        use crate::import::AppList;
        match list {
            AppList::ForceAllow => &mut self.mic_force_allow_apps,
            AppList::ForceDeny => &mut self.mic_force_deny_apps,
            AppList::UserInControl => &mut self.mic_user_in_control_apps,
        }
    }

    /// Folds the display-name settings into the registry fields; a setting given both
    /// ways is an error naming both keys.
    fn fold_display_names(&mut self) -> Result<(), (String, String)> {
        fn fold<T>(
            registry: &mut Option<T>,
            display: Option<Option<T>>,
            reg_key: &str,
            display_key: &str,
        ) -> Result<(), (String, String)> {
            if let Some(v) = display {
                if registry.is_some() {
                    return Err((
                        format!("policy.session_host.\"{display_key}\""),
                        format!(
                            "is given by its registry name `{reg_key}` too: keep one of the two"
                        ),
                    ));
                }
                *registry = v;
            }
            Ok(())
        }
        let state = |g: Option<GpoState>| {
            g.map(|g| match g {
                GpoState::Enabled => Some(Flag(0)),
                GpoState::Disabled => Some(Flag(1)),
                GpoState::NotConfigured => None,
            })
        };
        fold(
            &mut self.f_disable_cam,
            state(self.allow_playback),
            "fDisableCam",
            "Allow audio and video playback redirection",
        )?;
        fold(
            &mut self.f_disable_audio_capture,
            state(self.allow_recording),
            "fDisableAudioCapture",
            "Allow audio recording redirection",
        )?;
        fold(
            &mut self.allowed_audio_quality_mode,
            self.limit_quality.map(|q| q.0),
            "AllowedAudioQualityMode",
            "Limit audio playback quality",
        )?;
        fold(
            &mut self.let_apps_access_microphone,
            self.let_apps_mic.map(|a| a.0),
            "LetAppsAccessMicrophone",
            "Let Windows apps access the microphone",
        )?;
        Ok(())
    }
}

/// RDP properties: the host pool's (AVD) as pasted from the portal, or an .rdp file.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RdpLayer {
    /// `audiomode:i:0;audiocapturemode:i:1;...`
    pub properties: Option<String>,
    /// An .rdp file (relative to the scenario file).
    pub file: Option<PathBuf>,
    /// A host pool as `az desktopvirtualization hostpool show` prints it (relative to the
    /// scenario file): its `customRdpProperty` are the properties.
    pub hostpool_json: Option<PathBuf>,
}

/// Enabled or disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    /// On.
    Enabled,
    /// Off.
    Disabled,
}

/// Client device settings (Intune for Windows App / Remote Desktop app).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPolicy {
    /// Audio input redirection on the client device, as Intune's app configuration sets
    /// it for Windows App / Remote Desktop on iOS, iPadOS and Android (Windows and macOS
    /// clients have no such setting): `disabled` blocks the microphone.
    pub microphone: Option<Toggle>,
}

/// xrdp.ini's channel switches: the session host layer of an xrdp host (absent: xrdp's
/// default, true).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XrdpPolicy {
    /// `[Channels] rdpsnd`: the sound (playback) channel.
    pub rdpsnd: Option<bool>,
    /// `[Channels] drdynvc`: dynamic channels, which carry audio input (audin).
    pub drdynvc: Option<bool>,
    /// `[Globals] allow_channels`: every virtual channel (with it off, FreeRDP 2 clients
    /// do not connect at all).
    pub allow_channels: Option<bool>,
    /// `[Xvnc] channel.rdpsnd`: the sound channel for Xvnc sessions.
    pub xvnc_rdpsnd: Option<bool>,
}

/// Every policy layer.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyLayers {
    /// Session host policy.
    #[serde(default)]
    pub session_host: SessionHostPolicy,
    /// xrdp.ini channel switches (product `xrdp` only).
    pub xrdp: Option<XrdpPolicy>,
    /// RDP properties.
    pub rdp: Option<RdpLayer>,
    /// Client device.
    #[serde(default)]
    pub client: ClientPolicy,
}

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

/// Both probes.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    /// On the client.
    pub local: ProbeSpec,
    /// In the session.
    pub remote: ProbeSpec,
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
    pub probes: Probes,
    /// Which checks, in order.
    #[serde(default = "default_checks")]
    pub checks: Vec<Check>,
    /// Bounds on the waits.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The continuity check's stream and when it is degraded.
    #[serde(default)]
    pub continuity: ContinuitySpec,
    /// Overrides the engine.
    pub expect: Option<ExpectOverride>,
    /// The file it came from (set by [`Scenario::load`]).
    #[serde(skip)]
    #[schemars(skip)]
    pub path: PathBuf,
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

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
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

    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file, line and key.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let bytes = std::fs::read(path).map_err(|error| ScenarioError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let text = crate::text::decode(&bytes).map_err(|message| ScenarioError::Encoding {
            path: path.to_path_buf(),
            message: format!("{message}; save the scenario as UTF-8 (in PowerShell: `Set-Content -Encoding utf8`)"),
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses and validates `text` as if read from `path`.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file, line and key.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let mut s: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |r| line_col(text, r.start));
            // The offending line names the key (and the table header names its section).
            let source = text.lines().nth(line - 1).unwrap_or("").trim();
            let message = if source.is_empty() {
                e.message().trim().to_string()
            } else {
                format!("`{source}`: {}", e.message().trim())
            };
            ScenarioError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        s.path = path.to_path_buf();
        s.import_session_host()?;
        if let Err((key, message)) = s.policy.session_host.fold_display_names() {
            return Err(s.invalid(&key, message));
        }
        s.validate()?;
        Ok(s)
    }

    /// Reads `policy.session_host.import` into the session host layer.
    fn import_session_host(&mut self) -> Result<(), ScenarioError> {
        const KEY: &str = "policy.session_host.import";
        let Some(file) = self.policy.session_host.import.clone() else {
            return Ok(());
        };
        if self.policy.session_host.from_host {
            return Err(self.invalid(
                KEY,
                "and `from_host = true` both give the whole session host layer: keep one",
            ));
        }
        let imported = crate::import::load_session_host(&self.resolve(&file)).map_err(|error| {
            ScenarioError::Import {
                path: self.path.clone(),
                key: KEY.into(),
                error,
            }
        })?;
        crate::import::session_host::merge(&mut self.policy.session_host, imported)
            .map_err(|(key, message)| self.invalid(&key, message))
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        if self.name.trim().is_empty() {
            return Err(self.invalid("name", "must not be empty"));
        }
        if self.checks.is_empty() {
            return Err(self.invalid(
                "checks",
                "must name at least one of output, capture, continuity",
            ));
        }
        for (i, c) in self.checks.iter().enumerate() {
            if self.checks[..i].contains(c) {
                return Err(self.invalid("checks", format!("`{c}` is listed twice")));
            }
        }
        if self.probes.local.session != SessionRequirement::Remote {
            return Err(self.invalid(
                "probes.local.session",
                "is for the remote probe (the session it must show); remove it from \
                 [probes.local]",
            ));
        }
        let host = &self.policy.session_host;
        let windows_policy_set = host.f_disable_cam.is_some()
            || host.f_disable_audio_capture.is_some()
            || host.allowed_audio_quality_mode.is_some()
            || host.let_apps_access_microphone.is_some()
            || crate::import::AppList::ALL
                .iter()
                .any(|l| host.app_list(*l).is_some())
            || host.import.is_some();
        if host.from_host {
            if windows_policy_set {
                return Err(self.invalid(
                    "policy.session_host.from_host",
                    "takes the whole session host layer from the host: remove the settings \
                     given beside it, or remove from_host to declare them",
                ));
            }
            if self.product == Product::Xrdp {
                return Err(self.invalid(
                    "policy.session_host.from_host",
                    "reads a Windows session host's policy; an xrdp host's xrdp.ini switches \
                     are reported by the probe and compared with [policy.xrdp] anyway",
                ));
            }
        }
        match (self.product, &self.policy.xrdp) {
            (Product::Xrdp, _) if windows_policy_set => {
                return Err(self.invalid(
                    "policy.session_host",
                    "an xrdp host has no Windows policy: give its xrdp.ini channel switches in \
                     [policy.xrdp] (rdpsnd, drdynvc, allow_channels)",
                ))
            }
            (Product::Xrdp, _) | (_, None) => {}
            (p, Some(_)) => {
                return Err(self.invalid(
                    "policy.xrdp",
                    format!(
                        "xrdp.ini settings apply to product = \"xrdp\" only; {p} takes \
                         [policy.session_host]"
                    ),
                ))
            }
        }
        if let Some(rdp) = &self.policy.rdp {
            let sources = [
                rdp.properties.is_some(),
                rdp.file.is_some(),
                rdp.hostpool_json.is_some(),
            ];
            match (self.product, sources.iter().filter(|s| **s).count()) {
                (Product::Windows365 | Product::Devbox, _) => {
                    return Err(self.invalid(
                        "policy.rdp",
                        format!(
                            "{} has no host pool RDP properties: remove [policy.rdp] (its \
                             playback and recording are set by session host policy)",
                            self.product
                        ),
                    ))
                }
                (_, 0) => {
                    return Err(self.invalid(
                        "policy.rdp",
                        "expected `properties = \"audiomode:i:0;...\"`, `file = \"x.rdp\"` or \
                         `hostpool_json = \"hostpool.json\"`",
                    ))
                }
                (_, 1) => {}
                _ => {
                    return Err(self.invalid(
                        "policy.rdp",
                        "give one of `properties`, `file` or `hostpool_json`, not several",
                    ))
                }
            }
        }
        for (name, p) in [
            ("local", &self.probes.local),
            ("remote", &self.probes.remote),
        ] {
            let key = format!("probes.{name}");
            match (&p.address, &p.dial_in) {
                (Some(_), Some(_)) => {
                    return Err(self.invalid(&key, "give either `address` or `dial_in`, not both"))
                }
                (None, None) => {
                    return Err(self.invalid(
                        &key,
                        "expected `address = \"HOST:PORT\"` (the probe serves) or `dial_in = \
                         \"ADDR:PORT\"` (the probe connects to the harness)",
                    ))
                }
                _ => {}
            }
            for (k, v) in [("address", &p.address), ("dial_in", &p.dial_in)] {
                if let Some(a) = v {
                    if a.rsplit_once(':')
                        .and_then(|(_, port)| port.parse::<u16>().ok())
                        .is_none()
                    {
                        return Err(
                            self.invalid(&format!("{key}.{k}"), format!("`{a}` is not HOST:PORT"))
                        );
                    }
                }
            }
            if p.token_file.is_some() && p.token_env.is_some() {
                return Err(self.invalid(&key, "give either `token_file` or `token_env`, not both"));
            }
            if p.token_file.is_none() && p.token_env.is_none() {
                return Err(self.invalid(
                    &key,
                    "expected `token_file = \"...\"` or `token_env = \"VAR\"`: probes only talk \
                     after a shared-token handshake",
                ));
            }
        }
        let plays_into_mic = self.checks.contains(&Check::Capture)
            || (self.checks.contains(&Check::Continuity)
                && self.continuity.path == AudioPath::Capture);
        if plays_into_mic && self.probes.local.mic_feed.is_none() {
            return Err(self.invalid(
                "probes.local.mic_feed",
                "the capture check plays into the client's microphone: name the device that \
                 feeds it (a virtual cable, a null sink whose monitor is the mic, or a speaker \
                 next to the mic)",
            ));
        }
        for (k, d) in [
            ("timeouts.connect", self.timeouts.connect),
            ("timeouts.listen", self.timeouts.listen),
        ] {
            if d.is_zero() || d > Duration::from_secs(120) {
                return Err(self.invalid(k, "expected a duration above 0 and at most 120s"));
            }
        }
        let c = &self.continuity;
        if c.duration < Duration::from_secs(1) || c.duration > Duration::from_secs(600) {
            return Err(self.invalid(
                "continuity.duration",
                "expected a duration from 1s to 10min",
            ));
        }
        for (k, v) in [
            ("continuity.max_drift_ppm", c.max_drift_ppm),
            ("continuity.max_level_std_db", c.max_level_std_db),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(self.invalid(k, "expected a number of 0 or more"));
            }
        }
        for (k, d) in [
            ("timeouts.latency", self.timeouts.latency),
            ("timeouts.channel_open", self.timeouts.channel_open),
        ] {
            if d > Duration::from_secs(60) {
                return Err(self.invalid(k, "expected a duration of at most 60s"));
            }
        }
        Ok(())
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
mod tests {
    use super::*;

    use super::test_support::PROBES;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, Path::new("s.toml"))
    }

    #[test]
    fn a_minimal_scenario_parses_with_defaults() {
        let s = parse(&format!("name = \"x\"\nproduct = \"avd\"\n{PROBES}")).unwrap();
        assert_eq!(s.checks, vec![Check::Output, Check::Capture]);
        assert_eq!(s.timeouts.listen, Duration::from_secs(5));
        assert_eq!(s.probes.local.output_loopback, "loopback:default");
    }

    #[test]
    fn an_unknown_key_names_the_key_and_line() {
        let e = parse(&format!(
            "name = \"x\"\nproduct = \"avd\"\n[policy.session_host]\nfDisableCamera = 1\n{PROBES}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("s.toml:4:"), "{e}");
        assert!(e.contains("fDisableCamera"), "{e}");
        assert!(
            e.contains("fDisableCam"),
            "the message lists the known keys: {e}"
        );
    }

    #[test]
    fn an_out_of_range_value_names_the_line_and_the_allowed_values() {
        let e = parse(&format!(
            "name = \"x\"\nproduct = \"avd\"\n[policy.session_host]\nfDisableCam = 2\n{PROBES}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("s.toml:4:"), "{e}");
        assert!(e.contains("expected 0 (allowed) or 1 (blocked)"), "{e}");
    }

    #[test]
    fn a_bad_product_lists_the_products() {
        let e = parse(&format!("name = \"x\"\nproduct = \"citrix\"\n{PROBES}"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:2:"), "{e}");
        assert!(e.contains("avd") && e.contains("windows365"), "{e}");
    }

    #[test]
    fn host_pool_properties_on_windows_365_are_refused() {
        let e = parse(&format!(
            "name = \"x\"\nproduct = \"windows365\"\n[policy.rdp]\nproperties = \"audiomode:i:0\"\n{PROBES}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("policy.rdp") && e.contains("Windows 365"), "{e}");
    }

    #[test]
    fn a_probe_without_a_token_is_refused() {
        let text = "name = \"x\"\nproduct = \"avd\"\nchecks=[\"output\"]\n[probes.local]\naddress = \"a:1\"\n[probes.remote]\naddress = \"b:2\"\ntoken_file = \"t\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("probes.local") && e.contains("token"), "{e}");
    }

    #[test]
    fn capture_without_a_mic_feed_is_refused() {
        let text = "name = \"x\"\nproduct = \"avd\"\n[probes.local]\naddress = \"a:1\"\ntoken_file = \"t\"\n[probes.remote]\naddress = \"b:2\"\ntoken_file = \"t\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("probes.local.mic_feed"), "{e}");
    }

    #[test]
    fn a_bad_duration_names_the_key() {
        let e = parse(&format!(
            "name = \"x\"\nproduct = \"avd\"\n[timeouts]\nlisten = \"soon\"\n{PROBES}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("s.toml:4:"), "{e}");
    }
}
