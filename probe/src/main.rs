//! `earshot-probe`: command-line entry point. The subcommands live in `cli/`.
mod cli;

fn main() {
    std::process::exit(cli::run());
}
