//! Sessions over the block store: the store registered under [`BLOCK_STORE_URL`] and the
//! tenant's span table as `spans`.
//!
//! A session's [`RuntimeEnv`] holds the Parquet metadata cache (footers and page indexes).
//! Blocks never change once written, so a runtime shared by the sessions of a process
//! ([`QueryRuntime`]) saves every query after the first from reading them again.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;

use super::table::{BLOCK_STORE_URL, BlocksTable, LiveTable, SpansTable};
use crate::config::DedicatedColumn;
use crate::ingest::ingester::Ingester;
use crate::storage::{Blocklist, TraceReader};

/// The runtime the sessions of one process share: the block store and the metadata cache.
#[derive(Clone, Debug)]
pub struct QueryRuntime {
    runtime: Arc<RuntimeEnv>,
}

impl QueryRuntime {
    /// A runtime reading blocks from `store`, with DataFusion's default metadata cache size.
    pub fn new(store: Arc<dyn ObjectStore>) -> Result<Self> {
        let runtime = Arc::new(RuntimeEnv::default());
        runtime.register_object_store(ObjectStoreUrl::parse(BLOCK_STORE_URL)?.as_ref(), store);
        Ok(Self { runtime })
    }

    /// A session whose table `spans` is `spans`.
    pub fn session(&self, spans: Arc<dyn TableProvider>) -> Result<SessionContext> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.clone());
        ctx.register_table("spans", spans)?;
        Ok(ctx)
    }
}

/// A session (with its own runtime) whose `spans` table is `tenant`'s blocks.
pub fn span_session(
    store: Arc<dyn ObjectStore>,
    blocklist: Arc<Blocklist>,
    tenant: &str,
    dedicated: &[DedicatedColumn],
) -> Result<SessionContext> {
    let reader = Arc::new(TraceReader::new(store.clone(), blocklist));
    QueryRuntime::new(store)?.session(Arc::new(BlocksTable::new(reader, tenant, dedicated)))
}

/// A session (with its own runtime) whose `spans` table is `tenant`'s blocks together with
/// what `ingester` holds in memory: everything acknowledged, whether or not it has reached a
/// block yet.
pub fn serving_session(
    store: Arc<dyn ObjectStore>,
    reader: Arc<TraceReader>,
    ingester: Arc<Ingester>,
    tenant: &str,
    dedicated: &[DedicatedColumn],
) -> Result<SessionContext> {
    let table = SpansTable::new(
        BlocksTable::new(reader, tenant, dedicated),
        LiveTable::new(ingester, tenant, dedicated),
    );
    QueryRuntime::new(store)?.session(Arc::new(table))
}
