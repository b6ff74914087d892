//! Trace by id: `GET /api/traces/{id}` (v1: the trace, `batches` in JSON) and
//! `GET /api/v2/traces/{id}` (v2: `{trace, metrics}`), from live data and blocks together.
//! `Accept: application/protobuf` gets Tempo's protobuf messages, anything else JSON.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

use super::otlp_json;
use crate::exec::error::ReadError;
use crate::exec::request;
use crate::storage::combine::combine;
use crate::storage::{LiveData, TraceId, TraceReader};

/// What trace by id reads: blocks, and (in a process that ingests) live data.
#[derive(Clone)]
pub struct TraceSources {
    pub blocks: Arc<TraceReader>,
    pub ingester: Option<Arc<dyn LiveData>>,
    pub multitenancy: bool,
}

/// `tempopb.Trace`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TempoTrace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdMetrics {
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}

/// `tempopb.TraceByIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TempoTrace>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    /// 0 complete, 1 partial.
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf"))
}

/// A closed time range.
type TimeRange = (DateTime<Utc>, DateTime<Utc>);

/// `start`/`end` in Unix seconds, both or neither.
pub(crate) fn time_range(
    params: &HashMap<String, String>,
) -> Result<Option<request::TimeRange>, ReadError> {
    let seconds = |name: &str| -> Result<Option<i64>, ReadError> {
        match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|&s| Utc.timestamp_opt(s, 0).single().is_some())
                .map(Some)
                .ok_or_else(|| {
                    ReadError::Invalid(format!("invalid {name} {v:?}: expected Unix seconds"))
                }),
        }
    };
    request::TimeRange::new(seconds("start")?, seconds("end")?)
}

/// A range of Unix seconds as times.
fn times(range: request::TimeRange) -> TimeRange {
    let time = |s: i64| Utc.timestamp_opt(s, 0).single().unwrap_or_default();
    (time(range.start), time(range.end))
}

/// The request's tenant: `X-Scope-OrgID` with multitenancy (401 without it, 400 for an id
/// writes would refuse), else the single tenant.
pub(crate) fn tenant_of(headers: &HeaderMap, multitenancy: bool) -> Result<String, ReadError> {
    use crate::ingest::distributor::{DistributorError, tenant_id};
    let org_id = headers.get("x-scope-orgid").map(|v| v.as_bytes());
    tenant_id(org_id, multitenancy).map_err(|e| match e {
        DistributorError::MissingTenant => ReadError::Unauthenticated(
            "no org id: multitenancy is enabled, send the tenant in the X-Scope-OrgID header"
                .to_string(),
        ),
        other => ReadError::Invalid(other.to_string()),
    })
}

async fn find(
    sources: &TraceSources,
    headers: &HeaderMap,
    id: &str,
    params: &HashMap<String, String>,
) -> Result<(Vec<ResourceSpans>, u64), ReadError> {
    let id: TraceId = id
        .parse()
        .map_err(|e| ReadError::Invalid(format!("invalid trace id: {e}")))?;
    let range = time_range(params)?.map(times);
    let tenant = tenant_of(headers, sources.multitenancy)?;
    // Memory before blocks: the ingester lists a block before dropping its traces from
    // memory, so in this order a trace being flushed is always seen in one or the other.
    let mut parts = sources
        .ingester
        .as_ref()
        .map(|i| i.find_trace(&tenant, &id))
        .unwrap_or_default();
    let found = sources
        .blocks
        .find_trace(&tenant, id, range)
        .await
        .map_err(|e| ReadError::Internal(format!("reading blocks failed: {e}")))?;
    let inspected = found.inspected_bytes;
    parts.push(found.resource_spans);
    let mut trace = combine(parts);
    fill_required_fields(&mut trace);
    Ok((trace, inspected))
}

/// Grafana's decoder expects a resource, a scope and a status on every batch and span, even
/// when the client sent none.
fn fill_required_fields(trace: &mut [ResourceSpans]) {
    for rs in trace {
        rs.resource.get_or_insert_with(Default::default);
        for ss in &mut rs.scope_spans {
            ss.scope.get_or_insert_with(Default::default);
            for span in &mut ss.spans {
                span.status.get_or_insert_with(Default::default);
            }
        }
    }
}

pub async fn trace_v1(
    State(sources): State<TraceSources>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (trace, _) = match find(&sources, &headers, &id, &params).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    if trace.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if wants_protobuf(&headers) {
        let body = TempoTrace {
            resource_spans: trace,
        }
        .encode_to_vec();
        return ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response();
    }
    let body = serde_json::json!({"batches": otlp_json::resource_spans(&trace)});
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub async fn trace_v2(
    State(sources): State<TraceSources>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (trace, inspected) = match find(&sources, &headers, &id, &params).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    if trace.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if wants_protobuf(&headers) {
        let body = TraceByIdResponse {
            trace: Some(TempoTrace {
                resource_spans: trace,
            }),
            metrics: Some(TraceByIdMetrics {
                inspected_bytes: inspected,
            }),
            status: 0,
            message: String::new(),
        }
        .encode_to_vec();
        return ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response();
    }
    let body = serde_json::json!({
        "trace": {"resourceSpans": otlp_json::resource_spans(&trace)},
        "metrics": {"inspectedBytes": inspected.to_string()},
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
