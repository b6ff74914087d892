//! The all-in-one process: starts every component the config asks for, reports readiness,
//! and stops them in order on a shutdown signal.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::api::http::{self, ApiState, Readiness};
use crate::api::search::SearchState;
use crate::api::traces::TraceSources;
use crate::config::{Config, WalSync};
use crate::exec::runner::{QueryLimits, QueryRunner};
use crate::exec::session::MemoryLimits;
use crate::exec::sources::QuerySources;
use crate::ingest::distributor::{Distributor, Limits};
use crate::ingest::ingester::{Ingester, IngesterOptions};
use crate::ingest::wal::SyncPolicy;
use crate::ingest::{otlp_grpc, otlp_http};
use crate::storage::{BlockOptions, Blocklist, TraceReader, open_store};

/// Runs the server until `shutdown` completes, then lets in-flight requests finish for at most
/// `server.graceful_shutdown_timeout` before returning.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let readiness = Arc::new(Readiness::default());
    let http_addr = listen_address(
        &config.server.http_listen_address,
        config.server.http_listen_port,
    );
    let listener = TcpListener::bind(&http_addr).await.with_context(|| {
        format!(
            "cannot listen on {http_addr} (server.http_listen_address / server.http_listen_port)"
        )
    })?;
    let local_addr = listener.local_addr()?;

    crate::ingest::metrics::register();
    // Storage and the blocklist, then the ingester (which replays its WAL).
    let trace_config = &config.storage.trace;
    let store = open_store(trace_config).context("cannot open the block store (storage.trace)")?;
    if trace_config.backend == crate::config::Backend::Local {
        match crate::storage::backend::remove_partial_uploads(&trace_config.local.path) {
            Ok(removed) => {
                for path in removed {
                    tracing::info!(path = %path.display(), "removed a partial upload left by a crash");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot clean partial uploads from the local store")
            }
        }
    }
    let blocklist = Arc::new(Blocklist::new(store.clone()));
    if let Err(error) = blocklist.poll().await {
        tracing::warn!(%error, "cannot list blocks yet; will retry every storage.trace.blocklist_poll");
    }
    let poller = blocklist
        .clone()
        .spawn_poller(trace_config.blocklist_poll.0);
    let ingester_config = &config.ingester;
    let ingester = Ingester::open(
        IngesterOptions {
            trace_idle_period: ingester_config.trace_idle_period.0,
            max_block_duration: ingester_config.max_block_duration.0,
            max_block_bytes: ingester_config.max_block_bytes.0,
            max_memory_bytes: ingester_config.max_block_bytes.0.saturating_mul(2) + (256 << 20),
            max_bytes_per_trace: config.overrides.defaults.global.max_bytes_per_trace.0,
            block: BlockOptions {
                ingestion_slack: Some(trace_config.wal.ingestion_time_range_slack.0),
                ..BlockOptions::from_config(&trace_config.block)
            },
        },
        &trace_config.wal.path,
        match trace_config.wal.sync {
            WalSync::Always => SyncPolicy::Always,
            WalSync::Never => SyncPolicy::Never,
        },
        store.clone(),
        blocklist.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "cannot open the write-ahead log in {}",
            trace_config.wal.path.display()
        )
    })?;
    let cutter = ingester.clone().spawn();
    let ingestion = &config.overrides.defaults.ingestion;
    let distributor = Arc::new(Distributor::new(
        ingester.clone(),
        config.multitenancy_enabled,
        Limits {
            rate_bytes: ingestion.rate_limit_bytes.0,
            burst_bytes: ingestion.burst_size_bytes.0,
        },
    ));

    let otlp_http_server = match config
        .distributor
        .receivers
        .otlp
        .as_ref()
        .and_then(|otlp| otlp.protocols.http.as_ref())
    {
        Some(protocol) => {
            let address = protocol.endpoint.to_string();
            let listener = TcpListener::bind(&address).await.with_context(|| {
                format!("cannot listen on {address} (distributor.receivers.otlp.protocols.http.endpoint)")
            })?;
            tracing::info!(otlp_http = %listener.local_addr()?, "OTLP/HTTP receiver listening");
            Some((listener, otlp_http::router(distributor.clone())))
        }
        None => None,
    };

    let otlp_grpc_listener = match config
        .distributor
        .receivers
        .otlp
        .as_ref()
        .and_then(|otlp| otlp.protocols.grpc.as_ref())
    {
        Some(protocol) => {
            let address = protocol.endpoint.to_string();
            let listener = TcpListener::bind(&address).await.with_context(|| {
                format!("cannot listen on {address} (distributor.receivers.otlp.protocols.grpc.endpoint)")
            })?;
            tracing::info!(otlp_grpc = %listener.local_addr()?, "OTLP/gRPC receiver listening");
            Some(listener)
        }
        None => None,
    };

    let reader = Arc::new(TraceReader::new(store.clone(), blocklist.clone()));
    let router = http::router(
        ApiState {
            readiness: readiness.clone(),
        },
        TraceSources {
            blocks: reader.clone(),
            ingester: Some(ingester.clone()),
            multitenancy: config.multitenancy_enabled,
        },
        SearchState {
            sources: QuerySources::new(
                store.clone(),
                reader,
                Some(ingester.clone()),
                trace_config.block.parquet_dedicated_columns.clone(),
                MemoryLimits {
                    total: config.querier.memory_limit.0 as usize,
                    per_query: config.querier.query_memory_limit.0 as usize,
                },
            )?,
            multitenancy: config.multitenancy_enabled,
            runner: Arc::new(
                QueryRunner::new(QueryLimits {
                    timeout: config.query_frontend.search.query_timeout.0,
                    max_per_tenant: config.query_frontend.max_outstanding_per_tenant.max(1),
                    ..QueryLimits::default()
                })
                .context("cannot start the query runtime")?,
            ),
        },
        &config.server.http_api_prefix,
    );
    let stopping = Arc::new(Notify::new());
    let on_signal = {
        let readiness = readiness.clone();
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            readiness.set_stopping();
            tracing::info!("shutting down: finishing in-flight requests");
            stopping.notify_one();
        }
    };
    let (receivers_stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let on_signal = {
        let receivers_stop = receivers_stop.clone();
        async move {
            on_signal.await;
            let _ = receivers_stop.send(());
        }
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(on_signal);
    let mut receivers = Vec::new();
    if let Some((listener, router)) = otlp_http_server {
        let mut stop = receivers_stop.subscribe();
        receivers.push(tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.recv().await;
                })
                .await
                .map_err(anyhow::Error::from)
        }));
    }
    if let Some(listener) = otlp_grpc_listener {
        let mut stop = receivers_stop.subscribe();
        let service = otlp_grpc::service(distributor.clone());
        receivers.push(tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(tower::util::MapResponseLayer::new(
                    otlp_grpc::client_error_codes,
                ))
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async move {
                        let _ = stop.recv().await;
                    },
                )
                .await
                .map_err(anyhow::Error::from)
        }));
    }

    readiness.set_ready();
    tracing::info!(http = %local_addr, version = env!("CARGO_PKG_VERSION"), "tracefusion is ready");

    let grace = config.server.graceful_shutdown_timeout.0;
    let deadline = async {
        stopping.notified().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("HTTP server failed")?,
        () = deadline => tracing::warn!(
            timeout = ?grace,
            "in-flight requests did not finish within server.graceful_shutdown_timeout; stopping anyway"
        ),
    }
    // Receivers have stopped taking requests: write everything held as blocks.
    for receiver in receivers {
        let _ = tokio::time::timeout(grace, receiver).await;
    }
    cutter.abort();
    poller.abort();
    match ingester.tick(true).await {
        Ok(blocks) => tracing::info!(blocks, "flushed live traces"),
        Err(error) => {
            tracing::error!(%error, "flushing at shutdown failed; the WAL keeps the data for the next start")
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

/// An empty address means every interface, as in Tempo's server config.
fn listen_address(address: &str, port: u16) -> String {
    let host = if address.is_empty() {
        "0.0.0.0"
    } else {
        address
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
