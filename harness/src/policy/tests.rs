//! One row per rule of the audio redirection documentation (ARCHITECTURE.md, "The policy model").

use std::path::Path;

use super::*;
use crate::scenario::{CaptureExpect as C, OutputExpect as O};

use crate::scenario::test_support::PROBES;

/// A scenario for `product` with the given TOML policy sections.
fn scenario(product: &str, policy: &str) -> Scenario {
    let text = format!("name = \"t\"\nproduct = \"{product}\"\n{policy}\n{PROBES}");
    Scenario::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

struct Row {
    rule: &'static str,
    product: &'static str,
    policy: &'static str,
    output: O,
    output_by: &'static str,
    capture: C,
    capture_by: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        rule: "AVD defaults: play on the local computer, microphone not configured (off)",
        product: "avd",
        policy: "",
        output: O::Client,
        output_by: "default audiomode:i:0",
        capture: C::Blocked,
        capture_by: "audiocapturemode not configured",
    },
    Row {
        rule: "AVD audiomode 0: play on the local computer",
        product: "avd",
        policy: "[policy.rdp]\nproperties = \"audiomode:i:0\"",
        output: O::Client,
        output_by: "host pool RDP property audiomode:i:0",
        capture: C::Blocked,
        capture_by: "not configured",
    },
    Row {
        rule: "AVD audiomode 1: play on the remote computer",
        product: "avd",
        policy: "[policy.rdp]\nproperties = \"audiomode:i:1\"",
        output: O::Session,
        output_by: "audiomode:i:1",
        capture: C::Blocked,
        capture_by: "not configured",
    },
    Row {
        rule: "AVD audiomode 2: do not play",
        product: "avd",
        policy: "[policy.rdp]\nproperties = \"audiomode:i:2\"",
        output: O::None,
        output_by: "audiomode:i:2",
        capture: C::Blocked,
        capture_by: "not configured",
    },
    Row {
        rule: "AVD audiocapturemode 1: microphone redirected",
        product: "avd",
        policy: "[policy.rdp]\nproperties = \"audiocapturemode:i:1\"",
        output: O::Client,
        output_by: "default",
        capture: C::Redirected,
        capture_by: "audiocapturemode:i:1",
    },
    Row {
        rule: "AVD audiocapturemode 0: microphone not redirected",
        product: "avd",
        policy: "[policy.rdp]\nproperties = \"audiocapturemode:i:0\"",
        output: O::Client,
        output_by: "default",
        capture: C::Blocked,
        capture_by: "audiocapturemode:i:0",
    },
    Row {
        rule: "AVD: GPO disabling playback beats a host pool that plays locally",
        product: "avd",
        policy: "[policy.session_host]\nfDisableCam = 1\n[policy.rdp]\nproperties = \"audiomode:i:0;audiocapturemode:i:1\"",
        output: O::None,
        output_by: "session host policy fDisableCam=1",
        capture: C::Redirected,
        capture_by: "audiocapturemode:i:1",
    },
    Row {
        rule: "AVD: GPO disabling playback beats play on the remote computer too",
        product: "avd",
        policy: "[policy.session_host]\nfDisableCam = 1\n[policy.rdp]\nproperties = \"audiomode:i:1\"",
        output: O::None,
        output_by: "session host policy fDisableCam=1",
        capture: C::Blocked,
        capture_by: "not configured",
    },
    Row {
        rule: "AVD: GPO disabling recording beats a host pool that redirects the microphone",
        product: "avd",
        policy: "[policy.session_host]\nfDisableAudioCapture = 1\n[policy.rdp]\nproperties = \"audiocapturemode:i:1\"",
        output: O::Client,
        output_by: "default",
        capture: C::Blocked,
        capture_by: "session host policy fDisableAudioCapture=1",
    },
    Row {
        rule: "AVD: GPO explicitly enabled (0) does not override the host pool's 'do not play'",
        product: "avd",
        policy: "[policy.session_host]\nfDisableCam = 0\n[policy.rdp]\nproperties = \"audiomode:i:2\"",
        output: O::None,
        output_by: "audiomode:i:2",
        capture: C::Blocked,
        capture_by: "not configured",
    },
    Row {
        rule: "Windows 365 defaults: playback and recording redirected",
        product: "windows365",
        policy: "",
        output: O::Client,
        output_by: "Windows 365 default",
        capture: C::Redirected,
        capture_by: "Windows 365 default",
    },
    Row {
        rule: "Dev Box defaults: playback and recording redirected",
        product: "devbox",
        policy: "",
        output: O::Client,
        output_by: "Microsoft Dev Box default",
        capture: C::Redirected,
        capture_by: "Microsoft Dev Box default",
    },
    Row {
        rule: "Windows 365: GPO blocks both",
        product: "windows365",
        policy: "[policy.session_host]\nfDisableCam = 1\nfDisableAudioCapture = 1",
        output: O::None,
        output_by: "fDisableCam=1",
        capture: C::Blocked,
        capture_by: "fDisableAudioCapture=1",
    },
    Row {
        rule: "Client device disables the microphone even when the host pool redirects it",
        product: "avd",
        policy: "[policy.rdp]\nproperties = \"audiocapturemode:i:1\"\n[policy.client]\nmicrophone = \"disabled\"",
        output: O::Client,
        output_by: "default",
        capture: C::Blocked,
        capture_by: "client device",
    },
    Row {
        rule: "Client device disables the microphone on Dev Box",
        product: "devbox",
        policy: "[policy.client]\nmicrophone = \"disabled\"",
        output: O::Client,
        output_by: "default",
        capture: C::Blocked,
        capture_by: "client device",
    },
    Row {
        rule: "Privacy force deny governs packaged apps: the probe, a desktop app, still hears",
        product: "windows365",
        policy: "[policy.session_host]\nLetAppsAccessMicrophone = 2",
        output: O::Client,
        output_by: "default",
        capture: C::Redirected,
        capture_by: "Windows 365 default",
    },
    Row {
        rule: "The desktop-app consent denied: redirected, but desktop apps are denied it",
        product: "windows365",
        policy: "[policy.session_host]\ndesktop_apps_microphone = \"deny\"",
        output: O::Client,
        output_by: "default",
        capture: C::RedirectedAppsDenied,
        capture_by: "desktop-app microphone consent",
    },
    Row {
        rule: "Privacy force allow changes nothing",
        product: "windows365",
        policy: "[policy.session_host]\nLetAppsAccessMicrophone = 1",
        output: O::Client,
        output_by: "default",
        capture: C::Redirected,
        capture_by: "default",
    },
    Row {
        rule: "RDS uses the .rdp defaults",
        product: "rds",
        policy: "",
        output: O::Client,
        output_by: "audiomode:i:0",
        capture: C::Blocked,
        capture_by: "not configured",
    },
];

