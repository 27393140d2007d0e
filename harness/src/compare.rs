//! Two runs compared: what changed from a base report to a new one (`earshot compare`).
//!
//! Both reports are `earshot run --json` documents (any `schema_version` from 2; read as
//! JSON, so a newer harness compares older reports). A row is one check of one scenario on
//! one session host: (the remote probe's host name, the scenario's name, the check). For
//! each row present in both, the comparison reports:
//!
//! - a **verdict change**: worse (pass → inconclusive → fail) is a regression, better an
//!   improvement;
//! - **figures beyond their thresholds** ([`Thresholds`], each documented with its flag):
//!   latency up, SNR down, level moved either way, continuity gaps or glitches up, the
//!   quality class down or its SINAD down: regressions; the reverse: improvements.
//!
//! Rows only in the base **vanished** (a host or check no longer tested: a regression, since
//! what is not measured is not proven); rows only in the new run **appeared** (reported,
//! not a regression). A scenario that could not run has no checks: its rows vanish, and
//! the scenario's error is carried.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// A report that cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The file cannot be read.
    #[error("{path}: cannot read the report: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a run report.
    #[error("{path}: not an `earshot run --json` report: {why}")]
    NotAReport {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// How far a figure may move before it counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Latency increase, ms (`--latency-ms`, default 100).
    pub latency_ms: f64,
    /// SNR drop, dB (`--snr-db`, default 6).
    pub snr_db: f64,
    /// Level change either way, dB (`--level-db`, default 3).
    pub level_db: f64,
    /// SINAD drop of the quality check, dB (`--sinad-db`, default 6).
    pub sinad_db: f64,
    /// Continuity breaks (gaps and glitches) added (`--breaks`, default 0: any).
    pub breaks: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            latency_ms: 100.0,
            snr_db: 6.0,
            level_db: 3.0,
            sinad_db: 6.0,
            breaks: 0,
        }
    }
}

/// What became of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Worse: a verdict, a figure, or a row no longer tested.
    Regression,
    /// Better.
    Improvement,
    /// Within the thresholds.
    Same,
    /// Only in the new run.
    Appeared,
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The session host (the inventory's name in a fleet run, else the remote probe's host
    /// name, or its address when it never answered).
    pub host: String,
    /// The scenario's name.
    pub scenario: String,
    /// The check (output, capture, continuity, quality), or `scenario` for a scenario
    /// that did not run.
    pub check: String,
    /// The verdict in the base run (none: not there).
    pub base: Option<String>,
    /// The verdict in the new run (none: not there).
    pub new: Option<String>,
    /// What became of it.
    pub change: Change,
    /// Each difference in words ("latency 240 -> 480 ms (+240, limit +100)").
    pub details: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Version of this document's layout.
    pub schema_version: u32,
    /// The base report.
    pub base: PathBuf,
    /// The new report.
    pub new: PathBuf,
    /// The thresholds used.
    pub thresholds: Thresholds,
    /// Every row, regressions first, then by host, scenario and check.
    pub rows: Vec<Row>,
    /// Rows that regressed (verdict, figures, or vanished).
    pub regressions: usize,
    /// Rows that improved.
    pub improvements: usize,
    /// Hosts in the base run only.
    pub hosts_vanished: Vec<String>,
    /// Hosts in the new run only.
    pub hosts_appeared: Vec<String>,
    /// Either run stopped by a signal, in words ("the new run was interrupted by SIGINT
    /// (Ctrl-C): 2 scenario(s) never started"): what it did not measure vanished.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interrupted: Vec<String>,
}

/// The interruption `run` records, in words, for the run called `which`.
fn interruption(run: &Value, which: &str) -> Option<(String, String)> {
    let i = run.get("interrupted").filter(|i| !i.is_null())?;
    let signal = i["signal"].as_str().unwrap_or("a signal").to_string();
    let not_started = i["not_started"].as_u64().unwrap_or(0);
    let rest = if not_started > 0 {
        format!(": {not_started} scenario(s) never started")
    } else {
        String::new()
    };
    Some((
        format!("the {which} run was interrupted by {signal}{rest}"),
        signal,
    ))
}

/// One check of one scenario on one host, as a report has it.
#[derive(Debug, Clone)]
struct Found {
    verdict: String,
    observation: Value,
}

type Key = (String, String, String);

