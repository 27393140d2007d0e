//! The probe's fuzz targets run on stable: each gets mutations of real inputs for a few
//! seconds (`EARSHOT_FUZZ_SECS`, 2 by default). A panic saves its input under
//! `target/fuzz-failures/` and names it; replay it with the libFuzzer crate (`probe/fuzz`)
//! or by calling the target on the file.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::path::PathBuf;

use earshot_probe::fuzzing::{self, budget, drive};
use earshot_probe::signal::{Direction, Signature};
use earshot_probe::wav::{self, Audio, WavEncoding};

fn failures() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures")
}

/// A recording of a signature, short, in each WAV encoding: what `analyze` reads.
fn recordings() -> Vec<Vec<u8>> {
    let samples = Signature::new(1, Direction::Output).render(8000).unwrap();
    let audio = Audio::mono(8000, samples[..4000].to_vec());
    let mut seeds: Vec<Vec<u8>> = [WavEncoding::I16, WavEncoding::F32]
        .into_iter()
        .map(|e| wav::to_bytes(&audio, e).unwrap())
        .collect();
    // The heads of the other containers the reader knows.
    for head in [
        &b"fLaC\0\0\0\x22"[..],
        b"OggS\0\x02",
        b"ID3\x04\0\0\0\0\0\0",
        b"\xff\xfb\x90\x64",
    ] {
        let mut s = head.to_vec();
        s.extend_from_slice(&seeds[0][44..200]);
        seeds.push(s);
    }
    seeds
}

#[test]
fn analyze_input_survives_mutated_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.wav");
    let dictionary: [&[u8]; 8] = [
        b"RIFF", b"WAVE", b"fmt ", b"data", b"LIST", b"fact", b"fLaC", b"OggS",
    ];
    let mut opened = 0u64;
    let d = drive(
        "analyze_input",
        &recordings(),
        &dictionary,
        budget(),
        &failures(),
        |data| {
            std::fs::write(&file, data).unwrap();
            opened += u64::from(fuzzing::analyze_file(&file));
        },
    );
    // The mutations reach the decoders and the detectors, not only the header checks.
    assert!(
        d.runs > 10 && opened * 10 > d.runs,
        "{opened} opened: {d:?}"
    );
    eprintln!("analyze_input: {} inputs, {opened} opened", d.runs);
}

#[test]
fn the_frame_decoder_and_the_sealed_channel_survive_mutated_frames() {
    let mut frame = Vec::new();
    let body = br#"{"kind":"info"}"#;
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    let seeds = vec![
        frame.clone(),
        [frame.clone(), frame].concat(),
        vec![1, 0, 0],
    ];
    for (name, target) in [
        ("frame_decoder", fuzzing::frame_decoder as fn(&[u8])),
        ("sealed_frame", fuzzing::sealed_frame),
    ] {
        let d = drive(
            name,
            &seeds,
            &[b"{\"", b"\0\0\0\x10"],
            budget() / 2,
            &failures(),
            target,
        );
        assert!(d.runs > 10, "{name}: {d:?}");
        eprintln!("{name}: {} inputs", d.runs);
    }
}
