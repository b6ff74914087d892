//! Blocks: one Parquet file of whole traces plus its sidecars, under
//! `<tenant>/blocks/<block-id>/`. `meta.json` is written last and is the commit point: a
//! block without it does not exist for readers.
//!
//! Row groups hold traces by start time (oldest first), and each trace whole: a newest-first
//! search reads the row groups whose traces may be newest and stops when it has enough (the
//! meta records each row group's latest trace start). Inside a row group rows are sorted by
//! trace id, so trace by id finds its row group through the row group's bloom filter and its
//! rows through the page index of `trace_id`. Blocks of the first format ([`FORMAT_BY_ID`])
//! hold traces by id across the whole block and one bloom filter; they are still read.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use prost::Message;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::catalog::TagCatalog;
use super::ids::TraceId;
use super::schema;
use super::to_arrow::{SpanBatchBuilder, trace_span_refs};
use crate::config::DedicatedColumn;

/// The `format` of blocks this version writes: row groups by trace start, a bloom filter each.
pub const FORMAT: &str = "tracefusion-parquet-2";
/// The first format: traces by id across the block, one bloom filter for the block.
pub const FORMAT_BY_ID: &str = "tracefusion-parquet-1";
pub const DATA_FILE: &str = "data.parquet";
pub const META_FILE: &str = "meta.json";
pub const BLOOM_FILE: &str = "bloom";
pub const TAGS_FILE: &str = "tags.json";
/// False-positive rate of a row group's trace-id bloom filter. A lookup checks every row
/// group of a block (a big block has about a hundred), so each must be rare.
pub const BLOOM_FPP: f64 = 0.001;
/// Rows per record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 4096;
/// Rows per data page at most: small enough that trace by id reads little around its trace.
const PAGE_ROWS: usize = 1024;

/// Where a tenant's blocks live.
pub fn tenant_blocks_prefix(tenant: &str) -> Path {
    Path::from(format!("{tenant}/blocks"))
}

pub fn block_object(tenant: &str, block: Uuid, file: &str) -> Path {
    Path::from(format!("{tenant}/blocks/{block}/{file}"))
}

/// One row group: the traces it holds and their time span, so readers prune without the footer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowGroupMeta {
    #[serde(rename = "minID")]
    pub min_id: TraceId,
    #[serde(rename = "maxID")]
    pub max_id: TraceId,
    pub spans: u64,
    pub traces: u64,
    /// Earliest span start and latest span end.
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// The latest start of a trace in the row group ([`FORMAT`]): a newest-first search that
    /// has enough traces newer than this needs nothing of the row group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trace_start: Option<DateTime<Utc>>,
    /// Bytes of the row group's trace-id bloom filter ([`FORMAT`]): the `bloom` sidecar holds
    /// the row groups' filters one after another.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bloom_size: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RowGroupMeta {
    /// The latest trace start the row group may hold, Unix nanoseconds: its recorded latest
    /// trace start, or (first format) its latest span end.
    pub fn newest_nanos(&self) -> i64 {
        self.last_trace_start
            .unwrap_or(self.end_time)
            .timestamp_nanos_opt()
            .unwrap_or(i64::MAX)
    }

    pub fn may_contain(&self, id: &TraceId) -> bool {
        self.min_id <= *id && *id <= self.max_id
    }
}

/// `meta.json`: everything a reader needs to decide whether to open the block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub format: String,
    #[serde(rename = "blockID")]
    pub block_id: Uuid,
    #[serde(rename = "tenantID")]
    pub tenant_id: String,
    /// Earliest span start in the block.
    pub start_time: DateTime<Utc>,
    /// Latest span end in the block.
    pub end_time: DateTime<Utc>,
    pub total_spans: u64,
    pub total_traces: u64,
    /// Bytes of `data.parquet`.
    pub size: u64,
    /// Bytes at the end of `data.parquet` after the last row group (page indexes and footer):
    /// one ranged read of this many bytes loads all of the file's metadata.
    pub footer_size: u64,
    #[serde(rename = "minID")]
    pub min_id: TraceId,
    #[serde(rename = "maxID")]
    pub max_id: TraceId,
    pub compaction_level: u32,
    pub row_groups: Vec<RowGroupMeta>,
    pub dedicated_columns: Vec<DedicatedColumn>,
    /// Bytes of the `bloom` sidecar: one filter for the block ([`FORMAT_BY_ID`]), or one per
    /// row group.
    pub bloom_size: u64,
    pub created_at: DateTime<Utc>,
}

