-- Operator (staff) access to tenant content: who the operators are, the
-- time-limited grants that let one of them open one video, and each tenant's
-- choice to approve every grant first. What operators did is in the audit log.

CREATE TABLE operators (
    name        TEXT PRIMARY KEY,
    employer    TEXT NOT NULL,
    location    TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    disabled_ms BIGINT
);

-- A grant covers exactly one video. `expires_ms` is set when the grant takes
-- effect (at once, or when the tenant approves), `ttl_ms` after that.
CREATE TABLE access_grants (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    video_id     TEXT NOT NULL,
    operator     TEXT NOT NULL REFERENCES operators (name),
    reason_code  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    ticket       TEXT NOT NULL,
    ttl_ms       BIGINT NOT NULL,
    requested_ms BIGINT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'revoked')),
    decided_by   TEXT,
    decided_ms   BIGINT,
    expires_ms   BIGINT
);
CREATE INDEX access_grants_by_tenant ON access_grants (tenant_id, requested_ms);

ALTER TABLE tenants ADD COLUMN access_approval BIGINT NOT NULL DEFAULT 0;
