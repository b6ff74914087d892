//! Wire surfaces: the Tempo HTTP API (axum) and, on the same port, the gRPC streaming querier.
//! This stage translates wire formats to and from library calls.

pub mod error;
pub mod grpc;
pub mod http;
pub mod otlp_json;
pub mod search;
pub mod tags;
pub mod tempopb;
pub mod traces;