impl BlockMeta {
    pub fn object(&self, file: &str) -> Path {
        block_object(&self.tenant_id, self.block_id, file)
    }

    /// Whether the block's trace-id range can hold `id`.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        self.min_id <= *id && *id <= self.max_id
    }

    /// Whether the block overlaps `[start, end]`.
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.start_time <= end && start <= self.end_time
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("trace {0} was appended to the block twice")]
    Duplicate(TraceId),
    #[error("a block needs at least one span")]
    Empty,
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("block {block} has a bad {file}: {message}")]
    Corrupt {
        block: Uuid,
        file: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct BlockOptions {
    pub row_group_bytes: usize,
    pub dedicated_columns: Vec<DedicatedColumn>,
    pub compaction_level: u32,
    /// When set, the block's time range (`meta.json` start and end) counts a span starting or
    /// ending more than this after the block is written as ending then (Tempo's
    /// `ingestion_time_range_slack`): a clock far ahead does not make its block the newest
    /// for good. The spans keep their own times.
    pub ingestion_slack: Option<std::time::Duration>,
}

impl BlockOptions {
    pub fn from_config(config: &crate::config::BlockConfig) -> Self {
        Self {
            row_group_bytes: config.parquet_row_group_size_bytes.0 as usize,
            dedicated_columns: config.parquet_dedicated_columns.clone(),
            compaction_level: 0,
            ingestion_slack: None,
        }
    }
}

impl Default for BlockOptions {
    fn default() -> Self {
        Self::from_config(&crate::config::BlockConfig::default())
    }
}

/// `[start, end]` (Unix nanoseconds) with times more than `slack` past now taken as now.
fn clamp_to_ingestion(start: u64, end: u64, slack: std::time::Duration) -> (u64, u64) {
    let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX).max(0) as u64;
    let latest = now.saturating_add(slack.as_nanos().min(u64::MAX as u128) as u64);
    let clamp = |t: u64| if t > latest { now } else { t };
    let (start, end) = (clamp(start), clamp(end));
    (start.min(end), end)
}

fn nanos_to_time(nanos: u64) -> DateTime<Utc> {
    Utc.timestamp_nanos(nanos.min(i64::MAX as u64) as i64)
}

/// Counts what goes through to the object, so the writer knows the file and footer sizes.
struct CountingWriter {
    inner: BufWriter,
    written: Arc<std::sync::atomic::AtomicU64>,
}

impl AsyncFileWriter for CountingWriter {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        self.written
            .fetch_add(bs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        AsyncFileWriter::write(&mut self.inner, bs)
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        AsyncFileWriter::complete(&mut self.inner)
    }
}

/// The row group being built: its traces' rows are buffered until it closes, then written
/// sorted by trace id.
#[derive(Default)]
struct OpenRowGroup {
    /// Each trace and its rows in the builder.
    traces: Vec<(TraceId, std::ops::Range<usize>)>,
    /// OTLP protobuf bytes of its traces: what closes it.
    bytes: usize,
    spans: u64,
    start: u64,
    end: u64,
    last_trace_start: u64,
}

/// Streams whole traces into a new block. Traces should come oldest first (by start time):
/// each row group then covers a short stretch of time, and newest-first searches skip the
/// rest. Any order is correct; the meta records what each row group holds.
pub struct BlockWriter {
    store: Arc<dyn ObjectStore>,
    tenant: String,
    block_id: Uuid,
    options: BlockOptions,
    builder: SpanBatchBuilder,
    writer: AsyncArrowWriter<CountingWriter>,
    written: Arc<std::sync::atomic::AtomicU64>,
    trace_ids: HashSet<TraceId>,
    min_id: Option<TraceId>,
    max_id: Option<TraceId>,
    row_groups: Vec<RowGroupMeta>,
    /// The row groups' bloom filters, one after another: the `bloom` sidecar.
    blooms: Vec<u8>,
    open: OpenRowGroup,
    total_spans: u64,
    start: u64,
    end: u64,
}

