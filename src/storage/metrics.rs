//! Prometheus metrics of the object store (with Tempo's names) and of the block caches.

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounterVec, IntGaugeVec, register_histogram_vec, register_int_counter_vec,
    register_int_gauge_vec,
};

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

pub static CACHE_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "tracefusion_cache_requests_total",
        "Lookups in the block caches (bloom, footer, catalog, merged_catalog), hit or miss.",
        &["cache", "result"]
    )
    .expect("metric registers")
});

pub static CACHE_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "tracefusion_cache_bytes",
        "Bytes held by each block cache, as its weigher counts them.",
        &["cache"]
    )
    .expect("metric registers")
});

/// Counts one lookup in `cache`.
pub fn cache_lookup(cache: &str, hit: bool) {
    CACHE_REQUESTS
        .with_label_values(&[cache, if hit { "hit" } else { "miss" }])
        .inc();
}

/// Records what `cache` holds after an insert.
pub fn cache_size(cache: &str, bytes: u64) {
    CACHE_BYTES
        .with_label_values(&[cache])
        .set(bytes.min(i64::MAX as u64) as i64);
}
