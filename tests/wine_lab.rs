//! The Windows probe (`earshot-probe.exe`, x86_64-pc-windows-gnu) under Wine 8 as the
//! session host's probe in the tunnel lab. Its audio is WASAPI through winepulse to the
//! session host's PulseAudio; its sockets are in the session host's namespace (the prefix's
//! wineserver runs there). `earshot run` drives it and the native client probe through the
//! lab states and must give the expected verdicts; the exe's own device commands and its
//! Ctrl-C shutdown run under Wine too.
//!
//! The exe is `make windows`'s (which `make test` runs first), or `$EARSHOT_PROBE_EXE`:
//! without it, or without Wine, these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use earshot_e2e::{finish_with_report, harness_bin, repo_root, Finished, Host, Lab, Running};

const TOKEN: &str = "wine-e2e-token-0123456789abcdef";
const RUN_LIMIT: Duration = Duration::from_secs(90);
/// A Windows command under Wine: a second or two to start, then the command's own time.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

fn scenario(name: &str) -> PathBuf {
    repo_root()
        .join("scenarios/lab")
        .join(format!("{name}.toml"))
}

/// `earshot run` in the client namespace over `files`; its result and JSON report.
fn run(lab: &Lab, files: &[PathBuf], out: &Path) -> (Finished, serde_json::Value) {
    let json = out.join("report.json");
    let mut cmd = lab.in_netns(Host::Client, &harness_bin()).unwrap();
    cmd.arg("run")
        .args(files)
        .arg("--json")
        .arg(&json)
        .arg("--evidence")
        .arg(out.join("evidence"))
        .env("EARSHOT_LAB_TOKEN", TOKEN)
        .env("NO_COLOR", "1");
    finish_with_report(Running::start(cmd), RUN_LIMIT, &json)
}

/// Each scenario's name and its checks' verdicts, in order.
fn verdicts(report: &serde_json::Value) -> Vec<Vec<String>> {
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| {
            s["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .map(|c| c["verdict"].as_str().expect("verdict").to_string())
                .collect()
        })
        .collect()
}

