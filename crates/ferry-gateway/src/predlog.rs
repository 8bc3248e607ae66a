//! The prediction log: sampled rows of inputs and outputs, one JSON object
//! per predicted row, in one file per model and time window
//! (`<dir>/<model>/predictions-2026-11-26T14.jsonl`), so `ferry check
//! drift --current <file>` reads it as a table. A bounded queue feeds one
//! writer thread; when the queue is full, lines are dropped and counted
//! rather than slowing requests. Files rotate by window and size, and the
//! oldest are deleted beyond a total size.

use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

#[derive(Debug, Clone)]
pub struct PredLogConfig {
    pub dir: PathBuf,
    /// Share of requests logged, 0..=1.
    pub sample: f64,
    /// Window length in seconds (a new file each window).
    pub window_s: u64,
    /// A file is rotated (`.1.jsonl`, ...) beyond this size.
    pub max_file_bytes: u64,
    /// The oldest files are deleted beyond this total, per model.
    pub max_total_bytes: u64,
    /// At most this many requests are logged per second (the rest are
    /// counted as capped): a traffic spike costs neither disk nor CPU.
    pub max_per_s: u64,
}

impl PredLogConfig {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            sample: 1.0,
            window_s: 3600,
            max_file_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_per_s: 1000,
        }
    }
}

enum Line {
    Prediction {
        model: String,
        at_ms: i64,
        text: String,
    },
    Feedback {
        model: String,
        at_ms: i64,
        text: String,
    },
    Flush(std::sync::mpsc::Sender<()>),
}

pub struct PredLog {
    tx: SyncSender<Line>,
    sample_every: u64,
    seen: AtomicU64,
    started: std::time::Instant,
    second: AtomicU64,
    in_second: AtomicU64,
    max_per_s: u64,
    /// Requests sampled but not logged because of `max_per_s`.
    pub capped: AtomicU64,
    pub dropped: AtomicU64,
    pub written: std::sync::Arc<AtomicU64>,
    /// Bytes queued and not yet written (the queue is bounded in bytes too:
    /// one request of many rows makes a large line).
    queued: std::sync::Arc<AtomicU64>,
}

/// The most text waiting for the writer.
const QUEUE_BYTES: u64 = 64 << 20;

const QUEUE: usize = 16_384;

impl PredLog {
    pub fn start(cfg: PredLogConfig) -> std::io::Result<PredLog> {
        std::fs::create_dir_all(&cfg.dir)?;
        let (tx, rx) = sync_channel::<Line>(QUEUE);
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let w = written.clone();
        let queued = std::sync::Arc::new(AtomicU64::new(0));
        let q = queued.clone();
        let max_per_s = cfg.max_per_s;
        let sample_every = if cfg.sample <= 0.0 {
            0
        } else {
            (1.0 / cfg.sample.min(1.0)).round().max(1.0) as u64
        };
        std::thread::Builder::new()
            .name("ferry-predlog".into())
            .spawn(move || writer(cfg, rx, w, q))?;
        Ok(PredLog {
            tx,
            sample_every,
            seen: AtomicU64::new(0),
            started: std::time::Instant::now(),
            second: AtomicU64::new(0),
            in_second: AtomicU64::new(0),
            max_per_s,
            capped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            written,
            queued,
        })
    }

    /// Whether this request is logged: every n-th (n = 1 / sample), up to
    /// `max_per_s` a second.
    pub fn sampled(&self) -> bool {
        if self.sample_every == 0
            || !self
                .seen
                .fetch_add(1, Relaxed)
                .is_multiple_of(self.sample_every)
        {
            return false;
        }
        let sec = self.started.elapsed().as_secs();
        if self.second.swap(sec, Relaxed) != sec {
            self.in_second.store(0, Relaxed);
        }
        if self.in_second.fetch_add(1, Relaxed) >= self.max_per_s {
            self.capped.fetch_add(1, Relaxed);
            return false;
        }
        true
    }

