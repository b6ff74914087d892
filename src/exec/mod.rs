//! Execution: the `SessionContext`, table providers over blocks and live data, custom
//! `ExecutionPlan`s, spanset and trace assembly, and the query frontend (jobs, limits, caches).

pub mod search;
pub mod session;
pub mod sources;
pub mod table;
pub mod values;
