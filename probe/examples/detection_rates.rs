//! Detection rates and false detections over many cases, for BENCHMARKS.md.
//!
//! `cargo run --release -p earshot-probe --example detection_rates [TRIALS]` (default 500).
//! Each case: a signature of a fresh seed at a random offset in white noise at the stated
//! in-band (300-3400 Hz) SNR, then the named impairment.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use earshot_probe::analysis::analyze;
use earshot_probe::signal::impair::{self, VOICE_BAND_HZ};
use earshot_probe::signal::{Direction, Signature};

struct Case {
    name: &'static str,
    rate: u32,
    snr_db: f64,
    play_rate: u32,
    drift_ppm: f64,
    band_pass: bool,
    gain_db: f64,
}

fn case(name: &'static str, rate: u32, snr_db: f64) -> Case {
    Case {
        name,
        rate,
        snr_db,
        play_rate: rate,
        drift_ppm: 0.0,
        band_pass: false,
        gain_db: 0.0,
    }
}

fn run(c: &Case, seed: u64) -> bool {
    let sig = Signature::new(seed, Direction::Output);
    let mut s = sig.render(c.play_rate).expect("supported rate");
    if c.play_rate != c.rate {
        s = impair::resample(&s, f64::from(c.rate) / f64::from(c.play_rate));
    }
    if c.drift_ppm != 0.0 {
        let ppm = if seed.is_multiple_of(2) {
            c.drift_ppm
        } else {
            -c.drift_ppm
        };
        s = impair::resample(&s, 1.0 / (1.0 + ppm * 1e-6));
    }
    let offset = (seed as usize * 7919) % (c.rate as usize / 2) + c.rate as usize / 10;
    let total = offset + s.len() + c.rate as usize / 5;
    let mut x = impair::place(&s, offset, total);
    let noise = impair::white_noise(total, seed.wrapping_mul(31) ^ 0x5eed);
    impair::add_noise_at_snr(&mut x, &s, &noise, c.rate, c.snr_db);
    if c.band_pass {
        x = impair::band_pass(&x, c.rate, VOICE_BAND_HZ);
    }
    impair::gain_db(&mut x, c.gain_db);
    analyze(&x, c.rate, &sig).expect("supported rate").detected
}

fn main() {
    let trials: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let cases = [
        case("-10 dB, 8 kHz", 8_000, -10.0),
        case("-10 dB, 16 kHz", 16_000, -10.0),
        case("-10 dB, 44.1 kHz", 44_100, -10.0),
        case("-10 dB, 48 kHz", 48_000, -10.0),
        case("-10 dB, 96 kHz", 96_000, -10.0),
        Case {
            drift_ppm: 500.0,
            ..case("-10 dB, 48 kHz, ±500 ppm", 48_000, -10.0)
        },
        Case {
            band_pass: true,
            ..case("-10 dB, 16 kHz, 300-3400 Hz band-pass", 16_000, -10.0)
        },
        Case {
            play_rate: 44_100,
            ..case("-10 dB, 44.1 -> 48 kHz", 48_000, -10.0)
        },
        Case {
            play_rate: 48_000,
            ..case("-10 dB, 48 -> 44.1 kHz", 44_100, -10.0)
        },
        Case {
            gain_db: -41.0,
            ..case("-10 dB, 48 kHz, signature at -50 dBFS", 48_000, -10.0)
        },
        case("-12 dB, 48 kHz", 48_000, -12.0),
        case("-15 dB, 48 kHz", 48_000, -15.0),
    ];
    println!("| case | detected | rate |");
    println!("| --- | --- | --- |");
    for c in &cases {
        let hits = (0..trials).filter(|&s| run(c, s + 10_000)).count() as u64;
        println!(
            "| {} | {hits}/{trials} | {:.1} % |",
            c.name,
            100.0 * hits as f64 / trials as f64
        );
    }
}
