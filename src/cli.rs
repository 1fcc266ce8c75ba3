//! Command-line interface: one clap struct per command; every flag also reads a
//! `LOGIN_SCORER_*` environment variable.

pub mod check;
pub mod score;
pub mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::scoring::score::DEFAULT_DENY_PERCENTILE;
use crate::telemetry::LogFormat;

/// Real-time login-risk scorer.
#[derive(Debug, Parser)]
#[command(name = "login-scorer", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "LOGIN_SCORER_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `login_scorer=debug`. The
    /// default quiets the file watcher's own notes (a removed version directory makes it
    /// log a harmless "unable to remove watch descriptor").
    #[arg(
        long,
        env = "LOGIN_SCORER_LOG",
        default_value = "info,notify=warn",
        global = true
    )]
    pub log: String,

    /// ONNX Runtime shared library [default: $ORT_DYLIB_PATH, else the .venv wheel's].
    #[arg(long, env = "LOGIN_SCORER_ORT_DYLIB_PATH", global = true)]
    pub ort_dylib_path: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the highest valid bundle under a model root over HTTP.
    Serve(serve::ServeArgs),
    /// Score an RBA CSV (plain or gzip) offline; prints an evaluation when it is labelled.
    Score(score::ScoreArgs),
    /// Validate a bundle (a version directory or a model root); exit 1 with the reason if invalid.
    CheckBundle(check::CheckArgs),
}

/// Options shared by every command that loads a model.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// ONNX sessions per model; default one per core (see `scoring::model`).
    #[arg(long, env = "LOGIN_SCORER_SESSIONS")]
    pub sessions: Option<usize>,

    /// Percentile of held-out normal scores at or above which anomalies are denied.
    #[arg(
        long,
        env = "LOGIN_SCORER_DENY_PERCENTILE",
        default_value_t = DEFAULT_DENY_PERCENTILE,
        value_parser = parse_percentile
    )]
    pub deny_percentile: f64,
}

impl ModelArgs {
    /// Sessions to create: the flag, else the number of cores.
    pub fn session_count(&self) -> usize {
        self.sessions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let dylib = crate::runtime::resolve_dylib_path(cli.ort_dylib_path.as_deref());
    match cli.command {
        Command::Serve(args) => serve::run(args, &dylib),
        Command::Score(args) => score::run(args, &dylib),
        Command::CheckBundle(args) => check::run(args, &dylib),
    }
}

/// A percentile in 0..=100.
fn parse_percentile(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not a percentile (0 to 100)"))
    }
}

/// As [`parse_seconds`], refusing zero: for limits where zero would refuse everything.
pub(crate) fn parse_positive_seconds(text: &str) -> Result<std::time::Duration, String> {
    let seconds = parse_seconds(text)?;
    if seconds.is_zero() {
        return Err("must be more than 0 seconds".to_owned());
    }
    Ok(seconds)
}

/// A non-negative, finite number of seconds.
pub(crate) fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    std::time::Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{value} is not a non-negative, finite number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_finite_and_non_negative_and_a_timeout_is_more_than_zero() {
        assert_eq!(parse_seconds("0").unwrap(), std::time::Duration::ZERO);
        assert_eq!(parse_seconds("2.5").unwrap().as_millis(), 2500);
        for bad in ["-1", "1e30", "NaN", "ten"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        assert!(parse_positive_seconds("0").is_err());
        assert!(parse_positive_seconds("0.0").is_err());
        assert_eq!(parse_positive_seconds("0.5").unwrap().as_millis(), 500);
    }
}
