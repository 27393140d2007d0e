//! Detection of a signature in a recording.
//!
//! # How it works
//!
//! 1. **Decimate** by an integer factor `D = floor(rate / 12 kHz)` (at least 1) with a
//!    linear-phase windowed-sinc low-pass (cut-off 3.8 kHz), computing only the kept samples.
//!    The working rate is then 8-24 kHz whatever the input rate, so the cost per second of
//!    audio hardly depends on it.
//! 2. **STFT**: 20 ms Hann frames every 5 ms, zero-padded to a power of two, planned once
//!    (realfft). Only the 13 bins of the signature's own alphabet are kept: bin
//!    `k = round(f · M / rate_w)` for FFT size `M`, so bin `k` is `k · rate_w / M` Hz. The
//!    transform is unnormalised: a tone of amplitude `A` at a bin centre gives
//!    `|X| = A · N / 4` for a window of `N` samples.
//! 3. **Matched filter**: for every candidate onset (each frame), each symbol's energy per
//!    alphabet bin is summed over the four frames that lie wholly inside the symbol (clear
//!    of its fades). Each tone's energy is divided by the symbol's noise floor (the median
//!    of the 24 other alphabet bins of both directions, never below -20 dB of the strongest
//!    bin nor below a -90 dBFS tone) and capped at 4; a symbol scores twice the geometric
//!    mean of its two tones' ratios, so it only scores when both stand out. The signature is
//!    *detected* when the 16 symbols score at least [`SOFT_THRESHOLD`] together and at least
//!    [`MIN_MATCHED_SYMBOLS`] symbols have both tones among the three strongest of their
//!    alphabet. Ratios and ranks do not care about gain or codecs; the exact seeded
//!    sequence is what keeps noise, speech and other seeds' signatures below the threshold.
//! 4. Once a match is found, the next few onsets are still scored and the best is kept,
//!    then the detector reports at once: it does not wait for the end of the recording.
//!
//! Clock drift of ±1000 ppm moves a 3.4 kHz tone by 3.4 Hz (bins are ~25-50 Hz wide, tones
//! 100 Hz apart) and stretches the 720 ms signature by 0.7 ms (a hop is 5 ms): both are
//! absorbed without a search. The frequency error is measured afterwards from the phase
//! advance of each tone between consecutive frames (unambiguous to ±100 Hz). A speed
//! error beyond that (a sample-rate mismatch: 44.1 kHz audio played as 48 kHz is 8.1 %
//! slow) is searched: [`Detector`] runs one hypothesis per speed of [`SPEED_CANDIDATES`].
//!
//! Levels are dBFS on the AES17 scale: a full-scale sine reads 0 dBFS.
//!
//! Size: about 850 lines, of which this explanation is a tenth: decimation, the STFT,
//! symbol decisions and the search for the start work on one set of buffers, planned
//! once. The speed hypotheses are in `speeds`, channel maps in `channels`, listening to a
//! live capture in `listen`.

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use crate::signal::{Signature, RATE_RANGE_HZ, SYMBOL_MS};

mod channels;
mod speeds;
pub use speeds::{Detector, SPEED_CANDIDATES, SPEED_GRACE_MS};
#[cfg(feature = "devices")]
pub mod listen;
pub use channels::{
    analyze_channels, best_channel, channel_number, right_seed, ChannelAnalysis, ChannelDetectors,
    ChannelMap,
};

