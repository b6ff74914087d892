//! OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, gzip
//! accepted. Errors map to the status codes the OTLP specification gives: `INVALID_ARGUMENT`
//! (not retryable), `RESOURCE_EXHAUSTED` and `UNAVAILABLE` (retryable). That includes bodies
//! tonic refuses before the service sees them ([`client_error_codes`]).
//!
//! The service is routed by hand rather than through the generated `TraceServiceServer`, for
//! its codec: a body is scanned for its nesting (see [`nesting`]) before prost decodes it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::distributor::{Distributor, DistributorError};
use super::ingester::PushError;
use super::nesting::{self, MAX_VALUE_DEPTH};
use super::otlp_http::MAX_BODY_BYTES;
use crate::protowire::CheckedCodec;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC service, ready for a tonic server.
pub fn service(distributor: Arc<Distributor>) -> TraceService {
    TraceService {
        receiver: Arc::new(OtlpGrpc { distributor }),
    }
}

#[derive(Clone)]
pub struct TraceService {
    receiver: Arc<OtlpGrpc>,
}

impl tonic::server::NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> ResponseFuture {
        if request.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!("no method {}", request.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let receiver = self.receiver.clone();
        Box::pin(async move {
            let codec = CheckedCodec::new(nesting::Otlp::Request, MAX_VALUE_DEPTH, |refused| {
                nesting::Refused::from(refused).to_string()
            });
            let mut grpc = tonic::server::Grpc::new(codec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_BODY_BYTES);
            Ok(grpc.unary(Export(receiver), request).await)
        })
    }
}

/// The `Export` method, as tonic's unary server calls it.
struct Export(Arc<OtlpGrpc>);

impl tonic::server::UnaryService<ExportTraceServiceRequest> for Export {
    type Response = ExportTraceServiceResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<ExportTraceServiceResponse>, Status>> + Send>>;

    fn call(&mut self, request: Request<ExportTraceServiceRequest>) -> Self::Future {
        let receiver = self.0.clone();
        Box::pin(async move { receiver.export(request).await })
    }
}

pub struct OtlpGrpc {
    distributor: Arc<Distributor>,
}

impl OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let org_id = request
            .metadata()
            .get("x-scope-orgid")
            .map(|v| v.as_bytes().to_vec());
        let tenant = self
            .distributor
            .tenant(org_id.as_deref())
            .map_err(|e| match e {
                DistributorError::MissingTenant => Status::unauthenticated(e.to_string()),
                _ => Status::invalid_argument(e.to_string()),
            })?;
        match self.distributor.push(&tenant, request.into_inner()).await {
            Ok(outcome) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (outcome.rejected_spans > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: outcome.rejected_spans as i64,
                    error_message: outcome.reasons.join("; "),
                }),
            })),
            Err(e @ DistributorError::RateLimited { .. }) => {
                Err(Status::resource_exhausted(e.to_string()))
            }
            Err(DistributorError::Ingester(e @ PushError::Overloaded { .. })) => {
                Err(Status::unavailable(e.to_string()))
            }
            Err(DistributorError::Ingester(e)) => {
                tracing::error!(error = %e, "push failed");
                Err(Status::unavailable(e.to_string()))
            }
            Err(e) => Err(Status::invalid_argument(e.to_string())),
        }
    }
}

/// tonic answers `INTERNAL` for a body that is not gzip, `OUT_OF_RANGE` for
/// one over the size limit, and `RESOURCE_EXHAUSTED` for one that decompresses past it. OTLP
/// exporters retry both forever, though sending the same
/// bytes again cannot help: they are `INVALID_ARGUMENT`. Only answers made before the service
/// ran carry these (in the headers: a trailers-only response); the service's own use neither.
pub fn client_error_codes<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let message = headers
        .get("grpc-message")
        .map(|m| {
            percent_encoding::percent_decode(m.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let refused_body = match headers.get("grpc-status").map(|c| c.as_bytes()) {
        Some(b"13") => message.contains("decompress"),
        Some(b"11") => message.contains("message length too large"),
        // A gzip bomb: the body grows past the limit as it is decompressed.
        Some(b"8") => message.starts_with("Error decompressing"),
        _ => false,
    };
    if refused_body {
        let code = (tonic::Code::InvalidArgument as i32).to_string();
        headers.insert(
            "grpc-status",
            http::HeaderValue::from_str(&code).expect("digits"),
        );
    }
    response
}
