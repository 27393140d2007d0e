//! Recordings read from files of the common formats, one block at a time (symphonia).
//!
//! `analyze` takes whatever recording an admin has: WAV of any PCM kind (8/16/24/32-bit
//! integer, 32/64-bit float, µ-law, A-law, IMA and Microsoft ADPCM), FLAC, MP3 and Ogg
//! Vorbis. A [`RecordingReader`] decodes one packet at a time into per-channel `f32`
//! blocks, so memory does not depend on the recording's length: the reader holds at most
//! one packet of decoded frames ([`RecordingReader::max_block_frames`]) plus the decoder's
//! and the file buffer's fixed state.
//!
//! Every error names the file and says what is wrong with it; an unsupported codec or
//! container is named, with the list of what is supported.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as CodecError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// What `analyze` reads, for error messages and help.
pub const SUPPORTED: &str = "WAV (8/16/24/32-bit integer, 32/64-bit float, µ-law, A-law, \
IMA or Microsoft ADPCM), FLAC, MP3 or Ogg Vorbis";

/// A conversion that always works, suggested when a file cannot be read.
const CONVERT_HINT: &str = "convert it first, e.g. `sox in.x -b 16 out.wav` or \
`ffmpeg -i in.x out.wav`";

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be opened.
    #[error("cannot open {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty, or holds no audio frames.
    #[error("{path} holds no audio ({what}): expected a recording of at least one sample")]
    Empty {
        /// The file.
        path: PathBuf,
        /// "the file is 0 bytes long", "the audio track has 0 frames", ...
        what: &'static str,
    },
    /// The container is not one this reader knows.
    #[error("{path}: {found}: expected {SUPPORTED}; {CONVERT_HINT}")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// What the file looks like ("AIFF is not supported", "not a recognised audio
        /// file").
        found: String,
    },
    /// The container is known but its codec is not.
    #[error("{path}: {container} with {codec} audio is not supported: expected {SUPPORTED}; {CONVERT_HINT}")]
    UnsupportedCodec {
        /// The file.
        path: PathBuf,
        /// The container ("WAV", "Ogg").
        container: String,
        /// The codec ("GSM 6.10 (WAV format tag 0x0031)", "Opus").
        codec: String,
    },
    /// The file ends before its header says it should.
    #[error("{path} ends early (truncated) after {read_ms:.0} ms of audio{}: the file is incomplete; copy it again if it is a copy, or record again", expected_ms.map(|e| format!(" of the {e:.0} ms its header declares")).unwrap_or_default())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Audio decoded before the end, in ms.
        read_ms: f64,
        /// Audio the header declares, in ms, when it declares it.
        expected_ms: Option<f64>,
    },
    /// The file is damaged, or its header is not valid.
    #[error(
        "{path} is damaged at {at_ms:.0} ms ({message}): if another player reads it, convert it to WAV with that player or with `ffmpeg -i in.x out.wav`"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where decoding stopped, in ms of audio.
        at_ms: f64,
        /// What the decoder found.
        message: String,
    },
    /// A float sample is NaN or infinite.
    #[error("{path}: channel {channel} has a sample that is not a finite number at {at_ms:.1} ms: expected float samples in [-1, 1]")]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// The channel, numbered from 1.
        channel: u16,
        /// Where, in ms from the start.
        at_ms: f64,
    },
    /// A read failed for a reason other than the file's end.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What a recording holds, from its header.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingInfo {
    /// Samples per second per channel.
    pub sample_rate_hz: u32,
    /// Channel count (at least 1).
    pub channels: u16,
    /// The container and codec, e.g. "WAV, PCM signed 16-bit little-endian interleaved".
    pub format: String,
    /// Frames (samples per channel) the header declares, when it does.
    pub declared_frames: Option<u64>,
}

/// Decodes a recording one block at a time.
pub struct RecordingReader {
    path: PathBuf,
    info: RecordingInfo,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    /// Float codecs can carry NaN or infinities, which would poison the level figures.
    check_finite: bool,
    /// The current block, one `Vec` per channel.
    planes: Vec<Vec<f32>>,
    max_block_frames: usize,
    frames_read: u64,
}

