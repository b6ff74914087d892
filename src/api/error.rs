//! [`ReadError`] as HTTP and gRPC answers: the one mapping from error kinds to statuses.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::exec::error::ReadError;

/// Seconds a client is asked to wait before retrying a request refused for load.
const RETRY_AFTER_SECONDS: &str = "1";

impl ReadError {
    fn http_status(&self) -> StatusCode {
        match self {
            ReadError::Invalid(_) | ReadError::Query(_) => StatusCode::BAD_REQUEST,
            ReadError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ReadError::NotFound(_) => StatusCode::NOT_FOUND,
            ReadError::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            ReadError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ReadError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ReadError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn log_if_ours(&self) {
        if let ReadError::Internal(cause) = self {
            tracing::error!(error = %cause, "read request failed");
        }
    }
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        self.log_if_ours();
        let status = self.http_status();
        let message = self.to_string();
        match self {
            ReadError::Limited(_) | ReadError::Unavailable(_) => (
                status,
                [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
                message,
            )
                .into_response(),
            _ => (status, message).into_response(),
        }
    }
}

impl From<ReadError> for tonic::Status {
    fn from(e: ReadError) -> Self {
        e.log_if_ours();
        let message = e.to_string();
        match e {
            ReadError::Invalid(_) | ReadError::Query(_) => tonic::Status::invalid_argument(message),
            ReadError::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            ReadError::NotFound(_) => tonic::Status::not_found(message),
            ReadError::Limited(_) => tonic::Status::resource_exhausted(message),
            ReadError::Unavailable(_) => tonic::Status::unavailable(message),
            ReadError::Timeout(_) => tonic::Status::deadline_exceeded(message),
            ReadError::Internal(_) => tonic::Status::internal(message),
        }
    }
}
