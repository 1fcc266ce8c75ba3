//! `login-scorer check-bundle`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::ModelArgs;
use crate::bundle::{LoadOptions, ModelStore, ReloadTrigger, discovery, load_version};
use crate::runtime;

/// `check-bundle` options.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A version directory (holds manifest.json) or a model root.
    pub dir: PathBuf,

    /// Model options.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Validates in full, exactly as the service would before serving; prints the verdict.
pub fn run(args: CheckArgs, dylib: &Path) -> anyhow::Result<()> {
    let options = LoadOptions {
        environment: runtime::init(dylib)?,
        sessions: 1,
        deny_percentile: args.model.deny_percentile,
    };
    if discovery::is_version_dir(&args.dir) {
        let model = load_version(&args.dir, &options)
            .with_context(|| format!("bundle {} is invalid", args.dir.display()))?;
        print_valid(&args.dir, &model);
        return Ok(());
    }
    let store = ModelStore::new(&args.dir, options);
    store
        .reload(ReloadTrigger::Startup)
        .with_context(|| format!("{} has no valid bundle", args.dir.display()))?;
    let model = store
        .current()
        .context("no model after a successful load")?;
    print_valid(&model.directory, &model);
    Ok(())
}

fn print_valid(dir: &Path, model: &crate::bundle::LoadedModel) {
    println!(
        "valid: {} ({} version {}): {} golden rows reproduced, max feature error {:.3e}, \
         max relative score error {:.3e}",
        dir.display(),
        model.manifest.name,
        model.version(),
        model.parity.rows,
        model.parity.max_feature_error,
        model.parity.max_score_relative_error,
    );
}
