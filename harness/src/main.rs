//! `earshot`: did the rollout do what it should? Reads scenarios, works out the expectation
//! from the policy layers, drives both probes, reports with evidence.
//!
//! Exit: 0 every check passed, 1 a check failed, 2 inconclusive or a usage/config error.
//! A closed standard output (`earshot ... | head`) ends the terminal output quietly; the
//! run goes on, the file reports are written and the exit status is still the verdict's.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use earshot_harness::report::{
    self, JsonReporter, JunitReporter, ReportError, Reporter, TerminalReporter,
};
use earshot_harness::runner::{self, RunOptions};

/// Every check passed.
const EXIT_PASS: u8 = 0;
/// At least one check failed.
const EXIT_FAIL: u8 = 1;
/// Inconclusive, or a usage / configuration / setup error.
const EXIT_INCONCLUSIVE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "earshot",
    version,
    about = "Proves audio redirection in remote desktop sessions works as the policy says",
    after_help = "Examples:\n  \
      earshot expect scenarios/rules/avd-gpo-blocks-playback.toml\n  \
      earshot run scenarios/lab/avd-defaults.toml --json out/report.json --junit out/junit.xml --evidence out/evidence\n  \
      earshot run scenarios/lab/*.toml --html out/report.html --evidence out/evidence\n  \
      earshot run scenarios/lab/avd-defaults.toml --json - | jq '.scenarios[].checks[].verdict'\n  \
      earshot completions bash > /etc/bash_completion.d/earshot\n\n\
      --json gives JSON on every command: a flag where the command's output is a document (expect),\n\
      a file where it is a report beside the live table (run; `-` prints it on standard output).\n\n\
      Exit status: 0 all checks passed, 1 a check failed, 2 inconclusive or a usage/config error.\n\
      Scenario keys: docs/scenario-reference.md. JSON report format: docs/report.schema.json."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints what the policy layers of each scenario say must happen, and why, without
    /// touching a probe.
    #[command(after_help = "Examples:\n  \
      earshot expect scenarios/rules/avd-gpo-blocks-playback.toml\n  \
      earshot expect draft.toml --json | jq '.[].expectation.output.value'\n\n\
      Only the policy layers are needed: a draft without [probes] is fine.\n\n\
      Exit status: 0 the expectations were printed, 2 a scenario file cannot be used\n\
      (each error names the file, line and key).")]
    Expect {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Print the expectations as JSON on standard output instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Runs the scenarios against their probes and reports.
    #[command(after_help = "Examples:\n  \
      earshot run rollout.toml --json out/report.json --junit out/junit.xml --html out/report.html\n  \
      earshot run rollout.toml --evidence out/evidence --summary-line\n  \
      earshot run rollout.toml --inventory hosts.csv --concurrency 8 --html out/fleet.html\n\n\
      Exit status: 0 every check passed, 1 a check failed (the rollout is not in effect),\n\
      2 inconclusive (the rig, a probe, or a check that did not run) or a usage or\n\
      configuration error, 130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM: the checks\n\
      decided before it are kept in every report.")]
    Run {
        /// Scenario files, run in order (all are checked before any probe is touched).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        #[command(flatten)]
        reports: ReportFlags,
        /// Keep evidence (FLAC recordings) of anything but a clean pass in this folder.
        #[arg(long)]
        evidence: Option<PathBuf>,
        /// Base seed of the signatures (default: new each run).
        #[arg(long)]
        seed: Option<u64>,
        /// Run every scenario against each session host of this inventory: a .toml
        /// (`[[host]]` with name, address, local), a .csv (name, address, local columns)
        /// or the .json of `az desktopvirtualization sessionhost list`. Hosts without an
        /// address dial in to the scenario's probes.remote.dial_in and are known by the
        /// host name their probe reports.
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// With --inventory: how many hosts run at once (hosts sharing the scenario's
        /// local probe take turns on it whatever this says).
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
        concurrency: u16,
        /// With --inventory: run only share K of N of its hosts (stable: a host's share
        /// depends on its name only); `earshot merge` joins the shares' JSON reports.
        #[arg(long, value_name = "K/N", requires = "inventory")]
        shard: Option<String>,
        /// Print the run in one line (at most 2,048 characters) as the very last line of
        /// standard output: the overall verdict, the counts, the exit code and the first
        /// failing check with its cause. For Intune detection scripts, whose console shows
        /// that line.
        #[arg(long)]
        summary_line: bool,
    },
    /// Joins the JSON reports of several runs (the shards of one fleet run) into one
    /// report, and writes its JSON, JUnit and HTML.
    #[command(after_help = "Example:\n  \
        earshot merge shard-*/report.json --json out/report.json --junit out/junit.xml --html out/report.html\n\n\
        Exit status: as `earshot run` for the joined run (0 all passed, 1 a check failed, 2\n\
        inconclusive, 130 or 143 when a shard was interrupted by SIGINT or SIGTERM), or 2\n\
        when a report cannot be read or two reports hold the same host and scenario.")]
    Merge {
        /// The reports (`earshot run --json`), in any order.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        #[command(flatten)]
        out: ReportFlags,
    },
    /// Compares a run with an earlier one: verdicts that changed, figures that moved past
    /// their thresholds, hosts that vanished or appeared; exit 1 on any regression.
    #[command(after_help = "Example:\n  \
        earshot compare yesterday.json today.json --junit out/compare.xml\n\n\
        A row is one check of one scenario on one session host (the remote probe's host\n\
        name). Regressions: a worse verdict (pass -> inconclusive -> fail), latency up by\n\
        more than --latency-ms, SNR or the quality check's SINAD down by more than --snr-db or\n\
        --sinad-db, the level moved by more than --level-db, continuity breaks up by more\n\
        than --breaks, the quality class down, a row in the base run only (not measured any\n\
        more). Rows in the new run only are reported, not regressions.\n\n\
        Exit status: 0 no regression, 1 a regression, 2 a report that cannot be read.")]
    Compare {
        /// The earlier run's report (`earshot run --json`).
        base: PathBuf,
        /// The run to judge against it.
        new: PathBuf,
        /// Write the comparison as JSON to FILE, or with `-` print it on standard output
        /// instead of the text.
        #[arg(long, value_name = "FILE|-")]
        json: Option<PathBuf>,
        /// Write the comparison as JUnit XML (a failure per regression).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the comparison as a self-contained HTML page.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Latency increase that is a regression, ms.
        #[arg(long, default_value_t = 100.0)]
        latency_ms: f64,
        /// SNR drop that is a regression, dB.
        #[arg(long, default_value_t = 6.0)]
        snr_db: f64,
        /// Level change (either way) that is a regression, dB.
        #[arg(long, default_value_t = 3.0)]
        level_db: f64,
        /// SINAD drop of the quality check that is a regression, dB.
        #[arg(long, default_value_t = 6.0)]
        sinad_db: f64,
        /// Continuity breaks that may be added before it is a regression.
        #[arg(long, default_value_t = 0)]
        breaks: u64,
    },
    /// Examines a scenario's rig before a run: reaches both probes, shows each one's host,
    /// session, audio service and devices with their likely roles, proves the client rig
    /// hears itself (its output loopback, its microphone feed), checks tokens, the control
    /// link and the clocks, and says what is wrong with the scenario keys that fix it.
    #[command(after_help = "Examples:\n  \
        earshot doctor draft.toml\n  \
        earshot doctor draft.toml --write rig.toml    # then add the policy to rig.toml\n\n\
        The rig test plays short signatures on the client's devices (audible on real\n\
        speakers). No check is run and the policy is not read: add it to the written file.\n\n\
        Exit status: 0 the rig is ready for `earshot run`, 1 it is not (each problem is\n\
        listed with its fix), 2 the scenario cannot be used or --write cannot be written.")]
    Doctor {
        /// The scenario whose probes and client rig to examine (a draft without
        /// `mic_feed` is fine: the doctor looks for one).
        scenario: PathBuf,
        /// Write a scenario for the rig found to FILE: the examined one's probes and other
        /// tables, its client rig keys as the doctor proved them, the policy left for you.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
        /// Write the diagnosis as JSON to FILE, or with `-` print it on standard output
        /// instead of the text.
        #[arg(long, value_name = "FILE|-")]
        json: Option<PathBuf>,
    },
    /// Prints the JSON Schema of the run report (`--json`).
    Schema,
    /// Prints the shell completion script for SHELL on standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Prints the manual page (roff) on standard output; with --dir, writes it and one
    /// page per subcommand (earshot-run.1, ...) into DIR.
    Man {
        /// The folder to write earshot.1 and the subcommands' pages to.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The report files of `run` and `merge`, declared once.
#[derive(Debug, clap::Args)]
struct ReportFlags {
    /// Write the JSON report to FILE (rewritten after every event), or with `-` print it
    /// on standard output when the run ends (the live table then goes to standard error).
    #[arg(long, value_name = "FILE|-")]
    json: Option<PathBuf>,
    /// Write the JUnit XML report here (rewritten after every event).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a self-contained HTML report here (rewritten after every event): the
    /// verdict matrix, each check's expectation and decision trail, what was heard, and
    /// a spectrogram of each evidence recording.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the run in Prometheus's text format here (rewritten atomically after every
    /// event): per host, scenario and check the verdict, latency, level and SNR; for a
    /// textfile collector (node_exporter, windows_exporter), a `.prom` file in its folder.
    #[arg(long, value_name = "FILE")]
    prom: Option<PathBuf>,
    /// Write one JSON record per check here (NDJSON, rewritten after every event): time,
    /// host, scenario, check, expected, observed, verdict, cause and figures, for a log
    /// store (a Log Analytics custom table: docs/records.md).
    #[arg(long, value_name = "FILE")]
    ndjson: Option<PathBuf>,
}

impl ReportFlags {
    /// Whether the JSON report goes to standard output (`--json -`).
    fn json_to_stdout(&self) -> bool {
        self.json.as_deref() == Some(Path::new("-"))
    }

    /// Each report file with its option.
    fn files(&self) -> Vec<(&'static str, &Path)> {
        let json = self.json.as_deref().filter(|_| !self.json_to_stdout());
        [
            ("--json", json),
            ("--junit", self.junit.as_deref()),
            ("--html", self.html.as_deref()),
            ("--prom", self.prom.as_deref()),
            ("--ndjson", self.ndjson.as_deref()),
        ]
        .into_iter()
        .filter_map(|(o, p)| p.map(|p| (o, p)))
        .collect()
    }

    /// What is wrong with the report paths, each tried, none created.
    fn problems(&self) -> Vec<String> {
        self.files()
            .into_iter()
            .filter_map(|(option, p)| report::check_output_path(option, p).err())
            .map(|e| e.to_string())
            .collect()
    }

    /// The reports' folders made, and a reporter for each file.
    fn reporters(&self) -> anyhow::Result<Vec<Box<dyn Reporter>>> {
        let mut out: Vec<Box<dyn Reporter>> = Vec::new();
        for (option, p) in self.files() {
            report::make_output_folders(option, p)?;
            let p = p.to_path_buf();
            out.push(match option {
                "--json" => Box::new(JsonReporter::new(p)),
                "--junit" => Box::new(JunitReporter::new(p)),
                "--html" => Box::new(report::HtmlReporter::new(p)),
                "--prom" => Box::new(report::RenderedReporter::prometheus(p)),
                _ => Box::new(report::RenderedReporter::ndjson(p)),
            });
        }
        Ok(out)
    }
}

/// `earshot compare`.
fn compare(
    base: &std::path::Path,
    new: &std::path::Path,
    thresholds: &earshot_harness::compare::Thresholds,
    json: Option<PathBuf>,
    (junit, html): (Option<PathBuf>, Option<PathBuf>),
) -> anyhow::Result<u8> {
    use earshot_harness::compare;
    let b = compare::load(base)?;
    let n = compare::load(new)?;
    let c = compare::compare((base, &b), (new, &n), thresholds);
    let doc = serde_json::to_string_pretty(&c)?;
    match json.as_deref() {
        Some(p) if p == std::path::Path::new("-") => {
            quietly(writeln!(std::io::stdout(), "{doc}"))?;
        }
        Some(p) => {
            std::fs::write(p, format!("{doc}\n"))
                .with_context(|| format!("writing the comparison to {}", p.display()))?;
            quietly(write!(std::io::stdout(), "{}", c.text()))?;
        }
        None => quietly(write!(std::io::stdout(), "{}", c.text()))?,
    }
    if let Some(p) = junit {
        std::fs::write(&p, c.junit())
            .with_context(|| format!("writing the JUnit comparison to {}", p.display()))?;
    }
    if let Some(p) = html {
        std::fs::write(&p, c.html())
            .with_context(|| format!("writing the HTML comparison to {}", p.display()))?;
    }
    Ok(if c.regressions > 0 {
        EXIT_FAIL
    } else {
        EXIT_PASS
    })
}

/// `earshot merge`: the runs of several reports as one.
fn merge(files: &[PathBuf], out: ReportFlags) -> anyhow::Result<u8> {
    let mut runs = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let head: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{}: not JSON; expected a report of `earshot run --json`",
                f.display()
            )
        })?;
        let version = head["schema_version"].as_u64();
        if version != Some(u64::from(report::SCHEMA_VERSION)) {
            anyhow::bail!(
                "{}: a report of schema {}; this earshot ({}) joins schema {} only: merge the \
                 reports of one earshot version",
                f.display(),
                version.map_or("(none)".into(), |v| v.to_string()),
                env!("CARGO_PKG_VERSION"),
                report::SCHEMA_VERSION
            );
        }
        let run: report::Run = serde_json::from_value(head)
            .with_context(|| format!("{}: not a report of `earshot run --json`", f.display()))?;
        runs.push((f, run));
    }
    let joined = report::merge::join(
        runs.into_iter()
            .map(|(f, run)| (f.to_path_buf(), run))
            .collect(),
    )?;
    let last = report::Event::Waiting("merged".into());
    let to_stdout = out.json_to_stdout();
    let problems = out.problems();
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    let mut files_out = out.reporters()?;
    for r in files_out.iter_mut() {
        r.event(&last, &joined)?;
    }
    if to_stdout {
        let text = serde_json::to_string_pretty(&joined).context("encoding the JSON report")?;
        quietly(writeln!(std::io::stdout(), "{text}"))?;
    } else {
        quietly(write!(std::io::stdout(), "{}", report::closing(&joined)))?;
    }
    Ok(run_exit(&joined))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Warnings (a probe turned away, a reporter that could not write) on standard error;
    // EARSHOT_LOG=debug says more (each check's listen window and what it rests on).
    earshot_probe::init_logging("warn");
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("earshot: error: {e:#}");
            ExitCode::from(EXIT_INCONCLUSIVE)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Expect { scenarios, json } => expect(&scenarios, json),
        Command::Run {
            scenarios,
            reports,
            evidence,
            seed,
            inventory,
            concurrency,
            shard,
            summary_line,
        } => {
            let fleet = match inventory {
                None => None,
                Some(file) => Some(fleet(&file, concurrency, shard.as_deref())?),
            };
            run(scenarios, reports, evidence, seed, fleet, summary_line)
        }
        Command::Merge { reports, out } => merge(&reports, out),
        Command::Doctor {
            scenario,
            write,
            json,
        } => doctor(&scenario, write.as_deref(), json.as_deref()),
        Command::Compare {
            base,
            new,
            json,
            junit,
            html,
            latency_ms,
            snr_db,
            level_db,
            sinad_db,
            breaks,
        } => {
            for (flag, v) in [
                ("--latency-ms", latency_ms),
                ("--snr-db", snr_db),
                ("--level-db", level_db),
                ("--sinad-db", sinad_db),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    anyhow::bail!("{flag} {v}: expected 0 or more");
                }
            }
            let thresholds = earshot_harness::compare::Thresholds {
                latency_ms,
                snr_db,
                level_db,
                sinad_db,
                breaks,
            };
            compare(&base, &new, &thresholds, json, (junit, html))
        }
        Command::Schema => {
            let text = serde_json::to_string_pretty(&report::json_schema())?;
            quietly(writeln!(std::io::stdout(), "{text}"))?;
            Ok(EXIT_PASS)
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "earshot", &mut script);
            quietly(std::io::stdout().write_all(&script))?;
            Ok(EXIT_PASS)
        }
        Command::Man { dir: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .context("rendering the manual page")?;
            quietly(std::io::stdout().write_all(&page))?;
            Ok(EXIT_PASS)
        }
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing the manual pages to {}", dir.display()))?;
            Ok(EXIT_PASS)
        }
    }
}

