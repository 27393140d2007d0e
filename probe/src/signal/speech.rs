//! The speech check's signal and its score: speech-like audio the project makes itself,
//! and a full-reference MOS-LQO of what a path delivers of it (ITU-T P.862.2, wideband
//! PESQ, with the `pesq` crate).
//!
//! # The reference (a contract between the two probes)
//!
//! No recorded speech is shipped (licences): [`render_reference`] synthesises 4 s at
//! 16 kHz, the rate P.862.2 scores at, the same on every machine. Two utterances (a low
//! voice, then a high one) of consonant-vowel syllables, between silences as P.862's voice
//! activity detection expects:
//!
//! - vowels: harmonics of a falling pitch (110-150 Hz, 190-240 Hz) under the envelope of
//!   five formants (F1-F3 of /a e i o u/, F4 3.5 kHz, F5 4.5 kHz), gliding from vowel
//!   to vowel as speech does;
//! - consonants: noise shaped into fricatives (/s/ 4-7.5 kHz, /sh/ 2-6 kHz, /f/
//!   1.5-7.5 kHz) and plosive bursts, from a fixed seed;
//! - the active speech level about -24 dBFS RMS, peaks below -6 dBFS.
//!
//! It is played at the device's rate ([`render`], resampled with a windowed sinc) and
//! scored at 16 kHz.
//!
//! # The score
//!
//! [`score`] brings the recording to 16 kHz, finds the reference in it (cross-correlation
//! of 2 kHz envelopes, so a codec's phase changes do not matter), cuts the recording there
//! to the reference's length, sets its level to the reference's (the level is reported
//! apart: P.862 aligns levels itself) and scores the pair. A clean path reads about 4.6;
//! measured offline against the ITU-T reference implementation in BENCHMARKS.md.

use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

use super::impair;

/// The rate the reference is made and scored at (P.862.2 wideband).
pub const SCORE_RATE_HZ: u32 = 16_000;

/// How long the reference lasts, in ms: about 2.9 s of active speech in two utterances,
/// short enough for a verdict in about 5 s (P.862 asks for no less than 3.2 s of speech
/// file; its scores agree with the ITU-T code's on this length, BENCHMARKS.md).
pub const DURATION_MS: u32 = 4_000;

/// The `info` feature of a probe that plays and scores the speech reference.
pub const FEATURE: &str = "speech";

/// How the score is computed, as reports name it.
pub const METHOD: &str = "ITU-T P.862.2 (wideband PESQ) MOS-LQO";

/// Below this RMS level (dBFS) a recording holds nothing to score.
const SILENCE_DBFS: f64 = -70.0;

/// Why a recording could not be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpeechError {
    /// The recording is shorter than the reference.
    #[error("the recording is {got_ms:.0} ms long; the speech reference needs {need_ms} ms")]
    TooShort {
        /// Its length.
        got_ms: f64,
        /// The reference's.
        need_ms: u32,
    },
    /// The recording is silent.
    #[error("the recording is silent ({rms_dbfs:.0} dBFS RMS): no speech arrived")]
    Silent {
        /// Its level.
        rms_dbfs: f64,
    },
    /// The rate cannot be worked with.
    #[error("{0} Hz: expected 8000 to 192000 Hz")]
    Rate(u32),
    /// The scorer refused the pair (no utterance found in it, most often).
    #[error("the speech score could not be computed: {0}")]
    Score(String),
}

/// What [`score`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeechScore {
    /// The MOS-LQO, from 1.0 (bad) to about 4.64 (no audible difference).
    pub mos_lqo: f64,
    /// How it was computed ([`METHOD`]).
    pub method: String,
    /// Where the reference starts in the recording, in ms.
    pub offset_ms: f64,
    /// The recording's level against the reference's over the reference's span, in dB
    /// (0: as played; the score itself does not depend on it).
    pub level_db: f64,
}

