//! What a block is made of: its Parquet schema, row groups and bytes per column and column
//! group. Used by `tracefusion blocks inspect` and the benchmarks.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::ParquetMetaData;
use serde::Serialize;

use super::block::{BlockError, BlockMeta};
use super::file_reader::BlockFileReader;
use super::schema::column_group;

#[derive(Debug, Clone, Serialize)]
pub struct ColumnSize {
    /// Leaf column path, e.g. `span_attr_str.entries.values`.
    pub column: String,
    pub group: &'static str,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowGroupReport {
    pub rows: u64,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    pub meta: BlockMeta,
    /// Arrow schema: column name and type.
    pub columns: Vec<(String, String)>,
    pub row_groups: Vec<RowGroupReport>,
    pub column_sizes: Vec<ColumnSize>,
    /// Compressed bytes per column group, largest first.
    pub group_sizes: Vec<(&'static str, u64)>,
}

/// Bytes per leaf column over all row groups, in schema order.
pub fn column_sizes(metadata: &ParquetMetaData) -> Vec<ColumnSize> {
    let mut sizes: Vec<ColumnSize> = Vec::new();
    for rg in metadata.row_groups() {
        for (i, chunk) in rg.columns().iter().enumerate() {
            if sizes.len() <= i {
                let column = chunk.column_path().string();
                sizes.push(ColumnSize {
                    group: column_group(&column),
                    column,
                    compressed_bytes: 0,
                    uncompressed_bytes: 0,
                });
            }
            sizes[i].compressed_bytes += chunk.compressed_size() as u64;
            sizes[i].uncompressed_bytes += chunk.uncompressed_size() as u64;
        }
    }
    sizes
}

/// Compressed bytes per column group, largest first.
pub fn group_sizes(columns: &[ColumnSize]) -> Vec<(&'static str, u64)> {
    let mut groups: BTreeMap<&'static str, u64> = BTreeMap::new();
    for c in columns {
        *groups.entry(c.group).or_default() += c.compressed_bytes;
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    groups
}

/// Reads a block's footer and describes it.
pub async fn inspect_block(
    store: Arc<dyn ObjectStore>,
    meta: &BlockMeta,
) -> Result<BlockReport, BlockError> {
    let mut reader = BlockFileReader::new(store, meta);
    let footer = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await?;
    let metadata = footer.metadata();
    let columns = footer
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let row_groups = metadata
        .row_groups()
        .iter()
        .map(|rg| RowGroupReport {
            rows: rg.num_rows() as u64,
            compressed_bytes: rg.compressed_size() as u64,
            uncompressed_bytes: rg.total_byte_size() as u64,
        })
        .collect();
    let column_sizes = column_sizes(metadata);
    let group_sizes = group_sizes(&column_sizes);
    Ok(BlockReport {
        meta: meta.clone(),
        columns,
        row_groups,
        column_sizes,
        group_sizes,
    })
}
