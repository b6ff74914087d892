//! Reading blocks outside queries: trace by id, and the blocks' tag catalogs. Pruning goes
//! from cheap to dear: block metas (id range, time range), the block's trace-id bloom filters
//! (one small cached object: a filter per row group, or one for a block of the first format)
//! with the row-group id ranges in the meta, then the page index of `trace_id` (sorted inside
//! each row group), so only the pages around the trace are fetched. Spans found in several
//! blocks are combined, deduplicated by span id and kind.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use uuid::Uuid;

use super::block::{BlockError, BlockMeta, DATA_FILE, TraceIdBloom, read_bloom, read_catalog};
use super::blocklist::Blocklist;
use super::catalog::TagCatalog;
use super::combine::{combine, span_count};
use super::file_reader::BlockFileReader;
use super::from_arrow::batches_to_otlp;
use super::ids::TraceId;
use super::{metrics, schema};

/// How far a lookup got at each pruning step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupStats {
    pub blocks: usize,
    pub blocks_in_range: usize,
    pub blocks_past_bloom: usize,
    pub row_groups_read: usize,
    pub pages_read: usize,
    pub blocks_with_trace: usize,
}

/// A trace as found: its spans in OTLP form (empty when not found) and what it took.
#[derive(Debug, Clone, Default)]
pub struct FoundTrace {
    pub resource_spans: Vec<ResourceSpans>,
    pub stats: LookupStats,
    /// Bytes read from the store for this lookup (cached footers and blooms excluded).
    pub inspected_bytes: u64,
}

impl FoundTrace {
    pub fn span_count(&self) -> usize {
        span_count(&self.resource_spans)
    }
}

/// Reads traces and tag catalogs from a tenant's blocks, caching blooms, Parquet metadata and
/// catalogs across requests.
pub struct TraceReader {
    store: Arc<dyn ObjectStore>,
    blocklist: Arc<Blocklist>,
    blooms: moka::sync::Cache<Uuid, Arc<TraceIdBloom>>,
    footers: moka::sync::Cache<Uuid, ArrowReaderMetadata>,
    catalogs: moka::sync::Cache<Uuid, Arc<TagCatalog>>,
    merged: moka::sync::Cache<(String, Vec<Uuid>), Arc<TagCatalog>>,
}

/// Block catalogs kept in memory, by estimated bytes: they never change once written.
const CATALOG_CACHE_BYTES: u64 = 64 << 20;
/// Merged catalogs of block sets kept in memory, by estimated bytes: requests repeat over the
/// same blocks, and merging a hundred catalogs costs more than a tag request otherwise does.
const MERGED_CACHE_BYTES: u64 = 32 << 20;

/// The tag catalog of a set of blocks.
pub struct BlocksCatalog {
    pub catalog: Arc<TagCatalog>,
    /// Every block's catalog was read; otherwise the tags of those that could not be are
    /// missing (the error is logged).
    pub complete: bool,
}

/// `key` in `cache`, counted as a hit or a miss of the cache `name`.
fn cached<K, V>(cache: &moka::sync::Cache<K, V>, name: &str, key: &K) -> Option<V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let value = cache.get(key);
    metrics::cache_lookup(name, value.is_some());
    value
}

/// Puts `value` in `cache` and records what the cache `name` now holds.
fn remember<K, V>(cache: &moka::sync::Cache<K, V>, name: &str, key: K, value: V)
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    cache.insert(key, value);
    metrics::cache_size(name, cache.weighted_size());
}

/// A cache entry's weight: its bytes, saturating.
fn weight(bytes: usize) -> u32 {
    bytes.min(u32::MAX as usize) as u32
}

/// Cached Parquet metadata (footer plus page index) across all blocks, by estimated bytes.
const FOOTER_CACHE_BYTES: u64 = 256 << 20;
const BLOOM_CACHE_BYTES: u64 = 64 << 20;
/// Blocks read at once for one lookup.
const BLOCK_CONCURRENCY: usize = 16;

impl TraceReader {
    pub fn new(store: Arc<dyn ObjectStore>, blocklist: Arc<Blocklist>) -> Self {
        Self {
            store,
            blocklist,
            blooms: moka::sync::Cache::builder()
                .weigher(|_, bloom: &Arc<TraceIdBloom>| weight(bloom.bytes()))
                .max_capacity(BLOOM_CACHE_BYTES)
                .build(),
            footers: moka::sync::Cache::builder()
                .weigher(|_, meta: &ArrowReaderMetadata| weight(meta.metadata().memory_size()))
                .max_capacity(FOOTER_CACHE_BYTES)
                .build(),
            catalogs: moka::sync::Cache::builder()
                .weigher(|_, catalog: &Arc<TagCatalog>| weight(catalog.memory_size()))
                .max_capacity(CATALOG_CACHE_BYTES)
                .build(),
            merged: moka::sync::Cache::builder()
                .weigher(|_, catalog: &Arc<TagCatalog>| weight(catalog.memory_size()))
                .max_capacity(MERGED_CACHE_BYTES)
                .build(),
        }
    }

