//! The command line's conventions: shell completions and manual pages generated from it
//! (docs/man is the generated set), and `--json` saying the same thing on every
//! subcommand.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn earshot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_earshot"))
}

/// The pages `earshot man --dir` writes, by file name.
fn generated_pages() -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let out = earshot()
        .arg("man")
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_manual_pages_in_docs_are_the_generated_ones() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man");
    let pages = generated_pages();
    assert!(
        [
            "earshot.1",
            "earshot-run.1",
            "earshot-expect.1",
            "earshot-man.1"
        ]
        .iter()
        .all(|p| pages.contains_key(*p)),
        "{:?}",
        pages.keys()
    );
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
             earshot-harness --test conventions` and commit docs/man"
        );
    }
    // No page of a subcommand that is gone (the probe's pages are its own).
    for e in std::fs::read_dir(&docs).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if !name.starts_with("earshot-probe") {
            assert!(
                pages.contains_key(&name),
                "docs/man/{name} is not generated any more: remove it"
            );
        }
    }
}

#[test]
fn man_without_a_folder_prints_the_main_page() {
    let out = earshot().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") && page.contains(".TH earshot 1"),
        "{page}"
    );
    assert!(page.contains("earshot\\-run(1)"), "{page}");
}

#[test]
fn completions_are_generated_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef earshot"),
        ("fish", "complete -c earshot"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion"),
    ] {
        let out = earshot().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("expect") && script.contains("junit"),
            "{shell}"
        );
    }
    let out = earshot().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

/// The help text of `--json` on `earshot SUBCOMMAND`, or None if it has none.
fn json_help(subcommand: &str) -> Option<String> {
    let out = earshot().args([subcommand, "--help"]).output().unwrap();
    assert!(out.status.success(), "{subcommand}");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    // The option's own line in the Options section, not a mention in a description.
    let at = help.find("\n      --json")?;
    let rest = &help[at..];
    Some(rest[..rest.find("\n  -").unwrap_or(rest.len())].to_string())
}

#[test]
fn every_json_option_says_that_it_is_json_and_where_it_goes() {
    let mut seen = 0;
    for sub in ["expect", "run", "schema", "completions", "man"] {
        if let Some(help) = json_help(sub) {
            seen += 1;
            assert!(
                help.contains("JSON") && help.contains("standard output"),
                "{sub}: {help}"
            );
        }
    }
    assert_eq!(seen, 2, "expect and run have --json");
}

#[test]
fn run_with_json_dash_prints_the_report_on_stdout_and_the_table_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.toml");
    // Nothing listens on the discard port: the run is inconclusive at once.
    std::fs::write(
        &s,
        "name = \"unreachable\"\nproduct = \"avd\"\nchecks = [\"output\"]\n\
         [timeouts]\nconnect = \"1s\"\n\
         [probes.local]\naddress = \"127.0.0.1:9\"\ntoken_env = \"EARSHOT_TEST_NO_TOKEN\"\n\
         [probes.remote]\naddress = \"127.0.0.1:9\"\ntoken_env = \"EARSHOT_TEST_NO_TOKEN\"\n",
    )
    .unwrap();
    let out = earshot()
        .env("EARSHOT_TEST_NO_TOKEN", "x".repeat(32))
        .arg("run")
        .arg(&s)
        .args(["--json", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["scenarios"][0]["name"], "unreachable");
    assert!(report["schema_version"].is_number());
    let table = String::from_utf8_lossy(&out.stderr);
    assert!(table.contains("unreachable"), "{table}");
    assert!(!dir.path().join("-").exists(), "`-` is not a file name");
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_message_carries_a_line_break_turned_into_spaces() {
    // A string continued on the next line without its backslash keeps the indentation:
    // "no PulseAudio server                      answers". Words apart by sixteen spaces or
    // more (a table's columns are closer), inside a line that is not a comment, are that.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["harness/src", "probe/src"] {
        sources(&root.join(dir), &mut files);
    }
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || !code.contains('"') {
                continue;
            }
            let bytes = code.as_bytes();
            let mut run = 0;
            for (i, b) in bytes.iter().enumerate() {
                if *b == b' ' {
                    run += 1;
                    continue;
                }
                if run >= 16
                    && i > run
                    && bytes[i - run - 1].is_ascii_alphabetic()
                    && b.is_ascii_alphabetic()
                {
                    found.push(format!("{}:{}: {code}", f.display(), n + 1));
                    break;
                }
                run = 0;
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
