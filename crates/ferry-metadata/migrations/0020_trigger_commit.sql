-- ferry metadata, schema 20: a triggered run may name the commit it runs
-- the pipeline at (a push or pull request a forge's webhook told
-- `ferry server` about): 40 hex digits, checked before it is stored;
-- NULL for the triggers that run the agent's work tree as it is.
ALTER TABLE triggered_runs ADD COLUMN git_commit TEXT
