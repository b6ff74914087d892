//! The span table and its blocks: Arrow schema, Parquet block writer and reader, block metas,
//! blocklist, compaction and retention, all through `object_store`. Knows nothing of TraceQL.