/// A recording's speech analysis as the probe reports it: the best channel's score, or
/// why none could be scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeechReport {
    /// The best channel's score.
    pub score: Option<SpeechScore>,
    /// The best channel, numbered from 1 (0 when none was scored).
    pub channel: usize,
    /// Why no channel could be scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Scores every channel of interleaved `samples` against the speech reference and keeps
/// the best.
pub fn analyze_interleaved(samples: &[f32], channels: u16, rate_hz: u32) -> SpeechReport {
    let n = usize::from(channels.max(1));
    let reference = render_reference();
    let mut best: Option<(usize, SpeechScore)> = None;
    let mut error = None;
    for c in 0..n {
        let plane: Vec<f32> = samples.iter().skip(c).step_by(n).copied().collect();
        match score(&reference, SCORE_RATE_HZ, &plane, rate_hz) {
            Ok(s) if best.as_ref().is_none_or(|(_, b)| s.mos_lqo > b.mos_lqo) => {
                best = Some((c + 1, s));
            }
            Ok(_) => {}
            Err(e) => error = Some(e.to_string()),
        }
    }
    match best {
        Some((channel, s)) => SpeechReport {
            score: Some(s),
            channel,
            error: None,
        },
        None => SpeechReport {
            score: None,
            channel: 0,
            error: Some(error.unwrap_or_else(|| "the recording has no channel".into())),
        },
    }
}

/// A fixed-seed generator, so the reference is the same everywhere.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// F1-F3 of five vowels (Hz, a typical adult voice).
const VOWELS: [[f64; 3]; 5] = [
    [730.0, 1_090.0, 2_440.0],
    [530.0, 1_840.0, 2_480.0],
    [270.0, 2_290.0, 3_010.0],
    [570.0, 840.0, 2_410.0],
    [300.0, 870.0, 2_240.0],
];

/// A consonant: its noise band (Hz), length (ms) and level against the vowels (dB).
const CONSONANTS: [((f64, f64), f64, f64); 4] = [
    ((4_000.0, 7_500.0), 110.0, -14.0), // s
    ((2_000.0, 6_000.0), 100.0, -12.0), // sh
    ((1_500.0, 7_500.0), 90.0, -20.0),  // f
    ((800.0, 5_000.0), 20.0, -6.0),     // a plosive's burst
];

/// Lead-in, each utterance with its voice (pitch from, pitch to, syllables), and the
/// silence after each, in ms.
const LEAD_MS: f64 = 200.0;
const UTTERANCES: [(f64, f64, usize, f64); 2] = [(150.0, 110.0, 6, 400.0), (240.0, 190.0, 6, 0.0)];