/// A closed stdout is not an error worth a message: the reader has gone.
fn quietly(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to standard output"),
    }
}

fn expect(files: &[PathBuf], json: bool) -> anyhow::Result<u8> {
    // The policy layers are all `expect` needs: a draft without its probes is fine.
    let prepared = match runner::prepare_for(files, earshot_harness::scenario::Purpose::Expect) {
        Ok(p) => p,
        Err(errors) => return Ok(setup_failed(&errors)),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let all: Vec<_> = prepared
            .iter()
            .map(|p| {
                serde_json::json!({
                    "file": p.scenario.path,
                    "name": p.scenario.name,
                    "expectation": p.expectation
                })
            })
            .collect();
        quietly(writeln!(out, "{}", serde_json::to_string_pretty(&all)?))?;
        return Ok(EXIT_PASS);
    }
    let text: String = prepared
        .iter()
        .map(|p| report::expectation_text(&p.scenario, &p.expectation))
        .collect();
    quietly(out.write_all(text.as_bytes()))?;
    Ok(EXIT_PASS)
}

/// Prints every setup error, once each, and returns the exit status for them.
fn setup_failed(errors: &[runner::SetupError]) -> u8 {
    for e in errors {
        eprintln!("earshot: error: {e}");
    }
    eprintln!(
        "earshot: {} scenario file(s) cannot be used; nothing was run",
        errors.len()
    );
    EXIT_INCONCLUSIVE
}

