-- ferry metadata, schema 21: webhooks out. The registry's and rollouts'
-- changes (new registered models and versions, alias events, deployment
-- events) are delivered to the endpoints an operator configured
-- (`ferry server --hooks FILE`, `deliver:`).
--
-- Each endpoint's start (no event before it is delivered to it) and how
-- far its events were read into deliveries.
CREATE TABLE webhook_endpoints (
    endpoint   TEXT PRIMARY KEY,
    started_ms BIGINT NOT NULL,
    scanned_ms BIGINT NOT NULL
);
-- One event to one endpoint: inserted once however many servers read the
-- event (the primary key), posted only by the server holding its lease.
-- `body` is the exact JSON every attempt posts; `delivery_id` the id a
-- receiver tells a retry by.
CREATE TABLE webhook_deliveries (
    endpoint        TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    delivery_id     TEXT NOT NULL,
    event           TEXT NOT NULL,
    event_ms        BIGINT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    lease_holder    TEXT,
    lease_until_ms  BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_ms      BIGINT NOT NULL,
    delivered_ms    BIGINT,
    PRIMARY KEY (endpoint, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_ms);
-- Every attempt: when, how long, the status or the error, by which server.
CREATE TABLE webhook_attempts (
    endpoint    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status      BIGINT,
    error       TEXT,
    holder      TEXT NOT NULL,
    PRIMARY KEY (endpoint, event_id, attempt)
);
-- The histories are read by time, every second.
CREATE INDEX models_by_created ON models (created_ms);
CREATE INDEX model_versions_by_created ON model_versions (created_ms);
CREATE INDEX alias_events_by_time ON alias_events (changed_ms);
CREATE INDEX deployment_events_by_time ON deployment_events (at_ms);