/// Parquet settings of a block with this schema. Scalar columns keep page statistics (the page
/// index prunes by them); nested attribute, event and link columns keep only chunk statistics,
/// since min/max over map keys or list items prune nothing and cost bytes in every page.
pub fn writer_properties(schema: &arrow::datatypes::Schema) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(None)
        .set_data_page_row_count_limit(PAGE_ROWS)
        // Unique per row: a dictionary only costs.
        .set_column_dictionary_enabled(ColumnPath::from(schema::SPAN_ID), false)
        // Spans of a trace are sorted by start: small deltas.
        .set_column_dictionary_enabled(ColumnPath::from(schema::START_TIME), false)
        .set_column_encoding(
            ColumnPath::from(schema::START_TIME),
            Encoding::DELTA_BINARY_PACKED,
        )
        .set_column_dictionary_enabled(ColumnPath::from(schema::DURATION_NS), false)
        .set_column_encoding(
            ColumnPath::from(schema::DURATION_NS),
            Encoding::DELTA_BINARY_PACKED,
        )
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 3,
                descending: false,
                nulls_first: false,
            },
        ]))
        .set_created_by(format!("tracefusion {}", env!("CARGO_PKG_VERSION")));
    if let Ok(descriptor) = parquet::arrow::ArrowSchemaConverter::new().convert(schema) {
        for column in descriptor.columns() {
            if column.path().parts().len() > 1 {
                builder = builder
                    .set_column_statistics_enabled(column.path().clone(), EnabledStatistics::Chunk);
            }
        }
    }
    builder.build()
}

