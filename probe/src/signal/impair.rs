//! Impairments for offline tests, benches and the offline demo: noise at a stated SNR,
//! band-limiting, resampling and clock drift, level changes, clipping.
//!
//! These model what a redirected path does to a signature. They are not a stand-in for the
//! lab (real audio servers): they let the detector be measured on thousands of cases.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use realfft::RealFftPlanner;

/// Band over which SNR is stated, in Hz.
pub const VOICE_BAND_HZ: (f64, f64) = (300.0, 3_400.0);

/// White Gaussian noise with unit variance, reproducible from `seed`.
pub fn white_noise(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            // Box-Muller.
            let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
            let u2: f64 = rng.gen_range(0.0..1.0);
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

/// Pink (1/f) noise, reproducible from `seed` (white noise through a -3 dB/octave filter).
pub fn pink_noise(len: usize, seed: u64) -> Vec<f32> {
    let white = white_noise(len, seed);
    let (mut b0, mut b1, mut b2, mut b3, mut b4, mut b5, mut b6) =
        (0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    white
        .iter()
        .map(|&w| {
            b0 = 0.99886 * b0 + w * 0.0555179;
            b1 = 0.99332 * b1 + w * 0.0750759;
            b2 = 0.96900 * b2 + w * 0.153_852;
            b3 = 0.86650 * b3 + w * 0.3104856;
            b4 = 0.55000 * b4 + w * 0.5329522;
            b5 = -0.7616 * b5 - w * 0.0168980;
            let out = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
            b6 = w * 0.115926;
            out * 0.11
        })
        .collect()
}

/// Mean power of `x` within `band_hz` (from one FFT over the whole buffer).
pub fn band_power(x: &[f32], rate_hz: u32, band_hz: (f64, f64)) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let n = x.len();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut input: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let mut out = fft.make_output_vec();
    if fft.process(&mut input, &mut out).is_err() {
        return 0.0;
    }
    let hz_per_bin = f64::from(rate_hz) / n as f64;
    let mut sum = 0.0;
    for (k, c) in out.iter().enumerate() {
        let f = k as f64 * hz_per_bin;
        if f >= band_hz.0 && f <= band_hz.1 {
            // One-sided spectrum: every bin but DC and Nyquist stands for two.
            let weight = if k == 0 || 2 * k == n { 1.0 } else { 2.0 };
            sum += weight * c.norm_sqr();
        }
    }
    sum / (n as f64 * n as f64)
}

/// Keeps only `band_hz` (an ideal band-pass, by FFT over the whole buffer).
pub fn band_pass(x: &[f32], rate_hz: u32, band_hz: (f64, f64)) -> Vec<f32> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let mut input: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let mut spec = fwd.make_output_vec();
    if fwd.process(&mut input, &mut spec).is_err() {
        return x.to_vec();
    }
    let hz_per_bin = f64::from(rate_hz) / n as f64;
    for (k, c) in spec.iter_mut().enumerate() {
        let f = k as f64 * hz_per_bin;
        if f < band_hz.0 || f > band_hz.1 {
            *c = realfft::num_complex::Complex64::new(0.0, 0.0);
        }
    }
    spec[0].im = 0.0;
    if let Some(last) = spec.last_mut() {
        last.im = 0.0;
    }
    let mut out = inv.make_output_vec();
    if inv.process(&mut spec, &mut out).is_err() {
        return x.to_vec();
    }
    out.iter().map(|&v| (v / n as f64) as f32).collect()
}

/// Resamples by `ratio` = output rate / input rate with windowed-sinc interpolation (16
/// zero crossings, low-passed below the lower of the two Nyquist rates). Clock drift of
/// `p` ppm is `ratio = 1 / (1 + p·1e-6)` at an unchanged nominal rate: the tones come out
/// `p` ppm higher.
pub fn resample(x: &[f32], ratio: f64) -> Vec<f32> {
    let out_len = (x.len() as f64 * ratio).floor() as usize;
    let cutoff = ratio.min(1.0) * 0.95;
    let half = 16.0 / cutoff;
    let mut out = Vec::with_capacity(out_len);
    for i in 0..out_len {
        let t = i as f64 / ratio;
        let lo = (t - half).ceil().max(0.0) as usize;
        let hi = ((t + half).floor() as usize).min(x.len().saturating_sub(1));
        let mut acc = 0.0;
        for (j, &v) in x.iter().enumerate().take(hi + 1).skip(lo) {
            let d = j as f64 - t;
            let arg = std::f64::consts::PI * d * cutoff;
            let sinc = if d.abs() < 1e-12 {
                1.0
            } else {
                arg.sin() / arg
            };
            let w = 0.5 + 0.5 * (std::f64::consts::PI * d / half).cos();
            acc += f64::from(v) * sinc * w * cutoff;
        }
        out.push(acc as f32);
    }
    out
}

/// Places `signal` at `offset` samples in `total` samples of silence.
pub fn place(signal: &[f32], offset: usize, total: usize) -> Vec<f32> {
    let mut out = vec![0.0; total.max(offset + signal.len())];
    out[offset..offset + signal.len()].copy_from_slice(signal);
    out
}

/// Adds `noise` scaled so that the in-band (300-3400 Hz) SNR of `signal` over
/// `signal_span` (the samples where it plays) is `snr_db`.
pub fn add_noise_at_snr(
    mixed: &mut [f32],
    signal_span: &[f32],
    noise: &[f32],
    rate_hz: u32,
    snr_db: f64,
) {
    let ps = band_power(signal_span, rate_hz, VOICE_BAND_HZ);
    let pn = band_power(noise, rate_hz, VOICE_BAND_HZ).max(1e-30);
    let gain = (ps / pn / 10f64.powf(snr_db / 10.0)).sqrt() as f32;
    for (m, n) in mixed.iter_mut().zip(noise) {
        *m += n * gain;
    }
}

/// Multiplies by `db` of gain.
pub fn gain_db(x: &mut [f32], db: f64) {
    let g = 10f64.powf(db / 20.0) as f32;
    x.iter_mut().for_each(|v| *v *= g);
}

/// Hard-clips at ±`limit`.
pub fn clip(x: &mut [f32], limit: f32) {
    x.iter_mut().for_each(|v| *v = v.clamp(-limit, limit));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_noise_band_power_is_its_share_of_the_spectrum() {
        let x = white_noise(48_000, 1);
        let p = band_power(&x, 48_000, VOICE_BAND_HZ);
        let expected = 3_100.0 / 24_000.0;
        assert!((p / expected - 1.0).abs() < 0.1, "{p} vs {expected}");
    }

    #[test]
    fn resample_keeps_a_tone_and_its_level() {
        let rate = 44_100.0;
        let x: Vec<f32> = (0..44_100)
            .map(|n| (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / rate).sin() as f32 * 0.5)
            .collect();
        let y = resample(&x, 48_000.0 / 44_100.0);
        assert!((y.len() as i64 - 48_000).abs() <= 1);
        let p = band_power(&y[1000..47_000], 48_000, (990.0, 1010.0));
        assert!((p / 0.125 - 1.0).abs() < 0.05, "{p}");
    }
}
