//! The quality probe signal, and the analysis that says how much of the audio a path keeps.
//!
//! # The signal (a contract between the two probes)
//!
//! 1.15 s, mono, in three parts, each with a raised-cosine fade of [`FADE_MS`] at both ends:
//!
//! 1. **Full** ([`FULL_MS`]): [`TONES_HZ`], 17 tones from 257 Hz to 18979 Hz at once, each
//!    at peak amplitude [`TONE_AMPLITUDE`] (-26 dBFS), with Schroeder phases (the sum
//!    peaks near -4 dBFS). The tones sit below and above the band edge of
//!    every sample rate a path may run at (8, 16, 22.05, 32 and 44.1 kHz), and none is an
//!    octave of another.
//! 2. **Silence** ([`SILENCE_MS`]): the path's noise floor.
//! 3. **Step** ([`STEP_MS`]): the same tones 20 dB lower ([`STEP_DB`]): a path that compresses
//!    or gates the level shows it.
//!
//! # The analysis
//!
//! Frames of about 40 ms (a power of two), a quarter frame apart, windowed with a 4-term
//! Blackman-Harris window (side lobes 92 dB down), so a tone leaks nowhere past
//! [`TONE_HALF_WIDTH`] bins either side of its own.
//!
//! - **Finding the signal.** A frame is a *tone frame* when the tones' bins hold more than
//!   60 % of its power, at least 6 of the 8 tones at or below 3.4 kHz (what even an 8 kHz
//!   path keeps) hold 2 % each, and it is above -70 dBFS. The first run of tone frames at least [`MIN_FULL_MS`] long is the full part,
//!   the next run after at least 100 ms the step part.
//! - **Tones.** The full part's frames that lie wholly inside it are averaged; a tone's
//!   level is the power in its bins. The *reference* is the median level of the 8 low tones;
//!   a tone is **carried** when it is within 20 dB of the reference and 10 dB above the
//!   noise around it.
//! - **Band edge**: the highest carried tone, and the next tone above it that was not; the
//!   **rate class** follows from it (a path at rate R keeps nothing above R/2): fullband
//!   (44.1 kHz or more) when 18979 Hz is carried, 32 kHz when 13999 Hz is, 22.05 kHz when
//!   10009 Hz is, 16 kHz when 6791 Hz is, 8 kHz when 3391 Hz is.
//! - **Holes**: tones below the band edge that were not carried (a codec that drops bands).
//! - **SINAD** (multitone): the carried tones' power over the power between them, from
//!   150 Hz to halfway past the band edge (noise, distortion, aliasing and codec noise
//!   together). 16-bit PCM through resamplers measures 60 dB and more; G.711 (µ-law)
//!   about 38 dB; lossy codecs less where they shape their noise.
//! - **Noise floor**: the RMS of the silence between the two runs (dBFS, a full-scale sine
//!   is 0 dBFS), exact zeros said as digital silence. **Noise under signal**: the noise
//!   between the tones is more than 20 dB above the silence's, in the same bins: noise that
//!   comes with the signal, the mark of a lossy codec or a coarse quantizer.
//! - **Gain**: the reference against the played tone level. **Step**: the step part's low
//!   tones against the full part's, against the played -20 dB.
//! - **Speed**: a signal not found as played is looked for at half and twice its speed
//!   ([`OTHER_SPEEDS`]); found there, it is reported with its speed, the wrong-speed sign
//!   and the poor class (the audio is unusable, whatever its band).
//!
//! # Classes (the rules, in [`QualityClass::of`])
//!
//! | class | band edge (rate class) | SINAD | holes | what it is |
//! |---|---|---|---|---|
//! | high | fullband (≥ 44.1 kHz) | ≥ [`HIGH_MIN_SINAD_DB`] dB | none | uncompressed PCM, as MS-RDPEA's high quality |
//! | medium | ≥ 16 kHz rate (6.8 kHz carried) | ≥ [`MEDIUM_MIN_SINAD_DB`] dB | any | a fixed compressed or reduced format that keeps wideband audio |
//! | low | ≥ 8 kHz rate (3.4 kHz carried) | ≥ [`LOW_MIN_SINAD_DB`] dB | any | telephone-grade: speech survives |
//! | poor | anything less | | | |
//!
//! What the classes cannot tell: a codec transparent on this signal (MP3 at 320 kbit/s
//! measures 68 dB) reads as high, as a listener would hear it; measured offline, 16-bit PCM
//! through sox's resampler reads 78 dB and more, G.711 37 dB, MP3 at 128 kbit/s 44 dB, Opus
//! at 64 kbit/s 27 dB (probe/tests/offline_checks.rs, BENCHMARKS.md).
//!
//! Size: about 850 lines, one reason: the signal and its analysis are a contract (the
//! same constants on both sides), kept in one file so neither changes without the
//! other. Its tests are in `quality/tests.rs`.

