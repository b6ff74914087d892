//! Ingest end to end against the real binary: OTLP/HTTP (JSON and protobuf, gzip) in, trace by
//! id out — live, after the block is written, and after a SIGKILL and restart — and 4xx with a
//! message for bad input.

use std::io::Write;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tracefusion::api::traces::TraceByIdResponse;
use tracefusion::storage::LiveData;

use crate::storage::{Traces, canonical, generate};
use crate::support::{ChildGuard, free_port, serve};

pub(crate) struct Server {
    pub(crate) child: ChildGuard,
    pub(crate) http: String,
    pub(crate) otlp: String,
    dir: std::path::PathBuf,
}

fn config_text(dir: &std::path::Path, http: u16, otlp: u16, extra: &str) -> String {
    format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n\
         distributor:\n  receivers:\n    otlp:\n      protocols:\n        http:\n          endpoint: 127.0.0.1:{otlp}\n\
         ingester:\n  trace_idle_period: 1s\n  max_block_duration: 2s\n\
         storage:\n  trace:\n    blocklist_poll: 1s\n    local:\n      path: {blocks}\n    wal:\n      path: {wal}\n{extra}",
        blocks = dir.join("blocks").display(),
        wal = dir.join("wal").display(),
    )
}

pub(crate) async fn start(dir: &std::path::Path, extra: &str) -> Server {
    start_with_env(dir, extra, &[]).await
}

/// Starts the server with `env` added to its environment.
async fn start_with_env(dir: &std::path::Path, extra: &str, env: &[(&str, &str)]) -> Server {
    let (http, otlp) = (free_port(), free_port());
    let config = dir.join("tracefusion.yaml");
    std::fs::write(&config, config_text(dir, http, otlp, extra)).unwrap();
    let http = format!("http://127.0.0.1:{http}");
    let child = serve(&config, env, &http, Duration::from_secs(30)).await;
    Server {
        child,
        http,
        otlp: format!("http://127.0.0.1:{otlp}/v1/traces"),
        dir: dir.to_path_buf(),
    }
}

/// Starts the server with OTLP over gRPC too; returns it and the gRPC port.
async fn start_with_grpc(dir: &std::path::Path) -> (Server, u16) {
    let grpc_port = free_port();
    let (http, otlp) = (free_port(), free_port());
    let config = dir.join("tracefusion.yaml");
    let text = config_text(dir, http, otlp, "").replace(
        "        http:\n",
        &format!("        grpc:\n          endpoint: 127.0.0.1:{grpc_port}\n        http:\n"),
    );
    std::fs::write(&config, text).unwrap();
    let http = format!("http://127.0.0.1:{http}");
    let child = serve(&config, &[], &http, Duration::from_secs(30)).await;
    let server = Server {
        child,
        http,
        otlp: format!("http://127.0.0.1:{otlp}/v1/traces"),
        dir: dir.to_path_buf(),
    };
    (server, grpc_port)
}

pub(crate) fn request_of(traces: &Traces) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: traces.values().flatten().cloned().collect(),
    }
}

/// Sends `traces` to the server as one OTLP/HTTP protobuf request, which must be accepted.
pub(crate) async fn push(server: &Server, traces: &Traces) {
    let pushed = reqwest::Client::new()
        .post(&server.otlp)
        .header("Content-Type", "application/x-protobuf")
        .body(request_of(traces).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200, "{}", pushed.text().await.unwrap());
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn get_trace_protobuf(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
) -> Option<TraceByIdResponse> {
    let response = client
        .get(format!("{}/api/v2/traces/{id}", server.http))
        .header("Accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return None;
    }
    assert_eq!(response.status(), 200);
    Some(TraceByIdResponse::decode(response.bytes().await.unwrap()).expect("TraceByIDResponse"))
}

/// Blocks of `tenant` that are committed (have their `meta.json`).
fn committed_blocks(dir: &std::path::Path, tenant: &str) -> usize {
    let blocks = dir.join("blocks").join(tenant).join("blocks");
    std::fs::read_dir(blocks)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("meta.json").exists())
                .count()
        })
        .unwrap_or(0)
}

/// Stops the server with SIGTERM (it writes what it holds as blocks) and waits for it.
fn stop(mut server: Server) {
    server.child.signal(libc::SIGTERM);
    assert!(server.child.wait_exit(Duration::from_secs(20)).is_some());
}

