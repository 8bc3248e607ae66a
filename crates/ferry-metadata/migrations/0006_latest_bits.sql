-- The exact bits of each latest value (see 0004), so run payloads can be
-- read as one JSON text per table without a float-to-text conversion.
-- NULL for values written before this column; those fall back to `value`.
ALTER TABLE latest_metrics ADD COLUMN bits BIGINT;
