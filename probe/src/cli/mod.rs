//! The probe's command line: argument parsing and the device subcommands.
//!
//! Exit codes: 0 success, 2 any error (printed with its context chain).

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use earshot_probe::audio::{backend, HostChoice};

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
    about = "Plays, records and detects tone signatures"
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
    /// Lists the host's devices.
    Devices {
        /// Print a JSON array of devices instead of a table.
        #[arg(long)]
        json: bool,
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
        Command::Devices { json } => devices(host, json),
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
