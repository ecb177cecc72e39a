-- A long job cut into segments at keyframes (decision 0023). Each segment is
-- a unit of work any worker may lease while its job runs; its own lease,
-- attempts and output (a hidden, never-listed video of sealed pieces) let a
-- job resume after a crash with only the unfinished segments left to do.
-- `payload_mac` authenticates (job, tenant, index, cut points) under the
-- queue key, which the database never holds.
CREATE TABLE job_segments (
    job_id          TEXT NOT NULL,
    idx             BIGINT NOT NULL,
    tenant_id       TEXT NOT NULL,
    start_us        BIGINT,
    end_us          BIGINT,
    payload_mac     TEXT NOT NULL,
    mac_key_version BIGINT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts        BIGINT NOT NULL,
    not_before_ms   BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    output_video_id TEXT,
    frames_done     BIGINT NOT NULL,
    last_error      TEXT,
    finished_ms     BIGINT,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX job_segments_ready ON job_segments (state, lease_until_ms);