/// The fleet of `--inventory FILE [--shard K/N]`.
fn fleet(file: &Path, concurrency: u16, shard: Option<&str>) -> anyhow::Result<runner::Fleet> {
    use earshot_harness::inventory::{Inventory, Shard};
    let inventory = Inventory::load(file)?;
    let shard = match shard {
        Some(s) => Shard::parse(s)?,
        None => Shard::ALL,
    };
    let hosts = inventory.shard(shard);
    if hosts.is_empty() {
        anyhow::bail!(
            "--shard {shard}: none of the {} hosts of {} falls in this share; use fewer \
             shares than hosts",
            inventory.hosts.len(),
            file.display()
        );
    }
    Ok(runner::Fleet {
        inventory: file.to_path_buf(),
        hosts,
        concurrency: usize::from(concurrency),
        shard,
    })
}

/// How often a fleet run rewrites its report files (and always at the end): a file
/// rewritten after each of thousands of events would cost more than the run.
const FLEET_REWRITE: std::time::Duration = std::time::Duration::from_secs(2);

fn run(
    files: Vec<PathBuf>,
    reports: ReportFlags,
    evidence: Option<PathBuf>,
    seed: Option<u64>,
    fleet: Option<runner::Fleet>,
    summary_line: bool,
) -> anyhow::Result<u8> {
    // `--json -`: the report on standard output at the end, the live table on standard error.
    let json_to_stdout = reports.json_to_stdout();
    // Everything that can be checked is checked before a probe is touched.
    let mut problems = reports.problems();
    if let Some(dir) = &evidence {
        if dir.exists() && !dir.is_dir() {
            problems.push(format!(
                "--evidence {}: is a file; give a folder",
                dir.display()
            ));
        }
    }
    let prepared = match runner::prepare(&files) {
        Ok(p) => p,
        Err(errors) => {
            for p in &problems {
                eprintln!("earshot: error: {p}");
            }
            return Ok(setup_failed(&errors));
        }
    };
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    // The run starts: the reports' folders are made now, not for a refused run.
    let mut files = reports.reporters()?;
    let (live, is_terminal): (Box<dyn Write>, bool) = if json_to_stdout {
        let stderr = std::io::stderr();
        let t = stderr.is_terminal();
        (Box::new(stderr), t)
    } else {
        let stdout = std::io::stdout();
        let t = stdout.is_terminal();
        (Box::new(stdout), t)
    };
    let colour = is_terminal && std::env::var_os("NO_COLOR").is_none();
    let mut terminal: Option<TerminalReporter<_>> = Some(TerminalReporter::new(live, colour));
    let mut write_errors: Vec<String> = Vec::new();
    let is_fleet = fleet.is_some();
    let mut written = std::time::Instant::now();
    // A fleet run on a terminal shows a progress bar (standard error) in place of the
    // "[k/N] host done" lines; the host blocks print above it.
    let bar = fleet
        .as_ref()
        .filter(|_| std::io::stderr().is_terminal())
        .map(|f| {
            let bar = indicatif::ProgressBar::new((prepared.len() * f.hosts.len()) as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:32} {pos}/{len} hosts and scenarios, {elapsed} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
    let mut sink = |e: &report::Event, run: &report::Run| {
        if let (Some(bar), report::Event::Progress { host, done, .. }) = (&bar, e) {
            bar.set_position(*done as u64);
            bar.set_message(format!("(last: {host})"));
        } else if let Some(t) = terminal.as_mut() {
            let said = match &bar {
                Some(bar) => bar.suspend(|| t.event(e, run)),
                None => t.event(e, run),
            };
            match said {
                Ok(()) => {}
                // The reader went away: stop writing to it, keep measuring.
                Err(ReportError::Closed) => terminal = None,
                Err(err) => write_errors.push(err.to_string()),
            }
        }
        // A fleet run's files are rewritten after a host, at most every FLEET_REWRITE.
        let due = !is_fleet
            || (matches!(e, report::Event::Progress { .. }) && written.elapsed() >= FLEET_REWRITE);
        if due {
            written = std::time::Instant::now();
            for r in files.iter_mut() {
                if let Err(err) = r.event(e, run) {
                    write_errors.push(err.to_string());
                }
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let interrupt = runner::Interrupt::new();
    runtime.spawn(runner::watch_signals(interrupt.clone()));
    let options = RunOptions {
        evidence_dir: evidence,
        seed,
        fleet,
        interrupt,
    };
    let finished = runtime.block_on(runner::run(&prepared, &options, &mut sink));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if is_fleet {
        let last = report::Event::Waiting("the run is over".into());
        for r in files.iter_mut() {
            if let Err(err) = r.event(&last, &finished) {
                write_errors.push(err.to_string());
            }
        }
    }
    if let Some(t) = terminal.as_mut() {
        match t.finish(&finished) {
            Ok(()) | Err(ReportError::Closed) => {}
            Err(err) => write_errors.push(err.to_string()),
        }
    }
    if json_to_stdout {
        let text = serde_json::to_string_pretty(&finished).context("encoding the JSON report")?;
        quietly(writeln!(std::io::stdout(), "{text}"))?;
    }
    write_errors.dedup();
    if summary_line {
        // Last on standard output, whatever else was written there.
        quietly(writeln!(std::io::stdout(), "{}", finished.summary_line()))?;
    }
    if !write_errors.is_empty() {
        anyhow::bail!("writing a report failed: {}", write_errors.join("; "));
    }
    Ok(run_exit(&finished))
}

/// `bytes` written to `path` (its folder made first), for `option`.
fn write_file(option: &str, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{option} {}: creating {}", path.display(), dir.display()))?;
    }
    report::write_atomically(path, bytes)
        .with_context(|| format!("writing {option} {}", path.display()))
}

/// `earshot doctor`: the rig examined, its diagnosis printed (or as JSON), and with
/// `write` the scenario for the rig found. 0 ready, 1 not, 2 unusable input.
fn doctor(file: &Path, write: Option<&Path>, json: Option<&Path>) -> anyhow::Result<u8> {
    use earshot_harness::scenario::{Purpose, Scenario};
    let s = match Scenario::load_for(file, Purpose::Doctor) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("earshot: error: {e}");
            return Ok(EXIT_INCONCLUSIVE);
        }
    };
    let mut problems = Vec::new();
    if let Some(w) = write {
        if std::path::absolute(w).ok() == std::path::absolute(file).ok() {
            problems.push(format!(
                "--write {}: is the scenario examined; give another file (the written one \
                 leaves the policy out)",
                w.display()
            ));
        } else if let Err(e) = report::check_output_path("--write", w) {
            problems.push(e.to_string());
        }
    }
    let json_to_stdout = json == Some(Path::new("-"));
    if let Some(j) = json.filter(|_| !json_to_stdout) {
        if let Err(e) = report::check_output_path("--json", j) {
            problems.push(e.to_string());
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut emit = |e: report::Event| {
        if let report::Event::Waiting(m) = e {
            eprintln!("earshot: {m}");
        }
    };
    let diagnosis = runtime.block_on(runner::diagnose(&s, &mut emit));
    if json_to_stdout {
        let text = serde_json::to_string_pretty(&diagnosis).context("encoding the diagnosis")?;
        quietly(writeln!(std::io::stdout(), "{text}"))?;
    } else {
        quietly(write!(std::io::stdout(), "{}", diagnosis.render()))?;
    }
    if let Some(j) = json.filter(|_| !json_to_stdout) {
        let text = serde_json::to_string_pretty(&diagnosis).context("encoding the diagnosis")?;
        write_file("--json", j, text.as_bytes())?;
    }
    if let Some(w) = write {
        // Read as the scenario was (UTF-8 or UTF-16, as Windows tools save it): its other
        // tables are carried into the written file.
        let original = earshot_harness::text::read_input(file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| earshot_harness::text::decode(&bytes).map_err(|e| e.to_string()))
            .map_err(|e| {
                anyhow::anyhow!("{}: reading it again for --write: {e}", file.display())
            })?;
        let text = diagnosis.scenario_toml(&s, &original);
        write_file("--write", w, text.as_bytes())?;
        let note = if diagnosis.probes.iter().any(|p| p.role == "local") {
            "with the client rig keys it found"
        } else {
            "with the client rig keys as given: the local probe was not reached to test them"
        };
        let say = format!(
            "wrote {} {note}; add its policy, then `earshot doctor {0}` and `earshot run {0}`",
            w.display()
        );
        if json_to_stdout {
            eprintln!("earshot: {say}");
        } else {
            quietly(writeln!(std::io::stdout(), "{say}"))?;
        }
    }
    Ok(if diagnosis.ready() {
        EXIT_PASS
    } else {
        EXIT_FAIL
    })
}

/// The process's exit status for `run`, as its tally gives it: the one mapping `run` and
/// `merge` share.
fn run_exit(run: &report::Run) -> u8 {
    match run.exit_code() {
        0 => EXIT_PASS,
        1 => EXIT_FAIL,
        // Interrupted by SIGINT (130) or SIGTERM (143), as shells report a signal's end.
        code @ (130 | 143) => code as u8,
        _ => EXIT_INCONCLUSIVE,
    }
}