use std::f64::consts::PI;
use std::fmt::Write as _;

use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

/// The name of this ability in a probe's `info` features.
pub const FEATURE: &str = "quality";

/// The tones, in Hz.
pub const TONES_HZ: [f64; 17] = [
    257.0, 487.0, 997.0, 1511.0, 2039.0, 2473.0, 3001.0, 3391.0, 4603.0, 5519.0, 6791.0, 9013.0,
    10009.0, 11987.0, 13999.0, 16993.0, 18979.0,
];
/// How many of [`TONES_HZ`], from the lowest, every path that carries speech keeps (≤ 3.4 kHz).
pub const LOW_TONES: usize = 8;
/// Peak amplitude of each tone (full scale = 1.0): -26 dBFS.
pub const TONE_AMPLITUDE: f64 = 0.05;
/// Length of the full part, in ms.
pub const FULL_MS: u32 = 600;
/// Length of the silence, in ms.
pub const SILENCE_MS: u32 = 250;
/// Length of the step part, in ms.
pub const STEP_MS: u32 = 300;
/// The step part's level against the full part's, in dB.
pub const STEP_DB: f64 = -20.0;
/// Raised-cosine fade at each end of each part, in ms.
pub const FADE_MS: f64 = 10.0;
/// The shortest run of tone frames taken as the full part, in ms.
pub const MIN_FULL_MS: f64 = 300.0;
/// Bins either side of a tone's own that belong to it (the window's main lobe is ±4).
pub const TONE_HALF_WIDTH: usize = 5;
/// Least SINAD of the high class, in dB.
pub const HIGH_MIN_SINAD_DB: f64 = 60.0;
/// Least SINAD of the medium class, in dB.
pub const MEDIUM_MIN_SINAD_DB: f64 = 20.0;
/// Least SINAD of the low class, in dB.
pub const LOW_MIN_SINAD_DB: f64 = 10.0;

/// A carried tone is within this many dB of the reference...
const CARRIED_WITHIN_DB: f64 = 20.0;
/// ...and this many dB above the noise in the bins around it.
const CARRIED_OVER_NOISE_DB: f64 = 10.0;
/// Share of a frame's power the tones hold in a tone frame...
const TONE_FRAME_SHARE: f64 = 0.6;
/// ...with at least this many low tones holding this share each (noise puts about 1 % of
/// its power in a tone's bins).
const LOW_TONES_HEARD: usize = 6;
const LOW_TONE_SHARE: f64 = 0.02;
/// Least level of a tone frame, in dBFS.
const TONE_FRAME_FLOOR_DB: f64 = -70.0;
/// Noise between the tones this far above the silence's is noise that comes with the signal.
const NOISE_UNDER_SIGNAL_DB: f64 = 20.0;
/// A step this far from [`STEP_DB`] is a path that changes the level.
const STEP_TOLERANCE_DB: f64 = 3.0;
/// Lowest level reported, in dBFS (exact zeros are said as digital silence).
const FLOOR_DB: f64 = -140.0;

/// The signal's length.
pub fn duration_ms() -> u32 {
    FULL_MS + SILENCE_MS + STEP_MS
}

/// Renders the quality probe signal at `rate_hz`. Tones at or above the rate's Nyquist
/// frequency are left out (they cannot be played at that rate; the analysis says so).
pub fn render(rate_hz: u32) -> Vec<f32> {
    let rate = f64::from(rate_hz.max(1));
    let count = |ms: u32| (f64::from(ms) / 1000.0 * rate).round() as usize;
    let mut out = Vec::with_capacity(count(duration_ms()));
    out.extend(multitone(rate, count(FULL_MS), 1.0));
    out.resize(out.len() + count(SILENCE_MS), 0.0);
    out.extend(multitone(rate, count(STEP_MS), 10f64.powf(STEP_DB / 20.0)));
    out
}

