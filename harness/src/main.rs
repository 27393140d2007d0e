//! `earshot`: did the rollout do what it should? Reads scenarios, works out the expectation
//! from the policy layers, drives both probes, reports with evidence.
//!
//! Exit: 0 every check passed, 1 a check failed, 2 inconclusive or a usage/config error.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use earshot_harness::policy;
use earshot_harness::report::{self, JsonReporter, JunitReporter, Reporter, TerminalReporter};
use earshot_harness::runner::{self, RunOptions};
use earshot_harness::scenario::Scenario;

#[derive(Debug, Parser)]
#[command(
    name = "earshot",
    version,
    about = "Proves audio redirection in remote desktop sessions works as the policy says",
    after_help = "Examples:\n  \
      earshot expect scenarios/rules/avd-gpo-blocks-playback.toml\n  \
      earshot run scenarios/lab/avd-defaults.toml --json out/report.json --junit out/junit.xml --evidence out/evidence\n\n\
      Exit status: 0 all checks passed, 1 a check failed, 2 inconclusive or a usage/config error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints what the policy layers of each scenario say must happen, and why, without
    /// touching a probe.
    Expect {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Runs the scenarios against their probes and reports.
    Run {
        /// Scenario files, run in order.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Write the JSON report here (rewritten after every check).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the JUnit XML report here (rewritten after every check).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Keep evidence (FLAC recordings) of anything but a clean pass in this folder.
        #[arg(long)]
        evidence: Option<PathBuf>,
        /// Base seed of the signatures (default: new each run).
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("earshot: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Expect { scenarios, json } => expect(&scenarios, json),
        Command::Run {
            scenarios,
            json,
            junit,
            evidence,
            seed,
        } => run(scenarios, json, junit, evidence, seed),
    }
}

fn expect(files: &[PathBuf], json: bool) -> anyhow::Result<i32> {
    let mut all = Vec::new();
    for f in files {
        let s = Scenario::load(f)?;
        let e = policy::expect(&s).with_context(|| format!("{}", f.display()))?;
        if json {
            all.push(serde_json::json!({"file": f, "name": s.name, "expectation": e}));
            continue;
        }
        println!("{} ({}, {})", s.name, s.product, f.display());
        println!(
            "  output:  {:?}, decided by {}",
            e.output.value, e.output.decided_by
        );
        for t in &e.output.trail {
            println!("           - {t}");
        }
        println!(
            "  capture: {:?}, decided by {}",
            e.capture.value, e.capture.decided_by
        );
        for t in &e.capture.trail {
            println!("           - {t}");
        }
        println!(
            "  quality: {:?}, decided by {}",
            e.quality.value, e.quality.decided_by
        );
        for w in &e.warnings {
            println!("  warning: {w}");
        }
        for n in &e.notes {
            println!("  note:    {n}");
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(0)
}

fn run(
    files: Vec<PathBuf>,
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    evidence: Option<PathBuf>,
    seed: Option<u64>,
) -> anyhow::Result<i32> {
    for p in [&json, &junit].into_iter().flatten() {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the report folder {}", dir.display()))?;
        }
    }
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut reporters: Vec<Box<dyn Reporter>> =
        vec![Box::new(TerminalReporter::new(stdout, colour))];
    if let Some(p) = json {
        reporters.push(Box::new(JsonReporter::new(p)));
    }
    if let Some(p) = junit {
        reporters.push(Box::new(JunitReporter::new(p)));
    }
    let mut write_errors = Vec::new();
    let mut sink = |e: &report::Event, run: &report::Run| {
        for r in reporters.iter_mut() {
            if let Err(err) = r.event(e, run) {
                write_errors.push(err.to_string());
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = RunOptions {
        evidence_dir: evidence,
        seed,
    };
    let finished = runtime.block_on(runner::run(&files, &options, &mut sink));
    println!("\n{}", report::summary_table(&finished));
    if !write_errors.is_empty() {
        anyhow::bail!("writing a report failed: {}", write_errors.join("; "));
    }
    Ok(finished.exit_code())
}
