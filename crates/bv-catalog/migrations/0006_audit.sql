-- The audit log: append-only. Each entry is sealed (HMAC-SHA256 under the
-- vault's `audit` service key, which the database never holds) over its own
-- fields and the previous entry's seal, so an edited, deleted, reordered or
-- inserted row breaks the chain at that position. No foreign key on tenant_id:
-- the record outlives what it records.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    tenant_id   TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    source      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    seal        TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);

-- Signed checkpoints: "the log reached entry `seq`, whose seal was `seal`".
-- A log cut back below a checkpoint is detected.
CREATE TABLE audit_checkpoints (
    seq         BIGINT PRIMARY KEY,
    seal        TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    key_version BIGINT NOT NULL,
    signature   TEXT NOT NULL
);
