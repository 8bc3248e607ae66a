//! A model's prediction log and feedback as the monitor reads them: the
//! files of a window (by the start their names give), and what they hold
//! of one version (its predicted classes, its labels), counted line by
//! line without keeping the lines.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// One file of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    /// `predictions` or `feedback`.
    pub kind: String,
    /// The start of its window, from its name.
    pub start_ms: i64,
    pub part: u32,
}

/// The files of `model`'s folder under `dir`, oldest first (none when it
/// has no folder yet).
pub fn files(dir: &Path, model: &str) -> std::io::Result<Vec<LogFile>> {
    let folder = dir.join(ferry_core::predlog::model_dir(model));
    let entries = match std::fs::read_dir(&folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some((kind, start_ms, part)) =
            ferry_core::predlog::parse_file_name(&name.to_string_lossy())
                .map(|(k, s, p)| (k.to_owned(), s, p))
        else {
            continue;
        };
        out.push(LogFile {
            path: e.path(),
            kind,
            start_ms,
            part,
        });
    }
    out.sort_by(|a, b| (a.start_ms, a.part, &a.kind).cmp(&(b.start_ms, b.part, &b.kind)));
    Ok(out)
}

/// The files of `kind` whose window starts in `(from_ms, to_ms]`: a
/// monitor's window is made of whole log files, so the gateway's log
/// window (`ferry serve --log-window`) should not be longer than it.
pub fn in_window<'a>(
    files: &'a [LogFile],
    kind: &str,
    from_ms: i64,
    to_ms: i64,
) -> Vec<&'a LogFile> {
    files
        .iter()
        .filter(|f| f.kind == kind && f.start_ms > from_ms && f.start_ms <= to_ms)
        .collect()
}

#[derive(Deserialize)]
struct Predicted {
    model: Option<String>,
    version: Option<i64>,
    prediction: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Labelled {
    model: Option<String>,
    version: Option<i64>,
    labels: Option<Vec<serde_json::Value>>,
    correct: Option<u64>,
}

/// What a window's predictions hold of one version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predictions {
    /// The version's rows.
    pub rows: u64,
    /// Their predicted classes.
    pub classes: BTreeMap<String, u64>,
}

impl Predictions {
    pub fn histogram(&self) -> Vec<(String, u64)> {
        self.classes.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn add(&mut self, other: Predictions) {
        self.rows += other.rows;
        for (k, v) in other.classes {
            *self.classes.entry(k).or_default() += v;
        }
    }
}

/// One logged row, from its raw values (valid JSON: the scan checked
/// them), counted as [`Predicted`] read by serde counts it: a row whose
/// model, version or prediction serde would refuse is no row of the
/// version.
fn count_row(
    p: &mut Predictions,
    model: &str,
    version: i64,
    m: Option<&[u8]>,
    v: Option<&[u8]>,
    prediction: Option<&[u8]>,
) {
    // Most values are a string as is, without an escape.
    let plain = |raw: &[u8]| -> Option<String> {
        let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        if inner.contains(&b'\\') {
            return None;
        }
        std::str::from_utf8(inner).ok().map(str::to_owned)
    };
    let parsed = |raw: &[u8]| serde_json::from_slice::<serde_json::Value>(raw).ok();
    let ours = match m {
        None | Some(b"null") => true,
        Some(raw) => match plain(raw).or_else(|| match parsed(raw) {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        }) {
            Some(name) => name == model,
            None => return,
        },
    };
    let v = match v {
        None | Some(b"null") => None,
        Some(raw) => match std::str::from_utf8(raw)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        {
            Some(v) => Some(v),
            None => return,
        },
    };
    let class = match prediction {
        None | Some(b"null") => None,
        Some(raw) => match plain(raw).or_else(|| parsed(raw).map(|c| class_of(&c))) {
            Some(c) => Some(c),
            None => return,
        },
    };
    if !ours || v != Some(version) {
        return;
    }
    p.rows += 1;
    if let Some(c) = class {
        *p.classes.entry(c).or_default() += 1;
    }
}

fn class_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn each_line(path: &Path, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        // Pruned since it was listed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut r = std::io::BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        f(&line);
    }
}

/// The predicted classes of `model`'s `version` in `files` (a line that is
/// not a logged row, a torn last one, is skipped).
pub fn predictions(files: &[&LogFile], model: &str, version: i64) -> std::io::Result<Predictions> {
    let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    // The log's lines are flat objects: read them on every core, straight
    // from the bytes; any other line, line by line below.
    let keys = ["model", "version", "prediction"];
    let fast = ferry_data::jsonl::fold_rows(&paths, &keys, Predictions::default, |p, v| {
        count_row(p, model, version, v[0], v[1], v[2]);
    });
    if let Some(parts) = fast {
        let mut sum = Predictions::default();
        for part in parts {
            sum.add(part);
        }
        return Ok(sum);
    }
    predictions_by_line(files, model, version)
}