/// Waits (at most 20 s) until the server has committed a block for `tenant`.
pub(crate) async fn wait_for_block(server: &Server, tenant: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed_blocks(&server.dir, tenant) == 0 {
        assert!(
            Instant::now() < deadline,
            "no block written for {tenant}:\n{}",
            server.child.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_traces_are_found_by_id_live_and_after_the_block_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "").await;
    let client = reqwest::Client::new();

    // A plain OTLP/JSON request as curl would send it: hex ids, enum names, int64 as string.
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
      "scopeSpans":[{"scope":{"name":"manual"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
      "name":"GET /cart","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000250000000",
      "attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}},
        {"key":"nan","value":{"doubleValue":"NaN"}},{"key":"inf","value":{"doubleValue":"Infinity"}},
        {"key":"minus_inf","value":{"doubleValue":"-Infinity"}},{"key":"quoted","value":{"doubleValue":"2.5"}},
        {"key":"nested","value":{"kvlistValue":{"values":[{"key":"n","value":{"doubleValue":"NaN"}}]}}}],
      "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}"#;
    let response = client
        .post(&server.otlp)
        .header("Content-Type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{}");

    // Generated traces as gzipped protobuf.
    let traces = generate(31, 40);
    let response = client
        .post(&server.otlp)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "gzip")
        .body(gzip(&request_of(&traces).encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Live: found at once, every field intact.
    for (id, trace) in traces.iter().take(10) {
        let found = get_trace_protobuf(&client, &server, &id.to_string())
            .await
            .expect("live trace");
        assert_eq!(
            canonical(&found.trace.unwrap().resource_spans),
            canonical(trace)
        );
    }
    let v2: serde_json::Value = client
        .get(format!(
            "{}/api/v2/traces/5b8efff798038103d269b633813fc60c",
            server.http
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let span = &v2["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["name"], "GET /cart");
    assert_eq!(span["kind"], "SPAN_KIND_SERVER");
    assert_eq!(span["traceId"], "W47/95gDgQPSabYzgT/GDA==");
    assert_eq!(span["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(span["attributes"][0]["value"]["intValue"], "200");
    assert!(
        span.get("parentSpanId").is_none(),
        "a root span has no parent id"
    );

    // After the head block is cut (idle 1 s, block duration 2 s) the traces come from blocks.
    wait_for_block(&server, "single-tenant").await;
    // Give the in-process blocklist the new block, then the memory copy is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (id, trace) in traces.iter() {
        let found = get_trace_protobuf(&client, &server, &id.to_string())
            .await
            .expect("flushed trace");
        assert_eq!(
            canonical(&found.trace.unwrap().resource_spans),
            canonical(trace)
        );
    }
    let v1: serde_json::Value = client
        .get(format!(
            "{}/api/traces/5b8efff798038103d269b633813fc60c",
            server.http
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let span = &v1["batches"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["name"], "GET /cart");
    // Doubles protobuf JSON writes as strings arrive as doubles and are shown the same way.
    let attribute = |key: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == key)
            .unwrap_or_else(|| panic!("{key} in {span}"))["value"]
            .clone()
    };
    assert_eq!(attribute("nan"), serde_json::json!({"doubleValue": "NaN"}));
    assert_eq!(
        attribute("inf"),
        serde_json::json!({"doubleValue": "Infinity"})
    );
    assert_eq!(
        attribute("minus_inf"),
        serde_json::json!({"doubleValue": "-Infinity"})
    );
    assert_eq!(attribute("quoted"), serde_json::json!({"doubleValue": 2.5}));
    assert_eq!(
        attribute("nested")["kvlistValue"]["values"][0]["value"],
        serde_json::json!({"doubleValue": "NaN"})
    );

    let missing = client
        .get(format!("{}/api/v2/traces/1234", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = client
        .get(format!("{}/api/v2/traces/xyz", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("not hexadecimal"));
    let bad_range = client
        .get(format!(
            "{}/api/v2/traces/1234?start=200&end=100",
            server.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_range.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_otlp_requests_get_4xx_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "").await;
    let client = reqwest::Client::new();
    let post = |content_type: &'static str, encoding: Option<&'static str>, body: Vec<u8>| {
        let mut request = client
            .post(&server.otlp)
            .header("Content-Type", content_type)
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("Content-Encoding", encoding);
        }
        request.send()
    };
    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        (
            "wrong content type",
            post("text/plain", None, b"hello".to_vec()).await.unwrap(),
            415,
            "Content-Type",
        ),
        (
            "bad protobuf",
            post("application/x-protobuf", None, vec![0xff, 0xff, 0xff])
                .await
                .unwrap(),
            400,
            "protobuf",
        ),
        (
            "bad JSON",
            post("application/json", None, b"{\"resourceSpans\": [".to_vec())
                .await
                .unwrap(),
            400,
            "JSON",
        ),
        (
            "a double that is no number",
            post(
                "application/json",
                None,
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"d","value":{"doubleValue":"many"}}]}]}]}]}"#.to_vec(),
            )
            .await
            .unwrap(),
            400,
            "is not a number",
        ),
        (
            "bad gzip",
            post("application/json", Some("gzip"), b"not gzip".to_vec())
                .await
                .unwrap(),
            400,
            "gzip",
        ),
        (
            "unknown encoding",
            post("application/json", Some("br"), b"{}".to_vec())
                .await
                .unwrap(),
            415,
            "Content-Encoding",
        ),
        (
            // 40 MiB of zeros in a 40 KiB gzip body: refused after decompressing 32 MiB.
            "oversized after decompression",
            post(
                "application/x-protobuf",
                Some("gzip"),
                gzip(&vec![0u8; 40 << 20]),
            )
            .await
            .unwrap(),
            413,
            "larger than",
        ),
    ];
    for (name, response, status, needle) in cases {
        assert_eq!(response.status().as_u16(), status, "{name}");
        let body = response.text().await.unwrap();
        assert!(body.contains(needle), "{name}: {body}");
    }

    // A body over the limit is refused with 413 as soon as its length is known; the server may
    // close the connection before the client has finished writing, which is also a refusal.
    match post("application/x-protobuf", None, vec![0u8; 40 << 20]).await {
        Ok(response) => assert_eq!(response.status(), 413),
        Err(e) => {
            let detail = format!("{e:?}");
            assert!(
                detail.contains("BrokenPipe") || detail.contains("ConnectionReset"),
                "{detail}"
            );
        }
    }

    // Spans with bad ids are refused by count and reason; the good ones are kept.
    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
      {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b174","name":"zero trace id"},
      {"traceId":"5b8efff798038103d269b633813fc60d","spanId":"00","name":"short span id"},
      {"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b176","name":"after 2262",
       "startTimeUnixNano":"9223372036854775808","endTimeUnixNano":"18446744073709551615"},
      {"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175","name":"good"}]}]}]}"#;
    let response = post("application/json", None, json.as_bytes().to_vec())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "3", "{body}");
    let message = body["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("invalid trace id")
            && message.contains("invalid span id")
            && message.contains("after the year 2262"),
        "{message}"
    );
    let found = get_trace_protobuf(&client, &server, "5b8efff798038103d269b633813fc60d")
        .await
        .unwrap();
    // The request had no resource, scope or status: Grafana needs them present anyway.
    let batches = found.trace.unwrap().resource_spans;
    assert!(
        batches
            .iter()
            .all(|r| r.resource.is_some() && r.scope_spans.iter().all(|s| s.scope.is_some()))
    );
    let spans: Vec<_> = batches
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    assert!(spans.iter().all(|s| s.status.is_some()));
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "good");
    assert!(server.child.log().lines().all(|l| !l.contains("panicked")));
}

/// Kill -9 while clients are sending; after a restart every acknowledged trace is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_loses_no_acknowledged_span() {
    let dir = tempfile::tempdir().unwrap();
    // Whether a trace was already in a block or only in the WAL when the process died, it
    // must be found after the restart.
    let extra = "";
    let mut server = start(dir.path(), extra).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let traces = generate(41, 600);
    let chunks: Vec<Traces> = {
        let entries: Vec<_> = traces.iter().map(|(k, v)| (*k, v.clone())).collect();
        entries
            .chunks(10)
            .map(|c| c.iter().cloned().collect())
            .collect()
    };
    let mut acknowledged = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if i == chunks.len() / 2 {
            server.child.signal(libc::SIGKILL);
        }
        let sent = client
            .post(&server.otlp)
            .header("Content-Type", "application/x-protobuf")
            .body(request_of(chunk).encode_to_vec())
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 200 => acknowledged.extend(chunk.keys().copied()),
            _ => break,
        }
    }
    assert!(
        acknowledged.len() >= 200,
        "only {} acknowledged",
        acknowledged.len()
    );
    server
        .child
        .wait_exit(Duration::from_secs(5))
        .expect("killed");

    let restarted = start(dir.path(), extra).await;
    for id in &acknowledged {
        let found = get_trace_protobuf(&client, &restarted, &id.to_string())
            .await
            .unwrap_or_else(|| panic!("acknowledged trace {id} lost"));
        assert_eq!(
            canonical(&found.trace.unwrap().resource_spans),
            canonical(&traces[id])
        );
    }
}

