//! Sessions over the block store: the store registered under [`BLOCK_STORE_URL`] and the
//! tenant's span table as `spans`.
//!
//! A session's [`RuntimeEnv`] holds the Parquet metadata cache (footers and page indexes).
//! Blocks never change once written, so a runtime shared by the sessions of a process
//! ([`QueryRuntime`]) saves every query after the first from reading them again. Each session
//! gets a memory pool of its own, a share of the process's ([`MemoryLimits`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::catalog::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;

use super::filter_truth::FilterTruth;
use super::structural::StructuralJoinPlanner;
use super::top_k::TraceTopKPlanner;
use super::yield_points::YieldInSortInputs;

use super::table::{BLOCK_STORE_URL, SPANS_TABLE};

/// Memory the operators of queries may hold (sorts, aggregates, joins, repartitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// All queries of the process together (`querier.memory_limit`).
    pub total: usize,
    /// One query (`querier.query_memory_limit`).
    pub per_query: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            total: 4 << 30,
            per_query: 1 << 30,
        }
    }
}

/// The runtime the sessions of one process share: the block store, the metadata cache and
/// the memory pool.
#[derive(Clone, Debug)]
pub struct QueryRuntime {
    runtime: Arc<RuntimeEnv>,
    memory: MemoryLimits,
}

impl QueryRuntime {
    /// A runtime reading blocks from `store`, with DataFusion's default metadata cache size.
    pub fn new(store: Arc<dyn ObjectStore>, memory: MemoryLimits) -> Result<Self> {
        let runtime = RuntimeEnv {
            memory_pool: Arc::new(GreedyMemoryPool::new(memory.total)),
            ..RuntimeEnv::default()
        };
        runtime.register_object_store(ObjectStoreUrl::parse(BLOCK_STORE_URL)?.as_ref(), store);
        Ok(Self {
            runtime: Arc::new(runtime),
            memory,
        })
    }

    /// A session whose table `spans` is `spans`, with a memory pool of its own.
    pub fn session(&self, spans: Arc<dyn TableProvider>) -> Result<SessionContext> {
        let shared = &self.runtime;
        let runtime = RuntimeEnv {
            memory_pool: Arc::new(QueryMemoryPool {
                process: shared.memory_pool.clone(),
                limits: self.memory,
                used: AtomicUsize::new(0),
            }),
            disk_manager: shared.disk_manager.clone(),
            cache_manager: shared.cache_manager.clone(),
            object_store_registry: shared.object_store_registry.clone(),
        };
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_information_schema(true))
            .with_runtime_env(Arc::new(runtime))
            .with_default_features()
            .with_analyzer_rule(Arc::new(FilterTruth))
            .with_physical_optimizer_rule(Arc::new(YieldInSortInputs))
            .with_query_planner(Arc::new(TraceQlPlanner))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_table(SPANS_TABLE, spans)?;
        Ok(ctx)
    }
}

/// DataFusion's physical planner, which also plans tracefusion's own logical nodes.
#[derive(Debug)]
struct TraceQlPlanner;

#[async_trait::async_trait]
impl QueryPlanner for TraceQlPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(StructuralJoinPlanner),
            Arc::new(TraceTopKPlanner),
        ])
        .create_physical_plan(logical_plan, session)
        .await
    }
}

/// A query's pool: at most `per_query` bytes, each also taken from the process's pool.
#[derive(Debug)]
struct QueryMemoryPool {
    process: Arc<dyn MemoryPool>,
    limits: MemoryLimits,
    used: AtomicUsize,
}

/// The process's query memory is taken by other queries: the same query may pass later.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server's query memory ({0} bytes, querier.memory_limit) is held by other queries; retry later"
)]
pub struct MemoryBusy(pub usize);

impl fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query pool of {} bytes", self.limits.per_query)
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.process.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.process.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.process.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.process.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let per_query = self.limits.per_query;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|&n| n <= per_query)
            })
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "the query needs more than {per_query} bytes of memory \
                     (querier.query_memory_limit; it holds {used} and asked for {additional} more): \
                     narrow the time range or the filters"
                ))
            })?;
        if self.process.try_grow(reservation, additional).is_err() {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::External(Box::new(MemoryBusy(
                self.limits.total,
            ))));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limits.per_query)
    }
}
