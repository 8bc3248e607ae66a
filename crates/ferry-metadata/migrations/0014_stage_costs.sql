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
