//! Execution: the `SessionContext`, table providers over blocks and live data, search in
//! newest-first passes with spanset and trace assembly, and tag values over span data.

pub mod error;
pub mod filter_truth;
pub mod request;
pub mod runner;
pub mod search;
pub mod session;
pub mod sources;
pub mod structural;
pub mod table;
pub mod tags;
pub mod top_k;
pub mod values;
pub mod yield_points;
