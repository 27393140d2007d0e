//! Signatures: the seeded tone sequences the probes play.
//!
//! CONTRACT (filled in by the signal work): `Signature::new(seed, direction)` is a pure
//! function; both probes derive the same symbols from the same inputs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which check a signature belongs to. The two use disjoint tone alphabets, so echo from
/// one direction is never credited to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Session plays, client hears (output redirection).
    Output,
    /// Client plays into its microphone feed, session records (capture redirection).
    Capture,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Output => "output",
            Direction::Capture => "capture",
        })
    }
}

/// A direction name that is neither `output` nor `capture`.
#[derive(Debug, thiserror::Error)]
#[error("unknown direction {0:?}: expected \"output\" or \"capture\"")]
pub struct ParseDirectionError(String);

impl FromStr for Direction {
    type Err = ParseDirectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "output" => Ok(Direction::Output),
            "capture" => Ok(Direction::Capture),
            other => Err(ParseDirectionError(other.to_string())),
        }
    }
}

/// One symbol: tones played together for one symbol period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symbol {
    /// The tone frequencies of this symbol, in Hz.
    pub tones_hz: Vec<f64>,
}

/// A signature: the symbols derived from a seed for one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    seed: u64,
    direction: Direction,
    symbols: Vec<Symbol>,
}

impl Signature {
    /// Derives the signature of `seed` for `direction`.
    pub fn new(seed: u64, direction: Direction) -> Signature {
        let _ = (seed, direction);
        todo!("signal work")
    }
    /// The seed it was derived from.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The direction it belongs to.
    pub fn direction(&self) -> Direction {
        self.direction
    }
    /// Its symbols, in play order.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }
    /// How long it plays.
    pub fn duration(&self) -> Duration {
        todo!("signal work")
    }
    /// Renders it as mono f32 samples in [-1, 1] at `sample_rate_hz` (8 000..=192 000).
    pub fn render(&self, sample_rate_hz: u32) -> Vec<f32> {
        let _ = sample_rate_hz;
        todo!("signal work")
    }
}
