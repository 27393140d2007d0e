//! What the runner reports: events, and the run they fold into (the JSON report's shape).

use std::path::PathBuf;

use earshot_probe::unix_ms;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::Expectation;
use crate::scenario::{Check, Product};
use crate::verdict::{Observation, Verdict};

/// The JSON report's format version; bumped on any incompatible change.
///
/// 6: scenarios carry `host`, the session host of a fleet run (`--inventory`), null
/// otherwise; a fleet run has a scenario record per host and scenario.
///
/// 5: the `quality` check, and its `quality` observation (class, band edge and rate class,
/// SINAD, noise floor, gain, step, holes, codec signs).
///
/// 4: the `continuity` check, and its `continuity` observation (the stream heard, its gaps
/// and glitches with their places, drift, level).
///
/// 3: checks carry `host` (what a Windows session host has for the check, beside what the
/// scenario says was rolled out, and the cause it gives).
///
/// 2: observations carry their `side`; evidence is FLAC, fetched after the verdict
/// (`evidence_error` when it could not be); `degraded` and `unrecognised` kinds; `no_device`
/// names its endpoint; checks carry `rig_proof` and `started_unix_ms`; scenarios carry
/// `started_unix_ms`.
pub const SCHEMA_VERSION: u32 = 6;

/// What a probe said in preflight.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProbeSummary {
    /// `local` or `remote`.
    pub role: String,
    /// Where it was reached.
    pub peer: String,
    /// Its version.
    pub version: String,
    /// Its host name.
    pub host_name: String,
    /// Its OS and architecture.
    pub os: String,
    /// Its audio host, or why none is usable.
    pub audio_host: String,
    /// Whether it runs in a remote session (`remote`, `local`, `unknown`) and the markers
    /// that say so.
    pub remote_session: String,
    /// Output and input devices, one line each.
    pub devices: Vec<String>,
    /// The audio redirection settings the probe read on its host (e.g. an xrdp host's
    /// xrdp.ini channel switches), one line each; empty where it read none.
    pub host_settings: Vec<String>,
}

/// One check's result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckRecord {
    /// Which check.
    pub check: Check,
    /// The path it measured, whose expectation applies (`output` or `capture`; the
    /// continuity check streams on either); absent from a report that predates the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<crate::check::AudioPath>,
    /// The expectation in words.
    pub expected: String,
    /// The layer that decided it.
    pub decided_by: String,
    /// What was seen.
    pub observation: Observation,
    /// What the client rig proved before an absence decided anything (none when not
    /// needed).
    pub rig_proof: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in plain words.
    pub cause: String,
    /// For a check that should hear nothing: the plays the playing probe confirmed, held
    /// against the listen (a silence passes only when one fell whole inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_proof: Option<crate::proof::SilenceProof>,
    /// What the session host has for this check, beside what the scenario says was rolled
    /// out (a Windows host whose probe read its registry; none elsewhere).
    pub host: Option<crate::host::HostView>,
    /// The seed of the signature played.
    pub seed: u64,
    /// The recording (FLAC), when kept: fetched after the verdict was given.
    pub evidence: Option<PathBuf>,
    /// Why a recording that should have been kept was not (the verdict stands).
    pub evidence_error: Option<String>,
    /// When the check started (unix ms).
    pub started_unix_ms: f64,
    /// How long the check took, ms.
    pub duration_ms: f64,
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
    /// The session host of a fleet run (`--inventory`), as the inventory names it; none in
    /// a run against the scenario's own remote probe.
    pub host: Option<String>,
    /// When it started (unix ms).
    pub started_unix_ms: f64,
    /// When it finished (unix ms); None while running.
    pub finished_unix_ms: Option<f64>,
}

