//! Client paths: every one is decoded once and checked once here, then
//! handed to the artifact store (`ferry_artifacts::ArtifactStore`), which
//! confines it under its root again (a local folder with symlinks checked,
//! a bucket under its prefix).

use crate::error::{ApiError, ApiResult};

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

/// The local folder that holds every artifact (the name this crate gave it
/// before artifacts could live elsewhere).
pub use ferry_artifacts::LocalArtifacts as ArtifactRoot;

/// The answer to a failure of the artifact store: `..`-like paths are
/// MLflow's 400, what is not there its 404, the rest a 500 (details in the
/// log only).
pub fn store_error(e: ferry_artifacts::Error) -> ApiError {
    use ferry_artifacts::Error as E;
    match e {
        E::Invalid(_) => invalid(),
        E::NotFound(p) => ApiError::not_found(format!("{p} not found")),
        E::IsDir(p) => ApiError::not_found(format!("{p} is a directory")),
        E::Interrupted { message, .. } => {
            ApiError::bad_request(format!("The upload was interrupted: {message}"))
        }
        e @ E::Backend { .. } => ApiError::internal(e),
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
}
