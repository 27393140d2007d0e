//! What the session host really has, held against what the scenario says was rolled out and
//! what was heard: the three things an admin needs side by side to say why a check failed.
//!
//! The Windows probe reads the policy and WinStation registry values with their keys'
//! last-write times, and the host's boot time. From them this module states the cause a
//! fail has on the host: the policy did not arrive, it arrived after the last boot (the
//! host must restart), or it is in effect and the behaviour still differs (look elsewhere).

use earshot_probe::proto::msg::{HostConfig, RegistryData, RegistryValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::AudioPath;
use crate::scenario::{AppAccess, Consent, Flag, QualityPolicy, SessionHostPolicy};
use crate::verdict::Verdict;

/// Where Group Policy and Intune write the Remote Desktop session host settings, the
/// RDP-Tcp listener's own configuration (the policy, where set, overrides it) and the app
/// privacy policy: the keys as the probe spells them.
pub use earshot_probe::registry::{
    APP_PRIVACY_KEY as PRIVACY_KEY, RDP_TCP_KEY as WINSTATION_KEY, TS_POLICY_KEY as POLICY_KEY,
};

/// One setting a check depends on: what the scenario says, what the host has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SettingFact {
    /// The registry value's name, e.g. `fDisableCam`.
    pub setting: String,
    /// The key it was read from.
    pub key: String,
    /// What the scenario says was rolled out (`None`: not configured). Always `None` for
    /// the listener's own configuration, which scenarios do not describe.
    pub rolled_out: Option<u32>,
    /// What the host has, in words: `1`, `absent`, `key missing`, a wrong type, an error.
    pub host_has: String,
    /// The host's DWORD, when it is one.
    pub host_value: Option<u32>,
    /// The key's last write (unix ms).
    pub key_written_unix_ms: Option<f64>,
    /// Whether that write came after the host's last boot (unknown without both times).
    pub written_after_boot: Option<bool>,
    /// Whether the host has what the scenario says (the listener's rows: always true).
    pub agrees: bool,
}

/// What the session host has for one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostView {
    /// The host's last boot (unix ms).
    pub boot_unix_ms: Option<f64>,
    /// The settings the check depends on.
    pub facts: Vec<SettingFact>,
    /// What the host says about this check's verdict, in words (also appended to the
    /// check's cause).
    pub cause: String,
}

/// A time for people: `2026-11-25 12:03:04 UTC`.
pub fn when(unix_ms: f64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{unix_ms:.0} ms after 1970"))
}

fn host_has(d: &RegistryData) -> String {
    match d {
        RegistryData::KeyMissing => "key missing".into(),
        RegistryData::Absent => "absent".into(),
        RegistryData::Dword { value } => value.to_string(),
        RegistryData::Other { reg_type, text } => {
            format!("{reg_type} \"{text}\" where a DWORD is expected (Windows does not read it)")
        }
        RegistryData::Error { message } => format!("unreadable: {message}"),
    }
}

fn fact(
    cfg: &HostConfig,
    key: &str,
    setting: &str,
    rolled_out: Option<u32>,
    described: bool,
) -> SettingFact {
    let found: Option<&RegistryValue> = cfg.value(key, setting);
    let data = found.map_or(RegistryData::KeyMissing, |v| v.data.clone());
    let written = found.and_then(|v| v.key_written_unix_ms);
    let host_value = data.dword();
    SettingFact {
        setting: setting.into(),
        key: key.into(),
        rolled_out,
        host_has: if found.is_some() {
            host_has(&data)
        } else {
            "not read by the probe".into()
        },
        host_value,
        key_written_unix_ms: written,
        written_after_boot: match (written, cfg.boot_unix_ms) {
            (Some(w), Some(b)) => Some(w > b),
            _ => None,
        },
        agrees: !described || host_value == rolled_out,
    }
}

/// The settings a check on `path` depends on, as the scenario's session host layer and the
/// host have them.
pub fn facts(layer: &SessionHostPolicy, cfg: &HostConfig, path: AudioPath) -> Vec<SettingFact> {
    match path {
        AudioPath::Output => vec![
            fact(
                cfg,
                POLICY_KEY,
                "fDisableCam",
                layer.f_disable_cam.map(|f| f.0),
                true,
            ),
            fact(cfg, WINSTATION_KEY, "fDisableCam", None, false),
        ],
        AudioPath::Capture => vec![
            fact(
                cfg,
                POLICY_KEY,
                "fDisableAudioCapture",
                layer.f_disable_audio_capture.map(|f| f.0),
                true,
            ),
            fact(cfg, WINSTATION_KEY, "fDisableAudioCapture", None, false),
            fact(
                cfg,
                PRIVACY_KEY,
                "LetAppsAccessMicrophone",
                layer.let_apps_access_microphone.map(|a| a.0),
                true,
            ),
        ],
    }
}

