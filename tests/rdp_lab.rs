//! The harness end to end on a real RDP stack (lab/rdp: xrdp 0.9 + a PipeWire session
//! with the xrdp module, xfreerdp 2 on Xvfb, RDP between two namespaces): the lab is
//! brought to each state of scenarios/rdp/ by the scenario's own policy layers (the .rdp
//! file and xrdp.ini), a real probe runs on each host, `earshot run` gives each verdict,
//! and the remote probe's `info` reports the xrdp.ini switches in force.
//!
//! Cost: one bring-up (about 4-6 s); cells that only change the .rdp file reconnect the
//! client (about 1.5 s), cells that change xrdp.ini restart xrdp (about 2 s); the session
//! and its probe live through both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use earshot_e2e::rdp::{RdpHost, RdpLab};
use earshot_e2e::{finish_with_report, harness_bin, repo_root, Finished, Running};
use earshot_probe::proto::auth::Token;
use earshot_probe::proto::client::{Client, ClientConfig};
use earshot_probe::proto::msg::{SessionKind, SessionServer};

const TOKEN: &str = "rdp-e2e-token-0123456789abcdef";
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The matrix: each scenario file, and whether the session's microphone should hear the
/// client's (audin opens on demand there: the harness plays until heard). Every verdict must
/// be `pass`: each file's expectation is what the lab was measured to do. Ordered so the lab
/// restarts xrdp only three times: the six .rdp cells share xrdp.ini. In the last cell xrdp
/// grants no channel and FreeRDP 2 cannot connect at all: the session stays disconnected
/// and both directions are silent in it.
const MATRIX: &[(&str, bool)] = &[
    ("audiomode-0-capture-1", true),
    ("audiomode-0-capture-0", false),
    // Output and quality: xrdp sends 16-bit PCM at 44.1 kHz, the high class.
    ("quality-high", false),
    ("audiomode-1-capture-0", false),
    ("audiomode-1-capture-1", true),
    ("audiomode-2-capture-0", false),
    ("audiomode-2-capture-1", true),
    ("server-rdpsnd-off", true),
    ("server-drdynvc-off", false),
    ("server-channels-off", false),
];

fn scenario(name: &str) -> PathBuf {
    repo_root()
        .join("scenarios/rdp")
        .join(format!("{name}.toml"))
}

/// `earshot run FILE` in the client namespace (the harness sits on the client, as on a real
/// rig), started; its JSON report goes to `out/report.json`.
fn start_run(lab: &RdpLab, file: &Path, out: &Path) -> Running {
    let json = out.join("report.json");
    let _ = std::fs::remove_file(&json);
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!(
        "--net=/run/netns/{}",
        lab.netns(RdpHost::Client).unwrap()
    ))
    .arg(harness_bin())
    .arg("run")
    .arg(file)
    .arg("--json")
    .arg(&json)
    .env("EARSHOT_LAB_TOKEN", TOKEN)
    .env("NO_COLOR", "1");
    Running::start(cmd)
}

/// Waits for a run from [`start_run`] and returns its result and JSON report.
fn finish_run(running: Running, out: &Path) -> (Finished, serde_json::Value) {
    finish_with_report(running, RUN_LIMIT, &out.join("report.json"))
}

/// `earshot run FILE` from start to end.
fn run(lab: &RdpLab, file: &Path, out: &Path) -> (Finished, serde_json::Value) {
    finish_run(start_run(lab, file, out), out)
}

/// The remote probe's `info`, asked over the management network.
fn remote_info(addr: &str) -> earshot_probe::proto::msg::ProbeInfo {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let token = Token::new(TOKEN, "the test").unwrap();
        let client = Client::connect(addr, Some(&token), &ClientConfig::default())
            .await
            .unwrap_or_else(|e| panic!("the remote probe at {addr}: {e}"));
        client.info().await.unwrap()
    })
}

