//! The probe's offline commands: synth, analyze and impair work on WAV files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use earshot_probe::analysis::{channel_number, Analysis, ChannelAnalysis, ChannelDetectors};
use earshot_probe::recording::RecordingReader;
use earshot_probe::signal::{continuity, impair, quality, Direction, Signature};
use earshot_probe::wav::{self, Audio, WavEncoding};
use serde::Serialize;

mod signature;
mod speech;
mod streams;
use signature::analyze;
use speech::{analyze_speech, synth_speech};
use streams::{analyze_continuity, analyze_quality, describe_recording, read_planes, write_json};

/// Exit status: the signature was detected / the command succeeded.
const EXIT_DETECTED: u8 = 0;
/// Exit status: the recording was analysed and the signature is not in it.
const EXIT_NOT_DETECTED: u8 = 1;

#[derive(Debug, Clone, Copy, ValueEnum)]
/// A direction as typed.
pub enum DirectionArg {
    Output,
    Capture,
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Direction {
        match d {
            DirectionArg::Output => Direction::Output,
            DirectionArg::Capture => Direction::Capture,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
/// A check whose stream `analyze` reads, as typed.
pub enum CheckArg {
    Continuity,
    Quality,
    Speech,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
/// A quality class as typed.
pub enum ClassArg {
    High,
    Medium,
    Low,
}

impl From<ClassArg> for quality::QualityClass {
    fn from(c: ClassArg) -> quality::QualityClass {
        match c {
            ClassArg::High => quality::QualityClass::High,
            ClassArg::Medium => quality::QualityClass::Medium,
            ClassArg::Low => quality::QualityClass::Low,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
/// A WAV encoding as typed.
pub enum EncodingArg {
    F32,
    I16,
}

/// The commands that work on files, without audio devices.
#[derive(Debug, Subcommand)]
pub enum OfflineCommand {
    /// Writes a signature to a WAV file.
    #[command(
        after_help = "Examples:\n  earshot-probe synth --seed 42 --direction output --rate 44100 --lead-ms 500 -o sig.wav\n  earshot-probe synth --continuity 600 -o stream.wav\n  earshot-probe synth --quality --lead-ms 200 -o quality.wav\n  earshot-probe synth --speech --lead-ms 500 -o speech.wav"
    )]
    Synth {
        /// The seed the signature is derived from.
        #[arg(long, required_unless_present_any = ["continuity", "quality", "speech"])]
        seed: Option<u64>,
        /// Which check's alphabet to use.
        #[arg(long, value_enum, required_unless_present_any = ["continuity", "quality", "speech"])]
        direction: Option<DirectionArg>,
        /// Write the continuity stream instead, this many seconds long (a 1987 Hz tone at
        /// -6 dBFS; `analyze --check continuity` accounts for every sample of it).
        #[arg(long, conflicts_with_all = ["seed", "direction"], value_name = "SECONDS")]
        continuity: Option<f64>,
        /// Write the quality probe signal instead (1.15 s: 17 tones from 257 Hz to 19 kHz,
        /// silence, the tones 20 dB lower; `analyze --check quality` measures it).
        #[arg(long, conflicts_with_all = ["seed", "direction", "continuity"])]
        quality: bool,
        /// Write the speech reference instead (4 s of synthesised speech, two
        /// utterances; `analyze --check speech` scores a recording of it, MOS-LQO).
        #[arg(long, conflicts_with_all = ["seed", "direction", "continuity", "quality"])]
        speech: bool,
        /// Write a stereo signature: the seed's signature on the left channel, then (after
        /// 200 ms) its right-hand companion's on the right, each side silent while the
        /// other plays; `analyze --seed` of what arrived reports the channel map (ok,
        /// swapped, mono, left_only, right_only).
        #[arg(long, conflicts_with_all = ["continuity", "quality", "speech"])]
        stereo: bool,
        /// Sample rate in Hz (8000 to 192000).
        #[arg(long, default_value_t = 48_000)]
        rate: u32,
        /// Silence before the signature, in ms.
        #[arg(long, default_value_t = 0)]
        lead_ms: u32,
        /// Silence after the signature, in ms.
        #[arg(long, default_value_t = 0)]
        tail_ms: u32,
        /// Sample encoding of the file.
        #[arg(long, value_enum, default_value = "f32")]
        encoding: EncodingArg,
        /// The WAV file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Looks for a signature in a recording, or with `--check continuity` accounts for the
    /// continuity stream, or with `--check quality` measures the quality probe signal (every
    /// channel; the best is reported).
    #[command(
        after_help = "Examples:\n  earshot-probe analyze recording.flac --seed 42 --direction output --json\n  earshot-probe analyze stream.wav --check continuity --max-breaks 2\n  earshot-probe analyze heard.flac --check quality --min-class medium --json\n  earshot-probe analyze heard.wav --check speech --min-mos 3.5\n\n\
        Reads WAV (8/16/24/32-bit integer, 32/64-bit float, µ-law, A-law, IMA or Microsoft ADPCM),\n\
        FLAC, MP3 and Ogg Vorbis, at 8 to 192 kHz, any number of channels, any length (the file\n\
        is decoded and analysed block by block, in constant memory).\n\n\
        Channels are numbered from 1 in the text and the JSON. The reported channel is the best:\n\
        one where the signature was detected first, then the highest confidence, then the\n\
        lowest number.\n\n\
        Exit status: 0 detected, 1 not detected, 2 error (unreadable, truncated or empty file,\n\
        unsupported format or rate). With --check continuity: 0 whole, 1 degraded or no stream.\n\
        With --check quality: 0 the class is --min-class or better, 1 worse or no signal (the\n\
        first 60 s of the recording are read). With --check speech: 0 scored (and at least\n\
        --min-mos), 1 below it or no speech found (the first 120 s are read)."
    )]
    Analyze {
        /// The recording to analyse: WAV, FLAC, MP3 or Ogg Vorbis.
        file: PathBuf,
        /// The seed of the signature to look for.
        #[arg(long, required_unless_present = "check")]
        seed: Option<u64>,
        /// Which check's signature to look for.
        #[arg(long, value_enum, required_unless_present = "check")]
        direction: Option<DirectionArg>,
        /// Instead of a signature, analyse a recording of this check's stream:
        /// `continuity` (from `synth --continuity`): gaps, glitches, lost or repeated
        /// samples, clock drift and level, with their positions; exit 0 whole, 1 degraded
        /// or no stream. `quality` (from `synth --quality`): band edge and rate class,
        /// SINAD, noise floor, level, signs of a lossy codec, and the quality class.
        /// `speech` (from `synth --speech`): the MOS-LQO of the speech that arrived
        /// (ITU-T P.862.2 wideband), against the built-in reference or `--reference`.
        #[arg(long, value_enum, conflicts_with_all = ["seed", "direction"])]
        check: Option<CheckArg>,
        /// `--check speech`: the reference the recording is scored against (default: the
        /// speech reference `synth --speech` writes, built in).
        #[arg(long, value_name = "FILE")]
        reference: Option<PathBuf>,
        /// `--check speech`: the least MOS-LQO that passes (exit 0), from 1.0 to 5.0.
        #[arg(long, value_name = "MOS")]
        min_mos: Option<f64>,
        /// `--check quality`: the least class that passes (exit 0).
        #[arg(long, value_enum, default_value = "low")]
        min_class: ClassArg,
        /// `--check continuity`: breaks (gaps and glitches) a whole stream may have.
        #[arg(long, default_value_t = 0)]
        max_breaks: usize,
        /// `--check continuity`: largest clock drift, in ppm.
        #[arg(long, default_value_t = 1000.0)]
        max_drift_ppm: f64,
        /// `--check continuity`: largest standard deviation of the level, in dB.
        #[arg(long, default_value_t = 3.0)]
        max_level_std_db: f64,
        /// Print one JSON object on standard output instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Degrades a WAV file like a poor path would: noise, drift, band limit, resampling, gain.
    #[command(
        after_help = "Example:\n  earshot-probe impair sig.wav -o bad.wav --snr-db -10 --band-pass --resample-to 44100"
    )]
    Impair {
        /// The WAV file to read.
        input: PathBuf,
        /// The WAV file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Add white noise at this in-band (300-3400 Hz) SNR, in dB, measured against the
        /// file's non-silent part.
        #[arg(long, allow_hyphen_values = true)]
        snr_db: Option<f64>,
        /// Seed of the noise.
        #[arg(long, default_value_t = 1)]
        noise_seed: u64,
        /// Clock drift to apply, in ppm (tones come out this much higher).
        #[arg(long, allow_hyphen_values = true)]
        drift_ppm: Option<f64>,
        /// Keep only 300-3400 Hz.
        #[arg(long)]
        band_pass: bool,
        /// Resample to this rate, in Hz.
        #[arg(long)]
        resample_to: Option<u32>,
        /// Gain to apply, in dB.
        #[arg(long, allow_hyphen_values = true)]
        gain_db: Option<f64>,
        /// Scale the result so its peak is at -1 dBFS (after everything else).
        #[arg(long)]
        normalize: bool,
        /// Sample encoding of the file.
        #[arg(long, value_enum, default_value = "f32")]
        encoding: EncodingArg,
    },
}

/// Runs one offline command; returns its exit status.
///
/// # Errors
/// Bad input or unwritable output, with the file named.
pub fn run(command: OfflineCommand) -> Result<i32> {
    let code = match command {
        OfflineCommand::Synth {
            seed,
            direction,
            continuity,
            quality,
            speech,
            stereo,
            rate,
            lead_ms,
            tail_ms,
            encoding,
            output,
        } => match continuity {
            Some(seconds) => synth_continuity(seconds, rate, lead_ms, tail_ms, encoding, &output),
            None if speech => synth_speech(rate, (lead_ms, tail_ms), encoding, &output),
            None if quality => synth_quality(rate, lead_ms, tail_ms, encoding, &output),
            None => synth(
                seed.context("--seed is required")?,
                direction.context("--direction is required")?.into(),
                stereo,
                rate,
                (lead_ms, tail_ms),
                encoding,
                &output,
            ),
        },
        OfflineCommand::Analyze {
            file,
            check: Some(CheckArg::Continuity),
            max_breaks,
            max_drift_ppm,
            max_level_std_db,
            json,
            ..
        } => analyze_continuity(
            &file,
            &continuity::Limits {
                max_breaks,
                max_drift_ppm,
                max_level_std_db,
            },
            json,
        ),
        OfflineCommand::Analyze {
            file,
            check: Some(CheckArg::Quality),
            min_class,
            json,
            ..
        } => analyze_quality(&file, min_class.into(), json),
        OfflineCommand::Analyze {
            file,
            check: Some(CheckArg::Speech),
            reference,
            min_mos,
            json,
            ..
        } => analyze_speech(&file, reference.as_deref(), min_mos, json),
        OfflineCommand::Analyze {
            file,
            seed,
            direction,
            json,
            ..
        } => analyze(
            &file,
            seed.context("--seed is required")?,
            direction.context("--direction is required")?.into(),
            json,
        ),
        OfflineCommand::Impair {
            input,
            output,
            snr_db,
            noise_seed,
            drift_ppm,
            band_pass,
            resample_to,
            gain_db,
            normalize,
            encoding: enc,
        } => impair_file(
            &input,
            &output,
            Impairments {
                snr_db,
                noise_seed,
                drift_ppm,
                band_pass,
                resample_to,
                gain_db,
                normalize,
            },
            encoding(enc),
        ),
    }?;
    Ok(i32::from(code))
}

fn encoding(e: EncodingArg) -> WavEncoding {
    match e {
        EncodingArg::F32 => WavEncoding::F32,
        EncodingArg::I16 => WavEncoding::I16,
    }
}

fn synth(
    seed: u64,
    direction: Direction,
    stereo: bool,
    rate: u32,
    (lead_ms, tail_ms): (u32, u32),
    enc: EncodingArg,
    output: &Path,
) -> Result<u8> {
    let render = |seed| {
        Signature::new(seed, direction)
            .render(rate)
            .with_context(|| format!("failed to render the signature for {}", output.display()))
    };
    let samples = render(seed)?;
    let frames = |ms: u32| (u64::from(rate) * u64::from(ms) / 1000) as usize;
    let (lead, tail) = (frames(lead_ms), frames(tail_ms));
    let length = Signature::new(seed, direction).duration().as_millis();
    let audio = if stereo {
        // Left first, then the right after a gap, each side silent while the other plays.
        let right = render(earshot_probe::analysis::right_seed(seed))?;
        let gap = frames(STEREO_GAP_MS);
        let total = lead + samples.len() + gap + right.len() + tail;
        let left = impair::place(&samples, lead, total);
        let right = impair::place(&right, lead + samples.len() + gap, total);
        Audio {
            sample_rate_hz: rate,
            channels: 2,
            samples: left
                .iter()
                .zip(&right)
                .flat_map(|(l, r)| [*l, *r])
                .collect(),
        }
    } else {
        Audio::mono(
            rate,
            impair::place(&samples, lead, lead + samples.len() + tail),
        )
    };
    wav::write(output, &audio, encoding(enc))?;
    println!(
        "wrote {} ({length} ms signature{}, seed {seed}, {direction}, {rate} Hz)",
        output.display(),
        if stereo {
            " on the left, then its right-hand companion on the right"
        } else {
            ""
        }
    );
    Ok(EXIT_DETECTED)
}

/// The silence between a stereo signature's left and right sides, in ms.
const STEREO_GAP_MS: u32 = 200;

fn synth_continuity(
    seconds: f64,
    rate: u32,
    lead_ms: u32,
    tail_ms: u32,
    enc: EncodingArg,
    output: &Path,
) -> Result<u8> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        bail!("--continuity {seconds}: expected a length in seconds, above 0 and at most 3600");
    }
    if !(8_000..=192_000).contains(&rate) {
        bail!("--rate {rate}: expected 8000 to 192000 Hz");
    }
    let samples = continuity::render(rate, seconds);
    let lead = (u64::from(rate) * u64::from(lead_ms) / 1000) as usize;
    let tail = (u64::from(rate) * u64::from(tail_ms) / 1000) as usize;
    let samples = impair::place(&samples, lead, lead + samples.len() + tail);
    wav::write(output, &Audio::mono(rate, samples), encoding(enc))?;
    println!(
        "wrote {} ({seconds} s continuity stream, {} Hz tone, {rate} Hz)",
        output.display(),
        continuity::TONE_HZ
    );
    Ok(EXIT_DETECTED)
}

fn synth_quality(
    rate: u32,
    lead_ms: u32,
    tail_ms: u32,
    enc: EncodingArg,
    output: &Path,
) -> Result<u8> {
    if !(8_000..=192_000).contains(&rate) {
        bail!("--rate {rate}: expected 8000 to 192000 Hz");
    }
    let samples = quality::render(rate);
    let lead = (u64::from(rate) * u64::from(lead_ms) / 1000) as usize;
    let tail = (u64::from(rate) * u64::from(tail_ms) / 1000) as usize;
    let samples = impair::place(&samples, lead, lead + samples.len() + tail);
    wav::write(output, &Audio::mono(rate, samples), encoding(enc))?;
    println!(
        "wrote {} ({} ms quality probe signal, {rate} Hz)",
        output.display(),
        quality::duration_ms()
    );
    Ok(EXIT_DETECTED)
}

struct Impairments {
    snr_db: Option<f64>,
    noise_seed: u64,
    drift_ppm: Option<f64>,
    band_pass: bool,
    resample_to: Option<u32>,
    gain_db: Option<f64>,
    normalize: bool,
}

fn impair_file(input: &Path, output: &Path, imp: Impairments, enc: WavEncoding) -> Result<u8> {
    let audio = wav::read(input)?;
    let mut rate = audio.sample_rate_hz;
    let mut channels: Vec<Vec<f32>> = (0..audio.channels).map(|c| audio.channel(c)).collect();
    for (c, x) in channels.iter_mut().enumerate() {
        if let Some(ppm) = imp.drift_ppm {
            if ppm.abs() >= 1e5 {
                bail!("--drift-ppm {ppm}: expected a drift below 100000 ppm");
            }
            *x = impair::resample(x, 1.0 / (1.0 + ppm * 1e-6));
        }
        if let Some(snr) = imp.snr_db {
            // SNR is stated against the part where something plays.
            let active: Vec<f32> = x.iter().copied().filter(|v| v.abs() > 1e-6).collect();
            if active.is_empty() {
                bail!(
                    "{}: channel {c} is silent: no signal to state an SNR against",
                    input.display()
                );
            }
            let noise = impair::white_noise(x.len(), imp.noise_seed.wrapping_add(c as u64));
            impair::add_noise_at_snr(x, &active, &noise, rate, snr);
        }
        if imp.band_pass {
            *x = impair::band_pass(x, rate, impair::VOICE_BAND_HZ);
        }
        if let Some(to) = imp.resample_to {
            if !(8_000..=192_000).contains(&to) {
                bail!("--resample-to {to}: expected 8000 to 192000 Hz");
            }
            *x = impair::resample(x, f64::from(to) / f64::from(audio.sample_rate_hz));
        }
        if let Some(g) = imp.gain_db {
            impair::gain_db(x, g);
        }
    }
    if let Some(to) = imp.resample_to {
        rate = to;
    }
    if imp.normalize {
        let peak = channels
            .iter()
            .flat_map(|c| c.iter())
            .fold(0.0f32, |m, v| m.max(v.abs()));
        if peak > 0.0 {
            let g = 0.891 / peak;
            channels
                .iter_mut()
                .for_each(|c| c.iter_mut().for_each(|v| *v *= g));
        }
    }
    let frames = channels.iter().map(Vec::len).min().unwrap_or(0);
    let mut samples = Vec::with_capacity(frames * channels.len());
    for i in 0..frames {
        for ch in &channels {
            samples.push(ch[i]);
        }
    }
    let out = Audio {
        sample_rate_hz: rate,
        channels: audio.channels,
        samples,
    };
    wav::write(output, &out, enc)?;
    println!(
        "wrote {} ({} Hz, {:.2} s)",
        output.display(),
        rate,
        out.duration_ms() / 1000.0
    );
    Ok(EXIT_DETECTED)
}
