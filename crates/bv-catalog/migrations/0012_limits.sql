-- Quotas and rate limits (issue 11). Request rates are generic cell rate
-- buckets every server shares: one row per bucket holding its theoretical
-- arrival time; a row in the past is the same as no row (the sweeper drops
-- those). A tenant's own limits, where they differ from the service's
-- defaults, sit beside its storage quota.
CREATE TABLE rate_buckets (
    bucket TEXT PRIMARY KEY,
    tat_us BIGINT NOT NULL
);
CREATE INDEX rate_buckets_tat ON rate_buckets (tat_us);
ALTER TABLE tenants ADD COLUMN key_requests_per_minute BIGINT;
ALTER TABLE tenants ADD COLUMN tenant_requests_per_minute BIGINT;
ALTER TABLE tenants ADD COLUMN concurrent_uploads BIGINT;
ALTER TABLE tenants ADD COLUMN active_jobs BIGINT;
