-- ferry metadata, schema 19: replicated gateways that share one rollout.
-- Each gateway writes what it measured of a rollout's current step (its
-- row replaced every tick; the figures are the gateway's JSON), so the one
-- that decides judges the sum over every replica's traffic; and a lease per
-- deployment names the one gateway that decides, until it stops renewing it.
CREATE TABLE rollout_windows (
    deployment_id   TEXT NOT NULL,
    gateway_id      TEXT NOT NULL,
    step_started_ms BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    figures         TEXT NOT NULL,
    PRIMARY KEY (deployment_id, gateway_id)
);
CREATE TABLE rollout_leases (
    deployment_id TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    expires_ms    BIGINT NOT NULL
);
