//! The configuration a Windows session host really has, read by the remote probe.
//!
//! A rollout says what the host should have; this says what it has: the policy and
//! listener registry values that gate audio redirection (each with its key's last-write
//! time, so "written after the last boot: restart the host" is a finding), the host's boot
//! time, the audio services, the session's protocol, microphone privacy consent, and the
//! redirected "Remote Audio" endpoints the session shows.
//!
//! - Registry: the values of [`WATCHED`]. A key that does not exist is
//!   [`RegistryData::KeyMissing`], a value that does not exist [`RegistryData::Absent`]
//!   (policy "not configured"); any type but REG_DWORD is reported as
//!   [`RegistryData::Other`] with its type name and text, never guessed at.
//! - Boot time: now minus `GetTickCount64`, the host's uptime. Not
//!   `NtQuerySystemInformation`'s boot time, which Wine fills with its wineserver's start
//!   (lab/README.md, "The Windows probe under Wine").
//! - Services ([`SERVICES`]): state and start type from the service control manager; a
//!   service that does not exist is `not_installed`.
//! - Session protocol: `WTSQuerySessionInformationW(WTSClientProtocolType)`, a USHORT:
//!   0 console, 1 a legacy value (ICA), 2 RDP.
//! - Remote endpoints: taken from the device catalogue the handler already listed.
//!
//! Nothing here fails as a whole: what cannot be read is reported in place (an `Error`
//! value, an `unknown: why` service state) and, where it concerns a whole part (a key, the
//! service control manager, the protocol), explained in [`HostConfig::errors`].
//!
//! The pure parts (key spelling, decoding of registry data, FILETIME conversion, state and
//! start-type names, endpoint matching) build and are tested on every OS; reading needs
//! Windows, and its tests run under Wine. Elsewhere [`read`] returns `None`: an xrdp
//! host's settings are reported by [`super::xrdp_ini`].

use crate::audio::{AudioError, DeviceInfo};
use crate::proto::msg::{HostConfig, RegistryData, RegistryValue};

use crate::registry::*;
pub use crate::registry::{
    reg_type_name, APP_PRIVACY_KEY, MIC_CONSENT_MACHINE_DESKTOP_KEY, MIC_CONSENT_MACHINE_KEY,
    MIC_CONSENT_USER_DESKTOP_KEY, MIC_CONSENT_USER_KEY, RDP_TCP_KEY, TS_POLICY_KEY,
};

/// Every key read and the value names read under it, in report order.
pub const WATCHED: &[(&str, &[&str])] = &[
    (
        TS_POLICY_KEY,
        &[
            "fDisableCam",
            "fDisableAudioCapture",
            "AllowedAudioQualityMode",
        ],
    ),
    (
        RDP_TCP_KEY,
        &["fDisableCam", "fDisableAudioCapture", "AudioEnumeratorDll"],
    ),
    (
        APP_PRIVACY_KEY,
        &[
            "LetAppsAccessMicrophone",
            "LetAppsAccessMicrophone_ForceAllowTheseApps",
            "LetAppsAccessMicrophone_ForceDenyTheseApps",
            "LetAppsAccessMicrophone_UserInControlOfTheseApps",
        ],
    ),
    (MIC_CONSENT_MACHINE_KEY, &["Value"]),
    (MIC_CONSENT_MACHINE_DESKTOP_KEY, &["Value"]),
    (MIC_CONSENT_USER_KEY, &["Value"]),
    (MIC_CONSENT_USER_DESKTOP_KEY, &["Value"]),
];

/// The services audio redirection needs: (service name, display name on an English host).
pub const SERVICES: &[(&str, &str)] = &[
    ("Audiosrv", "Windows Audio"),
    ("AudioEndpointBuilder", "Windows Audio Endpoint Builder"),
    (
        "UmRdpService",
        "Remote Desktop Services UserMode Port Redirector",
    ),
];

/// The name Windows gives a session's redirected endpoints, both directions.
pub const REMOTE_AUDIO_NAME: &str = "Remote Audio";

/// Registry data shown as hex at most this long; longer binary data is cut with a note.
const HEX_SHOWN_BYTES: usize = 64;

