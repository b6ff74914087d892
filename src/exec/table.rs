//! The span table of a tenant as a DataFusion [`TableProvider`]: one Parquet file per block,
//! read through the block store. Blocks are pruned by their metas; filters go into the Parquet
//! scan as a predicate (row-group statistics, page index, late materialization).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::datasource::TableProvider;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetAccessPlan,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::union::UnionExec;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

use crate::config::DedicatedColumn;
use crate::storage::block::{BlockMeta, DATA_FILE};
use crate::storage::schema::{START_TIME, TRACE_ID, dedicated_column_name, span_schema};
use crate::storage::{LiveData, TraceId, TraceReader};
use uuid::Uuid;

/// Bounds on `start_time` implied by the filters, in Unix nanoseconds (inclusive), used to
/// skip blocks by their metas before any file is opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct StartTimeWindow {
    from: Option<i64>,
    to: Option<i64>,
}

impl StartTimeWindow {
    fn from_filters(filters: &[Expr]) -> Self {
        let mut window = Self::default();
        for filter in filters {
            window.narrow(filter);
        }
        window
    }

    fn narrow(&mut self, filter: &Expr) {
        use datafusion::logical_expr::{BinaryExpr, Operator};
        use datafusion::scalar::ScalarValue;
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            return;
        };
        if *op == Operator::And {
            self.narrow(left);
            self.narrow(right);
            return;
        }
        // `start_time <op> literal`, or the literal first with the operator mirrored.
        let (op, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) if c.name == START_TIME => (*op, v),
            (Expr::Literal(v, _), Expr::Column(c)) if c.name == START_TIME => match op.swap() {
                Some(op) => (op, v),
                None => return,
            },
            _ => return,
        };
        let ScalarValue::TimestampNanosecond(Some(nanos), _) = value else {
            return;
        };
        let nanos = *nanos;
        let (from, to) = match op {
            Operator::Eq => (Some(nanos), Some(nanos)),
            Operator::Gt => (nanos.checked_add(1), None),
            Operator::GtEq => (Some(nanos), None),
            Operator::Lt => (None, nanos.checked_sub(1)),
            Operator::LtEq => (None, Some(nanos)),
            _ => return,
        };
        if let Some(from) = from {
            self.from = Some(self.from.map_or(from, |f| f.max(from)));
        }
        if let Some(to) = to {
            self.to = Some(self.to.map_or(to, |t| t.min(to)));
        }
    }

    /// A block holds span starts in `[meta.start_time, meta.end_time]`.
    fn may_overlap(&self, meta: &BlockMeta) -> bool {
        let start = meta.start_time.timestamp_nanos_opt().unwrap_or(i64::MIN);
        let end = end_nanos(meta);
        self.from.is_none_or(|from| end >= from) && self.to.is_none_or(|to| start <= to)
    }
}

/// The latest time a block's spans may start at (its meta's end time), Unix nanoseconds.
fn end_nanos(meta: &BlockMeta) -> i64 {
    meta.end_time.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The latest trace start row group `index` of block `meta` may hold, Unix nanoseconds. No
/// later than the block's end, which may have been clamped to when it was written.
pub(crate) fn row_group_newest(meta: &BlockMeta, index: usize) -> i64 {
    meta.row_groups[index].newest_nanos().min(end_nanos(meta))
}

/// The trace ids a filter allows: `trace_id = <16-byte literal>`, `trace_id IN (<literals>)`,
/// or such filters joined by OR.
fn trace_ids_of(filter: &Expr) -> Option<Vec<TraceId>> {
    use datafusion::logical_expr::expr::InList;
    use datafusion::logical_expr::{BinaryExpr, Operator};
    use datafusion::scalar::ScalarValue;
    let is_trace_id = |e: &Expr| matches!(e, Expr::Column(c) if c.name == TRACE_ID);
    let id_of = |e: &Expr| match e {
        Expr::Literal(
            ScalarValue::FixedSizeBinary(16, Some(bytes)) | ScalarValue::Binary(Some(bytes)),
            _,
        ) => Some(TraceId(bytes.as_slice().try_into().ok()?)),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_trace_id(left) {
                Some(vec![id_of(right)?])
            } else if is_trace_id(right) {
                Some(vec![id_of(left)?])
            } else {
                None
            }
        }
        // The optimizer writes a short IN list as equalities joined by OR.
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut ids = trace_ids_of(left)?;
            ids.extend(trace_ids_of(right)?);
            Some(ids)
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) if is_trace_id(expr) => list.iter().map(id_of).collect(),
        _ => None,
    }
}

