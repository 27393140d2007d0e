//! The continuity stream, and the analysis that accounts for every sample of it.
//!
//! # The stream (a contract between the two probes)
//!
//! One sine of [`TONE_HZ`] at peak amplitude [`AMPLITUDE`] (-6 dBFS), for as long as asked,
//! with a raised-cosine fade of [`FADE_MS`] at both ends. A pure tone lets every sample be
//! predicted from the samples around it, so anything a path does to the stream shows:
//! samples lost or repeated shift the tone's phase, silence inserted or substituted drops its
//! amplitude, a click leaves a residual no sine explains, a clock that runs fast or slow
//! turns the phase at a steady rate.
//!
//! # The analysis
//!
//! Windows of 4 ms, one every 2 ms. In each, the tone is fitted by least squares (amplitude
//! and phase at the nominal frequency, the sample's index in the whole recording as time);
//! the fit's largest residual, relative to the amplitude, is the window's *error*.
//!
//! - The tone **starts** at the first of 8 consecutive windows above -40 dBFS with an error
//!   below 0.3; those windows set the reference level and the error floor of the path (a
//!   lossy codec's floor is higher than PCM's).
//! - A window is **bad** when its amplitude is below half the reference (a *gap*: silence or
//!   a deep dropout) or its error is above `max(0.04, 5 × floor)` (a *glitch*: a click, a
//!   discontinuity, samples lost or repeated). A single sample lost at 48 kHz moves the phase
//!   by 0.26 rad, an error of about 0.13 in the window that holds it.
//! - Consecutive bad windows are one **event**, closed by the next good window: its position
//!   (ms after the tone started), its length (a gap: bad windows below half level × 2 ms,
//!   resolution ±2 ms), its depth, and the phase slip across it in samples (modulo one
//!   period of the tone, 24 samples at 48 kHz: a slip of +N means the stream resumed N
//!   samples late, i.e. N samples were inserted, or one period minus N were lost).
//!   Bad windows with no good window after them are the stream's end, not an event.
//! - **Drift**: the phase of good windows, unwrapped and with each event's slip taken out,
//!   fitted by a line; its slope is the recorded tone's frequency error, in ppm (positive:
//!   the recording hears the tone higher than it was played: the player's clock is fast
//!   against the recorder's).
//! - **Level**: mean, spread (standard deviation) and range of the good windows' levels.
//!
//! The analysis is streaming: constant memory, any length.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

/// The tone's frequency, in Hz: inside every band a voice path keeps (8 kHz telephony
/// included), high enough that one lost sample moves its phase visibly, and 28 Hz or more
/// from every tone of both signature alphabets.
pub const TONE_HZ: f64 = 1987.0;
/// Peak amplitude (full scale = 1.0): -6 dBFS.
pub const AMPLITUDE: f32 = 0.5;
/// Raised-cosine fade at each end, in ms.
pub const FADE_MS: f64 = 5.0;
/// Length of an analysis window, in ms.
pub const WINDOW_MS: f64 = 4.0;

/// The name of this ability in a probe's `info` features.
pub const FEATURE: &str = "continuity";

/// Analyses every channel of interleaved `samples` and returns the best channel's report
/// (numbered from 0): the stream found, then the longest, then the lowest number.
pub fn analyze_interleaved(
    samples: &[f32],
    channels: u16,
    rate_hz: u32,
) -> (usize, ContinuityReport) {
    let n = usize::from(channels.max(1));
    let mut analyzers: Vec<Analyzer> = (0..n).map(|_| Analyzer::new(rate_hz)).collect();
    let mut plane = Vec::with_capacity(4096);
    for block in samples.chunks(4096 * n) {
        for (c, a) in analyzers.iter_mut().enumerate() {
            plane.clear();
            plane.extend(block.iter().skip(c).step_by(n));
            a.push(&plane);
        }
    }
    let mut reports: Vec<ContinuityReport> = analyzers.into_iter().map(Analyzer::finish).collect();
    // At least one channel was analysed (n >= 1).
    let best = best(&reports);
    (best, reports.swap_remove(best))
}

