//! `analyze --check continuity` on recordings of the continuity stream that an independent
//! tool made worse: sox resampling, low-pass, µ-law, MP3, Opus (opus-tools), inserted gaps
//! and clock drift. Lossy but unbroken paths must read whole, every gap must be found with
//! its place and length, drift with its sign.
//!
//! sox (with libsox-fmt-mp3) and opus-tools are test dependencies that `make deps`
//! installs; without them these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;

fn probe() -> Command {
    Command::cargo_bin("earshot-probe").expect("the earshot-probe binary is built")
}

/// 10 s of the continuity stream at 48 kHz, 16-bit, with 200 ms of silence either side.
fn stream(dir: &Path) -> PathBuf {
    let path = dir.join("stream.wav");
    probe()
        .args(["synth", "--continuity", "10", "--encoding", "i16"])
        .args(["--lead-ms", "200", "--tail-ms", "200", "-o"])
        .arg(&path)
        .assert()
        .success();
    path
}

fn tool(program: &str, args: &[&std::ffi::OsStr]) {
    let out = StdCommand::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed for this test (`make deps`): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sox input ARGS output EFFECTS`.
fn sox(input: &Path, args: &[&str], output: &Path, effects: &[&str]) {
    let mut all: Vec<&std::ffi::OsStr> = vec![input.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    all.push(output.as_os_str());
    all.extend(effects.iter().map(std::ffi::OsStr::new));
    tool("sox", &all);
}

/// `analyze --check continuity --json`: the exit status and the document.
fn analyze(file: &Path) -> (i32, serde_json::Value) {
    let out = probe()
        .arg("analyze")
        .arg(file)
        .args(["--check", "continuity", "--json"])
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: no JSON ({e}): {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

fn whole(file: &Path, what: &str) -> serde_json::Value {
    let (code, doc) = analyze(file);
    assert_eq!(doc["verdict"], "whole", "{what}: {doc:#}");
    assert_eq!(code, 0, "{what}");
    let r = &doc["result"];
    let tone_ms = r["tone_ms"].as_f64().unwrap();
    assert!((tone_ms - 10_000.0).abs() < 60.0, "{what}: {tone_ms} ms");
    doc
}

#[test]
fn lossy_but_unbroken_paths_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let src = stream(tmp.path());
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("r8k.wav", &[], &["rate", "8000"]),
        ("r16k.wav", &[], &["rate", "16000"]),
        ("r22k.wav", &[], &["rate", "22050"]),
        ("lowpass.wav", &[], &["sinc", "-3400"]),
        ("ulaw.wav", &["-r", "8000", "-e", "u-law"], &[]),
        ("mp3-32k.mp3", &["-C", "32"], &[]),
        ("mp3-64k.mp3", &["-C", "64"], &[]),
        ("mp3-128k.mp3", &["-C", "128"], &[]),
    ];
    for (name, args, effects) in cases {
        let file = tmp.path().join(name);
        sox(&src, args, &file, effects);
        whole(&file, name);
    }
    for kbps in ["16", "32", "64"] {
        let opus = tmp.path().join(format!("opus-{kbps}k.opus"));
        let back = tmp.path().join(format!("opus-{kbps}k.wav"));
        tool(
            "opusenc",
            &[
                "--quiet".as_ref(),
                "--bitrate".as_ref(),
                kbps.as_ref(),
                src.as_os_str(),
                opus.as_os_str(),
            ],
        );
        tool(
            "opusdec",
            &["--quiet".as_ref(), opus.as_os_str(), back.as_os_str()],
        );
        whole(&back, &format!("Opus {kbps} kbit/s"));
    }
}

#[test]
fn inserted_gaps_are_found_where_and_as_long_as_they_were() {
    let tmp = tempfile::tempdir().unwrap();
    let src = stream(tmp.path());
    for gap_ms in [5.0, 10.0, 20.0] {
        let file = tmp.path().join(format!("gap-{gap_ms}.wav"));
        // Silence inserted 3.2 s into the file: 3.0 s into the stream.
        sox(
            &src,
            &[],
            &file,
            &["pad", &format!("{}@3.2", gap_ms / 1000.0)],
        );
        let (code, doc) = analyze(&file);
        assert_eq!(code, 1, "{gap_ms} ms: {doc:#}");
        assert_eq!(doc["verdict"], "degraded", "{gap_ms} ms: {doc:#}");
        let events = doc["result"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{gap_ms} ms: {doc:#}");
        let e = &events[0];
        assert_eq!(e["kind"], "gap");
        let at = e["file_ms"].as_f64().unwrap();
        let len = e["length_ms"].as_f64().unwrap();
        assert!((at - 3200.0).abs() <= 2.5, "{gap_ms} ms: at {at}");
        assert!((len - gap_ms).abs() <= 2.5, "{gap_ms} ms: length {len}");
        assert!(
            doc["reasons"][0].as_str().unwrap().contains("1 gap(s)"),
            "{doc:#}"
        );
    }
}

#[test]
fn clock_drift_is_measured_with_its_sign_and_judged_by_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let src = stream(tmp.path());
    for (speed, ppm) in [("1.0005", 500.0), ("0.9995", -500.0)] {
        let file = tmp.path().join(format!("speed-{speed}.wav"));
        sox(&src, &[], &file, &["speed", speed]);
        let doc = whole(&file, speed);
        let d = doc["result"]["drift_ppm"].as_f64().unwrap();
        assert!((d - ppm).abs() < 5.0, "speed {speed}: {d} ppm");
        // Over a tighter limit, the same file is degraded, and says why.
        let out = probe()
            .arg("analyze")
            .arg(&file)
            .args(["--check", "continuity", "--max-drift-ppm", "100"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("degraded: clock drift"), "{text}");
    }
}

#[test]
fn a_recording_without_the_stream_is_no_stream_and_a_signature_is_not_taken_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sig = tmp.path().join("sig.wav");
    probe()
        .args(["synth", "--seed", "7", "--direction", "output", "-o"])
        .arg(&sig)
        .assert()
        .success();
    let (code, doc) = analyze(&sig);
    assert_eq!(doc["verdict"], "no_stream", "{doc:#}");
    assert_eq!(code, 1);
    let out = probe()
        .arg("analyze")
        .arg(&sig)
        .args(["--check", "continuity"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no stream"), "{text}");
}

#[test]
fn analyze_without_seed_or_check_says_what_it_needs() {
    let out = probe().args(["analyze", "x.wav"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--seed"), "{err}");
}
