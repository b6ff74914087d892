//! The all-in-one process: starts every component the config asks for, reports readiness,
//! and stops them in order on a shutdown signal.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::api::http::{self, ApiState, Readiness};
use crate::config::Config;

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

    let router = http::router(ApiState {
        readiness: readiness.clone(),
    });
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
    let server = axum::serve(listener, router).with_graceful_shutdown(on_signal);

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