/// Schroeder phase of tone `k` of `n`: keeps the sum's peak low.
fn schroeder_phase(k: usize, n: usize) -> f64 {
    PI * (k * k) as f64 / n as f64
}

fn multitone(rate: f64, n: usize, gain: f64) -> Vec<f32> {
    let fade = ((FADE_MS / 1000.0 * rate) as usize).min(n / 2).max(1);
    let tones: Vec<(f64, f64)> = TONES_HZ
        .iter()
        .enumerate()
        .filter(|(_, &f)| f < rate / 2.0)
        .map(|(k, &f)| (2.0 * PI * f / rate, schroeder_phase(k, TONES_HZ.len())))
        .collect();
    (0..n)
        .map(|i| {
            let g = super::fade_gain(i, n, fade);
            let t = i as f64;
            let s: f64 = tones.iter().map(|(w, p)| (w * t + p).sin()).sum();
            (TONE_AMPLITUDE * gain * g * s) as f32
        })
        .collect()
}

/// The quality class of a path, best first in [`QualityClass::rank`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityClass {
    /// Less than telephone-grade, or no signal.
    Poor,
    /// Telephone-grade (an 8 kHz path or better, speech survives).
    Low,
    /// Wideband audio through a compressed or reduced format.
    Medium,
    /// Fullband, clean: uncompressed PCM.
    High,
}

impl QualityClass {
    /// The class a measurement falls in (the table in the module's documentation).
    pub fn of(r: &QualityReport) -> QualityClass {
        if !r.found {
            return QualityClass::Poor;
        }
        let sinad = r.sinad_db.unwrap_or(f64::NEG_INFINITY);
        let top = r.band_edge_hz.unwrap_or(0.0);
        if top >= TONES_HZ[16] && sinad >= HIGH_MIN_SINAD_DB && r.holes_hz.is_empty() {
            QualityClass::High
        } else if top >= TONES_HZ[10] && sinad >= MEDIUM_MIN_SINAD_DB {
            QualityClass::Medium
        } else if top >= TONES_HZ[LOW_TONES - 1] && sinad >= LOW_MIN_SINAD_DB {
            QualityClass::Low
        } else {
            QualityClass::Poor
        }
    }

    /// The class, in one word.
    pub fn words(self) -> &'static str {
        match self {
            QualityClass::High => "high",
            QualityClass::Medium => "medium",
            QualityClass::Low => "low",
            QualityClass::Poor => "poor",
        }
    }

    /// What the class means, for a report.
    pub fn meaning(self) -> &'static str {
        match self {
            QualityClass::High => "fullband and clean, as uncompressed PCM",
            QualityClass::Medium => "wideband through a compressed or reduced format",
            QualityClass::Low => "telephone-grade: speech survives, music does not",
            QualityClass::Poor => "below telephone grade",
        }
    }
}

/// The sample rate class the band edge shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateClass {
    /// Not even 3.4 kHz carried.
    BelowTelephone,
    /// 8 kHz (narrowband, telephone).
    Rate8k,
    /// 16 kHz (wideband).
    Rate16k,
    /// 22.05 or 24 kHz.
    Rate22k,
    /// 32 kHz (super-wideband).
    Rate32k,
    /// 44.1 kHz or more (fullband).
    Fullband,
}

impl RateClass {
    fn of(band_edge_hz: f64) -> RateClass {
        let at = |i: usize| band_edge_hz >= TONES_HZ[i];
        if at(16) {
            RateClass::Fullband
        } else if at(14) {
            RateClass::Rate32k
        } else if at(12) {
            RateClass::Rate22k
        } else if at(10) {
            RateClass::Rate16k
        } else if at(LOW_TONES - 1) {
            RateClass::Rate8k
        } else {
            RateClass::BelowTelephone
        }
    }

    /// The rate class, in words.
    pub fn words(self) -> &'static str {
        match self {
            RateClass::BelowTelephone => "below telephone band",
            RateClass::Rate8k => "8 kHz (narrowband)",
            RateClass::Rate16k => "16 kHz (wideband)",
            RateClass::Rate22k => "22.05/24 kHz",
            RateClass::Rate32k => "32 kHz (super-wideband)",
            RateClass::Fullband => "44.1 kHz or more (fullband)",
        }
    }
}

