//! The vault's key store in the catalog: wrapped tenant and service keys
//! (`vault_keys`) and one record per object (`vault_objects`), so every
//! server and worker sharing a catalog shares the keys (decision 0021).
//!
//! Only wrapped keys are stored: tenant and service keys wrapped by a root
//! key the database never sees, data keys wrapped by a tenant key. The object
//! record is the vault's own JSON (its state, lengths, wrapped key and, for a
//! tenant holding its own key, the customer's share); the tenant is a column
//! as well so a tenant's objects are one indexed query.

use bv_vault::keystore::{KeyStore, ObjectRecord, TenantKeyRecord};
use bv_vault::{ObjectId, TenantId, VaultError};
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::Row;

use crate::db::Catalog;

const TENANT: &str = "tenant";
const SERVICE: &str = "service";

fn store_err(e: impl std::fmt::Display) -> VaultError {
    VaultError::KeyStore(e.to_string())
}

type R<T> = Result<T, VaultError>;

impl Catalog {
    async fn key_versions(&self, kind: &str, owner: &str) -> R<Vec<TenantKeyRecord>> {
        sqlx::query(
            "SELECT version, root_version, wrapped FROM vault_keys \
             WHERE kind = $1 AND owner = $2 ORDER BY version",
        )
        .bind(kind)
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(store_err)?
        .iter()
        .map(|r| {
            Ok(TenantKeyRecord {
                version: u32::try_from(r.try_get::<i64, _>(0).map_err(store_err)?)
                    .map_err(store_err)?,
                root_version: u32::try_from(r.try_get::<i64, _>(1).map_err(store_err)?)
                    .map_err(store_err)?,
                wrapped: r.try_get(2).map_err(store_err)?,
            })
        })
        .collect()
    }