/// Per-tenant limits: a request over the ingestion rate gets 429 with the limit named; spans
/// that would make a trace too large are refused by count with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_limits_refuse_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "overrides:\n  defaults:\n    ingestion:\n      rate_limit_bytes: 20000\n      burst_size_bytes: 200000\n    global:\n      max_bytes_per_trace: 30000\n";
    let server = start(dir.path(), limits).await;
    let client = reqwest::Client::new();
    let traces = generate(51, 200);

    // One big trace part is refused for size, the small ones are kept.
    let (big_id, _) = traces
        .iter()
        .max_by_key(|(_, t)| t.iter().map(|b| b.encoded_len()).sum::<usize>())
        .unwrap();
    let mut big = traces[big_id].clone();
    for _ in 0..4 {
        big.extend(traces[big_id].clone());
    }
    let small: Traces = traces
        .iter()
        .take(3)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let mut request = request_of(&small);
    request.resource_spans.extend(big.clone());
    let response = client
        .post(&server.otlp)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&request).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("max_bytes_per_trace"),
        "{body}"
    );
    assert!(
        get_trace_protobuf(&client, &server, &small.keys().next().unwrap().to_string())
            .await
            .is_some()
    );

    // Sending far beyond the rate, in requests that each fit the burst: 429 with the limit
    // named, and nothing panics.
    let mut fitting = request_of(&traces);
    while fitting.encoded_len() > 150_000 {
        fitting.resource_spans.pop();
    }
    assert!(!fitting.resource_spans.is_empty());
    let all = fitting.encode_to_vec();
    let mut limited = None;
    for _ in 0..20 {
        let response = client
            .post(&server.otlp)
            .header("Content-Type", "application/x-protobuf")
            .body(all.clone())
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
            limited = Some(
                tracefusion::ingest::otlp_http::RpcStatus::decode(response.bytes().await.unwrap())
                    .unwrap(),
            );
            break;
        }
    }
    let status = limited.expect("a 429 once the burst is spent");
    assert_eq!(status.code, 8);
    assert!(status.message.contains("rate limit"), "{}", status.message);

    // A request larger than the whole burst could never pass: 413, which exporters do not
    // retry, instead of a 429 forever.
    let mut larger = request_of(&traces);
    larger.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(250_000);
    let response = client
        .post(&server.otlp)
        .header("Content-Type", "application/x-protobuf")
        .body(larger.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let status =
        tracefusion::ingest::otlp_http::RpcStatus::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("burst_size_bytes"),
        "{}",
        status.message
    );
}

/// `/metrics` counts what came in, what was refused and why, blocks written and store requests,
/// under Tempo's metric names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_write_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "").await;
    let client = reqwest::Client::new();
    let metrics = || async {
        client
            .get(format!("{}/metrics", server.http))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let before = metrics().await;
    assert!(
        before.contains("tempo_ingester_blocks_flushed_total 0"),
        "{before}"
    );

    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
      {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b174","name":"zero trace id"},
      {"traceId":"5b8efff798038103d269b633813fc60e","spanId":"00","name":"short span id"},
      {"traceId":"5b8efff798038103d269b633813fc60e","spanId":"eee19b7ec3c1b175","name":"good"},
      {"traceId":"5b8efff798038103d269b633813fc60e","spanId":"eee19b7ec3c1b176","name":"good too"}]}]}]}"#;
    let response = client
        .post(&server.otlp)
        .header("Content-Type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    wait_for_block(&server, "single-tenant").await;
    let after = metrics().await;
    let tenant = r#"{tenant="single-tenant"}"#;
    assert_eq!(
        value(
            &after,
            &format!("tempo_distributor_spans_received_total{tenant}")
        ),
        4.0
    );
    assert!(
        value(
            &after,
            &format!("tempo_distributor_bytes_received_total{tenant}")
        ) > 0.0
    );
    assert_eq!(
        value(
            &after,
            r#"tempo_discarded_spans_total{reason="invalid_trace_id",tenant="single-tenant"}"#
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        value(
            &after,
            r#"tempo_discarded_spans_total{reason="invalid_span_id",tenant="single-tenant"}"#
        ),
        1.0
    );
    assert!(value(&after, "tempo_ingester_blocks_flushed_total") >= 1.0);
    assert!(
        value(
            &after,
            r#"tempodb_backend_request_duration_seconds_count{operation="PUT",status_code="200"}"#
        ) >= 4.0,
        "data, bloom, tags and meta are written: {after}"
    );
}

/// The real OpenTelemetry Rust exporter, over gRPC (gzip) and over HTTP/protobuf, delivers
/// spans that are then found by id with their fields intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_opentelemetry_rust_exporter_delivers_over_grpc_and_http() {
    use opentelemetry::trace::{
        Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
    };
    use opentelemetry::{KeyValue, Value};
    use opentelemetry_otlp::{
        Compression, Protocol, SpanExporter, WithExportConfig, WithTonicConfig,
    };
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    let dir = tempfile::tempdir().unwrap();
    let (server, grpc_port) = start_with_grpc(dir.path()).await;
    let client = reqwest::Client::new();

    let exporters = [
        (
            "grpc",
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("http://127.0.0.1:{grpc_port}"))
                .with_compression(Compression::Gzip)
                .build()
                .unwrap(),
        ),
        (
            "http",
            SpanExporter::builder()
                .with_http()
                .with_endpoint(server.otlp.clone())
                .with_protocol(Protocol::HttpBinary)
                .build()
                .unwrap(),
        ),
    ];
    for (transport, exporter) in exporters {
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(format!("exporter-{transport}"))
                    .with_attribute(KeyValue::new("deployment.environment.name", "test"))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("tracefusion-tests");
        let (trace_id, root_id) = {
            let root = tracer
                .span_builder("checkout")
                .with_kind(SpanKind::Server)
                .with_attributes([
                    KeyValue::new("http.request.method", "POST"),
                    KeyValue::new("http.response.status_code", 201_i64),
                    KeyValue::new("app.ratio", 0.25),
                    KeyValue::new("app.cached", true),
                    KeyValue::new(
                        "app.tags",
                        Value::Array(
                            vec![
                                opentelemetry::StringValue::from("a"),
                                opentelemetry::StringValue::from("b"),
                            ]
                            .into(),
                        ),
                    ),
                ])
                .start(&tracer);
            let context = opentelemetry::Context::current_with_span(root);
            let mut child = tracer
                .span_builder("charge card")
                .with_kind(SpanKind::Client)
                .start_with_context(&tracer, &context);
            child.add_event("retry", vec![KeyValue::new("attempt", 2_i64)]);
            child.set_status(Status::error("card declined"));
            child.end();
            let span = context.span();
            let ids = (
                span.span_context().trace_id(),
                span.span_context().span_id(),
            );
            span.end();
            ids
        };
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();

        let found = get_trace_protobuf(&client, &server, &trace_id.to_string())
            .await
            .unwrap_or_else(|| panic!("{transport}: trace {trace_id} not found"));
        let batches = found.trace.unwrap().resource_spans;
        let spans: Vec<_> = batches
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(spans.len(), 2, "{transport}");
        let service = batches[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .unwrap();
        assert_eq!(
            format!("{:?}", service.value),
            format!(
                "{:?}",
                Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            format!("exporter-{transport}")
                        )
                    )
                })
            )
        );
        let root = spans.iter().find(|s| s.name == "checkout").unwrap();
        assert_eq!(root.span_id, root_id.to_bytes().to_vec());
        assert!(root.parent_span_id.is_empty());
        assert_eq!(root.kind, 2);
        let attrs: Vec<String> = root
            .attributes
            .iter()
            .map(|kv| format!("{}={:?}", kv.key, kv.value.as_ref().unwrap().value))
            .collect();
        for expected in [
            "http.request.method=Some(StringValue(\"POST\"))",
            "http.response.status_code=Some(IntValue(201))",
            "app.ratio=Some(DoubleValue(0.25))",
            "app.cached=Some(BoolValue(true))",
        ] {
            assert!(
                attrs.iter().any(|a| a == expected),
                "{transport}: {expected} missing from {attrs:?}"
            );
        }
        assert!(
            attrs
                .iter()
                .any(|a| a.starts_with("app.tags=Some(ArrayValue")),
            "{attrs:?}"
        );
        let child = spans.iter().find(|s| s.name == "charge card").unwrap();
        assert_eq!(child.parent_span_id, root.span_id);
        assert_eq!(child.events[0].name, "retry");
        let status = child.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "card declined"));
    }
}

