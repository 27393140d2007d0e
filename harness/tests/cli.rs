//! The `earshot` binary on bad input: every message names the file, the key or the path
//! and what to do; nothing is printed twice; a closed stdout ends quietly.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

fn earshot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_earshot"))
}

const SCENARIO: &str = "name = \"utf16\"\nproduct = \"avd\"\n\
[policy.rdp]\nproperties = \"audiomode:i:0;audiocapturemode:i:1\"\n\
[probes.local]\naddress = \"127.0.0.1:9\"\ntoken_env = \"X\"\nmic_feed = \"micfeed\"\n\
[probes.remote]\naddress = \"127.0.0.1:9\"\ntoken_env = \"X\"\n";

fn write_utf16le(path: &Path, text: &str, bom: bool) {
    let mut bytes = if bom { vec![0xff, 0xfe] } else { vec![] };
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_scenario_saved_by_powershell_as_utf16_is_read() {
    let dir = tempfile::tempdir().unwrap();
    for bom in [true, false] {
        let f = dir.path().join(format!("s{bom}.toml"));
        write_utf16le(&f, &SCENARIO.replace('\n', "\r\n"), bom);
        let out = earshot().arg("expect").arg(&f).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Words, not enum names.
        assert!(text.contains("output:  heard on the client"), "{text}");
        assert!(
            text.contains("capture: microphone heard in the session"),
            "{text}"
        );
        assert!(text.contains("quality: dynamic"), "{text}");
        assert!(
            !text.contains("Client,") && !text.contains("Redirected,"),
            "{text}"
        );
    }
}

#[test]
fn a_binary_scenario_is_refused_with_save_as_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bin.toml");
    std::fs::write(&f, [0u8, 0, 7, 1, 0, 0, 9]).unwrap();
    let out = earshot().arg("expect").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("bin.toml") && e.contains("save the scenario as UTF-8"),
        "{e}"
    );
    assert!(!e.contains('\0'), "{e:?}");
}

#[test]
fn a_missing_file_says_why_once() {
    let out = earshot()
        .args(["expect", "/nonexistent/s.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    assert!(e.contains("/nonexistent/s.toml"), "{e}");
}

#[test]
fn every_bad_scenario_is_named_before_any_probe_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, SCENARIO.replace("audiomode:i:0", "audiomode:i:7")).unwrap();
    std::fs::write(&b, SCENARIO.replace("audiomode:i:0", "audiomod:i:0")).unwrap();
    let t0 = std::time::Instant::now();
    let out = earshot().arg("run").arg(&a).arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("a.toml") && e.contains("2 (do not play)"), "{e}");
    assert!(
        e.contains("b.toml") && e.contains("did you mean `audiomode`"),
        "{e}"
    );
    assert!(e.contains("nothing was run"), "{e}");
    assert!(t0.elapsed().as_secs() < 5);
}

#[test]
fn a_folder_given_as_the_json_report_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.toml");
    std::fs::write(&s, SCENARIO).unwrap();
    let out = earshot()
        .arg("run")
        .arg(&s)
        .arg("--json")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--json") && e.contains("is a folder"), "{e}");
    // Nothing was attempted: no probe error, no report.
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("probe"),
        "{e}"
    );
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_usual_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..200 {
        let f = dir.path().join(format!("s{i}.toml"));
        std::fs::write(&f, SCENARIO).unwrap();
        files.push(f);
    }
    let mut child = earshot()
        .arg("expect")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away at once, as `| head -c 0` would.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked") && err.is_empty(), "{err}");
}

#[test]
fn the_schema_subcommand_prints_the_report_schema() {
    let out = earshot().arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "Run");
}

/// A scenario whose probes nothing serves (port 9): every host of a fleet run is
/// inconclusive at once, naming itself.
const UNREACHABLE: &str = "name = \"unreachable\"\nproduct = \"avd\"\n\
[timeouts]\nconnect = \"2s\"\n\
[probes.local]\naddress = \"127.0.0.1:9\"\ntoken_env = \"X\"\nmic_feed = \"micfeed\"\n\
[probes.remote]\naddress = \"127.0.0.1:9\"\ntoken_env = \"X\"\n";

