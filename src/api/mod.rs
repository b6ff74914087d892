//! Wire surfaces: the Tempo HTTP API (axum) and, on the same port, the gRPC streaming querier;
//! Arrow Flight later. This stage only translates wire formats to and from library calls; it owns no
//! query, storage or ingest logic.

pub mod grpc;
pub mod http;
pub mod otlp_json;
pub mod search;
pub mod tempopb;
pub mod traces;