/// A sign that the path runs the audio through a lossy or reduced format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecSign {
    /// The band stops below fullband.
    BandLimited,
    /// Tones missing below the band edge.
    SpectralHoles,
    /// Noise that comes and goes with the signal.
    NoiseUnderSignal,
    /// The -20 dB step came out more than 3 dB off.
    LevelChanged,
    /// The signal arrived at another speed (every tone moved by the same factor): sender
    /// and receiver disagree on the sample rate.
    WrongSpeed,
}

impl CodecSign {
    /// The sign, in words.
    pub fn words(self) -> &'static str {
        match self {
            CodecSign::BandLimited => "band-limited",
            CodecSign::SpectralHoles => "spectral holes",
            CodecSign::NoiseUnderSignal => "noise under the signal",
            CodecSign::LevelChanged => "level step changed",
            CodecSign::WrongSpeed => "wrong speed",
        }
    }
}

/// One tone as heard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ToneLevel {
    /// The tone's frequency.
    pub hz: f64,
    /// Level against the reference (the low tones' median), in dB.
    pub relative_db: f64,
    /// Above the noise in the bins around it, in dB.
    pub over_noise_db: f64,
    /// Within 20 dB of the reference and 10 dB above the noise around it.
    pub carried: bool,
}

/// What the analysis of one channel found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// The signal's full part was found.
    pub found: bool,
    /// The class the figures fall in.
    pub class: QualityClass,
    /// The recording's sample rate, in Hz (it bounds what can be measured).
    pub rate_hz: u32,
    /// Where the full part starts, in ms from the start of the recording.
    pub at_ms: Option<f64>,
    /// The highest carried tone, in Hz.
    pub band_edge_hz: Option<f64>,
    /// The lowest tone above the band edge that was not carried (the edge lies between).
    pub first_missing_hz: Option<f64>,
    /// The sample rate the band edge shows.
    pub rate_class: Option<RateClass>,
    /// Tones below the band edge that were not carried.
    pub holes_hz: Vec<f64>,
    /// Multitone signal to noise-and-distortion, in dB.
    pub sinad_db: Option<f64>,
    /// The silence's RMS, in dBFS (a full-scale sine is 0 dBFS).
    pub noise_floor_dbfs: Option<f64>,
    /// The silence was exact zeros.
    pub digital_silence: bool,
    /// The noise between the tones against the silence's, in the same bins, in dB.
    pub noise_under_signal_db: Option<f64>,
    /// The full part's low tones against what was played, in dB.
    pub gain_db: Option<f64>,
    /// The step part's low tones against the full part's, in dB (played: -20).
    pub step_db: Option<f64>,
    /// Signs of a lossy or reduced format.
    pub codec_signs: Vec<CodecSign>,
    /// The signal arrived at this speed, not its own (0.5: half speed, an octave low).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Every tone, lowest first.
    pub tones: Vec<ToneLevel>,
}

impl QualityReport {
    fn not_found(rate_hz: u32) -> QualityReport {
        QualityReport {
            found: false,
            class: QualityClass::Poor,
            rate_hz,
            at_ms: None,
            band_edge_hz: None,
            first_missing_hz: None,
            rate_class: None,
            holes_hz: Vec::new(),
            sinad_db: None,
            noise_floor_dbfs: None,
            digital_silence: false,
            noise_under_signal_db: None,
            gain_db: None,
            step_db: None,
            codec_signs: Vec::new(),
            speed: None,
            tones: Vec::new(),
        }
    }

    /// Figures to 0.01 (dB, ms): what the measurement can tell, and plain in JSON.
    fn round(&mut self) {
        let r = |v: &mut f64| *v = (*v * 100.0).round() / 100.0;
        let o = |v: &mut Option<f64>| {
            if let Some(v) = v {
                r(v);
            }
        };
        o(&mut self.at_ms);
        o(&mut self.sinad_db);
        o(&mut self.noise_floor_dbfs);
        o(&mut self.noise_under_signal_db);
        o(&mut self.gain_db);
        o(&mut self.step_db);
        for t in &mut self.tones {
            r(&mut t.relative_db);
            r(&mut t.over_noise_db);
        }
    }

