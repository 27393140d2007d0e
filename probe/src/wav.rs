//! WAV evidence in and out (hound).
//!
//! CONTRACT (filled in by the signal work).

use std::path::{Path, PathBuf};

/// A decoded recording: interleaved f32 samples in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples per second per channel.
    pub sample_rate_hz: u32,
    /// Channel count (>= 1).
    pub channels: u16,
    /// Interleaved samples.
    pub samples: Vec<f32>,
}

impl Audio {
    /// Channel `ch` de-interleaved.
    pub fn channel(&self, ch: u16) -> Vec<f32> {
        self.samples
            .iter()
            .skip(usize::from(ch))
            .step_by(usize::from(self.channels.max(1)))
            .copied()
            .collect()
    }
}

/// Sample encoding of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavEncoding {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit signed integer.
    I16,
}

/// Why a WAV file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Anything hound or the file system reported, with the file.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// Reads a WAV file.
///
/// # Errors
/// [`WavError`] naming the file and the problem.
pub fn read(path: &Path) -> Result<Audio, WavError> {
    let _ = path;
    todo!("wav work")
}

/// Writes a WAV file.
///
/// # Errors
/// [`WavError`] naming the file and the problem.
pub fn write(path: &Path, audio: &Audio, encoding: WavEncoding) -> Result<(), WavError> {
    let _ = (path, audio, encoding);
    todo!("wav work")
}
