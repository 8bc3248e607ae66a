//! The rollout state machine, pure: a plan (steps, interval, criteria), the
//! state the store keeps, the window of measurements since the step began,
//! and the decision they lead to. The controller does the IO around it.
//!
//! ```text
//!             pass (interval over)            pass at the last step
//!  step i ─────────────────────────► step i+1 ... ─────────────────────► promoted
//!    │  ▲
//!    │  └─ inconclusive (too few requests or labels): wait, until the deadline
//!    │
//!    └─ fail (any criterion, as soon as there are enough requests),
//!       deadline passed without a verdict, or abort ─────────────────► rolled back
//! ```
//!
//! A failure always ends in a rollback: 100% of the traffic back to stable
//! and the candidate tagged rejected with the reason.

use serde::{Deserialize, Serialize};

/// What `ferry deploy` asked for; stored with the deployment as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub strategy: Strategy,
    /// Canary weights in percent, increasing, each in 1..=100.
    pub steps: Vec<u32>,
    /// How long each step is observed before it may pass.
    pub interval_ms: u64,
    /// How long past the interval a step may wait for enough data before
    /// the rollout gives up (and rolls back).
    pub deadline_ms: u64,
    /// Shadow: the share of requests mirrored to the candidate, percent.
    pub mirror_percent: u32,
    /// The alias that moves to the candidate when it is promoted.
    pub alias: String,
    pub criteria: Criteria,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Canary,
    Shadow,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::Shadow => "shadow",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// Largest share of the candidate's requests that may fail (5xx).
    pub max_error_rate: Option<f64>,
    /// Largest 99th percentile latency of the candidate, milliseconds.
    pub max_p99_ms: Option<f64>,
    /// Largest total variation distance between the candidate's and the
    /// stable version's predicted-class shares (0 = same, 1 = disjoint);
    /// for numeric predictions, the shift of the mean in stable standard
    /// deviations.
    pub max_prediction_shift: Option<f64>,
    /// Smallest accuracy of the candidate on the labels received through
    /// `POST /feedback`.
    pub min_accuracy: Option<f64>,
    /// Requests the candidate must have answered in the step before any
    /// verdict (and labels, for `min_accuracy`).
    pub min_requests: u64,
    /// Shadow: smallest agreement rate between candidate and stable.
    pub min_agreement: Option<f64>,
}

/// Where a deployment is. Stored as its `as_str` in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Progressing,
    Promoted,
    RolledBack,
    Aborted,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Promoted => "promoted",
            Phase::RolledBack => "rolled_back",
            Phase::Aborted => "aborted",
        }
    }
    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "progressing" => Phase::Progressing,
            "promoted" => Phase::Promoted,
            "rolled_back" => Phase::RolledBack,
            "aborted" => Phase::Aborted,
            _ => return None,
        })
    }
    pub fn is_active(self) -> bool {
        self == Phase::Progressing
    }
}

/// One version's measurements over a window (the current step).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Window {
    pub requests: u64,
    /// Answers that failed on the server's side (5xx).
    pub errors: u64,
    pub p99_ms: Option<f64>,
    /// Predicted class -> count (classifiers).
    pub classes: Vec<(String, u64)>,
    /// Numeric predictions: count, mean and variance.
    pub numeric: Option<(u64, f64, f64)>,
    pub labelled: u64,
    pub correct: u64,
    /// Shadow: mirrored requests compared, and how many agreed.
    pub compared: u64,
    pub agreed: u64,
}

impl Window {
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }
    pub fn accuracy(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct as f64 / self.labelled as f64)
    }
    pub fn agreement(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.agreed as f64 / self.compared as f64)
    }
}

/// One criterion's measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub value: Option<f64>,
    pub limit: f64,
    pub passed: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass { checks: Vec<Check> },
    Fail { reason: String, checks: Vec<Check> },
    Inconclusive { reason: String, checks: Vec<Check> },
}

pub use ferry_stats::class_shift;

fn prediction_shift(candidate: &Window, stable: &Window) -> Option<f64> {
    if !candidate.classes.is_empty() || !stable.classes.is_empty() {
        return class_shift(&candidate.classes, &stable.classes);
    }
    let (nc, mc, _) = candidate.numeric?;
    let (ns, ms, vs) = stable.numeric?;
    if nc == 0 || ns == 0 {
        return None;
    }
    let sd = vs.sqrt();
    Some(if sd > 0.0 {
        (mc - ms).abs() / sd
    } else if mc == ms {
        0.0
    } else {
        f64::INFINITY
    })
}

