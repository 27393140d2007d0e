use serde_json::json;

use super::*;

fn check(check: &str, verdict: &str, observation: Value) -> Value {
    json!({"check": check, "verdict": verdict, "observation": observation})
}

fn scenario(host: &str, name: &str, checks: Vec<Value>) -> Value {
    json!({
        "name": name,
        "probes": [
            {"role": "local", "host_name": "rig", "peer": "10.0.0.1:7701"},
            {"role": "remote", "host_name": host, "peer": "10.0.0.2:7702"}
        ],
        "checks": checks,
        "error": null
    })
}

fn report(scenarios: Vec<Value>) -> Value {
    json!({"schema_version": 5, "scenarios": scenarios})
}

fn detected(latency: f64, snr: f64) -> Value {
    json!({"kind": "detected", "latency_ms": latency, "snr_db": snr, "level_dbfs": -9.0})
}

fn run(base: &Value, new: &Value) -> Comparison {
    compare(
        (Path::new("base.json"), base),
        (Path::new("new.json"), new),
        &Thresholds::default(),
    )
}

#[test]
fn the_same_run_twice_has_no_change() {
    let r = report(vec![scenario(
        "sh-0",
        "avd",
        vec![
            check("output", "pass", detected(240.0, 60.0)),
            check(
                "capture",
                "pass",
                json!({"kind": "silent", "rms_dbfs": -90.0}),
            ),
        ],
    )]);
    let c = run(&r, &r);
    assert_eq!(c.regressions, 0);
    assert_eq!(c.improvements, 0);
    assert!(c.rows.iter().all(|r| r.change == Change::Same), "{c:?}");
    assert!(c
        .text()
        .contains("0 regression(s), 0 improvement(s), 2 unchanged"));
}

