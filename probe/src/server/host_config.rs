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
mod windows {
    use super::{
        all_values, boot_unix_ms, decode, endpoints_of, filetime_to_unix_ms, reg_type_name,
        service_state_name, session_protocol_name, split_key, start_type_name, Hive, KeyRead,
        MAX_VALUE_BYTES, SERVICES, WATCHED,
    };
    use crate::audio::{AudioError, DeviceInfo};
    use crate::proto::msg::{HostConfig, RegistryData, ServiceState};

    use windows_sys::Win32::Foundation::{
        ERROR_FILE_NOT_FOUND, ERROR_INSUFFICIENT_BUFFER, ERROR_MORE_DATA,
        ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SUCCESS, FILETIME,
    };
    use windows_sys::Win32::System::Registry::{
        RegCloseKey, RegOpenKeyExW, RegQueryInfoKeyW, RegQueryValueExW, HKEY, HKEY_CURRENT_USER,
        HKEY_LOCAL_MACHINE, KEY_QUERY_VALUE, KEY_WOW64_64KEY,
    };
    use windows_sys::Win32::System::RemoteDesktop::{
        WTSClientProtocolType, WTSFreeMemory, WTSQuerySessionInformationW,
        WTS_CURRENT_SERVER_HANDLE, WTS_CURRENT_SESSION,
    };
    use windows_sys::Win32::System::Services::{
        CloseServiceHandle, OpenSCManagerW, OpenServiceW, QueryServiceConfigW,
        QueryServiceStatusEx, QUERY_SERVICE_CONFIGW, SC_HANDLE, SC_MANAGER_CONNECT,
        SC_STATUS_PROCESS_INFO, SERVICE_QUERY_CONFIG, SERVICE_QUERY_STATUS, SERVICE_STATUS_PROCESS,
    };
    use windows_sys::Win32::System::SystemInformation::GetTickCount64;

    pub(super) fn read(devices: &Result<Vec<DeviceInfo>, AudioError>) -> HostConfig {
        let mut config = HostConfig {
            // SAFETY: GetTickCount64 has no preconditions.
            boot_unix_ms: Some(boot_unix_ms(crate::unix_ms(), unsafe { GetTickCount64() })),
            ..HostConfig::default()
        };
        for (key, names) in WATCHED {
            let Some((hive, path)) = split_key(key) else {
                config
                    .errors
                    .push(format!("cannot read {key}: not an HKLM or HKCU key"));
                continue;
            };
            let read = read_values(hive, path, names);
            config.values.extend(read.values);
            config.errors.extend(read.error);
        }
        let (services, error) = services(SERVICES);
        config.services = services;
        config.errors.extend(error);
        match session_protocol() {
            Ok(p) => config.session_protocol = Some(session_protocol_name(p)),
            Err(why) => config.errors.push(why),
        }
        let (endpoints, error) = endpoints_of(devices);
        config.remote_endpoints = endpoints;
        config.errors.extend(error);
        config
    }

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    fn os_error(code: u32) -> std::io::Error {
        std::io::Error::from_raw_os_error(code as i32)
    }

    /// An open registry key, closed on drop.
    struct Key(HKEY);

    impl Drop for Key {
        fn drop(&mut self) {
            // SAFETY: the handle came from RegOpenKeyExW and is closed once, here.
            unsafe { RegCloseKey(self.0) };
        }
    }

    fn root(hive: Hive) -> HKEY {
        match hive {
            Hive::LocalMachine => HKEY_LOCAL_MACHINE,
            Hive::CurrentUser => HKEY_CURRENT_USER,
        }
    }

    fn open(hive: Hive, path: &str) -> Result<Key, u32> {
        let wpath = wide(path);
        let mut key: HKEY = std::ptr::null_mut();
        // The 64-bit view, so a 32-bit build reads what the host's policy engine reads.
        // SAFETY: `wpath` is NUL-terminated UTF-16 that outlives the call; `key` is a valid
        // out pointer.
        let rc = unsafe {
            RegOpenKeyExW(
                root(hive),
                wpath.as_ptr(),
                0,
                KEY_QUERY_VALUE | KEY_WOW64_64KEY,
                &mut key,
            )
        };
        if rc == ERROR_SUCCESS {
            Ok(Key(key))
        } else {
            Err(rc)
        }
    }

