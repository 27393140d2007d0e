//! A run as flat records, one per check (and one per scenario that did not run), for
//! the tools admins already run: log stores (`--ndjson`, one JSON object per line, e.g.
//! into a Log Analytics custom table) and monitoring (`--prom`, Prometheus's text format
//! for the textfile collectors of node_exporter and windows_exporter).
//!
//! The columns are stable: new ones may be added, none renamed or removed within a
//! [`RECORD_VERSION`]. `docs/records.md` lists them with their types.

use serde::Serialize;
use std::fmt::Write as _;

use super::{write_atomically, Event, ReportError, Reporter, Run, ScenarioRecord};
use crate::verdict::{Observation, Verdict};

/// Version of the record's columns.
pub const RECORD_VERSION: u32 = 1;

/// One check of one scenario on one session host, flat.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CheckRow {
    /// [`RECORD_VERSION`].
    pub record_version: u32,
    /// When the check started, RFC 3339 in UTC (`2026-12-07T12:03:04.512Z`).
    pub time: String,
    /// When the run started, RFC 3339 in UTC: the records of one run share it.
    pub run_started: String,
    /// The session host (the remote probe's host name, or the inventory's), empty when
    /// no probe answered.
    pub host: String,
    /// The scenario's name.
    pub scenario: String,
    /// `output`, `capture`, `continuity`, `quality`, or `scenario` for a scenario that
    /// did not run.
    pub check: String,
    /// The audio path the check measured (`output`, `capture`), empty if none.
    pub path: String,
    /// What the policy layers say must happen, in words.
    pub expected: String,
    /// What was observed, in words.
    pub observed: String,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: Verdict,
    /// Why, in words: what an admin reads first.
    pub cause: String,
    /// The policy layer that decided the expectation.
    pub decided_by: String,
    /// From the play's first sample to its arrival, ms (a detected signature).
    pub latency_ms: Option<f64>,
    /// Level of what arrived, dBFS (a detected signature, a continuity stream).
    pub level_dbfs: Option<f64>,
    /// Median SNR of the signature, dB.
    pub snr_db: Option<f64>,
    /// Signal to noise and distortion of the quality check, dB.
    pub sinad_db: Option<f64>,
    /// The quality check's class (`high`, `medium`, `low`, `poor`).
    pub quality_class: Option<String>,
    /// Gaps in the continuity stream.
    pub gaps: Option<usize>,
    /// Glitches in the continuity stream.
    pub glitches: Option<usize>,
    /// How long the check took, ms.
    pub duration_ms: Option<f64>,
    /// The evidence recording kept for it, if any.
    pub evidence: Option<String>,
    /// The run was stopped by a signal (this check may be one it cut short).
    pub interrupted: bool,
    /// The harness version.
    pub earshot_version: String,
}

