//! The group writer on SQLite: a thread of its own with its own connection,
//! driving SQLite's C API directly. A group of logging requests is one
//! hand-off to this thread and one transaction; when one of its requests
//! fails, the group is undone and written again with each request in a
//! savepoint of its own (so each stays all-or-nothing); through sqlx every statement
//! would be a round trip to sqlx's worker thread, and those hand-offs, not
//! SQLite, are what the requests waited on.
//!
//! Only this file holds `unsafe` code of the crate; every call is on the
//! connection this thread opened and owns, but for the hook of
//! [`leave_checkpoints_to_commits`], which SQLite calls on each connection
//! it opens.

use crate::jobs::{Job, LogJob, MAX_GROUP, MAX_GROUP_POINTS, NewTrackedRun};
use crate::sql::{
    LATEST_INSERT, LATEST_ON_CONFLICT, POINT_INSERT, POINT_ON_CONFLICT, latest_points, stored,
};
use crate::tracking::{ExperimentRow, log_errors, new_run_row};
use crate::{Error, Result};
use ferry_records::TrackedRun;
use libsqlite3_sys as ffi;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_int};
use std::ptr;

struct Conn {
    db: *mut ffi::sqlite3,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: `db` came from sqlite3_open_v2 and is closed once, here,
        // after the Writer (and so every statement) was dropped.
        unsafe {
            ffi::sqlite3_close(self.db);
        }
    }
}

fn err(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{what}: {detail}"))
}

impl Conn {
    fn open(path: &str) -> Result<Conn> {
        let c = CString::new(path).map_err(|e| err("open the store", e))?;
        let mut db = ptr::null_mut();
        // SAFETY: `c` is a valid C string; `db` receives a handle (or null).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let conn = Conn { db };
        if rc != ffi::SQLITE_OK {
            return Err(err("open the store", conn.message()));
        }
        conn.exec(
            "PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY; PRAGMA case_sensitive_like=ON",
        )?;
        // SAFETY: a valid connection.
        unsafe {
            ffi::sqlite3_busy_timeout(conn.db, 10_000);
        }
        Ok(conn)
    }

    fn message(&self) -> String {
        if self.db.is_null() {
            return "out of memory".into();
        }
        // SAFETY: errmsg returns a valid C string owned by the connection.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db)) }
            .to_string_lossy()
            .into_owned()
    }

    fn exec(&self, sql: &str) -> Result<()> {
        let c = CString::new(sql).map_err(|e| err("run a statement", e))?;
        // SAFETY: valid connection and C string; no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(self.db, c.as_ptr(), None, ptr::null_mut(), ptr::null_mut())
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(err(sql, self.message()))
        }
    }

    fn prepare<'c>(&'c self, sql: &str) -> Result<Stmt<'c>> {
        let c = CString::new(sql).map_err(|e| err("prepare a statement", e))?;
        let mut st = ptr::null_mut();
        // SAFETY: valid connection and C string; `st` receives the statement.
        let rc =
            unsafe { ffi::sqlite3_prepare_v2(self.db, c.as_ptr(), -1, &mut st, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK {
            return Err(err(sql, self.message()));
        }
        Ok(Stmt { conn: self, st })
    }
}

/// A prepared statement, reset after each use.
struct Stmt<'c> {
    conn: &'c Conn,
    st: *mut ffi::sqlite3_stmt,
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: `st` came from prepare_v2 and is finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.st);
        }
    }
}

enum Arg<'a> {
    T(&'a str),
    I(i64),
    F(f64),
}

