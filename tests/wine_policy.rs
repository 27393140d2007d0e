//! The session host's real policy, end to end: the Windows probe under Wine as the session
//! host's probe, its registry set with Wine's `reg`, and the harness's causes. What the
//! scenario says was rolled out, what the host has and what was heard, side by side:
//!
//! - the policy missing from the host: the GPO or Intune profile did not apply;
//! - the policy written after the host's last boot: restart the host;
//! - the policy in effect: the pass states what the host has;
//! - `from_host = true`: the expectation follows the host's registry.
//!
//! Wine's boot time is the machine's (GetTickCount64), so a value written now is always
//! after the last boot; the cause for a policy older than the boot is covered by the
//! harness's tests with a reported boot time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use earshot_e2e::wine::WineHost;
use earshot_e2e::{finish_with_report, harness_bin, repo_root, Finished, Host, Lab, Running};

const TOKEN: &str = "wine-policy-token-0123456789abcdef";
const RUN_LIMIT: Duration = Duration::from_secs(90);
const POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services";

fn scenario(name: &str) -> PathBuf {
    repo_root()
        .join("scenarios/wine")
        .join(format!("{name}.toml"))
}

/// `earshot run` in the client namespace; its result and JSON report.
fn run(lab: &Lab, file: &Path, out: &Path) -> (Finished, serde_json::Value) {
    let json = out.join("report.json");
    let mut cmd = lab.in_netns(Host::Client, &harness_bin()).unwrap();
    cmd.arg("run")
        .arg(file)
        .arg("--json")
        .arg(&json)
        .env("EARSHOT_LAB_TOKEN", TOKEN)
        .env("NO_COLOR", "1");
    finish_with_report(Running::start(cmd), RUN_LIMIT, &json)
}

/// The output check of the report's only scenario.
fn output_check(report: &serde_json::Value) -> &serde_json::Value {
    &report["scenarios"][0]["checks"][0]
}

/// `reg ARGS` under Wine in the session host.
fn reg(wine: &WineHost, args: &[&str]) {
    let r = Running::start(wine.command("reg", args)).finish(Duration::from_secs(30));
    assert_eq!(r.code, Some(0), "reg {args:?}: {r:?}");
}

fn set_policy(wine: &WineHost, name: &str, value: &str) {
    reg(
        wine,
        &[
            "add",
            POLICY_KEY,
            "/v",
            name,
            "/t",
            "REG_DWORD",
            "/d",
            value,
            "/f",
        ],
    );
}

#[test]
fn a_redirecting_host_says_whether_the_policy_is_missing_or_waits_for_a_restart() {
    // The lab redirects playback: a rollout that blocks it is not in effect.
    let lab = Lab::up(&["--output", "client", "--capture", "none"]).unwrap();
    let wine = lab.wine(Host::Session, &["--remote-session"]).unwrap();
    let _local = lab.serve(Host::Client, TOKEN).unwrap();
    let _remote = wine.serve(TOKEN).unwrap();
    let file = scenario("policy-blocks-playback");

    // Nothing on the host: the rollout did not apply.
    let out = tempfile::tempdir().unwrap();
    let (r, report) = run(&lab, &file, out.path());
    let check = output_check(&report);
    assert_eq!(check["verdict"], "fail", "{r:?}");
    let cause = check["cause"].as_str().unwrap();
    assert!(
        cause.contains("does not have the policy the scenario describes"),
        "{cause}"
    );
    assert!(cause.contains("did not apply"), "{cause}");
    let fact = &check["host"]["facts"][0];
    assert_eq!(fact["setting"], "fDisableCam", "{check:#}");
    assert_eq!(fact["rolled_out"], 1, "{check:#}");
    assert!(fact["host_value"].is_null(), "{check:#}");

    // Written now, after the host's last boot: restart.
    set_policy(&wine, "fDisableCam", "1");
    let out = tempfile::tempdir().unwrap();
    let (r, report) = run(&lab, &file, out.path());
    let check = output_check(&report);
    assert_eq!(check["verdict"], "fail", "{r:?}");
    let cause = check["cause"].as_str().unwrap();
    assert!(
        cause.contains("written after its last boot") && cause.contains("restart the host"),
        "{cause}"
    );
    let fact = &check["host"]["facts"][0];
    assert_eq!(fact["host_value"], 1, "{check:#}");
    assert_eq!(fact["written_after_boot"], true, "{check:#}");
    // The probe summary carries the host's values and boot time too.
    let remote = &report["scenarios"][0]["probes"][1];
    let settings = remote["host_settings"].to_string();
    assert!(settings.contains("booted "), "{settings}");
    assert!(settings.contains("fDisableCam = 1"), "{settings}");
    // JUnit is not asked for here; the harness's tests cover its properties.
    assert_eq!(r.code, Some(1), "{r:?}");
}

#[test]
fn a_blocking_host_with_the_policy_in_effect_passes_and_from_host_follows_it() {
    // The session plays to its own device; nothing reaches the client.
    let lab = Lab::up(&["--output", "session", "--capture", "none"]).unwrap();
    let wine = lab.wine(Host::Session, &["--remote-session"]).unwrap();
    let _local = lab.serve(Host::Client, TOKEN).unwrap();
    let _remote = wine.serve(TOKEN).unwrap();
    set_policy(&wine, "fDisableCam", "1");

    let out = tempfile::tempdir().unwrap();
    let (r, report) = run(&lab, &scenario("policy-blocks-playback"), out.path());
    let check = output_check(&report);
    assert_eq!(check["verdict"], "pass", "{r:?}");
    let cause = check["cause"].as_str().unwrap();
    assert!(
        cause.contains("the host has fDisableCam=1") && cause.contains("as the scenario describes"),
        "{cause}"
    );
    assert_eq!(r.code, Some(0), "{r:?}");

    // The layer taken from the host: the expectation is the host's fDisableCam=1.
    let out = tempfile::tempdir().unwrap();
    let (r, report) = run(&lab, &scenario("policy-from-host"), out.path());
    let s = &report["scenarios"][0];
    assert_eq!(
        s["expectation"]["output"]["decided_by"], "session host policy fDisableCam=1",
        "{s:#}"
    );
    assert_eq!(output_check(&report)["verdict"], "pass", "{r:?}");
    assert!(
        s["warnings"]
            .to_string()
            .contains("taken from the host: fDisableCam=1"),
        "{s:#}"
    );
    assert_eq!(r.code, Some(0), "{r:?}");
}
