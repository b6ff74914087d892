//! Storage: OTLP → blocks → trace by id, on the local filesystem and on a real S3 server;
//! blocks readable by other tools; bounded reads for a lookup among many blocks; tag catalogs
//! and the blocklist.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use tracefusion::config::{Backend, TraceStorageConfig};
use tracefusion::storage::block::{BlockMeta, BlockOptions, DATA_FILE, read_catalog};
use tracefusion::storage::catalog::{TagScope, TagValue};
use tracefusion::storage::file_reader::BlockFileReader;
use tracefusion::storage::from_arrow::batches_to_otlp;
use tracefusion::storage::{
    Blocklist, MeteredStore, TraceId, TraceReader, open_store, split_by_trace, write_block,
};
use tracefusion::synth::{Generator, GeneratorConfig};

pub(crate) type Traces = BTreeMap<TraceId, Vec<ResourceSpans>>;

/// `count` generated traces grouped by id.
pub(crate) fn generate(seed: u64, count: usize) -> Traces {
    let generator = Generator::new(GeneratorConfig {
        seed,
        ..GeneratorConfig::default()
    });
    let (traces, invalid) = split_by_trace(generator.take(count).flatten().collect());
    assert_eq!(invalid, 0);
    assert_eq!(traces.len(), count, "trace ids must be unique");
    traces
}

fn sorted_attrs(attrs: &[KeyValue]) -> Vec<String> {
    let mut out: Vec<String> = attrs.iter().map(|kv| format!("{kv:?}")).collect();
    out.sort();
    out
}

/// Every span of a trace as one line with its resource and scope, attributes in key order
/// (OTLP attribute order carries no meaning), lines sorted. Two traces are the same trace
/// exactly when these are equal.
pub(crate) fn canonical(batches: &[ResourceSpans]) -> Vec<String> {
    let mut lines = Vec::new();
    for rs in batches {
        let resource = rs.resource.clone().unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope = ss.scope.clone().unwrap_or_default();
            for span in &ss.spans {
                let mut span = span.clone();
                let attributes = sorted_attrs(&span.attributes);
                span.attributes.clear();
                let events: Vec<_> = span
                    .events
                    .drain(..)
                    .map(|mut e| {
                        let a = sorted_attrs(&e.attributes);
                        e.attributes.clear();
                        format!("{e:?}{a:?}")
                    })
                    .collect();
                let links: Vec<_> = span
                    .links
                    .drain(..)
                    .map(|mut l| {
                        let a = sorted_attrs(&l.attributes);
                        l.attributes.clear();
                        format!("{l:?}{a:?}")
                    })
                    .collect();
                lines.push(format!(
                    "resource{:?} dropped={} schema={} | scope {} {} {:?} dropped={} schema={} | {span:?} {attributes:?} {events:?} {links:?}",
                    sorted_attrs(&resource.attributes),
                    resource.dropped_attributes_count,
                    rs.schema_url,
                    scope.name,
                    scope.version,
                    sorted_attrs(&scope.attributes),
                    scope.dropped_attributes_count,
                    ss.schema_url,
                ));
            }
        }
    }
    lines.sort();
    lines
}

/// Writes `traces` as `blocks` blocks of consecutive trace ids.
async fn write_blocks(
    store: Arc<dyn ObjectStore>,
    traces: &Traces,
    blocks: usize,
    options: &BlockOptions,
) -> Vec<BlockMeta> {
    let entries: Vec<_> = traces.iter().collect();
    let per_block = entries.len().div_ceil(blocks);
    let mut metas = Vec::new();
    for chunk in entries.chunks(per_block) {
        let meta = write_block(
            store.clone(),
            "single-tenant",
            options.clone(),
            chunk.iter().copied(),
        )
        .await
        .expect("write block");
        metas.push(meta);
    }
    metas
}

/// Every trace of a block, read back by a full scan.
pub(crate) async fn scan_block(store: Arc<dyn ObjectStore>, meta: &BlockMeta) -> Traces {
    let reader = BlockFileReader::new(store, meta);
    let stream = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .expect("open block")
        .build()
        .expect("stream");
    let batches: Vec<_> = stream.try_collect().await.expect("read block");
    let otlp = batches_to_otlp(&batches).expect("convert");
    split_by_trace(otlp).0
}