/// The best of several channels' reports (index from 0): the stream found, then the
/// longest, then the lowest number.
pub fn best(reports: &[ContinuityReport]) -> usize {
    reports
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| {
            (a.found, a.windows)
                .cmp(&(b.found, b.windows))
                .then(j.cmp(i))
        })
        .map_or(0, |(i, _)| i)
}

/// Windows that must look like the tone, back to back, before it counts as started.
const ONSET_WINDOWS: usize = 8;
/// The least amplitude of a starting tone (-40 dBFS peak).
const ONSET_FLOOR: f64 = 0.01;
/// The largest error of a window that can start the tone.
const ONSET_MAX_ERROR: f64 = 0.3;
/// The least glitch threshold, and how far above the path's own error floor it sits.
const MIN_GLITCH_ERROR: f64 = 0.04;
const GLITCH_OVER_FLOOR: f64 = 5.0;
/// A window below this fraction of the reference level is part of a gap.
const GAP_FRACTION: f64 = 0.5;

/// Renders the continuity stream: `seconds` long at `rate_hz`, fades included.
pub fn render(rate_hz: u32, seconds: f64) -> Vec<f32> {
    let rate = f64::from(rate_hz.max(1));
    let n = (seconds.max(0.0) * rate).round() as usize;
    let fade = ((FADE_MS / 1000.0 * rate) as usize).min(n / 2).max(1);
    let w = 2.0 * PI * TONE_HZ / rate;
    (0..n)
        .map(|i| {
            let g = super::fade_gain(i, n, fade);
            (f64::from(AMPLITUDE) * g * (w * i as f64).sin()) as f32
        })
        .collect()
}

/// What kind of break an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The tone fell below half its level: silence inserted or substituted, a dropout.
    Gap,
    /// The tone stayed but no sine explains it: a click, samples lost or repeated.
    Glitch,
}

/// One break in the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Gap or glitch.
    pub kind: EventKind,
    /// Where it starts, in ms after the tone started (±5 ms: the start is found within the
    /// stream's fade-in).
    pub at_ms: f64,
    /// Where it starts, in ms from the start of the recording.
    pub file_ms: f64,
    /// How long the tone was below half level (gaps; glitches: 0), in ms, ±2 ms.
    pub length_ms: f64,
    /// The lowest level in it, relative to the tone's level, in dB.
    pub depth_db: f64,
    /// The phase slip across it, in samples, modulo one period of the tone: +N, the stream
    /// resumed N samples late.
    pub slip_samples: f64,
}

/// The continuity of one recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinuityReport {
    /// Whether the tone was found at all.
    pub found: bool,
    /// The recording's sample rate.
    pub sample_rate_hz: u32,
    /// Where the tone starts in the recording, in ms.
    pub tone_start_ms: Option<f64>,
    /// How long the tone lasts, from its start to its last good window, in ms.
    pub tone_ms: f64,
    /// Mean level of the good windows, dBFS (peak of the sine; the stream plays at -6).
    pub level_dbfs: Option<f64>,
    /// Standard deviation of the good windows' levels, dB.
    pub level_std_db: Option<f64>,
    /// Lowest and highest good-window level, dBFS.
    pub level_range_dbfs: Option<(f64, f64)>,
    /// The recorded tone's frequency error against [`TONE_HZ`], ppm.
    pub drift_ppm: Option<f64>,
    /// The path's error floor: the median-like error of good windows, in dB relative to
    /// the tone (PCM: below -60; lossy codecs higher).
    pub error_floor_db: Option<f64>,
    /// The breaks, in order.
    pub events: Vec<Event>,
    /// Windows analysed after the tone started.
    pub windows: u64,
}

impl ContinuityReport {
    /// Gaps and glitches together.
    pub fn breaks(&self) -> usize {
        self.events.len()
    }

    /// Events of one kind.
    pub fn count(&self, kind: EventKind) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }
}

/// When a stream is degraded; every limit is inclusive (at the limit is still whole).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Breaks (gaps and glitches) a whole stream may have (default 0).
    pub max_breaks: usize,
    /// Largest clock drift, ppm (default 1000: twice what sound cards are specified for).
    pub max_drift_ppm: f64,
    /// Largest spread of the level, dB (default 3).
    pub max_level_std_db: f64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_breaks: 0,
            max_drift_ppm: 1000.0,
            max_level_std_db: 3.0,
        }
    }
}

