//! The Tempo-compatible HTTP API on `server.http_listen_port`, with the gRPC streaming search
//! beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, extract::State};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;

/// Whether the process should receive traffic: `/ready` answers 200 only in `Ready`.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(READY, Ordering::SeqCst);
    }
    pub fn set_stopping(&self) {
        self.0.store(STOPPING, Ordering::SeqCst);
    }
    fn not_ready_reason(&self) -> Option<&'static str> {
        match self.0.load(Ordering::SeqCst) {
            READY => None,
            STARTING => Some("starting"),
            _ => Some("shutting down"),
        }
    }
}

#[derive(Clone)]
pub struct ApiState {
    pub readiness: Arc<Readiness>,
}

/// The HTTP routes. Tempo's query API (`/api/...`) is served under `api_prefix`
/// (`server.http_api_prefix`, as in Tempo), so a Grafana data source URL with a path works;
/// `/ready`, `/metrics` and gRPC (which Grafana dials at the root) stay at the root.
pub fn router(
    state: ApiState,
    traces: super::traces::TraceSources,
    search: super::search::SearchState,
    api_prefix: &str,
) -> Router {
    use super::search as s;
    let grpc = Router::new().route_service(
        super::grpc::SEARCH_PATH,
        super::grpc::StreamingSearch::new(search.clone()),
    );
    let search_routes = Router::new()
        .route("/api/search", get(s::search))
        .route("/api/search/tags", get(super::tags::tags_v1))
        .route("/api/v2/search/tags", get(super::tags::tags_v2))
        .route(
            "/api/search/tag/{name}/values",
            get(super::tags::tag_values_v1),
        )
        .route(
            "/api/v2/search/tag/{name}/values",
            get(super::tags::tag_values_v2),
        )
        .with_state(search);
    let trace_routes = Router::new()
        .route("/api/traces/{id}", get(super::traces::trace_v1))
        .route("/api/v2/traces/{id}", get(super::traces::trace_v2))
        .with_state(traces);
    let api = Router::new()
        .route("/api/echo", get(echo))
        .route("/api/status/buildinfo", get(buildinfo))
        .merge(trace_routes)
        .merge(search_routes);
    let root = Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(grpc);
    let routes = match normalize_api_prefix(api_prefix) {
        Some(prefix) => root.nest(&prefix, api),
        None => root.merge(api),
    };
    // A panic in a handler costs that request a 500, never the process or its connection.
    routes.layer(CatchPanicLayer::custom(panic_response))
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = crate::exec::runner::panic_text(panic.as_ref());
    tracing::error!(%message, "request handler panicked");
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error: {message}"),
    )
        .into_response()
}

/// `server.http_api_prefix` as a route prefix: a leading `/`, no trailing one; `None` when
/// it is empty or `/`.
pub fn normalize_api_prefix(prefix: &str) -> Option<String> {
    let trimmed = prefix.trim_matches('/');
    (!trimmed.is_empty()).then(|| format!("/{trimmed}"))
}

async fn ready(State(state): State<ApiState>) -> Response {
    match state.readiness.not_ready_reason() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// Every registered Prometheus metric in the text exposition format.
async fn metrics() -> Response {
    let encoder = prometheus::TextEncoder::new();
    match encoder.encode_to_string(&prometheus::gather()) {
        Ok(text) => (
            [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn echo() -> &'static str {
    "echo"
}

/// The shape Tempo answers with. Grafana reads only `version` and gates features on it being
/// a semver at or above Tempo's, so the version is the Tempo API level we implement, with our
/// own version as build metadata.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

/// The Tempo HTTP API version this server speaks.
pub const TEMPO_API_VERSION: &str = "3.1.0";

impl BuildInfo {
    pub fn current() -> Self {
        Self {
            version: format!(
                "{TEMPO_API_VERSION}+tracefusion.{}",
                env!("CARGO_PKG_VERSION")
            ),
            revision: option_env!("TRACEFUSION_REVISION")
                .unwrap_or("unknown")
                .into(),
            branch: option_env!("TRACEFUSION_BRANCH")
                .unwrap_or("unknown")
                .into(),
            build_user: option_env!("TRACEFUSION_BUILD_USER")
                .unwrap_or("unknown")
                .into(),
            build_date: option_env!("TRACEFUSION_BUILD_DATE")
                .unwrap_or("unknown")
                .into(),
            // Tempo reports its Go toolchain here; we report the language we are built with.
            go_version: "rust".into(),
        }
    }
}

async fn buildinfo() -> Json<BuildInfo> {
    Json(BuildInfo::current())
}
