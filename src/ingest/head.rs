//! A tenant's head block: traces gone idle, held until the head is cut into blocks.
//!
//! The head is kept in chunks of about [`CHUNK_BYTES`]. Queries read the head as span-table
//! rows. Each chunk is converted to rows once and the rows are kept until the chunk changes
//! (a late span joins one of its traces, or more traces join the open chunk). So a search
//! during ingest converts only what changed since the last one, not the whole head.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;

use super::ingester::{HeldTrace, HeldTraces, decode};
use crate::config::DedicatedColumn;
use crate::storage::combine::combine;
use crate::storage::to_arrow::{SpanBatchBuilder, trace_span_refs};
use crate::storage::{TagCatalog, TraceId};

/// Encoded bytes of traces a chunk takes before the next one opens.
const CHUNK_BYTES: u64 = 4 << 20;

/// Held traces as span-table rows, with their tag catalog: what queries read.
#[derive(Debug, Default)]
pub struct Rows {
    pub batches: Vec<RecordBatch>,
    pub catalog: TagCatalog,
}

impl Rows {
    /// Rows of traces given as the encoded parts of each, one trace at a time in the order
    /// given; the parts of a trace are combined first.
    pub fn convert<'a>(
        traces: impl IntoIterator<Item = (TraceId, Vec<&'a [u8]>)>,
        dedicated: &[DedicatedColumn],
    ) -> Result<Self, ArrowError> {
        let mut builder = SpanBatchBuilder::new(dedicated);
        let mut batches = Vec::new();
        for (id, parts) in traces {
            let combined = combine(parts.into_iter().map(decode));
            builder.append_trace(id, &trace_span_refs(&combined))?;
            if builder.len() >= 8192 {
                batches.push(builder.finish()?);
            }
        }
        if !builder.is_empty() {
            batches.push(builder.finish()?);
        }
        Ok(Self {
            batches,
            catalog: builder.take_catalog().finish(),
        })
    }

    /// The rows of held traces (each in one part).
    pub fn of(traces: &HeldTraces, dedicated: &[DedicatedColumn]) -> Result<Self, ArrowError> {
        Self::convert(
            traces
                .iter()
                .map(|(id, trace)| (*id, vec![trace.encoded.as_slice()])),
            dedicated,
        )
    }
}

struct Chunk {
    traces: HeldTraces,
    bytes: u64,
    /// Changes whenever the chunk does: rows made from an older version are not stored.
    version: u64,
    rows: Option<Arc<Rows>>,
}

#[derive(Default)]
pub struct Head {
    chunks: Vec<Chunk>,
    /// The chunk holding each trace.
    index: HashMap<TraceId, usize>,
    bytes: u64,
    since: Option<Instant>,
    next_version: u64,
}

/// A chunk whose rows a query has to make, and the version they will be for.
pub struct Pending {
    pub version: u64,
    pub traces: HeldTraces,
}

impl Head {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// When the first trace of this head arrived.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    pub fn get(&self, id: &TraceId) -> Option<&HeldTrace> {
        self.chunks[*self.index.get(id)?].traces.get(id)
    }

    pub fn contains(&self, id: &TraceId) -> bool {
        self.index.contains_key(id)
    }

    /// Adds the spans of trace `id`: after its earlier spans if the head holds it, else to the
    /// open chunk.
    pub fn add(&mut self, id: TraceId, trace: HeldTrace, now: Instant) {
        self.bytes += trace.bytes();
        self.since.get_or_insert(now);
        let at = match self.index.get(&id) {
            Some(&at) => at,
            None => {
                if self
                    .chunks
                    .last()
                    .is_none_or(|open| open.bytes >= CHUNK_BYTES)
                {
                    self.chunks.push(Chunk {
                        traces: HeldTraces::new(),
                        bytes: 0,
                        version: 0,
                        rows: None,
                    });
                }
                self.index.insert(id, self.chunks.len() - 1);
                self.chunks.len() - 1
            }
        };
        self.next_version += 1;
        let chunk = &mut self.chunks[at];
        chunk.bytes += trace.bytes();
        chunk.version = self.next_version;
        chunk.rows = None;
        match chunk.traces.get_mut(&id) {
            Some(held) => held.append(&trace),
            None => {
                chunk.traces.insert(id, trace);
            }
        }
    }

    /// Everything held, leaving the head empty.
    pub fn take(&mut self) -> HeldTraces {
        let chunks = std::mem::take(&mut self.chunks);
        self.index.clear();
        self.bytes = 0;
        self.since = None;
        // Each trace is in one chunk.
        chunks.into_iter().flat_map(|c| c.traces).collect()
    }

    /// The rows of the chunks that have them, and the chunks that need them made.
    pub fn rows(&self) -> (Vec<Arc<Rows>>, Vec<Pending>) {
        let mut ready = Vec::new();
        let mut pending = Vec::new();
        for chunk in &self.chunks {
            match &chunk.rows {
                Some(rows) => ready.push(rows.clone()),
                None => pending.push(Pending {
                    version: chunk.version,
                    traces: chunk.traces.clone(),
                }),
            }
        }
        (ready, pending)
    }

    /// Every chunk as pending, whatever rows it has (for rows with other columns).
    pub fn rows_anew(&self) -> Vec<Pending> {
        self.chunks
            .iter()
            .map(|chunk| Pending {
                version: chunk.version,
                traces: chunk.traces.clone(),
            })
            .collect()
    }

    /// Keeps rows made for version `version` of a chunk, if the chunk is still at it.
    pub fn keep_rows(&mut self, version: u64, rows: Arc<Rows>) {
        if let Some(chunk) = self.chunks.iter_mut().find(|c| c.version == version) {
            chunk.rows = Some(rows);
        }
    }
}
