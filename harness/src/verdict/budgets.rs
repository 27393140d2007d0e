//! A pass held to the scenario's `[budgets]`: latency, level and speed.

use super::*;

/// A speed off by this much or more (0.5 %, less the measurement's 0.01 %) is said in the
/// observation, budget or none.
pub const SPEED_SAID: f64 = 0.004_95;

/// A pass held to the scenario's budgets (`[budgets]`): a signature heard later than its
/// path's latency budget, or further below the level played than the level budget
/// allows, makes the check a fail ("redirected but late", "redirected but quiet"). Any
/// other verdict, and a pass without budgets, is left as it is.
pub fn hold_to_budgets(
    j: Judgement,
    p: &Planned,
    observed: &Observation,
    budgets: &crate::scenario::Budgets,
) -> Judgement {
    let Observation::Detected {
        latency_ms,
        latencies_ms,
        level_dbfs,
        speed,
        ..
    } = observed
    else {
        return j;
    };
    if j.verdict != Verdict::Pass {
        return j;
    }
    let mut over = Vec::new();
    let mut unmeasured = Vec::new();
    if let Some((budget, key)) = budgets.latency(p.path) {
        let budget_ms = budget.as_secs_f64() * 1000.0;
        // Every play's latency where several were measured: the budget holds the worst.
        let worst = latencies_ms
            .iter()
            .copied()
            .reduce(f64::max)
            .or(*latency_ms);
        let of = if latencies_ms.len() > 1 {
            format!(
                " (the worst of {} plays; median {:.0} ms)",
                latencies_ms.len(),
                latency_ms.unwrap_or(f64::NAN)
            )
        } else {
            String::new()
        };
        match worst {
            Some(ms) if ms > budget_ms => over.push(format!(
                "redirected but late: heard {ms:.0} ms after the play{of}, over the \
                 {budget_ms:.0} ms of {key}"
            )),
            Some(_) => {}
            None => unmeasured.push(format!("{key} (no latency was measured)")),
        }
    }
    if let Some(min) = budgets.min_level_db {
        match level_dbfs {
            Some(level) if level - earshot_probe::signal::SIGNATURE_LEVEL_DBFS < min => {
                let below = earshot_probe::signal::SIGNATURE_LEVEL_DBFS - level;
                over.push(format!(
                    "redirected but quiet: heard {below:.0} dB below what was played ({level:.0} \
                     dBFS of {:.0}), more than the {:.0} dB budgets.min_level_db allows: is the \
                     session's or the client's volume turned down, or the session muted?",
                    earshot_probe::signal::SIGNATURE_LEVEL_DBFS,
                    -min
                ));
            }
            Some(_) => {}
            None => unmeasured.push("budgets.min_level_db (no level was measured)".into()),
        }
    }
    if let Some(max_pct) = budgets.max_speed_error_pct {
        match speed {
            Some(x) if (x - 1.0).abs() * 100.0 > max_pct => over.push(format!(
                "redirected at the wrong speed: it arrived at {x:.4}× the speed played ({:.2} % \
                 {}), more than the {max_pct} % budgets.max_speed_error_pct allows: the \
                 session and the client disagree on the sample rate (44.1 kHz played as 48 kHz \
                 is 8.8 % fast)",
                (x - 1.0).abs() * 100.0,
                if *x > 1.0 { "fast" } else { "slow" }
            )),
            Some(_) => {}
            None => unmeasured.push("budgets.max_speed_error_pct (no speed was measured)".into()),
        }
    }
    if !over.is_empty() {
        return Judgement {
            verdict: Verdict::Fail,
            cause: format!(
                "{}; yet it is outside its budget{}: {}",
                j.cause,
                if over.len() > 1 { "s" } else { "" },
                over.join("; and ")
            ),
        };
    }
    if unmeasured.is_empty() {
        j
    } else {
        Judgement {
            verdict: j.verdict,
            cause: format!("{} (not held to {})", j.cause, unmeasured.join(", ")),
        }
    }
}

/// Below this volume (percent) an output counts as turned all the way down.
const SILENT_VOLUME_PCT: f64 = 1.0;

/// A failed output check where the session's output was muted or turned down (as the
/// session's sound settings said after the plays): the cause names that first, because it
/// is what to fix, not the redirection. Anything else is left as it is.
pub fn name_a_muted_output(
    j: Judgement,
    p: &Planned,
    state: Option<&earshot_probe::audio::OutputState>,
) -> Judgement {
    let Some(state) = state else {
        return j;
    };
    if p.path != AudioPath::Output || !p.needs_sound() || j.verdict != Verdict::Fail {
        return j;
    }
    let setting = if state.muted {
        "is muted".to_string()
    } else if state.volume_pct < SILENT_VOLUME_PCT {
        format!("is at {:.0} % volume", state.volume_pct)
    } else if state.volume_pct < 100.0 {
        // Turned down but audible: said beside the cause ("redirected but quiet").
        return Judgement {
            cause: format!(
                "{} (the session's output `{}` is at {:.0} % volume)",
                j.cause, state.name, state.volume_pct
            ),
            ..j
        };
    } else {
        return j;
    };
    Judgement {
        verdict: j.verdict,
        cause: format!(
            "the session's output `{}` {setting} in the session's sound settings, so nothing \
             it plays can be heard, redirected or not: unmute it (or turn it up) in the \
             session and run again; {}",
            state.name, j.cause
        ),
    }
}
