//! OTLP/HTTP receiver: `POST /v1/traces` with protobuf or JSON bodies, optionally gzipped.
//! Answers as the OTLP specification says: 200 with an `ExportTraceServiceResponse` (with
//! `partialSuccess` when spans were refused), 400 for a body that cannot be decoded, 415 for an
//! unsupported content type, 413 for an oversized body, 503 (retryable) when the ingester is
//! overloaded. Error bodies are `google.rpc.Status` in the request's encoding.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::distributor::{Distributor, DistributorError};
use super::ingester::PushError;
use super::nesting;
use crate::any_value_json::{self, SpecialDoubles};

/// Largest request body accepted, compressed or not.
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// `google.rpc.Status`, the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

pub fn router(distributor: Arc<Distributor>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(distributor)
}

fn error(encoding: Encoding, status: StatusCode, grpc_code: i32, message: String) -> Response {
    let body = RpcStatus {
        code: grpc_code,
        message,
    };
    let mut response = match encoding {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"code": body.code, "message": body.message}).to_string(),
        )
            .into_response(),
    };
    // OTLP exporters retry 429 and 503, after `Retry-After` when given.
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

const INVALID_ARGUMENT: i32 = 3;
const UNAUTHENTICATED: i32 = 16;
const UNAVAILABLE: i32 = 14;
const INTERNAL: i32 = 13;
const RESOURCE_EXHAUSTED: i32 = 8;

async fn export(
    State(distributor): State<Arc<Distributor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return error(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                INVALID_ARGUMENT,
                format!(
                    "unsupported Content-Type {other:?}: send application/x-protobuf or application/json"
                ),
            );
        }
    };
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            let decoder = flate2::read::GzDecoder::new(body.as_ref());
            match decoder
                .take(MAX_BODY_BYTES as u64 + 1)
                .read_to_end(&mut out)
            {
                Ok(_) if out.len() > MAX_BODY_BYTES => {
                    return error(
                        encoding,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        INVALID_ARGUMENT,
                        format!("decompressed body is larger than {MAX_BODY_BYTES} bytes"),
                    );
                }
                Ok(_) => out,
                Err(e) => {
                    return error(
                        encoding,
                        StatusCode::BAD_REQUEST,
                        INVALID_ARGUMENT,
                        format!("body is not valid gzip: {e}"),
                    );
                }
            }
        }
        Some(other) => {
            return error(
                encoding,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                INVALID_ARGUMENT,
                format!("unsupported Content-Encoding {other:?}: send gzip or no encoding"),
            );
        }
    };
    let request = match encoding {
        Encoding::Protobuf => nesting::check_protobuf(&body)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                ExportTraceServiceRequest::decode(body.as_slice()).map_err(|e| {
                    format!("body is not an OTLP ExportTraceServiceRequest in protobuf: {e}")
                })
            }),
        Encoding::Json => decode_json(&body),
    };
    let request = match request {
        Ok(request) => request,
        Err(message) => {
            return error(encoding, StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message);
        }
    };
    let org_id = headers.get("x-scope-orgid").map(|v| v.as_bytes());
    let tenant = match distributor.tenant(org_id) {
        Ok(tenant) => tenant,
        Err(e @ DistributorError::MissingTenant) => {
            return error(
                encoding,
                StatusCode::UNAUTHORIZED,
                UNAUTHENTICATED,
                e.to_string(),
            );
        }
        Err(e) => {
            return error(
                encoding,
                StatusCode::BAD_REQUEST,
                INVALID_ARGUMENT,
                e.to_string(),
            );
        }
    };
    match distributor.push(&tenant, request).await {
        Ok(outcome) => {
            let partial_success = (outcome.rejected_spans > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: outcome.rejected_spans as i64,
                error_message: outcome.reasons.join("; "),
            });
            let response = ExportTraceServiceResponse { partial_success };
            match encoding {
                Encoding::Protobuf => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    response.encode_to_vec(),
                )
                    .into_response(),
                Encoding::Json => {
                    let body = match &response.partial_success {
                        Some(p) => serde_json::json!({"partialSuccess": {
                            "rejectedSpans": p.rejected_spans.to_string(),
                            "errorMessage": p.error_message,
                        }}),
                        None => serde_json::json!({}),
                    };
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/json")],
                        body.to_string(),
                    )
                        .into_response()
                }
            }
        }
        Err(DistributorError::Ingester(PushError::Overloaded { held })) => error(
            encoding,
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            format!("ingester is over its memory limit ({held} bytes held); retry later"),
        ),
        Err(DistributorError::Ingester(e)) => {
            tracing::error!(error = %e, "push failed");
            error(
                encoding,
                StatusCode::SERVICE_UNAVAILABLE,
                INTERNAL,
                e.to_string(),
            )
        }
        Err(e @ DistributorError::LargerThanBurst { .. }) => error(
            encoding,
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_ARGUMENT,
            e.to_string(),
        ),
        Err(e @ DistributorError::RateLimited { .. }) => error(
            encoding,
            StatusCode::TOO_MANY_REQUESTS,
            RESOURCE_EXHAUSTED,
            e.to_string(),
        ),
        Err(e) => error(
            encoding,
            StatusCode::BAD_REQUEST,
            INVALID_ARGUMENT,
            e.to_string(),
        ),
    }
}

/// OTLP/JSON: ids in hex, 64-bit integers as strings or numbers, enums as integers or names.
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let mut value = any_value_json::parse_bounded(body).map_err(|e| format!("body is {e}"))?;
    normalize_enums(&mut value);
    let special = SpecialDoubles::replace(&mut value)?;
    let mut request: ExportTraceServiceRequest = serde_json::from_value(value)
        .map_err(|e| format!("body is not an OTLP/JSON ExportTraceServiceRequest: {e}"))?;
    nesting::check_request(&request).map_err(|e| e.to_string())?;
    if let Some(special) = special {
        for rs in &mut request.resource_spans {
            if let Some(resource) = &mut rs.resource {
                special.restore_attributes(&mut resource.attributes);
            }
            for ss in &mut rs.scope_spans {
                if let Some(scope) = &mut ss.scope {
                    special.restore_attributes(&mut scope.attributes);
                }
                for span in &mut ss.spans {
                    special.restore_attributes(&mut span.attributes);
                    for event in &mut span.events {
                        special.restore_attributes(&mut event.attributes);
                    }
                    for link in &mut span.links {
                        special.restore_attributes(&mut link.attributes);
                    }
                }
            }
        }
    }
    Ok(request)
}

/// Replaces enum names (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`) by their numbers, which is
/// what the generated decoder reads.
fn normalize_enums(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if let Value::String(name) = child {
                    let number = match key.as_str() {
                        "kind" => span_kind_number(name),
                        "code" => status_code_number(name),
                        _ => None,
                    };
                    if let Some(number) = number {
                        *child = Value::from(number);
                    }
                    continue;
                }
                normalize_enums(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_enums),
        _ => {}
    }
}

fn span_kind_number(name: &str) -> Option<i32> {
    Some(match name {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        _ => return None,
    })
}

fn status_code_number(name: &str) -> Option<i32> {
    Some(match name {
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}
