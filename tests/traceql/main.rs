//! The one integration test binary of tracefusion (one binary, so the dependency tree links
//! once). Each module is the specification of one capability.

mod bench;
mod config;
mod conformance;
mod corpus;
mod grafana;
mod hostile;
mod ingest;
mod layout;
mod parse;
mod plans;
mod reference;
mod search;
mod serve;
mod sql;
mod storage;
mod support;
