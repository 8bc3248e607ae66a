-- ferry metadata, schema 2: MLflow tracking. Pipeline runs and runs logged by
-- MLflow clients live in the same tables. Portable SQL, as in schema 1.
CREATE TABLE experiments (
    experiment_id     BIGINT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL
);
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
    VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 0, 0);

CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL,
    tkey          TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, tkey)
);

ALTER TABLE runs ADD COLUMN experiment_id BIGINT;
ALTER TABLE runs ADD COLUMN run_name TEXT;
ALTER TABLE runs ADD COLUMN user_id TEXT;
ALTER TABLE runs ADD COLUMN lifecycle_stage TEXT NOT NULL DEFAULT 'active';
ALTER TABLE runs ADD COLUMN artifact_uri TEXT;
CREATE INDEX runs_by_experiment ON runs (experiment_id, started_ms);

CREATE TABLE run_tags (
    run_id TEXT NOT NULL,
    tkey   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, tkey)
);

-- Metric history: identical points are kept once; differing values at the
-- same step and time are all kept, as MLflow does.
-- NaN and infinities are stored as value 0 with is_nan = 1 (NaN), 2 (+inf)
-- or 3 (-inf): SQLite has no NaN, and JSON carries neither.
CREATE TABLE metric_points (
    run_id TEXT NOT NULL,
    mkey   TEXT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL DEFAULT 0,
    stage  TEXT,
    step   BIGINT NOT NULL,
    ts_ms  BIGINT NOT NULL,
    PRIMARY KEY (run_id, mkey, step, ts_ms, value, is_nan)
);
-- History reads in (timestamp, step, value) order straight off this index.
CREATE INDEX metric_points_by_time ON metric_points (run_id, mkey, ts_ms, step, value);
INSERT INTO metric_points (run_id, mkey, value, stage, step, ts_ms)
    SELECT run_id, mkey, value, stage, step, ts_ms FROM run_metrics;
DROP TABLE run_metrics;

-- The value at the highest step (then the latest time) of each metric, for
-- run payloads and indexed search.
CREATE TABLE latest_metrics (
    run_id TEXT NOT NULL,
    mkey   TEXT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL DEFAULT 0,
    step   BIGINT NOT NULL,
    ts_ms  BIGINT NOT NULL,
    PRIMARY KEY (run_id, mkey)
);
INSERT INTO latest_metrics (run_id, mkey, value, step, ts_ms)
    SELECT m.run_id, m.mkey, MAX(m.value), m.step, m.ts_ms FROM metric_points m
    WHERE NOT EXISTS (SELECT 1 FROM metric_points o WHERE o.run_id = m.run_id AND o.mkey = m.mkey
                      AND (o.step > m.step OR (o.step = m.step AND o.ts_ms > m.ts_ms)))
    GROUP BY m.run_id, m.mkey, m.step, m.ts_ms;
CREATE INDEX latest_metrics_by_key ON latest_metrics (mkey, value);
CREATE INDEX run_params_by_key ON run_params (pkey, value);
CREATE INDEX run_tags_by_key ON run_tags (tkey, value);

CREATE TABLE datasets (
    dataset_id     TEXT PRIMARY KEY,
    experiment_id  BIGINT NOT NULL,
    name           TEXT NOT NULL,
    digest         TEXT NOT NULL,
    source_type    TEXT NOT NULL,
    source         TEXT NOT NULL,
    dataset_schema TEXT,
    profile        TEXT
);
CREATE UNIQUE INDEX datasets_by_identity ON datasets (experiment_id, name, digest);

CREATE TABLE run_inputs (
    run_id     TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    context    TEXT,
    tags       TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset_id)
);
