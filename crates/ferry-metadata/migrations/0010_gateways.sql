-- ferry metadata, schema 10: the gateways (`ferry serve`) that are running,
-- each upserting its row every tick (what it serves, where, when it was last
-- seen), so `ferry deploy` can tell whether anything will carry out a
-- rollout; and when a gateway first picked a deployment up, so aborting one
-- that no gateway ever routed does not mark its candidate rejected.
CREATE TABLE gateways (
    gateway_id   TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    addr         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    models       TEXT NOT NULL,
    tick_ms      BIGINT NOT NULL,
    started_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
ALTER TABLE deployments ADD COLUMN picked_up_ms BIGINT;