/// Inside each row group of the block, rows come by trace id; the row groups themselves by
/// trace start, each holding its traces whole.
pub(crate) async fn assert_row_groups_sorted_by_trace_id(
    store: Arc<dyn ObjectStore>,
    meta: &BlockMeta,
) {
    use arrow::array::AsArray;
    let mut seen = std::collections::HashSet::new();
    for (i, rg) in meta.row_groups.iter().enumerate() {
        let stream =
            ParquetRecordBatchStreamBuilder::new(BlockFileReader::new(store.clone(), meta))
                .await
                .unwrap()
                .with_row_groups(vec![i])
                .build()
                .unwrap();
        let batches: Vec<_> = stream.try_collect().await.unwrap();
        let mut ids: Vec<TraceId> = Vec::new();
        for batch in &batches {
            let column = batch
                .column_by_name("trace_id")
                .unwrap()
                .as_fixed_size_binary();
            ids.extend(
                column
                    .iter()
                    .map(|id| TraceId(id.unwrap().try_into().unwrap())),
            );
        }
        assert!(ids.is_sorted(), "row group {i} of {}", meta.block_id);
        assert_eq!(ids.len() as u64, rg.spans);
        ids.dedup();
        assert_eq!(ids.len() as u64, rg.traces);
        assert_eq!((ids[0], ids[ids.len() - 1]), (rg.min_id, rg.max_id));
        for id in ids {
            assert!(seen.insert(id), "trace {id} in two row groups");
        }
    }
}

/// `tracefusion_cache_requests_total` of `cache` and `result`, as `/metrics` shows it.
fn cache_requests(cache: &str, result: &str) -> u64 {
    prometheus::gather()
        .iter()
        .filter(|family| family.name() == "tracefusion_cache_requests_total")
        .flat_map(|family| family.get_metric())
        .filter(|metric| {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
            };
            label("cache").as_deref() == Some(cache) && label("result").as_deref() == Some(result)
        })
        .map(|metric| metric.get_counter().get_value() as u64)
        .sum()
}

pub(crate) fn local_store(dir: &std::path::Path) -> Arc<MeteredStore> {
    let mut config = TraceStorageConfig::default();
    config.local.path = dir.join("blocks");
    open_store(&config).expect("local store")
}

