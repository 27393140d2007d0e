use super::*;
use earshot_probe::proto::msg::{HostConfig, RegistryData, RegistryValue};

const BOOT: f64 = 1_790_000_000_000.0;
const HOUR: f64 = 3_600_000.0;

fn value(key: &str, name: &str, data: RegistryData, written: f64) -> RegistryValue {
    RegistryValue {
        key: key.into(),
        name: name.into(),
        data,
        key_written_unix_ms: Some(written),
    }
}

fn host(values: Vec<RegistryValue>) -> HostConfig {
    HostConfig {
        boot_unix_ms: Some(BOOT),
        values,
        ..HostConfig::default()
    }
}

fn dword(v: u32) -> RegistryData {
    RegistryData::Dword { value: v }
}

fn blocks_output() -> SessionHostPolicy {
    SessionHostPolicy {
        f_disable_cam: Some(Flag(1)),
        ..SessionHostPolicy::default()
    }
}

#[test]
fn a_policy_written_after_boot_asks_for_a_restart_when_the_check_fails() {
    let cfg = host(vec![value(
        POLICY_KEY,
        "fDisableCam",
        dword(1),
        BOOT + HOUR,
    )]);
    let v = view(&blocks_output(), &cfg, AudioPath::Output, Verdict::Fail);
    assert!(
        v.cause.contains("written after its last boot"),
        "{}",
        v.cause
    );
    assert!(v.cause.contains("restart the host"), "{}", v.cause);
    assert!(v.cause.contains(&when(BOOT)), "{}", v.cause);
    assert_eq!(v.facts[0].written_after_boot, Some(true));
    assert!(v.facts[0].agrees);
}

#[test]
fn a_policy_older_than_boot_points_elsewhere_when_the_check_fails() {
    let cfg = host(vec![value(
        POLICY_KEY,
        "fDisableCam",
        dword(1),
        BOOT - HOUR,
    )]);
    let v = view(&blocks_output(), &cfg, AudioPath::Output, Verdict::Fail);
    assert!(v.cause.contains("behaviour still differs"), "{}", v.cause);
    assert!(
        v.cause.contains("host pool's RDP properties"),
        "{}",
        v.cause
    );
    assert!(!v.cause.contains("restart"), "{}", v.cause);
}

#[test]
fn a_policy_missing_from_the_host_says_the_rollout_did_not_apply() {
    for data in [RegistryData::Absent, RegistryData::KeyMissing, dword(0)] {
        let cfg = host(vec![value(
            POLICY_KEY,
            "fDisableCam",
            data.clone(),
            BOOT - HOUR,
        )]);
        let v = view(&blocks_output(), &cfg, AudioPath::Output, Verdict::Fail);
        assert!(
            v.cause.contains("does not have the policy"),
            "{data:?}: {}",
            v.cause
        );
        assert!(v.cause.contains("did not apply"), "{}", v.cause);
        assert!(!v.facts[0].agrees);
    }
    // A value the probe did not report at all is missing too, never assumed.
    let v = view(
        &blocks_output(),
        &host(vec![]),
        AudioPath::Output,
        Verdict::Fail,
    );
    assert!(v.cause.contains("not read by the probe"), "{}", v.cause);
}

#[test]
fn a_wrong_type_is_named_and_counts_as_not_having_the_policy() {
    let sz = RegistryData::Other {
        reg_type: "REG_SZ".into(),
        text: "1".into(),
    };
    let cfg = host(vec![value(POLICY_KEY, "fDisableCam", sz, BOOT - HOUR)]);
    let v = view(&blocks_output(), &cfg, AudioPath::Output, Verdict::Fail);
    assert!(
        v.cause.contains("REG_SZ \"1\" where a DWORD is expected"),
        "{}",
        v.cause
    );
    assert!(v.cause.contains("did not apply"), "{}", v.cause);
    let (layer, notes) = layer_from_host(&cfg);
    assert_eq!(layer.f_disable_cam, None);
    assert!(notes[0].contains("REG_SZ"), "{notes:?}");
}

#[test]
fn a_pass_states_what_the_host_has() {
    let cfg = host(vec![value(
        POLICY_KEY,
        "fDisableCam",
        dword(1),
        BOOT - HOUR,
    )]);
    let v = view(&blocks_output(), &cfg, AudioPath::Output, Verdict::Pass);
    assert!(
        v.cause.starts_with("the host has fDisableCam=1"),
        "{}",
        v.cause
    );
    assert!(v.cause.contains("as the scenario describes"), "{}", v.cause);
}

#[test]
fn not_configured_on_both_sides_agrees() {
    let cfg = host(vec![value(
        POLICY_KEY,
        "fDisableCam",
        RegistryData::Absent,
        BOOT,
    )]);
    let v = view(
        &SessionHostPolicy::default(),
        &cfg,
        AudioPath::Output,
        Verdict::Pass,
    );
    assert!(v.facts.iter().all(|f| f.agrees), "{v:?}");
    assert!(v.cause.contains("none of the policy values"), "{}", v.cause);
}

