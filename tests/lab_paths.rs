//! The lab's redirection paths, measured: audio played in the session reaches the client's
//! speaker loopback when output is redirected and not otherwise; the client's microphone
//! feed reaches the session's microphone when capture is redirected; a degraded link is
//! still judged. Played and recorded with PulseAudio's tools, judged by earshot's detector.

use earshot_e2e::{Host, Lab};
use earshot_probe::analysis::{analyze_channels, ChannelAnalysis};
use earshot_probe::signal::{Direction, Signature};
use earshot_probe::wav::{self, Audio, WavEncoding};

fn signature_file(dir: &std::path::Path, seed: u64, direction: Direction) -> std::path::PathBuf {
    let rate = 48_000;
    let sig = Signature::new(seed, direction).render(rate).unwrap();
    let path = dir.join(format!("sig-{seed}-{direction}.wav"));
    wav::write(&path, &Audio::mono(rate, sig), WavEncoding::I16).unwrap();
    path
}

fn judge(path: &std::path::Path, seed: u64, direction: Direction) -> ChannelAnalysis {
    let audio = wav::read(path).unwrap();
    analyze_channels(&audio, &Signature::new(seed, direction)).unwrap()
}

/// Plays the signature of `seed` on `from` (host, device or its default) while recording
/// `seconds` on `to` (host, device), starting the player `delay_ms` after the recorder, and
/// judges the recording for the same signature. Returns the result and the recording.
fn play_and_judge(
    lab: &Lab,
    seed: u64,
    direction: Direction,
    from: (Host, Option<&str>),
    to: (Host, &str),
    (seconds, delay_ms): (u32, u64),
) -> (ChannelAnalysis, Audio) {
    let tmp = tempfile::tempdir().unwrap();
    let sig = signature_file(tmp.path(), seed, direction);
    let rec = tmp.path().join("recording.wav");
    lab.play_and_record(from.0, from.1, &sig, to.0, to.1, seconds, delay_ms, &rec)
        .unwrap();
    (judge(&rec, seed, direction), wav::read(&rec).unwrap())
}

#[test]
fn output_redirected_reaches_the_client_speaker_loopback() {
    let lab = Lab::up(&["--output", "client", "--capture", "none"]).unwrap();
    let (a, _) = play_and_judge(
        &lab,
        101,
        Direction::Output,
        (Host::Session, None),
        (Host::Client, "speakers.monitor"),
        (3, 500),
    );
    let a = a.best;
    assert!(a.detected, "{a:?}");
    // paplay and parecord each take their own time to start, so their clocks say nothing
    // about the path's latency (the probe's listen measures that); the level and SNR do.
    assert!(a.median_snr_db().unwrap() > 30.0, "{a:?}");
    assert!((a.level_dbfs.unwrap() - -9.0).abs() < 3.0, "{a:?}");
}

#[test]
fn output_played_on_the_session_host_never_reaches_the_client() {
    let lab = Lab::up(&["--output", "session", "--capture", "none"]).unwrap();
    let on_client = (Host::Client, "speakers.monitor");
    let (a, _) = play_and_judge(
        &lab,
        102,
        Direction::Output,
        (Host::Session, None),
        on_client,
        (3, 500),
    );
    assert!(!a.best.detected);
    // It did play: on the session host's own speakers.
    let on_session = (Host::Session, "session-speakers.monitor");
    let (a, _) = play_and_judge(
        &lab,
        102,
        Direction::Output,
        (Host::Session, None),
        on_session,
        (3, 500),
    );
    assert!(a.best.detected);
}

#[test]
fn no_session_audio_means_no_endpoints_and_a_monitor_is_not_a_microphone() {
    let lab = Lab::up(&["--output", "none", "--capture", "none"]).unwrap();
    assert!(lab.list(Host::Session, "sinks").unwrap().is_empty());
    assert!(lab.list(Host::Session, "sources").unwrap().is_empty());
    drop(lab);
    let lab = Lab::up(&["--output", "session", "--capture", "none"]).unwrap();
    let sources = lab.list(Host::Session, "sources").unwrap();
    assert!(
        sources.iter().all(|s| s.ends_with(".monitor")),
        "only monitors expected: {sources:?}"
    );
}

#[test]
fn capture_redirected_reaches_the_session_microphone() {
    let lab = Lab::up(&["--output", "none", "--capture", "redirected"]).unwrap();
    // tunnel-source-new can deliver stale pre-roll at once: record long enough.
    let (a, rec) = play_and_judge(
        &lab,
        103,
        Direction::Capture,
        (Host::Client, Some("micfeed")),
        (Host::Session, "rdp-mic"),
        (5, 1500),
    );
    let a = a.best;
    assert!(a.detected, "{a:?}");
    // The capture signature is never credited to the output check.
    let other = analyze_channels(&rec, &Signature::new(103, Direction::Output)).unwrap();
    assert!(!other.best.detected);
}

#[test]
fn degraded_links_are_still_judged() {
    for args in [
        ["--loss", "5"],
        ["--rate-kbit", "1000"],
        ["--delay-ms", "50"],
    ] {
        let lab = Lab::up(&[&["--output", "client", "--capture", "none"][..], &args[..]].concat())
            .unwrap();
        let (a, _) = play_and_judge(
            &lab,
            104,
            Direction::Output,
            (Host::Session, None),
            (Host::Client, "speakers.monitor"),
            (4, 500),
        );
        let a = a.best;
        // Judged: a result with figures, whichever way it went.
        assert!(a.analyzed_ms > 2_000.0, "{args:?}: {a:?}");
        assert!(a.onset_ms.is_some(), "{args:?}: {a:?}");
        eprintln!(
            "{args:?}: detected {} confidence {:.2} dropouts {:?}",
            a.detected, a.confidence, a.dropouts
        );
    }
}

#[test]
fn the_lab_tears_down_cleanly_and_comes_back_up() {
    let lab = Lab::up(&[]).unwrap();
    let state = lab.state_dir().to_path_buf();
    let namespaces = lab.namespaces().unwrap();
    assert_eq!(namespaces.len(), 2, "{namespaces:?}");
    assert!(lab
        .list(Host::Session, "sinks")
        .unwrap()
        .contains(&"rdp-speakers".to_string()));
    lab.kill(Host::Client).unwrap();
    drop(lab);
    assert!(
        !state.join("client").exists(),
        "state left behind in {}",
        state.display()
    );
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&netns.stdout);
    for ns in &namespaces {
        assert!(!listed.contains(ns.as_str()), "namespace {ns} left behind");
    }
    let again = Lab::up(&[]).unwrap();
    assert!(again
        .list(Host::Client, "sinks")
        .unwrap()
        .contains(&"speakers".to_string()));
}
