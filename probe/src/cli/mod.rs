//! The probe's command line: argument parsing and the device subcommands.
//!
//! Exit codes: 0 success, 2 any error (printed with its context chain).

mod agent;
mod offline;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use std::time::Duration;

use earshot_probe::audio::{
    backend, AudioErrorKind, CancelFlag, CaptureOptions, DeviceSelector, HostChoice,
};
use earshot_probe::signal::{Direction, Signature};
use earshot_probe::wav::{self, WavEncoding};

/// Host choice as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum HostArg {
    Auto,
    Pulseaudio,
    Alsa,
    Wasapi,
    Coreaudio,
}

impl From<HostArg> for HostChoice {
    fn from(h: HostArg) -> HostChoice {
        match h {
            HostArg::Auto => HostChoice::Auto,
            HostArg::Pulseaudio => HostChoice::PulseAudio,
            HostArg::Alsa => HostChoice::Alsa,
            HostArg::Wasapi => HostChoice::Wasapi,
            HostArg::Coreaudio => HostChoice::CoreAudio,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "earshot-probe",
    version,
    about = "Plays, records and detects seeded tone signatures to prove audio redirection works",
    after_help = "Examples:\n  \
      earshot-probe synth --seed 42 --direction output -o sig.wav\n  \
      earshot-probe analyze recording.wav --seed 42 --direction output --json\n  \
      earshot-probe impair sig.wav -o noisy.wav --snr-db -10 --drift-ppm 300\n  \
      earshot-probe devices\n  \
      earshot-probe info\n  \
      earshot-probe listen --device loopback:speakers --seed 42 --direction output --timeout 10\n  \
      earshot-probe play --device default --seed 42 --direction output\n  \
      earshot-probe completions zsh > ~/.zfunc/_earshot-probe\n\n\
      --json (devices, listen, selftest, analyze) prints one JSON document on standard output\n\
      instead of text.\n\n\
      Exit status: 0 detected / done, 1 not detected, 2 error."
)]
struct Cli {
    /// Audio host: auto picks PulseAudio when a server answers, else the platform default.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    host: HostArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Offline(offline::OfflineCommand),
    #[command(flatten)]
    Agent(agent::AgentCommand),
    /// Prints, as JSON, what the probe answers a harness's `info`: version, session, the
    /// device catalogue, and the host's configuration (on Windows the audio policy
    /// registry values with their keys' write times, boot time, services, session
    /// protocol; on an xrdp host its xrdp.ini channel switches).
    Info,
    /// Lists the host's devices.
    Devices {
        /// Print a JSON array of devices on standard output instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Plays a signature (or, with --tone-hz, a plain sine) on an output device.
    Play {
        /// `default`, an id, a name, or a unique substring.
        #[arg(long, default_value = "default")]
        device: String,
        /// Seed of the signature.
        #[arg(long, required_unless_present = "tone_hz")]
        seed: Option<u64>,
        /// Direction the signature proves (e.g. output, input).
        #[arg(long, required_unless_present = "tone_hz")]
        direction: Option<String>,
        /// Play a sine of this frequency instead of a signature (a device check).
        #[arg(long, conflicts_with_all = ["seed", "direction"])]
        tone_hz: Option<f32>,
        /// Length of the sine.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
    },
    /// Listens for a signature until it is found or the timeout passes.
    /// Exit 0 detected, 1 silent, 2 anything else.
    Listen {
        /// `default`, an id, a name, a unique substring, or `loopback:<output>`.
        #[arg(long, default_value = "default")]
        device: String,
        /// Seed of the signature.
        #[arg(long)]
        seed: u64,
        /// Direction the signature proves.
        #[arg(long)]
        direction: String,
        /// Give up after listening this long, counted from the device's first audio:
        /// seconds, or with a unit (`10s`, `500ms`).
        #[arg(long, default_value = "10", value_parser = parse_duration)]
        timeout: Duration,
        /// Print one JSON object on standard output instead of text.
        #[arg(long)]
        json: bool,
        /// Write what was heard to this WAV file.
        #[arg(long)]
        evidence: Option<std::path::PathBuf>,
    },
    /// Plays a signature on one device while listening on another: the single-machine
    /// check of a rig (e.g. speakers into their loopback). Reports latency, level and SNR.
    /// Exit 0 heard, 1 not heard, 2 anything else.
    Selftest {
        /// Output device to play on.
        #[arg(long, default_value = "default")]
        output: String,
        /// Input device to listen on, e.g. `loopback:default` or a microphone.
        #[arg(long, default_value = "loopback:default")]
        input: String,
        /// Seed of the signature.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Give up after this long: seconds, or with a unit (`10s`, `500ms`).
        #[arg(long, default_value = "5", value_parser = parse_duration)]
        timeout: Duration,
        /// Print one JSON object on standard output instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Records from an input device for a fixed time and reports its level.
    Record {
        /// `default`, an id, a name, a unique substring, or `loopback:<output>`.
        #[arg(long, default_value = "default")]
        device: String,
        /// How long to record.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Write the recording to this WAV file.
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
    /// Prints the shell completion script for SHELL on standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Prints the manual page (roff) on standard output; with --dir, writes it and one
    /// page per subcommand (earshot-probe-listen.1, ...) into DIR.
    Man {
        /// The folder to write the pages to.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// Parses the arguments, runs the subcommand, and returns the exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("earshot-probe: {e:#}");
            2
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let host: HostChoice = cli.host.into();
    match cli.command {
        Command::Offline(c) => offline::run(c),
        Command::Agent(c) => agent::run(c, host),
        Command::Info => info(host),
        Command::Devices { json } => devices(host, json),
        Command::Play {
            device,
            seed,
            direction,
            tone_hz,
            seconds,
        } => play(host, &device, seed, direction, tone_hz, seconds),
        Command::Listen {
            device,
            seed,
            direction,
            timeout,
            json,
            evidence,
        } => listen(host, &device, seed, &direction, timeout, json, evidence),
        Command::Selftest {
            output,
            input,
            seed,
            timeout,
            json,
        } => selftest(host, &output, &input, seed, timeout, json),
        Command::Record {
            device,
            seconds,
            output,
        } => record(host, &device, seconds, output),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "earshot-probe",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Man { dir: None } => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .context("writing the manual page")?;
            Ok(0)
        }
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing the manual pages to {}", dir.display()))?;
            Ok(0)
        }
    }
}

fn info(host: HostChoice) -> anyhow::Result<i32> {
    use earshot_probe::server::Handler;
    // The agent's default capture limit: this is what `serve` would answer.
    let handler = earshot_probe::server::device::DeviceHandler::new(host, Duration::from_secs(60));
    let doc = serde_json::to_value(handler.info()).context("encoding the probe's info")?;
    println!(
        "{}",
        serde_json::to_string_pretty(&info_for_people(doc)).context("encoding the probe's info")?
    );
    Ok(0)
}

/// `info`'s JSON as a person or a script reads it: the fields that are a value or the
/// reason there is none (`audio_host`, `devices`) become the value, or null beside a
/// `<field>_error` that says why, instead of the wire's `{"Ok": ...}` / `{"Err": ...}`.
fn info_for_people(mut doc: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let Value::Object(map) = &mut doc else {
        return doc;
    };
    for field in ["audio_host", "devices"] {
        let Some(Value::Object(result)) = map.get(field).cloned() else {
            continue;
        };
        if let Some(ok) = result.get("Ok") {
            map.insert(field.to_string(), ok.clone());
        } else if let Some(err) = result.get("Err") {
            map.insert(field.to_string(), Value::Null);
            map.insert(format!("{field}_error"), err.clone());
        }
    }
    doc
}

fn devices(host: HostChoice, json: bool) -> anyhow::Result<i32> {
    let list =
        backend::catalog(host).with_context(|| format!("listing devices of host {host:?}"))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).context("encoding the catalogue")?
        );
        return Ok(0);
    }
    let name = backend::host_name(host).with_context(|| format!("opening host {host:?}"))?;
    println!("host: {name}");
    for d in &list {
        let dir = match d.direction {
            earshot_probe::audio::DeviceDirection::Output => "out",
            earshot_probe::audio::DeviceDirection::Input => "in ",
        };
        let flags = format!(
            "{}{}",
            if d.is_default { "D" } else { "-" },
            if d.is_monitor { "M" } else { "-" }
        );
        let fmt = d.default_format.as_ref().map_or_else(
            || "?".to_string(),
            |f| {
                format!(
                    "{} Hz {} ch {}",
                    f.sample_rate_hz, f.channels, f.sample_format
                )
            },
        );
        println!("{dir} {flags} {:<40} {:<36} {fmt}", d.id, d.name);
    }
    Ok(0)
}

