//! The speed search: one detector per speed hypothesis, fed the same audio, the best
//! match chosen. A recording of audio played `s` times too fast, read as if its rate were
//! `rate / s`, is the signature at its nominal speed.

use super::*;

/// The speeds, besides the nominal one, a [`Detector`] also looks for the signature at.
/// One hypothesis absorbs about ±3 % (5 % still finds 13 of 16 symbols), so these cover
/// 0.89-1.12: a 44.1 kHz stream played as 48 kHz (0.91875) or the other way (1.088), and
/// what lies between. Half and double speed are the quality check's.
pub const SPEED_CANDIDATES: [f64; 4] = [0.92, 0.96, 1.04, 1.09];

/// Streaming detector for one signature in audio at one sample rate, at its nominal speed
/// and at each of [`SPEED_CANDIDATES`].
///
/// A recording of audio played `s` times too fast, read as if its rate were `rate / s`, is
/// the signature at its nominal speed: each speed is a detector at that rate, fed the same
/// blocks. The first to find the signature decides; its figures are brought back to the
/// recording's time, and its frequency error to the speed as a whole.
///
/// Feed it mono blocks with [`Detector::push`]; it reports as soon as the signature is
/// complete. Memory stays bounded however long the recording runs.
pub struct Detector {
    pub(super) nominal: AtRate,
    pub(super) scaled: Vec<(f64, AtRate)>,
    /// The sample count at which a first hypothesis found the signature: the others are
    /// fed [`SPEED_GRACE_MS`] more before the best is chosen.
    first_found: Option<u64>,
    /// The speed whose hypothesis was chosen.
    found_at: Option<f64>,
    rate_hz: u32,
}

/// How much more audio the other speed hypotheses get once one has found the signature.
/// A hypothesis 4 % off can reach the threshold (measured: confidence 0.51 to 0.71, where
/// the right one reads 0.9) up to 30 ms before the right one, which then refines its
/// onset for 40 ms: the one with the best score is chosen after this much.
pub const SPEED_GRACE_MS: u64 = 100;

impl Detector {
    /// Prepares to look for `signature` in audio at `sample_rate_hz`.
    ///
    /// # Errors
    /// [`AnalysisError::UnsupportedRate`] outside 8-192 kHz.
    pub fn new(signature: &Signature, sample_rate_hz: u32) -> Result<Detector, AnalysisError> {
        if !(RATE_RANGE_HZ.0..=RATE_RANGE_HZ.1).contains(&sample_rate_hz) {
            return Err(AnalysisError::UnsupportedRate(sample_rate_hz));
        }
        let nominal = AtRate::new(signature, sample_rate_hz);
        let scaled = SPEED_CANDIDATES
            .iter()
            .map(|&speed| {
                let rate = (f64::from(sample_rate_hz) / speed).round() as u32;
                (speed, AtRate::new(signature, rate))
            })
            .collect();
        Ok(Detector {
            nominal,
            scaled,
            first_found: None,
            found_at: None,
            rate_hz: sample_rate_hz,
        })
    }

    /// Whether the signature has been found.
    pub fn detected(&self) -> bool {
        self.found_at.is_some()
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> u64 {
        self.nominal.samples_seen
    }

    /// Samples the detectors' audio buffers can hold (their capacity), all speeds together.
    /// Bounded by the largest block pushed plus a fixed amount, however long the stream.
    pub fn buffered_samples(&self) -> usize {
        self.nominal.buffered_samples()
            + self
                .scaled
                .iter()
                .map(|(_, d)| d.buffered_samples())
                .sum::<usize>()
    }

    /// Feeds the next mono block. Returns true once the signature has been found (and from
    /// then on; later blocks only count towards the recording's length and level).
    pub fn push(&mut self, block: &[f32]) -> bool {
        if self.found_at.is_some() {
            return self.nominal.push(block);
        }
        let mut any = self.nominal.push(block);
        for (_, d) in &mut self.scaled {
            any |= d.push(block);
        }
        if any && self.first_found.is_none() {
            self.first_found = Some(self.nominal.samples_seen);
        }
        let grace = SPEED_GRACE_MS * u64::from(self.rate_hz) / 1000;
        if self
            .first_found
            .is_some_and(|at| self.nominal.samples_seen >= at + grace)
        {
            self.choose();
        }
        self.found_at.is_some()
    }

    /// Of the hypotheses that found the signature, the one with the best score; the others
    /// are dropped.
    fn choose(&mut self) {
        let score = |d: &mut AtRate| d.found.is_some().then(|| d.analysis().confidence);
        let mut best = score(&mut self.nominal).map(|c| (1.0, c));
        for (speed, d) in &mut self.scaled {
            if let Some(c) = score(d) {
                if best.is_none_or(|(_, b)| c > b) {
                    best = Some((*speed, c));
                }
            }
        }
        if let Some((speed, _)) = best {
            self.found_at = Some(speed);
            self.scaled.retain(|(s, _)| *s == speed);
        }
    }

    /// The result so far; final once the recording has ended. A signature found at another
    /// speed is reported in the recording's time, its `freq_error_ppm` the whole speed.
    pub fn analysis(&mut self) -> Analysis {
        if self.found_at.is_none() {
            // The recording ended: a match inside the grace, or inside a hypothesis'
            // refinement window, stands.
            let _ = self.nominal.analysis();
            for (_, d) in &mut self.scaled {
                let _ = d.analysis();
            }
            self.choose();
        }
        let whole = self.nominal.analysis();
        let Some(speed) = self.found_at.filter(|s| *s != 1.0) else {
            return whole;
        };
        let Some((_, d)) = self.scaled.iter_mut().find(|(s, _)| *s == speed) else {
            return whole;
        };
        let mut a = d.analysis();
        // Read at `rate / speed`, every time came out `speed` times too long.
        a.onset_ms = a.onset_ms.map(|t| t / speed);
        for drop in &mut a.dropouts {
            drop.at_ms /= speed;
            drop.length_ms /= speed;
        }
        let residual = a.freq_error_ppm.unwrap_or(0.0);
        a.freq_error_ppm = Some((speed * (1.0 + residual * 1e-6) - 1.0) * 1e6);
        a.analyzed_ms = whole.analyzed_ms;
        a.rms_dbfs = whole.rms_dbfs;
        a
    }
}