impl std::fmt::Debug for RecordingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingReader")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("frames_read", &self.frames_read)
            .finish_non_exhaustive()
    }
}

impl RecordingReader {
    /// Opens a recording and reads its header.
    ///
    /// # Errors
    /// [`RecordingError`] naming the file: cannot open, empty, unsupported container or
    /// codec (named), damaged or truncated header.
    pub fn open(path: &Path) -> Result<RecordingReader, RecordingError> {
        let file = File::open(path).map_err(|source| RecordingError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| RecordingError::Open {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if len == 0 {
            return Err(RecordingError::Empty {
                path: path.to_path_buf(),
                what: "the file is 0 bytes long",
            });
        }
        let head = read_head(path);
        if !looks_supported(&head) {
            // Probing anyway would let the MPEG reader find a false frame sync in, say, an
            // AIFF file, and report a codec the file does not hold.
            return Err(unsupported(path, &head));
        }
        if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
            check_wave_header(path).map_err(|message| RecordingError::Damaged {
                path: path.to_path_buf(),
                at_ms: 0.0,
                message,
            })?;
        }
        let mss = MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                CodecError::Unsupported(_) => unsupported(path, &head),
                other => header_error(path, other),
            })?;
        let container = container_name(format.format_info().short_name);
        let Some(track) = format.default_track(TrackType::Audio) else {
            return Err(RecordingError::Empty {
                path: path.to_path_buf(),
                what: "the file has no audio track",
            });
        };
        let track_id = track.id;
        let declared_frames = track.num_frames;
        let Some(params) = track.codec_params.as_ref().and_then(|p| p.audio()).cloned() else {
            return Err(RecordingError::Empty {
                path: path.to_path_buf(),
                what: "the file has no audio track",
            });
        };
        let codecs = symphonia::default::get_codecs();
        let Some(registered) = codecs.get_audio_decoder(params.codec) else {
            return Err(RecordingError::UnsupportedCodec {
                path: path.to_path_buf(),
                container,
                codec: codec_name(params.codec),
            });
        };
        let codec_long_name = registered.codec.info.long_name;
        let decoder = codecs
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| match e {
                CodecError::Unsupported(what) => RecordingError::UnsupportedCodec {
                    path: path.to_path_buf(),
                    container: container.clone(),
                    codec: format!("{codec_long_name} ({what})"),
                },
                other => header_error(path, other),
            })?;
        let sample_rate_hz = params.sample_rate.unwrap_or(0);
        if sample_rate_hz == 0 {
            return Err(RecordingError::Damaged {
                path: path.to_path_buf(),
                at_ms: 0.0,
                message: "the header declares no sample rate".into(),
            });
        }
        let channels = params.channels.as_ref().map_or(0, |c| c.count());
        let channels = u16::try_from(channels).unwrap_or(0);
        if channels == 0 {
            return Err(RecordingError::Damaged {
                path: path.to_path_buf(),
                at_ms: 0.0,
                message: "the header declares 0 channels".into(),
            });
        }
        let max_block_frames = params
            .max_frames_per_packet
            .map_or(MAX_PACKET_FRAMES, |n| n as usize)
            .min(MAX_PACKET_FRAMES);
        let check_finite = [
            CODEC_ID_PCM_F32LE,
            CODEC_ID_PCM_F32BE,
            CODEC_ID_PCM_F64LE,
            CODEC_ID_PCM_F64BE,
        ]
        .contains(&params.codec);
        Ok(RecordingReader {
            path: path.to_path_buf(),
            info: RecordingInfo {
                sample_rate_hz,
                channels,
                format: format!("{container}, {codec_long_name}"),
                declared_frames: declared_frames.filter(|&n| n > 0),
            },
            format,
            decoder,
            track_id,
            check_finite,
            planes: (0..channels)
                .map(|_| Vec::with_capacity(max_block_frames))
                .collect(),
            max_block_frames,
            frames_read: 0,
        })
    }

    /// The recording's rate, channels and format.
    pub fn info(&self) -> &RecordingInfo {
        &self.info
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames (samples per channel) decoded so far.
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// The most frames one block can hold: the codec's largest packet (1152 for WAV and
    /// MP3, up to 65535 for FLAC, 8192 for Vorbis), never more than 65536.
    pub fn max_block_frames(&self) -> usize {
        self.max_block_frames
    }

    /// Samples the reader's block buffers can hold (their capacity, all channels): what
    /// the reader's own memory for audio amounts to, whatever the recording's length.
    pub fn buffered_samples(&self) -> usize {
        self.planes.iter().map(Vec::capacity).sum()
    }

    /// Decodes the next block of audio: one slice per channel, all the same length.
    ///
    /// # Returns
    /// `None` once the recording has ended.
    ///
    /// # Errors
    /// [`RecordingError::Truncated`] when the file ends before its header says it should,
    /// [`RecordingError::Damaged`] for data the decoder cannot read,
    /// [`RecordingError::Empty`] when the recording ends without a single frame,
    /// [`RecordingError::NotFinite`] for NaN or infinite float samples.
    pub fn next_block(&mut self) -> Result<Option<&[Vec<f32>]>, RecordingError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return self.end().map(|()| None),
                Err(CodecError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(self.truncated())
                }
                Err(CodecError::IoError(source)) => {
                    return Err(RecordingError::Read {
                        path: self.path.clone(),
                        source,
                    })
                }
                Err(e) => return Err(self.damaged(&e)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            if packet.data.is_empty() {
                // A container that declares more data than the file holds hands out empty
                // packets at its end instead of an error.
                return self.end().map(|()| None);
            }
            let at_ms = self.ms(self.frames_read);
            let decoded = match self.decoder.decode(&packet) {
                Ok(buf) => buf,
                Err(CodecError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(self.truncated())
                }
                Err(e) => return Err(self.damaged(&e)),
            };
            let frames = decoded.frames();
            // Encoder delay and padding (MP3 with a gapless tag, Vorbis) are not part of the
            // recording: the onset is measured from the first real sample. A packet's
            // duration counts its valid frames after the delay.
            let start = (packet.trim_start.get() as usize).min(frames);
            let end = match packet.dur.get() as usize {
                0 => frames.saturating_sub(packet.trim_end.get() as usize),
                dur => start.saturating_add(dur).min(frames),
            }
            .max(start);
            if end == start {
                continue;
            }
            if decoded.num_planes() != self.planes.len() {
                return Err(RecordingError::Damaged {
                    path: self.path.clone(),
                    at_ms,
                    message: format!(
                        "the stream changes from {} to {} channels",
                        self.planes.len(),
                        decoded.num_planes()
                    ),
                });
            }
            decoded.copy_to_vecs_planar::<f32>(&mut self.planes);
            for plane in &mut self.planes {
                plane.truncate(end);
                plane.drain(..start);
            }
            if self.check_finite {
                self.check_finite_block()?;
            }
            self.frames_read += (end - start) as u64;
            return Ok(Some(&self.planes));
        }
    }

    fn check_finite_block(&self) -> Result<(), RecordingError> {
        for (c, plane) in self.planes.iter().enumerate() {
            if plane.iter().all(|v| v.is_finite()) {
                continue;
            }
            let i = plane.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(RecordingError::NotFinite {
                path: self.path.clone(),
                channel: u16::try_from(c + 1).unwrap_or(u16::MAX),
                at_ms: self.ms(self.frames_read + i as u64),
            });
        }
        Ok(())
    }

    /// The recording has ended: was it whole?
    fn end(&self) -> Result<(), RecordingError> {
        if self.frames_read == 0 {
            return Err(RecordingError::Empty {
                path: self.path.clone(),
                what: "the audio track has 0 frames",
            });
        }
        match self.info.declared_frames {
            // A frame short is rounding in a codec's last packet, not a lost copy.
            Some(n) if self.frames_read + 1 < n => Err(self.truncated()),
            _ => Ok(()),
        }
    }

    fn truncated(&self) -> RecordingError {
        RecordingError::Truncated {
            path: self.path.clone(),
            read_ms: self.ms(self.frames_read),
            expected_ms: self.info.declared_frames.map(|n| self.ms(n)),
        }
    }

    fn damaged(&self, e: &CodecError) -> RecordingError {
        RecordingError::Damaged {
            path: self.path.clone(),
            at_ms: self.ms(self.frames_read),
            message: e.to_string(),
        }
    }

    fn ms(&self, frames: u64) -> f64 {
        frames as f64 * 1000.0 / f64::from(self.info.sample_rate_hz.max(1))
    }
}

