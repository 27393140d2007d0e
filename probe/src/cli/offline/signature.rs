//! `analyze` of a signature: per channel, whether the seed's signature is in the
//! recording, where, at what level and speed, and the channel map of a stereo signature.

use super::*;

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

pub(super) fn analyze(file: &Path, seed: u64, direction: Direction, json: bool) -> Result<u8> {
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
