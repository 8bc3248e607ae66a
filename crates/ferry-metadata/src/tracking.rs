//! MLflow tracking: experiments, runs, params, metrics, tags, datasets and
//! run search. Runs made by `ferry run` and by MLflow clients share tables.

use crate::jobs::NewTrackedRun;
use crate::row::{
    col_experiment_id, col_f64, col_i64, col_opt_experiment_id, col_opt_i64, col_opt_str, col_str,
    json_of, query_error,
};
use crate::sql::SqlStore;
use crate::{Error, Result};
use ferry_core::ExperimentId;
use ferry_records::*;
use ferry_search::{Attr, Clause, Comparator, DatasetField, Entity, OrderBy, Value};
use sqlx::any::AnyRow;
use std::collections::HashMap;

/// What creating a run needs of its experiment.
#[derive(Clone, Copy)]
pub(crate) struct ExperimentRow<'a> {
    pub name: &'a str,
    pub lifecycle_stage: &'a str,
    pub artifact_location: &'a str,
}

/// A new run in `exp` (`None`: no such experiment) as it is stored: its row
/// and its tags (one per key, the last given winning, as the upserts leave
/// them, in key order), with MLflow's errors; one place for every writer.
pub(crate) fn new_run_row(
    run: &NewTrackedRun,
    exp: Option<ExperimentRow<'_>>,
) -> Result<TrackedRun> {
    let id = run.experiment_id;
    let exp =
        exp.ok_or_else(|| Error::NotFound(format!("Could not find experiment with ID {id}")))?;
    if exp.lifecycle_stage != "active" {
        return Err(Error::Invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is {}.",
            exp.lifecycle_stage
        )));
    }
    let artifact_uri = format!(
        "{}/{}/artifacts",
        exp.artifact_location.trim_end_matches('/'),
        run.run_id
    );
    let mut tags: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for (k, v) in &run.tags {
        tags.insert(k, v);
    }
    if !run.run_name.is_empty() {
        tags.entry("mlflow.runName").or_insert(&run.run_name);
    }
    let info = RunInfo {
        run_id: run.run_id.clone(),
        experiment_id: id,
        run_name: run.run_name.clone(),
        user_id: run.user_id.clone(),
        status: "RUNNING".into(),
        start_time: run.start_time,
        end_time: None,
        artifact_uri,
        lifecycle_stage: "active".into(),
    };
    Ok(TrackedRun {
        info,
        metrics: vec![],
        params: vec![],
        tags: tags
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        inputs: vec![],
        outputs: vec![],
    })
}

/// Which lifecycle stages a [`ViewType`] lists, as SQL.
fn view_stages(view: ViewType) -> &'static str {
    match view {
        ViewType::ActiveOnly => "('active')",
        ViewType::DeletedOnly => "('deleted')",
        ViewType::All => "('active', 'deleted')",
    }
}

const STATUS_SQL: &str = "(CASE r.status WHEN 'running' THEN 'RUNNING' WHEN 'scheduled' THEN 'SCHEDULED' \
     WHEN 'succeeded' THEN 'FINISHED' WHEN 'cancelled' THEN 'KILLED' ELSE 'FAILED' END)";

/// A statement under construction with its bind values in order.
#[derive(Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    args: Vec<Arg>,
}

pub(crate) enum Arg {
    S(String),
    F(f64),
    I(i64),
}

impl Sql {
    pub(crate) fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }
    pub(crate) fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut qy = sqlx::query(sqlx::AssertSqlSafe(self.text.clone()));
        for a in &self.args {
            qy = match a {
                Arg::S(s) => qy.bind(s.clone()),
                Arg::F(f) => qy.bind(*f),
                Arg::I(i) => qy.bind(*i),
            };
        }
        qy
    }
}

fn sql_op(op: Comparator) -> &'static str {
    match op {
        Comparator::Eq => "=",
        Comparator::Ne => "<>",
        Comparator::Lt => "<",
        Comparator::Le => "<=",
        Comparator::Gt => ">",
        Comparator::Ge => ">=",
        Comparator::Like => "LIKE",
        Comparator::ILike => "LIKE",
        Comparator::In => "IN",
        Comparator::NotIn => "NOT IN",
    }
}

/// `column <op> value` for one clause, with LIKE / ILIKE / IN handled.
fn compare(sql: &mut Sql, column: &str, op: Comparator, value: &Value) -> String {
    match (op, value) {
        (Comparator::ILike, Value::Str(s)) => {
            let p = sql.arg(Arg::S(s.clone()));
            format!("LOWER({column}) LIKE LOWER({p})")
        }
        (Comparator::In | Comparator::NotIn, Value::List(items)) => {
            let ps: Vec<String> = items.iter().map(|i| sql.arg(Arg::S(i.clone()))).collect();
            format!("{column} {} ({})", sql_op(op), ps.join(", "))
        }
        (_, Value::Num(n)) => {
            let p = sql.arg(Arg::F(*n));
            format!("{column} {} {p}", sql_op(op))
        }
        (_, Value::Str(s)) => {
            let p = sql.arg(Arg::S(s.clone()));
            format!("{column} {} {p}", sql_op(op))
        }
        (_, Value::List(_)) => "1 = 0".into(),
    }
}

fn attr_column(a: Attr) -> &'static str {
    match a {
        Attr::RunId => "r.run_id",
        Attr::RunName => "r.run_name",
        Attr::Status => STATUS_SQL,
        Attr::StartTime => "r.started_ms",
        Attr::EndTime => "r.ended_ms",
        Attr::UserId => "r.user_id",
        Attr::ArtifactUri => "r.artifact_uri",
        Attr::LifecycleStage => "r.lifecycle_stage",
        _ => "NULL",
    }
}

