-- Tenants, principals, API keys, web sessions, login throttling.
-- One dialect for SQLite and PostgreSQL: TEXT ids (32 hex digits), BIGINT
-- times in milliseconds since the Unix epoch, BIGINT 0/1 for flags.

CREATE TABLE tenants (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    max_upload_bytes BIGINT NOT NULL,
    quota_bytes      BIGINT NOT NULL,
    created_ms       BIGINT NOT NULL
);

CREATE TABLE principals (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'service')),
    name          TEXT NOT NULL,
    login         TEXT UNIQUE,
    password_hash TEXT,
    created_ms    BIGINT NOT NULL,
    disabled_ms   BIGINT,
    UNIQUE (tenant_id, name)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    principal_id TEXT NOT NULL REFERENCES principals (id),
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT,
    last_used_ms BIGINT,
    revoked_ms   BIGINT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    principal_id TEXT NOT NULL REFERENCES principals (id),
    csrf_hash    TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL
);

CREATE TABLE login_failures (
    subject TEXT NOT NULL,
    at_ms   BIGINT NOT NULL
);
CREATE INDEX login_failures_by_subject ON login_failures (subject, at_ms);
