//! Lowering: TraceQL AST → DataFusion `LogicalPlan` over the span table; TraceQL functions as
//! UDFs/UDAFs; metrics lowering. Knows the span schema and DataFusion, not HTTP or ingest.
