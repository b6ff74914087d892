//! Tag discovery over HTTP: `/api/search/tags`, `/api/v2/search/tags`,
//! `/api/search/tag/{name}/values` and `/api/v2/search/tag/{name}/values`, in Tempo's JSON
//! shapes. Decodes the request, asks [`crate::exec::tags`], encodes the answer.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use super::search::{SearchState, json_response, positive, put};
use super::traces::{tenant_of, time_range};
use crate::exec::error::ReadError;
use crate::exec::request::TimeRange;
use crate::exec::tags::{INTRINSIC_TAGS, Read, Scopes, TagValuesRequest, TagsRequest, scope_name};
use crate::storage::catalog::TagScope;
use crate::traceql::ast::FieldRef;
use crate::traceql::{autocomplete_filter, parse_field};

/// The `start`/`end` parameters as a range Tempo would search.
fn searchable_range(params: &HashMap<String, String>) -> Result<Option<TimeRange>, ReadError> {
    time_range(params)?.map(TimeRange::searchable).transpose()
}

fn tags_request(
    params: &HashMap<String, String>,
    filter: Option<crate::traceql::ast::FieldExpr>,
) -> Result<TagsRequest, ReadError> {
    Ok(TagsRequest {
        scopes: Scopes::parse(params.get("scope").map(String::as_str).unwrap_or(""))?,
        filter,
        range: searchable_range(params)?,
    })
}

/// Grafana's `q` while it is typed: the span filter it amounts to, if any.
fn filter(params: &HashMap<String, String>) -> Option<crate::traceql::ast::FieldExpr> {
    params.get("q").and_then(|q| autocomplete_filter(q))
}

fn read_metrics(read: Read) -> Json {
    let mut metrics = Map::new();
    match read {
        Read::Catalogs {
            blocks,
            block_bytes,
        } => {
            put(&mut metrics, "totalBlocks", json!(blocks));
            put(
                &mut metrics,
                "totalBlockBytes",
                json!(block_bytes.to_string()),
            );
        }
        Read::Spans { inspected_bytes } => {
            put(
                &mut metrics,
                "inspectedBytes",
                json!(inspected_bytes.to_string()),
            );
        }
        Read::Nothing => {}
    }
    Json::Object(metrics)
}

/// `GET /api/search/tags`: attribute names, unscoped (from the catalogs; `q` is not read).
pub async fn tags_v1(
    State(state): State<SearchState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let tenant = tenant_of(&headers, state.multitenancy)?;
    let request = tags_request(&params, None)?;
    let found = state.tag_sources(&tenant).names(&request).await?;
    let mut names = BTreeSet::new();
    if request.scopes == Scopes::Intrinsic {
        names.extend(INTRINSIC_TAGS.iter().map(|s| s.to_string()));
    } else {
        for scope in TagScope::ALL
            .into_iter()
            .filter(|s| request.scopes.lists(*s))
        {
            names.extend(
                found
                    .scopes
                    .get(scope_name(scope))
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
    }
    Ok(json_response(json!({
        "tagNames": names,
        "metrics": read_metrics(found.read),
    })))
}

/// `GET /api/v2/search/tags`: attribute names per scope, and the intrinsics; with a `q`
/// filter, only the names on the spans it matches.
pub async fn tags_v2(
    State(state): State<SearchState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let tenant = tenant_of(&headers, state.multitenancy)?;
    let request = tags_request(&params, filter(&params))?;
    let mut found = state.tag_sources(&tenant).names(&request).await?;
    let mut scopes = Vec::new();
    for scope in TagScope::ALL
        .into_iter()
        .filter(|s| request.scopes.lists(*s))
    {
        let name = scope_name(scope);
        if let Some(tags) = found.scopes.remove(name).filter(|t| !t.is_empty()) {
            scopes.push(json!({"name": name, "tags": tags}));
        }
    }
    if matches!(request.scopes, Scopes::All | Scopes::Intrinsic) {
        scopes.push(json!({"name": "intrinsic", "tags": INTRINSIC_TAGS}));
    }
    Ok(json_response(json!({
        "scopes": scopes,
        "metrics": read_metrics(found.read),
    })))
}

fn values_request(
    params: &HashMap<String, String>,
    field: FieldRef,
) -> Result<TagValuesRequest, ReadError> {
    Ok(TagValuesRequest {
        field,
        filter: filter(params),
        range: searchable_range(params)?,
    })
}

fn limited<T>(mut values: Vec<T>, params: &HashMap<String, String>) -> Result<Vec<T>, ReadError> {
    if let Some(limit) = positive(params, "limit")?.filter(|&n| n > 0) {
        values.truncate(limit);
    }
    Ok(values)
}

fn tag_field(text: &str) -> Result<FieldRef, ReadError> {
    parse_field(text).map_err(|e| ReadError::Invalid(format!("invalid tag {text:?}: {e}")))
}

/// `GET /api/search/tag/{name}/values`: the values of a plain attribute name, as strings.
pub async fn tag_values_v1(
    State(state): State<SearchState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let tenant = tenant_of(&headers, state.multitenancy)?;
    let field = match name.as_str() {
        "name" | "status" | "kind" => tag_field(&name)?,
        _ => tag_field(&format!(".{}", quote_attribute(&name)))?,
    };
    let request = values_request(&params, field)?;
    let found = state.tag_sources(&tenant).values(&request).await?;
    let mut values: Vec<String> = Vec::new();
    for (_, v) in found.values {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    let values = limited(values, &params)?;
    Ok(json_response(
        json!({"tagValues": values, "metrics": read_metrics(found.read)}),
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
    let tenant = tenant_of(&headers, state.multitenancy)?;
    let request = values_request(&params, tag_field(&name)?)?;
    let found = state.tag_sources(&tenant).values(&request).await?;
    let values: Vec<Json> = found
        .values
        .into_iter()
        .map(|(t, v)| json!({"type": t, "value": v}))
        .collect();
    let values = limited(values, &params)?;
    Ok(json_response(
        json!({"tagValues": values, "metrics": read_metrics(found.read)}),
    ))
}
