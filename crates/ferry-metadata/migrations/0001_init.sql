-- ferry metadata, schema 1. Portable SQL: runs unchanged on SQLite and PostgreSQL
-- (TEXT, BIGINT and DOUBLE PRECISION only; ids made in Rust; no AUTOINCREMENT or SERIAL).
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    pipeline    TEXT NOT NULL,
    status      TEXT NOT NULL,
    run_trigger TEXT NOT NULL,
    started_ms  BIGINT NOT NULL,
    ended_ms    BIGINT,
    git_commit  TEXT,
    git_dirty   BIGINT,
    env_fingerprint TEXT,
    pid         BIGINT,
    host        TEXT,
    message     TEXT
);
CREATE INDEX runs_by_pipeline ON runs (pipeline, started_ms);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE stage_runs (
    run_id        TEXT NOT NULL,
    stage         TEXT NOT NULL,
    position      BIGINT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT,
    fingerprint   TEXT,
    started_ms    BIGINT,
    ended_ms      BIGINT,
    wall_ms       BIGINT,
    user_cpu_ms   BIGINT,
    sys_cpu_ms    BIGINT,
    max_rss_bytes BIGINT,
    exit_code     BIGINT,
    attempts      BIGINT,
    PRIMARY KEY (run_id, stage)
);

CREATE TABLE run_params (
    run_id TEXT NOT NULL,
    pkey   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, pkey)
);

CREATE TABLE run_metrics (
    run_id TEXT NOT NULL,
    mkey   TEXT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    stage  TEXT,
    step   BIGINT NOT NULL,
    ts_ms  BIGINT NOT NULL,
    PRIMARY KEY (run_id, mkey, step, ts_ms)
);

CREATE TABLE gate_results (
    run_id  TEXT NOT NULL,
    idx     BIGINT NOT NULL,
    name    TEXT NOT NULL,
    expr    TEXT NOT NULL,
    passed  BIGINT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE models (
    name        TEXT PRIMARY KEY,
    created_ms  BIGINT NOT NULL,
    description TEXT
);

CREATE TABLE model_versions (
    model           TEXT NOT NULL,
    version         BIGINT NOT NULL,
    run_id          TEXT,
    artifact_path   TEXT NOT NULL,
    artifact_digest TEXT NOT NULL,
    artifact_size   BIGINT NOT NULL,
    git_commit      TEXT,
    git_dirty       BIGINT,
    env_fingerprint TEXT,
    lineage         TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    status          TEXT NOT NULL,
    PRIMARY KEY (model, version)
);

CREATE TABLE model_aliases (
    model      TEXT NOT NULL,
    alias      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (model, alias)
);

CREATE TABLE alias_events (
    event_id    TEXT PRIMARY KEY,
    model       TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     BIGINT,
    previous    BIGINT,
    changed_ms  BIGINT NOT NULL,
    reason      TEXT
);
CREATE INDEX alias_events_by_model ON alias_events (model, changed_ms);
