//! Analysis throughput: how many times faster than real time the detector runs on one
//! core, 48 kHz mono, on 10 s and 60 s recordings (a signature near the end, in noise):
//! on samples in memory (`analyze_48k_mono`), and as `analyze` runs it, decoding a 16-bit
//! WAV or a FLAC file block by block into the streaming detectors (`analyze_file_48k_mono`).
//!
//! Criterion reports elements (samples) per second; divide by 48 000 for "× real time".
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::Path;

use earshot_probe::analysis::{analyze, ChannelDetectors};
use earshot_probe::recording::RecordingReader;
use earshot_probe::signal::{impair, Direction, Signature};
use earshot_probe::wav::{self, Audio, WavEncoding};

fn recording(seconds: usize) -> (Vec<f32>, Signature) {
    let rate = 48_000;
    let sig = Signature::new(7, Direction::Output);
    let s = sig.render(rate).expect("48 kHz is supported");
    let total = rate as usize * seconds;
    let mut x = impair::place(&s, total - s.len() - rate as usize / 2, total);
    let noise = impair::white_noise(total, 3);
    impair::add_noise_at_snr(&mut x, &s, &noise, rate, 10.0);
    (x, sig)
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("analyze_48k_mono");
    group.sample_size(10);
    for seconds in [10usize, 60] {
        let (x, sig) = recording(seconds);
        group.throughput(Throughput::Elements(x.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{seconds}s")),
            &x,
            |b, x| {
                b.iter(|| {
                    let a = analyze(x, 48_000, &sig).expect("48 kHz is supported");
                    assert!(a.detected);
                })
            },
        );
    }
    group.finish();
}

/// What `earshot-probe analyze` does with a file, minus printing.
fn analyze_file(path: &Path, sig: &Signature) -> bool {
    let mut reader = RecordingReader::open(path).expect("the bench file reads");
    let info = reader.info().clone();
    let mut d = ChannelDetectors::new(sig, info.sample_rate_hz, info.channels)
        .expect("48 kHz is supported");
    while let Some(planes) = reader.next_block().expect("the bench file decodes") {
        d.push_planar(planes);
    }
    d.analysis().best.detected
}

fn file_throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut group = c.benchmark_group("analyze_file_48k_mono");
    group.sample_size(10);
    for seconds in [10usize, 60] {
        let (x, sig) = recording(seconds);
        let frames = x.len() as u64;
        let wav_path = dir
            .path()
            .join(format!("bench-{seconds}s-48kHz-s16-mono.wav"));
        wav::write(&wav_path, &Audio::mono(48_000, x), WavEncoding::I16).expect("writable");
        let mut files = vec![("wav-s16", wav_path.clone())];
        // FLAC when sox is there to make it (`make deps` installs it).
        let flac_path = dir
            .path()
            .join(format!("bench-{seconds}s-48kHz-s16-mono.flac"));
        let made = std::process::Command::new("sox")
            .arg(&wav_path)
            .arg(&flac_path)
            .status()
            .is_ok_and(|s| s.success());
        if made {
            files.push(("flac", flac_path));
        } else {
            eprintln!("sox is missing (`make deps`): the FLAC case is skipped");
        }
        group.throughput(Throughput::Elements(frames));
        for (kind, path) in files {
            group.bench_with_input(
                BenchmarkId::new(kind, format!("{seconds}s")),
                &path,
                |b, path| b.iter(|| assert!(analyze_file(path, &sig))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, throughput, file_throughput);
criterion_main!(benches);