#[test]
fn every_rule_of_the_documentation() {
    for r in ROWS {
        let e = expect(&scenario(r.product, r.policy));
        assert_eq!(
            e.output.value, r.output,
            "{}: output {:?}",
            r.rule, e.output
        );
        assert!(
            e.output.decided_by.contains(r.output_by),
            "{}: output decided by `{}`, expected `{}`",
            r.rule,
            e.output.decided_by,
            r.output_by
        );
        assert_eq!(
            e.capture.value, r.capture,
            "{}: capture {:?}",
            r.rule, e.capture
        );
        assert!(
            e.capture.decided_by.contains(r.capture_by),
            "{}: capture decided by `{}`, expected `{}`",
            r.rule,
            e.capture.decided_by,
            r.capture_by
        );
        assert!(
            e.output.trail.len() >= 2 && e.capture.trail.len() >= 2,
            "{}",
            r.rule
        );
    }
}

#[test]
fn quality_is_the_lower_of_policy_and_request() {
    let cases = [
        ("", "", Quality::Dynamic),
        (
            "AllowedAudioQualityMode = 7",
            "audioqualitymode:i:2",
            Quality::High,
        ),
        (
            "AllowedAudioQualityMode = 3",
            "audioqualitymode:i:2",
            Quality::Medium,
        ),
        (
            "AllowedAudioQualityMode = 7",
            "audioqualitymode:i:1",
            Quality::Medium,
        ),
        (
            "AllowedAudioQualityMode = 1",
            "audioqualitymode:i:2",
            Quality::Dynamic,
        ),
        ("", "audioqualitymode:i:2", Quality::Dynamic),
        ("AllowedAudioQualityMode = 7", "", Quality::Dynamic),
    ];
    for (host, rdp, want) in cases {
        let rdp = if rdp.is_empty() {
            String::new()
        } else {
            format!("[policy.rdp]\nproperties = \"{rdp}\"")
        };
        let s = scenario("avd", &format!("[policy.session_host]\n{host}\n{rdp}"));
        assert_eq!(expect(&s).quality.value, want, "{host} / {rdp}");
    }
}