#[test]
fn fleet_shards_run_apart_and_merge_into_one_run_naming_every_host() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.toml");
    std::fs::write(&s, UNREACHABLE).unwrap();
    let hosts = dir.path().join("hosts.csv");
    let names: Vec<String> = (0..6).map(|i| format!("avd-{i}")).collect();
    let mut csv = String::from("name,address\n");
    for n in &names {
        let _ = writeln!(csv, "{n},127.0.0.1:9");
    }
    std::fs::write(&hosts, csv).unwrap();
    let mut shards = Vec::new();
    for k in 1..=2 {
        let json = dir.path().join(format!("shard{k}.json"));
        let out = earshot()
            .arg("run")
            .arg(&s)
            .arg("--inventory")
            .arg(&hosts)
            .args(["--shard", &format!("{k}/2"), "--json"])
            .arg(&json)
            .env("X", "fleet-cli-token-0123456789")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        shards.push(json);
    }
    let merged = dir.path().join("merged.json");
    let html = dir.path().join("merged.html");
    let out = earshot()
        .arg("merge")
        .args(&shards)
        .arg("--json")
        .arg(&merged)
        .arg("--html")
        .arg(&html)
        .arg("--junit")
        .arg(dir.path().join("merged.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let xml = std::fs::read_to_string(dir.path().join("merged.xml")).unwrap();
    assert!(
        xml.contains("testsuite name=\"unreachable on avd-3\""),
        "{xml}"
    );
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    let mut got: Vec<String> = run["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let h = s["host"].as_str().unwrap().to_string();
            let e = s["error"].as_str().unwrap();
            assert!(e.contains(&format!("host {h}:")), "{e}");
            h
        })
        .collect();
    got.sort();
    assert_eq!(got, names, "every host once, from one shard or the other");
    // The summary has a line per host.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("6 hosts, per check"), "{text}");
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("<td>avd-5</td>"));

    // A share stopped by Ctrl-C makes the joined run an interrupted one, in every
    // artifact and the exit status.
    let mut stopped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&shards[1]).unwrap()).unwrap();
    stopped["interrupted"] = serde_json::json!({"signal": "SIGINT (Ctrl-C)",
        "exit_code": 130, "at_unix_ms": 1.0e12, "not_started": 2});
    let stopped_file = dir.path().join("shard2-stopped.json");
    std::fs::write(&stopped_file, stopped.to_string()).unwrap();
    let out = earshot()
        .arg("merge")
        .arg(&shards[0])
        .arg(&stopped_file)
        .arg("--json")
        .arg(&merged)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    assert_eq!(run["interrupted"]["not_started"], 2, "{run}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("INTERRUPTED"), "{text}");
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("INTERRUPTED"));

    // The same share twice is refused, naming both files.
    let out = earshot()
        .arg("merge")
        .arg(&shards[0])
        .arg(&shards[0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in both") && err.contains("shard1.json"),
        "{err}"
    );

    // A report of another schema is named, with what this earshot reads.
    let old = dir.path().join("old.json");
    std::fs::write(&old, "{\"schema_version\": 5, \"scenarios\": []}").unwrap();
    let out = earshot().arg("merge").arg(&old).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("old.json") && err.contains("schema 5"),
        "{err}"
    );
}

#[test]
fn a_bad_inventory_or_shard_is_named_before_any_probe_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.toml");
    std::fs::write(&s, UNREACHABLE).unwrap();
    let hosts = dir.path().join("hosts.toml");
    std::fs::write(&hosts, "[[host]]\nname = \"a\"\n\n[[host]]\nnmae = \"b\"\n").unwrap();
    let out = earshot()
        .arg("run")
        .arg(&s)
        .arg("--inventory")
        .arg(&hosts)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hosts.toml:5") && err.contains("nmae"),
        "{err}"
    );
    std::fs::write(&hosts, "[[host]]\nname = \"a\"\n").unwrap();
    for (shard, says) in [("0/2", "1 <= K <= N"), ("2/2", "none of the 1 hosts")] {
        let out = earshot()
            .arg("run")
            .arg(&s)
            .arg("--inventory")
            .arg(&hosts)
            .args(["--shard", shard])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{shard}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{shard}: {err}");
    }
    // --shard needs --inventory.
    let out = earshot()
        .arg("run")
        .arg(&s)
        .args(["--shard", "1/2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--inventory"));
}