#[test]
fn a_worse_verdict_and_figures_past_their_limits_are_regressions() {
    let base = report(vec![
        scenario(
            "sh-0",
            "avd",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
        scenario(
            "sh-1",
            "avd",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
        scenario(
            "sh-2",
            "avd",
            vec![check("output", "fail", json!({"kind": "silent"}))],
        ),
    ]);
    let new = report(vec![
        // Verdict worse.
        scenario(
            "sh-0",
            "avd",
            vec![check("output", "fail", json!({"kind": "silent"}))],
        ),
        // Latency +300 ms, SNR -20 dB: past their limits.
        scenario(
            "sh-1",
            "avd",
            vec![check("output", "pass", detected(540.0, 40.0))],
        ),
        // Better.
        scenario(
            "sh-2",
            "avd",
            vec![check("output", "pass", detected(250.0, 59.0))],
        ),
    ]);
    let c = run(&base, &new);
    assert_eq!(c.regressions, 2, "{}", c.text());
    assert_eq!(c.improvements, 1, "{}", c.text());
    let text = c.text();
    assert!(
        text.contains("REGRESSION  sh-0 / avd / output: pass -> fail"),
        "{text}"
    );
    assert!(
        text.contains("latency 240.0 -> 540.0 ms (+300.0, limit ±100)"),
        "{text}"
    );
    assert!(
        text.contains("SNR 60.0 -> 40.0 dB (-20.0, limit ±6)"),
        "{text}"
    );
    assert!(
        text.contains("improvement sh-2 / avd / output: fail -> pass"),
        "{text}"
    );
    // Regressions come first.
    assert_eq!(c.rows[0].change, Change::Regression);
}

#[test]
fn small_moves_stay_the_same_and_thresholds_are_the_users() {
    let base = report(vec![scenario(
        "h",
        "s",
        vec![check("output", "pass", detected(240.0, 60.0))],
    )]);
    let new = report(vec![scenario(
        "h",
        "s",
        vec![check("output", "pass", detected(320.0, 56.0))],
    )]);
    assert_eq!(run(&base, &new).regressions, 0);
    let strict = Thresholds {
        latency_ms: 50.0,
        ..Thresholds::default()
    };
    let c = compare((Path::new("b"), &base), (Path::new("n"), &new), &strict);
    assert_eq!(c.regressions, 1, "{}", c.text());
}

#[test]
fn hosts_that_vanish_are_regressions_and_hosts_that_appear_are_said() {
    let base = report(vec![
        scenario(
            "sh-0",
            "avd",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
        scenario(
            "sh-1",
            "avd",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
    ]);
    let mut gone = json!({"name": "avd", "probes": [], "checks": [], "error": "the remote probe sh-1 never connected"});
    gone["name"] = json!("avd");
    let new = report(vec![
        scenario(
            "sh-0",
            "avd",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
        gone,
        scenario(
            "sh-9",
            "avd",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
    ]);
    let c = run(&base, &new);
    assert_eq!(c.hosts_vanished, vec!["sh-1".to_string()]);
    assert_eq!(c.hosts_appeared, vec!["sh-9".to_string()]);
    assert_eq!(c.regressions, 1, "{}", c.text());
    let text = c.text();
    assert!(
        text.contains("REGRESSION  sh-1 / avd / output: pass -> -"),
        "{text}"
    );
    assert!(text.contains("never connected"), "{text}");
    assert!(text.contains("appeared    sh-9 / avd / output"), "{text}");
}

#[test]
fn an_interrupted_new_run_says_so_and_what_it_did_not_measure_regresses() {
    let base = report(vec![
        scenario(
            "sh-0",
            "a",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
        scenario(
            "sh-0",
            "b",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
    ]);
    let mut new = report(vec![scenario(
        "sh-0",
        "a",
        vec![check("output", "pass", detected(240.0, 60.0))],
    )]);
    new["interrupted"] = json!({"signal": "SIGINT (Ctrl-C)", "exit_code": 130,
        "at_unix_ms": 1.0, "not_started": 1});
    let c = run(&base, &new);
    assert_eq!(c.regressions, 1, "{}", c.text());
    assert_eq!(
        c.interrupted,
        vec!["the new run was interrupted by SIGINT (Ctrl-C): 1 scenario(s) never started"]
    );
    let text = c.text();
    assert!(
        text.contains(
            "sh-0 / b / output: pass -> -; not measured in the new run: it was \
                       interrupted by SIGINT (Ctrl-C) first"
        ) && text.contains("INTERRUPTED: the new run"),
        "{text}"
    );
    assert!(c.html().contains("INTERRUPTED: the new run"));
    // A run that was not interrupted says nothing of it.
    assert!(run(&base, &base).interrupted.is_empty());
}

#[test]
fn continuity_breaks_and_a_lower_quality_class_regress() {
    let base = report(vec![scenario(
        "h",
        "s",
        vec![
            check(
                "continuity",
                "pass",
                json!({"kind": "continuity", "gaps": 0, "glitches": 0}),
            ),
            check(
                "quality",
                "pass",
                json!({"kind": "quality", "class": "high", "sinad_db": 79.0}),
            ),
        ],
    )]);
    let new = report(vec![scenario(
        "h",
        "s",
        vec![
            check(
                "continuity",
                "pass",
                json!({"kind": "continuity", "gaps": 2, "glitches": 1}),
            ),
            check(
                "quality",
                "pass",
                json!({"kind": "quality", "class": "medium", "sinad_db": 37.0}),
            ),
        ],
    )]);
    let c = run(&base, &new);
    assert_eq!(c.regressions, 2, "{}", c.text());
    let text = c.text();
    assert!(text.contains("continuity breaks 0.0 -> 3.0"), "{text}");
    assert!(text.contains("quality class high -> medium"), "{text}");
    assert!(text.contains("SINAD 79.0 -> 37.0 dB"), "{text}");
}

#[test]
fn the_html_page_has_a_row_per_check_and_names_the_vanished_host() {
    let base = report(vec![
        scenario(
            "h",
            "s",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
        scenario(
            "gone",
            "s",
            vec![check("output", "pass", detected(240.0, 60.0))],
        ),
    ]);
    let new = report(vec![scenario(
        "h",
        "s",
        vec![check("output", "fail", json!({"kind": "silent"}))],
    )]);
    let html = run(&base, &new).html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        html.matches("<tr><td class=\"v fail\">regression</td>")
            .count(),
        2,
        "{html}"
    );
    assert!(html.contains("Hosts vanished: gone"), "{html}");
    assert!(html.contains("verdict pass -&gt; fail"), "{html}");
}

#[test]
fn junit_has_a_failure_per_regression() {
    let base = report(vec![scenario(
        "h",
        "s",
        vec![check("output", "pass", detected(240.0, 60.0))],
    )]);
    let new = report(vec![scenario(
        "h",
        "s",
        vec![check("output", "fail", json!({"kind": "silent"}))],
    )]);
    let xml = run(&base, &new).junit();
    assert!(xml.contains("<failure"), "{xml}");
    assert!(xml.contains("verdict pass -&gt; fail"), "{xml}");
}

#[test]
fn files_that_are_not_reports_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, says) in [
        ("a.json", "{", "not JSON"),
        ("b.json", "{\"scenarios\": []}", "no schema_version"),
        (
            "c.json",
            "{\"schema_version\": 1, \"scenarios\": []}",
            "schema_version 1",
        ),
        ("d.json", "{\"schema_version\": 5}", "no `scenarios` list"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(says), "{e}");
    }
    let e = load(&dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json: cannot read"), "{e}");
}
