//! `analyze` on recordings in every supported format, made at test time with sox from a
//! signature written by `earshot-probe synth`, and on formats it does not read.
//!
//! sox (with libsox-fmt-mp3 for MP3) is a test dependency that `make deps` installs;
//! without it these tests fail and say so.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;

const SEED: &str = "4242";

fn probe() -> Command {
    Command::cargo_bin("earshot-probe").expect("the earshot-probe binary is built")
}

/// The signature of [`SEED`] (output) at 48 kHz, 32-bit float, mono, 0.6 s in.
fn signature(dir: &Path) -> PathBuf {
    let path = dir.join("sig-seed4242-48kHz-f32-mono.wav");
    probe()
        .args(["synth", "--seed", SEED, "--direction", "output"])
        .args(["--lead-ms", "600", "--tail-ms", "400", "-o"])
        .arg(&path)
        .assert()
        .success();
    path
}

/// Converts `input` with sox: `sox input ARGS output`.
fn sox(input: &Path, args: &[&str], output: &Path) {
    sox_with_effects(input, args, output, &[]);
}

/// `sox input ARGS output EFFECTS`.
fn sox_with_effects(input: &Path, args: &[&str], output: &Path, effects: &[&str]) {
    let out = StdCommand::new("sox")
        .arg(input)
        .args(args)
        .arg(output)
        .args(effects)
        .output()
        .unwrap_or_else(|e| panic!("sox is needed for this test (`make deps` installs it): {e}"));
    assert!(
        out.status.success(),
        "sox {args:?} -> {} failed (for MP3, sox needs libsox-fmt-mp3: `make deps`): {}",
        output.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `analyze --json` on `file`; returns the document, having checked exit status 0.
fn analyze_json(file: &Path) -> serde_json::Value {
    let out = probe()
        .arg("analyze")
        .arg(file)
        .args(["--seed", SEED, "--direction", "output", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: expected the signature detected (exit 0); stdout {} stderr {}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Makes `name` from the signature with sox `args`, analyses it, and checks the signature
/// is detected at its place, the file's format is named and the rate is as made.
fn detected_in(name: &str, args: &[&str], format_contains: &str, rate_hz: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let sig = signature(tmp.path());
    let file = tmp.path().join(name);
    sox(&sig, args, &file);
    let v = analyze_json(&file);
    assert_eq!(v["schema_version"], 2);
    assert!(
        v["format"].as_str().unwrap().contains(format_contains),
        "{name}: format {}",
        v["format"]
    );
    assert_eq!(v["sample_rate_hz"], rate_hz, "{name}");
    assert_eq!(v["result"]["detected"], true, "{name}");
    assert_eq!(v["best_channel"], 1, "{name}");
    // 600 ms in; MP3 without a gapless tag starts late by the encoder's delay (~25 ms).
    let onset = v["result"]["onset_ms"].as_f64().unwrap();
    assert!((590.0..640.0).contains(&onset), "{name}: onset {onset} ms");
}

#[test]
fn pcm_16_bit_wav_is_detected() {
    detected_in("s16.wav", &["-b", "16"], "PCM", 48_000);
}

#[test]
fn mu_law_wav_is_detected() {
    detected_in(
        "ulaw-8kHz.wav",
        &["-r", "8000", "-e", "u-law"],
        "Mu-law",
        8_000,
    );
}

#[test]
fn a_law_wav_is_detected() {
    detected_in(
        "alaw-8kHz.wav",
        &["-r", "8000", "-e", "a-law"],
        "A-law",
        8_000,
    );
}

#[test]
fn ima_adpcm_wav_is_detected() {
    detected_in(
        "ima-adpcm-16kHz.wav",
        &["-r", "16000", "-e", "ima-adpcm"],
        "IMA",
        16_000,
    );
}

#[test]
fn ms_adpcm_wav_is_detected() {
    detected_in(
        "ms-adpcm-22k05Hz.wav",
        &["-r", "22050", "-e", "ms-adpcm"],
        "Microsoft ADPCM",
        22_050,
    );
}

#[test]
fn float_64_bit_wav_is_detected() {
    detected_in(
        "f64.wav",
        &["-b", "64", "-e", "floating-point"],
        "64-bit",
        48_000,
    );
}

#[test]
fn flac_is_detected() {
    detected_in(
        "sig-44k1Hz.flac",
        &["-b", "24", "-r", "44100"],
        "FLAC",
        44_100,
    );
}

#[test]
fn mp3_is_detected() {
    detected_in("sig-128k.mp3", &["-C", "128"], "MPEG Audio Layer 3", 48_000);
}

#[test]
fn ogg_vorbis_is_detected() {
    detected_in("sig-q4.ogg", &["-C", "4"], "Vorbis", 48_000);
}

/// The channel numbers of the text and the JSON agree, from 1: the signature is on the
/// second of two channels of a FLAC file.
#[test]
fn channels_are_numbered_from_one_in_text_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let sig = signature(tmp.path());
    let file = tmp.path().join("sig-on-channel-2-stereo.flac");
    // Channel 1 silent, channel 2 the signature.
    sox_with_effects(&sig, &["-b", "16"], &file, &["remix", "0", "1"]);
    let v = analyze_json(&file);
    assert_eq!(v["channels"], 2);
    assert_eq!(v["best_channel"], 2);
    let per: Vec<(u64, bool)> = v["per_channel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel"].as_u64().unwrap(),
                c["result"]["detected"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(per, [(1, false), (2, true)]);
    probe()
        .arg("analyze")
        .arg(&file)
        .args(["--seed", SEED, "--direction", "output"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains(
            "channel      2 of 2 (numbered from 1",
        ));
}

#[test]
fn an_unsupported_codec_or_container_is_named_with_what_is_supported() {
    let tmp = tempfile::tempdir().unwrap();
    let sig = signature(tmp.path());
    let gsm = tmp.path().join("gsm.wav");
    sox(&sig, &["-r", "8000", "-e", "gsm-full-rate"], &gsm);
    let aiff = tmp.path().join("sig.aiff");
    sox(&sig, &["-b", "16"], &aiff);
    for (file, what) in [
        (
            &gsm,
            "gsm.wav: WAV with GSM 6.10 (format tag 0x0031) audio is not supported",
        ),
        (&aiff, "sig.aiff: AIFF is not supported"),
    ] {
        probe()
            .arg("analyze")
            .arg(file)
            .args(["--seed", SEED, "--direction", "output"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(what))
            .stderr(predicates::str::contains(
                "expected WAV (8/16/24/32-bit integer, 32/64-bit float, µ-law, A-law, IMA or \
                 Microsoft ADPCM), FLAC, MP3 or Ogg Vorbis",
            ));
    }
}

#[test]
fn truncated_and_empty_files_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let sig = signature(tmp.path());
    let flac = tmp.path().join("whole.flac");
    sox(&sig, &["-b", "16"], &flac);
    let bytes = std::fs::read(&flac).unwrap();
    let cut = tmp.path().join("cut.flac");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let empty = tmp.path().join("empty.ogg");
    std::fs::write(&empty, b"").unwrap();
    for (file, what) in [
        (&cut, "cut.flac ends early (truncated) after"),
        (
            &empty,
            "empty.ogg holds no audio (the file is 0 bytes long)",
        ),
    ] {
        probe()
            .arg("analyze")
            .arg(file)
            .args(["--seed", SEED, "--direction", "output"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(what));
    }
}
