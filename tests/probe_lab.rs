//! Real `earshot-probe` processes against the lab: the remote probe plays or listens in the
//! session host, the local probe on the client, each through cpal's PulseAudio host.

use std::time::Duration;

use earshot_e2e::{Host, Lab, Running};

const LISTEN_LIMIT: Duration = Duration::from_secs(20);

fn listen(
    lab: &Lab,
    host: Host,
    device: &str,
    seed: u64,
    direction: &str,
    timeout_s: u32,
) -> Running {
    let mut cmd = lab.probe(host);
    cmd.args([
        "listen",
        "--device",
        device,
        "--direction",
        direction,
        "--json",
    ])
    .args([
        "--seed",
        &seed.to_string(),
        "--timeout",
        &timeout_s.to_string(),
    ]);
    let mut running = Running::start(cmd);
    // The listener says when its device delivers audio: only then can it hear the player.
    assert!(
        running.wait_for_stderr("listening on", Duration::from_secs(6)),
        "the listener never started hearing `{device}`"
    );
    running
}

/// Like `listen`, for a listener expected to fail before it hears anything.
fn listen_failing(lab: &Lab, host: Host, device: &str, seed: u64, direction: &str) -> Running {
    let mut cmd = lab.probe(host);
    cmd.args([
        "listen",
        "--device",
        device,
        "--direction",
        direction,
        "--json",
    ])
    .args(["--seed", &seed.to_string(), "--timeout", "3"]);
    Running::start(cmd)
}

fn play(lab: &Lab, host: Host, device: &str, seed: u64, direction: &str) -> earshot_e2e::Finished {
    let mut cmd = lab.probe(host);
    cmd.args(["play", "--device", device, "--direction", direction])
        .args(["--seed", &seed.to_string()]);
    Running::start(cmd).finish(Duration::from_secs(15))
}

/// Listens on `listen_on` (up to `timeout_s`), plays on `play_on` once the listener hears
/// its device, and returns the player's and the listener's results (the player must have
/// succeeded) with the listener's JSON.
fn listen_while_playing(
    lab: &Lab,
    listen_on: (Host, &str),
    play_on: (Host, &str),
    seed: u64,
    direction: &str,
    timeout_s: u32,
) -> (
    earshot_e2e::Finished,
    earshot_e2e::Finished,
    serde_json::Value,
) {
    let l = listen(lab, listen_on.0, listen_on.1, seed, direction, timeout_s);
    let p = play(lab, play_on.0, play_on.1, seed, direction);
    assert_eq!(p.code, Some(0), "play: {p:?}");
    let r = l.finish(LISTEN_LIMIT);
    let v = r.json();
    (p, r, v)
}

#[test]
fn output_redirected_is_detected_on_the_client_speaker_monitor() {
    let lab = Lab::up(&["--output", "client", "--capture", "none"]).unwrap();
    let (p, r, v) = listen_while_playing(
        &lab,
        (Host::Client, "speakers.monitor"),
        (Host::Session, "default"),
        301,
        "output",
        8,
    );
    assert_eq!(v["outcome"], "detected", "{r:?}");
    assert_eq!(r.code, Some(0));
    let latency = latency_ms(&p, &v);
    // Session sink -> TCP tunnel -> client sink -> its monitor: lab/README.md has 85-130 ms.
    assert!(
        (20.0..600.0).contains(&latency),
        "latency {latency} ms: {r:?}"
    );
    // It stopped at the detection, long before its 8 s timeout.
    assert!(r.elapsed < Duration::from_secs(6), "{r:?}");
}

/// The path's latency: the listener's onset minus the player's start (one clock in the lab).
fn latency_ms(play: &earshot_e2e::Finished, listen: &serde_json::Value) -> f64 {
    let started: f64 = play
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("started_unix_ms: "))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("play did not report its start: {play:?}"));
    let onset = listen["report"]["onset_unix_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("no onset time: {listen}"));
    onset - started
}

#[test]
fn capture_redirected_is_heard_on_the_session_microphone() {
    let lab = Lab::up(&["--output", "none", "--capture", "redirected"]).unwrap();
    let (p, r, v) = listen_while_playing(
        &lab,
        (Host::Session, "rdp-mic"),
        (Host::Client, "micfeed"),
        304,
        "capture",
        8,
    );
    assert_eq!(v["outcome"], "detected", "{r:?}");
    assert_eq!(v["report"]["device"]["is_monitor"], false, "{r:?}");
    let latency = latency_ms(&p, &v);
    // Client mic feed -> its remapped microphone -> TCP tunnel source: lab/README.md has 0-8 ms;
    // the estimate is good to about one analysis hop plus one fragment either way.
    assert!(
        (-30.0..500.0).contains(&latency),
        "latency {latency} ms: {r:?}"
    );
}