fn rolled(v: Option<u32>) -> String {
    v.map_or("not configured".into(), |v| v.to_string())
}

fn written(f: &SettingFact) -> String {
    f.key_written_unix_ms
        .map_or("at an unknown time".into(), |w| format!("at {}", when(w)))
}

/// What the host says about a check that came out `verdict`: the cause of a fail on the
/// host, or the host's agreement as a fact.
pub fn view(
    layer: &SessionHostPolicy,
    cfg: &HostConfig,
    path: AudioPath,
    verdict: Verdict,
) -> HostView {
    let facts = facts(layer, cfg, path);
    let boot = cfg.boot_unix_ms;
    let boot_words = boot.map_or("an unknown time".into(), when);
    let described: Vec<&SettingFact> = facts.iter().filter(|f| f.key != WINSTATION_KEY).collect();
    let differ: Vec<String> = described
        .iter()
        .filter(|f| !f.agrees)
        .map(|f| {
            format!(
                "{} is {} on the host where the scenario says {}",
                f.setting,
                f.host_has,
                rolled(f.rolled_out)
            )
        })
        .collect();
    // The listener's own switch blocks where the policy says nothing.
    let listener: Vec<String> = facts
        .iter()
        .filter(|f| f.key == WINSTATION_KEY && f.host_value.is_some_and(|v| v != 0))
        .filter(|f| {
            described
                .iter()
                .any(|p| p.setting == f.setting && p.host_value.is_none())
        })
        .map(|f| {
            format!(
                "the RDP-Tcp listener itself has {}={} (it blocks where no policy is set)",
                f.setting, f.host_has
            )
        })
        .collect();
    let configured: Vec<&SettingFact> = described
        .iter()
        .copied()
        .filter(|f| f.host_value.is_some())
        .collect();
    let has = if configured.is_empty() {
        "none of the policy values this check depends on".to_string()
    } else {
        configured
            .iter()
            .map(|f| format!("{}={} (written {})", f.setting, f.host_has, written(f)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut cause = if !differ.is_empty() {
        format!(
            "the host does not have the policy the scenario describes ({}): the GPO or Intune \
             profile did not apply to this host; on the host, `gpresult /h report.html` or the \
             Intune device's configuration status says why",
            differ.join("; ")
        )
    } else if verdict == Verdict::Fail {
        let late: Vec<&SettingFact> = configured
            .iter()
            .copied()
            .filter(|f| f.written_after_boot == Some(true))
            .collect();
        if !late.is_empty() {
            format!(
                "the policy is on the host but was written after its last boot ({}; booted \
                 {boot_words}): restart the host so that Remote Desktop Services applies it",
                late.iter()
                    .map(|f| format!("{}={} written {}", f.setting, f.host_has, written(f)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "the host has the policy the scenario describes ({has}; booted {boot_words}) and \
                 the behaviour still differs: look at the host pool's RDP properties or the \
                 client"
            )
        }
    } else {
        format!("the host has {has}, as the scenario describes (booted {boot_words})")
    };
    if !listener.is_empty() {
        cause = format!("{cause}; {}", listener.join("; "));
    }
    HostView {
        boot_unix_ms: boot,
        facts,
        cause,
    }
}

/// The session host layer as the host has it (a scenario's `from_host = true`), with a
/// note for each value that could not be taken as it is.
pub fn layer_from_host(cfg: &HostConfig) -> (SessionHostPolicy, Vec<String>) {
    let mut notes = Vec::new();
    let mut dword = |key: &str, name: &str| -> Option<u32> {
        let v = cfg.value(key, name)?;
        match &v.data {
            RegistryData::Dword { value } => Some(*value),
            RegistryData::Absent | RegistryData::KeyMissing => None,
            other => {
                notes.push(format!(
                    "{name} on the host is {}: taken as not configured",
                    host_has(other)
                ));
                None
            }
        }
    };
    let cam = dword(POLICY_KEY, "fDisableCam");
    let capture = dword(POLICY_KEY, "fDisableAudioCapture");
    let quality = dword(POLICY_KEY, "AllowedAudioQualityMode");
    let apps = dword(PRIVACY_KEY, "LetAppsAccessMicrophone");
    // The per-app lists: REG_MULTI_SZ, one package family name per line as the probe reads
    // it (a REG_SZ holds one).
    let mut lists: Vec<(crate::registry::AppList, Vec<String>)> = Vec::new();
    for list in crate::registry::AppList::ALL {
        let Some(v) = cfg.value(PRIVACY_KEY, list.name()) else {
            continue;
        };
        match &v.data {
            RegistryData::Other { reg_type, text }
                if reg_type == "REG_MULTI_SZ" || reg_type == "REG_SZ" =>
            {
                lists.push((list, text.lines().map(str::to_string).collect()))
            }
            RegistryData::Absent | RegistryData::KeyMissing => {}
            other => notes.push(format!(
                "{} on the host is {}: not read",
                list.name(),
                host_has(other)
            )),
        }
    }
    // Windows reads any non-zero switch as set.
    let flag = |v: Option<u32>| v.map(|v| Flag(u32::from(v != 0)));
    let layer = SessionHostPolicy {
        f_disable_cam: flag(cam),
        f_disable_audio_capture: flag(capture),
        allowed_audio_quality_mode: quality.and_then(|q| match q {
            1 | 3 | 7 => Some(QualityPolicy(q)),
            _ => {
                notes.push(format!(
                    "AllowedAudioQualityMode on the host is {q}, not 1, 3 or 7: taken as not \
                     configured"
                ));
                None
            }
        }),
        desktop_apps_microphone: desktop_consent(cfg, &mut notes),
        let_apps_access_microphone: apps.and_then(|a| match a {
            0..=2 => Some(AppAccess(a)),
            _ => {
                notes.push(format!(
                    "LetAppsAccessMicrophone on the host is {a}, not 0, 1 or 2: taken as not \
                     configured"
                ));
                None
            }
        }),
        ..SessionHostPolicy::default()
    };
    let mut layer = layer;
    for (list, apps) in lists {
        *layer.app_list_mut(list) = Some(apps);
    }
    (layer, notes)
}

/// The session's desktop-app microphone consent as the host has it: `Deny` in the user's
/// or the machine's `microphone\NonPackaged` store denies; `Allow` in one that is read
/// allows; none read, or another value, is unknown (a note says which).
fn desktop_consent(cfg: &HostConfig, notes: &mut Vec<String>) -> Option<Consent> {
    use earshot_probe::registry::{MIC_CONSENT_MACHINE_DESKTOP_KEY, MIC_CONSENT_USER_DESKTOP_KEY};
    let mut seen = None;
    for key in [
        MIC_CONSENT_USER_DESKTOP_KEY,
        MIC_CONSENT_MACHINE_DESKTOP_KEY,
    ] {
        let Some(v) = cfg.value(key, "Value") else {
            continue;
        };
        match &v.data {
            RegistryData::Other { text, .. } if text.eq_ignore_ascii_case("deny") => {
                return Some(Consent::Deny)
            }
            RegistryData::Other { text, .. } if text.eq_ignore_ascii_case("allow") => {
                seen = Some(Consent::Allow);
            }
            RegistryData::Absent | RegistryData::KeyMissing => {}
            other => notes.push(format!(
                "the desktop-app microphone consent ({key}) is {}: taken as not known",
                host_has(other)
            )),
        }
    }
    seen
}

/// A session host layer in words: `fDisableCam=1, fDisableAudioCapture not configured, ...`.
pub fn describe_layer(l: &SessionHostPolicy) -> String {
    let one = |name: &str, v: Option<u32>| match v {
        Some(v) => format!("{name}={v}"),
        None => format!("{name} not configured"),
    };
    [
        one("fDisableCam", l.f_disable_cam.map(|f| f.0)),
        one(
            "fDisableAudioCapture",
            l.f_disable_audio_capture.map(|f| f.0),
        ),
        one(
            "AllowedAudioQualityMode",
            l.allowed_audio_quality_mode.map(|q| q.0),
        ),
        one(
            "LetAppsAccessMicrophone",
            l.let_apps_access_microphone.map(|a| a.0),
        ),
    ]
    .join(", ")
}

/// What the probe read of a Windows host, one line each (for the probe summary).
pub fn summary_lines(cfg: &HostConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(b) = cfg.boot_unix_ms {
        lines.push(format!("booted {}", when(b)));
    }
    for v in &cfg.values {
        let after = match (v.key_written_unix_ms, cfg.boot_unix_ms) {
            (Some(w), Some(b)) if w > b => ", after the last boot",
            _ => "",
        };
        lines.push(format!(
            "{}\\{} = {}{}",
            v.key,
            v.name,
            host_has(&v.data),
            v.key_written_unix_ms
                .map(|w| format!(" (key written {}{after})", when(w)))
                .unwrap_or_default()
        ));
    }
    for s in &cfg.services {
        lines.push(format!(
            "service {} ({}): {}{}",
            s.name,
            s.display_name,
            s.state,
            s.start_type
                .as_deref()
                .map(|t| format!(", start {t}"))
                .unwrap_or_default()
        ));
    }
    if let Some(p) = &cfg.session_protocol {
        lines.push(format!("session protocol: {p}"));
    }
    lines.push(if cfg.remote_endpoints.is_empty() {
        "remote audio endpoints: none".into()
    } else {
        format!(
            "remote audio endpoints: {}",
            cfg.remote_endpoints.join(", ")
        )
    });
    for e in &cfg.errors {
        lines.push(format!("not read: {e}"));
    }
    lines
}

#[cfg(test)]
mod tests;
