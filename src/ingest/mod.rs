//! Write path: receivers (OTLP over gRPC and HTTP) → distributor (validation, tenants, limits)
//! → ingester (WAL, live traces, head block, block cutting). Hands finished blocks to `storage`.

mod chunks;
pub mod distributor;
mod held;
pub mod ingester;
pub mod metrics;
pub mod nesting;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod wal;
