//! The blocklist: which blocks each tenant has, polled from the store so that any number of
//! readers can share one bucket. Metas are read once per block and kept; a block appears when
//! its `meta.json` exists and disappears when its folder is gone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use uuid::Uuid;

use super::block::{BlockError, BlockMeta, read_meta, tenant_blocks_prefix};

/// A tenant's blocks, newest (by end time) first.
pub type BlockSet = Arc<Vec<Arc<BlockMeta>>>;

/// What one poll changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub tenants: usize,
    pub blocks: usize,
    pub added: usize,
    pub removed: usize,
}

pub struct Blocklist {
    store: Arc<dyn ObjectStore>,
    tenants: RwLock<HashMap<String, BlockSet>>,
}

/// The last segment of a listed path, as written before the store's key encoding (which
/// turns `*`, a valid tenant character, into `%2A`; tenant ids never hold `%`).
fn last_segment(path: &Path) -> Option<String> {
    let part = path.parts().next_back()?;
    let decoded = percent_encoding::percent_decode_str(part.as_ref()).decode_utf8();
    Some(decoded.map_or_else(|_| part.as_ref().to_string(), |s| s.into_owned()))
}

fn sorted(mut blocks: Vec<Arc<BlockMeta>>) -> BlockSet {
    blocks.sort_by(|a, b| {
        (b.end_time, b.start_time, b.block_id).cmp(&(a.end_time, a.start_time, a.block_id))
    });
    Arc::new(blocks)
}

impl Blocklist {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            tenants: RwLock::new(HashMap::new()),
        }
    }

    /// The current blocks of `tenant`, newest first.
    pub fn blocks(&self, tenant: &str) -> BlockSet {
        self.tenants
            .read()
            .expect("blocklist lock")
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }

    pub fn tenants(&self) -> Vec<String> {
        let mut tenants: Vec<String> = self
            .tenants
            .read()
            .expect("blocklist lock")
            .keys()
            .cloned()
            .collect();
        tenants.sort();
        tenants
    }

    /// Makes a block this process just wrote visible before the next poll.
    pub fn insert(&self, meta: BlockMeta) {
        let mut tenants = self.tenants.write().expect("blocklist lock");
        let current = tenants.get(&meta.tenant_id).cloned().unwrap_or_default();
        if current.iter().any(|b| b.block_id == meta.block_id) {
            return;
        }
        let mut blocks: Vec<Arc<BlockMeta>> = current.iter().cloned().collect();
        let tenant = meta.tenant_id.clone();
        blocks.push(Arc::new(meta));
        tenants.insert(tenant, sorted(blocks));
    }

    /// Lists the store and brings the blocklist up to date.
    pub async fn poll(&self) -> Result<PollReport, BlockError> {
        let top = self.store.list_with_delimiter(None).await?;
        let tenant_names: Vec<String> = top
            .common_prefixes
            .iter()
            .filter_map(last_segment)
            .collect();
        let mut report = PollReport {
            tenants: tenant_names.len(),
            ..PollReport::default()
        };
        let mut next: HashMap<String, BlockSet> = HashMap::new();
        for tenant in tenant_names {
            let listed = self
                .store
                .list_with_delimiter(Some(&tenant_blocks_prefix(&tenant)))
                .await?;
            let ids: HashSet<Uuid> = listed
                .common_prefixes
                .iter()
                .filter_map(|p| last_segment(p)?.parse().ok())
                .collect();
            let known = self.blocks(&tenant);
            let mut blocks: Vec<Arc<BlockMeta>> = known
                .iter()
                .filter(|b| ids.contains(&b.block_id))
                .cloned()
                .collect();
            report.removed += known.len() - blocks.len();
            let known_ids: HashSet<Uuid> = known.iter().map(|b| b.block_id).collect();
            let new_ids: Vec<Uuid> = ids.difference(&known_ids).copied().collect();
            let store = self.store.as_ref();
            let tenant_ref = tenant.as_str();
            let metas: Vec<Option<BlockMeta>> = futures::stream::iter(new_ids)
                .map(|id| async move {
                    match read_meta(store, tenant_ref, id).await {
                        Ok(meta) => Ok(Some(meta)),
                        // Still being written (or being deleted): not a block yet.
                        Err(BlockError::Store(object_store::Error::NotFound { .. })) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .buffer_unordered(16)
                .try_collect()
                .await?;
            for meta in metas.into_iter().flatten() {
                report.added += 1;
                blocks.push(Arc::new(meta));
            }
            report.blocks += blocks.len();
            if !blocks.is_empty() {
                next.insert(tenant, sorted(blocks));
            }
        }
        *self.tenants.write().expect("blocklist lock") = next;
        Ok(report)
    }

    /// Polls every `interval` until the returned task is aborted. A failed poll keeps the
    /// previous blocklist and is logged.
    pub fn spawn_poller(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match self.poll().await {
                    Ok(report) => tracing::debug!(?report, "blocklist polled"),
                    Err(error) => tracing::warn!(%error, "blocklist poll failed"),
                }
            }
        })
    }
}
