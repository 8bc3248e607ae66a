//! Monitoring: each served model's prediction log over time. For every
//! window of the log (one file a window, as `ferry serve` writes them):
//! the rows each version answered, the distribution of each categorical
//! column (the predicted class among them), and the drift of every column
//! against the log's oldest window kept, measured by the server's
//! [`DriftEngine`] (the one `ferry check drift` uses, same methods and
//! thresholds). Beside them, each version's live request rate, errors,
//! p99 latency and accuracy on feedback from the gateways' heartbeats.
//!
//! A window is read once: what it holds is kept by its path, size and
//! modification time, so only the window being written is read again.
//! The overview waits a moment for a model's newest window and otherwise
//! says the check is under way (it goes on, and the next view has it).

use crate::pages::{Page, render};
use crate::svg::{self, Series};
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{Path as UrlPath, State};
use ferry_metadata::ModelSummary;
use minijinja::{Value, context};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The log's own fields on every line, never compared as data.
pub use ferry_core::predlog::LOG_FIELDS;

/// Windows shown on a model's page: the newest this many.
const WINDOWS: usize = 24;
/// Rows of a window read for the distributions (all are counted).
const PARSED_ROWS: u64 = 20_000;
/// A column with more distinct values than this is not a distribution
/// worth drawing (and numbers with fractions are not levels at all).
const MAX_LEVELS: usize = 20;
/// At most this many columns' distributions a window, of values at most
/// this long: what a window keeps is bounded whatever the log holds.
const MAX_LEVEL_COLUMNS: usize = 32;
const MAX_LEVEL_CHARS: usize = 64;

/// Measures how a window's columns drifted from a reference window's: the
/// server hands the dashboard the engine `ferry check drift` runs, so the
/// dashboard needs no data engine of its own.
pub trait DriftEngine: Send + Sync {
    /// `current` against `reference` (both prediction log files), over
    /// their columns but [`LOG_FIELDS`].
    fn drift(&self, reference: &Path, current: &Path) -> Result<WindowDrift, String>;
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowDrift {
    pub dataset_drift: bool,
    pub drifted: usize,
    pub columns: Vec<ColumnScore>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnScore {
    pub column: String,
    /// The test or distance, as `ferry check drift` names it.
    pub method: String,
    /// The p-value or the distance.
    pub value: f64,
    pub threshold: f64,
    /// How value and threshold compare for a drift (`p < 0.05`).
    pub rule: String,
    pub drifted: bool,
}

/// What one window of the log holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scan {
    pub rows: u64,
    /// Rows each version answered.
    pub versions: BTreeMap<i64, u64>,
    /// Each categorical column's values and their counts, over the first
    /// [`PARSED_ROWS`] rows.
    pub levels: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Reads one window: every row counted by version, the first
/// [`PARSED_ROWS`] parsed for the distributions of columns whose values
/// are text, booleans or whole numbers (at most [`MAX_LEVELS`] of them).
pub fn scan(path: &Path) -> std::io::Result<Scan> {
    let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut s = Scan::default();
    let mut not_levels: BTreeSet<String> = BTreeSet::new();
    for line in reader.split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        s.rows += 1;
        // The gateway writes `"version":N` on every line: found without a parse.
        if let Some(v) = version_of(&line) {
            *s.versions.entry(v).or_default() += 1;
        }
        if s.rows > PARSED_ROWS {
            continue;
        }
        let Ok(serde_json::Value::Object(row)) = serde_json::from_slice(&line) else {
            continue;
        };
        for (k, v) in row {
            if LOG_FIELDS.contains(&k.as_str()) || not_levels.contains(&k) {
                continue;
            }
            if !s.levels.contains_key(&k) && s.levels.len() >= MAX_LEVEL_COLUMNS {
                continue;
            }
            let level = match v {
                serde_json::Value::String(s) if s.chars().count() <= MAX_LEVEL_CHARS => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    s.levels.remove(&k);
                    not_levels.insert(k);
                    continue;
                }
            };
            let counts = s.levels.entry(k.clone()).or_default();
            *counts.entry(level).or_default() += 1;
            if counts.len() > MAX_LEVELS {
                s.levels.remove(&k);
                not_levels.insert(k);
            }
        }
    }
    Ok(s)
}

