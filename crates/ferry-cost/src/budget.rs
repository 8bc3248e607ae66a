//! Budgets, without I/O: what a budget covers ([`Scope`]), the month it
//! counts ([`month_of`]), a run's estimate from the history of the stages
//! that will run ([`Estimate`]), whether what is left covers it
//! ([`Standing::covers`]) and which alert thresholds a spend crossed
//! ([`crossed`]).
//!
//! Budgets count UTC calendar months, as AWS and GCP billing do.

use crate::money;
use std::fmt;

/// What a budget covers: every pipeline of a workspace (a team), or one
/// pipeline.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Workspace(String),
    Pipeline(String),
}

impl Scope {
    /// `NAME` or `workspace:NAME` (a workspace), `pipeline:NAME`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kind, name) = match s.split_once(':') {
            Some((k, n)) => (k, n),
            None => ("workspace", s),
        };
        if !valid_name(name) {
            return Err(format!(
                "`{s}`: a budget names a workspace (`research`, `workspace:research`) or a pipeline (`pipeline:iris`): letters, digits, `.`, `_` and `-`, at most 64"
            ));
        }
        match kind {
            "workspace" => Ok(Scope::Workspace(name.to_owned())),
            "pipeline" => Ok(Scope::Pipeline(name.to_owned())),
            _ => Err(format!(
                "`{s}`: `{kind}:` is neither `workspace:` nor `pipeline:`"
            )),
        }
    }

    /// Whether a run of `pipeline` in `workspace` spends from it.
    pub fn covers(&self, pipeline: &str, workspace: &str) -> bool {
        match self {
            Scope::Workspace(w) => w == workspace,
            Scope::Pipeline(p) => p == pipeline,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Workspace(w) => write!(f, "workspace:{w}"),
            Scope::Pipeline(p) => write!(f, "pipeline:{p}"),
        }
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A workspace's, pipeline's or project's name: what `workspace:` in
/// ferry.yaml and a budget's scope accept.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A monthly budget.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    #[serde(rename = "budget")]
    pub scope: Scope,
    pub monthly_usd: f64,
    /// Percentages of `monthly_usd` that send an alert once a month.
    pub alerts: Vec<u32>,
    /// Where alerts are posted (an `http(s)://` URL), if anywhere.
    pub webhook: Option<String>,
}

/// The alert thresholds a budget gets unless told otherwise.
pub const DEFAULT_ALERTS: [u32; 3] = [50, 80, 100];

/// `50,80,100`: percentages from 1 to 1000, each once, in order.
pub fn parse_alerts(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n: u32 = part
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("alert `{part}` is not a percentage (`80`)"))?;
        if n == 0 || n > 1000 {
            return Err(format!("alert {n}% is not between 1 and 1000"));
        }
        out.push(n);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A webhook URL: `http://` or `https://` with a host.
pub fn check_webhook(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("webhook `{url}` is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') || url.chars().any(char::is_whitespace) {
        return Err(format!(
            "webhook `{url}`: give a host, no credentials in the URL"
        ));
    }
    Ok(())
}

/// The host a webhook URL posts to (lowercase, without its port).
pub fn webhook_host(url: &str) -> Option<String> {
    check_webhook(url).ok()?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    Some(host.to_ascii_lowercase())
}

/// A UTC month: its first instant, the first instant of the next, and its
/// name (`2026-12`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    pub start_ms: i64,
    pub end_ms: i64,
    pub name: String,
}

/// The UTC month `at_ms` falls in.
pub fn month_of(at_ms: i64) -> Month {
    const DAY_MS: i64 = 86_400_000;
    let (y, m, _) = ferry_core::civil_from_days(at_ms.div_euclid(DAY_MS));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    Month {
        start_ms: ferry_core::days_from_civil(y, m, 1) * DAY_MS,
        end_ms: ferry_core::days_from_civil(ny, nm, 1) * DAY_MS,
        name: format!("{y:04}-{m:02}"),
    }
}

/// Where a budget stands this month.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standing {
    #[serde(flatten)]
    pub budget: Budget,
    /// The month (`2026-12`).
    pub period: String,
    /// What its runs cost this month.
    pub spent_usd: f64,
    /// What running runs are expected to spend (their holds).
    #[serde(rename = "held_usd")]
    pub reserved_usd: f64,
}

