//! `analyze --check continuity` and `--check quality` on recordings that an independent
//! tool made worse: sox resampling, low-pass, µ-law, MP3, Opus (opus-tools), inserted gaps
//! and clock drift. Lossy but unbroken paths must read whole, every gap must be found with
//! its place and length, drift with its sign; every rate and codec must land in its
//! quality class with its band edge.
//!
//! sox (with libsox-fmt-mp3) and opus-tools are test dependencies that `make deps`
//! installs; without them these tests fail and say so.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

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
    analyze_as(file, &["--check", "continuity"])
}

/// `analyze FILE ARGS --json`: the exit status and the document.
fn analyze_as(file: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let out = probe()
        .arg("analyze")
        .arg(file)
        .args(args)
        .arg("--json")
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
        whole(&through_opus(&src, kbps), &format!("Opus {kbps} kbit/s"));
    }
}

/// `src` through Opus at `kbps` and back to WAV (opus-tools), beside it.
fn through_opus(src: &Path, kbps: &str) -> PathBuf {
    let dir = src.parent().expect("a file in a folder");
    let opus = dir.join(format!("opus-{kbps}k.opus"));
    let back = dir.join(format!("opus-{kbps}k.wav"));
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
    back
}

/// The quality probe signal at 48 kHz, 16-bit, with 200 ms of silence before and 300 after.
fn quality_signal(dir: &Path) -> PathBuf {
    let path = dir.join("quality.wav");
    probe()
        .args(["synth", "--quality", "--encoding", "i16"])
        .args(["--lead-ms", "200", "--tail-ms", "300", "-o"])
        .arg(&path)
        .assert()
        .success();
    path
}

/// `analyze --check quality`: asserts the class, the band edge and the exit status
/// against `--min-class medium`; returns the result.
fn quality_is(file: &Path, what: &str, class: &str, edge_hz: f64) -> serde_json::Value {
    let (code, doc) = analyze_as(file, &["--check", "quality", "--min-class", "medium"]);
    let r = doc["result"].clone();
    assert_eq!(r["class"], class, "{what}: {doc:#}");
    assert_eq!(r["band_edge_hz"].as_f64(), Some(edge_hz), "{what}: {doc:#}");
    let passes = class == "high" || class == "medium";
    assert_eq!(code, if passes { 0 } else { 1 }, "{what}: exit status");
    assert_eq!(
        doc["verdict"],
        if passes { "pass" } else { "below" },
        "{what}"
    );
    r
}

fn has_sign(r: &serde_json::Value, sign: &str) -> bool {
    r["codec_signs"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v == sign))
}

/// A file name, sox's format arguments, sox's effects, the class, the band edge (the
/// highest tone carried).
type QualityCase<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, f64);

#[test]
fn every_rate_and_codec_lands_in_its_quality_class() {
    let tmp = tempfile::tempdir().unwrap();
    let src = quality_signal(tmp.path());
    let cases: &[QualityCase] = &[
        ("copy.wav", &[], &[], "high", 18979.0),
        (
            "plus-500ppm.wav",
            &[],
            &["speed", "1.0005"],
            "high",
            18979.0,
        ),
        ("r44k.wav", &[], &["rate", "44100"], "high", 18979.0),
        ("r32k.wav", &[], &["rate", "32000"], "medium", 13999.0),
        ("r22k.wav", &[], &["rate", "22050"], "medium", 10009.0),
        ("r16k.wav", &[], &["rate", "16000"], "medium", 6791.0),
        ("r8k.wav", &[], &["rate", "8000"], "low", 3391.0),
        ("lowpass-7k.wav", &[], &["sinc", "-7000"], "medium", 6791.0),
        ("ulaw.wav", &["-e", "u-law"], &[], "medium", 18979.0),
        ("alaw.wav", &["-e", "a-law"], &[], "medium", 18979.0),
        (
            "ulaw-8k.wav",
            &["-r", "8000", "-e", "u-law"],
            &[],
            "low",
            3391.0,
        ),
        ("mp3-32k.mp3", &["-C", "32"], &[], "medium", 6791.0),
        ("mp3-128k.mp3", &["-C", "128"], &[], "medium", 18979.0),
        ("mp3-320k.mp3", &["-C", "320"], &[], "high", 18979.0),
    ];
    for (name, args, effects, class, edge) in cases {
        let file = tmp.path().join(name);
        sox(&src, args, &file, effects);
        let r = quality_is(&file, name, class, *edge);
        let sinad = r["sinad_db"].as_f64().unwrap();
        match *name {
            "copy.wav" | "r44k.wav" => assert!(sinad > 70.0, "{name}: {sinad}"),
            "ulaw.wav" | "alaw.wav" | "ulaw-8k.wav" => {
                assert!((33.0..42.0).contains(&sinad), "{name}: {sinad}");
                assert!(has_sign(&r, "noise_under_signal"), "{name}: {r:#}");
            }
            "mp3-32k.mp3" | "mp3-128k.mp3" => {
                assert!(has_sign(&r, "noise_under_signal"), "{name}: {r:#}")
            }
            _ => {}
        }
        assert_eq!(
            has_sign(&r, "band_limited"),
            *edge < 18979.0,
            "{name}: {r:#}"
        );
        let step = r["step_db"].as_f64().unwrap();
        assert!((step + 20.0).abs() < 0.5, "{name}: step {step}");
    }
    // Opus at 16 kbit/s keeps 9 kHz but its noise fills the band; at 64 kbit/s it is
    // fullband with 25 dB or more between the tones.
    quality_is(&through_opus(&src, "16"), "Opus 16 kbit/s", "low", 9013.0);
    quality_is(
        &through_opus(&src, "64"),
        "Opus 64 kbit/s",
        "medium",
        18979.0,
    );
}