/// The speech reference at [`SCORE_RATE_HZ`], [`DURATION_MS`] long.
pub fn render_reference() -> Vec<f32> {
    let rate = f64::from(SCORE_RATE_HZ);
    let total = (f64::from(DURATION_MS) / 1000.0 * rate) as usize;
    let mut out = vec![0.0f64; total];
    let mut rng = Lcg(0x5eec_4e57);
    let ms = |v: f64| (v / 1000.0 * rate) as usize;
    let mut at = ms(LEAD_MS);
    for &(f0_from, f0_to, syllables, pause_ms) in &UTTERANCES {
        // Syllable plan: consonant (or none), vowel, its length.
        let plan: Vec<(Option<usize>, usize, f64)> = (0..syllables)
            .map(|_| {
                let c = (rng.next() < 0.75).then(|| (rng.next() * 4.0) as usize % 4);
                let v = (rng.next() * 5.0) as usize % 5;
                (c, v, 130.0 + rng.next() * 110.0)
            })
            .collect();
        let voiced_ms: f64 = plan
            .iter()
            .map(|(c, _, v)| v + c.map_or(0.0, |c| CONSONANTS[c].1))
            .sum();
        let start = at;
        let span = ms(voiced_ms).max(1);
        let mut prev = VOWELS[plan[0].1];
        for (c, v, vowel_ms) in plan {
            if let Some(c) = c {
                let ((lo, hi), len_ms, db) = CONSONANTS[c];
                let n = ms(len_ms);
                let noise = impair::band_pass(
                    &impair::white_noise(n + 64, (rng.next() * 1e9) as u64),
                    SCORE_RATE_HZ,
                    (lo, hi),
                );
                let gain = 0.12 * 10f64.powf(db / 20.0);
                for i in 0..n {
                    let env = envelope(i, n, ms(8.0));
                    if let Some(o) = out.get_mut(at + i) {
                        *o += gain * env * f64::from(noise[i + 32]);
                    }
                }
                at += n;
            }
            let n = ms(vowel_ms);
            let target = VOWELS[v];
            let mut phases = [0.0f64; 64];
            for i in 0..n {
                // Pitch falls over the utterance; formants glide from the last vowel over
                // the first 40 ms.
                let progress = (at + i - start) as f64 / span as f64;
                let f0 = f0_from + (f0_to - f0_from) * progress.min(1.0);
                let glide = (i as f64 / ms(40.0).max(1) as f64).min(1.0);
                let formants = [
                    prev[0] + (target[0] - prev[0]) * glide,
                    prev[1] + (target[1] - prev[1]) * glide,
                    prev[2] + (target[2] - prev[2]) * glide,
                    3_500.0,
                    4_500.0,
                ];
                let env = envelope(i, n, ms(25.0));
                let mut s = 0.0;
                for (h, phase) in phases.iter_mut().enumerate() {
                    let f = f0 * (h + 1) as f64;
                    if f > 7_000.0 {
                        break;
                    }
                    *phase += 2.0 * std::f64::consts::PI * f / rate;
                    s += phase.sin() * spectral_envelope(f, &formants) / (h + 1) as f64;
                }
                if let Some(o) = out.get_mut(at + i) {
                    *o += 0.01 * env * s;
                }
            }
            prev = target;
            at += n;
        }
        at += ms(pause_ms);
    }
    // The active speech level to about -24 dBFS RMS.
    let active: Vec<f64> = out.iter().copied().filter(|v| v.abs() > 1e-4).collect();
    let rms = (active.iter().map(|v| v * v).sum::<f64>() / active.len().max(1) as f64).sqrt();
    let gain = if rms > 0.0 {
        10f64.powf(-24.0 / 20.0) / rms
    } else {
        1.0
    };
    let peak = out.iter().fold(0.0f64, |m, v| m.max(v.abs())) * gain;
    let gain = if peak > 0.5 { gain * 0.5 / peak } else { gain };
    out.iter().map(|v| (v * gain) as f32).collect()
}

/// A raised-cosine attack and release of `fade` samples over `n`.
fn envelope(i: usize, n: usize, fade: usize) -> f64 {
    let fade = fade.min(n / 2).max(1);
    let x = if i < fade {
        i as f64 / fade as f64
    } else if i + fade >= n {
        (n - i) as f64 / fade as f64
    } else {
        1.0
    };
    0.5 - 0.5 * (std::f64::consts::PI * x.clamp(0.0, 1.0)).cos()
}

/// The gain of a cascade of formant resonances at `f` (each 1 at 0 Hz).
fn spectral_envelope(f: f64, formants: &[f64; 5]) -> f64 {
    const BANDWIDTHS: [f64; 5] = [80.0, 100.0, 140.0, 200.0, 250.0];
    formants
        .iter()
        .zip(BANDWIDTHS)
        .map(|(&ff, b)| {
            let d = (ff * ff - f * f).powi(2) + (f * b).powi(2);
            ff * ff / d.sqrt()
        })
        .product()
}

/// The speech reference at `rate_hz`, to be played.
///
/// # Errors
/// [`SpeechError::Rate`] outside 8-192 kHz.
pub fn render(rate_hz: u32) -> Result<Vec<f32>, SpeechError> {
    if !(8_000..=192_000).contains(&rate_hz) {
        return Err(SpeechError::Rate(rate_hz));
    }
    let r = render_reference();
    Ok(if rate_hz == SCORE_RATE_HZ {
        r
    } else {
        impair::resample(&r, f64::from(rate_hz) / f64::from(SCORE_RATE_HZ))
    })
}