fn rfc3339(unix_ms: f64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// `row` with the figures `o` carries: latency, level and SNR of a signature; level, gaps
/// and glitches of a continuity stream; SINAD and class of the quality signal.
fn with_figures(mut row: CheckRow, o: &Observation) -> CheckRow {
    match o {
        Observation::Detected {
            level_dbfs,
            latency_ms,
            snr_db,
            ..
        } => {
            row.latency_ms = *latency_ms;
            row.level_dbfs = *level_dbfs;
            row.snr_db = *snr_db;
        }
        Observation::Continuity {
            level_dbfs,
            gaps,
            glitches,
            ..
        } => {
            row.level_dbfs = *level_dbfs;
            row.gaps = Some(*gaps);
            row.glitches = Some(*glitches);
        }
        Observation::Quality {
            sinad_db, class, ..
        } => {
            row.sinad_db = *sinad_db;
            row.quality_class = Some(class.clone());
        }
        _ => {}
    }
    row
}

/// Every check of `run` as a row, in the run's order, and a row per scenario that did
/// not run (check `scenario`, inconclusive, its error as the cause): the same counts as
/// every other artifact ([`Run::tally`]).
pub fn rows(run: &Run) -> Vec<CheckRow> {
    let run_started = rfc3339(run.started_unix_ms);
    let interrupted = run.interrupted.is_some();
    let mut out = Vec::new();
    let base = |s: &ScenarioRecord| CheckRow {
        record_version: RECORD_VERSION,
        time: rfc3339(s.started_unix_ms),
        run_started: run_started.clone(),
        host: s.session_host().unwrap_or_default().to_string(),
        scenario: s.name.clone(),
        check: "scenario".into(),
        path: String::new(),
        expected: String::new(),
        observed: String::new(),
        verdict: Verdict::Inconclusive,
        cause: String::new(),
        decided_by: String::new(),
        latency_ms: None,
        level_dbfs: None,
        snr_db: None,
        sinad_db: None,
        quality_class: None,
        gaps: None,
        glitches: None,
        duration_ms: None,
        evidence: None,
        interrupted,
        earshot_version: run.earshot_version.clone(),
    };
    for s in &run.scenarios {
        if s.error.is_some() || s.checks.is_empty() {
            let why = s
                .error
                .clone()
                .unwrap_or_else(|| "no check finished".into());
            out.push(CheckRow {
                observed: "did not run".into(),
                cause: format!("did not run: {why}"),
                ..base(s)
            });
        }
        for c in &s.checks {
            let row = CheckRow {
                time: rfc3339(c.started_unix_ms),
                check: c.check.to_string(),
                path: c.path.map(|p| p.to_string()).unwrap_or_default(),
                expected: c.expected.clone(),
                observed: c.observation.describe(),
                verdict: c.verdict,
                cause: c.cause.clone(),
                decided_by: c.decided_by.clone(),
                duration_ms: Some(c.duration_ms),
                evidence: c.evidence.as_ref().map(|p| p.display().to_string()),
                ..base(s)
            };
            out.push(with_figures(row, &c.observation));
        }
    }
    out
}

/// The run as NDJSON: one [`CheckRow`] per line.
pub fn ndjson(run: &Run) -> String {
    rows(run)
        .iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .map(|line| line + "\n")
        .collect()
}

/// A label value as the text format writes it: backslash, quote and line feed escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: finite numbers as Rust prints them, the rest as Prometheus spells them.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The run in Prometheus's text exposition format: per host, scenario and check its
/// verdict (one series per possible verdict, 1 for the one it had), latency (seconds),
/// level, SNR, SINAD and gaps where measured; for the run its counts, exit code, start
/// time and whether it was interrupted. Names and labels follow Prometheus's conventions
/// (`earshot_` prefix, base units, `_total` only for counters).
pub fn prometheus(run: &Run) -> String {
    let rows = rows(run);
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
        for (labels, v) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {}", value(v));
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {}", value(v));
            }
        }
    };
    let ids = |r: &CheckRow| {
        format!(
            "host=\"{}\",scenario=\"{}\",check=\"{}\"",
            label(&r.host),
            label(&r.scenario),
            label(&r.check)
        )
    };
    let verdicts = [Verdict::Pass, Verdict::Fail, Verdict::Inconclusive];
    family(
        "earshot_check_verdict",
        "The verdict of a check: 1 for the verdict it had, 0 for the others \
         (check=\"scenario\": a scenario that did not run).",
        rows.iter()
            .flat_map(|r| {
                verdicts.iter().map(move |v| {
                    (
                        format!("{},verdict=\"{v}\"", ids(r)),
                        f64::from(u8::from(r.verdict == *v)),
                    )
                })
            })
            .collect(),
    );
    let measured = |f: fn(&CheckRow) -> Option<f64>| -> Vec<(String, f64)> {
        rows.iter()
            .filter_map(|r| f(r).map(|v| (ids(r), v)))
            .collect()
    };
    family(
        "earshot_check_latency_seconds",
        "From the play's first sample to its arrival.",
        measured(|r| r.latency_ms.map(|ms| ms / 1000.0)),
    );
    family(
        "earshot_check_level_dbfs",
        "Level of what arrived, dB relative to full scale.",
        measured(|r| r.level_dbfs),
    );
    family(
        "earshot_check_snr_db",
        "Median signal to noise ratio of the signature, dB.",
        measured(|r| r.snr_db),
    );
    family(
        "earshot_check_sinad_db",
        "Signal to noise and distortion of the quality check, dB.",
        measured(|r| r.sinad_db),
    );
    family(
        "earshot_check_gaps",
        "Gaps in the continuity stream.",
        measured(|r| r.gaps.map(|g| g as f64)),
    );
    family(
        "earshot_check_duration_seconds",
        "How long the check took.",
        measured(|r| r.duration_ms.map(|ms| ms / 1000.0)),
    );
    let t = run.tally();
    family(
        "earshot_run_checks",
        "Checks of the run by verdict; inconclusive counts the scenarios that did not run.",
        vec![
            ("verdict=\"pass\"".into(), t.pass as f64),
            ("verdict=\"fail\"".into(), t.fail as f64),
            (
                "verdict=\"inconclusive\"".into(),
                t.inconclusive_total() as f64,
            ),
        ],
    );
    family(
        "earshot_run_exit_code",
        "The run's exit status: 0 pass, 1 fail, 2 inconclusive, 130/143 interrupted.",
        vec![(String::new(), f64::from(t.exit_code()))],
    );
    family(
        "earshot_run_interrupted",
        "1 when a signal stopped the run before its end.",
        vec![(String::new(), f64::from(u8::from(t.interrupted.is_some())))],
    );
    family(
        "earshot_run_start_time_seconds",
        "When the run started, seconds since 1970 (UTC).",
        vec![(String::new(), (run.started_unix_ms / 1000.0).floor())],
    );
    out
}

/// A report that is one rendering of the run ([`ndjson`], [`prometheus`]), rewritten
/// atomically after every event: a reader (a log shipper, a textfile collector) never sees
/// half a file.
pub struct RenderedReporter {
    path: std::path::PathBuf,
    render: fn(&Run) -> String,
}

impl RenderedReporter {
    /// The NDJSON records at `path`.
    pub fn ndjson(path: std::path::PathBuf) -> RenderedReporter {
        RenderedReporter {
            path,
            render: ndjson,
        }
    }

    /// The Prometheus textfile at `path` (for a textfile collector, a `.prom` file in
    /// its folder).
    pub fn prometheus(path: std::path::PathBuf) -> RenderedReporter {
        RenderedReporter {
            path,
            render: prometheus,
        }
    }
}

impl Reporter for RenderedReporter {
    fn event(&mut self, _event: &Event, run: &Run) -> Result<(), ReportError> {
        write_atomically(&self.path, (self.render)(run).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_column_is_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/records.md"),
        )
        .unwrap();
        let schema = serde_json::to_value(schemars::schema_for!(super::CheckRow)).unwrap();
        let columns = schema["properties"].as_object().unwrap();
        assert!(columns.len() > 20);
        for c in columns.keys() {
            assert!(
                doc.contains(&format!("| `{c}` |")),
                "`{c}` is not in docs/records.md"
            );
        }
    }
}
