//! A monitor's checks of one served version over one window: input drift
//! against the version's reference (`ferry check drift`'s engine, methods
//! and thresholds), the predicted classes' shift from the version's first
//! window, live accuracy from feedback labels, and the gateways' error
//! rate and p99 latency against objectives. Each gives one
//! [`MonitorEvent`]; a check that cannot judge says why (`insufficient`,
//! `error`) instead of passing.

use crate::log::{self, LogFile};
use ferry_data::show::count;
use ferry_metadata::{CheckStatus, LiveFigures, MonitorEvent};
use ferry_spec::Monitor;
use serde_json::json;
use std::path::Path;

/// What the checks of one tick are given.
pub struct Inputs<'a> {
    pub monitor: &'a Monitor,
    /// The version the alias serves, and when it was registered.
    pub version: Option<(i64, i64)>,
    /// The reference data the version is compared with, or why there is none.
    pub reference: Result<&'a Path, String>,
    /// The prediction log's folder (`ferry serve --log-predictions`).
    pub log_dir: &'a Path,
    /// What live gateways measured of the version over their last minute.
    pub live: &'a [LiveFigures],
    pub now_ms: i64,
}

/// The checks' names, as events and metrics carry them.
pub const CHECKS: [&str; 5] = [
    "drift",
    "prediction_shift",
    "accuracy",
    "error_rate",
    "p99_ms",
];

struct Event<'a> {
    i: &'a Inputs<'a>,
    check: &'static str,
}

impl Event<'_> {
    fn make(
        &self,
        status: CheckStatus,
        value: Option<f64>,
        threshold: Option<f64>,
        rows: u64,
        summary: String,
        detail: serde_json::Value,
    ) -> MonitorEvent {
        let i = self.i;
        MonitorEvent {
            event_id: ferry_core::RunId::generate().as_str().to_owned(),
            model: i.monitor.model.clone(),
            version: i.version.map(|v| v.0),
            check: self.check.to_owned(),
            status,
            value,
            threshold,
            rows,
            window_start_ms: i.now_ms - i.monitor.window_ms as i64,
            window_end_ms: i.now_ms,
            at_ms: i.now_ms,
            summary,
            detail,
        }
    }

    fn says(&self, status: CheckStatus, rows: u64, summary: String) -> MonitorEvent {
        self.make(status, None, None, rows, summary, json!({}))
    }
}

/// Runs every check the monitor declares (accuracy only with a threshold,
/// p99 only with an objective).
pub fn run(i: &Inputs<'_>) -> Vec<MonitorEvent> {
    let from = i.now_ms - i.monitor.window_ms as i64;
    let files = match log::files(i.log_dir, &i.monitor.model) {
        Ok(f) => f,
        Err(e) => {
            let why = format!(
                "cannot read the prediction log in {}: {e}",
                i.log_dir.display()
            );
            return CHECKS
                .iter()
                .map(|check| Event { i, check }.says(CheckStatus::Error, 0, why.clone()))
                .collect();
        }
    };
    let window = log::in_window(&files, "predictions", from, i.now_ms);
    let mut out = vec![drift(i, &window), prediction_shift(i, &files, &window)];
    if let Some(floor) = i.monitor.thresholds.accuracy {
        let feedback = log::in_window(&files, "feedback", from, i.now_ms);
        out.push(accuracy(i, &feedback, floor));
    }
    out.push(error_rate(i));
    if let Some(objective) = i.monitor.thresholds.p99_ms {
        out.push(p99(i, objective));
    }
    out
}

fn drift(i: &Inputs<'_>, window: &[&LogFile]) -> MonitorEvent {
    let e = Event { i, check: "drift" };
    let m = i.monitor;
    let need = m.min_rows.max(1);
    let too_few = |rows: u64| {
        e.says(
            CheckStatus::Insufficient,
            rows,
            format!(
                "{} predictions in the window; {} needed to judge drift",
                count(rows),
                count(need)
            ),
        )
    };
    if window.is_empty() {
        return too_few(0);
    }
    let reference = match &i.reference {
        Ok(r) => *r,
        Err(why) => return e.says(CheckStatus::Error, 0, why.clone()),
    };
    // One pass over the window: the drift engine counts its rows.
    match compare(m, reference, window) {
        Ok(d) if d.current_rows < need => too_few(d.current_rows),
        Ok(d) => drift_event(&e, &d, d.current_rows),
        Err(Compared::NoRows) => too_few(0),
        Err(Compared::Failed(why)) => e.says(CheckStatus::Error, 0, why),
    }
}

/// Why a comparison gave no report.
enum Compared {
    /// The window's files hold no row.
    NoRows,
    Failed(String),
}

impl From<ferry_data::DataError> for Compared {
    fn from(e: ferry_data::DataError) -> Self {
        Compared::Failed(e.to_string())
    }
}

