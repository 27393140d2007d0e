//! Signatures: the seeded tone sequences the probes play.
//!
//! # Format (a contract between the two probes; a golden test pins it)
//!
//! - A signature is [`SYMBOLS`] symbols of [`SYMBOL_MS`] ms each, back to back:
//!   16 × 45 ms = 720 ms.
//! - Each symbol plays [`TONES_PER_SYMBOL`] = 2 distinct tones at once, each at amplitude
//!   [`TONE_AMPLITUDE`] (the pair peaks at -6 dBFS; RMS -9 dBFS on the AES17 scale where a
//!   full-scale sine is 0 dBFS), with a raised-cosine fade of [`FADE_MS`] ms at both ends of
//!   every symbol, so symbol changes never click.
//! - Tones come from an alphabet per direction: [`OUTPUT_ALPHABET_HZ`] and
//!   [`CAPTURE_ALPHABET_HZ`], 13 frequencies each, all inside 300-3400 Hz (the band every
//!   RDP quality mode and voice codec keeps), at least 15 Hz from every multiple of 50 Hz
//!   and 60 Hz (mains hum and its harmonics), at least 100 Hz from any tone of either
//!   alphabet and 200 Hz within one. The two alphabets are disjoint, so echo from one
//!   direction is never credited to the other.
//! - Symbols come from a ChaCha8 generator seeded with `seed ^ DIRECTION_SALT`: for each
//!   symbol, two distinct alphabet indices, drawn again until neither was used by the
//!   previous symbol. Starting phases are drawn from the same generator.
//!
//! A stale signature from an earlier run or another seed does not match: the detector
//! looks for this exact sequence.

pub mod continuity;
pub mod impair;
pub mod quality;
pub mod speech;

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Symbols per signature.
pub const SYMBOLS: usize = 16;
/// Length of one symbol in ms.
pub const SYMBOL_MS: u32 = 45;
/// Tones played together in one symbol.
pub const TONES_PER_SYMBOL: usize = 2;
/// Peak amplitude of each tone (full scale = 1.0).
pub const TONE_AMPLITUDE: f32 = 0.25;

/// The level a signature is played at, dBFS on the AES17 scale (its two tones of
/// [`TONE_AMPLITUDE`] each): what a path that neither attenuates nor amplifies delivers.
pub const SIGNATURE_LEVEL_DBFS: f64 = -9.0;
/// Raised-cosine fade at each end of a symbol, in ms.
pub const FADE_MS: f64 = 4.0;
/// Lowest and highest rate a signature can be rendered at, in Hz.
pub const RATE_RANGE_HZ: (u32, u32) = (8_000, 192_000);

/// Tones of the `output` check, in Hz.
pub const OUTPUT_ALPHABET_HZ: [f64; 13] = [
    320.0, 565.0, 815.0, 1035.0, 1275.0, 1515.0, 1765.0, 2015.0, 2235.0, 2475.0, 2715.0, 2965.0,
    3215.0,
];
/// Tones of the `capture` check, in Hz.
pub const CAPTURE_ALPHABET_HZ: [f64; 13] = [
    435.0, 675.0, 915.0, 1165.0, 1415.0, 1635.0, 1875.0, 2115.0, 2365.0, 2615.0, 2835.0, 3075.0,
    3315.0,
];

/// Which check a signature belongs to. The two use disjoint tone alphabets, so echo from
/// one direction is never credited to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Session plays, client hears (output redirection).
    Output,
    /// Client plays into its microphone feed, session records (capture redirection).
    Capture,
}

impl Direction {
    /// The tone alphabet of this direction.
    pub fn alphabet_hz(self) -> &'static [f64; 13] {
        match self {
            Direction::Output => &OUTPUT_ALPHABET_HZ,
            Direction::Capture => &CAPTURE_ALPHABET_HZ,
        }
    }

    fn salt(self) -> u64 {
        match self {
            Direction::Output => 0x6f75_7470_7574_0001,
            Direction::Capture => 0x6361_7074_7572_0002,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Output => "output",
            Direction::Capture => "capture",
        })
    }
}

/// A direction name that is neither `output` nor `capture`.
#[derive(Debug, thiserror::Error)]
#[error("unknown direction {0:?}: expected \"output\" or \"capture\"")]
pub struct ParseDirectionError(String);

