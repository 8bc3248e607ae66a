//! Prometheus alerting rules for the conditions a monitor checks, over the
//! series ferry exports: `ferry_monitor_failing`, `ferry_monitor_value`,
//! `ferry_monitor_threshold` and `ferry_monitor_last_run_timestamp_seconds`
//! (by model and check; `ferry serve`'s `/metrics`), and the gateway's
//! own `ferry_requests_total` and `ferry_request_duration_seconds`. `ferry
//! monitor rules` prints them; `promtool check rules` accepts them.

use ferry_spec::Monitor;
use std::fmt::Write;

/// A PromQL string literal.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// One rule group per monitored model.
pub fn render(monitors: &[&Monitor]) -> String {
    let mut out = String::from(
        "# Prometheus alerting rules for ferry's monitors (ferry monitor rules).\ngroups:\n",
    );
    for m in monitors {
        let model = quoted(&m.model);
        let _ = writeln!(
            out,
            "  - name: {}",
            quoted(&format!("ferry-monitor-{}", m.model))
        );
        out.push_str("    rules:\n");
        let mut rule = |name: &str, expr: String, for_: &str, severity: &str, summary: &str| {
            let _ = writeln!(out, "      - alert: {name}");
            let _ = writeln!(out, "        expr: {}", quoted(&expr));
            let _ = writeln!(out, "        for: {for_}");
            let _ = writeln!(out, "        labels:\n          severity: {severity}");
            let _ = writeln!(
                out,
                "        annotations:\n          summary: {}",
                quoted(summary)
            );
        };
        for (check, name, what) in [
            (
                "drift",
                "FerryModelInputDrift",
                "inputs drift from the reference",
            ),
            (
                "prediction_shift",
                "FerryModelPredictionShift",
                "predicted classes moved from its first window",
            ),
            (
                "accuracy",
                "FerryModelAccuracyDecay",
                "live accuracy is below its threshold",
            ),
        ] {
            rule(
                name,
                format!("ferry_monitor_failing{{model={model},check=\"{check}\"}} == 1"),
                "0m",
                "warning",
                &format!("{{{{ $labels.model }}}}: {what} ({{{{ $value }}}})"),
            );
        }
        let err = m.thresholds.error_rate;
        rule(
            "FerryModelErrorRate",
            format!(
                "sum by (model) (rate(ferry_requests_total{{model={model},code=~\"5..\"}}[5m])) / sum by (model) (rate(ferry_requests_total{{model={model}}}[5m])) > {err}"
            ),
            "5m",
            "critical",
            &format!("{{{{ $labels.model }}}}: more than {err} of requests fail"),
        );
        if let Some(p99) = m.thresholds.p99_ms {
            let s = p99 / 1000.0;
            rule(
                "FerryModelLatencyP99",
                format!(
                    "histogram_quantile(0.99, sum by (le, model) (rate(ferry_request_duration_seconds_bucket{{model={model}}}[5m]))) > {s}"
                ),
                "5m",
                "warning",
                &format!("{{{{ $labels.model }}}}: p99 latency above {p99} ms"),
            );
        }
        let stale = 3 * m.schedule_ms / 1000;
        rule(
            "FerryMonitorStale",
            format!(
                "time() - max by (model) (ferry_monitor_last_run_timestamp_seconds{{model={model}}}) > {stale}"
            ),
            "0m",
            "warning",
            &format!(
                "{{{{ $labels.model }}}}: no monitor check for over {stale} s (is `ferry agent` running?)"
            ),
        );
    }
    out
}