/// Round trip on one store: blocks hold exactly the generated traces, and trace by id finds
/// each sampled trace whole in exactly one block.
async fn round_trip(store: Arc<MeteredStore>) {
    let traces = generate(7, 2000);
    let options = BlockOptions {
        // Small row groups so that blocks have several and lookups must pick the right one.
        row_group_bytes: 256 << 10,
        ..BlockOptions::default()
    };
    let metas = write_blocks(store.clone(), &traces, 2, &options).await;
    assert!(
        metas.iter().any(|m| m.row_groups.len() > 1),
        "expected several row groups per block: {:?}",
        metas.iter().map(|m| m.row_groups.len()).collect::<Vec<_>>()
    );

    for meta in &metas {
        assert_row_groups_sorted_by_trace_id(store.clone(), meta).await;
    }
    let mut scanned = Traces::new();
    for meta in &metas {
        let found = scan_block(store.clone(), meta).await;
        assert_eq!(found.len() as u64, meta.total_traces);
        let spans: usize = found
            .values()
            .flat_map(|t| t.iter().flat_map(|r| &r.scope_spans))
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(spans as u64, meta.total_spans);
        scanned.extend(found);
    }
    assert_eq!(scanned.len(), traces.len());
    for (id, written) in &traces {
        assert_eq!(
            canonical(&scanned[id]),
            canonical(written),
            "trace {id} differs after the block round trip"
        );
    }

    let blocklist = Arc::new(Blocklist::new(store.clone()));
    let report = blocklist.poll().await.expect("poll");
    assert_eq!(report.added, 2);
    let reader = TraceReader::new(store.clone(), blocklist);
    let bloom_hits = || cache_requests("bloom", "hit");
    let bloom_hits_before = bloom_hits();
    let (mut lookups, mut row_groups_read) = (0u64, 0);
    for (id, written) in traces.iter().step_by(10) {
        let found = reader
            .find_trace("single-tenant", *id, None)
            .await
            .expect("lookup");
        assert_eq!(
            canonical(&found.resource_spans),
            canonical(written),
            "trace {id}"
        );
        assert_eq!(found.stats.blocks_with_trace, 1);
        lookups += 1;
        row_groups_read += found.stats.row_groups_read as u64;
    }
    // Two blocks of consecutive trace ids: each lookup checks one block's bloom filters, read
    // once and then taken from the cache.
    assert!(
        bloom_hits() - bloom_hits_before >= lookups - 2,
        "{} hits in {lookups} lookups",
        bloom_hits() - bloom_hits_before
    );
    // The row groups' bloom filters (0.1% false positives) pick the row group of the trace.
    assert!(
        row_groups_read * 10 <= lookups * 12,
        "{row_groups_read} row groups read in {lookups} lookups"
    );
    let absent: TraceId = "deadbeefdeadbeefdeadbeefdeadbeef".parse().unwrap();
    let found = reader
        .find_trace("single-tenant", absent, None)
        .await
        .unwrap();
    assert!(found.resource_spans.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_local_files() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(local_store(dir.path())).await;
}

/// The S3 backend against a real S3 server (`s3s-fs`, run in this process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("traces")).unwrap();
    let port = crate::support::s3_server(&root, "tracefusion", "tracefusion-secret").await;

    let mut config = TraceStorageConfig {
        backend: Backend::S3,
        ..TraceStorageConfig::default()
    };
    config.s3.bucket = "traces".into();
    config.s3.endpoint = format!("127.0.0.1:{port}");
    config.s3.insecure = true;
    config.s3.forcepathstyle = true;
    config.s3.access_key = "tracefusion".into();
    config.s3.secret_key = "tracefusion-secret".into();
    config.s3.prefix = "tempo".into();
    let store = open_store(&config).expect("s3 store");
    round_trip(store).await;
    // The prefix is honoured: blocks live under it in the bucket.
    assert!(root.join("traces/tempo/single-tenant/blocks").is_dir());
}

/// pyarrow reads a block's Parquet file and sees the same rows and columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_readable_by_pyarrow() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(3, 200);
    let meta = &write_blocks(store.clone(), &traces, 1, &BlockOptions::default()).await[0];
    let path = dir
        .path()
        .join("blocks/single-tenant/blocks")
        .join(meta.block_id.to_string())
        .join(DATA_FILE);
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
ids = t.column("trace_id").to_pylist()
assert ids == sorted(ids), "rows are not sorted by trace id"
print(t.num_rows, len(set(ids)), t.column("span_attr_int").type)
"#;
    let stdout = crate::support::run_pyarrow(script, &[path.as_os_str()]);
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields[0], meta.total_spans.to_string());
    assert_eq!(fields[1], meta.total_traces.to_string());
    assert!(
        stdout.contains("map<string") && stdout.contains("int64"),
        "{stdout}"
    );
}