#[test]
fn a_recording_without_the_quality_signal_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let sig = tmp.path().join("sig.wav");
    probe()
        .args(["synth", "--seed", "5", "--direction", "output", "-o"])
        .arg(&sig)
        .assert()
        .success();
    let (code, doc) = analyze_as(&sig, &["--check", "quality"]);
    assert_eq!(code, 1);
    assert_eq!(doc["verdict"], "no_signal", "{doc:#}");
    let text = probe()
        .arg("analyze")
        .arg(&sig)
        .args(["--check", "quality"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("was `synth --quality` played into it?"),
        "{text}"
    );
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

#[test]
fn a_signature_played_at_the_wrong_speed_is_found_with_its_factor() {
    // sox's `speed` plays a file faster or slower, pitch with it: what a sample-rate
    // mismatch on a path does. From 0.5 % on, `analyze` says the factor; a clean file
    // says nothing of speed.
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("signature.wav");
    probe()
        .args([
            "synth",
            "--seed",
            "7",
            "--direction",
            "output",
            "--encoding",
            "i16",
        ])
        .args(["--lead-ms", "300", "--tail-ms", "300", "-o"])
        .arg(&clean)
        .assert()
        .success();
    let analyze = |file: &Path| {
        let out = probe()
            .args(["analyze", "--seed", "7", "--direction", "output"])
            .arg(file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = analyze(&clean);
    assert!(
        text.contains("detected     yes") && !text.contains("speed"),
        "{text}"
    );
    for (factor, words) in [
        (0.995, "0.9950× the speed played (0.50 % slow)"),
        (1.005, "1.0050× the speed played (0.50 % fast)"),
        (0.98, "0.9800× the speed played (2.00 % slow)"),
        (1.02, "1.0200× the speed played (2.00 % fast)"),
        // 44.1 kHz played as 48 kHz, and the other way round.
        (0.91875, "0.9188× the speed played (8.12 % slow)"),
        (1.088, "1.0880× the speed played (8.80 % fast)"),
        // Between the speeds searched.
        (0.94, "0.9400× the speed played (6.00 % slow)"),
        (1.065, "1.0650× the speed played (6.50 % fast)"),
    ] {
        let changed = dir.path().join(format!("speed-{factor}.wav"));
        tool(
            "sox",
            &[
                clean.as_os_str(),
                changed.as_os_str(),
                "speed".as_ref(),
                factor.to_string().as_ref(),
            ],
        );
        let text = analyze(&changed);
        assert!(text.contains("detected     yes"), "{factor}: {text}");
        assert!(text.contains(words), "{factor}: {text}");
    }
}

#[test]
fn a_stereo_signature_tells_swapped_mono_and_one_sided_channels_apart() {
    // `synth --stereo` plays the seed's signature on the left, then its companion's on the
    // right; sox makes what a path does to it: swaps the channels, downmixes them, drops
    // one. 20 seeds, each arrangement told apart every time.
    let dir = tempfile::tempdir().unwrap();
    let arrangements: [(&str, &[&str]); 5] = [
        ("ok", &["remix", "1", "2"]),
        ("swapped", &["remix", "2", "1"]),
        ("mono", &["remix", "1,2", "1,2"]),
        ("left_only", &["remix", "1", "0"]),
        ("right_only", &["remix", "0", "2"]),
    ];
    for seed in 0..20u64 {
        let played = dir.path().join(format!("stereo-{seed}.wav"));
        probe()
            .args([
                "synth",
                "--stereo",
                "--seed",
                &seed.to_string(),
                "--direction",
            ])
            .args([
                "capture",
                "--encoding",
                "i16",
                "--lead-ms",
                "200",
                "--tail-ms",
                "200",
            ])
            .arg("-o")
            .arg(&played)
            .assert()
            .success();
        for (want, remix) in arrangements {
            let arrived = dir.path().join(format!("{want}-{seed}.wav"));
            let mut args: Vec<&std::ffi::OsStr> = vec![played.as_os_str(), arrived.as_os_str()];
            args.extend(remix.iter().map(std::ffi::OsStr::new));
            tool("sox", &args);
            let out = probe()
                .args(["analyze", "--json", "--seed", &seed.to_string()])
                .args(["--direction", "capture"])
                .arg(&arrived)
                .output()
                .unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc["channel_map"], want, "seed {seed}, {want}: {doc:#}");
        }
    }
    // A mono recording of a plain signature has no channel map.
    let plain = dir.path().join("plain.wav");
    probe()
        .args(["synth", "--seed", "3", "--direction", "capture", "-o"])
        .arg(&plain)
        .assert()
        .success();
    let out = probe()
        .args(["analyze", "--json", "--seed", "3", "--direction", "capture"])
        .arg(&plain)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc.get("channel_map").is_none(), "{doc:#}");
}

#[test]
fn the_speech_check_scores_what_a_codec_leaves_of_the_reference() {
    // `synth --speech` at 48 kHz, then what a path does with it: nothing, Opus at 6 kbit/s
    // (opus-tools), silence. A clean copy reads near the top; the codec's low bitrate far
    // below; silence is no speech, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("speech.wav");
    probe()
        .args([
            "synth",
            "--speech",
            "--lead-ms",
            "700",
            "--tail-ms",
            "300",
            "-o",
        ])
        .arg(&clean)
        .assert()
        .success();
    let score = |file: &Path, min: &str| {
        let out = probe()
            .args(["analyze", "--check", "speech", "--min-mos", min, "--json"])
            .arg(file)
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), doc)
    };
    let (code, doc) = score(&clean, "4.0");
    assert_eq!(code, Some(0), "{doc}");
    let mos = doc["result"]["mos_lqo"].as_f64().unwrap();
    assert!(mos > 4.5, "{doc}");
    assert!(
        (doc["result"]["offset_ms"].as_f64().unwrap() - 700.0).abs() < 2.0,
        "{doc}"
    );
    assert_eq!(
        doc["result"]["method"],
        "ITU-T P.862.2 (wideband PESQ) MOS-LQO"
    );

    let opus = dir.path().join("speech.opus");
    let decoded = dir.path().join("opus-6k.wav");
    tool(
        "opusenc",
        &[
            "--quiet".as_ref(),
            "--bitrate".as_ref(),
            "6".as_ref(),
            clean.as_os_str(),
            opus.as_os_str(),
        ],
    );
    tool(
        "opusdec",
        &["--quiet".as_ref(), opus.as_os_str(), decoded.as_os_str()],
    );
    let (code, doc) = score(&decoded, "3.0");
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["verdict"], "below");
    assert!(doc["result"]["mos_lqo"].as_f64().unwrap() < 2.5, "{doc}");

    let silent = dir.path().join("silent.wav");
    tool(
        "sox",
        &[
            "-n".as_ref(),
            "-r".as_ref(),
            "48000".as_ref(),
            silent.as_os_str(),
            "trim".as_ref(),
            "0".as_ref(),
            "9".as_ref(),
        ],
    );
    let (code, doc) = score(&silent, "3.0");
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["verdict"], "no_speech");
    assert!(doc["reason"].as_str().unwrap().contains("silent"), "{doc}");
}
