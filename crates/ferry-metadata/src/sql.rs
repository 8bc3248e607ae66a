//! The SQL backend over sqlx's `Any` driver: SQLite and PostgreSQL from the
//! same statements (`$N` placeholders, portable types, ids made in Rust).

use crate::row::{col_f64, col_i64, col_opt_i64, col_opt_str, col_str, query_error};
use crate::{Error, MetadataStore, Result};
use ferry_records::*;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

/// Migrations, in order; each runs once, in a transaction. A line
/// `-- @sqlite` or `-- @postgres` makes the statements after it (up to the
/// next such line, or `-- @all`) apply to that engine only.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_tracking.sql")),
    (3, include_str!("../migrations/0003_models.sql")),
    (4, include_str!("../migrations/0004_metric_bits.sql")),
    (5, include_str!("../migrations/0005_drop_history_index.sql")),
    (6, include_str!("../migrations/0006_latest_bits.sql")),
    (7, include_str!("../migrations/0007_deployments.sql")),
    (
        8,
        include_str!("../migrations/0008_one_active_deployment.sql"),
    ),
    (9, include_str!("../migrations/0009_version_files.sql")),
    (10, include_str!("../migrations/0010_gateways.sql")),
    (11, include_str!("../migrations/0011_auth.sql")),
    (12, include_str!("../migrations/0012_workspaces.sql")),
    (13, include_str!("../migrations/0013_groups.sql")),
    (14, include_str!("../migrations/0014_stage_costs.sql")),
    (15, include_str!("../migrations/0015_budgets.sql")),
    (16, include_str!("../migrations/0016_run_stage_counts.sql")),
    (17, include_str!("../migrations/0017_runs_by_duration.sql")),
    (18, include_str!("../migrations/0018_monitors.sql")),
    (19, include_str!("../migrations/0019_rollout_replicas.sql")),
    (20, include_str!("../migrations/0020_trigger_commit.sql")),
    (
        21,
        include_str!("../migrations/0021_webhook_deliveries.sql"),
    ),
];

pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) sqlite: bool,
    /// The database file, for SQLite stores on disk (the group writer opens
    /// a connection of its own to it).
    pub(crate) sqlite_path: Option<String>,
    /// Set by [`SqlStore::with_group_commit`]: concurrent `log_batch` calls
    /// are written together in one transaction.
    pub(crate) writer: Option<tokio::sync::mpsc::Sender<crate::jobs::Job>>,
    /// Groups whose shared transaction failed, so that each request was
    /// written on its own (see [`SqlStore::group_fallbacks`]).
    pub(crate) fallbacks: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The statements of a migration that apply to this engine, comments out.
fn migration_for(sql: &str, sqlite: bool) -> String {
    let mut applies = true;
    let mut out = Vec::new();
    for line in sql.lines() {
        let t = line.trim();
        match t {
            "-- @sqlite" => applies = sqlite,
            "-- @postgres" => applies = !sqlite,
            "-- @all" => applies = true,
            _ if t.starts_with("--") => {}
            _ if applies => out.push(line),
            _ => {}
        }
    }
    out.join("\n")
}

