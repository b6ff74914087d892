//! Tempo's search messages (package `tempopb`) as prost structs, with Tempo's field numbers:
//! what the gRPC streaming querier sends and `/api/search` answers with. The response
//! messages also serialize to Tempo's JSON (the protobuf JSON mapping as Tempo writes it:
//! its field names, 64-bit integers as strings, zero values left out, since Grafana's strict
//! decoder rejects unknown fields), so one value is encoded either way.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::{Serialize, Serializer};

#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchRequest {
    #[prost(map = "string, string", tag = "1")]
    pub tags: HashMap<String, String>,
    #[prost(uint32, tag = "2")]
    pub min_duration_ms: u32,
    #[prost(uint32, tag = "3")]
    pub max_duration_ms: u32,
    #[prost(uint32, tag = "4")]
    pub limit: u32,
    /// Unix seconds; 0: open.
    #[prost(uint32, tag = "5")]
    pub start: u32,
    #[prost(uint32, tag = "6")]
    pub end: u32,
    #[prost(string, tag = "8")]
    pub query: String,
    #[prost(uint32, tag = "9")]
    pub spans_per_span_set: u32,
    /// Deprecated upstream; Grafana always sends it (often as Go's zero time). Ignored.
    #[prost(message, optional, tag = "10")]
    pub rf1_after: Option<Timestamp>,
    #[prost(string, repeated, tag = "11")]
    pub skip_ast_transformations: Vec<String>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `traces` is written even when empty, as Tempo does.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct SearchResponse {
    #[prost(message, repeated, tag = "1")]
    pub traces: Vec<TraceSearchMetadata>,
    #[prost(message, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SearchMetrics>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSearchMetadata {
    #[prost(string, tag = "1")]
    #[serde(rename = "traceID", skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_service_name: String,
    #[prost(string, tag = "3")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_trace_name: String,
    #[prost(uint64, tag = "4")]
    #[serde(skip_serializing_if = "is_zero", serialize_with = "as_text")]
    pub start_time_unix_nano: u64,
    #[prost(uint32, tag = "5")]
    #[serde(skip_serializing_if = "is_zero")]
    pub duration_ms: u32,
    /// Deprecated upstream: the first of `span_sets`, still filled as Tempo does.
    #[prost(message, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_set: Option<SpanSet>,
    #[prost(message, repeated, tag = "7")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub span_sets: Vec<SpanSet>,
    #[prost(map = "string, message", tag = "8")]
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub service_stats: HashMap<String, ServiceStats>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStats {
    #[prost(uint32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero")]
    pub span_count: u32,
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero")]
    pub error_count: u32,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct SpanSet {
    #[prost(message, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<Span>,
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero")]
    pub matched: u32,
    #[prost(message, repeated, tag = "3")]
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "key_values")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[prost(string, tag = "1")]
    #[serde(rename = "spanID", skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[prost(uint64, tag = "3")]
    #[serde(skip_serializing_if = "is_zero", serialize_with = "as_text")]
    pub start_time_unix_nano: u64,
    #[prost(uint64, tag = "4")]
    #[serde(skip_serializing_if = "is_zero", serialize_with = "as_text")]
    pub duration_nanos: u64,
    #[prost(message, repeated, tag = "5")]
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "key_values")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchMetrics {
    #[prost(uint32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero")]
    pub inspected_traces: u32,
    #[prost(uint64, tag = "2")]
    #[serde(skip_serializing_if = "is_zero", serialize_with = "as_text")]
    pub inspected_bytes: u64,
    #[prost(uint32, tag = "3")]
    #[serde(skip_serializing_if = "is_zero")]
    pub total_blocks: u32,
    #[prost(uint32, tag = "4")]
    #[serde(skip_serializing_if = "is_zero")]
    pub completed_jobs: u32,
    #[prost(uint32, tag = "5")]
    #[serde(skip_serializing_if = "is_zero")]
    pub total_jobs: u32,
    #[prost(uint64, tag = "6")]
    #[serde(skip_serializing_if = "is_zero", serialize_with = "as_text")]
    pub total_block_bytes: u64,
    #[prost(uint64, tag = "7")]
    #[serde(skip_serializing_if = "is_zero", serialize_with = "as_text")]
    pub inspected_spans: u64,
}

/// Protobuf JSON leaves zero values out.
fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Protobuf JSON writes 64-bit integers as strings.
fn as_text<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn key_values<S: Serializer>(attrs: &[KeyValue], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(crate::any_value_json::attributes_to_json(attrs))
}