impl FromStr for Direction {
    type Err = ParseDirectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "output" => Ok(Direction::Output),
            "capture" => Ok(Direction::Capture),
            other => Err(ParseDirectionError(other.to_string())),
        }
    }
}

/// One symbol: tones played together for one symbol period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symbol {
    /// The tone frequencies of this symbol, in Hz.
    pub tones_hz: Vec<f64>,
    /// Index of each tone in its direction's alphabet.
    pub tone_index: Vec<usize>,
    /// Starting phase of each tone, in radians.
    pub phases_rad: Vec<f64>,
}

/// A signature: the symbols derived from a seed for one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    seed: u64,
    direction: Direction,
    symbols: Vec<Symbol>,
}

/// A sample rate a signature cannot be rendered at.
#[derive(Debug, thiserror::Error)]
#[error("unsupported sample rate {0} Hz: expected 8000 to 192000 Hz")]
pub struct RateError(pub u32);

impl Signature {
    /// Derives the signature of `seed` for `direction` (pure: same inputs, same symbols).
    pub fn new(seed: u64, direction: Direction) -> Signature {
        let alphabet = direction.alphabet_hz();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ direction.salt());
        let mut symbols = Vec::with_capacity(SYMBOLS);
        let mut previous: [usize; TONES_PER_SYMBOL] = [usize::MAX; TONES_PER_SYMBOL];
        for _ in 0..SYMBOLS {
            let pick = loop {
                let a = rng.gen_range(0..alphabet.len());
                let b = rng.gen_range(0..alphabet.len());
                if a != b && !previous.contains(&a) && !previous.contains(&b) {
                    break [a.min(b), a.max(b)];
                }
            };
            previous = pick;
            let phases_rad = (0..TONES_PER_SYMBOL)
                .map(|_| rng.gen_range(0.0..(2.0 * PI)))
                .collect();
            symbols.push(Symbol {
                tones_hz: pick.iter().map(|&i| alphabet[i]).collect(),
                tone_index: pick.to_vec(),
                phases_rad,
            });
        }
        Signature {
            seed,
            direction,
            symbols,
        }
    }

    /// The seed it was derived from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The direction it belongs to.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Its symbols, in play order.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// How long it plays (every signature plays for [`Signature::DURATION`]).
    pub fn duration(&self) -> Duration {
        Duration::from_millis(u64::from(SYMBOL_MS) * self.symbols.len() as u64)
    }

    /// How long any signature plays: [`SYMBOLS`] symbols of [`SYMBOL_MS`].
    pub const DURATION: Duration = Duration::from_millis(SYMBOL_MS as u64 * SYMBOLS as u64);

    /// Samples one symbol lasts at `sample_rate_hz` (rounded; every symbol has this length).
    pub fn symbol_samples(sample_rate_hz: u32) -> usize {
        (f64::from(sample_rate_hz) * f64::from(SYMBOL_MS) / 1000.0).round() as usize
    }

    /// Renders it as mono f32 samples in [-1, 1].
    ///
    /// # Errors
    /// [`RateError`] outside 8-192 kHz.
    pub fn render(&self, sample_rate_hz: u32) -> Result<Vec<f32>, RateError> {
        if !(RATE_RANGE_HZ.0..=RATE_RANGE_HZ.1).contains(&sample_rate_hz) {
            return Err(RateError(sample_rate_hz));
        }
        let rate = f64::from(sample_rate_hz);
        let per_symbol = Signature::symbol_samples(sample_rate_hz);
        let fade = ((FADE_MS / 1000.0) * rate).round().max(1.0) as usize;
        let mut out = Vec::with_capacity(per_symbol * self.symbols.len());
        for symbol in &self.symbols {
            for n in 0..per_symbol {
                let t = n as f64 / rate;
                let mut v = 0.0;
                for (f, p) in symbol.tones_hz.iter().zip(&symbol.phases_rad) {
                    v += (2.0 * PI * f * t + p).sin();
                }
                let edge = n.min(per_symbol - 1 - n);
                let gain = if edge < fade {
                    0.5 - 0.5 * (PI * (edge as f64 + 0.5) / fade as f64).cos()
                } else {
                    1.0
                };
                out.push((v * gain * f64::from(TONE_AMPLITUDE)) as f32);
            }
        }
        Ok(out)
    }
}

