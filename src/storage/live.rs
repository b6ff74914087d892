//! Spans a process holds in memory and has not finished writing to a block, as readers see
//! them. The ingester implements [`LiveData`]; the read path (span tables, attribute
//! resolution, tag discovery, trace by id) depends on this trait only.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use uuid::Uuid;

use super::{TagCatalog, TraceId};
use crate::config::DedicatedColumn;

/// What a tenant has in memory, as span-table record batches.
#[derive(Debug, Default)]
pub struct LiveSpans {
    pub batches: Vec<RecordBatch>,
    /// Blocks whose spans are among `batches` because they are still being written; a reader
    /// that also lists blocks must leave these out, or it would read their spans twice.
    pub flushing_blocks: Vec<Uuid>,
}

pub trait LiveData: Send + Sync {
    /// Everything `tenant` has in memory as span-table record batches (with `dedicated`
    /// columns).
    fn live_spans(
        &self,
        tenant: &str,
        dedicated: &[DedicatedColumn],
    ) -> Result<LiveSpans, ArrowError>;

    /// The tag catalogs of what `tenant` has in memory, one per part: a lookup of a few keys
    /// in each costs less than merging them.
    fn tag_catalogs(&self, tenant: &str) -> Result<Vec<Arc<TagCatalog>>, ArrowError>;

    /// The tag catalog of what `tenant` has in memory, merged.
    fn tag_catalog(&self, tenant: &str) -> Result<TagCatalog, ArrowError> {
        let mut catalog = TagCatalog::default();
        for part in self.tag_catalogs(tenant)? {
            catalog.merge(&part);
        }
        Ok(catalog)
    }

    /// Every part of trace `id` held in memory.
    fn find_trace(&self, tenant: &str, id: &TraceId) -> Vec<Vec<ResourceSpans>>;
}
