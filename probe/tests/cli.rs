//! The probe's offline commands, run as a user would: synth -> impair -> analyze.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use earshot_probe::analysis::analyze;
use earshot_probe::signal::{Direction, Signature};
use earshot_probe::wav;

fn probe() -> Command {
    Command::cargo_bin("earshot-probe").expect("the earshot-probe binary is built")
}

fn synth(dir: &Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    probe()
        .args(["synth", "--lead-ms", "400", "--tail-ms", "300", "-o"])
        .arg(&path)
        .args(args)
        .assert()
        .success();
    path
}

#[test]
fn synth_impair_analyze_round_trip_detects_and_rejects() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = synth(
        tmp.path(),
        "sig.wav",
        &["--seed", "42", "--direction", "output"],
    );
    let noisy = tmp.path().join("noisy.wav");
    probe()
        .args(["impair"])
        .arg(&clean)
        .arg("-o")
        .arg(&noisy)
        .args([
            "--snr-db",
            "-5",
            "--drift-ppm",
            "400",
            "--band-pass",
            "--resample-to",
            "16000",
        ])
        .assert()
        .success();
    let out = probe()
        .arg("analyze")
        .arg(&noisy)
        .args(["--seed", "42", "--direction", "output", "--json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["result"]["detected"], true);
    assert_eq!(v["sample_rate_hz"], 16000);
    let onset = v["result"]["onset_ms"].as_f64().unwrap();
    assert!((onset - 400.0).abs() < 15.0, "{onset}");

    // Another seed, and the other direction of the same seed: not detected, exit 1.
    probe()
        .arg("analyze")
        .arg(&noisy)
        .args(["--seed", "43", "--direction", "output"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("detected     no"));
    probe()
        .arg("analyze")
        .arg(&noisy)
        .args(["--seed", "42", "--direction", "capture"])
        .assert()
        .code(1);
}

#[test]
fn analyze_reports_the_best_of_several_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let rate = 48_000;
    let sig = Signature::new(9, Direction::Capture).render(rate).unwrap();
    let frames = sig.len() + rate as usize;
    let mut samples = vec![0.0f32; frames * 3];
    for (i, v) in sig.iter().enumerate() {
        samples[(i + 4_800) * 3 + 2] = *v;
    }
    let path = tmp.path().join("sig-third-channel-48kHz-f32-3ch.wav");
    let audio = wav::Audio {
        sample_rate_hz: rate,
        channels: 3,
        samples,
    };
    wav::write(&path, &audio, wav::WavEncoding::F32).unwrap();
    probe()
        .arg("analyze")
        .arg(&path)
        .args(["--seed", "9", "--direction", "capture"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("channel      3 of 3"));
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.wav");
    std::fs::write(&junk, b"not audio").unwrap();
    probe()
        .arg("analyze")
        .arg(&junk)
        .args(["--seed", "1", "--direction", "output"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "junk.wav: not a recognised audio file",
        ));
    probe()
        .args([
            "analyze",
            "/nonexistent/x.wav",
            "--seed",
            "1",
            "--direction",
            "output",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("/nonexistent/x.wav"));
    probe()
        .args([
            "synth",
            "--seed",
            "1",
            "--direction",
            "output",
            "--rate",
            "4000",
            "-o",
        ])
        .arg(tmp.path().join("x.wav"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unsupported sample rate 4000 Hz"));
    probe()
        .args(["analyze", "x.wav", "--seed", "1", "--direction", "sideways"])
        .assert()
        .code(2);
}

#[test]
fn help_shows_examples() {
    probe()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicates::str::contains("earshot-probe synth --seed 42"));
    probe()
        .args(["analyze", "--help"])
        .assert()
        .success()
        .stdout(predicates::str::contains("Exit status: 0 detected"));
}

/// Speech must never be taken for a signature. espeak-ng is a test dependency that
/// `make test` installs; without it this test fails and says so.
#[test]
fn speech_is_never_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("speech.wav");
    let text = "Audio redirection test. The quick brown fox jumps over the lazy dog. \
        Please connect to the remote session and play some audio. One two three four five \
        six seven eight nine ten. Testing, testing, can you hear me now?";
    let status = StdCommand::new("espeak-ng")
        .args(["-s", "170", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .unwrap_or_else(|e| {
            panic!("espeak-ng is needed for this test (`make deps` installs it): {e}")
        });
    assert!(status.success(), "espeak-ng failed: {status}");
    let audio = wav::read(&path).unwrap();
    let x = audio.channel(0);
    assert!(audio.duration_ms() > 5_000.0);
    for seed in 0..100 {
        for dir in [Direction::Output, Direction::Capture] {
            let a = analyze(&x, audio.sample_rate_hz, &Signature::new(seed, dir)).unwrap();
            assert!(!a.detected, "speech detected as seed {seed} {dir}: {a:?}");
        }
    }
}

/// Through real voice codecs (sox's GSM 06.10 full-rate and G.711 µ-law, both 8 kHz):
/// what a narrowband path does to a signature. sox is a test dependency `make test`
/// installs; without it this test fails and says so.
#[test]
fn survives_gsm_and_mu_law_codecs() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = synth(
        tmp.path(),
        "sig.wav",
        &["--seed", "606", "--direction", "capture"],
    );
    for (name, encode) in [
        ("gsm", vec!["-r", "8000", "-c", "1"]),
        (
            "ulaw.wav",
            vec!["-r", "8000", "-c", "1", "-e", "u-law", "-b", "8"],
        ),
    ] {
        let coded = tmp.path().join(format!("coded.{name}"));
        let back = tmp
            .path()
            .join(format!("decoded-{}.wav", name.replace('.', "-")));
        let st = StdCommand::new("sox")
            .arg(&clean)
            .args(&encode)
            .arg(&coded)
            .status()
            .unwrap_or_else(|e| panic!("sox is needed for this test (`make deps`): {e}"));
        assert!(st.success(), "sox encode {name}");
        let st = StdCommand::new("sox")
            .arg(&coded)
            .args(["-e", "signed-integer", "-b", "16"])
            .arg(&back)
            .status()
            .unwrap();
        assert!(st.success(), "sox decode {name}");
        probe()
            .arg("analyze")
            .arg(&back)
            .args(["--seed", "606", "--direction", "capture"])
            .assert()
            .code(0);
    }
}

#[test]
fn info_prints_the_agents_answer_with_the_hosts_own_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let ini = tmp.path().join("xrdp.ini");
    std::fs::write(&ini, "[Channels]\nrdpsnd=false\n").unwrap();
    let info = |xrdp_session: bool| {
        let mut cmd = probe();
        cmd.arg("info")
            .env("EARSHOT_XRDP_INI", &ini)
            .env_remove("XRDP_SESSION")
            // No audio server to find: the catalogue's failure is part of the answer.
            .env("PULSE_SERVER", "unix:/nonexistent/earshot-test");
        if xrdp_session {
            cmd.env("XRDP_SESSION", "1");
        }
        let out = cmd.assert().code(0).get_output().stdout.clone();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()
    };
    let xrdp = info(true);
    assert_eq!(xrdp["probe_version"], earshot_probe::VERSION);
    if cfg!(target_os = "linux") {
        assert_eq!(xrdp["session"]["server"], "xrdp", "{xrdp}");
        assert_eq!(xrdp["xrdp"]["rdpsnd"], false, "{xrdp}");
        // Not an xrdp session: the xrdp.ini on the machine is no evidence about it.
        let other = info(false);
        assert_ne!(other["session"]["server"], "xrdp", "{other}");
        assert!(other.get("xrdp").is_none(), "{other}");
    }
    let info = xrdp;
    // The registry, services and boot time are Windows facts; elsewhere there are none.
    assert_eq!(info.get("host_config").is_some(), cfg!(windows));
}

#[test]
fn a_dead_audio_service_is_reported_unavailable_never_an_empty_alsa_catalogue() {
    // PULSE_SERVER names a server that does not answer: the probe must not fall back to
    // ALSA (whose empty catalogue would read as "the session has no device", a policy
    // finding) but say that the audio service is unavailable.
    let out = probe()
        .arg("info")
        .env("PULSE_SERVER", "unix:/nonexistent/earshot-test")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let info: serde_json::Value = serde_json::from_slice(&out).unwrap();
    if cfg!(target_os = "linux") {
        // What a person reads: the host is null and the reason beside it, never the
        // wire's `{"Ok": ...}` / `{"Err": ...}`.
        assert!(info["audio_host"].is_null(), "{info}");
        let message = info["audio_host_error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("audio service unavailable") && message.contains("PULSE_SERVER"),
            "{info}"
        );
        assert!(info["devices"].is_null(), "{info}");
        assert_eq!(info["devices_error"]["kind"], "host_unavailable", "{info}");
        assert!(!info.to_string().contains("\"Err\""), "{info}");
    }
}

#[cfg(unix)]
#[test]
fn a_token_variable_that_is_not_text_is_an_error_never_a_probe_without_a_token() {
    use std::os::unix::ffi::OsStrExt;
    let out = probe()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "EARSHOT_TOKEN",
            std::ffi::OsStr::from_bytes(b"\xff\xfe0123456789abcdef0123456789abcdef"),
        )
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .failure()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("EARSHOT_TOKEN") && err.contains("not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn a_port_already_taken_is_said_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = probe()
        .args(["serve", "--listen", &addr])
        .env("EARSHOT_TOKEN", "0123456789abcdef0123456789abcdef")
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let e = String::from_utf8_lossy(&out);
    assert!(
        e.contains(&format!("cannot listen on {addr}: the port is taken"))
            && e.contains("another earshot-probe already serving there"),
        "{e}"
    );
}