impl Stmt<'_> {
    /// Binds `args` to ?1.., steps once, and returns the first column of the
    /// first row as text (if the statement returned a row), then resets.
    fn run(&mut self, args: &[Arg<'_>]) -> Result<Option<String>> {
        Ok(self.row(args, 1)?.and_then(|mut c| c.pop().flatten()))
    }

    /// Binds `args` to ?1.., steps once, and returns the first `cols`
    /// columns of the first row as text (`None` for NULL), then resets.
    fn row(&mut self, args: &[Arg<'_>], cols: usize) -> Result<Option<Vec<Option<String>>>> {
        // SAFETY (whole block): `st` is a live statement of this thread's
        // connection; text is bound with SQLITE_TRANSIENT, so SQLite copies
        // it before `args` goes away; column text is copied out before reset.
        unsafe {
            for (i, a) in args.iter().enumerate() {
                let n = (i + 1) as c_int;
                let rc = match a {
                    Arg::T(s) => ffi::sqlite3_bind_text(
                        self.st,
                        n,
                        s.as_ptr().cast(),
                        s.len() as c_int,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                    Arg::I(v) => ffi::sqlite3_bind_int64(self.st, n, *v),
                    Arg::F(v) => ffi::sqlite3_bind_double(self.st, n, *v),
                };
                if rc != ffi::SQLITE_OK {
                    let e = err("bind", self.conn.message());
                    ffi::sqlite3_reset(self.st);
                    return Err(e);
                }
            }
            let rc = ffi::sqlite3_step(self.st);
            let out = match rc {
                ffi::SQLITE_ROW => Ok(Some(
                    (0..cols.min(ffi::sqlite3_column_count(self.st) as usize))
                        .map(|c| {
                            let p = ffi::sqlite3_column_text(self.st, c as c_int);
                            (!p.is_null())
                                .then(|| CStr::from_ptr(p.cast()).to_string_lossy().into_owned())
                        })
                        .collect(),
                )),
                ffi::SQLITE_DONE => Ok(None),
                _ => Err(err("write", self.conn.message())),
            };
            ffi::sqlite3_reset(self.st);
            ffi::sqlite3_clear_bindings(self.st);
            out
        }
    }
}

/// From now on, every SQLite connection this process opens leaves the WAL
/// as it is when it closes, instead of copying it back into the database
/// (a checkpoint, with its fsyncs) and removing it. For processes that end
/// soon after their last write (a command): the next one to open the store
/// finds the WAL, and a commit checkpoints once the WAL is long enough
/// (`wal_autocheckpoint`). Without this, the closing connection starts a
/// checkpoint that the process's exit waits on or cuts short, and the
/// next command recreates the removed WAL (two more fsyncs).
pub(crate) fn leave_checkpoints_to_commits() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a function with the signature SQLite expects of
        // an automatic extension; it stays valid for the whole process.
        unsafe {
            ffi::sqlite3_auto_extension(Some(no_checkpoint_on_close));
        }
    });
}

/// The automatic extension of [`leave_checkpoints_to_commits`].
unsafe extern "C" fn no_checkpoint_on_close(
    db: *mut ffi::sqlite3,
    _err: *mut *mut std::ffi::c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: SQLite passes the connection it is opening; the option takes
    // an int (on) and a pointer for the old value (none).
    unsafe {
        ffi::sqlite3_db_config(
            db,
            ffi::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            1 as c_int,
            ptr::null_mut::<c_int>(),
        );
    }
    ffi::SQLITE_OK
}

/// Starts the writer thread for the database file at `path`. Requests come
/// in on `rx`; the thread ends when every sender is gone.
pub(crate) fn spawn(
    path: String,
    rx: tokio::sync::mpsc::Receiver<Job>,
    fallbacks: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    std::thread::Builder::new()
        .name("ferry-sqlite-writer".into())
        .spawn(move || writer(&path, rx, &fallbacks))
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the SQLite writer thread"));
}

fn writer(
    path: &str,
    mut rx: tokio::sync::mpsc::Receiver<Job>,
    fallbacks: &std::sync::atomic::AtomicU64,
) {
    let conn = match Conn::open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the SQLite writer cannot open the store");
            // Answer every request with the error rather than hang.
            while let Some(job) = rx.blocking_recv() {
                answer(job, Err(err("open the store", &e)));
            }
            return;
        }
    };
    let mut w = match Writer::new(&conn) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "the SQLite writer cannot prepare its statements");
            while let Some(job) = rx.blocking_recv() {
                answer(job, Err(err("prepare", &e)));
            }
            return;
        }
    };
    while let Some(first) = rx.blocking_recv() {
        let mut points = first.points();
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP && points < MAX_GROUP_POINTS {
            match rx.try_recv() {
                Ok(j) => {
                    points += j.points();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        match w.group(&jobs) {
            Ok(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    answer(job, r);
                }
            }
            Err(e) => {
                fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, requests = jobs.len(), "group commit failed");
                let _ = conn.exec("ROLLBACK");
                for job in jobs {
                    answer(job, Err(err("write a group", &e)));
                }
            }
        }
    }
}

/// Replies to `job` with its result (a created run's info, or nothing).
fn answer(job: Job, r: Result<Option<TrackedRun>>) {
    match job {
        Job::Log(j) => {
            let _ = j.reply.send(r.map(drop));
        }
        Job::CreateRun(j) => {
            let _ = j
                .reply
                .send(r.and_then(|info| info.ok_or_else(|| err("create a run", "no row"))));
        }
    }
}

