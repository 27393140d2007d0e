//! Reporters: exit codes, JUnit shape and timestamps, JSON schema, the table, closed pipes.

use super::*;
use crate::scenario::{Check, Product};
use crate::verdict::{Observation, Side, Verdict};

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
        host: None,
        started_unix_ms: 1_764_000_000_000.0,
        finished_unix_ms: None,
    }));
    for (i, v) in verdicts.iter().enumerate() {
        run.apply(&Event::CheckFinished(CheckRecord {
            check: if i == 0 {
                Check::Output
            } else {
                Check::Capture
            },
            path: None,
            expected: "heard on the client".into(),
            decided_by: "default".into(),
            observation: Observation::Detected {
                side: Side::Client,
                level_dbfs: Some(-12.0),
                latency_ms: Some(100.0),
                snr_db: Some(40.0),
                dropouts: 0,
                symbols: 16,
                plays: 1,
                speed: None,
                latencies_ms: vec![],
            },
            rig_proof: None,
            verdict: *v,
            silence_proof: None,
            cause: "because <reasons> & more".into(),
            host: None,
            seed: 7,
            evidence: None,
            evidence_error: None,
            started_unix_ms: 1_764_000_000_500.0,
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
fn junit_has_a_suite_per_scenario_and_a_case_per_check_with_times() {
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
    assert!(
        xml.contains("name=\"observed\" value=\"detected\""),
        "{xml}"
    );
    assert!(xml.contains("because &lt;reasons&gt; &amp; more"), "{xml}");
    // The case's own start and duration.
    assert!(xml.contains("timestamp=\"2025-11-24T16:00:00"), "{xml}");
    assert!(
        xml.contains("name=\"started\" value=\"2025-11-24T16:00:00.500"),
        "{xml}"
    );
    assert!(xml.contains("time=\"0.900\""), "{xml}");
}

#[test]
fn json_carries_the_schema_version_and_one_spelling_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    let run = run_with(&[Verdict::Pass]);
    JsonReporter::new(path.clone())
        .event(&Event::ScenarioFinished, &run)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    let obs = &v["scenarios"][0]["checks"][0]["observation"];
    assert_eq!(obs["kind"], "detected");
    assert_eq!(obs["side"], "client");
    assert!(!dir.path().join("r.partial").exists());
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let committed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report.schema.json");
    let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    if std::env::var_os("EARSHOT_BLESS").is_some() {
        std::fs::write(&committed, &generated).unwrap();
    }
    let text = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        text == generated,
        "docs/report.schema.json is stale: run `EARSHOT_BLESS=1 cargo test -p earshot-harness \
         the_committed_schema` and commit it"
    );
    // Every observation kind is in the schema with its one spelling.
    for k in crate::verdict::OBSERVATION_KINDS {
        assert!(
            text.contains(&format!("\"{k}\"")),
            "{k} missing from the schema"
        );
    }
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

/// A writer whose reader went away, as stdout piped into `head`.
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_terminal_is_reported_as_closed_not_as_a_failure() {
    let run = run_with(&[Verdict::Pass]);
    let mut t = TerminalReporter::new(ClosedPipe, false);
    assert!(matches!(
        t.event(&Event::Warning("x".into()), &run),
        Err(ReportError::Closed)
    ));
}

#[test]
fn a_folder_given_as_a_report_file_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let e = check_output_path("--json", dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is a folder") && e.contains("report.json"),
        "{e}"
    );
    // A path in folders still to be made: accepted, and nothing is made until the run
    // starts.
    let nested = dir.path().join("a/b/r.xml");
    check_output_path("--junit", &nested).unwrap();
    assert!(!dir.path().join("a").exists());
    make_output_folders("--junit", &nested).unwrap();
    assert!(dir.path().join("a/b").is_dir());
    // Whether it can be written is tried: a folder nobody can write in (even root cannot
    // make files in /proc) is refused before the run.
    #[cfg(target_os = "linux")]
    {
        let e = check_output_path("--json", Path::new("/proc/earshot-test/r.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot write in /proc"), "{e}");
        assert!(!Path::new("/proc/earshot-test").exists());
    }
    // Nothing is left behind by the trial.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn the_host_facts_reach_junit_and_the_terminal() {
    use earshot_probe::proto::msg::{HostConfig, RegistryData, RegistryValue};
    let boot = 1_764_000_000_000.0;
    let cfg = HostConfig {
        boot_unix_ms: Some(boot),
        values: vec![RegistryValue {
            key: crate::host::POLICY_KEY.into(),
            name: "fDisableCam".into(),
            data: RegistryData::Dword { value: 1 },
            key_written_unix_ms: Some(boot + 60_000.0),
        }],
        ..HostConfig::default()
    };
    let layer = crate::scenario::SessionHostPolicy {
        f_disable_cam: Some(crate::scenario::Flag(1)),
        ..Default::default()
    };
    let mut run = run_with(&[Verdict::Fail]);
    let view = crate::host::view(&layer, &cfg, crate::check::AudioPath::Output, Verdict::Fail);
    run.scenarios[0].checks[0].host = Some(view);
    let xml = junit_xml(&run).unwrap();
    assert!(
        xml.contains(
            "name=\"host.fDisableCam\" value=\"1 (scenario: 1), key written 2025-11-24 16:01:00 \
             UTC, after the last boot\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"host.booted\" value=\"2025-11-24 16:00:00 UTC\""),
        "{xml}"
    );
    let mut out = Vec::new();
    let check = Event::CheckFinished(run.scenarios[0].checks[0].clone());
    TerminalReporter::new(&mut out, false)
        .event(&check, &run)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(
            "fDisableCam: scenario 1, host 1, written 2025-11-24 16:01:00 UTC (after the last boot)"
        ),
        "{text}"
    );
    assert!(
        text.contains("fDisableCam: listener setting, host not read by the probe"),
        "{text}"
    );
}

/// A run made of `n` scenarios drawn from `seed`: each may fail to run (a setup error),
/// carry a fleet host, and finish 0-3 checks of any verdict.
fn random_run(seed: u64) -> Run {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut run = Run::new();
    for si in 0..next(5) {
        let host = (next(2) == 0).then(|| format!("host-{si}"));
        run.apply(&Event::ScenarioStarted(ScenarioRecord {
            name: format!("scenario {si}"),
            file: "s.toml".into(),
            product: Some(Product::Avd),
            expectation: None,
            probes: vec![],
            warnings: vec![],
            checks: vec![],
            error: None,
            host,
            started_unix_ms: 1_764_000_000_000.0,
            finished_unix_ms: None,
        }));
        if next(4) == 0 {
            run.apply(&Event::ScenarioError("no probe answered".into()));
        } else {
            let verdicts = [Verdict::Pass, Verdict::Fail, Verdict::Inconclusive];
            let template = run_with(&[Verdict::Pass]).scenarios[0].checks[0].clone();
            for ci in 0..next(4) {
                let mut c = template.clone();
                c.check = [Check::Output, Check::Capture, Check::Continuity][ci as usize % 3];
                c.verdict = verdicts[next(3) as usize];
                run.apply(&Event::CheckFinished(c));
            }
        }
        run.apply(&Event::ScenarioFinished);
    }
    // A quarter of the runs are stopped by a signal.
    if next(4) == 0 {
        let (signal, code) = [("SIGINT (Ctrl-C)", 130), ("SIGTERM", 143)][next(2) as usize];
        run.apply(&Event::Interrupted(crate::report::Interruption {
            signal: signal.into(),
            exit_code: code,
            at_unix_ms: 1_764_000_001_000.0,
            not_started: next(3) as usize,
        }));
    }
    run
}

#[test]
fn every_artifact_counts_as_the_run_summary_and_the_exit_code_follows_it() {
    let runs = 2000;
    for seed in 0..runs {
        let run = random_run(seed);
        let t = run.tally();
        // The exit code as the scenarios' own verdicts give it.
        let verdicts: Vec<Verdict> = run.scenarios.iter().map(ScenarioRecord::verdict).collect();
        let by_scenario = if verdicts.contains(&Verdict::Fail) {
            1
        } else if verdicts.is_empty() || verdicts.contains(&Verdict::Inconclusive) {
            2
        } else {
            0
        };
        // A signal's exit code wins over the verdicts'.
        let interrupted = run.interrupted.as_ref().map(|i| i.exit_code);
        assert_eq!(
            run.exit_code(),
            interrupted.unwrap_or(by_scenario),
            "seed {seed}: {t:?}"
        );
        let word = if interrupted.is_some() {
            "earshot INTERRUPTED: "
        } else {
            "earshot "
        };
        assert!(run.summary_line().starts_with(word), "seed {seed}");
        assert!(
            run.summary_line()
                .contains(&format!("(exit {})", run.exit_code())),
            "seed {seed}: {}",
            run.summary_line()
        );
        assert_eq!(
            t.words().contains("INTERRUPTED"),
            interrupted.is_some(),
            "seed {seed}"
        );
        // HTML headline.
        let html = html::render(&run, &mut std::collections::HashMap::new());
        let headline = format!(
            "{} scenario(s): <b>{}</b> pass, <b>{}</b> fail, <b>{}</b> inconclusive",
            t.scenarios,
            t.pass,
            t.fail,
            t.inconclusive_total()
        );
        assert!(html.contains(&headline), "seed {seed}: {headline}");
        assert_eq!(
            html.contains("did not run)"),
            t.did_not_run > 0,
            "seed {seed}"
        );
        assert_eq!(
            html.contains("INTERRUPTED by"),
            interrupted.is_some(),
            "seed {seed}"
        );
        // JUnit: a failure per failed check, an error per inconclusive one and per
        // scenario that did not run.
        let xml = junit_xml(&run).unwrap();
        assert_eq!(
            xml.matches("<failure").count(),
            t.fail,
            "seed {seed}: {xml}"
        );
        // An interrupted run has one error more: its "interrupted" suite.
        assert_eq!(
            xml.matches("<error").count(),
            t.inconclusive_total() + usize::from(interrupted.is_some()),
            "seed {seed}: {xml}"
        );
        // The JSON report read back, and the run cut in two shards and merged, count the
        // same and give the same exit code.
        let back: Run = serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
        assert_eq!(back.tally(), t, "seed {seed}");
        let cut = (seed as usize) % (run.scenarios.len() + 1);
        let mut first = run.clone();
        let mut second = run.clone();
        second.scenarios = first.scenarios.split_off(cut);
        first.interrupted = None;
        let merged =
            crate::report::merge::join(vec![("a.json".into(), first), ("b.json".into(), second)])
                .unwrap();
        assert_eq!(merged.tally(), t, "seed {seed}");
        assert_eq!(merged.exit_code(), run.exit_code(), "seed {seed}");
        // The NDJSON records and the Prometheus file count the same.
        let records: Vec<serde_json::Value> = crate::report::ndjson(&run)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let prom = crate::report::prometheus(&run);
        for (verdict, n) in [
            ("pass", t.pass),
            ("fail", t.fail),
            ("inconclusive", t.inconclusive_total()),
        ] {
            let in_records = records.iter().filter(|r| r["verdict"] == verdict).count();
            assert_eq!(in_records, n, "seed {seed}: {verdict} records");
            let series = prom
                .lines()
                .filter(|l| {
                    l.starts_with("earshot_check_verdict{")
                        && l.ends_with(&format!("verdict=\"{verdict}\"}} 1"))
                })
                .count();
            assert_eq!(series, n, "seed {seed}: {verdict} series\n{prom}");
        }
        assert!(
            prom.contains(&format!("\nearshot_run_exit_code {}\n", run.exit_code())),
            "seed {seed}: {prom}"
        );
        // The terminal's closing lines.
        let mut out = Vec::new();
        TerminalReporter::new(&mut out, false).finish(&run).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(&format!("{} (exit {})", t.words(), run.exit_code())),
            "seed {seed}: {text}"
        );
    }
}