#[test]
fn token_problems_are_configuration_errors_and_a_refused_run_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.toml");
    std::fs::write(
        &s,
        SCENARIO.replace("token_env = \"X\"", "token_file = \"tok\""),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("tok")).unwrap();
    let report = dir.path().join("not/yet/r.json");
    let out = earshot()
        .arg("run")
        .arg(&s)
        .arg("--json")
        .arg(&report)
        .env_remove("X")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("s.toml: probes.local: token_file: token file")
            && e.contains("is a folder, not a file")
            && !e.contains("chmod"),
        "{e}"
    );
    assert!(e.contains("nothing was run"), "{e}");
    // Neither the report nor its folders were made for a run that never started.
    assert!(!dir.path().join("not").exists());
}

/// Every `run:` / `script:` of a pipeline that calls earshot, in the file's order.
fn earshot_steps(doc: &serde_yaml::Value) -> Vec<String> {
    let mut out = Vec::new();
    match doc {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                match v.as_str() {
                    Some(cmd) if (key == "run" || key == "script") && cmd.contains("earshot ") => {
                        out.push(cmd.to_string());
                    }
                    _ => out.extend(earshot_steps(v)),
                }
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| out.extend(earshot_steps(v))),
        _ => {}
    }
    out
}

/// Runs `cmd` as a pipeline's shell would, in `dir`, with `vars` substituted and the
/// earshot under test first on PATH.
fn pipeline_step(dir: &Path, cmd: &str, vars: &[(&str, String)]) -> std::process::Output {
    let mut line = cmd.to_string();
    for (name, value) in vars {
        line = line.replace(name, value);
    }
    assert!(
        !line.contains("$(") && !line.contains("${{"),
        "unsubstituted: {line}"
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_earshot")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-c", &line])
        .current_dir(dir)
        .env("PATH", path)
        .env("EARSHOT_TOKEN", "pipeline-token-0123456789")
        .output()
        .unwrap()
}

/// The pipeline's merged report: every host of the inventory once, and its JUnit.
fn merged_every_host(report: &Path, junit: &Path, hosts: usize) {
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let mut names: Vec<&str> = run["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), hosts, "{names:?}");
    assert!(std::fs::read_to_string(junit)
        .unwrap()
        .contains("<testsuites"));
}

#[cfg(unix)]
#[test]
fn the_pipeline_templates_parse_and_their_shard_and_merge_steps_run() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/pipelines");
    let setup = |dir: &Path| {
        std::fs::write(
            dir.join("rollout.toml"),
            UNREACHABLE.replace("token_env = \"X\"", "token_env = \"EARSHOT_TOKEN\""),
        )
        .unwrap();
        let mut csv = String::from("name,address\n");
        for i in 0..6 {
            let _ = writeln!(csv, "avd-{i},127.0.0.1:9");
        }
        std::fs::write(dir.join("hosts.csv"), csv).unwrap();
    };

    // GitHub Actions: a matrix of 4 shares, then a merge job that publishes the JUnit.
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(docs.join("github-actions.yml")).unwrap())
            .unwrap();
    let shares = doc["jobs"]["shard"]["strategy"]["matrix"]["shard"]
        .as_sequence()
        .unwrap()
        .len();
    assert_eq!(shares, 4);
    assert_eq!(doc["jobs"]["merge"]["needs"], "shard");
    assert!(format!("{:?}", doc["jobs"]["merge"]["steps"]).contains("action-junit-report"));
    let steps = earshot_steps(&doc);
    let [run, merge] = &steps[..] else {
        panic!("{steps:?}");
    };
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    for k in 1..=shares {
        let out = pipeline_step(dir.path(), run, &[("${{ matrix.shard }}", k.to_string())]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
    }
    let out = pipeline_step(dir.path(), merge, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    merged_every_host(
        &dir.path().join("out/report.json"),
        &dir.path().join("out/junit.xml"),
        6,
    );

    // Azure Pipelines: a parallel job of 4, each share published as its own artifact
    // (downloaded to the workspace under its name), then the merge and PublishTestResults.
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(docs.join("azure-pipelines.yml")).unwrap())
            .unwrap();
    assert_eq!(doc["jobs"][0]["strategy"]["parallel"], 4);
    assert_eq!(doc["jobs"][1]["dependsOn"], "shard");
    let publish = format!("{:?}", doc["jobs"][1]["steps"]);
    assert!(
        publish.contains("PublishTestResults@2") && publish.contains("JUnit"),
        "{publish}"
    );
    let steps = earshot_steps(&doc);
    let [run, merge] = &steps[..] else {
        panic!("{steps:?}");
    };
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let ws = dir.path().join("ws");
    for k in 1..=4 {
        let staging = ws.join(format!("shard-{k}"));
        std::fs::create_dir_all(&staging).unwrap();
        let vars = [
            ("$(System.JobPositionInPhase)", k.to_string()),
            ("$(System.TotalJobsInPhase)", "4".to_string()),
            (
                "$(Build.ArtifactStagingDirectory)",
                staging.display().to_string(),
            ),
        ];
        let out = pipeline_step(dir.path(), run, &vars);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
    }
    let staging = dir.path().join("merge");
    std::fs::create_dir_all(&staging).unwrap();
    let vars = [
        ("$(Pipeline.Workspace)", ws.display().to_string()),
        (
            "$(Build.ArtifactStagingDirectory)",
            staging.display().to_string(),
        ),
    ];
    let out = pipeline_step(dir.path(), merge, &vars);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    merged_every_host(&staging.join("report.json"), &staging.join("junit.xml"), 6);
}