/// With multitenancy on, the tenant comes from `X-Scope-OrgID` on both write and read; a
/// missing tenant is refused with 401, a path-escaping one with 400; tenants never see each other's traces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_separate_when_multitenancy_is_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "multitenancy_enabled: true\n").await;
    let client = reqwest::Client::new();
    let traces = generate(61, 5);
    let body = request_of(&traces).encode_to_vec();
    let send = |tenant: Option<&'static str>| {
        let mut request = client
            .post(&server.otlp)
            .header("Content-Type", "application/x-protobuf")
            .body(body.clone());
        if let Some(tenant) = tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        request.send()
    };
    let missing = send(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    let status =
        tracefusion::ingest::otlp_http::RpcStatus::decode(missing.bytes().await.unwrap()).unwrap();
    assert!(
        status.message.contains("X-Scope-OrgID"),
        "{}",
        status.message
    );
    let escaping = send(Some("../etc")).await.unwrap();
    assert_eq!(escaping.status(), 400);
    let status =
        tracefusion::ingest::otlp_http::RpcStatus::decode(escaping.bytes().await.unwrap()).unwrap();
    assert!(
        status.message.contains("invalid tenant id"),
        "{}",
        status.message
    );
    assert_eq!(send(Some("team-a")).await.unwrap().status(), 200);

    let id = traces.keys().next().unwrap().to_string();
    let get = |tenant: &'static str| {
        client
            .get(format!("{}/api/v2/traces/{id}", server.http))
            .header("X-Scope-OrgID", tenant)
            .send()
    };
    assert_eq!(get("team-a").await.unwrap().status(), 200);
    assert_eq!(get("team-b").await.unwrap().status(), 404);
    let no_tenant = client
        .get(format!("{}/api/v2/traces/{id}", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(no_tenant.status(), 401);

    // After the block is written it lives under the tenant's own folder.
    wait_for_block(&server, "team-a").await;
    assert!(!dir.path().join("blocks/single-tenant").exists());
}

/// A head block larger than `max_block_bytes` is cut into several blocks, each within the size
/// and each over its own stretch of trace start times (what lets a newest-first search stop
/// early); nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_head_block_is_cut_into_blocks_of_max_block_bytes() {
    use std::sync::Arc;
    use tracefusion::storage::{Blocklist, TraceReader};

    let dir = tempfile::tempdir().unwrap();
    let store = crate::storage::local_store(dir.path());
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    let traces = generate(77, 300);
    let encoded_bytes: usize = traces
        .values()
        .map(|t| {
            ExportTraceServiceRequest {
                resource_spans: t.clone(),
            }
            .encoded_len()
        })
        .sum();
    let max_block_bytes = (encoded_bytes / 6) as u64;
    let ingester = crate::support::ingester(
        dir.path(),
        store.clone(),
        blocklist.clone(),
        Duration::from_secs(3600),
        max_block_bytes,
    )
    .await;
    ingester
        .push("single-tenant", traces.clone())
        .await
        .unwrap();

    let written = ingester.tick(true).await.unwrap();
    assert!(
        written >= 6,
        "{encoded_bytes} bytes with max_block_bytes {max_block_bytes} made {written} blocks"
    );
    let blocks = blocklist.blocks("single-tenant");
    assert_eq!(blocks.len(), written);
    assert!(
        ingester
            .live_spans("single-tenant", &[])
            .unwrap()
            .batches
            .is_empty(),
        "the ingester still holds data after every block was written"
    );

    // Every trace in exactly one block, whole; blocks ordered by time hold later traces.
    let trace_start = tracefusion::storage::block::trace_start;
    let mut starts_per_block = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for meta in blocks.iter() {
        let held = crate::storage::scan_block(store.clone(), meta).await;
        let mut starts = Vec::new();
        for (id, trace) in &held {
            assert!(seen.insert(*id), "trace {id} is in two blocks");
            assert_eq!(canonical(trace), canonical(&traces[id]), "trace {id}");
            starts.push(trace_start(trace));
        }
        starts.sort();
        starts_per_block.push(starts);
    }
    assert_eq!(seen.len(), traces.len(), "every trace is in a block");
    starts_per_block.sort();
    for pair in starts_per_block.windows(2) {
        assert!(
            pair[0].last() <= pair[1].first(),
            "blocks overlap in trace start times"
        );
    }

    let reader = TraceReader::new(store.clone(), blocklist.clone());
    for (id, trace) in traces.iter().take(50) {
        let found = reader.find_trace("single-tenant", *id, None).await.unwrap();
        assert_eq!(canonical(&found.resource_spans), canonical(trace));
        assert_eq!(found.stats.blocks_with_trace, 1, "trace {id}");
    }
}