/// How a clause on a run's metrics, params or tags is put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `EXISTS (... WHERE x.run_id = r.run_id ...)`: checked run by run,
    /// for a search that reads an experiment's runs anyway.
    Exists,
    /// `r.run_id IN (SELECT x.run_id ...)`: the matching runs found by the
    /// key's own index, for a page that walks every run by another index
    /// and must not look each one up.
    Member,
}

/// One clause of MLflow's search grammar as a condition on `runs r`.
pub(crate) fn clause_sql(sql: &mut Sql, c: &Clause, form: Form) -> String {
    let (table, key_col, value_col, key) = match &c.entity {
        Entity::Metric(k) => ("latest_metrics x", "x.mkey", "x.value", k),
        Entity::Param(k) => ("run_params x", "x.pkey", "x.value", k),
        Entity::Tag(k) => ("run_tags x", "x.tkey", "x.value", k),
        Entity::Attribute(a) => return compare(sql, attr_column(*a), c.op, &c.value),
        Entity::Dataset(f) => {
            let col = match f {
                DatasetField::Name => "d.name",
                DatasetField::Digest => "d.digest",
                DatasetField::Context => "i.context",
            };
            let cmp = compare(sql, col, c.op, &c.value);
            return format!(
                "r.run_id IN (SELECT i.run_id FROM run_inputs i JOIN datasets d ON d.dataset_id = i.dataset_id WHERE {cmp})"
            );
        }
    };
    let kp = sql.arg(Arg::S(key.clone()));
    let cmp = compare(sql, value_col, c.op, &c.value);
    match form {
        Form::Exists => format!(
            "EXISTS (SELECT 1 FROM {table} WHERE x.run_id = r.run_id AND {key_col} = {kp} AND {cmp})"
        ),
        Form::Member => {
            format!("r.run_id IN (SELECT x.run_id FROM {table} WHERE {key_col} = {kp} AND {cmp})")
        }
    }
}

