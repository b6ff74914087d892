//! The gRPC streaming querier, `tempopb.StreamingQuerier/Search`, served on the HTTP port as
//! Grafana's Tempo data source calls it when search streaming is on: HTTP/2 without TLS (h2c,
//! prior knowledge) next to the HTTP/1.1 API.
//!
//! A search streams one message after each pass over the blocks that does not end it (no
//! traces, metrics with `completedJobs`/`totalJobs`, for the progress bar), then the result in
//! messages of at most [`MAX_MESSAGE_BYTES`], each with the final metrics. Grafana keeps the
//! first copy of a trace it receives, so a trace is only ever sent in its final form.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use futures::future::BoxFuture;
use prost::Message;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::search::{SearchState, search_metrics_proto, trace_proto};
use super::tempopb::{SearchRequest, SearchResponse};
use super::traces::tenant_of;
use crate::exec::error::ReadError;
use crate::exec::request::{self, SearchQuery, TagSearch, TimeRange};
use crate::exec::search::search_with_progress;
use crate::protowire::{self, CheckedCodec};

/// The full method name Grafana calls.
pub const SEARCH_PATH: &str = "/tempopb.StreamingQuerier/Search";

/// Messages stay under this size (Grafana's client accepts 4 MiB; Tempo sends 1 MiB).
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// `tempopb.StreamingQuerier/Search` as a service to mount at [`SEARCH_PATH`].
#[derive(Clone)]
pub struct StreamingSearch {
    state: SearchState,
}

impl StreamingSearch {
    pub fn new(state: SearchState) -> Self {
        Self { state }
    }
}

impl tonic::codegen::Service<Request<Body>> for StreamingSearch {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let method = SearchMethod {
            state: self.state.clone(),
        };
        Box::pin(async move {
            let codec = CheckedCodec::new(SearchRequestSchema::Request, 0, |_| {
                "body is not a tempopb.SearchRequest: it has group fields".into()
            });
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

/// The messages of a `SearchRequest`, for the scan that refuses group fields before prost
/// (whose recursion limit is lifted) would skip them by recursion.
#[derive(Clone, Copy)]
enum SearchRequestSchema {
    Request,
    /// A `tags` map entry or the `rf1_after` timestamp: scalars only.
    Flat,
}

impl protowire::Schema for SearchRequestSchema {
    fn field(self, number: u64) -> Option<Self> {
        matches!((self, number), (Self::Request, 1 | 10)).then_some(Self::Flat)
    }

    fn counts(self) -> bool {
        false
    }
}

struct SearchMethod {
    state: SearchState,
}

type SearchStream = ReceiverStream<Result<SearchResponse, Status>>;

impl tonic::server::ServerStreamingService<SearchRequest> for SearchMethod {
    type Response = SearchResponse;
    type ResponseStream = SearchStream;
    type Future = BoxFuture<'static, Result<tonic::Response<SearchStream>, Status>>;

    fn call(&mut self, request: tonic::Request<SearchRequest>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { start_search(state, request) })
    }
}

/// Checks the request and starts the search; its messages follow on the returned stream.
fn start_search(
    state: SearchState,
    request: tonic::Request<SearchRequest>,
) -> Result<tonic::Response<SearchStream>, Status> {
    let headers = request.metadata().clone().into_headers();
    let tenant = tenant_of(&headers, state.multitenancy)?;
    let (query, options) = decode_search(request.get_ref())?.compile()?;
    let permit = state.runner.admit(&tenant).map_err(ReadError::from)?;
    let source = state.sources.session(&tenant).map_err(ReadError::from)?;
    let (messages, stream) = tokio::sync::mpsc::channel(8);
    let progress = messages.clone();
    let work = async move {
        search_with_progress(&source, &query, &options, |stats| {
            let _ = progress.try_send(Ok(SearchResponse {
                traces: Vec::new(),
                metrics: Some(search_metrics_proto(stats, 0)),
            }));
        })
        .await
    };
    tokio::spawn(async move {
        // The query stops when the client goes away: the stream's receiver is dropped.
        let result = tokio::select! {
            result = state.runner.run(permit, work) => result,
            () = messages.closed() => {
                tracing::debug!("streaming search: the client went away; query stopped");
                return;
            }
        };
        let sent = match result {
            Ok(result) => {
                let metrics = search_metrics_proto(&result.stats, result.traces.len());
                let mut outcome = Ok(());
                for traces in chunks(result.traces.iter().map(trace_proto).collect()) {
                    outcome = messages
                        .send(Ok(SearchResponse {
                            traces,
                            metrics: Some(metrics.clone()),
                        }))
                        .await;
                    if outcome.is_err() {
                        break;
                    }
                }
                outcome
            }
            Err(e) => messages.send(Err(ReadError::from(e).into())).await,
        };
        if sent.is_err() {
            tracing::debug!("streaming search: the client went away");
        }
    });
    Ok(tonic::Response::new(ReceiverStream::new(stream)))
}

/// The request as the HTTP API decodes its parameters: zero means "not given" in proto3.
fn decode_search(message: &SearchRequest) -> Result<request::SearchRequest, ReadError> {
    let given = |n: u32| (n > 0).then_some(n);
    let query = if message.query.trim().is_empty() {
        let mut tags: Vec<(String, String)> = message.tags.clone().into_iter().collect();
        tags.sort();
        let millis = |ms: u32| given(ms).map(|ms| Duration::from_millis(ms.into()));
        SearchQuery::Tags(TagSearch {
            tags,
            min_duration: millis(message.min_duration_ms),
            max_duration: millis(message.max_duration_ms),
        })
    } else {
        SearchQuery::TraceQl(message.query.clone())
    };
    Ok(request::SearchRequest {
        query,
        limit: given(message.limit).map(|n| n as usize),
        spss: given(message.spans_per_span_set).map(|n| n as usize),
        range: TimeRange::new(
            given(message.start).map(i64::from),
            given(message.end).map(i64::from),
        )?,
    })
}

/// Traces in groups that each encode to at most [`MAX_MESSAGE_BYTES`] (a larger trace alone);
/// always at least one group, so the final metrics are always sent.
fn chunks(
    traces: Vec<super::tempopb::TraceSearchMetadata>,
) -> Vec<Vec<super::tempopb::TraceSearchMetadata>> {
    let mut groups = vec![Vec::new()];
    let mut bytes = 0;
    for trace in traces {
        let size = trace.encoded_len();
        let last = groups.last_mut().expect("one group");
        if !last.is_empty() && bytes + size > MAX_MESSAGE_BYTES {
            groups.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        groups.last_mut().expect("one group").push(trace);
    }
    groups
}