#[test]
fn every_rdp_lab_state_gives_the_measured_verdicts_and_the_probe_reports_xrdp_ini() {
    let _one = RdpLab::lock();
    let lab = RdpLab::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut remote_addr = String::new();
    let mut plays = Vec::new();
    for &(name, on_demand_mic) in MATRIX {
        let file = scenario(name);
        let did = lab.apply(&file).unwrap();
        eprintln!("{}: {did}", name);
        // The probes outlive reconnects and xrdp restarts (the session survives both);
        // start them when they are not running.
        let status = lab.status().unwrap();
        for host in [RdpHost::Client, RdpHost::Session] {
            if status["probes"][host.name()]["alive"] != true {
                let p = lab.probe(host, TOKEN).unwrap();
                if host == RdpHost::Session {
                    remote_addr = p["mgmt_address"].as_str().unwrap().to_string();
                }
            }
        }
        // The remote probe reads the lab's xrdp.ini: what it reports is what the
        // scenario's session host layer set.
        let info = remote_info(&remote_addr);
        // The session knows it is an xrdp session from xrdp's own process serving its
        // display, not only from the variables xrdp sets.
        assert_eq!(
            info.session.kind,
            SessionKind::Remote,
            "{name}: {:?}",
            info.session
        );
        assert_eq!(info.session.server, Some(SessionServer::Xrdp), "{name}");
        assert!(
            info.session
                .evidence
                .iter()
                .any(|e| e.starts_with("xrdp-chansrv (pid ") && e.contains("serves this display")),
            "{name}: {:?}",
            info.session
        );
        let xrdp = info
            .xrdp
            .as_ref()
            .expect("the remote probe reports xrdp settings");
        let knobs = &status["knobs"]["xrdp"];
        assert_eq!(xrdp.rdpsnd, knobs["rdpsnd"].as_bool(), "{}: {xrdp:?}", name);
        assert_eq!(
            xrdp.drdynvc,
            knobs["drdynvc"].as_bool(),
            "{}: {xrdp:?}",
            name
        );
        assert_eq!(
            xrdp.allow_channels,
            knobs["allow_channels"].as_bool(),
            "{}: {xrdp:?}",
            name
        );
        assert_eq!(xrdp.path, status["knobs"]["xrdp_ini"].as_str().unwrap());
        // The session probe holds its input open (--prime-input default) and says so.
        let held = info
            .primed_input
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: the session probe holds no input: {info:?}"));
        assert_eq!(held.device, "default", "{name}: {held:?}");
        assert_eq!(held.error, None, "{name}: {held:?}");

        let (r, report) = run(&lab, &file, out.path());
        let checks = report["scenarios"][0]["checks"].as_array().unwrap();
        let verdict = |name: &str| {
            checks
                .iter()
                .find(|c| c["check"] == name)
                .unwrap_or_else(|| panic!("{}: no {name} check: {report:#}", name))
        };
        for c in checks {
            assert_eq!(
                c["verdict"], "pass",
                "{} {}: {}\n{}",
                name, c["check"], r.stdout, r.stderr
            );
        }
        assert_eq!(r.code, Some(0), "{}: {r:?}", name);
        let output = verdict("output");
        if let Some(q) = checks.iter().find(|c| c["check"] == "quality") {
            let o = &q["observation"];
            assert_eq!(o["class"], "high", "{name}: {q:#}");
            assert_eq!(o["band_edge_hz"].as_f64(), Some(18979.0), "{name}: {q:#}");
            assert!(o["sinad_db"].as_f64().unwrap() > 60.0, "{name}: {q:#}");
            continue;
        }
        let capture = verdict("capture");
        if on_demand_mic {
            let held_ms = info.primed_input.as_ref().and_then(|p| p.open_ms);
            plays.push((
                name,
                held_ms,
                capture["observation"]["plays"].as_u64().unwrap_or(0),
            ));
        }
        // What is heard is heard at its measured level (-9.2 dBFS both ways), and output
        // within a second (measured 110-260 ms). No lower bound: right after a bring-up
        // (output, -579 ms) and while audin opens on demand (capture, -527 ms) the probes
        // have reported onsets before the play started, an artefact of a stream whose
        // first samples arrive late (reported to the lead, issue 9).
        for c in [output, capture] {
            let o = &c["observation"];
            if o["kind"] == "detected" {
                let level = o["level_dbfs"].as_f64().unwrap();
                assert!((-15.0..-5.0).contains(&level), "{}: {c:#}", name);
            }
        }
        if output["observation"]["kind"] == "detected" {
            let latency = output["observation"]["latency_ms"].as_f64().unwrap();
            assert!(latency < 1000.0, "{}: {output:#}", name);
        }
    }
    // The microphone channel opens on demand: the signature is often heard on a later play.
    eprintln!("(cell, session input held open ms, capture heard on play) {plays:?}");

    // Down leaves nothing: no namespace, no process of the lab, no session runtime dir.
    let status = lab.status().unwrap();
    let uid = status["hosts"]["session"]["uid"].as_u64().unwrap();
    let namespaces: Vec<String> = ["client", "session"]
        .iter()
        .map(|h| status["hosts"][h]["netns"].as_str().unwrap().to_string())
        .collect();
    let mut pids: Vec<u64> = Vec::new();
    for host in ["client", "session"] {
        if let Some(p) = status["hosts"][host]["pids"].as_object() {
            pids.extend(p.values().filter_map(|v| v.as_u64()));
        }
        if let Some(p) = status["probes"][host]["pid"].as_u64() {
            pids.push(p);
        }
    }
    lab.down().unwrap();
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    for ns in &namespaces {
        assert!(!netns.contains(ns.as_str()), "{ns} survived down: {netns}");
    }
    assert!(!Path::new(&format!("/run/user/{uid}")).exists());
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'));
        assert!(!running, "process {pid} survived down: {stat}");
    }
}

