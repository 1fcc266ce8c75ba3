//! `login-scorer`: see `login-scorer --help`.

use std::process::ExitCode;

use clap::Parser;
use login_scorer::cli::{self, Cli};
use login_scorer::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = telemetry::init_logging(cli.log_format, &cli.log) {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // NOTE: printed, not logged: this is the one line a person starting the
            // service must read, whatever the log format.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