/// The gain of sample `i` of `n` under a raised-cosine fade of `fade` samples at both ends
/// (the continuity stream and the quality signal; `fade` at least 1 and at most `n / 2`).
pub(crate) fn fade_gain(i: usize, n: usize, fade: usize) -> f64 {
    let edge = i.min(n - 1 - i);
    if edge < fade {
        0.5 - 0.5 * (PI * edge as f64 / fade as f64).cos()
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_near_mains(f: f64) -> bool {
        [50.0, 60.0].iter().any(|m| {
            let r = f % m;
            r.min(m - r) < 15.0
        })
    }

    #[test]
    fn alphabets_are_disjoint_in_band_and_clear_of_mains_harmonics() {
        let mut all: Vec<f64> = OUTPUT_ALPHABET_HZ
            .iter()
            .chain(CAPTURE_ALPHABET_HZ.iter())
            .copied()
            .collect();
        all.sort_by(f64::total_cmp);
        for w in all.windows(2) {
            assert!(w[1] - w[0] >= 100.0, "{} and {} too close", w[0], w[1]);
        }
        for f in &all {
            assert!((300.0..=3400.0).contains(f), "{f} outside the voice band");
            assert!(!is_near_mains(*f), "{f} is near a mains harmonic");
        }
        for a in [&OUTPUT_ALPHABET_HZ, &CAPTURE_ALPHABET_HZ] {
            for w in a.windows(2) {
                assert!(w[1] - w[0] >= 200.0);
            }
        }
    }

    #[test]
    fn signature_is_pure_and_lasts_at_most_800_ms() {
        let a = Signature::new(42, Direction::Output);
        assert_eq!(a, Signature::new(42, Direction::Output));
        assert_ne!(a, Signature::new(43, Direction::Output));
        assert!(a.duration() <= Duration::from_millis(800));
        assert_eq!(a.symbols().len(), SYMBOLS);
    }

    #[test]
    fn symbols_never_reuse_a_tone_of_the_previous_symbol() {
        for seed in 0..200 {
            for dir in [Direction::Output, Direction::Capture] {
                let s = Signature::new(seed, dir);
                for w in s.symbols().windows(2) {
                    for t in &w[1].tone_index {
                        assert!(!w[0].tone_index.contains(t), "seed {seed}");
                    }
                    assert_ne!(w[1].tone_index[0], w[1].tone_index[1]);
                }
            }
        }
    }

    /// The format is a contract between the probes: if this changes, probes of different
    /// versions stop recognising each other. Change it only with the protocol version.
    #[test]
    fn golden_signatures_never_drift() {
        let render = |seed, dir| -> String {
            Signature::new(seed, dir)
                .symbols()
                .iter()
                .map(|s| format!("{}+{}", s.tones_hz[0], s.tones_hz[1]))
                .collect::<Vec<_>>()
                .join(" ")
        };
        insta::assert_snapshot!("seed_1_output", render(1, Direction::Output));
        insta::assert_snapshot!("seed_1_capture", render(1, Direction::Capture));
        insta::assert_snapshot!("seed_max_output", render(u64::MAX, Direction::Output));
        insta::assert_snapshot!(
            "seed_1_output_samples_8k",
            format!(
                "{:?}",
                &Signature::new(1, Direction::Output).render(8000).unwrap()[100..108]
            )
        );
    }

    #[test]
    fn render_has_no_clicks_and_stays_in_range() {
        for rate in [8_000, 44_100, 48_000, 192_000] {
            let x = Signature::new(7, Direction::Capture).render(rate).unwrap();
            assert_eq!(x.len(), SYMBOLS * Signature::symbol_samples(rate));
            assert!(x.iter().all(|v| v.abs() <= 0.5 + 1e-6));
            assert!(x[0].abs() < 0.05 && x[x.len() - 1].abs() < 0.05);
            // The largest sample-to-sample step stays that of the highest tone (no jumps).
            let max_step = x
                .windows(2)
                .map(|w| (w[1] - w[0]).abs())
                .fold(0.0, f32::max);
            let bound = 2.0 * 0.25 * 2.0 * std::f32::consts::PI * 3400.0 / rate as f32 * 1.05;
            assert!(max_step <= bound, "rate {rate}: step {max_step} > {bound}");
        }
        assert!(Signature::new(1, Direction::Output).render(4000).is_err());
    }
}
