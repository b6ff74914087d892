//! What a query reads: a tenant's blocks and (in a process that ingests) what the ingester
//! holds, as a [`SpanSource`] (a DataFusion session plus what the blocks' metas and tag
//! catalogs say, which the planner resolves attributes against) and as merged tag catalogs
//! for tag discovery.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;

use super::session::{MemoryLimits, QueryRuntime};
use super::table::{
    BlocksTable, LiveTable, SpansTable, blocks_in, complete_dedicated_columns, row_group_newest,
};
use crate::config::DedicatedColumn;
use crate::planner::StoredSpans;
use crate::storage::catalog::TagScope;
use crate::storage::schema::AttrKinds;
use crate::storage::{Blocklist, LiveData, TagCatalog, TraceReader};

#[derive(Clone)]
pub struct QuerySources {
    pub reader: Arc<TraceReader>,
    pub ingester: Option<Arc<dyn LiveData>>,
    /// The dedicated columns of the span table (the current block configuration).
    pub dedicated: Vec<DedicatedColumn>,
    runtime: QueryRuntime,
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
        ingester: Option<Arc<dyn LiveData>>,
        dedicated: Vec<DedicatedColumn>,
        memory: MemoryLimits,
    ) -> Result<Self> {
        Ok(Self {
            runtime: QueryRuntime::new(store, memory)?,
            reader,
            ingester,
            dedicated,
        })
    }

    /// What a query of `tenant` reads: everything it has. Sessions share one runtime, so
    /// Parquet metadata read by one query is cached for the next.
    pub fn session(&self, tenant: &str) -> Result<SpanSource> {
        SpanSource::new(
            &self.runtime,
            self.reader.clone(),
            tenant,
            &self.dedicated,
            self.ingester.clone(),
        )
    }

    /// The tags of `tenant`'s data: the catalogs of live data and of the blocks whose spans
    /// start in `range` (Unix nanoseconds, inclusive; all blocks without one).
    pub async fn tag_catalog(
        &self,
        tenant: &str,
        range: Option<(i64, i64)>,
    ) -> Result<MergedCatalog> {
        let range = range.map_or((None, None), |(from, to)| (Some(from), Some(to)));
        let mut catalog = match &self.ingester {
            Some(ingester) => ingester.tag_catalog(tenant)?,
            None => TagCatalog::default(),
        };
        let blocks = blocks_in(&self.reader, tenant, range);
        catalog.merge(&self.reader.catalog_of(tenant, &blocks).await.catalog);
        Ok(MergedCatalog {
            catalog,
            blocks: blocks.len(),
            block_bytes: blocks.iter().map(|meta| meta.size).sum(),
        })
    }
}

/// What one query reads: a session whose `spans` table is one tenant's data (its blocks and,
/// in a process that ingests, what the ingester holds), and what is known of that data
/// without scanning it: the blocks' metas and tag catalogs.
#[derive(Clone)]
pub struct SpanSource {
    pub ctx: SessionContext,
    reader: Arc<TraceReader>,
    tenant: String,
    dedicated: Vec<DedicatedColumn>,
    ingester: Option<Arc<dyn LiveData>>,
}

impl SpanSource {
    pub fn new(
        runtime: &QueryRuntime,
        reader: Arc<TraceReader>,
        tenant: &str,
        dedicated: &[DedicatedColumn],
        ingester: Option<Arc<dyn LiveData>>,
    ) -> Result<Self> {
        let spans = spans_table(&reader, tenant, dedicated, ingester.as_ref(), None);
        Ok(Self {
            ctx: runtime.session(spans)?,
            reader,
            tenant: tenant.to_string(),
            dedicated: dedicated.to_vec(),
            ingester,
        })
    }

    /// The tenant's `spans` table: live data and the row groups of blocks that may hold traces
    /// starting at or after `newest_from` (all of them for `None`).
    pub fn spans(&self, newest_from: Option<i64>) -> Arc<dyn TableProvider> {
        spans_table(
            &self.reader,
            &self.tenant,
            &self.dedicated,
            self.ingester.as_ref(),
            newest_from,
        )
    }

    /// The blocks that may hold spans starting in `range`, and their row groups newest first
    /// (by the latest trace start each may hold).
    pub fn blocks_in(&self, range: (Option<i64>, Option<i64>)) -> SearchedBlocks {
        let blocks = blocks_in(&self.reader, &self.tenant, range);
        let mut row_groups: Vec<RowGroupSpan> = blocks
            .iter()
            .flat_map(|meta| {
                (0..meta.row_groups.len()).map(|i| RowGroupSpan {
                    newest: row_group_newest(meta, i),
                    spans: meta.row_groups[i].spans,
                })
            })
            .collect();
        row_groups.sort_unstable_by_key(|rg| std::cmp::Reverse(rg.newest));
        SearchedBlocks {
            blocks: blocks.len(),
            bytes: blocks.iter().map(|meta| meta.size).sum(),
            row_groups,
        }
    }