#[test]
fn an_explicit_expectation_overrides_the_engine() {
    let s = scenario(
        "avd",
        "[expect]\noutput = \"none\"\ncapture = \"redirected\"\nreason = \"pilot ring\"",
    );
    let e = expect(&s);
    assert_eq!(e.output.value, O::None);
    assert_eq!(e.capture.value, C::Redirected);
    assert!(e.output.decided_by.contains("pilot ring"));
}

#[test]
fn properties_not_about_audio_are_kept_and_summed_up_in_one_line_of_information() {
    let p =
        parse_rdp_properties("audiomode:i:0;drivestoredirect:s:*;redirectclipboard:i:1").unwrap();
    assert_eq!(p.values.len(), 3);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        p.ignored_line().unwrap(),
        "2 RDP properties not about audio redirection, ignored: drivestoredirect, \
         redirectclipboard"
    );
    // A real host pool's many properties: one line, not one warning each.
    let many: Vec<String> = (0..20).map(|i| format!("prop{i}:i:1")).collect();
    let s = scenario(
        "avd",
        &format!("[policy.rdp]\nproperties = \"{}\"", many.join(";")),
    );
    let e = expect(&s);
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    assert_eq!(e.info.len(), 1, "{:?}", e.info);
    assert!(e.info[0].starts_with("20 RDP properties") && e.info[0].ends_with("(14 more)"));
    // A property given twice is still worth a warning.
    let p = parse_rdp_properties("audiomode:i:0;audiomode:i:1").unwrap();
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn malformed_properties_are_errors_naming_the_property() {
    for (text, needle) in [
        ("audiomode:i", "expected `name:type:value`"),
        ("audiomode:i:x", "not an integer"),
        (
            "audiomode:i:3",
            "one of 0 (play on this computer), 1 (play on the remote computer), 2 (do not play)",
        ),
        ("audiomod:i:0", "did you mean `audiomode`?"),
        ("audiocapturemod:i:1", "did you mean `audiocapturemode`?"),
        ("audiocapturemode:s:1", "`audiocapturemode:i:N`"),
        ("audiomode:q:0", "unknown type `q`"),
        (":i:0", "name is empty"),
    ] {
        let e = parse_rdp_properties(text).unwrap_err().to_string();
        assert!(e.contains(text.split(';').next().unwrap()), "{text}: {e}");
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn rdp_files_are_read_in_utf16_and_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let mut utf16 = vec![0xff, 0xfe];
    for u in "screen mode id:i:2\r\naudiomode:i:2\r\naudiocapturemode:i:1\r\n".encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(dir.path().join("a.rdp"), utf16).unwrap();
    std::fs::write(dir.path().join("b.rdp"), "audiomode:i:1\n").unwrap();
    for (file, want) in [("a.rdp", O::None), ("b.rdp", O::Session)] {
        let text =
            format!("name = \"t\"\nproduct = \"rds\"\n[policy.rdp]\nfile = \"{file}\"\n{PROBES}");
        let s = Scenario::parse(&text, &dir.path().join("s.toml")).unwrap();
        assert_eq!(expect(&s).output.value, want, "{file}");
    }
    let text =
        format!("name = \"t\"\nproduct = \"rds\"\n[policy.rdp]\nfile = \"missing.rdp\"\n{PROBES}");
    // The loader reads the file: a missing one is the scenario's error, before any run.
    let e = Scenario::parse(&text, &dir.path().join("s.toml")).unwrap_err();
    assert!(e.to_string().contains("missing.rdp"), "{e}");
}

#[test]
fn quality_is_attributed_only_to_layers_that_are_set_and_exist() {
    let by = |product: &str, policy: &str| {
        let e = expect(&scenario(product, policy));
        (
            e.quality.value,
            e.quality.decided_by,
            e.quality.trail.join("\n"),
        )
    };
    let (q, d, _) = by("avd", "");
    assert_eq!(q, Quality::Dynamic);
    assert_eq!(d, "the defaults (dynamic)");
    let (q, d, _) = by("avd", "[policy.rdp]\nproperties = \"audioqualitymode:i:2\"");
    assert_eq!(q, Quality::Dynamic);
    assert!(d.contains("AllowedAudioQualityMode not configured"), "{d}");
    let (q, d, _) = by(
        "avd",
        "[policy.session_host]\nAllowedAudioQualityMode = 7\n[policy.rdp]\nproperties = \"audioqualitymode:i:2\"",
    );
    assert_eq!(q, Quality::High);
    assert!(d.contains("audioqualitymode:i:2"), "{d}");
    // Windows 365 has no host pool properties: nothing names one.
    let (_, d, trail) = by(
        "windows365",
        "[policy.session_host]\nAllowedAudioQualityMode = 3",
    );
    assert!(
        !d.contains("RDP property") && !trail.contains("RDP property"),
        "{d}\n{trail}"
    );
    assert!(trail.contains("no host pool RDP properties"), "{trail}");
}

#[test]
fn group_policy_display_names_mean_the_registry_values() {
    let named = scenario(
        "avd",
        "[policy.session_host]\n\"Allow audio and video playback redirection\" = \"Disabled\"\n\
         \"Allow audio recording redirection\" = \"Enabled\"\n\
         \"Limit audio playback quality\" = \"Medium\"\n\
         \"Let Windows apps access the microphone\" = \"Force Deny\"\n\
         [policy.rdp]\nproperties = \"audiocapturemode:i:1;audioqualitymode:i:2\"",
    );
    let e = expect(&named);
    assert_eq!(e.output.value, O::None);
    assert!(
        e.output.decided_by.contains("fDisableCam=1"),
        "{}",
        e.output.decided_by
    );
    // Force Deny governs Windows (packaged) apps, not the probe: the trail says so.
    assert_eq!(e.capture.value, C::Redirected);
    assert!(
        e.capture
            .trail
            .iter()
            .any(|t| t.contains("not governed by it")),
        "{:?}",
        e.capture.trail
    );
    assert_eq!(e.quality.value, Quality::Medium);
    let unset = scenario(
        "avd",
        "[policy.session_host]\n\"Allow audio and video playback redirection\" = \"Not configured\"",
    );
    assert_eq!(expect(&unset).output.value, O::Client);
}

#[test]
fn a_setting_given_by_both_names_is_refused() {
    let text = format!(
        "name = \"t\"\nproduct = \"avd\"\n[policy.session_host]\nfDisableCam = 1\n\
         \"Allow audio and video playback redirection\" = \"Enabled\"\n{PROBES}"
    );
    let e = Scenario::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fDisableCam") && e.contains("keep one"), "{e}");
    let text = format!(
        "name = \"t\"\nproduct = \"avd\"\n[policy.session_host]\n\
         \"Allow audio and video playback redirection\" = \"Off\"\n{PROBES}"
    );
    let e = Scenario::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.toml:4:") && e.contains("\"Not configured\""),
        "{e}"
    );
}

