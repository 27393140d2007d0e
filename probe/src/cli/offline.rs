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
        after_help = "Examples:\n  earshot-probe synth --seed 42 --direction output --rate 44100 --lead-ms 500 -o sig.wav\n  earshot-probe synth --continuity 600 -o stream.wav\n  earshot-probe synth --quality --lead-ms 200 -o quality.wav"
    )]
    Synth {
        /// The seed the signature is derived from.
        #[arg(long, required_unless_present_any = ["continuity", "quality"])]
        seed: Option<u64>,
        /// Which check's alphabet to use.
        #[arg(long, value_enum, required_unless_present_any = ["continuity", "quality"])]
        direction: Option<DirectionArg>,
        /// Write the continuity stream instead, this many seconds long (a 1987 Hz tone at
        /// -6 dBFS; `analyze --check continuity` accounts for every sample of it).
        #[arg(long, conflicts_with_all = ["seed", "direction"], value_name = "SECONDS")]
        continuity: Option<f64>,
        /// Write the quality probe signal instead (1.15 s: 17 tones from 257 Hz to 19 kHz,
        /// silence, the tones 20 dB lower; `analyze --check quality` measures it).
        #[arg(long, conflicts_with_all = ["seed", "direction", "continuity"])]
        quality: bool,
        /// Write a stereo signature: the seed's signature on the left channel, then (after
        /// 200 ms) its right-hand companion's on the right, each side silent while the
        /// other plays; `analyze --seed` of what arrived reports the channel map (ok,
        /// swapped, mono, left_only, right_only).
        #[arg(long, conflicts_with_all = ["continuity", "quality"])]
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
        after_help = "Examples:\n  earshot-probe analyze recording.flac --seed 42 --direction output --json\n  earshot-probe analyze stream.wav --check continuity --max-breaks 2\n  earshot-probe analyze heard.flac --check quality --min-class medium --json\n\n\
        Reads WAV (8/16/24/32-bit integer, 32/64-bit float, µ-law, A-law, IMA or Microsoft ADPCM),\n\
        FLAC, MP3 and Ogg Vorbis, at 8 to 192 kHz, any number of channels, any length (the file\n\
        is decoded and analysed block by block, in constant memory).\n\n\
        Channels are numbered from 1 in the text and the JSON. The reported channel is the best:\n\
        one where the signature was detected first, then the highest confidence, then the\n\
        lowest number.\n\n\
        Exit status: 0 detected, 1 not detected, 2 error (unreadable, truncated or empty file,\n\
        unsupported format or rate). With --check continuity: 0 whole, 1 degraded or no stream.\n\
        With --check quality: 0 the class is --min-class or better, 1 worse or no signal (the\n\
        first 60 s of the recording are read)."
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
        #[arg(long, value_enum, conflicts_with_all = ["seed", "direction"])]
        check: Option<CheckArg>,
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
            stereo,
            rate,
            lead_ms,
            tail_ms,
            encoding,
            output,
        } => match continuity {
            Some(seconds) => synth_continuity(seconds, rate, lead_ms, tail_ms, encoding, &output),
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

/// The longest stretch of a recording `analyze --check quality` reads, in seconds.
const QUALITY_READ_S: u64 = 60;

fn analyze_quality(file: &Path, min_class: quality::QualityClass, json: bool) -> Result<u8> {
    let mut reader = RecordingReader::open(file)?;
    let info = reader.info().clone();
    let limit = u64::from(info.sample_rate_hz) * QUALITY_READ_S;
    let mut planes: Vec<Vec<f32>> = vec![Vec::new(); usize::from(info.channels)];
    while let Some(block) = reader.next_block()? {
        for (all, plane) in planes.iter_mut().zip(block) {
            all.extend_from_slice(plane);
        }
        if reader.frames_read() >= limit {
            break;
        }
    }
    let duration_ms =
        planes.first().map_or(0, Vec::len) as f64 * 1000.0 / f64::from(info.sample_rate_hz);
    let reports: Vec<quality::QualityReport> = planes
        .iter()
        .map(|p| quality::analyze(p, info.sample_rate_hz))
        .collect();
    let best_index = quality::best(&reports);
    let best = reports
        .get(best_index)
        .with_context(|| format!("{}: the recording has no channel", file.display()))?;
    let verdict = match (best.found, best.class >= min_class) {
        (false, _) => "no_signal",
        (true, true) => "pass",
        (true, false) => "below",
    };
    let finding = StreamFinding {
        check: "quality",
        file,
        info: &info,
        duration_ms,
        verdict,
        best_index,
        reports: &reports,
    };
    finding.report(
        json,
        Criteria { min_class },
        NoReasons {},
        |out| {
            write_quality(out, best)?;
            match verdict {
                "no_signal" => writeln!(
                    out,
                    "  verdict      no signal: the quality probe's tones were not held for {} \
                     ms anywhere in the recording (was `synth --quality` played into it?)",
                    quality::MIN_FULL_MS
                )?,
                "pass" => writeln!(out, "  verdict      pass ({} or better)", min_class.words())?,
                _ => writeln!(
                    out,
                    "  verdict      below: {} is worse than {}",
                    best.class.words(),
                    min_class.words()
                )?,
            }
            Ok(())
        },
        verdict == "pass",
    )
}

/// What `analyze --check quality` judges against, in its JSON.
#[derive(Serialize)]
struct Criteria {
    /// The least class that passes.
    min_class: quality::QualityClass,
}

/// The quality check gives no reasons beside its verdict.
#[derive(Serialize)]
struct NoReasons {}

/// Prints the human summary of one quality analysis.
fn write_quality(out: &mut impl Write, r: &quality::QualityReport) -> Result<()> {
    if !r.found {
        return Ok(());
    }
    let db = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} dB"));
    writeln!(
        out,
        "  class        {} ({})",
        r.class.words(),
        r.class.meaning()
    )?;
    writeln!(
        out,
        "  band edge    {} Hz carried{}; rate class {}",
        r.band_edge_hz.map_or("-".into(), |v| format!("{v:.0}")),
        r.first_missing_hz
            .map_or(String::new(), |v| format!(", {v:.0} Hz not")),
        r.rate_class.map_or("-", quality::RateClass::words)
    )?;
    if !r.holes_hz.is_empty() {
        let holes: Vec<String> = r.holes_hz.iter().map(|h| format!("{h:.0}")).collect();
        writeln!(out, "  holes        {} Hz", holes.join(", "))?;
    }
    writeln!(out, "  SINAD        {}", db(r.sinad_db))?;
    let floor = if r.digital_silence {
        "digital silence".to_string()
    } else {
        r.noise_floor_dbfs
            .map_or("-".into(), |v| format!("{v:.1} dBFS"))
    };
    writeln!(out, "  noise floor  {floor}")?;
    writeln!(
        out,
        "  level        gain {}, step {} (played -20 dB)",
        db(r.gain_db),
        db(r.step_db)
    )?;
    if let Some(x) = r.speed {
        writeln!(
            out,
            "  speed        {x}× (the signal arrived at another speed: tones and band as played)"
        )?;
    }
    let signs: Vec<&str> = r.codec_signs.iter().map(|c| c.words()).collect();
    writeln!(
        out,
        "  codec signs  {}",
        if signs.is_empty() {
            "none".into()
        } else {
            signs.join(", ")
        }
    )?;
    Ok(())
}

