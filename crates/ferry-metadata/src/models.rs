//! MLflow 3 logged models and the MLflow view of the model registry. The
//! registry tables are the ones `ferry run` registers into.

use ferry_records::*;

use crate::row::{col_experiment_id, col_i64, col_opt_i64, col_opt_str, col_str, query_error};
use crate::sql::SqlStore;
use crate::{Error, Result};
use ferry_core::ExperimentId;
use ferry_search::{Attr, Clause, Comparator, Entity, OrderBy, Value};

/// Filters of the registry and logged-model searches, evaluated in memory
/// on rows the SQL narrowed by name (registries hold thousands, not millions).
fn matches(c: &Clause, field: &dyn Fn(&Entity) -> Option<String>) -> bool {
    let Some(actual) = field(&c.entity) else {
        // A missing tag differs from any value (the client filters prompts
        // out with `tag.mlflow.prompt.is_prompt != 'true'`).
        return matches!(c.op, Comparator::Ne | Comparator::NotIn);
    };
    match (&c.value, c.op) {
        (Value::Str(v), Comparator::Eq) => actual == *v,
        (Value::Str(v), Comparator::Ne) => actual != *v,
        (Value::Str(v), Comparator::Like) => ferry_search::like(&actual, v, false),
        (Value::Str(v), Comparator::ILike) => ferry_search::like(&actual, v, true),
        (Value::List(vs), Comparator::In) => vs.contains(&actual),
        (Value::List(vs), Comparator::NotIn) => !vs.contains(&actual),
        (Value::Num(n), op) => {
            let Ok(a) = actual.parse::<f64>() else {
                return false;
            };
            match op {
                Comparator::Eq => a == *n,
                Comparator::Ne => a != *n,
                Comparator::Lt => a < *n,
                Comparator::Le => a <= *n,
                Comparator::Gt => a > *n,
                Comparator::Ge => a >= *n,
                _ => false,
            }
        }
        _ => false,
    }
}

fn sort_by<T>(items: &mut [T], order: &[OrderBy], key: &dyn Fn(&T, &Entity) -> Option<String>) {
    items.sort_by(|a, b| {
        for o in order {
            let (x, y) = (key(a, &o.entity), key(b, &o.entity));
            let ord = match (
                x.as_deref().map(str::parse::<f64>),
                y.as_deref().map(str::parse::<f64>),
            ) {
                (Some(Ok(p)), Some(Ok(r))) => p.total_cmp(&r),
                _ => x.cmp(&y),
            };
            let ord = if o.ascending { ord } else { ord.reverse() };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
}

impl SqlStore {
    async fn logged_model_rows(&self, where_sql: &str, arg: &str) -> Result<Vec<LoggedModel>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT model_id, experiment_id, name, artifact_location, creation_ms, last_updated_ms, status, model_type, source_run_id \
             FROM logged_models WHERE {where_sql} ORDER BY creation_ms DESC, model_id"
        )))
        .bind(arg.to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read logged models"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id = col_str(&r, "model_id");
            let tags = self.pairs("SELECT tkey AS k, value AS v FROM logged_model_tags WHERE model_id = $1 ORDER BY tkey", &id).await?;
            let params = self.pairs("SELECT pkey AS k, value AS v FROM logged_model_params WHERE model_id = $1 ORDER BY pkey", &id).await?;
            out.push(LoggedModel {
                model_id: id,
                experiment_id: col_experiment_id(&r, "experiment_id")?,
                name: col_str(&r, "name"),
                artifact_location: col_str(&r, "artifact_location"),
                creation_ms: col_i64(&r, "creation_ms"),
                last_updated_ms: col_i64(&r, "last_updated_ms"),
                status: col_str(&r, "status"),
                model_type: col_opt_str(&r, "model_type").unwrap_or_default(),
                source_run_id: col_opt_str(&r, "source_run_id"),
                tags,
                params,
            });
        }
        Ok(out)
    }

    async fn pairs(&self, sql: &'static str, id: &str) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query(sql)
            .bind(id.to_owned())
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read tags"))?
            .iter()
            .map(|r| (col_str(r, "k"), col_str(r, "v")))
            .collect())
    }

    async fn require_model(&self, name: &str) -> Result<RegisteredModel> {
        self.get_registered_model(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Registered Model with name={name} not found")))
    }

    async fn require_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        self.versions_where("AND version = $2", name, Some(version))
            .await?
            .pop()
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "Model Version (name={name}, version={version}) not found"
                ))
            })
    }

    async fn model_names(&self) -> Result<Vec<String>> {
        Ok(sqlx::query("SELECT name FROM models ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list models"))?
            .iter()
            .map(|r| col_str(r, "name"))
            .collect())
    }

    async fn run1(&self, what: &'static str, sql: &'static str, args: &[&str]) -> Result<u64> {
        let mut qy = sqlx::query(sql);
        for a in args {
            qy = qy.bind((*a).to_owned());
        }
        Ok(qy
            .execute(&self.pool)
            .await
            .map_err(query_error(what))?
            .rows_affected())
    }
}

