//! WAV evidence in and out (hound).
//!
//! Reads 8/16/24/32-bit integer and 32-bit float PCM with any channel count and rate;
//! writes 32-bit float or 16-bit integer. Every failure names the file and the problem.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

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
    /// Mono audio.
    pub fn mono(sample_rate_hz: u32, samples: Vec<f32>) -> Audio {
        Audio {
            sample_rate_hz,
            channels: 1,
            samples,
        }
    }

    /// Channel `ch` de-interleaved.
    pub fn channel(&self, ch: u16) -> Vec<f32> {
        self.samples
            .iter()
            .skip(usize::from(ch))
            .step_by(usize::from(self.channels.max(1)))
            .copied()
            .collect()
    }

    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Duration in ms.
    pub fn duration_ms(&self) -> f64 {
        self.frames() as f64 * 1000.0 / f64::from(self.sample_rate_hz.max(1))
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
    /// The file could not be opened or created.
    #[error("cannot open {path}: {error}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error (in the message, not chained, so it prints once).
        error: std::io::Error,
    },
    /// The file is not a WAV file, or is damaged or truncated.
    #[error("{path} is not a readable WAV file: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A WAV encoding this reader does not support.
    #[error("{path}: unsupported encoding {bits}-bit {format}: expected 8/16/24/32-bit integer or 32-bit float PCM")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Bits per sample.
        bits: u16,
        /// "integer" or "float".
        format: &'static str,
    },
    /// The file holds no samples.
    #[error("{path} holds no audio (0 samples)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A float sample is NaN or infinite.
    #[error("{path}: sample {index} is not a finite number ({value})")]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// Index of the first bad sample (interleaved).
        index: usize,
        /// The value.
        value: f32,
    },
    /// The audio to write is not writable as asked.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Reads a WAV file.
///
/// # Errors
/// [`WavError`] naming the file and the problem: not WAV, truncated, empty, NaN/inf,
/// unsupported encoding.
pub fn read(path: &Path) -> Result<Audio, WavError> {
    // One read of the whole file, then a bulk conversion of the data chunk: several times
    // faster than decoding sample by sample, and evidence files are small.
    let bytes = std::fs::read(path).map_err(|error| WavError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    read_from(std::io::Cursor::new(bytes.as_slice()), path)
}

/// Reads WAV data from any reader; `path` only names it in errors.
///
/// # Errors
/// As [`read`].
pub fn read_from<R: Read>(reader: R, path: &Path) -> Result<Audio, WavError> {
    let invalid = |e: hound::Error| WavError::Invalid {
        path: path.to_path_buf(),
        message: match e {
            hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                "the file ends early (truncated)".to_string()
            }
            other => other.to_string(),
        },
    };
    let mut wav = WavReader::new(reader).map_err(invalid)?;
    let spec = wav.spec();
    let declared = wav.len() as usize;
    if spec.channels == 0 {
        return Err(WavError::Invalid {
            path: path.to_path_buf(),
            message: "the header declares 0 channels".into(),
        });
    }
    if spec.sample_rate == 0 {
        return Err(WavError::Invalid {
            path: path.to_path_buf(),
            message: "the header declares a sample rate of 0 Hz".into(),
        });
    }
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, 16) | (SampleFormat::Float, 32) => {
            // hound leaves the reader at the start of the data chunk.
            let width = usize::from(spec.bits_per_sample / 8);
            let mut data = Vec::with_capacity(declared * width);
            wav.into_inner()
                .take((declared * width) as u64)
                .read_to_end(&mut data)
                .map_err(|e| invalid(hound::Error::IoError(e)))?;
            if data.len() < declared * width {
                return Err(WavError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "the file ends early (truncated): the header declares {declared} samples, the data holds {}",
                        data.len() / width
                    ),
                });
            }
            if spec.sample_format == SampleFormat::Int {
                data.chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
                    .collect()
            } else {
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            }
        }
        (SampleFormat::Int, bits @ (8 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            wav.samples::<i32>()
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(invalid)?
        }
        (format, bits) => {
            return Err(WavError::Unsupported {
                path: path.to_path_buf(),
                bits,
                format: match format {
                    SampleFormat::Float => "float",
                    SampleFormat::Int => "integer",
                },
            })
        }
    };
    if samples.is_empty() {
        return Err(WavError::Empty {
            path: path.to_path_buf(),
        });
    }
    if let Some((index, &value)) = samples.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(WavError::NotFinite {
            path: path.to_path_buf(),
            index,
            value,
        });
    }
    Ok(Audio {
        sample_rate_hz: spec.sample_rate,
        channels: spec.channels,
        samples,
    })
}

