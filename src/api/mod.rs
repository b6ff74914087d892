//! Wire surfaces: the Tempo HTTP API (axum) now; the gRPC streaming querier and Arrow Flight
//! later. This stage only translates wire formats to and from library calls; it owns no
//! query, storage or ingest logic.

pub mod http;
pub mod otlp_json;
pub mod search;
pub mod traces;
