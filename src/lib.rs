//! tracefusion: a Grafana-Tempo-compatible tracing backend whose query engine lowers TraceQL
//! to Apache DataFusion plans over Parquet span tables.
//!
//! Data flows one way on each path:
//! - write: `ingest` (receivers → distributor → ingester) → `storage`
//! - read: `api` → `exec` (sources, search passes) → `planner` → `exec` (DataFusion over `storage`) → `api`
//!
//! `app` wires the components into one process; `cli` is the command line over all of it.

pub mod any_value_json;
pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod crash_point;
pub mod exec;
pub mod float_text;
pub mod go_duration;
pub mod ingest;
pub mod planner;
pub mod protowire;
pub mod storage;
pub mod synth;
pub mod telemetry;
pub mod traceql;
