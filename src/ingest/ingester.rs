//! The ingester: spans are logged to the WAL, then held per trace in memory ("live"). A trace
//! with no new span for `trace_idle_period` moves to the tenant's head block; the head block
//! is cut by age or size and written as a block. Live, head and in-flight blocks stay readable
//! until the block is in the blocklist. On start the WAL is replayed.
//!
//! Traces are held protobuf-encoded (an `ExportTraceServiceRequest` per trace; appending two
//! encodings concatenates their resource-spans), which is several times smaller than decoded
//! OTLP structs; they are decoded one trace at a time when read or written to a block. Live
//! and head traces are held in chunks whose span-table rows queries keep until the chunk
//! changes (`chunks.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use uuid::Uuid;

use super::chunks::{Chunks, Rows};
use super::metrics;
use super::wal::{SyncPolicy, Wal, WalError};
use crate::storage::block::BlockError;
use crate::storage::combine::span_count;
use crate::storage::{BlockOptions, BlockWriter, Blocklist, TraceId, split_by_trace};

/// Traces of one tenant grouped by id.
pub type Traces = BTreeMap<TraceId, Vec<ResourceSpans>>;
/// One trace held in memory: an encoded `ExportTraceServiceRequest`, and the earliest start
/// of its spans (what a large head block is split by).
#[derive(Clone)]
pub(super) struct HeldTrace {
    pub(super) encoded: Vec<u8>,
    start: u64,
}

impl HeldTrace {
    fn new(batches: Vec<ResourceSpans>) -> Self {
        let start = batches
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|span| span.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        Self {
            encoded: encode(batches),
            start,
        }
    }

    pub(super) fn append(&mut self, other: &HeldTrace) {
        self.encoded.extend_from_slice(&other.encoded);
        self.start = self.start.min(other.start);
    }

    pub(super) fn bytes(&self) -> u64 {
        self.encoded.len() as u64
    }
}

/// Traces of one tenant by id.
pub(super) type HeldTraces = BTreeMap<TraceId, HeldTrace>;

#[derive(Debug, Clone)]
pub struct IngesterOptions {
    pub trace_idle_period: Duration,
    pub max_block_duration: Duration,
    pub max_block_bytes: u64,
    /// Live, head and flushing data beyond this refuses new pushes until flushing catches up.
    pub max_memory_bytes: u64,
    /// Spans that would make a trace held here larger than this are refused; 0: no limit.
    pub max_bytes_per_trace: u64,
    pub block: BlockOptions,
}

/// Why cutting blocks failed; the data stays in memory and in the WAL.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Block(#[from] BlockError),
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(
        "ingester is over its memory limit ({held} bytes held) while blocks are being written; retry later"
    )]
    Overloaded { held: u64 },
    #[error("{0}")]
    Wal(#[from] WalError),
}

/// Traces a push refused because they would grow past `max_bytes_per_trace`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    pub traces: usize,
    pub spans: usize,
    pub limit: u64,
}

#[derive(Default)]
struct TenantState {
    /// Traces still receiving spans.
    live: Chunks,
    last_append: HashMap<TraceId, Instant>,
    /// Traces gone idle, until the head block is cut.
    head: Chunks,
    head_since: Option<Instant>,
    /// Blocks being written: still readable until they are in the blocklist.
    flushing: Vec<Flushing>,
}

struct Flushing {
    block_id: Uuid,
    traces: Arc<HeldTraces>,
    /// Made by the first query that reads the block while it is written.
    rows: Option<Arc<Rows>>,
}

/// What a tenant has in memory, as span-table record batches.
#[derive(Debug, Default)]
pub struct LiveSpans {
    pub batches: Vec<arrow::array::RecordBatch>,
    /// Blocks whose spans are among `batches` because they are still being written; a reader
    /// that also lists blocks must leave these out, or it would read their spans twice.
    pub flushing_blocks: Vec<Uuid>,
}

pub struct Ingester {
    options: IngesterOptions,
    wal: Wal,
    store: Arc<dyn ObjectStore>,
    blocklist: Arc<Blocklist>,
    tenants: Mutex<HashMap<String, TenantState>>,
    /// Pushes hold it shared from WAL append to memory insert; a cut holds it exclusively, so
    /// no acknowledged span can fall between the WAL segments it deletes and memory.
    cut_lock: tokio::sync::RwLock<()>,
    held_bytes: AtomicU64,
}

fn encode(batches: Vec<ResourceSpans>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: batches,
    }
    .encode_to_vec()
}

pub(super) fn decode(encoded: &[u8]) -> Vec<ResourceSpans> {
    // Only this process encoded these bytes.
    ExportTraceServiceRequest::decode(encoded)
        .map(|r| r.resource_spans)
        .unwrap_or_default()
}

