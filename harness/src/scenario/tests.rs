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
