//! `synth --speech` and `analyze --check speech`: the speech reference written to a file,
//! and a recording of it scored (MOS-LQO, ITU-T P.862.2) in text or JSON.

use earshot_probe::signal::speech;

use super::*;

/// The longest stretch of a recording `analyze --check speech` reads, in seconds.
const SPEECH_READ_S: u64 = 120;

pub(super) fn synth_speech(
    rate: u32,
    (lead_ms, tail_ms): (u32, u32),
    enc: EncodingArg,
    output: &Path,
) -> Result<u8> {
    let samples = speech::render(rate).map_err(|e| anyhow::anyhow!("--rate {e}"))?;
    let lead = (u64::from(rate) * u64::from(lead_ms) / 1000) as usize;
    let tail = (u64::from(rate) * u64::from(tail_ms) / 1000) as usize;
    let samples = impair::place(&samples, lead, lead + samples.len() + tail);
    wav::write(output, &Audio::mono(rate, samples), encoding(enc))?;
    println!(
        "wrote {} ({} ms speech reference, {rate} Hz)",
        output.display(),
        speech::DURATION_MS
    );
    Ok(EXIT_DETECTED)
}

/// The `analyze --check speech --json` document.
#[derive(Serialize)]
struct SpeechReport<'a> {
    check: &'static str,
    file: &'a Path,
    format: &'a str,
    sample_rate_hz: u32,
    channels: u16,
    duration_ms: f64,
    /// The reference file, or `null` for the built-in speech reference.
    reference: Option<&'a Path>,
    /// `scored`, `below` (under --min-mos) or `no_speech`.
    verdict: &'static str,
    min_mos: Option<f64>,
    /// The best channel's score, numbered from 1.
    best_channel: Option<usize>,
    result: Option<&'a speech::SpeechScore>,
    /// Why no channel could be scored.
    reason: Option<String>,
}

pub(super) fn analyze_speech(
    file: &Path,
    reference: Option<&Path>,
    min_mos: Option<f64>,
    json: bool,
) -> Result<u8> {
    if let Some(m) = min_mos {
        if !(1.0..=5.0).contains(&m) {
            bail!("--min-mos {m}: expected a MOS from 1.0 to 5.0 (e.g. 3.5)");
        }
    }
    let (ref_samples, ref_rate) = match reference {
        Some(r) => {
            let (info, planes) = read_planes(r, SPEECH_READ_S)?;
            let first = planes
                .into_iter()
                .next()
                .with_context(|| format!("{}: the reference has no channel", r.display()))?;
            (first, info.sample_rate_hz)
        }
        None => (speech::render_reference(), speech::SCORE_RATE_HZ),
    };
    let (info, planes) = read_planes(file, SPEECH_READ_S)?;
    let duration_ms =
        planes.first().map_or(0, Vec::len) as f64 * 1000.0 / f64::from(info.sample_rate_hz);
    let mut best: Option<(usize, speech::SpeechScore)> = None;
    let mut reason = None;
    for (i, plane) in planes.iter().enumerate() {
        match speech::score(&ref_samples, ref_rate, plane, info.sample_rate_hz) {
            Ok(s) => {
                if best.as_ref().is_none_or(|(_, b)| s.mos_lqo > b.mos_lqo) {
                    best = Some((i, s));
                }
            }
            Err(e) => reason = Some(e.to_string()),
        }
    }
    let verdict = match (&best, min_mos) {
        (None, _) => "no_speech",
        (Some((_, s)), Some(m)) if s.mos_lqo < m => "below",
        _ => "scored",
    };
    let code = if verdict == "scored" {
        EXIT_DETECTED
    } else {
        EXIT_NOT_DETECTED
    };
    let mut out = std::io::stdout().lock();
    if json {
        write_json(
            &mut out,
            &SpeechReport {
                check: "speech",
                file,
                format: &info.format,
                sample_rate_hz: info.sample_rate_hz,
                channels: info.channels,
                duration_ms,
                reference,
                verdict,
                min_mos,
                best_channel: best.as_ref().map(|(i, _)| i + 1),
                result: best.as_ref().map(|(_, s)| s),
                reason: if best.is_none() { reason } else { None },
            },
        )?;
        return Ok(code);
    }
    writeln!(out, "{}", describe_recording(file, &info, duration_ms))?;
    match &best {
        Some((i, s)) => {
            writeln!(
                out,
                "  MOS-LQO      {:.2} ({}), channel {}",
                s.mos_lqo,
                s.method,
                i + 1
            )?;
            writeln!(
                out,
                "  reference    at {:.0} ms, heard {:.1} dB from the level played",
                s.offset_ms, s.level_db
            )?;
            if let Some(m) = min_mos.filter(|m| s.mos_lqo < *m) {
                writeln!(out, "  below        the --min-mos of {m}")?;
            }
        }
        None => writeln!(
            out,
            "  no speech    {}",
            reason.unwrap_or_else(|| "the recording has no channel".into())
        )?,
    }
    Ok(code)
}