/// A value larger than this is not read (every watched value is a few bytes).
#[cfg_attr(not(windows), allow(dead_code))]
const MAX_VALUE_BYTES: u32 = 4096;

/// What this host really has, or `None` where nothing of it applies (every OS but
/// Windows). `devices` is the catalogue the handler listed, the source of
/// [`HostConfig::remote_endpoints`].
pub fn read(devices: &Result<Vec<DeviceInfo>, AudioError>) -> Option<HostConfig> {
    #[cfg(windows)]
    {
        Some(windows::read(devices))
    }
    #[cfg(not(windows))]
    {
        let _ = devices;
        None
    }
}

/// A registry root the probe reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hive {
    /// `HKEY_LOCAL_MACHINE`, spelled `HKLM`.
    LocalMachine,
    /// `HKEY_CURRENT_USER` (the session's user), spelled `HKCU`.
    CurrentUser,
}

impl Hive {
    /// The short spelling used in [`RegistryValue::key`].
    pub fn prefix(self) -> &'static str {
        match self {
            Hive::LocalMachine => "HKLM",
            Hive::CurrentUser => "HKCU",
        }
    }

    /// The full key as spelled in [`RegistryValue::key`].
    pub fn key(self, path: &str) -> String {
        format!(r"{}\{path}", self.prefix())
    }
}

/// Splits `HKLM\path` / `HKCU\path` into its root and path (the long names
/// `HKEY_LOCAL_MACHINE` / `HKEY_CURRENT_USER` are accepted too, any case).
pub fn split_key(key: &str) -> Option<(Hive, &str)> {
    let (root, path) = key.split_once('\\')?;
    let hive = if root.eq_ignore_ascii_case("HKLM")
        || root.eq_ignore_ascii_case("HKEY_LOCAL_MACHINE")
    {
        Hive::LocalMachine
    } else if root.eq_ignore_ascii_case("HKCU") || root.eq_ignore_ascii_case("HKEY_CURRENT_USER") {
        Hive::CurrentUser
    } else {
        return None;
    };
    (!path.is_empty()).then_some((hive, path))
}

/// Decodes a value's raw data as the registry returned it.
///
/// # Returns
/// [`RegistryData::Dword`] for a REG_DWORD of 4 bytes; [`RegistryData::Other`] for
/// everything else: strings as text (a REG_MULTI_SZ's strings one per line), a REG_QWORD
/// or REG_DWORD_BIG_ENDIAN as its number, anything else (and a REG_DWORD of the wrong
/// size) as hex.
pub fn decode(reg_type: u32, data: &[u8]) -> RegistryData {
    let text = match reg_type {
        REG_DWORD => match <[u8; 4]>::try_from(data) {
            Ok(b) => {
                return RegistryData::Dword {
                    value: u32::from_le_bytes(b),
                }
            }
            Err(_) => format!("{} ({} bytes, not 4)", hex(data), data.len()),
        },
        REG_SZ | REG_EXPAND_SZ | REG_LINK => utf16(data).trim_end_matches('\0').to_string(),
        REG_MULTI_SZ => utf16(data)
            .split('\0')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        REG_QWORD => match <[u8; 8]>::try_from(data) {
            Ok(b) => u64::from_le_bytes(b).to_string(),
            Err(_) => format!("{} ({} bytes, not 8)", hex(data), data.len()),
        },
        REG_DWORD_BIG_ENDIAN => match <[u8; 4]>::try_from(data) {
            Ok(b) => u32::from_be_bytes(b).to_string(),
            Err(_) => format!("{} ({} bytes, not 4)", hex(data), data.len()),
        },
        _ => hex(data),
    };
    RegistryData::Other {
        reg_type: reg_type_name(reg_type),
        text,
    }
}