/// Writes a WAV file.
///
/// # Errors
/// [`WavError`] naming the file and the problem.
pub fn write(path: &Path, audio: &Audio, encoding: WavEncoding) -> Result<(), WavError> {
    let file = File::create(path).map_err(|error| WavError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    write_to(BufWriter::new(file), path, audio, encoding)
}

/// Writes WAV data to any seekable writer; `path` only names it in errors.
///
/// # Errors
/// As [`write`].
pub fn write_to<W: Write + Seek>(
    writer: W,
    path: &Path,
    audio: &Audio,
    encoding: WavEncoding,
) -> Result<(), WavError> {
    let fail = |e: hound::Error| WavError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if audio.channels == 0 || audio.sample_rate_hz == 0 {
        return Err(WavError::Write {
            path: path.to_path_buf(),
            message: format!(
                "{} channels at {} Hz: expected at least one channel and a rate above 0",
                audio.channels, audio.sample_rate_hz
            ),
        });
    }
    let spec = WavSpec {
        channels: audio.channels,
        sample_rate: audio.sample_rate_hz,
        bits_per_sample: match encoding {
            WavEncoding::F32 => 32,
            WavEncoding::I16 => 16,
        },
        sample_format: match encoding {
            WavEncoding::F32 => SampleFormat::Float,
            WavEncoding::I16 => SampleFormat::Int,
        },
    };
    let mut w = WavWriter::new(writer, spec).map_err(fail)?;
    for &s in &audio.samples {
        match encoding {
            WavEncoding::F32 => w.write_sample(s).map_err(fail)?,
            WavEncoding::I16 => {
                let v = (f64::from(s).clamp(-1.0, 1.0) * 32767.0).round() as i16;
                w.write_sample(v).map_err(fail)?
            }
        }
    }
    w.finalize().map_err(fail)
}

/// Encodes audio as WAV bytes in memory (for evidence sent over the wire).
///
/// # Errors
/// As [`write`].
pub fn to_bytes(audio: &Audio, encoding: WavEncoding) -> Result<Vec<u8>, WavError> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    write_to(&mut cursor, Path::new("<memory>"), audio, encoding)?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn name() -> &'static Path {
        Path::new("fixture.wav")
    }

    fn tone(rate: u32, channels: u16) -> Audio {
        let frames = rate as usize / 10;
        let mut samples = Vec::new();
        for n in 0..frames {
            for c in 0..channels {
                let v = (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / rate as f32).sin();
                samples.push(v * 0.5 / f32::from(c + 1));
            }
        }
        Audio {
            sample_rate_hz: rate,
            channels,
            samples,
        }
    }

    fn encode_int(audio: &Audio, bits: u16) -> Vec<u8> {
        let spec = WavSpec {
            channels: audio.channels,
            sample_rate: audio.sample_rate_hz,
            bits_per_sample: bits,
            sample_format: SampleFormat::Int,
        };
        let mut cur = Cursor::new(Vec::new());
        let mut w = WavWriter::new(&mut cur, spec).unwrap();
        let full = (1i64 << (bits - 1)) as f32;
        for &s in &audio.samples {
            let v = (s * (full - 1.0)).round() as i32;
            match bits {
                8 => w.write_sample(v as i8).unwrap(),
                16 => w.write_sample(v as i16).unwrap(),
                _ => w.write_sample(v).unwrap(),
            }
        }
        w.finalize().unwrap();
        cur.into_inner()
    }

    #[test]
    fn format_matrix_reads_back_within_quantisation() {
        for (label, bits, tol) in [
            ("tone-1k-8kHz-u8", 8u16, 1.0 / 64.0),
            ("tone-1k-16kHz-s16", 16, 1e-4),
            ("tone-1k-44k1Hz-s24", 24, 1e-6),
            ("tone-1k-96kHz-s32", 32, 1e-6),
        ] {
            for channels in [1u16, 2, 6] {
                let rate = match bits {
                    8 => 8_000,
                    16 => 16_000,
                    24 => 44_100,
                    _ => 96_000,
                };
                let src = tone(rate, channels);
                let got = read_from(Cursor::new(encode_int(&src, bits)), name()).unwrap();
                assert_eq!(
                    (got.sample_rate_hz, got.channels),
                    (rate, channels),
                    "{label}"
                );
                for (a, b) in src.samples.iter().zip(&got.samples) {
                    assert!((a - b).abs() <= tol, "{label} x{channels}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn f32_round_trip_is_lossless_and_i16_close() {
        let src = tone(48_000, 2);
        let bytes = to_bytes(&src, WavEncoding::F32).unwrap();
        assert_eq!(read_from(Cursor::new(bytes), name()).unwrap(), src);
        let bytes = to_bytes(&src, WavEncoding::I16).unwrap();
        let got = read_from(Cursor::new(bytes), name()).unwrap();
        for (a, b) in src.samples.iter().zip(&got.samples) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn bad_files_give_errors_naming_the_file() {
        let e = read_from(
            Cursor::new(b"this is not a wav file at all".to_vec()),
            name(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("fixture.wav is not a readable WAV file"),
            "{e}"
        );

        let mut bytes = to_bytes(&tone(8_000, 1), WavEncoding::I16).unwrap();
        bytes.truncate(bytes.len() / 2 + 1);
        let e = read_from(Cursor::new(bytes), name()).unwrap_err();
        assert!(e.to_string().contains("fixture.wav"), "{e}");

        let empty = Audio::mono(8_000, Vec::new());
        let e = read_from(
            Cursor::new(to_bytes(&empty, WavEncoding::F32).unwrap()),
            name(),
        )
        .unwrap_err();
        assert!(matches!(e, WavError::Empty { .. }), "{e}");

        let nan = Audio::mono(8_000, vec![0.0, f32::NAN, 0.5]);
        let e = read_from(
            Cursor::new(to_bytes(&nan, WavEncoding::F32).unwrap()),
            name(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("sample 1 is not a finite number"),
            "{e}"
        );

        let e = read(Path::new("/nonexistent/earshot.wav")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/earshot.wav"), "{e}");
    }

    #[test]
    fn unsupported_encodings_are_named() {
        // 64-bit float is valid WAV that hound can describe but we do not read.
        let spec = WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        let mut cur = Cursor::new(Vec::new());
        let mut w = WavWriter::new(&mut cur, spec).unwrap();
        w.write_sample(0i16).unwrap();
        w.finalize().unwrap();
        let mut bytes = cur.into_inner();
        // Patch the header: format tag 3 (float) with 16 bits per sample.
        bytes[20] = 3;
        match read_from(Cursor::new(bytes), name()) {
            Err(WavError::Unsupported { bits: 16, .. }) | Err(WavError::Invalid { .. }) => {}
            other => panic!("expected an unsupported-encoding error, got {other:?}"),
        }
    }
}
