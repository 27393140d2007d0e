//! Replaying registry files onto the session host settings and the per-app lists.

use super::*;
use crate::import::registry_pol::writer::{entry, file, sz};

const TS: &str = r"Software\Policies\Microsoft\Windows NT\Terminal Services";
const PRIVACY: &str = r"Software\Policies\Microsoft\Windows\AppPrivacy";

fn dw(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

fn values(i: &HostImport) -> Vec<(&'static str, Option<u32>)> {
    i.settings
        .iter()
        .map(|s| (s.setting.name(), s.value))
        .collect()
}

#[test]
fn only_the_four_settings_are_taken_and_the_rest_is_counted() {
    let bytes = file(&[
        entry(TS, "", 0, &[]),
        entry(TS, "fDisableCdm", 4, &dw(1)),
        entry(TS, "fdisablecam", 4, &dw(1)),
        entry(&TS.to_uppercase(), "fDisableAudioCapture", 4, &dw(0)),
        entry(TS, "**del.AllowedAudioQualityMode", 1, &sz(" ")),
        entry(PRIVACY, "LetAppsAccessMicrophone", 4, &dw(2)),
        entry(
            PRIVACY,
            "LetAppsAccessMicrophone_ForceAllowTheseApps",
            7,
            &sz("a"),
        ),
        // The same value name under another key is another value.
        entry(r"Software\Policies\Other", "fDisableCam", 1, &sz("x")),
    ]);
    let i = read_session_host(&bytes, "Registry.pol").unwrap();
    assert_eq!(i.format, ImportFormat::RegistryPol);
    assert_eq!(
        values(&i),
        [
            ("fDisableCam", Some(1)),
            ("fDisableAudioCapture", Some(0)),
            ("AllowedAudioQualityMode", None),
            ("LetAppsAccessMicrophone", Some(2)),
        ]
    );
    // The per-app list is read: a REG_MULTI_SZ of package family names.
    assert_eq!((i.records, i.ignored), (8, 3));
    assert_eq!(
        i.list(AppList::ForceAllow).and_then(|l| l.apps.clone()),
        Some(vec!["a".to_string()])
    );
    assert_eq!(
        i.get(Setting::FDisableCam).map(|s| s.place),
        Some(Place::Entry {
            index: 3,
            offset: 8 + entry(TS, "", 0, &[]).len() + entry(TS, "fDisableCdm", 4, &dw(1)).len()
        })
    );
    let summary = i.summary();
    assert!(summary.contains("fDisableCam=1 (entry 3),"), "{summary}");
    assert!(
        summary.contains("AllowedAudioQualityMode deleted"),
        "{summary}"
    );
    assert!(summary.contains("3 of its 8 entries ignored"), "{summary}");
}

#[test]
fn later_records_override_earlier_ones() {
    let bytes = file(&[
        entry(TS, "fDisableCam", 4, &dw(1)),
        entry(TS, "fDisableAudioCapture", 4, &dw(1)),
        entry(TS, "**DelVals.", 1, &sz(" ")),
        entry(TS, "fDisableAudioCapture", 4, &dw(0)),
        entry(PRIVACY, "LetAppsAccessMicrophone", 4, &dw(2)),
        entry(
            r"Software\Policies\Microsoft\Windows",
            "**DeleteKeys",
            1,
            &sz("AppPrivacy"),
        ),
    ]);
    let i = read_session_host(&bytes, "p").unwrap();
    assert_eq!(
        values(&i),
        [
            ("fDisableCam", None),
            ("fDisableAudioCapture", Some(0)),
            ("AllowedAudioQualityMode", None),
            ("LetAppsAccessMicrophone", None),
        ]
    );
    assert_eq!(i.ignored, 0);
}

#[test]
fn a_string_where_a_dword_belongs_names_the_entry_and_the_values() {
    let bytes = file(&[
        entry(TS, "fDisableCdm", 1, &sz("1")),
        entry(TS, "fDisableCam", 1, &sz("1")),
    ]);
    let e = read_session_host(&bytes, "gpo/Registry.pol")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("gpo/Registry.pol: entry 2 (byte offset "),
        "{e}"
    );
    assert!(
        e.contains(
            "`fDisableCam` is REG_SZ \"1\": expected a REG_DWORD, 0 (allowed) or 1 (blocked)"
        ),
        "{e}"
    );
}

#[test]
fn a_value_out_of_range_names_the_line_and_the_values() {
    let text = format!(
        "{}\r\n\r\n[HKEY_LOCAL_MACHINE\\{TS}]\r\n\"AllowedAudioQualityMode\"=dword:00000002\r\n",
        reg_file::HEADER
    );
    let e = read_session_host(text.as_bytes(), "x.reg")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("x.reg: line 4: `AllowedAudioQualityMode` = 2:"),
        "{e}"
    );
    assert!(
        e.contains("expected 1 (dynamic), 3 (medium) or 7 (high)"),
        "{e}"
    );
}

