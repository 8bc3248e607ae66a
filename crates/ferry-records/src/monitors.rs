//! What the closed loop records: monitor events (what each check of a
//! served model found), whether each check is failing and when it was last
//! told (so an alert is sent once, repeated only after its cooldown, and a
//! recovery told once), and the runs triggers asked for (queued, claimed
//! by one agent with a lease, ended). The decisions are here, pure; the
//! store makes each one atomic.

use crate::Result;
use serde::{Deserialize, Serialize};

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Failing,
    /// Too few rows or labels in the window to judge.
    Insufficient,
    /// The check could not run (a log it could not read).
    Error,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failing => "failing",
            Self::Insufficient => "insufficient",
            Self::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Self::Ok,
            "failing" => Self::Failing,
            "insufficient" => Self::Insufficient,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// One check of a served model over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorEvent {
    pub event_id: String,
    pub model: String,
    /// The version watched (the alias's, when the check ran).
    pub version: Option<i64>,
    /// `drift`, `prediction_shift`, `accuracy`, `error_rate`, `p99_ms`.
    pub check: String,
    pub status: CheckStatus,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// Logged predictions (or labels) the check read.
    pub rows: u64,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub at_ms: i64,
    /// Why, in a sentence: `drift in petal_length: wasserstein 0.31 >= 0.1
    /// over 12,480 predictions`.
    pub summary: String,
    /// The evidence behind it (per-column scores).
    pub detail: serde_json::Value,
}

/// What to tell about a check, decided by [`alert_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// It started failing.
    Failing,
    /// It is still failing, a cooldown after it was last told.
    StillFailing,
    /// It was failing and passes again.
    Recovered,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failing => "failing",
            Self::StillFailing => "still_failing",
            Self::Recovered => "recovered",
        }
    }
}

/// Whether a check is failing, since when, and when it was last told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    pub failing: bool,
    pub since_ms: i64,
    pub sent_ms: i64,
}

/// The one rule alerts follow: a check that starts failing is told at
/// once; while it fails it is told again only `cooldown_ms` after it last
/// was; when it passes again that is told once. An `Insufficient` or
/// `Error` status changes nothing (a quiet hour is not a recovery).
/// Returns the new state (`None`: unchanged) and what to tell.
pub fn alert_step(
    prev: Option<AlertState>,
    status: CheckStatus,
    now_ms: i64,
    cooldown_ms: i64,
) -> (Option<AlertState>, Option<Notice>) {
    let failing = match status {
        CheckStatus::Failing => true,
        CheckStatus::Ok => false,
        CheckStatus::Insufficient | CheckStatus::Error => return (None, None),
    };
    let fresh = |failing| AlertState {
        failing,
        since_ms: now_ms,
        sent_ms: now_ms,
    };
    match (prev, failing) {
        (Some(p), true) if p.failing => {
            if now_ms - p.sent_ms >= cooldown_ms {
                let s = AlertState {
                    sent_ms: now_ms,
                    ..p
                };
                (Some(s), Some(Notice::StillFailing))
            } else {
                (None, None)
            }
        }
        (_, true) => (Some(fresh(true)), Some(Notice::Failing)),
        (Some(p), false) if p.failing => (Some(fresh(false)), Some(Notice::Recovered)),
        (_, false) => (None, None),
    }
}

/// Where a triggered run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerState {
    Queued,
    /// Fired within its pipeline's cooldown: recorded, not run.
    Ignored,
    Running,
    Succeeded,
    Failed,
    /// Its agent stopped answering twice.
    Abandoned,
}

impl TriggerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Ignored => "ignored",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "ignored" => Self::Ignored,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "abandoned" => Self::Abandoned,
            _ => return None,
        })
    }
}

/// A trigger that fired: what `fire_trigger` is asked to queue.
#[derive(Debug, Clone)]
pub struct Firing {
    pub pipeline: String,
    /// `schedule`, `drift`, `decay`, `data`, `manual`; `push` and
    /// `pull_request` from a forge's webhook.
    pub kind: String,
    /// What fired it; the same key never queues twice.
    pub key: String,
    pub evidence: String,
    /// The commit to run the pipeline at (40 hex digits, checked by
    /// [`is_commit`]); `None`: the agent's work tree as it is.
    pub commit: Option<String>,
    pub now_ms: i64,
    /// A firing within this of the pipeline's last triggered run is
    /// ignored (recorded, not run). A person's (`manual`) is never.
    pub cooldown_ms: i64,
}

/// Whether `s` is a full commit id as git spells it: 40 lowercase hex
/// digits (SHA-1). The only form of a commit a trigger carries, so
/// nothing else ever reaches git as an argument.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What came of a [`Firing`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Fired {
    Queued {
        trigger: TriggeredRun,
    },
    /// Within the cooldown of `after`: recorded as ignored.
    Ignored {
        trigger: TriggeredRun,
        after: String,
    },
    /// This cause had already fired.
    Duplicate,
}

