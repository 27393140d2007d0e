//! Reports: the runner emits [`Event`]s; reporters turn them into a terminal table, a JSON
//! document and a JUnit XML file. The runner never formats.
//!
//! The file reporters rewrite their whole file after every check (to a temporary file,
//! then renamed over the old one), so a crash or a kill loses nothing already measured.

use std::io::Write;
use std::path::{Path, PathBuf};

use earshot_probe::unix_ms;
use serde::Serialize;

use crate::policy::Expectation;
use crate::scenario::{Check, Product};
use crate::verdict::{Observation, Verdict};

/// The JSON report's format version; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What a probe said in preflight.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeSummary {
    /// `local` or `remote`.
    pub role: String,
    /// Where it was reached.
    pub peer: String,
    /// Its version.
    pub version: String,
    /// Its host name.
    pub host_name: String,
    /// Its OS.
    pub os: String,
    /// Its audio host.
    pub audio_host: String,
    /// Whether it runs in a remote session ("yes", "no", "unknown") and why.
    pub remote_session: String,
    /// Output and input devices, one line each.
    pub devices: Vec<String>,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRecord {
    /// Which check.
    pub check: Check,
    /// The expectation in words.
    pub expected: String,
    /// The layer that decided it.
    pub decided_by: String,
    /// What was seen.
    pub observation: Observation,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in plain words.
    pub cause: String,
    /// The seed of the signature played.
    pub seed: u64,
    /// WAV evidence of the recording, when kept.
    pub evidence: Option<PathBuf>,
    /// How long the check took, ms.
    pub duration_ms: f64,
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioRecord {
    /// Its name.
    pub name: String,
    /// Its file.
    pub file: PathBuf,
    /// Its product (unknown when the file could not be read).
    pub product: Option<Product>,
    /// What the policy engine worked out.
    pub expectation: Option<Expectation>,
    /// What the probes said.
    pub probes: Vec<ProbeSummary>,
    /// Preflight warnings (e.g. the remote probe is not in a remote session).
    pub warnings: Vec<String>,
    /// The checks, in order.
    pub checks: Vec<CheckRecord>,
    /// Set when the scenario could not run at all (bad file, unreachable probe).
    pub error: Option<String>,
    /// When it finished (unix ms); None while running.
    pub finished_unix_ms: Option<f64>,
}

impl ScenarioRecord {
    /// The scenario's overall verdict: fail if any check failed, inconclusive if any was
    /// inconclusive or the scenario could not run, else pass.
    pub fn verdict(&self) -> Verdict {
        if self.checks.iter().any(|c| c.verdict == Verdict::Fail) {
            Verdict::Fail
        } else if self.error.is_some()
            || self.checks.is_empty()
            || self
                .checks
                .iter()
                .any(|c| c.verdict == Verdict::Inconclusive)
        {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        }
    }
}

/// Something the runner did or found.
#[derive(Debug, Clone)]
pub enum Event {
    /// A scenario starts.
    ScenarioStarted(ScenarioRecord),
    /// Preflight finished for the current scenario.
    Preflight {
        /// What the probes said.
        probes: Vec<ProbeSummary>,
        /// Warnings.
        warnings: Vec<String>,
    },
    /// A check finished.
    CheckFinished(CheckRecord),
    /// The current scenario cannot go on.
    ScenarioError(String),
    /// Something the reader should know that does not change a verdict.
    Warning(String),
    /// The current scenario finished.
    ScenarioFinished,
}

/// Consumes events.
pub trait Reporter {
    /// Handles one event.
    ///
    /// # Errors
    /// An I/O error writing the report.
    fn event(&mut self, event: &Event, run: &Run) -> std::io::Result<()>;
}

/// Every scenario so far: what the file reporters write.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The harness version.
    pub earshot_version: String,
    /// When the run started (unix ms).
    pub started_unix_ms: f64,
    /// The scenarios.
    pub scenarios: Vec<ScenarioRecord>,
}

