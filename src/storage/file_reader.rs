//! Parquet reads of a block's data file through `object_store`, with the file and footer sizes
//! known from `meta.json`: the footer and page index arrive in one ranged GET.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::block::{BlockMeta, DATA_FILE};

pub struct BlockFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    footer_size: u64,
    /// Bytes fetched through this reader.
    fetched: Arc<AtomicU64>,
}

impl BlockFileReader {
    pub fn new(store: Arc<dyn ObjectStore>, meta: &BlockMeta) -> Self {
        Self {
            store,
            path: meta.object(DATA_FILE),
            size: meta.size,
            footer_size: meta.footer_size,
            fetched: Arc::default(),
        }
    }

    /// Counts fetched bytes into `counter` (shared by the readers of one query).
    pub fn with_counter(mut self, counter: Arc<AtomicU64>) -> Self {
        self.fetched = counter;
        self
    }
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for BlockFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        let bytes: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        self.fetched.fetch_add(bytes, Ordering::Relaxed);
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let mut reader = ParquetMetaDataReader::new()
                // The footer and the page indexes before it, in one read.
                .with_prefetch_hint(Some(self.footer_size as usize));
            if let Some(options) = options {
                reader = reader
                    .with_metadata_options(Some(options.metadata_options().clone()))
                    .with_column_index_policy(options.column_index_policy())
                    .with_offset_index_policy(options.offset_index_policy());
            }
            let size = self.size;
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}
