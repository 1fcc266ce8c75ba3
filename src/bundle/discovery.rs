//! Finding version directories under a model root.

use std::path::{Path, PathBuf};

use super::BundleError;

/// A complete version directory (it holds `manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDir {
    /// The version number, from the directory name.
    pub version: u64,
    /// The directory.
    pub path: PathBuf,
}

/// Parses a version directory name: a positive decimal integer without leading zeros.
pub fn parse_version(name: &str) -> Option<u64> {
    let well_formed =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && !name.starts_with('0');
    well_formed.then(|| name.parse().ok()).flatten()
}

/// Whether `dir` looks like a version directory rather than a model root.
pub fn is_version_dir(dir: &Path) -> bool {
    dir.join("manifest.json").is_file()
}

/// Complete versions under `root`, highest first. Directories without `manifest.json`
/// are still being written and are skipped, and so is a version that is a symlink
/// resolving outside the root: a bundle reaches no file outside the model root.
pub fn complete_versions(root: &Path) -> Result<Vec<VersionDir>, BundleError> {
    if !root.is_dir() {
        return Err(BundleError::NoModelRoot {
            path: root.to_path_buf(),
        });
    }
    let io_error = |source| BundleError::Io {
        path: root.into(),
        source,
    };
    let resolved_root = root.canonicalize().map_err(io_error)?;
    let entries = std::fs::read_dir(root).map_err(io_error)?;

    let mut versions: Vec<VersionDir> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            let path = entry.path();
            if !path.is_dir() {
                return None;
            }
            if !path
                .canonicalize()
                .is_ok_and(|resolved| resolved.starts_with(&resolved_root))
            {
                tracing::warn!(
                    path = %path.display(),
                    "skipping version: it resolves (through a symlink) outside the model root"
                );
                return None;
            }
            if !is_version_dir(&path) {
                tracing::debug!(path = %path.display(), "skipping incomplete version");
                return None;
            }
            Some(VersionDir { version, path })
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_are_plain_positive_integers() {
        assert_eq!(parse_version("1"), Some(1));
        assert_eq!(parse_version("17"), Some(17));
        for bad in ["0", "01", "-1", "1.0", "v2", "", "99999999999999999999999"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_complete_versions_highest_first() {
        let root = tempfile::tempdir().unwrap();
        for (name, complete) in [
            ("1", true),
            ("10", true),
            ("2", true),
            ("3", false),
            ("x", true),
        ] {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            if complete {
                std::fs::write(dir.join("manifest.json"), "{}").unwrap();
            }
        }
        let versions: Vec<u64> = complete_versions(root.path())
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(versions, vec![10, 2, 1]);
        assert!(matches!(
            complete_versions(&root.path().join("absent")),
            Err(BundleError::NoModelRoot { .. })
        ));
    }

    #[test]
    fn a_version_symlinked_from_outside_the_root_is_skipped() {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().join("root");
        let outside = scratch.path().join("elsewhere");
        for dir in [root.join("1"), outside.clone()] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("manifest.json"), "{}").unwrap();
        }
        std::os::unix::fs::symlink(&outside, root.join("3")).unwrap();
        std::os::unix::fs::symlink(root.join("1"), root.join("2")).unwrap();
        let versions: Vec<u64> = complete_versions(&root)
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(versions, vec![2, 1], "3 points outside the root");
    }
}
