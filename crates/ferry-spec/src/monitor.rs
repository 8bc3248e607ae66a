//! What closes the loop: `monitor:` (the checks run on the served model's
//! prediction log and feedback, and who is told), `on:` (what starts the
//! pipeline besides a person) and `deploy:` (how a candidate a triggered
//! run registered reaches production). Decoded with the rest of the spec;
//! what they name (the registered model, a path) is settled once the whole
//! spec is read.

use crate::diag::Sink;
use crate::load::{Sp, map_entries, parse_duration, string, string_list};
use crate::node::{Kind, Node, Pos};
use ferry_core::clock::Cron;

pub const MONITOR_KEYS: &[&str] = &[
    "model",
    "alias",
    "window",
    "schedule",
    "columns",
    "method",
    "min_rows",
    "min_labels",
    "reference",
    "thresholds",
    "alerts",
];
pub const THRESHOLD_KEYS: &[&str] = &[
    "drift",
    "drift_share",
    "prediction_shift",
    "accuracy",
    "error_rate",
    "p99_ms",
];
pub const ALERT_KEYS: &[&str] = &["webhook_env", "secret_env", "cooldown"];
pub const ON_KEYS: &[&str] = &[
    "schedule",
    "drift",
    "decay",
    "data",
    "manual",
    "cooldown",
    "concurrency",
];
pub const WATCH_KEYS: &[&str] = &["model"];
pub const DECAY_KEYS: &[&str] = &["model", "metric", "below"];
pub const DEPLOY_KEYS: &[&str] = &[
    "strategy",
    "steps",
    "interval",
    "deadline",
    "alias",
    "max_error_rate",
    "max_p99_ms",
    "max_prediction_shift",
    "min_accuracy",
    "min_requests",
];

/// `monitor:`: the checks run over a sliding window of the served model's
/// prediction log and feedback.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    /// The registered model watched (`register.model` unless given).
    pub model: String,
    /// The alias whose version is watched (`production`).
    pub alias: String,
    /// How far back the log is read (`1h`).
    pub window_ms: u64,
    /// How often the checks run (`5m`).
    pub schedule_ms: u64,
    /// The input columns compared (empty: every column the reference and
    /// the log share).
    pub columns: Vec<String>,
    /// One drift method for every column (default: chosen per column, as
    /// `ferry check drift` does).
    pub method: Option<String>,
    /// Below this many logged rows a window is not judged.
    pub min_rows: u64,
    /// Below this many labels live accuracy is not judged.
    pub min_labels: u64,
    /// The reference data (a project path): `reference:`, else the table
    /// `register.signature.from` names. Its sample is kept at registration.
    pub reference: Option<String>,
    pub thresholds: Thresholds,
    pub alerts: Option<Alerts>,
}

/// What a monitor holds each check to.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// A column drifts past this (the method's own threshold unless given).
    pub drift: Option<f64>,
    /// The inputs drift when this share of columns drift (0.5).
    pub drift_share: f64,
    /// The predicted classes' total variation from the version's first window (0.2).
    pub prediction_shift: f64,
    /// Live accuracy from feedback below this fails (none: not judged).
    pub accuracy: Option<f64>,
    /// The gateways' error rate above this fails (0.05).
    pub error_rate: f64,
    /// The gateways' p99 latency above this fails (none: not judged).
    pub p99_ms: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            drift: None,
            drift_share: 0.5,
            prediction_shift: 0.2,
            accuracy: None,
            error_rate: 0.05,
            p99_ms: None,
        }
    }
}

/// Who is told when a check fails and when it recovers. The webhook's URL
/// and the signing secret are read from the environment when an alert is
/// sent: neither is ever written in a committed file.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerts {
    pub webhook_env: String,
    pub secret_env: Option<String>,
    /// A failing check is told again at most this often (`1h`).
    pub cooldown_ms: u64,
}

/// `on:`: what starts the pipeline besides a person.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggers {
    pub schedule: Option<Cron>,
    /// The watched model's input drift (`iris@production`).
    pub drift: Option<ModelWatch>,
    pub decay: Option<Decay>,
    /// New data under these project paths (pointer files or folders).
    pub data: Vec<String>,
    /// `ferry trigger` may start it (true).
    pub manual: bool,
    /// A trigger that fires again within this of its last run is ignored
    /// and recorded (`1h`).
    pub cooldown_ms: u64,
    /// At most this many triggered runs of the pipeline at once (1).
    pub concurrency: u32,
}

/// A model by name and alias: `iris@production`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelWatch {
    pub model: String,
    pub alias: String,
}

impl std::fmt::Display for ModelWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.model, self.alias)
    }
}

/// `decay:`: a live metric from feedback fell below a floor.
#[derive(Debug, Clone, PartialEq)]
pub struct Decay {
    pub watch: ModelWatch,
    pub metric: String,
    pub below: f64,
}

