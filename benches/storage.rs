//! Storage figures on generated data: block write throughput, bytes per span (total and per
//! column group), and trace-by-id latency and bytes over 100+ blocks, cold and warm.
//!
//! Run: `cargo bench --bench storage` (default 60 000 traces, about 1M spans, in 120 blocks);
//! `TF_BENCH_TRACES` and `TF_BENCH_BLOCKS` change the size. Prints a table; the figures go
//! into BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracefusion::config::TraceStorageConfig;
use tracefusion::storage::inspect::group_sizes;
use tracefusion::storage::{
    BlockOptions, Blocklist, TraceId, TraceReader, open_store, split_by_trace, write_block,
};
use tracefusion::synth::{Generator, GeneratorConfig};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let traces = env("TF_BENCH_TRACES", 60_000);
    let blocks = env("TF_BENCH_BLOCKS", 120);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = TraceStorageConfig::default();
    config.local.path = dir.path().join("blocks");
    let store = open_store(&config).unwrap();

    let started = Instant::now();
    let generator = Generator::new(GeneratorConfig::default());
    let all: Vec<_> = generator.take(traces).collect();
    let generate_time = started.elapsed();

    // Blocks of consecutive generated traces, as an ingester would cut them by time.
    let per_block = traces.div_ceil(blocks);
    let mut grouped = Vec::new();
    for chunk in all.chunks(per_block) {
        grouped.push(split_by_trace(chunk.iter().flatten().cloned().collect()).0);
    }
    drop(all);
    let spans: u64 = grouped
        .iter()
        .flat_map(|g| g.values())
        .flat_map(|t| t.iter().flat_map(|r| &r.scope_spans))
        .map(|s| s.spans.len() as u64)
        .sum();

    let started = Instant::now();
    let metas = runtime.block_on(async {
        let mut metas = Vec::new();
        for block in &grouped {
            let meta = write_block(
                store.clone(),
                "bench",
                BlockOptions::default(),
                block.iter(),
            )
            .await
            .unwrap();
            metas.push(meta);
        }
        metas
    });
    let write_time = started.elapsed();
    let bytes: u64 = metas.iter().map(|m| m.size).sum();
    let ids: Vec<TraceId> = grouped.iter().flat_map(|g| g.keys().copied()).collect();
    drop(grouped);

    // Bytes per column group, from the footers.
    let mut all_columns = Vec::new();
    runtime.block_on(async {
        for meta in &metas {
            let report = tracefusion::storage::inspect::inspect_block(store.clone(), meta)
                .await
                .unwrap();
            all_columns.extend(report.column_sizes);
        }
    });
    let groups = group_sizes(&all_columns);

    // Trace by id: a sample of ids spread over all blocks, looked up with no time range.
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    runtime.block_on(blocklist.poll()).unwrap();
    let sample: Vec<TraceId> = ids
        .iter()
        .step_by((ids.len() / 2000).max(1))
        .copied()
        .collect();
    let lookup = |reader: &TraceReader| {
        let mut latencies = Vec::new();
        let before = store.counters();
        for id in &sample {
            let started = Instant::now();
            let found = runtime
                .block_on(reader.find_trace("bench", *id, None))
                .unwrap();
            latencies.push(started.elapsed());
            assert!(!found.resource_spans.is_empty());
        }
        let read = store.counters() - before;
        latencies.sort();
        (latencies, read)
    };
    let cold_reader = TraceReader::new(store.clone(), blocklist.clone());
    let (cold, cold_read) = lookup(&cold_reader);
    let (warm, warm_read) = lookup(&cold_reader);

    // SQL scans over the whole store (DataFusion over the span table), median of 3 runs.
    let ctx = tracefusion::exec::session::span_session(
        store.clone(),
        blocklist.clone(),
        "bench",
        &tracefusion::config::DedicatedColumn::defaults(),
    )
    .unwrap();
    let queries = [
        ("count(*)", "SELECT count(*) FROM spans".to_string()),
        (
            "dedicated column = 500",
            r#"SELECT count(*) FROM spans WHERE "span.http.response.status_code" = 500"#
                .to_string(),
        ),
        (
            "typed map: db.system = redis",
            "SELECT count(*) FROM spans WHERE span_attr_str['db.system'] = 'redis'".to_string(),
        ),
        (
            "group by service",
            "SELECT service_name, count(*), avg(duration_ns) FROM spans GROUP BY 1".to_string(),
        ),
        (
            "trace_id = (no time range)",
            format!("SELECT * FROM spans WHERE trace_id = X'{}'", sample[7]),
        ),
    ];
    let mut sql_rows = Vec::new();
    for (name, sql) in &queries {
        let mut times = Vec::new();
        let before = store.counters();
        for _ in 0..3 {
            let started = Instant::now();
            runtime.block_on(async { ctx.sql(sql).await.unwrap().collect().await.unwrap() });
            times.push(started.elapsed());
        }
        let read = store.counters() - before;
        times.sort();
        sql_rows.push((name, times[1], read.get_bytes / 3));
    }

    // TraceQL searches (Tempo's benchmark shapes), default limit 20, median of 3 runs.
    let searches = [
        (
            "attribute match",
            r#"{ span.http.route = "/cart" }"#.to_string(),
        ),
        (
            "attribute no match",
            r#"{ span.http.route = "/no-such-route" }"#.to_string(),
        ),
        (
            "intrinsic",
            "{ kind = server && status = error }".to_string(),
        ),
        (
            "resource",
            r#"{ resource.service.name = "payment" }"#.to_string(),
        ),
        (
            "unscoped typed map",
            r#"{ .db.system = "redis" }"#.to_string(),
        ),
        (
            "||",
            r#"{ .db.system = "redis" } || { .messaging.system = "kafka" }"#.to_string(),
        ),
        (
            "&&",
            r#"{ .db.system = "redis" } && { status = error }"#.to_string(),
        ),
        ("regex", r#"{ name =~ "GET /product.*" }"#.to_string()),
        ("duration", "{ duration > 500ms }".to_string()),
        (
            "count() > 1",
            "{ status = error } | count() > 1".to_string(),
        ),
        (
            "structural >>",
            r#"{ resource.service.name = "frontend" } >> { status = error }"#.to_string(),
        ),
        (
            "select",
            "{ status = error } | select(span.http.route, resource.cloud.region)".to_string(),
        ),
        (
            "trace:id (bloom)",
            format!(r#"{{ trace:id = "{}" }}"#, sample[3]),
        ),
    ];
    let mut search_rows = Vec::new();
    for (name, q) in &searches {
        let query = tracefusion::traceql::compile(q).unwrap();
        let options = tracefusion::exec::search::SearchOptions::default();
        let mut times = Vec::new();
        let mut found = 0;
        let before = store.counters();
        for _ in 0..3 {
            let started = Instant::now();
            let result = runtime
                .block_on(tracefusion::exec::search::search(&ctx, &query, &options))
                .unwrap();
            times.push(started.elapsed());
            found = result.traces.len();
        }
        let read = store.counters() - before;
        times.sort();
        search_rows.push((name, times[1], read.get_bytes / 3, found));
    }

    let n = sample.len() as u64;
    println!(
        "storage benchmark: {traces} traces, {spans} spans, {} blocks",
        metas.len()
    );
    println!(
        "  generate                 {:>10.0} spans/s",
        spans as f64 / generate_time.as_secs_f64()
    );
    println!(
        "  block write              {:>10.0} spans/s  ({:.2} s)",
        spans as f64 / write_time.as_secs_f64(),
        write_time.as_secs_f64()
    );
    println!(
        "  bytes on disk            {:>10} ({:.1} bytes/span)",
        bytes,
        bytes as f64 / spans as f64
    );
    for (group, group_bytes) in &groups {
        println!(
            "    {group:<22} {:>8.2} bytes/span",
            *group_bytes as f64 / spans as f64
        );
    }
    for (name, median, bytes) in &sql_rows {
        println!(
            "  sql {name:<30} median {:>8.1} ms  {:>10} bytes read",
            median.as_secs_f64() * 1e3,
            bytes
        );
    }
    for (name, median, bytes, found) in &search_rows {
        println!(
            "  traceql {name:<26} median {:>8.1} ms  {:>10} bytes read  {found:>3} traces",
            median.as_secs_f64() * 1e3,
            bytes
        );
    }
    for (name, latencies, read) in [("cold", &cold, cold_read), ("warm", &warm, warm_read)] {
        println!(
            "  trace by id, {name}       p50 {:>7.2} ms  p99 {:>7.2} ms  {:>8} bytes/lookup  {:.1} GETs/lookup  ({} lookups over {} blocks)",
            percentile(latencies, 0.5).as_secs_f64() * 1e3,
            percentile(latencies, 0.99).as_secs_f64() * 1e3,
            read.get_bytes / n,
            read.get_requests as f64 / n as f64,
            n,
            metas.len()
        );
    }
}