impl Run {
    /// An empty run.
    pub fn new() -> Run {
        Run {
            schema_version: SCHEMA_VERSION,
            earshot_version: env!("CARGO_PKG_VERSION").into(),
            started_unix_ms: unix_ms(),
            scenarios: Vec::new(),
        }
    }

    /// Folds an event into the run.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ScenarioStarted(s) => self.scenarios.push(s.clone()),
            Event::Preflight { probes, warnings } => {
                if let Some(s) = self.scenarios.last_mut() {
                    s.probes = probes.clone();
                    s.warnings.extend(warnings.iter().cloned());
                }
            }
            Event::CheckFinished(c) => {
                if let Some(s) = self.scenarios.last_mut() {
                    s.checks.push(c.clone());
                }
            }
            Event::ScenarioError(e) => {
                if let Some(s) = self.scenarios.last_mut() {
                    s.error = Some(e.clone());
                }
            }
            Event::Warning(w) => {
                if let Some(s) = self.scenarios.last_mut() {
                    s.warnings.push(w.clone());
                }
            }
            Event::ScenarioFinished => {
                if let Some(s) = self.scenarios.last_mut() {
                    s.finished_unix_ms = Some(unix_ms());
                }
            }
        }
    }

    /// The exit code: 0 all passed, 1 any failed, 2 any inconclusive (and none failed).
    pub fn exit_code(&self) -> i32 {
        let verdicts: Vec<_> = self.scenarios.iter().map(ScenarioRecord::verdict).collect();
        if verdicts.contains(&Verdict::Fail) {
            1
        } else if verdicts.contains(&Verdict::Inconclusive) || verdicts.is_empty() {
            2
        } else {
            0
        }
    }
}

impl Default for Run {
    fn default() -> Run {
        Run::new()
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a reader (or
/// a crash) never sees half a report.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The JSON report, rewritten after every event.
pub struct JsonReporter {
    path: PathBuf,
}

impl JsonReporter {
    /// Writes to `path`.
    pub fn new(path: PathBuf) -> JsonReporter {
        JsonReporter { path }
    }
}

impl Reporter for JsonReporter {
    fn event(&mut self, _event: &Event, run: &Run) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(run).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &text)
    }
}

/// The JUnit XML report: a scenario is a test suite, a check a test case, measurements are
/// properties. Fail is a `<failure>`, inconclusive an `<error>`.
pub struct JunitReporter {
    path: PathBuf,
}

impl JunitReporter {
    /// Writes to `path`.
    pub fn new(path: PathBuf) -> JunitReporter {
        JunitReporter { path }
    }
}

/// Renders the run as JUnit XML.
///
/// # Errors
/// When quick-junit cannot serialise it.
pub fn junit_xml(run: &Run) -> Result<String, quick_junit::SerializeError> {
    use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("earshot");
    for s in &run.scenarios {
        let mut suite = TestSuite::new(s.name.clone());
        suite.add_property(Property::new("file", s.file.display().to_string()));
        if let Some(p) = s.product {
            suite.add_property(Property::new("product", p.to_string()));
        }
        for w in &s.warnings {
            suite.add_property(Property::new("warning", w.clone()));
        }
        if let Some(e) = &s.error {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(e.clone());
            let mut case = TestCase::new("setup", status);
            case.set_classname(s.name.clone());
            suite.add_test_case(case);
        }
        for c in &s.checks {
            let status = match c.verdict {
                Verdict::Pass => TestCaseStatus::success(),
                Verdict::Fail => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(c.cause.clone());
                    st.set_type("fail");
                    st
                }
                Verdict::Inconclusive => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                    st.set_message(c.cause.clone());
                    st.set_type("inconclusive");
                    st
                }
            };
            let mut case = TestCase::new(c.check.to_string(), status);
            case.set_classname(s.name.clone());
            case.set_time(std::time::Duration::from_secs_f64(
                c.duration_ms.max(0.0) / 1000.0,
            ));
            case.add_property(Property::new("expected", c.expected.clone()));
            case.add_property(Property::new("decided_by", c.decided_by.clone()));
            case.add_property(Property::new("observed", c.observation.word()));
            case.add_property(Property::new("verdict", c.verdict.to_string()));
            case.add_property(Property::new("seed", c.seed.to_string()));
            if let Observation::Detected {
                level_dbfs,
                latency_ms,
                snr_db,
                dropouts,
                symbols,
            } = &c.observation
            {
                for (k, v) in [
                    ("level_dbfs", level_dbfs),
                    ("latency_ms", latency_ms),
                    ("snr_db", snr_db),
                ] {
                    if let Some(v) = v {
                        case.add_property(Property::new(k, format!("{v:.1}")));
                    }
                }
                case.add_property(Property::new("dropouts", dropouts.to_string()));
                case.add_property(Property::new("symbols", symbols.to_string()));
            }
            if let Some(e) = &c.evidence {
                case.add_property(Property::new("evidence", e.display().to_string()));
            }
            case.set_system_out(c.cause.clone());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string()
}

impl Reporter for JunitReporter {
    fn event(&mut self, _event: &Event, run: &Run) -> std::io::Result<()> {
        let xml = junit_xml(run).map_err(std::io::Error::other)?;
        write_atomically(&self.path, xml.as_bytes())
    }
}

/// The terminal report: a line per event as it happens, a table per scenario at its end.
pub struct TerminalReporter<W: Write> {
    out: W,
    colour: bool,
}

impl<W: Write> TerminalReporter<W> {
    /// Writes to `out`, with ANSI colour when `colour`.
    pub fn new(out: W, colour: bool) -> TerminalReporter<W> {
        TerminalReporter { out, colour }
    }

