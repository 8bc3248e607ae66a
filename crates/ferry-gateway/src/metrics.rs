//! `/metrics` in the Prometheus text format (0.0.4): requests by model,
//! version and status code, latency histograms, canary weights, predictions
//! per class, feedback and shadow agreement, and the prediction log's
//! health. Rendered from the live route table and per-version counters.

use crate::gateway::{Gateway, Served, Table};
use crate::stats::{EXPOSED_BUCKETS, Snapshot, bucket_bounds};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn le(b: f64) -> String {
    let s = format!("{b}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }
    fn line(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", esc(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }
}

/// A served version: model, version, role (stable, canary, shadow).
type Row = (String, String, &'static str, Arc<Served>);

pub fn render(gw: &Gateway) -> String {
    let table = gw.table();
    let mut out = String::with_capacity(8 << 10);
    let mut f = Family { out: &mut out };
    let versions = rows(&table);
    let snaps: Vec<_> = versions.iter().map(|v| v.3.stats.snapshot()).collect();
    requests(&mut f, gw, &versions, &snaps);
    rollouts(&mut f, &table);
    predictions(&mut f, &versions, &snaps);
    serving(&mut f, &versions);
    budgets(&mut f, &gw.budgets());
    monitors(&mut f, &gw.monitors());
    prediction_log(&mut f, gw);
    out
}

/// The store's budgets this month (read every 15 s): what each allows,
/// what its runs spent and hold, and each alert threshold reached (1) or
/// not (0), for alerting rules.
fn budgets(f: &mut Family<'_>, standings: &[ferry_cost::budget::Standing]) {
    type Value = fn(&ferry_cost::budget::Standing) -> f64;
    let families: [(&str, &str, Value); 3] = [
        (
            "ferry_budget_monthly_usd",
            "What the budget allows a month, in US dollars.",
            |s| s.budget.monthly_usd,
        ),
        (
            "ferry_budget_spent_usd",
            "What runs under the budget cost this month (UTC), in US dollars.",
            |s| s.spent_usd,
        ),
        (
            "ferry_budget_held_usd",
            "What running runs under the budget are estimated to spend, in US dollars.",
            |s| s.reserved_usd,
        ),
    ];
    for (name, help, value) in families {
        f.head(name, "gauge", help);
        for s in standings {
            let b = s.budget.scope.to_string();
            f.line(name, &[("budget", &b), ("period", &s.period)], value(s));
        }
    }
    f.head(
        "ferry_budget_alert",
        "gauge",
        "1 once this month's spend reached the alert threshold (percent of the budget), else 0.",
    );
    for s in standings {
        let b = s.budget.scope.to_string();
        for t in &s.budget.alerts {
            let reached = s.spent_usd >= s.budget.monthly_usd * f64::from(*t) / 100.0;
            f.line(
                "ferry_budget_alert",
                &[
                    ("budget", &b),
                    ("period", &s.period),
                    ("threshold", &t.to_string()),
                ],
                u8::from(reached),
            );
        }
    }
}

/// The latest result of each monitor check of each served model (`ferry
/// agent` runs them; read every 15 s): what `ferry monitor rules` alerts on.
fn monitors(f: &mut Family<'_>, events: &[ferry_metadata::MonitorEvent]) {
    type Value = fn(&ferry_metadata::MonitorEvent) -> Option<f64>;
    let families: [(&str, &str, Value); 4] = [
        (
            "ferry_monitor_failing",
            "1 while the check fails, else 0 (also while it cannot judge: too few rows, or an error).",
            |e| {
                Some(f64::from(u8::from(
                    e.status == ferry_metadata::CheckStatus::Failing,
                )))
            },
        ),
        (
            "ferry_monitor_value",
            "What the check measured: the share of drifting columns, the predictions' shift, live accuracy, error rate, p99 in ms.",
            |e| e.value,
        ),
        (
            "ferry_monitor_threshold",
            "What the check holds its value to.",
            |e| e.threshold,
        ),
        (
            "ferry_monitor_last_run_timestamp_seconds",
            "When the check last ran (Unix seconds).",
            |e| Some(e.at_ms as f64 / 1000.0),
        ),
    ];
    for (name, help, value) in families {
        f.head(name, "gauge", help);
        for e in events {
            if let Some(v) = value(e) {
                f.line(name, &[("model", &e.model), ("check", &e.check)], v);
            }
        }
    }
}

/// What answering each version cost (`usage.rs`).
fn serving(f: &mut Family<'_>, versions: &[Row]) {
    f.head(
        "ferry_serving_cpu_seconds_total",
        "counter",
        "CPU time spent answering, by model and version (the gateway's and its process runtimes', divided by the time answers took).",
    );
    for (m, v, _, s) in versions {
        f.line(
            "ferry_serving_cpu_seconds_total",
            &[("model", m), ("version", v)],
            s.stats.serving().0,
        );
    }
    f.head(
        "ferry_serving_cost_usd_total",
        "counter",
        "What that CPU time cost at the gateway's machine class's vCPU-hour, in US dollars.",
    );
    for (m, v, _, s) in versions {
        f.line(
            "ferry_serving_cost_usd_total",
            &[("model", m), ("version", v)],
            s.stats.serving().1,
        );
    }
}

/// Every version the table serves, stable first.
fn rows(table: &Table) -> Vec<Row> {
    table
        .models
        .iter()
        .flat_map(|m| {
            let mut v = vec![(
                m.name.clone(),
                m.stable.version.to_string(),
                "stable",
                m.stable.clone(),
            )];
            if let Some(c) = &m.candidate {
                let role = match c.plan.strategy {
                    crate::canary::Strategy::Canary => "canary",
                    crate::canary::Strategy::Shadow => "shadow",
                };
                v.push((
                    m.name.clone(),
                    c.served.version.to_string(),
                    role,
                    c.served.clone(),
                ));
            }
            v
        })
        .collect()
}

/// What was served: versions, requests by code, unrouted requests, latency.
fn requests(f: &mut Family<'_>, gw: &Gateway, versions: &[Row], snaps: &[Snapshot]) {
    f.head(
        "ferry_model_info",
        "gauge",
        "Versions being served, with their role (stable, canary or shadow).",
    );
    for (m, v, role, s) in versions {
        f.line(
            "ferry_model_info",
            &[
                ("model", m),
                ("version", v),
                ("role", role),
                ("platform", s.predictor.platform()),
            ],
            1,
        );
    }

    f.head(
        "ferry_requests_total",
        "counter",
        "Prediction requests answered, by model, version and HTTP status code.",
    );
    for ((m, v, ..), s) in versions.iter().zip(snaps) {
        for (i, n) in s.codes.iter().enumerate() {
            if *n > 0 {
                let code = (i + 100).to_string();
                f.line(
                    "ferry_requests_total",
                    &[("model", m), ("version", v), ("code", &code)],
                    n,
                );
            }
        }
    }
    f.head(
        "ferry_unrouted_requests_total",
        "counter",
        "Prediction requests for models this gateway does not serve.",
    );
    f.line(
        "ferry_unrouted_requests_total",
        &[],
        gw.counters.unrouted.load(Relaxed),
    );

    f.head(
        "ferry_request_duration_seconds",
        "histogram",
        "Time to answer a prediction (parsing excluded), by model and version.",
    );
    let bounds = bucket_bounds();
    for ((m, v, ..), s) in versions.iter().zip(snaps) {
        let mut cum = 0u64;
        let mut i = 0;
        for b in EXPOSED_BUCKETS {
            while i < bounds.len() && bounds[i] <= b * (1.0 + 1e-9) {
                cum += s.buckets[i];
                i += 1;
            }
            f.line(
                "ferry_request_duration_seconds_bucket",
                &[("model", m), ("version", v), ("le", &le(*b))],
                cum,
            );
        }
        let total: u64 = s.buckets.iter().sum();
        f.line(
            "ferry_request_duration_seconds_bucket",
            &[("model", m), ("version", v), ("le", "+Inf")],
            total,
        );
        f.line(
            "ferry_request_duration_seconds_sum",
            &[("model", m), ("version", v)],
            s.latency_sum_us as f64 / 1e6,
        );
        f.line(
            "ferry_request_duration_seconds_count",
            &[("model", m), ("version", v)],
            total,
        );
    }
}

/// Canary weights and deployment steps.
fn rollouts(f: &mut Family<'_>, table: &Table) {
    f.head(
        "ferry_canary_weight",
        "gauge",
        "Percent of a model's traffic routed to its canary (0 when none; a shadow gets mirrored traffic, not routed).",
    );
    for m in &table.models {
        let (v, w) = match &m.candidate {
            Some(c) => (c.served.version.to_string(), c.weight),
            None => (String::new(), 0),
        };
        f.line(
            "ferry_canary_weight",
            &[("model", &m.name), ("version", &v)],
            w,
        );
    }
    f.head(
        "ferry_deployment_step",
        "gauge",
        "The current step of a model's active deployment (1-based; 0 when none).",
    );
    for m in &table.models {
        let step = m.candidate.as_ref().map_or(0, |c| c.deployment.step + 1);
        f.line("ferry_deployment_step", &[("model", &m.name)], step);
    }
}

/// Predicted classes, feedback and shadow agreement.
fn predictions(f: &mut Family<'_>, versions: &[Row], snaps: &[Snapshot]) {
    f.head(
        "ferry_predictions_total",
        "counter",
        "Predicted rows by class (classifiers).",
    );
    for ((m, v, ..), s) in versions.iter().zip(snaps) {
        let mut classes: Vec<_> = s.classes.iter().collect();
        classes.sort();
        for (c, n) in classes {
            f.line(
                "ferry_predictions_total",
                &[("model", m), ("version", v), ("class", c)],
                n,
            );
        }
    }
    f.head(
        "ferry_feedback_total",
        "counter",
        "Labels received through POST /feedback, by outcome.",
    );
    for ((m, v, ..), s) in versions.iter().zip(snaps) {
        f.line(
            "ferry_feedback_total",
            &[("model", m), ("version", v), ("outcome", "correct")],
            s.correct,
        );
        f.line(
            "ferry_feedback_total",
            &[("model", m), ("version", v), ("outcome", "wrong")],
            s.labelled - s.correct.min(s.labelled),
        );
    }
    f.head(
        "ferry_shadow_comparisons_total",
        "counter",
        "Mirrored requests compared with the stable version's answer, by outcome.",
    );
    for ((m, v, role, _), s) in versions.iter().zip(snaps) {
        if *role == "shadow" {
            f.line(
                "ferry_shadow_comparisons_total",
                &[("model", m), ("version", v), ("outcome", "agree")],
                s.agreed,
            );
            f.line(
                "ferry_shadow_comparisons_total",
                &[("model", m), ("version", v), ("outcome", "disagree")],
                s.compared - s.agreed.min(s.compared),
            );
        }
    }
}

/// The prediction log's health (when there is one).
fn prediction_log(f: &mut Family<'_>, gw: &Gateway) {
    if let Some(l) = &gw.predlog {
        f.head(
            "ferry_prediction_log_requests_total",
            "counter",
            "Requests written to the prediction log.",
        );
        f.line(
            "ferry_prediction_log_requests_total",
            &[],
            l.written.load(Relaxed),
        );
        f.head(
            "ferry_prediction_log_capped_total",
            "counter",
            "Sampled requests not logged because of the per-second limit.",
        );
        f.line(
            "ferry_prediction_log_capped_total",
            &[],
            l.capped.load(Relaxed),
        );
        f.head(
            "ferry_prediction_log_dropped_total",
            "counter",
            "Log lines dropped because the writer fell behind.",
        );
        f.line(
            "ferry_prediction_log_dropped_total",
            &[],
            l.dropped.load(Relaxed),
        );
    }
}