#[test]
fn the_listener_blocking_without_a_policy_is_told() {
    let cfg = host(vec![
        value(
            POLICY_KEY,
            "fDisableAudioCapture",
            RegistryData::Absent,
            BOOT,
        ),
        value(WINSTATION_KEY, "fDisableAudioCapture", dword(1), BOOT),
    ]);
    let v = view(
        &SessionHostPolicy::default(),
        &cfg,
        AudioPath::Capture,
        Verdict::Fail,
    );
    assert!(
        v.cause
            .contains("RDP-Tcp listener itself has fDisableAudioCapture=1"),
        "{}",
        v.cause
    );
}

#[test]
fn the_layer_taken_from_the_host() {
    let cfg = host(vec![
        value(POLICY_KEY, "fDisableCam", dword(1), BOOT),
        value(POLICY_KEY, "fDisableAudioCapture", dword(0), BOOT),
        value(POLICY_KEY, "AllowedAudioQualityMode", dword(5), BOOT),
        value(PRIVACY_KEY, "LetAppsAccessMicrophone", dword(2), BOOT),
        value(
            PRIVACY_KEY,
            "LetAppsAccessMicrophone_ForceDenyTheseApps",
            RegistryData::Other {
                reg_type: "REG_MULTI_SZ".into(),
                text: "Contoso.Recorder_1\nFabrikam.Notes_2".into(),
            },
            BOOT,
        ),
    ]);
    let (layer, notes) = layer_from_host(&cfg);
    assert_eq!(
        layer.mic_force_deny_apps,
        Some(vec!["Contoso.Recorder_1".into(), "Fabrikam.Notes_2".into()])
    );
    assert_eq!(layer.f_disable_cam, Some(Flag(1)));
    assert_eq!(layer.f_disable_audio_capture, Some(Flag(0)));
    assert_eq!(layer.allowed_audio_quality_mode, None);
    assert_eq!(layer.let_apps_access_microphone, Some(AppAccess(2)));
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains("AllowedAudioQualityMode on the host is 5"),
        "{notes:?}"
    );
}

#[test]
fn summary_lines_mark_writes_after_boot() {
    let cfg = host(vec![value(
        POLICY_KEY,
        "fDisableCam",
        dword(1),
        BOOT + HOUR,
    )]);
    let lines = summary_lines(&cfg);
    assert!(lines[0].starts_with("booted "), "{lines:?}");
    assert!(lines[1].ends_with("after the last boot)"), "{lines:?}");
    assert!(
        lines.contains(&"remote audio endpoints: none".to_string()),
        "{lines:?}"
    );
}

#[test]
fn the_desktop_app_consent_is_taken_from_the_host_and_deny_wins() {
    use earshot_probe::registry::{MIC_CONSENT_MACHINE_DESKTOP_KEY, MIC_CONSENT_USER_DESKTOP_KEY};
    let sz = |text: &str| RegistryData::Other {
        reg_type: "REG_SZ".into(),
        text: text.into(),
    };
    let consent = |user: &str, machine: &str| {
        let cfg = host(vec![
            value(MIC_CONSENT_USER_DESKTOP_KEY, "Value", sz(user), BOOT),
            value(MIC_CONSENT_MACHINE_DESKTOP_KEY, "Value", sz(machine), BOOT),
        ]);
        layer_from_host(&cfg).0.desktop_apps_microphone
    };
    assert_eq!(consent("Allow", "Allow"), Some(Consent::Allow));
    assert_eq!(consent("Allow", "Deny"), Some(Consent::Deny));
    assert_eq!(consent("Deny", "Allow"), Some(Consent::Deny));
    let (layer, notes) = layer_from_host(&host(vec![value(
        MIC_CONSENT_USER_DESKTOP_KEY,
        "Value",
        sz("Prompt"),
        BOOT,
    )]));
    assert_eq!(layer.desktop_apps_microphone, None);
    assert!(
        notes[0].contains("desktop-app microphone consent"),
        "{notes:?}"
    );
    // Denied on the host, the probe's capture expects nothing heard.
    let mut s = crate::scenario::Scenario::parse(
        "name = \"x\"\nproduct = \"windows365\"\n[probes.local]\naddress = \"127.0.0.1:1\"\n\
         token_env = \"X\"\nmic_feed = \"m\"\n[probes.remote]\naddress = \"127.0.0.1:2\"\n\
         token_env = \"X\"\n",
        std::path::Path::new("x.toml"),
    )
    .unwrap();
    s.policy.session_host.desktop_apps_microphone = Some(Consent::Deny);
    let e = crate::policy::expect(&s);
    assert_eq!(
        e.capture.value,
        crate::scenario::CaptureExpect::RedirectedAppsDenied
    );
}