#[test]
fn doctor_without_probes_says_each_one_unreachable_and_exits_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("draft.toml");
    // A draft: no mic_feed (the doctor looks for one), a token in the environment.
    std::fs::write(&f, SCENARIO.replace("mic_feed = \"micfeed\"\n", "")).unwrap();
    let rig = dir.path().join("out/rig.toml");
    let out = earshot()
        .arg("doctor")
        .arg(&f)
        .arg("--write")
        .arg(&rig)
        .env("X", "doctor-cli-token-0123456789abcdef")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ok      tokens: probes.local: token_env X is set"),
        "{text}"
    );
    for role in ["local", "remote"] {
        assert!(
            text.contains(&format!(
                "PROBLEM {role} probe: cannot be reached: {role} probe: "
            )),
            "{text}"
        );
    }
    assert!(
        text.contains("is `earshot-probe serve` running on 127.0.0.1:9"),
        "{text}"
    );
    assert!(text.contains("not ready: 2 problems"), "{text}");
    // The written file says its keys were not tested, and is a scenario once a feed is
    // named.
    assert!(
        text.contains("the local probe was not reached to test them"),
        "{text}"
    );
    let written = std::fs::read_to_string(&rig).unwrap();
    assert!(written.contains("address = \"127.0.0.1:9\""), "{written}");

    // A scenario saved as UTF-16 (PowerShell) keeps its other tables in the file written.
    let utf16 = dir.path().join("draft16.toml");
    write_utf16le(
        &utf16,
        &format!(
            "{}[timeouts]\nlatency = \"600ms\"\n",
            SCENARIO.replace("mic_feed = \"micfeed\"\n", "")
        ),
        true,
    );
    let rig16 = dir.path().join("out/rig16.toml");
    let out = earshot()
        .arg("doctor")
        .arg(&utf16)
        .arg("--write")
        .arg(&rig16)
        .env("X", "doctor-cli-token-0123456789abcdef")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let written = std::fs::read_to_string(&rig16).unwrap();
    assert!(
        written.contains("[timeouts]\nlatency = \"600ms\""),
        "{written}"
    );

    // No token: said, and no probe is tried.
    let out = earshot()
        .arg("doctor")
        .arg(&f)
        .env_remove("X")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the environment variable X is not set")
            && !text.contains("cannot be reached"),
        "{text}"
    );

    // A broken scenario, or --write naming the scenario itself: exit 2, nothing touched.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = 3\n").unwrap();
    let out = earshot().arg("doctor").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
    let out = earshot()
        .arg("doctor")
        .arg(&f)
        .arg("--write")
        .arg(&f)
        .env("X", "doctor-cli-token-0123456789abcdef")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is the scenario examined"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