/// The ORDER BY of an experiment search, as MLflow's SQL store builds it:
/// `creation_time DESC, experiment_id ASC` when nothing is asked for, and
/// `experiment_id DESC` after the requested keys unless they name it.
fn experiment_order(order_by: &[OrderBy]) -> Result<String> {
    if order_by.is_empty() {
        return Ok("e.creation_time DESC, e.experiment_id ASC".into());
    }
    let mut keys = Vec::with_capacity(order_by.len() + 1);
    let mut by_id = false;
    for o in order_by {
        let column = match o.entity {
            Entity::Attribute(Attr::Name) => "e.name",
            Entity::Attribute(Attr::CreationTime) => "e.creation_time",
            Entity::Attribute(Attr::LastUpdatedTime) => "e.last_update_time",
            Entity::Attribute(Attr::ExperimentId) => {
                by_id = true;
                "e.experiment_id"
            }
            ref other => {
                let kind = match other {
                    Entity::Metric(_) => "metric",
                    Entity::Param(_) => "parameter",
                    Entity::Tag(_) => "tag",
                    Entity::Dataset(_) => "dataset",
                    Entity::Attribute(_) => "attribute",
                };
                return Err(Error::Invalid(format!("Invalid order_by entity: {kind}")));
            }
        };
        keys.push(format!(
            "{column} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    if !by_id {
        keys.push("e.experiment_id DESC".into());
    }
    Ok(keys.join(", "))
}

fn order_sql(sql: &mut Sql, o: &OrderBy) -> String {
    let dir = if o.ascending { "ASC" } else { "DESC" };
    let expr = match &o.entity {
        Entity::Metric(k) => {
            let kp = sql.arg(Arg::S(k.clone()));
            format!(
                "(SELECT m.value FROM latest_metrics m WHERE m.run_id = r.run_id AND m.mkey = {kp})"
            )
        }
        Entity::Param(k) => {
            let kp = sql.arg(Arg::S(k.clone()));
            format!(
                "(SELECT p.value FROM run_params p WHERE p.run_id = r.run_id AND p.pkey = {kp})"
            )
        }
        Entity::Tag(k) => {
            let kp = sql.arg(Arg::S(k.clone()));
            format!("(SELECT t.value FROM run_tags t WHERE t.run_id = r.run_id AND t.tkey = {kp})")
        }
        Entity::Attribute(a) => attr_column(*a).to_owned(),
        Entity::Dataset(_) => "NULL".to_owned(),
    };
    // Runs lacking the value sort last, whichever the direction.
    format!("CASE WHEN {expr} IS NULL THEN 1 ELSE 0 END, {expr} {dir}")
}

const RUN_INFO_COLS: &str = "r.run_id AS run_id, r.experiment_id AS experiment_id, r.run_name AS run_name, \
     r.user_id AS user_id, r.status AS status, r.started_ms AS started_ms, r.ended_ms AS ended_ms, \
     r.artifact_uri AS artifact_uri, r.lifecycle_stage AS lifecycle_stage";

fn run_info(r: &AnyRow) -> Result<RunInfo> {
    Ok(RunInfo {
        run_id: col_str(r, "run_id"),
        // A pipeline run from before runs were MLflow runs has none: MLflow
        // clients see it in the Default experiment.
        experiment_id: col_opt_experiment_id(r, "experiment_id")?.unwrap_or(ExperimentId::DEFAULT),
        run_name: col_opt_str(r, "run_name").unwrap_or_default(),
        user_id: col_opt_str(r, "user_id").unwrap_or_default(),
        status: status_to_mlflow(&col_str(r, "status")).to_owned(),
        start_time: col_i64(r, "started_ms"),
        end_time: col_opt_i64(r, "ended_ms"),
        artifact_uri: col_opt_str(r, "artifact_uri").unwrap_or_default(),
        lifecycle_stage: col_opt_str(r, "lifecycle_stage").unwrap_or_else(|| "active".into()),
    })
}

fn in_list(sql: &mut Sql, ids: &[String]) -> String {
    ids.iter()
        .map(|i| sql.arg(Arg::S(i.clone())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// MLflow's errors for logging, word for word (clients match on them); one
/// place for every writer (direct, grouped, the SQLite writer thread).
pub(crate) mod log_errors {
    use crate::Error;

    pub fn run_not_found(run: &str) -> Error {
        Error::NotFound(format!("Run with id={run} not found"))
    }
    pub fn run_not_active(run: &str, stage: &str) -> Error {
        Error::Invalid(format!(
            "The run {run} must be in the 'active' state. Current state is {stage}."
        ))
    }
    pub fn duplicate_param(key: &str, first: &str, second: &str) -> Error {
        Error::Invalid(format!(
            "Duplicate parameter keys have been submitted: '{key}' with values '{first}' and '{second}'"
        ))
    }
    pub fn changed_param(key: &str, old: &str, run: &str, new: &str) -> Error {
        Error::Invalid(format!(
            "Changing param values is not allowed. Param with key='{key}' was already logged with value='{old}' for run ID='{run}'. Attempted logging new value '{new}'."
        ))
    }
}

impl SqlStore {
    /// `create_tracked_run` over the pool, in a transaction of its own.
    pub(crate) async fn create_tracked_run_direct(
        &self,
        run: &NewTrackedRun,
    ) -> Result<TrackedRun> {
        let exp = self.get_experiment(run.experiment_id).await?;
        let exp = exp.as_ref().map(|e| ExperimentRow {
            name: &e.name,
            lifecycle_stage: &e.lifecycle_stage,
            artifact_location: &e.artifact_location,
        });
        let created = new_run_row(run, exp)?;
        let info = &created.info;
        let mut tx = self.begin().await.map_err(query_error("create a run"))?;
        sqlx::query(crate::sql::INSERT_TRACKED_RUN)
            .bind(&info.run_id)
            .bind(exp.map(|e| e.name).unwrap_or_default())
            .bind(info.start_time)
            .bind(info.experiment_id.get())
            .bind(&info.run_name)
            .bind(&info.user_id)
            .bind(&info.artifact_uri)
            .execute(&mut *tx)
            .await
            .map_err(query_error("create a run"))?;
        for (k, v) in &created.tags {
            upsert_tag(&mut tx, &info.run_id, k, v).await?;
        }
        tx.commit().await.map_err(query_error("create a run"))?;
        Ok(created)
    }

    /// `log_batch` in a transaction of its own (after the limits were checked).
    pub(crate) async fn log_batch_direct(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        self.require_active_run(run_id).await?;
        let mut tx = self.begin().await.map_err(query_error("log a batch"))?;
        // Params are immutable: the same value again is fine, another is not.
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (k, v) in params {
            if let Some(prev) = seen.insert(k, v) {
                if prev != v {
                    return Err(log_errors::duplicate_param(k, prev, v));
                }
                continue;
            }
            let existing =
                sqlx::query("SELECT value FROM run_params WHERE run_id = $1 AND pkey = $2")
                    .bind(run_id)
                    .bind(k)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(query_error("log params"))?;
            match existing {
                Some(row) => {
                    let old = col_str(&row, "value");
                    if old != *v {
                        return Err(log_errors::changed_param(k, &old, run_id, v));
                    }
                }
                None => {
                    sqlx::query("INSERT INTO run_params (run_id, pkey, value) VALUES ($1, $2, $3)")
                        .bind(run_id)
                        .bind(k)
                        .bind(v)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_error("log params"))?;
                }
            }
        }
        let pts: Vec<_> = points(run_id, metrics).collect();
        crate::sql::write_points(&mut tx, self.sqlite, &pts).await?;
        crate::sql::upsert_run_tags(&mut tx, self.sqlite, run_id, tags).await?;
        if let Some((_, name)) = tags.iter().rev().find(|(k, _)| k == "mlflow.runName") {
            sqlx::query("UPDATE runs SET run_name = $1 WHERE run_id = $2")
                .bind(name)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("log tags"))?;
        }
        tx.commit().await.map_err(query_error("log a batch"))?;
        Ok(())
    }

    async fn experiment_where(&self, clause: &str, arg: Arg) -> Result<Option<Experiment>> {
        let mut sql = Sql::default();
        let p = sql.arg(arg);
        sql.text = format!(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time \
             FROM experiments WHERE {clause} = {p}"
        );
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read an experiment"))?;
        let Some(r) = row else { return Ok(None) };
        let id = col_experiment_id(&r, "experiment_id")?;
        let tags = sqlx::query(
            "SELECT tkey, value FROM experiment_tags WHERE experiment_id = $1 ORDER BY tkey",
        )
        .bind(id.get())
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read experiment tags"))?
        .iter()
        .map(|t| (col_str(t, "tkey"), col_str(t, "value")))
        .collect();
        Ok(Some(Experiment {
            experiment_id: id,
            name: col_str(&r, "name"),
            artifact_location: col_str(&r, "artifact_location"),
            lifecycle_stage: col_str(&r, "lifecycle_stage"),
            creation_time: col_i64(&r, "creation_time"),
            last_update_time: col_i64(&r, "last_update_time"),
            tags,
        }))
    }

    async fn exec(&self, what: &'static str, sql: &str, args: Vec<Arg>) -> Result<u64> {
        let s = Sql {
            text: sql.to_owned(),
            args,
        };
        Ok(s.query()
            .execute(&self.pool)
            .await
            .map_err(query_error(what))?
            .rows_affected())
    }

    async fn require_experiment(&self, id: ExperimentId) -> Result<Experiment> {
        self.get_experiment(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("No Experiment with id={id} exists")))
    }

    async fn run_info(&self, run_id: &str) -> Result<Option<RunInfo>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_INFO_COLS} FROM runs r WHERE r.run_id = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("read a run"))?;
        row.as_ref().map(run_info).transpose()
    }

    async fn require_run(&self, run_id: &str) -> Result<RunInfo> {
        self.run_info(run_id)
            .await?
            .ok_or_else(|| log_errors::run_not_found(run_id))
    }

    pub(crate) async fn require_active_run(&self, run_id: &str) -> Result<RunInfo> {
        let r = self.require_run(run_id).await?;
        if r.lifecycle_stage != "active" {
            return Err(log_errors::run_not_active(run_id, &r.lifecycle_stage));
        }
        Ok(r)
    }

    /// Full payloads of `ids`, in that order: their infos, then what each
    /// table adds to them, 500 runs at a time.
    async fn load_runs(&self, ids: &[String]) -> Result<Vec<TrackedRun>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut sql = Sql::default();
            let list = in_list(&mut sql, chunk);
            let mut runs = self.run_infos(&mut sql, &list).await?;
            self.add_latest_metrics(&mut sql, &list, &mut runs).await?;
            self.add_params_and_tags(&mut sql, &list, &mut runs).await?;
            self.add_inputs(&mut sql, &list, &mut runs).await?;
            self.add_outputs(&mut sql, &list, &mut runs).await?;
            out.extend(chunk.iter().filter_map(|id| runs.remove(id)));
        }
        Ok(out)
    }

    /// The runs `list` names (placeholders of `sql`), by id, with their
    /// infos and nothing else yet.
    async fn run_infos(&self, sql: &mut Sql, list: &str) -> Result<Runs> {
        sql.text = format!("SELECT {RUN_INFO_COLS} FROM runs r WHERE r.run_id IN ({list})");
        let infos = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read runs"))?;
        infos
            .iter()
            .map(|r| {
                let info = run_info(r)?;
                Ok((
                    info.run_id.clone(),
                    TrackedRun {
                        info,
                        metrics: vec![],
                        params: vec![],
                        tags: vec![],
                        inputs: vec![],
                        outputs: vec![],
                    },
                ))
            })
            .collect()
    }

    /// Each run's latest metrics, by key, read as one JSON text (see
    /// `json_rows`) with their values' exact bits.
    async fn add_latest_metrics(&self, sql: &mut Sql, list: &str, runs: &mut Runs) -> Result<()> {
        sql.text = crate::sql::json_rows(
            self.sqlite,
            "run_id, mkey, bits, is_nan, step, ts_ms, CASE WHEN bits IS NULL THEN value END",
            &format!("latest_metrics WHERE run_id IN ({list})"),
        );
        type MetricRow = (String, String, Option<i64>, i64, i64, i64, Option<f64>);
        let rows: Vec<MetricRow> = json_of(
            &sql.query()
                .fetch_one(&self.pool)
                .await
                .map_err(query_error("read metrics"))?,
        )?;
        let legacy = if rows.iter().any(|r| r.2.is_none()) {
            self.latest_without_bits(sql, list).await?
        } else {
            HashMap::new()
        };
        for (run_id, key, bits, special, step, timestamp, value) in rows {
            if let Some(run) = runs.get_mut(&run_id) {
                let stored = match bits {
                    Some(b) => f64::from_bits(b as u64),
                    None => legacy
                        .get(&(run_id.clone(), key.clone()))
                        .copied()
                        .unwrap_or(value.unwrap_or(0.0)),
                };
                run.metrics.push(Metric {
                    key,
                    value: crate::sql::restored(stored, special),
                    timestamp,
                    step,
                });
            }
        }
        for run in runs.values_mut() {
            run.metrics.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(())
    }

    /// Latest values written before the `bits` column, by (run, key): read
    /// as rows, which gives them exactly (the JSON text would not).
    async fn latest_without_bits(
        &self,
        sql: &mut Sql,
        list: &str,
    ) -> Result<HashMap<(String, String), f64>> {
        sql.text = format!(
            "SELECT run_id, mkey, value FROM latest_metrics WHERE bits IS NULL AND run_id IN ({list})"
        );
        Ok(sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read metrics"))?
            .iter()
            .map(|r| {
                (
                    (col_str(r, "run_id"), col_str(r, "mkey")),
                    col_f64(r, "value"),
                )
            })
            .collect())
    }

    /// Each run's params and tags, sorted, one JSON text per table.
    async fn add_params_and_tags(&self, sql: &mut Sql, list: &str, runs: &mut Runs) -> Result<()> {
        for (table, key, what) in [
            ("run_params", "pkey", "read params"),
            ("run_tags", "tkey", "read tags"),
        ] {
            sql.text = crate::sql::json_rows(
                self.sqlite,
                &format!("run_id, {key}, value"),
                &format!("{table} WHERE run_id IN ({list})"),
            );
            let rows: Vec<(String, String, String)> = json_of(
                &sql.query()
                    .fetch_one(&self.pool)
                    .await
                    .map_err(query_error(what))?,
            )?;
            for (run_id, k, v) in rows {
                if let Some(run) = runs.get_mut(&run_id) {
                    if table == "run_params" {
                        run.params.push((k, v));
                    } else {
                        run.tags.push((k, v));
                    }
                }
            }
        }
        for run in runs.values_mut() {
            run.params.sort();
            run.tags.sort();
        }
        Ok(())
    }

    /// Each run's dataset inputs, by dataset name.
    async fn add_inputs(&self, sql: &mut Sql, list: &str, runs: &mut Runs) -> Result<()> {
        sql.text = format!(
            "SELECT i.run_id AS run_id, i.tags AS tags, d.name AS name, d.digest AS digest, d.source_type AS source_type, \
             d.source AS source, d.dataset_schema AS dataset_schema, d.profile AS profile \
             FROM run_inputs i JOIN datasets d ON d.dataset_id = i.dataset_id WHERE i.run_id IN ({list}) ORDER BY d.name"
        );
        for r in sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read inputs"))?
        {
            if let Some(run) = runs.get_mut(&col_str(&r, "run_id")) {
                let tags: Vec<(String, String)> =
                    serde_json::from_str(&col_str(&r, "tags")).unwrap_or_default();
                run.inputs.push(DatasetInput {
                    dataset: Dataset {
                        name: col_str(&r, "name"),
                        digest: col_str(&r, "digest"),
                        source_type: col_str(&r, "source_type"),
                        source: col_str(&r, "source"),
                        schema: col_opt_str(&r, "dataset_schema"),
                        profile: col_opt_str(&r, "profile"),
                    },
                    tags,
                });
            }
        }
        Ok(())
    }

    /// Each run's logged-model outputs, by model id.
    async fn add_outputs(&self, sql: &mut Sql, list: &str, runs: &mut Runs) -> Result<()> {
        sql.text = format!(
            "SELECT run_id, model_id, step FROM run_outputs WHERE run_id IN ({list}) ORDER BY model_id"
        );
        for r in sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read outputs"))?
        {
            if let Some(run) = runs.get_mut(&col_str(&r, "run_id")) {
                run.outputs
                    .push((col_str(&r, "model_id"), col_i64(&r, "step")));
            }
        }
        Ok(())
    }
}