/// [`predictions`], one line at a time through serde.
fn predictions_by_line(
    files: &[&LogFile],
    model: &str,
    version: i64,
) -> std::io::Result<Predictions> {
    let mut p = Predictions::default();
    for file in files {
        each_line(&file.path, |line| {
            let Ok(row) = serde_json::from_slice::<Predicted>(line) else {
                return;
            };
            if row.model.as_deref().is_none_or(|m| m == model) && row.version == Some(version) {
                p.rows += 1;
                if let Some(c) = &row.prediction {
                    *p.classes.entry(class_of(c)).or_default() += 1;
                }
            }
        })?;
    }
    Ok(p)
}

/// Labels received for `version` in `files`, and how many matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Labels {
    pub labelled: u64,
    pub correct: u64,
}

pub fn labels(files: &[&LogFile], model: &str, version: i64) -> std::io::Result<Labels> {
    let mut l = Labels::default();
    for file in files {
        each_line(&file.path, |line| {
            if let Ok(row) = serde_json::from_slice::<Labelled>(line)
                && row.model.as_deref().is_none_or(|m| m == model)
                && row.version == Some(version)
            {
                let n = row.labels.map_or(0, |v| v.len() as u64);
                l.labelled += n;
                l.correct += row.correct.unwrap_or(0).min(n);
            }
        })?;
    }
    Ok(l)
}

/// The longest window a log file's name can stand for (a day).
const LONGEST_FILE_MS: i64 = 86_400_000;

/// The version's first window: the oldest prediction files holding its
/// rows, taken until they hold `min_rows` of them (what its prediction
/// distribution is compared with). Files older than the version (made at
/// `created_ms`) are not read.
pub fn first_window<'a>(
    files: &'a [LogFile],
    model: &str,
    version: i64,
    created_ms: i64,
    min_rows: u64,
) -> std::io::Result<(Vec<&'a LogFile>, Predictions)> {
    let mut taken = Vec::new();
    let mut sum = Predictions::default();
    let young = |f: &&LogFile| f.kind == "predictions" && f.start_ms > created_ms - LONGEST_FILE_MS;
    for f in files.iter().filter(young) {
        let p = predictions(&[f], model, version)?;
        if p.rows == 0 && taken.is_empty() {
            continue;
        }
        taken.push(f);
        sum.add(p);
        if sum.rows >= min_rows.max(1) {
            break;
        }
    }
    Ok((taken, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path counts what the line-by-line one counts.
    #[test]
    fn rows_count_the_same_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("predictions-2026-11-26T14.jsonl");
        let lines = [
            r#"{"ts":1,"model":"m","version":2,"x":1.5,"prediction":"a"}"#,
            r#"{"model":"m","version":2,"prediction":1}"#,
            r#"{"model":"m","version":2,"prediction":[0.1,0.9]}"#,
            r#"{"model":"m","version":2,"prediction":null}"#,
            r#"{"model":"m","version":2,"prediction":"caf\u00e9"}"#,
            r#"{"model":"m\u0020","version":2,"prediction":"a"}"#,
            r#"{"model":null,"version":2,"prediction":"b"}"#,
            r#"{"version":2,"prediction":"b"}"#,
            r#"{"model":"other","version":2,"prediction":"a"}"#,
            r#"{"model":"m","version":3,"prediction":"a"}"#,
            r#"{"model":"m","version":"2","prediction":"a"}"#,
            r#"{"model":"m","version":2.0,"prediction":"a"}"#,
            r#"{"model":"m","version":null,"prediction":"a"}"#,
            r#"{"model":5,"version":2,"prediction":"a"}"#,
            r#"{"model":"m","prediction":"a"}"#,
            r#"{"model":"m","version":2,"prediction":1e400}"#,
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let file = LogFile {
            path,
            kind: "predictions".into(),
            start_ms: 0,
            part: 0,
        };
        let flat =
            ferry_data::jsonl::fold_rows(&[file.path.as_path()], &["model"], || (), |(), _| ());
        assert!(flat.is_some(), "these lines take the fast path");
        let fast = predictions(&[&file], "m", 2).unwrap();
        let slow = predictions_by_line(&[&file], "m", 2).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(fast.rows, 7);
        assert_eq!(fast.classes.get("b"), Some(&2));
        assert_eq!(fast.classes.get("café"), Some(&1));
        assert_eq!(fast.classes.get("[0.1,0.9]"), Some(&1));
    }
}
