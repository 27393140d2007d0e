//! Every channel of a recording analysed at once, and the one rule that picks the best.
//!
//! A [`ChannelDetectors`] runs one streaming [`Detector`] per channel, so a recording of
//! any length is analysed in constant memory as it is decoded. [`best_channel`] is the
//! rule every command uses to report one channel (`analyze`, `listen`, `selftest`):
//!
//! 1. a channel where the signature was detected beats one where it was not;
//! 2. then the higher confidence wins;
//! 3. then the lower channel number.
//!
//! Output numbers channels from 1 (the first channel is channel 1), in text and in JSON;
//! [`channel_number`] turns an index into that number.

use serde::{Deserialize, Serialize};

use super::{Analysis, AnalysisError, Detector};
use crate::signal::Signature;
use crate::wav::Audio;

/// The best channel's result, and every channel's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelAnalysis {
    /// Index of the best channel into `channels` (0-based; shown as
    /// [`channel_number`]`(best_index)`).
    pub best_index: usize,
    /// The best result.
    pub best: Analysis,
    /// Every channel's result, in channel order.
    pub channels: Vec<Analysis>,
}

impl ChannelAnalysis {
    /// The best channel as shown to users: numbered from 1.
    pub fn best_channel_number(&self) -> u16 {
        channel_number(self.best_index)
    }
}

/// The number a channel index is shown as: channels are numbered from 1 in every output.
pub fn channel_number(index: usize) -> u16 {
    u16::try_from(index + 1).unwrap_or(u16::MAX)
}

/// Picks the channel to report: detected first, then the highest confidence, then the
/// lowest index. `None` for no channels.
pub fn best_channel(channels: &[Analysis]) -> Option<usize> {
    // `min_by` keeps the first of equal elements, so ties go to the lowest index.
    (0..channels.len()).min_by(|&a, &b| {
        let (x, y) = (&channels[a], &channels[b]);
        y.detected
            .cmp(&x.detected)
            .then_with(|| y.confidence.total_cmp(&x.confidence))
    })
}

/// One streaming detector per channel of a recording.
///
/// Feed it blocks as they are decoded ([`ChannelDetectors::push_planar`] or
/// [`ChannelDetectors::push_interleaved`]); memory stays bounded by the largest block plus
/// each detector's fixed state, however long the recording.
pub struct ChannelDetectors {
    detectors: Vec<Detector>,
    /// One channel of an interleaved block.
    mono: Vec<f32>,
}

impl ChannelDetectors {
    /// Prepares to look for `signature` in `channels` channels at `sample_rate_hz`.
    ///
    /// # Errors
    /// [`AnalysisError::NoChannels`] for 0 channels; [`AnalysisError::UnsupportedRate`]
    /// outside 8-192 kHz.
    pub fn new(
        signature: &Signature,
        sample_rate_hz: u32,
        channels: u16,
    ) -> Result<ChannelDetectors, AnalysisError> {
        if channels == 0 {
            return Err(AnalysisError::NoChannels);
        }
        let detectors = (0..channels)
            .map(|_| Detector::new(signature, sample_rate_hz))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChannelDetectors {
            detectors,
            mono: Vec::new(),
        })
    }

    /// Channels analysed.
    pub fn channels(&self) -> usize {
        self.detectors.len()
    }

    /// Feeds one block given per channel (`planes[c]` is channel `c`; extra planes are
    /// ignored, missing ones leave their detectors unfed).
    pub fn push_planar<P: AsRef<[f32]>>(&mut self, planes: &[P]) {
        for (d, p) in self.detectors.iter_mut().zip(planes) {
            d.push(p.as_ref());
        }
    }

    /// Feeds one interleaved block (a whole number of frames).
    ///
    /// # Returns
    /// The index of the first channel (in channel order) whose detector has found the
    /// signature, once one has.
    pub fn push_interleaved(&mut self, samples: &[f32]) -> Option<usize> {
        let n = self.detectors.len();
        let mut found = None;
        for (c, d) in self.detectors.iter_mut().enumerate() {
            self.mono.clear();
            self.mono.extend(samples.iter().skip(c).step_by(n));
            if d.push(&self.mono) && found.is_none() {
                found = Some(c);
            }
        }
        found
    }

    /// Samples held in the detectors' buffers (their capacity): bounded by the largest
    /// block pushed plus a fixed amount per channel, whatever the recording's length.
    pub fn buffered_samples(&self) -> usize {
        self.mono.capacity()
            + self
                .detectors
                .iter()
                .map(Detector::buffered_samples)
                .sum::<usize>()
    }

    /// Every channel's result so far (final once the recording has ended), and the best
    /// by [`best_channel`].
    pub fn analysis(&mut self) -> ChannelAnalysis {
        let channels: Vec<Analysis> = self.detectors.iter_mut().map(Detector::analysis).collect();
        let best_index = best_channel(&channels).unwrap_or(0);
        ChannelAnalysis {
            best_index,
            best: channels[best_index].clone(),
            channels,
        }
    }
}

/// Analyses every channel of a recording held in memory and picks the best by
/// [`best_channel`].
///
/// # Errors
/// As [`ChannelDetectors::new`].
pub fn analyze_channels(
    audio: &Audio,
    signature: &Signature,
) -> Result<ChannelAnalysis, AnalysisError> {
    let mut detectors = ChannelDetectors::new(signature, audio.sample_rate_hz, audio.channels)?;
    let frame = usize::from(audio.channels);
    // Blocks of a few thousand frames, as a recording arrives: the detectors' buffers
    // stay small and hot in cache.
    for block in audio.samples.chunks(BLOCK_FRAMES * frame) {
        detectors.push_interleaved(block);
    }
    Ok(detectors.analysis())
}