/// Symbols (of 16) whose tones must rank in the top three at one onset for a detection.
/// Measured: a signature at -10 dB in-band SNR has at least 7 (300 trials); a clean
/// signature seen at a wrong alignment (its own symbols shifted) can score near the soft
/// threshold from chance tone coincidences, but with 5 or fewer.
pub const MIN_MATCHED_SYMBOLS: usize = 7;
/// The soft score (sum over 16 symbols × 2 tones of capped tone-to-floor ratios) a
/// detection needs. Measured at 16 kHz: 60 s of white noise against 20 seeds peaks at 57,
/// a clean signature of another seed (1000 seeds) at 46; a signature at -10 dB in-band SNR
/// scores at least 81 (300 trials; 1st percentile 85, median 97).
pub const SOFT_THRESHOLD: f64 = 70.0;
/// Tone amplitude (dBFS) below which nothing counts as present.
const ABSOLUTE_FLOOR_DBFS: f64 = -90.0;
/// Cap on one symbol's ratio, so a single loud interferer cannot carry the score.
const RATIO_CAP: f64 = 4.0;
/// STFT frame length in ms.
const WINDOW_MS: f64 = 20.0;
/// STFT hop in ms.
const HOP_MS: f64 = 5.0;
/// Frame starts inside a symbol (in hops) whose window lies clear of the symbol's fades.
const INTERIOR_HOPS: [usize; 4] = [1, 2, 3, 4];
/// Onsets still scored after the first match before the best one is reported.
const REFINE_FRAMES: u64 = 8;
/// Upper edge of the band the decimation filter keeps, in Hz.
const PASSBAND_HZ: f64 = 3_800.0;
/// Band over which SNR is stated, in Hz (300-3400 Hz).
const SNR_BAND_HZ: f64 = 3_100.0;
/// AES17: a full-scale sine has mean square 0.5, and reads 0 dBFS.
const AES17_OFFSET_DB: f64 = 3.010_299_956_639_812;
/// A gap is a frame whose signature energy is this far below the signature's median.
const DROPOUT_RATIO: f32 = 0.1;

/// What went wrong before analysis could start.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The sample rate is outside what the detector supports.
    #[error("unsupported sample rate {0} Hz: expected 8000 to 192000 Hz")]
    UnsupportedRate(u32),
    /// The recording has no channels.
    #[error("the recording has no channels")]
    NoChannels,
}

/// A gap inside a detected signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    /// Where the gap starts, in ms from the start of the recording.
    pub at_ms: f64,
    /// How long it lasts, in ms (a multiple of the 5 ms analysis hop).
    pub length_ms: f64,
}

/// The result of looking for one signature in one recording (or one channel of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Whether the signature was found.
    pub detected: bool,
    /// The detector's score at the best onset relative to twice the detection threshold,
    /// in [0, 1]: 0.5 is exactly on the threshold; noise alone stays below about 0.4, a
    /// clean signature reads about 0.9.
    pub confidence: f64,
    /// Symbols (of 16) whose two tones were both among the three strongest of the alphabet.
    pub symbols_matched: usize,
    /// Where the signature starts, in ms from the start of the recording: within one 5 ms
    /// hop at good SNR, about three hops at -10 dB in-band (best onset, also
    /// when not detected; `None` when the recording was shorter than a signature).
    pub onset_ms: Option<f64>,
    /// The signature's level in dBFS (AES17), over its matched symbols.
    pub level_dbfs: Option<f64>,
    /// SNR of each symbol in dB: its tones against the noise in 300-3400 Hz.
    pub snr_db_per_symbol: Vec<f64>,
    /// Frequency error of the recording against the signature, in ppm (positive: the
    /// tones arrived higher, i.e. the player's clock ran fast relative to the recorder's).
    pub freq_error_ppm: Option<f64>,
    /// Gaps seen inside the signature.
    pub dropouts: Vec<Dropout>,
    /// How much audio was analysed, in ms.
    pub analyzed_ms: f64,
    /// RMS level of the whole recording in dBFS (AES17; digital silence reads -200).
    pub rms_dbfs: f64,
}

impl Analysis {
    /// Median of the per-symbol SNRs, if any.
    pub fn median_snr_db(&self) -> Option<f64> {
        median(&self.snr_db_per_symbol)
    }
}

/// Low-pass and keep every `factor`-th sample.
struct Decimator {
    factor: usize,
    taps: Vec<f32>,
    pending: Vec<f32>,
    /// Index into `pending` of the next output's first tap.
    pos: usize,
}

