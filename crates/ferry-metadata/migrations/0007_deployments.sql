-- ferry metadata, schema 7: deployments (canary and shadow rollouts of a
-- model version behind `ferry serve`) and every decision taken on them.
-- The gateway keeps no state of its own: it rebuilds its routes from here.
CREATE TABLE deployments (
    deployment_id   TEXT PRIMARY KEY,
    model           TEXT NOT NULL,
    candidate       BIGINT NOT NULL,
    stable          BIGINT,
    strategy        TEXT NOT NULL,
    spec            TEXT NOT NULL,
    phase           TEXT NOT NULL,
    active          INTEGER NOT NULL,
    step            BIGINT NOT NULL,
    weight          BIGINT NOT NULL,
    reason          TEXT,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    step_started_ms BIGINT NOT NULL,
    revision        BIGINT NOT NULL
);
CREATE INDEX deployments_by_model ON deployments (model, active, created_ms);

CREATE TABLE deployment_events (
    event_id      TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    at_ms         BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    phase         TEXT NOT NULL,
    step          BIGINT NOT NULL,
    weight        BIGINT NOT NULL,
    reason        TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, seq);