fn dbfs(x: f32) -> f64 {
    20.0 * f64::from(x.max(1e-10)).log10()
}

fn record(
    host: HostChoice,
    device: &str,
    seconds: f64,
    output: Option<std::path::PathBuf>,
) -> anyhow::Result<i32> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        anyhow::bail!("--seconds must be in (0, 3600], got {seconds}");
    }
    let selector = DeviceSelector::parse(device);
    let options = CaptureOptions {
        timeout: Duration::from_secs_f64(seconds),
        keep_audio: true,
    };
    let (report, audio) = backend::record(host, &selector, &options, &CancelFlag::new())
        .with_context(|| format!("recording from device `{device}`"))?;
    let peak = audio.samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let rms = (audio.samples.iter().map(|x| x * x).sum::<f32>()
        / audio.samples.len().max(1) as f32)
        .sqrt();
    println!("device: {} ({})", report.device.id, report.device.name);
    println!(
        "format: {} Hz, {} ch, {}",
        report.format.sample_rate_hz, report.format.channels, report.format.sample_format
    );
    println!("recorded: {:.0} ms", report.recorded_ms);
    println!(
        "level: peak {:.1} dBFS, rms {:.1} dBFS",
        dbfs(peak),
        dbfs(rms)
    );
    println!(
        "health: dropped {} samples, xruns {}, errors {:?}",
        report.health.dropped_samples, report.health.xruns, report.health.stream_errors
    );
    if let Some(path) = output {
        wav::write(&path, &audio, WavEncoding::F32)
            .with_context(|| format!("writing the recording to {}", path.display()))?;
        println!("wrote: {}", path.display());
    }
    Ok(0)
}

