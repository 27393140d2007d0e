//! The terminal report: a line per event as it happens, a table of the run at its end.

use std::fmt::Write as _;
use std::io::Write;

use super::{Event, ReportError, Reporter, Run};
use crate::check::Planned;
use crate::scenario::Check;
use crate::verdict::Verdict;

/// The terminal report: a line per event as it happens, a table at the end.
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

    fn write_expectation(&mut self, e: &crate::policy::Expectation) -> std::io::Result<()> {
        for c in [Check::Output, Check::Capture] {
            let p = Planned::new(c, c.default_path(), e);
            writeln!(
                self.out,
                "   expect {c:<8} {}, by {}",
                p.expected(),
                p.decided_by()
            )?;
        }
        writeln!(
            self.out,
            "   expect quality  {}, by {}",
            e.quality.value.words(),
            e.quality.decided_by
        )?;
        for w in &e.warnings {
            writeln!(self.out, "   warning: {w}")?;
        }
        Ok(())
    }

    fn write_event(&mut self, event: &Event, run: &Run) -> std::io::Result<()> {
        match event {
            Event::ScenarioStarted(s) => {
                let product = s.product.map_or_else(|| "?".to_string(), |p| p.to_string());
                let on = s
                    .host
                    .as_ref()
                    .map_or(String::new(), |h| format!(" on {h}"));
                writeln!(
                    self.out,
                    "\n== {}{on} ({product}, {})",
                    s.name,
                    s.file.display()
                )?;
                if let Some(e) = &s.expectation {
                    self.write_expectation(e)?;
                }
            }
            Event::Expectation(e) => {
                writeln!(self.out, "   the session host layer as the host has it:")?;
                self.write_expectation(e)?;
            }
            Event::Waiting(w) => writeln!(self.out, "   {w}")?,
            Event::Progress { host, done, total } => {
                writeln!(self.out, "   [{done}/{total}] {host} done")?;
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
                for p in probes {
                    for h in &p.host_settings {
                        writeln!(self.out, "   {} host: {h}", p.role)?;
                    }
                }
                for w in warnings {
                    writeln!(self.out, "   warning: {w}")?;
                }
            }
            Event::CheckFinished(c) => {
                let v = self.paint(c.verdict);
                writeln!(self.out, "   {:<8} {v}: {}", c.check.to_string(), c.cause)?;
                for f in c.host.iter().flat_map(|h| &h.facts) {
                    let rolled = if f.key == crate::host::WINSTATION_KEY {
                        "listener setting".to_string()
                    } else {
                        format!(
                            "scenario {}",
                            f.rolled_out
                                .map_or("not configured".into(), |v| v.to_string())
                        )
                    };
                    let written = f.key_written_unix_ms.map_or(String::new(), |w| {
                        format!(
                            ", written {}{}",
                            crate::host::when(w),
                            if f.written_after_boot == Some(true) {
                                " (after the last boot)"
                            } else {
                                ""
                            }
                        )
                    });
                    writeln!(
                        self.out,
                        "            {}: {rolled}, host {}{written}",
                        f.setting, f.host_has
                    )?;
                }
            }
            Event::Evidence { outcome, .. } => match outcome {
                Ok(p) => writeln!(self.out, "            evidence: {}", p.display())?,
                Err(e) => writeln!(self.out, "   warning: {e}")?,
            },
            Event::ScenarioError(e) => {
                let v = self.paint(Verdict::Inconclusive);
                writeln!(self.out, "   {v}: {e}")?;
            }
            Event::Warning(w) => writeln!(self.out, "   warning: {w}")?,
            Event::Interrupted(i) => writeln!(
                self.out,
                "\nINTERRUPTED by {}: the checks decided before it are kept, the running ones \
                 are inconclusive, {} scenario(s) not started; the reports are written",
                i.signal, i.not_started
            )?,
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

fn terminal_error(e: std::io::Error) -> ReportError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        ReportError::Closed
    } else {
        ReportError::Terminal(e)
    }
}

impl<W: Write> Reporter for TerminalReporter<W> {
    fn event(&mut self, event: &Event, run: &Run) -> Result<(), ReportError> {
        self.write_event(event, run).map_err(terminal_error)
    }

    fn finish(&mut self, run: &Run) -> Result<(), ReportError> {
        write!(self.out, "\n{}", closing(run))
            .and_then(|()| self.out.flush())
            .map_err(terminal_error)
    }
}