impl Limits {
    /// Why `r` is degraded under these limits, one reason each; empty: whole. A report
    /// without the tone is not judged here (the caller says "no tone").
    pub fn reasons(&self, r: &ContinuityReport) -> Vec<String> {
        let mut why = Vec::new();
        if r.breaks() > self.max_breaks {
            why.push(format!(
                "{} gap(s) and {} glitch(es) (at most {} allowed)",
                r.count(EventKind::Gap),
                r.count(EventKind::Glitch),
                self.max_breaks
            ));
        }
        if let Some(d) = r.drift_ppm.filter(|d| d.abs() > self.max_drift_ppm) {
            why.push(format!(
                "clock drift {d:+.0} ppm (at most ±{:.0})",
                self.max_drift_ppm
            ));
        }
        if let Some(s) = r.level_std_db.filter(|s| *s > self.max_level_std_db) {
            why.push(format!(
                "level unsteady: {s:.1} dB standard deviation (at most {:.1})",
                self.max_level_std_db
            ));
        }
        why
    }
}

/// One window's fit.
#[derive(Debug, Clone, Copy)]
struct Fit {
    /// Index of the window's first sample in the recording.
    start: u64,
    amplitude: f64,
    /// Phase of the tone at the window against `ω·n` (radians).
    phase: f64,
    /// Largest residual / amplitude.
    error: f64,
    /// Index of the largest residual in the recording.
    worst_at: u64,
}

/// An event being collected.
#[derive(Debug, Clone)]
struct Open {
    worst: Fit,
    low_windows: u64,
    first_low: Option<Fit>,
    min_amplitude: f64,
}

/// A least-squares line through (t, y) points, kept as sums.
#[derive(Debug, Default, Clone)]
struct Line {
    n: f64,
    t: f64,
    y: f64,
    tt: f64,
    ty: f64,
}

impl Line {
    fn add(&mut self, t: f64, y: f64) {
        self.n += 1.0;
        self.t += t;
        self.y += y;
        self.tt += t * t;
        self.ty += t * y;
    }

    fn slope(&self) -> Option<f64> {
        let d = self.n * self.tt - self.t * self.t;
        (self.n >= 3.0 && d.abs() > f64::EPSILON).then(|| (self.n * self.ty - self.t * self.y) / d)
    }
}

/// Streaming continuity analysis of one channel: [`Analyzer::push`] blocks of samples in
/// order, then [`Analyzer::finish`].
#[derive(Debug, Clone)]
pub struct Analyzer {
    rate: f64,
    omega: f64,
    len: usize,
    hop: usize,
    /// The last `len` samples (a ring), and how many samples came in so far.
    ring: Vec<f32>,
    seen: u64,
    next_window: u64,
    onset: Vec<Fit>,
    started: Option<Fit>,
    reference: f64,
    floor: f64,
    last_good: Option<Fit>,
    /// Phase of the last good window, unwrapped, slips taken out.
    unwrapped: f64,
    line: Line,
    open: Option<Open>,
    events: Vec<Event>,
    level: (f64, f64, f64),
    level_range: (f64, f64),
    good: u64,
    windows: u64,
    error_sum: f64,
    /// The basis of the window being fitted (reused).
    basis: Vec<(f64, f64)>,
}

impl Analyzer {
    /// An analyzer for a recording at `rate_hz`.
    pub fn new(rate_hz: u32) -> Analyzer {
        let rate = f64::from(rate_hz.max(1));
        let len = ((WINDOW_MS / 1000.0 * rate).round() as usize).max(16);
        Analyzer {
            rate,
            omega: 2.0 * PI * TONE_HZ / rate,
            len,
            hop: len / 2,
            ring: vec![0.0; len],
            seen: 0,
            next_window: len as u64,
            onset: Vec::new(),
            started: None,
            reference: 0.0,
            floor: 0.0,
            last_good: None,
            unwrapped: 0.0,
            line: Line::default(),
            open: None,
            events: Vec::new(),
            level: (0.0, 0.0, 0.0),
            level_range: (f64::INFINITY, f64::NEG_INFINITY),
            good: 0,
            windows: 0,
            error_sum: 0.0,
            basis: Vec::with_capacity(len),
        }
    }

