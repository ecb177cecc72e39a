-- A tenant's webhook and the deliveries waiting or done. The signing secret
-- is not stored: it is derived from a vault key, the tenant and its version.
CREATE TABLE webhooks (
    tenant_id         TEXT PRIMARY KEY REFERENCES tenants (id),
    url               TEXT NOT NULL,
    secret_version    BIGINT NOT NULL,
    previous_until_ms BIGINT,
    created_ms        BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    event        TEXT NOT NULL,
    body         TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_ms      BIGINT NOT NULL,
    delivered_ms BIGINT,
    last_error   TEXT,
    created_ms   BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (delivered_ms, next_ms);
