//! The policy layers of a scenario (`[policy.*]`): the session host's settings by their
//! registry names or the names the Group Policy editor shows, the RDP properties, the
//! client device setting and xrdp.ini's switches, with the value types that check them.

use std::path::PathBuf;

use serde::Deserialize;

pub use crate::registry::{AppAccess, AppList, Flag, QualityPolicy};

/// A privacy consent as Windows stores it (`Allow`, `Deny`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
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
    pub imported: Option<crate::import::session_host::HostImport>,
}

impl SessionHostPolicy {
    /// The per-app microphone list `list`.
    pub fn app_list(&self, list: AppList) -> Option<&Vec<String>> {
        match list {
            AppList::ForceAllow => self.mic_force_allow_apps.as_ref(),
            AppList::ForceDeny => self.mic_force_deny_apps.as_ref(),
            AppList::UserInControl => self.mic_user_in_control_apps.as_ref(),
        }
    }

    /// The per-app microphone list `list`, to set.
    pub fn app_list_mut(&mut self, list: AppList) -> &mut Option<Vec<String>> {
        match list {
            AppList::ForceAllow => &mut self.mic_force_allow_apps,
            AppList::ForceDeny => &mut self.mic_force_deny_apps,
            AppList::UserInControl => &mut self.mic_user_in_control_apps,
        }
    }

    /// Folds the display-name settings into the registry fields; a setting given both
    /// ways is an error naming both keys.
    pub(super) fn fold_display_names(&mut self) -> Result<(), (String, String)> {
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

/// Puts what `import` says into the scenario's session host layer. A setting the file
/// sets or deletes and the table gives too (by its registry or its display name) is an
/// error: `(key, message)` naming both.
pub(crate) fn merge_import(
    host: &mut SessionHostPolicy,
    import: crate::import::session_host::HostImport,
) -> Result<(), (String, String)> {
    use crate::import::session_host::Setting;
    for s in &import.settings {
        let (by_name, by_display) = match s.setting {
            Setting::FDisableCam => (host.f_disable_cam.is_some(), host.allow_playback.is_some()),
            Setting::FDisableAudioCapture => (
                host.f_disable_audio_capture.is_some(),
                host.allow_recording.is_some(),
            ),
            Setting::AllowedAudioQualityMode => (
                host.allowed_audio_quality_mode.is_some(),
                host.limit_quality.is_some(),
            ),
            Setting::LetAppsAccessMicrophone => (
                host.let_apps_access_microphone.is_some(),
                host.let_apps_mic.is_some(),
            ),
        };
        if by_name || by_display {
            let key = if by_name {
                format!("policy.session_host.{}", s.setting.name())
            } else {
                format!("policy.session_host.\"{}\"", s.setting.display_name())
            };
            let there = match s.value {
                Some(v) => format!("{}={v}", s.setting.name()),
                None => format!("{} deleted", s.setting.name()),
            };
            return Err((
                key,
                format!(
                    "is given here and in the imported {} ({}, {there}): keep one of the two",
                    import.file,
                    s.place.short()
                ),
            ));
        }
        // The values were checked against each setting's range when the file was read.
        // (Lists are merged below.)
        match s.setting {
            Setting::FDisableCam => host.f_disable_cam = s.value.map(Flag),
            Setting::FDisableAudioCapture => host.f_disable_audio_capture = s.value.map(Flag),
            Setting::AllowedAudioQualityMode => {
                host.allowed_audio_quality_mode = s.value.map(QualityPolicy)
            }
            Setting::LetAppsAccessMicrophone => {
                host.let_apps_access_microphone = s.value.map(AppAccess)
            }
        }
    }
    for l in &import.lists {
        let slot = host.app_list_mut(l.list);
        if slot.is_some() {
            return Err((
                format!("policy.session_host.{}", l.list.name()),
                format!(
                    "is given here and in the imported {} ({}): keep one of the two",
                    import.file,
                    l.place.short()
                ),
            ));
        }
        // A deleted list is not configured.
        *slot = l.apps.clone();
    }
    host.imported = Some(import);
    Ok(())
}