#[test]
fn a_client_or_server_gone_before_the_check_never_gives_a_false_pass() {
    // The lab redirects output (audiomode 0); then xfreerdp, and in a second round xrdp
    // (the listener and the connection it forked: killing only the listener, as a restart
    // of the daemon does, leaves the connection and its audio running, and output rightly
    // passes), is killed before `earshot run`. The session's sink is still there and plays into a
    // session no client is attached to: the output check must not pass (a fail with
    // `silent`, or inconclusive), and the run must end within its bound.
    let _one = RdpLab::lock();
    let lab = RdpLab::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    let file = scenario("audiomode-0-capture-0");
    for victim in ["xfreerdp", "xrdp"] {
        lab.apply(&file).unwrap();
        lab.probe(RdpHost::Client, TOKEN).unwrap();
        lab.probe(RdpHost::Session, TOKEN).unwrap();
        lab.kill(victim).unwrap();
        let (r, report) = run(&lab, &file, out.path());
        let output = &report["scenarios"][0]["checks"][0];
        assert_eq!(output["check"], "output");
        assert_ne!(output["verdict"], "pass", "{victim} killed: {output:#}");
        assert_ne!(r.code, Some(0), "{victim} killed: {r:?}");
        assert!(
            r.elapsed < Duration::from_secs(20),
            "{victim} killed: {r:?}"
        );
        // The next round's apply reconnects the client.
    }
}

