-- Retention (issue 11): when each video will be deleted and why, and each
-- tenant's policy where it differs from the service's defaults.
ALTER TABLE videos ADD COLUMN delete_after_ms BIGINT;
ALTER TABLE videos ADD COLUMN retention TEXT;
CREATE INDEX videos_due ON videos (delete_after_ms);
ALTER TABLE tenants ADD COLUMN keep_originals BIGINT;
ALTER TABLE tenants ADD COLUMN output_retention_s BIGINT;
