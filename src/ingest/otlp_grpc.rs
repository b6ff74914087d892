//! OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, gzip
//! accepted. Errors map to the status codes the OTLP specification gives: `INVALID_ARGUMENT`
//! (not retryable), `RESOURCE_EXHAUSTED` and `UNAVAILABLE` (retryable). That includes bodies
//! tonic refuses before the service sees them ([`client_error_codes`]).

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::distributor::{Distributor, DistributorError};
use super::ingester::PushError;
use super::otlp_http::MAX_BODY_BYTES;

pub struct OtlpGrpc {
    distributor: Arc<Distributor>,
}

/// The gRPC service, ready for a tonic server.
pub fn service(distributor: Arc<Distributor>) -> TraceServiceServer<OtlpGrpc> {
    TraceServiceServer::new(OtlpGrpc { distributor })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_BODY_BYTES)
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
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

/// tonic answers `INTERNAL` for a body that is not protobuf or not gzip, `OUT_OF_RANGE` for
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
        Some(b"13") => {
            message.starts_with("failed to decode Protobuf message")
                || message.contains("decompress")
        }
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