/// Odd tenant ids: each is refused with 400 by writes and reads alike, or written, kept over a
/// restart (which writes its block) and read back by id and by search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_id_is_refused_everywhere_or_round_trips() {
    let refused = [
        "..".to_string(),
        ".".to_string(),
        "a/b".to_string(),
        "%2A".to_string(),
        "ünïcode".to_string(),
        "a b".to_string(),
        "a|b".to_string(),
        "x".repeat(151),
    ];
    let accepted = [
        "*".to_string(),
        "(a)'!".to_string(),
        "a.b-c_D9".to_string(),
        "...".to_string(),
        "x".repeat(150),
    ];
    let dir = tempfile::tempdir().unwrap();
    let extra = "multitenancy_enabled: true\n";
    let server = start(dir.path(), extra).await;
    let client = reqwest::Client::new();
    let (id, batches) = crate::grafana::short_id_trace(1_700_000_000_000_000_000);
    let body = ExportTraceServiceRequest {
        resource_spans: batches,
    }
    .encode_to_vec();
    let hex_id = hex::encode(id.0);
    let with_tenant = |request: reqwest::RequestBuilder, tenant: &str| {
        request.header(
            "X-Scope-OrgID",
            reqwest::header::HeaderValue::from_bytes(tenant.as_bytes()).unwrap(),
        )
    };
    let reads = |base: &str, tenant: &str| {
        [
            with_tenant(client.get(format!("{base}/api/v2/traces/{hex_id}")), tenant),
            with_tenant(
                client
                    .get(format!("{base}/api/search"))
                    .query(&[("q", "{ }")]),
                tenant,
            ),
            with_tenant(client.get(format!("{base}/api/v2/search/tags")), tenant),
        ]
    };
    let push_as = |tenant: &str| {
        with_tenant(client.post(&server.otlp), tenant)
            .header("Content-Type", "application/x-protobuf")
            .body(body.clone())
            .send()
    };
    for tenant in &refused {
        let push = push_as(tenant).await.unwrap();
        assert_eq!(push.status(), 400, "push as {tenant:?}");
        assert!(push.text().await.unwrap().contains("invalid tenant"));
        for read in reads(&server.http, tenant) {
            let answer = read.send().await.unwrap();
            let url = answer.url().path().to_string();
            assert_eq!(answer.status(), 400, "{url} as {tenant:?}");
            assert!(
                answer.text().await.unwrap().contains("invalid tenant"),
                "{url}"
            );
        }
    }
    for tenant in &accepted {
        let push = push_as(tenant).await.unwrap();
        assert_eq!(push.status(), 200, "push as {tenant:?}");
    }

    stop(server);
    let server = start(dir.path(), extra).await;
    for tenant in &accepted {
        let [by_id, search, _] = reads(&server.http, tenant);
        let by_id = by_id.send().await.unwrap();
        assert_eq!(
            by_id.status(),
            200,
            "trace by id as {tenant:?} after a restart"
        );
        let search = search.send().await.unwrap();
        assert_eq!(search.status(), 200, "search as {tenant:?}");
        let found: serde_json::Value = search.json().await.unwrap();
        assert_eq!(
            found["traces"].as_array().map(Vec::len),
            Some(1),
            "search as {tenant:?} after a restart: {found}"
        );
    }
    // Nothing of one tenant shows under another, however its id is encoded in storage.
    let other = reads(&server.http, "single-tenant");
    let [by_id, ..] = other;
    assert_eq!(by_id.send().await.unwrap().status(), 404);
}

/// A kill during a block upload leaves `data.parquet#1` in a local store; the next start
/// removes it and keeps every real object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_uploads_are_removed_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "").await;
    push(&server, &generate(7, 5)).await;
    wait_for_block(&server, "single-tenant").await;
    stop(server);

    let block = std::fs::read_dir(dir.path().join("blocks/single-tenant/blocks"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.path().join("meta.json").exists())
        .expect("a committed block")
        .path();
    let partials = [
        block.join("data.parquet#1"),
        dir.path().join(
            "blocks/single-tenant/blocks/0a6f1c3e-0000-4000-8000-000000000000/data.parquet#12",
        ),
    ];
    for partial in &partials {
        std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
        std::fs::write(partial, b"half a parquet file").unwrap();
    }
    let objects_before = committed_blocks(dir.path(), "single-tenant");

    let server = start(dir.path(), "").await;
    for partial in &partials {
        assert!(!partial.exists(), "{} is still there", partial.display());
    }
    assert_eq!(
        committed_blocks(dir.path(), "single-tenant"),
        objects_before
    );
    assert!(block.join("data.parquet").exists() && block.join("meta.json").exists());
    let search = reqwest::get(format!("{}/api/search?q=%7B%7D", server.http))
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
}

/// Splits every trace in two: even-numbered spans first, the others as late spans.
fn split_spans(traces: &Traces) -> (Traces, Traces) {
    let half = |keep_even: bool| -> Traces {
        traces
            .iter()
            .map(|(id, batches)| {
                let mut batches = batches.clone();
                let mut n = 0;
                for rs in &mut batches {
                    for ss in &mut rs.scope_spans {
                        ss.spans.retain(|_| {
                            n += 1;
                            (n % 2 == 1) == keep_even
                        });
                    }
                }
                (*id, batches)
            })
            .collect()
    };
    (half(true), half(false))
}

