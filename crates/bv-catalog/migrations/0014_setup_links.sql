-- One-time sign-in links that let the first administrator of a fresh
-- service set a password (issue 21): only the SHA-256 of a link's token is
-- kept; a link works once, within its lifetime.
CREATE TABLE setup_links (
    token_hash  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    used_ms     BIGINT
);