    fn paint(&self, v: Verdict) -> String {
        let word = v.to_string().to_uppercase();
        if !self.colour {
            return word;
        }
        let code = match v {
            Verdict::Pass => "32",
            Verdict::Fail => "31",
            Verdict::Inconclusive => "33",
        };
        format!("\x1b[1;{code}m{word}\x1b[0m")
    }
}

impl<W: Write> Reporter for TerminalReporter<W> {
    fn event(&mut self, event: &Event, run: &Run) -> std::io::Result<()> {
        match event {
            Event::ScenarioStarted(s) => {
                let product = s.product.map_or_else(|| "?".to_string(), |p| p.to_string());
                writeln!(
                    self.out,
                    "\n== {} ({product}, {})",
                    s.name,
                    s.file.display()
                )?;
                if let Some(e) = &s.expectation {
                    writeln!(
                        self.out,
                        "   expect output: {:?}, by {}",
                        e.output.value, e.output.decided_by
                    )?;
                    writeln!(
                        self.out,
                        "   expect capture: {:?}, by {}",
                        e.capture.value, e.capture.decided_by
                    )?;
                    for w in &e.warnings {
                        writeln!(self.out, "   warning: {w}")?;
                    }
                }
            }
            Event::Preflight { probes, warnings } => {
                for p in probes {
                    writeln!(
                        self.out,
                        "   {} probe {} at {}: host {} ({}), {} devices, audio {}, remote session: {}",
                        p.role,
                        p.version,
                        p.peer,
                        p.host_name,
                        p.os,
                        p.devices.len(),
                        p.audio_host,
                        p.remote_session
                    )?;
                }
                for w in warnings {
                    writeln!(self.out, "   warning: {w}")?;
                }
            }
            Event::CheckFinished(c) => {
                let v = self.paint(c.verdict);
                writeln!(self.out, "   {:<8} {v}: {}", c.check.to_string(), c.cause)?;
                if let Some(e) = &c.evidence {
                    writeln!(self.out, "            evidence: {}", e.display())?;
                }
            }
            Event::ScenarioError(e) => {
                let v = self.paint(Verdict::Inconclusive);
                writeln!(self.out, "   {v}: {e}")?;
            }
            Event::Warning(w) => writeln!(self.out, "   warning: {w}")?,
            Event::ScenarioFinished => {
                if let Some(s) = run.scenarios.last() {
                    let v = self.paint(s.verdict());
                    writeln!(self.out, "   => {v}")?;
                }
            }
        }
        self.out.flush()
    }
}

/// The summary table of a whole run, one row per check.
pub fn summary_table(run: &Run) -> String {
    let mut rows = vec![[
        "scenario".to_string(),
        "check".into(),
        "expected".into(),
        "observed".into(),
        "verdict".into(),
    ]];
    for s in &run.scenarios {
        if let Some(e) = &s.error {
            rows.push([
                s.name.clone(),
                "-".into(),
                "-".into(),
                format!("error: {}", shorten(e, 50)),
                "inconclusive".into(),
            ]);
        }
        for c in &s.checks {
            rows.push([
                s.name.clone(),
                c.check.to_string(),
                c.expected.clone(),
                shorten(&c.observation.describe(), 50),
                c.verdict.to_string(),
            ]);
        }
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
        if i == 0 {
            out += &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  ");
            out.push('\n');
        }
    }
    out
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(verdicts: &[Verdict]) -> Run {
        let mut run = Run::new();
        run.apply(&Event::ScenarioStarted(ScenarioRecord {
            name: "s <&> 1".into(),
            file: "s.toml".into(),
            product: Some(Product::Avd),
            expectation: None,
            probes: vec![],
            warnings: vec![],
            checks: vec![],
            error: None,
            finished_unix_ms: None,
        }));
        for (i, v) in verdicts.iter().enumerate() {
            run.apply(&Event::CheckFinished(CheckRecord {
                check: if i == 0 {
                    Check::Output
                } else {
                    Check::Capture
                },
                expected: "heard on the client".into(),
                decided_by: "default".into(),
                observation: Observation::Detected {
                    level_dbfs: Some(-12.0),
                    latency_ms: Some(100.0),
                    snr_db: Some(40.0),
                    dropouts: 0,
                    symbols: 16,
                },
                verdict: *v,
                cause: "because <reasons> & more".into(),
                seed: 7,
                evidence: None,
                duration_ms: 900.0,
            }));
        }
        run.apply(&Event::ScenarioFinished);
        run
    }

    #[test]
    fn exit_codes_follow_the_worst_verdict() {
        assert_eq!(run_with(&[Verdict::Pass, Verdict::Pass]).exit_code(), 0);
        assert_eq!(run_with(&[Verdict::Pass, Verdict::Fail]).exit_code(), 1);
        assert_eq!(
            run_with(&[Verdict::Inconclusive, Verdict::Pass]).exit_code(),
            2
        );
        assert_eq!(
            run_with(&[Verdict::Inconclusive, Verdict::Fail]).exit_code(),
            1
        );
        assert_eq!(Run::new().exit_code(), 2);
    }

    #[test]
    fn junit_has_a_suite_per_scenario_and_a_case_per_check() {
        let xml = junit_xml(&run_with(&[Verdict::Pass, Verdict::Fail])).unwrap();
        assert!(
            xml.contains("<testsuite name=\"s &lt;&amp;&gt; 1\""),
            "{xml}"
        );
        assert!(
            xml.contains("tests=\"2\"") && xml.contains("failures=\"1\""),
            "{xml}"
        );
        assert!(xml.contains("name=\"latency_ms\" value=\"100.0\""), "{xml}");
        assert!(xml.contains("because &lt;reasons&gt; &amp; more"), "{xml}");
    }

    #[test]
    fn json_carries_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let run = run_with(&[Verdict::Pass]);
        JsonReporter::new(path.clone())
            .event(&Event::ScenarioFinished, &run)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert_eq!(
            v["scenarios"][0]["checks"][0]["observation"]["kind"],
            "detected"
        );
        assert!(!dir.path().join("r.partial").exists());
    }

    #[test]
    fn the_table_lines_up() {
        let t = summary_table(&run_with(&[Verdict::Pass, Verdict::Fail]));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(
            lines[0].starts_with("scenario") && lines[2].ends_with("pass"),
            "{t}"
        );
    }
}