impl SqlStore {
    /// Opens the store at `url` (`sqlite:///abs/path.db`, `postgres://…`),
    /// creating a SQLite file if needed, and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        // Checkpoint every 16 MiB of WAL rather than 4: a page written by
        // many commits is copied back once.
        Self::open_with(url, 4096).await
    }

    /// [`SqlStore::open`], checkpointing a SQLite store's WAL once it holds
    /// `checkpoint_pages` pages (`wal_autocheckpoint`).
    pub(crate) async fn open_with(url: &str, checkpoint_pages: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url_full = if sqlite && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        let opts = AnyPoolOptions::new().max_connections(if sqlite { 1 } else { 8 });
        // A SQLite connection is a file this process holds open: nothing
        // can drop it while it idles, so it is not pinged (a round trip to
        // its thread) each time a statement takes it.
        let opts = opts.test_before_acquire(!sqlite);
        let opts = if sqlite {
            opts.after_connect(move |conn, _meta| {
                // One round trip to the connection's thread for all of them.
                // Statement journals (each multi-row upsert inside a
                // transaction keeps one) in memory, not in temp files.
                // MLflow's LIKE is case-sensitive (ILIKE is not).
                let pragmas = format!(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; \
                     PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint={checkpoint_pages}; \
                     PRAGMA case_sensitive_like=ON"
                );
                Box::pin(async move {
                    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas)))
                        .await?;
                    Ok(())
                })
            })
        } else {
            opts
        };
        let pool = opts
            .connect(&url_full)
            .await
            .map_err(|source| Error::Open {
                url: url.to_owned(),
                source: crate::BackendError::new(source),
            })?;
        let sqlite_path = url
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p).to_owned())
            .filter(|p| !p.is_empty() && !p.contains(":memory:"));
        let store = Self {
            pool,
            sqlite,
            sqlite_path,
            writer: None,
            fallbacks: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so concurrent writers wait on the busy timeout
    /// instead of failing when a read would have to become a write.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.pool.begin().await
        }
    }

    /// Runs one statement outside the store's schema (test set-up, such as
    /// `CREATE DATABASE`).
    pub async fn raw_execute(&self, sql: &str) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .map_err(query_error("run a statement"))?;
        Ok(())
    }

    /// A new, empty database on the PostgreSQL server `admin_url` reaches,
    /// named `<prefix>_<random>`: its URL (test set-up: each test a
    /// database of its own).
    pub async fn scratch_database(admin_url: &str, prefix: &str) -> Result<String> {
        let name = format!("{prefix}_{}", ferry_core::RunId::generate().short());
        SqlStore::open(admin_url)
            .await?
            .raw_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }

    /// Applies pending migrations again (none, when up to date).
    pub async fn migrate_again(&self) -> Result<()> {
        self.migrate().await
    }

    /// Brings the schema up to date in one transaction. Concurrent openers
    /// (two servers starting at once) are serialised: SQLite by its write
    /// lock (`BEGIN IMMEDIATE`), PostgreSQL by a transaction advisory lock.
    async fn migrate(&self) -> Result<()> {
        let err = |version: i64| {
            move |source| Error::Migrate {
                version,
                source: crate::BackendError::new(source),
            }
        };
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        // Up to date, as a store nearly always is: a read says so without
        // taking the write lock (a store being migrated meanwhile answers
        // the old version, and the transaction below waits for it).
        let applied = sqlx::query("SELECT MAX(version) AS v FROM ferry_schema")
            .fetch_one(&self.pool)
            .await
            .ok()
            .and_then(|row| col_opt_i64(&row, "v"));
        if applied == Some(known) {
            return Ok(());
        }
        let mut tx = self.begin().await.map_err(err(0))?;
        if !self.sqlite {
            sqlx::query("SELECT pg_advisory_xact_lock(7201964011)")
                .execute(&mut *tx)
                .await
                .map_err(err(0))?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS ferry_schema (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(err(0))?;
        let row = sqlx::query("SELECT MAX(version) AS v FROM ferry_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(err(0))?;
        let current = col_opt_i64(&row, "v").unwrap_or(0);
        if current > known {
            return Err(Error::NewerSchema {
                found: current,
                known,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            let code = migration_for(sql, self.sqlite);
            for stmt in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(sqlx::AssertSqlSafe(stmt.to_owned()))
                    .execute(&mut *tx)
                    .await
                    .map_err(err(*version))?;
            }
            sqlx::query("INSERT INTO ferry_schema (version, applied_ms) VALUES ($1, $2)")
                .bind(*version)
                .bind(ferry_core::now_ms())
                .execute(&mut *tx)
                .await
                .map_err(err(*version))?;
        }
        tx.commit().await.map_err(err(known))?;
        Ok(())
    }

    pub(crate) async fn versions_where(
        &self,
        clause: &str,
        model: &str,
        arg: Option<i64>,
    ) -> Result<Vec<ModelVersion>> {
        let sql = format!(
            "SELECT model, version, run_id, artifact_path, artifact_digest, artifact_size, git_commit, git_dirty, \
             env_fingerprint, lineage, created_ms, status, source, description, last_updated_ms, storage_location, files_digest \
             FROM model_versions WHERE model = $1 {clause} ORDER BY version"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(model);
        if let Some(a) = arg {
            query = query.bind(a);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read model versions"))?;
        let aliases =
            sqlx::query("SELECT alias, version FROM model_aliases WHERE model = $1 ORDER BY alias")
                .bind(model)
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("read aliases"))?;
        let aliases: Vec<(String, i64)> = aliases
            .iter()
            .map(|r| (col_str(r, "alias"), col_i64(r, "version")))
            .collect();
        let tags = sqlx::query(
            "SELECT version, tkey, value FROM model_version_tags WHERE model = $1 ORDER BY tkey",
        )
        .bind(model)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read version tags"))?;
        let tags: Vec<(i64, String, String)> = tags
            .iter()
            .map(|r| {
                (
                    col_i64(r, "version"),
                    col_str(r, "tkey"),
                    col_str(r, "value"),
                )
            })
            .collect();
        Ok(rows
            .iter()
            .map(|r| {
                let version = col_i64(r, "version");
                ModelVersion {
                    model: col_str(r, "model"),
                    version,
                    run_id: col_opt_str(r, "run_id"),
                    artifact_path: col_str(r, "artifact_path"),
                    artifact_digest: col_str(r, "artifact_digest"),
                    artifact_size: col_i64(r, "artifact_size"),
                    git_commit: col_opt_str(r, "git_commit"),
                    git_dirty: col_opt_i64(r, "git_dirty").map(|d| d != 0),
                    env_fingerprint: col_opt_str(r, "env_fingerprint"),
                    lineage: serde_json::from_str(&col_str(r, "lineage")).unwrap_or_default(),
                    created_ms: col_i64(r, "created_ms"),
                    status: col_str(r, "status"),
                    aliases: aliases
                        .iter()
                        .filter(|a| a.1 == version)
                        .map(|a| a.0.clone())
                        .collect(),
                    source: col_opt_str(r, "source").unwrap_or_default(),
                    description: col_opt_str(r, "description").unwrap_or_default(),
                    last_updated_ms: col_opt_i64(r, "last_updated_ms")
                        .unwrap_or_else(|| col_i64(r, "created_ms")),
                    tags: tags
                        .iter()
                        .filter(|t| t.0 == version)
                        .map(|t| (t.1.clone(), t.2.clone()))
                        .collect(),
                    stored: match (
                        col_opt_str(r, "storage_location"),
                        col_opt_str(r, "files_digest"),
                    ) {
                        (Some(location), Some(digest)) => Some(StoredFiles { location, digest }),
                        _ => None,
                    },
                }
            })
            .collect())
    }
}

/// Adds one metric point and keeps `latest_metrics` (the value at the
/// highest step, then the latest time) current.
/// Upserts of `(id, key, value)` rows: a key set again takes the new value.
pub(crate) const UPSERT_RUN_TAG: &str = "INSERT INTO run_tags (run_id, tkey, value) VALUES ($1, $2, $3) \
     ON CONFLICT (run_id, tkey) DO UPDATE SET value = excluded.value";
pub(crate) const UPSERT_EXPERIMENT_TAG: &str = "INSERT INTO experiment_tags (experiment_id, tkey, value) \
     VALUES (CAST($1 AS BIGINT), $2, $3) ON CONFLICT (experiment_id, tkey) DO UPDATE SET value = excluded.value";
pub(crate) const UPSERT_MODEL_TAG: &str = "INSERT INTO model_tags (model, tkey, value) VALUES ($1, $2, $3) \
     ON CONFLICT (model, tkey) DO UPDATE SET value = excluded.value";
pub(crate) const UPSERT_LOGGED_MODEL_TAG: &str = "INSERT INTO logged_model_tags (model_id, tkey, value) VALUES ($1, $2, $3) \
     ON CONFLICT (model_id, tkey) DO UPDATE SET value = excluded.value";
pub(crate) const UPSERT_LOGGED_MODEL_PARAM: &str = "INSERT INTO logged_model_params (model_id, pkey, value) VALUES ($1, $2, $3) \
     ON CONFLICT (model_id, pkey) DO UPDATE SET value = excluded.value";

/// Writes `(id, key, value)` rows with `sql` (three placeholders, one of the
/// upserts above).
pub(crate) async fn insert_pairs(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sql: &'static str,
    id: &str,
    pairs: &[(String, String)],
    what: &'static str,
) -> Result<()> {
    for (k, v) in pairs {
        sqlx::query(sql)
            .bind(id)
            .bind(k)
            .bind(v)
            .execute(&mut **tx)
            .await
            .map_err(query_error(what))?;
    }
    Ok(())
}

/// One value of a row for [`SqlStore::insert_rows`].
pub(crate) enum Val<'a> {
    T(&'a str),
    I(i64),
}

/// Rows in one multi-row statement of [`SqlStore::insert_rows`] (at most
/// 6 values each: far under both engines' limits on parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// Run tags as upserting them one by one leaves them: each key once, with
/// its last value, in the order keys first appear (PostgreSQL's upsert may
/// not touch a row twice in one statement).
pub(crate) fn last_values(tags: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(tags.len());
    for (k, v) in tags {
        match out.iter_mut().find(|(seen, _)| *seen == k.as_str()) {
            Some(e) => e.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// Writes `(run, key, value)` tag rows, each key once (see
/// [`last_values`]), in as few statements as it can.
pub(crate) async fn upsert_run_tags(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
    run_id: &str,
    tags: &[(String, String)],
) -> Result<()> {
    let tags = last_values(tags);
    for chunk in tags.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(sqlite, RUN_TAG_INSERT, 3, chunk.len(), RUN_TAG_ON_CONFLICT);
        let mut qy = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (k, v) in chunk {
            qy = qy.bind(run_id).bind(*k).bind(*v);
        }
        qy.execute(&mut **tx)
            .await
            .map_err(query_error("set a tag"))?;
    }
    Ok(())
}

pub(crate) const RUN_TAG_INSERT: &str = "INSERT INTO run_tags (run_id, tkey, value) VALUES";
pub(crate) const RUN_TAG_ON_CONFLICT: &str =
    "ON CONFLICT (run_id, tkey) DO UPDATE SET value = excluded.value";

impl SqlStore {
    /// Inserts `rows` (`width` values each, in the column order of `head`,
    /// `INSERT INTO t (..) VALUES`) as one statement, or as several in one
    /// transaction when they are too many for one: all or none either way.
    /// Every statement is a round trip to the connection's thread, so a
    /// run's params or gates go in one.
    pub(crate) async fn insert_rows(
        &self,
        head: &str,
        width: usize,
        rows: &[Val<'_>],
        what: &'static str,
    ) -> Result<()> {
        let per = ROWS_PER_STATEMENT * width;
        let statement = |chunk: &[Val<'_>]| {
            let sql = values_sql(self.sqlite, head, width, chunk.len() / width, "");
            let mut qy = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in chunk {
                qy = match v {
                    Val::T(t) => qy.bind(t.to_string()),
                    Val::I(i) => qy.bind(*i),
                };
            }
            qy
        };
        if rows.len() <= per {
            if !rows.is_empty() {
                statement(rows)
                    .execute(&self.pool)
                    .await
                    .map_err(query_error(what))?;
            }
            return Ok(());
        }
        let mut tx = self.begin().await.map_err(query_error(what))?;
        for chunk in rows.chunks(per) {
            statement(chunk)
                .execute(&mut *tx)
                .await
                .map_err(query_error(what))?;
        }
        tx.commit().await.map_err(query_error(what))?;
        Ok(())
    }
}

/// A metric value as stored: `(value, special)` where special is 1 for
/// NaN, 2 for +inf, 3 for -inf (value 0), else 0. Neither SQLite nor JSON
/// carries NaN or infinities reliably.
pub(crate) fn stored(v: f64) -> (f64, i64) {
    if v.is_nan() {
        (0.0, 1)
    } else if v == f64::INFINITY {
        (0.0, 2)
    } else if v == f64::NEG_INFINITY {
        (0.0, 3)
    } else {
        (v, 0)
    }
}

/// The value back from its stored form.
pub(crate) fn restored(value: f64, special: i64) -> f64 {
    match special {
        1 => f64::NAN,
        2 => f64::INFINITY,
        3 => f64::NEG_INFINITY,
        _ => value,
    }
}

/// One metric point to write: which run, which key, and where it came from
/// (`stage` is set for points a pipeline stage recorded).
pub(crate) struct Point<'a> {
    pub run: &'a str,
    pub key: &'a str,
    pub value: f64,
    pub step: i64,
    pub ts_ms: i64,
    pub stage: Option<&'a str>,
}

/// Writes metric points and keeps `latest_metrics` at the value of the
/// highest step, then the latest time, then the largest value.
///
/// The points go in multi-row statements of up to [`POINTS_PER_STATEMENT`]
/// rows, and the latest values in one more: every statement is a round trip
/// to the database thread, so a batch of 1,000 points costs two or three of
/// them. On SQLite the placeholders are anonymous (`?`): SQLite finds a named
/// parameter (`$7`) by a linear scan, which makes binding a statement with
/// thousands of them quadratic. (Passing the rows as one JSON text instead
/// is not exact: SQLite's text-to-double conversion is off by one unit in
/// the last place for some values.) Each point also keeps its value's exact
/// bits (`bits`), which history reads return: SQLite's double-to-text
/// conversion is not exact either.
pub(crate) async fn write_points(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
    points: &[Point<'_>],
) -> Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    for chunk in points.chunks(POINTS_PER_STATEMENT) {
        let sql = values_sql(sqlite, POINT_INSERT, 8, chunk.len(), POINT_ON_CONFLICT);
        let mut qy = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in chunk {
            let (v, n) = stored(p.value);
            qy = qy
                .bind(p.run.to_owned())
                .bind(p.key.to_owned())
                .bind(v)
                .bind(n)
                .bind(p.stage.map(str::to_owned))
                .bind(p.step)
                .bind(p.ts_ms)
                .bind(v.to_bits() as i64);
        }
        qy.execute(&mut **tx)
            .await
            .map_err(query_error("record metrics"))?;
    }
    let latest = latest_points(points);
    for chunk in latest.chunks(POINTS_PER_STATEMENT) {
        let sql = values_sql(sqlite, LATEST_INSERT, 7, chunk.len(), LATEST_ON_CONFLICT);
        let mut qy = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in chunk {
            let (v, n) = stored(p.value);
            qy = qy
                .bind(p.run.to_owned())
                .bind(p.key.to_owned())
                .bind(v)
                .bind(n)
                .bind(p.step)
                .bind(p.ts_ms)
                .bind(v.to_bits() as i64);
        }
        qy.execute(&mut **tx)
            .await
            .map_err(query_error("record metrics"))?;
    }
    Ok(())
}

/// `SELECT <rows as one JSON array text> AS j FROM <rest>`: each row becomes
/// a JSON array of `cols`. Drivers hand rows over one at a time (on SQLite,
/// each through a channel to the database thread), which dominates reads of
/// thousands of small rows; one text is cheap. Columns must not be floats
/// (SQLite writes them with 15 digits): pass their bits instead.
pub(crate) fn json_rows(sqlite: bool, cols: &str, rest: &str) -> String {
    if sqlite {
        format!("SELECT json_group_array(json_array({cols})) AS j FROM {rest}")
    } else {
        format!(
            "SELECT CAST(COALESCE(json_agg(json_build_array({cols})), '[]'::json) AS TEXT) AS j FROM {rest}"
        )
    }
}

/// A run created through the MLflow API (the pool and the SQLite writer
/// thread both write it with this statement).
pub(crate) const INSERT_TRACKED_RUN: &str = "INSERT INTO runs (run_id, pipeline, status, run_trigger, started_ms, \
     experiment_id, run_name, user_id, lifecycle_stage, artifact_uri) \
     VALUES ($1, $2, 'running', 'mlflow', $3, $4, $5, $6, 'active', $7)";

/// The statements of [`write_points`] (and of the SQLite writer thread):
/// a point is stored once; `latest_metrics` keeps the value of the highest
/// step, then the latest time, then the largest value.
pub(crate) const POINT_INSERT: &str =
    "INSERT INTO metric_points (run_id, mkey, value, is_nan, stage, step, ts_ms, bits) VALUES";
pub(crate) const POINT_ON_CONFLICT: &str =
    "ON CONFLICT (run_id, mkey, step, ts_ms, value, is_nan) DO NOTHING";
pub(crate) const LATEST_INSERT: &str =
    "INSERT INTO latest_metrics (run_id, mkey, value, is_nan, step, ts_ms, bits) VALUES";
pub(crate) const LATEST_ON_CONFLICT: &str = "ON CONFLICT (run_id, mkey) DO UPDATE SET value = excluded.value, step = excluded.step, \
     ts_ms = excluded.ts_ms, is_nan = excluded.is_nan, bits = excluded.bits \
     WHERE excluded.step > latest_metrics.step \
        OR (excluded.step = latest_metrics.step AND excluded.ts_ms > latest_metrics.ts_ms) \
        OR (excluded.step = latest_metrics.step AND excluded.ts_ms = latest_metrics.ts_ms AND excluded.value > latest_metrics.value)";

/// The latest point per (run, key) by (step, time, value), in key order:
/// one candidate each, as PostgreSQL's upsert may not touch a row twice in
/// one statement.
pub(crate) fn latest_points<'p, 'a>(points: &'p [Point<'a>]) -> Vec<&'p Point<'a>> {
    let mut latest: std::collections::BTreeMap<(&str, &str), &Point<'_>> =
        std::collections::BTreeMap::new();
    for p in points {
        let e = latest.entry((p.run, p.key)).or_insert(p);
        if (p.step, p.ts_ms, p.value) > (e.step, e.ts_ms, e.value) {
            *e = p;
        }
    }
    latest.into_values().collect()
}

/// Most rows in one multi-row statement (8,000 parameters: well under
/// SQLite's 32,766 and PostgreSQL's 65,535).
const POINTS_PER_STATEMENT: usize = 1000;

/// `{head} (?, ?, ...), (...) {tail}` with `rows` tuples of `width`
/// placeholders: anonymous on SQLite, numbered on PostgreSQL.
fn values_sql(sqlite: bool, head: &str, width: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * width * 6);
    sql.push_str(head);
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { " (" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if sqlite {
                sql.push('?');
            } else {
                sql.push_str(&format!("${n}"));
            }
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

fn run_summary(r: &AnyRow) -> RunSummary {
    RunSummary {
        run_id: col_str(r, "run_id"),
        pipeline: col_str(r, "pipeline"),
        status: RunStatus::parse(&col_str(r, "status")).unwrap_or(RunStatus::Crashed),
        trigger: col_str(r, "run_trigger"),
        started_ms: col_i64(r, "started_ms"),
        ended_ms: col_opt_i64(r, "ended_ms"),
        git_commit: col_opt_str(r, "git_commit"),
        git_dirty: col_opt_i64(r, "git_dirty").map(|d| d != 0),
        message: col_opt_str(r, "message"),
        noop: col_i64(r, "noop") > 0,
        author: col_opt_str(r, "user_id").filter(|u| !u.is_empty()),
    }
}

/// Runs that are not nested in another (stage runs are listed with their parent).
/// The runs `ferry runs list` shows: top-level ones (not a pipeline's stage
/// runs) that were not deleted through the MLflow API.
pub(crate) const TOP_LEVEL: &str = "lifecycle_stage = 'active' AND run_id NOT IN (SELECT run_id FROM run_tags WHERE tkey = 'mlflow.parentRunId')";

/// A run's columns (of `runs r`), and whether it did nothing (its
/// `pipeline_runs::NOOP_TAG`).
pub(crate) const RUN_COLS: &str = "run_id, pipeline, status, run_trigger, started_ms, ended_ms, git_commit, git_dirty, message, user_id, \
    (SELECT COUNT(*) FROM run_tags nt WHERE nt.run_id = r.run_id AND nt.tkey = 'ferry.noop' AND nt.value = 'true') AS noop";

impl SqlStore {
    /// Every point of run `rid`'s metrics, by key, step and time: one row
    /// holding them all as JSON ([`json_rows`]; a 10,000-point history
    /// read row by row is most of a run page's time), values by their
    /// exact bits. Points written before the `bits` column are read as
    /// rows, which gives their values exactly.
    async fn run_metrics(&self, rid: &str) -> Result<Vec<MetricRecord>> {
        let sql = json_rows(
            self.sqlite,
            "mkey, bits, is_nan, stage, step, ts_ms",
            "metric_points WHERE run_id = $1",
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rid)
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("read metrics"))?;
        type Point = (String, Option<i64>, i64, Option<String>, i64, i64);
        let points: Vec<Point> = crate::row::json_of(&row)?;
        let mut metrics: Vec<MetricRecord> = if points.iter().all(|p| p.1.is_some()) {
            points
                .into_iter()
                .map(|(key, bits, special, stage, step, ts_ms)| MetricRecord {
                    key,
                    value: restored(f64::from_bits(bits.unwrap_or_default() as u64), special),
                    stage,
                    step,
                    ts_ms,
                })
                .collect()
        } else {
            sqlx::query(
                "SELECT mkey, value, stage, step, ts_ms FROM metric_points WHERE run_id = $1",
            )
            .bind(rid)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read metrics"))?
            .iter()
            .map(|r| MetricRecord {
                key: col_str(r, "mkey"),
                value: col_f64(r, "value"),
                stage: col_opt_str(r, "stage"),
                step: col_i64(r, "step"),
                ts_ms: col_i64(r, "ts_ms"),
            })
            .collect()
        };
        metrics.sort_by(|a, b| (&a.key, a.step, a.ts_ms).cmp(&(&b.key, b.step, b.ts_ms)));
        Ok(metrics)
    }

    /// Run `id` as MLflow keeps it, if it is a pipeline run recorded
    /// through the MLflow API (see [`crate::pipeline_runs`]).
    /// Runs' rows (`RUN_COLS`) as summaries: one recorded through the MLflow
    /// API (`ferry run --server` to a server on this store) as its
    /// pipeline's tags tell what it was.
    pub(crate) async fn summaries(&self, rows: Vec<AnyRow>) -> Result<Vec<RunSummary>> {
        let runs: Vec<RunSummary> = rows.iter().map(run_summary).collect();
        drop(rows);
        let mut out = Vec::with_capacity(runs.len());
        for mut run in runs {
            if run.trigger == "mlflow"
                && let Some(t) = self.pipeline_run(&run.run_id).await?
            {
                run = crate::pipeline_runs::summary_of(&t);
            }
            out.push(run);
        }
        Ok(out)
    }

    async fn pipeline_run(&self, id: &str) -> Result<Option<crate::TrackedRun>> {
        let r = crate::TrackingStore::get_tracked_run(self, id).await?;
        Ok(r.filter(crate::pipeline_runs::is_pipeline_run))
    }
}

#[async_trait::async_trait]
impl MetadataStore for SqlStore {
    async fn begin_run(&self, run: &NewRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (run_id, pipeline, status, run_trigger, started_ms, git_commit, git_dirty, env_fingerprint, pid, host) \
             VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&run.run_id)
        .bind(&run.pipeline)
        .bind(&run.trigger)
        .bind(run.started_ms)
        .bind(run.git_commit.clone())
        .bind(run.git_dirty.map(i64::from))
        .bind(run.env_fingerprint.clone())
        .bind(run.pid)
        .bind(&run.host)
        .execute(&self.pool)
        .await
        .map_err(query_error("record the run"))?;
        let owner = Owner {
            workspace: run.workspace.clone(),
            project: run.project.clone(),
        };
        self.set_pipeline_owner(&run.pipeline, &owner).await
    }

    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        ended_ms: i64,
        message: Option<&str>,
    ) -> Result<()> {
        // Its stages are counted once, now, and the run is counted in its
        // pipeline's day (schema 16: what the overview reads), taking out
        // what it counted before if it had finished already.
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let before = counted(&mut tx, run_id).await?;
        sqlx::query(
            "UPDATE runs SET status = $1, ended_ms = $2, message = $3, \
             stages_ran = (SELECT COUNT(*) FROM stage_runs s WHERE s.run_id = $4 AND s.status IN ('ran', 'failed')), \
             stages_restored = (SELECT COUNT(*) FROM stage_runs s WHERE s.run_id = $5 AND s.status = 'restored') \
             WHERE run_id = $6",
        )
        .bind(status.as_str())
        .bind(ended_ms)
        .bind(message.map(str::to_owned))
        .bind(run_id)
        .bind(run_id)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(query_error("finish the run"))?;
        let after = counted(&mut tx, run_id).await?;
        for (c, sign) in [(before, -1), (after, 1)] {
            if let Some(c) = c {
                sqlx::query(
                    "INSERT INTO pipeline_days (day, pipeline, status, runs, stages_ran, stages_restored) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (day, pipeline, status) DO UPDATE SET \
                     runs = pipeline_days.runs + excluded.runs, \
                     stages_ran = pipeline_days.stages_ran + excluded.stages_ran, \
                     stages_restored = pipeline_days.stages_restored + excluded.stages_restored",
                )
                .bind(c.day)
                .bind(c.pipeline)
                .bind(c.status)
                .bind(sign)
                .bind(sign * c.ran)
                .bind(sign * c.restored)
                .execute(&mut *tx)
                .await
                .map_err(query_error("count the run in its pipeline's day"))?;
            }
        }
        tx.commit().await.map_err(query_error("finish the run"))?;
        Ok(())
    }

    async fn reap_dead_runs(
        &self,
        host: &str,
        alive: &(dyn Fn(i64) -> bool + Sync),
    ) -> Result<u64> {
        let rows =
            sqlx::query("SELECT run_id, pid FROM runs WHERE status = 'running' AND host = $1")
                .bind(host)
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("find unfinished runs"))?;
        let mut n = 0;
        for r in rows {
            if !alive(col_i64(&r, "pid")) {
                let id = col_str(&r, "run_id");
                sqlx::query("UPDATE runs SET status = 'crashed', message = 'ferry stopped before the run finished' WHERE run_id = $1 AND status = 'running'")
                    .bind(&id)
                    .execute(&self.pool)
                    .await
                    .map_err(query_error("mark a crashed run"))?;
                sqlx::query("UPDATE stage_runs SET status = 'cancelled' WHERE run_id = $1 AND status = 'ran' AND ended_ms IS NULL")
                    .bind(&id)
                    .execute(&self.pool)
                    .await
                    .map_err(query_error("mark a crashed run"))?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn record_stage(&self, run_id: &str, s: &StageRecord) -> Result<()> {
        // The row (a stage recorded again replaces its row) and the cost
        // ledger's hours, in one transaction; a write transaction from its
        // start, since it reads before it writes (deferred, SQLite refuses
        // the write with SQLITE_BUSY_SNAPSHOT when a gateway's heartbeat
        // committed in between).
        let mut tx = self.begin().await.map_err(query_error("record a stage"))?;
        let before = crate::ledger::priced(&mut tx, run_id, &s.stage).await?;
        sqlx::query(
            "INSERT INTO stage_runs (run_id, stage, position, status, reason, fingerprint, started_ms, ended_ms, wall_ms, \
             user_cpu_ms, sys_cpu_ms, max_rss_bytes, exit_code, attempts, cost_usd, cost_basis, cost_requested_usd, \
             cost_used_usd, cost_machine) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) \
             ON CONFLICT (run_id, stage) DO UPDATE SET position = excluded.position, status = excluded.status, \
             reason = excluded.reason, fingerprint = excluded.fingerprint, started_ms = excluded.started_ms, \
             ended_ms = excluded.ended_ms, wall_ms = excluded.wall_ms, user_cpu_ms = excluded.user_cpu_ms, \
             sys_cpu_ms = excluded.sys_cpu_ms, max_rss_bytes = excluded.max_rss_bytes, \
             exit_code = excluded.exit_code, attempts = excluded.attempts, cost_usd = excluded.cost_usd, \
             cost_basis = excluded.cost_basis, cost_requested_usd = excluded.cost_requested_usd, \
             cost_used_usd = excluded.cost_used_usd, cost_machine = excluded.cost_machine",
        )
        .bind(run_id)
        .bind(&s.stage)
        .bind(s.position)
        .bind(s.status.as_str())
        .bind(s.recorded_reason())
        .bind(s.fingerprint.clone())
        .bind(s.started_ms)
        .bind(s.ended_ms)
        .bind(s.wall_ms)
        .bind(s.user_cpu_ms)
        .bind(s.sys_cpu_ms)
        .bind(s.max_rss_bytes)
        .bind(s.exit_code)
        .bind(s.attempts)
        .bind(s.cost.as_ref().map(|c| c.charged))
        .bind(s.cost.as_ref().map(|c| c.basis.as_str()))
        .bind(s.cost.as_ref().and_then(|c| c.requested))
        .bind(s.cost.as_ref().map(|c| c.used))
        .bind(s.cost.as_ref().map(|c| c.machine.clone()))
        .execute(&mut *tx)
        .await
        .map_err(query_error("record a stage"))?;
        crate::ledger::replace(&mut tx, run_id, s, before).await?;
        tx.commit().await.map_err(query_error("record a stage"))?;
        Ok(())
    }

    async fn record_params(
        &self,
        run_id: &str,
        params: &[(String, serde_json::Value)],
    ) -> Result<()> {
        // MLflow keeps params as strings: a string as itself, anything else
        // as its JSON text.
        let texts: Vec<String> = params
            .iter()
            .map(|(_, v)| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let rows: Vec<Val<'_>> = params
            .iter()
            .zip(&texts)
            .flat_map(|((k, _), text)| [Val::T(run_id), Val::T(k), Val::T(text)])
            .collect();
        self.insert_rows(
            "INSERT INTO run_params (run_id, pkey, value) VALUES",
            3,
            &rows,
            "record params",
        )
        .await
    }

    async fn record_metrics(&self, run_id: &str, metrics: &[MetricRecord]) -> Result<()> {
        let mut tx = self.begin().await.map_err(query_error("record metrics"))?;
        let points: Vec<Point<'_>> = metrics
            .iter()
            .map(|m| Point {
                run: run_id,
                key: &m.key,
                value: m.value,
                step: m.step,
                ts_ms: m.ts_ms,
                stage: m.stage.as_deref(),
            })
            .collect();
        write_points(&mut tx, self.sqlite, &points).await?;
        tx.commit().await.map_err(query_error("record metrics"))?;
        Ok(())
    }

    async fn record_gates(&self, run_id: &str, gates: &[GateRecord]) -> Result<()> {
        let rows: Vec<Val<'_>> = gates
            .iter()
            .enumerate()
            .flat_map(|(i, g)| {
                [
                    Val::T(run_id),
                    Val::I(i as i64),
                    Val::T(&g.name),
                    Val::T(&g.expr),
                    Val::I(i64::from(g.passed)),
                    Val::T(&g.message),
                ]
            })
            .collect();
        self.insert_rows(
            "INSERT INTO gate_results (run_id, idx, name, expr, passed, message) VALUES",
            6,
            &rows,
            "record gates",
        )
        .await
    }

    async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>> {
        let limit = if f.limit <= 0 {
            50
        } else {
            f.limit.min(10_000)
        };
        let rows = match &f.pipeline {
            Some(p) => sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RUN_COLS} FROM runs r WHERE pipeline = $1 AND {TOP_LEVEL} ORDER BY started_ms DESC, run_id DESC LIMIT $2")))
                .bind(p)
                .bind(limit)
                .fetch_all(&self.pool)
                .await,
            None => sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RUN_COLS} FROM runs r WHERE {TOP_LEVEL} ORDER BY started_ms DESC, run_id DESC LIMIT $1")))
                .bind(limit)
                .fetch_all(&self.pool)
                .await,
        }
        .map_err(query_error("list runs"))?;
        self.summaries(rows).await
    }

    async fn page_runs(&self, q: &RunPage) -> Result<Vec<RunSummary>> {
        self.runs_page(q).await
    }

    async fn pipeline_health(
        &self,
        now_ms: i64,
        workspaces: Option<&[String]>,
    ) -> Result<Vec<PipelineHealth>> {
        self.health(now_ms, workspaces).await
    }

    async fn stage_costs(
        &self,
        since_ms: i64,
        until_ms: i64,
        offset_minutes: i32,
    ) -> Result<Vec<ferry_cost::ledger::DaySum>> {
        crate::ledger::report(&self.pool, since_ms, until_ms, offset_minutes).await
    }

    async fn get_run(&self, id: &str) -> Result<RunDetail> {
        let id = id.to_ascii_lowercase();
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "`{id}` is not a run id: give at least 4 hex characters"
            )));
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLS}, env_fingerprint FROM runs r WHERE run_id >= $1 AND run_id < $2 ORDER BY run_id LIMIT 2"
        )))
        .bind(&id)
        .bind(format!("{id}g"))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("find the run"))?;
        let r = match rows.as_slice() {
            [] => return Err(Error::NotFound(format!("no run `{id}`"))),
            [r] => r,
            _ => {
                return Err(Error::Ambiguous(format!(
                    "`{id}` matches several runs; give more characters"
                )));
            }
        };
        let run = run_summary(r);
        let env_fingerprint = col_opt_str(r, "env_fingerprint");
        drop(rows);
        if run.trigger == "mlflow"
            && let Some(t) = self.pipeline_run(&run.run_id).await?
        {
            let mut children = Vec::new();
            for c in sqlx::query(
                "SELECT run_id FROM run_tags WHERE tkey = 'mlflow.parentRunId' AND value = $1",
            )
            .bind(&run.run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read stages"))?
            .iter()
            .map(|c| col_str(c, "run_id"))
            .collect::<Vec<_>>()
            {
                if let Some(c) = crate::TrackingStore::get_tracked_run(self, &c).await? {
                    children.push(c);
                }
            }
            return Ok(crate::pipeline_runs::detail_of(&t, &children));
        }
        let rid = run.run_id.clone();
        let stages = sqlx::query("SELECT * FROM stage_runs WHERE run_id = $1 ORDER BY position")
            .bind(&rid)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read stages"))?
            .iter()
            .map(|r| StageRecord {
                stage: col_str(r, "stage"),
                position: col_i64(r, "position"),
                status: StageStatus::parse(&col_str(r, "status")).unwrap_or(StageStatus::Failed),
                reason: col_opt_str(r, "reason"),
                fingerprint: col_opt_str(r, "fingerprint"),
                started_ms: col_opt_i64(r, "started_ms"),
                ended_ms: col_opt_i64(r, "ended_ms"),
                wall_ms: col_opt_i64(r, "wall_ms"),
                user_cpu_ms: col_opt_i64(r, "user_cpu_ms"),
                sys_cpu_ms: col_opt_i64(r, "sys_cpu_ms"),
                max_rss_bytes: col_opt_i64(r, "max_rss_bytes"),
                exit_code: col_opt_i64(r, "exit_code"),
                attempts: col_i64(r, "attempts"),
                // In the reason, and the run's artifact `logs/<stage>.log`.
                error: None,
                log: None,
                cost: crate::row::col_stage_cost(r),
            })
            .collect();
        let params =
            sqlx::query("SELECT pkey, value FROM run_params WHERE run_id = $1 ORDER BY pkey")
                .bind(&rid)
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("read params"))?
                .iter()
                .map(|r| {
                    (
                        col_str(r, "pkey"),
                        crate::pipeline_runs::param_value(&col_str(r, "value")),
                    )
                })
                .collect();
        let metrics = self.run_metrics(&rid).await?;
        let gates = sqlx::query(
            "SELECT name, expr, passed, message FROM gate_results WHERE run_id = $1 ORDER BY idx",
        )
        .bind(&rid)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read gates"))?
        .iter()
        .map(|r| GateRecord {
            name: col_str(r, "name"),
            expr: col_str(r, "expr"),
            passed: col_i64(r, "passed") != 0,
            message: col_str(r, "message"),
        })
        .collect();
        Ok(RunDetail {
            run,
            env_fingerprint,
            stages,
            params,
            metrics,
            gates,
        })
    }

    async fn create_model_version(&self, v: &NewModelVersion) -> Result<ModelVersion> {
        // The (model, version) key makes a concurrent creator fail; try again.
        for _ in 0..5 {
            let mut tx = self
                .begin()
                .await
                .map_err(query_error("register a version"))?;
            // The model is made by its first version; two first versions
            // at once (two servers over one PostgreSQL) make it once: the
            // second insert waits for the first and does nothing.
            sqlx::query("INSERT INTO models (name, created_ms, last_updated_ms, max_version, description) VALUES ($1, $2, $2, 0, '') ON CONFLICT (name) DO NOTHING")
                .bind(&v.model)
                .bind(v.created_ms)
                .execute(&mut *tx)
                .await
                .map_err(query_error("register a model"))?;
            // Version numbers are never reused, even after a deletion.
            sqlx::query("UPDATE models SET max_version = max_version + 1, last_updated_ms = $2 WHERE name = $1")
                .bind(&v.model)
                .bind(v.created_ms)
                .execute(&mut *tx)
                .await
                .map_err(query_error("register a version"))?;
            let row = sqlx::query("SELECT max_version AS v FROM models WHERE name = $1")
                .bind(&v.model)
                .fetch_one(&mut *tx)
                .await
                .map_err(query_error("register a version"))?;
            let next = col_opt_i64(&row, "v").unwrap_or(1);
            let inserted = sqlx::query(
                "INSERT INTO model_versions (model, version, run_id, artifact_path, artifact_digest, artifact_size, git_commit, \
                 git_dirty, env_fingerprint, lineage, created_ms, status, source, description, last_updated_ms, \
                 storage_location, files_digest) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,'ready',$12,'',$11,$13,$14)",
            )
            .bind(&v.model)
            .bind(next)
            .bind(v.run_id.clone())
            .bind(&v.artifact_path)
            .bind(&v.artifact_digest)
            .bind(v.artifact_size)
            .bind(v.git_commit.clone())
            .bind(v.git_dirty.map(i64::from))
            .bind(v.env_fingerprint.clone())
            .bind(v.lineage.to_string())
            .bind(v.created_ms)
            .bind(v.source.clone().unwrap_or_else(|| format!("ferry-cache:/{}", v.artifact_digest)))
            .bind(v.stored.as_ref().map(|f| f.location.clone()))
            .bind(v.stored.as_ref().map(|f| f.digest.clone()))
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => {
                    return Err(Error::Query {
                        what: "register a version",
                        source: crate::BackendError::new(e),
                    });
                }
            }
            if let Some(alias) = &v.alias {
                set_alias_in(
                    &mut tx,
                    &v.model,
                    alias,
                    next,
                    Some("registered by a pipeline run"),
                    v.created_ms,
                )
                .await?;
            }
            tx.commit()
                .await
                .map_err(query_error("register a version"))?;
            return self.get_version(&v.model, next).await?.ok_or_else(|| {
                Error::NotFound(format!("version {next} of `{}` vanished", v.model))
            });
        }
        Err(Error::Invalid(format!(
            "could not register `{}`: too many concurrent writers",
            v.model
        )))
    }

    async fn list_models(&self) -> Result<Vec<ModelSummary>> {
        let rows = sqlx::query(
            "SELECT m.name AS name, m.created_ms AS created_ms, MAX(v.version) AS latest, COUNT(v.version) AS n \
             FROM models m LEFT JOIN model_versions v ON v.model = m.name GROUP BY m.name, m.created_ms ORDER BY m.name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("list models"))?;
        let aliases =
            sqlx::query("SELECT model, alias, version FROM model_aliases ORDER BY model, alias")
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("list aliases"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let name = col_str(r, "name");
                ModelSummary {
                    aliases: aliases
                        .iter()
                        .filter(|a| col_str(a, "model") == name)
                        .map(|a| (col_str(a, "alias"), col_i64(a, "version")))
                        .collect(),
                    name,
                    created_ms: col_i64(r, "created_ms"),
                    latest_version: col_opt_i64(r, "latest"),
                    versions: col_i64(r, "n"),
                }
            })
            .collect())
    }

    async fn list_versions(&self, model: &str) -> Result<Vec<ModelVersion>> {
        self.versions_where("", model, None).await
    }

    async fn get_version(&self, model: &str, version: i64) -> Result<Option<ModelVersion>> {
        Ok(self
            .versions_where("AND version = $2", model, Some(version))
            .await?
            .pop())
    }

    async fn latest_version(&self, model: &str) -> Result<Option<ModelVersion>> {
        Ok(self.versions_where("", model, None).await?.pop())
    }

    async fn resolve_alias(&self, model: &str, alias: &str) -> Result<Option<ModelVersion>> {
        let row = sqlx::query("SELECT version FROM model_aliases WHERE model = $1 AND alias = $2")
            .bind(model)
            .bind(alias)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("resolve an alias"))?;
        match row {
            Some(r) => self.get_version(model, col_i64(&r, "version")).await,
            None => Ok(None),
        }
    }

    async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: i64,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<AliasEvent> {
        if self.get_version(model, version).await?.is_none() {
            return Err(Error::NotFound(format!(
                "model `{model}` has no version {version}"
            )));
        }
        let mut tx = self.begin().await.map_err(query_error("move an alias"))?;
        let ev = set_alias_in(&mut tx, model, alias, version, reason, now_ms).await?;
        tx.commit().await.map_err(query_error("move an alias"))?;
        Ok(ev)
    }

    async fn alias_events(&self, model: &str) -> Result<Vec<AliasEvent>> {
        let rows = sqlx::query("SELECT model, alias, version, previous, changed_ms, reason FROM alias_events WHERE model = $1 ORDER BY changed_ms, event_id")
            .bind(model)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read alias history"))?;
        Ok(rows
            .iter()
            .map(|r| AliasEvent {
                model: col_str(r, "model"),
                alias: col_str(r, "alias"),
                version: col_opt_i64(r, "version"),
                previous: col_opt_i64(r, "previous"),
                changed_ms: col_i64(r, "changed_ms"),
                reason: col_opt_str(r, "reason"),
            })
            .collect())
    }
}

