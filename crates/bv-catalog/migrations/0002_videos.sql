-- Videos, the sealed vault objects that hold their bytes, resumable uploads.

CREATE TABLE videos (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    state        TEXT NOT NULL CHECK (state IN ('uploading', 'uploaded', 'deleting')),
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL
);
CREATE INDEX videos_by_tenant ON videos (tenant_id, created_ms);

-- A video's plaintext is the concatenation of its pieces in order; each piece
-- is one sealed vault object (its own data key), so an upload can grow across
-- requests and restarts without ever re-sealing a segment under a used nonce.
CREATE TABLE video_pieces (
    video_id     TEXT NOT NULL REFERENCES videos (id),
    seq          BIGINT NOT NULL,
    object_id    TEXT NOT NULL UNIQUE,
    plain_offset BIGINT NOT NULL,
    plain_len    BIGINT NOT NULL,
    PRIMARY KEY (video_id, seq)
);

CREATE TABLE uploads (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    principal_id   TEXT NOT NULL REFERENCES principals (id),
    video_id       TEXT NOT NULL REFERENCES videos (id),
    length         BIGINT NOT NULL,
    received       BIGINT NOT NULL,
    metadata       TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    expires_ms     BIGINT NOT NULL,
    lock_owner     TEXT,
    lock_until_ms  BIGINT
);
CREATE INDEX uploads_by_expiry ON uploads (expires_ms);
