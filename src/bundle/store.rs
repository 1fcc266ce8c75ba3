//! The model being served, and how a new one replaces it.
//!
//! A handler takes an `Arc` of the current model once and scores with it to the end, so
//! a swap never changes the model under a request in flight; the old model is dropped
//! when its last request finishes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use super::load::{self, LoadOptions, LoadedModel};
use super::{BundleError, discovery};
use crate::telemetry;

/// What started a reload, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// The first load.
    Startup,
    /// A change under the model root.
    Watch,
    /// SIGHUP.
    Signal,
    /// `POST /admin/reload`.
    Admin,
}

impl ReloadTrigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Watch => "watch",
            Self::Signal => "signal",
            Self::Admin => "admin",
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A different bundle is now served.
    Swapped {
        /// The version served before, if any.
        previous: Option<u64>,
        /// The version served now.
        version: u64,
        /// Higher versions rejected on the way, with reasons.
        rejected: Vec<(u64, String)>,
    },
    /// The served bundle is still the best valid one.
    Unchanged {
        /// The version served.
        version: u64,
        /// Higher versions rejected on the way, with reasons.
        rejected: Vec<(u64, String)>,
    },
}

/// Holds the served model and swaps in new versions.
#[derive(Debug)]
pub struct ModelStore {
    root: PathBuf,
    options: LoadOptions,
    current: ArcSwapOption<LoadedModel>,
    reload_lock: Mutex<()>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl ModelStore {
    /// An empty store over `root`; call [`ModelStore::reload`] to load the first model.
    pub fn new(root: impl Into<PathBuf>, options: LoadOptions) -> ModelStore {
        ModelStore {
            root: root.into(),
            options,
            current: ArcSwapOption::empty(),
            reload_lock: Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }

    /// The model root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The model to score with, if one is loaded.
    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.current.load_full()
    }

    /// Successful swaps after the first load.
    pub fn reloads_ok(&self) -> u64 {
        self.reloads_ok.load(Ordering::Relaxed)
    }

    /// Rejected candidates.
    pub fn reloads_failed(&self) -> u64 {
        self.reloads_failed.load(Ordering::Relaxed)
    }

    /// Serves the highest valid version: walks complete versions from the highest down,
    /// stops at the one already served (unchanged manifest), and swaps in the first that
    /// validates in full. Rejected candidates are logged and counted; whatever was served
    /// before keeps serving. Blocking: loading reads files and builds sessions.
    pub fn reload(&self, trigger: ReloadTrigger) -> Result<ReloadOutcome, BundleError> {
        let _one_at_a_time = self
            .reload_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.current();
        let versions = match discovery::complete_versions(&self.root) {
            Ok(versions) if versions.is_empty() => Err(BundleError::NoVersions {
                root: self.root.clone(),
            }),
            other => other,
        };
        let versions = match (versions, &current) {
            (Ok(versions), _) => versions,
            (Err(err), Some(model)) => {
                // The root vanished or emptied: keep serving what is in memory.
                self.count_failure(trigger, None, &err.to_string());
                return Ok(ReloadOutcome::Unchanged {
                    version: model.version(),
                    rejected: Vec::new(),
                });
            }
            (Err(err), None) => return Err(err),
        };

        // NOTE: a rejected candidate is validated again on every trigger until it is
        // fixed or removed; each attempt is logged and counted, which is what operators
        // want to see while a bad bundle sits in the root.
        let mut rejected = Vec::new();
        for candidate in versions {
            if let Some(model) = &current {
                let same_manifest = load::manifest_fingerprint(&candidate.path)
                    .is_ok_and(|fingerprint| fingerprint == model.fingerprint);
                if candidate.version == model.version() && same_manifest {
                    tracing::info!(
                        trigger = trigger.as_str(),
                        model_version = model.version(),
                        rejected = rejected.len(),
                        "no newer valid bundle; model unchanged"
                    );
                    return Ok(ReloadOutcome::Unchanged {
                        version: model.version(),
                        rejected,
                    });
                }
            }
            match load::load_version(&candidate.path, &self.options) {
                Ok(loaded) => return Ok(self.swap_in(trigger, loaded, rejected)),
                Err(err) => {
                    let reason = err.to_string();
                    self.count_failure(trigger, Some(candidate.version), &reason);
                    rejected.push((candidate.version, reason));
                }
            }
        }

        match current {
            Some(model) => Ok(ReloadOutcome::Unchanged {
                version: model.version(),
                rejected,
            }),
            None => Err(BundleError::NoValidVersion {
                root: self.root.clone(),
                failures: rejected
                    .iter()
                    .map(|(version, reason)| format!("version {version}: {reason}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }

    fn swap_in(
        &self,
        trigger: ReloadTrigger,
        loaded: LoadedModel,
        rejected: Vec<(u64, String)>,
    ) -> ReloadOutcome {
        let version = loaded.version();
        tracing::info!(
            trigger = trigger.as_str(),
            model_name = %loaded.manifest.name,
            model_version = version,
            directory = %loaded.directory.display(),
            golden_rows = loaded.parity.rows,
            max_feature_error = loaded.parity.max_feature_error,
            max_score_relative_error = loaded.parity.max_score_relative_error,
            "model loaded"
        );
        let previous = self
            .current
            .swap(Some(Arc::new(loaded)))
            .map(|old| old.version());
        if trigger != ReloadTrigger::Startup {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(telemetry::RELOADS, "result" => "ok").increment(1);
        }
        metrics::gauge!(telemetry::SERVING_VERSION).set(version as f64);
        ReloadOutcome::Swapped {
            previous,
            version,
            rejected,
        }
    }

    fn count_failure(&self, trigger: ReloadTrigger, version: Option<u64>, reason: &str) {
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::RELOADS, "result" => "failed").increment(1);
        tracing::warn!(
            trigger = trigger.as_str(),
            root = %self.root.display(),
            candidate_version = version,
            reason,
            "bundle rejected; the served model is unchanged"
        );
    }
}
