//! The ingester: spans are logged to the WAL, then held per trace in memory ("live"). A trace
//! with no new span for `trace_idle_period`, or live for `max_block_duration`, moves to the
//! tenant's head block; the head block is cut by age or size and written as a block. Live,
//! head and in-flight blocks stay readable until the block is in the blocklist.
//!
//! Every span is stored exactly once across crashes. Each held trace knows the oldest WAL
//! segment holding its spans; a segment is removed once no held trace needs it. A cut writes a
//! cut mark (`wal.rs`) before each block, and takes whole traces (a trace's live spans go with
//! its head spans), so on start the WAL is replayed without the records committed blocks hold.
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

use object_store::{ObjectStore, ObjectStoreExt};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use uuid::Uuid;

use super::chunks::{Chunks, Rows};
use super::held::{HeldTrace, HeldTraces, decode};
use super::metrics;
use super::wal::{CutMark, SyncPolicy, Wal, WalError};
use crate::crash_point;
use crate::storage::block::{
    BLOOM_FILE, BlockError, DATA_FILE, META_FILE, TAGS_FILE, block_object,
};
use crate::storage::combine::span_count;
use crate::storage::{
    BlockOptions, BlockWriter, Blocklist, LiveData, LiveSpans, TraceId, split_by_trace,
};

/// Traces of one tenant grouped by id.
pub type Traces = BTreeMap<TraceId, Vec<ResourceSpans>>;

#[derive(Debug, Clone)]
pub struct IngesterOptions {
    pub trace_idle_period: Duration,
    pub max_block_duration: Duration,
    pub max_block_bytes: u64,
    /// Live, head and flushing data (encoded, plus the rows kept for queries) beyond this
    /// refuses new pushes until flushing catches up.
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

/// Why the ingester could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(
        "cannot tell whether block {block} of tenant {tenant:?} was committed, so the write-ahead log cannot be replayed exactly: {source}; start again once the block store answers"
    )]
    Store {
        tenant: String,
        block: Uuid,
        #[source]
        source: object_store::Error,
    },
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
    /// When each live trace got its first and its latest spans.
    appended: HashMap<TraceId, Appended>,
    /// Traces gone idle, until the head block is cut.
    head: Chunks,
    head_since: Option<Instant>,
    /// Blocks being written: still readable until they are in the blocklist.
    flushing: Vec<Flushing>,
}

#[derive(Clone, Copy)]
struct Appended {
    first: Instant,
    last: Instant,
}

struct Flushing {
    block_id: Uuid,
    traces: Arc<HeldTraces>,
    /// Made by the first query that reads the block while it is written.
    rows: Option<Arc<Rows>>,
}

pub struct Ingester {
    options: IngesterOptions,
    wal: Wal,
    store: Arc<dyn ObjectStore>,
    blocklist: Arc<Blocklist>,
    tenants: Mutex<HashMap<String, TenantState>>,
    /// Pushes hold it shared from WAL append to memory insert; a cut holds it exclusively
    /// while it rotates the WAL and takes the head blocks, so everything it takes was logged
    /// before the segment it rotates to, and everything logged later is held after.
    cut_lock: tokio::sync::RwLock<()>,
    /// One cut at a time (the cutter task and shutdown).
    cutting: tokio::sync::Mutex<()>,
    held_bytes: AtomicU64,
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
    /// Opens the WAL in `wal_dir` and replays it into live traces, leaving out what committed
    /// blocks hold. Blocks a crash left uncommitted are deleted.
    pub async fn open(
        options: IngesterOptions,
        wal_dir: &Path,
        sync: SyncPolicy,
        store: Arc<dyn ObjectStore>,
        blocklist: Arc<Blocklist>,
    ) -> Result<Arc<Self>, OpenError> {
        let (wal, records) = Wal::open(wal_dir, sync)?;
        let ingester = Arc::new(Self {
            options,
            wal,
            store,
            blocklist,
            tenants: Mutex::new(HashMap::new()),
            cut_lock: tokio::sync::RwLock::new(()),
            cutting: tokio::sync::Mutex::new(()),
            held_bytes: AtomicU64::new(0),
        });
        let committed = ingester.resolve_cut_marks().await?;
        let (mut replayed, mut skipped) = (0usize, 0usize);
        for record in records {
            match ExportTraceServiceRequest::decode(record.request.as_slice()) {
                Ok(request) => {
                    let (traces, _) = split_by_trace(request.resource_spans);
                    let held: HeldTraces = traces
                        .into_iter()
                        .filter(|(id, _)| {
                            let key = (record.tenant.clone(), *id);
                            let in_block = committed
                                .get(&key)
                                .is_some_and(|before| record.segment < *before);
                            skipped += usize::from(in_block);
                            !in_block
                        })
                        .map(|(id, t)| (id, HeldTrace::new(t, record.segment)))
                        .collect();
                    replayed += held.len();
                    ingester.insert(&record.tenant, held);
                }
                Err(error) => tracing::warn!(%error, "skipping an undecodable WAL record"),
            }
        }
        if replayed + skipped > 0 {
            tracing::info!(
                traces = replayed,
                already_in_blocks = skipped,
                "replayed the write-ahead log"
            );
        }
        Ok(ingester)
    }

