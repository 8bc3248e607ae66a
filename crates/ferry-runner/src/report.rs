//! What `status` and `run` report, to the terminal (through [`Reporter`]) and
//! as JSON (`--json`). Field names here are a documented, stable interface.

use ferry_metadata::{ModelVersion, RunStatus, StageRecord};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// What a stage would do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    UpToDate,
    /// Outputs for these exact inputs are in the cache.
    Restore,
    Run,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageStatusReport {
    pub stage: String,
    pub action: Action,
    /// Why it is not up to date, one entry per change.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub pipeline: String,
    pub stages: Vec<StageStatusReport>,
    /// The environment's fingerprint, when it is built.
    pub env: Option<String>,
    /// Data recorded with `ferry add` that is no longer what its pointer says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataStatus>,
}

/// Data whose pointer file no longer describes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DataStatus {
    pub path: String,
    /// `changed` (`ferry add` records it) or `missing` (`ferry checkout` brings it back).
    pub state: &'static str,
}

impl StatusReport {
    pub fn up_to_date(&self) -> bool {
        self.stages.iter().all(|s| s.action == Action::UpToDate) && self.data.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GateOutcome {
    pub name: String,
    pub expr: String,
    pub passed: bool,
    /// No comparison was possible (no such model, or the model has no such
    /// value): the gate does not hold the run back, and says why in
    /// `message` (`skipped: iris@production has no metric accuracy`).
    pub skipped: bool,
    /// Actual and required values, e.g. `metrics.accuracy >= 0.9: 0.5 >= 0.9`.
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: Option<String>,
    pub pipeline: String,
    pub status: RunStatus,
    pub dry_run: bool,
    /// Every stage, as the report shows it ([`reported`]).
    #[serde(serialize_with = "reported")]
    pub stages: Vec<StageRecord>,
    pub gates: Vec<GateOutcome>,
    pub metrics: BTreeMap<String, f64>,
    /// The model version this run registered.
    pub registered: Option<ModelVersion>,
    /// Set when the artifact equals the latest version's, so none was made.
    pub model_unchanged: Option<String>,
    /// Set (with `model_unchanged`) when that version was rejected: the
    /// reason. Nothing was registered and no alias moved.
    pub model_rejected: Option<String>,
    /// Nothing happened: the run succeeded with every stage up to date,
    /// nothing restored or registered and no alias moved. Recorded with the
    /// run (`ferry runs list` folds such runs).
    pub noop: bool,
    /// What the run was estimated to cost, when a budget covers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<ferry_cost::budget::Estimate>,
}

/// The stages as the run reports them: what was decided and what the
/// process used, what went wrong apart from the reason, and the log file on
/// this machine; not their place, fingerprint or times, which `ferry runs
/// show` has (the store's view, `StageRecord`'s own `Serialize`).
fn reported<S: Serializer>(stages: &[StageRecord], s: S) -> Result<S::Ok, S::Error> {
    struct Reported<'a>(&'a StageRecord);
    impl Serialize for Reported<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let o = self.0;
            let mut st = s.serialize_struct("StageOutcome", 11)?;
            st.serialize_field("stage", &o.stage)?;
            st.serialize_field("status", &o.status)?;
            st.serialize_field("reason", o.reason.as_deref().unwrap_or_default())?;
            st.serialize_field("wall_ms", &o.wall_ms)?;
            st.serialize_field("user_cpu_ms", &o.user_cpu_ms)?;
            st.serialize_field("sys_cpu_ms", &o.sys_cpu_ms)?;
            st.serialize_field("max_rss_bytes", &o.max_rss_bytes)?;
            st.serialize_field("exit_code", &o.exit_code)?;
            st.serialize_field("attempts", &o.attempts)?;
            st.serialize_field("error", &o.error)?;
            st.serialize_field("log", &o.log)?;
            st.end()
        }
    }
    s.collect_seq(stages.iter().map(Reported))
}

/// A metric as the run records it (MLflow metrics are numbers): a number
/// as itself, `true`/`false` as 1/0; anything else is not recorded.
pub fn metric_number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Progress events for a live display.
#[derive(Debug)]
pub enum Event<'a> {
    EnvBuilding {
        requirements: &'a str,
    },
    EnvReady {
        fingerprint: &'a str,
        built: bool,
    },
    StageStarted {
        stage: &'a str,
        reason: &'a str,
        attempt: u32,
    },
    StageFinished(&'a StageRecord),
    Gate(&'a GateOutcome),
    Registered(&'a ModelVersion),
    ModelUnchanged(&'a str),
    /// The artifact equals a rejected version (`name/N`, the reason).
    ModelRejected(&'a str, &'a str),
    /// A stage's result was sent to the shared cache (`Ok(remote)`), or
    /// could not be (`Err(why)`; the run goes on).
    Shared {
        stage: &'a str,
        outcome: std::result::Result<&'a str, &'a str>,
    },
    /// The run's estimate is held against the budgets over it.
    Budget(&'a crate::BudgetCheck),
    /// A budget reached a threshold; `delivered`: what its webhook said, if
    /// it has one.
    BudgetAlert {
        alert: &'a ferry_metadata::Alert,
        delivered: Option<std::result::Result<(), &'a str>>,
    },
}

/// Receives stage output lines and progress events.
pub trait Reporter: ferry_executor::OutputSink {
    fn event(&self, event: Event<'_>);
}

/// A reporter that shows nothing.
pub struct Silent;

impl ferry_executor::OutputSink for Silent {
    fn line(&self, _: &str, _: ferry_executor::Stream, _: &str) {}
}

impl Reporter for Silent {
    fn event(&self, _: Event<'_>) {}
}
