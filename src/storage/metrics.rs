//! Prometheus metrics of the object store, with Tempo's names.

use std::sync::LazyLock;

use prometheus::{HistogramVec, register_histogram_vec};

pub static BACKEND_REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "tempodb_backend_request_duration_seconds",
        "Time spent in object store requests, per operation and outcome.",
        &["operation", "status_code"],
        vec![0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0]
    )
    .expect("metric registers")
});

/// Records one request's duration.
pub fn observe<T, E>(operation: &str, started: std::time::Instant, result: &Result<T, E>) {
    let status = if result.is_ok() { "200" } else { "500" };
    BACKEND_REQUEST_DURATION
        .with_label_values(&[operation, status])
        .observe(started.elapsed().as_secs_f64());
}
