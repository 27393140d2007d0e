//! earshot-probe: plays, records and detects seeded tone signatures.
//!
//! # Layout
//!
//! - [`signal`]: signatures (seed + direction -> symbols of tones) and their synthesis.
//!   The signature format is a contract between the two probes.
//! - [`analysis`]: the streaming detector that finds a signature in a recording.
//! - [`wav`]: WAV evidence in and out (hound).
//! - `recording`: recordings of any common format (WAV of every kind, FLAC, MP3, Ogg
//!   Vorbis) decoded one block at a time, for `analyze`; needs the `formats` feature.
//! - [`audio`]: device catalogue, selection and the play / record / listen operations.
//!   The data types are always built; the cpal backend needs the `devices` feature.
//! - [`proto`]: the framed, authenticated control protocol shared by probe and harness.
//! - [`server`]: the agent that serves protocol requests; generic over a handler, with the
//!   real-device handler behind the `devices` feature.
#![warn(missing_docs)]

pub mod analysis;
pub mod audio;
pub mod fuzzing;
pub mod proto;
#[cfg(feature = "formats")]
pub mod recording;
pub mod registry;
pub mod server;
pub mod signal;
pub mod wav;

/// Sends `tracing` events to standard error (coloured on a terminal), filtered by
/// `EARSHOT_LOG` (`tracing_subscriber`'s env-filter syntax), else by `default_filter`.
/// A second call does nothing. For the binaries: the probe's agent and the harness.
pub fn init_logging(default_filter: &str) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EARSHOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .try_init();
}

/// Wall-clock time as unix milliseconds: the one clock that reports share (a player's start,
/// a listener's onset, a probe's `info`), so the harness can line them up.
pub fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The probe's version, sent in the protocol handshake and shown by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
