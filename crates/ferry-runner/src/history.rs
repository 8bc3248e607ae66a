//! Run history for `ferry runs` and `ferry logs`: the project's store, or a
//! team's `ferry server` read through its MLflow API. A pipeline run reads
//! the same from both (`ferry_metadata::pipeline_runs` turns the MLflow
//! shapes `Remote` records back into a run with its stages and gates), and a
//! stage's log is found where the run was recorded: `.ferry/logs`, else the
//! run's `logs/<stage>.log` artifact.

use crate::{Error, Layout, Result};
use ferry_metadata::{BlockingStore, RunDetail, RunFilter, RunSummary, pipeline_runs};

pub trait History {
    /// The newest `limit` pipeline runs, newest first.
    fn list_runs(&self, limit: i64) -> Result<Vec<RunSummary>>;
    /// One run, by id or a unique prefix of it (at least 4 characters).
    fn get_run(&self, id_or_prefix: &str) -> Result<RunDetail>;
    /// The trigger that started a run (`ferry agent`'s runs), with its
    /// evidence; `None` for a run a person or CI started, or where the
    /// history does not say (a server).
    fn triggered_by(&self, _run_id: &str) -> Result<Option<ferry_metadata::TriggeredRun>> {
        Ok(None)
    }
    /// What `stage` of run `run_id` printed; `None` if it left no log.
    fn stage_log(&self, run_id: &str, stage: &str) -> Result<Option<Vec<u8>>>;

    /// A run as the user names it: `latest` (the newest run), `latest~N`
    /// (the one N before it), or an id or prefix, returned as is.
    fn resolve(&self, run: &str) -> Result<String> {
        let back = match run.strip_prefix("latest") {
            Some("") => 0,
            Some(rest) => match rest.strip_prefix('~').and_then(|n| n.parse::<i64>().ok()) {
                Some(n) if n >= 0 => n,
                _ => {
                    return Err(crate::Error::NoSuchRun(format!(
                        "`{run}`: use `latest`, `latest~N` (N runs before it) or a run id"
                    )));
                }
            },
            None => return Ok(run.to_owned()),
        };
        let runs = self.list_runs(back + 1)?;
        match runs.get(back as usize) {
            Some(r) => Ok(r.run_id.clone()),
            None => Err(crate::Error::NoSuchRun(format!(
                "`{run}`: there {} only {} run{}",
                if runs.len() == 1 { "is" } else { "are" },
                runs.len(),
                if runs.len() == 1 { "" } else { "s" }
            ))),
        }
    }
}

/// The history in a store; stage logs from the project's `layout` (its
/// logs, else the run's artifacts) when the store is a project's, none for
/// a store opened by its URL alone (its files are elsewhere).
pub fn local_history(store: BlockingStore, layout: Option<Layout>) -> Box<dyn History> {
    Box::new(LocalHistory { store, layout })
}

/// The history on the `ferry server` at `url`.
pub fn remote_history(url: &str) -> Result<Box<dyn History>> {
    Ok(Box::new(RemoteHistory {
        client: ferry_client::Client::new(url)?,
    }))
}

struct LocalHistory {
    store: BlockingStore,
    layout: Option<Layout>,
}

fn read_if_any(path: &std::path::Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

impl History for LocalHistory {
    fn list_runs(&self, limit: i64) -> Result<Vec<RunSummary>> {
        Ok(self.store.call(|s| {
            Box::pin(async move {
                s.list_runs(&RunFilter {
                    pipeline: None,
                    limit,
                })
                .await
            })
        })?)
    }

    fn get_run(&self, id: &str) -> Result<RunDetail> {
        let id = id.to_owned();
        Ok(self
            .store
            .call(|s| Box::pin(async move { s.get_run(&id).await }))?)
    }

    fn triggered_by(&self, run_id: &str) -> Result<Option<ferry_metadata::TriggeredRun>> {
        let id = run_id.to_owned();
        Ok(self
            .store
            .call(|s| Box::pin(async move { s.trigger_of_run(&id).await }))?)
    }

    fn stage_log(&self, run_id: &str, stage: &str) -> Result<Option<Vec<u8>>> {
        let Some(layout) = &self.layout else {
            return Ok(None);
        };
        // Safe names: a run id is hex, a stage name is validated.
        let own = layout.stage_log(run_id, stage);
        if let Some(b) = read_if_any(&own)? {
            return Ok(Some(b));
        }
        // Recorded through the MLflow API (by `ferry run --server` to a
        // server on this store): the log is among the run's artifacts.
        let id = run_id.to_owned();
        let run = self
            .store
            .call(|s| Box::pin(async move { s.get_tracked_run(&id).await }))?;
        let Some(dir) = run.as_ref().and_then(pipeline_runs::artifact_dir) else {
            return Ok(None);
        };
        let mut path = layout.artifacts();
        for seg in dir.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Ok(None);
            }
            path.push(seg);
        }
        read_if_any(&path.join(pipeline_runs::stage_log_artifact(stage)))
    }
}

struct RemoteHistory {
    client: ferry_client::Client,
}

/// MLflow's filter for pipeline runs (stage runs have no `ferry.pipeline`).
const PIPELINE_RUNS: &str = "tags.`ferry.pipeline` LIKE '%'";

impl RemoteHistory {
    fn find(&self, id: &str) -> Result<ferry_metadata::TrackedRun> {
        let id = id.to_ascii_lowercase();
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ferry_metadata::Error::Invalid(format!(
                "`{id}` is not a run id: give at least 4 hex characters"
            ))
            .into());
        }
        if id.len() == 32
            && let Some(r) = self.client.get_run(&id)?
        {
            return Ok(r);
        }
        let exps = self.client.experiment_ids()?;
        let mut found: Vec<_> = self
            .client
            .search_runs(&exps, PIPELINE_RUNS, 10_000)?
            .into_iter()
            .filter(|r| r.info.run_id.starts_with(&id) && pipeline_runs::is_pipeline_run(r))
            .collect();
        match found.len() {
            0 => Err(ferry_metadata::Error::NotFound(format!("no run `{id}`")).into()),
            1 => Ok(found.remove(0)),
            _ => Err(ferry_metadata::Error::Ambiguous(format!(
                "`{id}` matches several runs; give more characters"
            ))
            .into()),
        }
    }
}

impl History for RemoteHistory {
    fn list_runs(&self, limit: i64) -> Result<Vec<RunSummary>> {
        let exps = self.client.experiment_ids()?;
        let limit = if limit <= 0 { 50 } else { limit.min(10_000) } as usize;
        Ok(self
            .client
            .search_runs(&exps, PIPELINE_RUNS, limit)?
            .iter()
            .filter(|r| pipeline_runs::is_pipeline_run(r))
            .map(pipeline_runs::summary_of)
            .collect())
    }

    fn get_run(&self, id: &str) -> Result<RunDetail> {
        let run = self.find(id)?;
        let children = self.client.search_runs(
            &[run.info.experiment_id],
            &format!("tags.mlflow.parentRunId = '{}'", run.info.run_id),
            10_000,
        )?;
        Ok(pipeline_runs::detail_of(&run, &children))
    }

    fn stage_log(&self, run_id: &str, stage: &str) -> Result<Option<Vec<u8>>> {
        let Some(run) = self.client.get_run(run_id)? else {
            return Ok(None);
        };
        let Some(dir) = pipeline_runs::artifact_dir(&run) else {
            return Ok(None);
        };
        Ok(self.client.download_artifact(&format!(
            "{dir}/{}",
            pipeline_runs::stage_log_artifact(stage)
        ))?)
    }
}