    /// The merged tag catalog of `tenant`'s `blocks`. A block whose catalog cannot be read
    /// costs its tags, with a logged error, never the whole request; the next request tries
    /// it again.
    pub async fn catalog_of(&self, tenant: &str, blocks: &[Arc<BlockMeta>]) -> BlocksCatalog {
        let key = (
            tenant.to_string(),
            blocks.iter().map(|meta| meta.block_id).collect::<Vec<_>>(),
        );
        if let Some(catalog) = cached(&self.merged, "merged_catalog", &key) {
            return BlocksCatalog {
                catalog,
                complete: true,
            };
        }
        let mut catalog = TagCatalog::default();
        let mut complete = true;
        for meta in blocks {
            match self.block_catalog(meta).await {
                Ok(block) => catalog.merge(&block),
                Err(error) => {
                    tracing::error!(
                        block = %meta.block_id,
                        tenant = %meta.tenant_id,
                        %error,
                        "cannot read the block's tag catalog; its tags are left out"
                    );
                    complete = false;
                }
            }
        }
        let catalog = Arc::new(catalog);
        if complete {
            remember(&self.merged, "merged_catalog", key, catalog.clone());
        }
        BlocksCatalog { catalog, complete }
    }

    async fn block_catalog(&self, meta: &BlockMeta) -> Result<Arc<TagCatalog>, BlockError> {
        if let Some(catalog) = cached(&self.catalogs, "catalog", &meta.block_id) {
            return Ok(catalog);
        }
        let catalog = Arc::new(read_catalog(self.store.as_ref(), meta).await?);
        remember(&self.catalogs, "catalog", meta.block_id, catalog.clone());
        Ok(catalog)
    }

    pub fn blocklist(&self) -> &Arc<Blocklist> {
        &self.blocklist
    }

