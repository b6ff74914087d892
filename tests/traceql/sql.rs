//! SQL over the span table of a tenant's blocks (DataFusion), checked against counts taken
//! directly from the generated OTLP; filters reach the Parquet scan.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use tracefusion::config::DedicatedColumn;
use tracefusion::exec::sources::span_session;
use tracefusion::storage::{BlockOptions, Blocklist, write_block};

use crate::storage::{generate, local_store};

fn spans(traces: &crate::storage::Traces) -> Vec<(&ResourceSpans, &Span)> {
    traces
        .values()
        .flatten()
        .flat_map(|rs| {
            rs.scope_spans
                .iter()
                .flat_map(move |ss| ss.spans.iter().map(move |s| (rs, s)))
        })
        .collect()
}

fn string_attr<'a>(
    attrs: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn int_attr(attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> Option<i64> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::IntValue(i) => Some(*i),
            _ => None,
        }
    })
}

async fn count(ctx: &datafusion::prelude::SessionContext, sql: &str) -> i64 {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_blocks_agrees_with_the_generated_spans() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(71, 600);
    let entries: Vec<_> = traces.iter().collect();
    for chunk in entries.chunks(200) {
        write_block(
            store.clone(),
            "single-tenant",
            BlockOptions::default(),
            chunk.iter().copied(),
        )
        .await
        .unwrap();
    }
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    blocklist.poll().await.unwrap();
    let ctx = span_session(
        store.clone(),
        blocklist,
        "single-tenant",
        &DedicatedColumn::defaults(),
    )
    .unwrap()
    .ctx;
    let all = spans(&traces);

    assert_eq!(
        count(&ctx, "SELECT count(*) FROM spans").await,
        all.len() as i64
    );
    assert_eq!(
        count(&ctx, "SELECT count(DISTINCT trace_id) FROM spans").await,
        traces.len() as i64
    );

    let checkout_servers = all
        .iter()
        .filter(|(rs, s)| {
            string_attr(&rs.resource.as_ref().unwrap().attributes, "service.name")
                == Some("checkout")
                && s.kind == 2
        })
        .count();
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM spans WHERE service_name = 'checkout' AND kind = 'server'"
        )
        .await,
        checkout_servers as i64
    );
    // A dedicated column and a generic typed map.
    let errors_500 = all
        .iter()
        .filter(|(_, s)| int_attr(&s.attributes, "http.response.status_code") == Some(500))
        .count();
    assert!(errors_500 > 0);
    assert_eq!(
        count(
            &ctx,
            r#"SELECT count(*) FROM spans WHERE "span.http.response.status_code" = 500"#
        )
        .await,
        errors_500 as i64
    );
    let redis = all
        .iter()
        .filter(|(_, s)| string_attr(&s.attributes, "db.system") == Some("redis"))
        .count();
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM spans WHERE span_attr_str['db.system'] = 'redis'"
        )
        .await,
        redis as i64
    );

    // One trace by id; the predicate reaches the Parquet scan.
    let (id, trace) = traces.iter().nth(321).unwrap();
    let trace_spans: usize = trace
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let by_id = format!("SELECT count(*) FROM spans WHERE trace_id = X'{id}'");
    assert_eq!(count(&ctx, &by_id).await, trace_spans as i64);
    let plan = ctx
        .sql(&format!("EXPLAIN {by_id}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(
        text.contains("DataSourceExec") && text.contains("predicate="),
        "{text}"
    );
}