/// Cap on one block, whatever a header claims (FLAC's largest block is 65535 frames).
const MAX_PACKET_FRAMES: usize = 65_536;

/// A header-time error from symphonia, as ours.
fn header_error(path: &Path, e: CodecError) -> RecordingError {
    match e {
        CodecError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            RecordingError::Truncated {
                path: path.to_path_buf(),
                read_ms: 0.0,
                expected_ms: None,
            }
        }
        CodecError::IoError(source) => RecordingError::Read {
            path: path.to_path_buf(),
            source,
        },
        other => RecordingError::Damaged {
            path: path.to_path_buf(),
            at_ms: 0.0,
            message: other.to_string(),
        },
    }
}

fn container_name(short_name: &str) -> String {
    match short_name {
        "wave" | "wav" => "WAV".into(),
        "ogg" => "Ogg".into(),
        "flac" => "FLAC".into(),
        "mp1" | "mp2" | "mp3" | "mpa" => "MPEG audio".into(),
        other => other.to_string(),
    }
}

/// Names a codec symphonia knows of but this build does not decode.
fn codec_name(id: AudioCodecId) -> String {
    let name = match id {
        CODEC_ID_OPUS => "Opus",
        CODEC_ID_SPEEX => "Speex",
        CODEC_ID_AAC => "AAC",
        CODEC_ID_ALAC => "ALAC",
        CODEC_ID_MP1 => "MPEG layer 1",
        CODEC_ID_MP2 => "MPEG layer 2",
        CODEC_ID_AC3 => "AC-3",
        CODEC_ID_EAC3 => "E-AC-3",
        CODEC_ID_WMA => "WMA",
        CODEC_ID_WAVPACK => "WavPack",
        CODEC_ID_ADPCM_G722 => "G.722 ADPCM",
        CODEC_ID_ADPCM_G726 | CODEC_ID_ADPCM_G726LE => "G.726 ADPCM",
        _ => return format!("an unknown codec (symphonia id {id})"),
    };
    name.to_string()
}

