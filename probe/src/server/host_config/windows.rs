use super::{
    all_values, boot_unix_ms, decode, endpoints_of, filetime_to_unix_ms, reg_type_name,
    service_state_name, session_protocol_name, split_key, start_type_name, Hive, KeyRead,
    MAX_VALUE_BYTES, SERVICES, WATCHED,
};
use crate::audio::{AudioError, DeviceInfo};
use crate::proto::msg::{HostConfig, RegistryData, ServiceState};

use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_INSUFFICIENT_BUFFER, ERROR_MORE_DATA, ERROR_SERVICE_DOES_NOT_EXIST,
    ERROR_SUCCESS, FILETIME,
};
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegOpenKeyExW, RegQueryInfoKeyW, RegQueryValueExW, HKEY, HKEY_CURRENT_USER,
    HKEY_LOCAL_MACHINE, KEY_QUERY_VALUE, KEY_WOW64_64KEY,
};
use windows_sys::Win32::System::RemoteDesktop::{
    WTSClientProtocolType, WTSFreeMemory, WTSQuerySessionInformationW, WTS_CURRENT_SERVER_HANDLE,
    WTS_CURRENT_SESSION,
};
use windows_sys::Win32::System::Services::{
    CloseServiceHandle, OpenSCManagerW, OpenServiceW, QueryServiceConfigW, QueryServiceStatusEx,
    QUERY_SERVICE_CONFIGW, SC_HANDLE, SC_MANAGER_CONNECT, SC_STATUS_PROCESS_INFO,
    SERVICE_QUERY_CONFIG, SERVICE_QUERY_STATUS, SERVICE_STATUS_PROCESS,
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
        || std::io::Error::last_os_error().raw_os_error() != Some(ERROR_INSUFFICIENT_BUFFER as i32)
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
