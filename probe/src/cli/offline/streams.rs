//! `analyze --check quality|continuity`: the stream checks offline, one finding shape
//! for both (the same JSON keys in the same order), in text or JSON.

use super::*;

/// The longest stretch of a recording `analyze --check quality` reads, in seconds.
const QUALITY_READ_S: u64 = 60;

pub(super) fn analyze_quality(
    file: &Path,
    min_class: quality::QualityClass,
    json: bool,
) -> Result<u8> {
    let (info, planes) = read_planes(file, QUALITY_READ_S)?;
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

pub(super) fn analyze_continuity(
    file: &Path,
    limits: &continuity::Limits,
    json: bool,
) -> Result<u8> {
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
pub(super) fn describe_recording(
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

/// The first `seconds` of a recording, one plane per channel.
pub(super) fn read_planes(
    file: &Path,
    seconds: u64,
) -> Result<(earshot_probe::recording::RecordingInfo, Vec<Vec<f32>>)> {
    let mut reader = RecordingReader::open(file)?;
    let info = reader.info().clone();
    let limit = u64::from(info.sample_rate_hz) * seconds;
    let mut planes: Vec<Vec<f32>> = vec![Vec::new(); usize::from(info.channels)];
    while let Some(block) = reader.next_block()? {
        for (all, plane) in planes.iter_mut().zip(block) {
            all.extend_from_slice(plane);
        }
        if reader.frames_read() >= limit {
            break;
        }
    }
    Ok((info, planes))
}

/// One JSON document, pretty, and a newline.
pub(super) fn write_json(out: &mut impl Write, doc: &impl Serialize) -> Result<()> {
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