/// Scores `recording` (mono, at `rate_hz`) against `reference` (mono, at `reference_rate_hz`).
///
/// # Errors
/// [`SpeechError`]: a rate out of range, a recording shorter than the reference or silent,
/// or a pair the scorer refuses.
pub fn score(
    reference: &[f32],
    reference_rate_hz: u32,
    recording: &[f32],
    rate_hz: u32,
) -> Result<SpeechScore, SpeechError> {
    let to_score_rate = |x: &[f32], rate: u32| -> Result<Vec<f32>, SpeechError> {
        if !(8_000..=192_000).contains(&rate) {
            return Err(SpeechError::Rate(rate));
        }
        Ok(if rate == SCORE_RATE_HZ {
            x.to_vec()
        } else {
            impair::resample(x, f64::from(SCORE_RATE_HZ) / f64::from(rate))
        })
    };
    let reference = to_score_rate(reference, reference_rate_hz)?;
    let recording = to_score_rate(recording, rate_hz)?;
    let ms = |n: usize| n as f64 * 1000.0 / f64::from(SCORE_RATE_HZ);
    // A recording a little shorter than the reference (a codec's delay, a file trimmed
    // to the reference's length) is scored with its end as silence, which the score
    // counts; one much shorter is not a recording of the reference.
    if recording.len() * 5 < reference.len() * 4 {
        return Err(SpeechError::TooShort {
            got_ms: ms(recording.len()),
            need_ms: ms(reference.len()).round() as u32,
        });
    }
    let mut recording = recording;
    if recording.len() < reference.len() {
        recording.resize(reference.len(), 0.0);
    }
    let rms_dbfs = |x: &[f32]| {
        let p = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64;
        10.0 * p.max(1e-20).log10() + 3.01
    };
    let whole = rms_dbfs(&recording);
    if whole < SILENCE_DBFS {
        return Err(SpeechError::Silent { rms_dbfs: whole });
    }
    let offset = locate(&reference, &recording);
    let cut = &recording[offset..offset + reference.len()];
    let level_db = rms_dbfs(cut) - rms_dbfs(&reference);
    let to_i16 = |x: &[f32], gain: f64| -> Vec<i16> {
        x.iter()
            .map(|&v| {
                (f64::from(v) * gain * 32_767.0)
                    .round()
                    .clamp(-32_768.0, 32_767.0) as i16
            })
            .collect()
    };
    let reference_pcm = to_i16(&reference, 1.0);
    // The recording at the reference's level: quantisation of a quiet path must not count.
    let recording_pcm = to_i16(cut, 10f64.powf(-level_db / 20.0).min(1e4));
    let mos = pesq::pesq_wb(&reference_pcm, &recording_pcm)
        .map_err(|e| SpeechError::Score(e.to_string()))?;
    Ok(SpeechScore {
        mos_lqo: f64::from(mos),
        method: METHOD.into(),
        offset_ms: ms(offset),
        level_db,
    })
}

