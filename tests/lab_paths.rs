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

#[test]
fn output_redirected_reaches_the_client_speaker_loopback() {
    let lab = Lab::up(&["--output", "client", "--capture", "none"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sig = signature_file(tmp.path(), 101, Direction::Output);
    let rec = tmp.path().join("client-loopback.wav");
    lab.play_and_record(
        Host::Session,
        None,
        &sig,
        Host::Client,
        "speakers.monitor",
        3,
        500,
        &rec,
    )
    .unwrap();
    let a = judge(&rec, 101, Direction::Output).best;
    assert!(a.detected, "{a:?}");
    // paplay and parecord each take their own time to start, so their clocks say nothing
    // about the path's latency (the probe's listen measures that); the level and SNR do.
    assert!(a.median_snr_db().unwrap() > 30.0, "{a:?}");
    assert!((a.level_dbfs.unwrap() - -9.0).abs() < 3.0, "{a:?}");
}

#[test]
fn output_played_on_the_session_host_never_reaches_the_client() {
    let lab = Lab::up(&["--output", "session", "--capture", "none"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sig = signature_file(tmp.path(), 102, Direction::Output);
    let rec = tmp.path().join("client-loopback.wav");
    lab.play_and_record(
        Host::Session,
        None,
        &sig,
        Host::Client,
        "speakers.monitor",
        3,
        500,
        &rec,
    )
    .unwrap();
    assert!(!judge(&rec, 102, Direction::Output).best.detected);
    // It did play: on the session host's own speakers.
    let rec = tmp.path().join("session-loopback.wav");
    lab.play_and_record(
        Host::Session,
        None,
        &sig,
        Host::Session,
        "session-speakers.monitor",
        3,
        500,
        &rec,
    )
    .unwrap();
    assert!(judge(&rec, 102, Direction::Output).best.detected);
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
    let tmp = tempfile::tempdir().unwrap();
    let sig = signature_file(tmp.path(), 103, Direction::Capture);
    let rec = tmp.path().join("session-mic.wav");
    // tunnel-source-new delivers a second or two of stale pre-roll: record long enough.
    lab.play_and_record(
        Host::Client,
        Some("micfeed"),
        &sig,
        Host::Session,
        "rdp-mic",
        5,
        1500,
        &rec,
    )
    .unwrap();
    let a = judge(&rec, 103, Direction::Capture).best;
    assert!(a.detected, "{a:?}");
    // The capture signature is never credited to the output check.
    assert!(!judge(&rec, 103, Direction::Output).best.detected);
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
        let tmp = tempfile::tempdir().unwrap();
        let sig = signature_file(tmp.path(), 104, Direction::Output);
        let rec = tmp.path().join("client-loopback.wav");
        lab.play_and_record(
            Host::Session,
            None,
            &sig,
            Host::Client,
            "speakers.monitor",
            4,
            500,
            &rec,
        )
        .unwrap();
        let a = judge(&rec, 104, Direction::Output).best;
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
