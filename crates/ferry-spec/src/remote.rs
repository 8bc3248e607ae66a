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
pub const OPTION_KEYS: &[&str] = &["endpoint", "region", "allow_http", "profile", "push"];

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
        "push" if value != "auto" && value != "manual" => Some(format!(
            "`push`: `{value}` is not auto (`ferry run` pushes what its stages produce) or manual"
        )),
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

/// This machine's settings for the remotes (`.ferry/remotes.yaml`, never
/// committed): `NAME: {endpoint, region, allow_http, profile}`, laid over
/// what ferry.yaml says. Every problem, each at `file:line:column`.
pub fn local_settings(
    file: &str,
    text: &str,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, Vec<String>> {
    use crate::node::Kind;
    let root = crate::parse_yaml(text).map_err(|e| {
        vec![format!(
            "{file}:{}:{}: {}",
            e.pos.line, e.pos.column, e.message
        )]
    })?;
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    let at = |pos: crate::Pos| format!("{file}:{}:{}", pos.line, pos.column);
    let top = match &root.kind {
        Kind::Null => return Ok(out),
        Kind::Map(m) => m,
        _ => {
            return Err(vec![format!(
                "{}: expected a mapping of remote names",
                at(root.pos)
            )]);
        }
    };
    for (name, body) in top {
        let Kind::Map(entries) = &body.kind else {
            errors.push(format!(
                "{}: {}: expected a mapping of settings",
                at(body.pos),
                name.name
            ));
            continue;
        };
        let mut settings = BTreeMap::new();
        for (k, v) in entries {
            let value = match &v.kind {
                Kind::Str(s) => s.clone(),
                Kind::Bool(b) => b.to_string(),
                Kind::Int(i) => i.to_string(),
                _ => {
                    errors.push(format!(
                        "{}: {}.{}: expected a value",
                        at(v.pos),
                        name.name,
                        k.name
                    ));
                    continue;
                }
            };
            match validate_option(&k.name, &value) {
                Some(e) => errors.push(format!("{}: {}.{}: {e}", at(k.pos), name.name, k.name)),
                None => {
                    settings.insert(k.name.clone(), value);
                }
            }
        }
        out.insert(name.name.clone(), settings);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `text` (a ferry.yaml) with `remote` added to its `remotes:` block (made
/// at the end when there is none), and `default: true` taken from any other
/// remote when `remote.default`. The rest of the file, comments included,
/// is kept as it is. Refuses a name already there, and a `remotes:` block
/// in flow style (`remotes: {…}`), which it cannot edit line by line.
pub fn add_to_spec(text: &str, remote: &RemoteConfig) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let entry = |indent: &str| {
        let mut e = vec![
            format!("{indent}{}:", remote.name),
            format!("{indent}{indent}url: {}", yaml_scalar(&remote.url)),
        ];
        if remote.default {
            e.push(format!("{indent}{indent}default: true"));
        }
        for (k, v) in &remote.options {
            e.push(format!("{indent}{indent}{k}: {}", yaml_scalar(v)));
        }
        e
    };
    let Some((start, end, indent)) = remotes_block(&lines)? else {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        lines.push(String::new());
        lines.push("remotes:".into());
        lines.extend(entry("  "));
        return Ok(lines.join("\n") + "\n");
    };
    if child_names(&lines, start, end, &indent)
        .iter()
        .any(|(n, _)| n == &remote.name)
    {
        return Err(format!(
            "a remote named `{}` exists already (`ferry remote remove {}` first)",
            remote.name, remote.name
        ));
    }
    if remote.default {
        let deeper = format!("{indent}{indent}");
        lines = lines
            .into_iter()
            .enumerate()
            .filter(|(i, l)| {
                !(*i > start && *i < end && l.starts_with(&deeper) && l.trim() == "default: true")
            })
            .map(|(_, l)| l)
            .collect();
    }
    let (_, end, _) = remotes_block(&lines)?.unwrap_or((start, end, indent.clone()));
    // After the block's last non-blank line.
    let mut at = end;
    while at > start + 1 && lines[at - 1].trim().is_empty() {
        at -= 1;
    }
    for (k, l) in entry(&indent).into_iter().enumerate() {
        lines.insert(at + k, l);
    }
    Ok(lines.join("\n") + "\n")
}

/// `text` without the remote `name` (and without `remotes:` when it was the
/// last one).
pub fn remove_from_spec(text: &str, name: &str) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let no_such = || format!("no remote named `{name}` in ferry.yaml");
    let (start, end, indent) = remotes_block(&lines)?.ok_or_else(no_such)?;
    let children = child_names(&lines, start, end, &indent);
    let i = children
        .iter()
        .position(|(n, _)| n == name)
        .ok_or_else(no_such)?;
    let from = children[i].1;
    let mut to = children.get(i + 1).map_or(end, |c| c.1);
    while to > from + 1 && lines[to - 1].trim().is_empty() {
        to -= 1;
    }
    lines.drain(from..to);
    if children.len() == 1 {
        lines.remove(start);
    }
    Ok(lines.join("\n") + "\n")
}

/// The `remotes:` block: its line, the line after its last, and the indent
/// of its entries.
fn remotes_block(lines: &[String]) -> Result<Option<(usize, usize, String)>, String> {
    let Some(start) = lines.iter().position(|l| {
        l.strip_prefix("remotes:")
            .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
    }) else {
        if lines.iter().any(|l| l.starts_with("remotes:")) {
            return Err("ferry.yaml's `remotes:` is written in flow style; edit it by hand, or write it as a block".into());
        }
        return Ok(None);
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && !l.starts_with([' ', '\t', '#']))
        .map_or(lines.len(), |p| start + 1 + p);
    let indent = lines[start + 1..end]
        .iter()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map_or("  ".to_owned(), |l| {
            l[..l.len() - l.trim_start().len()].to_owned()
        });
    Ok(Some((start, end, indent)))
}

/// The names of the block's entries, with their lines.
fn child_names(lines: &[String], start: usize, end: usize, indent: &str) -> Vec<(String, usize)> {
    (start + 1..end)
        .filter_map(|i| {
            let l = &lines[i];
            let rest = l.strip_prefix(indent)?;
            if rest.starts_with([' ', '\t', '#']) {
                return None;
            }
            let name = rest
                .split(':')
                .next()?
                .trim()
                .trim_matches('"')
                .trim_matches('\'');
            Some((name.to_owned(), i))
        })
        .collect()
}

/// A plain scalar when YAML reads it back unchanged, else double-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:@+".contains(c))
        && !s.starts_with(['-', ':', '@'])
        && !s.contains(": ")
        && !["true", "false", "null", "yes", "no", "on", "off", "~"].contains(&s);
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_in_ferry_yaml_has_its_url_default_and_the_settings() {
        let mut keys = vec!["url", "default"];
        keys.extend(OPTION_KEYS);
        assert_eq!(crate::keys::REMOTE_KEYS, keys.as_slice());
        assert_eq!(validate_option("push", "auto"), None);
        assert_eq!(validate_option("push", "manual"), None);
        assert!(validate_option("push", "yes").is_some());
    }

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

    fn cfg(name: &str, url: &str, default: bool) -> RemoteConfig {
        RemoteConfig {
            name: name.into(),
            url: url.into(),
            default,
            options: BTreeMap::new(),
        }
    }

    #[test]
    fn remotes_are_added_to_and_removed_from_the_spec_text() {
        let spec = "# my pipeline\nstages:\n  s:\n    cmd: \"true\"  # keep\n";
        let one = add_to_spec(spec, &cfg("origin", "s3://b/p", true)).unwrap_or_default();
        assert_eq!(
            one,
            "# my pipeline\nstages:\n  s:\n    cmd: \"true\"  # keep\n\nremotes:\n  origin:\n    url: s3://b/p\n    default: true\n"
        );
        let mut with_opts = cfg("shared", "../my cache", true);
        with_opts
            .options
            .insert("region".into(), "eu-west-1".into());
        let two = add_to_spec(&one, &with_opts).unwrap_or_default();
        assert!(two.ends_with(
            "remotes:\n  origin:\n    url: s3://b/p\n  shared:\n    url: \"../my cache\"\n    default: true\n    region: eu-west-1\n"
        ), "{two}");
        assert!(add_to_spec(&two, &cfg("origin", "s3://x", false)).is_err());
        let back = remove_from_spec(&two, "shared").unwrap_or_default();
        assert_eq!(
            back,
            "# my pipeline\nstages:\n  s:\n    cmd: \"true\"  # keep\n\nremotes:\n  origin:\n    url: s3://b/p\n"
        );
        let none = remove_from_spec(&back, "origin").unwrap_or_default();
        assert_eq!(
            none,
            "# my pipeline\nstages:\n  s:\n    cmd: \"true\"  # keep\n\n"
        );
        assert!(remove_from_spec(&none, "origin").is_err());
        assert!(add_to_spec("remotes: {a: {url: x}}\n", &cfg("b", "y", false)).is_err());
        // A block followed by another top-level key keeps it.
        let mid = "remotes:\n  a:\n    url: x\n\nstages:\n  s: {cmd: \"true\"}\n";
        let added = add_to_spec(mid, &cfg("b", "y", false)).unwrap_or_default();
        assert_eq!(
            added,
            "remotes:\n  a:\n    url: x\n  b:\n    url: y\n\nstages:\n  s: {cmd: \"true\"}\n"
        );
    }

    #[test]
    fn local_settings_are_read_with_their_places() {
        let ok = local_settings(
            "r.yaml",
            "origin:\n  endpoint: http://127.0.0.1:9000\n  allow_http: true\n",
        );
        assert_eq!(
            ok.ok().and_then(|m| m.get("origin").map(|s| s.len())),
            Some(2)
        );
        let bad = local_settings("r.yaml", "origin:\n  secret_key: x\n  colour: red\n")
            .err()
            .unwrap_or_default();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad[0].starts_with("r.yaml:2:3: origin.secret_key: "),
            "{bad:?}"
        );
    }

    #[test]
    fn secrets_and_unknown_settings_are_refused() {
        let mut o = BTreeMap::new();
        o.insert("secret_access_key".to_owned(), "x".to_owned());
        o.insert("endpoint".to_owned(), "localhost:9000".to_owned());
        o.insert("colour".to_owned(), "red".to_owned());
        let e = validate("bad name", "s3://b", &o);
        let _ = cfg("x", "y", false);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e.iter().any(|m| m.contains("credentials are never kept")));
        assert!(validate("origin", "s3://b/p", &BTreeMap::new()).is_empty());
    }
}