    /// For each trace of a committed block whose cut mark remains: the segment before which
    /// its records are in blocks. Deletes what uncommitted blocks left, and their marks.
    async fn resolve_cut_marks(&self) -> Result<HashMap<(String, TraceId), u64>, OpenError> {
        let mut committed: HashMap<(String, TraceId), u64> = HashMap::new();
        for mark in self.wal.cut_marks()? {
            // A mark past every segment there is belongs to a log that is gone (its segments
            // deleted by hand): the segments numbered anew must not be skipped by it.
            if mark.before_segment >= self.wal.first_segment() {
                tracing::warn!(block = %mark.block_id, "removing a cut mark of a write-ahead log that is gone");
                self.wal.remove_cut_mark(&mark)?;
                continue;
            }
            let meta = block_object(&mark.tenant, mark.block_id, META_FILE);
            match self.store.head(&meta).await {
                Ok(_) => {
                    for id in mark.trace_ids {
                        let before = committed.entry((mark.tenant.clone(), id)).or_default();
                        *before = (*before).max(mark.before_segment);
                    }
                }
                Err(object_store::Error::NotFound { .. }) => {
                    tracing::info!(block = %mark.block_id, tenant = mark.tenant, "removing a block a crash left unfinished; its spans are replayed from the write-ahead log");
                    self.remove_block_objects(&mark.tenant, mark.block_id)
                        .await
                        .map_err(|source| OpenError::Store {
                            tenant: mark.tenant.clone(),
                            block: mark.block_id,
                            source,
                        })?;
                    self.wal.remove_cut_mark(&mark)?;
                }
                Err(source) => {
                    return Err(OpenError::Store {
                        tenant: mark.tenant,
                        block: mark.block_id,
                        source,
                    });
                }
            }
        }
        Ok(committed)
    }

