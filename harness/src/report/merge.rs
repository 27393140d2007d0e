//! Several runs as one (`earshot merge`): the shards of a fleet run joined into the run
//! they are shares of, counted as that run would be.

use std::path::{Path, PathBuf};

use super::{Interruption, Run};

/// Runs that cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// One host and scenario in two reports.
    #[error(
        "scenario `{scenario}` on host {host} is in both {} and {}: each host and scenario \
         may be in one report only (were two shards given the same --shard?)",
        first.display(), second.display()
    )]
    Twice {
        /// The scenario.
        scenario: String,
        /// Its session host.
        host: String,
        /// The report it was found in first.
        first: PathBuf,
        /// The report it was found in again.
        second: PathBuf,
    },
}

/// `runs` (each with the report it was read from) as one run: every scenario, sorted by
/// name and host; started when the first started; interrupted when any was (the signals
/// named, the scenarios never started added up).
///
/// # Errors
/// [`MergeError::Twice`] when a host and scenario are in two reports.
pub fn join(runs: Vec<(PathBuf, Run)>) -> Result<Run, MergeError> {
    let mut joined = Run::new();
    joined.started_unix_ms = runs
        .iter()
        .map(|(_, r)| r.started_unix_ms)
        .fold(f64::INFINITY, f64::min);
    let mut seen: std::collections::BTreeMap<(String, String), &Path> = Default::default();
    for (f, run) in &runs {
        for s in &run.scenarios {
            let host = s.session_host().unwrap_or("?").to_string();
            if let Some(first) = seen.insert((host.clone(), s.name.clone()), f) {
                return Err(MergeError::Twice {
                    scenario: s.name.clone(),
                    host,
                    first: first.to_path_buf(),
                    second: f.clone(),
                });
            }
        }
    }
    for (_, run) in runs {
        joined.scenarios.extend(run.scenarios);
        // A shard stopped by a signal makes the joined run an interrupted one: its
        // scenarios never started are in no report.
        joined.interrupted = match (joined.interrupted.take(), run.interrupted) {
            (Some(a), Some(b)) => Some(Interruption {
                signal: if a.signal == b.signal {
                    a.signal
                } else {
                    format!("{}, {}", a.signal, b.signal)
                },
                exit_code: a.exit_code,
                at_unix_ms: a.at_unix_ms.min(b.at_unix_ms),
                not_started: a.not_started + b.not_started,
            }),
            (a, b) => a.or(b),
        };
    }
    joined.scenarios.sort_by(|a, b| {
        (&a.name, &a.host, a.started_unix_ms)
            .partial_cmp(&(&b.name, &b.host, b.started_unix_ms))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(joined)
}