/// A `start_time` range skips blocks by their metas: the plan lists only the blocks whose
/// time range can hold a match, and the answer is the same as without the pruning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_time_filters_skip_blocks_by_meta() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    // Consecutive generated traces: blocks of 100 cover disjoint-ish, increasing time ranges.
    let generator = tracefusion::synth::Generator::new(tracefusion::synth::GeneratorConfig {
        seed: 5,
        ..Default::default()
    });
    let mut metas = Vec::new();
    let all: Vec<_> = generator.take(400).collect();
    for chunk in all.chunks(100) {
        let (grouped, _) =
            tracefusion::storage::split_by_trace(chunk.iter().flatten().cloned().collect());
        metas.push(
            write_block(
                store.clone(),
                "single-tenant",
                BlockOptions::default(),
                grouped.iter(),
            )
            .await
            .unwrap(),
        );
    }
    metas.sort_by_key(|m| m.start_time);
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    blocklist.poll().await.unwrap();
    let ctx = span_session(store.clone(), blocklist, "single-tenant", &[])
        .unwrap()
        .ctx;

    let last = &metas[3];
    let from = last.start_time.format("%Y-%m-%dT%H:%M:%S%.9fZ");
    let filter = format!("start_time >= TIMESTAMP '{from}'");
    let plan = ctx
        .sql(&format!(
            "EXPLAIN SELECT count(*) FROM spans WHERE {filter}"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(text.contains(&last.block_id.to_string()), "{text}");
    for early in &metas[..2] {
        assert!(
            !text.contains(&early.block_id.to_string()),
            "block {} not pruned:\n{text}",
            early.block_id
        );
    }
    // Same answer as filtering every span.
    let expected = all
        .iter()
        .flatten()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .filter(|s| s.start_time_unix_nano as i64 >= last.start_time.timestamp_nanos_opt().unwrap())
        .count();
    assert_eq!(
        count(&ctx, &format!("SELECT count(*) FROM spans WHERE {filter}")).await,
        expected as i64
    );
}

/// A `trace_id = …` filter opens only the blocks whose bloom filter may hold the id, even when
/// every block's id range covers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_filters_open_only_blocks_that_may_hold_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(81, 400);
    let mut shards: Vec<crate::storage::Traces> = vec![Default::default(); 10];
    for (i, (id, t)) in traces.iter().enumerate() {
        shards[i % 10].insert(*id, t.clone());
    }
    let mut holder = None;
    let (id, trace) = traces.iter().nth(200).unwrap();
    for shard in &shards {
        let meta = write_block(
            store.clone(),
            "single-tenant",
            BlockOptions::default(),
            shard.iter(),
        )
        .await
        .unwrap();
        if shard.contains_key(id) {
            holder = Some(meta.block_id);
        }
    }
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    blocklist.poll().await.unwrap();
    let ctx = span_session(store.clone(), blocklist, "single-tenant", &[])
        .unwrap()
        .ctx;
    let sql = format!("SELECT count(*) FROM spans WHERE trace_id = X'{id}'");
    let plan = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(text.contains(&holder.unwrap().to_string()), "{text}");
    let files = text.matches("data.parquet").count();
    assert!(
        files <= 2,
        "{files} block files in the plan (one holds the trace):\n{text}"
    );
    let spans: usize = trace
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(count(&ctx, &sql).await, spans as i64);

    // An IN list opens the blocks that may hold any of its traces: here two of the ten.
    let (other, other_trace) = traces.iter().nth(201).unwrap();
    let sql = format!("SELECT count(*) FROM spans WHERE trace_id IN (X'{id}', X'{other}')");
    let plan = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    let files = text.matches("data.parquet").count();
    assert!(
        (2..=4).contains(&files),
        "{files} block files in the plan (two hold the traces):\n{text}"
    );
    let other_spans: usize = other_trace
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(count(&ctx, &sql).await, (spans + other_spans) as i64);
}

/// In a serving process `spans` is blocks and memory together: acknowledged spans are counted
/// once whether they are live or already in a block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_covers_live_data_and_blocks() {
    use std::time::Duration;
    use tracefusion::exec::sources::serving_session;
    use tracefusion::storage::TraceReader;

    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    let ingester = crate::support::ingester(
        dir.path(),
        store.clone(),
        blocklist.clone(),
        Duration::from_secs(3600),
        1 << 30,
    )
    .await;
    let reader = Arc::new(TraceReader::new(store.clone(), blocklist.clone()));
    let dedicated = DedicatedColumn::defaults();
    let ctx = serving_session(
        store.clone(),
        reader,
        ingester.clone(),
        "single-tenant",
        &dedicated,
    )
    .unwrap()
    .ctx;

    let traces = generate(91, 300);
    let entries: Vec<_> = traces.iter().map(|(k, v)| (*k, v.clone())).collect();
    let (first, second) = entries.split_at(150);
    ingester
        .push("single-tenant", first.iter().cloned().collect())
        .await
        .unwrap();
    let first_spans: usize = first
        .iter()
        .flat_map(|(_, t)| t)
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM spans").await,
        first_spans as i64
    );

    // Flush the first half into a block, then the second half arrives live.
    assert_eq!(ingester.tick(true).await.unwrap(), 1);
    ingester
        .push("single-tenant", second.iter().cloned().collect())
        .await
        .unwrap();
    let all = spans(&traces);
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM spans").await,
        all.len() as i64
    );
    assert_eq!(
        count(&ctx, "SELECT count(DISTINCT trace_id) FROM spans").await,
        traces.len() as i64
    );
    let redis = all
        .iter()
        .filter(|(_, s)| string_attr(&s.attributes, "db.system") == Some("redis"))
        .count();
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM spans WHERE span_attr_str['db.system'] = 'redis'"
        )
        .await,
        redis as i64
    );
}