/// Runs being read, by id (see `SqlStore::load_runs`).
type Runs = HashMap<String, TrackedRun>;

#[async_trait::async_trait]
impl TrackingStore for SqlStore {
    async fn get_experiment(&self, id: ExperimentId) -> Result<Option<Experiment>> {
        self.experiment_where("experiment_id", Arg::I(id.get()))
            .await
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        self.experiment_where("name", Arg::S(name.to_owned())).await
    }

    /// Creates an experiment; `artifact_location` defaults to
    /// `mlflow-artifacts:/<id>`.
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[(String, String)],
        now_ms: i64,
    ) -> Result<ExperimentId> {
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("create an experiment"))?;
        let exists = sqlx::query("SELECT experiment_id FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error("create an experiment"))?;
        if exists.is_some() {
            return Err(Error::AlreadyExists(format!(
                "Experiment '{name}' already exists."
            )));
        }
        let row = sqlx::query("SELECT MAX(experiment_id) AS m FROM experiments")
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error("create an experiment"))?;
        // The Default experiment (0) is made by the migrations: ids after it
        // go up from 1.
        let highest = col_opt_experiment_id(&row, "m")?.unwrap_or(ExperimentId::DEFAULT);
        let id = highest
            .get()
            .checked_add(1)
            .and_then(ExperimentId::new)
            .ok_or_else(|| Error::Invalid("no experiment id is left".into()))?;
        let location =
            artifact_location.map_or_else(|| format!("mlflow-artifacts:/{id}"), str::to_owned);
        sqlx::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ($1, $2, $3, 'active', $4, $4)",
        )
        .bind(id.get())
        .bind(name)
        .bind(location)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(query_error("create an experiment"))?;
        crate::sql::insert_pairs(
            &mut tx,
            crate::sql::UPSERT_EXPERIMENT_TAG,
            &id.to_string(),
            tags,
            "tag an experiment",
        )
        .await?;
        tx.commit()
            .await
            .map_err(query_error("create an experiment"))?;
        Ok(id)
    }

    /// The experiment named `name`, created if absent.
    async fn ensure_experiment(&self, name: &str, now_ms: i64) -> Result<ExperimentId> {
        // Its id alone (not its tags): a run looks it up every time.
        let found = sqlx::query("SELECT experiment_id FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read an experiment"))?;
        if let Some(r) = found {
            return col_experiment_id(&r, "experiment_id");
        }
        match self.create_experiment(name, None, &[], now_ms).await {
            // Created meanwhile by another writer.
            Err(Error::AlreadyExists(_)) => self
                .get_experiment_by_name(name)
                .await?
                .map(|e| e.experiment_id)
                .ok_or_else(|| {
                    Error::NotFound(format!("Experiment '{name}' exists and cannot be read"))
                }),
            other => other,
        }
    }

    async fn search_experiments(
        &self,
        view: ViewType,
        filter: &[Clause],
        order_by: &[OrderBy],
        max_results: i64,
        offset: i64,
    ) -> Result<Vec<Experiment>> {
        let mut sql = Sql::default();
        let mut wheres = vec![format!("e.lifecycle_stage IN {}", view_stages(view))];
        for c in filter {
            wheres.push(match &c.entity {
                Entity::Attribute(Attr::Name) => compare(&mut sql, "e.name", c.op, &c.value),
                Entity::Tag(k) => {
                    let kp = sql.arg(Arg::S(k.clone()));
                    let cmp = compare(&mut sql, "t.value", c.op, &c.value);
                    format!("e.experiment_id IN (SELECT t.experiment_id FROM experiment_tags t WHERE t.tkey = {kp} AND {cmp})")
                }
                Entity::Attribute(Attr::CreationTime) => compare(&mut sql, "e.creation_time", c.op, &c.value),
                Entity::Attribute(Attr::LastUpdatedTime) => compare(&mut sql, "e.last_update_time", c.op, &c.value),
                _ => return Err(Error::Invalid("Invalid experiment filter".into())),
            });
        }
        let order = experiment_order(order_by)?;
        let lim = sql.arg(Arg::I(max_results));
        let off = sql.arg(Arg::I(offset));
        sql.text = format!(
            "SELECT e.experiment_id AS id FROM experiments e WHERE {} ORDER BY {order} LIMIT {lim} OFFSET {off}",
            wheres.join(" AND ")
        );
        let ids = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("search experiments"))?;
        let mut out = Vec::with_capacity(ids.len());
        for r in ids {
            if let Some(e) = self.get_experiment(col_experiment_id(&r, "id")?).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn rename_experiment(&self, id: ExperimentId, new_name: &str, now_ms: i64) -> Result<()> {
        if let Some(other) = self.get_experiment_by_name(new_name).await?
            && other.experiment_id != id
        {
            return Err(Error::AlreadyExists(format!(
                "Experiment '{new_name}' already exists."
            )));
        }
        let n = self
            .exec(
                "rename an experiment",
                "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
                vec![Arg::S(new_name.into()), Arg::I(now_ms), Arg::I(id.get())],
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "No Experiment with id={id} exists"
            )));
        }
        Ok(())
    }

    async fn set_experiment_tag(&self, id: ExperimentId, key: &str, value: &str) -> Result<()> {
        self.require_experiment(id).await?;
        let pair = [(key.to_owned(), value.to_owned())];
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("tag an experiment"))?;
        crate::sql::insert_pairs(
            &mut tx,
            crate::sql::UPSERT_EXPERIMENT_TAG,
            &id.to_string(),
            &pair,
            "tag an experiment",
        )
        .await?;
        tx.commit()
            .await
            .map_err(query_error("tag an experiment"))?;
        Ok(())
    }

    async fn delete_experiment_tag(&self, id: ExperimentId, key: &str) -> Result<()> {
        self.require_experiment(id).await?;
        self.exec(
            "untag an experiment",
            "DELETE FROM experiment_tags WHERE experiment_id = $1 AND tkey = $2",
            vec![Arg::I(id.get()), Arg::S(key.into())],
        )
        .await?;
        Ok(())
    }

    /// Soft delete (or restore): the experiment and its runs change stage.
    async fn set_experiment_stage(
        &self,
        id: ExperimentId,
        deleted: bool,
        now_ms: i64,
    ) -> Result<()> {
        self.require_experiment(id).await?;
        if id == ExperimentId::DEFAULT && deleted {
            return Err(Error::Invalid(
                "Cannot delete the default experiment '0'.".into(),
            ));
        }
        let stage = if deleted { "deleted" } else { "active" };
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("delete an experiment"))?;
        sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(stage)
            .bind(now_ms)
            .bind(id.get())
            .execute(&mut *tx)
            .await
            .map_err(query_error("delete an experiment"))?;
        sqlx::query("UPDATE runs SET lifecycle_stage = $1 WHERE experiment_id = $2")
            .bind(stage)
            .bind(id.get())
            .execute(&mut *tx)
            .await
            .map_err(query_error("delete an experiment"))?;
        tx.commit()
            .await
            .map_err(query_error("delete an experiment"))?;
        Ok(())
    }

    /// Creates a run in `experiment_id`; its artifacts live under the
    /// experiment's artifact location.
    #[allow(clippy::too_many_arguments)]
    async fn create_tracked_run(
        &self,
        run_id: &str,
        experiment_id: ExperimentId,
        run_name: &str,
        user_id: &str,
        start_time: i64,
        tags: &[(String, String)],
    ) -> Result<TrackedRun> {
        let run = NewTrackedRun {
            run_id: run_id.to_owned(),
            experiment_id,
            run_name: run_name.to_owned(),
            user_id: user_id.to_owned(),
            start_time,
            tags: tags.to_vec(),
        };
        // On a SQLite file the writer thread creates it: one hand-off and a
        // transaction of microseconds, instead of a transaction held across
        // several round trips that the logging requests would queue behind.
        if let (Some(w), Some(_)) = (&self.writer, &self.sqlite_path) {
            use crate::jobs::Job;
            use tokio::sync::mpsc::error::SendError;
            let (reply, rx) = tokio::sync::oneshot::channel();
            let job = Job::CreateRun(crate::jobs::CreateRunJob { run, reply });
            return match w.send(job).await {
                Ok(()) => rx
                    .await
                    .unwrap_or_else(|_| Err(Error::Invalid("the write queue stopped".into()))),
                // The writer is gone (shutting down): write it here.
                Err(SendError(Job::CreateRun(j))) => self.create_tracked_run_direct(&j.run).await,
                Err(SendError(Job::Log(_))) => {
                    Err(Error::Invalid("the write queue stopped".into()))
                }
            };
        }
        self.create_tracked_run_direct(&run).await
    }

    async fn attach_run(
        &self,
        run_id: &str,
        experiment_id: ExperimentId,
        run_name: &str,
        tags: &[(String, String)],
    ) -> Result<()> {
        // The experiment's artifact location alone (not its tags).
        let location =
            sqlx::query("SELECT artifact_location FROM experiments WHERE experiment_id = $1")
                .bind(experiment_id.get())
                .fetch_optional(&self.pool)
                .await
                .map_err(query_error("read an experiment"))?
                .map(|r| col_str(&r, "artifact_location"))
                .ok_or_else(|| {
                    Error::NotFound(format!("No Experiment with id={experiment_id} exists"))
                })?;
        let artifact_uri = format!("{}/{run_id}/artifacts", location.trim_end_matches('/'));
        let mut tx = self.begin().await.map_err(query_error("attach a run"))?;
        // Who started it: its `mlflow.user` tag, as MLflow's client sets both.
        let user = tags
            .iter()
            .find(|(k, _)| k == "mlflow.user")
            .map_or("", |(_, v)| v.as_str());
        sqlx::query("UPDATE runs SET experiment_id = $1, run_name = $2, artifact_uri = $3, user_id = $4 WHERE run_id = $5")
            .bind(experiment_id.get())
            .bind(run_name)
            .bind(&artifact_uri)
            .bind(user)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(query_error("attach a run"))?;
        let mut all = tags.to_vec();
        all.push(("mlflow.runName".to_owned(), run_name.to_owned()));
        crate::sql::upsert_run_tags(&mut tx, self.sqlite, run_id, &all).await?;
        tx.commit().await.map_err(query_error("attach a run"))?;
        Ok(())
    }

    async fn get_tracked_run(&self, run_id: &str) -> Result<Option<TrackedRun>> {
        Ok(self.load_runs(&[run_id.to_owned()]).await?.pop())
    }

    async fn update_tracked_run(
        &self,
        run_id: &str,
        status: Option<&str>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        self.require_active_run(run_id).await?;
        let mut tx = self.begin().await.map_err(query_error("update a run"))?;
        if let Some(s) = status {
            let ferry = status_from_mlflow(s)
                .ok_or_else(|| Error::Invalid(format!("Invalid run status '{s}'")))?;
            sqlx::query("UPDATE runs SET status = $1 WHERE run_id = $2")
                .bind(ferry)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("update a run"))?;
        }
        if let Some(e) = end_time {
            sqlx::query("UPDATE runs SET ended_ms = $1 WHERE run_id = $2")
                .bind(e)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("update a run"))?;
        }
        if let Some(n) = run_name {
            sqlx::query("UPDATE runs SET run_name = $1 WHERE run_id = $2")
                .bind(n)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("update a run"))?;
            upsert_tag(&mut tx, run_id, "mlflow.runName", n).await?;
        }
        tx.commit().await.map_err(query_error("update a run"))?;
        self.require_run(run_id).await
    }

    async fn set_run_stage(&self, run_id: &str, deleted: bool) -> Result<()> {
        self.require_run(run_id).await?;
        self.exec(
            "delete a run",
            "UPDATE runs SET lifecycle_stage = $1 WHERE run_id = $2",
            vec![
                Arg::S(if deleted { "deleted" } else { "active" }.into()),
                Arg::S(run_id.into()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Logs metrics, params and tags in one transaction: all or nothing.
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        if metrics.len() > MAX_BATCH_METRICS {
            return Err(Error::Invalid(format!(
                "A batch logging request can contain at most {MAX_BATCH_METRICS} metrics. Got {} metrics. Please split up metrics across multiple requests and try again.",
                metrics.len()
            )));
        }
        if params.len() > MAX_BATCH_PARAMS {
            return Err(Error::Invalid(format!(
                "A batch logging request can contain at most {MAX_BATCH_PARAMS} params. Got {} params. Please split up params across multiple requests and try again.",
                params.len()
            )));
        }
        if tags.len() > MAX_BATCH_TAGS {
            return Err(Error::Invalid(format!(
                "A batch logging request can contain at most {MAX_BATCH_TAGS} tags. Got {} tags. Please split up tags across multiple requests and try again.",
                tags.len()
            )));
        }
        let total = metrics.len() + params.len() + tags.len();
        if total > MAX_BATCH_TOTAL {
            return Err(Error::Invalid(format!(
                "A batch logging request can contain at most {MAX_BATCH_TOTAL} total entities. Got {total}."
            )));
        }
        // Small requests (one metric, a tag) gain from sharing a commit;
        // a large batch already amortizes its own.
        let small = metrics.len() + params.len() + tags.len() <= crate::jobs::SMALL_REQUEST;
        match self.writer.as_ref().filter(|_| small) {
            Some(w) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                let job = crate::jobs::Job::Log(crate::jobs::LogJob {
                    run_id: run_id.to_owned(),
                    metrics: metrics.to_vec(),
                    params: params.to_vec(),
                    tags: tags.to_vec(),
                    reply,
                });
                if w.send(job).await.is_err() {
                    return self.log_batch_direct(run_id, metrics, params, tags).await;
                }
                rx.await
                    .unwrap_or_else(|_| Err(Error::Invalid("the write queue stopped".into())))
            }
            None => self.log_batch_direct(run_id, metrics, params, tags).await,
        }
    }

    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.require_active_run(run_id).await?;
        let n = self
            .exec(
                "delete a tag",
                "DELETE FROM run_tags WHERE run_id = $1 AND tkey = $2",
                vec![Arg::S(run_id.into()), Arg::S(key.into())],
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        Ok(())
    }

    /// Every point of a metric, ordered by (timestamp, step, value).
    async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        // One row holding the whole history as JSON: drivers hand rows over
        // one at a time, which dominates for 10,000-point histories. The two
        // dialects spell JSON aggregation differently. Values travel as
        // their bits (an integer): SQLite's double-to-text conversion is not
        // exact. Points written before the `bits` column carry their value.
        // The points come in primary-key order; the sort by time is here.
        let sql = crate::sql::json_rows(
            self.sqlite,
            "bits, step, ts_ms, is_nan, CASE WHEN bits IS NULL THEN value END",
            "metric_points WHERE run_id = $1 AND mkey = $2",
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_id)
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("read a metric's history"))?;
        // (bits, step, timestamp, special, value where there are no bits)
        let mut points: Vec<(Option<i64>, i64, i64, i64, Option<f64>)> = json_of(&row)?;
        if points.iter().any(|p| p.0.is_none()) {
            // Points written before the `bits` column: read them all as rows,
            // which gives their values exactly.
            points = sqlx::query(
                "SELECT value, step, ts_ms, is_nan FROM metric_points WHERE run_id = $1 AND mkey = $2",
            )
            .bind(run_id)
            .bind(key)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read a metric's history"))?
            .iter()
            .map(|r| {
                let v = col_f64(r, "value");
                (Some(v.to_bits() as i64), col_i64(r, "step"), col_i64(r, "ts_ms"), col_i64(r, "is_nan"), None)
            })
            .collect();
        }
        let mut points: Vec<(i64, i64, f64, i64)> = points
            .into_iter()
            .map(|(bits, step, ts, special, value)| {
                let stored = match bits {
                    Some(b) => f64::from_bits(b as u64),
                    None => value.unwrap_or(0.0),
                };
                (ts, step, stored, special)
            })
            .collect();
        // MLflow's order: timestamp, step, then the (stored) value.
        points.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
        Ok(points
            .into_iter()
            .map(|(timestamp, step, stored, special)| Metric {
                key: key.to_owned(),
                value: crate::sql::restored(stored, special),
                timestamp,
                step,
            })
            .collect())
    }

    async fn log_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<()> {
        let run = self.require_active_run(run_id).await?;
        let mut tx = self.begin().await.map_err(query_error("log inputs"))?;
        for i in inputs {
            let d = &i.dataset;
            let existing = sqlx::query("SELECT dataset_id FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3")
                .bind(run.experiment_id.get())
                .bind(&d.name)
                .bind(&d.digest)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error("log inputs"))?;
            let id = match existing {
                Some(r) => col_str(&r, "dataset_id"),
                None => {
                    let id = ferry_core::RunId::generate().as_str().to_owned();
                    sqlx::query(
                        "INSERT INTO datasets (dataset_id, experiment_id, name, digest, source_type, source, dataset_schema, profile) \
                         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                    )
                    .bind(&id)
                    .bind(run.experiment_id.get())
                    .bind(&d.name)
                    .bind(&d.digest)
                    .bind(&d.source_type)
                    .bind(&d.source)
                    .bind(d.schema.clone())
                    .bind(d.profile.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error("log inputs"))?;
                    id
                }
            };
            let context = i
                .tags
                .iter()
                .find(|(k, _)| k == "mlflow.data.context")
                .map(|(_, v)| v.clone());
            sqlx::query("DELETE FROM run_inputs WHERE run_id = $1 AND dataset_id = $2")
                .bind(run_id)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("log inputs"))?;
            sqlx::query("INSERT INTO run_inputs (run_id, dataset_id, context, tags) VALUES ($1, $2, $3, $4)")
                .bind(run_id)
                .bind(&id)
                .bind(context)
                .bind(serde_json::to_string(&i.tags).unwrap_or_else(|_| "[]".into()))
                .execute(&mut *tx)
                .await
                .map_err(query_error("log inputs"))?;
        }
        tx.commit().await.map_err(query_error("log inputs"))?;
        Ok(())
    }

    /// Runs matching `qr`, one page; the second value says whether more follow.
    async fn search_tracked_runs(&self, qr: &RunQuery) -> Result<(Vec<TrackedRun>, bool)> {
        let mut sql = Sql::default();
        let mut wheres = vec![format!("r.lifecycle_stage IN {}", view_stages(qr.view))];
        if qr.experiment_ids.is_empty() {
            wheres.push("1 = 0".into());
        } else {
            let ids: Vec<String> = qr
                .experiment_ids
                .iter()
                .map(|i| sql.arg(Arg::I(i.get())))
                .collect();
            wheres.push(format!("r.experiment_id IN ({})", ids.join(", ")));
        }
        for c in &qr.filter {
            wheres.push(clause_sql(&mut sql, c, Form::Exists));
        }
        // Ordered by a metric the filter also requires (`metrics.acc > 0.5`
        // ... `ORDER BY metrics.acc DESC`): walk that metric's index in order
        // and stop at the page's end, instead of sorting every match.
        let driver = match qr.order_by.first() {
            Some(OrderBy {
                entity: Entity::Metric(k),
                ascending,
            }) if qr.filter.iter().any(|c| {
                matches!(&c.entity, Entity::Metric(f) if f == k) && c.op != Comparator::Ne
            }) =>
            {
                Some((k.clone(), *ascending))
            }
            _ => None,
        };
        let mut from = "runs r".to_owned();
        let mut orders: Vec<String> = Vec::new();
        let mut rest = &qr.order_by[..];
        if let Some((k, ascending)) = &driver {
            let kp = sql.arg(Arg::S(k.clone()));
            from = format!("latest_metrics o JOIN runs r ON r.run_id = o.run_id AND o.mkey = {kp}");
            orders.push(format!(
                "o.value {}",
                if *ascending { "ASC" } else { "DESC" }
            ));
            rest = &qr.order_by[1..];
        }
        orders.extend(rest.iter().map(|o| order_sql(&mut sql, o)));
        if !qr
            .order_by
            .iter()
            .any(|o| matches!(o.entity, Entity::Attribute(Attr::StartTime)))
        {
            orders.push("r.started_ms DESC".into());
        }
        orders.push("r.run_id ASC".into());
        let lim = sql.arg(Arg::I(qr.max_results + 1));
        let off = sql.arg(Arg::I(qr.offset));
        sql.text = format!(
            "SELECT r.run_id AS run_id FROM {from} WHERE {} ORDER BY {} LIMIT {lim} OFFSET {off}",
            wheres.join(" AND "),
            orders.join(", ")
        );
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("search runs"))?;
        let mut ids: Vec<String> = rows.iter().map(|r| col_str(r, "run_id")).collect();
        let more = ids.len() as i64 > qr.max_results;
        ids.truncate(qr.max_results.max(0) as usize);
        Ok((self.load_runs(&ids).await?, more))
    }
}

/// The points of one run's metrics, for [`crate::sql::write_points`].
pub(crate) fn points<'a>(
    run_id: &'a str,
    metrics: &'a [Metric],
) -> impl Iterator<Item = crate::sql::Point<'a>> {
    metrics.iter().map(move |m| crate::sql::Point {
        run: run_id,
        key: &m.key,
        value: m.value,
        step: m.step,
        ts_ms: m.timestamp,
        stage: None,
    })
}

pub(crate) async fn upsert_tag(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    k: &str,
    v: &str,
) -> Result<()> {
    sqlx::query(crate::sql::UPSERT_RUN_TAG)
        .bind(run_id)
        .bind(k)
        .bind(v)
        .execute(&mut **tx)
        .await
        .map_err(query_error("set a tag"))?;
    Ok(())
}
