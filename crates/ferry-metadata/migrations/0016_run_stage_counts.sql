-- ferry metadata, schema 16: each pipeline run's stages that ran (or
-- failed) and that were restored from the run cache, counted when the run
-- finishes (`finish_run`), so the dashboard's overview reads them with the
-- run instead of joining every stage of the last 30 days. Runs finished
-- before are counted here once.
ALTER TABLE runs ADD COLUMN stages_ran BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN stages_restored BIGINT NOT NULL DEFAULT 0;
UPDATE runs SET
    stages_ran = (SELECT COUNT(*) FROM stage_runs s WHERE s.run_id = runs.run_id AND s.status IN ('ran', 'failed')),
    stages_restored = (SELECT COUNT(*) FROM stage_runs s WHERE s.run_id = runs.run_id AND s.status = 'restored')
WHERE run_id IN (SELECT run_id FROM stage_runs);