/// An object store that holds every `meta.json` PUT open after it has landed, until released:
/// the block is committed in storage while the ingester still holds its spans as flushing.
#[derive(Debug)]
struct HeldCommitStore {
    inner: Arc<dyn object_store::ObjectStore>,
    release: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Display for HeldCommitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeldCommit({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for HeldCommitStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await;
        if location.filename() == Some("meta.json") {
            self.release.acquire().await.expect("open").forget();
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A block that is committed in storage and listed while the ingester still holds its spans
/// (between its `meta.json` landing and the ingester letting go) is read once, not twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_being_committed_is_read_once() {
    use std::time::Duration;
    use tracefusion::exec::sources::serving_session;
    use tracefusion::storage::TraceReader;

    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn object_store::ObjectStore> = local_store(dir.path());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(HeldCommitStore {
        inner: local.clone(),
        release: release.clone(),
    });
    let blocklist = Arc::new(Blocklist::new(local.clone()));
    let ingester = crate::support::ingester(
        dir.path(),
        store,
        blocklist.clone(),
        Duration::from_secs(3600),
        1 << 30,
    )
    .await;
    let reader = Arc::new(TraceReader::new(local.clone(), blocklist.clone()));
    let ctx = serving_session(
        local.clone(),
        reader,
        ingester.clone(),
        "single-tenant",
        &DedicatedColumn::defaults(),
    )
    .unwrap()
    .ctx;
    let traces = generate(92, 200);
    ingester
        .push("single-tenant", traces.clone())
        .await
        .unwrap();
    let sent = spans(&traces).len() as i64;
    let sql = "SELECT count(*) FROM spans";
    assert_eq!(count(&ctx, sql).await, sent);

    // Cut the block; its commit lands in storage, and a blocklist poll lists it.
    let cutting = tokio::spawn({
        let ingester = ingester.clone();
        async move { ingester.tick(true).await }
    });
    let mut polls = 0;
    while blocklist.blocks("single-tenant").is_empty() {
        assert!(polls < 200, "the block was never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        blocklist.poll().await.unwrap();
        polls += 1;
    }
    // Listed, and still held by the ingester: read once.
    assert!(!cutting.is_finished());
    assert_eq!(count(&ctx, sql).await, sent);
    assert_eq!(
        count(&ctx, "SELECT count(DISTINCT span_id) FROM spans").await,
        sent
    );

    release.add_permits(1);
    assert_eq!(cutting.await.unwrap().unwrap(), 1);
    assert_eq!(count(&ctx, sql).await, sent);
}

/// Queries keep the rows of what the ingester holds (live and head) between searches; spans
/// joining a live trace or a trace in the head, and traces moving to the head, are seen by the
/// next query all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_kept_between_queries_follow_every_change() {
    use std::time::Duration;
    use tracefusion::exec::sources::serving_session;
    use tracefusion::storage::TraceReader;

    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    // Every trace goes to the head at the next tick; nothing is cut.
    let ingester = crate::support::ingester(
        dir.path(),
        store.clone(),
        blocklist.clone(),
        Duration::ZERO,
        1 << 30,
    )
    .await;
    let reader = Arc::new(TraceReader::new(store.clone(), blocklist.clone()));
    let ctx = serving_session(
        store.clone(),
        reader,
        ingester.clone(),
        "single-tenant",
        &DedicatedColumn::defaults(),
    )
    .unwrap()
    .ctx;
    let sql = "SELECT count(*) FROM spans";
    let traces = generate(93, 400);
    let entries: Vec<_> = traces.iter().map(|(k, v)| (*k, v.clone())).collect();
    let (first, second) = entries.split_at(300);
    // One more span of trace `at` of the first part, with span id `byte`s.
    let late = |at: usize, byte: u8| {
        let (id, batches) = &first[at];
        let mut late = batches[0].clone();
        late.scope_spans.truncate(1);
        late.scope_spans[0].spans.truncate(1);
        late.scope_spans[0].spans[0].span_id = vec![byte; 8];
        late.scope_spans[0].spans[0].name = "late span".into();
        [(*id, vec![late])].into_iter().collect()
    };
    ingester
        .push("single-tenant", first.iter().cloned().collect())
        .await
        .unwrap();
    let mut expected = spans(&first.iter().cloned().collect()).len() as i64;
    // Live traces, read twice, then one of them grows.
    assert_eq!(count(&ctx, sql).await, expected, "live");
    assert_eq!(count(&ctx, sql).await, expected, "live, from kept rows");
    ingester.push("single-tenant", late(3, 0xdd)).await.unwrap();
    expected += 1;
    assert_eq!(
        count(&ctx, sql).await,
        expected,
        "a span joins a live trace"
    );

    // All gone idle: in the head.
    assert_eq!(ingester.tick(false).await.unwrap(), 0, "nothing is cut");
    assert_eq!(count(&ctx, sql).await, expected);
    assert_eq!(count(&ctx, sql).await, expected, "the same from kept rows");

    // A late span of a trace in the head.
    ingester.push("single-tenant", late(7, 0xee)).await.unwrap();
    expected += 1;
    assert_eq!(count(&ctx, sql).await, expected, "the late span is read");
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM spans WHERE name = 'late span' AND nested_set_left > 0"
        )
        .await,
        2,
        "the late spans are part of their traces' structure"
    );

    // More traces join the head.
    ingester
        .push("single-tenant", second.iter().cloned().collect())
        .await
        .unwrap();
    ingester.tick(false).await.unwrap();
    expected += spans(&second.iter().cloned().collect()).len() as i64;
    assert_eq!(count(&ctx, sql).await, expected);
    assert_eq!(count(&ctx, sql).await, expected);
    assert_eq!(
        count(&ctx, "SELECT count(DISTINCT trace_id) FROM spans").await,
        traces.len() as i64
    );
}
