//! The span table and its blocks: Arrow schema, OTLP conversion, Parquet block writer and
//! reader, block metas, tag catalogs, blocklist and trace by id, all through `object_store`.
//! Knows nothing of TraceQL.

pub mod backend;
pub mod block;
pub mod blocklist;
pub mod catalog;
pub mod combine;
pub mod file_reader;
pub mod from_arrow;
pub mod ids;
pub mod inspect;
pub mod live;
pub mod lookup;
pub mod metrics;
pub mod schema;
pub mod to_arrow;

pub use backend::{MeteredStore, StoreCounters, open_store};
pub use block::{BlockMeta, BlockOptions, BlockWriter, write_block};
pub use blocklist::Blocklist;
pub use catalog::TagCatalog;
pub use ids::TraceId;
pub use live::{LiveData, LiveSpans};
pub use lookup::{FoundTrace, TraceReader};
pub use to_arrow::split_by_trace;