impl Decimator {
    fn new(rate_hz: u32) -> Decimator {
        let factor = (rate_hz / 12_000).max(1) as usize;
        if factor == 1 {
            return Decimator {
                factor,
                taps: vec![1.0],
                pending: Vec::new(),
                pos: 0,
            };
        }
        let rate = f64::from(rate_hz);
        let work = rate / factor as f64;
        // Content above work - 3.4 kHz folds back into the band; the transition runs from
        // the pass band edge to there. Blackman: ~74 dB stop band, width ~5.5 / taps.
        let transition = (work - 3_400.0 - PASSBAND_HZ).max(500.0) / rate;
        let mut n = (5.5 / transition).ceil() as usize | 1;
        n = n.clamp(7, 511);
        let fc = (PASSBAND_HZ + 0.5 * (work - 3_400.0 - PASSBAND_HZ).max(0.0)) / rate;
        let mid = (n - 1) as f64 / 2.0;
        let mut taps: Vec<f64> = (0..n)
            .map(|i| {
                let x = i as f64 - mid;
                let sinc = if x == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * PI * fc * x).sin() / (PI * x)
                };
                let w = 0.42 - 0.5 * (2.0 * PI * i as f64 / (n - 1) as f64).cos()
                    + 0.08 * (4.0 * PI * i as f64 / (n - 1) as f64).cos();
                sinc * w
            })
            .collect();
        let sum: f64 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t /= sum);
        Decimator {
            factor,
            taps: taps.into_iter().map(|t| t as f32).collect(),
            pending: Vec::new(),
            pos: 0,
        }
    }

    /// Input samples between the start of an output's taps and its centre.
    fn delay(&self) -> usize {
        (self.taps.len() - 1) / 2
    }

    fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.factor == 1 {
            out.extend_from_slice(input);
            return;
        }
        self.pending.extend_from_slice(input);
        let n = self.taps.len();
        while self.pos + n <= self.pending.len() {
            out.push(dot(&self.taps, &self.pending[self.pos..self.pos + n]));
            self.pos += self.factor;
        }
        if self.pos > 8192 {
            self.pending.drain(..self.pos);
            self.pos = 0;
        }
    }
}

/// Dot product with eight independent accumulators, so it vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Alphabet size of one direction.
const OWN: usize = 13;
/// Bins kept per frame: the own alphabet of the direction, then the other direction's
/// (only used to estimate the noise floor).
const BINS: usize = 2 * OWN;

/// The energies of four consecutive frames, summed per bin, and the same sorted.
#[derive(Clone, Copy)]
struct Group {
    energy: [f32; BINS],
    sorted: [f32; BINS],
}