impl BlockWriter {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        tenant: &str,
        options: BlockOptions,
    ) -> Result<Self, BlockError> {
        Self::with_id(store, tenant, options, Uuid::new_v4())
    }

    /// A writer of block `block_id` (a fresh id: blocks are never overwritten).
    pub fn with_id(
        store: Arc<dyn ObjectStore>,
        tenant: &str,
        options: BlockOptions,
        block_id: Uuid,
    ) -> Result<Self, BlockError> {
        let builder = SpanBatchBuilder::new(&options.dedicated_columns);
        let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sink = CountingWriter {
            inner: BufWriter::new(store.clone(), block_object(tenant, block_id, DATA_FILE)),
            written: written.clone(),
        };
        let writer = AsyncArrowWriter::try_new(
            sink,
            builder.schema().clone(),
            Some(writer_properties(builder.schema())),
        )?;
        Ok(Self {
            store,
            tenant: tenant.to_string(),
            block_id,
            options,
            builder,
            writer,
            written,
            trace_ids: HashSet::new(),
            min_id: None,
            max_id: None,
            row_groups: Vec::new(),
            blooms: Vec::new(),
            open: OpenRowGroup::default(),
            total_spans: 0,
            start: u64::MAX,
            end: 0,
        })
    }

    pub fn block_id(&self) -> Uuid {
        self.block_id
    }

    pub fn traces(&self) -> usize {
        self.trace_ids.len()
    }

    /// Appends one trace: every span of `batches` must carry `trace_id`.
    pub async fn append_trace(
        &mut self,
        trace_id: TraceId,
        batches: &[ResourceSpans],
    ) -> Result<(), BlockError> {
        let spans = trace_span_refs(batches);
        if spans.is_empty() {
            return Ok(());
        }
        if !self.trace_ids.insert(trace_id) {
            return Err(BlockError::Duplicate(trace_id));
        }
        let first_row = self.builder.len();
        let summary = self.builder.append_trace(trace_id, &spans)?;
        self.min_id = Some(self.min_id.map_or(trace_id, |id| id.min(trace_id)));
        self.max_id = Some(self.max_id.map_or(trace_id, |id| id.max(trace_id)));
        self.total_spans += spans.len() as u64;
        self.start = self.start.min(summary.start_unix_nano);
        self.end = self.end.max(summary.end_unix_nano);

        let open = &mut self.open;
        if open.traces.is_empty() {
            open.start = u64::MAX;
        }
        open.traces.push((trace_id, first_row..self.builder.len()));
        open.bytes += batches.iter().map(Message::encoded_len).sum::<usize>();
        open.spans += spans.len() as u64;
        open.start = open.start.min(summary.start_unix_nano);
        open.end = open.end.max(summary.end_unix_nano);
        open.last_trace_start = open.last_trace_start.max(summary.start_unix_nano);
        // Only here, between traces, may a row group end.
        if open.bytes >= self.options.row_group_bytes {
            self.close_row_group().await?;
        }
        Ok(())
    }

    /// Writes the open row group's rows sorted by trace id (each trace's rows in the order they
    /// came), with its bloom filter and meta.
    async fn close_row_group(&mut self) -> Result<(), BlockError> {
        let mut open = std::mem::take(&mut self.open);
        if open.traces.is_empty() {
            return Ok(());
        }
        open.traces.sort_unstable_by_key(|(id, _)| *id);
        let order: UInt32Array = open
            .traces
            .iter()
            .flat_map(|(_, rows)| rows.clone())
            .map(|row| row as u32)
            .collect();
        let rows = take_record_batch(&self.builder.finish()?, &order)?;
        let mut offset = 0;
        while offset < rows.num_rows() {
            let len = BATCH_ROWS.min(rows.num_rows() - offset);
            self.writer.write(&rows.slice(offset, len)).await?;
            offset += len;
        }
        self.writer.flush().await?;

        let mut bloom = Sbbf::new_with_ndv_fpp(open.traces.len() as u64, BLOOM_FPP)?;
        for (id, _) in &open.traces {
            bloom.insert(&id.0[..]);
        }
        let before = self.blooms.len();
        bloom.write(&mut self.blooms)?;
        self.row_groups.push(RowGroupMeta {
            min_id: open.traces[0].0,
            max_id: open.traces[open.traces.len() - 1].0,
            spans: open.spans,
            traces: open.traces.len() as u64,
            start_time: nanos_to_time(open.start),
            end_time: nanos_to_time(open.end),
            last_trace_start: Some(nanos_to_time(open.last_trace_start)),
            bloom_size: (self.blooms.len() - before) as u64,
        });
        Ok(())
    }

    /// Writes the rest of the data, the sidecars and finally `meta.json`.
    pub async fn finish(mut self) -> Result<BlockMeta, BlockError> {
        let (Some(min_id), Some(max_id)) = (self.min_id, self.max_id) else {
            return Err(BlockError::Empty);
        };
        self.close_row_group().await?;
        let data_bytes = self.written.load(std::sync::atomic::Ordering::Relaxed);
        self.writer.close().await?;
        crate::crash_point::reached("block:after-data");
        let size = self.written.load(std::sync::atomic::Ordering::Relaxed);

        let bloom_size = self.blooms.len() as u64;
        let object = |file| block_object(&self.tenant, self.block_id, file);
        self.store
            .put(&object(BLOOM_FILE), std::mem::take(&mut self.blooms).into())
            .await?;

        let catalog: TagCatalog = self.builder.take_catalog().finish();
        let tags = serde_json::to_vec(&catalog).expect("catalog serializes");
        self.store.put(&object(TAGS_FILE), tags.into()).await?;

        let (start, end) = match self.options.ingestion_slack {
            Some(slack) => clamp_to_ingestion(self.start, self.end, slack),
            None => (self.start, self.end),
        };
        let meta = BlockMeta {
            format: FORMAT.to_string(),
            block_id: self.block_id,
            tenant_id: self.tenant.clone(),
            start_time: nanos_to_time(start),
            end_time: nanos_to_time(end),
            total_spans: self.total_spans,
            total_traces: self.trace_ids.len() as u64,
            size,
            footer_size: size - data_bytes,
            min_id,
            max_id,
            compaction_level: self.options.compaction_level,
            row_groups: self.row_groups,
            dedicated_columns: self.options.dedicated_columns,
            bloom_size,
            created_at: Utc::now(),
        };
        let json = serde_json::to_vec_pretty(&meta).expect("meta serializes");
        crate::crash_point::reached("block:before-meta");
        self.store.put(&object(META_FILE), json.into()).await?;
        Ok(meta)
    }
}