    /// What the planner resolves attributes against: the tag catalogs of live data and of the
    /// blocks that may hold spans starting in `range`. Live data is read first, so a trace
    /// that moves into a block meanwhile is in one or the other; spans that arrive after
    /// this call may be missed by the query, as they may be by its scan.
    pub async fn stored_spans(
        &self,
        range: (Option<i64>, Option<i64>),
    ) -> Result<Arc<dyn StoredSpans>> {
        let mut catalogs = match &self.ingester {
            Some(ingester) => ingester.tag_catalogs(&self.tenant)?,
            None => Vec::new(),
        };
        let blocks = blocks_in(&self.reader, &self.tenant, range);
        let of_blocks = self.reader.catalog_of(&self.tenant, &blocks).await;
        catalogs.push(of_blocks.catalog);
        Ok(Arc::new(Catalogued {
            complete_columns: complete_dedicated_columns(
                &self.reader,
                &self.tenant,
                &self.dedicated,
            ),
            // Without every block's catalog, an attribute may be anywhere.
            catalogs: of_blocks.complete.then_some(catalogs),
        }))
    }
}

/// What a search of a time range reads from blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchedBlocks {
    pub blocks: usize,
    /// Bytes of their data files.
    pub bytes: u64,
    /// Their row groups, newest first: what a pass reads or leaves out.
    pub row_groups: Vec<RowGroupSpan>,
}

/// What a search needs to know of a row group before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroupSpan {
    /// The latest trace start it may hold, Unix nanoseconds.
    pub newest: i64,
    pub spans: u64,
}

/// See [`SpanSource::spans`].
fn spans_table(
    reader: &Arc<TraceReader>,
    tenant: &str,
    dedicated: &[DedicatedColumn],
    ingester: Option<&Arc<dyn LiveData>>,
    newest_from: Option<i64>,
) -> Arc<dyn TableProvider> {
    let blocks = BlocksTable::new(reader.clone(), tenant, dedicated).newest_from(newest_from);
    match ingester {
        Some(ingester) => Arc::new(SpansTable::new(
            blocks,
            LiveTable::new(ingester.clone(), tenant, dedicated),
        )),
        None => Arc::new(blocks),
    }
}

/// Stored spans as their tag catalogs describe them.
struct Catalogued {
    complete_columns: Vec<String>,
    /// `None` where some catalog could not be read.
    catalogs: Option<Vec<Arc<TagCatalog>>>,
}

impl StoredSpans for Catalogued {
    fn complete_columns(&self) -> &[String] {
        &self.complete_columns
    }

    fn attribute_kinds(&self, scope: TagScope, name: &str) -> AttrKinds {
        match &self.catalogs {
            Some(catalogs) => catalogs.iter().fold(AttrKinds::NONE, |kinds, c| {
                kinds.union(c.kinds(scope, name))
            }),
            None => AttrKinds::ALL,
        }
    }

    fn may_hold_string(&self, scope: TagScope, name: &str, value: &str) -> bool {
        match &self.catalogs {
            Some(catalogs) => catalogs
                .iter()
                .any(|c| c.may_hold_string(scope, name, value)),
            None => true,
        }
    }
}

/// What a query of `tenant` reads (with a runtime of its own): `tenant`'s blocks.
pub fn span_session(
    store: Arc<dyn ObjectStore>,
    blocklist: Arc<Blocklist>,
    tenant: &str,
    dedicated: &[DedicatedColumn],
) -> Result<SpanSource> {
    let reader = Arc::new(TraceReader::new(store.clone(), blocklist));
    let runtime = QueryRuntime::new(store, MemoryLimits::default())?;
    SpanSource::new(&runtime, reader, tenant, dedicated, None)
}

/// What a query of `tenant` reads (with a runtime of its own): `tenant`'s blocks together
/// with what `ingester` holds in memory, everything acknowledged, whether or not it has
/// reached a block yet.
pub fn serving_session(
    store: Arc<dyn ObjectStore>,
    reader: Arc<TraceReader>,
    ingester: Arc<dyn LiveData>,
    tenant: &str,
    dedicated: &[DedicatedColumn],
) -> Result<SpanSource> {
    let runtime = QueryRuntime::new(store, MemoryLimits::default())?;
    SpanSource::new(&runtime, reader, tenant, dedicated, Some(ingester))
}