    /// Feeds the next samples of the channel.
    pub fn push(&mut self, samples: &[f32]) {
        for &x in samples {
            let i = (self.seen % self.len as u64) as usize;
            self.ring[i] = x;
            self.seen += 1;
            if self.seen == self.next_window {
                let fit = self.fit(self.seen - self.len as u64);
                self.window(fit);
                self.next_window += self.hop as u64;
            }
        }
    }

    /// Fits the tone to the window starting at `start` (its samples are the ring's).
    fn fit(&mut self, start: u64) -> Fit {
        // cos/sin of ω·n by rotation from the window's first sample.
        let p0 = (self.omega * start as f64) % (2.0 * PI);
        let (mut c, mut s) = (p0.cos(), p0.sin());
        let (dc, ds) = (self.omega.cos(), self.omega.sin());
        let (mut scc, mut sss, mut scs, mut sxc, mut sxs) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let (ring, len) = (&self.ring, self.len);
        // The window's samples in order: the ring from the oldest.
        let first = (start % len as u64) as usize;
        let at = |k: usize| f64::from(ring[(first + k) % len]);
        let basis = &mut self.basis;
        basis.clear();
        for k in 0..len {
            let x = at(k);
            scc += c * c;
            sss += s * s;
            scs += c * s;
            sxc += x * c;
            sxs += x * s;
            basis.push((c, s));
            (c, s) = (c * dc - s * ds, s * dc + c * ds);
        }
        let det = scc * sss - scs * scs;
        let (a, b) = if det.abs() > f64::EPSILON {
            ((sxc * sss - sxs * scs) / det, (sxs * scc - sxc * scs) / det)
        } else {
            (0.0, 0.0)
        };
        let amplitude = a.hypot(b);
        let (mut worst, mut worst_at) = (0.0f64, start);
        for (k, (c, s)) in basis.iter().enumerate() {
            let r = (at(k) - a * c - b * s).abs();
            if r > worst {
                worst = r;
                worst_at = start + k as u64;
            }
        }
        Fit {
            start,
            amplitude,
            // x ≈ A·cos(ωn + φ) with a = A·cos φ, b = -A·sin φ.
            phase: (-b).atan2(a),
            error: if amplitude > 0.0 {
                worst / amplitude
            } else {
                f64::INFINITY
            },
            worst_at,
        }
    }

    fn ms(&self, samples: f64) -> f64 {
        samples * 1000.0 / self.rate
    }

    fn threshold(&self) -> f64 {
        (GLITCH_OVER_FLOOR * self.floor).max(MIN_GLITCH_ERROR)
    }

