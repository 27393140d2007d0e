//! The JUnit XML report: a scenario is a test suite, a check a test case, measurements are
//! properties. Fail is a `<failure>`, inconclusive an `<error>`. Suites and cases carry
//! their duration (`time`); suites their start (`timestamp`), checks theirs as the
//! `started` property (the common JUnit schemas allow `timestamp` on suites only).

use std::fmt::Write as _;
use std::path::PathBuf;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{write_atomically, Event, ReportError, Reporter, Run};
use crate::verdict::{Observation, Verdict};

fn timestamp(unix_ms: f64) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::from_timestamp_millis(unix_ms as i64).map(|t| t.fixed_offset())
}

/// Renders the run as JUnit XML.
///
/// # Errors
/// When quick-junit cannot serialise it.
pub fn junit_xml(run: &Run) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("earshot");
    if let Some(t) = timestamp(run.started_unix_ms) {
        report.set_timestamp(t);
    }
    // An interrupted run says so in a suite of its own, as an error.
    if let Some(i) = &run.interrupted {
        let mut suite = TestSuite::new("interrupted");
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(format!(
            "the run was interrupted by {}: checks decided before it are kept, the running \
             ones are inconclusive, {} scenario(s) not started (exit {})",
            i.signal, i.not_started, i.exit_code
        ));
        status.set_type("interrupted");
        let mut case = TestCase::new("run", status);
        case.set_classname("interrupted");
        suite.add_test_case(case);
        report.add_test_suite(suite);
    }
    for s in &run.scenarios {
        // A fleet run has a suite per host and scenario: the host is in its name.
        let name = match &s.host {
            Some(h) => format!("{} on {h}", s.name),
            None => s.name.clone(),
        };
        let mut suite = TestSuite::new(name.clone());
        if let Some(h) = &s.host {
            suite.add_property(Property::new("host", h.clone()));
        }
        if let Some(t) = timestamp(s.started_unix_ms) {
            suite.set_timestamp(t);
        }
        if let Some(end) = s.finished_unix_ms {
            suite.set_time(std::time::Duration::from_secs_f64(
                (end - s.started_unix_ms).max(0.0) / 1000.0,
            ));
        }
        suite.add_property(Property::new("file", s.file.display().to_string()));
        if let Some(p) = s.product {
            suite.add_property(Property::new("product", p.to_string()));
        }
        for w in &s.warnings {
            suite.add_property(Property::new("warning", w.clone()));
        }
        // A scenario that did not run counts as inconclusive, as in every artifact.
        let not_run = match &s.error {
            Some(e) => Some(e.clone()),
            None if s.checks.is_empty() => Some("no check finished".to_string()),
            None => None,
        };
        if let Some(e) = not_run {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(e);
            status.set_type("inconclusive");
            let mut case = TestCase::new("setup", status);
            case.set_classname(name.clone());
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
            case.set_classname(name.clone());
            // The common JUnit schemas allow a timestamp on suites only: a check's start
            // is a property.
            if let Some(t) = timestamp(c.started_unix_ms) {
                case.add_property(Property::new("started", t.to_rfc3339()));
            }
            case.set_time(std::time::Duration::from_secs_f64(
                c.duration_ms.max(0.0) / 1000.0,
            ));
            case.add_property(Property::new("expected", c.expected.clone()));
            case.add_property(Property::new("decided_by", c.decided_by.clone()));
            case.add_property(Property::new("observed", c.observation.kind()));
            case.add_property(Property::new(
                "side",
                match c.observation.side() {
                    crate::verdict::Side::Session => "session",
                    crate::verdict::Side::Client => "client",
                },
            ));
            case.add_property(Property::new("verdict", c.verdict.to_string()));
            case.add_property(Property::new("seed", c.seed.to_string()));
            for f in c.host.iter().flat_map(|h| &h.facts) {
                // `host.fDisableCam` for the policy, `host.RDP-Tcp.fDisableCam` for the
                // listener's own value.
                let name = if f.key == crate::host::WINSTATION_KEY {
                    format!("host.RDP-Tcp.{}", f.setting)
                } else {
                    format!("host.{}", f.setting)
                };
                let mut value = format!(
                    "{} (scenario: {})",
                    f.host_has,
                    f.rolled_out
                        .map_or("not configured".into(), |v| v.to_string())
                );
                if let Some(w) = f.key_written_unix_ms {
                    let _ = write!(value, ", key written {}", crate::host::when(w));
                    if f.written_after_boot == Some(true) {
                        value.push_str(", after the last boot");
                    }
                }
                case.add_property(Property::new(name, value));
            }
            if let Some(b) = c.host.as_ref().and_then(|h| h.boot_unix_ms) {
                case.add_property(Property::new("host.booted", crate::host::when(b)));
            }
            match &c.observation {
                Observation::Detected {
                    level_dbfs,
                    latency_ms,
                    snr_db,
                    dropouts,
                    symbols,
                    plays,
                    ..
                } => {
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
                    case.add_property(Property::new("plays", plays.to_string()));
                }
                Observation::Degraded {
                    rms_dbfs, symbols, ..
                } => {
                    case.add_property(Property::new("rms_dbfs", format!("{rms_dbfs:.1}")));
                    case.add_property(Property::new("symbols", symbols.to_string()));
                }
                Observation::Unrecognised { rms_dbfs, .. }
                | Observation::Silent { rms_dbfs, .. } => {
                    case.add_property(Property::new("rms_dbfs", format!("{rms_dbfs:.1}")));
                }
                Observation::NoDevice { endpoint, .. } => {
                    case.add_property(Property::new("endpoint", endpoint.clone()));
                }
                Observation::Error { .. } => {}
                Observation::Speech {
                    mos_lqo, level_db, ..
                } => {
                    for (k, v) in [("speech.mos_lqo", mos_lqo), ("speech.level_db", level_db)] {
                        if let Some(v) = v {
                            case.add_property(Property::new(k, format!("{v:.2}")));
                        }
                    }
                }
                Observation::Continuity {
                    found,
                    heard_ms,
                    gaps,
                    glitches,
                    drift_ppm,
                    level_dbfs,
                    level_std_db,
                    error_floor_db,
                    ..
                } => {
                    case.add_property(Property::new("continuity.found", found.to_string()));
                    case.add_property(Property::new(
                        "continuity.heard_ms",
                        format!("{heard_ms:.0}"),
                    ));
                    case.add_property(Property::new("continuity.gaps", gaps.to_string()));
                    case.add_property(Property::new("continuity.glitches", glitches.to_string()));
                    for (k, v) in [
                        ("continuity.drift_ppm", drift_ppm),
                        ("continuity.level_dbfs", level_dbfs),
                        ("continuity.level_std_db", level_std_db),
                        ("continuity.error_floor_db", error_floor_db),
                    ] {
                        if let Some(v) = v {
                            case.add_property(Property::new(k, format!("{v:.1}")));
                        }
                    }
                }
                Observation::Quality {
                    found,
                    class,
                    rate_class,
                    band_edge_hz,
                    sinad_db,
                    noise_floor_dbfs,
                    gain_db,
                    step_db,
                    holes_hz,
                    codec_signs,
                    ..
                } => {
                    case.add_property(Property::new("quality.found", found.to_string()));
                    case.add_property(Property::new("quality.class", class.clone()));
                    if let Some(r) = rate_class {
                        case.add_property(Property::new("quality.rate_class", r.clone()));
                    }
                    for (k, v) in [
                        ("quality.band_edge_hz", band_edge_hz),
                        ("quality.sinad_db", sinad_db),
                        ("quality.noise_floor_dbfs", noise_floor_dbfs),
                        ("quality.gain_db", gain_db),
                        ("quality.step_db", step_db),
                    ] {
                        if let Some(v) = v {
                            case.add_property(Property::new(k, format!("{v:.1}")));
                        }
                    }
                    case.add_property(Property::new("quality.holes", holes_hz.len().to_string()));
                    case.add_property(Property::new("quality.codec_signs", codec_signs.join(",")));
                }
            }
            if let Some(r) = &c.rig_proof {
                case.add_property(Property::new("rig_proof", r.clone()));
            }
            if let Some(e) = &c.evidence {
                case.add_property(Property::new("evidence", e.display().to_string()));
            }
            if let Some(e) = &c.evidence_error {
                case.add_property(Property::new("evidence_error", e.clone()));
            }
            case.set_system_out(c.cause.clone());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string()
}

/// The JUnit XML report, rewritten after every event.
pub struct JunitReporter {
    path: PathBuf,
}

impl JunitReporter {
    /// Writes to `path`.
    pub fn new(path: PathBuf) -> JunitReporter {
        JunitReporter { path }
    }
}

impl Reporter for JunitReporter {
    fn event(&mut self, _event: &Event, run: &Run) -> Result<(), ReportError> {
        let xml = junit_xml(run).map_err(|e| ReportError::Render {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomically(&self.path, xml.as_bytes())
    }
}
