//! Scenario parsing and validation.

use super::*;

use super::test_support::PROBES;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, Path::new("s.toml"))
}

#[test]
fn a_minimal_scenario_parses_with_defaults() {
    let s = parse(&format!("name = \"x\"\nproduct = \"avd\"\n{PROBES}")).unwrap();
    assert_eq!(s.checks, vec![Check::Output, Check::Capture]);
    assert_eq!(s.timeouts.listen, Duration::from_secs(5));
    assert_eq!(s.probes.local.output_loopback, "loopback:default");
}

#[test]
fn an_unknown_key_names_the_key_and_line() {
    let e = parse(&format!(
        "name = \"x\"\nproduct = \"avd\"\n[policy.session_host]\nfDisableCamera = 1\n{PROBES}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("s.toml:4:"), "{e}");
    assert!(e.contains("fDisableCamera"), "{e}");
    assert!(
        e.contains("fDisableCam"),
        "the message lists the known keys: {e}"
    );
}

#[test]
fn an_out_of_range_value_names_the_line_and_the_allowed_values() {
    let e = parse(&format!(
        "name = \"x\"\nproduct = \"avd\"\n[policy.session_host]\nfDisableCam = 2\n{PROBES}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("s.toml:4:"), "{e}");
    assert!(e.contains("expected 0 (allowed) or 1 (blocked)"), "{e}");
}

#[test]
fn a_bad_product_lists_the_products() {
    let e = parse(&format!("name = \"x\"\nproduct = \"citrix\"\n{PROBES}"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("s.toml:2:"), "{e}");
    assert!(e.contains("avd") && e.contains("windows365"), "{e}");
}

#[test]
fn host_pool_properties_on_windows_365_are_refused() {
    let e = parse(&format!(
        "name = \"x\"\nproduct = \"windows365\"\n[policy.rdp]\nproperties = \"audiomode:i:0\"\n{PROBES}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("policy.rdp") && e.contains("Windows 365"), "{e}");
}

#[test]
fn a_probe_without_a_token_is_refused() {
    let text = "name = \"x\"\nproduct = \"avd\"\nchecks=[\"output\"]\n[probes.local]\naddress = \"a:1\"\n[probes.remote]\naddress = \"b:2\"\ntoken_file = \"t\"\n";
    let e = parse(text).unwrap_err().to_string();
    assert!(e.contains("probes.local") && e.contains("token"), "{e}");
}

#[test]
fn capture_without_a_mic_feed_is_refused() {
    let text = "name = \"x\"\nproduct = \"avd\"\n[probes.local]\naddress = \"a:1\"\ntoken_file = \"t\"\n[probes.remote]\naddress = \"b:2\"\ntoken_file = \"t\"\n";
    let e = parse(text).unwrap_err().to_string();
    assert!(e.contains("probes.local.mic_feed"), "{e}");
}

#[test]
fn a_bad_duration_names_the_key() {
    let e = parse(&format!(
        "name = \"x\"\nproduct = \"avd\"\n[timeouts]\nlisten = \"soon\"\n{PROBES}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("s.toml:4:"), "{e}");
}

#[test]
fn a_client_rig_key_on_the_sessions_probe_is_refused_by_name() {
    for key in ["mic_feed", "output_loopback"] {
        let text = format!("name = \"x\"\nproduct = \"avd\"\n{PROBES}").replace(
            "[probes.remote]\n",
            &format!("[probes.remote]\n{key} = \"cable\"\n"),
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(&format!("probes.remote.{key}")) && e.contains("move it to [probes.local]"),
            "{e}"
        );
    }
}

#[test]
fn a_policy_only_draft_is_enough_for_expect_but_not_for_a_run() {
    let text = "name = \"draft\"\nproduct = \"avd\"\n[policy.session_host]\nfDisableCam = 1\n";
    let s = Scenario::parse_for(text, Path::new("s.toml"), Purpose::Expect).unwrap();
    assert_eq!(s.policy.session_host.f_disable_cam, Some(Flag(1)));
    let e = parse(text).unwrap_err().to_string();
    assert!(e.contains("probes.local"), "{e}");
}

#[test]
fn a_value_of_the_wrong_form_says_what_to_write() {
    for (line, words) in [
        ("[timeouts]\nlisten = 5", "e.g. \"5s\", \"800ms\""),
        (
            "[policy.session_host]\nfDisableCam = \"1\"",
            "without quotes, e.g. `fDisableCam = 1`",
        ),
    ] {
        let e = parse(&format!(
            "name = \"x\"\nproduct = \"avd\"\n{line}\n{PROBES}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains(words), "{e}");
    }
    let e = parse(&format!("name = \"x\"\nproduct = \"AVD\"\n{PROBES}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("values are written in lowercase: `avd`"), "{e}");
    // A very long line is cut in the message.
    let long = format!("name = \"{}\"\nproduct = 7\n{PROBES}", "x".repeat(10));
    let e = parse(&long.replace("product = 7", &format!("product = \"{}\"", "y".repeat(500))))
        .unwrap_err()
        .to_string();
    assert!(e.len() < 400, "{} characters: {e}", e.len());
}

#[test]
fn six_mistakes_are_six_errors_of_one_run() {
    let text = "name = \"six\"\nprodcut = \"avd\"\nproduct = \"avd\"\n\
        [policy.session_host]\nfDisableCam = \"1\"\n\
        [policy.rdp]\nproperties = \"audiomod:i:0;audiocapturemode:i:7\"\n\
        [probes.local]\nadress = \"127.0.0.1:7701\"\naddress = \"127.0.0.1:7701\"\n\
        token_env = \"X\"\nmic_feed = \"m\"\n\
        [probes.remote]\naddress = \"127.0.0.1:7702\"\ntoken_env = \"X\"\n\
        [timeouts]\nlisten = 5\n";
    let e = parse(text).unwrap_err();
    let ScenarioError::Several { errors, .. } = &e else {
        panic!("one error only: {e}");
    };
    assert_eq!(errors.len(), 6, "{e}");
    let all = e.to_string();
    for (line, words) in [
        ("s.toml:2:1:", "unknown field `prodcut`"),
        ("s.toml:5:", "fDisableCam"),
        ("s.toml:9:1:", "unknown field `adress`"),
        ("s.toml:17:", "expected a duration"),
        ("s.toml: policy.rdp.properties", "did you mean `audiomode`"),
        ("s.toml: policy.rdp.properties", "audiocapturemode:i:7"),
    ] {
        assert!(
            all.lines()
                .any(|l| l.starts_with(line) && l.contains(words)),
            "{line} {words}: {all}"
        );
    }
    // Past the TOML stage, every key that does not fit is said at once too.
    let text = "name = \" \"\nproduct = \"windows365\"\nchecks = [\"output\", \"output\"]\n\
        [policy.rdp]\nproperties = \"audiomode:i:0\"\n\
        [timeouts]\nlisten = \"0s\"\n\
        [probes.local]\naddress = \"127.0.0.1:7701\"\ntoken_env = \"X\"\n\
        [probes.remote]\naddress = \"127.0.0.1\"\ntoken_env = \"X\"\nmic_feed = \"m\"\n";
    let e = parse(text).unwrap_err();
    let ScenarioError::Several { errors, .. } = &e else {
        panic!("one error only: {e}");
    };
    let all = e.to_string();
    for key in [
        "s.toml: name:",
        "s.toml: checks: `output` is listed twice",
        "s.toml: policy.rdp:",
        "s.toml: timeouts.listen:",
        "s.toml: probes.remote.mic_feed:",
        "s.toml: probes.remote.address:",
    ] {
        assert!(all.lines().any(|l| l.starts_with(key)), "{key}: {all}");
    }
    assert_eq!(errors.len(), 6, "{all}");
    // A missing key that only the setting aside of a wrong line caused is not reported.
    let e = parse(&format!("name = 5\nproduct = \"avd\"\n{PROBES}"))
        .unwrap_err()
        .to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn budgets_are_read_and_a_bad_one_is_named() {
    let ok = format!(
        "name = \"b\"\nproduct = \"avd\"\n[budgets]\noutput_latency = \"400ms\"\n\
         capture_latency = \"1s\"\nmin_level_db = -20.0\n{PROBES}"
    );
    let s = Scenario::parse(&ok, Path::new("b.toml")).unwrap();
    assert_eq!(
        s.budgets.output_latency,
        Some(std::time::Duration::from_millis(400))
    );
    assert_eq!(s.budgets.min_level_db, Some(-20.0));
    let bad = format!(
        "name = \"b\"\nproduct = \"avd\"\n[budgets]\noutput_latency = \"0s\"\n\
         min_level_db = 6.0\n{PROBES}"
    );
    let e = Scenario::parse(&bad, Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("budgets.output_latency") && e.contains("above 0 and at most 60s"),
        "{e}"
    );
    assert!(
        e.contains("budgets.min_level_db") && e.contains("from -90.0 to 0.0"),
        "{e}"
    );
    let typo = format!("name = \"b\"\nproduct = \"avd\"\n[budgets]\nmin_level = -20.0\n{PROBES}");
    let e = Scenario::parse(&typo, Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_level"), "{e}");
}