#[test]
fn the_summary_line_names_the_worst_and_fits_what_intune_shows() {
    assert_eq!(
        run_with(&[Verdict::Pass, Verdict::Pass]).summary_line(),
        "earshot PASS: 1 scenario(s): 2 pass, 0 fail, 0 inconclusive (exit 0)"
    );
    let line = run_with(&[Verdict::Inconclusive, Verdict::Fail]).summary_line();
    assert!(
        line.starts_with("earshot FAIL: 1 scenario(s): 0 pass, 1 fail, 1 inconclusive (exit 1); first failing: s <&> 1 capture: because"),
        "{line}"
    );
    let line = run_with(&[Verdict::Pass, Verdict::Inconclusive]).summary_line();
    assert!(
        line.contains("first inconclusive: s <&> 1 capture"),
        "{line}"
    );
    // A long cause with line breaks: one line, cut to 2,048 characters.
    let mut run = run_with(&[Verdict::Fail]);
    run.scenarios[0].checks[0].cause = format!("line one\nline two {}", "é".repeat(5000));
    let line = run.summary_line();
    assert!(!line.contains('\n'));
    assert_eq!(
        line.chars().count(),
        crate::report::events::SUMMARY_LINE_MAX
    );
    assert!(line.ends_with("..."));
    // Nothing ran: said as such.
    let mut nothing = run_with(&[]);
    nothing.scenarios[0].error = Some("connection refused".into());
    assert!(
        nothing
            .summary_line()
            .contains("first not run: s <&> 1: did not run: connection refused"),
        "{}",
        nothing.summary_line()
    );
}

#[test]
fn prometheus_labels_are_escaped_and_every_sample_has_its_family() {
    let mut run = run_with(&[Verdict::Pass]);
    run.scenarios[0].name = "a \"quoted\" \\ name\nsecond line".into();
    let prom = crate::report::prometheus(&run);
    assert!(
        prom.contains("scenario=\"a \\\"quoted\\\" \\\\ name\\nsecond line\""),
        "{prom}"
    );
    // Each sample follows the HELP and TYPE lines of its family; no sample line breaks.
    let mut family = String::new();
    for line in prom.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap().to_string();
            assert!(rest.ends_with(" gauge"), "{line}");
        } else if !line.starts_with('#') {
            assert!(line.starts_with(&family), "{line} outside {family}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    let row = &crate::report::records::rows(&run)[0];
    assert_eq!(row.record_version, crate::report::records::RECORD_VERSION);
    assert!(
        row.time.ends_with('Z') && row.time.contains('T'),
        "{}",
        row.time
    );
}