/// The first bytes of a file (fewer when it is shorter or unreadable).
fn read_head(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut head = Vec::with_capacity(64);
    if let Ok(f) = File::open(path) {
        // A failed read leaves what was read: the caller then names the file as unrecognised.
        let _ = f.take(64).read_to_end(&mut head);
    }
    head
}

/// Whether a file starts like one of the supported containers: WAV, FLAC, Ogg, or MPEG
/// audio (an ID3 tag or a frame sync).
fn looks_supported(head: &[u8]) -> bool {
    (head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE")
        || head.starts_with(b"fLaC")
        || head.starts_with(b"OggS")
        || head.starts_with(b"ID3")
        || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
}

/// Names what a file that no reader accepted looks like, from its first bytes.
fn unsupported(path: &Path, head: &[u8]) -> RecordingError {
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        if let Some(tag) = wave_format_tag(path) {
            return RecordingError::UnsupportedCodec {
                path: path.to_path_buf(),
                container: "WAV".into(),
                codec: format!("{} (format tag {tag:#06x})", wave_format_name(tag)),
            };
        }
    }
    let container = if head.len() >= 12 && &head[0..4] == b"FORM" && &head[8..11] == b"AIF" {
        Some("AIFF".to_string())
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
        Some("MP4/M4A (AAC or ALAC)".to_string())
    } else if head.starts_with(b"caff") {
        Some("CAF".to_string())
    } else if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        Some("Matroska/WebM".to_string())
    } else if head.starts_with(b"wvpk") {
        Some("WavPack".to_string())
    } else if head.starts_with(b"MAC ") {
        Some("Monkey's Audio".to_string())
    } else if head.starts_with(b".snd") {
        Some("Sun/NeXT AU".to_string())
    } else if head.starts_with(b"#!AMR") {
        Some("AMR".to_string())
    } else if head.starts_with(b"RF64") || head.starts_with(b"BW64") {
        Some("RF64 (64-bit WAV)".to_string())
    } else if head.starts_with(b"RIFF") {
        let form = String::from_utf8_lossy(head.get(8..12).unwrap_or_default()).into_owned();
        Some(format!("RIFF of form `{form}`"))
    } else {
        None
    };
    let found = match container {
        Some(c) => format!("{c} is not supported"),
        None => "not a recognised audio file (its first bytes match none of the supported \
                 formats)"
            .to_string(),
    };
    RecordingError::UnsupportedFormat {
        path: path.to_path_buf(),
        found,
    }
}