/// Among 120 blocks, a lookup reads one bloom filter, one footer and the trace's pages: a
/// small fraction of the store, and less again once the caches are warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_among_many_blocks_reads_little() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(11, 2400);
    let metas = write_blocks(store.clone(), &traces, 120, &BlockOptions::default()).await;
    assert_eq!(metas.len(), 120);
    let total_bytes: u64 = metas.iter().map(|m| m.size).sum();

    let blocklist = Arc::new(Blocklist::new(store.clone()));
    blocklist.poll().await.unwrap();
    let reader = TraceReader::new(store.clone(), blocklist);
    let (id, written) = traces.iter().nth(1234).unwrap();

    let before = store.counters();
    let found = reader.find_trace("single-tenant", *id, None).await.unwrap();
    let cold = store.counters() - before;
    assert_eq!(canonical(&found.resource_spans), canonical(written));
    // Block metas prune by id range first: blocks hold consecutive ids.
    assert_eq!(found.stats.blocks_in_range, 1, "{:?}", found.stats);
    // Bounded by one block (plus its footer), whatever the number of blocks: the bloom
    // filter, the footer with page index, and one vectored read of the trace's pages.
    let largest = metas.iter().map(|m| m.size).max().unwrap();
    assert!(
        cold.get_bytes <= largest + 4096 && cold.get_requests <= 3,
        "cold lookup read {cold:?}; largest block {largest} of {total_bytes} bytes in {} blocks",
        metas.len()
    );
    assert!(cold.get_bytes * 50 < total_bytes);
    let before = store.counters();
    reader.find_trace("single-tenant", *id, None).await.unwrap();
    let warm = store.counters() - before;
    assert!(
        warm.get_requests < cold.get_requests,
        "warm {warm:?} cold {cold:?}"
    );
    assert!(warm.get_bytes < cold.get_bytes);
}

/// Without id-range pruning (random ids in every block), the bloom filters keep a lookup to
/// the one block that holds the trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bloom_filters_prune_blocks_with_overlapping_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(5, 1000);
    // Deal traces round-robin so every block spans almost the whole id range.
    let mut shards: Vec<Traces> = vec![Traces::new(); 20];
    for (i, (id, t)) in traces.iter().enumerate() {
        shards[i % 20].insert(*id, t.clone());
    }
    for shard in &shards {
        write_block(
            store.clone(),
            "single-tenant",
            BlockOptions::default(),
            shard.iter(),
        )
        .await
        .unwrap();
    }
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    blocklist.poll().await.unwrap();
    let reader = TraceReader::new(store.clone(), blocklist);
    let mut past_bloom = 0;
    // Ids from the middle: every block's id range holds them.
    for (id, written) in traces.iter().skip(100).step_by(20).take(40) {
        let found = reader.find_trace("single-tenant", *id, None).await.unwrap();
        assert_eq!(canonical(&found.resource_spans), canonical(written));
        assert!(found.stats.blocks_in_range > 10, "{:?}", found.stats);
        past_bloom += found.stats.blocks_past_bloom;
    }
    // 40 lookups, one true block each; 0.1% false positives over 19 others allow a few more.
    assert!(
        past_bloom <= 40 + 6,
        "{past_bloom} blocks passed the bloom filter"
    );
}

/// Spans of one trace written to two blocks (and a duplicate) come back combined, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_split_across_blocks_is_combined() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(9, 50);
    let (id, trace) = traces
        .iter()
        .find(|(_, t)| {
            t.iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>()
                >= 6
        })
        .unwrap();
    // First block: the first resource's spans; second: everything (so the first are duplicates).
    let first: Traces = [(*id, vec![trace[0].clone()])].into();
    let all: Traces = [(*id, trace.clone())].into();
    write_block(
        store.clone(),
        "single-tenant",
        BlockOptions::default(),
        first.iter(),
    )
    .await
    .unwrap();
    write_block(
        store.clone(),
        "single-tenant",
        BlockOptions::default(),
        all.iter(),
    )
    .await
    .unwrap();
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    blocklist.poll().await.unwrap();
    let reader = TraceReader::new(store.clone(), blocklist);
    let found = reader.find_trace("single-tenant", *id, None).await.unwrap();
    assert_eq!(found.stats.blocks_with_trace, 2);
    assert_eq!(canonical(&found.resource_spans), canonical(trace));
}

/// A time range prunes blocks by their metas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_range_prunes_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(13, 100);
    let meta = write_blocks(store.clone(), &traces, 1, &BlockOptions::default())
        .await
        .remove(0);
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    blocklist.poll().await.unwrap();
    let reader = TraceReader::new(store.clone(), blocklist);
    let id = *traces.keys().next().unwrap();
    let inside = (meta.start_time, meta.end_time);
    let before = meta.start_time - chrono::Duration::hours(2);
    let outside = (before, before + chrono::Duration::hours(1));
    assert!(
        !reader
            .find_trace("single-tenant", id, Some(inside))
            .await
            .unwrap()
            .resource_spans
            .is_empty()
    );
    let missed = reader
        .find_trace("single-tenant", id, Some(outside))
        .await
        .unwrap();
    assert!(missed.resource_spans.is_empty());
    assert_eq!(missed.stats.blocks_in_range, 0);
}

