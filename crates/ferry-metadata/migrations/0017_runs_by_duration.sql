-- ferry metadata, schema 17: runs by how long they took (the dashboard's
-- runs page, slowest first: a page reads the index from its cursor on
-- instead of sorting every run). Runs still going sort as -1. The
-- expression is the one `overview.rs` orders by, word for word.
CREATE INDEX runs_by_duration ON runs ((COALESCE(ended_ms - started_ms, -1)), run_id);