impl ScenarioRecord {
    /// The session host it ran against: the inventory's name in a fleet run, else the host
    /// name the remote probe reported; none when no probe answered outside a fleet run.
    pub fn session_host(&self) -> Option<&str> {
        self.host.as_deref().or_else(|| {
            self.probes
                .iter()
                .find(|p| p.role == "remote")
                .map(|p| p.host_name.as_str())
        })
    }

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
    /// The runner waits for a probe to dial in: what to start, where.
    Waiting(String),
    /// Preflight finished for the current scenario.
    Preflight {
        /// What the probes said.
        probes: Vec<ProbeSummary>,
        /// Warnings.
        warnings: Vec<String>,
    },
    /// The expectation changed after preflight: the session host layer was taken from the
    /// host.
    Expectation(Expectation),
    /// A check finished: its verdict, before its evidence.
    CheckFinished(CheckRecord),
    /// The evidence of the current scenario's check number `index` (0-based, in the order
    /// reported): where it was written, or why not.
    Evidence {
        /// Which check of the scenario.
        index: usize,
        /// The file, or why it was not kept.
        outcome: Result<PathBuf, String>,
    },
    /// The current scenario cannot go on.
    ScenarioError(String),
    /// Something the reader should know that does not change a verdict.
    Warning(String),
    /// The current scenario finished.
    ScenarioFinished,
    /// The run was stopped by a signal: what was decided is kept, the rest is not started.
    Interrupted(Interruption),
    /// A fleet run finished a host's scenario (its events came before this): `done` of
    /// `total` (hosts × scenarios).
    Progress {
        /// The host.
        host: String,
        /// Finished so far.
        done: usize,
        /// In all.
        total: usize,
    },
}

/// A run stopped by a signal before its end (SIGINT, SIGTERM, Ctrl-C or Ctrl-Break):
/// the checks decided before it are kept, the running ones are inconclusive ("interrupted"),
/// and the scenarios not started are counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interruption {
    /// The signal in words: `SIGINT (Ctrl-C)`, `SIGTERM`, `Ctrl-Break`.
    pub signal: String,
    /// The exit code it gives the run: 130 for SIGINT and Ctrl-C, 143 for SIGTERM.
    pub exit_code: i32,
    /// When it arrived (unix ms).
    pub at_unix_ms: f64,
    /// Scenarios (hosts × scenarios in a fleet run) that were never started.
    pub not_started: usize,
}

/// Every scenario so far: what the file reporters write.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The harness version.
    pub earshot_version: String,
    /// When the run started (unix ms).
    pub started_unix_ms: f64,
    /// The scenarios.
    pub scenarios: Vec<ScenarioRecord>,
    /// Set when a signal stopped the run before its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interruption>,
}

impl Run {
    /// An empty run.
    pub fn new() -> Run {
        Run {
            schema_version: SCHEMA_VERSION,
            earshot_version: env!("CARGO_PKG_VERSION").into(),
            started_unix_ms: unix_ms(),
            scenarios: Vec::new(),
            interrupted: None,
        }
    }

    /// Folds an event into the run.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ScenarioStarted(s) => self.scenarios.push(s.clone()),
            Event::Waiting(_) | Event::Progress { .. } => {}
            Event::Preflight { probes, warnings } => {
                if let Some(s) = self.scenarios.last_mut() {
                    s.probes = probes.clone();
                    s.warnings.extend(warnings.iter().cloned());
                }
            }
            Event::Expectation(e) => {
                if let Some(s) = self.scenarios.last_mut() {
                    s.expectation = Some(e.clone());
                }
            }
            Event::CheckFinished(c) => {
                if let Some(s) = self.scenarios.last_mut() {
                    s.checks.push(c.clone());
                }
            }
            Event::Evidence { index, outcome } => {
                if let Some(c) = self
                    .scenarios
                    .last_mut()
                    .and_then(|s| s.checks.get_mut(*index))
                {
                    match outcome {
                        Ok(p) => c.evidence = Some(p.clone()),
                        Err(e) => c.evidence_error = Some(e.clone()),
                    }
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
            Event::Interrupted(i) => self.interrupted = Some(i.clone()),
        }
    }

    /// The exit code: 0 all passed, 1 any failed, 2 any inconclusive or did not run (and
    /// none failed), or nothing ran. Made from [`Run::tally`], as every artifact's counts
    /// are, so they cannot disagree.
    pub fn exit_code(&self) -> i32 {
        self.tally().exit_code()
    }

    /// What the run counts: every check's verdict, and every scenario that did not run
    /// (a setup error, an unreached host, or no check finished), which counts as
    /// inconclusive wherever the counts are shown.
    pub fn tally(&self) -> Tally {
        let mut t = Tally {
            scenarios: self.scenarios.len(),
            ..Tally::default()
        };
        for s in &self.scenarios {
            for c in &s.checks {
                match c.verdict {
                    Verdict::Pass => t.pass += 1,
                    Verdict::Fail => t.fail += 1,
                    Verdict::Inconclusive => t.inconclusive += 1,
                }
            }
            if s.error.is_some() || s.checks.is_empty() {
                t.did_not_run += 1;
            }
        }
        if let Some(i) = &self.interrupted {
            t.interrupted = Some((i.exit_code, i.not_started));
        }
        t
    }
}