fn analyze_continuity(file: &Path, limits: &continuity::Limits, json: bool) -> Result<u8> {
    if !(limits.max_drift_ppm.is_finite() && limits.max_drift_ppm >= 0.0) {
        bail!(
            "--max-drift-ppm {}: expected 0 or more",
            limits.max_drift_ppm
        );
    }
    if !(limits.max_level_std_db.is_finite() && limits.max_level_std_db >= 0.0) {
        bail!(
            "--max-level-std-db {}: expected 0 or more",
            limits.max_level_std_db
        );
    }
    let mut reader = RecordingReader::open(file)?;
    let info = reader.info().clone();
    let mut analyzers: Vec<continuity::Analyzer> = (0..info.channels)
        .map(|_| continuity::Analyzer::new(info.sample_rate_hz))
        .collect();
    while let Some(planes) = reader.next_block()? {
        for (a, plane) in analyzers.iter_mut().zip(planes) {
            a.push(plane);
        }
    }
    let duration_ms = reader.frames_read() as f64 * 1000.0 / f64::from(info.sample_rate_hz);
    let reports: Vec<continuity::ContinuityReport> = analyzers
        .into_iter()
        .map(continuity::Analyzer::finish)
        .collect();
    let best_index = continuity::best(&reports);
    let best = reports
        .get(best_index)
        .with_context(|| format!("{}: the recording has no channel", file.display()))?;
    let reasons = if best.found {
        limits.reasons(best)
    } else {
        Vec::new()
    };
    let verdict = match (best.found, reasons.is_empty()) {
        (false, _) => "no_stream",
        (true, true) => "whole",
        (true, false) => "degraded",
    };
    let finding = StreamFinding {
        check: "continuity",
        file,
        info: &info,
        duration_ms,
        verdict,
        best_index,
        reports: &reports,
    };
    finding.report(
        json,
        Limits { limits },
        Reasons { reasons: &reasons },
        |out| {
            write_continuity(out, best)?;
            match verdict {
                "no_stream" => writeln!(
                    out,
                    "  verdict      no stream: no {} Hz tone held for 20 ms anywhere in the \
                     recording (was `synth --continuity` played into it?)",
                    continuity::TONE_HZ
                )?,
                "whole" => writeln!(out, "  verdict      whole")?,
                _ => writeln!(out, "  verdict      degraded: {}", reasons.join("; "))?,
            }
            Ok(())
        },
        verdict == "whole",
    )
}