/// `deploy:`: the rollout a triggered run's candidate gets, in `ferry
/// deploy`'s terms (its defaults where left out).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeployPolicy {
    pub strategy: Option<String>,
    pub steps: Option<Vec<u32>>,
    pub interval: Option<String>,
    pub deadline: Option<String>,
    pub alias: Option<String>,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub max_prediction_shift: Option<f64>,
    pub min_accuracy: Option<f64>,
    pub min_requests: Option<u64>,
}

fn number(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<f64> {
    match v.kind {
        Kind::Int(n) => Some(n as f64),
        Kind::Float(f) if f.is_finite() => Some(f),
        ref other => {
            sink.err(
                v.pos,
                path,
                format!("expected a number, found {}", other.type_name()),
            );
            None
        }
    }
}

fn share(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<f64> {
    let x = number(v, path, sink)?;
    if !(0.0..=1.0).contains(&x) {
        sink.err(
            v.pos,
            path,
            format!("expected a share from 0 to 1, found {x}"),
        );
        return None;
    }
    Some(x)
}

fn positive(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<f64> {
    let x = number(v, path, sink)?;
    if x <= 0.0 {
        sink.err(v.pos, path, format!("expected a number above 0, found {x}"));
        return None;
    }
    Some(x)
}

fn count(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<u64> {
    match v.kind {
        Kind::Int(n) if n >= 0 => Some(n as u64),
        ref other => {
            sink.err(
                v.pos,
                path,
                format!(
                    "expected a whole number of 0 or more, found {}",
                    other.type_name()
                ),
            );
            None
        }
    }
}

fn boolean(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<bool> {
    match v.kind {
        Kind::Bool(b) => Some(b),
        ref other => {
            sink.err(
                v.pos,
                path,
                format!("expected true or false, found {}", other.type_name()),
            );
            None
        }
    }
}

/// A duration of at least a second (`30s`, `5m`, `1h`): its milliseconds
/// and the text as written.
fn duration(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<(u64, String)> {
    let (s, pos) = string(v, path, sink)?;
    match parse_duration(&s) {
        Some(d) if d.as_millis() >= 1000 => Some((d.as_millis() as u64, s)),
        _ => {
            sink.err_hint(
                pos,
                path,
                format!("invalid duration `{s}`"),
                "write `30s`, `5m`, `1h` or `1h30m` (a second at least)",
            );
            None
        }
    }
}

/// An environment variable's name (what a secret is read from).
fn env_name(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<String> {
    let (s, pos) = string(v, path, sink)?;
    let ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if !ok {
        sink.err_hint(
            pos,
            path,
            format!("`{s}` is not an environment variable's name"),
            "name the variable that holds the value (`FERRY_ALERT_WEBHOOK`), never the value itself: a webhook's URL and a signing secret stay out of committed files",
        );
        return None;
    }
    Some(s)
}

/// `iris@production`, or `iris` (its `production`).
fn watch(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<Sp<ModelWatch>> {
    let (s, pos) = string(v, path, sink)?;
    let (model, alias) = s.split_once('@').unwrap_or((&s, "production"));
    let ok = |x: &str| !x.is_empty() && !x.contains(char::is_whitespace);
    if !ok(model) || !ok(alias) {
        sink.err_hint(
            pos,
            path,
            format!("`{s}` is not a model and alias"),
            "write `MODEL@ALIAS`, e.g. `iris@production`",
        );
        return None;
    }
    Some((
        ModelWatch {
            model: model.to_owned(),
            alias: alias.to_owned(),
        },
        pos,
    ))
}

/// `monitor:` as written; the model is settled against `register:`.
#[derive(Default)]
pub(crate) struct RawMonitor {
    pub(crate) pos: Option<Pos>,
    pub(crate) model: Option<Sp<String>>,
    pub(crate) reference: Option<Sp<String>>,
    pub(crate) monitor: Option<Monitor>,
}

pub(crate) fn decode_monitor(v: &Node, sink: &mut Sink<'_>) -> RawMonitor {
    let mut raw = RawMonitor {
        pos: Some(v.pos),
        ..Default::default()
    };
    let Some(entries) = map_entries(v, "monitor", MONITOR_KEYS, sink) else {
        return raw;
    };
    let mut m = Monitor {
        model: String::new(),
        alias: "production".into(),
        window_ms: 3_600_000,
        schedule_ms: 300_000,
        columns: Vec::new(),
        method: None,
        min_rows: 100,
        min_labels: 50,
        reference: None,
        thresholds: Thresholds::default(),
        alerts: None,
    };
    for (k, x) in entries {
        let p = format!("monitor.{}", k.name);
        match k.name.as_str() {
            "model" => raw.model = string(x, &p, sink),
            "alias" => {
                if let Some((a, _)) = string(x, &p, sink) {
                    m.alias = a;
                }
            }
            "window" => m.window_ms = duration_ms(x, &p, sink).unwrap_or(m.window_ms),
            "schedule" => m.schedule_ms = duration_ms(x, &p, sink).unwrap_or(m.schedule_ms),
            "columns" => m.columns = string_list(x, &p, sink).into_iter().map(|c| c.0).collect(),
            "method" => {
                if let Some((s, pos)) = string(x, &p, sink) {
                    if crate::DRIFT_METHODS.contains(&s.as_str()) {
                        m.method = Some(s);
                    } else {
                        sink.err_hint(
                            pos,
                            &p,
                            format!("unknown method `{s}`"),
                            format!("methods: {}", crate::DRIFT_METHODS.join(", ")),
                        );
                    }
                }
            }
            "min_rows" => m.min_rows = count(x, &p, sink).unwrap_or(m.min_rows),
            "min_labels" => m.min_labels = count(x, &p, sink).unwrap_or(m.min_labels),
            "reference" => raw.reference = string(x, &p, sink),
            "thresholds" => m.thresholds = thresholds(x, sink),
            "alerts" => m.alerts = alerts(x, sink),
            _ => {}
        }
    }
    raw.monitor = Some(m);
    raw
}

fn thresholds(v: &Node, sink: &mut Sink<'_>) -> Thresholds {
    let mut t = Thresholds::default();
    let Some(entries) = map_entries(v, "monitor.thresholds", THRESHOLD_KEYS, sink) else {
        return t;
    };
    for (k, x) in entries {
        let p = format!("monitor.thresholds.{}", k.name);
        match k.name.as_str() {
            "drift" => t.drift = positive(x, &p, sink),
            "drift_share" => t.drift_share = share(x, &p, sink).unwrap_or(t.drift_share),
            "prediction_shift" => {
                t.prediction_shift = share(x, &p, sink).unwrap_or(t.prediction_shift)
            }
            "accuracy" => t.accuracy = share(x, &p, sink),
            "error_rate" => t.error_rate = share(x, &p, sink).unwrap_or(t.error_rate),
            "p99_ms" => t.p99_ms = positive(x, &p, sink),
            _ => {}
        }
    }
    t
}

fn alerts(v: &Node, sink: &mut Sink<'_>) -> Option<Alerts> {
    let entries = map_entries(v, "monitor.alerts", ALERT_KEYS, sink)?;
    let mut webhook = None;
    let named = entries.iter().any(|(k, _)| k.name == "webhook_env");
    let mut a = Alerts {
        webhook_env: String::new(),
        secret_env: None,
        cooldown_ms: 3_600_000,
    };
    for (k, x) in entries {
        let p = format!("monitor.alerts.{}", k.name);
        match k.name.as_str() {
            "webhook_env" => webhook = env_name(x, &p, sink),
            "secret_env" => a.secret_env = env_name(x, &p, sink),
            "cooldown" => a.cooldown_ms = duration_ms(x, &p, sink).unwrap_or(a.cooldown_ms),
            _ => {}
        }
    }
    match webhook {
        Some(w) => {
            a.webhook_env = w;
            Some(a)
        }
        None if named => None,
        None => {
            sink.err_hint(
                v.pos,
                "monitor.alerts.webhook_env",
                "alerts need `webhook_env`",
                "the name of the environment variable holding the webhook's URL",
            );
            None
        }
    }
}

pub(crate) fn decode_on(v: &Node, sink: &mut Sink<'_>) -> Option<Triggers> {
    let entries = map_entries(v, "on", ON_KEYS, sink)?;
    let mut t = Triggers {
        schedule: None,
        drift: None,
        decay: None,
        data: Vec::new(),
        manual: true,
        cooldown_ms: 3_600_000,
        concurrency: 1,
    };
    for (k, x) in entries {
        let p = format!("on.{}", k.name);
        match k.name.as_str() {
            "schedule" => {
                if let Some((s, pos)) = string(x, &p, sink) {
                    match Cron::parse(&s) {
                        Ok(c) => t.schedule = Some(c),
                        Err(e) => sink.err(pos, &p, e),
                    }
                }
            }
            "drift" => t.drift = model_entry(x, &p, sink).map(|(w, _)| w),
            "decay" => t.decay = decay(x, &p, sink),
            "data" => {
                for (d, pos) in string_list(x, &p, sink) {
                    match crate::normalize_path(&d) {
                        Ok(n) => t.data.push(n),
                        Err(e) => sink.err(pos, &p, e),
                    }
                }
            }
            "manual" => t.manual = boolean(x, &p, sink).unwrap_or(true),
            "cooldown" => t.cooldown_ms = duration_ms(x, &p, sink).unwrap_or(t.cooldown_ms),
            "concurrency" => match count(x, &p, sink) {
                Some(0) => sink.err(x.pos, &p, "at least one run must be allowed"),
                Some(n) => t.concurrency = n.min(64) as u32,
                None => {}
            },
            _ => {}
        }
    }
    Some(t)
}

/// `{model: iris@production}` or the bare `iris@production`.
fn model_entry(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<Sp<ModelWatch>> {
    if !matches!(v.kind, Kind::Map(_)) {
        return watch(v, path, sink);
    }
    let entries = map_entries(v, path, WATCH_KEYS, sink)?;
    let found = entries.iter().find(|(k, _)| k.name == "model");
    match found {
        Some((_, m)) => watch(m, &format!("{path}.model"), sink),
        None => {
            sink.err(
                v.pos,
                &format!("{path}.model"),
                "`model` is required (`iris@production`)",
            );
            None
        }
    }
}

fn decay(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<Decay> {
    let entries = map_entries(v, path, DECAY_KEYS, sink)?;
    let (mut watched, mut metric, mut below) = (None, "accuracy".to_owned(), None);
    for (k, x) in entries {
        let p = format!("{path}.{}", k.name);
        match k.name.as_str() {
            "model" => watched = watch(x, &p, sink).map(|w| w.0),
            "metric" => {
                if let Some((m, pos)) = string(x, &p, sink) {
                    if m == "accuracy" {
                        metric = m;
                    } else {
                        sink.err_hint(
                            pos,
                            &p,
                            format!("unknown live metric `{m}`"),
                            "live metrics from feedback: accuracy",
                        );
                    }
                }
            }
            "below" => below = share(x, &p, sink),
            _ => {}
        }
    }
    if watched.is_none() {
        sink.err(
            v.pos,
            &format!("{path}.model"),
            "`model` is required (`iris@production`)",
        );
    }
    if below.is_none() {
        sink.err(
            v.pos,
            &format!("{path}.below"),
            "`below` is required (a share, e.g. 0.9)",
        );
    }
    Some(Decay {
        watch: watched?,
        metric,
        below: below?,
    })
}

/// A duration's milliseconds.
fn duration_ms(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<u64> {
    duration(v, path, sink).map(|d| d.0)
}

pub(crate) fn decode_deploy(v: &Node, sink: &mut Sink<'_>) -> Option<DeployPolicy> {
    let entries = map_entries(v, "deploy", DEPLOY_KEYS, sink)?;
    let mut d = DeployPolicy::default();
    for (k, x) in entries {
        let p = format!("deploy.{}", k.name);
        match k.name.as_str() {
            "strategy" => {
                if let Some((s, pos)) = string(x, &p, sink) {
                    if s == "canary" || s == "shadow" {
                        d.strategy = Some(s);
                    } else {
                        sink.err_hint(
                            pos,
                            &p,
                            format!("unknown strategy `{s}`"),
                            "canary or shadow",
                        );
                    }
                }
            }
            "steps" => d.steps = steps(x, &p, sink),
            "interval" => d.interval = duration(x, &p, sink).map(|d| d.1),
            "deadline" => d.deadline = duration(x, &p, sink).map(|d| d.1),
            "alias" => d.alias = string(x, &p, sink).map(|s| s.0),
            "max_error_rate" => d.max_error_rate = share(x, &p, sink),
            "max_p99_ms" => d.max_p99_ms = positive(x, &p, sink),
            "max_prediction_shift" => d.max_prediction_shift = share(x, &p, sink),
            "min_accuracy" => d.min_accuracy = share(x, &p, sink),
            "min_requests" => d.min_requests = count(x, &p, sink),
            _ => {}
        }
    }
    Some(d)
}

/// Percent steps that rise to 100: `[10, 50, 100]`.
fn steps(v: &Node, path: &str, sink: &mut Sink<'_>) -> Option<Vec<u32>> {
    let Kind::Seq(items) = &v.kind else {
        sink.err(
            v.pos,
            path,
            format!("expected a list of percents, found {}", v.kind.type_name()),
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, x) in items.iter().enumerate() {
        match x.kind {
            Kind::Int(n) if (1..=100).contains(&n) => out.push(n as u32),
            _ => {
                sink.err(
                    x.pos,
                    &format!("{path}[{i}]"),
                    "expected a percent from 1 to 100",
                );
                return None;
            }
        }
    }
    if !out.windows(2).all(|w| w[0] < w[1]) || out.last() != Some(&100) {
        sink.err_hint(
            v.pos,
            path,
            "steps must rise and end at 100",
            "e.g. [10, 50, 100]",
        );
        return None;
    }
    Some(out)
}