/// Judges the candidate's window against the criteria (and the stable
/// version's window, for the prediction shift).
pub fn analyse(c: &Criteria, candidate: &Window, stable: &Window) -> Verdict {
    let mut checks = Vec::new();
    let mut fails = Vec::new();
    let mut waits = Vec::new();
    let enough = candidate.requests >= c.min_requests.max(1);
    if !enough {
        waits.push(format!(
            "{} of {} requests",
            candidate.requests,
            c.min_requests.max(1)
        ));
    }
    let mut judge = |name: &'static str, value: Option<f64>, limit: f64, upper: bool| {
        let passed = value.map(|v| if upper { v <= limit } else { v >= limit });
        checks.push(Check {
            name,
            value,
            limit,
            passed,
        });
        match (value, passed) {
            (Some(v), Some(false)) => fails.push(format!(
                "{name} {} {} {}",
                fmt(v),
                if upper { ">" } else { "<" },
                fmt(limit)
            )),
            (None, _) => waits.push(format!("no {name} yet")),
            _ => {}
        }
    };
    if let Some(l) = c.max_error_rate {
        judge("error_rate", candidate.error_rate(), l, true);
    }
    if let Some(l) = c.max_p99_ms {
        judge("p99_ms", candidate.p99_ms, l, true);
    }
    if let Some(l) = c.max_prediction_shift {
        judge(
            "prediction_shift",
            prediction_shift(candidate, stable),
            l,
            true,
        );
    }
    let mut label_wait = None;
    if let Some(l) = c.min_accuracy {
        let acc = (candidate.labelled >= c.min_requests.max(1))
            .then(|| candidate.accuracy())
            .flatten();
        if acc.is_none() {
            label_wait = Some(format!(
                "{} of {} labels",
                candidate.labelled,
                c.min_requests.max(1)
            ));
        }
        judge("accuracy", acc, l, false);
    }
    if let Some(l) = c.min_agreement {
        judge("agreement", candidate.agreement(), l, false);
    }
    if let Some(w) = label_wait {
        waits.retain(|x| x != "no accuracy yet");
        waits.push(w);
    }
    // Failures count only on enough data: a first slow request must not
    // roll back a healthy candidate.
    if enough && !fails.is_empty() {
        return Verdict::Fail {
            reason: fails.join(", "),
            checks,
        };
    }
    if !waits.is_empty() {
        waits.dedup();
        return Verdict::Inconclusive {
            reason: format!("not enough data yet: {}", waits.join(", ")),
            checks,
        };
    }
    Verdict::Pass { checks }
}

fn fmt(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{:.4}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// The state the store keeps between ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub phase: Phase,
    pub step: usize,
    pub step_started_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to record (the interval is not over, and nothing failed).
    Hold,
    /// The interval is over without a verdict: keep waiting (recorded once
    /// per step, so `ferry deploy status` can say why).
    Wait {
        reason: String,
    },
    Advance {
        step: usize,
        weight: u32,
    },
    Promote {
        reason: String,
    },
    Rollback {
        reason: String,
    },
}

/// The traffic split, for canaries and shadows alike: whether the `n`-th
/// routed request falls in a `percent` share. Spread evenly: of every 100
/// consecutive requests, exactly `percent` do (37 is prime to 100, so
/// `37 n mod 100` takes every value once in each run of 100).
pub fn in_share(n: u64, percent: u32) -> bool {
    (n.wrapping_mul(37) % 100) < u64::from(percent)
}

/// The canary weight of `step` (0 before the first).
pub fn weight_at(plan: &Plan, step: usize) -> u32 {
    match plan.strategy {
        Strategy::Canary => plan.steps.get(step).copied().unwrap_or(100),
        Strategy::Shadow => 0,
    }
}

