//! Recordings kept as evidence until the harness fetches them, and their lossless encoding.
//!
//! The verdict goes out as soon as a job ends; the recording waits here, in bounded memory
//! (a cap in bytes and in count; the oldest is dropped first), for a `fetch_evidence`
//! request. Encoding happens at fetch time, on a blocking thread, so a verdict never waits
//! for it either.
//!
//! Encoding: FLAC through `flacenc`, at 16 bits when the device delivered 16-bit (or 8-bit)
//! integers, else at 24 bits. For 16-bit devices this is exact; for float devices 24 bits
//! keep everything above -144 dBFS, below any real input's noise floor. FLAC holds at most
//! 8 channels: wider recordings are sent as 32-bit float WAV. On loud wideband noise
//! `flacenc`'s predictors cost more than the samples themselves; such a recording is stored
//! verbatim inside the FLAC file instead (still lossless, never larger than plain PCM).

use std::collections::VecDeque;
use std::sync::Arc;

use rand::RngCore;

use crate::proto::msg::{EvidenceFormat, EvidenceRef};
use crate::wav::{self, Audio, WavEncoding};

/// A recording held for fetching.
#[derive(Debug)]
pub struct Kept {
    /// The samples as the device delivered them (converted to f32).
    pub audio: Audio,
    /// Bits per sample of the FLAC file.
    pub bits_per_sample: u8,
}

impl Kept {
    fn bytes(&self) -> usize {
        self.audio.samples.len() * std::mem::size_of::<f32>()
    }
}

/// Bounded memory of recent recordings.
#[derive(Debug)]
pub struct EvidenceStore {
    max_bytes: usize,
    max_count: usize,
    next_id: u64,
    items: VecDeque<(u64, Arc<Kept>)>,
    bytes: usize,
}

