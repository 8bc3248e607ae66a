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
    /// The workspace (team) the pipeline belongs to (`workspace:` in
    /// ferry.yaml, `default` without).
    pub workspace: String,
    /// The project: its folder's name.
    pub project: String,
}

/// One stage of a pipeline run, the one record of it: what the run settles
/// and reports (`ferry run --json`, whose view `ferry-runner`'s report
/// spells), what the store keeps, and what it gives back (`ferry runs show
/// --json`, the `Serialize` below).
///
/// Two fields live only as long as the run that saw them: `error` (kept
/// apart from `reason` for the report) and `log` (a path on that machine).
/// The store keeps the error inside the reason ([`StageRecord::recorded_reason`])
/// and the log as the run's artifact, so a record read back has neither.
#[derive(Debug, Clone)]
pub struct StageRecord {
    pub stage: String,
    /// Its place in the pipeline's order.
    pub position: i64,
    pub status: StageStatus,
    /// Why it did what it did (`never ran`, `up to date`, the changes).
    pub reason: Option<String>,
    /// The fingerprint it was decided under, when it got that far.
    pub fingerprint: Option<String>,
    /// When its command started, when it ran.
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub wall_ms: Option<i64>,
    pub user_cpu_ms: Option<i64>,
    pub sys_cpu_ms: Option<i64>,
    pub max_rss_bytes: Option<i64>,
    pub exit_code: Option<i64>,
    pub attempts: i64,
    /// What went wrong, for a stage that did not succeed (not read back).
    pub error: Option<String>,
    /// The stage's log file, when it ran (not read back).
    pub log: Option<String>,
    /// What it cost (`None`: recorded before ferry priced stages, or not
    /// decided).
    pub cost: Option<ferry_cost::StageCost>,
}

impl StageRecord {
    /// Stage `stage` with `status` for `reason` and no process behind it
    /// (up to date, restored, skipped); the run sets its place and times
    /// when it settles it.
    pub fn new(stage: &str, status: StageStatus, reason: String) -> Self {
        Self {
            stage: stage.to_owned(),
            position: 0,
            status,
            reason: Some(reason),
            fingerprint: None,
            started_ms: None,
            ended_ms: None,
            wall_ms: None,
            user_cpu_ms: None,
            sys_cpu_ms: None,
            max_rss_bytes: None,
            exit_code: None,
            attempts: 0,
            error: None,
            log: None,
            cost: None,
        }
    }

    /// The reason as the store keeps it: with what went wrong after it
    /// (`never ran: the command exited with code 1`).
    pub fn recorded_reason(&self) -> Option<String> {
        match (&self.reason, &self.error) {
            (reason, None) => reason.clone(),
            (Some(reason), Some(error)) => Some(format!("{reason}: {error}")),
            (None, Some(error)) => Some(error.clone()),
        }
    }
}

/// A stage as the store keeps it (`ferry runs show --json`): no log, the
/// error inside the reason. Field names and order are a stable interface.
impl Serialize for StageRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("StageRecord", 14)?;
        st.serialize_field("stage", &self.stage)?;
        st.serialize_field("position", &self.position)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("reason", &self.recorded_reason())?;
        st.serialize_field("fingerprint", &self.fingerprint)?;
        st.serialize_field("started_ms", &self.started_ms)?;
        st.serialize_field("ended_ms", &self.ended_ms)?;
        st.serialize_field("wall_ms", &self.wall_ms)?;
        st.serialize_field("user_cpu_ms", &self.user_cpu_ms)?;
        st.serialize_field("sys_cpu_ms", &self.sys_cpu_ms)?;
        st.serialize_field("max_rss_bytes", &self.max_rss_bytes)?;
        st.serialize_field("exit_code", &self.exit_code)?;
        st.serialize_field("attempts", &self.attempts)?;
        st.serialize_field("cost", &self.cost)?;
        st.end()
    }
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
    /// Who started it (MLflow's `user_id`), when that is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_keeps_a_stage_without_its_log_and_with_its_error_in_the_reason() {
        let rec = StageRecord {
            error: Some("the command exited with code 1".into()),
            log: Some("/p/.ferry/logs/r/train.log".into()),
            ..StageRecord::new("train", StageStatus::Failed, "never ran".into())
        };
        let v = serde_json::to_value(&rec).unwrap_or_default();
        assert_eq!(v["reason"], "never ran: the command exited with code 1");
        assert!(v.get("error").is_none() && v.get("log").is_none(), "{v}");
        let plain = StageRecord::new("train", StageStatus::UpToDate, "up to date".into());
        assert_eq!(plain.recorded_reason().as_deref(), Some("up to date"));
    }
}

/// A page of pipeline runs, newest first (the dashboard's runs page):
/// filters, and a cursor that continues after the last run of the previous
/// page, so any page costs what the first does.
#[derive(Debug, Clone, Default)]
pub struct RunPage {
    /// Only the pipelines of these workspaces (`None`: every pipeline).
    pub workspaces: Option<Vec<String>>,
    pub pipeline: Option<String>,
    /// A status (`succeeded`, `failed`, ...).
    pub status: Option<String>,
    pub trigger: Option<String>,
    /// A prefix of the commit.
    pub commit: Option<String>,
    /// Who started it (MLflow's `user_id`: the authenticated user on a
    /// server with users, else the client's login name).
    pub author: Option<String>,
    /// Clauses in MLflow's search grammar (`metrics.acc > 0.9 and
    /// params.lr = '0.01'`), all of which a run meets.
    pub filter: Vec<ferry_search::Clause>,
    /// Started at or after.
    pub since_ms: Option<i64>,
    pub order: RunOrder,
    /// After this run in `order`: its key (start, or duration for
    /// [`RunOrder::Slowest`]) and id.
    pub before: Option<(i64, String)>,
    /// At most this many (at most 1,000).
    pub limit: i64,
}

/// The order of a [`RunPage`]; each is a key and the run id, so a page's
/// last run is a cursor for the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunOrder {
    #[default]
    Newest,
    Oldest,
    /// The longest first; runs still going last.
    Slowest,
}

impl RunOrder {
    pub fn parse(s: &str) -> Option<RunOrder> {
        match s {
            "newest" => Some(RunOrder::Newest),
            "oldest" => Some(RunOrder::Oldest),
            "slowest" => Some(RunOrder::Slowest),
            _ => None,
        }
    }

    /// The key a cursor holds for `run`.
    pub fn key(self, run: &RunSummary) -> i64 {
        match self {
            RunOrder::Newest | RunOrder::Oldest => run.started_ms,
            RunOrder::Slowest => run
                .ended_ms
                .map_or(-1, |e| e.saturating_sub(run.started_ms)),
        }
    }
}

/// How a pipeline has been doing over a window: the dashboard's overview.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PipelineHealth {
    pub pipeline: String,
    pub workspace: String,
    /// The newest run.
    pub last_run_id: String,
    pub last_status: String,
    pub last_started_ms: i64,
    /// Runs that ended, and those that succeeded, over the last 7 and 30 days.
    pub ended_7d: i64,
    pub succeeded_7d: i64,
    pub ended_30d: i64,
    pub succeeded_30d: i64,
    /// The median duration of the runs that ended over the last 7 days, and
    /// over the 7 before (its trend).
    pub median_ms_7d: Option<i64>,
    pub median_ms_prev_7d: Option<i64>,
    /// Stages over the last 30 days: run, and restored from the run cache.
    pub stages_ran_30d: i64,
    pub stages_restored_30d: i64,
}
