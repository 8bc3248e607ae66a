-- ferry metadata, schema 3: MLflow 3 logged models and the MLflow view of the
-- model registry (tags, descriptions, sources, deleted versions).
CREATE TABLE logged_models (
    model_id          TEXT PRIMARY KEY,
    experiment_id     BIGINT NOT NULL,
    name              TEXT NOT NULL,
    artifact_location TEXT NOT NULL,
    creation_ms       BIGINT NOT NULL,
    last_updated_ms   BIGINT NOT NULL,
    status            TEXT NOT NULL,
    model_type        TEXT,
    source_run_id     TEXT,
    lifecycle_stage   TEXT NOT NULL
);
CREATE INDEX logged_models_by_run ON logged_models (source_run_id);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_ms);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL,
    tkey     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, tkey)
);

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL,
    pkey     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, pkey)
);

CREATE TABLE run_outputs (
    run_id   TEXT NOT NULL,
    model_id TEXT NOT NULL,
    step     BIGINT NOT NULL,
    PRIMARY KEY (run_id, model_id)
);

ALTER TABLE models ADD COLUMN last_updated_ms BIGINT;
ALTER TABLE models ADD COLUMN max_version BIGINT NOT NULL DEFAULT 0;
UPDATE models SET last_updated_ms = created_ms;
UPDATE models SET max_version = (SELECT COALESCE(MAX(v.version), 0) FROM model_versions v WHERE v.model = models.name);

CREATE TABLE model_tags (
    model TEXT NOT NULL,
    tkey  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model, tkey)
);

ALTER TABLE model_versions ADD COLUMN source TEXT;
ALTER TABLE model_versions ADD COLUMN description TEXT;
ALTER TABLE model_versions ADD COLUMN last_updated_ms BIGINT;
ALTER TABLE model_versions ADD COLUMN run_link TEXT;
UPDATE model_versions SET last_updated_ms = created_ms;

CREATE TABLE model_version_tags (
    model   TEXT NOT NULL,
    version BIGINT NOT NULL,
    tkey    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (model, version, tkey)
);