fn span_count(traces: &Traces) -> usize {
    traces
        .values()
        .flatten()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// Rows in the committed blocks of `tenant`, and distinct (trace id, span id) among them,
/// counted with pyarrow. Fails if a block folder holds data but no `meta.json`.
fn stored_spans(dir: &std::path::Path, tenant: &str) -> (usize, usize) {
    let script = r#"
import os, sys, pyarrow.parquet as pq
root = sys.argv[1]
rows, pairs = 0, set()
for block in os.listdir(root) if os.path.isdir(root) else []:
    folder = os.path.join(root, block)
    files = os.listdir(folder)
    if "meta.json" not in files:
        assert not files, f"uncommitted block {block} left behind: {files}"
        continue
    t = pq.read_table(os.path.join(folder, "data.parquet"), columns=["trace_id", "span_id"])
    rows += t.num_rows
    pairs.update(zip(t.column("trace_id").to_pylist(), t.column("span_id").to_pylist()))
print(rows, len(pairs))
"#;
    let blocks = dir.join("blocks").join(tenant).join("blocks");
    let stdout = crate::support::run_pyarrow(script, &[blocks.as_os_str()]);
    let counts: Vec<usize> = stdout
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (counts[0], counts[1])
}

/// Spans `{ }` matches over everything the server holds: the sum of `matched`.
async fn search_matched(server: &Server) -> u64 {
    let body: serde_json::Value =
        reqwest::get(format!("{}/api/search?q=%7B%7D&limit=100000", server.http))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    body["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .flat_map(|t| t["spanSets"].as_array().cloned().unwrap_or_default())
        .map(|set| set["matched"].as_u64().unwrap())
        .sum()
}

/// Restarts the server on `dir`, stops it (writing all it holds as blocks) and checks that the
/// store holds each of `expected` spans exactly once, by pyarrow and by search.
async fn assert_stored_exactly_once(dir: &std::path::Path, expected: usize, what: &str) {
    let server = start(dir, "").await;
    stop(server);
    let (rows, distinct) = stored_spans(dir, "single-tenant");
    assert_eq!(
        (rows, distinct),
        (expected, expected),
        "{what}: (rows, distinct spans) stored"
    );
    let server = start(dir, "").await;
    assert_eq!(
        search_matched(&server).await,
        expected as u64,
        "{what}: spans search matches"
    );
    stop(server);
}

/// A crash at each step of a block cut, then a restart: every acknowledged span is stored
/// exactly once. Half of the traces get late spans after the restart, so a trace is in a block
/// written before the crash and in one written after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_a_cut_stores_every_span_exactly_once() {
    let traces = generate(57, 240);
    let (first, late) = split_spans(&traces);
    let late: Traces = late.into_iter().take(120).collect();
    let expected = span_count(&first) + span_count(&late);
    for point in [
        "cut:after-rotate",
        "cut:after-mark",
        "block:after-data",
        "block:before-meta",
        "cut:after-meta",
        "cut:after-truncate",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut server =
            start_with_env(dir.path(), "", &[(tracefusion::crash_point::ENV, point)]).await;
        push(&server, &first).await;
        let status = server
            .child
            .wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{point}: no cut reached it"));
        assert!(!status.success(), "{point}: {status}");
        assert!(server.child.log().contains("aborting here"), "{point}");

        let restarted = start(dir.path(), "").await;
        push(&restarted, &late).await;
        stop(restarted);
        assert_stored_exactly_once(dir.path(), expected, point).await;
    }
}

/// Cuts that fail (the block folder cannot be created) keep spans in memory and in the WAL
/// while more arrive; a SIGKILL then, and a restart with a writable store, stores every span
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_cuts_then_a_kill_store_every_span_exactly_once() {
    let traces = generate(58, 300);
    let (first, late) = split_spans(&traces);
    let batches: Vec<Traces> = {
        let entries: Vec<_> = first.into_iter().collect();
        entries
            .chunks(100)
            .map(|c| c.iter().cloned().collect())
            .collect()
    };
    let late: Traces = late.into_iter().take(150).collect();
    let dir = tempfile::tempdir().unwrap();
    // A file where the tenant's block folder would go: every block write fails.
    let tenant = dir.path().join("blocks/single-tenant");
    std::fs::create_dir_all(&tenant).unwrap();
    std::fs::write(tenant.join("blocks"), b"not a folder").unwrap();

    let mut server = start(dir.path(), "").await;
    let mut expected = 0;
    for (i, batch) in batches.iter().enumerate() {
        push(&server, batch).await;
        expected += span_count(batch);
        wait_for_flush_failures(&server, i as u64 + 1).await;
    }
    push(&server, &late).await;
    expected += span_count(&late);
    wait_for_flush_failures(&server, batches.len() as u64 + 1).await;
    server.child.signal(libc::SIGKILL);
    server
        .child
        .wait_exit(Duration::from_secs(10))
        .expect("killed");

    std::fs::remove_file(tenant.join("blocks")).unwrap();
    assert_stored_exactly_once(dir.path(), expected, "failed cuts").await;
}

/// Waits (at most 30 s) until the server counts `at_least` failed block writes.
async fn wait_for_flush_failures(server: &Server, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let failures = metrics
            .lines()
            .find_map(|l| l.strip_prefix("tempo_ingester_flush_failures_total "))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64);
        if failures >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{failures} failed block writes, waiting for {at_least}:\n{}",
            server.child.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A gRPC codec that sends bytes as they are, so a test can send what no client would.
#[derive(Clone, Copy, Default)]
struct RawBytes;

impl tonic::codec::Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> Self::Encoder {
        RawBytes
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Bodies tonic refuses before the service runs get `INVALID_ARGUMENT`, which OTLP exporters
/// do not retry, not `INTERNAL` or `OUT_OF_RANGE`, which they retry forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bodies_that_cannot_be_read_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, grpc_port) = start_with_grpc(dir.path()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc_port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let export = |body: Vec<u8>| {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        async move {
            grpc.ready().await.unwrap();
            let path = http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            );
            grpc.unary(tonic::Request::new(body), path, RawBytes)
                .await
                .map(|_| ())
        }
    };

    let valid = request_of(&generate(59, 3)).encode_to_vec();
    assert!(export(valid).await.is_ok());
    let max = tracefusion::ingest::otlp_http::MAX_BODY_BYTES;
    for (what, body) in [
        ("not protobuf", vec![0xff; 64]),
        ("a truncated request", {
            let mut b = request_of(&generate(60, 3)).encode_to_vec();
            b.truncate(b.len() / 2);
            b
        }),
        ("over the size limit", vec![0; max + 1]),
    ] {
        let status = export(body).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
    }
    assert!(server.child.has_exited().is_none());
}

/// The ingester's memory limit counts the rows it keeps for queries, not only the encoded
/// spans: once a search has made rows of what is held, pushes are refused sooner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_limit_counts_rows_kept_for_queries() {
    use std::sync::Arc;
    use tracefusion::ingest::ingester::{Ingester, IngesterOptions, PushError};
    let dir = tempfile::tempdir().unwrap();
    let store = crate::storage::local_store(dir.path());
    let traces = generate(61, 200);
    let encoded = request_of(&traces).encoded_len() as u64;
    let ingester = Ingester::open(
        IngesterOptions {
            trace_idle_period: Duration::from_secs(3600),
            max_block_duration: Duration::from_secs(3600),
            max_block_bytes: 1 << 30,
            max_memory_bytes: encoded * 2,
            max_bytes_per_trace: 0,
            block: tracefusion::storage::BlockOptions::default(),
        },
        &dir.path().join("wal"),
        tracefusion::ingest::wal::SyncPolicy::Never,
        store.clone(),
        Arc::new(tracefusion::storage::Blocklist::new(store)),
    )
    .await
    .unwrap();
    let more = |seed| generate(seed, 1);
    ingester.push("t", traces).await.unwrap();
    // Encoded spans alone are half the limit.
    ingester.push("t", more(62)).await.unwrap();
    let rows = ingester
        .live_spans("t", &tracefusion::config::DedicatedColumn::defaults())
        .unwrap();
    let row_bytes: u64 = rows
        .batches
        .iter()
        .map(|b| b.get_array_memory_size() as u64)
        .sum();
    assert!(
        row_bytes > encoded,
        "rows {row_bytes} B, encoded {encoded} B"
    );
    match ingester.push("t", more(63)).await {
        Err(PushError::Overloaded { held }) => {
            assert!(held >= encoded + row_bytes, "held {held}")
        }
        other => panic!("{other:?}"),
    }
}

