//! The verdicts of the stream checks: continuity (a stream that must arrive whole) and
//! quality (a probe signal that must arrive as well as the quality policy allows).

use super::*;

/// Judges a continuity observation of the planned continuity check `p` (on the output or
/// the capture path): the stream must arrive whole where the policy redirects that path;
/// `reasons` are the limits it broke (empty: whole).
pub fn judge_continuity(p: &Planned, observed: &Observation, reasons: &[String]) -> Judgement {
    let redirected = p.needs_sound();
    let (expected, by, path) = (p.expected(), p.decided_by(), p.path);
    let head = Cause::new(expected, Some(by), observed);
    let j = |verdict, what: String| head.judged(verdict, what);
    if !redirected {
        return j(
            Verdict::Inconclusive,
            format!(
                "the policy does not redirect this path, so there is no stream to keep whole; \
                 the {} check proves the block: remove continuity from this scenario's checks",
                path
            ),
        );
    }
    match observed {
        Observation::Continuity { found: false, .. } => j(
            Verdict::Inconclusive,
            format!(
                "nothing like the stream arrived, so its continuity cannot be measured; see \
                 the {path} check for whether the path is redirected at all"
            ),
        ),
        Observation::Continuity { .. } if reasons.is_empty() => j(
            Verdict::Pass,
            "the stream arrived whole, within the scenario's [continuity] limits".into(),
        ),
        Observation::Continuity { .. } => j(
            Verdict::Fail,
            format!(
                "the stream arrived degraded: {}; users hear this as stutter or dropouts \
                 (look at the link's loss and bandwidth, the session host's CPU, and the \
                 client's audio quality mode)",
                reasons.join("; ")
            ),
        ),
        Observation::NoDevice { .. } | Observation::Error { .. } => j(
            Verdict::Inconclusive,
            "the stream could not be played or recorded".into(),
        ),
        _ => j(Verdict::Inconclusive, "not a continuity measurement".into()),
    }
}

/// The least measured class that meets a playback quality: high needs high (fullband,
/// clean), medium needs medium (wideband through a compressed format), dynamic (the
/// server adapts to the bandwidth) needs speech to survive (low).
pub fn least_class(q: Quality) -> QualityClass {
    match q {
        Quality::High => QualityClass::High,
        Quality::Medium => QualityClass::Medium,
        Quality::Dynamic => QualityClass::Low,
    }
}

/// A class as the observation spells it.
fn class_named(name: &str) -> Option<QualityClass> {
    [
        QualityClass::High,
        QualityClass::Medium,
        QualityClass::Low,
        QualityClass::Poor,
    ]
    .into_iter()
    .find(|c| c.words() == name)
}

