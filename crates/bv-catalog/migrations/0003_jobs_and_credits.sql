-- The credit ledger and the job queue.

-- Credits are integers (one credit = the smallest unit the price list uses).
-- Entries are only ever inserted; the balance is derived. At most one
-- reserve, one capture and one release per job (exactly-once settlement).
CREATE TABLE credit_entries (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    kind       TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'capture', 'release', 'refund')),
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    job_id     TEXT,
    note       TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX credit_entries_by_tenant ON credit_entries (tenant_id, created_ms);
CREATE UNIQUE INDEX credit_entries_once_per_job ON credit_entries (job_id, kind) WHERE job_id IS NOT NULL;

-- The queue. `payload_mac` authenticates (id, tenant, input, preset, price)
-- under a key the database never holds; a worker refuses a row it does not match.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    principal_id     TEXT NOT NULL REFERENCES principals (id),
    input_video_id   TEXT NOT NULL,
    preset           TEXT NOT NULL,
    price            BIGINT NOT NULL,
    payload_mac      TEXT NOT NULL,
    mac_key_version  BIGINT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    not_before_ms    BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until_ms   BIGINT,
    cancel_requested BIGINT NOT NULL,
    idempotency_key  TEXT,
    last_error       TEXT,
    output_video_id  TEXT,
    frames_done      BIGINT NOT NULL,
    frames_total     BIGINT,
    created_ms       BIGINT NOT NULL,
    started_ms       BIGINT,
    finished_ms      BIGINT,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX jobs_ready ON jobs (state, priority, created_ms);
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, created_ms);