/// A block the ingester cuts holds its traces in row groups by start time, whatever order they
/// arrived in, each row group sorted by trace id; a search reads it newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_block_holds_row_groups_in_time_order() {
    use std::sync::Arc;
    use tracefusion::ingest::ingester::{Ingester, IngesterOptions};
    let dir = tempfile::tempdir().unwrap();
    let store = crate::storage::local_store(dir.path());
    // By trace id, so out of time order.
    let traces = generate(64, 400);
    let blocklist = Arc::new(tracefusion::storage::Blocklist::new(store.clone()));
    let ingester = Ingester::open(
        IngesterOptions {
            trace_idle_period: Duration::from_secs(3600),
            max_block_duration: Duration::from_secs(3600),
            max_block_bytes: 1 << 30,
            max_memory_bytes: 1 << 30,
            max_bytes_per_trace: 0,
            block: tracefusion::storage::BlockOptions {
                row_group_bytes: 64 << 10,
                ..tracefusion::storage::BlockOptions::default()
            },
        },
        &dir.path().join("wal"),
        tracefusion::ingest::wal::SyncPolicy::Never,
        store.clone(),
        blocklist.clone(),
    )
    .await
    .unwrap();
    ingester.push("single-tenant", traces).await.unwrap();
    assert_eq!(ingester.tick(true).await.unwrap(), 1);
    blocklist.poll().await.unwrap();
    let blocks = blocklist.blocks("single-tenant");
    let meta = &blocks[0];
    assert!(meta.row_groups.len() > 5, "{}", meta.row_groups.len());
    for pair in meta.row_groups.windows(2) {
        assert!(
            pair[0].last_trace_start.unwrap() <= pair[1].start_time,
            "row groups in time order: {pair:?}"
        );
    }
    crate::storage::assert_row_groups_sorted_by_trace_id(store, meta).await;
}

/// A client clock far ahead (a span dated 2200) does not make its block the newest for good:
/// the block's time range ends when the block was written (`ingestion_time_range_slack`,
/// 2 minutes by default), and the span keeps its own times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_dated_far_ahead_does_not_stretch_its_blocks_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let in_2200: u64 = 7_258_118_400_000_000_000;
    let trace_id = "7d1e7c3c8f0a4b2e9d6c5b4a39281706";
    let span = |id: &str, start: u64| {
        format!(
            r#"{{"traceId":"{trace_id}","spanId":"{id}","name":"at {start}",
                "startTimeUnixNano":"{start}","endTimeUnixNano":"{}"}}"#,
            start + 1_000_000
        )
    };
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{},{}]}}]}}]}}"#,
        span("00000000000000a1", now),
        span("00000000000000a2", in_2200)
    );
    let response = reqwest::Client::new()
        .post(&server.otlp)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    stop(server);
    let written = chrono::Utc::now();

    let blocks = dir.path().join("blocks/single-tenant/blocks");
    let metas: Vec<serde_json::Value> = std::fs::read_dir(&blocks)
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("meta.json")).ok())
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .collect();
    assert_eq!(metas.len(), 1, "one block");
    let time = |key: &str| {
        metas[0][key]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let (block_start, end) = (time("startTime"), time("endTime"));
    assert_eq!(
        block_start.timestamp_nanos_opt().unwrap() as u64,
        now,
        "start kept"
    );
    assert!(
        end <= written,
        "block end {end} is after it was written ({written})"
    );

    let server = start(dir.path(), "").await;
    let found = get_trace_protobuf(&reqwest::Client::new(), &server, trace_id)
        .await
        .expect("the trace is found by id");
    let mut starts: Vec<u64> = found
        .trace
        .unwrap()
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.start_time_unix_nano)
        .collect();
    starts.sort();
    assert_eq!(starts, [now, in_2200], "the spans keep their own times");
}

/// An attribute value `depth` levels deep, key-value lists and arrays in turn.
fn nested_value(depth: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(Value::StringValue("leaf".into())),
    };
    for level in 1..depth {
        value = AnyValue {
            value: Some(if level % 2 == 0 {
                Value::ArrayValue(ArrayValue {
                    values: vec![value],
                })
            } else {
                Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(value),
                        ..Default::default()
                    }],
                })
            }),
        };
    }
    value
}

/// [`nested_value`] in OTLP/JSON.
fn nested_json(depth: usize) -> String {
    let mut json = r#"{"stringValue":"leaf"}"#.to_string();
    for level in 1..depth {
        json = if level % 2 == 0 {
            format!(r#"{{"arrayValue":{{"values":[{json}]}}}}"#)
        } else {
            format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{json}}}]}}}}"#)
        };
    }
    json
}

