-- History reads take a metric's points in primary-key order (run, key, step,
-- ...) and sort them by time in Rust: cheaper than keeping a second index of
-- every point (one B-tree less per write) and, on SQLite, than looking each
-- row up again by its full primary key from that index.
DROP INDEX metric_points_by_time;