    fn last_write_unix_ms(key: &Key) -> Result<Option<f64>, u32> {
        let mut ft = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let null: *mut u32 = std::ptr::null_mut();
        // SAFETY: `key` is open; every out parameter but the time is null, which the API
        // allows; `ft` is a valid FILETIME.
        let rc = unsafe {
            RegQueryInfoKeyW(
                key.0,
                std::ptr::null_mut(),
                null,
                std::ptr::null(),
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                &mut ft,
            )
        };
        if rc != ERROR_SUCCESS {
            return Err(rc);
        }
        let ticks = (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime);
        Ok(filetime_to_unix_ms(ticks))
    }

    fn query(key: &Key, name: &str) -> RegistryData {
        let wname = wide(name);
        let mut buf = vec![0u8; 64];
        // A value can grow between the size answer and the read: try a few times.
        for _ in 0..4 {
            let mut reg_type = 0u32;
            let mut len = buf.len() as u32;
            // SAFETY: `wname` is NUL-terminated UTF-16; `buf` has `len` writable bytes and
            // the API writes at most that many, or none with ERROR_MORE_DATA.
            let rc = unsafe {
                RegQueryValueExW(
                    key.0,
                    wname.as_ptr(),
                    std::ptr::null(),
                    &mut reg_type,
                    buf.as_mut_ptr(),
                    &mut len,
                )
            };
            match rc {
                ERROR_SUCCESS => {
                    let n = (len as usize).min(buf.len());
                    return decode(reg_type, &buf[..n]);
                }
                ERROR_FILE_NOT_FOUND => return RegistryData::Absent,
                ERROR_MORE_DATA if len > MAX_VALUE_BYTES => {
                    return RegistryData::Other {
                        reg_type: reg_type_name(reg_type),
                        text: format!("{len} bytes, not read (more than {MAX_VALUE_BYTES})"),
                    }
                }
                ERROR_MORE_DATA => buf.resize(len as usize, 0),
                other => {
                    return RegistryData::Error {
                        message: os_error(other).to_string(),
                    }
                }
            }
        }
        RegistryData::Error {
            message: "the value kept changing size while it was read".to_string(),
        }
    }

    /// Reads `names` under `path` of `hive`: each value with the key's last-write time.
    /// Tests point it at keys of their own.
    pub fn read_values(hive: Hive, path: &str, names: &[&str]) -> KeyRead {
        let full = hive.key(path);
        let key = match open(hive, path) {
            Ok(k) => k,
            Err(ERROR_FILE_NOT_FOUND) => {
                return KeyRead {
                    values: all_values(&full, names, &RegistryData::KeyMissing),
                    error: None,
                }
            }
            Err(code) => {
                let message = os_error(code).to_string();
                return KeyRead {
                    values: all_values(
                        &full,
                        names,
                        &RegistryData::Error {
                            message: message.clone(),
                        },
                    ),
                    error: Some(format!("cannot open {full}: {message}")),
                };
            }
        };
        let (written, error) = match last_write_unix_ms(&key) {
            Ok(t) => (t, None),
            Err(code) => (
                None,
                Some(format!(
                    "cannot read the last-write time of {full}: {}",
                    os_error(code)
                )),
            ),
        };
        let values = names
            .iter()
            .map(|name| crate::proto::msg::RegistryValue {
                key: full.clone(),
                name: (*name).to_string(),
                data: query(&key, name),
                key_written_unix_ms: written,
            })
            .collect();
        KeyRead { values, error }
    }

    /// A service control manager or service handle, closed on drop.
    struct Sc(SC_HANDLE);

    impl Drop for Sc {
        fn drop(&mut self) {
            // SAFETY: the handle came from OpenSCManagerW/OpenServiceW and is closed once.
            unsafe { CloseServiceHandle(self.0) };
        }
    }