/// How a run ends on the terminal (`run`, `merge`): the summary table, then the counts in
/// words and the exit status they give.
pub fn closing(run: &Run) -> String {
    let t = run.tally();
    format!(
        "{}\n{} (exit {})\n",
        summary_table(run),
        t.words(),
        t.exit_code()
    )
}

/// The summary of a whole run: one row per check; for a fleet run (scenarios carry their
/// host) one row per host and scenario, then the verdicts of each check over the hosts.
pub fn summary_table(run: &Run) -> String {
    if run.scenarios.iter().any(|s| s.host.is_some()) {
        return fleet_summary(run);
    }
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
                format!("setup: {}", shorten(e, 50)),
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
    table(&rows)
}

/// Per host and scenario: its verdict and what decided it; then per check: how many hosts
/// passed, failed, were inconclusive.
fn fleet_summary(run: &Run) -> String {
    let mut rows = vec![[
        "host".to_string(),
        "scenario".into(),
        "verdict".into(),
        "why".into(),
    ]];
    let mut per_check: std::collections::BTreeMap<String, [usize; 3]> = Default::default();
    let mut records: Vec<&super::ScenarioRecord> = run.scenarios.iter().collect();
    records.sort_by(|a, b| (&a.host, &a.name).cmp(&(&b.host, &b.name)));
    for s in records {
        let why = if let Some(e) = &s.error {
            format!("setup: {}", shorten(e, 60))
        } else {
            let bad: Vec<String> = s
                .checks
                .iter()
                .filter(|c| c.verdict != Verdict::Pass)
                .map(|c| format!("{} {}", c.check, c.verdict))
                .collect();
            if bad.is_empty() {
                "every check passed".into()
            } else {
                bad.join(", ")
            }
        };
        rows.push([
            s.host.clone().unwrap_or_else(|| "-".into()),
            s.name.clone(),
            s.verdict().to_string(),
            why,
        ]);
        for c in &s.checks {
            let slot = match c.verdict {
                Verdict::Pass => 0,
                Verdict::Fail => 1,
                Verdict::Inconclusive => 2,
            };
            per_check.entry(c.check.to_string()).or_default()[slot] += 1;
        }
        if s.error.is_some() {
            per_check.entry("(did not run)".into()).or_default()[2] += 1;
        }
    }
    let mut out = table(&rows);
    let mut counts = vec![[
        "check".to_string(),
        "pass".into(),
        "fail".into(),
        "inconclusive".into(),
    ]];
    for (check, [p, f, i]) in per_check {
        counts.push([check, p.to_string(), f.to_string(), i.to_string()]);
    }
    let hosts: std::collections::BTreeSet<&str> = run
        .scenarios
        .iter()
        .filter_map(|s| s.host.as_deref())
        .collect();
    let _ = write!(out, "\n{} hosts, per check:\n", hosts.len());
    out += &table(&counts);
    out
}

/// Rows as aligned columns, the first a header.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
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

/// What `earshot expect` prints for one scenario: each check's expectation with the layer
/// that decided it and the trail of every layer's say, the quality the policy allows, and
/// the engine's warnings and notes.
pub fn expectation_text(s: &crate::scenario::Scenario, e: &crate::policy::Expectation) -> String {
    use crate::scenario::Check;
    let mut text = String::new();
    let _ = writeln!(text, "{} ({}, {})", s.name, s.product, s.path.display());
    for c in [Check::Output, Check::Capture] {
        let p = crate::check::Planned::new(c, c.default_path(), e);
        let _ = writeln!(
            text,
            "  {:<8} {}, decided by {}",
            format!("{c}:"),
            p.expected(),
            p.decided_by()
        );
        for t in p.trail() {
            let _ = writeln!(text, "           - {t}");
        }
    }
    let _ = writeln!(
        text,
        "  quality: {} (the quality check needs the {} class or better), decided by {}",
        e.quality.value.words(),
        crate::verdict::least_class(e.quality.value).words(),
        e.quality.decided_by
    );
    for t in &e.quality.trail {
        let _ = writeln!(text, "           - {t}");
    }
    for w in &e.warnings {
        let _ = writeln!(text, "  warning: {w}");
    }
    for i in &e.info {
        let _ = writeln!(text, "  info:    {i}");
    }
    for n in &e.notes {
        let _ = writeln!(text, "  note:    {n}");
    }
    text
}
