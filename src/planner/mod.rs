//! Lowering: TraceQL AST → DataFusion `LogicalPlan` over the span table. Knows the span schema
//! and DataFusion, not HTTP or ingest.

pub mod field;
pub mod spanset;
pub mod structural;
pub mod values;

pub use spanset::{OutputValue, Planner, SEARCH_COLUMNS, SPANSET_KEY, SearchPlan, ValueColumns};