    /// One line of figures, for reports.
    pub fn summary(&self) -> String {
        if !self.found {
            return "quality signal not found".into();
        }
        let db = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        let mut s = format!(
            "class {}; band edge {} Hz ({}); SINAD {} dB; noise floor {}; gain {} dB; step {} dB",
            self.class.words(),
            self.band_edge_hz.map_or("-".into(), |v| format!("{v:.0}")),
            self.rate_class.map_or("-", RateClass::words),
            db(self.sinad_db),
            if self.digital_silence {
                "digital silence".to_string()
            } else {
                format!("{} dBFS", db(self.noise_floor_dbfs))
            },
            db(self.gain_db),
            db(self.step_db),
        );
        if !self.holes_hz.is_empty() {
            let holes: Vec<String> = self.holes_hz.iter().map(|h| format!("{h:.0}")).collect();
            let _ = write!(s, "; holes at {} Hz", holes.join(", "));
        }
        if !self.codec_signs.is_empty() {
            let signs: Vec<&str> = self.codec_signs.iter().map(|c| c.words()).collect();
            let _ = write!(s, "; signs: {}", signs.join(", "));
        }
        if let Some(x) = self.speed {
            let _ = write!(s, "; arrived at {x}× speed");
        }
        s
    }
}

/// Analyses every channel of interleaved `samples` and returns the best channel's report
/// (numbered from 0): found first, then the better class, then the higher SINAD.
pub fn analyze_interleaved(samples: &[f32], channels: u16, rate_hz: u32) -> (usize, QualityReport) {
    let n = usize::from(channels.max(1));
    let mut reports: Vec<QualityReport> = (0..n)
        .map(|c| {
            let plane: Vec<f32> = samples.iter().skip(c).step_by(n).copied().collect();
            analyze(&plane, rate_hz)
        })
        .collect();
    let best = best(&reports);
    (best, reports.swap_remove(best))
}

/// The best of several channels' reports (index from 0).
pub fn best(reports: &[QualityReport]) -> usize {
    let key = |r: &QualityReport| (r.found, r.class, r.sinad_db.unwrap_or(f64::MIN));
    let mut best = 0;
    for (i, r) in reports.iter().enumerate().skip(1) {
        let (a, b) = (key(r), key(&reports[best]));
        if (a.0, a.1) > (b.0, b.1) || ((a.0, a.1) == (b.0, b.1) && a.2 > b.2) {
            best = i;
        }
    }
    best
}

/// The frame length for `rate_hz`: the power of two nearest 40 ms, at least 512.
fn frame_len(rate_hz: u32) -> usize {
    let target = f64::from(rate_hz) * 0.04;
    let up = (target.max(512.0) as usize).next_power_of_two();
    if (up as f64 / target) > 1.45 && up > 512 {
        up / 2
    } else {
        up
    }
}

fn blackman_harris(n: usize) -> Vec<f64> {
    let (a0, a1, a2, a3) = (0.35875, 0.48829, 0.14128, 0.01168);
    (0..n)
        .map(|i| {
            let x = 2.0 * PI * i as f64 / n as f64;
            a0 - a1 * x.cos() + a2 * (2.0 * x).cos() - a3 * (3.0 * x).cos()
        })
        .collect()
}

/// Power spectra of frames, scaled so a full-scale sine's bins sum to 1 (0 dBFS).
struct Spectra {
    n: usize,
    rate: f64,
    window: Vec<f64>,
    scale: f64,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f64>>,
    input: Vec<f64>,
    output: Vec<realfft::num_complex::Complex<f64>>,
}

impl Spectra {
    fn new(n: usize, rate: f64) -> Spectra {
        let window = blackman_harris(n);
        // A sine of amplitude 1 puts sum(w)^2 / 4 into each of its two half-spectra
        // peaks, spread over the main lobe by the window's energy: the sum over the lobe of
        // |X|^2 is n * sum(w^2) / 4 (Parseval, one side).
        let energy: f64 = window.iter().map(|w| w * w).sum();
        let scale = 4.0 / (n as f64 * energy);
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let input = fft.make_input_vec();
        let output = fft.make_output_vec();
        Spectra {
            n,
            rate,
            window,
            scale,
            fft,
            input,
            output,
        }
    }

    fn bin(&self, hz: f64) -> usize {
        (hz * self.n as f64 / self.rate).round() as usize
    }