pub(crate) async fn set_alias_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    model: &str,
    alias: &str,
    version: i64,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<AliasEvent> {
    let prev = sqlx::query("SELECT version FROM model_aliases WHERE model = $1 AND alias = $2")
        .bind(model)
        .bind(alias)
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_error("move an alias"))?
        .map(|r| col_i64(&r, "version"));
    sqlx::query("DELETE FROM model_aliases WHERE model = $1 AND alias = $2")
        .bind(model)
        .bind(alias)
        .execute(&mut **tx)
        .await
        .map_err(query_error("move an alias"))?;
    sqlx::query(
        "INSERT INTO model_aliases (model, alias, version, updated_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(model)
    .bind(alias)
    .bind(version)
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(query_error("move an alias"))?;
    sqlx::query("INSERT INTO alias_events (event_id, model, alias, version, previous, changed_ms, reason) VALUES ($1,$2,$3,$4,$5,$6,$7)")
        .bind(ferry_core::RunId::generate().as_str().to_owned())
        .bind(model)
        .bind(alias)
        .bind(version)
        .bind(prev)
        .bind(now_ms)
        .bind(reason.map(str::to_owned))
        .execute(&mut **tx)
        .await
        .map_err(query_error("record the alias move"))?;
    Ok(AliasEvent {
        model: model.to_owned(),
        alias: alias.to_owned(),
        version: Some(version),
        previous: prev,
        changed_ms: now_ms,
        reason: reason.map(str::to_owned),
    })
}