/// `ferry check drift` over the reference and the window's files, on the
/// monitored columns (default: the inputs both have).
fn compare(
    m: &Monitor,
    reference: &Path,
    window: &[&LogFile],
) -> Result<ferry_data::DriftReport, Compared> {
    use ferry_data::{Table, TableSpec};
    let r = Table::open(&TableSpec::new(reference.to_string_lossy()))?;
    let paths = window.iter().map(|f| f.path.clone()).collect();
    let c = Table::open_files(paths, &TableSpec::new("the prediction log's window"))?;
    let names =
        |t: &Table| -> Vec<String> { t.schema.fields().iter().map(|f| f.name().clone()).collect() };
    let logged = names(&c);
    let columns: Vec<String> = if m.columns.is_empty() {
        names(&r)
            .into_iter()
            .filter(|n| logged.contains(n))
            .filter(|n| {
                !ferry_core::predlog::LOG_FIELDS.contains(&n.as_str())
                    && !ferry_core::predlog::is_output(n)
            })
            .collect()
    } else {
        let missing: Vec<&String> = m.columns.iter().filter(|c| !logged.contains(c)).collect();
        if !missing.is_empty() {
            return Err(Compared::Failed(format!(
                "monitor.columns: the prediction log has no column {}",
                missing
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        m.columns.clone()
    };
    if columns.is_empty() {
        return Err(Compared::Failed(
            "the reference and the prediction log share no input column".into(),
        ));
    }
    let opts = ferry_data::DriftOptions {
        columns: Some(columns),
        method: m
            .method
            .as_deref()
            .and_then(ferry_data::drift::Method::parse),
        threshold: m.thresholds.drift,
        drift_share: m.thresholds.drift_share,
        ..Default::default()
    };
    match ferry_data::drift(&r, &c, &opts) {
        Err(ferry_data::DataError::Empty { source_name }) if source_name != r.label() => {
            Err(Compared::NoRows)
        }
        other => Ok(other?),
    }
}

fn drift_event(e: &Event<'_>, d: &ferry_data::DriftReport, rows: u64) -> MonitorEvent {
    let rule = |c: &ferry_data::drift::ColumnDrift| {
        let v = if c.value != 0.0 && c.value.abs() < 0.001 {
            format!("{:.2e}", c.value)
        } else {
            format!("{:.3}", c.value)
        };
        let op = c.method.drifts_when();
        let t = if c.method == ferry_data::drift::Method::DomainClassifier {
            format!("{:.3}", c.threshold)
        } else {
            c.threshold.to_string()
        };
        format!("{} {v} {op} {t}", c.method_label)
    };
    let drifted: Vec<String> = d
        .columns
        .iter()
        .filter(|c| c.drifted)
        .map(|c| {
            let words = c
                .text
                .as_ref()
                .and_then(|t| t.classifier.as_ref())
                .filter(|k| !k.typical_words_current.is_empty())
                .map(|k| {
                    format!(
                        " (words now typical: {})",
                        k.typical_words_current[..k.typical_words_current.len().min(5)].join(", ")
                    )
                })
                .unwrap_or_default();
            format!("{}: {}{words}", c.column, rule(c))
        })
        .collect();
    let summary = if d.dataset_drift {
        format!(
            "drift in {} over {} predictions",
            drifted.join("; "),
            count(rows)
        )
    } else if drifted.is_empty() {
        format!("no column drifts over {} predictions", count(rows))
    } else {
        format!(
            "{} of {} columns drift ({}), under the share that makes the inputs drift",
            drifted.len(),
            d.columns.len(),
            drifted.join("; ")
        )
    };
    let columns: Vec<serde_json::Value> = d
        .columns
        .iter()
        .map(|c| {
            let mut v = json!({"column": c.column, "kind": c.kind, "method": c.method_label, "value": c.value, "threshold": c.threshold, "p_value": c.method.is_p_value(), "drifted": c.drifted});
            // A text column also says which words tell the window apart.
            if let Some(k) = c.text.as_ref().and_then(|t| t.classifier.as_ref()) {
                let top = |w: &[String]| w.iter().take(10).cloned().collect::<Vec<_>>();
                v["typical_words_current"] = json!(top(&k.typical_words_current));
                v["typical_words_reference"] = json!(top(&k.typical_words_reference));
            }
            v
        })
        .collect();
    e.make(
        if d.dataset_drift {
            CheckStatus::Failing
        } else {
            CheckStatus::Ok
        },
        Some(d.drifted_share),
        Some(d.drift_share_threshold),
        rows,
        summary,
        json!({"columns": columns, "reference_rows": d.reference_rows}),
    )
}

fn prediction_shift(i: &Inputs<'_>, files: &[LogFile], window: &[&LogFile]) -> MonitorEvent {
    let e = Event {
        i,
        check: "prediction_shift",
    };
    let m = i.monitor;
    let Some((version, created_ms)) = i.version else {
        return e.says(
            CheckStatus::Error,
            0,
            format!("`{}@{}` names no version", m.model, m.alias),
        );
    };
    let read = log::predictions(window, &m.model, version).and_then(|now| {
        Ok((
            now,
            log::first_window(files, &m.model, version, created_ms, m.min_rows)?,
        ))
    });
    let (now, (first_files, first)) = match read {
        Ok(x) => x,
        Err(err) => return e.says(CheckStatus::Error, 0, format!("cannot read the log: {err}")),
    };
    let need = m.min_rows.max(1);
    if now.rows < need || first.rows < need {
        return e.says(
            CheckStatus::Insufficient,
            now.rows,
            format!(
                "version {version}: {} predictions in the window, {} in its first; {} needed in each",
                count(now.rows),
                count(first.rows),
                count(need)
            ),
        );
    }
    let shift = ferry_stats::class_shift(&now.histogram(), &first.histogram()).unwrap_or(0.0);
    let limit = m.thresholds.prediction_shift;
    let failing = shift > limit;
    e.make(
        if failing { CheckStatus::Failing } else { CheckStatus::Ok },
        Some(shift),
        Some(limit),
        now.rows,
        format!(
            "version {version}'s predicted classes moved {:.3} (total variation) from its first window {} {limit}, over {} predictions",
            shift,
            if failing { ">" } else { "<=" },
            count(now.rows)
        ),
        json!({"window": now.classes, "first_window": first.classes, "first_window_from_ms": first_files.first().map(|f| f.start_ms)}),
    )
}

fn accuracy(i: &Inputs<'_>, feedback: &[&LogFile], floor: f64) -> MonitorEvent {
    let e = Event {
        i,
        check: "accuracy",
    };
    let m = i.monitor;
    let Some((version, _)) = i.version else {
        return e.says(
            CheckStatus::Error,
            0,
            format!("`{}@{}` names no version", m.model, m.alias),
        );
    };
    let l = match log::labels(feedback, &m.model, version) {
        Ok(l) => l,
        Err(err) => {
            return e.says(
                CheckStatus::Error,
                0,
                format!("cannot read the feedback: {err}"),
            );
        }
    };
    let need = m.min_labels.max(1);
    if l.labelled < need {
        return e.says(
            CheckStatus::Insufficient,
            l.labelled,
            format!(
                "version {version}: {} labels in the window; {} needed to judge accuracy",
                count(l.labelled),
                count(need)
            ),
        );
    }
    let acc = l.correct as f64 / l.labelled as f64;
    let failing = acc < floor;
    e.make(
        if failing {
            CheckStatus::Failing
        } else {
            CheckStatus::Ok
        },
        Some(acc),
        Some(floor),
        l.labelled,
        format!(
            "version {version}'s live accuracy {acc:.3} {} {floor} over {} labels",
            if failing { "<" } else { ">=" },
            count(l.labelled)
        ),
        json!({"labelled": l.labelled, "correct": l.correct}),
    )
}

/// What the live gateways saw of the version: requests, errors, the
/// worst p99.
fn live(i: &Inputs<'_>) -> (u64, u64, Option<f64>) {
    let v = i.version.map(|v| v.0);
    let of = i.live.iter().filter(|f| Some(f.version) == v);
    of.fold((0, 0, None), |(r, e, p), f| {
        (
            r + f.requests,
            e + f.errors,
            match (p, f.p99_ms) {
                (Some(a), Some(b)) => Some(f64::max(a, b)),
                (a, b) => a.or(b),
            },
        )
    })
}

fn error_rate(i: &Inputs<'_>) -> MonitorEvent {
    let e = Event {
        i,
        check: "error_rate",
    };
    let (requests, errors, _) = live(i);
    if requests == 0 {
        return e.says(
            CheckStatus::Insufficient,
            0,
            "no request in the gateways' last minute".into(),
        );
    }
    let rate = errors as f64 / requests as f64;
    let limit = i.monitor.thresholds.error_rate;
    let failing = rate > limit;
    e.make(
        if failing {
            CheckStatus::Failing
        } else {
            CheckStatus::Ok
        },
        Some(rate),
        Some(limit),
        requests,
        format!(
            "error rate {rate:.3} {} {limit} over {} requests in the gateways' last minute",
            if failing { ">" } else { "<=" },
            count(requests)
        ),
        json!({"requests": requests, "errors": errors}),
    )
}

fn p99(i: &Inputs<'_>, objective: f64) -> MonitorEvent {
    let e = Event { i, check: "p99_ms" };
    let (requests, _, p99) = live(i);
    let Some(p99) = p99 else {
        return e.says(
            CheckStatus::Insufficient,
            requests,
            "no latency measured in the gateways' last minute".into(),
        );
    };
    let failing = p99 > objective;
    e.make(
        if failing {
            CheckStatus::Failing
        } else {
            CheckStatus::Ok
        },
        Some(p99),
        Some(objective),
        requests,
        format!(
            "p99 latency {p99:.1} ms {} the objective {objective} ms",
            if failing { ">" } else { "<=" }
        ),
        json!({"requests": requests}),
    )
}