/// What `analyze --check continuity` judges against, in its JSON.
#[derive(Serialize)]
struct Limits<'a> {
    /// The limits the verdict used.
    limits: &'a continuity::Limits,
}

/// Why a continuity stream is degraded (empty otherwise).
#[derive(Serialize)]
struct Reasons<'a> {
    reasons: &'a [String],
}

/// What `analyze --check quality|continuity` found in one recording: one result per
/// channel, the best of them, and the verdict in a word.
struct StreamFinding<'a, R> {
    /// `quality` or `continuity`.
    check: &'static str,
    file: &'a Path,
    info: &'a earshot_probe::recording::RecordingInfo,
    /// Length read, in ms.
    duration_ms: f64,
    verdict: &'static str,
    /// The channel the result comes from, numbered from 0.
    best_index: usize,
    /// Every channel's result, in channel order.
    reports: &'a [R],
}

/// The `analyze --check quality|continuity --json` document: the recording, what the
/// verdict was judged against (`criteria`: `min_class`, or `limits`), the verdict and its
/// reasons, and the results.
#[derive(Serialize)]
struct StreamDocument<'a, R, C, W> {
    /// Version of this document's layout.
    schema_version: u32,
    /// `quality` or `continuity`.
    check: &'static str,
    /// The file analysed.
    file: &'a Path,
    /// Container and codec.
    format: &'a str,
    /// Samples per second per channel.
    sample_rate_hz: u32,
    /// Channel count.
    channels: u16,
    /// Length read, in ms.
    duration_ms: f64,
    #[serde(flatten)]
    criteria: C,
    /// `pass` / `below` / `no_signal`, or `whole` / `degraded` / `no_stream`.
    verdict: &'static str,
    #[serde(flatten)]
    reasons: W,
    /// The channel the result comes from, numbered from 1.
    best_channel: u16,
    /// The best channel's result.
    result: &'a R,
    /// Every channel's result, in channel order.
    per_channel: Vec<&'a R>,
}

impl<R: Serialize> StreamFinding<'_, R> {
    /// Prints the finding as its JSON document, or as text: the recording and the best
    /// channel, then `body` (the result and the verdict's line). The exit status: found
    /// and within its bounds (`passed`), or not.
    fn report<C: Serialize, W: Serialize>(
        &self,
        json: bool,
        criteria: C,
        reasons: W,
        body: impl FnOnce(&mut std::io::StdoutLock<'static>) -> Result<()>,
        passed: bool,
    ) -> Result<u8> {
        let best_channel = channel_number(self.best_index);
        let mut out = std::io::stdout().lock();
        if json {
            let doc = StreamDocument {
                schema_version: 1,
                check: self.check,
                file: self.file,
                format: &self.info.format,
                sample_rate_hz: self.info.sample_rate_hz,
                channels: self.info.channels,
                duration_ms: self.duration_ms,
                criteria,
                verdict: self.verdict,
                reasons,
                best_channel,
                result: &self.reports[self.best_index],
                per_channel: self.reports.iter().collect(),
            };
            write_json(&mut out, &doc)?;
        } else {
            writeln!(
                out,
                "{}; {} (channel {best_channel})",
                describe_recording(self.file, self.info, self.duration_ms),
                self.check
            )?;
            body(&mut out)?;
        }
        Ok(if passed {
            EXIT_DETECTED
        } else {
            EXIT_NOT_DETECTED
        })
    }
}

/// `FILE: format, rate, channels, length`: the first line of `analyze`'s text.
fn describe_recording(
    file: &Path,
    info: &earshot_probe::recording::RecordingInfo,
    duration_ms: f64,
) -> String {
    format!(
        "{}: {}, {} Hz, {} channel(s), {:.2} s",
        file.display(),
        info.format,
        info.sample_rate_hz,
        info.channels,
        duration_ms / 1000.0
    )
}

