//! Search over HTTP: `GET /api/search` (TraceQL `q`, or the legacy `tags` form) in Tempo's
//! JSON or protobuf shape (Grafana's strict decoder rejects unknown fields, so only Tempo's
//! fields are written, zero values left out).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json};

use super::traces::{tenant_of, time_range};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

use super::tempopb;
use crate::exec::error::ReadError;
use crate::exec::request::{SearchQuery, SearchRequest, TagSearch};
use crate::exec::runner::QueryRunner;
use crate::exec::search::{AttrValue, SearchResult, SearchStats, TraceMatch};
use crate::exec::sources::QuerySources;
use crate::exec::tags::TagSources;

/// Root service name of a trace whose root span has not arrived, as Tempo writes it.
const NO_ROOT: &str = "<root span not yet received>";

#[derive(Clone)]
pub struct SearchState {
    pub sources: QuerySources,
    pub multitenancy: bool,
    /// Where queries over span data run, with their limits.
    pub runner: Arc<QueryRunner>,
}

impl SearchState {
    /// What `tenant`'s tag requests read.
    pub fn tag_sources<'a>(&'a self, tenant: &'a str) -> TagSources<'a> {
        TagSources {
            sources: &self.sources,
            runner: &self.runner,
            tenant,
        }
    }
}

pub(crate) fn json_response(body: Json) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn positive(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<usize>, ReadError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<u32>().map(|n| Some(n as usize)).map_err(|_| {
            ReadError::Invalid(format!("invalid {name} {v:?}: expected a positive integer"))
        }),
    }
}

/// The legacy search form: `tags=k=v k2="v 2"`, `minDuration`, `maxDuration`.
fn tag_search(params: &HashMap<String, String>) -> Result<TagSearch, String> {
    const KNOWN: [&str; 8] = [
        "q",
        "tags",
        "limit",
        "spss",
        "start",
        "end",
        "minDuration",
        "maxDuration",
    ];
    let mut tags: Vec<(String, String)> = match params.get("tags") {
        Some(text) => parse_logfmt(text)?,
        None => Vec::new(),
    };
    // With neither `tags` nor a time range, Tempo takes every other parameter as a tag.
    if !params.contains_key("tags") && !params.contains_key("start") {
        tags.extend(
            params
                .iter()
                .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        tags.sort();
    }
    let duration = |param: &str| match params.get(param).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => humantime::parse_duration(v)
            .map(Some)
            .map_err(|e| format!("invalid {param} {v:?}: {e}")),
    };
    Ok(TagSearch {
        tags,
        min_duration: duration("minDuration")?,
        max_duration: duration("maxDuration")?,
    })
}

/// `k=v k2="v 2"`; a key given twice is an error, as in Tempo.
fn parse_logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("invalid tags {text:?}: expected key=value"))?;
        let key = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let close = quoted
                .find('"')
                .ok_or_else(|| format!("invalid tags {text:?}: unterminated quote"))?;
            let v = quoted[..close].to_string();
            rest = &quoted[close + 1..];
            v
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let v = rest[..end].to_string();
            rest = &rest[end..];
            v
        };
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("invalid tags {text:?}: tag {key} given twice"));
        }
        out.push((key, value));
        rest = rest.trim_start();
    }
    Ok(out)
}

pub async fn search(
    State(state): State<SearchState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let tenant = tenant_of(&headers, state.multitenancy)?;
    let (query, options) = decode_search(&params)?.compile()?;
    let permit = state.runner.admit(&tenant)?;
    let source = state.sources.session(&tenant)?;
    let work = async move { crate::exec::search::search(&source, &query, &options).await };
    let result = state.runner.run(permit, work).await?;
    let response = search_response(&result);
    let protobuf = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf"));
    if protobuf {
        use prost::Message;
        return Ok((
            [(header::CONTENT_TYPE, "application/protobuf")],
            response.encode_to_vec(),
        )
            .into_response());
    }
    Ok(json_response(serde_json::to_value(&response).map_err(
        |e| ReadError::Internal(format!("encoding a search response: {e}")),
    )?))
}

