//! Sessions over the block store: the store registered under [`BLOCK_STORE_URL`] and the
//! tenant's span table as `spans`.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;

use super::table::{BLOCK_STORE_URL, BlocksTable, LiveTable, SpansTable};
use crate::config::DedicatedColumn;
use crate::ingest::ingester::Ingester;
use crate::storage::{Blocklist, TraceReader};

/// A session that reads the block store, with `spans` as its table.
fn session_with(
    store: Arc<dyn ObjectStore>,
    spans: Arc<dyn TableProvider>,
) -> Result<SessionContext> {
    let config = SessionConfig::new().with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    let url = ObjectStoreUrl::parse(BLOCK_STORE_URL)?;
    ctx.register_object_store(url.as_ref(), store);
    ctx.register_table("spans", spans)?;
    Ok(ctx)
}

/// A session whose `spans` table is `tenant`'s blocks.
pub fn span_session(
    store: Arc<dyn ObjectStore>,
    blocklist: Arc<Blocklist>,
    tenant: &str,
    dedicated: &[DedicatedColumn],
) -> Result<SessionContext> {
    let reader = Arc::new(TraceReader::new(store.clone(), blocklist));
    session_with(store, Arc::new(BlocksTable::new(reader, tenant, dedicated)))
}

/// A session whose `spans` table is `tenant`'s blocks together with what `ingester` holds in
/// memory: everything acknowledged, whether or not it has reached a block yet.
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
    session_with(store, Arc::new(table))
}