    /// The state of each of `list` ((name, display name when it cannot be read)), and why
    /// none could be read.
    pub(super) fn services(list: &[(&str, &str)]) -> (Vec<ServiceState>, Option<String>) {
        // SAFETY: null machine and database mean the local, active database.
        let scm = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_CONNECT) };
        if scm.is_null() {
            let why = format!(
                "cannot open the service control manager: {}",
                std::io::Error::last_os_error()
            );
            let states = list
                .iter()
                .map(|(name, display)| ServiceState {
                    name: (*name).to_string(),
                    display_name: (*display).to_string(),
                    state: format!("unknown: {why}"),
                    start_type: None,
                })
                .collect();
            return (states, Some(why));
        }
        let scm = Sc(scm);
        let states = list
            .iter()
            .map(|(name, display)| service(&scm, name, display))
            .collect();
        (states, None)
    }

    fn open_service(scm: &Sc, name: &[u16], access: u32) -> Result<Sc, std::io::Error> {
        // SAFETY: `scm` is open; `name` is NUL-terminated UTF-16 that outlives the call.
        let h = unsafe { OpenServiceW(scm.0, name.as_ptr(), access) };
        if h.is_null() {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(Sc(h))
        }
    }

    fn service(scm: &Sc, name: &str, display: &str) -> ServiceState {
        let mut state = ServiceState {
            name: name.to_string(),
            display_name: display.to_string(),
            state: String::new(),
            start_type: None,
        };
        let wname = wide(name);
        // The configuration is a bonus: a user who may only see the status still gets it.
        let h = match open_service(scm, &wname, SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG)
            .or_else(|_| open_service(scm, &wname, SERVICE_QUERY_STATUS))
        {
            Ok(h) => h,
            Err(e) if e.raw_os_error() == Some(ERROR_SERVICE_DOES_NOT_EXIST as i32) => {
                state.state = "not_installed".to_string();
                return state;
            }
            Err(e) => {
                state.state = format!("unknown: cannot open the service: {e}");
                return state;
            }
        };
        state.state = match status(&h) {
            Ok(s) => service_state_name(s),
            Err(e) => format!("unknown: cannot query the status: {e}"),
        };
        if let Some((start, shown)) = config(&h) {
            state.start_type = Some(start_type_name(start));
            if let Some(shown) = shown.filter(|s| !s.is_empty()) {
                state.display_name = shown;
            }
        }
        state
    }

    fn status(h: &Sc) -> Result<u32, std::io::Error> {
        let mut s = SERVICE_STATUS_PROCESS::default();
        let mut needed = 0u32;
        // SAFETY: `h` is open; the buffer is one SERVICE_STATUS_PROCESS and its size is
        // passed with it.
        let ok = unsafe {
            QueryServiceStatusEx(
                h.0,
                SC_STATUS_PROCESS_INFO,
                (&mut s as *mut SERVICE_STATUS_PROCESS).cast(),
                std::mem::size_of::<SERVICE_STATUS_PROCESS>() as u32,
                &mut needed,
            )
        };
        if ok == 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(s.dwCurrentState)
        }
    }

    /// The start type and the display name, when the handle may read the configuration.
    fn config(h: &Sc) -> Option<(u32, Option<String>)> {
        let mut needed = 0u32;
        // SAFETY: `h` is open; a null buffer of size 0 asks for the size needed.
        let ok = unsafe { QueryServiceConfigW(h.0, std::ptr::null_mut(), 0, &mut needed) };
        if ok != 0
            || std::io::Error::last_os_error().raw_os_error()
                != Some(ERROR_INSUFFICIENT_BUFFER as i32)
        {
            return None;
        }
        // u64 elements: the buffer is aligned for QUERY_SERVICE_CONFIGW's pointers.
        let size = (needed as usize).max(std::mem::size_of::<QUERY_SERVICE_CONFIGW>());
        let mut buf = vec![0u64; size.div_ceil(8)];
        let bytes = buf.len() * 8;
        // SAFETY: `buf` has `bytes` writable bytes, aligned for the structure.
        let ok =
            unsafe { QueryServiceConfigW(h.0, buf.as_mut_ptr().cast(), bytes as u32, &mut needed) };
        if ok == 0 {
            return None;
        }
        // SAFETY: the call succeeded, so the buffer starts with a QUERY_SERVICE_CONFIGW.
        let cfg = unsafe { &*buf.as_ptr().cast::<QUERY_SERVICE_CONFIGW>() };
        let start = cfg.dwStartType;
        let shown = wide_in(&buf, cfg.lpDisplayName);
        Some((start, shown))
    }

    /// The NUL-terminated UTF-16 string at `p`, if it lies inside `buf` (where
    /// QueryServiceConfigW puts its strings); read no further than `buf`'s end.
    fn wide_in(buf: &[u64], p: *const u16) -> Option<String> {
        let start = buf.as_ptr() as usize;
        let end = start + buf.len() * 8;
        let at = p as usize;
        if p.is_null() || at < start || at >= end || (at - start) % 2 != 0 {
            return None;
        }
        let n = (end - at) / 2;
        // SAFETY: `p` is 2-aligned and the `n` u16s from it lie inside `buf`, which is
        // borrowed for the lifetime of the slice.
        let units = unsafe { std::slice::from_raw_parts(p, n) };
        let len = units.iter().position(|&u| u == 0).unwrap_or(n);
        Some(String::from_utf16_lossy(&units[..len]))
    }

    /// The protocol of this process's session (`WTSClientProtocolType`: 0 console, 1 ICA,
    /// 2 RDP), or why it could not be read.
    pub fn session_protocol() -> Result<u16, String> {
        let mut buf: windows_sys::core::PWSTR = std::ptr::null_mut();
        let mut bytes = 0u32;
        // SAFETY: the out pointers are valid; on success the API allocates `buf`, which is
        // freed below with WTSFreeMemory.
        let ok = unsafe {
            WTSQuerySessionInformationW(
                WTS_CURRENT_SERVER_HANDLE,
                WTS_CURRENT_SESSION,
                WTSClientProtocolType,
                &mut buf,
                &mut bytes,
            )
        };
        if ok == 0 {
            return Err(format!(
                "cannot query the session's protocol: {}",
                std::io::Error::last_os_error()
            ));
        }
        let protocol = if buf.is_null() || bytes < 2 {
            Err(format!(
                "cannot query the session's protocol: {bytes} bytes returned, not 2"
            ))
        } else {
            // SAFETY: `buf` holds at least 2 bytes (the USHORT the API documents).
            Ok(unsafe { buf.read_unaligned() })
        };
        if !buf.is_null() {
            // SAFETY: `buf` was allocated by WTSQuerySessionInformationW and is freed once.
            unsafe { WTSFreeMemory(buf.cast()) };
        }
        protocol
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{AudioErrorKind, DeviceDirection};

    fn dev(name: &str) -> DeviceInfo {
        DeviceInfo {
            id: format!("wasapi:{name}"),
            name: name.to_string(),
            direction: DeviceDirection::Output,
            is_default: false,
            is_monitor: false,
            default_format: None,
        }
    }

    #[test]
    fn every_watched_key_splits_into_a_root_and_path_and_is_spelled_back_the_same() {
        for (key, names) in WATCHED {
            let (hive, path) = split_key(key).expect(key);
            assert_eq!(hive.key(path), *key);
            assert!(!names.is_empty());
        }
        assert_eq!(
            split_key(r"HKEY_CURRENT_USER\Software\x"),
            Some((Hive::CurrentUser, r"Software\x"))
        );
        assert_eq!(split_key(r"HKCR\x"), None);
        assert_eq!(split_key("HKLM"), None);
        assert_eq!(split_key(r"HKLM\"), None);
    }

    #[test]
    fn a_dword_of_four_bytes_is_a_number_and_anything_else_is_reported_as_it_is() {
        assert_eq!(
            decode(REG_DWORD, &7u32.to_le_bytes()),
            RegistryData::Dword { value: 7 }
        );
        assert_eq!(
            decode(REG_DWORD, &[1, 0]),
            RegistryData::Other {
                reg_type: "REG_DWORD".into(),
                text: "0100 (2 bytes, not 4)".into()
            }
        );
        let sz: Vec<u8> = "1\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(
            decode(REG_SZ, &sz),
            RegistryData::Other {
                reg_type: "REG_SZ".into(),
                text: "1".into()
            }
        );
        let multi: Vec<u8> = "a\0b\0\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            decode(REG_MULTI_SZ, &multi),
            RegistryData::Other {
                reg_type: "REG_MULTI_SZ".into(),
                text: "a\nb".into()
            }
        );
        assert_eq!(
            decode(REG_QWORD, &5u64.to_le_bytes()),
            RegistryData::Other {
                reg_type: "REG_QWORD".into(),
                text: "5".into()
            }
        );
        assert_eq!(
            decode(REG_BINARY, &[0xde, 0xad]),
            RegistryData::Other {
                reg_type: "REG_BINARY".into(),
                text: "dead".into()
            }
        );
        assert_eq!(
            decode(REG_DWORD_BIG_ENDIAN, &[0, 0, 1, 0]),
            RegistryData::Other {
                reg_type: "REG_DWORD_BIG_ENDIAN".into(),
                text: "256".into()
            }
        );
        let RegistryData::Other { reg_type, text } = decode(99, &[0u8; 100]) else {
            panic!("an unknown type is reported, not decoded");
        };
        assert_eq!(reg_type, "type 99");
        assert!(text.ends_with("... (100 bytes)"), "{text}");
        assert_eq!(text.len(), 2 * HEX_SHOWN_BYTES + "... (100 bytes)".len());
    }

    #[test]
    fn a_filetime_is_unix_milliseconds_and_none_before_1970() {
        assert_eq!(filetime_to_unix_ms(FILETIME_UNIX_EPOCH), Some(0.0));
        // 2024-01-01T00:00:00Z.
        assert_eq!(
            filetime_to_unix_ms(FILETIME_UNIX_EPOCH + 1_704_067_200_000 * 10_000),
            Some(1_704_067_200_000.0)
        );
        assert_eq!(filetime_to_unix_ms(0), None);
        assert_eq!(filetime_to_unix_ms(FILETIME_UNIX_EPOCH - 1), None);
        assert_eq!(boot_unix_ms(10_000.0, 4_000), 6_000.0);
    }

    #[test]
    fn states_start_types_and_protocols_have_names() {
        assert_eq!(service_state_name(4), "running");
        assert_eq!(service_state_name(1), "stopped");
        assert_eq!(service_state_name(2), "start_pending");
        assert_eq!(service_state_name(42), "unknown: state 42");
        assert_eq!(start_type_name(2), "automatic");
        assert_eq!(start_type_name(3), "manual");
        assert_eq!(start_type_name(4), "disabled");
        assert_eq!(start_type_name(9), "unknown (9)");
        assert_eq!(session_protocol_name(0), "console");
        assert_eq!(session_protocol_name(2), "rdp");
        assert_eq!(session_protocol_name(7), "unknown (7)");
    }

    #[test]
    fn remote_audio_endpoints_are_picked_from_the_catalogue_by_name() {
        let names = [
            "Speakers (Realtek High Definition Audio)",
            "Remote Audio",
            "Microphone (Remote Audio)",
            "REMOTEAUDIO",
            "Remote Desktop Audio Bridge",
        ];
        assert_eq!(
            remote_endpoints(names),
            vec!["Remote Audio", "Microphone (Remote Audio)", "REMOTEAUDIO"]
        );
        let (found, error) = endpoints_of(&Ok(vec![dev("Remote Audio"), dev("Speakers")]));
        assert_eq!((found, error), (vec!["Remote Audio".to_string()], None));
    }

    #[test]
    fn a_failed_catalogue_is_said_not_taken_for_no_remote_endpoints() {
        let (found, error) = endpoints_of(&Err(AudioError {
            kind: AudioErrorKind::HostUnavailable,
            message: "no audio server".into(),
        }));
        assert!(found.is_empty());
        assert_eq!(
            error.as_deref(),
            Some("remote endpoints unknown: the device catalogue failed: no audio server")
        );
    }

    #[test]
    fn a_missing_key_gives_every_name_key_missing() {
        let v = all_values(TS_POLICY_KEY, &["a", "b"], &RegistryData::KeyMissing);
        assert_eq!(v.len(), 2);
        assert!(v
            .iter()
            .all(|v| v.data == RegistryData::KeyMissing && v.key_written_unix_ms.is_none()));
        assert_eq!(v[1].name, "b");
    }

    #[cfg(not(windows))]
    #[test]
    fn other_oses_report_no_host_config() {
        assert_eq!(read(&Ok(vec![dev("Remote Audio")])), None);
    }
}