impl EvidenceStore {
    /// A store holding at most `max_count` recordings and `max_bytes` of samples.
    pub fn new(max_bytes: usize, max_count: usize) -> EvidenceStore {
        EvidenceStore {
            max_bytes,
            max_count: max_count.max(1),
            // Ids start at random, so an id from before a restart finds nothing rather than
            // another recording.
            next_id: (rand::rngs::OsRng.next_u64() >> 16).max(1),
            items: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Keeps `audio`; drops the oldest recordings to make room. `sample_format` is the
    /// device's (as in [`crate::audio::StreamFormat`]) and decides the bit depth.
    ///
    /// # Returns
    /// The reference to fetch it by, or `None` when the recording alone exceeds the cap.
    pub fn keep(&mut self, audio: Audio, sample_format: &str) -> Option<EvidenceRef> {
        let kept = Kept {
            bits_per_sample: bits_for(sample_format),
            audio,
        };
        let size = kept.bytes();
        if size > self.max_bytes {
            return None;
        }
        while self.items.len() >= self.max_count || self.bytes + size > self.max_bytes {
            match self.items.pop_front() {
                Some((_, old)) => self.bytes -= old.bytes(),
                None => break,
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let r = EvidenceRef {
            id,
            sample_rate_hz: kept.audio.sample_rate_hz,
            channels: kept.audio.channels,
            frames: kept.audio.frames() as u64,
            bits_per_sample: kept.bits_per_sample,
        };
        self.bytes += size;
        self.items.push_back((id, Arc::new(kept)));
        Some(r)
    }

    /// The recording `id`, if still held.
    pub fn get(&self, id: u64) -> Option<Arc<Kept>> {
        self.items
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, k)| k.clone())
    }

    /// Recordings held and their sample bytes.
    pub fn usage(&self) -> (usize, usize) {
        (self.items.len(), self.bytes)
    }

    /// The caps, for messages.
    pub fn caps(&self) -> (usize, usize) {
        (self.max_count, self.max_bytes)
    }
}

/// 16 bits for 8- and 16-bit integer devices, else 24.
fn bits_for(sample_format: &str) -> u8 {
    match sample_format.to_ascii_lowercase().as_str() {
        "i8" | "u8" | "i16" | "u16" | "s16" | "s16le" | "u8le" => 16,
        _ => 24,
    }
}

/// Why a recording could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The FLAC encoder refused the stream.
    #[error("FLAC encoding failed: {0}")]
    Flac(String),
    /// The WAV fallback failed.
    #[error("WAV encoding failed: {0}")]
    Wav(#[from] wav::WavError),
}

/// Encodes a kept recording as a file: FLAC, or WAV when FLAC cannot hold it.
///
/// # Errors
/// [`EncodeError`] when the encoder fails.
pub fn encode(kept: &Kept) -> Result<(EvidenceFormat, Vec<u8>), EncodeError> {
    if (1..=8).contains(&kept.audio.channels) {
        encode_flac(&kept.audio, kept.bits_per_sample).map(|b| (EvidenceFormat::Flac, b))
    } else {
        Ok((
            EvidenceFormat::Wav,
            wav::to_bytes(&kept.audio, WavEncoding::F32)?,
        ))
    }
}

/// Quantizes f32 samples in [-1, 1] to `bits`-bit integers (rounded, clamped).
pub fn quantize(samples: &[f32], bits: u8) -> Vec<i32> {
    let scale = f64::from(1u32 << (bits - 1));
    let (lo, hi) = (-scale, scale - 1.0);
    samples
        .iter()
        .map(|&x| {
            let v = if x.is_finite() {
                f64::from(x) * scale
            } else {
                0.0
            };
            v.round().clamp(lo, hi) as i32
        })
        .collect()
}

/// Encodes `audio` as FLAC at `bits` (16 or 24) bits per sample.
///
/// # Errors
/// [`EncodeError::Flac`] when the encoder refuses the stream (e.g. more than 8 channels).
pub fn encode_flac(audio: &Audio, bits: u8) -> Result<Vec<u8>, EncodeError> {
    let ints = quantize(&audio.samples, bits);
    let flac = flac_with(audio, &ints, bits, flacenc::config::Encoder::default())?;
    // Plain PCM in FLAC frames, plus headers: a ceiling no encoding should pass.
    let pcm = ints.len() * usize::from(bits) / 8;
    if flac.len() <= pcm + pcm / 50 + 8192 {
        return Ok(flac);
    }
    // flacenc's predictors can cost far more than the samples on loud wideband noise
    // (measured: 2.7x at 24 bits): then store the samples verbatim, still lossless.
    let mut verbatim = flacenc::config::Encoder::default();
    verbatim.subframe_coding.use_fixed = false;
    verbatim.subframe_coding.use_lpc = false;
    verbatim.stereo_coding.use_leftside = false;
    verbatim.stereo_coding.use_rightside = false;
    verbatim.stereo_coding.use_midside = false;
    flac_with(audio, &ints, bits, verbatim)
}

fn flac_with(
    audio: &Audio,
    ints: &[i32],
    bits: u8,
    config: flacenc::config::Encoder,
) -> Result<Vec<u8>, EncodeError> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;
    let config = config
        .into_verified()
        .map_err(|(_, e)| EncodeError::Flac(format!("{e:?}")))?;
    let source = flacenc::source::MemSource::from_samples(
        ints,
        usize::from(audio.channels),
        usize::from(bits),
        audio.sample_rate_hz as usize,
    );
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| EncodeError::Flac(format!("{e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| EncodeError::Flac(format!("{e:?}")))?;
    let mut bytes = sink.into_inner();
    fixed_block_streaminfo(&mut bytes);
    Ok(bytes)
}

/// Makes the STREAMINFO of a fixed-blocksize stream say so: flacenc writes the short last
/// block's size as the minimum block size, which the FLAC format reserves for variable
/// blocksize streams (for a fixed one, minimum and maximum are the block size). libFLAC
/// reads such a file; symphonia (the probe's own `analyze`, the harness's HTML report)
/// refuses it. Bytes 8-9 hold the minimum, 10-11 the maximum, after `fLaC` and the
/// STREAMINFO block header.
fn fixed_block_streaminfo(bytes: &mut [u8]) {
    let is_streaminfo = bytes.len() >= 12 && &bytes[..4] == b"fLaC" && bytes[4] & 0x7f == 0;
    if is_streaminfo {
        let (max_hi, max_lo) = (bytes[10], bytes[11]);
        bytes[8] = max_hi;
        bytes[9] = max_lo;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "formats")]
    #[test]
    fn evidence_reads_back_whole_with_the_probes_own_reader() {
        // Not a multiple of the block size: the last block is short.
        for (bits, channels) in [(16, 1), (24, 2)] {
            let audio = noisy_tone(48_000, channels, 1.2345);
            let bytes = encode_flac(&audio, bits).unwrap();
            let min = u16::from_be_bytes([bytes[8], bytes[9]]);
            let max = u16::from_be_bytes([bytes[10], bytes[11]]);
            assert_eq!(min, max, "a fixed-blocksize stream");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("evidence.flac");
            std::fs::write(&path, &bytes).unwrap();
            let mut r = crate::recording::RecordingReader::open(&path).unwrap();
            let mut frames = 0;
            while let Some(planes) = r.next_block().unwrap() {
                frames += planes[0].len();
            }
            assert_eq!(frames * usize::from(channels), audio.samples.len());
        }
    }

    /// Decodes FLAC bytes to interleaved integers (claxon, an independent decoder).
    pub(crate) fn decode_flac(bytes: &[u8]) -> (claxon::metadata::StreamInfo, Vec<i32>) {
        let mut r = claxon::FlacReader::new(std::io::Cursor::new(bytes)).unwrap();
        let info = r.streaminfo();
        let samples = r.samples().map(Result::unwrap).collect();
        (info, samples)
    }

    fn noisy_tone(rate: u32, channels: u16, secs: f32) -> Audio {
        let n = (rate as f32 * secs) as usize;
        let mut x = 0x1234_5678u32;
        let mut samples = Vec::with_capacity(n * usize::from(channels));
        for i in 0..n {
            for c in 0..channels {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let noise = (x as f32 / u32::MAX as f32 - 0.5) * 0.002;
                let t = i as f32 / rate as f32;
                samples
                    .push((t * 1000.0 * std::f32::consts::TAU + f32::from(c)).sin() * 0.3 + noise);
            }
        }
        Audio {
            sample_rate_hz: rate,
            channels,
            samples,
        }
    }

    #[test]
    fn flac_at_24_bits_round_trips_the_quantized_samples_exactly() {
        let a = noisy_tone(48_000, 2, 0.5);
        let flac = encode_flac(&a, 24).unwrap();
        assert_eq!(&flac[..4], b"fLaC");
        let (info, back) = decode_flac(&flac);
        assert_eq!(
            (info.sample_rate, info.channels, info.bits_per_sample),
            (48_000, 2, 24)
        );
        assert_eq!(back, quantize(&a.samples, 24));
        // The quantization error is below one 24-bit step.
        let worst = a
            .samples
            .iter()
            .zip(&back)
            .map(|(x, q)| (f64::from(*x) - f64::from(*q) / f64::from(1u32 << 23)).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 0.5 / f64::from(1u32 << 23) + 1e-12, "{worst}");
        assert!(flac.len() < a.samples.len() * 3, "{} bytes", flac.len());
    }

    #[test]
    fn loud_noise_costs_no_more_than_plain_pcm() {
        let mut x = 0x9e37_79b9u32;
        let samples: Vec<f32> = (0..96_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32 - 0.5) * 0.2
            })
            .collect();
        let a = Audio {
            sample_rate_hz: 48_000,
            channels: 2,
            samples,
        };
        let flac = encode_flac(&a, 24).unwrap();
        let pcm = a.samples.len() * 3;
        eprintln!(
            "noise: {} bytes of FLAC for {pcm} bytes of 24-bit PCM",
            flac.len()
        );
        assert!(flac.len() < pcm + pcm / 50, "{} > {pcm}", flac.len());
        let (_, back) = decode_flac(&flac);
        assert_eq!(back, quantize(&a.samples, 24));
    }

