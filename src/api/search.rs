//! Search and tag discovery: `GET /api/search` (TraceQL `q`, or the legacy `tags` form),
//! `/api/search/tags`, `/api/v2/search/tags`, `/api/search/tag/{name}/values` and
//! `/api/v2/search/tag/{name}/values`, in Tempo's JSON shapes (Grafana's strict decoder
//! rejects unknown fields, so only Tempo's fields are written, zero values left out).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::traces::{tenant_of, time_range};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

use super::tempopb;
use crate::exec::error::ReadError;
use crate::exec::request::{SearchQuery, SearchRequest, TagSearch, TimeRange};
use crate::exec::runner::QueryRunner;
use crate::exec::search::{AttrValue, SearchResult, SearchStats, TraceMatch};
use crate::exec::sources::QuerySources;
use crate::exec::values;
use crate::storage::catalog::{TagScope, TagValue};
use crate::traceql::ast::{
    AttributeScope, BinaryOp, CmpOp, FieldExpr, FieldRef, Intrinsic, RootExpr, Stage, Static,
};
use crate::traceql::autocomplete_filter;

/// Root service name of a trace whose root span has not arrived, as Tempo writes it.
const NO_ROOT: &str = "<root span not yet received>";

/// The intrinsics tag discovery lists, as Tempo lists them.
const INTRINSIC_TAGS: [&str; 25] = [
    "duration",
    "event:name",
    "event:timeSinceStart",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "link:spanID",
    "link:traceID",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

#[derive(Clone)]
pub struct SearchState {
    pub sources: QuerySources,
    pub multitenancy: bool,
    /// Where queries over span data run, with their limits.
    pub runner: Arc<QueryRunner>,
}

fn json_response(body: Json) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `start`/`end` as a searchable range in Unix nanoseconds.
fn search_range(params: &HashMap<String, String>) -> Result<Option<(i64, i64)>, ReadError> {
    time_range(params)?
        .map(|range| range.searchable().map(TimeRange::nanos))
        .transpose()
}

fn positive(params: &HashMap<String, String>, name: &str) -> Result<Option<usize>, ReadError> {
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
    let total_blocks = source.total_blocks();
    let work = async move { crate::exec::search::search(&source, &query, &options).await };
    let result = state.runner.run(permit, work).await?;
    let protobuf = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf"));
    if protobuf {
        use prost::Message;
        let body = tempopb::SearchResponse {
            traces: result.traces.iter().map(trace_proto).collect(),
            metrics: Some(search_metrics_proto(
                &result.stats,
                result.traces.len(),
                total_blocks,
            )),
        };
        return Ok((
            [(header::CONTENT_TYPE, "application/protobuf")],
            body.encode_to_vec(),
        )
            .into_response());
    }
    Ok(json_response(search_response(&result, total_blocks)))
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
pub(crate) fn search_metrics_proto(
    stats: &SearchStats,
    traces: usize,
    total_blocks: usize,
) -> tempopb::SearchMetrics {
    tempopb::SearchMetrics {
        inspected_traces: traces as u32,
        inspected_bytes: stats.inspected_bytes,
        total_blocks: total_blocks as u32,
        completed_jobs: stats.passes as u32,
        total_jobs: stats.total_passes as u32,
        inspected_spans: stats.inspected_spans,
        ..Default::default()
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

/// An OTLP `AnyValue` as Tempo's JSON writes it (int64 as a string).
fn any_value(v: &AttrValue) -> Json {
    match v {
        AttrValue::String(s) => json!({"stringValue": s}),
        AttrValue::Int(i) => json!({"intValue": i.to_string()}),
        AttrValue::Float(f) => json!({"doubleValue": crate::float_text::to_json(*f)}),
        AttrValue::Bool(b) => json!({"boolValue": b}),
    }
}

fn key_values(attrs: &[(String, AttrValue)]) -> Json {
    Json::Array(
        attrs
            .iter()
            .map(|(k, v)| json!({"key": k, "value": any_value(v)}))
            .collect(),
    )
}

/// Sets `key` unless the value is zero or empty, as protobuf JSON leaves defaults out.
fn put(object: &mut Map<String, Json>, key: &str, value: Json) {
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

fn trace_json(t: &TraceMatch) -> Json {
    let sets: Vec<Json> = t
        .span_sets
        .iter()
        .map(|set| {
            let spans: Vec<Json> = set
                .spans
                .iter()
                .map(|s| {
                    let mut span = Map::new();
                    put(&mut span, "spanID", json!(hex::encode(s.span_id)));
                    put(&mut span, "name", json!(s.name));
                    put(
                        &mut span,
                        "startTimeUnixNano",
                        json!(s.start_time_unix_nano.to_string()),
                    );
                    put(
                        &mut span,
                        "durationNanos",
                        json!(s.duration_nanos.to_string()),
                    );
                    put(&mut span, "attributes", key_values(&s.attributes));
                    Json::Object(span)
                })
                .collect();
            let mut object = Map::new();
            put(&mut object, "spans", Json::Array(spans));
            put(&mut object, "matched", json!(set.matched));
            put(&mut object, "attributes", key_values(&set.attributes));
            Json::Object(object)
        })
        .collect();
    let mut object = Map::new();
    put(&mut object, "traceID", json!(tempo_trace_id(&t.trace_id)));
    put(
        &mut object,
        "rootServiceName",
        json!(t.root_service_name.as_deref().unwrap_or(NO_ROOT)),
    );
    put(&mut object, "rootTraceName", json!(t.root_trace_name));
    put(
        &mut object,
        "startTimeUnixNano",
        json!(t.start_time_unix_nano.to_string()),
    );
    put(
        &mut object,
        "durationMs",
        json!(t.duration_nanos / 1_000_000),
    );
    if let Some(first) = sets.first() {
        object.insert("spanSet".into(), first.clone());
    }
    put(&mut object, "spanSets", Json::Array(sets));
    if !t.service_stats.is_empty() {
        let stats: Map<String, Json> = t
            .service_stats
            .iter()
            .map(|s| {
                let mut counts = Map::new();
                put(&mut counts, "spanCount", json!(s.spans));
                put(&mut counts, "errorCount", json!(s.errors));
                (s.service.clone(), Json::Object(counts))
            })
            .collect();
        object.insert("serviceStats".into(), Json::Object(stats));
    }
    Json::Object(object)
}

/// `tempopb.SearchResponse` as JSON.
pub fn search_response(result: &SearchResult, total_blocks: usize) -> Json {
    let mut metrics = Map::new();
    put(&mut metrics, "inspectedTraces", json!(result.traces.len()));
    put(
        &mut metrics,
        "inspectedBytes",
        json!(result.stats.inspected_bytes.to_string()),
    );
    put(&mut metrics, "totalBlocks", json!(total_blocks));
    // A job is a pass over the newest blocks; a search that settles early completes fewer.
    put(&mut metrics, "completedJobs", json!(result.stats.passes));
    put(&mut metrics, "totalJobs", json!(result.stats.total_passes));
    put(
        &mut metrics,
        "inspectedSpans",
        json!(result.stats.inspected_spans.to_string()),
    );
    json!({
        "traces": result.traces.iter().map(trace_json).collect::<Vec<_>>(),
        "metrics": metrics,
    })
}

fn tag_scope(name: &str) -> Result<Option<TagScope>, String> {
    Ok(match name {
        "" | "none" | "all" | "intrinsic" => None,
        "resource" => Some(TagScope::Resource),
        "span" => Some(TagScope::Span),
        "event" => Some(TagScope::Event),
        "link" => Some(TagScope::Link),
        "instrumentation" => Some(TagScope::Instrumentation),
        other => {
            return Err(format!(
                "invalid scope {other:?}: expected resource, span, event, link, instrumentation, intrinsic or none"
            ));
        }
    })
}

fn scope_name(scope: TagScope) -> &'static str {
    match scope {
        TagScope::Resource => "resource",
        TagScope::Span => "span",
        TagScope::Event => "event",
        TagScope::Link => "link",
        TagScope::Instrumentation => "instrumentation",
    }
}

fn metadata_metrics(blocks: usize, block_bytes: u64) -> Json {
    let mut metrics = Map::new();
    put(&mut metrics, "totalBlocks", json!(blocks));
    put(
        &mut metrics,
        "totalBlockBytes",
        json!(block_bytes.to_string()),
    );
    Json::Object(metrics)
}

async fn catalog(
    state: &SearchState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<crate::exec::sources::MergedCatalog, ReadError> {
    let tenant = tenant_of(headers, state.multitenancy)?;
    let range = search_range(params)?;
    Ok(state.sources.tag_catalog(&tenant, range).await?)
}

/// The `scope` parameter checked, and the catalog to list tags from.
async fn scoped_catalog(
    state: &SearchState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    scope_param: &str,
) -> Result<(Option<TagScope>, crate::exec::sources::MergedCatalog), ReadError> {
    let only = tag_scope(scope_param).map_err(ReadError::Invalid)?;
    Ok((only, catalog(state, headers, params).await?))
}

/// `GET /api/search/tags`: attribute names, unscoped.
pub async fn tags_v1(
    State(state): State<SearchState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let scope_param = params.get("scope").map(String::as_str).unwrap_or("");
    let (only, merged) = scoped_catalog(&state, &headers, &params, scope_param).await?;
    let mut names = BTreeSet::new();
    if scope_param == "intrinsic" {
        names.extend(INTRINSIC_TAGS.iter().map(|s| s.to_string()));
    } else {
        for scope in TagScope::ALL {
            if only.is_none_or(|o| o == scope) {
                names.extend(merged.catalog.keys(scope).iter().map(|k| k.key.clone()));
            }
        }
    }
    Ok(json_response(json!({
        "tagNames": names,
        "metrics": metadata_metrics(merged.blocks, merged.block_bytes),
    })))
}

/// `GET /api/v2/search/tags`: attribute names per scope, and the intrinsics; with a `q`
/// filter, only the names on the spans it matches.
pub async fn tags_v2(
    State(state): State<SearchState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let scope_param = params.get("scope").map(String::as_str).unwrap_or("");
    let only = tag_scope(scope_param).map_err(ReadError::Invalid)?;
    let (mut names, metrics) = scoped_names(&state, &headers, &params).await?;
    let mut scopes = Vec::new();
    if scope_param != "intrinsic" {
        for scope in TagScope::ALL {
            let name = scope_name(scope);
            if only.is_none_or(|o| o == scope)
                && let Some(tags) = names.remove(name).filter(|t| !t.is_empty())
            {
                scopes.push(json!({"name": name, "tags": tags}));
            }
        }
    }
    if only.is_none() {
        scopes.push(json!({"name": "intrinsic", "tags": INTRINSIC_TAGS}));
    }
    Ok(json_response(json!({"scopes": scopes, "metrics": metrics})))
}

/// Attribute names by scope name with the response metrics: those on the spans the `q`
/// filter matches when it has one (read from span data), else from the tag catalogs.
async fn scoped_names(
    state: &SearchState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(HashMap<&'static str, BTreeSet<String>>, Json), ReadError> {
    if let Some(filter) = params.get("q").and_then(|q| autocomplete_filter(q)) {
        let (tenant, source, start, end) = span_data(state, headers, params).await?;
        let work = async move { values::tag_names(&source, Some(&filter), start, end).await };
        match state
            .runner
            .admit_and_run(&tenant, work)
            .await
            .map_err(ReadError::from)
        {
            Ok(found) => {
                let metrics = inspected_metrics(found.inspected_bytes);
                return Ok((found.scopes.into_iter().collect(), metrics));
            }
            // A filter that cannot be planned leaves the names unfiltered, as Tempo's does.
            Err(ReadError::Invalid(_)) => {}
            Err(other) => return Err(other),
        }
    }
    let merged = catalog(state, headers, params).await?;
    let names = TagScope::ALL
        .into_iter()
        .map(|scope| {
            let keys = merged.catalog.keys(scope).iter().map(|k| k.key.clone());
            (scope_name(scope), keys.collect())
        })
        .collect();
    Ok((names, metadata_metrics(merged.blocks, merged.block_bytes)))
}

/// Typed values of one field: `(type, value)` as Tempo's v2 lists them, most frequent first.
fn field_values(
    catalog: &crate::storage::TagCatalog,
    field: &FieldRef,
) -> Vec<(&'static str, String)> {
    let typed = |v: &TagValue| match v {
        TagValue::String(s) => ("string", s.clone()),
        TagValue::Int(i) => ("int", i.to_string()),
        TagValue::Float(f) => ("float", crate::float_text::to_text(*f)),
        TagValue::Bool(b) => ("bool", b.to_string()),
    };
    let attribute = |scopes: &[TagScope], name: &str| {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for scope in scopes {
            if let Some(entry) = catalog.keys(*scope).iter().find(|k| k.key == name) {
                for v in &entry.values {
                    let t = typed(&v.value);
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
        }
        out
    };
    let intrinsic = |key: &str| -> Vec<(&'static str, String)> {
        catalog
            .intrinsics
            .get(key)
            .map(|values| values.iter().map(|v| typed(&v.value)).collect())
            .unwrap_or_default()
    };
    let keywords = |words: &[&str]| words.iter().map(|w| ("keyword", w.to_string())).collect();
    match field {
        FieldRef::Attribute(a) => match a.scope {
            AttributeScope::None => attribute(&TagScope::ALL, &a.name),
            AttributeScope::Span => attribute(&[TagScope::Span], &a.name),
            AttributeScope::Resource => attribute(&[TagScope::Resource], &a.name),
            AttributeScope::Event => attribute(&[TagScope::Event], &a.name),
            AttributeScope::Link => attribute(&[TagScope::Link], &a.name),
            AttributeScope::Instrumentation => attribute(&[TagScope::Instrumentation], &a.name),
        },
        FieldRef::Intrinsic(i) => match i {
            Intrinsic::Status => keywords(&["ok", "error", "unset"]),
            Intrinsic::Kind => keywords(&[
                "client",
                "server",
                "producer",
                "consumer",
                "internal",
                "unspecified",
            ]),
            Intrinsic::Name => intrinsic("name"),
            Intrinsic::EventName => intrinsic("event:name"),
            Intrinsic::TraceRootService => attribute(&[TagScope::Resource], "service.name"),
            _ => Vec::new(),
        },
    }
}

/// A TraceQL identifier (`.a`, `resource.service.name`, `span:status`) as a field.
fn parse_identifier(text: &str) -> Result<FieldRef, String> {
    let parsed = crate::traceql::parse(&format!("select({text})"))
        .map_err(|e| format!("invalid tag {text:?}: {}", e.message))?;
    match parsed.expr {
        RootExpr::Pipeline(p) => match p.stages.as_slice() {
            [Stage::Select(fields)] if fields.len() == 1 => Ok(fields[0].clone()),
            _ => Err(format!(
                "invalid tag {text:?}: expected one attribute or intrinsic"
            )),
        },
        _ => Err(format!(
            "invalid tag {text:?}: expected one attribute or intrinsic"
        )),
    }
}

fn limited<T>(mut values: Vec<T>, params: &HashMap<String, String>) -> Result<Vec<T>, ReadError> {
    if let Some(limit) = positive(params, "limit")?.filter(|&n| n > 0) {
        values.truncate(limit);
    }
    Ok(values)
}

/// `GET /api/search/tag/{name}/values`: the values of a plain attribute name, as strings.
pub async fn tag_values_v1(
    State(state): State<SearchState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let field = match name.as_str() {
        "name" | "status" | "kind" => parse_identifier(&name),
        _ => parse_identifier(&format!(".{}", quote_attribute(&name))),
    }
    .map_err(ReadError::Invalid)?;
    let (typed, metrics) = typed_values(&state, &headers, &params, &field).await?;
    let mut values: Vec<String> = Vec::new();
    for (_, v) in typed {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    let values = limited(values, &params)?;
    Ok(json_response(
        json!({"tagValues": values, "metrics": metrics}),
    ))
}

/// An attribute name as a quoted TraceQL segment, so any name parses.
fn quote_attribute(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `GET /api/v2/search/tag/{name}/values`: typed values of a TraceQL identifier.
pub async fn tag_values_v2(
    State(state): State<SearchState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let field = parse_identifier(&name).map_err(ReadError::Invalid)?;
    let (typed, metrics) = typed_values(&state, &headers, &params, &field).await?;
    let values: Vec<Json> = typed
        .into_iter()
        .map(|(t, v)| json!({"type": t, "value": v}))
        .collect();
    let values = limited(values, &params)?;
    Ok(json_response(
        json!({"tagValues": values, "metrics": metrics}),
    ))
}

/// The typed values of `field` with the response metrics: narrowed by the `q` filter when it
/// has one (read from span data), else from the tag catalogs.
async fn typed_values(
    state: &SearchState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    field: &FieldRef,
) -> Result<(Vec<(&'static str, String)>, Json), ReadError> {
    let filter = params.get("q").and_then(|q| autocomplete_filter(q));
    if let Some(filter) = filter
        && let Some(narrowed) = narrowed_values(state, headers, params, &filter, field).await?
    {
        return Ok(narrowed);
    }
    let merged = catalog(state, headers, params).await?;
    Ok((
        field_values(&merged.catalog, field),
        metadata_metrics(merged.blocks, merged.block_bytes),
    ))
}

/// The values of `field` on the spans `filter` matches; `None` where the catalog answers as
/// well (statuses and kinds have fixed lists, durations none) or span data cannot (the values
/// of event and link fields: a span has many).
async fn narrowed_values(
    state: &SearchState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    filter: &FieldExpr,
    field: &FieldRef,
) -> Result<Option<(Vec<(&'static str, String)>, Json)>, ReadError> {
    if let FieldRef::Intrinsic(
        Intrinsic::Status | Intrinsic::Kind | Intrinsic::Duration | Intrinsic::TraceDuration,
    ) = field
    {
        return Ok(None);
    }
    // `{ .a = "x" && … }` asks for the values of `.a`: only "x" can match.
    if let Some(value) = required_value(filter, field) {
        return Ok(Some((vec![value], json!({}))));
    }
    let (tenant, source, start, end) = span_data(state, headers, params).await?;
    let (filter, field) = (filter.clone(), field.clone());
    let work =
        async move { values::field_values(&source, Some(&filter), &field, start, end).await };
    match state
        .runner
        .admit_and_run(&tenant, work)
        .await
        .map_err(ReadError::from)
    {
        Ok(found) => {
            let typed = found.values.iter().map(typed_attr_value).collect();
            Ok(Some((typed, inspected_metrics(found.inspected_bytes))))
        }
        // A filter that cannot be planned leaves the values unnarrowed.
        Err(ReadError::Invalid(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The tenant, what a query of its span data reads, and the request's time range (Unix nanoseconds).
async fn span_data(
    state: &SearchState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<
    (
        String,
        crate::exec::sources::SpanSource,
        Option<i64>,
        Option<i64>,
    ),
    ReadError,
> {
    let tenant = tenant_of(headers, state.multitenancy)?;
    let range = search_range(params)?;
    let source = state.sources.session(&tenant)?;
    Ok((tenant, source, range.map(|r| r.0), range.map(|r| r.1)))
}

/// The metrics of a tags or tag-values answer read from span data.
fn inspected_metrics(bytes: u64) -> Json {
    let mut metrics = Map::new();
    put(&mut metrics, "inspectedBytes", json!(bytes.to_string()));
    Json::Object(metrics)
}

/// The literal `field` must equal for `filter` to match: a `field = literal` among the
/// filter's `&&` conditions.
fn required_value(filter: &FieldExpr, field: &FieldRef) -> Option<(&'static str, String)> {
    match filter {
        FieldExpr::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
            ..
        } => required_value(lhs, field).or_else(|| required_value(rhs, field)),
        FieldExpr::Binary {
            op: BinaryOp::Cmp(CmpOp::Eq),
            lhs,
            rhs,
            ..
        } => match (lhs.as_ref(), rhs.as_ref()) {
            (FieldExpr::Field(f, _), FieldExpr::Static(s))
            | (FieldExpr::Static(s), FieldExpr::Field(f, _))
                if f == field =>
            {
                typed_static(s)
            }
            _ => None,
        },
        _ => None,
    }
}

fn typed_static(s: &Static) -> Option<(&'static str, String)> {
    Some(match s {
        Static::String(v) => ("string", v.clone()),
        Static::Int(v) => ("int", v.to_string()),
        Static::Float(v) => ("float", crate::float_text::to_text(*v)),
        Static::Bool(v) => ("bool", v.to_string()),
        _ => return None,
    })
}

fn typed_attr_value(v: &AttrValue) -> (&'static str, String) {
    match v {
        AttrValue::String(s) => ("string", s.clone()),
        AttrValue::Int(i) => ("int", i.to_string()),
        AttrValue::Float(f) => ("float", crate::float_text::to_text(*f)),
        AttrValue::Bool(b) => ("bool", b.to_string()),
    }
}