/// A search request from HTTP parameters: `q` or the legacy tag form, `limit`, `spss`,
/// `start`, `end`.
fn decode_search(params: &HashMap<String, String>) -> Result<SearchRequest, ReadError> {
    let query = match params.get("q").filter(|q| !q.trim().is_empty()) {
        Some(_) if params.contains_key("tags") => {
            return Err(ReadError::invalid(
                "invalid search request: give either q or tags, not both",
            ));
        }
        Some(q) => SearchQuery::TraceQl(q.clone()),
        None => SearchQuery::Tags(tag_search(params).map_err(ReadError::Invalid)?),
    };
    Ok(SearchRequest {
        query,
        limit: positive(params, "limit")?,
        spss: positive(params, "spss")?,
        range: time_range(params)?,
    })
}

/// `tempopb.SearchMetrics` of a search (so far) that found `traces` traces.
pub(crate) fn search_metrics_proto(stats: &SearchStats, traces: usize) -> tempopb::SearchMetrics {
    tempopb::SearchMetrics {
        inspected_traces: traces as u32,
        inspected_bytes: stats.inspected_bytes,
        total_blocks: stats.total_blocks as u32,
        total_block_bytes: stats.total_block_bytes,
        completed_jobs: stats.passes as u32,
        total_jobs: stats.total_passes as u32,
        inspected_spans: stats.inspected_spans,
    }
}

/// One trace of a search result as `tempopb.TraceSearchMetadata`.
pub(crate) fn trace_proto(t: &TraceMatch) -> tempopb::TraceSearchMetadata {
    let span_sets: Vec<tempopb::SpanSet> = t
        .span_sets
        .iter()
        .map(|set| tempopb::SpanSet {
            spans: set
                .spans
                .iter()
                .map(|s| tempopb::Span {
                    span_id: hex::encode(s.span_id),
                    name: s.name.clone(),
                    start_time_unix_nano: s.start_time_unix_nano as u64,
                    duration_nanos: s.duration_nanos as u64,
                    attributes: key_values_proto(&s.attributes),
                })
                .collect(),
            matched: set.matched as u32,
            attributes: key_values_proto(&set.attributes),
        })
        .collect();
    tempopb::TraceSearchMetadata {
        trace_id: tempo_trace_id(&t.trace_id),
        root_service_name: t.root_service_name.clone().unwrap_or(NO_ROOT.into()),
        root_trace_name: t.root_trace_name.clone().unwrap_or_default(),
        start_time_unix_nano: t.start_time_unix_nano as u64,
        duration_ms: (t.duration_nanos / 1_000_000) as u32,
        span_set: span_sets.first().cloned(),
        span_sets,
        service_stats: t
            .service_stats
            .iter()
            .map(|s| {
                let counts = tempopb::ServiceStats {
                    span_count: s.spans as u32,
                    error_count: s.errors as u32,
                };
                (s.service.clone(), counts)
            })
            .collect(),
    }
}

fn key_values_proto(attrs: &[(String, AttrValue)]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(key, v)| KeyValue {
            key: key.clone(),
            value: Some(AnyValue {
                value: Some(match v {
                    AttrValue::String(s) => any_value::Value::StringValue(s.clone()),
                    AttrValue::Int(i) => any_value::Value::IntValue(*i),
                    AttrValue::Float(f) => any_value::Value::DoubleValue(*f),
                    AttrValue::Bool(b) => any_value::Value::BoolValue(*b),
                }),
            }),
            ..Default::default()
        })
        .collect()
}

/// A trace id as Tempo prints it: hex without leading zeros.
fn tempo_trace_id(id: &crate::storage::TraceId) -> String {
    let hex = hex::encode(id.0);
    match hex.trim_start_matches('0') {
        "" => "0".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// Sets `key` unless the value is zero or empty, as protobuf JSON leaves defaults out.
pub(crate) fn put(object: &mut Map<String, Json>, key: &str, value: Json) {
    let empty = match &value {
        Json::Null => true,
        Json::String(s) => s.is_empty() || s == "0",
        Json::Number(n) => n.as_f64() == Some(0.0),
        Json::Array(a) => a.is_empty(),
        _ => false,
    };
    if !empty {
        object.insert(key.to_string(), value);
    }
}

/// A search result as `tempopb.SearchResponse`: the one value both encodings are made from.
pub fn search_response(result: &SearchResult) -> tempopb::SearchResponse {
    tempopb::SearchResponse {
        traces: result.traces.iter().map(trace_proto).collect(),
        metrics: Some(search_metrics_proto(&result.stats, result.traces.len())),
    }
}