fn play(
    host: HostChoice,
    device: &str,
    seed: Option<u64>,
    direction: Option<String>,
    tone_hz: Option<f32>,
    seconds: f64,
) -> anyhow::Result<i32> {
    let selector = DeviceSelector::parse(device);
    let cancel = CancelFlag::new();
    let report = if let Some(hz) = tone_hz {
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 600.0) {
            anyhow::bail!("--seconds must be in (0, 600], got {seconds}");
        }
        backend::play_rendered(
            host,
            &selector,
            move |rate| {
                let n = (seconds * f64::from(rate)) as usize;
                let w = std::f32::consts::TAU * hz / rate as f32;
                Ok((0..n).map(|i| 0.5 * (w * i as f32).sin()).collect())
            },
            &cancel,
        )
    } else {
        let (Some(seed), Some(dir)) = (seed, direction) else {
            anyhow::bail!("play needs --seed and --direction, or --tone-hz");
        };
        let dir: Direction = dir
            .parse()
            .with_context(|| format!("parsing --direction `{dir}`"))?;
        backend::play(host, &selector, &Signature::new(seed, dir), &cancel)
    }
    .with_context(|| format!("playing on device `{device}`"))?;
    println!(
        "played: {:.0} ms on {} ({})",
        report.played_ms, report.device.id, report.device.name
    );
    println!("started_unix_ms: {:.1}", report.started_unix_ms);
    for e in &report.health.stream_errors {
        println!("warning: {e}");
    }
    Ok(0)
}