#[test]
fn xrdp_channel_switches_are_the_session_host_layer() {
    let cases = [
        (
            "",
            "audiomode:i:0;audiocapturemode:i:1",
            O::Client,
            C::Redirected,
        ),
        (
            "rdpsnd = false",
            "audiomode:i:0;audiocapturemode:i:1",
            O::None,
            C::Redirected,
        ),
        (
            "drdynvc = false",
            "audiomode:i:0;audiocapturemode:i:1",
            O::Client,
            C::Blocked,
        ),
        (
            "allow_channels = false",
            "audiomode:i:0;audiocapturemode:i:1",
            O::None,
            C::Blocked,
        ),
        ("", "audiomode:i:2", O::None, C::Blocked),
        (
            "",
            "audiomode:i:1;audiocapturemode:i:1",
            O::Session,
            C::Redirected,
        ),
    ];
    for (xrdp, rdp, o, c) in cases {
        let s = scenario(
            "xrdp",
            &format!("[policy.xrdp]\n{xrdp}\n[policy.rdp]\nproperties = \"{rdp}\""),
        );
        let e = expect(&s);
        assert_eq!((e.output.value, e.capture.value), (o, c), "{xrdp} / {rdp}");
        if !xrdp.is_empty() && o == O::None {
            assert!(
                e.output.decided_by.contains("xrdp.ini"),
                "{}",
                e.output.decided_by
            );
        }
    }
    let text = format!(
        "name = \"t\"\nproduct = \"xrdp\"\n[policy.session_host]\nfDisableCam = 1\n{PROBES}"
    );
    let e = Scenario::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[policy.xrdp]"), "{e}");
    let text = format!("name = \"t\"\nproduct = \"avd\"\n[policy.xrdp]\nrdpsnd = false\n{PROBES}");
    let e = Scenario::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("policy.xrdp"), "{e}");
}