    /// Deletes the objects of a block that is not (or no longer) committed; `meta.json` first,
    /// so that readers stop seeing it before anything else goes.
    async fn remove_block_objects(&self, tenant: &str, block: Uuid) -> object_store::Result<()> {
        for file in [META_FILE, DATA_FILE, BLOOM_FILE, TAGS_FILE] {
            match self.store.delete(&block_object(tenant, block, file)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Logs and holds the spans of one request. Returns once they are durable, with what was
    /// refused for making a trace too large.
    pub async fn push(&self, tenant: &str, traces: Traces) -> Result<Refused, PushError> {
        let held = self.held_memory();
        if held > self.options.max_memory_bytes {
            return Err(PushError::Overloaded { held });
        }
        let mut refused = Refused {
            limit: self.options.max_bytes_per_trace,
            ..Refused::default()
        };
        let mut encoded: HeldTraces = traces
            .into_iter()
            .map(|(id, batches)| (id, HeldTrace::new(batches, u64::MAX)))
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
        let segment = self.wal.append(tenant, &record).await?;
        for trace in encoded.values_mut() {
            trace.segment = segment;
        }
        self.insert(tenant, encoded);
        Ok(refused)
    }

    /// Memory held: traces (encoded) and the rows kept for queries to read them by.
    fn held_memory(&self) -> u64 {
        let rows: u64 = {
            let tenants = self.tenants.lock().expect("ingester lock");
            tenants
                .values()
                .map(|state| {
                    let flushing: u64 = state
                        .flushing
                        .iter()
                        .filter_map(|f| f.rows.as_ref().map(|r| r.bytes))
                        .sum();
                    state.live.rows_bytes() + state.head.rows_bytes() + flushing
                })
                .sum()
        };
        self.held_bytes.load(Ordering::Relaxed) + rows
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
                state
                    .appended
                    .entry(id)
                    .and_modify(|a| a.last = now)
                    .or_insert(Appended {
                        first: now,
                        last: now,
                    });
            }
        }
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

    /// Moves idle traces to the head blocks and cuts them when they are old or big enough.
    /// With `force`, everything held is cut now (shutdown). Returns the blocks written.
    pub async fn tick(&self, force: bool) -> Result<usize, CutError> {
        let now = Instant::now();
        let cut_due = {
            let mut tenants = self.tenants.lock().expect("ingester lock");
            let mut due = false;
            for (tenant, state) in tenants.iter_mut() {
                // Idle traces, and traces live so long that the WAL segments they hold on to
                // would pile up.
                let done: Vec<TraceId> = state
                    .appended
                    .iter()
                    .filter(|(_, a)| {
                        force
                            || now - a.last >= self.options.trace_idle_period
                            || now - a.first >= self.options.max_block_duration
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in done {
                    state.appended.remove(&id);
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
    /// WAL, takes the head blocks (with the live spans of their traces), writes each block after
    /// its cut mark, and removes the WAL segments that no held trace needs any more.
    async fn cut(&self) -> Result<usize, CutError> {
        let _one_cut = self.cutting.lock().await;
        let (segment, cut) = {
            let _exclusive = self.cut_lock.write().await;
            let segment = self.wal.rotate().await?;
            let mut tenants = self.tenants.lock().expect("ingester lock");
            let mut cut = Vec::new();
            for (tenant, state) in tenants.iter_mut() {
                if state.head.is_empty() {
                    continue;
                }
                let mut head = state.head.take();
                state.head_since = None;
                // A trace can also be live (spans that came while an earlier cut of it was
                // written, if that failed). Those spans were logged before `segment` too, and
                // replay counts on a block holding all of a trace's spans logged before it.
                for (id, trace) in head.iter_mut() {
                    if let Some(live) = state.live.remove(id) {
                        state.appended.remove(id);
                        trace.append(&live);
                    }
                }
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
            (segment, cut)
        };
        crash_point::reached("cut:after-rotate");

        let mut written = 0;
        let mut failed = None;
        for (tenant, block_id, head) in cut {
            let result = self.write_block(&tenant, block_id, &head, segment).await;
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
        // Pushes from now on log into `segment` or later; older segments are needed only for
        // what is still held.
        let needed = self.oldest_held_segment().min(segment);
        self.wal.remove_before(needed)?;
        crash_point::reached("cut:after-truncate");
        self.wal.remove_cut_marks_before(needed)?;
        match failed {
            Some(error) => Err(error),
            None => Ok(written),
        }
    }

    /// The oldest WAL segment that holds spans of a trace held in memory.
    fn oldest_held_segment(&self) -> u64 {
        let tenants = self.tenants.lock().expect("ingester lock");
        tenants
            .values()
            .flat_map(|state| {
                let flushing = state.flushing.iter().flat_map(|f| f.traces.values());
                state
                    .live
                    .iter()
                    .chain(state.head.iter())
                    .map(|(_, t)| t)
                    .chain(flushing)
                    .map(|t| t.segment)
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Writes one block of a cut at WAL segment `segment`, after its cut mark. A block that
    /// fails is removed with its mark, since its traces go back to the head block.
    async fn write_block(
        &self,
        tenant: &str,
        block_id: Uuid,
        head: &HeldTraces,
        segment: u64,
    ) -> Result<crate::storage::BlockMeta, CutError> {
        let mark = CutMark {
            tenant: tenant.to_string(),
            block_id,
            before_segment: segment,
            trace_ids: head.keys().copied().collect(),
        };
        let written = match self.wal.write_cut_mark(&mark) {
            Ok(()) => {
                crash_point::reached("cut:after-mark");
                self.write_head(tenant, block_id, head)
                    .await
                    .map_err(CutError::from)
            }
            Err(error) => Err(error.into()),
        };
        match written {
            Ok(meta) => {
                crash_point::reached("cut:after-meta");
                Ok(meta)
            }
            Err(error) => {
                // If the objects cannot be removed the mark stays, and the next start decides
                // from `meta.json` whether the block exists.
                match self.remove_block_objects(tenant, block_id).await {
                    Ok(()) => self.wal.remove_cut_mark(&mark)?,
                    Err(remove) => {
                        tracing::warn!(%remove, block = %block_id, "cannot remove a block that failed to write")
                    }
                }
                Err(error)
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
        // Oldest first, so each row group covers a short stretch of time.
        let mut traces: Vec<_> = head.iter().collect();
        traces.sort_unstable_by_key(|(id, trace)| (trace.start, **id));
        for (id, trace) in traces {
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

/// Rows are kept between calls, for each chunk of traces until it changes.
impl LiveData for Ingester {
    fn live_spans(
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

    fn tag_catalogs(
        &self,
        tenant: &str,
    ) -> Result<Vec<Arc<crate::storage::TagCatalog>>, arrow::error::ArrowError> {
        let (rows, _) = self.snapshot(tenant, &self.options.block.dedicated_columns)?;
        Ok(rows.iter().map(|part| part.catalog.clone()).collect())
    }

    /// Live, head and being flushed.
    fn find_trace(&self, tenant: &str, id: &TraceId) -> Vec<Vec<ResourceSpans>> {
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
}