    async fn put_key(
        &self,
        kind: &str,
        owner: &str,
        r: &TenantKeyRecord,
        create_only: bool,
    ) -> R<bool> {
        // First writer wins for a new version (two servers creating a
        // tenant's first key at once agree on one); re-wrapping replaces.
        let sql = if create_only {
            "INSERT INTO vault_keys (kind, owner, version, root_version, wrapped) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, owner, version) DO NOTHING"
        } else {
            "INSERT INTO vault_keys (kind, owner, version, root_version, wrapped) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, owner, version) \
             DO UPDATE SET root_version = excluded.root_version, wrapped = excluded.wrapped"
        };
        let done = sqlx::query(sql)
            .bind(kind)
            .bind(owner)
            .bind(i64::from(r.version))
            .bind(i64::from(r.root_version))
            .bind(&r.wrapped)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_key(&self, kind: &str, owner: &str, version: u32) -> R<()> {
        sqlx::query("DELETE FROM vault_keys WHERE kind = $1 AND owner = $2 AND version = $3")
            .bind(kind)
            .bind(owner)
            .bind(i64::from(version))
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        self.scrub().await.map_err(store_err)?;
        Ok(())
    }

    async fn key_owners(&self, kind: &str) -> R<Vec<String>> {
        sqlx::query("SELECT DISTINCT owner FROM vault_keys WHERE kind = $1 ORDER BY owner")
            .bind(kind)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?
            .iter()
            .map(|r| r.try_get::<String, _>(0).map_err(store_err))
            .collect()
    }

    async fn object_record(&self, o: &ObjectId) -> R<Option<ObjectRecord>> {
        let row = sqlx::query("SELECT record FROM vault_objects WHERE object = $1")
            .bind(o.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.map(|r| parse_record(&r)).transpose()
    }

    async fn put_object_record(&self, o: &ObjectId, r: &ObjectRecord) -> R<()> {
        let json = serde_json::to_string(r).map_err(store_err)?;
        sqlx::query(
            "INSERT INTO vault_objects (object, tenant, record) VALUES ($1, $2, $3) \
             ON CONFLICT (object) DO UPDATE SET tenant = excluded.tenant, record = excluded.record",
        )
        .bind(o.to_string())
        .bind(&r.tenant)
        .bind(json)
        .execute(&self.pool)
        .await
        .map_err(store_err)?;
        Ok(())
    }

    async fn put_new_object_record(&self, o: &ObjectId, r: &ObjectRecord) -> R<bool> {
        let json = serde_json::to_string(r).map_err(store_err)?;
        let n = sqlx::query(
            "INSERT INTO vault_objects (object, tenant, record) VALUES ($1, $2, $3) \
             ON CONFLICT (object) DO NOTHING",
        )
        .bind(o.to_string())
        .bind(&r.tenant)
        .bind(json)
        .execute(&self.pool)
        .await
        .map_err(store_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn delete_object_record(&self, o: &ObjectId) -> R<()> {
        sqlx::query("DELETE FROM vault_objects WHERE object = $1")
            .bind(o.to_string())
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        // Every path that destroys a wrapped key (a video's shred, a piece
        // dropped after a failed upload, a rejected probe, a sweep, a key
        // retired) leaves no copy of it in the catalog's files, not only
        // the paths that remember to ask (the second review's point).
        self.scrub().await.map_err(store_err)?;
        Ok(())
    }

    async fn object_ids(&self) -> R<Vec<ObjectId>> {
        sqlx::query("SELECT object FROM vault_objects ORDER BY object")
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?
            .iter()
            .map(|r| {
                r.try_get::<String, _>(0)
                    .map_err(store_err)?
                    .parse()
                    .map_err(store_err)
            })
            .collect()
    }

    /// Sealed objects no video piece refers to, as (object, tenant): the
    /// first `limit` after `after`, in object order. Besides puts still in
    /// flight (sealed, not yet recorded), these are what a crash, or a delete
    /// racing an upload's last piece, left behind; the retention sweeper
    /// shreds those past a grace period.
    pub async fn unreferenced_objects(
        &self,
        after: &str,
        limit: i64,
    ) -> crate::error::Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT o.object, o.tenant FROM vault_objects o
             WHERE o.object > $1
               AND NOT EXISTS (SELECT 1 FROM video_pieces p WHERE p.object_id = o.object)
             ORDER BY o.object LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn tenant_object_records(&self, t: &TenantId) -> R<Vec<ObjectRecord>> {
        sqlx::query("SELECT record FROM vault_objects WHERE tenant = $1 ORDER BY object")
            .bind(t.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?
            .iter()
            .map(parse_record)
            .collect()
    }
}

fn parse_record(r: &sqlx::any::AnyRow) -> R<ObjectRecord> {
    let json: String = r.try_get(0).map_err(store_err)?;
    serde_json::from_str(&json).map_err(|e| store_err(format!("corrupt object record: {e}")))
}

impl KeyStore for Catalog {
    fn tenant_keys<'a>(&'a self, t: &'a TenantId) -> BoxFuture<'a, R<Vec<TenantKeyRecord>>> {
        async move { self.key_versions(TENANT, &t.to_string()).await }.boxed()
    }
    fn put_tenant_key<'a>(
        &'a self,
        t: &'a TenantId,
        r: &'a TenantKeyRecord,
        create_only: bool,
    ) -> BoxFuture<'a, R<bool>> {
        async move { self.put_key(TENANT, &t.to_string(), r, create_only).await }.boxed()
    }
    fn delete_tenant_key<'a>(&'a self, t: &'a TenantId, version: u32) -> BoxFuture<'a, R<()>> {
        async move { self.delete_key(TENANT, &t.to_string(), version).await }.boxed()
    }
    fn tenants(&self) -> BoxFuture<'_, R<Vec<TenantId>>> {
        async move {
            self.key_owners(TENANT)
                .await?
                .iter()
                .map(|t| t.parse().map_err(store_err))
                .collect()
        }
        .boxed()
    }
    fn service_keys<'a>(&'a self, purpose: &'a str) -> BoxFuture<'a, R<Vec<TenantKeyRecord>>> {
        async move { self.key_versions(SERVICE, purpose).await }.boxed()
    }
    fn put_service_key<'a>(
        &'a self,
        purpose: &'a str,
        r: &'a TenantKeyRecord,
        create_only: bool,
    ) -> BoxFuture<'a, R<bool>> {
        async move { self.put_key(SERVICE, purpose, r, create_only).await }.boxed()
    }
    fn delete_service_key<'a>(&'a self, purpose: &'a str, version: u32) -> BoxFuture<'a, R<()>> {
        async move { self.delete_key(SERVICE, purpose, version).await }.boxed()
    }
    fn service_purposes(&self) -> BoxFuture<'_, R<Vec<String>>> {
        async move { self.key_owners(SERVICE).await }.boxed()
    }
    fn object<'a>(&'a self, o: &'a ObjectId) -> BoxFuture<'a, R<Option<ObjectRecord>>> {
        self.object_record(o).boxed()
    }
    fn put_object<'a>(&'a self, o: &'a ObjectId, r: &'a ObjectRecord) -> BoxFuture<'a, R<()>> {
        self.put_object_record(o, r).boxed()
    }
    fn put_object_new<'a>(
        &'a self,
        o: &'a ObjectId,
        r: &'a ObjectRecord,
    ) -> BoxFuture<'a, R<bool>> {
        self.put_new_object_record(o, r).boxed()
    }
    fn delete_object<'a>(&'a self, o: &'a ObjectId) -> BoxFuture<'a, R<()>> {
        self.delete_object_record(o).boxed()
    }
    fn objects(&self) -> BoxFuture<'_, R<Vec<ObjectId>>> {
        self.object_ids().boxed()
    }
    fn tenant_objects<'a>(&'a self, t: &'a TenantId) -> BoxFuture<'a, R<Vec<ObjectRecord>>> {
        self.tenant_object_records(t).boxed()
    }
}

/// Copies every record of another key store (a file key store from before
/// keys moved into the catalog) into this one, leaving records already here
/// alone. Returns how many records were copied.
pub async fn import(from: &dyn KeyStore, into: &Catalog) -> R<usize> {
    let mut n = 0;
    for t in from.tenants().await? {
        for r in from.tenant_keys(&t).await? {
            n += usize::from(into.put_key(TENANT, &t.to_string(), &r, true).await?);
        }
    }
    for p in from.service_purposes().await? {
        for r in from.service_keys(&p).await? {
            n += usize::from(into.put_key(SERVICE, &p, &r, true).await?);
        }
    }
    for o in from.objects().await? {
        if into.object_record(&o).await?.is_none()
            && let Some(r) = from.object(&o).await?
        {
            into.put_object_record(&o, &r).await?;
            n += 1;
        }
    }
    Ok(n)
}