/// A run a trigger asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggeredRun {
    pub trigger_id: String,
    pub pipeline: String,
    pub kind: String,
    pub key: String,
    pub evidence: String,
    /// The commit it runs the pipeline at (schema 20); `None`: the agent's
    /// work tree as it is.
    #[serde(default)]
    pub commit: Option<String>,
    pub state: TriggerState,
    pub created_ms: i64,
    /// The agent that holds (or last held) it.
    pub agent: Option<String>,
    /// Until when the agent's claim holds unless renewed.
    pub lease_ms: i64,
    pub attempts: u32,
    pub run_id: Option<String>,
    pub note: Option<String>,
    pub ended_ms: Option<i64>,
}

/// A claim's terms: who claims, until when, and the pipeline's limit of
/// runs at once.
#[derive(Debug, Clone)]
pub struct Claim {
    pub pipeline: String,
    pub agent: String,
    pub now_ms: i64,
    pub lease_ms: i64,
    pub concurrency: u32,
    /// A run whose agent stopped answering is queued again this many times.
    pub retries: u32,
}

/// The closed loop's records, a part of every store.
#[async_trait::async_trait]
pub trait LoopStore: Send + Sync {
    async fn record_monitor_events(&self, events: &[MonitorEvent]) -> Result<()>;
    /// Events newest first: of `model` (all when `None`), before `before_ms`
    /// (paging), at most `limit`.
    async fn monitor_events(
        &self,
        model: Option<&str>,
        before_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MonitorEvent>>;
    /// The latest event of each check of each model (of `model` only when
    /// given), by model then check.
    async fn latest_monitor_events(&self, model: Option<&str>) -> Result<Vec<MonitorEvent>>;
    /// Whether a check of a model is failing and since when (`None`: it
    /// never failed).
    async fn alert_state(&self, model: &str, check: &str) -> Result<Option<AlertState>>;
    /// Decides by [`alert_step`] and keeps the new state, in one
    /// transaction (two agents never both tell the same change).
    async fn alert_transition(
        &self,
        model: &str,
        check: &str,
        status: CheckStatus,
        now_ms: i64,
        cooldown_ms: i64,
    ) -> Result<Option<(Notice, AlertState)>>;
    /// Queues a firing, or records it ignored within the cooldown, in one
    /// transaction.
    async fn fire_trigger(&self, f: &Firing) -> Result<Fired>;
    /// Gives one queued run of the pipeline to `agent` (oldest first),
    /// unless as many as the pipeline's concurrency already run. First a
    /// run whose lease lapsed is queued again (or abandoned once it was
    /// tried `retries` + 1 times). Atomic: two agents never claim one run.
    async fn claim_trigger(&self, c: &Claim) -> Result<Option<TriggeredRun>>;
    /// Extends a claim; false when the agent no longer holds it.
    async fn renew_trigger(&self, trigger_id: &str, agent: &str, lease_ms: i64) -> Result<bool>;
    /// Says which run a claimed trigger started.
    async fn trigger_started(&self, trigger_id: &str, agent: &str, run_id: &str) -> Result<()>;
    /// Ends a claimed run; false when the agent no longer held it.
    async fn finish_trigger(
        &self,
        trigger_id: &str,
        agent: &str,
        state: TriggerState,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<bool>;
    /// Triggered runs newest first (of `pipeline` when given).
    async fn triggered_runs(
        &self,
        pipeline: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TriggeredRun>>;
    /// The trigger that started `run_id`, if one did.
    async fn trigger_of_run(&self, run_id: &str) -> Result<Option<TriggeredRun>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_forty_lowercase_hex_digits() {
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        for bad in [
            "",
            "0123456789abcdef",
            "0123456789ABCDEF0123456789abcdef01234567",
            "0123456789abcdef0123456789abcdef0123456g",
            "--upload-pack=touch /tmp/x0123456789abcdef",
            "0123456789abcdef0123456789abcdef012345678",
        ] {
            assert!(!is_commit(bad), "{bad}");
        }
    }

    #[test]
    fn an_alert_is_told_once_again_after_its_cooldown_and_on_recovery() {
        use CheckStatus::*;
        let (s, n) = alert_step(None, Ok, 0, 100);
        assert_eq!((s, n), (None, None), "ok from the start says nothing");
        let (s, n) = alert_step(None, Failing, 10, 100);
        assert_eq!(n, Some(Notice::Failing));
        let s = s.unwrap();
        assert_eq!((s.failing, s.since_ms, s.sent_ms), (true, 10, 10));
        assert_eq!(alert_step(Some(s), Failing, 50, 100), (None, None));
        assert_eq!(alert_step(Some(s), Insufficient, 500, 100), (None, None));
        let (s2, n) = alert_step(Some(s), Failing, 110, 100);
        assert_eq!(n, Some(Notice::StillFailing));
        assert_eq!(s2.unwrap().since_ms, 10, "still failing since the start");
        let (s3, n) = alert_step(s2, Ok, 120, 100);
        assert_eq!(n, Some(Notice::Recovered));
        assert!(!s3.unwrap().failing);
        assert_eq!(alert_step(s3, Ok, 130, 100), (None, None));
        let (_, n) = alert_step(s3, Failing, 140, 100);
        assert_eq!(n, Some(Notice::Failing), "a new episode is told at once");
    }
}