    /// Finds every span of `id` in `tenant`'s blocks, optionally only in blocks overlapping a
    /// time range.
    pub async fn find_trace(
        &self,
        tenant: &str,
        id: TraceId,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<FoundTrace, BlockError> {
        let blocks = self.blocklist.blocks(tenant);
        let mut stats = LookupStats {
            blocks: blocks.len(),
            ..LookupStats::default()
        };
        let candidates: Vec<Arc<BlockMeta>> = blocks
            .iter()
            .filter(|b| b.may_contain(&id))
            .filter(|b| range.is_none_or(|(start, end)| b.overlaps(start, end)))
            .cloned()
            .collect();
        stats.blocks_in_range = candidates.len();

        let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let fetched_ref = &fetched;
        let results: Vec<Option<(Vec<RecordBatch>, usize, usize)>> =
            futures::stream::iter(candidates)
                .map(|meta| async move {
                    let row_groups = self.bloom(&meta).await?.row_groups(&meta, &id);
                    if row_groups.is_empty() {
                        return Ok::<_, BlockError>(None);
                    }
                    let (batches, row_groups, pages) = self
                        .read_trace_rows(&meta, id, row_groups, fetched_ref.clone())
                        .await?;
                    Ok(Some((batches, row_groups, pages)))
                })
                .buffer_unordered(BLOCK_CONCURRENCY)
                .try_collect()
                .await?;

        let mut batches = Vec::new();
        for (found, row_groups, pages) in results.into_iter().flatten() {
            stats.blocks_past_bloom += 1;
            stats.row_groups_read += row_groups;
            stats.pages_read += pages;
            if found.iter().any(|b| b.num_rows() > 0) {
                stats.blocks_with_trace += 1;
            }
            batches.extend(found);
        }
        let rows = batches_to_otlp(&batches).map_err(|e| BlockError::Corrupt {
            block: Uuid::nil(),
            file: DATA_FILE,
            message: e.to_string(),
        })?;
        // The same span written to several blocks (replays, retries) is returned once.
        let resource_spans = combine([rows]);
        Ok(FoundTrace {
            resource_spans,
            stats,
            inspected_bytes: fetched.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// The row groups of block `meta` that may hold one of `ids`, by their id ranges and (cached)
    /// bloom filters, in ascending order.
    pub async fn row_groups_holding(
        &self,
        meta: &BlockMeta,
        ids: &[TraceId],
    ) -> Result<Vec<usize>, BlockError> {
        let ids: Vec<&TraceId> = ids.iter().filter(|id| meta.may_contain(id)).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let bloom = self.bloom(meta).await?;
        let mut row_groups: Vec<usize> = ids
            .into_iter()
            .flat_map(|id| bloom.row_groups(meta, id))
            .collect();
        row_groups.sort_unstable();
        row_groups.dedup();
        Ok(row_groups)
    }

    async fn bloom(&self, meta: &BlockMeta) -> Result<Arc<TraceIdBloom>, BlockError> {
        if let Some(bloom) = cached(&self.blooms, "bloom", &meta.block_id) {
            return Ok(bloom);
        }
        let bloom = Arc::new(read_bloom(self.store.as_ref(), meta).await?);
        remember(&self.blooms, "bloom", meta.block_id, bloom.clone());
        Ok(bloom)
    }

    fn object_reader(&self, meta: &BlockMeta) -> BlockFileReader {
        BlockFileReader::new(self.store.clone(), meta)
    }

    /// The block's Parquet footer and page index, read in one ranged GET the first time.
    async fn footer(&self, meta: &BlockMeta) -> Result<ArrowReaderMetadata, BlockError> {
        if let Some(footer) = cached(&self.footers, "footer", &meta.block_id) {
            return Ok(footer);
        }
        let mut reader = self.object_reader(meta);
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let footer = ArrowReaderMetadata::load_async(&mut reader, options).await?;
        remember(&self.footers, "footer", meta.block_id, footer.clone());
        Ok(footer)
    }

    /// The rows of trace `id` in `row_groups` of one block: in those only the pages of the
    /// `trace_id` column (sorted in each row group) whose min/max hold it.
    async fn read_trace_rows(
        &self,
        meta: &BlockMeta,
        id: TraceId,
        row_groups: Vec<usize>,
        fetched: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<(Vec<RecordBatch>, usize, usize), BlockError> {
        let footer = self.footer(meta).await?;
        let (selection, pages) = page_selection(&footer, &row_groups, &id);
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.object_reader(meta).with_counter(fetched),
            footer,
        )
        .with_row_groups(row_groups.clone());
        let builder = match selection {
            Some(selection) => builder.with_row_selection(selection),
            None => builder,
        };
        let stream = builder.build()?;
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        let mut matching = Vec::new();
        for batch in batches {
            let ids = batch
                .column_by_name(schema::TRACE_ID)
                .map(|c| c.as_fixed_size_binary())
                .ok_or_else(|| BlockError::Corrupt {
                    block: meta.block_id,
                    file: DATA_FILE,
                    message: "no trace_id column".into(),
                })?;
            let mask: BooleanArray = (0..ids.len())
                .map(|i| Some(ids.value(i) == id.as_bytes()))
                .collect();
            let filtered = filter_record_batch(&batch, &mask)?;
            if filtered.num_rows() > 0 {
                matching.push(filtered);
            }
        }
        Ok((matching, row_groups.len(), pages))
    }
}

/// A row selection over the chosen row groups that keeps only pages of `trace_id` whose
/// min/max can hold `id`, and how many pages that is. `None` when the file has no page index.
fn page_selection(
    footer: &ArrowReaderMetadata,
    row_groups: &[usize],
    id: &TraceId,
) -> (Option<RowSelection>, usize) {
    let metadata = footer.metadata();
    let (Some(column_index), Some(offset_index)) =
        (metadata.column_index(), metadata.offset_index())
    else {
        return (None, 0);
    };
    let mut selectors = Vec::new();
    let mut pages_read = 0;
    for &rg in row_groups {
        let rows = metadata.row_group(rg).num_rows() as usize;
        let ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(index) = &column_index[rg][0] else {
            return (None, 0);
        };
        let locations = offset_index[rg][0].page_locations();
        for (page, location) in locations.iter().enumerate() {
            let first = location.first_row_index as usize;
            let end = locations
                .get(page + 1)
                .map(|next| next.first_row_index as usize)
                .unwrap_or(rows);
            let holds = match (index.min_value(page), index.max_value(page)) {
                (Some(min), Some(max)) => min <= &id.0[..] && &id.0[..] <= max,
                _ => true,
            };
            if holds {
                pages_read += 1;
                selectors.push(RowSelector::select(end - first));
            } else {
                selectors.push(RowSelector::skip(end - first));
            }
        }
    }
    (Some(RowSelection::from(selectors)), pages_read)
}