/// One JSON document, pretty, and a newline.
fn write_json(out: &mut impl Write, doc: &impl Serialize) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc).context("failed to write the report")?;
    writeln!(out).context("failed to write the report")?;
    Ok(())
}

/// Prints the human summary of one continuity analysis.
fn write_continuity(out: &mut impl Write, r: &continuity::ContinuityReport) -> Result<()> {
    let Some(start) = r.tone_start_ms else {
        return Ok(());
    };
    let level = match (r.level_dbfs, r.level_std_db, r.level_range_dbfs) {
        (Some(l), Some(s), Some((lo, hi))) => {
            format!("{l:.1} dBFS peak (σ {s:.2} dB, {lo:.1} to {hi:.1})")
        }
        (Some(l), _, _) => format!("{l:.1} dBFS peak"),
        _ => "-".into(),
    };
    writeln!(
        out,
        "  stream       from {start:.1} ms, {:.2} s, {level}",
        r.tone_ms / 1000.0
    )?;
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    writeln!(
        out,
        "  drift        {}",
        opt(r.drift_ppm, &|d| format!("{d:+.1} ppm"))
    )?;
    writeln!(
        out,
        "  error floor  {}",
        opt(r.error_floor_db, &|e| format!("{e:.0} dB below the tone"))
    )?;
    if r.events.is_empty() {
        writeln!(out, "  breaks       none")?;
    } else {
        writeln!(
            out,
            "  breaks       {} gap(s), {} glitch(es):",
            r.count(continuity::EventKind::Gap),
            r.count(continuity::EventKind::Glitch)
        )?;
        for e in &r.events {
            match e.kind {
                continuity::EventKind::Gap => writeln!(
                    out,
                    "    gap     {:.1} ms at {:.1} ms ({:.1} s into the stream), {:.0} dB deep, slip {:+.1} samples",
                    e.length_ms, e.file_ms, e.at_ms / 1000.0, e.depth_db, e.slip_samples
                )?,
                continuity::EventKind::Glitch => writeln!(
                    out,
                    "    glitch  at {:.1} ms ({:.1} s into the stream), slip {:+.1} samples",
                    e.file_ms, e.at_ms / 1000.0, e.slip_samples
                )?,
            }
        }
    }
    Ok(())
}

/// The `analyze --json` document.
///
/// Channels are numbered from 1, as in the text output.
#[derive(Serialize)]
struct AnalyzeReport<'a> {
    /// Version of this document's layout.
    schema_version: u32,
    /// The file analysed.
    file: &'a Path,
    /// Container and codec, e.g. "WAV, PCM signed 16-bit little-endian interleaved".
    format: &'a str,
    /// Samples per second per channel.
    sample_rate_hz: u32,
    /// Channel count.
    channels: u16,
    /// Length of the recording, in ms (what was decoded).
    duration_ms: f64,
    /// The seed looked for.
    seed: u64,
    /// The direction looked for.
    direction: Direction,
    /// The channel the result comes from, numbered from 1 (see `best_channel` in the
    /// library: detected first, then the highest confidence, then the lowest number).
    best_channel: u16,
    /// The best channel's result.
    result: &'a Analysis,
    /// Every channel's result, in channel order.
    per_channel: Vec<ChannelResult<'a>>,
    /// For a stereo signature (`synth --stereo`) in a recording of two channels or more:
    /// how its sides arrived (`ok`, `swapped`, `mono`, `left_only`, `right_only`,
    /// `other`); absent when neither side was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_map: Option<earshot_probe::analysis::ChannelMap>,
}

/// One channel's result in the `analyze --json` document.
#[derive(Serialize)]
struct ChannelResult<'a> {
    /// The channel, numbered from 1.
    channel: u16,
    /// Its result.
    result: &'a Analysis,
}

/// Layout version of the `analyze --json` document: 2 added `format`, numbered channels
/// from 1 and gave each `per_channel` entry its number.
const ANALYZE_SCHEMA_VERSION: u32 = 2;