#[test]
fn rdp_file_errors_name_the_file_and_line_and_odd_encodings_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.rdp"),
        "full address:s:host\r\naudiomode:i:7\r\n",
    )
    .unwrap();
    // UTF-16 big-endian without a byte order mark.
    let be: Vec<u8> = "audiomode:i:2\r\n"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    std::fs::write(dir.path().join("be.rdp"), be).unwrap();
    std::fs::write(dir.path().join("bin.rdp"), [0u8, 0, 1, 2, 0, 0, 7]).unwrap();
    let load = |file: &str| {
        let text =
            format!("name = \"t\"\nproduct = \"rds\"\n[policy.rdp]\nfile = \"{file}\"\n{PROBES}");
        Scenario::parse(&text, &dir.path().join("s.toml")).map(|s| expect(&s))
    };
    let e = load("bad.rdp").unwrap_err().to_string();
    assert!(
        e.contains("bad.rdp:2:") && e.contains("audiomode:i:7") && e.contains("2 (do not play)"),
        "{e}"
    );
    assert_eq!(load("be.rdp").unwrap().output.value, O::None);
    let e = load("bin.rdp").unwrap_err().to_string();
    assert!(
        e.contains("bin.rdp") && e.contains("neither UTF-8 nor UTF-16") && !e.contains('\0'),
        "{e}"
    );
}

#[test]
fn the_per_app_microphone_lists_are_reported_by_name_and_do_not_deny_the_probe() {
    let s = scenario(
        "avd",
        "[policy.rdp]\nproperties = \"audiocapturemode:i:1\"\n[policy.session_host]\n\
         LetAppsAccessMicrophone = 2\n\
         LetAppsAccessMicrophone_ForceDenyTheseApps = [\"Contoso.Recorder_1\", \"Fabrikam.Notes_2\"]\n\
         LetAppsAccessMicrophone_ForceAllowTheseApps = [\"Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe\"]",
    );
    let e = expect(&s);
    assert_eq!(e.capture.value, CaptureExpect::Redirected);
    let trail = e.capture.trail.join("\n");
    assert!(
        trail.contains(
            "LetAppsAccessMicrophone_ForceDenyTheseApps: Windows (packaged) apps denied the \
             microphone: Contoso.Recorder_1, Fabrikam.Notes_2"
        ),
        "{trail}"
    );
    assert!(
        trail.contains("always allowed the microphone: Microsoft.WindowsSoundRecorder"),
        "{trail}"
    );
}

#[test]
fn the_imported_gpo_brings_its_force_allow_list_into_the_trail() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/import/avd-imported-gpo-blocks-playback.toml");
    let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let trail = expect(&s).capture.trail.join("\n");
    assert!(
        trail.contains("ForceAllowTheseApps") && trail.contains("Contoso.Dictation_1234"),
        "{trail}"
    );
}

#[test]
fn a_layer_taken_from_the_host_is_said_to_be_unknown_until_the_run_connects() {
    let s = scenario("avd", "[policy.session_host]\nfrom_host = true");
    let e = expect(&s);
    for trail in [&e.output.trail, &e.capture.trail] {
        assert!(
            trail[0].contains("read from the host when the run connects"),
            "{trail:?}"
        );
    }
}