/// One lab state with the Windows probe as the session host's: the scenarios and the
/// verdicts they must give. Returns the report.
fn wine_matrix_row(lab_args: &[&str], cases: &[(&str, &[&str])]) -> serde_json::Value {
    let lab = Lab::up(lab_args).unwrap();
    // The prefix's Windows looks like a session host's remote session (GlassSessionId=0;
    // SM_REMOTESESSION is always 0 under Wine).
    let wine = lab.wine(Host::Session, &["--remote-session"]).unwrap();
    let _local = lab.serve(Host::Client, TOKEN).unwrap();
    let remote = wine.serve(TOKEN).unwrap();
    let out = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = cases.iter().map(|(n, _)| scenario(n)).collect();
    let (r, report) = run(&lab, &files, out.path());
    let got = verdicts(&report);
    // A wanted verdict may name alternatives: `pass|inconclusive`.
    let matches = got.len() == cases.len()
        && got.iter().zip(cases).all(|(g, (_, w))| {
            g.len() == w.len() && g.iter().zip(*w).all(|(g, w)| w.split('|').any(|w| w == g))
        });
    assert!(
        matches,
        "{lab_args:?}: got {got:?}, want {cases:?}\n{}\n{}",
        r.stdout, r.stderr
    );
    let any_fail = cases.iter().any(|(_, v)| v.contains(&"fail"));
    let any_inconclusive = got.iter().flatten().any(|v| v == "inconclusive");
    let code = if any_fail {
        1
    } else if any_inconclusive {
        2
    } else {
        0
    };
    assert_eq!(r.code, Some(code), "{r:?}");
    // The session host's probe is the Windows one, and it knows it is in a remote session.
    for s in report["scenarios"].as_array().unwrap() {
        let remote_probe = s["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["role"] == "remote")
            .unwrap_or_else(|| panic!("no remote probe in {s:#}"));
        let os = remote_probe["os"].as_str().unwrap();
        assert!(os.starts_with("windows"), "remote probe os {os}");
        let session = remote_probe["remote_session"].as_str().unwrap();
        assert!(
            session.starts_with("remote, served by Remote Desktop Services (")
                && session.contains("WTSClientProtocolType="),
            "remote_session {session}"
        );
    }
    // Ctrl-C (SIGINT to the Wine process) ends the Windows probe cleanly.
    let stopped = interrupt(remote);
    assert_eq!(stopped.code, Some(0), "{stopped:?}");
    assert!(stopped.stderr.contains("Ctrl-C"), "{}", stopped.stderr);
    report
}

/// Sends SIGINT to a running Windows program and waits (10 s at most) for it to exit.
fn interrupt(running: Running) -> Finished {
    let pid = running.pid().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -INT {pid}");
    let limit = running.elapsed() + Duration::from_secs(10);
    running.finish(limit)
}

#[test]
fn the_windows_probe_as_the_session_hosts_probe_on_a_redirected_lab() {
    wine_matrix_row(
        &["--output", "client", "--capture", "redirected"],
        &[
            ("avd-microphone-enabled", &["pass", "pass"]),
            ("rollout-not-in-effect", &["fail", "fail"]),
        ],
    );
}

#[test]
fn the_windows_probe_as_the_session_hosts_probe_on_a_blocked_lab() {
    // The session plays on its own speakers and has no microphone redirected. PulseAudio
    // then makes the monitor of those speakers the session's default input. The native
    // probe refuses a monitor as a microphone (no device: pass); Wine's WASAPI does not
    // mark it, so the capture check listens to the session's own output, and hears the
    // output check's signature whenever the two checks overlap: sound with no trace of its
    // own signature, which proves no silence (inconclusive), never a pass on it nor a fail.
    wine_matrix_row(
        &["--output", "session", "--capture", "none"],
        &[
            (
                "avd-play-on-remote-computer",
                &["pass", "pass|inconclusive"],
            ),
            // Expected on the client, but the session plays it itself.
            ("avd-defaults", &["fail", "pass|inconclusive"]),
        ],
    );
}

/// A short `earshot-probe.exe` command (`info`, `devices`) under Wine. Once in some
/// hundred runs Wine 8's own process ends by a signal after the program printed its whole
/// output and returned (seen once on `devices`, stderr empty): that one is run again, and
/// said; a second such end, or any other failure, stands.
fn short_command(wine: &earshot_e2e::wine::WineHost<'_>, args: &[&str]) -> Finished {
    let r = Running::start(wine.probe(args)).finish(COMMAND_LIMIT);
    if r.code.is_none() && r.signal.is_some() {
        eprintln!(
            "earshot-probe.exe {} ended by signal {:?} under Wine after {:?} (stdout {} bytes); \
             running it again",
            args.join(" "),
            r.signal,
            r.elapsed,
            r.stdout.len()
        );
        return Running::start(wine.probe(args)).finish(COMMAND_LIMIT);
    }
    r
}

#[test]
fn the_windows_probe_lists_plays_and_listens_through_winepulse() {
    let lab = Lab::up(&["--output", "client", "--capture", "redirected"]).unwrap();
    let wine = lab.wine(Host::Session, &[]).unwrap();

    // A prefix not marked as a remote session is a console session, and says why.
    let r = short_command(&wine, &["info"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let session = &r.json()["session"];
    assert_eq!(session["kind"], "local", "{session}");
    let evidence = session["evidence"].to_string();
    assert!(
        evidence.contains("SM_REMOTESESSION=0") && evidence.contains("WTSClientProtocolType"),
        "{session}"
    );

    // The catalogue: WASAPI endpoints, each direction with a default, and the session's
    // PulseAudio devices among them (the tunnels to the client).
    let r = short_command(&wine, &["--host", "wasapi", "devices", "--json"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let devices = r.json();
    let devices = devices.as_array().expect("a JSON array");
    for d in devices {
        assert!(d["id"].as_str().unwrap().starts_with("wasapi:"), "{d}");
    }
    for direction in ["output", "input"] {
        assert!(
            devices
                .iter()
                .any(|d| d["direction"] == direction && d["is_default"] == true),
            "no default {direction}: {devices:#?}"
        );
    }
    let names: Vec<&str> = devices.iter().filter_map(|d| d["name"].as_str()).collect();
    assert!(
        names.iter().any(|n| n.contains("/speakers")) && names.iter().any(|n| n.contains("/mic")),
        "the session's tunnels are not listed: {names:?}"
    );

    // Output: the Windows probe plays on the session's default output; the client's
    // speakers hear it.
    let mut listen = lab.probe(Host::Client);
    listen.args([
        "listen",
        "--device",
        "speakers.monitor",
        "--seed",
        "4242",
        "--direction",
        "output",
        "--timeout",
        "15",
        "--json",
    ]);
    let mut listener = Running::start(listen);
    assert!(
        listener.wait_for_stderr("listening on", Duration::from_secs(10)),
        "the client's listener did not start"
    );
    let played = Running::start(wine.probe(&[
        "--host",
        "wasapi",
        "play",
        "--device",
        "default",
        "--seed",
        "4242",
        "--direction",
        "output",
    ]))
    .finish(COMMAND_LIMIT);
    assert_eq!(played.code, Some(0), "{played:?}");
    let heard = listener.finish(Duration::from_secs(20));
    assert_eq!(heard.code, Some(0), "{heard:?}");
    assert_eq!(heard.json()["outcome"], "detected", "{heard:?}");

    // Capture: the client plays into its microphone feed until the Windows probe, listening
    // on the session's default input (the redirected microphone), hears it.
    let mut listener = Running::start(wine.probe(&[
        "--host",
        "wasapi",
        "listen",
        "--device",
        "default",
        "--seed",
        "777",
        "--direction",
        "capture",
        "--timeout",
        "15",
        "--json",
    ]));
    assert!(
        listener.wait_for_stderr("listening on", COMMAND_LIMIT),
        "the Windows listener did not start"
    );
    let until = std::time::Instant::now() + Duration::from_secs(12);
    while std::time::Instant::now() < until {
        let mut play = lab.probe(Host::Client);
        play.args([
            "play",
            "--device",
            "micfeed",
            "--seed",
            "777",
            "--direction",
            "capture",
        ]);
        let p = Running::start(play).finish(COMMAND_LIMIT);
        assert_eq!(p.code, Some(0), "{p:?}");
        if listener.has_exited() {
            break;
        }
    }
    let heard = listener.finish(Duration::from_secs(20));
    assert_eq!(heard.code, Some(0), "{heard:?}");
    let heard = heard.json();
    assert_eq!(heard["outcome"], "detected", "{heard:#}");

    // A listen with nothing played is silent (exit 1), not detected.
    let silent = Running::start(wine.probe(&[
        "--host",
        "wasapi",
        "listen",
        "--device",
        "default",
        "--seed",
        "778",
        "--direction",
        "capture",
        "--timeout",
        "2",
        "--json",
    ]))
    .finish(COMMAND_LIMIT);
    assert_eq!(silent.code, Some(1), "{silent:?}");
    assert_eq!(silent.json()["outcome"], "silent", "{silent:?}");
}