/// Reads `path` as a run report.
pub fn load(path: &Path) -> Result<Value, CompareError> {
    let bytes = std::fs::read(path).map_err(|source| CompareError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| CompareError::NotAReport {
        path: path.to_path_buf(),
        why: format!("not JSON ({e})"),
    })?;
    let bad = |why: &str| CompareError::NotAReport {
        path: path.to_path_buf(),
        why: why.into(),
    };
    match doc["schema_version"].as_u64() {
        Some(2..) => {}
        Some(v) => return Err(bad(&format!("schema_version {v}; expected 2 or later"))),
        None => return Err(bad("no schema_version")),
    }
    if !doc["scenarios"].is_array() {
        return Err(bad("no `scenarios` list"));
    }
    Ok(doc)
}

/// The session host a scenario ran against: the inventory's name in a fleet run (known
/// even when its probe never answered), else the remote probe's.
fn host_of(scenario: &Value) -> String {
    if let Some(h) = scenario["host"].as_str().filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    let probes = scenario["probes"].as_array();
    let remote = probes.and_then(|p| p.iter().find(|p| p["role"] == "remote"));
    match remote {
        Some(p) => p["host_name"]
            .as_str()
            .filter(|h| !h.is_empty())
            .or_else(|| p["peer"].as_str())
            .unwrap_or("?")
            .to_string(),
        None => UNANSWERED.into(),
    }
}

/// The host of a scenario whose remote probe never answered, outside a fleet run.
const UNANSWERED: &str = "(did not answer)";

/// The rows of a report, and the errors of its scenarios that did not run.
fn rows_of(doc: &Value) -> (BTreeMap<Key, Found>, BTreeMap<(String, String), String>) {
    let mut rows = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for s in doc["scenarios"].as_array().into_iter().flatten() {
        let host = host_of(s);
        let name = s["name"].as_str().unwrap_or("?").to_string();
        if let Some(e) = s["error"].as_str() {
            errors.insert((host.clone(), name.clone()), e.to_string());
        }
        for c in s["checks"].as_array().into_iter().flatten() {
            let check = c["check"].as_str().unwrap_or("?").to_string();
            rows.insert(
                (host.clone(), name.clone(), check),
                Found {
                    verdict: c["verdict"].as_str().unwrap_or("?").to_string(),
                    observation: c["observation"].clone(),
                },
            );
        }
    }
    (rows, errors)
}

fn rank(verdict: &str) -> i32 {
    match verdict {
        "pass" => 2,
        "inconclusive" => 1,
        _ => 0,
    }
}

