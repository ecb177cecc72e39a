//! Where sealed bytes are stored: a local directory or an S3-compatible service.
//!
//! Blobs are named `o/<first two hex digits>/<object id>`: random, so a path
//! reveals no tenant, file name or time. Uploads are multipart so memory stays
//! at one part whatever the size, and an object exists in the store only once
//! the upload completes. What a crash leaves behind (a local staging file, an
//! incomplete S3 upload) is invisible and is removed by [`Blobs::reclaim`].

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;

use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::config::VaultConfig;
use crate::error::{Result, VaultError};
use crate::ids::ObjectId;

/// A configured blob backend.
#[derive(Debug, Clone)]
pub enum Blobs {
    /// A local directory.
    Local {
        /// The store.
        store: Arc<LocalFileSystem>,
        /// Its root directory (to find staging files after a crash).
        root: PathBuf,
    },
    /// An S3-compatible service.
    S3 {
        /// The store.
        store: Arc<AmazonS3>,
    },
}

/// An upload in progress.
pub enum Upload {
    /// Local: object_store's staged file, renamed into place on finish.
    Local(WriteMultipart),
    /// S3: low-level multipart, so the upload id can be recorded and aborted later.
    S3 {
        /// The store.
        store: Arc<AmazonS3>,
        /// Object path.
        path: Path,
        /// Multipart upload id.
        id: String,
        /// Parts done.
        parts: Vec<PartId>,
        /// Bytes waiting for a full part.
        buf: Vec<u8>,
        /// Part size.
        part: usize,
    },
}

/// Read size when streaming a local blob.
const LOCAL_READ: usize = 1 << 20;

/// The store path of an object.
pub fn blob_path(o: &ObjectId) -> Path {
    let hex = o.to_string();
    Path::from(format!("o/{}/{hex}", &hex[..2]))
}

