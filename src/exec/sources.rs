//! What a query reads: a tenant's blocks and (in a process that ingests) what the ingester
//! holds, as DataFusion sessions for search and as merged tag catalogs for tag discovery.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use uuid::Uuid;

use super::session::{MemoryLimits, QueryRuntime};
use super::table::{BlocksTable, LiveTable, SpansTable};
use crate::config::DedicatedColumn;
use crate::ingest::ingester::Ingester;
use crate::storage::block::read_catalog;
use crate::storage::{TagCatalog, TraceReader};

/// Block catalogs kept in memory: they are small and never change once written.
const CATALOG_CACHE_ENTRIES: u64 = 10_000;
/// Merged catalogs of block sets kept in memory: tag requests repeat over the same blocks,
/// and merging a hundred catalogs costs more than the request otherwise does.
const MERGED_CACHE_ENTRIES: u64 = 64;

#[derive(Clone)]
pub struct QuerySources {
    pub store: Arc<dyn ObjectStore>,
    pub reader: Arc<TraceReader>,
    pub ingester: Option<Arc<Ingester>>,
    /// The dedicated columns of the span table (the current block configuration).
    pub dedicated: Vec<DedicatedColumn>,
    runtime: QueryRuntime,
    catalogs: moka::sync::Cache<Uuid, Arc<TagCatalog>>,
    merged: moka::sync::Cache<(String, Vec<Uuid>), Arc<TagCatalog>>,
}

/// A tag catalog with what it took to build it.
pub struct MergedCatalog {
    pub catalog: TagCatalog,
    pub blocks: usize,
    pub block_bytes: u64,
}

impl QuerySources {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        reader: Arc<TraceReader>,
        ingester: Option<Arc<Ingester>>,
        dedicated: Vec<DedicatedColumn>,
        memory: MemoryLimits,
    ) -> Result<Self> {
        Ok(Self {
            runtime: QueryRuntime::new(store.clone(), memory)?,
            store,
            reader,
            ingester,
            dedicated,
            catalogs: moka::sync::Cache::new(CATALOG_CACHE_ENTRIES),
            merged: moka::sync::Cache::new(MERGED_CACHE_ENTRIES),
        })
    }

    /// A session whose `spans` table is everything `tenant` has. Sessions share one runtime,
    /// so Parquet metadata read by one query is cached for the next.
    pub fn session(&self, tenant: &str) -> Result<SessionContext> {
        let blocks = BlocksTable::new(self.reader.clone(), tenant, &self.dedicated);
        let spans: Arc<dyn TableProvider> = match &self.ingester {
            Some(ingester) => Arc::new(SpansTable::new(
                blocks,
                LiveTable::new(ingester.clone(), tenant, &self.dedicated),
            )),
            None => Arc::new(blocks),
        };
        self.runtime.session(spans)
    }

    /// The tags of `tenant`'s data: the catalogs of the blocks whose spans start in `range`
    /// (Unix nanoseconds, inclusive; all blocks without one) and of live data.
    pub async fn tag_catalog(
        &self,
        tenant: &str,
        range: Option<(i64, i64)>,
    ) -> Result<MergedCatalog> {
        let blocks: Vec<_> = self
            .reader
            .blocklist()
            .blocks(tenant)
            .iter()
            .filter(|meta| {
                range.is_none_or(|(from, to)| {
                    let at = chrono::DateTime::from_timestamp_nanos;
                    meta.overlaps(at(from), at(to))
                })
            })
            .cloned()
            .collect();
        let key = (
            tenant.to_string(),
            blocks.iter().map(|meta| meta.block_id).collect::<Vec<_>>(),
        );
        let of_blocks = match self.merged.get(&key) {
            Some(catalog) => catalog,
            None => {
                let mut catalog = TagCatalog::default();
                let mut complete = true;
                for meta in &blocks {
                    match self.block_catalog(meta).await {
                        Some(block) => catalog.merge(&block),
                        None => complete = false,
                    }
                }
                let catalog = Arc::new(catalog);
                // A block whose catalog could not be read is tried again by the next request.
                if complete {
                    self.merged.insert(key, catalog.clone());
                }
                catalog
            }
        };
        let mut merged = MergedCatalog {
            catalog: (*of_blocks).clone(),
            blocks: blocks.len(),
            block_bytes: blocks.iter().map(|meta| meta.size).sum(),
        };
        if let Some(ingester) = &self.ingester {
            merged.catalog.merge(&ingester.tag_catalog(tenant)?);
        }
        Ok(merged)
    }

    /// A block's catalog, or `None` when it cannot be read: that costs the block's tags, with
    /// a logged error, never the whole request.
    async fn block_catalog(&self, meta: &crate::storage::BlockMeta) -> Option<Arc<TagCatalog>> {
        if let Some(catalog) = self.catalogs.get(&meta.block_id) {
            return Some(catalog);
        }
        match read_catalog(self.store.as_ref(), meta).await {
            Ok(catalog) => {
                let catalog = Arc::new(catalog);
                self.catalogs.insert(meta.block_id, catalog.clone());
                Some(catalog)
            }
            Err(error) => {
                tracing::error!(
                    block = %meta.block_id,
                    tenant = %meta.tenant_id,
                    %error,
                    "cannot read the block's tag catalog; its tags are left out of tag answers"
                );
                None
            }
        }
    }
}