#[test]
fn a_reg_export_deletes_values_and_keys() {
    let text = format!(
        "{}\n[HKEY_LOCAL_MACHINE\\{TS}]\n\"fDisableCam\"=dword:1\n\"fDisableAudioCapture\"=dword:1\n\
         \"fDisableCam\"=-\n[-HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows]\n\
         [HKEY_CURRENT_USER\\{TS}]\n\"fDisableCam\"=dword:1\n",
        reg_file::HEADER_V4
    );
    let i = read_session_host(text.as_bytes(), "x.reg").unwrap();
    assert_eq!(i.format, ImportFormat::RegExport);
    assert_eq!(
        values(&i),
        [
            ("fDisableCam", None),
            ("fDisableAudioCapture", Some(1)),
            ("LetAppsAccessMicrophone", None),
        ]
    );
    // The HKLM key line, the HKCU key line and its value.
    assert_eq!((i.records, i.ignored), (7, 3));
}

#[test]
fn a_file_without_the_settings_says_so() {
    let text = format!(
        "{}\n[HKEY_CURRENT_USER\\{TS}]\n\"fDisableCam\"=dword:1\n",
        reg_file::HEADER
    );
    let i = read_session_host(text.as_bytes(), "user.reg").unwrap();
    assert!(i.settings.is_empty());
    let summary = i.summary();
    assert!(
        summary.contains("sets or deletes none of fDisableCam"),
        "{summary}"
    );
    assert!(summary.contains("2 of its 2 entries ignored"), "{summary}");
}

#[test]
fn ansi_text_is_read() {
    let mut bytes = format!(
        "{}\r\n[HKEY_LOCAL_MACHINE\\{TS}]\r\n\"Caf",
        reg_file::HEADER_V4
    )
    .into_bytes();
    bytes.extend(b"\xe9\"=\"x\"\r\n\"fDisableCam\"=dword:00000000\r\n");
    let i = read_session_host(&bytes, "ansi.reg").unwrap();
    assert_eq!(values(&i), [("fDisableCam", Some(0))]);
}

#[test]
fn neither_format_says_what_each_would_start_with() {
    for (bytes, needle) in [
        (&b""[..], "the file is empty"),
        (&b"hello"[..], "nor a .reg export"),
        (
            &b"[HKEY_LOCAL_MACHINE\\X]\n\"a\"=dword:1\n"[..],
            "export it again",
        ),
        (&b"[\x00S\x00"[..], "without their 8-byte header"),
    ] {
        let e = read_session_host(bytes, "f").unwrap_err().to_string();
        assert!(e.starts_with("f: neither a Registry.pol"), "{e}");
        assert!(e.contains(needle), "{e}");
    }
    let e = read_session_host(&[0xff, 0xfe, 0x41], "u.reg")
        .unwrap_err()
        .to_string();
    assert!(e.contains("odd number of bytes"), "{e}");
}

#[test]
fn keys_compare_by_whole_components() {
    assert!(is_at_or_below(TERMINAL_SERVICES, r"software\policies"));
    assert!(is_at_or_below(TERMINAL_SERVICES, TERMINAL_SERVICES));
    assert!(!is_at_or_below(TERMINAL_SERVICES, r"SOFTWARE\Pol"));
    assert!(!is_at_or_below(r"SOFTWARE", TERMINAL_SERVICES));
    assert!(!is_at_or_below("é", "e"));
}

#[test]
fn the_per_app_microphone_lists_are_read_from_both_formats_and_reported() {
    // The project's own Group Policy object: a Force Allow list of two apps.
    let gpo = load_session_host(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/import/gpo/Registry.pol"),
    )
    .unwrap();
    let allow = gpo.list(AppList::ForceAllow).unwrap();
    assert_eq!(
        allow.apps.as_deref(),
        Some(
            &[
                "Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe".to_string(),
                "Contoso.Dictation_1234".to_string()
            ][..]
        )
    );
    assert!(
        gpo.summary().contains(
            "LetAppsAccessMicrophone_ForceAllowTheseApps=[Microsoft.WindowsSoundRecorder_\
             8wekyb3d8bbwe, Contoso.Dictation_1234]"
        ),
        "{}",
        gpo.summary()
    );
    // A .reg export: hex(7) is UTF-16LE strings, each ended by a NUL, then an empty one.
    let utf16 = |s: &str| -> String {
        s.encode_utf16()
            .flat_map(u16::to_le_bytes)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let reg = format!(
        "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\{APP_PRIVACY}]\r\n\
         \"LetAppsAccessMicrophone_ForceDenyTheseApps\"=hex(7):{}\r\n",
        utf16("Contoso.Recorder_1\0Fabrikam.Notes_2\0\0")
    );
    let i = read_session_host(reg.as_bytes(), "deny.reg").unwrap();
    assert_eq!(
        i.list(AppList::ForceDeny).and_then(|l| l.apps.clone()),
        Some(vec!["Contoso.Recorder_1".into(), "Fabrikam.Notes_2".into()])
    );
    // A list that is not a list is an error naming the value and what was expected.
    let bad = format!(
        "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\{APP_PRIVACY}]\r\n\
         \"LetAppsAccessMicrophone_ForceDenyTheseApps\"=dword:00000001\r\n"
    );
    let e = read_session_host(bad.as_bytes(), "bad.reg")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.reg") && e.contains("expected a REG_MULTI_SZ of package family names"),
        "{e}"
    );
}
