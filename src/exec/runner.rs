//! Where queries run in a serving process, and how much of it they may take.
//!
//! Queries run on a runtime of their own, so ingest, `/ready` and `/metrics` keep answering
//! while queries saturate the CPU; its threads have large stacks, because planning and
//! DataFusion's expression handling recurse as deep as the query's (bounded) operator chains.
//! Each query holds a slot of its tenant's concurrency limit, ends at the timeout, and stops
//! as soon as the request that asked for it is dropped (the client went away).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::common::DataFusionError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Stack of a query thread. Only touched pages cost memory; the depth the bounds of
/// [`crate::traceql::bounds`] allow needs a few MiB in a debug build.
const QUERY_STACK_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// A query still running after this long is stopped (`query_frontend.search.query_timeout`).
    pub timeout: Duration,
    /// Queries one tenant may have running at once; more are refused
    /// (`query_frontend.max_outstanding_per_tenant`).
    pub max_per_tenant: usize,
    /// Threads of the query runtime.
    pub threads: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_per_tenant: 16,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Why a query did not produce its answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "tenant {tenant} already has {limit} queries running \
         (query_frontend.max_outstanding_per_tenant); retry later"
    )]
    Busy { tenant: String, limit: usize },
    #[error(
        "query stopped after {0:?} (query_frontend.search.query_timeout): narrow the time range or the filters"
    )]
    Timeout(Duration),
    #[error("{0}")]
    Failed(#[from] DataFusionError),
    #[error("query failed: {0}")]
    Panicked(String),
}

/// The query runtime with its per-tenant limits.
pub struct QueryRunner {
    runtime: Option<tokio::runtime::Runtime>,
    limits: QueryLimits,
    running: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for QueryRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRunner")
            .field("limits", &self.limits)
            .finish()
    }
}

impl QueryRunner {
    pub fn new(limits: QueryLimits) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(limits.threads.max(1))
            .thread_name("tracefusion-query")
            .thread_stack_size(QUERY_STACK_BYTES)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
            limits,
            running: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// A slot of `tenant`'s concurrency limit, or [`QueryError::Busy`]. Taken before the
    /// request is answered in parts (streaming), so a refusal is still a plain error.
    pub fn admit(&self, tenant: &str) -> Result<QueryPermit, QueryError> {
        let semaphore = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            // A permit holds its semaphore: one held only here has no query running, so the
            // map keeps only tenants with queries running, however many tenants come and go.
            running.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            running
                .entry(tenant.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limits.max_per_tenant)))
                .clone()
        };
        semaphore
            .try_acquire_owned()
            .map(|slot| QueryPermit { _slot: slot })
            .map_err(|_| QueryError::Busy {
                tenant: tenant.to_string(),
                limit: self.limits.max_per_tenant,
            })
    }

    /// Runs `work` on the query runtime under `permit`, within the timeout. Dropping the
    /// returned future stops the work.
    pub async fn run<T: Send + 'static>(
        &self,
        permit: QueryPermit,
        work: impl Future<Output = Result<T, DataFusionError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        let handle = self
            .runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .spawn(async move {
                let result = work.await;
                drop(permit);
                result
            });
        let task = AbortOnDrop(handle);
        match tokio::time::timeout(self.limits.timeout, task).await {
            Err(_) => Err(QueryError::Timeout(self.limits.timeout)),
            Ok(Ok(result)) => result.map_err(QueryError::Failed),
            Ok(Err(join)) => Err(QueryError::Panicked(panic_message(join))),
        }
    }

    /// [`Self::admit`] and [`Self::run`] in one.
    pub async fn admit_and_run<T: Send + 'static>(
        &self,
        tenant: &str,
        work: impl Future<Output = Result<T, DataFusionError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        let permit = self.admit(tenant)?;
        self.run(permit, work).await
    }
}

impl Drop for QueryRunner {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context does not allow.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One running query's slot in its tenant's limit.
pub struct QueryPermit {
    _slot: OwnedSemaphorePermit,
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => panic_text(payload.as_ref()),
        Err(join) => join.to_string(),
    }
}

/// What a panic said, when it said it with a string.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}
