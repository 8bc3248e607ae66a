//! Remotes as ferry.yaml declares them (`remotes:`), and the checks every
//! remote passes wherever it is declared. A remote is a URL (`s3://bucket/prefix`,
//! `gs://bucket/prefix`, `file:///path` or a plain path) with a few settings
//! that are not secrets (`endpoint`, `region`, `allow_http`, `profile`).
//! Credentials never come from here: each cloud's standard chain supplies
//! them (environment variables, the AWS shared credentials file, GCP
//! application-default credentials, instance or workload identity).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The settings a remote may carry, committed or per machine.
pub const OPTION_KEYS: &[&str] = &["endpoint", "region", "allow_http", "profile"];

/// Keys that look like credentials: refused with a pointer to where they go.
const SECRET_WORDS: &[&str] = &["secret", "password", "token", "access_key", "credential"];

/// One remote as configured: its name, URL and settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteConfig {
    pub name: String,
    pub url: String,
    /// The remote `push`, `fetch` and `run` use when none is named.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// Where a remote's objects are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Folder(PathBuf),
    S3 { bucket: String, prefix: String },
    Gcs { bucket: String, prefix: String },
}

impl Location {
    /// Reads a remote URL; `base` resolves a relative folder path (the
    /// project root, so a committed `../shared-cache` means the same thing
    /// on every machine).
    pub fn parse(url: &str, base: &Path) -> Result<Self, String> {
        let bucket_and_prefix = |rest: &str, scheme: &str| {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "`{url}` names no bucket (expected {scheme}://BUCKET/PREFIX)"
                ));
            }
            if !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c))
            {
                return Err(format!(
                    "`{bucket}` is not a bucket name (lower-case letters, digits, `-`, `.`, `_`)"
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == ".." || s == ".") {
                return Err(format!("the prefix of `{url}` may not contain `.` or `..`"));
            }
            Ok((bucket.to_owned(), prefix.to_owned()))
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(rest, "s3")?;
            Ok(Self::S3 { bucket, prefix })
        } else if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = bucket_and_prefix(rest, "gs")?;
            Ok(Self::Gcs { bucket, prefix })
        } else if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(format!("`{url}`: a file:// URL takes an absolute path"));
            }
            Ok(Self::Folder(PathBuf::from(rest)))
        } else if url.contains("://") {
            Err(format!(
                "`{url}`: unsupported scheme (use s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, file:///PATH or a folder path)"
            ))
        } else if url.is_empty() {
            Err("the URL is empty".into())
        } else {
            Ok(Self::Folder(base.join(url)))
        }
    }
}

/// Checks a remote's name, URL and settings; every problem, not the first.
pub fn validate(name: &str, url: &str, options: &BTreeMap<String, String>) -> Vec<String> {
    let mut errors: Vec<String> = validate_name(name).into_iter().collect();
    if let Err(e) = Location::parse(url, Path::new("/")) {
        errors.push(e);
    }
    for (k, v) in options {
        errors.extend(validate_option(k, v));
    }
    errors
}

/// Checks a remote's name.
pub fn validate_name(name: &str) -> Option<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Some(format!(
            "`{name}` is not a remote name (letters, digits, `-` and `_`)"
        ));
    }
    None
}

/// Checks one setting.
pub fn validate_option(key: &str, value: &str) -> Option<String> {
    if let Some(refusal) = secret_refusal(key) {
        return Some(refusal);
    }
    match key {
        "endpoint" if !(value.starts_with("http://") || value.starts_with("https://")) => Some(
            format!("`endpoint`: `{value}` is not an http:// or https:// URL"),
        ),
        "allow_http" if value != "true" && value != "false" => {
            Some(format!("`allow_http`: `{value}` is not true or false"))
        }
        k if !OPTION_KEYS.contains(&k) => Some(format!(
            "unknown setting `{k}` (known: {})",
            OPTION_KEYS.join(", ")
        )),
        _ => None,
    }
}

/// Why a key that looks like a credential is refused, if it does.
pub fn secret_refusal(key: &str) -> Option<String> {
    let lower = key.to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
        return Some(format!(
            "`{key}`: credentials are never kept in ferry's settings; they come from the \
             environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, \
             GOOGLE_APPLICATION_CREDENTIALS) or the machine's identity"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_into_locations() {
        let base = Path::new("/p");
        assert_eq!(
            Location::parse("s3://b/a/b/", base),
            Ok(Location::S3 {
                bucket: "b".into(),
                prefix: "a/b".into()
            })
        );
        assert_eq!(
            Location::parse("gs://bkt", base),
            Ok(Location::Gcs {
                bucket: "bkt".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            Location::parse("../shared", base),
            Ok(Location::Folder("/p/../shared".into()))
        );
        assert_eq!(
            Location::parse("file:///srv/cache", base),
            Ok(Location::Folder("/srv/cache".into()))
        );
        for bad in [
            "s3://",
            "s3:///x",
            "s3://Bad_Bucket!/x",
            "s3://b/../x",
            "ftp://h/x",
            "file://rel",
            "",
        ] {
            assert!(Location::parse(bad, base).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_and_unknown_settings_are_refused() {
        let mut o = BTreeMap::new();
        o.insert("secret_access_key".to_owned(), "x".to_owned());
        o.insert("endpoint".to_owned(), "localhost:9000".to_owned());
        o.insert("colour".to_owned(), "red".to_owned());
        let e = validate("bad name", "s3://b", &o);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e.iter().any(|m| m.contains("credentials are never kept")));
        assert!(validate("origin", "s3://b/p", &BTreeMap::new()).is_empty());
    }
}
