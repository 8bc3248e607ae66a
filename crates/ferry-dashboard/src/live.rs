//! What the gateways report with each heartbeat, summed across them: each
//! served version's request rate, error rate, p99 latency and accuracy on
//! feedback labels, and each rollout's current step as last judged. Only
//! gateways heard from lately count (`GatewayBeat::live`).

use ferry_metadata::{GatewayBeat, LiveAnalysis};
use serde::Serialize;
use std::collections::BTreeMap;

/// One version's figures across gateways.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub gateways: usize,
    /// Requests a second over each gateway's window, summed.
    pub per_s: f64,
    pub requests: u64,
    pub errors: u64,
    /// The highest of the gateways' p99s (a bound, not a merged quantile).
    pub p99_ms: Option<f64>,
    pub labelled: u64,
    pub correct: u64,
}

impl Figures {
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    pub fn accuracy(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct as f64 / self.labelled as f64)
    }
}

/// Each (model, version) served by a live gateway, with its figures.
pub fn by_version(gateways: &[GatewayBeat], now_ms: i64) -> BTreeMap<(String, i64), Figures> {
    let mut out: BTreeMap<(String, i64), Figures> = BTreeMap::new();
    for g in gateways.iter().filter(|g| g.live(now_ms)) {
        for m in &g.models {
            for l in &m.live {
                let f = out.entry((m.model.clone(), l.version)).or_default();
                f.gateways += 1;
                if l.window_ms > 0 {
                    f.per_s += l.requests as f64 * 1000.0 / l.window_ms as f64;
                }
                f.requests += l.requests;
                f.errors += l.errors;
                f.p99_ms = match (f.p99_ms, l.p99_ms) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                f.labelled += l.labelled;
                f.correct += l.correct;
            }
        }
    }
    out
}

/// The newest judgement of rollout `id` any live gateway reported.
pub fn analysis(gateways: &[GatewayBeat], id: &str, now_ms: i64) -> Option<LiveAnalysis> {
    gateways
        .iter()
        .filter(|g| g.live(now_ms))
        .flat_map(|g| g.models.iter().filter_map(|m| m.analysis.as_ref()))
        .filter(|a| a.deployment_id == id)
        .max_by_key(|a| a.at_ms)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_metadata::{GatewayModel, LiveFigures};

    fn beat(id: &str, seen: i64, requests: u64, p99: f64) -> GatewayBeat {
        GatewayBeat {
            id: id.into(),
            host: "h".into(),
            addr: "127.0.0.1:1".into(),
            pid: 1,
            models: vec![GatewayModel {
                model: "iris".into(),
                selector: "iris@production".into(),
                alias: Some("production".into()),
                version: Some(2),
                live: vec![LiveFigures {
                    version: 2,
                    role: "stable".into(),
                    window_ms: 60_000,
                    requests,
                    errors: 1,
                    p99_ms: Some(p99),
                    labelled: 10,
                    correct: 9,
                }],
                analysis: Some(LiveAnalysis {
                    deployment_id: "d1".into(),
                    at_ms: seen,
                    detail: serde_json::json!({}),
                }),
            }],
            tick_ms: 1000,
            started_ms: 0,
            last_seen_ms: seen,
        }
    }

    #[test]
    fn live_gateways_are_summed_and_silent_ones_left_out() {
        let now = 100_000;
        let gws = [
            beat("a", now - 500, 600, 3.0),
            beat("b", now - 900, 1200, 5.0),
            beat("gone", now - 60_000, 9999, 99.0),
        ];
        let f = &by_version(&gws, now)[&("iris".to_owned(), 2)];
        assert_eq!((f.gateways, f.requests, f.errors), (2, 1800, 2));
        assert_eq!(f.per_s, 30.0);
        assert_eq!(f.p99_ms, Some(5.0));
        assert_eq!(f.accuracy(), Some(0.9));
        assert_eq!(analysis(&gws, "d1", now).unwrap().at_ms, now - 500);
        assert_eq!(analysis(&gws, "d2", now), None);
    }
}