/// Parses `10`, `2.5`, `10s` or `500ms` into a duration in (0, 1 h].
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = t.strip_suffix('s') {
        (s, 1.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!("`{text}` is not a duration: expected seconds such as `10`, `2.5s` or `500ms`")
    })?;
    let seconds = value * scale;
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!(
            "`{text}` is out of range: expected more than 0 and at most 1 hour"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn listen(
    host: HostChoice,
    device: &str,
    seed: u64,
    direction: &str,
    timeout: Duration,
    json: bool,
    evidence: Option<std::path::PathBuf>,
) -> anyhow::Result<i32> {
    let dir: Direction = direction
        .parse()
        .with_context(|| format!("parsing --direction `{direction}`"))?;
    let options = CaptureOptions {
        timeout,
        keep_audio: evidence.is_some(),
    };
    // The armed line tells a script (or a test) when it may start the player.
    let result = earshot_probe::analysis::listen::listen_with(
        host,
        &DeviceSelector::parse(device),
        &Signature::new(seed, dir),
        &options,
        &CancelFlag::new(),
        |info| eprintln!("earshot-probe: listening on {} ({})", info.id, info.name),
    );
    let (outcome, code) = match &result {
        Ok((r, _)) if r.analysis.detected => ("detected", 0),
        Ok(_) => ("silent", 1),
        Err(e) if e.kind == AudioErrorKind::NoDevice => ("no_device", 2),
        Err(_) => ("error", 2),
    };
    if let (Ok((_, Some(audio))), Some(path)) = (&result, &evidence) {
        wav::write(path, audio, WavEncoding::F32)
            .with_context(|| format!("writing evidence to {}", path.display()))?;
    }
    if json {
        let (report, error) = match &result {
            Ok((r, _)) => (Some(r), None),
            Err(e) => (None, Some(e)),
        };
        let v = serde_json::json!({"outcome": outcome, "report": report, "error": error});
        println!("{v}");
        return Ok(code);
    }
    match &result {
        Ok((r, _)) => {
            println!("device: {} ({})", r.device.id, r.device.name);
            println!(
                "verdict: {outcome} (channel {} of {}, numbered from 1)",
                r.channel, r.format.channels
            );
            if !r.analysis.detected && r.analysis.rms_dbfs > -60.0 {
                println!(
                    "note: the input carried sound ({:.1} dBFS RMS) but not this signature \
                     ({}/16 symbols recognised): a different sound, or a path too degraded \
                     to carry it",
                    r.analysis.rms_dbfs, r.analysis.symbols_matched
                );
            }
            print_heard(r);
        }
        Err(e) => eprintln!("earshot-probe: listening on device `{device}`: {e}"),
    }
    Ok(code)
}

fn print_heard(r: &earshot_probe::audio::ListenReport) {
    let a = &r.analysis;
    let num = |x: Option<f64>, unit: &str| x.map_or("-".to_string(), |v| format!("{v:.1} {unit}"));
    println!(
        "onset: {} into the stream, level: {}, median SNR: {}, {}/16 symbols clear",
        num(a.onset_ms, "ms"),
        num(a.level_dbfs, "dBFS"),
        num(a.median_snr_db(), "dB"),
        a.symbols_matched
    );
    if !a.dropouts.is_empty() {
        println!("dropouts: {:?}", a.dropouts);
    }
    println!(
        "elapsed: {:.0} ms (audio after {}), xruns {}, dropped {} samples",
        r.elapsed_ms,
        num(r.armed_ms, "ms"),
        r.health.xruns,
        r.health.dropped_samples
    );
    for e in &r.health.stream_errors {
        println!("warning: {e}");
    }
}

/// Plays on `output` once `input` is armed, and reports what `input` heard.
fn selftest(
    host: HostChoice,
    output: &str,
    input: &str,
    seed: u64,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<i32> {
    let signature = Signature::new(seed, Direction::Output);
    let options = CaptureOptions {
        timeout,
        keep_audio: false,
    };
    let (armed_tx, armed_rx) = std::sync::mpsc::channel();
    let cancel = CancelFlag::new();
    let listener = {
        let (sig, sel, cancel) = (
            signature.clone(),
            DeviceSelector::parse(input),
            cancel.clone(),
        );
        std::thread::Builder::new()
            .name("earshot-selftest-listen".into())
            .spawn(move || {
                earshot_probe::analysis::listen::listen_with(
                    host,
                    &sel,
                    &sig,
                    &options,
                    &cancel,
                    move |_| {
                        let _ = armed_tx.send(());
                    },
                )
            })
            .context("starting the listening thread")?
    };
    // Wait for the input to deliver audio (or fail) before playing.
    let armed = armed_rx.recv_timeout(timeout).is_ok();
    let played = if armed {
        Some(
            backend::play(host, &DeviceSelector::parse(output), &signature, &cancel)
                .with_context(|| format!("playing on output `{output}`")),
        )
    } else {
        None
    };
    if let Some(Err(_)) = &played {
        cancel.cancel();
    }
    let heard = listener
        .join()
        .map_err(|_| anyhow::anyhow!("the listening thread panicked"))?
        .with_context(|| format!("listening on input `{input}`"))?;
    let played = match played {
        Some(p) => p?,
        None => anyhow::bail!(
            "input `{input}` delivered no audio within {} ms; nothing was played",
            timeout.as_millis()
        ),
    };
    let (report, _) = heard;
    let latency_ms = report
        .onset_unix_ms
        .map(|onset| (onset - played.started_unix_ms).max(0.0));
    let code = if report.analysis.detected { 0 } else { 1 };
    if json {
        let v = serde_json::json!({
            "outcome": if code == 0 { "detected" } else { "silent" },
            "latency_ms": latency_ms,
            "played": played,
            "heard": report,
        });
        println!("{v}");
        return Ok(code);
    }
    println!(
        "played on: {} ({}), heard on: {} ({})",
        played.device.id, played.device.name, report.device.id, report.device.name
    );
    match latency_ms {
        Some(l) => println!("verdict: detected, latency {l:.0} ms"),
        None => println!(
            "verdict: NOT detected within {} ms: check that `{input}` hears `{output}` \
             (volume, mute, the loopback's source)",
            timeout.as_millis()
        ),
    }
    print_heard(&report);
    Ok(code)
}