impl Standing {
    /// What is left for new runs.
    pub fn left_usd(&self) -> f64 {
        self.budget.monthly_usd - self.spent_usd - self.reserved_usd
    }

    /// Whether what is left covers `estimate`. A run that will run nothing
    /// is always covered; one that will run something is not once nothing
    /// is left, even when its estimate is nought (no history).
    pub fn covers(&self, estimate: &Estimate) -> bool {
        estimate.stages.is_empty() || self.covers_usd(estimate.usd())
    }

    /// Whether what is left covers `usd` for a run that runs something.
    pub fn covers_usd(&self, usd: f64) -> bool {
        let left = self.left_usd();
        left > 0.0 && usd <= left + 1e-9
    }
}

/// How a stage's cost was estimated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Method {
    /// The median of its last `runs` runs that cost something.
    History { runs: usize },
    /// Its `max_cost:`, which it cannot exceed.
    MaxCost,
    /// Its `resources:` for its `timeout:`.
    Declared { hours: f64 },
    /// Nothing to go on: no history, no `max_cost:` nor `resources:` with
    /// a `timeout:`.
    Unknown,
}

/// One stage's part of an estimate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageEstimate {
    pub stage: String,
    pub usd: f64,
    #[serde(flatten)]
    pub method: Method,
}

/// What a run is expected to cost: its stages that will run (those the run
/// cache restores or that are up to date cost nothing and are not here).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Estimate {
    pub stages: Vec<StageEstimate>,
}

impl Estimate {
    pub fn usd(&self) -> f64 {
        self.stages.iter().map(|s| s.usd).sum()
    }
}

/// How many recent runs of a stage its estimate reads.
pub const HISTORY_RUNS: usize = 10;

/// A stage's estimate: the median of `history` (its recent costs, newest
/// first), else its `max_cost`, else its requests' `hourly` rate for its
/// `timeout_hours`.
pub fn estimate_stage(
    stage: &str,
    history: &[f64],
    max_cost: Option<f64>,
    declared: Option<(f64, f64)>,
) -> StageEstimate {
    let (usd, method) = if let Some(m) = median(history) {
        (
            m,
            Method::History {
                runs: history.len(),
            },
        )
    } else if let Some(m) = max_cost {
        (m, Method::MaxCost)
    } else if let Some((hourly, hours)) = declared {
        (hourly * hours, Method::Declared { hours })
    } else {
        (0.0, Method::Unknown)
    };
    StageEstimate {
        stage: stage.to_owned(),
        usd,
        method,
    }
}

