-- The exact bits of each point's value (f64 bits as a signed 64-bit integer),
-- which history reads return: SQLite's double-to-text conversion, used when
-- a history is aggregated into one JSON text, is not exact for every value.
-- NULL for points written before this column; those fall back to `value`.
--
-- On SQLite the table is also rebuilt WITHOUT ROWID, clustered on its
-- primary key: one B-tree less to write per point.
-- @postgres
ALTER TABLE metric_points ADD COLUMN bits BIGINT;
-- @sqlite
CREATE TABLE metric_points_v4 (
    run_id TEXT NOT NULL,
    mkey   TEXT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL DEFAULT 0,
    stage  TEXT,
    step   BIGINT NOT NULL,
    ts_ms  BIGINT NOT NULL,
    bits   BIGINT,
    PRIMARY KEY (run_id, mkey, step, ts_ms, value, is_nan)
) WITHOUT ROWID;
INSERT INTO metric_points_v4 (run_id, mkey, value, is_nan, stage, step, ts_ms)
    SELECT run_id, mkey, value, is_nan, stage, step, ts_ms FROM metric_points;
DROP TABLE metric_points;
ALTER TABLE metric_points_v4 RENAME TO metric_points;
CREATE INDEX metric_points_by_time ON metric_points (run_id, mkey, ts_ms, step, value);