/// Writes one block of `traces` (each id once), oldest first.
pub async fn write_block<'a>(
    store: Arc<dyn ObjectStore>,
    tenant: &str,
    options: BlockOptions,
    traces: impl IntoIterator<Item = (&'a TraceId, &'a Vec<ResourceSpans>)>,
) -> Result<BlockMeta, BlockError> {
    let mut traces: Vec<_> = traces
        .into_iter()
        .map(|(id, batches)| (trace_start(batches), id, batches))
        .collect();
    traces.sort_unstable_by_key(|(start, id, _)| (*start, **id));
    let mut writer = BlockWriter::new(store, tenant, options)?;
    for (_, id, batches) in traces {
        writer.append_trace(*id, batches).await?;
    }
    writer.finish().await
}

/// The earliest start of a span of `batches`, Unix nanoseconds (0 without spans).
pub fn trace_start(batches: &[ResourceSpans]) -> u64 {
    batches
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|span| span.start_time_unix_nano)
        .min()
        .unwrap_or(0)
}

/// Reads a block's `meta.json`.
pub async fn read_meta(
    store: &dyn ObjectStore,
    tenant: &str,
    block: Uuid,
) -> Result<BlockMeta, BlockError> {
    let bytes = store
        .get(&block_object(tenant, block, META_FILE))
        .await?
        .bytes()
        .await?;
    let corrupt = |message: String| BlockError::Corrupt {
        block,
        file: META_FILE,
        message,
    };
    let meta: BlockMeta = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if meta.format != FORMAT && meta.format != FORMAT_BY_ID {
        return Err(corrupt(format!(
            "format {:?} is not one this version reads ({FORMAT}, {FORMAT_BY_ID})",
            meta.format
        )));
    }
    Ok(meta)
}

/// Reads a block's tag catalog.
pub async fn read_catalog(
    store: &dyn ObjectStore,
    meta: &BlockMeta,
) -> Result<TagCatalog, BlockError> {
    let bytes = store.get(&meta.object(TAGS_FILE)).await?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| BlockError::Corrupt {
        block: meta.block_id,
        file: TAGS_FILE,
        message: e.to_string(),
    })
}

/// A block's trace-id bloom filters.
pub enum TraceIdBloom {
    /// One for the whole block ([`FORMAT_BY_ID`]).
    Block(Sbbf),
    /// One per row group.
    RowGroups(Vec<Sbbf>),
}

impl TraceIdBloom {
    /// The row groups of `meta` (the block of these filters) that may hold `id`.
    pub fn row_groups(&self, meta: &BlockMeta, id: &TraceId) -> Vec<usize> {
        let in_range = meta
            .row_groups
            .iter()
            .enumerate()
            .filter(|(_, rg)| rg.may_contain(id));
        match self {
            Self::Block(bloom) if bloom.check(&id.0[..]) => in_range.map(|(i, _)| i).collect(),
            Self::Block(_) => Vec::new(),
            Self::RowGroups(blooms) => in_range
                .filter(|(i, _)| blooms.get(*i).is_none_or(|b| b.check(&id.0[..])))
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// Memory held, in bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Block(bloom) => bloom.num_blocks() * 32,
            Self::RowGroups(blooms) => blooms.iter().map(|b| b.num_blocks() * 32).sum(),
        }
    }
}

/// Reads a block's trace-id bloom filters.
pub async fn read_bloom(
    store: &dyn ObjectStore,
    meta: &BlockMeta,
) -> Result<TraceIdBloom, BlockError> {
    let bytes = store.get(&meta.object(BLOOM_FILE)).await?.bytes().await?;
    let corrupt = |message: String| BlockError::Corrupt {
        block: meta.block_id,
        file: BLOOM_FILE,
        message,
    };
    if meta.format == FORMAT_BY_ID {
        return Sbbf::from_bytes(&bytes)
            .map(TraceIdBloom::Block)
            .map_err(|e| corrupt(e.to_string()));
    }
    let mut blooms = Vec::with_capacity(meta.row_groups.len());
    let mut offset = 0usize;
    for rg in &meta.row_groups {
        let end = offset.saturating_add(usize::try_from(rg.bloom_size).unwrap_or(usize::MAX));
        let Some(slice) = bytes.get(offset..end) else {
            return Err(corrupt(format!(
                "{} bytes, the row groups' filters need {end}",
                bytes.len()
            )));
        };
        blooms.push(Sbbf::from_bytes(slice).map_err(|e| corrupt(e.to_string()))?);
        offset = end;
    }
    Ok(TraceIdBloom::RowGroups(blooms))
}