/// The table queries read spans from.
pub const SPANS_TABLE: &str = "spans";

/// The URL the block store is registered under in a session.
pub const BLOCK_STORE_URL: &str = "tracefusion://blocks";

/// A tenant's blocks as one table.
pub struct BlocksTable {
    /// The blocklist, and the cached bloom filters for trace id filters.
    reader: Arc<TraceReader>,
    tenant: String,
    schema: SchemaRef,
    /// Only the row groups that may hold traces starting at or after this (Unix nanoseconds):
    /// a search reads the newest row groups first and widens the cut pass by pass.
    newest_from: Option<i64>,
}

impl std::fmt::Debug for BlocksTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlocksTable")
            .field("tenant", &self.tenant)
            .field(
                "blocks",
                &self.reader.blocklist().blocks(&self.tenant).len(),
            )
            .field("newest_from", &self.newest_from)
            .finish()
    }
}

impl BlocksTable {
    /// The table has the columns of a block written with `dedicated` columns; blocks written
    /// with other dedicated columns read the missing ones as null.
    pub fn new(reader: Arc<TraceReader>, tenant: &str, dedicated: &[DedicatedColumn]) -> Self {
        Self {
            reader,
            tenant: tenant.to_string(),
            schema: span_schema(dedicated),
            newest_from: None,
        }
    }

    /// Only the row groups that may hold traces starting at or after `from` (all of them for
    /// `None`); whole row groups, and so whole traces, are left out, never some spans of one.
    pub fn newest_from(mut self, from: Option<i64>) -> Self {
        self.newest_from = from;
        self
    }
}

/// `tenant`'s blocks that may hold spans starting in `range` (Unix nanoseconds, inclusive;
/// either side open), by their metas.
pub(crate) fn blocks_in(
    reader: &TraceReader,
    tenant: &str,
    range: (Option<i64>, Option<i64>),
) -> Vec<Arc<BlockMeta>> {
    let window = StartTimeWindow {
        from: range.0,
        to: range.1,
    };
    reader
        .blocklist()
        .blocks(tenant)
        .iter()
        .filter(|meta| window.may_overlap(meta))
        .cloned()
        .collect()
}

/// The dedicated columns every block of `tenant` has: for their attributes the column holds
/// every value of its type, and the generic maps none.
pub(crate) fn complete_dedicated_columns(
    reader: &TraceReader,
    tenant: &str,
    dedicated: &[DedicatedColumn],
) -> Vec<String> {
    let blocks = reader.blocklist().blocks(tenant);
    dedicated
        .iter()
        .filter(|column| blocks.iter().all(|b| b.dedicated_columns.contains(column)))
        .map(dedicated_column_name)
        .collect()
}

#[async_trait]
impl TableProvider for BlocksTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Pruning is by statistics and pages: rows still need the filter above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.scan_without(state, projection, filters, limit, &[])
            .await
    }
}

impl BlocksTable {
    /// [`TableProvider::scan`] leaving out the blocks `skip` (read from memory already).
    async fn scan_without(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        skip: &[Uuid],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let window = StartTimeWindow::from_filters(filters);
        let newest_from = self.newest_from.unwrap_or(i64::MIN);
        let trace_ids = filters.iter().find_map(trace_ids_of);
        let mut files = Vec::new();
        for meta in self.reader.blocklist().blocks(&self.tenant).iter() {
            if !window.may_overlap(meta) || skip.contains(&meta.block_id) {
                continue;
            }
            // The row groups to read: those that may hold traces starting from the pass's cut,
            // and of those the ones whose bloom filters may hold a trace id the filters ask for.
            let mut row_groups: Vec<usize> = (0..meta.row_groups.len())
                .filter(|&i| row_group_newest(meta, i) >= newest_from)
                .collect();
            if let Some(ids) = &trace_ids {
                let holding = self
                    .reader
                    .row_groups_holding(meta, ids)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                row_groups.retain(|i| holding.binary_search(i).is_ok());
            }
            if row_groups.is_empty() && !meta.row_groups.is_empty() {
                continue;
            }
            files.push(block_file(meta, &row_groups));
        }
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // Footers and page indexes come from the runtime's metadata cache: blocks never change.
        let runtime = state.runtime_env();
        let url = ObjectStoreUrl::parse(BLOCK_STORE_URL)?;
        let reader_factory = PageIndexedReaders(CachedParquetFileReaderFactory::new(
            runtime.object_store(&url)?,
            runtime.cache_manager.get_file_metadata_cache(),
        ));
        let mut source = ParquetSource::new(self.schema.clone())
            .with_parquet_file_reader_factory(Arc::new(reader_factory))
            .with_pushdown_filters(true)
            .with_enable_page_index(true);
        if let Some(predicate) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        // One group per block, up to the session's parallelism.
        let partitions = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions.min(files.len())];
        for (i, file) in files.into_iter().enumerate() {
            let n = groups.len();
            groups[i % n].push(file);
        }
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Readers whose Parquet metadata always comes with the page index, so that the runtime's
/// metadata cache keeps both. DataFusion asks a reader for the footer alone and, when a
/// predicate can use the page index, loads the index through the reader afterwards, without
/// caching it: every filtered scan of a block would read its page index again.
#[derive(Debug)]
struct PageIndexedReaders(CachedParquetFileReaderFactory);

impl ParquetFileReaderFactory for PageIndexedReaders {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let reader = self
            .0
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(PageIndexedReader(reader)))
    }
}

