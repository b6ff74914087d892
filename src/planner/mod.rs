//! Lowering: TraceQL AST → DataFusion `LogicalPlan` over the span table. Knows the span schema
//! and DataFusion, not HTTP or ingest.

/// A query the planner cannot lower: a construct it does not support, or a rule only the
/// lowering knows. The read path answers these as the query's fault; any other planning
/// error is ours.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// `Err` of a [`Rejected`] query, as a DataFusion error.
macro_rules! reject {
    ($($arg:tt)*) => {
        Err(datafusion::common::DataFusionError::External(Box::new(
            $crate::planner::Rejected(format!($($arg)*)),
        )))
    };
}

pub mod field;
pub mod resolve;
pub mod spanset;
pub mod structural;
pub mod values;

pub use resolve::{StoredSpans, Unknown};
pub use spanset::{OutputValue, Planner, SEARCH_COLUMNS, SPANSET_KEY, SearchPlan, ValueColumns};
