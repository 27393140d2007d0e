//! The probe's command line: argument parsing and the device subcommands.
//!
//! Exit codes: 0 success, 2 any error (printed with its context chain).

mod agent;
mod offline;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

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
      earshot-probe listen --device loopback:speakers --seed 42 --direction output --timeout 10\n  \
      earshot-probe play --device default --seed 42 --direction output\n\n\
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
    /// Lists the host's devices.
    Devices {
        /// Print a JSON array of devices instead of a table.
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
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Print one JSON object instead of human lines.
        #[arg(long)]
        json: bool,
        /// Write what was heard to this WAV file.
        #[arg(long)]
        evidence: Option<std::path::PathBuf>,
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
        Command::Record {
            device,
            seconds,
            output,
        } => record(host, &device, seconds, output),
    }
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
    for e in &report.health.stream_errors {
        println!("warning: {e}");
    }
    Ok(0)
}

fn listen(
    host: HostChoice,
    device: &str,
    seed: u64,
    direction: &str,
    timeout: f64,
    json: bool,
    evidence: Option<std::path::PathBuf>,
) -> anyhow::Result<i32> {
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
        anyhow::bail!("--timeout must be in (0, 3600], got {timeout}");
    }
    let dir: Direction = direction
        .parse()
        .with_context(|| format!("parsing --direction `{direction}`"))?;
    let options = CaptureOptions {
        timeout: Duration::from_secs_f64(timeout),
        keep_audio: evidence.is_some(),
    };
    let result = backend::listen(
        host,
        &DeviceSelector::parse(device),
        &Signature::new(seed, dir),
        &options,
        &CancelFlag::new(),
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
            println!("verdict: {outcome} (channel {})", r.channel);
            let a = &r.analysis;
            println!("onset: {:?} ms, level: {:?} dBFS", a.onset_ms, a.level_dbfs);
            println!("snr per symbol: {:?} dB", a.snr_db_per_symbol);
            println!(
                "elapsed: {:.0} ms, xruns {}, dropped {}",
                r.elapsed_ms, r.health.xruns, r.health.dropped_samples
            );
        }
        Err(e) => eprintln!("earshot-probe: listening on device `{device}`: {e}"),
    }
    Ok(code)
}
