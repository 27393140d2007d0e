//! One row per rule of the audio redirection documentation (DESIGN.md, "Policy model").

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
        rule: "Privacy force deny: redirected, but apps are denied the microphone",
        product: "windows365",
        policy: "[policy.session_host]\nLetAppsAccessMicrophone = 2",
        output: O::Client,
        output_by: "default",
        capture: C::RedirectedAppsDenied,
        capture_by: "LetAppsAccessMicrophone=2",
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
        let e =
            expect(&scenario(r.product, r.policy)).unwrap_or_else(|e| panic!("{}: {e}", r.rule));
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
    ];
    for (host, rdp, want) in cases {
        let rdp = if rdp.is_empty() {
            String::new()
        } else {
            format!("[policy.rdp]\nproperties = \"{rdp}\"")
        };
        let s = scenario("avd", &format!("[policy.session_host]\n{host}\n{rdp}"));
        assert_eq!(expect(&s).unwrap().quality.value, want, "{host} / {rdp}");
    }
}

#[test]
fn an_explicit_expectation_overrides_the_engine() {
    let s = scenario(
        "avd",
        "[expect]\noutput = \"none\"\ncapture = \"redirected\"\nreason = \"pilot ring\"",
    );
    let e = expect(&s).unwrap();
    assert_eq!(e.output.value, O::None);
    assert_eq!(e.capture.value, C::Redirected);
    assert!(e.output.decided_by.contains("pilot ring"));
}

#[test]
fn unknown_properties_are_kept_with_a_warning() {
    let p =
        parse_rdp_properties("audiomode:i:0;drivestoredirect:s:*;redirectclipboard:i:1").unwrap();
    assert_eq!(p.values.len(), 3);
    assert_eq!(p.warnings.len(), 2);
    assert!(p.warnings[0].contains("drivestoredirect"));
    let s = scenario(
        "avd",
        "[policy.rdp]\nproperties = \"camerastoredirect:s:*\"",
    );
    assert_eq!(expect(&s).unwrap().warnings.len(), 1);
}

#[test]
fn malformed_properties_are_errors_naming_the_property() {
    for (text, needle) in [
        ("audiomode:i", "expected `name:type:value`"),
        ("audiomode:i:x", "not an integer"),
        ("audiomode:i:3", "one of 0, 1, 2"),
        ("audiocapturemode:s:1", "type `i`"),
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
        assert_eq!(expect(&s).unwrap().output.value, want, "{file}");
    }
    let text =
        format!("name = \"t\"\nproduct = \"rds\"\n[policy.rdp]\nfile = \"missing.rdp\"\n{PROBES}");
    let s = Scenario::parse(&text, &dir.path().join("s.toml")).unwrap();
    assert!(expect(&s).unwrap_err().to_string().contains("missing.rdp"));
}
