//! The read path's one error type: what went wrong, in kinds a user can act on. Every
//! surface maps it to its status the same way (HTTP in `api::error`, gRPC there too).

use datafusion::common::DataFusionError;

use super::runner::QueryError;
use super::session::MemoryBusy;
use crate::planner::Rejected;
use crate::traceql::TraceqlError;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The request is wrong: sending it again cannot help (400).
    #[error("{0}")]
    Invalid(String),
    /// The TraceQL query is wrong; the message carries its line and column (400).
    #[error("invalid TraceQL query: {0}")]
    Query(#[from] TraceqlError),
    /// No tenant was named where one is needed (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Nothing has that id (404).
    #[error("{0}")]
    NotFound(String),
    /// The tenant is at its limit; retry later (429).
    #[error("{0}")]
    Limited(String),
    /// The server is short of a shared resource; retry later (503).
    #[error("{0}")]
    Unavailable(String),
    /// The query ran out of time (504).
    #[error("{0}")]
    Timeout(String),
    /// Our fault; the cause is logged (500).
    #[error("{0}")]
    Internal(String),
}

impl ReadError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ReadError::Invalid(message.into())
    }
}

impl From<QueryError> for ReadError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Busy { .. } => ReadError::Limited(e.to_string()),
            QueryError::Timeout(_) => ReadError::Timeout(e.to_string()),
            QueryError::Failed(e) => e.into(),
            QueryError::Panicked(_) => ReadError::Internal(e.to_string()),
        }
    }
}

/// A query the planner rejected, or one that needs more memory than a query may have, is the
/// query's fault; memory held by other queries is load; any other failure is ours, a plan
/// DataFusion refuses included.
impl From<DataFusionError> for ReadError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::External(cause) => {
                if let Some(rejected) = cause.downcast_ref::<Rejected>() {
                    return ReadError::Invalid(format!("invalid TraceQL query: {rejected}"));
                }
                if let Some(busy) = cause.downcast_ref::<MemoryBusy>() {
                    return ReadError::Unavailable(busy.to_string());
                }
            }
            DataFusionError::ResourcesExhausted(m) => return ReadError::Invalid(m.clone()),
            _ => {}
        }
        ReadError::Internal(format!("query failed: {e}"))
    }
}