    /// Adds the power spectrum of `frame` (n samples) to `acc` (n/2 + 1 bins).
    fn add(&mut self, frame: &[f32], acc: &mut [f64]) {
        for ((x, s), w) in self.input.iter_mut().zip(frame).zip(&self.window) {
            *x = f64::from(*s) * w;
        }
        // Sizes match the plan: the buffers came from it.
        if self.fft.process(&mut self.input, &mut self.output).is_err() {
            return;
        }
        for (a, c) in acc.iter_mut().zip(&self.output) {
            *a += c.norm_sqr() * self.scale;
        }
    }
}

fn db(power: f64) -> f64 {
    if power > 0.0 {
        (10.0 * power.log10()).max(FLOOR_DB)
    } else {
        FLOOR_DB
    }
}

/// Speeds the signal is looked for at, besides its own, when it is not found at its own: a
/// path that plays audio at half or twice the rate it was sent at (a server that sends
/// 44.1 kHz audio in a format the client plays at 22.05 kHz; measured with xrdp 0.9 and
/// FreeRDP 2 given `/sound:rate:22050`) moves every tone an octave and stretches the parts.
pub const OTHER_SPEEDS: [f64; 2] = [0.5, 2.0];

/// Analyses one channel: the signal at its own speed, else at one of [`OTHER_SPEEDS`]
/// (then `speed` says which, the class is poor and the signs say wrong speed).
pub fn analyze(samples: &[f32], rate_hz: u32) -> QualityReport {
    let own = analyze_at(samples, rate_hz, 1.0);
    if own.found {
        return own;
    }
    for speed in OTHER_SPEEDS {
        let mut r = analyze_at(samples, rate_hz, speed);
        if r.found {
            r.speed = Some(speed);
            r.class = QualityClass::Poor;
            r.codec_signs.insert(0, CodecSign::WrongSpeed);
            return r;
        }
    }
    own
}

