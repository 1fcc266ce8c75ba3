//! Reading bundle files safely: plain names only, nothing outside the version
//! directory, and every byte checked against the manifest's SHA-256.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BundleError;

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Resolves `name` inside the (canonical) version directory. The name must be a plain
/// file name, and the file it reaches, symlinks followed, must be a regular file
/// inside the directory.
pub fn resolve(version_dir: &Path, name: &str) -> Result<PathBuf, BundleError> {
    let unsafe_path = |reason: &str| BundleError::UnsafePath {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(unsafe_path("not a file name"));
    }
    if name.contains(['/', '\\', '\0']) {
        return Err(unsafe_path("file names may not contain path separators"));
    }

    let path = version_dir.join(name);
    let real = path.canonicalize().map_err(|source| BundleError::Io {
        path: path.clone(),
        source,
    })?;
    if real.parent() != Some(version_dir) {
        return Err(unsafe_path(
            "it resolves (through a symlink) outside the version directory",
        ));
    }
    if !real.is_file() {
        return Err(unsafe_path("not a regular file"));
    }
    Ok(real)
}

/// Reads `name` from the version directory and checks its SHA-256 against `expected`.
pub fn read_verified(
    version_dir: &Path,
    name: &str,
    expected: &str,
) -> Result<Vec<u8>, BundleError> {
    let path = resolve(version_dir, name)?;
    let bytes = std::fs::read(&path).map_err(|source| BundleError::Io { path, source })?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(expected.trim()) {
        return Err(BundleError::Checksum {
            file: name.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(bytes)
}

/// Reads a file that the manifest cannot hash (the manifest itself), with the same
/// path rules.
pub fn read_unverified(version_dir: &Path, name: &str) -> Result<Vec<u8>, BundleError> {
    let path = resolve(version_dir, name)?;
    std::fs::read(&path).map_err(|source| BundleError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_that_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        let version = dir.path().canonicalize().unwrap();
        std::fs::write(version.join("ok.txt"), b"fine").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path(), version.join("escape")).unwrap();

        assert!(resolve(&version, "ok.txt").is_ok());
        for name in ["../ok.txt", "sub/ok.txt", "..", "", "escape"] {
            let err = resolve(&version, name).unwrap_err();
            assert!(
                matches!(err, BundleError::UnsafePath { .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn checksum_mismatch_names_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().canonicalize().unwrap();
        std::fs::write(version.join("model.onnx"), b"bytes").unwrap();
        let good = sha256_hex(b"bytes");
        assert_eq!(
            read_verified(&version, "model.onnx", &good).unwrap(),
            b"bytes"
        );
        let err = read_verified(&version, "model.onnx", &sha256_hex(b"other")).unwrap_err();
        assert!(err.to_string().contains(&good), "{err}");
    }
}
