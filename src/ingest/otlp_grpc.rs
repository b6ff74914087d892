//! OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, gzip
//! accepted. Errors map to the status codes the OTLP specification gives: `INVALID_ARGUMENT`
//! (not retryable), `RESOURCE_EXHAUSTED` and `UNAVAILABLE` (retryable).

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