/// Analyses one channel for the signal played at `speed` times its own (tones and band
/// edges are reported as played).
fn analyze_at(samples: &[f32], rate_hz: u32, speed: f64) -> QualityReport {
    let rate = f64::from(rate_hz.max(1));
    let n = frame_len(rate_hz.max(1));
    let hop = n / 4;
    if samples.len() < n * 2 {
        return QualityReport::not_found(rate_hz);
    }
    let mut sp = Spectra::new(n, rate);
    let bins = n / 2 + 1;
    let tone_bins: Vec<(usize, usize)> = TONES_HZ
        .iter()
        .map(|&f| {
            let b = sp.bin(f * speed).min(bins - 1);
            (
                b.saturating_sub(TONE_HALF_WIDTH),
                (b + TONE_HALF_WIDTH).min(bins - 1),
            )
        })
        .collect();
    let in_band = |(lo, hi): (usize, usize)| hi < bins - 1 && lo < hi;

    // Tone frames.
    let frames = (samples.len() - n) / hop + 1;
    let mut is_tone = Vec::with_capacity(frames);
    let mut acc = vec![0.0; bins];
    for f in 0..frames {
        acc.iter_mut().for_each(|a| *a = 0.0);
        sp.add(&samples[f * hop..f * hop + n], &mut acc);
        let total: f64 = acc[1..].iter().sum();
        let zone = |&(lo, hi): &(usize, usize)| acc[lo..=hi].iter().sum::<f64>();
        let tones: f64 = tone_bins.iter().filter(|&&t| in_band(t)).map(zone).sum();
        let low_heard = tone_bins[..LOW_TONES]
            .iter()
            .filter(|&&t| in_band(t) && zone(&t) >= total * LOW_TONE_SHARE)
            .count();
        is_tone.push(
            total > 0.0
                && tones / total > TONE_FRAME_SHARE
                && low_heard >= LOW_TONES_HEARD
                && db(total) > TONE_FRAME_FLOOR_DB,
        );
    }
    let runs = runs_of(&is_tone);
    let min_frames = ((MIN_FULL_MS / speed / 1000.0 * rate) as usize).saturating_sub(n) / hop + 1;
    let Some(full_i) = runs.iter().position(|&(a, b)| b - a >= min_frames) else {
        return QualityReport::not_found(rate_hz);
    };
    let (fa, fb) = runs[full_i];
    // Samples: a run of frames [fa, fb) covers fa*hop .. (fb-1)*hop + n; the part itself
    // lies within, at most a frame short of each end.
    let full_start = fa * hop;
    let full_end = (fb - 1) * hop + n;
    let gap_frames = (0.1 * rate) as usize / hop;
    let step = runs[full_i + 1..]
        .iter()
        .find(|&&(a, b)| a >= fb + gap_frames && b - a >= 2)
        .copied();

    // The full part's inner frames: wholly inside [full_start + n, full_end - n] where it
    // holds at least two frames, else every frame of the run.
    let inner = |a: usize, b: usize| -> Vec<usize> {
        let (s, e) = (a * hop + n, ((b - 1) * hop + n).saturating_sub(n));
        let v: Vec<usize> = (a..b)
            .filter(|&f| f * hop >= s && f * hop + n <= e)
            .collect();
        if v.len() >= 2 {
            v
        } else {
            (a..b).collect()
        }
    };
    let average = |sp: &mut Spectra, frames: &[usize]| -> Vec<f64> {
        let mut acc = vec![0.0; bins];
        for &f in frames {
            sp.add(&samples[f * hop..f * hop + n], &mut acc);
        }
        let k = frames.len().max(1) as f64;
        acc.iter_mut().for_each(|a| *a /= k);
        acc
    };
    let full = average(&mut sp, &inner(fa, fb));
    let power = |spec: &[f64], (lo, hi): (usize, usize)| spec[lo..=hi].iter().sum::<f64>();
    // Noise per bin around a tone: the bins between its zone and the next tones' zones.
    let excluded: Vec<bool> = {
        let mut x = vec![false; bins];
        x[0] = true;
        for &(lo, hi) in tone_bins.iter().filter(|&&t| in_band(t)) {
            x[lo..=hi].iter_mut().for_each(|v| *v = true);
        }
        x
    };
    let local_noise = |spec: &[f64], (lo, hi): (usize, usize)| -> f64 {
        let reach = 4 * TONE_HALF_WIDTH;
        let (a, b) = (lo.saturating_sub(reach), (hi + reach).min(bins - 1));
        let vals: Vec<f64> = (a..=b).filter(|&i| !excluded[i]).map(|i| spec[i]).collect();
        if vals.is_empty() {
            0.0
        } else {
            vals.iter().sum::<f64>() / vals.len() as f64
        }
    };
    let levels: Vec<Option<(f64, f64)>> = tone_bins
        .iter()
        .map(|&t| {
            in_band(t).then(|| {
                let p = power(&full, t);
                let noise = local_noise(&full, t) * (t.1 - t.0 + 1) as f64;
                (db(p), db(p) - db(noise))
            })
        })
        .collect();
    let mut low: Vec<f64> = levels[..LOW_TONES].iter().flatten().map(|l| l.0).collect();
    if low.is_empty() {
        return QualityReport::not_found(rate_hz);
    }
    low.sort_by(f64::total_cmp);
    let reference = low[low.len() / 2];
    let tones: Vec<ToneLevel> = TONES_HZ
        .iter()
        .zip(&levels)
        .map(|(&hz, l)| match l {
            Some((level, over)) => ToneLevel {
                hz,
                relative_db: level - reference,
                over_noise_db: *over,
                carried: level - reference >= -CARRIED_WITHIN_DB && *over >= CARRIED_OVER_NOISE_DB,
            },
            None => ToneLevel {
                hz,
                relative_db: FLOOR_DB,
                over_noise_db: 0.0,
                carried: false,
            },
        })
        .collect();
    let top = tones.iter().rposition(|t| t.carried);
    let band_edge_hz = top.map(|i| tones[i].hz);
    let first_missing_hz = top.and_then(|i| tones.get(i + 1)).map(|t| t.hz);
    let holes_hz: Vec<f64> = top
        .map(|i| {
            tones[..i]
                .iter()
                .filter(|t| !t.carried)
                .map(|t| t.hz)
                .collect()
        })
        .unwrap_or_default();

    // SINAD: carried tones over the bins between, 150 Hz to halfway past the band edge.
    let noise_top = match (band_edge_hz, first_missing_hz) {
        (Some(e), Some(m)) => (e + m) / 2.0,
        _ => rate / 2.0,
    };
    let (nlo, nhi) = (sp.bin(150.0), sp.bin(noise_top).min(bins - 2));
    let between = |spec: &[f64]| -> (f64, usize) {
        (nlo..=nhi)
            .filter(|&i| !excluded[i])
            .fold((0.0, 0), |(s, k), i| (s + spec[i], k + 1))
    };
    let signal: f64 = tones
        .iter()
        .zip(&tone_bins)
        .filter(|(t, _)| t.carried)
        .map(|(_, &b)| power(&full, b))
        .sum();
    let (noise_between, between_bins) = between(&full);
    // The bins of the tones' zones hold noise too: count it at the same density.
    let zone_bins: usize = tone_bins
        .iter()
        .filter(|&&(lo, hi)| lo >= nlo && hi <= nhi)
        .map(|&(lo, hi)| hi - lo + 1)
        .sum();
    let noise_total = if between_bins > 0 {
        noise_between * (between_bins + zone_bins) as f64 / between_bins as f64
    } else {
        0.0
    };
    let sinad_db = (signal > 0.0).then(|| (db(signal) - db(noise_total)).min(-FLOOR_DB));

    // Silence: between the full run and the step run (or 150 ms after the full run).
    let sil_start = (full_end + (0.02 * rate) as usize).min(samples.len());
    let sil_end = match step {
        Some((a, _)) => (a * hop).saturating_sub((0.02 * rate) as usize),
        None => sil_start + (0.15 * rate) as usize,
    }
    .min(samples.len())
    .max(sil_start);
    let silence = &samples[sil_start..sil_end];
    let digital_silence = !silence.is_empty() && silence.iter().all(|&s| s == 0.0);
    let noise_floor_dbfs = (!silence.is_empty()).then(|| {
        let ms: f64 = silence
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / silence.len() as f64;
        // AES17: a full-scale sine (mean square 1/2) is 0 dBFS.
        db(2.0 * ms)
    });
    let noise_under_signal_db = (silence.len() >= n).then(|| {
        let frames: Vec<usize> = (0..=(silence.len() - n) / hop).collect();
        let mut acc = vec![0.0; bins];
        for &f in &frames {
            sp.add(&silence[f * hop..f * hop + n], &mut acc);
        }
        acc.iter_mut().for_each(|a| *a /= frames.len() as f64);
        db(noise_between) - db(between(&acc).0)
    });

    // Step: the step run's low tones against the full part's.
    let step_db = step.map(|(a, b)| {
        let spec = average(&mut sp, &inner(a, b));
        let mut l: Vec<f64> = tone_bins[..LOW_TONES]
            .iter()
            .filter(|&&t| in_band(t))
            .map(|&t| db(power(&spec, t)))
            .collect();
        l.sort_by(f64::total_cmp);
        l[l.len() / 2] - reference
    });
    // A tone of amplitude A is 20 log10(A) dBFS.
    let gain_db = Some(reference - 20.0 * TONE_AMPLITUDE.log10());

    let mut codec_signs = Vec::new();
    if top.is_some_and(|i| i + 1 < TONES_HZ.len()) {
        codec_signs.push(CodecSign::BandLimited);
    }
    if !holes_hz.is_empty() {
        codec_signs.push(CodecSign::SpectralHoles);
    }
    if noise_under_signal_db.is_some_and(|d| d > NOISE_UNDER_SIGNAL_DB)
        && sinad_db.is_some_and(|s| s < HIGH_MIN_SINAD_DB)
    {
        codec_signs.push(CodecSign::NoiseUnderSignal);
    }
    if step_db.is_some_and(|s| (s - STEP_DB).abs() > STEP_TOLERANCE_DB) {
        codec_signs.push(CodecSign::LevelChanged);
    }
    let mut report = QualityReport {
        found: true,
        class: QualityClass::Poor,
        rate_hz,
        at_ms: Some(full_start as f64 * 1000.0 / rate),
        band_edge_hz,
        first_missing_hz,
        rate_class: band_edge_hz.map(RateClass::of),
        holes_hz,
        sinad_db,
        noise_floor_dbfs,
        digital_silence,
        noise_under_signal_db,
        gain_db,
        step_db,
        codec_signs,
        speed: None,
        tones,
    };
    report.class = QualityClass::of(&report);
    report.round();
    report
}

/// Runs of `true`, as [start, end) index pairs.
fn runs_of(v: &[bool]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &x) in v.iter().enumerate() {
        match (x, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, v.len()));
    }
    runs
}

#[cfg(test)]
mod tests;
