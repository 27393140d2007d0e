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