/// The most characters of [`Run::summary_line`]: what Intune shows of a detection
/// script's output.
pub const SUMMARY_LINE_MAX: usize = 2048;

impl Run {
    /// The run in one line for consoles that show one (Intune shows a detection script's
    /// last line of output, at most 2,048 characters): the overall word, the counts and
    /// the exit code, then the first failing check (else the first inconclusive one, or a
    /// scenario that did not run) with its cause.
    pub fn summary_line(&self) -> String {
        let t = self.tally();
        let word = match t.exit_code() {
            0 => "PASS",
            1 => "FAIL",
            130 | 143 => "INTERRUPTED",
            _ => "INCONCLUSIVE",
        };
        let named = |s: &ScenarioRecord| match &s.host {
            Some(h) => format!("{} on {h}", s.name),
            None => s.name.clone(),
        };
        let first = |v: Verdict| {
            self.scenarios.iter().find_map(|s| {
                s.checks
                    .iter()
                    .find(|c| c.verdict == v)
                    .map(|c| format!("{} {}: {}", named(s), c.check, c.cause))
            })
        };
        let not_run = || {
            self.scenarios
                .iter()
                .find_map(|s| match (&s.error, s.checks.is_empty()) {
                    (Some(e), _) => Some(format!("{}: did not run: {e}", named(s))),
                    (None, true) => Some(format!("{}: no check finished", named(s))),
                    _ => None,
                })
        };
        let worst = first(Verdict::Fail)
            .map(|w| format!("first failing: {w}"))
            .or_else(|| first(Verdict::Inconclusive).map(|w| format!("first inconclusive: {w}")))
            .or_else(|| not_run().map(|w| format!("first not run: {w}")));
        let mut line = format!("earshot {word}: {} (exit {})", t.words(), t.exit_code());
        if let Some(w) = worst {
            line.push_str("; ");
            line.push_str(&w);
        }
        // One line: no control characters; cut to what the console shows.
        let mut out: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if out.chars().count() > SUMMARY_LINE_MAX {
            out = out.chars().take(SUMMARY_LINE_MAX - 3).collect::<String>() + "...";
        }
        out
    }
}

/// A run's counts, from which the terminal's closing line, the HTML headline and the exit
/// code are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Scenarios (one per host and scenario in a fleet run).
    pub scenarios: usize,
    /// Checks that passed.
    pub pass: usize,
    /// Checks that failed.
    pub fail: usize,
    /// Checks that were inconclusive.
    pub inconclusive: usize,
    /// Scenarios that did not run (a setup error, an unreached host, no check finished).
    pub did_not_run: usize,
    /// A signal stopped the run: its exit code and the scenarios never started.
    pub interrupted: Option<(i32, usize)>,
}

impl Tally {
    /// Inconclusive checks plus scenarios that did not run.
    pub fn inconclusive_total(&self) -> usize {
        self.inconclusive + self.did_not_run
    }

    /// The exit code these counts give.
    pub fn exit_code(&self) -> i32 {
        if let Some((code, _)) = self.interrupted {
            code
        } else if self.fail > 0 {
            1
        } else if self.inconclusive_total() > 0 || self.scenarios == 0 {
            2
        } else {
            0
        }
    }

    /// The counts in words: "3 scenario(s): 2 pass, 0 fail, 2 inconclusive (2 did not run)".
    pub fn words(&self) -> String {
        let not_run = if self.did_not_run > 0 {
            format!(" ({} did not run)", self.did_not_run)
        } else {
            String::new()
        };
        let interrupted = match self.interrupted {
            Some((_, 0)) => "; INTERRUPTED before its end".to_string(),
            Some((_, n)) => format!("; INTERRUPTED before its end, {n} scenario(s) not started"),
            None => String::new(),
        };
        format!(
            "{} scenario(s): {} pass, {} fail, {} inconclusive{not_run}{interrupted}",
            self.scenarios,
            self.pass,
            self.fail,
            self.inconclusive_total()
        )
    }
}

impl Default for Run {
    fn default() -> Run {
        Run::new()
    }
}