impl Blobs {
    /// Opens the backend named by `cfg`.
    pub fn open(cfg: &VaultConfig, data_dir: &FsPath) -> Result<Self> {
        match cfg.backend.as_str() {
            "local" => {
                let root = cfg
                    .local_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("blobs"));
                std::fs::create_dir_all(&root)?;
                let store = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
                Ok(Self::Local {
                    store: Arc::new(store),
                    root,
                })
            }
            "s3" => {
                if cfg.s3_bucket.is_empty() {
                    return Err(VaultError::Config(
                        "vault.s3_bucket is required for the s3 backend".into(),
                    ));
                }
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&cfg.s3_bucket)
                    .with_region(&cfg.s3_region)
                    .with_allow_http(cfg.s3_allow_http);
                if !cfg.s3_endpoint.is_empty() {
                    b = b.with_endpoint(&cfg.s3_endpoint);
                }
                if !cfg.s3_access_key_id.is_empty() {
                    b = b
                        .with_access_key_id(&cfg.s3_access_key_id)
                        .with_secret_access_key(&cfg.s3_secret_access_key);
                }
                Ok(Self::S3 {
                    store: Arc::new(b.build()?),
                })
            }
            other => Err(VaultError::Config(format!(
                "unknown vault.backend {other:?} (local or s3)"
            ))),
        }
    }

    fn store(&self) -> &dyn ObjectStore {
        match self {
            Self::Local { store, .. } => store.as_ref(),
            Self::S3 { store } => store.as_ref(),
        }
    }

    /// Starts an upload of `o`'s blob; `part` is the part size in bytes.
    pub async fn begin(&self, o: &ObjectId, part: usize) -> Result<Upload> {
        let path = blob_path(o);
        Ok(match self {
            Self::Local { store, .. } => Upload::Local(WriteMultipart::new_with_chunk_size(
                store.put_multipart(&path).await?,
                part,
            )),
            Self::S3 { store } => {
                let id = store.create_multipart(&path).await?;
                Upload::S3 {
                    store: store.clone(),
                    path,
                    id,
                    parts: Vec::new(),
                    buf: Vec::with_capacity(part),
                    part,
                }
            }
        })
    }

    /// The whole blob as a stream of chunks, and its size.
    pub async fn get(&self, o: &ObjectId) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        if let Self::Local { root, .. } = self {
            // object_store's local stream reads 8 KiB per blocking task, which
            // capped downloads near 200 MiB/s; 1 MiB reads run at disk speed.
            let path = root.join(blob_path(o).as_ref());
            let file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(VaultError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let size = file.metadata().await?.len();
            let chunks = futures::stream::unfold(Some(file), |f| async move {
                use tokio::io::AsyncReadExt;
                let mut f = f?;
                let mut buf = vec![0u8; LOCAL_READ];
                let mut n = 0;
                while n < buf.len() {
                    match f.read(&mut buf[n..]).await {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) => return Some((Err(VaultError::from(e)), None)),
                    }
                }
                if n == 0 {
                    return None;
                }
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(f)))
            });
            return Ok((size, chunks.boxed()));
        }
        let r = self.store().get(&blob_path(o)).await.map_err(not_found)?;
        let size = r.meta.size;
        Ok((
            size,
            r.into_stream().map(|c| c.map_err(VaultError::from)).boxed(),
        ))
    }

    /// Bytes `range` of the blob.
    pub async fn get_range(&self, o: &ObjectId, range: Range<u64>) -> Result<Bytes> {
        self.store()
            .get_range(&blob_path(o), range)
            .await
            .map_err(not_found)
    }

    /// Removes the blob (absent is fine).
    pub async fn delete(&self, o: &ObjectId) -> Result<()> {
        match self.store().delete(&blob_path(o)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a small named record under `n/<name>`, outside the sealed
    /// objects' namespace (so no sweep of orphan objects sees it): things the
    /// service keeps beside the catalog, such as audit anchors. Names are
    /// the caller's (`[a-z0-9/-]`); the content is not sealed.
    pub async fn put_named(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.store()
            .put(&named_path(name)?, PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// The named record, if it exists.
    pub async fn get_named(&self, name: &str) -> Result<Option<Bytes>> {
        match self.store().get(&named_path(name)?).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The names of the named records under `prefix`.
    pub async fn list_named(&self, prefix: &str) -> Result<Vec<String>> {
        let root = named_path(prefix)?;
        let mut out = Vec::new();
        let mut s = self.store().list(Some(&root));
        while let Some(m) = s.next().await {
            let path = m?.location;
            if let Some(name) = path.as_ref().strip_prefix("n/") {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every stored blob with its age in seconds.
    pub async fn list(&self) -> Result<Vec<(ObjectId, u64)>> {
        let now = chrono_now();
        let mut out = Vec::new();
        let mut s = self.store().list(Some(&Path::from("o")));
        while let Some(m) = s.next().await {
            let m = m?;
            if let Some(id) = m
                .location
                .filename()
                .and_then(|n| n.parse::<ObjectId>().ok())
            {
                out.push((
                    id,
                    now.saturating_sub(m.last_modified.timestamp().max(0) as u64),
                ));
            }
        }
        Ok(out)
    }

    /// Removes everything an interrupted upload of `o` may have left: local
    /// staging files, an incomplete S3 upload, and the blob itself. Returns
    /// how many pieces were removed.
    pub async fn reclaim(&self, o: &ObjectId, upload: Option<&str>) -> Result<usize> {
        let mut n = 0;
        match self {
            Self::Local { root, .. } => {
                let hex = o.to_string();
                let dir = root.join("o").join(&hex[..2]);
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    for e in entries {
                        let e = e?;
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        if let Some(suffix) = name.strip_prefix(&format!("{hex}#"))
                            && suffix.bytes().all(|b| b.is_ascii_digit())
                        {
                            std::fs::remove_file(e.path())?;
                            n += 1;
                        }
                    }
                }
            }
            Self::S3 { store } => {
                if let Some(id) = upload {
                    match store.abort_multipart(&blob_path(o), &id.to_string()).await {
                        Ok(()) => n += 1,
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        if self.store().head(&blob_path(o)).await.is_ok() {
            self.delete(o).await?;
            n += 1;
        }
        Ok(n)
    }
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The store path of a named record.
fn named_path(name: &str) -> Result<Path> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/')
        && !name.split('/').any(str::is_empty);
    if !ok {
        return Err(VaultError::Config(format!("bad record name {name:?}")));
    }
    Ok(Path::from(format!("n/{name}")))
}

fn not_found(e: object_store::Error) -> VaultError {
    match e {
        object_store::Error::NotFound { .. } => VaultError::NotFound,
        e => e.into(),
    }
}

impl Upload {
    /// The multipart upload id, when the backend has one worth recording.
    pub fn id(&self) -> Option<String> {
        match self {
            Self::Local(_) => None,
            Self::S3 { id, .. } => Some(id.clone()),
        }
    }

    /// Appends bytes; uploads a part whenever one is full.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Self::Local(w) => {
                w.wait_for_capacity(2).await?;
                w.write(data);
            }
            Self::S3 {
                store,
                path,
                id,
                parts,
                buf,
                part,
            } => {
                let mut data = data;
                while !data.is_empty() {
                    let take = (*part - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if buf.len() == *part {
                        let chunk = std::mem::replace(buf, Vec::with_capacity(*part));
                        let p = store
                            .put_part(path, id, parts.len(), PutPayload::from(chunk))
                            .await?;
                        parts.push(p);
                    }
                }
            }
        }
        Ok(())
    }

    /// Completes the upload: only now does the blob exist in the store.
    pub async fn finish(self) -> Result<()> {
        match self {
            Self::Local(w) => {
                w.finish().await?;
            }
            Self::S3 {
                store,
                path,
                id,
                mut parts,
                buf,
                ..
            } => {
                if !buf.is_empty() || parts.is_empty() {
                    parts.push(
                        store
                            .put_part(&path, &id, parts.len(), PutPayload::from(buf))
                            .await?,
                    );
                }
                store.complete_multipart(&path, &id, parts).await?;
            }
        }
        Ok(())
    }

    /// Abandons the upload.
    pub async fn abort(self) -> Result<()> {
        match self {
            Self::Local(w) => w.abort().await?,
            Self::S3 {
                store, path, id, ..
            } => store.abort_multipart(&path, &id).await?,
        }
        Ok(())
    }
}