/// UTF-16LE bytes as text (an odd last byte is dropped; unpaired surrogates become U+FFFD).
fn utf16(data: &[u8]) -> String {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Lowercase hex, cut after [`HEX_SHOWN_BYTES`] with the full length noted.
fn hex(data: &[u8]) -> String {
    if data.len() <= HEX_SHOWN_BYTES {
        hex::encode(data)
    } else {
        format!(
            "{}... ({} bytes)",
            hex::encode(&data[..HEX_SHOWN_BYTES]),
            data.len()
        )
    }
}

/// 100 ns intervals from 1601-01-01 (FILETIME's epoch) to 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// A FILETIME (100 ns intervals since 1601-01-01 UTC, as one number) as unix time in ms.
///
/// # Returns
/// `None` for a time before 1970, which no key written on a running host has (0 is how
/// Windows says "no time").
pub fn filetime_to_unix_ms(ticks: u64) -> Option<f64> {
    let since_unix = ticks.checked_sub(FILETIME_UNIX_EPOCH)?;
    Some(since_unix as f64 / 10_000.0)
}

/// The host's boot time (unix ms) from the clock now and its uptime.
pub fn boot_unix_ms(now_unix_ms: f64, uptime_ms: u64) -> f64 {
    now_unix_ms - uptime_ms as f64
}

/// A service's current state (`SERVICE_STATUS_PROCESS::dwCurrentState`) as reported.
pub fn service_state_name(state: u32) -> String {
    let name = match state {
        1 => "stopped",
        2 => "start_pending",
        3 => "stop_pending",
        4 => "running",
        5 => "continue_pending",
        6 => "pause_pending",
        7 => "paused",
        other => return format!("unknown: state {other}"),
    };
    name.to_string()
}

/// A service's start type (`QUERY_SERVICE_CONFIGW::dwStartType`) as reported.
pub fn start_type_name(start_type: u32) -> String {
    let name = match start_type {
        0 => "boot",
        1 => "system",
        2 => "automatic",
        3 => "manual",
        4 => "disabled",
        other => return format!("unknown ({other})"),
    };
    name.to_string()
}

/// The session's protocol (`WTSClientProtocolType`) as reported: `console`, `rdp`, or the
/// legacy value as `ica`.
pub fn session_protocol_name(protocol: u16) -> String {
    match protocol {
        0 => "console".to_string(),
        1 => "ica".to_string(),
        2 => "rdp".to_string(),
        other => format!("unknown ({other})"),
    }
}

/// The endpoint names that mark a session's redirected devices: those containing
/// [`REMOTE_AUDIO_NAME`], without regard to case or spaces. One entry per endpoint, in
/// catalogue order (an output and an input may share a name). Localised names other than
/// these spellings are not recognised.
pub fn remote_endpoints<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = squash(REMOTE_AUDIO_NAME);
    names
        .into_iter()
        .filter(|n| squash(n).contains(&wanted))
        .map(str::to_string)
        .collect()
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// [`remote_endpoints`] of a catalogue, and why there are none to tell when it failed.
pub fn endpoints_of(
    devices: &Result<Vec<DeviceInfo>, AudioError>,
) -> (Vec<String>, Option<String>) {
    match devices {
        Ok(list) => (remote_endpoints(list.iter().map(|d| d.name.as_str())), None),
        Err(e) => (
            Vec::new(),
            Some(format!(
                "remote endpoints unknown: the device catalogue failed: {e}"
            )),
        ),
    }
}

/// The values of one key as read, and what went wrong with the key as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRead {
    /// One entry per name asked for, in that order.
    pub values: Vec<RegistryValue>,
    /// Why the key (or its last-write time) could not be read; `None` also when the key
    /// just does not exist (that is [`RegistryData::KeyMissing`], a finding).
    pub error: Option<String>,
}

/// Every name of `names` under `key` with the same `data` (a missing or unreadable key).
#[cfg_attr(not(windows), allow(dead_code))]
fn all_values(key: &str, names: &[&str], data: &RegistryData) -> Vec<RegistryValue> {
    names
        .iter()
        .map(|name| RegistryValue {
            key: key.to_string(),
            name: (*name).to_string(),
            data: data.clone(),
            key_written_unix_ms: None,
        })
        .collect()
}

#[cfg(windows)]
pub use windows::{read_values, session_protocol};

#[cfg(windows)]
mod windows;

#[cfg(test)]
mod tests;

/// Under Wine (or Windows): keys of the tests' own under `HKCU\Software\earshot-test-*`,
/// read back with the probe's own code.
#[cfg(all(test, windows))]
mod windows_tests;
