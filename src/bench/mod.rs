//! `tracefusion bench`: one run that measures the whole path on the seeded generator's data.
//!
//! 1. generate the spans, encoded as OTLP requests of 100 traces;
//! 2. start `tracefusion serve` (this executable) on a temporary folder and send half of the
//!    requests over OTLP/gRPC, wait until they are in blocks, then send the other half over
//!    OTLP/HTTP, from several clients, sampling the server's RSS;
//! 3. look traces up by id, search and list tags while the ingester holds them, then wait
//!    until every span is in a block and look them up again;
//! 4. measure bytes per span of those blocks, searches and tag lookups through the HTTP API;
//! 5. write the same traces as blocks in this process, one thread: block write throughput;
//! 6. hold a fifth of them in an in-process ingester's head block and search it twice (the
//!    first search converts the head to rows, later ones reuse them) and list its tags.

pub mod report;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use reqwest::StatusCode;

use crate::config::TraceStorageConfig;
use crate::storage::inspect::{group_sizes, inspect_block};
use crate::storage::{BlockOptions, Blocklist, TraceId, open_store, split_by_trace, write_block};
use crate::synth::{Generator, GeneratorConfig};
pub use report::{Better, Report};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Spans to generate (rounded up to whole traces).
    pub spans: u64,
    /// Concurrent OTLP clients per protocol.
    pub clients: usize,
    /// Runs per search and tag query (the median is reported).
    pub runs: usize,
    pub seed: u64,
    /// Show progress bars (off when stderr is not a terminal).
    pub progress: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            spans: 1_000_000,
            clients: 8,
            runs: 3,
            seed: 42,
            progress: true,
        }
    }
}

/// Traces per OTLP request.
const TRACES_PER_REQUEST: usize = 100;
/// Blocks the server cuts the data into (by setting its block size).
const TARGET_BLOCKS: u64 = 100;
const TENANT: &str = "single-tenant";