struct Writer<'c> {
    stage: Stmt<'c>,
    param_get: Stmt<'c>,
    param_put: Stmt<'c>,
    point: Stmt<'c>,
    latest: Stmt<'c>,
    tag: Stmt<'c>,
    run_name: Stmt<'c>,
    experiment: Stmt<'c>,
    insert_run: Stmt<'c>,
    // The transaction's own statements, prepared once like the rest (each
    // `sqlite3_exec` would parse its text again on every group).
    begin: Stmt<'c>,
    commit: Stmt<'c>,
    group_savepoint: Stmt<'c>,
    group_rollback: Stmt<'c>,
    group_release: Stmt<'c>,
    savepoint: Stmt<'c>,
    release: Stmt<'c>,
    rollback_to: Stmt<'c>,
    /// Runs found active in this transaction. Nothing the writer does
    /// changes a run's stage, and no other connection writes while the
    /// transaction (`BEGIN IMMEDIATE`) holds the write lock, so a run found
    /// active stays so until the group commits; cleared with each group.
    stages: Vec<String>,
}

impl<'c> Writer<'c> {
    fn new(conn: &'c Conn) -> Result<Self> {
        Ok(Writer {
            stage: conn.prepare("SELECT lifecycle_stage FROM runs WHERE run_id = ?1")?,
            param_get: conn
                .prepare("SELECT value FROM run_params WHERE run_id = ?1 AND pkey = ?2")?,
            param_put: conn
                .prepare("INSERT INTO run_params (run_id, pkey, value) VALUES (?1, ?2, ?3)")?,
            point: conn.prepare(&format!(
                "{POINT_INSERT} (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7) {POINT_ON_CONFLICT}"
            ))?,
            latest: conn.prepare(&format!(
                "{LATEST_INSERT} (?1, ?2, ?3, ?4, ?5, ?6, ?7) {LATEST_ON_CONFLICT}"
            ))?,
            tag: conn.prepare(crate::sql::UPSERT_RUN_TAG)?,
            run_name: conn.prepare("UPDATE runs SET run_name = ?1 WHERE run_id = ?2")?,
            experiment: conn.prepare(
                "SELECT name, lifecycle_stage, artifact_location FROM experiments WHERE experiment_id = ?1",
            )?,
            insert_run: conn.prepare(crate::sql::INSERT_TRACKED_RUN)?,
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            group_savepoint: conn.prepare("SAVEPOINT grp")?,
            group_rollback: conn.prepare("ROLLBACK TO grp")?,
            group_release: conn.prepare("RELEASE grp")?,
            savepoint: conn.prepare("SAVEPOINT job")?,
            release: conn.prepare("RELEASE job")?,
            rollback_to: conn.prepare("ROLLBACK TO job")?,
            stages: Vec::new(),
        })
    }

