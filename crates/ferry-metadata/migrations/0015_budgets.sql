-- ferry metadata, schema 15: budgets (issue 17).
--
-- Which workspace (team) and project each pipeline belongs to, as its
-- latest run said (`workspace:` in ferry.yaml; the project folder's name):
-- what `ferry cost --by team|project` and a workspace's budget sum over.
CREATE TABLE pipelines (
    pipeline  TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    project   TEXT NOT NULL
);
CREATE INDEX pipelines_by_workspace ON pipelines (workspace);
-- A monthly budget of a workspace or a pipeline (`scope`: `workspace:NAME`
-- or `pipeline:NAME`), the percentages it alerts at (a JSON array) and the
-- webhook alerts are posted to. `touched` is bumped by every reservation:
-- the write that makes two runs reserving against one budget wait for
-- each other.
CREATE TABLE budgets (
    scope       TEXT PRIMARY KEY,
    monthly_usd DOUBLE PRECISION NOT NULL,
    alerts      TEXT NOT NULL,
    webhook     TEXT,
    created_ms  BIGINT NOT NULL,
    touched     BIGINT NOT NULL
);
-- What a running run is expected to spend (its estimate), held against
-- the budgets over it until it ends: what stops two runs spending the last
-- of a budget at once (a run let over its budget by a maintainer is
-- audited).
CREATE TABLE budget_reservations (
    run_id      TEXT PRIMARY KEY,
    pipeline    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    estimate_usd DOUBLE PRECISION NOT NULL,
    created_ms  BIGINT NOT NULL
);
-- The alerts sent: one per budget, month and threshold.
CREATE TABLE budget_alerts (
    scope     TEXT NOT NULL,
    period    TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    spent_usd DOUBLE PRECISION NOT NULL,
    sent_ms   BIGINT NOT NULL,
    PRIMARY KEY (scope, period, threshold)
);
-- A budget's estimate reads a stage's recent costs.
CREATE INDEX stage_runs_by_stage ON stage_runs (stage, started_ms);
-- What gateways served: per UTC day and model version, the predictions
-- answered and the CPU seconds and GiB-seconds of memory spent on them,
-- with what those cost on the gateway's machine class.
CREATE TABLE serving_usage (
    day         BIGINT NOT NULL,
    model       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    predictions BIGINT NOT NULL,
    cpu_seconds DOUBLE PRECISION NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (day, model, version)
);