/// Frames per block when a whole recording is analysed from memory.
pub(super) const BLOCK_FRAMES: usize = 8_192;

#[cfg(test)]
mod tests {
    use super::*;

    fn result(detected: bool, confidence: f64) -> Analysis {
        Analysis {
            detected,
            confidence,
            symbols_matched: 0,
            onset_ms: None,
            level_dbfs: None,
            snr_db_per_symbol: Vec::new(),
            freq_error_ppm: None,
            dropouts: Vec::new(),
            analyzed_ms: 0.0,
            rms_dbfs: -200.0,
        }
    }

    #[test]
    fn best_channel_prefers_detected_then_confidence_then_lowest_index() {
        assert_eq!(best_channel(&[]), None);
        // A detected channel beats a more confident undetected one.
        let a = [result(false, 0.49), result(true, 0.6), result(false, 0.0)];
        assert_eq!(best_channel(&a), Some(1));
        // Among detected channels, the most confident.
        let b = [result(true, 0.7), result(false, 0.9), result(true, 0.8)];
        assert_eq!(best_channel(&b), Some(2));
        // Ties go to the lowest index.
        let c = [result(false, 0.3), result(true, 0.8), result(true, 0.8)];
        assert_eq!(best_channel(&c), Some(1));
        let d = [result(false, 0.0), result(false, 0.0)];
        assert_eq!(best_channel(&d), Some(0));
    }

    #[test]
    fn channels_are_numbered_from_one() {
        assert_eq!(channel_number(0), 1);
        assert_eq!(channel_number(5), 6);
    }
}

/// What a stereo signature (`synth --stereo`) plays on its right channel: the signature of
/// this seed, the left playing the seed itself. Seeds that differ in these bits never
/// collide with the left's.
pub fn right_seed(seed: u64) -> u64 {
    seed ^ RIGHT_SEED_BITS
}

/// The bits [`right_seed`] flips ("RIGHT" in ASCII, in the high bytes).
const RIGHT_SEED_BITS: u64 = 0x5249_4748_5400_0000;

/// How the two channels of a stereo signature arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelMap {
    /// Left on the first channel, right on the second, as played.
    Ok,
    /// Left and right exchanged.
    Swapped,
    /// Both channels carry both signatures: a mono downmix.
    Mono,
    /// Only the first channel carries sound (the right one lost, or mixed into the left).
    LeftOnly,
    /// Only the second channel carries sound.
    RightOnly,
    /// Some other arrangement (a signature copied to both channels while the other is
    /// lost, say).
    Other,
}

impl ChannelMap {
    /// The map from where the left and the right signatures were detected, on the first
    /// and second channel: `None` when neither was found anywhere.
    pub fn of(left_on: [bool; 2], right_on: [bool; 2]) -> Option<ChannelMap> {
        let first = left_on[0] || right_on[0];
        let second = left_on[1] || right_on[1];
        Some(match (left_on, right_on) {
            _ if !first && !second => return None,
            ([true, false], [false, true]) => ChannelMap::Ok,
            ([false, true], [true, false]) => ChannelMap::Swapped,
            ([true, true], [true, true]) => ChannelMap::Mono,
            _ if !second => ChannelMap::LeftOnly,
            _ if !first => ChannelMap::RightOnly,
            _ => ChannelMap::Other,
        })
    }

    /// The map's name, as the JSON has it.
    pub fn name(self) -> &'static str {
        match self {
            ChannelMap::Ok => "ok",
            ChannelMap::Swapped => "swapped",
            ChannelMap::Mono => "mono",
            ChannelMap::LeftOnly => "left_only",
            ChannelMap::RightOnly => "right_only",
            ChannelMap::Other => "other",
        }
    }

    /// The map in words.
    pub fn words(self) -> &'static str {
        match self {
            ChannelMap::Ok => "left and right as played",
            ChannelMap::Swapped => "left and right are swapped",
            ChannelMap::Mono => "mono: both channels carry both sides (a downmix)",
            ChannelMap::LeftOnly => "left only: the second channel carries nothing",
            ChannelMap::RightOnly => "right only: the first channel carries nothing",
            ChannelMap::Other => "neither stereo, swapped nor mono (one side on both channels?)",
        }
    }
}

#[cfg(test)]
mod map_tests {
    use super::*;

    #[test]
    fn the_channel_map_is_told_from_where_each_side_arrived() {
        let (t, f) = (true, false);
        assert_eq!(ChannelMap::of([t, f], [f, t]), Some(ChannelMap::Ok));
        assert_eq!(ChannelMap::of([f, t], [t, f]), Some(ChannelMap::Swapped));
        assert_eq!(ChannelMap::of([t, t], [t, t]), Some(ChannelMap::Mono));
        assert_eq!(ChannelMap::of([t, f], [f, f]), Some(ChannelMap::LeftOnly));
        assert_eq!(ChannelMap::of([t, f], [t, f]), Some(ChannelMap::LeftOnly));
        assert_eq!(ChannelMap::of([f, f], [f, t]), Some(ChannelMap::RightOnly));
        assert_eq!(ChannelMap::of([t, t], [f, f]), Some(ChannelMap::Other));
        assert_eq!(ChannelMap::of([f, f], [f, f]), None);
        assert_ne!(right_seed(42), 42);
        assert_eq!(right_seed(right_seed(42)), 42);
    }
}