#[test]
fn output_played_on_the_session_host_is_silent_on_the_client() {
    let lab = Lab::up(&["--output", "session", "--capture", "none"]).unwrap();
    let (_, r, v) = listen_while_playing(
        &lab,
        (Host::Client, "speakers.monitor"),
        (Host::Session, "default"),
        302,
        "output",
        4,
    );
    assert_eq!(v["outcome"], "silent", "{r:?}");
    assert_eq!(r.code, Some(1));
}

#[test]
fn no_session_output_is_a_no_device_finding() {
    let lab = Lab::up(&["--output", "none", "--capture", "none"]).unwrap();
    let mut cmd = lab.probe(Host::Session);
    cmd.args([
        "play",
        "--device",
        "default",
        "--seed",
        "303",
        "--direction",
        "output",
    ]);
    let p = Running::start(cmd).finish(Duration::from_secs(15));
    assert_eq!(p.code, Some(2), "{p:?}");
    assert!(p.stderr.to_lowercase().contains("no output"), "{p:?}");
}

#[test]
fn a_monitor_is_not_a_session_microphone() {
    let lab = Lab::up(&["--output", "session", "--capture", "none"]).unwrap();
    let r = listen_failing(&lab, Host::Session, "default", 305, "capture").finish(LISTEN_LIMIT);
    assert_eq!(r.json()["outcome"], "no_device", "{r:?}");
    assert_eq!(r.code, Some(2));
}

#[test]
fn degraded_links_are_judged_with_figures() {
    for args in [["--loss", "5"], ["--rate-kbit", "1000"]] {
        let lab = Lab::up(&[&["--output", "client", "--capture", "none"][..], &args[..]].concat())
            .unwrap();
        let (_, r, v) = listen_while_playing(
            &lab,
            (Host::Client, "speakers.monitor"),
            (Host::Session, "default"),
            306,
            "output",
            6,
        );
        let outcome = v["outcome"].as_str().unwrap_or("");
        assert!(["detected", "silent"].contains(&outcome), "{args:?}: {r:?}");
        assert!(
            v["report"]["analysis"]["analyzed_ms"].as_f64().unwrap() > 500.0,
            "{r:?}"
        );
        eprintln!(
            "{args:?}: {outcome}, confidence {}, dropouts {}",
            v["report"]["analysis"]["confidence"], v["report"]["analysis"]["dropouts"]
        );
    }
}

#[test]
fn client_daemon_killed_mid_listen_is_an_error_within_2_s() {
    let lab = Lab::up(&["--output", "client", "--capture", "none"]).unwrap();
    let l = listen(&lab, Host::Client, "speakers.monitor", 307, "output", 15);
    std::thread::sleep(Duration::from_millis(1500));
    lab.kill(Host::Client).unwrap();
    let killed_at = std::time::Instant::now();
    let r = l.finish(LISTEN_LIMIT);
    let after_kill = killed_at.elapsed();
    assert_eq!(r.json()["outcome"], "error", "{r:?}");
    assert_eq!(r.code, Some(2));
    assert!(
        after_kill <= Duration::from_millis(2500),
        "took {after_kill:?} after the kill: {r:?}"
    );
}

/// Regression: every playback stream of cpal's one PulseAudio connection was in the same
/// sync group, and PulseAudio refuses a stream synced with one on another sink ("Invalid
/// argument"): the local probe failed its rig proof on the speakers while the capture check
/// still played into the microphone feed, and the check read inconclusive.
#[test]
fn two_plays_at_once_on_different_sinks_of_one_probe_both_play() {
    use earshot_probe::audio::DeviceSelector;
    use earshot_probe::proto::auth::Token;
    use earshot_probe::proto::client::{Client, ClientConfig};
    use earshot_probe::proto::msg::PlayRequest;
    use earshot_probe::signal::Direction;

    const TOKEN: &str = "probe-lab-token-0123456789abcdef";
    let lab = Lab::up(&["--output", "client", "--capture", "redirected"]).unwrap();
    let (_probe, addr) = lab.serve_mgmt(Host::Client, 7701, TOKEN).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let token = Token::new(TOKEN, "the test").unwrap();
        let client = Client::connect(&addr, Some(&token), &ClientConfig::default())
            .await
            .unwrap();
        let play = |device: &str, seed: u64, direction: Direction| PlayRequest {
            continuity_ms: None,
            quality: false,
            device: DeviceSelector::parse(device),
            seed,
            direction,
            speech: false,
        };
        // Both streams run at once: each lasts the signature's 720 ms and more.
        let on_speakers = play("speakers", 11, Direction::Output);
        let into_micfeed = play("micfeed", 12, Direction::Capture);
        let (speakers, micfeed) =
            tokio::join!(client.play(&on_speakers), client.play(&into_micfeed));
        let speakers = speakers.expect("the play on the speakers");
        let micfeed = micfeed.expect("the play into the microphone feed");
        assert_eq!(speakers.device.id, "pulseaudio:speakers");
        assert_eq!(micfeed.device.id, "pulseaudio:micfeed");
    });
}

