//! Grafana's Tempo data source, replayed. The requests it sends (health check, trace by id v2
//! with the v1 fallback, search, tags, tag values with `q`, streaming search over h2c, and what
//! older Grafana versions call) are encoded as Grafana encodes them, answered by the real server,
//! and decoded as strictly as Grafana decodes them: unknown JSON keys are errors where Grafana's
//! jsonpb makes them errors, protobuf is read with messages written from the field numbers of
//! the tempopb version Grafana pins, and every trace invariant Grafana relies on is checked.
//! It runs over live data, over blocks after a restart, under a path prefix and with tenants.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tracefusion::storage::TraceId;
use tracefusion::traceql::compile;

use crate::reference::RefTrace;
use crate::storage::{Traces, generate};
use crate::support::{ChildGuard, free_port};

/// Grafana's JSON decoders, written from the tempopb field lists (golang/protobuf jsonpb
/// rules): every object rejects keys it does not know, names may be the JSON or the proto
/// name, 64-bit integers may be strings or numbers, integers must be integer literals, doubles
/// may be `"NaN"`/`"Infinity"`/`"-Infinity"`, and `null` means absent.
mod strict {
    use std::collections::BTreeMap;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i128, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let text = match &value {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => {
                return Err(D::Error::custom(format!(
                    "expected an integer, found {other}"
                )));
            }
        };
        text.parse::<i128>()
            .map_err(|_| D::Error::custom(format!("not an integer literal: {text}")))
    }

    macro_rules! int_type {
        ($name:ident, $t:ty) => {
            #[derive(Debug, Clone, Copy, PartialEq, Default)]
            pub struct $name(pub $t);
            impl<'de> Deserialize<'de> for $name {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    let value = integer(d)?;
                    <$t>::try_from(value).map($name).map_err(|_| {
                        D::Error::custom(format!("{value} is out of range for {}", stringify!($t)))
                    })
                }
            }
        };
    }
    int_type!(U32, u32);
    int_type!(U64, u64);
    int_type!(I64, i64);

    #[derive(Debug, Clone, Copy, Default)]
    pub struct Double(pub f64);
    impl PartialEq for Double {
        fn eq(&self, other: &Self) -> bool {
            self.0.total_cmp(&other.0).is_eq()
        }
    }
    impl<'de> Deserialize<'de> for Double {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match serde_json::Value::deserialize(d)? {
                serde_json::Value::Number(n) => Ok(Double(n.as_f64().unwrap())),
                serde_json::Value::String(s) => match s.as_str() {
                    "NaN" => Ok(Double(f64::NAN)),
                    "Infinity" => Ok(Double(f64::INFINITY)),
                    "-Infinity" => Ok(Double(f64::NEG_INFINITY)),
                    other => other
                        .parse()
                        .map(Double)
                        .map_err(|_| D::Error::custom(format!("not a double: {other:?}"))),
                },
                other => Err(D::Error::custom(format!(
                    "expected a double, found {other}"
                ))),
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SearchResponse {
        pub traces: Option<Vec<TraceSearchMetadata>>,
        pub metrics: Option<SearchMetrics>,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TraceSearchMetadata {
        #[serde(rename = "traceID")]
        pub trace_id: Option<String>,
        #[serde(rename = "rootServiceName")]
        pub root_service_name: Option<String>,
        #[serde(rename = "rootTraceName")]
        pub root_trace_name: Option<String>,
        #[serde(rename = "startTimeUnixNano")]
        pub start_time_unix_nano: Option<U64>,
        #[serde(rename = "durationMs")]
        pub duration_ms: Option<U32>,
        #[serde(rename = "spanSet")]
        pub span_set: Option<SpanSet>,
        #[serde(rename = "spanSets")]
        pub span_sets: Option<Vec<SpanSet>>,
        #[serde(rename = "serviceStats")]
        pub service_stats: Option<BTreeMap<String, ServiceStats>>,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SpanSet {
        pub spans: Option<Vec<Span>>,
        pub matched: Option<U32>,
        pub attributes: Option<Vec<KeyValue>>,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Span {
        #[serde(rename = "spanID")]
        pub span_id: Option<String>,
        pub name: Option<String>,
        #[serde(rename = "startTimeUnixNano")]
        pub start_time_unix_nano: Option<U64>,
        #[serde(rename = "durationNanos")]
        pub duration_nanos: Option<U64>,
        pub attributes: Option<Vec<KeyValue>>,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ServiceStats {
        #[serde(rename = "spanCount")]
        pub span_count: Option<U32>,
        #[serde(rename = "errorCount")]
        pub error_count: Option<U32>,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SearchMetrics {
        #[serde(rename = "inspectedTraces")]
        pub inspected_traces: Option<U32>,
        #[serde(rename = "inspectedBytes")]
        pub inspected_bytes: Option<U64>,
        #[serde(rename = "totalBlocks")]
        pub total_blocks: Option<U32>,
        #[serde(rename = "completedJobs")]
        pub completed_jobs: Option<U32>,
        #[serde(rename = "totalJobs")]
        pub total_jobs: Option<U32>,
        #[serde(rename = "totalBlockBytes")]
        pub total_block_bytes: Option<U64>,
        #[serde(rename = "inspectedSpans")]
        pub inspected_spans: Option<U64>,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct KeyValue {
        pub key: Option<String>,
        pub value: Option<AnyValue>,
    }

    /// OTLP `AnyValue`: a oneof, so at most one member may be set.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AnyValue {
        #[serde(rename = "stringValue", alias = "string_value")]
        pub string_value: Option<String>,
        #[serde(rename = "boolValue", alias = "bool_value")]
        pub bool_value: Option<bool>,
        #[serde(rename = "intValue", alias = "int_value")]
        pub int_value: Option<I64>,
        #[serde(rename = "doubleValue", alias = "double_value")]
        pub double_value: Option<Double>,
        #[serde(rename = "arrayValue", alias = "array_value")]
        pub array_value: Option<ArrayValue>,
        #[serde(rename = "kvlistValue", alias = "kvlist_value")]
        pub kvlist_value: Option<KeyValueList>,
        #[serde(rename = "bytesValue", alias = "bytes_value")]
        pub bytes_value: Option<String>,
    }

    impl AnyValue {
        pub fn members_set(&self) -> usize {
            [
                self.string_value.is_some(),
                self.bool_value.is_some(),
                self.int_value.is_some(),
                self.double_value.is_some(),
                self.array_value.is_some(),
                self.kvlist_value.is_some(),
                self.bytes_value.is_some(),
            ]
            .into_iter()
            .filter(|set| *set)
            .count()
        }
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ArrayValue {
        pub values: Option<Vec<AnyValue>>,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct KeyValueList {
        pub values: Option<Vec<KeyValue>>,
    }

    /// `/api/v2/search/tags`: the frontend reads it with plain JavaScript, so unknown keys are
    /// fine, but `scopes[].name` and `scopes[].tags` must have these types.
    #[derive(Debug, Deserialize)]
    pub struct TagsV2 {
        pub scopes: Vec<TagScope>,
    }

    #[derive(Debug, Deserialize)]
    pub struct TagScope {
        pub name: String,
        pub tags: Vec<String>,
    }

    /// `/api/v2/search/tag/{tag}/values`, read the same way.
    #[derive(Debug, Deserialize)]
    pub struct TagValuesV2 {
        #[serde(rename = "tagValues")]
        pub tag_values: Vec<TypedValue>,
    }

    #[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
    pub struct TypedValue {
        #[serde(rename = "type")]
        pub kind: String,
        pub value: String,
    }

    /// Older Grafana's `/api/search/tags`.
    #[derive(Debug, Deserialize)]
    pub struct TagsV1 {
        #[serde(rename = "tagNames")]
        pub tag_names: Vec<String>,
    }

    /// Older Grafana's `/api/search/tag/{tag}/values`.
    #[derive(Debug, Deserialize)]
    pub struct TagValuesV1 {
        #[serde(rename = "tagValues")]
        pub tag_values: Vec<String>,
    }
}

/// The tempopb messages Grafana decodes, from the field numbers of the version it pins
/// (written here, not taken from the server, so a wrong number on either side shows).
mod wire {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TraceByIdResponse {
        #[prost(message, optional, tag = "1")]
        pub trace: Option<Trace>,
        #[prost(message, optional, tag = "2")]
        pub metrics: Option<TraceByIdMetrics>,
        #[prost(int32, tag = "3")]
        pub status: i32,
        #[prost(string, tag = "4")]
        pub message: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TraceByIdMetrics {
        #[prost(uint64, tag = "1")]
        pub inspected_bytes: u64,
    }

    /// `tempopb.Trace`, the v1 answer: OTLP `TracesData` on the wire.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Trace {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SearchRequest {
        #[prost(map = "string, string", tag = "1")]
        pub tags: std::collections::HashMap<String, String>,
        #[prost(uint32, tag = "2")]
        pub min_duration_ms: u32,
        #[prost(uint32, tag = "3")]
        pub max_duration_ms: u32,
        #[prost(uint32, tag = "4")]
        pub limit: u32,
        #[prost(uint32, tag = "5")]
        pub start: u32,
        #[prost(uint32, tag = "6")]
        pub end: u32,
        #[prost(string, tag = "8")]
        pub query: String,
        #[prost(uint32, tag = "9")]
        pub spans_per_span_set: u32,
        #[prost(message, optional, tag = "10")]
        pub rf1_after: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SearchResponse {
        #[prost(message, repeated, tag = "1")]
        pub traces: Vec<TraceSearchMetadata>,
        #[prost(message, optional, tag = "2")]
        pub metrics: Option<SearchMetrics>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TraceSearchMetadata {
        #[prost(string, tag = "1")]
        pub trace_id: String,
        #[prost(string, tag = "2")]
        pub root_service_name: String,
        #[prost(string, tag = "3")]
        pub root_trace_name: String,
        #[prost(uint64, tag = "4")]
        pub start_time_unix_nano: u64,
        #[prost(uint32, tag = "5")]
        pub duration_ms: u32,
        #[prost(message, optional, tag = "6")]
        pub span_set: Option<SpanSet>,
        #[prost(message, repeated, tag = "7")]
        pub span_sets: Vec<SpanSet>,
        #[prost(map = "string, message", tag = "8")]
        pub service_stats: std::collections::HashMap<String, ServiceStats>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServiceStats {
        #[prost(uint32, tag = "1")]
        pub span_count: u32,
        #[prost(uint32, tag = "2")]
        pub error_count: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SpanSet {
        #[prost(message, repeated, tag = "1")]
        pub spans: Vec<Span>,
        #[prost(uint32, tag = "2")]
        pub matched: u32,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(string, tag = "1")]
        pub span_id: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(uint64, tag = "3")]
        pub start_time_unix_nano: u64,
        #[prost(uint64, tag = "4")]
        pub duration_nanos: u64,
        #[prost(message, repeated, tag = "5")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SearchMetrics {
        #[prost(uint32, tag = "1")]
        pub inspected_traces: u32,
        #[prost(uint64, tag = "2")]
        pub inspected_bytes: u64,
        #[prost(uint32, tag = "3")]
        pub total_blocks: u32,
        #[prost(uint32, tag = "4")]
        pub completed_jobs: u32,
        #[prost(uint32, tag = "5")]
        pub total_jobs: u32,
        #[prost(uint64, tag = "6")]
        pub total_block_bytes: u64,
        #[prost(uint64, tag = "7")]
        pub inspected_spans: u64,
    }
}

/// Go's `url.QueryEscape`: unreserved characters stay, a space is `+`, the rest `%XX`.
fn go_query_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Go's `url.Values.Encode()`: keys sorted, each pair query-escaped.
fn go_encode(params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().collect();
    sorted.sort_by_key(|(key, _)| *key);
    sorted
        .iter()
        .map(|(key, value)| format!("{}={}", go_query_escape(key), go_query_escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The browser's `encodeURIComponent`, then Grafana's AngularJS-style serialisation, which
/// leaves `:`, `,`, `@` and `$` literal and writes a space as `%20`.
fn angular_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')'
            | b':'
            | b','
            | b'@'
            | b'$' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Grafana's data source, configured with a URL (maybe with a path prefix and query params of
/// its own) and maybe a tenant header.
struct Grafana {
    client: reqwest::Client,
    /// `http://host:port`: gRPC dials this, whatever the path.
    origin: String,
    /// The path of the data source URL.
    prefix: String,
    /// Query params written into the data source URL, kept by trace and search requests.
    url_params: Vec<(&'static str, String)>,
    tenant: Option<String>,
}

struct Reply {
    status: u16,
    content_type: String,
    body: bytes::Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Grafana {
    fn request(&self, url: String) -> reqwest::RequestBuilder {
        let mut request = self.client.get(url).header("User-Agent", "Grafana/12.3.0");
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        request
    }

    async fn send(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response.bytes().await.unwrap();
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// A request of Grafana's Go backend: `path.Join` onto the URL, params through
    /// `url.Values.Encode()` together with the URL's own.
    async fn backend_get(
        &self,
        path: &str,
        params: &[(&str, String)],
        accept: Option<&str>,
    ) -> Reply {
        let mut all: Vec<(&str, String)> = self.url_params.clone();
        all.extend(params.iter().cloned());
        let query = go_encode(&all);
        let mut url = format!("{}{}{path}", self.origin, self.prefix);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut request = self.request(url);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        Self::send(request).await
    }

    /// A resource call (`/tags`, `/tag-values`): the browser's raw query and headers, passed
    /// through by the backend.
    async fn resource_get(&self, path: &str, raw_query: &str) -> Reply {
        let request = self
            .request(format!("{}{}{path}?{raw_query}", self.origin, self.prefix))
            .header("Accept", "application/json, text/plain, */*")
            .header("Accept-Encoding", "gzip, deflate")
            .header("X-Grafana-Org-Id", "1");
        Self::send(request).await
    }

    async fn search(&self, params: &[(&str, String)]) -> strict::SearchResponse {
        let reply = self
            .backend_get("/api/search", params, Some("application/json"))
            .await;
        assert_eq!(reply.status, 200, "search {params:?}: {}", reply.text());
        assert!(
            reply.content_type.starts_with("application/json"),
            "{}",
            reply.content_type
        );
        serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
            panic!(
                "Grafana's strict decoder refuses the search answer: {e}\n{}",
                reply.text()
            )
        })
    }

    /// Trace by id as Grafana asks for it: v2 first, v1 after a 404. `None` when both 404.
    async fn trace(&self, id: &str, params: &[(&str, String)]) -> Option<Vec<ResourceSpans>> {
        let v2 = self
            .backend_get(
                &format!("/api/v2/traces/{id}"),
                params,
                Some("application/protobuf"),
            )
            .await;
        if v2.status == 200 {
            let decoded = wire::TraceByIdResponse::decode(v2.body.clone())
                .expect("v2 answer decodes as tempopb.TraceByIDResponse");
            // Grafana dereferences `trace` without a nil check.
            let trace = decoded.trace.expect("a 200 v2 answer carries `trace`");
            return Some(trace.resource_spans);
        }
        assert_eq!(v2.status, 404, "v2 trace {id}: {}", v2.text());
        let v1 = self
            .backend_get(
                &format!("/api/traces/{id}"),
                params,
                Some("application/protobuf"),
            )
            .await;
        if v1.status == 404 {
            return None;
        }
        assert_eq!(v1.status, 200, "v1 trace {id}: {}", v1.text());
        Some(
            wire::Trace::decode(v1.body.clone())
                .expect("v1 answer decodes as tempopb.Trace")
                .resource_spans,
        )
    }

    async fn tags_v2(&self, raw_query: &str) -> strict::TagsV2 {
        let reply = self.resource_get("/api/v2/search/tags", raw_query).await;
        assert_eq!(reply.status, 200, "tags {raw_query}: {}", reply.text());
        serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| panic!("tags: {e}: {}", reply.text()))
    }

    /// Tag values as the frontend asks: `tag` escaped into the path and again as a param.
    async fn tag_values_v2(&self, tag: &str, q: Option<&str>) -> Vec<strict::TypedValue> {
        let mut query = String::from("limit=5000");
        if let Some(q) = q {
            query.push_str(&format!("&q={}", angular_escape(q)));
        }
        query.push_str(&format!("&tag={}", angular_escape(&angular_escape(tag))));
        let path = format!("/api/v2/search/tag/{}/values", tag.replace(' ', "%20"));
        let reply = self.resource_get(&path, &query).await;
        assert_eq!(
            reply.status,
            200,
            "tag values {tag} {q:?}: {}",
            reply.text()
        );
        let decoded: strict::TagValuesV2 = serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| panic!("tag values {tag}: {e}: {}", reply.text()));
        decoded.tag_values
    }

    /// `tempopb.StreamingQuerier/Search` over h2c on the same host and port, with the
    /// metadata Grafana sends.
    async fn stream_search(
        &self,
        request: wire::SearchRequest,
    ) -> Result<Vec<wire::SearchResponse>, tonic::Status> {
        let channel = tonic::transport::Channel::from_shared(self.origin.clone())
            .unwrap()
            .connect()
            .await
            .expect("gRPC (h2c) on the HTTP port");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let mut request = tonic::Request::new(request);
        if let Some(tenant) = &self.tenant {
            request
                .metadata_mut()
                .insert("x-scope-orgid", tenant.parse().unwrap());
        }
        request
            .metadata_mut()
            .insert("authorization", "Basic YWRtaW46YWRtaW4=".parse().unwrap());
        let mut stream = grpc
            .server_streaming(
                request,
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/tempopb.StreamingQuerier/Search",
                ),
                tonic_prost::ProstCodec::<wire::SearchRequest, wire::SearchResponse>::default(),
            )
            .await?
            .into_inner();
        let mut messages = Vec::new();
        while let Some(message) = stream.message().await? {
            // Grafana's default limit for one received message.
            assert!(
                message.encoded_len() < 4 << 20,
                "a streamed message over 4 MiB"
            );
            messages.push(message);
        }
        Ok(messages)
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// The trace whose id is 64 bits (as some Jaeger and Zipkin clients make), carrying
/// non-finite doubles.
const SHORT_ID: &str = "d6e9329d67b6146a";
const SHORT_SERVICE: &str = "grafana-replay";

pub(crate) fn short_id_trace(start_nanos: u64) -> (TraceId, Vec<ResourceSpans>) {
    let id = SHORT_ID.parse::<TraceId>().unwrap();
    let span = |n: u8, parent: Option<u8>, attributes: Vec<KeyValue>| Span {
        trace_id: id.0.to_vec(),
        span_id: vec![0xab, 0, 0, 0, 0, 0, 0, n],
        parent_span_id: parent
            .map(|p| vec![0xab, 0, 0, 0, 0, 0, 0, p])
            .unwrap_or_default(),
        name: format!("replay {n}"),
        kind: 2,
        start_time_unix_nano: start_nanos + n as u64 * 1_000_000,
        end_time_unix_nano: start_nanos + 50_000_000,
        attributes,
        status: Some(Status::default()),
        ..Default::default()
    };
    let batch = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", Value::StringValue(SHORT_SERVICE.into()))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "replay".into(),
                ..Default::default()
            }),
            spans: vec![
                span(
                    1,
                    None,
                    vec![
                        kv("app.ratio", Value::DoubleValue(f64::NAN)),
                        kv("app.ceiling", Value::DoubleValue(f64::INFINITY)),
                        kv("app.floor", Value::DoubleValue(f64::NEG_INFINITY)),
                    ],
                ),
                span(2, Some(1), vec![kv("app.ratio", Value::DoubleValue(0.5))]),
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    (id, vec![batch])
}

/// The traces every replay runs over: generated ones plus the 64-bit-id trace.
fn fixture(seed: u64, count: usize) -> Traces {
    let mut traces = generate(seed, count);
    let newest = traces
        .values()
        .flatten()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.start_time_unix_nano)
        .max()
        .unwrap();
    let (id, batches) = short_id_trace(newest - 10_000_000_000);
    traces.insert(id, batches);
    traces
}

/// The resource's `service.name`, when it is a string.
fn service_name(rs: &ResourceSpans) -> Option<String> {
    let kv = rs
        .resource
        .as_ref()?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")?;
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn all_spans(batches: &[ResourceSpans]) -> impl Iterator<Item = &Span> {
    batches
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
}

/// Every invariant Grafana's `TraceToFrame` relies on (it panics or drops spans otherwise);
/// returns the span ids.
fn check_trace_invariants(batches: &[ResourceSpans], what: &str) -> BTreeSet<Vec<u8>> {
    assert!(!batches.is_empty(), "{what}: no resource spans");
    let mut ids = BTreeSet::new();
    let mut roots = 0;
    for rs in batches {
        let resource = rs
            .resource
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no resource"));
        assert!(
            resource
                .attributes
                .iter()
                .any(|kv| kv.key == "service.name"),
            "{what}: a resource without service.name: {resource:?}"
        );
        assert!(
            !rs.scope_spans.is_empty(),
            "{what}: resource without scope spans"
        );
        for ss in &rs.scope_spans {
            assert!(ss.scope.is_some(), "{what}: ScopeSpans.scope is missing");
            for span in &ss.spans {
                assert!(
                    span.status.is_some(),
                    "{what}: span {:?} has no status",
                    span.name
                );
                assert_eq!(span.trace_id.len(), 16, "{what}: trace id bytes");
                assert_eq!(span.span_id.len(), 8, "{what}: span id bytes");
                match span.parent_span_id.len() {
                    0 => roots += 1,
                    8 => assert!(
                        span.parent_span_id.iter().any(|b| *b != 0),
                        "{what}: a root must have an empty parent, not zeros"
                    ),
                    n => panic!("{what}: parent span id of {n} bytes"),
                }
                assert!(
                    span.end_time_unix_nano >= span.start_time_unix_nano,
                    "{what}: span ends before it starts"
                );
                assert!(ids.insert(span.span_id.clone()), "{what}: span id twice");
            }
        }
    }
    assert!(roots >= 1, "{what}: no root span");
    ids
}

fn tempo_id(id: &TraceId) -> String {
    hex::encode(id.0).trim_start_matches('0').to_string()
}

/// The newest `limit` traces the reference evaluator finds for `query`, as Tempo spells ids.
fn expected_search(traces: &Traces, query: &str, limit: usize) -> Vec<String> {
    let reference: HashMap<TraceId, RefTrace> = traces
        .iter()
        .map(|(id, b)| (*id, RefTrace::new(*id, std::slice::from_ref(b))))
        .collect();
    let matches = crate::reference::search(&reference, &compile(query).unwrap());
    let mut newest: Vec<(u64, TraceId)> = matches
        .keys()
        .map(|id| {
            let start = all_spans(&traces[id])
                .map(|s| s.start_time_unix_nano)
                .min()
                .unwrap();
            (start, *id)
        })
        .collect();
    newest.sort_by(|a, b| b.cmp(a));
    newest
        .iter()
        .take(limit)
        .map(|(_, id)| tempo_id(id))
        .collect()
}

/// The rules of a search answer Grafana relies on, with the default `limit` 20 and `spss` 3
/// unless given.
fn check_search(
    response: &strict::SearchResponse,
    limit: usize,
    spss: usize,
    what: &str,
) -> Vec<String> {
    let metrics = response
        .metrics
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no metrics"));
    assert!(
        metrics.total_jobs.is_some() || metrics.completed_jobs.is_none(),
        "{what}"
    );
    let traces = response.traces.clone().unwrap_or_default();
    assert!(
        traces.len() <= limit,
        "{what}: {} traces over limit {limit}",
        traces.len()
    );
    let mut previous = u64::MAX;
    let mut ids = Vec::new();
    for trace in &traces {
        let id = trace
            .trace_id
            .clone()
            .unwrap_or_else(|| panic!("{what}: traceID missing"));
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{what}: traceID {id:?} is not hex (Grafana sends it back as a trace id)"
        );
        let start = trace.start_time_unix_nano.unwrap_or_default().0;
        assert!(start <= previous, "{what}: traces are not newest first");
        previous = start;
        let sets = trace.span_sets.clone().unwrap_or_default();
        assert!(!sets.is_empty(), "{what}: trace {id} has no spanSets");
        assert_eq!(
            trace.span_set.as_ref(),
            sets.first(),
            "{what}: spanSet is not spanSets[0]"
        );
        for set in &sets {
            let spans = set.spans.clone().unwrap_or_default();
            assert!(
                spans.len() <= spss,
                "{what}: {} spans over spss {spss}",
                spans.len()
            );
            assert!(
                set.matched.unwrap_or_default().0 as usize >= spans.len(),
                "{what}: matched below the spans shown"
            );
            for span in &spans {
                let span_id = span.span_id.as_deref().unwrap_or_default();
                assert_eq!(span_id.len(), 16, "{what}: spanID {span_id:?}");
                for kv in span
                    .attributes
                    .iter()
                    .flatten()
                    .chain(set.attributes.iter().flatten())
                {
                    let value = kv.value.as_ref().expect("attribute value");
                    assert_eq!(value.members_set(), 1, "{what}: AnyValue oneof {value:?}");
                }
            }
        }
        ids.push(id);
    }
    ids
}

/// One server process over `dir` with a config file of its own.
struct Server {
    child: ChildGuard,
    origin: String,
    otlp: String,
}

async fn start(dir: &std::path::Path, extra: &str) -> Server {
    let (http, otlp) = (free_port(), free_port());
    let config = dir.join("tracefusion.yaml");
    // Long idle and block periods: data stays live until the server stops and flushes it.
    let text = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n{extra}\
         distributor:\n  receivers:\n    otlp:\n      protocols:\n        http:\n          endpoint: 127.0.0.1:{otlp}\n\
         ingester:\n  trace_idle_period: 1h\n  max_block_duration: 1h\n\
         storage:\n  trace:\n    local:\n      path: {blocks}\n    wal:\n      path: {wal}\n",
        blocks = dir.join("blocks").display(),
        wal = dir.join("wal").display(),
    );
    std::fs::write(&config, text).unwrap();
    let origin = format!("http://127.0.0.1:{http}");
    let child = crate::support::serve(&config, &[], &origin, Duration::from_secs(30)).await;
    Server {
        child,
        origin,
        otlp: format!("http://127.0.0.1:{otlp}/v1/traces"),
    }
}

async fn push(server: &Server, tenant: Option<&str>, traces: &Traces) {
    let body = ExportTraceServiceRequest {
        resource_spans: traces.values().flatten().cloned().collect(),
    }
    .encode_to_vec();
    let mut request = reqwest::Client::new()
        .post(&server.otlp)
        .header("Content-Type", "application/x-protobuf")
        .body(body);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Stops the server with SIGTERM (it writes what it holds as blocks) and waits for it.
fn stop(mut server: Server) {
    server.child.signal(libc::SIGTERM);
    assert!(
        server.child.wait_exit(Duration::from_secs(20)).is_some(),
        "the server did not stop:\n{}",
        server.child.log()
    );
}

/// Every request of the replay, checked against `traces` (what the tenant sent).
async fn replay(grafana: &Grafana, traces: &Traces, phase: &str) {
    let seconds = |nanos: u64| (nanos / 1_000_000_000).to_string();
    let starts: Vec<u64> = traces
        .values()
        .flat_map(|b| all_spans(b))
        .map(|s| s.start_time_unix_nano)
        .collect();
    let (first, last) = (*starts.iter().min().unwrap(), *starts.iter().max().unwrap());
    let range = [
        ("start", seconds(first)),
        ("end", seconds(last + 10_000_000_000)),
    ];

    // T-HEALTH-1: the "Save & test" button: only the status counts.
    let echo = grafana.backend_get("/api/echo", &[], None).await;
    assert_eq!(echo.status, 200, "{phase}: echo");

    // T-TRACE-1: every trace by id, its id upper-cased, with and without Grafana's time
    // shift params; the spans are those sent.
    for (id, batches) in traces {
        let upper = hex::encode_upper(id.0);
        let sent: BTreeSet<Vec<u8>> = all_spans(batches).map(|s| s.span_id.clone()).collect();
        for params in [&[][..], &range[..]] {
            let found = grafana
                .trace(&upper, params)
                .await
                .unwrap_or_else(|| panic!("{phase}: trace {upper} not found"));
            let ids = check_trace_invariants(&found, &format!("{phase}: trace {upper}"));
            assert_eq!(
                ids, sent,
                "{phase}: trace {upper} has other spans than sent"
            );
        }
    }
    // T-TRACE-1b: the 64-bit id as typed, left-padded by the server; T-URL-1: the data
    // source's own params ride along.
    let short = grafana
        .trace(SHORT_ID, &range)
        .await
        .expect("64-bit id found");
    check_trace_invariants(&short, &format!("{phase}: 64-bit id"));
    // T-TRACE-3: unknown → 404 on v2, then 404 on v1.
    assert!(
        grafana
            .trace("4bf92f3577b34da6a3ce929d0e0e4736", &[])
            .await
            .is_none()
    );
    // T-TRACE-4: v1 directly, as older Grafana asks.
    let v1 = grafana
        .backend_get(
            &format!("/api/traces/{SHORT_ID}"),
            &[],
            Some("application/protobuf"),
        )
        .await;
    assert_eq!(v1.status, 200, "{phase}: v1 trace");
    let v1 = wire::Trace::decode(v1.body).expect("tempopb.Trace");
    check_trace_invariants(&v1.resource_spans, &format!("{phase}: v1 trace"));
    // Non-finite doubles arrive as they were sent, in protobuf and in Tempo's JSON.
    let doubles: BTreeMap<String, f64> = all_spans(&v1.resource_spans)
        .flat_map(|s| &s.attributes)
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::DoubleValue(d) if !d.is_finite() => Some((kv.key.clone(), *d)),
            _ => None,
        })
        .collect();
    assert!(doubles["app.ratio"].is_nan(), "{phase}: {doubles:?}");
    assert_eq!(doubles["app.ceiling"], f64::INFINITY, "{phase}");
    assert_eq!(doubles["app.floor"], f64::NEG_INFINITY, "{phase}");
    let json = grafana
        .backend_get(&format!("/api/v2/traces/{SHORT_ID}"), &[], None)
        .await;
    assert_eq!(json.status, 200);
    let text = json.text();
    for name in [r#""NaN""#, r#""Infinity""#, r#""-Infinity""#] {
        assert!(
            text.contains(&format!(r#""doubleValue":{name}"#)),
            "{phase}: {name} in {text}"
        );
    }

    // T-SEARCH-1: Go-encoded params, no limit and no spss (the defaults apply), the URL's own
    // params merged in.
    // The builder's "service and status" query, for a service that has error spans.
    let error_service = traces
        .values()
        .flatten()
        .find(|rs| {
            all_spans(std::slice::from_ref(rs))
                .any(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
        })
        .and_then(service_name)
        .expect("the data has an error span");
    let service_errors = format!("{{resource.service.name=\"{error_service}\" && status=error}}");
    assert!(!expected_search(traces, &service_errors, 20).is_empty());
    assert_eq!(
        expected_search(traces, "{}", 20).len(),
        20.min(traces.len())
    );
    for query in [
        service_errors.as_str(),
        "{}",
        "{span.http.request.method=~\"GET|POST\"}",
        "{(span.http.request.method=\"GET\" || span.http.request.method=\"POST\") && duration>1ms}",
        "{span.db.name=\"cart\" || span.db.system=\"redis\" || span.peer.service=\"redis\" || span.messaging.system=\"kafka\" || span.net.peer.name=\"cart\"}",
        "{kind=server && rootServiceName=\"frontend\"} >> {status=error}",
    ] {
        let what = format!("{phase}: {query}");
        let response = grafana.search(&[("q", query.to_string())]).await;
        let ids = check_search(&response, 20, 3, &what);
        assert_eq!(ids, expected_search(traces, query, 20), "{what}");
        let in_range = grafana
            .search(&[("q", query.to_string()), range[0].clone(), range[1].clone()])
            .await;
        assert_eq!(
            check_search(&in_range, 20, 3, &what),
            ids,
            "{what} with start/end"
        );
        // The search table's "Trace:" link: the traceID, verbatim, as a trace by id query.
        if let Some(id) = ids.first() {
            assert!(
                grafana.trace(id, &[]).await.is_some(),
                "{what}: trace {id} from search"
            );
        }
    }
    // With limit and spss, as the editor sends them once set; select() shows attributes,
    // non-finite ones too.
    let query = format!(
        "{{resource.service.name=\"{SHORT_SERVICE}\"}} | select(span.app.ratio, span.app.ceiling, span.app.floor)"
    );
    let response = grafana
        .search(&[
            ("q", query.clone()),
            ("limit", "5".into()),
            ("spss", "1".into()),
        ])
        .await;
    assert_eq!(
        check_search(&response, 5, 1, &query),
        vec![SHORT_ID.to_string()]
    );
    let shown: Vec<(String, f64)> = response.traces.unwrap()[0].span_sets.clone().unwrap()[0]
        .spans
        .clone()
        .unwrap()
        .iter()
        .flat_map(|s| s.attributes.clone().unwrap_or_default())
        .filter_map(|kv| Some((kv.key?, kv.value?.double_value?.0)))
        .collect();
    assert!(
        shown
            .iter()
            .any(|(k, v)| k == "app.ceiling" && *v == f64::INFINITY)
            && shown
                .iter()
                .any(|(k, v)| k == "app.floor" && *v == f64::NEG_INFINITY),
        "{phase}: {shown:?}"
    );
    // The old tag search form, from Grafana before TraceQL.
    let legacy = grafana
        .search(&[
            ("tags", format!("service.name={SHORT_SERVICE}")),
            ("minDuration", "1ms".into()),
        ])
        .await;
    assert_eq!(
        check_search(&legacy, 20, 3, "legacy"),
        vec![SHORT_ID.to_string()]
    );
    // T-ERR-1: a bad query is a 4xx whose plain-text body says where.
    let bad = grafana
        .backend_get(
            "/api/search",
            &[("q", "{ .a = }".into())],
            Some("application/json"),
        )
        .await;
    assert_eq!(bad.status, 400, "{phase}");
    assert!(bad.text().contains("line 1"), "{phase}: {}", bad.text());

    // T-TAGS-1: no scope, no q; the browser's headers.
    let mut services = BTreeSet::new();
    let mut span_keys = BTreeSet::new();
    for rs in traces.values().flatten() {
        services.extend(service_name(rs));
        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            span_keys.extend(span.attributes.iter().map(|kv| kv.key.clone()));
        }
    }
    for raw in [
        "limit=5000",
        &format!("limit=5000&start={}&end={}", range[0].1, range[1].1),
    ] {
        let tags = grafana.tags_v2(raw).await;
        let scope = |name: &str| -> BTreeSet<String> {
            tags.scopes
                .iter()
                .filter(|s| s.name == name)
                .flat_map(|s| s.tags.iter().cloned())
                .collect()
        };
        assert!(
            scope("resource").contains("service.name"),
            "{phase}: {tags:?}"
        );
        assert_eq!(scope("span"), span_keys, "{phase}: span tags");
        for intrinsic in ["duration", "kind", "name", "status"] {
            assert!(
                scope("intrinsic").contains(intrinsic),
                "{phase}: {intrinsic}"
            );
        }
    }
    // T-TAGV-1: values narrowed by another builder filter, AngularJS-encoded.
    let values = grafana
        .tag_values_v2(
            "resource.service.name",
            Some("{span.http.request.method=\"GET\"}"),
        )
        .await;
    let want: BTreeSet<String> = expected_services(traces, "{span.http.request.method=\"GET\"}");
    let got: BTreeSet<String> = values
        .iter()
        .map(|v| {
            assert_eq!(v.kind, "string");
            v.value.clone()
        })
        .collect();
    assert_eq!(got, want, "{phase}: services with a GET span");
    // Without q, every service; an unfinished q (the editor's text up to the cursor) is fine.
    for q in [None, Some("{ resource.service.name = ")] {
        let all: BTreeSet<String> = grafana
            .tag_values_v2("resource.service.name", q)
            .await
            .into_iter()
            .map(|v| v.value)
            .collect();
        assert_eq!(all, services, "{phase}: every service for q={q:?}");
    }
    // T-TAGV-1b: keyword intrinsics.
    for (tag, allowed) in [
        ("status", &["ok", "error", "unset"][..]),
        ("span:status", &["ok", "error", "unset"][..]),
        (
            "kind",
            &[
                "server",
                "client",
                "producer",
                "consumer",
                "internal",
                "unspecified",
            ][..],
        ),
    ] {
        let values = grafana.tag_values_v2(tag, None).await;
        assert!(!values.is_empty(), "{phase}: {tag}");
        for v in values {
            assert_eq!(v.kind, "keyword", "{phase}: {tag} {v:?}");
            assert!(allowed.contains(&v.value.as_str()), "{phase}: {tag} {v:?}");
        }
    }
    // Non-finite doubles are listed as floats under their names.
    let ratio: BTreeSet<strict::TypedValue> = grafana
        .tag_values_v2("span.app.ratio", None)
        .await
        .into_iter()
        .collect();
    let float = |v: &str| strict::TypedValue {
        kind: "float".into(),
        value: v.into(),
    };
    assert!(
        ratio.contains(&float("NaN")) && ratio.contains(&float("0.5")),
        "{phase}: {ratio:?}"
    );
    let ceiling = grafana.tag_values_v2(".app.ceiling", None).await;
    assert_eq!(ceiling, vec![float("Infinity")], "{phase}");

    // Older Grafana: flat tag names and string values.
    let v1 = grafana.resource_get("/api/search/tags", "").await;
    assert_eq!(v1.status, 200, "{phase}");
    let v1: strict::TagsV1 = serde_json::from_slice(&v1.body).unwrap();
    assert!(
        v1.tag_names.contains(&"service.name".to_string()),
        "{phase}"
    );
    let v1 = grafana
        .resource_get("/api/search/tag/app.floor/values", "")
        .await;
    assert_eq!(v1.status, 200, "{phase}: {}", v1.text());
    let v1: strict::TagValuesV1 = serde_json::from_slice(&v1.body).unwrap();
    assert_eq!(v1.tag_values, vec!["-Infinity".to_string()], "{phase}");
    let info = grafana
        .backend_get("/api/status/buildinfo", &[], None)
        .await;
    assert_eq!(info.status, 200, "{phase}: buildinfo");

    // T-GS-1/2: streaming search at the root of the same port, as Grafana dials it.
    let go_zero_time = Some(wire::Timestamp {
        seconds: -62_135_596_800,
        nanos: 0,
    });
    let query = service_errors.as_str();
    let messages = grafana
        .stream_search(wire::SearchRequest {
            query: query.into(),
            start: range[0].1.parse().unwrap(),
            end: range[1].1.parse().unwrap(),
            spans_per_span_set: 3,
            rf1_after: go_zero_time,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{phase}: streaming search: {e}"));
    assert!(!messages.is_empty(), "{phase}: at least one message");
    let mut first_copies: Vec<wire::TraceSearchMetadata> = Vec::new();
    for message in &messages {
        assert!(
            message.metrics.is_some(),
            "{phase}: a message without metrics"
        );
        for trace in &message.traces {
            match first_copies.iter().find(|t| t.trace_id == trace.trace_id) {
                Some(earlier) => assert_eq!(earlier, trace, "{phase}: a trace re-sent changed"),
                None => first_copies.push(trace.clone()),
            }
        }
    }
    let streamed: Vec<String> = first_copies.iter().map(|t| t.trace_id.clone()).collect();
    assert_eq!(
        streamed,
        expected_search(traces, query, 20),
        "{phase}: streamed traces"
    );
    // The health check with streaming on: `{}`, limit 1, the last 15 minutes; one Recv.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let health = grafana
        .stream_search(wire::SearchRequest {
            query: "{}".into(),
            start: now - 900,
            end: now,
            limit: 1,
            rf1_after: Some(wire::Timestamp::default()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{phase}: health check: {e}"));
    assert!(
        health.first().is_some_and(|m| m.metrics.is_some()),
        "{phase}"
    );
}

/// Services of the traces' spans that `filter` matches (the reference evaluator's answer to
/// a narrowed tag value request).
fn expected_services(traces: &Traces, filter: &str) -> BTreeSet<String> {
    let reference: HashMap<TraceId, RefTrace> = traces
        .iter()
        .map(|(id, b)| (*id, RefTrace::new(*id, std::slice::from_ref(b))))
        .collect();
    let matches = crate::reference::search(&reference, &compile(filter).unwrap());
    let mut services = BTreeSet::new();
    for (id, sets) in &matches {
        let matched: BTreeSet<[u8; 8]> = sets.iter().flatten().copied().collect();
        for rs in &traces[id] {
            let service = service_name(rs);
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                if matched.contains(&<[u8; 8]>::try_from(span.span_id.as_slice()).unwrap()) {
                    services.extend(service.clone());
                }
            }
        }
    }
    services
}

/// Single tenant, data source URL without a path: live data, then blocks after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_replay_over_live_data_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let traces = fixture(91, 60);
    let server = start(dir.path(), "").await;
    push(&server, None, &traces).await;
    let grafana = |origin: &str| Grafana {
        client: reqwest::Client::new(),
        origin: origin.to_string(),
        prefix: String::new(),
        url_params: Vec::new(),
        tenant: None,
    };
    replay(&grafana(&server.origin), &traces, "live").await;
    stop(server);
    let server = start(dir.path(), "").await;
    let blocks = std::fs::read_dir(dir.path().join("blocks/single-tenant/blocks"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(blocks > 0, "the stop wrote blocks");
    replay(&grafana(&server.origin), &traces, "blocks").await;
}

/// Multi-tenant mode behind a path prefix (`server.http_api_prefix`), the data source URL
/// carrying the prefix and a query param of its own: each tenant sees its own data only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_replay_with_tenants_and_a_path_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "  http_api_prefix: /grafana/tempo/\nmultitenancy_enabled: true\n";
    let server = start(dir.path(), extra).await;
    let traces = fixture(91, 60);
    let other = fixture(92, 10);
    push(&server, Some("team-a"), &traces).await;
    push(&server, Some("team-b"), &other).await;
    let grafana = |origin: &str, tenant: &str| Grafana {
        client: reqwest::Client::new(),
        origin: origin.to_string(),
        prefix: "/grafana/tempo".into(),
        url_params: vec![("my_arg", "1".into())],
        tenant: Some(tenant.into()),
    };
    replay(&grafana(&server.origin, "team-a"), &traces, "team-a live").await;
    replay(&grafana(&server.origin, "team-b"), &other, "team-b live").await;
    // Without the prefix the API is not there; /ready stays at the root.
    let client = reqwest::Client::new();
    let bare = client
        .get(format!("{}/api/echo", server.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 404);
    // A request without a tenant is refused with a message.
    let anonymous = client
        .get(format!(
            "{}/grafana/tempo/api/search?q=%7B%7D",
            server.origin
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "{:?}", anonymous.text().await);
    stop(server);
    let server = start(dir.path(), extra).await;
    replay(&grafana(&server.origin, "team-a"), &traces, "team-a blocks").await;
    replay(&grafana(&server.origin, "team-b"), &other, "team-b blocks").await;
}
