-- The vault's key store moves into the catalog, so every server and worker of
-- a cluster sees the same keys (decision 0021). Wrapped keys only: tenant and
-- service keys wrapped by a root key (which never reaches the database), and
-- each object's data key wrapped by its tenant key. Deleting an object's row
-- is its crypto-shred.

CREATE TABLE vault_keys (
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    version BIGINT NOT NULL,
    root_version BIGINT NOT NULL,
    wrapped TEXT NOT NULL,
    PRIMARY KEY (kind, owner, version)
);

CREATE TABLE vault_objects (
    object TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    record TEXT NOT NULL
);

CREATE INDEX vault_objects_tenant ON vault_objects (tenant);
