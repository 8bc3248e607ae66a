//! Group commit for `log_batch`: concurrent logging requests (eight clients
//! each logging one metric, say) are validated together and written in one
//! transaction, instead of queueing for the database one by one.
//!
//! Each request keeps its own all-or-nothing semantics: a request that fails
//! validation (unknown or deleted run, a changed param) is answered with its
//! error and left out; the rest commit together. If the shared transaction
//! fails as a whole, every request is retried on its own.

use crate::Result;
use crate::jobs::{Job, LogJob, MAX_GROUP, MAX_GROUP_POINTS};
use crate::row::{col_str, query_error};
use crate::sql::{SqlStore, write_points};
use crate::tracking::{log_errors, upsert_tag};
use std::collections::HashMap;

impl SqlStore {
    /// This store with a group-commit writer for `log_batch` (the server
    /// uses it). Needs a running tokio runtime.
    pub fn with_group_commit(mut self) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(1024);
        // On a SQLite file: a writer thread on its own connection; else
        // (PostgreSQL, in-memory SQLite) a task over the pool.
        if let Some(path) = &self.sqlite_path {
            crate::sqlite_writer::spawn(path.clone(), rx, self.fallbacks.clone());
        } else {
            let direct = SqlStore {
                pool: self.pool.clone(),
                sqlite: self.sqlite,
                sqlite_path: None,
                writer: None,
                fallbacks: self.fallbacks.clone(),
            };
            tokio::spawn(writer(direct, rx));
        }
        self.writer = Some(tx);
        self
    }

    /// How many groups failed as a whole and were written request by
    /// request instead: a healthy store keeps this at zero.
    pub fn group_fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn writer(store: SqlStore, mut rx: tokio::sync::mpsc::Receiver<Job>) {
    loop {
        let first = match rx.recv().await {
            Some(Job::Log(j)) => j,
            Some(Job::CreateRun(j)) => {
                let _ = j.reply.send(store.create_tracked_run_direct(&j.run).await);
                continue;
            }
            None => return,
        };
        let mut points = first.metrics.len();
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP && points < MAX_GROUP_POINTS {
            match rx.try_recv() {
                Ok(Job::Log(j)) => {
                    points += j.metrics.len();
                    jobs.push(j);
                }
                Ok(Job::CreateRun(j)) => {
                    let _ = j.reply.send(store.create_tracked_run_direct(&j.run).await);
                }
                Err(_) => break,
            }
        }
        match commit_group(&store, &jobs).await {
            Ok(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                store
                    .fallbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, requests = jobs.len(), "group commit failed; writing each request alone");
                for job in jobs {
                    let r = store
                        .log_batch_direct(&job.run_id, &job.metrics, &job.params, &job.tags)
                        .await;
                    let _ = job.reply.send(r);
                }
            }
        }
    }
}

/// Validates every job, writes the valid ones in one transaction, and
/// returns each job's result. `Err` means the transaction itself failed.
async fn commit_group(store: &SqlStore, jobs: &[LogJob]) -> Result<Vec<Result<()>>> {
    let mut tx = store.begin().await.map_err(query_error("log a batch"))?;
    let mut ids: Vec<&str> = jobs.iter().map(|j| j.run_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let mut stage_q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT run_id, lifecycle_stage FROM runs WHERE run_id IN ({})",
        list.join(", ")
    )));
    for id in &ids {
        stage_q = stage_q.bind((*id).to_owned());
    }
    let stages: HashMap<String, String> = stage_q
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error("log a batch"))?
        .iter()
        .map(|r| (col_str(r, "run_id"), col_str(r, "lifecycle_stage")))
        .collect();
    // Params already stored for these runs, then those this group adds.
    let mut params: HashMap<(String, String), String> = HashMap::new();
    if jobs.iter().any(|j| !j.params.is_empty()) {
        let mut pq = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT run_id, pkey, value FROM run_params WHERE run_id IN ({})",
            list.join(", ")
        )));
        for id in &ids {
            pq = pq.bind((*id).to_owned());
        }
        for r in pq
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error("log params"))?
        {
            params.insert(
                (col_str(&r, "run_id"), col_str(&r, "pkey")),
                col_str(&r, "value"),
            );
        }
    }
    let mut results = Vec::with_capacity(jobs.len());
    let mut accepted: Vec<&LogJob> = Vec::new();
    let mut new_params: Vec<(&str, &str, &str)> = Vec::new();
    for job in jobs {
        let verdict = match stages.get(&job.run_id) {
            None => Err(log_errors::run_not_found(&job.run_id)),
            Some(s) if s != "active" => Err(log_errors::run_not_active(&job.run_id, s)),
            Some(_) => {
                let mut ok = Ok(());
                let mut mine: Vec<(&str, &str)> = Vec::new();
                for (k, v) in &job.params {
                    if let Some((_, prev)) = mine.iter().find(|(pk, _)| pk == k) {
                        if prev != v {
                            ok = Err(log_errors::duplicate_param(k, prev, v));
                            break;
                        }
                        continue;
                    }
                    match params.get(&(job.run_id.clone(), k.clone())) {
                        Some(old) if old != v => {
                            ok = Err(log_errors::changed_param(k, old, &job.run_id, v));
                            break;
                        }
                        Some(_) => {}
                        None => mine.push((k, v)),
                    }
                }
                if ok.is_ok() {
                    for (k, v) in mine {
                        params.insert((job.run_id.clone(), k.to_owned()), v.to_owned());
                        new_params.push((&job.run_id, k, v));
                    }
                }
                ok
            }
        };
        if verdict.is_ok() {
            accepted.push(job);
        }
        results.push(verdict);
    }
    for (run, k, v) in &new_params {
        sqlx::query("INSERT INTO run_params (run_id, pkey, value) VALUES ($1, $2, $3)")
            .bind(*run)
            .bind(*k)
            .bind(*v)
            .execute(&mut *tx)
            .await
            .map_err(query_error("log params"))?;
    }
    let pts: Vec<_> = accepted
        .iter()
        .flat_map(|j| crate::tracking::points(&j.run_id, &j.metrics))
        .collect();
    write_points(&mut tx, store.sqlite, &pts).await?;
    for job in &accepted {
        for (k, v) in &job.tags {
            upsert_tag(&mut tx, &job.run_id, k, v).await?;
            if k == "mlflow.runName" {
                sqlx::query("UPDATE runs SET run_name = $1 WHERE run_id = $2")
                    .bind(v)
                    .bind(&job.run_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error("log tags"))?;
            }
        }
    }
    tx.commit().await.map_err(query_error("log a batch"))?;
    Ok(results)
}
