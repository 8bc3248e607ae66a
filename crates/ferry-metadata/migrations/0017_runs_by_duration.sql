-- ferry metadata, schema 17: what the dashboard's runs page walks besides
-- runs_by_start, so a page reads an index from its cursor on instead of
-- sorting or reading every run: runs by how long they took (slowest
-- first; runs still going sort as -1; the expression is the one
-- `overview.rs` orders by, word for word), and each author's runs by start.
CREATE INDEX runs_by_duration ON runs ((COALESCE(ended_ms - started_ms, -1)), run_id);
CREATE INDEX runs_by_user ON runs (user_id, started_ms);