/// The median (the mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// How an estimate was made, for a person: `train $0.42 (median of its
/// last 10 runs), evaluate $0.00 (no history)`.
pub fn explain(e: &Estimate) -> String {
    if e.stages.is_empty() {
        return "no stage will run".to_owned();
    }
    e.stages
        .iter()
        .map(|s| {
            let how = match &s.method {
                Method::History { runs: 1 } => "its last run".to_owned(),
                Method::History { runs } => format!("median of its last {runs} runs"),
                Method::MaxCost => "its max_cost".to_owned(),
                Method::Declared { hours } => {
                    format!("its resources for its timeout of {hours:.2} h")
                }
                Method::Unknown => "no history, no max_cost".to_owned(),
            };
            format!("{} {} ({how})", s.stage, money(s.usd))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The thresholds of `alerts` (percent of `monthly`) that a spend going
/// from `before` to `after` reached.
pub fn crossed(alerts: &[u32], monthly: f64, before: f64, after: f64) -> Vec<u32> {
    alerts
        .iter()
        .copied()
        .filter(|&p| {
            let at = monthly * f64::from(p) / 100.0;
            before < at && after >= at
        })
        .collect()
}

/// The thresholds of `alerts` a spend has reached.
pub fn reached(alerts: &[u32], monthly: f64, spent: f64) -> Vec<u32> {
    crossed(alerts, monthly, f64::NEG_INFINITY, spent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_or_refused() {
        assert_eq!(
            Scope::parse("research").unwrap(),
            Scope::Workspace("research".into())
        );
        assert_eq!(
            Scope::parse("pipeline:iris").unwrap(),
            Scope::Pipeline("iris".into())
        );
        assert_eq!(
            Scope::parse("workspace:ml").unwrap().to_string(),
            "workspace:ml"
        );
        for bad in ["", "team:x", "pipeline:", "a b", "x/../y", &"a".repeat(65)] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert!(Scope::Pipeline("iris".into()).covers("iris", "x"));
        assert!(!Scope::Workspace("ml".into()).covers("iris", "default"));
    }

    #[test]
    fn months_are_utc_calendar_months() {
        // 2026-12-31 23:59:59.999 and 2027-01-01 00:00.
        let dec = month_of(20_818 * 86_400_000 - 1 + 86_400_000);
        assert_eq!(dec.name, "2026-12");
        let jan = month_of(dec.end_ms);
        assert_eq!(jan.name, "2027-01");
        assert_eq!(jan.start_ms, dec.end_ms);
        assert_eq!(
            (jan.end_ms - jan.start_ms) / 86_400_000,
            31,
            "January has 31 days"
        );
        let feb = month_of(jan.end_ms);
        assert_eq!((feb.end_ms - feb.start_ms) / 86_400_000, 28);
    }

    #[test]
    fn estimates_prefer_history_then_max_cost_then_requests() {
        let h = estimate_stage("train", &[0.3, 0.1, 0.2, 5.0], Some(9.0), None);
        assert_eq!(h.usd, 0.25);
        assert_eq!(h.method, Method::History { runs: 4 });
        let m = estimate_stage("train", &[], Some(9.0), Some((2.0, 1.0)));
        assert_eq!((m.usd, &m.method), (9.0, &Method::MaxCost));
        let d = estimate_stage("train", &[], None, Some((2.0, 0.5)));
        assert_eq!(d.usd, 1.0);
        let u = estimate_stage("train", &[], None, None);
        assert_eq!((u.usd, &u.method), (0.0, &Method::Unknown));
        let e = Estimate { stages: vec![h, u] };
        assert_eq!(
            explain(&e),
            "train $0.2500 (median of its last 4 runs), train $0 (no history, no max_cost)"
        );
    }

    #[test]
    fn a_budget_covers_what_is_left_and_nothing_once_spent() {
        let b = Budget {
            scope: Scope::Workspace("ml".into()),
            monthly_usd: 1.0,
            alerts: DEFAULT_ALERTS.to_vec(),
            webhook: None,
        };
        let s = |spent, reserved| Standing {
            budget: b.clone(),
            period: "2026-12".into(),
            spent_usd: spent,
            reserved_usd: reserved,
        };
        let est = |usd| Estimate {
            stages: vec![StageEstimate {
                stage: "train".into(),
                usd,
                method: Method::Unknown,
            }],
        };
        assert!(s(0.5, 0.2).covers(&est(0.3)));
        assert!(!s(0.5, 0.2).covers(&est(0.31)));
        // Nothing left: even a stage with no history is refused...
        assert!(!s(1.0, 0.0).covers(&est(0.0)));
        // ...but a run that runs nothing is not.
        assert!(s(2.0, 0.0).covers(&Estimate::default()));
    }

    #[test]
    fn thresholds_are_crossed_once() {
        let a = [50, 80, 100];
        assert_eq!(crossed(&a, 10.0, 4.0, 8.5), [50, 80]);
        assert_eq!(crossed(&a, 10.0, 8.5, 9.0), Vec::<u32>::new());
        assert_eq!(crossed(&a, 10.0, 9.0, 10.0), [100]);
        assert_eq!(reached(&a, 10.0, 8.0), [50, 80]);
        assert_eq!(parse_alerts("100, 50,80%,50").unwrap(), [50, 80, 100]);
        assert!(parse_alerts("0").is_err());
        assert!(parse_alerts("x").is_err());
    }

    #[test]
    fn a_webhooks_host_is_read_without_its_port() {
        assert_eq!(
            webhook_host("https://Hooks.Slack.com/services/T/B").as_deref(),
            Some("hooks.slack.com")
        );
        assert_eq!(
            webhook_host("http://127.0.0.1:9/x").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(webhook_host("http://[::1]:9/x").as_deref(), Some("::1"));
        assert_eq!(webhook_host("file:///etc/passwd"), None);
    }

    #[test]
    fn webhooks_are_http_urls_with_a_host() {
        assert!(check_webhook("https://hooks.example.com/T/1").is_ok());
        assert!(check_webhook("http://127.0.0.1:9/x").is_ok());
        for bad in [
            "file:///etc/passwd",
            "https://",
            "https://u:p@h/x",
            "ftp://h",
            "http://h /x",
        ] {
            assert!(check_webhook(bad).is_err(), "{bad}");
        }
    }
}