/// The format tag of a WAV file's `fmt ` chunk (the sub-format's for WAVE_FORMAT_EXTENSIBLE).
/// The first 26 bytes of a WAV file's `fmt ` chunk (fewer if the chunk is shorter), and
/// how many were read.
fn wave_fmt(path: &Path) -> Option<([u8; 26], usize)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::Start(12)).ok()?;
    // Chunks before `fmt ` are rare and short; give up after a few.
    for _ in 0..16 {
        let mut hdr = [0u8; 8];
        f.read_exact(&mut hdr).ok()?;
        let len = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if &hdr[0..4] == b"fmt " {
            let mut fmt = [0u8; 26];
            let n = f.read(&mut fmt).ok()?;
            return Some((fmt, n));
        }
        f.seek(SeekFrom::Current(i64::from(len) + i64::from(len & 1)))
            .ok()?;
    }
    None
}

fn wave_format_tag(path: &Path) -> Option<u16> {
    let (fmt, n) = wave_fmt(path)?;
    let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
    if tag == 0xfffe && n >= 26 {
        return Some(u16::from_le_bytes([fmt[24], fmt[25]]));
    }
    Some(tag)
}

/// Most channels a recording earshot reads may have (surround formats stop well below).
const MAX_CHANNELS: u16 = 64;

/// A WAV header's figures checked before a decoder sees them: a header declaring 40,000
/// channels makes a decoder's size arithmetic overflow. `Err` says what is wrong.
fn check_wave_header(path: &Path) -> Result<(), String> {
    let Some((fmt, n)) = wave_fmt(path) else {
        return Ok(()); // No `fmt ` chunk found: the decoder says what is missing.
    };
    if n < 16 {
        return Err(format!(
            "its `fmt ` chunk is {n} bytes, shorter than the 16 of any WAV"
        ));
    }
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(format!(
            "the header declares {channels} channels: expected 1 to {MAX_CHANNELS}"
        ));
    }
    if rate == 0 || rate > 1_536_000 {
        return Err(format!(
            "the header declares a sample rate of {rate} Hz: expected 1 Hz to 1536 kHz"
        ));
    }
    // Compressed formats (GSM, ADPCM) may declare 0 bits: only a size past any format is
    // refused here; the decoder judges the rest.
    if bits > 64 {
        return Err(format!(
            "the header declares {bits} bits per sample: expected at most 64"
        ));
    }
    Ok(())
}

fn wave_format_name(tag: u16) -> &'static str {
    match tag {
        0x0001 => "PCM of an unsupported sample size",
        0x0002 => "Microsoft ADPCM of an unsupported layout",
        0x0003 => "float of an unsupported sample size",
        0x0006 => "A-law of an unsupported layout",
        0x0007 => "µ-law of an unsupported layout",
        0x0011 => "IMA ADPCM of an unsupported layout",
        0x0014 | 0x0040 => "G.723/G.721 ADPCM",
        0x0022 => "DSP Group TrueSpeech",
        0x0031 => "GSM 6.10",
        0x0042 => "G.723.1",
        0x0045 | 0x0064 => "G.726 ADPCM",
        0x0050 => "MPEG layer 1/2",
        0x0055 => "MPEG layer 3 (MP3 inside WAV)",
        0x0065 => "G.722 ADPCM",
        0x0092 | 0x2000 => "AC-3",
        0x00ff | 0x1610 => "AAC",
        0x0160..=0x0163 => "WMA",
        0x0270 => "ATRAC3",
        _ => "an unknown codec",
    }
}

#[cfg(test)]
mod tests;