    /// One transaction for the group. Most groups have no job that fails,
    /// and are written with no savepoint per job (two statements fewer per
    /// job). When one fails, the group is undone to its own savepoint (the
    /// transaction, and the write lock, stay) and written again with a
    /// savepoint per job, so that each job stays all-or-nothing and fails
    /// alone. `Err` means the transaction itself failed.
    fn group(&mut self, jobs: &[Job]) -> Result<Vec<Result<Option<TrackedRun>>>> {
        self.stages.clear();
        self.begin.run(&[])?;
        self.group_savepoint.run(&[])?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.job(job) {
                Ok(r) => out.push(Ok(r)),
                Err(_) => {
                    self.group_rollback.run(&[])?;
                    out = self.each_in_savepoint(jobs)?;
                    break;
                }
            }
        }
        self.group_release.run(&[])?;
        self.commit.run(&[])?;
        Ok(out)
    }

    fn job(&mut self, job: &Job) -> Result<Option<TrackedRun>> {
        match job {
            Job::Log(j) => self.log(j).map(|()| None),
            Job::CreateRun(j) => self.create_run(&j.run).map(Some),
        }
    }

    /// Each job in a savepoint of its own, rolled back alone when it fails.
    fn each_in_savepoint(&mut self, jobs: &[Job]) -> Result<Vec<Result<Option<TrackedRun>>>> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            self.savepoint.run(&[])?;
            let r = self.job(job);
            if r.is_err() {
                self.rollback_to.run(&[])?;
            }
            self.release.run(&[])?;
            out.push(r);
        }
        Ok(out)
    }

    fn create_run(&mut self, run: &NewTrackedRun) -> Result<TrackedRun> {
        let row = self.experiment.row(&[Arg::I(run.experiment_id.get())], 3)?;
        let cols: Vec<String> = row
            .unwrap_or_default()
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let exp = match cols.as_slice() {
            [name, stage, location] => Some(ExperimentRow {
                name,
                lifecycle_stage: stage,
                artifact_location: location,
            }),
            _ => None,
        };
        let created = new_run_row(run, exp)?;
        let info = &created.info;
        self.insert_run.run(&[
            Arg::T(&info.run_id),
            Arg::T(exp.map(|e| e.name).unwrap_or_default()),
            Arg::I(info.start_time),
            Arg::I(info.experiment_id.get()),
            Arg::T(&info.run_name),
            Arg::T(&info.user_id),
            Arg::T(&info.artifact_uri),
        ])?;
        for (k, v) in &created.tags {
            self.tag
                .run(&[Arg::T(&info.run_id), Arg::T(k), Arg::T(v)])?;
        }
        Ok(created)
    }

    fn log(&mut self, job: &LogJob) -> Result<()> {
        let run = job.run_id.as_str();
        if !self.stages.iter().any(|r| r == run) {
            match self.stage.run(&[Arg::T(run)])? {
                None => return Err(log_errors::run_not_found(run)),
                Some(s) if s != "active" => return Err(log_errors::run_not_active(run, &s)),
                Some(_) => self.stages.push(run.to_owned()),
            }
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in &job.params {
            if let Some(prev) = seen.insert(k, v) {
                if prev != v {
                    return Err(log_errors::duplicate_param(k, prev, v));
                }
                continue;
            }
            match self.param_get.run(&[Arg::T(run), Arg::T(k)])? {
                Some(old) if old != *v => {
                    return Err(log_errors::changed_param(k, &old, run, v));
                }
                Some(_) => {}
                None => {
                    self.param_put.run(&[Arg::T(run), Arg::T(k), Arg::T(v)])?;
                }
            }
        }
        let points: Vec<_> = crate::tracking::points(run, &job.metrics).collect();
        for p in &points {
            let (v, n) = stored(p.value);
            self.point.run(&[
                Arg::T(run),
                Arg::T(p.key),
                Arg::F(v),
                Arg::I(n),
                Arg::I(p.step),
                Arg::I(p.ts_ms),
                Arg::I(v.to_bits() as i64),
            ])?;
        }
        for p in latest_points(&points) {
            let (v, n) = stored(p.value);
            self.latest.run(&[
                Arg::T(run),
                Arg::T(p.key),
                Arg::F(v),
                Arg::I(n),
                Arg::I(p.step),
                Arg::I(p.ts_ms),
                Arg::I(v.to_bits() as i64),
            ])?;
        }
        for (k, v) in &job.tags {
            self.tag.run(&[Arg::T(run), Arg::T(k), Arg::T(v)])?;
            if k == "mlflow.runName" {
                self.run_name.run(&[Arg::T(v), Arg::T(run)])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::LogJob;
    use crate::{Metric, SqlStore, TrackingStore};

    fn log(run: &str, step: i64, params: &[(&str, &str)]) -> Job {
        Job::Log(LogJob {
            run_id: run.to_owned(),
            metrics: vec![Metric {
                key: "m".into(),
                value: step as f64,
                timestamp: step,
                step,
            }],
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            tags: vec![],
            reply: tokio::sync::oneshot::channel().0,
        })
    }

    /// A group with a failing job is written again job by job: the others
    /// are stored, the failing one (which had written a new param before
    /// another one conflicted) leaves nothing.
    #[tokio::test]
    async fn a_failing_job_fails_alone_and_the_rest_of_its_group_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        let s = SqlStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let e = s.create_experiment("g", None, &[], 1).await.unwrap();
        let (a, b) = ("a".repeat(32), "b".repeat(32));
        for id in [&a, &b] {
            s.create_tracked_run(id, e, "r", "", 1, &[]).await.unwrap();
        }
        s.log_batch(&a, &[], &[("p".into(), "1".into())], &[])
            .await
            .unwrap();
        let conn = Conn::open(path.to_str().unwrap()).unwrap();
        let mut w = Writer::new(&conn).unwrap();
        // Without a failing job: one pass.
        let ok = w.group(&[log(&a, 1, &[]), log(&b, 1, &[])]).unwrap();
        assert!(ok.iter().all(Result::is_ok));
        // The second job sets `r`, then changes run a's param `p`.
        let jobs = [
            log(&a, 2, &[]),
            log(&a, 3, &[("r", "x"), ("p", "changed")]),
            log(&b, 2, &[("q", "new")]),
            log(&"c".repeat(32), 1, &[]),
        ];
        let got = w.group(&jobs).unwrap();
        let failed: Vec<bool> = got.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, true, false, true]);
        drop(w);
        drop(conn);
        let steps = |h: Vec<Metric>| h.iter().map(|m| m.step).collect::<Vec<_>>();
        assert_eq!(steps(s.metric_history(&a, "m").await.unwrap()), [1, 2]);
        assert_eq!(steps(s.metric_history(&b, "m").await.unwrap()), [1, 2]);
        let ra = s.get_tracked_run(&a).await.unwrap().unwrap();
        assert_eq!(ra.params, [("p".to_string(), "1".to_string())]);
        let rb = s.get_tracked_run(&b).await.unwrap().unwrap();
        assert_eq!(rb.params, [("q".to_string(), "new".to_string())]);
    }
}