#[test]
fn a_primed_input_is_held_open_and_reported_and_a_missing_one_is_said() {
    use earshot_probe::proto::auth::Token;
    use earshot_probe::proto::client::{Client, ClientConfig};
    use earshot_probe::proto::msg::PrimedInput;

    const TOKEN: &str = "probe-lab-token-0123456789abcdef";
    let lab = Lab::up(&["--output", "client", "--capture", "redirected"]).unwrap();
    let (_held, held_addr) = lab
        .serve_mgmt_with(Host::Session, 7702, TOKEN, &["--prime-input", "rdp-mic"])
        .unwrap();
    let (_missing, missing_addr) = lab
        .serve_mgmt_with(Host::Client, 7701, TOKEN, &["--prime-input", "no-such-mic"])
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // What `info` says of the primed input, asked until `done` or 10 s.
    let primed = |addr: &str, done: &dyn Fn(&PrimedInput) -> bool| -> PrimedInput {
        rt.block_on(async {
            let token = Token::new(TOKEN, "the test").unwrap();
            let client = Client::connect(addr, Some(&token), &ClientConfig::default())
                .await
                .unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let p = client
                    .info()
                    .await
                    .unwrap()
                    .primed_input
                    .expect("primed_input");
                if done(&p) || std::time::Instant::now() > until {
                    return p;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // The session's microphone: held, and held longer at each answer.
    let first = primed(&held_addr, &|p| p.open_ms.is_some());
    assert_eq!(first.device, "rdp-mic");
    assert_eq!(first.error, None, "{first:?}");
    let open = first.open_ms.expect("the input delivers audio");
    let later = primed(&held_addr, &|p| p.open_ms.unwrap_or(0) >= open + 1000);
    assert!(
        later.open_ms.unwrap_or(0) >= open + 1000,
        "{first:?} then {later:?}"
    );
    // A device the client does not have: said, and the probe still serves.
    let missing = primed(&missing_addr, &|p| p.error.is_some());
    assert_eq!(missing.open_ms, None, "{missing:?}");
    let error = missing.error.unwrap_or_default();
    assert!(error.contains("no-such-mic"), "{error}");
}

#[test]
fn a_listen_lasts_its_timeout_from_its_devices_first_audio() {
    // Nothing plays on the client's speakers: PulseAudio renders the idle null sink in 2 s
    // blocks, and a fresh listener on its monitor gets its first audio only at the next one
    // (measured: 1.8-2.0 s after opening). A 300 ms listen must still hear 300 ms of its
    // device, not end before the device has delivered anything: a silence that proves
    // nothing must not be reported as heard silence.
    let lab = Lab::up(&["--output", "none", "--capture", "none"]).unwrap();
    let mut late = 0;
    for seed in 310..314 {
        let mut cmd = lab.probe(Host::Client);
        cmd.args([
            "listen",
            "--device",
            "speakers.monitor",
            "--direction",
            "output",
            "--json",
            "--timeout",
            "300ms",
        ])
        .args(["--seed", &seed.to_string()]);
        let r = Running::start(cmd).finish(LISTEN_LIMIT);
        let v = r.json();
        assert_eq!(v["outcome"], "silent", "{r:?}");
        let report = &v["report"];
        let armed = report["armed_ms"].as_f64().unwrap();
        let heard = report["analysis"]["analyzed_ms"].as_f64().unwrap();
        assert!(
            heard >= 290.0,
            "{armed} ms to the first audio, {heard} ms heard: {r:?}"
        );
        assert!(
            report["elapsed_ms"].as_f64().unwrap() >= armed + 290.0,
            "{r:?}"
        );
        if armed > 300.0 {
            late += 1;
        }
    }
    // The case this guards: the device delivered later than the whole listen lasts.
    assert!(
        late > 0,
        "no listen had a late device: the case was not exercised"
    );
}
