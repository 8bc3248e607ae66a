//! Pipeline runs as the store keeps them: a run, its stages, params,
//! metrics and gate results.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    GateFailed,
    Cancelled,
    Crashed,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::GateFailed => "gate_failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Crashed => "crashed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "gate_failed" => RunStatus::GateFailed,
            "cancelled" => RunStatus::Cancelled,
            "crashed" => RunStatus::Crashed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// The command ran and succeeded.
    Ran,
    /// Outputs came back from the cache; the command did not run.
    Restored,
    /// Nothing changed; outputs already in place.
    UpToDate,
    Failed,
    Cancelled,
    /// Not run because a stage it needs failed.
    Skipped,
}

impl StageStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            StageStatus::Ran => "ran",
            StageStatus::Restored => "restored",
            StageStatus::UpToDate => "up_to_date",
            StageStatus::Failed => "failed",
            StageStatus::Cancelled => "cancelled",
            StageStatus::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ran" => StageStatus::Ran,
            "restored" => StageStatus::Restored,
            "up_to_date" => StageStatus::UpToDate,
            "failed" => StageStatus::Failed,
            "cancelled" => StageStatus::Cancelled,
            "skipped" => StageStatus::Skipped,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NewRun {
    pub run_id: String,
    pub pipeline: String,
    pub trigger: String,
    pub started_ms: i64,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub env_fingerprint: Option<String>,
    pub pid: i64,
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub stage: String,
    pub position: i64,
    pub status: StageStatus,
    pub reason: Option<String>,
    pub fingerprint: Option<String>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub wall_ms: Option<i64>,
    pub user_cpu_ms: Option<i64>,
    pub sys_cpu_ms: Option<i64>,
    pub max_rss_bytes: Option<i64>,
    pub exit_code: Option<i64>,
    pub attempts: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricRecord {
    pub key: String,
    pub value: f64,
    pub stage: Option<String>,
    pub step: i64,
    pub ts_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateRecord {
    pub name: String,
    pub expr: String,
    pub passed: bool,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub pipeline: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub pipeline: String,
    pub status: RunStatus,
    pub trigger: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub message: Option<String>,
    /// Nothing happened: every stage was up to date, nothing was restored
    /// or registered and no alias moved (the run's `ferry.noop` tag).
    pub noop: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    pub env_fingerprint: Option<String>,
    pub stages: Vec<StageRecord>,
    pub params: Vec<(String, serde_json::Value)>,
    pub metrics: Vec<MetricRecord>,
    pub gates: Vec<GateRecord>,
}