fn class_rank(class: &str) -> i32 {
    match class {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// Compares two figures: (moved beyond the limit, got worse).
fn figure(
    details: &mut Vec<String>,
    what: &str,
    unit: &str,
    (base, new): (Option<f64>, Option<f64>),
    limit: f64,
    worse_if_up: Option<bool>,
) -> Option<bool> {
    let (b, n) = (base?, new?);
    let delta = n - b;
    if delta.abs() <= limit {
        return None;
    }
    let worse = match worse_if_up {
        Some(up) => (delta > 0.0) == up,
        None => true,
    };
    details.push(format!(
        "{what} {b:.1} -> {n:.1} {unit} ({delta:+.1}, limit ±{limit})"
    ));
    Some(worse)
}

/// The figure differences of one row: details, and whether any is worse / better.
fn figures(base: &Value, new: &Value, t: &Thresholds) -> (Vec<String>, bool, bool) {
    let mut details = Vec::new();
    let mut results = Vec::new();
    if base["kind"] != new["kind"] {
        return (details, false, false);
    }
    let f = |o: &Value, k: &str| o[k].as_f64();
    let pair = |k: &str| (f(base, k), f(new, k));
    results.push(figure(
        &mut details,
        "latency",
        "ms",
        pair("latency_ms"),
        t.latency_ms,
        Some(true),
    ));
    results.push(figure(
        &mut details,
        "SNR",
        "dB",
        pair("snr_db"),
        t.snr_db,
        Some(false),
    ));
    results.push(figure(
        &mut details,
        "level",
        "dBFS",
        pair("level_dbfs"),
        t.level_db,
        None,
    ));
    results.push(figure(
        &mut details,
        "SINAD",
        "dB",
        pair("sinad_db"),
        t.sinad_db,
        Some(false),
    ));
    let breaks =
        |o: &Value| -> Option<f64> { Some((o["gaps"].as_u64()? + o["glitches"].as_u64()?) as f64) };
    results.push(figure(
        &mut details,
        "continuity breaks",
        "",
        (breaks(base), breaks(new)),
        t.breaks as f64,
        Some(true),
    ));
    if let (Some(b), Some(n)) = (base["class"].as_str(), new["class"].as_str()) {
        if b != n {
            details.push(format!("quality class {b} -> {n}"));
            results.push(Some(class_rank(n) < class_rank(b)));
        }
    }
    let worse = results.contains(&Some(true));
    let better = results.contains(&Some(false));
    (details, worse, better)
}

/// Compares `new` with `base`.
pub fn compare(
    (base_path, base): (&Path, &Value),
    (new_path, new): (&Path, &Value),
    thresholds: &Thresholds,
) -> Comparison {
    let (b, _) = rows_of(base);
    let (n, n_errors) = rows_of(new);
    let new_stop = interruption(new, "new");
    let mut rows = Vec::new();
    let keys: std::collections::BTreeSet<&Key> = b.keys().chain(n.keys()).collect();
    for key in keys {
        let (host, scenario, check) = key.clone();
        let row = |base: Option<&Found>, new: Option<&Found>, change, details| Row {
            host: host.clone(),
            scenario: scenario.clone(),
            check: check.clone(),
            base: base.map(|f| f.verdict.clone()),
            new: new.map(|f| f.verdict.clone()),
            change,
            details,
        };
        match (b.get(key), n.get(key)) {
            (Some(x), Some(y)) => {
                let (mut details, worse, better) =
                    figures(&x.observation, &y.observation, thresholds);
                let (rx, ry) = (rank(&x.verdict), rank(&y.verdict));
                if rx != ry {
                    details.insert(0, format!("verdict {} -> {}", x.verdict, y.verdict));
                }
                let change = if ry < rx || (ry == rx && worse) {
                    Change::Regression
                } else if ry > rx || better {
                    Change::Improvement
                } else {
                    Change::Same
                };
                rows.push(row(Some(x), Some(y), change, details));
            }
            (Some(x), None) => {
                // The error of this host's scenario; one whose host is unknown (its probe
                // never answered, outside a fleet run) may be it too.
                let why = n_errors
                    .get(&(host.clone(), scenario.clone()))
                    .or_else(|| {
                        n_errors
                            .iter()
                            .find(|((h, s), _)| *s == scenario && h == UNANSWERED)
                            .map(|(_, e)| e)
                    })
                    .map(|e| format!("not measured in the new run: {e}"))
                    .unwrap_or_else(|| match &new_stop {
                        Some((_, signal)) => format!(
                            "not measured in the new run: it was interrupted by {signal} first"
                        ),
                        None => "not measured in the new run".into(),
                    });
                rows.push(row(Some(x), None, Change::Regression, vec![why]));
            }
            (None, Some(y)) => rows.push(row(
                None,
                Some(y),
                Change::Appeared,
                vec!["not in the base run".into()],
            )),
            (None, None) => {}
        }
    }
    // Scenarios that did not run in the new run and have no base rows either are still
    // worth a line: nothing of them was measured.
    for ((host, scenario), e) in &n_errors {
        if !rows
            .iter()
            .any(|r| &r.scenario == scenario && (&r.host == host || host == UNANSWERED))
        {
            rows.push(Row {
                host: host.clone(),
                scenario: scenario.clone(),
                check: "scenario".into(),
                base: None,
                new: Some("inconclusive".into()),
                change: Change::Appeared,
                details: vec![format!("did not run: {e}")],
            });
        }
    }
    rows.sort_by(|x, y| {
        (x.change, &x.host, &x.scenario, &x.check).cmp(&(y.change, &y.host, &y.scenario, &y.check))
    });
    let hosts = |m: &BTreeMap<Key, Found>| -> std::collections::BTreeSet<String> {
        m.keys().map(|(h, _, _)| h.clone()).collect()
    };
    let (hb, hn) = (hosts(&b), hosts(&n));
    Comparison {
        schema_version: 1,
        base: base_path.to_path_buf(),
        new: new_path.to_path_buf(),
        thresholds: *thresholds,
        regressions: rows
            .iter()
            .filter(|r| r.change == Change::Regression)
            .count(),
        improvements: rows
            .iter()
            .filter(|r| r.change == Change::Improvement)
            .count(),
        hosts_vanished: hb.difference(&hn).cloned().collect(),
        hosts_appeared: hn.difference(&hb).cloned().collect(),
        rows,
        interrupted: [interruption(base, "base"), new_stop]
            .into_iter()
            .flatten()
            .map(|(words, _)| words)
            .collect(),
    }
}

impl Comparison {
    /// The comparison as text: one line per row that changed, then the totals.
    pub fn text(&self) -> String {
        let mut s = format!(
            "earshot compare: {} (base) -> {} (new)\n",
            self.base.display(),
            self.new.display()
        );
        let verdict = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        for r in self.rows.iter().filter(|r| r.change != Change::Same) {
            let word = match r.change {
                Change::Regression => "REGRESSION ",
                Change::Improvement => "improvement",
                Change::Appeared => "appeared   ",
                Change::Same => "same       ",
            };
            let _ = writeln!(
                s,
                "  {word} {} / {} / {}: {} -> {}; {}",
                r.host,
                r.scenario,
                r.check,
                verdict(&r.base),
                verdict(&r.new),
                r.details.join("; ")
            );
        }
        for h in &self.hosts_vanished {
            let _ = writeln!(
                s,
                "  host vanished: {h} (in the base run, not in the new one)"
            );
        }
        for h in &self.hosts_appeared {
            let _ = writeln!(s, "  host appeared: {h}");
        }
        for i in &self.interrupted {
            let _ = writeln!(s, "  INTERRUPTED: {i}");
        }
        let same = self
            .rows
            .iter()
            .filter(|r| r.change == Change::Same)
            .count();
        let _ = writeln!(
            s,
            "{} regression(s), {} improvement(s), {same} unchanged, {} row(s) in all",
            self.regressions,
            self.improvements,
            self.rows.len()
        );
        s
    }

    /// The comparison as one self-contained HTML page: the totals, the hosts that vanished
    /// or appeared, and every row (changed rows first) with its verdicts and differences.
    pub fn html(&self) -> String {
        use crate::report::html::{esc, STYLE};
        let mut h = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>earshot compare</title><style>{STYLE}</style></head><body>\n\
             <h1>earshot compare</h1>\n<p class=\"meta\">{} (base) &rarr; {} (new): <b>{}</b> \
             regression(s), <b>{}</b> improvement(s), {} row(s)</p>\n",
            esc(&self.base.display().to_string()),
            esc(&self.new.display().to_string()),
            self.regressions,
            self.improvements,
            self.rows.len()
        );
        for (what, hosts) in [
            ("vanished", &self.hosts_vanished),
            ("appeared", &self.hosts_appeared),
        ] {
            if !hosts.is_empty() {
                let names: Vec<String> = hosts.iter().map(|x| esc(x)).collect();
                let _ = writeln!(
                    h,
                    "<p class=\"warn\">Hosts {what}: {}</p>",
                    names.join(", ")
                );
            }
        }
        for i in &self.interrupted {
            let _ = writeln!(h, "<p class=\"warn\">INTERRUPTED: {}</p>", esc(i));
        }
        h += "<table class=\"compare\"><thead><tr><th>change</th><th>session host</th>\
              <th>scenario</th><th>check</th><th>base</th><th>new</th><th>what changed</th>\
              </tr></thead><tbody>\n";
        for r in &self.rows {
            let (class, word) = match r.change {
                Change::Regression => ("fail", "regression"),
                Change::Improvement => ("pass", "improvement"),
                Change::Appeared => ("inconclusive", "appeared"),
                Change::Same => ("none", "same"),
            };
            let verdict = |v: &Option<String>| match v {
                Some(v) => format!("<td class=\"v {}\">{}</td>", esc(v), esc(v)),
                None => "<td class=\"none\">-</td>".into(),
            };
            let _ = writeln!(h,
                "<tr><td class=\"v {class}\">{word}</td><td>{}</td><td>{}</td><td>{}</td>{}{}<td>{}</td></tr>",
                esc(&r.host),
                esc(&r.scenario),
                esc(&r.check),
                verdict(&r.base),
                verdict(&r.new),
                esc(&r.details.join("; "))
            );
        }
        h += "</tbody></table>\n</body></html>\n";
        h
    }

    /// The comparison as JUnit XML: one test case per row, a failure per regression.
    pub fn junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut report = Report::new("earshot compare");
        let mut suite =
            TestSuite::new(format!("{} -> {}", self.base.display(), self.new.display()));
        for r in &self.rows {
            let status = if r.change == Change::Regression {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(r.details.join("; "));
                st
            } else {
                TestCaseStatus::success()
            };
            let mut case =
                TestCase::new(format!("{} / {} / {}", r.host, r.scenario, r.check), status);
            case.set_classname(r.host.clone());
            case.set_system_out(format!(
                "{:?}: {} -> {}; {}",
                r.change,
                r.base.clone().unwrap_or_else(|| "-".into()),
                r.new.clone().unwrap_or_else(|| "-".into()),
                r.details.join("; ")
            ));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