/// The tag catalog lists keys per scope with types and top values, and intrinsic values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_catalog_is_written_with_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(21, 300);
    let meta = write_blocks(store.clone(), &traces, 1, &BlockOptions::default())
        .await
        .remove(0);
    let catalog = read_catalog(store.as_ref(), &meta).await.unwrap();

    let resource = catalog.keys(TagScope::Resource);
    let service = resource
        .iter()
        .find(|k| k.key == "service.name")
        .expect("service.name");
    assert_eq!(service.types, vec!["string"]);
    assert!(
        service
            .values
            .iter()
            .any(|v| v.value == TagValue::String("frontend".into()))
    );
    let spans = catalog.keys(TagScope::Span);
    let status = spans
        .iter()
        .find(|k| k.key == "http.response.status_code")
        .unwrap();
    assert_eq!(status.types, vec!["int"]);
    assert!(status.values.iter().any(|v| v.value == TagValue::Int(200)));
    let tags = spans.iter().find(|k| k.key == "app.tags").unwrap();
    assert_eq!(tags.types, vec!["array"]);
    // High-cardinality values are bounded and marked.
    let paths = spans.iter().find(|k| k.key == "url.path").unwrap();
    assert!(paths.values.len() <= tracefusion::storage::catalog::TOP_VALUES);
    let events = catalog.keys(TagScope::Event);
    assert!(events.iter().any(|k| k.key == "exception.type"));
    let kinds: Vec<_> = catalog.intrinsics["kind"]
        .iter()
        .map(|v| v.value.clone())
        .collect();
    assert!(kinds.contains(&TagValue::String("server".into())));
    assert!(kinds.contains(&TagValue::String("client".into())));
    // Counts add up: every span has a name.
    let names: u64 = catalog.intrinsics["name"].iter().map(|v| v.count).sum();
    assert!(names <= meta.total_spans);
}

/// NaN and the infinities are stored in the catalog and read back as sent (JSON has no
/// number for them; they once came back as `null` and made the catalog unreadable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_doubles_round_trip_through_the_tag_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let (id, batches) = crate::grafana::short_id_trace(1_700_000_000_000_000_000);
    let traces: Traces = [(id, batches)].into_iter().collect();
    let meta = write_blocks(store.clone(), &traces, 1, &BlockOptions::default())
        .await
        .remove(0);
    let catalog = read_catalog(store.as_ref(), &meta)
        .await
        .expect("readable catalog");
    let floats = |key: &str| -> Vec<f64> {
        let entry = catalog
            .keys(TagScope::Span)
            .iter()
            .find(|k| k.key == key)
            .unwrap();
        entry
            .values
            .iter()
            .map(|v| match v.value {
                TagValue::Float(f) => f,
                ref other => panic!("{key}: {other:?}"),
            })
            .collect()
    };
    let ratio = floats("app.ratio");
    assert!(
        ratio.iter().any(|f| f.is_nan()) && ratio.contains(&0.5),
        "{ratio:?}"
    );
    assert_eq!(floats("app.ceiling"), vec![f64::INFINITY]);
    assert_eq!(floats("app.floor"), vec![f64::NEG_INFINITY]);
    // Merging two catalogs that both hold NaN counts one NaN value, not two.
    let mut merged = catalog.clone();
    merged.merge(&catalog);
    let entry = merged
        .keys(TagScope::Span)
        .iter()
        .find(|k| k.key == "app.ratio")
        .unwrap();
    assert_eq!(entry.values.len(), 2, "{:?}", entry.values);
}

