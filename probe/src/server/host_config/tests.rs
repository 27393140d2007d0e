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