/// One span of trace `id` with the attribute `deep` set to `value`.
fn deep_span_request(id: u128, value: AnyValue) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: id.to_be_bytes().to_vec(),
                    span_id: vec![7; 8],
                    name: "deep".into(),
                    start_time_unix_nano: now,
                    end_time_unix_nano: now + 1000,
                    attributes: vec![KeyValue {
                        key: "deep".into(),
                        value: Some(value),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A request whose span attribute nests `levels` key-value lists, written as bytes from the
/// outside in: a value nested this deep cannot be built (or encoded) by recursion.
fn deep_protobuf(levels: usize) -> Vec<u8> {
    fn header(field: u32, length: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        prost::encoding::encode_key(
            field,
            prost::encoding::WireType::LengthDelimited,
            &mut bytes,
        );
        prost::encoding::encode_varint(length as u64, &mut bytes);
        bytes
    }
    let leaf = AnyValue {
        value: Some(Value::StringValue("leaf".into())),
    }
    .encode_to_vec();
    let mut length = leaf.len();
    let mut headers = Vec::new();
    // AnyValue{kvlist(6): KeyValueList{values(1): KeyValue{value(2): ...}}}
    for _ in 0..levels {
        for field in [2, 1, 6] {
            let h = header(field, length);
            length += h.len();
            headers.push(h);
        }
    }
    // KeyValue(value 2) in Span(attributes 9) in ScopeSpans(2) in ResourceSpans(2) in request(1).
    for field in [2, 9, 2, 2, 1] {
        let h = header(field, length);
        length += h.len();
        headers.push(h);
    }
    let mut bytes: Vec<u8> = headers.into_iter().rev().flatten().collect();
    bytes.extend(leaf);
    bytes
}

/// The `deep` attribute of the one span of trace `id`, as trace by id answers it.
async fn deep_attribute(client: &reqwest::Client, server: &Server, id: u128) -> AnyValue {
    let found = get_trace_protobuf(client, server, &format!("{id:032x}"))
        .await
        .unwrap_or_else(|| panic!("trace {id:032x} not found"));
    let span = found.trace.unwrap().resource_spans[0].scope_spans[0].spans[0].clone();
    span.attributes
        .into_iter()
        .find(|kv| kv.key == "deep")
        .and_then(|kv| kv.value)
        .expect("the deep attribute")
}

/// Values nested as deep as the bound are accepted on every receiver and read back intact
/// from memory, blocks and the WAL; deeper ones, and bodies built to exhaust the stack, are
/// refused with the bound named, and the server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_nested_to_the_bound_round_trip_and_deeper_ones_are_refused() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let max = tracefusion::ingest::nesting::MAX_VALUE_DEPTH;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, grpc_port) = start_with_grpc(dir.path()).await;
    let client = reqwest::Client::new();
    let post = |content_type: &'static str, body: Vec<u8>| {
        client
            .post(&server.otlp)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let mut grpc = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc_port}"))
        .await
        .unwrap();
    let json_request = |id: u128, depth: usize| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{id:032x}","spanId":"0707070707070707",
            "name":"deep","attributes":[{{"key":"deep","value":{}}}]}}]}}]}}]}}"#,
            nested_json(depth)
        )
    };

    // At the bound: one trace through each receiver.
    let (by_protobuf, by_json, by_grpc) = (0xd1u128, 0xd2u128, 0xd3u128);
    let response = post(
        "application/x-protobuf",
        deep_span_request(by_protobuf, nested_value(max)).encode_to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = post("application/json", json_request(by_json, max).into_bytes())
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    grpc.export(deep_span_request(by_grpc, nested_value(max)))
        .await
        .unwrap();

    // One level past it, and far past it.
    let refusals = [
        (
            "protobuf past the bound",
            post(
                "application/x-protobuf",
                deep_span_request(0xe1, nested_value(max + 1)).encode_to_vec(),
            )
            .await
            .unwrap(),
        ),
        (
            "JSON past the bound",
            post("application/json", json_request(0xe2, max + 1).into_bytes())
                .await
                .unwrap(),
        ),
        (
            "protobuf 200,000 levels deep",
            post("application/x-protobuf", deep_protobuf(200_000))
                .await
                .unwrap(),
        ),
        (
            "JSON a million levels deep",
            post("application/json", "[".repeat(1_000_000).into_bytes())
                .await
                .unwrap(),
        ),
    ];
    for (what, response) in refusals {
        assert_eq!(response.status(), 400, "{what}");
        let body = response.text().await.unwrap();
        assert!(body.contains("deeper than"), "{what}: {body}");
    }
    let status = grpc
        .export(deep_span_request(0xe3, nested_value(max + 1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("deeper than"), "{status:?}");

    // Bodies no client would send, straight to the decoders: deep nesting, and a megabyte
    // of nested group fields (proto2, which prost skips by recursion).
    let raw = |port: u16, path: &'static str, body: Vec<u8>| async move {
        let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        grpc.unary(
            tonic::Request::new(body),
            http::uri::PathAndQuery::from_static(path),
            RawBytes,
        )
        .await
        .map(|_| ())
        .unwrap_err()
    };
    let export = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    let http_port: u16 = server.http.rsplit(':').next().unwrap().parse().unwrap();
    for (what, status) in [
        (
            "deep over gRPC",
            raw(grpc_port, export, deep_protobuf(200_000)).await,
        ),
        (
            "groups over gRPC",
            raw(grpc_port, export, vec![0x0b; 1 << 20]).await,
        ),
        (
            "groups in a streaming search",
            raw(
                http_port,
                "/tempopb.StreamingQuerier/Search",
                vec![0x0b; 1 << 20],
            )
            .await,
        ),
    ] {
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
    }
    assert!(server.child.has_exited().is_none());

    // Read back live, then from the block.
    for id in [by_protobuf, by_json, by_grpc] {
        assert_eq!(
            deep_attribute(&client, &server, id).await,
            nested_value(max)
        );
    }
    let as_json = client
        .get(format!("{}/api/traces/{by_json:032x}", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(as_json.status(), 200);
    wait_for_block(&server, "single-tenant").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in [by_protobuf, by_json, by_grpc] {
        assert_eq!(
            deep_attribute(&client, &server, id).await,
            nested_value(max)
        );
    }

    // From the WAL: acknowledged, then killed before any cut.
    let from_wal = 0xd4u128;
    grpc.export(deep_span_request(from_wal, nested_value(max)))
        .await
        .unwrap();
    server.child.signal(libc::SIGKILL);
    server
        .child
        .wait_exit(Duration::from_secs(5))
        .expect("killed");
    let restarted = start(dir.path(), "").await;
    for id in [by_protobuf, from_wal] {
        assert_eq!(
            deep_attribute(&client, &restarted, id).await,
            nested_value(max)
        );
    }
    stop(restarted);
}

/// The scan of protobuf bytes and the walk over a decoded request refuse the same requests,
/// with values in each place attributes live; prost decodes what they let through.
#[test]
fn the_nesting_scan_and_walk_agree_on_the_bound() {
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use tracefusion::ingest::nesting::{MAX_VALUE_DEPTH, Refused, check_protobuf, check_request};

    let requests = |depth: usize| {
        let attribute = |depth: usize| KeyValue {
            key: "deep".into(),
            value: Some(nested_value(depth)),
            ..Default::default()
        };
        let mut in_resource = deep_span_request(1, nested_value(1));
        in_resource.resource_spans[0].resource = Some(Resource {
            attributes: vec![attribute(depth)],
            ..Default::default()
        });
        let mut in_event = deep_span_request(2, nested_value(1));
        in_event.resource_spans[0].scope_spans[0].spans[0].events = vec![Event {
            attributes: vec![attribute(depth)],
            ..Default::default()
        }];
        [
            in_resource,
            deep_span_request(3, nested_value(depth)),
            in_event,
        ]
    };
    for request in requests(MAX_VALUE_DEPTH) {
        let bytes = request.encode_to_vec();
        assert_eq!(check_protobuf(&bytes), Ok(()));
        assert_eq!(check_request(&request), Ok(()));
        assert_eq!(
            ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap(),
            request
        );
    }
    for request in requests(MAX_VALUE_DEPTH + 1) {
        assert_eq!(
            check_protobuf(&request.encode_to_vec()),
            Err(Refused::TooDeep)
        );
        assert_eq!(check_request(&request), Err(Refused::TooDeep));
    }

    // Field 1 as a start group, a million times over: what prost would skip by recursion.
    assert_eq!(check_protobuf(&[0x0b; 1 << 20]), Err(Refused::Groups));
    // A truncated or garbled body passes the scan, for the decoder to report.
    let mut bytes = deep_span_request(4, nested_value(3)).encode_to_vec();
    bytes.truncate(bytes.len() - 3);
    assert_eq!(check_protobuf(&bytes), Ok(()));
    assert!(ExportTraceServiceRequest::decode(bytes.as_slice()).is_err());
    assert_eq!(check_protobuf(&[0xff; 16]), Ok(()));
}
