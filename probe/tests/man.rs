//! The probe's command line conventions: manual pages generated from it (docs/man holds
//! the generated set), shell completions, and `--json` saying the same thing everywhere.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;

fn probe() -> Command {
    Command::cargo_bin("earshot-probe").expect("the earshot-probe binary is built")
}

#[test]
fn the_manual_pages_in_docs_are_the_generated_ones() {
    let dir = tempfile::tempdir().unwrap();
    probe()
        .arg("man")
        .arg("--dir")
        .arg(dir.path())
        .assert()
        .success();
    let pages: BTreeMap<String, Vec<u8>> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    for p in [
        "earshot-probe.1",
        "earshot-probe-listen.1",
        "earshot-probe-token-new.1",
    ] {
        assert!(pages.contains_key(p), "{p}: {:?}", pages.keys());
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man");
    if std::env::var_os("EARSHOT_BLESS").is_some() {
        std::fs::create_dir_all(&docs).unwrap();
        for (name, bytes) in &pages {
            std::fs::write(docs.join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in &pages {
        let committed = std::fs::read(docs.join(name)).unwrap_or_default();
        assert!(
            &committed == bytes,
            "docs/man/{name} is stale or missing: run `EARSHOT_BLESS=1 cargo test -p \
             earshot-probe --test man` and commit docs/man"
        );
    }
    for e in std::fs::read_dir(&docs).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("earshot-probe") {
            assert!(
                pages.contains_key(&name),
                "docs/man/{name} is not generated any more: remove it"
            );
        }
    }
}

#[test]
fn completions_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = probe().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("earshot-probe") && script.contains("selftest"),
            "{shell}"
        );
    }
}

#[test]
fn every_json_flag_prints_json_on_standard_output() {
    let mut with_json = Vec::new();
    for sub in [
        "synth",
        "analyze",
        "impair",
        "serve",
        "connect",
        "token",
        "devices",
        "play",
        "listen",
        "selftest",
        "record",
        "completions",
        "man",
    ] {
        let out = probe().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub}");
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        let Some(at) = help.find("\n      --json") else {
            continue;
        };
        // The flag's line and its description: on the same line, or on the lines below
        // it, indented further (clap's long layout).
        let mut lines = help[at + 1..].lines();
        let mut line = lines.next().unwrap_or_default().to_string();
        for more in lines.take_while(|l| l.starts_with("          ")) {
            line.push_str(more);
        }
        assert!(
            line.contains("JSON") && line.contains("on standard output"),
            "{sub}: {line}"
        );
        with_json.push(sub);
    }
    assert_eq!(with_json, ["analyze", "devices", "listen", "selftest"]);
}
