//! Traces held in memory (live, or in the head block), in chunks that queries read as rows.
//!
//! Traces are kept in chunks of about [`CHUNK_BYTES`], in the order they arrive. Queries read
//! them as span-table rows. Each chunk is converted to rows once, and the rows are kept until
//! the chunk changes: spans join one of its traces, a trace leaves it, or a trace joins the
//! open chunk. So a search during ingest converts only what changed since the last one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;

use super::held::{HeldTrace, HeldTraces, decode};
use crate::config::DedicatedColumn;
use crate::storage::to_arrow::{SpanBatchBuilder, trace_span_refs};
use crate::storage::{TagCatalog, TraceId};

/// Encoded bytes of traces a chunk takes before the next one opens.
const CHUNK_BYTES: u64 = 4 << 20;

/// Held traces as span-table rows, with their tag catalog: what queries read.
#[derive(Debug, Default)]
pub struct Rows {
    pub batches: Vec<RecordBatch>,
    pub catalog: Arc<TagCatalog>,
    /// Memory the batches hold.
    pub bytes: u64,
}

impl Rows {
    /// The rows of held traces, one trace at a time.
    pub fn of(traces: &HeldTraces, dedicated: &[DedicatedColumn]) -> Result<Self, ArrowError> {
        let mut builder = SpanBatchBuilder::new(dedicated);
        let mut batches = Vec::new();
        for (id, trace) in traces {
            let batches_of_trace = decode(&trace.encoded);
            builder.append_trace(*id, &trace_span_refs(&batches_of_trace))?;
            if builder.len() >= 8192 {
                batches.push(builder.finish()?);
            }
        }
        if !builder.is_empty() {
            batches.push(builder.finish()?);
        }
        let bytes = batches
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum();
        Ok(Self {
            batches,
            catalog: Arc::new(builder.take_catalog().finish()),
            bytes,
        })
    }
}

struct Chunk {
    traces: HeldTraces,
    bytes: u64,
    /// Changes whenever the chunk does: rows made from an older version are not stored.
    version: u64,
    rows: Option<Arc<Rows>>,
}

/// Held traces in chunks; each trace is in one chunk.
#[derive(Default)]
pub struct Chunks {
    /// By serial number: the last one is open to new traces.
    chunks: BTreeMap<u64, Chunk>,
    /// The chunk holding each trace.
    index: HashMap<TraceId, u64>,
    bytes: u64,
    /// Memory of the rows kept for queries.
    rows_bytes: u64,
    /// Serial numbers of chunks, and versions of their contents.
    next: u64,
}

/// A chunk whose rows a query has to make, and the version they will be for.
pub struct Pending {
    pub version: u64,
    pub traces: HeldTraces,
}

impl Chunks {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Traces held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Memory of the rows kept for queries.
    pub fn rows_bytes(&self) -> u64 {
        self.rows_bytes
    }

    pub fn get(&self, id: &TraceId) -> Option<&HeldTrace> {
        self.chunks.get(self.index.get(id)?)?.traces.get(id)
    }

    pub fn contains(&self, id: &TraceId) -> bool {
        self.index.contains_key(id)
    }

    /// Every trace held.
    pub fn iter(&self) -> impl Iterator<Item = (&TraceId, &HeldTrace)> {
        self.chunks.values().flat_map(|c| c.traces.iter())
    }

    /// Adds the spans of trace `id`: after its earlier spans if held, else to the open chunk.
    pub fn add(&mut self, id: TraceId, trace: HeldTrace) {
        self.bytes += trace.bytes();
        let serial = match self.index.get(&id) {
            Some(&serial) => serial,
            None => {
                let open = self
                    .chunks
                    .last_key_value()
                    .filter(|(_, open)| open.bytes < CHUNK_BYTES)
                    .map(|(serial, _)| *serial);
                let serial = match open {
                    Some(serial) => serial,
                    None => {
                        self.next += 1;
                        self.chunks.insert(
                            self.next,
                            Chunk {
                                traces: HeldTraces::new(),
                                bytes: 0,
                                version: 0,
                                rows: None,
                            },
                        );
                        self.next
                    }
                };
                self.index.insert(id, serial);
                serial
            }
        };
        let chunk = self.changed(serial);
        chunk.bytes += trace.bytes();
        match chunk.traces.get_mut(&id) {
            Some(held) => held.append(&trace),
            None => {
                chunk.traces.insert(id, trace);
            }
        }
    }

    /// Takes trace `id` out.
    pub fn remove(&mut self, id: &TraceId) -> Option<HeldTrace> {
        let serial = self.index.remove(id)?;
        let chunk = self.changed(serial);
        let trace = chunk.traces.remove(id)?;
        chunk.bytes -= trace.bytes();
        if chunk.traces.is_empty() {
            self.chunks.remove(&serial);
        }
        self.bytes -= trace.bytes();
        Some(trace)
    }

    /// Chunk `serial`, about to change: a new version, without rows.
    fn changed(&mut self, serial: u64) -> &mut Chunk {
        self.next += 1;
        let chunk = self.chunks.get_mut(&serial).expect("indexed chunk");
        chunk.version = self.next;
        if let Some(rows) = chunk.rows.take() {
            self.rows_bytes -= rows.bytes;
        }
        chunk
    }

    /// Everything held, leaving none.
    pub fn take(&mut self) -> HeldTraces {
        let chunks = std::mem::take(&mut self.chunks);
        self.index.clear();
        self.bytes = 0;
        self.rows_bytes = 0;
        // Each trace is in one chunk.
        chunks.into_values().flat_map(|c| c.traces).collect()
    }

    /// The rows of the chunks that have them, and the chunks that need them made.
    pub fn rows(&self) -> (Vec<Arc<Rows>>, Vec<Pending>) {
        let mut ready = Vec::new();
        let mut pending = Vec::new();
        for chunk in self.chunks.values() {
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
            .values()
            .map(|chunk| Pending {
                version: chunk.version,
                traces: chunk.traces.clone(),
            })
            .collect()
    }

    /// Keeps rows made for version `version` of a chunk, if the chunk is still at it.
    pub fn keep_rows(&mut self, version: u64, rows: Arc<Rows>) {
        if let Some(chunk) = self.chunks.values_mut().find(|c| c.version == version) {
            self.rows_bytes += rows.bytes;
            if let Some(replaced) = chunk.rows.replace(rows) {
                self.rows_bytes -= replaced.bytes;
            }
        }
    }
}