/// What to do now, given the verdict on the current step's window.
pub fn decide(plan: &Plan, state: &State, now_ms: i64, verdict: &Verdict) -> Decision {
    if !state.phase.is_active() {
        return Decision::Hold;
    }
    let elapsed = now_ms.saturating_sub(state.step_started_ms).max(0) as u64;
    match verdict {
        Verdict::Fail { reason, .. } => Decision::Rollback {
            reason: reason.clone(),
        },
        _ if elapsed < plan.interval_ms => Decision::Hold,
        Verdict::Inconclusive { reason, .. } => {
            if elapsed >= plan.interval_ms.saturating_add(plan.deadline_ms) {
                Decision::Rollback {
                    reason: format!(
                        "no verdict within the deadline ({} after the interval): {reason}",
                        human_ms(plan.deadline_ms)
                    ),
                }
            } else {
                Decision::Wait {
                    reason: reason.clone(),
                }
            }
        }
        Verdict::Pass { .. } => match plan.strategy {
            // A shadow only observes: promoting it is a person's call.
            Strategy::Shadow => Decision::Wait {
                reason: "the shadow's analysis passed; `ferry deploy promote` makes it the stable version".into(),
            },
            Strategy::Canary => {
                if state.step + 1 >= plan.steps.len() {
                    Decision::Promote {
                        reason: format!(
                            "passed every step ({})",
                            plan.steps
                                .iter()
                                .map(|s| format!("{s}%"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }
                } else {
                    Decision::Advance {
                        step: state.step + 1,
                        weight: plan.steps[state.step + 1],
                    }
                }
            }
        },
    }
}

pub use ferry_core::human_ms;

/// Parses `90s`, `1m`, `2h`, `500ms` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 30s, 1m, 2h)"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        "h" => n * 3_600e3,
        _ => return Err(format!("`{s}` is not a duration (e.g. 30s, 1m, 2h)")),
    };
    if !(ms.is_finite() && ms >= 0.0) {
        return Err(format!("`{s}` is not a duration"));
    }
    Ok(ms as u64)
}

/// Checks a plan's steps: increasing percentages in 1..=100.
pub fn check_steps(steps: &[u32]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("--steps needs at least one weight (e.g. 10,25,50,100)".into());
    }
    for w in steps {
        if *w == 0 || *w > 100 {
            return Err(format!("--steps: {w} is not a percentage in 1..=100"));
        }
    }
    if steps.windows(2).any(|p| p[1] <= p[0]) {
        return Err(format!(
            "--steps must increase: {}",
            steps
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traffic_split_sends_exactly_the_share_of_every_hundred_requests() {
        for percent in [0, 1, 10, 37, 50, 99, 100] {
            for start in [0u64, 7, 1_000, 123_456_789] {
                let n = (start..start + 100)
                    .filter(|n| in_share(*n, percent))
                    .count();
                assert_eq!(n, percent as usize, "{percent}% from {start}");
            }
        }
    }

    fn plan() -> Plan {
        Plan {
            strategy: Strategy::Canary,
            steps: vec![10, 50, 100],
            interval_ms: 60_000,
            deadline_ms: 120_000,
            mirror_percent: 0,
            alias: "production".into(),
            criteria: Criteria {
                max_error_rate: Some(0.01),
                max_p99_ms: Some(50.0),
                max_prediction_shift: Some(0.2),
                min_accuracy: None,
                min_requests: 20,
                min_agreement: None,
            },
        }
    }

    fn win(requests: u64, errors: u64, p99: f64, classes: &[(&str, u64)]) -> Window {
        Window {
            requests,
            errors,
            p99_ms: Some(p99),
            classes: classes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Window::default()
        }
    }

    fn state(step: usize, started: i64) -> State {
        State {
            phase: Phase::Progressing,
            step,
            step_started_ms: started,
        }
    }

    #[test]
    fn a_healthy_candidate_walks_every_step_then_is_promoted() {
        let p = plan();
        let stable = win(500, 0, 3.0, &[("a", 250), ("b", 250)]);
        let good = win(100, 0, 4.0, &[("a", 52), ("b", 48)]);
        let v = analyse(&p.criteria, &good, &stable);
        assert!(matches!(v, Verdict::Pass { .. }), "{v:?}");
        // Before the interval is over: hold.
        assert_eq!(decide(&p, &state(0, 0), 59_999, &v), Decision::Hold);
        assert_eq!(
            decide(&p, &state(0, 0), 60_000, &v),
            Decision::Advance {
                step: 1,
                weight: 50
            }
        );
        assert_eq!(
            decide(&p, &state(1, 60_000), 120_000, &v),
            Decision::Advance {
                step: 2,
                weight: 100
            }
        );
        assert!(matches!(
            decide(&p, &state(2, 120_000), 180_000, &v),
            Decision::Promote { .. }
        ));
    }

    #[test]
    fn each_failing_criterion_rolls_back_at_once() {
        let p = plan();
        let stable = win(500, 0, 3.0, &[("a", 250), ("b", 250)]);
        let cases = [
            (
                win(100, 5, 4.0, &[("a", 50), ("b", 50)]),
                "error_rate 0.05 > 0.01",
            ),
            (win(100, 0, 80.0, &[("a", 50), ("b", 50)]), "p99_ms 80 > 50"),
            (
                win(100, 0, 4.0, &[("a", 90), ("b", 10)]),
                "prediction_shift 0.4 > 0.2",
            ),
        ];
        for (w, want) in cases {
            let v = analyse(&p.criteria, &w, &stable);
            // Mid-interval, too: a failure does not wait for the interval.
            match decide(&p, &state(1, 0), 1_000, &v) {
                Decision::Rollback { reason } => assert_eq!(reason, want),
                d => panic!("{want}: {d:?}"),
            }
        }
    }

    #[test]
    fn too_few_requests_wait_and_then_roll_back_at_the_deadline() {
        let p = plan();
        let stable = win(500, 0, 3.0, &[("a", 250), ("b", 250)]);
        // Failing values on 3 requests are not yet a verdict.
        let thin = win(3, 3, 900.0, &[("a", 3)]);
        let v = analyse(&p.criteria, &thin, &stable);
        assert!(
            matches!(&v, Verdict::Inconclusive { reason, .. } if reason.contains("3 of 20 requests")),
            "{v:?}"
        );
        assert_eq!(decide(&p, &state(0, 0), 30_000, &v), Decision::Hold);
        assert!(matches!(
            decide(&p, &state(0, 0), 60_000, &v),
            Decision::Wait { .. }
        ));
        assert!(matches!(
            decide(&p, &state(0, 0), 179_999, &v),
            Decision::Wait { .. }
        ));
        match decide(&p, &state(0, 0), 180_000, &v) {
            Decision::Rollback { reason } => {
                assert!(
                    reason.starts_with("no verdict within the deadline (2m"),
                    "{reason}"
                )
            }
            d => panic!("{d:?}"),
        }
        // No traffic at all is the same.
        let none = Window::default();
        let v = analyse(&p.criteria, &none, &stable);
        assert!(matches!(v, Verdict::Inconclusive { .. }));
    }

    #[test]
    fn accuracy_needs_labels() {
        let mut p = plan();
        p.criteria.min_accuracy = Some(0.9);
        let stable = win(500, 0, 3.0, &[("a", 250), ("b", 250)]);
        let mut w = win(100, 0, 4.0, &[("a", 50), ("b", 50)]);
        w.labelled = 5;
        w.correct = 1;
        assert!(matches!(
            analyse(&p.criteria, &w, &stable),
            Verdict::Inconclusive { .. }
        ));
        w.labelled = 40;
        w.correct = 30;
        match analyse(&p.criteria, &w, &stable) {
            Verdict::Fail { reason, .. } => assert_eq!(reason, "accuracy 0.75 < 0.9"),
            v => panic!("{v:?}"),
        }
        w.correct = 39;
        assert!(matches!(
            analyse(&p.criteria, &w, &stable),
            Verdict::Pass { .. }
        ));
    }

    #[test]
    fn finished_deployments_hold() {
        let p = plan();
        let v = Verdict::Fail {
            reason: "x".into(),
            checks: vec![],
        };
        for phase in [Phase::Promoted, Phase::RolledBack, Phase::Aborted] {
            let s = State {
                phase,
                step: 0,
                step_started_ms: 0,
            };
            assert_eq!(decide(&p, &s, 1_000_000, &v), Decision::Hold);
        }
    }

    #[test]
    fn numeric_shift_is_in_stable_standard_deviations() {
        let mut c = Window {
            requests: 100,
            numeric: Some((100, 12.0, 1.0)),
            ..Window::default()
        };
        let s = Window {
            requests: 100,
            numeric: Some((100, 10.0, 4.0)),
            ..Window::default()
        };
        assert_eq!(prediction_shift(&c, &s), Some(1.0));
        c.numeric = Some((100, 10.0, 1.0));
        assert_eq!(prediction_shift(&c, &s), Some(0.0));
    }

    #[test]
    fn steps_and_durations_are_checked() {
        assert!(check_steps(&[10, 25, 50, 100]).is_ok());
        assert!(check_steps(&[]).is_err());
        assert!(check_steps(&[0, 10]).is_err());
        assert!(check_steps(&[50, 10]).is_err());
        assert!(check_steps(&[10, 101]).is_err());
        assert_eq!(parse_duration("1m"), Ok(60_000));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("2"), Ok(2_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1d").is_err());
        assert_eq!(human_ms(120_000), "2m");
    }

    #[test]
    fn class_shift_is_total_variation() {
        let a = vec![("x".to_string(), 50), ("y".to_string(), 50)];
        let b = vec![("x".to_string(), 100)];
        assert_eq!(class_shift(&a, &b), Some(0.5));
        assert_eq!(class_shift(&a, &a), Some(0.0));
        assert_eq!(class_shift(&a, &[]), None);
    }
}