/// The searches measured: Tempo's benchmark shapes over the generator's attributes.
pub const SEARCHES: [(&str, &str); 12] = [
    ("attribute_match", r#"{ span.http.route = "/cart" }"#),
    (
        "attribute_no_match",
        r#"{ span.http.route = "/no-such-route" }"#,
    ),
    ("intrinsic", "{ kind = server && status = error }"),
    ("resource", r#"{ resource.service.name = "payment" }"#),
    ("unscoped_map", r#"{ .db.system = "redis" }"#),
    (
        "or",
        r#"{ .db.system = "redis" } || { .messaging.system = "kafka" }"#,
    ),
    ("and", r#"{ .db.system = "redis" } && { status = error }"#),
    ("regex", r#"{ name =~ "GET /product.*" }"#),
    ("duration", "{ duration > 500ms }"),
    ("count", "{ status = error } | count() > 1"),
    (
        "structural",
        r#"{ resource.service.name = "frontend" } >> { status = error }"#,
    ),
    (
        "select",
        "{ status = error } | select(span.http.route, resource.cloud.region)",
    ),
];

fn bar(options: &BenchOptions, len: u64, what: &str) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(what.to_string());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

fn spans_of(batches: &[ResourceSpans]) -> u64 {
    batches
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

/// Polls the blocklist until `spans` spans are in blocks; fails after 10 minutes.
async fn wait_in_blocks(
    blocklist: &Blocklist,
    spans: u64,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        blocklist.poll().await?;
        let flushed: u64 = blocklist.blocks(TENANT).iter().map(|b| b.total_spans).sum();
        progress.set_position(flushed);
        if flushed >= spans {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {flushed} of {spans} spans reached blocks in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `{prefix}_p50_ms` and `{prefix}_p99_ms` of `sorted` latencies.
fn push_latencies(report: &mut Report, prefix: &str, sorted: &[Duration]) {
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let value = millis(percentile(sorted, p));
        report.push(format!("{prefix}_{name}_ms"), value, "ms", Better::Lower);
    }
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Runs every step and returns the figures.
pub fn run(options: &BenchOptions, command: String) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report::new(command);

    // 1. Data.
    let progress = bar(options, options.spans, "generate");
    let started = Instant::now();
    let mut generator = Generator::new(GeneratorConfig {
        seed: options.seed,
        ..GeneratorConfig::default()
    });
    let mut traces: Vec<Vec<ResourceSpans>> = Vec::new();
    while report.spans < options.spans {
        let trace = generator.next().context("the generator ends")?;
        let n = spans_of(&trace);
        report.spans += n;
        progress.inc(n);
        traces.push(trace);
    }
    progress.finish_and_clear();
    report.traces = traces.len() as u64;
    report.push(
        "generate.spans_per_s",
        report.spans as f64 / started.elapsed().as_secs_f64(),
        "spans/s",
        Better::Higher,
    );
    // Each request with the spans it carries.
    let mut requests: Vec<(Vec<u8>, u64)> = traces
        .chunks(TRACES_PER_REQUEST)
        .map(|chunk| {
            let request = ExportTraceServiceRequest {
                resource_spans: chunk.iter().flatten().cloned().collect(),
            };
            let spans = spans_of(&request.resource_spans);
            (request.encode_to_vec(), spans)
        })
        .collect();
    let request_bytes: u64 = requests.iter().map(|(r, _)| r.len() as u64).sum();
    let ids: Vec<TraceId> = traces
        .iter()
        .filter_map(|t| {
            let span = t.first()?.scope_spans.first()?.spans.first()?;
            Some(TraceId(span.trace_id.as_slice().try_into().ok()?))
        })
        .collect();

    // 2. Ingest through a real server.
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path(), (request_bytes / TARGET_BLOCKS).max(1 << 20))?;
    runtime.block_on(server.ready())?;
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak_rss.clone(), sampling.clone(), server.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let store = open_store(&server.storage)?;
    let blocklist = Blocklist::new(store.clone());
    let http_part = requests.split_off(requests.len() / 2);
    let grpc_spans: u64 = requests.iter().map(|(_, spans)| spans).sum();
    for (protocol, part) in [(Protocol::Grpc, requests), (Protocol::Http, http_part)] {
        if protocol == Protocol::Http {
            // Each protocol gets a quiet server: the gRPC half is in blocks before HTTP starts.
            let progress = bar(options, grpc_spans, "flush grpc");
            runtime.block_on(wait_in_blocks(&blocklist, grpc_spans, &progress))?;
            progress.finish_and_clear();
        }
        let spans: u64 = part.iter().map(|(_, spans)| spans).sum();
        let part: Arc<[Vec<u8>]> = part.into_iter().map(|(body, _)| body).collect();
        let progress = bar(options, part.len() as u64, protocol.name());
        let started = Instant::now();
        let retries =
            runtime.block_on(server.ingest(protocol, part, options.clients, &progress))?;
        let elapsed = started.elapsed();
        progress.finish_and_clear();
        report.push(
            format!("ingest.{}_spans_per_s", protocol.name()),
            spans as f64 / elapsed.as_secs_f64(),
            "spans/s",
            Better::Higher,
        );
        // Requests sent again after the server pushed back (its memory limit).
        report.push(
            format!("ingest.{}_retries", protocol.name()),
            retries as f64,
            "requests",
            Better::Lower,
        );
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    report.push(
        "ingest.peak_rss_mib",
        peak_rss.load(Ordering::Relaxed) as f64 / (1u64 << 20) as f64,
        "MiB",
        Better::Lower,
    );
    let ingested = Instant::now();

    // 3. Trace by id, live: the traces sent last, still held by the ingester.
    let live: Vec<TraceId> = ids.iter().rev().take(300).copied().collect();
    push_latencies(
        &mut report,
        "lookup.live",
        &runtime.block_on(server.lookups(&live))?,
    );

    // A search and a tags request while the ingester still holds the HTTP half: what a user
    // sees during ingest, when queries read memory as well as blocks.
    runtime.block_on(blocklist.poll())?;
    let in_blocks: u64 = blocklist.blocks(TENANT).iter().map(|b| b.total_spans).sum();
    report.push(
        "live.held_spans",
        report.spans.saturating_sub(in_blocks) as f64,
        "spans",
        Better::Neither,
    );
    // The first search converts what the ingester holds to rows; the second reuses them,
    // except where traces grew, went idle or were cut in between.
    let (name, query) = SEARCHES[0];
    for run in ["first", "second"] {
        let started = Instant::now();
        runtime.block_on(server.get_json("/api/search", &[("q", query)]))?;
        report.push(
            format!("live.search_{name}_{run}_ms"),
            millis(started.elapsed()),
            "ms",
            Better::Lower,
        );
    }
    let started = Instant::now();
    runtime.block_on(server.get_json("/api/v2/search/tags", &[]))?;
    report.push(
        "live.tags_v2_ms",
        millis(started.elapsed()),
        "ms",
        Better::Lower,
    );

    // Wait for every span to reach a block.
    let progress = bar(options, report.spans, "flush");
    runtime.block_on(wait_in_blocks(&blocklist, report.spans, &progress))?;
    progress.finish_and_clear();
    let blocks = blocklist.blocks(TENANT);
    report.push(
        "flush.all_in_blocks_s",
        ingested.elapsed().as_secs_f64(),
        "s",
        Better::Lower,
    );
    report.push(
        "flush.blocks",
        blocks.len() as f64,
        "blocks",
        Better::Neither,
    );

    // 4. Bytes per span on disk, by column group.
    let disk: u64 = blocks.iter().map(|b| b.size).sum();
    report.push(
        "disk.bytes_per_span",
        disk as f64 / report.spans as f64,
        "bytes/span",
        Better::Lower,
    );
    let mut columns = Vec::new();
    for meta in blocks.iter() {
        columns.extend(
            runtime
                .block_on(inspect_block(store.clone(), meta))?
                .column_sizes,
        );
    }
    for (group, bytes) in group_sizes(&columns) {
        report.push(
            format!("disk.{}_bytes_per_span", group.replace(' ', "_")),
            bytes as f64 / report.spans as f64,
            "bytes/span",
            Better::Lower,
        );
    }

    // Trace by id from blocks: ids spread over all of them.
    let sample: Vec<TraceId> = ids
        .iter()
        .step_by((ids.len() / 1000).max(1))
        .copied()
        .collect();
    push_latencies(
        &mut report,
        "lookup.blocks",
        &runtime.block_on(server.lookups(&sample))?,
    );

    // Searches and tags through the HTTP API.
    let progress = bar(options, SEARCHES.len() as u64, "search");
    for (name, query) in SEARCHES {
        let mut runs = Vec::new();
        let mut last = serde_json::Value::Null;
        for _ in 0..options.runs.max(1) {
            let started = Instant::now();
            last = runtime.block_on(server.get_json("/api/search", &[("q", query)]))?;
            runs.push(started.elapsed());
        }
        let metric = |key: &str| -> f64 {
            match &last["metrics"][key] {
                serde_json::Value::String(s) => s.parse().unwrap_or(0.0),
                v => v.as_f64().unwrap_or(0.0),
            }
        };
        report.push(
            format!("search.{name}.median_ms"),
            millis(median(runs)),
            "ms",
            Better::Lower,
        );
        report.push(
            format!("search.{name}.bytes_read"),
            metric("inspectedBytes"),
            "bytes",
            Better::Lower,
        );
        report.push(
            format!("search.{name}.spans_read"),
            metric("inspectedSpans"),
            "spans",
            Better::Lower,
        );
        let found = last["traces"].as_array().map_or(0, Vec::len);
        report.push(
            format!("search.{name}.traces"),
            found as f64,
            "traces",
            Better::Neither,
        );
        progress.inc(1);
    }
    progress.finish_and_clear();
    for (name, path) in [
        ("tags_v2", "/api/v2/search/tags".to_string()),
        (
            "tag_values_v2",
            "/api/v2/search/tag/resource.service.name/values".to_string(),
        ),
        (
            "tag_values_v1",
            "/api/search/tag/http.route/values".to_string(),
        ),
    ] {
        let mut runs = Vec::new();
        for _ in 0..(options.runs.max(1) * 3) {
            let started = Instant::now();
            runtime.block_on(server.get_json(&path, &[]))?;
            runs.push(started.elapsed());
        }
        report.push(
            format!("tags.{name}.median_ms"),
            millis(median(runs)),
            "ms",
            Better::Lower,
        );
    }
    drop(server);

    // 5. Block write, one thread, in this process: blocks as large as the server's.
    let per_block = traces.len().div_ceil(blocks.len().max(1));
    let groups: Vec<_> = traces
        .chunks(per_block)
        .map(|chunk| split_by_trace(chunk.iter().flatten().cloned().collect()).0)
        .collect();
    drop(traces);
    let mut config = TraceStorageConfig::default();
    config.local.path = dir.path().join("write-bench");
    let store = open_store(&config)?;
    let progress = bar(options, groups.len() as u64, "write");
    let started = Instant::now();
    for group in &groups {
        runtime.block_on(write_block(
            store.clone(),
            "bench",
            BlockOptions::default(),
            group.iter(),
        ))?;
        progress.inc(1);
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    report.push(
        "write.spans_per_s",
        report.spans as f64 / elapsed.as_secs_f64(),
        "spans/s",
        Better::Higher,
    );

    // 6. Queries over a head block, in this process: a fifth of the data gone idle and not
    // yet cut, as a server holds it between cuts. The first search converts the head to rows,
    // the next ones reuse them.
    let held = &groups[..groups.len().div_ceil(5)];
    runtime.block_on(head_queries(options, &mut report, dir.path(), store, held))?;
    Ok(report)
}

async fn head_queries(
    options: &BenchOptions,
    report: &mut Report,
    dir: &Path,
    store: Arc<dyn object_store::ObjectStore>,
    held: &[crate::ingest::ingester::Traces],
) -> anyhow::Result<()> {
    use crate::ingest::ingester::{Ingester, IngesterOptions};
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    let block = BlockOptions::default();
    let dedicated = block.dedicated_columns.clone();
    let ingester = Ingester::open(
        IngesterOptions {
            trace_idle_period: Duration::ZERO,
            max_block_duration: Duration::from_secs(24 * 3600),
            max_block_bytes: u64::MAX / 4,
            max_memory_bytes: u64::MAX / 4,
            max_bytes_per_trace: 0,
            block,
        },
        &dir.join("head-wal"),
        crate::ingest::wal::SyncPolicy::Never,
        store.clone(),
        blocklist.clone(),
    )
    .await?;
    let mut spans = 0;
    for traces in held {
        spans += traces.values().map(|t| spans_of(t)).sum::<u64>();
        ingester.push(TENANT, traces.clone()).await?;
    }
    ingester.tick(false).await?;
    report.push("head.spans", spans as f64, "spans", Better::Neither);
    let reader = Arc::new(crate::storage::TraceReader::new(store.clone(), blocklist));
    let source =
        crate::exec::sources::serving_session(store, reader, ingester.clone(), TENANT, &dedicated)?;
    let (_, query) = SEARCHES[0];
    let query = crate::traceql::compile(query)?;
    let search_options = crate::exec::search::SearchOptions::default();
    let mut runs = Vec::new();
    for _ in 0..=options.runs.max(1) {
        let started = Instant::now();
        crate::exec::search::search(&source, &query, &search_options).await?;
        runs.push(started.elapsed());
    }
    let cold = runs.remove(0);
    report.push("head.search_cold_ms", millis(cold), "ms", Better::Lower);
    report.push(
        "head.search_warm_ms",
        millis(median(runs)),
        "ms",
        Better::Lower,
    );
    let started = Instant::now();
    crate::storage::LiveData::tag_catalog(ingester.as_ref(), TENANT)?;
    report.push(
        "head.tags_ms",
        millis(started.elapsed()),
        "ms",
        Better::Lower,
    );
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    Http,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }
}

/// `tracefusion serve` on a temporary folder, stopped when dropped.
struct Server {
    child: Child,
    http: String,
    otlp_http: String,
    otlp_grpc: String,
    storage: TraceStorageConfig,
    client: reqwest::Client,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn retryable_grpc(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted
    )
}

/// Resident set size of `pid` in bytes (0 where /proc has none).
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl Server {
    /// Blocks are cut at `block_bytes`, and within seconds of traces going idle. WAL fsync
    /// stays on; ingestion limits are raised out of the way.
    fn start(dir: &Path, block_bytes: u64) -> anyhow::Result<Self> {
        let (http, otlp_http, otlp_grpc) = (free_port()?, free_port()?, free_port()?);
        let config = dir.join("tracefusion.yaml");
        std::fs::write(
            &config,
            format!(
                "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  log_level: warn\n\
                 distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:{otlp_grpc}\n        http:\n          endpoint: 127.0.0.1:{otlp_http}\n\
                 ingester:\n  trace_idle_period: 3s\n  max_block_duration: 5s\n  max_block_bytes: {block_bytes}\n\
                 overrides:\n  defaults:\n    ingestion:\n      rate_limit_bytes: 100GB\n      burst_size_bytes: 100GB\n\
                 storage:\n  trace:\n    local:\n      path: {0}/blocks\n    wal:\n      path: {0}/wal\n",
                dir.display()
            ),
        )?;
        let child = Command::new(std::env::current_exe()?)
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting tracefusion serve")?;
        let mut storage = TraceStorageConfig::default();
        storage.local.path = dir.join("blocks");
        Ok(Self {
            child,
            http: format!("http://127.0.0.1:{http}"),
            otlp_http: format!("http://127.0.0.1:{otlp_http}/v1/traces"),
            otlp_grpc: format!("http://127.0.0.1:{otlp_grpc}"),
            storage,
            client: reqwest::Client::new(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self.client.get(format!("{}/ready", self.http)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("tracefusion serve was not ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `requests` from `clients` concurrent clients; each request must be acknowledged.
    /// As OpenTelemetry exporters do, a request the server refuses for now (503/429, gRPC
    /// UNAVAILABLE/RESOURCE_EXHAUSTED: backpressure while blocks are written) is sent again
    /// after a growing pause. Returns how many times that happened.
    async fn ingest(
        &self,
        protocol: Protocol,
        requests: Arc<[Vec<u8>]>,
        clients: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<u64> {
        let next = Arc::new(AtomicU64::new(0));
        let retries = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients.max(1) {
            let (requests, next, retries) = (requests.clone(), next.clone(), retries.clone());
            let progress = progress.clone();
            let (client, http_url, grpc_url) = (
                self.client.clone(),
                self.otlp_http.clone(),
                self.otlp_grpc.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut grpc = match protocol {
                    Protocol::Grpc => Some(TraceServiceClient::connect(grpc_url).await?),
                    Protocol::Http => None,
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = requests.get(i) else {
                        return anyhow::Ok(());
                    };
                    let mut pause = Duration::from_millis(50);
                    loop {
                        let refused_for_now = match grpc.as_mut() {
                            Some(grpc) => {
                                let request = ExportTraceServiceRequest::decode(body.as_slice())?;
                                match grpc.export(request).await {
                                    Ok(_) => false,
                                    Err(status) if retryable_grpc(status.code()) => true,
                                    Err(status) => bail!("OTLP/gRPC export: {status}"),
                                }
                            }
                            None => {
                                let response = client
                                    .post(&http_url)
                                    .header("Content-Type", "application/x-protobuf")
                                    .body(body.clone())
                                    .send()
                                    .await?;
                                match response.status() {
                                    s if s.is_success() => false,
                                    StatusCode::SERVICE_UNAVAILABLE
                                    | StatusCode::TOO_MANY_REQUESTS => true,
                                    s => bail!("OTLP/HTTP export: {s}: {}", response.text().await?),
                                }
                            }
                        };
                        if !refused_for_now {
                            break;
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                    progress.inc(1);
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(retries.load(Ordering::Relaxed))
    }

    /// Latency of `GET /api/v2/traces/{id}` for each id, sorted; every trace must be found.
    async fn lookups(&self, ids: &[TraceId]) -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::with_capacity(ids.len());
        for id in ids {
            let started = Instant::now();
            let response = self
                .client
                .get(format!("{}/api/v2/traces/{id}", self.http))
                .send()
                .await?;
            if response.status() != 200 {
                bail!("trace {id}: {}", response.status());
            }
            response.bytes().await?;
            latencies.push(started.elapsed());
        }
        latencies.sort();
        Ok(latencies)
    }

    async fn get_json(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> anyhow::Result<serde_json::Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.http))
            .query(query)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            bail!("{path}: {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
