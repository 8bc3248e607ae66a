-- ferry metadata, schema 9: what the registry keeps for each version, fixed
-- when it is registered: where its files are (an `mlflow-artifacts:/` URI
-- under the artifact root) and the digest of those files, which every load
-- verifies. Versions registered before this schema have neither.
ALTER TABLE model_versions ADD COLUMN storage_location TEXT;
ALTER TABLE model_versions ADD COLUMN files_digest TEXT;