#[test]
fn both_directions_said_blocked_but_redirected_fail_after_a_reconnect_and_once_settled() {
    // The lab redirects both directions (audiomode 0, audiocapturemode 1); the scenario run
    // says both are blocked (audiomode 2, audiocapturemode 0), as after a rollout that did
    // not take. The session probe holds its input open. Right after the client
    // (re)connects, the microphone channel is opening anew; once the connection has stood a
    // few seconds, the probe reports its age (xrdp's socket directory) and the harness
    // shortens the capture's silence window. Output's silence ends as soon as its first
    // play could have been heard. No run may pass either check: the session's sound is
    // heard on the client, the client's microphone in the session.
    let _one = RdpLab::lock();
    let lab = RdpLab::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    lab.apply(&scenario("audiomode-0-capture-1")).unwrap();
    lab.probe(RdpHost::Client, TOKEN).unwrap();
    let session = lab.probe(RdpHost::Session, TOKEN).unwrap();
    let remote_addr = session["mgmt_address"].as_str().unwrap().to_string();
    let said_blocked = scenario("audiomode-2-capture-0");
    for round in ["right after the connection", "on a settled connection"] {
        if round == "on a settled connection" {
            // The channel's opening time has passed on this connection: the probe says so.
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                let info = remote_info(&remote_addr);
                let held = info.primed_input.clone().unwrap();
                if held.connection_ms.is_some_and(|ms| ms > 4000) && held.open_ms.is_some() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the session probe never reported a settled connection: {held:?}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        let (r, report) = run(&lab, &said_blocked, out.path());
        for (i, name) in [(0, "output"), (1, "capture")] {
            let check = &report["scenarios"][0]["checks"][i];
            assert_eq!(check["check"], name, "{report:#}");
            assert_eq!(check["verdict"], "fail", "{round}: {check:#}\n{}", r.stderr);
            assert_eq!(
                check["observation"]["kind"], "detected",
                "{round}: {check:#}"
            );
        }
        assert_eq!(r.code, Some(1), "{round}: {r:?}");
    }
}

#[test]
fn a_client_that_cannot_take_the_servers_rate_hears_half_speed_audio_and_quality_says_so() {
    // FreeRDP given /sound:rate:22050 offers only 22.05 kHz formats; xrdp 0.9 sends its
    // 44.1 kHz PCM anyway, labelled with the client's format, and the client plays it at
    // half speed, an octave low. The signature is not recognised (output is inconclusive,
    // never a pass); the quality check finds its signal at half speed and fails, saying so.
    //
    // The speech check first on a client that takes the server's rate: xrdp's PCM carries
    // speech whole. At half speed, speech is never a pass.
    let _one = RdpLab::lock();
    let lab = RdpLab::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenario("quality-high")).unwrap();
    let speech = out.path().join("speech.toml");
    std::fs::write(
        &speech,
        text.replace(
            "checks = [\"output\", \"quality\"]",
            "checks = [\"output\", \"speech\"]",
        ) + "\n[budgets]\nmin_mos = 3.5\n",
    )
    .unwrap();
    eprintln!("{}", lab.apply(&speech).unwrap());
    lab.probe(RdpHost::Client, TOKEN).unwrap();
    lab.probe(RdpHost::Session, TOKEN).unwrap();
    let (r, report) = run(&lab, &speech, out.path());
    let c = &report["scenarios"][0]["checks"][1];
    assert_eq!(c["check"], "speech", "{report:#}");
    assert_eq!(c["verdict"], "pass", "{c:#}\n{}", r.stderr);
    let mos = c["observation"]["mos_lqo"].as_f64().unwrap();
    assert!(mos > 4.0, "{c:#}");
    eprintln!(
        "speech on xrdp PCM: MOS-LQO {mos:.2}, the check took {:.0} ms",
        c["duration_ms"].as_f64().unwrap()
    );
    let file = out.path().join("quality-only.toml");
    std::fs::write(
        &file,
        text.replace(
            "checks = [\"output\", \"quality\"]",
            "checks = [\"quality\", \"speech\"]",
        ) + "\n[budgets]\nmin_mos = 3.5\n",
    )
    .unwrap();
    eprintln!(
        "{}",
        lab.apply_with(&file, &["--client-sound", "rate:22050"])
            .unwrap()
    );
    lab.probe(RdpHost::Client, TOKEN).unwrap();
    lab.probe(RdpHost::Session, TOKEN).unwrap();
    let (r, report) = run(&lab, &file, out.path());
    let q = &report["scenarios"][0]["checks"][0];
    assert_eq!(q["check"], "quality", "{report:#}");
    assert_eq!(q["verdict"], "fail", "{q:#}\n{}", r.stderr);
    assert_eq!(q["observation"]["speed"].as_f64(), Some(0.5), "{q:#}");
    assert_eq!(q["observation"]["class"], "poor", "{q:#}");
    let cause = q["cause"].as_str().unwrap();
    assert!(cause.contains("0.5× its speed"), "{cause}");
    let sp = &report["scenarios"][0]["checks"][1];
    assert_eq!(sp["check"], "speech", "{report:#}");
    assert_ne!(sp["verdict"], "pass", "{sp:#}");
    eprintln!("speech at half speed: {} ({})", sp["verdict"], sp["cause"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.elapsed < Duration::from_secs(30), "{r:?}");
}

#[test]
fn a_client_killed_mid_check_never_gives_a_false_pass_nor_a_hang() {
    // Both directions redirected (audiomode 0, audiocapturemode 1); xfreerdp is killed
    // half a second into `earshot run`, usually before the session's microphone channel
    // opens (1.5-2 s after the session starts recording). Output may already have been
    // heard (then its pass is the truth); capture may pass only on audio that left the
    // client before the kill, and the run must end within its bound (a second listen of
    // 10 s and the rig's proof).
    let _one = RdpLab::lock();
    let lab = RdpLab::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    let file = scenario("audiomode-0-capture-1");
    lab.apply(&file).unwrap();
    lab.probe(RdpHost::Client, TOKEN).unwrap();
    // Not primed: the channel must still be closed when xfreerdp dies.
    lab.probe_with(RdpHost::Session, TOKEN, &[]).unwrap();
    let running = start_run(&lab, &file, out.path());
    std::thread::sleep(Duration::from_millis(500));
    let killed_unix_ms = earshot_probe::unix_ms();
    lab.kill("xfreerdp").unwrap();
    let (r, report) = finish_run(running, out.path());
    let capture = &report["scenarios"][0]["checks"][1];
    assert_eq!(capture["check"], "capture");
    if capture["verdict"] == "pass" && capture["observation"]["kind"] == "degraded" {
        // Part of this run's signature arrived (its first play was cut by the kill): the
        // path was redirected, and that part can only have left the client before it
        // died. Seen once in a rehearsal: 8 of 16 symbols, the listen ending 4.8 s after
        // the kill.
        assert!(
            capture["observation"]["symbols"].as_u64().unwrap_or(0) > 0,
            "{capture:#}"
        );
    } else if capture["verdict"] == "pass" {
        // A fresh connection sometimes has the channel open at once (seen once in CI:
        // heard after 887 ms). A pass is then the truth only if what was heard left the
        // client before it died: no new audio arrives after the kill, and what was in
        // flight is in the session within 1.5 s.
        let heard_unix_ms =
            capture["started_unix_ms"].as_f64().unwrap() + capture["duration_ms"].as_f64().unwrap();
        assert!(
            heard_unix_ms <= killed_unix_ms + 1500.0,
            "capture passed {:.0} ms after the client was killed: {capture:#}",
            heard_unix_ms - killed_unix_ms
        );
    } else {
        assert_ne!(r.code, Some(0), "{r:?}");
    }
    assert!(r.elapsed < Duration::from_secs(30), "{r:?}");
}

/// The output check's latency on the RDP lab with `delay_ms` added on the RDP link (each
/// way, through the lab's delay proxy): its median over `runs` runs.
fn output_latency_with_delay(lab: &RdpLab, delay_ms: u32, runs: usize) -> f64 {
    let out = tempfile::tempdir().unwrap();
    let delay = delay_ms.to_string();
    eprintln!(
        "{}",
        lab.apply_with(&scenario("audiomode-0-capture-0"), &["--delay-ms", &delay])
            .unwrap()
    );
    lab.probe(RdpHost::Client, TOKEN).unwrap();
    lab.probe(RdpHost::Session, TOKEN).unwrap();
    let mut latencies: Vec<f64> = (0..runs)
        .map(|_| {
            let (r, report) = run(lab, &scenario("audiomode-0-capture-0"), out.path());
            let c = &report["scenarios"][0]["checks"][0];
            assert_eq!(c["verdict"], "pass", "{delay_ms} ms: {c:#}\n{}", r.stderr);
            c["observation"]["latency_ms"]
                .as_f64()
                .unwrap_or_else(|| panic!("{delay_ms} ms: no latency: {c:#}"))
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    eprintln!("output latency with {delay_ms} ms added: {latencies:?} ms");
    assert!(latencies[0] >= 0.0, "{delay_ms} ms: {latencies:?}");
    latencies[runs / 2]
}

#[test]
fn latency_is_never_negative_and_grows_by_the_delay_added_on_the_rdp_link() {
    // Latency runs from before the play's first sample left the player to the delivery
    // that carried it to the listener: with a delay added on the link, it is at least that
    // delay more than without, within a stated error (a delivery and the link's jitter).
    let _one = RdpLab::lock();
    let lab = RdpLab::new().unwrap();
    let base = output_latency_with_delay(&lab, 0, 3);
    assert!((0.0..1000.0).contains(&base), "no delay added: {base} ms");
    for added in [100, 300] {
        let l = output_latency_with_delay(&lab, added, 3);
        let grew = l - base;
        assert!(
            l >= f64::from(added)
                && grew >= f64::from(added) - 50.0
                && grew <= f64::from(added) * 2.0 + 150.0,
            "{added} ms added each way: {l} ms, {grew} ms more than without ({base} ms)"
        );
    }
    // [budgets]: with 300 ms added the output path is over a 450 ms budget, "redirected but
    // late"; without, it is within it; a session sink turned down to 30 % is "redirected
    // but quiet" under a -20 dB level budget.
    let out = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenario("audiomode-0-capture-0")).unwrap();
    let file = out.path().join("budgets.toml");
    std::fs::write(
        &file,
        format!(
            "{}\n[budgets]\noutput_latency = \"450ms\"\nmin_level_db = -20.0\n",
            text.replace(
                "checks = [\"output\", \"capture\"]",
                "checks = [\"output\"]"
            )
        ),
    )
    .unwrap();
    let late = run(&lab, &file, out.path()).1;
    let c = &late["scenarios"][0]["checks"][0];
    assert_eq!(c["verdict"], "fail", "{c:#}");
    assert!(
        c["cause"]
            .as_str()
            .unwrap()
            .contains("redirected but late: heard"),
        "{c:#}"
    );
    eprintln!("{}", lab.apply_with(&file, &["--delay-ms", "0"]).unwrap());
    lab.probe(RdpHost::Client, TOKEN).unwrap();
    lab.probe(RdpHost::Session, TOKEN).unwrap();
    let within = run(&lab, &file, out.path()).1;
    let c = &within["scenarios"][0]["checks"][0];
    assert_eq!(c["verdict"], "pass", "{c:#}");
    let level = c["observation"]["level_dbfs"].as_f64().unwrap();
    assert!(
        (-12.0..=-6.0).contains(&level),
        "a clean path: {level} dBFS, played at -9"
    );
    session_pactl(&lab, &["set-sink-volume", "@DEFAULT_SINK@", "30%"]);
    let quiet = run(&lab, &file, out.path()).1;
    session_pactl(&lab, &["set-sink-volume", "@DEFAULT_SINK@", "100%"]);
    // Muted: nothing arrives, a fail that names the mute among the causes.
    session_pactl(&lab, &["set-sink-mute", "@DEFAULT_SINK@", "1"]);
    let muted = run(&lab, &file, out.path()).1;
    session_pactl(&lab, &["set-sink-mute", "@DEFAULT_SINK@", "0"]);
    let m = &muted["scenarios"][0]["checks"][0];
    eprintln!("muted: {}", m["cause"]);
    assert_eq!(m["verdict"], "fail", "{m:#}");
    assert!(
        m["cause"]
            .as_str()
            .unwrap()
            .starts_with("the session's output `xrdp-sink` is muted"),
        "{m:#}"
    );
    let c = &quiet["scenarios"][0]["checks"][0];
    eprintln!("turned down to 30 %: {}", c["cause"]);
    assert_eq!(c["verdict"], "fail", "{c:#}");
    assert!(
        c["cause"]
            .as_str()
            .unwrap()
            .contains("redirected but quiet: heard"),
        "{c:#}"
    );
    assert!(
        c["cause"].as_str().unwrap().contains("is at 30 % volume"),
        "{c:#}"
    );
}

/// `pactl ARGS` inside the lab's xrdp session, as its user with its environment.
fn session_pactl(lab: &RdpLab, args: &[&str]) {
    let status = lab.status().unwrap();
    let host = &status["hosts"]["session"];
    let uid = host["uid"].to_string();
    let gid = host["gid"].to_string();
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!(
        "--net=/run/netns/{}",
        lab.netns(RdpHost::Session).unwrap()
    ))
    .args([
        "setpriv",
        "--reuid",
        &uid,
        "--regid",
        &gid,
        "--clear-groups",
    ])
    .args(["env", "-i"]);
    for (k, v) in host["env"].as_object().unwrap() {
        cmd.arg(format!("{k}={}", v.as_str().unwrap_or_default()));
    }
    let out = cmd.arg("pactl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "pactl {args:?} in the session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `earshot doctor FILE [ARGS]` in the client namespace, as an admin runs it on the client.
fn doctor(lab: &RdpLab, file: &Path, args: &[&str]) -> Finished {
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!(
        "--net=/run/netns/{}",
        lab.netns(RdpHost::Client).unwrap()
    ))
    .arg(harness_bin())
    .arg("doctor")
    .arg(file)
    .args(args)
    .env("EARSHOT_LAB_TOKEN", TOKEN)
    .env("NO_COLOR", "1");
    Running::start(cmd).finish(RUN_LIMIT)
}

/// The problems of a diagnosis (`doctor --json -`), as (topic, what was found, fix).
fn problems(d: &serde_json::Value) -> Vec<(String, String, String)> {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "problem")
        .map(|f| {
            (
                f["topic"].as_str().unwrap_or_default().to_string(),
                f["said"].as_str().unwrap_or_default().to_string(),
                f["fix"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn doctor_finds_a_good_rig_ready_and_names_each_broken_rig_with_its_fix() {
    let _one = RdpLab::lock();
    let lab = RdpLab::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    let good = scenario("audiomode-0-capture-1");
    eprintln!("{}", lab.apply(&good).unwrap());
    lab.probe(RdpHost::Client, TOKEN).unwrap();
    lab.probe(RdpHost::Session, TOKEN).unwrap();
    let text = std::fs::read_to_string(&good).unwrap();

    // A good rig: ready, every endpoint proven, and the scenario it writes (its policy
    // added by the admin) gives the verdicts the lab was measured to give.
    let rig = out.path().join("rig.toml");
    let r = doctor(&lab, &good, &["--write", rig.to_str().unwrap()]);
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("ready: the rig and both probes"), "{r:?}");
    for said in [
        "rig: output loopback: the local probe played on `default` and heard it on \
         `speakers.monitor`",
        "rig: microphone feed: the local probe played on `micfeed` and its microphone \
         `default` heard it",
        "the session's redirected endpoint; probes.remote.input",
    ] {
        assert!(r.stdout.contains(said), "{said}\n{}", r.stdout);
    }
    assert!(r.elapsed < Duration::from_secs(10), "{r:?}");
    let policy =
        &text[text.find("[policy.xrdp]").unwrap()..text.find("# The lab's probes").unwrap()];
    let written = std::fs::read_to_string(&rig).unwrap();
    assert!(
        !written.lines().any(|l| l.starts_with("[policy")),
        "the policy is left for the admin: {written}"
    );
    std::fs::write(&rig, format!("{written}\n{policy}")).unwrap();
    let (r, report) = run(&lab, &rig, out.path());
    let verdicts: Vec<&str> = report["scenarios"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["pass", "pass"], "{report:#}");
    assert_eq!(r.code, Some(0), "{r:?}");

    // Three broken rigs, each named with its fix.
    // 1. No loopback: output_loopback names the client's microphone, which does not hear
    //    the client's output; the doctor finds the monitor that does.
    // 2. A wrong microphone feed: mic_feed names the speakers; the doctor finds the sink
    //    the microphone hears.
    let broken = [
        (
            "no-loopback",
            text.replace(
                "output_loopback = \"speakers.monitor\"",
                "output_loopback = \"Client-Microphone\"",
            ),
            "rig: output loopback",
            (
                "probes.local.output_loopback",
                "pulseaudio:speakers.monitor",
            ),
        ),
        (
            "wrong-mic-feed",
            text.replace("mic_feed = \"micfeed\"", "mic_feed = \"Client-Speakers\""),
            "rig: microphone feed",
            ("probes.local.mic_feed", "pulseaudio:micfeed"),
        ),
    ];
    for (name, body, topic, (key, value)) in broken {
        let file = out.path().join(format!("{name}.toml"));
        std::fs::write(&file, body).unwrap();
        let fixed = out.path().join(format!("{name}-fixed.toml"));
        let r = doctor(
            &lab,
            &file,
            &["--json", "-", "--write", fixed.to_str().unwrap()],
        );
        assert_eq!(r.code, Some(1), "{name}: {r:?}");
        let d = r.json();
        let p = problems(&d);
        assert_eq!(p.len(), 1, "{name}: {p:#?}");
        assert_eq!(p[0].0, topic, "{name}: {p:#?}");
        assert_eq!(p[0].2, format!("{key} = \"{value}\""), "{name}: {p:#?}");
        assert_eq!(
            d["keys"],
            serde_json::json!([[key, value]]),
            "{name}: {d:#}"
        );
        // The file it writes is the fixed rig: the doctor finds it ready.
        let r = doctor(&lab, &fixed, &[]);
        assert_eq!(r.code, Some(0), "{name}, fixed: {}", r.stdout);
    }

    // 3. The session's probe in no session: a probe started on the client's own desktop
    //    (outside any RDP session) given as the remote probe.
    let status = lab.status().unwrap();
    let pulse = status["hosts"]["client"]["env"]["PULSE_SERVER"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!(
        "--net=/run/netns/{}",
        lab.netns(RdpHost::Client).unwrap()
    ))
    .arg(earshot_e2e::probe_bin())
    .args(["--host", "pulseaudio", "serve", "--listen", "0.0.0.0:7703"])
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("PULSE_SERVER", pulse)
    .env("HOME", lab.state_dir().join("client/home"))
    .env("EARSHOT_TOKEN", TOKEN);
    let mut stray = Running::start(cmd);
    stray
        .wait_ready(
            "the probe outside the session",
            Duration::from_secs(20),
            || true,
        )
        .unwrap();
    let file = out.path().join("no-session.toml");
    std::fs::write(&file, text.replace("10.77.0.2:7702", "10.77.0.1:7703")).unwrap();
    let r = doctor(&lab, &file, &["--json", "-"]);
    drop(stray);
    assert_eq!(r.code, Some(1), "{r:?}");
    let p = problems(&r.json());
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].0, "probes", "{p:#?}");
    assert!(
        p[0].1.contains("shows no remote desktop session")
            && p[0]
                .1
                .contains("start earshot-probe inside the user's RDP session"),
        "{p:#?}"
    );
}