/// Where `reference` starts in `recording` (both at [`SCORE_RATE_HZ`], the recording at
/// least as long): the peak of the cross-correlation of their envelopes (rectified,
/// averaged over 4 ms, kept at 2 kHz).
fn locate(reference: &[f32], recording: &[f32]) -> usize {
    const STEP: usize = 8;
    let envelope = |x: &[f32]| -> Vec<f32> {
        x.chunks(STEP)
            .map(|c| c.iter().map(|v| v.abs()).sum::<f32>() / STEP as f32)
            .collect()
    };
    let (a, b) = (envelope(reference), envelope(recording));
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    let (ma, mb) = (mean(&a), mean(&b));
    let n = (a.len() + b.len()).next_power_of_two();
    let mut planner = RealFftPlanner::<f32>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let mut x = vec![0.0f32; n];
    let mut y = vec![0.0f32; n];
    for (d, v) in x.iter_mut().zip(&a) {
        *d = v - ma;
    }
    for (d, v) in y.iter_mut().zip(&b) {
        *d = v - mb;
    }
    let mut fx = fwd.make_output_vec();
    let mut fy = fwd.make_output_vec();
    if fwd.process(&mut x, &mut fx).is_err() || fwd.process(&mut y, &mut fy).is_err() {
        return 0;
    }
    // corr[k] = Σ b[i + k] · a[i]: the spectrum of b times the conjugate of a's.
    let mut prod: Vec<_> = fy.iter().zip(&fx).map(|(p, q)| p * q.conj()).collect();
    let mut corr = inv.make_output_vec();
    if inv.process(&mut prod, &mut corr).is_err() {
        return 0;
    }
    let last = b.len().saturating_sub(a.len());
    let best = (0..=last)
        .max_by(|&i, &j| corr[i].total_cmp(&corr[j]))
        .unwrap_or(0);
    (best * STEP).min(recording.len() - reference.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_four_seconds_of_speech_at_a_speech_level() {
        let r = render_reference();
        assert_eq!(r.len(), 64_000);
        let active = r
            .chunks(160)
            .filter(|c| c.iter().any(|v| v.abs() > 1e-4))
            .count();
        assert!(
            (270..=380).contains(&active),
            "{active} active 10 ms blocks"
        );
        assert_eq!(r, render_reference(), "the same every time");
        let peak = r.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak < 0.51 && peak > 0.05, "{peak}");
        // Silence between the utterances, as P.862's voice activity detection expects.
        let quiet = r
            .chunks(1_600)
            .filter(|c| c.iter().all(|v| v.abs() < 1e-6))
            .count();
        assert!(quiet >= 5, "{quiet} silent 100 ms blocks");
    }

    #[test]
    fn a_clean_copy_scores_near_the_top_wherever_it_starts_and_at_any_level() {
        let r = render_reference();
        let at_48k = render(48_000).unwrap();
        let mut rec = impair::place(&at_48k, 48_000 * 7 / 10, at_48k.len() + 96_000);
        impair::gain_db(&mut rec, -20.0);
        let s = score(&r, SCORE_RATE_HZ, &rec, 48_000).unwrap();
        assert!(s.mos_lqo > 4.3, "{s:?}");
        assert!((s.offset_ms - 700.0).abs() < 2.0, "{s:?}");
        assert!((s.level_db + 20.0).abs() < 0.5, "{s:?}");
    }

    #[test]
    fn noise_and_a_narrow_band_score_lower_and_silence_is_said() {
        let r = render_reference();
        let clean = score(&r, SCORE_RATE_HZ, &r, SCORE_RATE_HZ).unwrap().mos_lqo;
        let mut noisy = r.clone();
        let noise = impair::white_noise(noisy.len(), 4);
        for (v, n) in noisy.iter_mut().zip(noise) {
            *v += n * 0.02;
        }
        let noisy = score(&r, SCORE_RATE_HZ, &noisy, SCORE_RATE_HZ)
            .unwrap()
            .mos_lqo;
        let narrow = impair::band_pass(&r, SCORE_RATE_HZ, (300.0, 3_400.0));
        let narrow = score(&r, SCORE_RATE_HZ, &narrow, SCORE_RATE_HZ)
            .unwrap()
            .mos_lqo;
        assert!(
            clean > noisy + 1.0 && clean > narrow + 0.5,
            "{clean} {noisy} {narrow}"
        );
        let silent = vec![0.0f32; r.len()];
        assert!(matches!(
            score(&r, SCORE_RATE_HZ, &silent, SCORE_RATE_HZ),
            Err(SpeechError::Silent { .. })
        ));
        assert!(matches!(
            score(&r, SCORE_RATE_HZ, &r[..1000], SCORE_RATE_HZ),
            Err(SpeechError::TooShort { .. })
        ));
    }
}