    fn window(&mut self, f: Fit) {
        if self.started.is_none() {
            if f.amplitude >= ONSET_FLOOR && f.error < ONSET_MAX_ERROR {
                self.onset.push(f);
                if self.onset.len() == ONSET_WINDOWS {
                    let n = ONSET_WINDOWS as f64;
                    self.reference = self.onset.iter().map(|w| w.amplitude).sum::<f64>() / n;
                    let mut errors: Vec<f64> = self.onset.iter().map(|w| w.error).collect();
                    errors.sort_by(f64::total_cmp);
                    self.floor = errors[errors.len() / 2];
                    self.started = Some(self.onset[0]);
                    let onset = std::mem::take(&mut self.onset);
                    for w in onset {
                        self.window(w);
                    }
                }
            } else {
                self.onset.clear();
            }
            return;
        }
        self.windows += 1;
        let low = f.amplitude < GAP_FRACTION * self.reference;
        let bad = low || f.error > self.threshold();
        if bad {
            let open = self.open.get_or_insert(Open {
                worst: f,
                low_windows: 0,
                first_low: None,
                min_amplitude: f.amplitude,
            });
            if low {
                open.low_windows += 1;
                open.first_low.get_or_insert(f);
            }
            if f.error > open.worst.error {
                open.worst = f;
            }
            open.min_amplitude = open.min_amplitude.min(f.amplitude);
            return;
        }
        // A good window: close the event it ends, then follow the phase.
        let drift = self.line.slope().unwrap_or(0.0);
        let expected = |from: &Fit, to: &Fit| drift * (to.start - from.start) as f64 / self.rate;
        let wrap = |p: f64| (p + PI).rem_euclid(2.0 * PI) - PI;
        if let (Some(open), Some(prev)) = (self.open.take(), self.last_good) {
            let slip = wrap(f.phase - prev.phase - expected(&prev, &f));
            let origin = self.started.map_or(0, |s| s.start) as f64;
            let at = match open.first_low {
                Some(low) => low.start as f64 + self.hop as f64 / 2.0,
                None => open.worst.worst_at as f64,
            };
            self.events.push(Event {
                kind: if open.low_windows > 0 {
                    EventKind::Gap
                } else {
                    EventKind::Glitch
                },
                at_ms: self.ms(at - origin),
                file_ms: self.ms(at),
                length_ms: self.ms((open.low_windows * self.hop as u64) as f64),
                depth_db: 20.0 * (open.min_amplitude.max(1e-6) / self.reference).log10(),
                // x ≈ A·cos(ω(n - k) + φ0): a stream k samples late has its phase moved by -ωk.
                slip_samples: -slip / self.omega,
            });
            // The slip is the event's, not the clock's: the line continues as predicted.
            self.unwrapped += expected(&prev, &f);
        } else if let Some(prev) = self.last_good {
            self.unwrapped += wrap(f.phase - prev.phase);
        }
        self.open = None;
        self.line.add(f.start as f64 / self.rate, self.unwrapped);
        self.last_good = Some(f);
        self.good += 1;
        self.error_sum += f.error;
        // The path's floor and level follow slowly what good windows show.
        self.floor = 0.99 * self.floor + 0.01 * f.error;
        self.reference = 0.99 * self.reference + 0.01 * f.amplitude;
        let db = 20.0 * f.amplitude.max(1e-9).log10();
        let (n, mean, m2) = &mut self.level;
        *n += 1.0;
        let d = db - *mean;
        *mean += d / *n;
        *m2 += d * (db - *mean);
        self.level_range = (self.level_range.0.min(db), self.level_range.1.max(db));
    }

    /// The report, once every sample was pushed. Bad windows not followed by a good one are
    /// the stream's end, not an event.
    pub fn finish(self) -> ContinuityReport {
        let rate_hz = self.rate as u32;
        let Some(start) = self.started else {
            return ContinuityReport {
                found: false,
                sample_rate_hz: rate_hz,
                tone_start_ms: None,
                tone_ms: 0.0,
                level_dbfs: None,
                level_std_db: None,
                level_range_dbfs: None,
                drift_ppm: None,
                error_floor_db: None,
                events: Vec::new(),
                windows: self.windows,
            };
        };
        let (n, mean, m2) = self.level;
        let end = self
            .last_good
            .map_or(start.start, |g| g.start + self.len as u64);
        // Phase slope (rad/s) over the tone's angular frequency.
        let drift_ppm = self
            .line
            .slope()
            .filter(|_| self.good >= 50)
            .map(|s| s / (2.0 * PI * TONE_HZ) * 1e6);
        ContinuityReport {
            found: true,
            sample_rate_hz: rate_hz,
            tone_start_ms: Some(self.ms(start.start as f64)),
            tone_ms: self.ms((end - start.start) as f64),
            level_dbfs: (n > 0.0).then_some(mean),
            level_std_db: (n > 1.0).then(|| (m2 / (n - 1.0)).sqrt()),
            level_range_dbfs: (n > 0.0).then_some(self.level_range),
            drift_ppm,
            error_floor_db: (self.good > 0)
                .then(|| 20.0 * (self.error_sum / self.good as f64).max(1e-9).log10()),
            events: self.events,
            windows: self.windows,
        }
    }
}

#[cfg(test)]
mod tests;