/// Splits a head block into blocks of at most `max_bytes` each, by trace start time, as if
/// they had been cut one after the other while the spans arrived: each block then covers its
/// own stretch of time, which lets a newest-first search stop early. A trace is never split,
/// so one trace larger than `max_bytes` makes a larger block.
fn split_head(head: HeldTraces, max_bytes: u64) -> Vec<HeldTraces> {
    let mut by_start: Vec<(TraceId, HeldTrace)> = head.into_iter().collect();
    by_start.sort_by_key(|(id, trace)| (trace.start, *id));
    let mut blocks = Vec::new();
    let mut block = HeldTraces::new();
    let mut bytes = 0;
    for (id, trace) in by_start {
        if !block.is_empty() && bytes + trace.bytes() > max_bytes {
            blocks.push(std::mem::take(&mut block));
            bytes = 0;
        }
        bytes += trace.bytes();
        block.insert(id, trace);
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

impl Ingester {
    /// Opens the WAL in `wal_dir` and replays it into live traces.
    pub fn open(
        options: IngesterOptions,
        wal_dir: &Path,
        sync: SyncPolicy,
        store: Arc<dyn ObjectStore>,
        blocklist: Arc<Blocklist>,
    ) -> Result<Arc<Self>, WalError> {
        let (wal, records) = Wal::open(wal_dir, sync)?;
        let ingester = Arc::new(Self {
            options,
            wal,
            store,
            blocklist,
            tenants: Mutex::new(HashMap::new()),
            cut_lock: tokio::sync::RwLock::new(()),
            held_bytes: AtomicU64::new(0),
        });
        let mut replayed = 0usize;
        for record in records {
            match ExportTraceServiceRequest::decode(record.request.as_slice()) {
                Ok(request) => {
                    let (traces, _) = split_by_trace(request.resource_spans);
                    replayed += traces.len();
                    let held = traces
                        .into_iter()
                        .map(|(id, t)| (id, HeldTrace::new(t)))
                        .collect();
                    ingester.insert(&record.tenant, held);
                }
                Err(error) => tracing::warn!(%error, "skipping an undecodable WAL record"),
            }
        }
        if replayed > 0 {
            tracing::info!(traces = replayed, "replayed the write-ahead log");
        }
        Ok(ingester)
    }

    /// Logs and holds the spans of one request. Returns once they are durable, with what was
    /// refused for making a trace too large.
    pub async fn push(&self, tenant: &str, traces: Traces) -> Result<Refused, PushError> {
        let held = self.held_bytes.load(Ordering::Relaxed);
        if held > self.options.max_memory_bytes {
            return Err(PushError::Overloaded { held });
        }
        let mut refused = Refused {
            limit: self.options.max_bytes_per_trace,
            ..Refused::default()
        };
        let mut encoded: HeldTraces = traces
            .into_iter()
            .map(|(id, batches)| (id, HeldTrace::new(batches)))
            .collect();
        self.refuse_oversized(tenant, &mut encoded, &mut refused);
        if encoded.is_empty() {
            return Ok(refused);
        }
        // Concatenated encodings are one request with every trace's resource-spans.
        let record = encoded
            .values()
            .map(|t| t.encoded.as_slice())
            .collect::<Vec<_>>()
            .concat();
        let _shared = self.cut_lock.read().await;
        self.wal.append(tenant, &record).await?;
        self.insert(tenant, encoded);
        Ok(refused)
    }

    /// Drops the traces that would grow past the per-trace limit, counting what is held now.
    fn refuse_oversized(&self, tenant: &str, traces: &mut HeldTraces, refused: &mut Refused) {
        let limit = self.options.max_bytes_per_trace;
        if limit == 0 {
            return;
        }
        let tenants = self.tenants.lock().expect("ingester lock");
        let state = tenants.get(tenant);
        traces.retain(|id, trace| {
            let held = state.map_or(0, |s| {
                s.live.get(id).map_or(0, HeldTrace::bytes)
                    + s.head.get(id).map_or(0, HeldTrace::bytes)
            });
            if held + trace.bytes() <= limit {
                return true;
            }
            refused.traces += 1;
            refused.spans += span_count(&decode(&trace.encoded));
            false
        });
    }

    fn insert(&self, tenant: &str, traces: HeldTraces) {
        let now = Instant::now();
        let mut tenants = self.tenants.lock().expect("ingester lock");
        let state = tenants.entry(tenant.to_string()).or_default();
        for (id, trace) in traces {
            let bytes = trace.bytes();
            self.held_bytes.fetch_add(bytes, Ordering::Relaxed);
            // A late span of a trace already in the head block joins it there.
            if state.head.contains(&id) {
                state.head.add(id, trace);
            } else {
                state.live.add(id, trace);
                state.last_append.insert(id, now);
            }
        }
    }

    /// Everything `tenant` has in memory as span-table record batches (with `dedicated`
    /// columns). Rows are kept between calls, for each chunk of traces until it changes.
    pub fn live_spans(
        &self,
        tenant: &str,
        dedicated: &[crate::config::DedicatedColumn],
    ) -> Result<LiveSpans, arrow::error::ArrowError> {
        let (rows, flushing_blocks) = self.snapshot(tenant, dedicated)?;
        Ok(LiveSpans {
            batches: rows.iter().flat_map(|r| r.batches.clone()).collect(),
            flushing_blocks,
        })
    }

    /// The tag catalog of what `tenant` has in memory.
    pub fn tag_catalog(
        &self,
        tenant: &str,
    ) -> Result<crate::storage::TagCatalog, arrow::error::ArrowError> {
        let (rows, _) = self.snapshot(tenant, &self.options.block.dedicated_columns)?;
        let mut catalog = crate::storage::TagCatalog::default();
        for part in rows {
            catalog.merge(&part.catalog);
        }
        Ok(catalog)
    }

    /// The rows of everything `tenant` holds, and the blocks being written among them.
    fn snapshot(
        &self,
        tenant: &str,
        dedicated: &[crate::config::DedicatedColumn],
    ) -> Result<(Vec<Arc<Rows>>, Vec<Uuid>), arrow::error::ArrowError> {
        // Rows kept are only for the ingester's own columns.
        let reuse = dedicated == self.options.block.dedicated_columns.as_slice();
        // Copy what needs converting out under the lock; convert outside it.
        let (mut rows, pending, flushing_pending, flushing_blocks) = {
            let tenants = self.tenants.lock().expect("ingester lock");
            let Some(state) = tenants.get(tenant) else {
                return Ok(Default::default());
            };
            let mut rows = Vec::new();
            let mut pending = Vec::new();
            for (in_head, chunks) in [(false, &state.live), (true, &state.head)] {
                let to_make = if reuse {
                    let (ready, to_make) = chunks.rows();
                    rows.extend(ready);
                    to_make
                } else {
                    chunks.rows_anew()
                };
                pending.extend(to_make.into_iter().map(|p| (in_head, p)));
            }
            let mut flushing_pending = Vec::new();
            for flushing in &state.flushing {
                match &flushing.rows {
                    Some(r) if reuse => rows.push(r.clone()),
                    _ => flushing_pending.push((flushing.block_id, flushing.traces.clone())),
                }
            }
            let blocks = state.flushing.iter().map(|f| f.block_id).collect();
            (rows, pending, flushing_pending, blocks)
        };
        let mut made_chunks = Vec::new();
        for (in_head, chunk) in pending {
            let made = Arc::new(Rows::of(&chunk.traces, dedicated)?);
            rows.push(made.clone());
            made_chunks.push((in_head, chunk.version, made));
        }
        let mut made_flushing = Vec::new();
        for (block_id, traces) in flushing_pending {
            let made = Arc::new(Rows::of(&traces, dedicated)?);
            rows.push(made.clone());
            made_flushing.push((block_id, made));
        }
        if reuse && (!made_chunks.is_empty() || !made_flushing.is_empty()) {
            let mut tenants = self.tenants.lock().expect("ingester lock");
            if let Some(state) = tenants.get_mut(tenant) {
                for (in_head, version, made) in made_chunks {
                    let chunks = if in_head {
                        &mut state.head
                    } else {
                        &mut state.live
                    };
                    chunks.keep_rows(version, made);
                }
                for (block_id, made) in made_flushing {
                    if let Some(f) = state.flushing.iter_mut().find(|f| f.block_id == block_id) {
                        f.rows = Some(made);
                    }
                }
            }
        }
        Ok((rows, flushing_blocks))
    }

    /// Every part of trace `id` held in memory (live, head, being flushed).
    pub fn find_trace(&self, tenant: &str, id: &TraceId) -> Vec<Vec<ResourceSpans>> {
        let tenants = self.tenants.lock().expect("ingester lock");
        let Some(state) = tenants.get(tenant) else {
            return Vec::new();
        };
        let mut parts = Vec::new();
        if let Some(live) = state.live.get(id) {
            parts.push(decode(&live.encoded));
        }
        if let Some(head) = state.head.get(id) {
            parts.push(decode(&head.encoded));
        }
        for flushing in &state.flushing {
            if let Some(trace) = flushing.traces.get(id) {
                parts.push(decode(&trace.encoded));
            }
        }
        parts
    }

    /// Moves idle traces to the head blocks and cuts them when they are old or big enough.
    /// With `force`, everything held is cut now (shutdown). Returns the blocks written.
    pub async fn tick(&self, force: bool) -> Result<usize, CutError> {
        let now = Instant::now();
        let cut_due = {
            let mut tenants = self.tenants.lock().expect("ingester lock");
            let mut due = false;
            for (tenant, state) in tenants.iter_mut() {
                let idle: Vec<TraceId> = state
                    .last_append
                    .iter()
                    .filter(|(_, t)| force || now - **t >= self.options.trace_idle_period)
                    .map(|(id, _)| *id)
                    .collect();
                for id in idle {
                    state.last_append.remove(&id);
                    let trace = state.live.remove(&id).expect("live trace");
                    state.head.add(id, trace);
                    state.head_since.get_or_insert(now);
                }
                metrics::LIVE_TRACES
                    .with_label_values(&[tenant.as_str()])
                    .set(state.live.len() as i64);
                due |= !state.head.is_empty()
                    && (force
                        || state.head.bytes() >= self.options.max_block_bytes
                        || state
                            .head_since
                            .is_some_and(|t| now - t >= self.options.max_block_duration));
            }
            due
        };
        if !cut_due {
            return Ok(0);
        }
        self.cut().await
    }

    /// Cuts every non-empty head block into blocks of at most `max_block_bytes`: rotates the
    /// WAL, re-logs what stays live into the new segment, writes the blocks, and drops the old
    /// segments once every block is stored.
    async fn cut(&self) -> Result<usize, CutError> {
        let (segment, cut) = {
            let _exclusive = self.cut_lock.write().await;
            let segment = self.wal.rotate().await?;
            let (relog, cut) = {
                let mut tenants = self.tenants.lock().expect("ingester lock");
                let mut relog = Vec::new();
                let mut cut = Vec::new();
                for (tenant, state) in tenants.iter_mut() {
                    for (_, live) in state.live.iter() {
                        relog.push((tenant.clone(), live.encoded.clone()));
                    }
                    if !state.head.is_empty() {
                        let head = state.head.take();
                        state.head_since = None;
                        for block in split_head(head, self.options.max_block_bytes) {
                            let (block_id, traces) = (Uuid::new_v4(), Arc::new(block));
                            state.flushing.push(Flushing {
                                block_id,
                                traces: traces.clone(),
                                rows: None,
                            });
                            cut.push((tenant.clone(), block_id, traces));
                        }
                    }
                }
                (relog, cut)
            };
            for (tenant, encoded) in relog {
                self.wal.append(&tenant, &encoded).await?;
            }
            (segment, cut)
        };

        let mut written = 0;
        let mut failed = None;
        for (tenant, block_id, head) in cut {
            let result = self.write_head(&tenant, block_id, &head).await;
            let bytes: u64 = head.values().map(HeldTrace::bytes).sum();
            // Readers look in memory first, then in the blocklist: the block must be listed
            // before its traces leave memory, or a reader in between would find neither.
            if let Ok(meta) = &result {
                self.blocklist.insert(meta.clone());
            }
            let mut tenants = self.tenants.lock().expect("ingester lock");
            let state = tenants.entry(tenant.clone()).or_default();
            state.flushing.retain(|f| f.block_id != block_id);
            match result {
                Ok(meta) => {
                    tracing::info!(block = %meta.block_id, tenant, traces = meta.total_traces, spans = meta.total_spans, bytes = meta.size, "block written");
                    self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
                    metrics::BLOCKS_FLUSHED.inc();
                    written += 1;
                }
                Err(error) => {
                    tracing::error!(%error, tenant, "writing a block failed; its traces stay in the head block and the WAL");
                    metrics::FLUSH_FAILURES.inc();
                    // Back into the head block, to be cut again at the next tick.
                    let head = Arc::try_unwrap(head).unwrap_or_else(|shared| (*shared).clone());
                    let now = Instant::now();
                    for (id, trace) in head {
                        state.head.add(id, trace);
                    }
                    state.head_since.get_or_insert(now);
                    failed = Some(error);
                }
            }
        }
        match failed {
            Some(error) => Err(error.into()),
            None => {
                self.wal.remove_before(segment)?;
                Ok(written)
            }
        }
    }

    /// Writes one head block as block `block_id`, decoding a trace at a time.
    async fn write_head(
        &self,
        tenant: &str,
        block_id: Uuid,
        head: &HeldTraces,
    ) -> Result<crate::storage::BlockMeta, BlockError> {
        let mut writer = BlockWriter::with_id(
            self.store.clone(),
            tenant,
            self.options.block.clone(),
            block_id,
        )?;
        for (id, trace) in head {
            writer.append_trace(*id, &decode(&trace.encoded)).await?;
        }
        writer.finish().await
    }

    /// Ticks every second until aborted.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(error) = self.tick(false).await {
                    tracing::warn!(%error, "cutting blocks failed; will retry");
                }
            }
        })
    }
}