/// The value of `key` in a list of pairs.
fn lookup(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn lm_field(m: &LoggedModel, e: &Entity) -> Option<String> {
    match e {
        Entity::Attribute(Attr::Name) => Some(m.name.clone()),
        Entity::Attribute(Attr::RunId) => m.source_run_id.clone(),
        Entity::Attribute(Attr::Status) => Some(m.status.clone()),
        Entity::Attribute(Attr::CreationTime) => Some(m.creation_ms.to_string()),
        Entity::Attribute(Attr::LastUpdatedTime) => Some(m.last_updated_ms.to_string()),
        Entity::Attribute(Attr::ModelId) => Some(m.model_id.clone()),
        Entity::Attribute(Attr::ModelType) => Some(m.model_type.clone()),
        Entity::Tag(k) => lookup(&m.tags, k),
        Entity::Param(k) => lookup(&m.params, k),
        _ => None,
    }
}

fn rm_field(m: &RegisteredModel, e: &Entity) -> Option<String> {
    match e {
        Entity::Attribute(Attr::Name) => Some(m.name.clone()),
        Entity::Attribute(Attr::CreationTime) => Some(m.creation_ms.to_string()),
        Entity::Attribute(Attr::LastUpdatedTime) => Some(m.last_updated_ms.to_string()),
        Entity::Tag(k) => lookup(&m.tags, k),
        _ => None,
    }
}

fn mv_field(v: &ModelVersion, e: &Entity) -> Option<String> {
    match e {
        Entity::Attribute(Attr::Name) => Some(v.model.clone()),
        Entity::Attribute(Attr::RunId) => v.run_id.clone(),
        Entity::Attribute(Attr::VersionNumber) => Some(v.version.to_string()),
        Entity::Attribute(Attr::Source) => Some(v.source.clone()),
        Entity::Attribute(Attr::CreationTime) => Some(v.created_ms.to_string()),
        Entity::Attribute(Attr::LastUpdatedTime) => Some(v.last_updated_ms.to_string()),
        Entity::Tag(k) => lookup(&v.tags, k),
        _ => None,
    }
}

fn page<T>(mut all: Vec<T>, max: i64, offset: i64) -> (Vec<T>, bool) {
    let start = (offset.max(0) as usize).min(all.len());
    let mut rest = all.split_off(start);
    let more = rest.len() as i64 > max;
    rest.truncate(max.max(0) as usize);
    (rest, more)
}

#[async_trait::async_trait]
impl ModelStore for SqlStore {
    async fn create_logged_model(
        &self,
        experiment_id: ExperimentId,
        name: &str,
        model_type: &str,
        source_run_id: Option<&str>,
        params: &[(String, String)],
        tags: &[(String, String)],
        now_ms: i64,
    ) -> Result<LoggedModel> {
        use ferry_records::TrackingStore;
        let exp = self.get_experiment(experiment_id).await?.ok_or_else(|| {
            Error::NotFound(format!("Could not find experiment with ID {experiment_id}"))
        })?;
        let id = format!("m-{}", ferry_core::RunId::generate().as_str());
        let location = format!(
            "{}/models/{id}/artifacts",
            exp.artifact_location.trim_end_matches('/')
        );
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("create a logged model"))?;
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_ms, last_updated_ms, status, \
             model_type, source_run_id, lifecycle_stage) VALUES ($1,$2,$3,$4,$5,$5,'LOGGED_MODEL_PENDING',$6,$7,'active')",
        )
        .bind(&id)
        .bind(experiment_id.get())
        .bind(name)
        .bind(&location)
        .bind(now_ms)
        .bind(model_type)
        .bind(source_run_id.map(str::to_owned))
        .execute(&mut *tx)
        .await
        .map_err(query_error("create a logged model"))?;
        crate::sql::insert_pairs(
            &mut tx,
            crate::sql::UPSERT_LOGGED_MODEL_PARAM,
            &id,
            params,
            "create a logged model",
        )
        .await?;
        crate::sql::insert_pairs(
            &mut tx,
            crate::sql::UPSERT_LOGGED_MODEL_TAG,
            &id,
            tags,
            "create a logged model",
        )
        .await?;
        tx.commit()
            .await
            .map_err(query_error("create a logged model"))?;
        self.get_logged_model(&id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Logged model {id} vanished")))
    }

    async fn get_logged_model(&self, model_id: &str) -> Result<Option<LoggedModel>> {
        Ok(self
            .logged_model_rows("model_id = $1", model_id)
            .await?
            .pop())
    }

    async fn set_logged_model_status(
        &self,
        model_id: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<LoggedModel> {
        let n = sqlx::query(
            "UPDATE logged_models SET status = $1, last_updated_ms = $2 WHERE model_id = $3",
        )
        .bind(status)
        .bind(now_ms)
        .bind(model_id)
        .execute(&self.pool)
        .await
        .map_err(query_error("finalize a logged model"))?
        .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!(
                "Logged model with ID '{model_id}' not found."
            )));
        }
        self.get_logged_model(model_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Logged model with ID '{model_id}' not found.")))
    }

    async fn set_logged_model_tags(&self, model_id: &str, tags: &[(String, String)]) -> Result<()> {
        if self.get_logged_model(model_id).await?.is_none() {
            return Err(Error::NotFound(format!(
                "Logged model with ID '{model_id}' not found."
            )));
        }
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("tag a logged model"))?;
        crate::sql::insert_pairs(
            &mut tx,
            crate::sql::UPSERT_LOGGED_MODEL_TAG,
            model_id,
            tags,
            "tag a logged model",
        )
        .await?;
        tx.commit()
            .await
            .map_err(query_error("tag a logged model"))?;
        Ok(())
    }

    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.run1(
            "untag a logged model",
            "DELETE FROM logged_model_tags WHERE model_id = $1 AND tkey = $2",
            &[model_id, key],
        )
        .await?;
        Ok(())
    }

    async fn search_logged_models(
        &self,
        experiment_ids: &[ExperimentId],
        filter: &[Clause],
        order_by: &[OrderBy],
        max_results: i64,
        offset: i64,
    ) -> Result<(Vec<LoggedModel>, bool)> {
        let mut all = Vec::new();
        for e in experiment_ids {
            all.extend(
                self.logged_model_rows(
                    "experiment_id = CAST($1 AS BIGINT) AND lifecycle_stage = 'active'",
                    &e.to_string(),
                )
                .await?,
            );
        }
        all.retain(|m| filter.iter().all(|c| matches(c, &|e| lm_field(m, e))));
        if order_by.is_empty() {
            all.sort_by(|a, b| {
                b.creation_ms
                    .cmp(&a.creation_ms)
                    .then(a.model_id.cmp(&b.model_id))
            });
        } else {
            sort_by(&mut all, order_by, &lm_field);
        }
        Ok(page(all, max_results, offset))
    }

    async fn log_run_outputs(&self, run_id: &str, outputs: &[(String, i64)]) -> Result<()> {
        self.require_active_run(run_id).await?;
        let mut tx = self.begin().await.map_err(query_error("log outputs"))?;
        for (m, step) in outputs {
            sqlx::query("DELETE FROM run_outputs WHERE run_id = $1 AND model_id = $2")
                .bind(run_id)
                .bind(m)
                .execute(&mut *tx)
                .await
                .map_err(query_error("log outputs"))?;
            sqlx::query("INSERT INTO run_outputs (run_id, model_id, step) VALUES ($1, $2, $3)")
                .bind(run_id)
                .bind(m)
                .bind(*step)
                .execute(&mut *tx)
                .await
                .map_err(query_error("log outputs"))?;
        }
        tx.commit().await.map_err(query_error("log outputs"))?;
        Ok(())
    }

    async fn run_outputs(&self, run_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query(
            "SELECT model_id, step FROM run_outputs WHERE run_id = $1 ORDER BY model_id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read outputs"))?
        .iter()
        .map(|r| (col_str(r, "model_id"), col_i64(r, "step")))
        .collect())
    }

    async fn create_registered_model(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
        now_ms: i64,
    ) -> Result<RegisteredModel> {
        if self.get_registered_model(name).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "Registered Model (name={name}) already exists."
            )));
        }
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("create a registered model"))?;
        let r = sqlx::query("INSERT INTO models (name, created_ms, last_updated_ms, max_version, description) VALUES ($1, $2, $2, 0, $3)")
            .bind(name)
            .bind(now_ms)
            .bind(description)
            .execute(&mut *tx)
            .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(Error::AlreadyExists(format!(
                    "Registered Model (name={name}) already exists."
                )));
            }
            other => {
                other.map_err(query_error("create a registered model"))?;
            }
        }
        crate::sql::insert_pairs(
            &mut tx,
            crate::sql::UPSERT_MODEL_TAG,
            name,
            tags,
            "tag a registered model",
        )
        .await?;
        tx.commit()
            .await
            .map_err(query_error("create a registered model"))?;
        self.require_model(name).await
    }

    async fn get_registered_model(&self, name: &str) -> Result<Option<RegisteredModel>> {
        let row = sqlx::query(
            "SELECT name, created_ms, last_updated_ms, description FROM models WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("read a registered model"))?;
        let Some(r) = row else { return Ok(None) };
        let tags = self
            .pairs(
                "SELECT tkey AS k, value AS v FROM model_tags WHERE model = $1 ORDER BY tkey",
                name,
            )
            .await?;
        let aliases =
            sqlx::query("SELECT alias, version FROM model_aliases WHERE model = $1 ORDER BY alias")
                .bind(name)
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("read aliases"))?
                .iter()
                .map(|a| (col_str(a, "alias"), col_i64(a, "version")))
                .collect();
        let latest = self.versions_where("", name, None).await?.pop();
        Ok(Some(RegisteredModel {
            name: col_str(&r, "name"),
            creation_ms: col_i64(&r, "created_ms"),
            last_updated_ms: col_opt_i64(&r, "last_updated_ms")
                .unwrap_or_else(|| col_i64(&r, "created_ms")),
            description: col_opt_str(&r, "description").unwrap_or_default(),
            tags,
            aliases,
            latest,
        }))
    }

    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
        now_ms: i64,
    ) -> Result<RegisteredModel> {
        self.require_model(name).await?;
        sqlx::query("UPDATE models SET description = $1, last_updated_ms = $2 WHERE name = $3")
            .bind(description)
            .bind(now_ms)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(query_error("update a registered model"))?;
        self.require_model(name).await
    }

    async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        now_ms: i64,
    ) -> Result<RegisteredModel> {
        self.require_model(name).await?;
        if self.get_registered_model(new_name).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "Registered Model (name={new_name}) already exists."
            )));
        }
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("rename a registered model"))?;
        for sql in [
            "UPDATE models SET name = $1 WHERE name = $2",
            "UPDATE model_versions SET model = $1 WHERE model = $2",
            "UPDATE model_aliases SET model = $1 WHERE model = $2",
            "UPDATE model_tags SET model = $1 WHERE model = $2",
            "UPDATE model_version_tags SET model = $1 WHERE model = $2",
            "UPDATE alias_events SET model = $1 WHERE model = $2",
            // Who may do what on it follows it: its workspace, and grants
            // that name it (not wildcards; a role that already names the new
            // name keeps that grant).
            "UPDATE auth_workspaces SET resource_id = $1 \
             WHERE resource_type = 'registered_model' AND resource_id = $2",
            "UPDATE auth_role_grants SET pattern = $1 \
             WHERE resource_type IN ('registered_model', 'deployment') AND pattern = $2 AND pattern <> '*' \
             AND NOT EXISTS (SELECT 1 FROM auth_role_grants g WHERE g.role_id = auth_role_grants.role_id \
               AND g.resource_type = auth_role_grants.resource_type AND g.pattern = $1)",
        ] {
            sqlx::query(sql)
                .bind(new_name)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(query_error("rename a registered model"))?;
        }
        sqlx::query("UPDATE models SET last_updated_ms = $1 WHERE name = $2")
            .bind(now_ms)
            .bind(new_name)
            .execute(&mut *tx)
            .await
            .map_err(query_error("rename a registered model"))?;
        // Grants on the old name that a role could not carry over.
        sqlx::query("DELETE FROM auth_role_grants WHERE resource_type IN ('registered_model', 'deployment') AND pattern = $1 AND pattern <> '*'")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(query_error("rename a registered model"))?;
        crate::auth::bump(&mut tx).await?;
        tx.commit()
            .await
            .map_err(query_error("rename a registered model"))?;
        self.require_model(new_name).await
    }

    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        self.require_model(name).await?;
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("delete a registered model"))?;
        for sql in [
            "DELETE FROM model_version_tags WHERE model = $1",
            "DELETE FROM model_tags WHERE model = $1",
            "DELETE FROM model_aliases WHERE model = $1",
            "DELETE FROM model_versions WHERE model = $1",
            "DELETE FROM models WHERE name = $1",
            // A model made later under this name starts with no grants and
            // in its creator's workspace.
            "DELETE FROM auth_workspaces WHERE resource_type = 'registered_model' AND resource_id = $1",
            "DELETE FROM auth_role_grants WHERE resource_type IN ('registered_model', 'deployment') AND pattern = $1 AND pattern <> '*'",
        ] {
            sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(query_error("delete a registered model"))?;
        }
        crate::auth::bump(&mut tx).await?;
        tx.commit()
            .await
            .map_err(query_error("delete a registered model"))?;
        Ok(())
    }

    async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        self.require_model(name).await?;
        self.run1(
            "tag a model",
            crate::sql::UPSERT_MODEL_TAG,
            &[name, key, value],
        )
        .await?;
        Ok(())
    }

    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.require_model(name).await?;
        self.run1(
            "untag a model",
            "DELETE FROM model_tags WHERE model = $1 AND tkey = $2",
            &[name, key],
        )
        .await?;
        Ok(())
    }

    async fn search_registered_models(
        &self,
        filter: &[Clause],
        order_by: &[OrderBy],
        max_results: i64,
        offset: i64,
    ) -> Result<(Vec<RegisteredModel>, bool)> {
        let mut all = Vec::new();
        for n in self.model_names().await? {
            if let Some(m) = self.get_registered_model(&n).await?
                && filter.iter().all(|c| matches(c, &|e| rm_field(&m, e)))
            {
                all.push(m);
            }
        }
        if !order_by.is_empty() {
            sort_by(&mut all, order_by, &rm_field);
        }
        Ok(page(all, max_results, offset))
    }

    async fn create_mlflow_version(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
        description: &str,
        tags: &[(String, String)],
        run_link: &str,
        stored: Option<&StoredFiles>,
        now_ms: i64,
    ) -> Result<ModelVersion> {
        self.require_model(name).await?;
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("create a model version"))?;
        sqlx::query(
            "UPDATE models SET max_version = max_version + 1, last_updated_ms = $2 WHERE name = $1",
        )
        .bind(name)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(query_error("create a model version"))?;
        let row = sqlx::query("SELECT max_version AS v FROM models WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error("create a model version"))?;
        let version = col_opt_i64(&row, "v").unwrap_or(1);
        // Lineage sent as tags (by `ferry run --server`) fills the columns.
        let mut lin = ModelVersion {
            model: name.to_owned(),
            version,
            run_id: None,
            artifact_path: source.to_owned(),
            artifact_digest: String::new(),
            artifact_size: 0,
            git_commit: None,
            git_dirty: None,
            env_fingerprint: None,
            lineage: serde_json::json!({}),
            created_ms: now_ms,
            status: String::new(),
            aliases: vec![],
            source: source.to_owned(),
            description: String::new(),
            last_updated_ms: now_ms,
            tags: vec![],
            stored: None,
        };
        crate::lineage_tags::apply(&mut lin, tags);
        sqlx::query(
            "INSERT INTO model_versions (model, version, run_id, artifact_path, artifact_digest, artifact_size, lineage, created_ms, \
             status, source, description, last_updated_ms, run_link, git_commit, git_dirty, env_fingerprint, \
             storage_location, files_digest) \
             VALUES ($1,$2,$3,$4,$8,$9,$10,$5,'ready',$11,$6,$5,$7,$12,$13,$14,$15,$16)",
        )
        .bind(name)
        .bind(version)
        .bind(run_id.map(str::to_owned))
        .bind(lin.artifact_path)
        .bind(now_ms)
        .bind(description)
        .bind(run_link)
        .bind(lin.artifact_digest)
        .bind(lin.artifact_size)
        .bind(lin.lineage.to_string())
        .bind(source)
        .bind(lin.git_commit)
        .bind(lin.git_dirty.map(i64::from))
        .bind(lin.env_fingerprint)
        .bind(stored.map(|f| f.location.clone()))
        .bind(stored.map(|f| f.digest.clone()))
        .execute(&mut *tx)
        .await
        .map_err(query_error("create a model version"))?;
        for (k, v) in tags {
            sqlx::query("INSERT INTO model_version_tags (model, version, tkey, value) VALUES ($1, $2, $3, $4)")
                .bind(name)
                .bind(version)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(query_error("tag a model version"))?;
        }
        tx.commit()
            .await
            .map_err(query_error("create a model version"))?;
        self.require_version(name, version).await
    }

    async fn versions_storing(&self, location: &str) -> Result<Vec<(String, i64)>> {
        let location = location.trim_end_matches('/');
        let Some(path) = location.strip_prefix("mlflow-artifacts:/") else {
            return Ok(vec![]);
        };
        // The location itself and every folder above it ...
        let mut at = vec![location.to_owned()];
        let mut p = path;
        while let Some((up, _)) = p.rsplit_once('/') {
            at.push(format!("mlflow-artifacts:/{up}"));
            p = up;
        }
        // ... and everything below it (LIKE's wildcards escaped).
        let below = format!(
            "{}/%",
            location
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let placeholders: Vec<String> = (2..at.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT model, version FROM model_versions WHERE storage_location LIKE $1 ESCAPE '\\' \
             OR storage_location IN ({}) ORDER BY model, version",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(below);
        for a in at {
            query = query.bind(a);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("find versions by their files"))?;
        Ok(rows
            .iter()
            .map(|r| (col_str(r, "model"), col_i64(r, "version")))
            .collect())
    }

    async fn update_version_description(
        &self,
        name: &str,
        version: i64,
        description: &str,
        now_ms: i64,
    ) -> Result<ModelVersion> {
        self.require_version(name, version).await?;
        sqlx::query("UPDATE model_versions SET description = $1, last_updated_ms = $2 WHERE model = $3 AND version = $4")
            .bind(description)
            .bind(now_ms)
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await
            .map_err(query_error("update a model version"))?;
        self.require_version(name, version).await
    }

    async fn delete_version(&self, name: &str, version: i64) -> Result<()> {
        self.require_version(name, version).await?;
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("delete a model version"))?;
        for sql in [
            "DELETE FROM model_version_tags WHERE model = $1 AND version = $2",
            "DELETE FROM model_aliases WHERE model = $1 AND version = $2",
            "DELETE FROM model_versions WHERE model = $1 AND version = $2",
        ] {
            sqlx::query(sql)
                .bind(name)
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(query_error("delete a model version"))?;
        }
        tx.commit()
            .await
            .map_err(query_error("delete a model version"))?;
        Ok(())
    }

    async fn set_version_tag(
        &self,
        name: &str,
        version: i64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        self.require_version(name, version).await?;
        sqlx::query(
            "INSERT INTO model_version_tags (model, version, tkey, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (model, version, tkey) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(version)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(query_error("tag a model version"))?;
        Ok(())
    }

    async fn delete_version_tag(&self, name: &str, version: i64, key: &str) -> Result<()> {
        self.require_version(name, version).await?;
        sqlx::query(
            "DELETE FROM model_version_tags WHERE model = $1 AND version = $2 AND tkey = $3",
        )
        .bind(name)
        .bind(version)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(query_error("untag a model version"))?;
        Ok(())
    }

    async fn search_versions(
        &self,
        filter: &[Clause],
        order_by: &[OrderBy],
        max_results: i64,
        offset: i64,
    ) -> Result<(Vec<ModelVersion>, bool)> {
        // Narrow by an exact name when the filter has one.
        let names = match filter
            .iter()
            .find_map(|c| match (&c.entity, c.op, &c.value) {
                (Entity::Attribute(Attr::Name), Comparator::Eq, Value::Str(n)) => Some(n.clone()),
                _ => None,
            }) {
            Some(n) => vec![n],
            None => self.model_names().await?,
        };
        let mut all = Vec::new();
        for n in names {
            for v in self.versions_where("", &n, None).await? {
                if filter.iter().all(|c| matches(c, &|e| mv_field(&v, e))) {
                    all.push(v);
                }
            }
        }
        if order_by.is_empty() {
            all.sort_by(|a, b| a.model.cmp(&b.model).then(b.version.cmp(&a.version)));
        } else {
            sort_by(&mut all, order_by, &mv_field);
        }
        Ok(page(all, max_results, offset))
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.require_model(name).await?;
        // The delete and its event (`version` NULL; schema 21 delivers
        // it as `model_version_alias.deleted`) in one transaction.
        let what = "delete an alias";
        let mut tx = self.begin().await.map_err(query_error(what))?;
        let prev = sqlx::query("SELECT version FROM model_aliases WHERE model = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(what))?
            .map(|r| col_i64(&r, "version"));
        let Some(prev) = prev else {
            return Ok(());
        };
        sqlx::query("DELETE FROM model_aliases WHERE model = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&mut *tx)
            .await
            .map_err(query_error(what))?;
        sqlx::query("INSERT INTO alias_events (event_id, model, alias, version, previous, changed_ms, reason) VALUES ($1, $2, $3, NULL, $4, $5, NULL)")
            .bind(ferry_core::RunId::generate().as_str().to_owned())
            .bind(name)
            .bind(alias)
            .bind(prev)
            .bind(ferry_core::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(query_error("record the alias deletion"))?;
        tx.commit().await.map_err(query_error(what))
    }
}
