-- What the probe found in a video (in a sandbox, never in the API process),
-- or why it was rejected (its bytes are then shredded).
ALTER TABLE videos ADD COLUMN media TEXT;
ALTER TABLE videos ADD COLUMN frames BIGINT;
ALTER TABLE videos ADD COLUMN width BIGINT;
ALTER TABLE videos ADD COLUMN height BIGINT;
ALTER TABLE videos ADD COLUMN rejected TEXT;