/// What a finished run counts in its pipeline's day (`pipeline_days`);
/// `None` for a run that has not finished or belongs to no pipeline.
struct Counted {
    day: i64,
    pipeline: String,
    status: String,
    ran: i64,
    restored: i64,
}

async fn counted(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
) -> Result<Option<Counted>> {
    let row = sqlx::query(
        "SELECT pipeline, status, started_ms, ended_ms, stages_ran, stages_restored FROM runs WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("read the run"))?;
    Ok(row.and_then(|r| {
        let pipeline = col_str(&r, "pipeline");
        (col_opt_i64(&r, "ended_ms").is_some() && !pipeline.is_empty()).then(|| Counted {
            day: col_i64(&r, "started_ms").div_euclid(86_400_000),
            pipeline,
            status: col_str(&r, "status"),
            ran: col_i64(&r, "stages_ran"),
            restored: col_i64(&r, "stages_restored"),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_pick_the_engine_sections() {
        let sql = "-- note\nA;\n-- @sqlite\nB;\n-- @postgres\nC;\n-- @all\nD;";
        assert_eq!(migration_for(sql, true), "A;\nB;\nD;");
        assert_eq!(migration_for(sql, false), "A;\nC;\nD;");
    }

    /// Points and latest values written before the `bits` columns (NULL
    /// there) still read back exactly.
    #[tokio::test]
    async fn values_without_bits_read_back_exactly() {
        use crate::{Metric, TrackingStore};
        let s = SqlStore::open("sqlite::memory:").await.unwrap();
        let e = s.create_experiment("x", None, &[], 1).await.unwrap();
        let id = "b".repeat(32);
        s.create_tracked_run(&id, e, "r", "", 1, &[]).await.unwrap();
        let v = f64::from_bits(7_273_575_876_580_499_574); // SQLite's JSON text loses it
        let m = Metric {
            key: "k".into(),
            value: v,
            timestamp: 1,
            step: 1,
        };
        s.log_batch(&id, &[m], &[], &[]).await.unwrap();
        for t in ["metric_points", "latest_metrics"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {t} SET bits = NULL")))
                .execute(&s.pool)
                .await
                .unwrap();
        }
        let h = s.metric_history(&id, "k").await.unwrap();
        assert_eq!(h[0].value.to_bits(), v.to_bits());
        let r = s.get_tracked_run(&id).await.unwrap().unwrap();
        assert_eq!(r.metrics[0].value.to_bits(), v.to_bits());
    }

    #[test]
    fn values_sql_numbers_placeholders_only_for_postgres() {
        assert_eq!(values_sql(true, "I", 2, 2, "T"), "I (?, ?), (?, ?) T");
        assert_eq!(values_sql(false, "I", 2, 2, "T"), "I ($1, $2), ($3, $4) T");
    }
}