/// Under Wine (or Windows): keys of the tests' own under `HKCU\Software\earshot-test-*`,
/// read back with the probe's own code.
#[cfg(all(test, windows))]
mod windows_tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;
    use windows_sys::Win32::Foundation::ERROR_SUCCESS;
    use windows_sys::Win32::System::Registry::{
        RegCloseKey, RegCreateKeyExW, RegDeleteTreeW, RegSetValueExW, HKEY, HKEY_CURRENT_USER,
        KEY_SET_VALUE, REG_OPTION_NON_VOLATILE,
    };

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    /// `HKCU\Software\earshot-test-<pid>-<n>`, deleted with everything under it on drop.
    struct TestKey {
        path: String,
    }

    impl TestKey {
        fn new() -> TestKey {
            static N: AtomicU32 = AtomicU32::new(0);
            let path = format!(
                r"Software\earshot-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            TestKey { path }
        }

        fn sub(&self, name: &str) -> String {
            format!(r"{}\{name}", self.path)
        }

        /// Creates `path` (and its parents) and sets `name` to raw `data` of `reg_type`.
        fn set(&self, path: &str, name: &str, reg_type: u32, data: &[u8]) {
            let wpath = wide(path);
            let mut key: HKEY = std::ptr::null_mut();
            // SAFETY: valid NUL-terminated path and out pointers.
            let rc = unsafe {
                RegCreateKeyExW(
                    HKEY_CURRENT_USER,
                    wpath.as_ptr(),
                    0,
                    std::ptr::null(),
                    REG_OPTION_NON_VOLATILE,
                    KEY_SET_VALUE,
                    std::ptr::null(),
                    &mut key,
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(rc, ERROR_SUCCESS, "creating {path}");
            let wname = wide(name);
            // SAFETY: `key` is open; `data` has `data.len()` readable bytes.
            let rc = unsafe {
                RegSetValueExW(
                    key,
                    wname.as_ptr(),
                    0,
                    reg_type,
                    data.as_ptr(),
                    data.len() as u32,
                )
            };
            // SAFETY: opened above, closed once.
            unsafe { RegCloseKey(key) };
            assert_eq!(rc, ERROR_SUCCESS, "setting {path}\\{name}");
        }

        fn set_dword(&self, path: &str, name: &str, value: u32) {
            self.set(path, name, REG_DWORD, &value.to_le_bytes());
        }
    }

    impl Drop for TestKey {
        fn drop(&mut self) {
            let wpath = wide(&self.path);
            // SAFETY: a NUL-terminated path under HKCU; a key that was never made is fine.
            unsafe { RegDeleteTreeW(HKEY_CURRENT_USER, wpath.as_ptr()) };
        }
    }

    fn one(path: &str, name: &str) -> RegistryValue {
        let mut read = read_values(Hive::CurrentUser, path, &[name]);
        assert_eq!(read.error, None);
        assert_eq!(read.values.len(), 1);
        read.values.remove(0)
    }

    fn read_all(devices: &Result<Vec<DeviceInfo>, AudioError>) -> HostConfig {
        read(devices).expect("on Windows the probe reports the host's configuration")
    }

    fn near_now(t: Option<f64>) -> f64 {
        let t = t.expect("a key that exists has a last-write time");
        let now = crate::unix_ms();
        assert!((now - t).abs() < 10_000.0, "written {t}, now {now}");
        t
    }

    #[test]
    fn a_value_that_is_not_there_is_absent_in_a_key_that_is() {
        let k = TestKey::new();
        k.set_dword(&k.path, "other", 1);
        let v = one(&k.path, "fDisableCam");
        assert_eq!(v.data, RegistryData::Absent);
        assert_eq!(v.key, format!(r"HKCU\{}", k.path));
        assert_eq!(v.name, "fDisableCam");
        near_now(v.key_written_unix_ms);
    }

    #[test]
    fn a_key_that_is_not_there_is_key_missing_without_a_time() {
        let k = TestKey::new();
        let read = read_values(Hive::CurrentUser, &k.sub("nowhere"), &["a", "b"]);
        assert_eq!(read.error, None, "a missing key is a finding, not an error");
        assert_eq!(read.values.len(), 2);
        for v in &read.values {
            assert_eq!(v.data, RegistryData::KeyMissing);
            assert_eq!(v.key_written_unix_ms, None);
        }
    }

    #[test]
    fn each_dword_is_read_as_its_number() {
        let k = TestKey::new();
        let policy = k.sub(r"Policies\Microsoft\Windows NT\Terminal Services");
        k.set_dword(&policy, "fDisableCam", 1);
        k.set_dword(&policy, "fDisableAudioCapture", 0);
        k.set_dword(&policy, "AllowedAudioQualityMode", 7);
        k.set_dword(&policy, "big", u32::MAX);
        let read = read_values(
            Hive::CurrentUser,
            &policy,
            &[
                "fDisableCam",
                "fDisableAudioCapture",
                "AllowedAudioQualityMode",
                "big",
            ],
        );
        assert_eq!(read.error, None);
        let got: Vec<Option<u32>> = read.values.iter().map(|v| v.data.dword()).collect();
        assert_eq!(got, vec![Some(1), Some(0), Some(7), Some(u32::MAX)]);
        let t = read.values[0].key_written_unix_ms;
        assert!(read.values.iter().all(|v| v.key_written_unix_ms == t));
    }

    #[test]
    fn a_string_where_a_dword_is_expected_is_reported_as_a_string() {
        let k = TestKey::new();
        let sz: Vec<u8> = "1\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
        k.set(&k.path, "fDisableCam", REG_SZ, &sz);
        let v = one(&k.path, "fDisableCam");
        assert_eq!(
            v.data,
            RegistryData::Other {
                reg_type: "REG_SZ".into(),
                text: "1".into()
            }
        );
        assert_eq!(v.data.dword(), None);
    }

    #[test]
    fn binary_and_qword_data_are_reported_with_their_type() {
        let k = TestKey::new();
        k.set(&k.path, "bin", REG_BINARY, &[1, 0, 0, 0]);
        k.set(&k.path, "q", REG_QWORD, &(1u64 << 40).to_le_bytes());
        k.set(&k.path, "wide", REG_BINARY, &[0xab; 5000]);
        assert_eq!(
            one(&k.path, "bin").data,
            RegistryData::Other {
                reg_type: "REG_BINARY".into(),
                text: "01000000".into()
            }
        );
        assert_eq!(
            one(&k.path, "q").data,
            RegistryData::Other {
                reg_type: "REG_QWORD".into(),
                text: (1u64 << 40).to_string()
            }
        );
        assert_eq!(
            one(&k.path, "wide").data,
            RegistryData::Other {
                reg_type: "REG_BINARY".into(),
                text: "5000 bytes, not read (more than 4096)".into()
            }
        );
    }

    #[test]
    fn the_consent_strings_read_as_they_are() {
        let k = TestKey::new();
        let mic = k.sub(r"ConsentStore\microphone");
        let allow: Vec<u8> = "Allow\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let deny: Vec<u8> = "Deny\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
        k.set(&mic, "Value", REG_SZ, &allow);
        k.set(&format!(r"{mic}\NonPackaged"), "Value", REG_SZ, &deny);
        let text = |p: &str| match one(p, "Value").data {
            RegistryData::Other { reg_type, text } if reg_type == "REG_SZ" => text,
            other => panic!("{other:?}"),
        };
        assert_eq!(text(&mic), "Allow");
        assert_eq!(text(&format!(r"{mic}\NonPackaged")), "Deny");
    }

    #[test]
    fn a_keys_write_time_is_now_and_moves_when_a_value_changes() {
        let k = TestKey::new();
        k.set_dword(&k.path, "fDisableCam", 0);
        let before = near_now(one(&k.path, "fDisableCam").key_written_unix_ms);
        std::thread::sleep(Duration::from_millis(200));
        k.set_dword(&k.path, "fDisableCam", 1);
        let v = one(&k.path, "fDisableCam");
        let after = near_now(v.key_written_unix_ms);
        assert_eq!(v.data.dword(), Some(1));
        assert!(
            after > before,
            "the write time moves on with the change: {before} then {after}"
        );
    }

    #[test]
    fn the_boot_time_is_in_the_past_and_after_2000() {
        let config = read_all(&Ok(vec![]));
        let boot = config.boot_unix_ms.expect("the uptime is always readable");
        assert!(boot < crate::unix_ms(), "{boot}");
        assert!(boot > 946_684_800_000.0, "{boot} is before 2000");
    }

    #[test]
    fn each_service_answers_with_a_state() {
        let config = read_all(&Ok(vec![]));
        let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["Audiosrv", "AudioEndpointBuilder", "UmRdpService"]
        );
        for s in &config.services {
            assert!(!s.display_name.is_empty(), "{s:?}");
            assert!(
                s.state == "not_installed"
                    || s.state.starts_with("unknown: ")
                    || !s.state.contains(' '),
                "{s:?}"
            );
            if s.state == "not_installed" {
                assert_eq!(s.start_type, None);
            }
        }
    }

    #[test]
    fn an_installed_service_reports_its_state_start_type_and_display_name() {
        // The RPC service exists on every Windows and in every Wine prefix.
        let (states, error) = windows::services(&[("RpcSs", "Remote Procedure Call (RPC)")]);
        assert_eq!(error, None);
        let s = &states[0];
        assert_eq!(s.name, "RpcSs");
        assert!(
            [
                "running",
                "stopped",
                "start_pending",
                "stop_pending",
                "paused"
            ]
            .contains(&s.state.as_str()),
            "{s:?}"
        );
        assert!(s.start_type.is_some(), "{s:?}");
        assert!(!s.display_name.is_empty(), "{s:?}");
        eprintln!("{s:?}");
    }

    #[test]
    fn the_whole_read_lists_every_watched_value_and_the_remote_endpoints() {
        let config = read_all(&Ok(vec![DeviceInfo {
            id: "wasapi:x".into(),
            name: "Remote Audio".into(),
            direction: crate::audio::DeviceDirection::Output,
            is_default: true,
            is_monitor: false,
            default_format: None,
        }]));
        let expected: Vec<(String, String)> = WATCHED
            .iter()
            .flat_map(|(key, names)| names.iter().map(|n| (key.to_string(), n.to_string())))
            .collect();
        let got: Vec<(String, String)> = config
            .values
            .iter()
            .map(|v| (v.key.clone(), v.name.clone()))
            .collect();
        assert_eq!(got, expected);
        for (key, names) in WATCHED {
            for name in *names {
                assert!(config.value(key, name).is_some(), "{key} {name}");
            }
        }
        assert_eq!(config.remote_endpoints, vec!["Remote Audio"]);
        assert!(config.session_protocol.is_some() || !config.errors.is_empty());
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&config).unwrap_or_default()
        );
    }
}