/// A block whose tag catalog cannot be read costs that block's tags, never the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_catalog_cannot_be_read_costs_only_its_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let (id, batches) = crate::grafana::short_id_trace(1_700_000_000_000_000_000);
    let good: Traces = [(id, batches)].into_iter().collect();
    let good = write_blocks(store.clone(), &good, 1, &BlockOptions::default()).await;
    let other = write_blocks(store.clone(), &generate(5, 20), 1, &BlockOptions::default()).await;
    let tags = |meta: &BlockMeta| {
        dir.path()
            .join("blocks/single-tenant/blocks")
            .join(meta.block_id.to_string())
            .join("tags.json")
    };
    std::fs::write(tags(&other[0]), "{\"scopes\": {\"span\": [{\"key\": 1").unwrap();
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    blocklist.poll().await.unwrap();
    let reader = Arc::new(TraceReader::new(store.clone(), blocklist));
    let sources = tracefusion::exec::sources::QuerySources::new(
        store.clone(),
        reader,
        None,
        Vec::new(),
        Default::default(),
    )
    .unwrap();
    let merged = sources
        .tag_catalog("single-tenant", None)
        .await
        .expect("a bad catalog does not fail the request");
    let span_keys: Vec<&str> = merged
        .catalog
        .keys(TagScope::Span)
        .iter()
        .map(|k| k.key.as_str())
        .collect();
    assert!(span_keys.contains(&"app.ratio"), "{span_keys:?}");
    assert!(
        !span_keys.contains(&"http.route"),
        "the bad block's keys: {span_keys:?}"
    );
    // Mended, the block's tags come back: a failed read is not cached.
    let meta = &good[0];
    std::fs::copy(tags(meta), tags(&other[0])).unwrap();
    let merged = sources.tag_catalog("single-tenant", None).await.unwrap();
    let ratio = merged
        .catalog
        .keys(TagScope::Span)
        .iter()
        .find(|k| k.key == "app.ratio")
        .unwrap()
        .count;
    assert_eq!(ratio, 4, "both blocks' app.ratio counted");
}

/// The blocklist notices new blocks and removed blocks, and ignores blocks without meta.json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocklist_follows_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(2, 60);
    let metas = write_blocks(store.clone(), &traces, 3, &BlockOptions::default()).await;
    let blocklist = Blocklist::new(store.clone());
    let report = blocklist.poll().await.unwrap();
    assert_eq!((report.added, report.removed, report.blocks), (3, 0, 3));
    let listed = blocklist.blocks("single-tenant");
    assert!(
        listed.windows(2).all(|w| w[0].end_time >= w[1].end_time),
        "newest first"
    );

    // A block being written (no meta.json yet) is not a block.
    let pending = dir
        .path()
        .join("blocks/single-tenant/blocks/00000000-0000-4000-8000-000000000001");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join(DATA_FILE), b"partial").unwrap();
    let gone = dir
        .path()
        .join("blocks/single-tenant/blocks")
        .join(metas[0].block_id.to_string());
    std::fs::remove_dir_all(gone).unwrap();
    let report = blocklist.poll().await.unwrap();
    assert_eq!((report.added, report.removed, report.blocks), (0, 1, 2));
    assert!(
        blocklist
            .blocks("single-tenant")
            .iter()
            .all(|b| b.block_id != metas[0].block_id)
    );
    assert_eq!(blocklist.tenants(), vec!["single-tenant".to_string()]);
}

/// Nested-set numbering follows the span tree; disconnected spans keep zeros.
#[test]
fn nested_set_numbers_the_span_tree() {
    use opentelemetry_proto::tonic::trace::v1::Span;
    use tracefusion::storage::to_arrow::{NestedSet, nested_set};
    let span = |id: u8, parent: u8| Span {
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: if parent == 0 {
            vec![]
        } else {
            vec![0, 0, 0, 0, 0, 0, 0, parent]
        },
        ..Span::default()
    };
    // 1 ─┬─ 2 ── 4
    //    └─ 3
    // 9 (parent 8 missing)
    let spans = [span(1, 0), span(2, 1), span(3, 1), span(4, 2), span(9, 8)];
    let refs: Vec<&Span> = spans.iter().collect();
    let got = nested_set(&refs);
    let ns = |left, right, parent, child_count| NestedSet {
        left,
        right,
        parent,
        child_count,
    };
    assert_eq!(
        got,
        vec![
            ns(1, 8, -1, 2),
            ns(2, 5, 1, 1),
            ns(6, 7, 1, 0),
            ns(3, 4, 2, 0),
            ns(0, 0, 0, 0)
        ]
    );
}

