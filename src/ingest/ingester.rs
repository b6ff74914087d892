//! The ingester: spans are logged to the WAL, then held per trace in memory ("live"). A trace
//! with no new span for `trace_idle_period` moves to the tenant's head block; the head block
//! is cut by age or size and written as a block. Live, head and in-flight blocks stay readable
//! until the block is in the blocklist. On start the WAL is replayed.
//!
//! Traces are held protobuf-encoded (an `ExportTraceServiceRequest` per trace; appending two
//! encodings concatenates their resource-spans), which is several times smaller than decoded
//! OTLP structs; they are decoded one trace at a time when read or written to a block.

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

use super::metrics;
use super::wal::{SyncPolicy, Wal, WalError};
use crate::storage::block::BlockError;
use crate::storage::combine::{combine, span_count};
use crate::storage::{BlockOptions, BlockWriter, Blocklist, TraceId, split_by_trace};

/// Traces of one tenant grouped by id.
pub type Traces = BTreeMap<TraceId, Vec<ResourceSpans>>;
/// One trace held in memory: an encoded `ExportTraceServiceRequest`, and the earliest start
/// of its spans (what a large head block is split by).
#[derive(Clone)]
struct HeldTrace {
    encoded: Vec<u8>,
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

    fn append(&mut self, other: &HeldTrace) {
        self.encoded.extend_from_slice(&other.encoded);
        self.start = self.start.min(other.start);
    }

    fn bytes(&self) -> u64 {
        self.encoded.len() as u64
    }
}

/// Traces of one tenant by id.
type HeldTraces = BTreeMap<TraceId, HeldTrace>;

/// Adds `trace` to `traces`, after what is held of it already.
fn hold(traces: &mut HeldTraces, id: TraceId, trace: HeldTrace) {
    match traces.get_mut(&id) {
        Some(held) => held.append(&trace),
        None => {
            traces.insert(id, trace);
        }
    }
}

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

struct LiveTrace {
    trace: HeldTrace,
    last_append: Instant,
}

#[derive(Default)]
struct TenantState {
    live: HashMap<TraceId, LiveTrace>,
    head: HeldTraces,
    head_bytes: u64,
    head_since: Option<Instant>,
    /// Blocks being written (their ids and traces): still readable until in the blocklist.
    flushing: Vec<(Uuid, Arc<HeldTraces>)>,
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

fn decode(encoded: &[u8]) -> Vec<ResourceSpans> {
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
                s.live.get(id).map_or(0, |t| t.trace.bytes())
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
            if let Some(head) = state.head.get_mut(&id) {
                head.append(&trace);
                state.head_bytes += bytes;
                continue;
            }
            match state.live.get_mut(&id) {
                Some(live) => {
                    live.trace.append(&trace);
                    live.last_append = now;
                }
                None => {
                    state.live.insert(
                        id,
                        LiveTrace {
                            trace,
                            last_append: now,
                        },
                    );
                }
            }
        }
    }

    /// Everything `tenant` has in memory as span-table record batches (with `dedicated`
    /// columns), one trace at a time in trace id order; parts of a trace held in several
    /// places (live and head) are combined first.
    pub fn live_spans(
        &self,
        tenant: &str,
        dedicated: &[crate::config::DedicatedColumn],
    ) -> Result<LiveSpans, arrow::error::ArrowError> {
        let (batches, _, flushing_blocks) = self.snapshot(tenant, dedicated)?;
        Ok(LiveSpans {
            batches,
            flushing_blocks,
        })
    }

    /// The tag catalog of what `tenant` has in memory.
    pub fn tag_catalog(
        &self,
        tenant: &str,
    ) -> Result<crate::storage::TagCatalog, arrow::error::ArrowError> {
        Ok(self.snapshot(tenant, &[])?.1)
    }

    fn snapshot(
        &self,
        tenant: &str,
        dedicated: &[crate::config::DedicatedColumn],
    ) -> Result<
        (
            Vec<arrow::array::RecordBatch>,
            crate::storage::TagCatalog,
            Vec<Uuid>,
        ),
        arrow::error::ArrowError,
    > {
        // Copy the encoded traces out under the lock; decode and convert outside it.
        let mut traces: BTreeMap<TraceId, Vec<Vec<u8>>> = BTreeMap::new();
        let mut flushing_blocks = Vec::new();
        {
            let tenants = self.tenants.lock().expect("ingester lock");
            let Some(state) = tenants.get(tenant) else {
                return Ok(Default::default());
            };
            for (id, live) in &state.live {
                traces
                    .entry(*id)
                    .or_default()
                    .push(live.trace.encoded.clone());
            }
            for (id, head) in &state.head {
                traces.entry(*id).or_default().push(head.encoded.clone());
            }
            for (block, flushing) in &state.flushing {
                flushing_blocks.push(*block);
                for (id, trace) in flushing.iter() {
                    traces.entry(*id).or_default().push(trace.encoded.clone());
                }
            }
        }
        let mut builder = crate::storage::to_arrow::SpanBatchBuilder::new(dedicated);
        let mut batches = Vec::new();
        for (id, parts) in traces {
            let combined = combine(parts.iter().map(|p| decode(p)));
            let spans = crate::storage::to_arrow::trace_span_refs(&combined);
            builder.append_trace(id, &spans)?;
            if builder.len() >= 8192 {
                batches.push(builder.finish()?);
            }
        }
        if !builder.is_empty() {
            batches.push(builder.finish()?);
        }
        Ok((batches, builder.take_catalog().finish(), flushing_blocks))
    }

    /// Every part of trace `id` held in memory (live, head, being flushed).
    pub fn find_trace(&self, tenant: &str, id: &TraceId) -> Vec<Vec<ResourceSpans>> {
        let tenants = self.tenants.lock().expect("ingester lock");
        let Some(state) = tenants.get(tenant) else {
            return Vec::new();
        };
        let mut parts = Vec::new();
        if let Some(live) = state.live.get(id) {
            parts.push(decode(&live.trace.encoded));
        }
        if let Some(head) = state.head.get(id) {
            parts.push(decode(&head.encoded));
        }
        for (_, flushing) in &state.flushing {
            if let Some(trace) = flushing.get(id) {
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
                    .live
                    .iter()
                    .filter(|(_, t)| force || now - t.last_append >= self.options.trace_idle_period)
                    .map(|(id, _)| *id)
                    .collect();
                for id in idle {
                    let trace = state.live.remove(&id).expect("listed");
                    state.head_bytes += trace.trace.bytes();
                    hold(&mut state.head, id, trace.trace);
                    state.head_since.get_or_insert(now);
                }
                metrics::LIVE_TRACES
                    .with_label_values(&[tenant.as_str()])
                    .set(state.live.len() as i64);
                due |= !state.head.is_empty()
                    && (force
                        || state.head_bytes >= self.options.max_block_bytes
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
                    for live in state.live.values() {
                        relog.push((tenant.clone(), live.trace.encoded.clone()));
                    }
                    if !state.head.is_empty() {
                        let head = std::mem::take(&mut state.head);
                        state.head_bytes = 0;
                        state.head_since = None;
                        for block in split_head(head, self.options.max_block_bytes) {
                            let (id, block) = (Uuid::new_v4(), Arc::new(block));
                            state.flushing.push((id, block.clone()));
                            cut.push((tenant.clone(), id, block));
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
            state.flushing.retain(|(id, _)| *id != block_id);
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
                    for (id, trace) in head {
                        hold(&mut state.head, id, trace);
                    }
                    state.head_bytes += bytes;
                    state.head_since.get_or_insert(Instant::now());
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
