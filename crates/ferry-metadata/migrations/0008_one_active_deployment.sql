-- ferry metadata, schema 8: at most one active deployment per model, kept
-- by the database itself (two concurrent `ferry deploy` runs cannot both
-- start one; the loser gets AlreadyExists).
CREATE UNIQUE INDEX deployments_one_active ON deployments (model) WHERE active = 1;