fn analyze(file: &Path, seed: u64, direction: Direction, json: bool) -> Result<u8> {
    let sig = Signature::new(seed, direction);
    let mut reader = RecordingReader::open(file)?;
    let info = reader.info().clone();
    let mut detectors = ChannelDetectors::new(&sig, info.sample_rate_hz, info.channels)
        .with_context(|| format!("failed to analyse {}", file.display()))?;
    // A stereo recording may hold a stereo signature (`synth --stereo`): its right-hand
    // side is looked for too, to tell the channel map.
    let right_sig = Signature::new(earshot_probe::analysis::right_seed(seed), direction);
    let mut right = if info.channels >= 2 {
        Some(
            ChannelDetectors::new(&right_sig, info.sample_rate_hz, info.channels)
                .with_context(|| format!("failed to analyse {}", file.display()))?,
        )
    } else {
        None
    };
    // One decoded block at a time: memory does not grow with the recording's length.
    while let Some(planes) = reader.next_block()? {
        if let Some(r) = right.as_mut() {
            r.push_planar(planes);
        }
        detectors.push_planar(planes);
    }
    let duration_ms = reader.frames_read() as f64 * 1000.0 / f64::from(info.sample_rate_hz);
    let ChannelAnalysis {
        best_index,
        best,
        channels,
    } = detectors.analysis();
    let best_channel = channel_number(best_index);
    let channel_map = right.map(|mut r| {
        let right = r.analysis().channels;
        let on = |a: &[earshot_probe::analysis::Analysis]| {
            [a[0].detected, a.get(1).is_some_and(|x| x.detected)]
        };
        earshot_probe::analysis::ChannelMap::of(on(&channels), on(&right))
    });
    let channel_map = channel_map.flatten();
    let mut out = std::io::stdout().lock();
    if json {
        let report = AnalyzeReport {
            channel_map,
            schema_version: ANALYZE_SCHEMA_VERSION,
            file,
            format: &info.format,
            sample_rate_hz: info.sample_rate_hz,
            channels: info.channels,
            duration_ms,
            seed,
            direction,
            best_channel,
            result: &best,
            per_channel: channels
                .iter()
                .enumerate()
                .map(|(i, result)| ChannelResult {
                    channel: channel_number(i),
                    result,
                })
                .collect(),
        };
        write_json(&mut out, &report)?;
    } else {
        writeln!(
            out,
            "{}; looking for seed {seed} ({direction})",
            describe_recording(file, &info, duration_ms)
        )?;
        write_analysis(&mut out, &best)?;
        if let Some(map) = channel_map {
            writeln!(out, "  stereo       {}: {}", map.name(), map.words())?;
        }
        if info.channels > 1 {
            writeln!(
                out,
                "  channel      {best_channel} of {} (numbered from 1; every channel analysed, \
                 the best shown: detected first, then the highest confidence, then the lowest number)",
                info.channels
            )?;
        }
    }
    Ok(if best.detected {
        EXIT_DETECTED
    } else {
        EXIT_NOT_DETECTED
    })
}

/// Prints the human summary of one analysis.
fn write_analysis(out: &mut impl Write, a: &Analysis) -> Result<()> {
    writeln!(
        out,
        "  detected     {} (confidence {:.2}, 0.50 = threshold; {}/16 symbols clear)",
        if a.detected { "yes" } else { "no" },
        a.confidence,
        a.symbols_matched
    )?;
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.1} {unit}"));
    if a.detected {
        writeln!(out, "  onset        {}", opt(a.onset_ms, "ms"))?;
        writeln!(out, "  level        {}", opt(a.level_dbfs, "dBFS"))?;
        let min = a
            .snr_db_per_symbol
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        writeln!(
            out,
            "  SNR          {} (worst symbol {min:.1} dB)",
            opt(a.median_snr_db(), "dB median")
        )?;
        writeln!(out, "  freq error   {}", opt(a.freq_error_ppm, "ppm"))?;
        if let Some(ppm) = a.freq_error_ppm.filter(|p| p.abs() >= 4_950.0) {
            // 0.5 % or more (within the measurement's 0.01 %): a sample-rate mismatch, not
            // a drifting clock.
            writeln!(
                out,
                "  speed        {:.4}× the speed played ({:.2} % {}): a sample-rate mismatch",
                1.0 + ppm / 1e6,
                ppm.abs() / 1e4,
                if ppm > 0.0 { "fast" } else { "slow" }
            )?;
        }
        if a.dropouts.is_empty() {
            writeln!(out, "  dropouts     none")?;
        } else {
            let list: Vec<String> = a
                .dropouts
                .iter()
                .map(|d| format!("{:.0} ms at {:.0} ms", d.length_ms, d.at_ms))
                .collect();
            writeln!(out, "  dropouts     {}", list.join(", "))?;
        }
    }
    writeln!(
        out,
        "  recording    {:.1} dBFS RMS over {:.0} ms",
        a.rms_dbfs, a.analyzed_ms
    )?;
    Ok(())
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
