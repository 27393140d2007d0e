//! Detection of a signature in a recording.
//!
//! CONTRACT (filled in by the analysis work): a streaming [`Detector`] that takes mono
//! blocks as they arrive and says as soon as the signature is complete.

use serde::{Deserialize, Serialize};

use crate::signal::Signature;

/// What went wrong before analysis could start.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The sample rate is outside what the detector supports.
    #[error("unsupported sample rate {0} Hz: expected 8000 to 192000 Hz")]
    UnsupportedRate(u32),
}

/// A gap inside a detected signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    /// Where the gap starts, in ms from the start of the recording.
    pub at_ms: f64,
    /// How long it lasts, in ms.
    pub length_ms: f64,
}

/// The result of looking for one signature in one recording (or one channel of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Whether the signature was found.
    pub detected: bool,
    /// Confidence in [0, 1] that the signature is present.
    pub confidence: f64,
    /// Where the signature starts, in ms from the start of the recording.
    pub onset_ms: Option<f64>,
    /// The signature's level in dBFS (RMS over its symbols).
    pub level_dbfs: Option<f64>,
    /// SNR of each symbol in dB (signature tones against the rest of the band).
    pub snr_db_per_symbol: Vec<f64>,
    /// Frequency error of the recording against the signature, in ppm.
    pub freq_error_ppm: Option<f64>,
    /// Gaps seen inside the signature.
    pub dropouts: Vec<Dropout>,
    /// How much audio was analysed, in ms.
    pub analyzed_ms: f64,
    /// RMS level of the whole recording in dBFS (-inf as -200).
    pub rms_dbfs: f64,
}

/// Streaming detector for one signature at one sample rate.
pub struct Detector {
    _private: (),
}

impl Detector {
    /// Prepares to look for `signature` in audio at `sample_rate_hz`.
    ///
    /// # Errors
    /// [`AnalysisError::UnsupportedRate`] outside 8-192 kHz.
    pub fn new(signature: &Signature, sample_rate_hz: u32) -> Result<Detector, AnalysisError> {
        let _ = (signature, sample_rate_hz);
        todo!("analysis work")
    }
    /// Feeds the next mono block. Returns true once the signature has been found.
    pub fn push(&mut self, block: &[f32]) -> bool {
        let _ = block;
        todo!("analysis work")
    }
    /// The result so far (final once the recording has ended).
    pub fn analysis(&self) -> Analysis {
        todo!("analysis work")
    }
}

/// Analyses a whole mono recording at once.
///
/// # Errors
/// As [`Detector::new`].
pub fn analyze(
    samples: &[f32],
    sample_rate_hz: u32,
    signature: &Signature,
) -> Result<Analysis, AnalysisError> {
    let mut d = Detector::new(signature, sample_rate_hz)?;
    d.push(samples);
    Ok(d.analysis())
}
