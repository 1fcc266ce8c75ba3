//! `login-scorer score`: offline scoring of an RBA CSV with the service's code path.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::ModelArgs;
use crate::bundle::{LoadOptions, ModelStore, ReloadTrigger, discovery, load_version};
use crate::evaluation::{self, Evaluation};
use crate::offline::{self, DEFAULT_CHUNK_ROWS, OfflineOptions, OfflineSummary};
use crate::runtime;

/// `score` options.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Model root (highest valid version is used) or one version directory.
    #[arg(
        long,
        env = "LOGIN_SCORER_MODEL_ROOT",
        default_value = "artifacts/rba-autoencoder"
    )]
    pub model_root: PathBuf,

    /// RBA CSV to score, plain or gzip.
    pub input: PathBuf,

    /// Where to write the scores [default: standard output].
    #[arg(short, long, env = "LOGIN_SCORER_OUTPUT")]
    pub output: Option<PathBuf>,

    /// Rows per inference call.
    #[arg(long, env = "LOGIN_SCORER_CHUNK_ROWS", default_value_t = DEFAULT_CHUNK_ROWS)]
    pub chunk_rows: usize,

    /// Model options.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Scores the file, then prints the evaluation when the input is labelled.
pub fn run(args: ScoreArgs, dylib: &Path) -> anyhow::Result<()> {
    let sessions = args.model.session_count();
    let options = LoadOptions {
        environment: runtime::init(dylib)?,
        sessions,
        deny_percentile: args.model.deny_percentile,
    };
    let model = if discovery::is_version_dir(&args.model_root) {
        std::sync::Arc::new(load_version(&args.model_root, &options)?)
    } else {
        let store = ModelStore::new(&args.model_root, options);
        store
            .reload(ReloadTrigger::Startup)
            .with_context(|| format!("cannot score with {}", args.model_root.display()))?;
        store
            .current()
            .context("no model after a successful load")?
    };

    let file =
        File::open(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?;
    let progress = progress_bar(file.metadata().map(|meta| meta.len()).unwrap_or(0));
    let input = offline::open_input(progress.wrap_read(file))
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let output: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };

    let started = Instant::now();
    let run = OfflineOptions {
        chunk_rows: args.chunk_rows,
        workers: sessions,
    };
    let summary = offline::score_csv(input, std::io::BufWriter::new(output), &model.scorer, run)
        .with_context(|| format!("scoring {} failed", args.input.display()))?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();

    let mut report = String::new();
    describe_run(&mut report, &args.input, &summary, seconds, model.version());
    if !summary.labelled.is_empty() {
        let threshold = model.scorer.calibration().threshold;
        describe_evaluation(
            &mut report,
            &evaluation::evaluate(&summary.labelled, threshold),
            threshold,
        );
    }
    // The report goes to stderr when the scores take stdout.
    if args.output.is_some() {
        print!("{report}");
    } else {
        eprint!("{report}");
    }
    Ok(())
}

fn progress_bar(bytes: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(bytes);
    let style =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn describe_run(
    out: &mut String,
    input: &Path,
    summary: &OfflineSummary,
    seconds: f64,
    version: u64,
) {
    use std::fmt::Write as _;
    let rate = summary.rows as f64 / seconds.max(1e-9);
    let _ = writeln!(
        out,
        "scored {} rows of {} with model version {version} in {seconds:.2} s ({rate:.0} rows/s); \
         {} rows could not be read",
        summary.rows,
        input.display(),
        summary.failed
    );
    for error in &summary.first_errors {
        let _ = writeln!(out, "  {error}");
    }
}

fn describe_evaluation(out: &mut String, report: &Evaluation, threshold: f64) {
    use std::fmt::Write as _;
    let show = |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.6}"));
    let c = &report.confusion;
    let _ = writeln!(
        out,
        "evaluation at threshold {threshold} (positive = account takeover):"
    );
    let _ = writeln!(out, "                 predicted normal  predicted takeover");
    let _ = writeln!(
        out,
        "  normal         {:>16}  {:>18}",
        c.true_negatives, c.false_positives
    );
    let _ = writeln!(
        out,
        "  takeover       {:>16}  {:>18}",
        c.false_negatives, c.true_positives
    );
    let _ = writeln!(out, "  precision {}", show(report.precision));
    let _ = writeln!(out, "  recall    {}", show(report.recall));
    let _ = writeln!(out, "  roc_auc   {}", show(report.roc_auc));
    let _ = writeln!(
        out,
        "  pr_auc    {} (average precision)",
        show(report.pr_auc)
    );
}