/// Judges a quality observation: where playback is redirected, the path must carry audio at
/// least as well as the expected quality (the lower of what the session host allows and
/// what the client asks) needs ([`least_class`]); worse is a fail, with the figures that
/// make it worse.
pub fn judge_quality(
    output: &Decision<OutputExpect>,
    quality: &Decision<Quality>,
    observed: &Observation,
) -> Judgement {
    let need = least_class(quality.value);
    let redirected = output.value == OutputExpect::Client;
    let expected = if redirected {
        format!(
            "{} quality ({}), so {} class or better",
            quality.value.name(),
            quality.decided_by,
            need.words()
        )
    } else {
        format!(
            "nothing to measure: output is not redirected ({})",
            output.decided_by
        )
    };
    let head = Cause::new(&expected, None, observed);
    let j = |verdict, what: String| head.judged(verdict, what);
    if !redirected {
        return j(
            Verdict::Inconclusive,
            "the policy does not redirect playback, so there is no audio whose quality to \
             measure; the output check proves the block: remove quality from this scenario's \
             checks"
                .into(),
        );
    }
    match observed {
        Observation::Quality { found: false, .. } => j(
            Verdict::Inconclusive,
            "nothing like the quality probe signal arrived, so its quality cannot be measured; \
             see the output check for whether playback is redirected at all"
                .into(),
        ),
        Observation::Quality {
            class,
            band_edge_hz,
            rate_class,
            sinad_db,
            holes_hz,
            speed,
            ..
        } => {
            let Some(got) = class_named(class) else {
                return j(
                    Verdict::Inconclusive,
                    format!("the probe reported an unknown quality class `{class}`"),
                );
            };
            if got >= need {
                return j(
                    Verdict::Pass,
                    format!(
                        "the path carries {} audio ({}), which meets {} quality",
                        got.words(),
                        got.meaning(),
                        quality.value.words()
                    ),
                );
            }
            let mut why = Vec::new();
            if let Some(x) = speed {
                why.push(format!(
                    "the audio arrives at {x}× its speed ({}): the session host sends it at \
                     one sample rate and the client plays it at another (xrdp 0.9 does this \
                     when the client does not offer 16-bit PCM at 44.1 kHz)",
                    if *x < 1.0 {
                        "slowed down, lower in pitch"
                    } else {
                        "sped up, higher in pitch"
                    }
                ));
            }
            if let (Some(edge), Some(rate), None) = (band_edge_hz, rate_class, speed) {
                if *edge < earshot_probe::signal::quality::TONES_HZ[16] {
                    why.push(format!(
                        "nothing above {edge:.0} Hz arrives: the audio runs at {rate} somewhere \
                         on the way"
                    ));
                }
            }
            if let Some(x) = sinad_db {
                let floor = match need {
                    QualityClass::High => earshot_probe::signal::quality::HIGH_MIN_SINAD_DB,
                    QualityClass::Medium => earshot_probe::signal::quality::MEDIUM_MIN_SINAD_DB,
                    _ => earshot_probe::signal::quality::LOW_MIN_SINAD_DB,
                };
                if *x < floor {
                    why.push(format!(
                        "noise and distortion only {x:.0} dB under the signal ({need_words} \
                         needs {floor:.0}): a lossy codec or a coarse sample format",
                        need_words = need.words()
                    ));
                }
            }
            if !holes_hz.is_empty() {
                why.push(format!("{} band(s) missing below the edge", holes_hz.len()));
            }
            j(
                Verdict::Fail,
                format!(
                    "the path is worse than the policy allows: {} audio ({}){}; look at the \
                     client's audio quality mode (audioqualitymode), the session host's \
                     \"Limit audio playback quality\" policy and the format the session's audio \
                     device runs at",
                    got.words(),
                    got.meaning(),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", why.join("; "))
                    }
                ),
            )
        }
        Observation::NoDevice { .. } | Observation::Error { .. } => j(
            Verdict::Inconclusive,
            "the quality probe signal could not be played or recorded".into(),
        ),
        _ => j(Verdict::Inconclusive, "not a quality measurement".into()),
    }
}

/// Judges a speech observation: where playback is redirected, the speech that arrived is
/// held to `[budgets] min_mos`; without it the score is reported with a pass.
pub fn judge_speech(
    output: &Decision<OutputExpect>,
    min_mos: Option<f64>,
    observed: &Observation,
) -> Judgement {
    let redirected = output.value == OutputExpect::Client;
    let expected = match (redirected, min_mos) {
        (false, _) => format!(
            "nothing to score: output is not redirected ({})",
            output.decided_by
        ),
        (true, Some(m)) => {
            format!("speech redirected to the client at MOS-LQO {m} or better (budgets.min_mos)")
        }
        (true, None) => "speech redirected to the client, its score reported".into(),
    };
    let head = Cause::new(&expected, None, observed);
    let j = |verdict, what: String| head.judged(verdict, what);
    if !redirected {
        return j(
            Verdict::Inconclusive,
            "the policy does not redirect playback, so there is no speech to score; the \
             output check proves the block: remove speech from this scenario's checks"
                .into(),
        );
    }
    match (observed, min_mos) {
        (Observation::Speech { mos_lqo: None, .. }, _) => j(
            Verdict::Inconclusive,
            "no speech arrived to score; see the output check for whether playback is \
             redirected at all"
                .into(),
        ),
        (
            Observation::Speech {
                mos_lqo: Some(m), ..
            },
            Some(min),
        ) if *m < min => j(
            Verdict::Fail,
            format!(
                "redirected but hard to understand: speech scored MOS-LQO {m:.2}, under the \
                 {min} of budgets.min_mos; a low-bitrate or narrowband codec on the way \
                 (the client's audio quality mode, audioqualitymode, and the host's \
                 \"Limit audio playback quality\" policy choose it), packet loss, or noise"
            ),
        ),
        (
            Observation::Speech {
                mos_lqo: Some(m), ..
            },
            Some(min),
        ) => j(
            Verdict::Pass,
            format!("speech arrives at MOS-LQO {m:.2}, at least the {min} of budgets.min_mos"),
        ),
        (
            Observation::Speech {
                mos_lqo: Some(m), ..
            },
            None,
        ) => j(
            Verdict::Pass,
            format!(
                "speech arrives at MOS-LQO {m:.2} (no budgets.min_mos to hold it to; a clean \
                 path reads about 4.6)"
            ),
        ),
        (Observation::NoDevice { .. } | Observation::Error { .. }, _) => j(
            Verdict::Inconclusive,
            "the speech reference could not be played or recorded".into(),
        ),
        _ => j(Verdict::Inconclusive, "not a speech measurement".into()),
    }
}
