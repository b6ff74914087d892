//! Object stores from configuration, and a metering wrapper that counts requests and bytes so
//! that readers can report (and tests can bound) what a query cost.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::metrics;
use crate::config::{Backend, TraceStorageConfig};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot create the local block folder {path}: {source}")]
    LocalFolder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot configure the {backend} backend: {source}")]
    Configure {
        backend: &'static str,
        #[source]
        source: object_store::Error,
    },
}

/// Removes what a process killed during an upload leaves in a `local` store: the local backend
/// writes `name#N` and renames it into place, so a file named that way is never an object.
/// Call it only where no other process writes the store (the server at start-up).
pub fn remove_partial_uploads(root: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut removed = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                folders.push(path);
                continue;
            }
            let partial = entry.file_name().to_str().is_some_and(|name| {
                name.rsplit_once('#')
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            });
            if partial {
                std::fs::remove_file(&path)?;
                removed.push(path);
            }
        }
    }
    Ok(removed)
}

/// Opens the configured block store, wrapped in a [`MeteredStore`].
pub fn open_store(config: &TraceStorageConfig) -> Result<Arc<MeteredStore>, BackendError> {
    let store: Arc<dyn ObjectStore> = match config.backend {
        Backend::Local => {
            let path = &config.local.path;
            std::fs::create_dir_all(path).map_err(|source| BackendError::LocalFolder {
                path: path.display().to_string(),
                source,
            })?;
            let store = LocalFileSystem::new_with_prefix(path)
                .map_err(|source| BackendError::Configure {
                    backend: "local",
                    source,
                })?
                .with_automatic_cleanup(true);
            Arc::new(store)
        }
        Backend::S3 => {
            let s3 = &config.s3;
            let scheme = if s3.insecure { "http" } else { "https" };
            let endpoint = if s3.endpoint.contains("://") {
                s3.endpoint.clone()
            } else {
                format!("{scheme}://{}", s3.endpoint)
            };
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&s3.bucket)
                .with_endpoint(endpoint)
                .with_allow_http(s3.insecure)
                .with_virtual_hosted_style_request(!s3.forcepathstyle)
                .with_region(if s3.region.is_empty() {
                    "us-east-1"
                } else {
                    &s3.region
                });
            if !s3.access_key.is_empty() {
                builder = builder
                    .with_access_key_id(&s3.access_key)
                    .with_secret_access_key(&s3.secret_key);
            }
            let store = builder.build().map_err(|source| BackendError::Configure {
                backend: "s3",
                source,
            })?;
            with_prefix(Arc::new(store), &s3.prefix)
        }
        Backend::Gcs => {
            let gcs = &config.gcs;
            let mut builder =
                GoogleCloudStorageBuilder::from_env().with_bucket_name(&gcs.bucket_name);
            if !gcs.endpoint.is_empty() {
                let scheme = if gcs.insecure { "http" } else { "https" };
                builder = builder.with_url(format!("{scheme}://{}", gcs.endpoint));
            }
            let store = builder.build().map_err(|source| BackendError::Configure {
                backend: "gcs",
                source,
            })?;
            with_prefix(Arc::new(store), &gcs.prefix)
        }
        Backend::Azure => {
            let azure = &config.azure;
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(&azure.container_name)
                .with_account(&azure.storage_account_name);
            if !azure.storage_account_key.is_empty() {
                builder = builder.with_access_key(&azure.storage_account_key);
            }
            if !azure.endpoint_suffix.is_empty() {
                builder = builder.with_endpoint(format!(
                    "https://{}.blob.{}",
                    azure.storage_account_name, azure.endpoint_suffix
                ));
            }
            let store = builder.build().map_err(|source| BackendError::Configure {
                backend: "azure",
                source,
            })?;
            with_prefix(Arc::new(store), &azure.prefix)
        }
    };
    Ok(Arc::new(MeteredStore::new(store)))
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

/// Requests and bytes through a store since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounters {
    pub get_requests: u64,
    pub get_bytes: u64,
    pub put_requests: u64,
    pub put_bytes: u64,
    pub list_requests: u64,
}

impl std::ops::Sub for StoreCounters {
    type Output = StoreCounters;
    fn sub(self, rhs: Self) -> Self {
        StoreCounters {
            get_requests: self.get_requests - rhs.get_requests,
            get_bytes: self.get_bytes - rhs.get_bytes,
            put_requests: self.put_requests - rhs.put_requests,
            put_bytes: self.put_bytes - rhs.put_bytes,
            list_requests: self.list_requests - rhs.list_requests,
        }
    }
}

#[derive(Default)]
struct Counters {
    get_requests: AtomicU64,
    get_bytes: AtomicU64,
    put_requests: AtomicU64,
    put_bytes: AtomicU64,
    list_requests: AtomicU64,
}

/// An [`ObjectStore`] that counts what passes through it. Ranged reads count the bytes of
/// the range, whole reads the size of the object; a vectored read counts as one request.
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    counters: Counters,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> StoreCounters {
        let c = &self.counters;
        StoreCounters {
            get_requests: c.get_requests.load(Ordering::Relaxed),
            get_bytes: c.get_bytes.load(Ordering::Relaxed),
            put_requests: c.put_requests.load(Ordering::Relaxed),
            put_bytes: c.put_bytes.load(Ordering::Relaxed),
            list_requests: c.list_requests.load(Ordering::Relaxed),
        }
    }

    fn count_get(&self, bytes: u64) {
        self.counters.get_requests.fetch_add(1, Ordering::Relaxed);
        self.counters.get_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

impl fmt::Debug for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.counters.put_requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .put_bytes
            .fetch_add(payload.content_length() as u64, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.inner.put_opts(location, payload, opts).await;
        metrics::observe("PUT", started, &result);
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.counters.put_requests.fetch_add(1, Ordering::Relaxed);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        let started = Instant::now();
        let result = self.inner.get_opts(location, options).await;
        metrics::observe("GET", started, &result);
        let result = result?;
        if head {
            self.count_get(0);
        } else {
            self.count_get(result.range.end - result.range.start);
        }
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // One vectored read: stores that coalesce ranges (S3, GCS, Azure) send few requests.
        self.count_get(ranges.iter().map(|r| r.end - r.start).sum());
        let started = Instant::now();
        let result = self.inner.get_ranges(location, ranges).await;
        metrics::observe("GET", started, &result);
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.counters.list_requests.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.counters.list_requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.inner.list_with_delimiter(prefix).await;
        metrics::observe("LIST", started, &result);
        result
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
