//! The artifact root: every client path is decoded once, checked once, and
//! confined under the root before anything touches the filesystem.

use crate::error::{ApiError, ApiResult};
use std::path::{Path, PathBuf};

/// A relative artifact path that has passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath(String);

impl SafePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

fn invalid() -> ApiError {
    ApiError::invalid("Invalid path")
}

/// Percent-decodes `raw` exactly once and validates the result: no `..` or
/// `.` segments, no absolute paths or drive letters, no backslashes, no
/// control characters, no `%` left after decoding (double encoding), and no
/// scheme. An empty path is the root.
pub fn check_path(raw: &str, encoded: bool) -> ApiResult<SafePath> {
    let decoded = if encoded {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| invalid())?
            .into_owned()
    } else {
        raw.to_owned()
    };
    let p = decoded.as_str();
    if p.contains('\\')
        || p.contains('%')
        || p.contains('\u{FFFD}')
        || p.chars().any(char::is_control)
    {
        return Err(invalid());
    }
    if p.starts_with('/') || p.starts_with('~') {
        return Err(invalid());
    }
    let trimmed = p.trim_end_matches('/');
    let mut parts = Vec::new();
    for seg in trimmed.split('/') {
        match seg {
            "" if trimmed.is_empty() => {}
            "" | "." | ".." => return Err(invalid()),
            s if s.contains(':') && parts.is_empty() => return Err(invalid()),
            s => parts.push(s),
        }
    }
    Ok(SafePath(parts.join("/")))
}

/// The local folder that holds every artifact.
#[derive(Debug, Clone)]
pub struct ArtifactRoot {
    root: PathBuf,
}

impl ArtifactRoot {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: std::fs::canonicalize(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The filesystem path of `p`, checked again against the root after
    /// resolving what exists of it (so a symlink cannot lead outside).
    pub fn resolve(&self, p: &SafePath) -> ApiResult<PathBuf> {
        let full = if p.is_root() {
            self.root.clone()
        } else {
            self.root.join(p.as_str())
        };
        let mut existing = full.as_path();
        while !existing.exists() {
            match existing.parent() {
                Some(parent) => existing = parent,
                None => return Err(invalid()),
            }
        }
        let canon = std::fs::canonicalize(existing).map_err(|_| invalid())?;
        if !canon.starts_with(&self.root) {
            return Err(invalid());
        }
        Ok(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_corpus_is_rejected() {
        for bad in [
            "..",
            "../etc/passwd",
            "a/../../etc",
            "a/..",
            "./a",
            "a//b",
            "/etc/passwd",
            "//proc/self/environ",
            "..\\..\\etc",
            "a\\..\\b",
            "%2e%2e%2fetc",
            "%2E%2E/etc",
            "..%2Fetc",
            "%252e%252e%252fetc",
            "..%5cetc",
            "%2Fetc",
            "C:\\windows",
            "c:/windows",
            "file:///etc",
            "a/%00",
            "a\u{0}b",
            "~/.ssh",
            "%c0%ae%c0%ae/etc",
            "%ff",
        ] {
            assert!(check_path(bad, true).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        assert_eq!(
            check_path("1/abc/artifacts/model/MLmodel", true)
                .unwrap()
                .as_str(),
            "1/abc/artifacts/model/MLmodel"
        );
        assert_eq!(
            check_path("1/a%20b.txt", true).unwrap().as_str(),
            "1/a b.txt"
        );
        assert_eq!(check_path("1/dir/", true).unwrap().as_str(), "1/dir");
        assert!(check_path("", true).unwrap().is_root());
        assert_eq!(check_path("a..b/c", true).unwrap().as_str(), "a..b/c");
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = ArtifactRoot::new(&t.path().join("root")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.root().join("link")).unwrap();
        assert!(root.resolve(&check_path("link/x", true).unwrap()).is_err());
        assert!(root.resolve(&check_path("fine/x", true).unwrap()).is_ok());
    }
}
