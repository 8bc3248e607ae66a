-- ferry metadata, schema 14: what each stage cost (issue 17). The charged
-- figure in US dollars, on what it requested (`resources:`) or used, both
-- figures when there are both, and the machine class whose prices applied.
-- NULL for stages recorded before: they were never priced.
ALTER TABLE stage_runs ADD COLUMN cost_usd DOUBLE PRECISION;
ALTER TABLE stage_runs ADD COLUMN cost_basis TEXT;
ALTER TABLE stage_runs ADD COLUMN cost_requested_usd DOUBLE PRECISION;
ALTER TABLE stage_runs ADD COLUMN cost_used_usd DOUBLE PRECISION;
ALTER TABLE stage_runs ADD COLUMN cost_machine TEXT;
-- `ferry cost --since`: runs by when they started.
CREATE INDEX runs_by_start ON runs (started_ms);
-- The cost ledger `ferry cost` and budgets read: per UTC day, pipeline and
-- stage, the day's 24 hours of charged, requested and used dollars and
-- stage runs (JSON, `ferry_cost::ledger::DayRow`), kept in the same
-- transaction as the stage's row; a stage's cost is spread over the hours
-- it ran. A report reads a row per day and pair instead of every stage run.
CREATE TABLE cost_ledger (
    day      BIGINT NOT NULL,
    pipeline TEXT NOT NULL,
    stage    TEXT NOT NULL,
    hours    TEXT NOT NULL,
    PRIMARY KEY (day, pipeline, stage)
);
