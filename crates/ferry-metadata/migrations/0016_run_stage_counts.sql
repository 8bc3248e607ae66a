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
-- Each pipeline's finished runs per UTC day they started and outcome, with
-- their stages run and restored: the overview's counts over 7 and 30 days
-- read a row a day instead of every run (`finish_run` keeps it, taking out
-- what a run counted before when it is finished again).
CREATE TABLE pipeline_days (
    day             BIGINT NOT NULL,
    pipeline        TEXT NOT NULL,
    status          TEXT NOT NULL,
    runs            BIGINT NOT NULL,
    stages_ran      BIGINT NOT NULL,
    stages_restored BIGINT NOT NULL,
    PRIMARY KEY (day, pipeline, status)
);
INSERT INTO pipeline_days (day, pipeline, status, runs, stages_ran, stages_restored)
SELECT started_ms / 86400000, pipeline, status, COUNT(*), SUM(stages_ran), SUM(stages_restored)
FROM runs
WHERE ended_ms IS NOT NULL AND pipeline IS NOT NULL AND pipeline <> ''
  AND lifecycle_stage = 'active'
  AND run_id NOT IN (SELECT run_id FROM run_tags WHERE tkey = 'mlflow.parentRunId')
GROUP BY started_ms / 86400000, pipeline, status;