/// Trace ids in text: 1–32 hex digits, any case, left-padded; anything else is refused.
#[test]
fn trace_ids_parse_like_tempo() {
    let padded: TraceId = "ABC".parse().unwrap();
    assert_eq!(padded.to_string(), "00000000000000000000000000000abc");
    assert_eq!(
        "0000000000000000000000000000ABC"
            .parse::<TraceId>()
            .unwrap(),
        padded
    );
    for bad in ["", "xyz", "0", &"1".repeat(33)] {
        assert!(bad.parse::<TraceId>().is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        TraceId::from_bytes(&[1, 2]).unwrap().to_string(),
        "00000000000000000000000000000102"
    );
}

/// The CLI as a user runs it: generate blocks into a configured store, list them, inspect one,
/// find a trace by id, and get clear errors for a bad or unknown id.
#[test]
fn block_tools_on_the_command_line() {
    use crate::support::binary;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tempo.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  trace:\n    local:\n      path: {}\n",
            dir.path().join("blocks").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(binary())
            .args(args)
            .output()
            .expect("run tracefusion")
    };
    let config = config.to_str().unwrap();
    let out = run(&[
        "generate", "--config", config, "--traces", "400", "--batch", "150", "--seed", "4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(&["blocks", "--config", config, "list", "--json"]);
    assert!(out.status.success());
    let metas: Vec<BlockMeta> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("meta json"))
        .collect();
    assert_eq!(metas.len(), 3);
    assert_eq!(metas.iter().map(|m| m.total_traces).sum::<u64>(), 400);

    let out = run(&[
        "blocks",
        "--config",
        config,
        "inspect",
        &metas[0].block_id.to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("bytes per column group")
            && text.contains("span_attr_str"),
        "{text}"
    );

    // The same seed generates the same traces: find one of them by id.
    let expected = generate(4, 400);
    let (id, trace) = expected.iter().nth(77).unwrap();
    let out = run(&[
        "blocks",
        "--config",
        config,
        "trace",
        &id.to_string().to_uppercase(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
        serde_json::from_slice(&out.stdout).expect("OTLP/JSON");
    assert_eq!(canonical(&request.resource_spans), canonical(trace));

    // SQL over the same blocks.
    let spans: u64 = metas.iter().map(|m| m.total_spans).sum();
    let out = run(&[
        "sql",
        "--config",
        config,
        "SELECT count(*) AS spans FROM spans",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("| {spans} ")),
        "{text}"
    );
    let out = run(&["sql", "--config", config, "SELECT nope FROM spans"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No field named nope"));
    // Queries only: nothing written, no other store reached.
    let copied = dir.path().join("copied.csv");
    for statement in [
        format!("COPY (SELECT 1) TO '{}'", copied.display()),
        format!(
            "CREATE EXTERNAL TABLE other STORED AS CSV LOCATION '{}'",
            dir.path().display()
        ),
        "SET datafusion.execution.batch_size = 1".to_string(),
    ] {
        let out = run(&["sql", "--config", config, &statement]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("not supported"),
            "{statement}: {stderr}"
        );
    }
    assert!(!copied.exists());

    let out = run(&["blocks", "--config", config, "trace", "not-hex"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not hexadecimal"));
    let out = run(&["blocks", "--config", config, "trace", "1234"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

/// Configured dedicated columns receive their attribute when name, scope and type match; a
/// value of another type stays in the generic maps; either way the trace reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_columns_take_matching_attributes() {
    use arrow::array::Array;
    use tracefusion::config::{DedicatedColumn, DedicatedScope, DedicatedType};
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let traces = generate(17, 300);
    let options = BlockOptions {
        dedicated_columns: vec![
            DedicatedColumn::new(
                DedicatedScope::Resource,
                "cloud.region",
                DedicatedType::String,
            ),
            DedicatedColumn::new(
                DedicatedScope::Span,
                "http.response.status_code",
                DedicatedType::Int,
            ),
            // A double attribute: never a string, so this column stays empty.
            DedicatedColumn::new(
                DedicatedScope::Span,
                "app.load.factor",
                DedicatedType::String,
            ),
        ],
        ..BlockOptions::default()
    };
    let meta = write_blocks(store.clone(), &traces, 1, &options)
        .await
        .remove(0);
    assert_eq!(meta.dedicated_columns, options.dedicated_columns);

    let reader = BlockFileReader::new(store.clone(), &meta);
    let batches: Vec<_> = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .unwrap()
        .build()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let non_null = |name: &str| -> usize {
        batches
            .iter()
            .map(|b| {
                let c = b
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("no column {name}"));
                c.len() - c.null_count()
            })
            .sum()
    };
    assert_eq!(non_null("resource.cloud.region"), rows);
    let status_rows = non_null("span.http.response.status_code");
    assert!(
        status_rows > rows / 3 && status_rows < rows,
        "{status_rows} of {rows}"
    );
    assert_eq!(non_null("span.app.load.factor"), 0);
    // The default dedicated columns are not in this block's schema.
    assert!(batches[0].column_by_name("resource.k8s.pod.name").is_none());

    let scanned = scan_block(store.clone(), &meta).await;
    for (id, written) in &traces {
        assert_eq!(canonical(&scanned[id]), canonical(written));
    }
}

/// Blocks of the first format (traces by id across the block, one bloom filter) written by an
/// earlier version are still read: searches and trace by id over one answer as over the same
/// traces in a block written today.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_of_the_first_format_are_still_read() {
    use tracefusion::exec::search::{SearchOptions, search};
    use tracefusion::exec::sources::span_session;
    use tracefusion::storage::block::{FORMAT, FORMAT_BY_ID};

    let dir = tempfile::tempdir().unwrap();
    // `tracefusion generate --traces 200 --seed 7` by the version before the second format.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1");
    let old_root = dir.path().join("old");
    copy_dir(&fixture, &old_root.join("blocks"));
    let old_store = local_store(&old_root);
    let new_store = local_store(&dir.path().join("new"));
    let traces = generate(7, 200);
    write_block(
        new_store.clone(),
        "single-tenant",
        BlockOptions::default(),
        traces.iter(),
    )
    .await
    .unwrap();

    let mut sources = Vec::new();
    for (store, format) in [(old_store, FORMAT_BY_ID), (new_store, FORMAT)] {
        let blocklist = Arc::new(Blocklist::new(store.clone()));
        blocklist.poll().await.unwrap();
        let blocks = blocklist.blocks("single-tenant");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].format, format);
        assert_eq!(blocks[0].total_traces, 200);
        let reader = Arc::new(TraceReader::new(store.clone(), blocklist.clone()));
        for (id, written) in traces.iter().step_by(7) {
            let found = reader.find_trace("single-tenant", *id, None).await.unwrap();
            assert_eq!(
                canonical(&found.resource_spans),
                canonical(written),
                "{format}: trace {id}"
            );
        }
        sources.push(span_session(store, blocklist, "single-tenant", &[]).unwrap());
    }
    for query in [
        "{ }",
        "{ status = error }",
        r#"{ resource.service.name = "frontend" } >> { kind = client }"#,
        "{ duration > 100ms } | count() > 1",
    ] {
        let options = SearchOptions {
            limit: 50,
            ..SearchOptions::default()
        };
        let query_ast = tracefusion::traceql::compile(query).unwrap();
        let old = search(&sources[0], &query_ast, &options).await.unwrap();
        let new = search(&sources[1], &query_ast, &options).await.unwrap();
        assert!(!old.traces.is_empty(), "{query}");
        assert_eq!(old.traces, new.traces, "{query}");
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
