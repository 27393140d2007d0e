//! `earshot-probe`: plays, records and detects seeded tone signatures.
//!
//! Thin: parses arguments, sets up logging, hands over to [`cli`].
use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::main()
}