fn version_of(line: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"version\":";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits: &[u8] = &line[at..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// A file as it was when read: a changed file is read again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Seen {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl Seen {
    fn of(path: &Path) -> std::io::Result<Seen> {
        let m = std::fs::metadata(path)?;
        Ok(Seen {
            path: path.to_owned(),
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

/// A window's drift from its reference, or why it was not measured.
type Measured = Arc<Result<WindowDrift, String>>;

/// What was read of the log, kept across page views.
pub(crate) struct Memory {
    /// One read of the log at a time: views queue behind it (and find its
    /// windows remembered); the overview does not wait for it.
    reading: Arc<tokio::sync::Semaphore>,
    scans: Mutex<HashMap<Seen, Arc<Scan>>>,
    drifts: Mutex<HashMap<(Seen, Seen), Measured>>,
    /// Models whose newest window is being measured for the overview: a
    /// view meanwhile does not start the same work again.
    measuring: Mutex<BTreeSet<String>>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            reading: Arc::new(tokio::sync::Semaphore::new(1)),
            scans: Mutex::default(),
            drifts: Mutex::default(),
            measuring: Mutex::default(),
        }
    }
}

/// A model being measured, until dropped.
struct Measuring {
    memory: Arc<Memory>,
    model: String,
}

impl Measuring {
    fn start(memory: &Arc<Memory>, model: &str) -> Option<Measuring> {
        lock(&memory.measuring)
            .insert(model.to_owned())
            .then(|| Measuring {
                memory: memory.clone(),
                model: model.to_owned(),
            })
    }
}

impl Drop for Measuring {
    fn drop(&mut self) {
        lock(&self.memory.measuring).remove(&self.model);
    }
}

/// Entries kept of each kind: far more than the pages show.
const REMEMBERED: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Memory {
    fn scan(&self, f: &Seen) -> std::io::Result<Arc<Scan>> {
        if let Some(s) = lock(&self.scans).get(f) {
            return Ok(s.clone());
        }
        let s = Arc::new(scan(&f.path)?);
        let mut m = lock(&self.scans);
        if m.len() >= REMEMBERED {
            m.clear();
        }
        m.insert(f.clone(), s.clone());
        Ok(s)
    }

    fn drift(&self, engine: &dyn DriftEngine, reference: &Seen, current: &Seen) -> Measured {
        let key = (reference.clone(), current.clone());
        if let Some(d) = lock(&self.drifts).get(&key) {
            return d.clone();
        }
        let d = Arc::new(engine.drift(&reference.path, &current.path));
        let mut m = lock(&self.drifts);
        if m.len() >= REMEMBERED {
            m.clear();
        }
        m.insert(key, d.clone());
        d
    }
}

/// A window of a model's log.
#[derive(Debug, Clone)]
struct Window {
    file: Seen,
    name: String,
    start_ms: i64,
    part: u32,
}

/// The prediction windows of `model` in the log under `dir`, oldest first.
fn windows(dir: &Path, model: &str) -> std::io::Result<Vec<Window>> {
    let folder = dir.join(ferry_core::predlog::model_dir(model));
    let entries = match std::fs::read_dir(&folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(("predictions", start_ms, part)) = ferry_core::predlog::parse_file_name(&name)
        else {
            continue;
        };
        if !e.file_type()?.is_file() {
            continue;
        }
        // A file the gateway deleted meanwhile (its oldest, pruned) is no
        // window any more.
        let file = match Seen::of(&e.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push(Window {
            file,
            name,
            start_ms,
            part,
        });
    }
    out.sort_by_key(|w| (w.start_ms, w.part));
    Ok(out)
}

/// A window read, with its drift from the reference.
#[derive(Debug, Clone)]
struct Read {
    window: Window,
    scan: Arc<Scan>,
    /// `None` for the reference itself, or without an engine.
    drift: Option<Measured>,
}

/// The reference (the oldest window kept) and the newest `newest` windows.
fn read(
    memory: &Memory,
    engine: Option<&dyn DriftEngine>,
    dir: &Path,
    model: &str,
    newest: usize,
) -> std::io::Result<(Option<Window>, Vec<Read>)> {
    let all = windows(dir, model)?;
    let Some(reference) = all.first().cloned() else {
        return Ok((None, Vec::new()));
    };
    let from = all.len().saturating_sub(newest);
    let mut out = Vec::new();
    for w in &all[from..] {
        let scan = match memory.scan(&w.file) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let drift = match engine {
            Some(e) if w.file != reference.file => Some(memory.drift(e, &reference.file, &w.file)),
            _ => None,
        };
        out.push(Read {
            window: w.clone(),
            scan,
            drift,
        });
    }
    Ok((Some(reference), out))
}

/// A model's newest window's drift, as the overview shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DriftStatus {
    /// The log has no window of the model.
    NoLog,
    /// One window only: nothing to compare with yet.
    Reference,
    /// Measured: `drifted` of `columns` columns.
    Measured {
        drifted: usize,
        columns: usize,
        dataset_drift: bool,
        window: String,
    },
    /// Still being measured (it goes on).
    Checking,
    /// The engine could not compare the windows.
    Failed { why: String },
    /// The server has no prediction log or no drift engine.
    Off,
}

/// The drift of `model` (one of the registered `models`)'s newest window,
/// waiting at most `wait`.
pub(crate) async fn latest(
    dash: &Dash,
    models: &[ModelSummary],
    model: &str,
    wait: Duration,
) -> DriftStatus {
    let (Some(dir), Some(engine)) = (dash.predictions.clone(), dash.drift.clone()) else {
        return DriftStatus::Off;
    };
    if let Err(e) = owns_its_folder(models, model) {
        return DriftStatus::Failed {
            why: match e {
                DashError::BadRequest(m) | DashError::NotFound(m) => m,
                _ => "the registry could not be read".into(),
            },
        };
    }
    let memory = dash.monitoring.clone();
    let Some(measuring) = Measuring::start(&memory, model) else {
        return DriftStatus::Checking;
    };
    let Ok(permit) = memory.reading.clone().try_acquire_owned() else {
        return DriftStatus::Checking;
    };
    let model = model.to_owned();
    let job = tokio::task::spawn_blocking(move || {
        let _measuring = (measuring, permit);
        read(&memory, Some(engine.as_ref()), &dir, &model, 1)
    });
    let Ok(done) = tokio::time::timeout(wait, job).await else {
        return DriftStatus::Checking;
    };
    match done {
        Err(e) => DriftStatus::Failed { why: e.to_string() },
        Ok(Err(e)) => DriftStatus::Failed { why: e.to_string() },
        Ok(Ok((None, _))) => DriftStatus::NoLog,
        Ok(Ok((Some(_), reads))) => match reads.last().and_then(|r| r.drift.clone()) {
            None => DriftStatus::Reference,
            Some(d) => match d.as_ref() {
                Ok(d) => DriftStatus::Measured {
                    drifted: d.drifted,
                    columns: d.columns.len(),
                    dataset_drift: d.dataset_drift,
                    window: reads
                        .last()
                        .map(|r| r.window.name.clone())
                        .unwrap_or_default(),
                },
                Err(why) => DriftStatus::Failed { why: why.clone() },
            },
        },
    }
}

/// Model `name` is one of the registered `models`, and no other's log
/// goes in the same folder (names that differ only where a folder name
/// cannot follow them): a folder shown is one model's only.
fn owns_its_folder(models: &[ModelSummary], name: &str) -> Result<(), DashError> {
    let dir = ferry_core::predlog::model_dir(name);
    if !models.iter().any(|m| m.name == name) {
        return Err(DashError::NotFound(format!("no model `{name}`")));
    }
    if let Some(other) = models
        .iter()
        .find(|m| m.name != name && ferry_core::predlog::model_dir(&m.name) == dir)
    {
        return Err(DashError::BadRequest(format!(
            "model `{name}` logs its predictions in the same folder (`{dir}`) as model `{}`: \
             their drift cannot be told apart; rename one to monitor it",
            other.name
        )));
    }
    Ok(())
}

/// `/ui/monitoring`: the models the viewer may see that have a log.
pub(crate) async fn models(State(dash): State<Dash>, viewer: Viewer) -> Page {
    let mut shown = Vec::new();
    let models = dash.store.list_models().await?;
    for m in &models {
        if !crate::models::visible(&dash, &viewer, &m.name).await? {
            continue;
        }
        let logged = match &dash.predictions {
            Some(dir) => dir.join(ferry_core::predlog::model_dir(&m.name)).is_dir(),
            None => false,
        };
        let status = latest(&dash, &models, &m.name, Duration::from_millis(50)).await;
        shown.push(context! {
            model => m.name.clone(),
            logged => logged,
            drift => Value::from_serialize(&status),
        });
    }
    render(
        &dash,
        &viewer,
        "monitoring.html",
        context! { page => "monitoring", models => shown, log => dash.predictions.is_some(), engine => dash.drift.is_some() },
    )
}

/// Hours from `zero_ms` to `at_ms` (negative: before).
fn hours(at_ms: i64, zero_ms: i64) -> f64 {
    (at_ms - zero_ms) as f64 / 3_600_000.0
}

/// What the live gateways report of each version of `name`.
async fn serving_now(dash: &Dash, name: &str, now: i64) -> Result<Vec<Value>, DashError> {
    Ok(
        crate::live::by_version(&dash.store.list_gateways().await?, now)
            .into_iter()
            .filter(|((m, _), _)| m == name)
            .map(|((_, v), f)| {
                context! {
                    version => v,
                    error_rate => f.error_rate(),
                    accuracy => f.accuracy(),
                    live => Value::from_serialize(&f),
                }
            })
            .collect(),
    )
}

/// `/ui/monitoring/{model}`.
pub(crate) async fn model(
    State(dash): State<Dash>,
    viewer: Viewer,
    UrlPath(name): UrlPath<String>,
) -> Page {
    if !crate::models::visible(&dash, &viewer, &name).await? {
        return Err(DashError::NotFound(format!("no model `{name}`")));
    }
    owns_its_folder(&dash.store.list_models().await?, &name)?;
    let now = ferry_core::now_ms();
    let (reference, reads) = match dash.predictions.clone() {
        None => (None, Vec::new()),
        Some(dir) => {
            let memory = dash.monitoring.clone();
            let permit = memory
                .reading
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| DashError::Internal(e.to_string()))?;
            let engine = dash.drift.clone();
            let model = name.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                read(&memory, engine.as_deref(), &dir, &model, WINDOWS)
            })
            .await
            .map_err(|e| DashError::Internal(e.to_string()))?
            .map_err(|e| DashError::Internal(format!("the prediction log of `{name}`: {e}")))?
        }
    };
    // Charts count hours back from the newest window's start.
    let zero = reads.last().map_or(now, |r| r.window.start_ms);
    // Each window's drifted columns (p-values and distances do not share
    // a scale; whether each column drifted does), the reference's as 0.
    let mut drifted: Vec<(f64, f64)> = Vec::new();
    let mut most = 0usize;
    let mut rows = Vec::new();
    for r in &reads {
        let x = hours(r.window.start_ms, zero);
        let drift = r.drift.as_deref().map(|d| d.as_ref());
        match drift {
            Some(Ok(d)) => {
                drifted.push((x, d.drifted as f64));
                most = most.max(d.columns.len());
            }
            None if reference.as_ref().is_some_and(|w| w.file == r.window.file) => {
                drifted.push((x, 0.0));
            }
            _ => {}
        }
        rows.push(context! {
            name => r.window.name,
            start_ms => r.window.start_ms,
            rows => r.scan.rows,
            versions => Value::from_serialize(&r.scan.versions),
            drift => match drift {
                None => Value::UNDEFINED,
                Some(Ok(d)) => Value::from_serialize(d),
                Some(Err(e)) => context! { error => e },
            },
        });
    }
    let drift_chart = svg::lines_within(
        &[Series {
            name: format!("columns drifted (of {most})"),
            points: drifted,
        }],
        "hours from the newest window (each window's start)",
        Some((0.0, most as f64)),
    );
    // Rows each version answered, and each categorical column's shares.
    let mut by_version: BTreeMap<i64, Vec<(f64, f64)>> = BTreeMap::new();
    let mut shares: BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>> = BTreeMap::new();
    for r in &reads {
        let x = hours(r.window.start_ms, zero);
        for (v, n) in &r.scan.versions {
            by_version.entry(*v).or_default().push((x, *n as f64));
        }
        for (col, levels) in &r.scan.levels {
            let total: u64 = levels.values().sum();
            for (level, n) in levels {
                shares
                    .entry(col.clone())
                    .or_default()
                    .entry(level.clone())
                    .or_default()
                    .push((x, 100.0 * *n as f64 / total.max(1) as f64));
            }
        }
    }
    let versions_chart = svg::lines(
        &by_version
            .into_iter()
            .map(|(v, points)| Series {
                name: format!("version {v}"),
                points,
            })
            .collect::<Vec<_>>(),
        "hours from the newest window (rows answered)",
    );
    let distributions: Vec<Value> = shares
        .into_iter()
        .map(|(col, levels)| {
            let series: Vec<Series> = levels
                .into_iter()
                .map(|(name, points)| Series { name, points })
                .collect();
            context! {
                column => col,
                svg => Value::from_safe_string(svg::lines_within(&series, "hours from the newest window (% of its rows)", Some((0.0, 100.0)))),
            }
        })
        .collect();
    let live = serving_now(&dash, &name, now).await?;
    // What `ferry agent` found at its last check of each kind.
    let checks = dash.store.latest_monitor_events(Some(&name)).await?;
    let latest = reads.last().and_then(|r| match r.drift.as_deref() {
        Some(Ok(d)) => Some(Value::from_serialize(d)),
        _ => None,
    });
    rows.reverse();
    render(
        &dash,
        &viewer,
        "monitoring_model.html",
        context! {
            page => "monitoring",
            checks => Value::from_serialize(&checks),
            model => name,
            log => dash.predictions.is_some(),
            engine => dash.drift.is_some(),
            reference => reference.map(|r| context! { name => r.name, start_ms => r.start_ms }),
            windows => rows,
            latest => latest,
            drift_chart => Value::from_safe_string(drift_chart),
            versions_chart => Value::from_safe_string(versions_chart),
            distributions => distributions,
            live => live,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_versions_and_the_levels_of_categorical_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("predictions-2026-11-26T14.jsonl");
        let mut text = String::new();
        for i in 0..30 {
            let v = if i < 20 { 1 } else { 2 };
            let label = ["setosa", "versicolor", "virginica"][i % 3];
            text.push_str(&format!(
                "{{\"ts\":1,\"request_id\":\"r{i}\",\"model\":\"iris\",\"version\":{v},\"sepal_length\":{}.5,\"n\":{i},\"prediction\":\"{label}\",\"ok\":true}}\n",
                i % 7
            ));
        }
        std::fs::write(&p, text).unwrap();
        let s = scan(&p).unwrap();
        assert_eq!(s.rows, 30);
        assert_eq!(s.versions, BTreeMap::from([(1, 20), (2, 10)]));
        // Fractions are not levels; 30 distinct integers are too many.
        assert_eq!(
            s.levels.keys().collect::<Vec<_>>(),
            vec!["ok", "prediction"]
        );
        assert_eq!(s.levels["prediction"]["setosa"], 10);
        assert_eq!(version_of(b"{\"version\":12,\"x\":1}"), Some(12));
        assert_eq!(version_of(b"{\"x\":1}"), None);
    }
}