impl Group {
    /// The median of every bin but `tones`, and the strongest bin, without sorting again.
    fn median_and_strongest(&self, tones: &[usize; 2]) -> (f32, f32) {
        let mut skip = [self.energy[tones[0]], self.energy[tones[1]]];
        let mut kept = 0;
        let want = (BINS - 2) / 2;
        for &v in &self.sorted {
            if let Some(slot) = skip.iter_mut().find(|x| x.to_bits() == v.to_bits()) {
                *slot = f32::NAN;
                continue;
            }
            if kept == want {
                return (v, self.sorted[BINS - 1]);
            }
            kept += 1;
        }
        (self.sorted[BINS / 2], self.sorted[BINS - 1])
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Score {
    /// Symbols whose two tones are both among the three strongest alphabet bins.
    matched: usize,
    /// Sum over symbols of the weaker tone's energy over the median of the other bins,
    /// each term capped at [`RATIO_CAP`].
    soft: f64,
}

impl Score {
    /// The soft score first; at a tie (a clean path saturates every symbol at
    /// [`RATIO_CAP`] over several onsets) the onset with more clear symbols, which is the
    /// one aligned with the symbols rather than straddling their boundaries.
    fn beats(&self, other: &Score) -> bool {
        self.soft > other.soft || (self.soft == other.soft && self.matched > other.matched)
    }

    fn confidence(&self) -> f64 {
        (self.soft / (2.0 * SOFT_THRESHOLD)).clamp(0.0, 1.0)
    }

    fn passes(&self) -> bool {
        self.soft >= SOFT_THRESHOLD && self.matched >= MIN_MATCHED_SYMBOLS
    }
}

/// The detector of one hypothesis: the signature at its nominal speed in audio at one
/// sample rate.
struct AtRate {
    rate_hz: u32,
    work_rate_hz: f64,
    decimator: Decimator,
    window: Vec<f32>,
    window_power: f64,
    hop: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    fft_in: Vec<f32>,
    fft_out: Vec<Complex32>,
    fft_scratch: Vec<Complex32>,
    bins: [usize; BINS],
    alphabet_hz: [f64; OWN],
    /// Per symbol: the alphabet indices of its two tones.
    symbol_tones: Vec<[usize; 2]>,
    /// Interior energy of a tone at [`ABSOLUTE_FLOOR_DBFS`]: no bin counts as standing out
    /// of a floor below this (digital silence has no noise to stand out of).
    absolute_floor: f32,
    /// Per symbol and interior frame: frame offset from the onset frame.
    offsets: Vec<[u64; 4]>,
    span: u64,
    work: Vec<f32>,
    work_pos: usize,
    frames: VecDeque<[Complex32; BINS]>,
    /// `groups[i]` sums frames `first_frame + i ..= first_frame + i + 3`.
    groups: VecDeque<Group>,
    first_frame: u64,
    total_frames: u64,
    next_onset: u64,
    best: Option<(u64, Score)>,
    pending: Option<(u64, u64, Score)>,
    found: Option<Analysis>,
    samples_seen: u64,
    sum_squares: f64,
    scratch_energy: Vec<[f32; BINS]>,
}

impl AtRate {
    /// The detector at `sample_rate_hz`, checked by the caller (a speed hypothesis may
    /// read 8 kHz audio as 7.3 kHz).
    fn new(signature: &Signature, sample_rate_hz: u32) -> AtRate {
        let decimator = Decimator::new(sample_rate_hz);
        let work_rate_hz = f64::from(sample_rate_hz) / decimator.factor as f64;
        let n = (work_rate_hz * WINDOW_MS / 1000.0).round() as usize;
        let m = n.next_power_of_two();
        let window: Vec<f32> = (0..n)
            .map(|i| (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()) as f32)
            .collect();
        let window_power = window.iter().map(|w| f64::from(w * w)).sum();
        let hop = (work_rate_hz * HOP_MS / 1000.0).round() as usize;
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(m);
        let fft_in = fft.make_input_vec();
        let fft_out = fft.make_output_vec();
        let fft_scratch = fft.make_scratch_vec();
        let alphabet_hz = *signature.direction().alphabet_hz();
        let other = match signature.direction() {
            crate::signal::Direction::Output => crate::signal::Direction::Capture,
            crate::signal::Direction::Capture => crate::signal::Direction::Output,
        };
        let to_bin = |f: f64| (f * m as f64 / work_rate_hz).round() as usize;
        let mut bins = [0usize; BINS];
        for (b, f) in bins
            .iter_mut()
            .zip(alphabet_hz.iter().chain(other.alphabet_hz()))
        {
            *b = to_bin(*f);
        }
        let symbol_tones = signature
            .symbols()
            .iter()
            .map(|s| [s.tone_index[0], s.tone_index[1]])
            .collect::<Vec<_>>();
        let hop_ms = hop as f64 * 1000.0 / work_rate_hz;
        // Consecutive frames from one hop into the symbol, so the sum over them can be
        // computed once per frame and shared by every onset and symbol that uses it.
        let offsets: Vec<[u64; 4]> = (0..symbol_tones.len())
            .map(|s| {
                let first = ((s as f64 * f64::from(SYMBOL_MS) + INTERIOR_HOPS[0] as f64 * HOP_MS)
                    / hop_ms)
                    .round() as u64;
                [first, first + 1, first + 2, first + 3]
            })
            .collect();
        let span = offsets.last().map_or(0, |o| o[3]) + 1;
        AtRate {
            rate_hz: sample_rate_hz,
            work_rate_hz,
            decimator,
            window,
            window_power,
            hop,
            fft,
            fft_in,
            fft_out,
            fft_scratch,
            bins,
            alphabet_hz,
            absolute_floor: {
                let a = 10f64.powf(ABSOLUTE_FLOOR_DBFS / 20.0) * n as f64 / 4.0;
                (a * a * INTERIOR_HOPS.len() as f64) as f32
            },
            scratch_energy: vec![[0.0; BINS]; symbol_tones.len()],
            symbol_tones,
            offsets,
            span,
            work: Vec::new(),
            work_pos: 0,
            frames: VecDeque::new(),
            groups: VecDeque::new(),
            first_frame: 0,
            total_frames: 0,
            next_onset: 0,
            best: None,
            pending: None,
            found: None,
            samples_seen: 0,
            sum_squares: 0.0,
        }
    }

    /// Samples the detector's audio buffers can hold (their capacity): the input waiting
    /// for the decimation filter and the decimated audio waiting for the next STFT frame.
    /// Bounded by the largest block pushed plus a fixed amount, however long the stream.
    pub fn buffered_samples(&self) -> usize {
        self.decimator.pending.capacity() + self.work.capacity()
    }

    /// Feeds the next mono block. Returns true once the signature has been found (and from
    /// then on; later blocks only count towards the recording's length and level).
    pub fn push(&mut self, block: &[f32]) -> bool {
        self.samples_seen += block.len() as u64;
        self.sum_squares += block
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>();
        if self.found.is_some() {
            return true;
        }
        let mut work = std::mem::take(&mut self.work);
        self.decimator.push(block, &mut work);
        let n = self.window.len();
        while self.work_pos + n <= work.len() {
            self.transform(&work[self.work_pos..self.work_pos + n]);
            self.work_pos += self.hop;
            self.score_ready_onsets();
            if self.found.is_some() {
                break;
            }
        }
        if self.work_pos > 16_384 {
            work.drain(..self.work_pos);
            self.work_pos = 0;
        }
        self.work = work;
        self.found.is_some()
    }

    fn transform(&mut self, frame: &[f32]) {
        for ((d, s), w) in self.fft_in.iter_mut().zip(frame).zip(&self.window) {
            *d = s * w;
        }
        self.fft_in[frame.len()..].iter_mut().for_each(|d| *d = 0.0);
        // The buffers come from the plan itself, so their lengths always fit.
        if self
            .fft
            .process_with_scratch(&mut self.fft_in, &mut self.fft_out, &mut self.fft_scratch)
            .is_err()
        {
            return;
        }
        let kept = self.bins.map(|k| self.fft_out[k]);
        self.frames.push_back(kept);
        self.total_frames += 1;
        let n = self.frames.len();
        if n >= INTERIOR_HOPS.len() {
            let mut energy = [0.0f32; BINS];
            for f in self.frames.range(n - INTERIOR_HOPS.len()..) {
                for (e, x) in energy.iter_mut().zip(f) {
                    *e += x.norm_sqr();
                }
            }
            let mut sorted = energy;
            sorted.sort_unstable_by(f32::total_cmp);
            self.groups.push_back(Group { energy, sorted });
        }
        // Keep the frames of the span being scored plus the refinement window.
        let keep = (self.span + 2 * REFINE_FRAMES + 2) as usize;
        while self.frames.len() > keep {
            self.frames.pop_front();
            self.groups.pop_front();
            self.first_frame += 1;
        }
    }

    fn frame(&self, index: u64) -> &[Complex32; BINS] {
        &self.frames[(index - self.first_frame) as usize]
    }

    fn score_ready_onsets(&mut self) {
        while self.next_onset + self.span <= self.total_frames {
            let onset = self.next_onset;
            self.next_onset += 1;
            let score = self.score(onset);
            if self.best.is_none_or(|(_, b)| score.beats(&b)) {
                self.best = Some((onset, score));
            }
            match self.pending {
                None if score.passes() => {
                    self.pending = Some((onset + REFINE_FRAMES, onset, score));
                }
                Some((deadline, at, best)) => {
                    let (at, best) = if score.beats(&best) {
                        (onset, score)
                    } else {
                        (at, best)
                    };
                    self.pending = Some((deadline, at, best));
                    if onset >= deadline {
                        self.found = Some(self.describe(at, best, true));
                        return;
                    }
                }
                None => {}
            }
        }
    }

    /// Sums each symbol's interior energies per bin into `scratch_energy`.
    fn symbol_energies(&mut self, onset: u64) {
        for s in 0..self.symbol_tones.len() {
            let mut e = [0.0f32; BINS];
            for &off in &self.offsets[s] {
                let f = self.frame(onset + off);
                for (acc, x) in e.iter_mut().zip(f) {
                    *acc += x.norm_sqr();
                }
            }
            self.scratch_energy[s] = e;
        }
    }

    /// The median of every bin but the symbol's tones, and the strongest bin.
    fn median_and_strongest(e: &[f32; BINS], tones: &[usize; 2]) -> (f32, f32) {
        let mut others = [0.0f32; BINS - 2];
        let mut n = 0;
        let mut strongest = 0.0f32;
        for (j, &v) in e.iter().enumerate() {
            strongest = strongest.max(v);
            if j != tones[0] && j != tones[1] {
                others[n] = v;
                n += 1;
            }
        }
        others.sort_unstable_by(f32::total_cmp);
        (others[n / 2], strongest)
    }

    fn score(&self, onset: u64) -> Score {
        let mut matched = 0;
        let mut soft = 0.0;
        for (s, tones) in self.symbol_tones.iter().enumerate() {
            let g = &self.groups[(onset + self.offsets[s][0] - self.first_frame) as usize];
            let e = &g.energy;
            let weakest = e[tones[0]].min(e[tones[1]]);
            let above = e[..OWN]
                .iter()
                .enumerate()
                .filter(|&(j, &v)| j != tones[0] && j != tones[1] && v >= weakest)
                .count();
            if above <= 1 && weakest > 0.0 {
                matched += 1;
            }
            let (median, strongest) = g.median_and_strongest(tones);
            let floor = median.max(strongest * 0.01).max(self.absolute_floor);
            // Geometric mean: a symbol scores only when both of its tones stand out, so a
            // tone that another signature happens to share earns little.
            let ra = f64::from(e[tones[0]] / floor).min(RATIO_CAP);
            let rb = f64::from(e[tones[1]] / floor).min(RATIO_CAP);
            soft += 2.0 * (ra * rb).sqrt();
        }
        Score { matched, soft }
    }

    fn onset_ms(&self, onset: u64) -> f64 {
        let native = (onset * self.hop as u64) as f64 * self.decimator.factor as f64
            + self.decimator.delay() as f64;
        native * 1000.0 / f64::from(self.rate_hz)
    }

    /// The onset near `onset` whose symbols hold the largest share of their tones' energy.
    /// Rank matching tolerates a hop or two of misalignment; this pins the onset down.
    fn refine_onset(&self, onset: u64) -> u64 {
        let lo = onset.saturating_sub(4).max(self.first_frame);
        let hi = (onset + 4).min(self.total_frames.saturating_sub(self.span));
        let share = |t: u64| -> f64 {
            let mut sum = 0.0;
            for (s, tones) in self.symbol_tones.iter().enumerate() {
                for &off in &self.offsets[s] {
                    let f = self.frame(t + off);
                    let total: f32 = f.iter().map(|x| x.norm_sqr()).sum();
                    if total > 0.0 {
                        let tone = f[tones[0]].norm_sqr() + f[tones[1]].norm_sqr();
                        sum += f64::from(tone / total);
                    }
                }
            }
            sum
        };
        // At good SNR the share is flat over a hop or two: take the middle of the plateau.
        let shares: Vec<(u64, f64)> = (lo..=hi.max(lo)).map(|t| (t, share(t))).collect();
        let top = shares.iter().map(|&(_, v)| v).fold(f64::MIN, f64::max);
        let plateau: Vec<u64> = shares
            .iter()
            .filter(|&&(_, v)| v >= top * 0.98)
            .map(|&(t, _)| t)
            .collect();
        plateau.get(plateau.len() / 2).copied().unwrap_or(onset)
    }

    fn describe(&mut self, onset: u64, score: Score, detected: bool) -> Analysis {
        // The figures are the refined onset's: the symbols counted where they were timed.
        let (onset, score) = if detected {
            let refined = self.refine_onset(onset);
            (refined, self.score(refined))
        } else {
            (onset, score)
        };
        self.symbol_energies(onset);
        let n = self.window.len() as f64;
        // |X| = A·N/4 for a tone of amplitude A; its power is A²/2.
        let tone_power = |x: f32| {
            let a = 4.0 * f64::from(x).sqrt() / n;
            a * a / 2.0
        };
        let frames_per_symbol = INTERIOR_HOPS.len() as f32;
        let mut snr = Vec::with_capacity(self.symbol_tones.len());
        let mut matched_power = Vec::new();
        let mut ppm = Vec::new();
        let mut frame_energy = Vec::new();
        for (s, tones) in self.symbol_tones.iter().enumerate() {
            let e = self.scratch_energy[s];
            let signal: f64 = tones
                .iter()
                .map(|&t| tone_power(e[t] / frames_per_symbol))
                .sum();
            // Median of an exponential is ln 2 · mean; E|X|² = σ² Σw².
            let floor = AtRate::median_and_strongest(&e, tones).0 / frames_per_symbol;
            let sigma2 = f64::from(floor) / std::f64::consts::LN_2 / self.window_power;
            let noise = sigma2 * SNR_BAND_HZ / (self.work_rate_hz / 2.0);
            snr.push((10.0 * (signal / noise.max(1e-30)).log10()).clamp(-60.0, 150.0));
            let weakest = e[tones[0]].min(e[tones[1]]);
            let above = e[..OWN]
                .iter()
                .enumerate()
                .filter(|&(j, &v)| !tones.contains(&j) && v >= weakest)
                .count();
            if above <= 1 {
                matched_power.push(signal);
            }
            let offs = self.offsets[s];
            for (k, &off) in offs.iter().enumerate() {
                let f = *self.frame(onset + off);
                frame_energy.push((onset + off, f[tones[0]].norm_sqr() + f[tones[1]].norm_sqr()));
                if k + 1 < offs.len() {
                    let g = *self.frame(onset + offs[k + 1]);
                    let dn = ((offs[k + 1] - off) * self.hop as u64) as f64;
                    for &t in tones {
                        if let Some(p) = self.phase_ppm(f[t], g[t], self.alphabet_hz[t], dn) {
                            ppm.push(p);
                        }
                    }
                }
            }
        }
        let level_dbfs = if matched_power.is_empty() {
            None
        } else {
            let mean = matched_power.iter().sum::<f64>() / matched_power.len() as f64;
            Some(10.0 * mean.max(1e-20).log10() + AES17_OFFSET_DB)
        };
        let dropouts = if detected {
            self.dropouts(onset, &frame_energy)
        } else {
            Vec::new()
        };
        Analysis {
            detected,
            confidence: score.confidence(),
            symbols_matched: score.matched,
            onset_ms: Some(self.onset_ms(onset)),
            level_dbfs,
            snr_db_per_symbol: snr,
            freq_error_ppm: if detected { median(&ppm) } else { None },
            dropouts,
            analyzed_ms: self.analyzed_ms(),
            rms_dbfs: self.rms_dbfs(),
        }
    }

    /// Frequency error from the phase advance of one tone between two frames `dn` working
    /// samples apart.
    fn phase_ppm(&self, a: Complex32, b: Complex32, f0: f64, dn: f64) -> Option<f64> {
        if a.norm_sqr() <= 0.0 || b.norm_sqr() <= 0.0 {
            return None;
        }
        let measured = f64::from((b * a.conj()).arg());
        let expected = 2.0 * PI * f0 * dn / self.work_rate_hz;
        let dev = (measured - expected + PI).rem_euclid(2.0 * PI) - PI;
        let f = f0 + dev * self.work_rate_hz / (2.0 * PI * dn);
        Some((f - f0) / f0 * 1e6)
    }

    /// Gaps inside the signature: a symbol whose interior frames all lost its tones counts
    /// whole (45 ms); otherwise each silent frame counts for the hop at its centre.
    fn dropouts(&self, onset: u64, frame_energy: &[(u64, f32)]) -> Vec<Dropout> {
        let mut energies: Vec<f32> = frame_energy.iter().map(|&(_, e)| e).collect();
        energies.sort_by(f32::total_cmp);
        let reference = energies[energies.len() / 2];
        let hop_ms = self.hop as f64 * 1000.0 / self.work_rate_hz;
        let window_ms = self.window.len() as f64 * 1000.0 / self.work_rate_hz;
        let start_ms = self.onset_ms(onset);
        let mut spans: Vec<(f64, f64)> = Vec::new();
        for (s, frames) in frame_energy.chunks(INTERIOR_HOPS.len()).enumerate() {
            let gaps: Vec<u64> = frames
                .iter()
                .filter(|&&(_, e)| e < reference * DROPOUT_RATIO)
                .map(|&(f, _)| f)
                .collect();
            if gaps.len() == frames.len() {
                let at = start_ms + s as f64 * f64::from(SYMBOL_MS);
                spans.push((at, at + f64::from(SYMBOL_MS)));
            } else {
                for f in gaps {
                    let at = self.onset_ms(f) + (window_ms - hop_ms) / 2.0;
                    spans.push((at, at + hop_ms));
                }
            }
        }
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out: Vec<Dropout> = Vec::new();
        for (a, b) in spans {
            match out.last_mut() {
                Some(d) if a <= d.at_ms + d.length_ms + hop_ms => {
                    d.length_ms = d.length_ms.max(b - d.at_ms);
                }
                _ => out.push(Dropout {
                    at_ms: a,
                    length_ms: b - a,
                }),
            }
        }
        out
    }

    fn analyzed_ms(&self) -> f64 {
        self.samples_seen as f64 * 1000.0 / f64::from(self.rate_hz)
    }

    fn rms_dbfs(&self) -> f64 {
        if self.samples_seen == 0 || self.sum_squares <= 0.0 {
            return -200.0;
        }
        (10.0 * (self.sum_squares / self.samples_seen as f64).log10() + AES17_OFFSET_DB).max(-200.0)
    }

    /// The result so far; final once the recording has ended.
    pub fn analysis(&mut self) -> Analysis {
        if let Some(found) = &self.found {
            let mut a = found.clone();
            a.analyzed_ms = self.analyzed_ms();
            a.rms_dbfs = self.rms_dbfs();
            return a;
        }
        if let Some((_, at, score)) = self.pending {
            // The recording ended inside the refinement window: the match stands.
            let a = self.describe(at, score, true);
            self.found = Some(a.clone());
            return a;
        }
        match self.best {
            Some((onset, score)) if onset >= self.first_frame => self.describe(onset, score, false),
            Some((onset, score)) => Analysis {
                onset_ms: Some(self.onset_ms(onset)),
                confidence: score.confidence(),
                symbols_matched: score.matched,
                ..self.empty()
            },
            None => self.empty(),
        }
    }

    fn empty(&self) -> Analysis {
        Analysis {
            detected: false,
            confidence: 0.0,
            symbols_matched: 0,
            onset_ms: None,
            level_dbfs: None,
            snr_db_per_symbol: Vec::new(),
            freq_error_ppm: None,
            dropouts: Vec::new(),
            analyzed_ms: self.analyzed_ms(),
            rms_dbfs: self.rms_dbfs(),
        }
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Analyses a whole mono recording held in memory.
///
/// # Errors
/// As [`Detector::new`].
pub fn analyze(
    samples: &[f32],
    sample_rate_hz: u32,
    signature: &Signature,
) -> Result<Analysis, AnalysisError> {
    let mut d = Detector::new(signature, sample_rate_hz)?;
    // In blocks, as a recording arrives: pushed whole, the detector's input buffers would
    // grow to the recording's length.
    for block in samples.chunks(channels::BLOCK_FRAMES) {
        d.push(block);
    }
    Ok(d.analysis())
}

#[cfg(test)]
mod tests;