struct PageIndexedReader(Box<dyn AsyncFileReader + Send>);

impl AsyncFileReader for PageIndexedReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.0.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.0.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let options = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        async move { self.0.get_metadata(Some(&options)).await }.boxed()
    }
}

/// The data file of block `meta`, to read only `row_groups` of (all of them when that is all).
fn block_file(meta: &BlockMeta, row_groups: &[usize]) -> PartitionedFile {
    // From the path itself: `PartitionedFile::new` would encode its already encoded text again
    // (`*` is `%2A` in a key, and would become `%252A`).
    let file = PartitionedFile::from(object_store::ObjectMeta {
        location: meta.object(DATA_FILE),
        last_modified: meta.end_time,
        size: meta.size,
        e_tag: None,
        version: None,
    })
    .with_metadata_size_hint(meta.footer_size as usize);
    if row_groups.len() == meta.row_groups.len() {
        return file;
    }
    let mut plan = ParquetAccessPlan::new_none(meta.row_groups.len());
    for &i in row_groups {
        plan.scan(i);
    }
    file.with_extension(plan)
}

/// What a tenant's ingester holds in memory (live, head and flushing traces) as a table with
/// the same schema as [`BlocksTable`]. Built when scanned, so a query sees the data acknowledged
/// until then.
pub struct LiveTable {
    ingester: Arc<dyn LiveData>,
    tenant: String,
    dedicated: Vec<DedicatedColumn>,
    schema: SchemaRef,
}

impl std::fmt::Debug for LiveTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTable")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl LiveTable {
    pub fn new(ingester: Arc<dyn LiveData>, tenant: &str, dedicated: &[DedicatedColumn]) -> Self {
        Self {
            ingester,
            tenant: tenant.to_string(),
            dedicated: dedicated.to_vec(),
            schema: span_schema(dedicated),
        }
    }
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self.scan_live(projection)?.0)
    }
}

impl LiveTable {
    /// A scan of what the ingester holds now, and the blocks still being written among it.
    fn scan_live(
        &self,
        projection: Option<&Vec<usize>>,
    ) -> Result<(Arc<dyn ExecutionPlan>, Vec<Uuid>)> {
        let live = self.ingester.live_spans(&self.tenant, &self.dedicated)?;
        let exec = MemorySourceConfig::try_new_exec(
            &[live.batches],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok((exec, live.flushing_blocks))
    }
}

/// Blocks and live data together: the `spans` table of a serving process.
#[derive(Debug)]
pub struct SpansTable {
    blocks: BlocksTable,
    live: LiveTable,
}

impl SpansTable {
    pub fn new(blocks: BlocksTable, live: LiveTable) -> Self {
        Self { blocks, live }
    }
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        self.blocks.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Memory before blocks: the ingester lists a block before it lets go of its spans, so
        // in this order a block being written is read once, from memory or from storage.
        let (live, flushing) = self.live.scan_live(projection)?;
        let blocks = self
            .blocks
            .scan_without(state, projection, filters, limit, &flushing)
            .await?;
        UnionExec::try_new(vec![live, blocks])
    }
}
