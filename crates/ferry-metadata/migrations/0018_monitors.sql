-- ferry metadata, schema 18: the closed loop (issue 19).
--
-- What each monitor check of a served model found, one row per check and
-- time it ran: its status (ok, failing, insufficient, error), the figure
-- and the threshold it was held to, the rows it read, the window, a
-- sentence saying why, and its evidence (per-column scores) as JSON.
CREATE TABLE monitor_events (
    event_id   TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    version    BIGINT,
    check_name TEXT NOT NULL,
    status     TEXT NOT NULL,
    value      DOUBLE PRECISION,
    threshold  DOUBLE PRECISION,
    rows_read  BIGINT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    window_end_ms   BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    summary    TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX monitor_events_by_model ON monitor_events (model, at_ms);
CREATE INDEX monitor_events_by_time ON monitor_events (at_ms);
-- Whether each check of a model is failing, since when, and when it was
-- last told: what makes an alert sent once (however many agents see it),
-- again only after its cooldown, and a recovery told once. Decisions on
-- this table and on triggered_runs are serialised: SQLite's write lock
-- (`BEGIN IMMEDIATE`), a transaction advisory lock on PostgreSQL.
CREATE TABLE monitor_alerts (
    model      TEXT NOT NULL,
    check_name TEXT NOT NULL,
    failing    BIGINT NOT NULL,
    since_ms   BIGINT NOT NULL,
    sent_ms    BIGINT NOT NULL,
    PRIMARY KEY (model, check_name)
);
-- Runs a trigger asked for: queued until an agent claims one (state
-- running, with a lease it renews), then succeeded, failed or abandoned;
-- ignored when it fired within its pipeline's cooldown. `fire_key` is
-- what fired it (a schedule's minute, a monitor event, a data digest), so
-- the same cause never queues twice.
CREATE TABLE triggered_runs (
    trigger_id TEXT PRIMARY KEY,
    pipeline   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    fire_key   TEXT NOT NULL,
    evidence   TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    agent      TEXT,
    lease_ms   BIGINT NOT NULL,
    attempts   BIGINT NOT NULL,
    run_id     TEXT,
    note       TEXT,
    ended_ms   BIGINT
);
CREATE UNIQUE INDEX triggered_runs_by_key ON triggered_runs (pipeline, fire_key);
CREATE INDEX triggered_runs_by_state ON triggered_runs (state, created_ms);
CREATE INDEX triggered_runs_by_run ON triggered_runs (run_id);