    fn send(&self, l: Line) {
        let len = match &l {
            Line::Prediction { text, .. } | Line::Feedback { text, .. } => text.len() as u64,
            Line::Flush(_) => 0,
        };
        if self.queued.fetch_add(len, Relaxed) + len > QUEUE_BYTES {
            self.queued.fetch_sub(len, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(l) {
            self.queued.fetch_sub(len, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Queues the lines of one request (JSON objects, each ending in `\n`).
    pub fn predictions(&self, model: &str, at_ms: i64, text: String) {
        self.send(Line::Prediction {
            model: model.to_owned(),
            at_ms,
            text,
        });
    }

    pub fn feedback(&self, model: &str, at_ms: i64, row: Map<String, Value>) {
        let mut text = Value::Object(row).to_string();
        text.push('\n');
        self.send(Line::Feedback {
            model: model.to_owned(),
            at_ms,
            text,
        });
    }

    /// Waits until everything queued so far is written (tests, shutdown).
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Line::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
        }
    }
}

struct Open {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    bytes: u64,
}

fn writer(
    cfg: PredLogConfig,
    rx: std::sync::mpsc::Receiver<Line>,
    written: std::sync::Arc<AtomicU64>,
    queued: std::sync::Arc<AtomicU64>,
) {
    type Files = std::collections::HashMap<(String, &'static str), (String, u32, Open)>;
    let mut open: Files = std::collections::HashMap::new();
    let write = |open: &mut Files,
                 kind: &'static str,
                 model: &str,
                 at_ms: i64,
                 text: &str|
     -> std::io::Result<()> {
        let win = ferry_core::predlog::window_name(at_ms, cfg.window_s);
        let key = (model.to_owned(), kind);
        let dir = cfg.dir.join(ferry_core::predlog::model_dir(model));
        let need_new = match open.get(&key) {
            Some((w, _, o)) => w != &win || o.bytes >= cfg.max_file_bytes,
            None => true,
        };
        if need_new {
            let part = match open.remove(&key) {
                Some((w, part, mut o)) => {
                    o.file.flush()?;
                    if w == win { part + 1 } else { 0 }
                }
                None => 0,
            };
            std::fs::create_dir_all(&dir)?;
            let name = if part == 0 {
                format!("{kind}-{win}.jsonl")
            } else {
                format!("{kind}-{win}.{part}.jsonl")
            };
            let path = dir.join(name);
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            open.insert(
                key.clone(),
                (
                    win.clone(),
                    part,
                    Open {
                        path,
                        file: std::io::BufWriter::with_capacity(64 << 10, file),
                        bytes,
                    },
                ),
            );
            prune(&dir, cfg.max_total_bytes);
        }
        if let Some((_, _, o)) = open.get_mut(&key) {
            o.file.write_all(text.as_bytes())?;
            o.bytes += text.len() as u64;
        }
        Ok(())
    };
    loop {
        let Ok(first) = rx.recv() else { return };
        // Gather for a moment before writing: one wake-up per batch rather
        // than per request keeps the writer off the request threads' cores
        // (the queue holds 16k lines; a flush waits at most this long).
        if !matches!(first, Line::Flush(_)) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut batch = vec![first];
        while let Ok(l) = rx.try_recv() {
            batch.push(l);
            if batch.len() >= 4096 {
                break;
            }
        }
        let mut flushes = Vec::new();
        for l in batch {
            if let Line::Prediction { text, .. } | Line::Feedback { text, .. } = &l {
                queued.fetch_sub(text.len() as u64, Relaxed);
            }
            let r = match &l {
                Line::Prediction { model, at_ms, text } => {
                    written.fetch_add(1, Relaxed);
                    write(&mut open, "predictions", model, *at_ms, text)
                }
                Line::Feedback { model, at_ms, text } => {
                    write(&mut open, "feedback", model, *at_ms, text)
                }
                Line::Flush(_) => Ok(()),
            };
            if let Err(e) = r {
                tracing::warn!("prediction log: {e}");
            }
            if let Line::Flush(tx) = l {
                flushes.push(tx);
            }
        }
        // Written out at the end of each batch: readers see whole lines soon.
        let _ = flush_all(&mut open);
        for f in flushes {
            let _ = f.send(());
        }
    }
}

fn flush_all<K>(
    open: &mut std::collections::HashMap<K, (String, u32, Open)>,
) -> std::io::Result<()> {
    for (_, _, o) in open.values_mut() {
        o.file.flush()?;
        let _ = &o.path;
    }
    Ok(())
}

/// Deletes the oldest `.jsonl` files of `dir` while it holds more than `max`.
fn prune(dir: &Path, max: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf, u64)> = rd
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, e.path(), m.len()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    files.sort();
    for (_, p, len) in files {
        if total <= max {
            break;
        }
        if std::fs::remove_file(&p).is_ok() {
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_rotate_by_size_and_old_files_go() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = PredLogConfig::new(d.path().to_path_buf());
        cfg.max_file_bytes = 200;
        cfg.max_total_bytes = 1000;
        let log = PredLog::start(cfg).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..100 {
            let line = format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(40));
            log.predictions("iris", 1_795_701_930_000, line);
            log.flush();
        }
        let dir = d.path().join("iris");
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .collect();
        let total: u64 = files
            .iter()
            .map(|f| f.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(files.len() > 1, "rotated");
        assert!(total <= 1000 + 200 + 64, "bounded: {total}");
        // Every line that is left is whole JSON.
        for f in files {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            for l in text.lines() {
                assert!(serde_json::from_str::<Value>(l).is_ok(), "{l}");
            }
        }
        assert_eq!(log.dropped.load(Relaxed), 0);
    }

    #[test]
    fn a_second_logs_at_most_max_per_s() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = PredLogConfig::new(d.path().to_path_buf());
        cfg.max_per_s = 10;
        let log = PredLog::start(cfg).unwrap_or_else(|e| panic!("{e}"));
        let n = (0..100).filter(|_| log.sampled()).count();
        assert_eq!(n, 10);
        assert_eq!(log.capped.load(Relaxed), 90);
    }

    #[test]
    fn sampling_takes_every_nth() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = PredLogConfig::new(d.path().to_path_buf());
        cfg.sample = 0.25;
        let log = PredLog::start(cfg).unwrap_or_else(|e| panic!("{e}"));
        let n = (0..100).filter(|_| log.sampled()).count();
        assert_eq!(n, 25);
    }
}