    #[test]
    fn sixteen_bit_devices_are_encoded_exactly_at_16_bits() {
        // What cpal hands over from an i16 device: k / 32768.
        let ints: Vec<i32> = (0..8000).map(|i| ((i * 37) % 65_536) - 32_768).collect();
        let a = Audio::mono(8000, ints.iter().map(|&k| k as f32 / 32_768.0).collect());
        assert_eq!(bits_for("i16"), 16);
        assert_eq!(bits_for("f32"), 24);
        let (_, back) = decode_flac(&encode_flac(&a, 16).unwrap());
        assert_eq!(back, ints);
    }

    #[test]
    fn out_of_range_and_non_finite_samples_are_clamped_not_wrapped() {
        assert_eq!(
            quantize(&[2.0, -2.0, f32::NAN, f32::INFINITY, 1.0, -1.0], 16),
            vec![32_767, -32_768, 0, 0, 32_767, -32_768]
        );
    }

    #[test]
    fn more_than_eight_channels_fall_back_to_wav() {
        let a = noisy_tone(8000, 10, 0.05);
        let (format, bytes) = encode(&Kept {
            audio: a,
            bits_per_sample: 24,
        })
        .unwrap();
        assert_eq!(format, EvidenceFormat::Wav);
        assert_eq!(&bytes[..4], b"RIFF");
    }

    #[test]
    fn the_store_drops_the_oldest_beyond_its_caps() {
        let one = |secs| noisy_tone(1000, 1, secs);
        // 1000 samples = 4000 bytes each.
        let mut s = EvidenceStore::new(10_000, 3);
        let a = s.keep(one(1.0), "f32").unwrap();
        let b = s.keep(one(1.0), "f32").unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.frames, 1000);
        assert_eq!(a.bits_per_sample, 24);
        let c = s.keep(one(1.0), "i16").unwrap();
        assert_eq!(c.bits_per_sample, 16);
        // Bytes: a + b + c = 12000 > 10000, so a went when c came.
        assert!(s.get(a.id).is_none());
        assert!(s.get(b.id).is_some() && s.get(c.id).is_some());
        assert_eq!(s.usage(), (2, 8000));
        // Count: three small ones push b out.
        let d = s.keep(one(0.1), "f32").unwrap();
        let e = s.keep(one(0.1), "f32").unwrap();
        assert!(s.get(b.id).is_none());
        assert_eq!(s.usage().0, 3);
        assert!(s.get(d.id).is_some() && s.get(e.id).is_some());
        // Too big for the cap on its own: not kept, nothing else dropped.
        assert!(s.keep(one(3.0), "f32").is_none());
        assert_eq!(s.usage().0, 3);
    }
}
