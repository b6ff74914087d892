//! Prometheus metrics of the write path, with Tempo's names where the concept matches.

use std::sync::LazyLock;

use prometheus::{
    IntCounter, IntCounterVec, IntGaugeVec, register_int_counter, register_int_counter_vec,
    register_int_gauge_vec,
};

pub static SPANS_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "tempo_distributor_spans_received_total",
        "Spans received by the distributor, per tenant.",
        &["tenant"]
    )
    .expect("metric registers")
});

pub static BYTES_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "tempo_distributor_bytes_received_total",
        "Bytes of OTLP protobuf received by the distributor, per tenant.",
        &["tenant"]
    )
    .expect("metric registers")
});

pub static DISCARDED_SPANS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "tempo_discarded_spans_total",
        "Spans refused, per tenant and reason.",
        &["tenant", "reason"]
    )
    .expect("metric registers")
});

pub static LIVE_TRACES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "tempo_ingester_live_traces",
        "Traces held in memory that are still receiving spans, per tenant.",
        &["tenant"]
    )
    .expect("metric registers")
});

pub static BLOCKS_FLUSHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "tempo_ingester_blocks_flushed_total",
        "Blocks written to the store by the ingester."
    )
    .expect("metric registers")
});

pub static FLUSH_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "tempo_ingester_flush_failures_total",
        "Block writes that failed (the data stays in memory and in the WAL)."
    )
    .expect("metric registers")
});

/// Reasons for `tempo_discarded_spans_total`, as Tempo names them where it has the concept.
pub const REASON_INVALID_TRACE_ID: &str = "invalid_trace_id";
pub const REASON_INVALID_SPAN_ID: &str = "invalid_span_id";
pub const REASON_INVALID_TIMESTAMP: &str = "invalid_timestamp";
pub const REASON_TRACE_TOO_LARGE: &str = "trace_too_large";
pub const REASON_RATE_LIMITED: &str = "rate_limited";

/// Registers every write-path metric now, so they are exported (at zero) before first use.
pub fn register() {
    LazyLock::force(&SPANS_RECEIVED);
    LazyLock::force(&BYTES_RECEIVED);
    LazyLock::force(&DISCARDED_SPANS);
    LazyLock::force(&LIVE_TRACES);
    LazyLock::force(&BLOCKS_FLUSHED);
    LazyLock::force(&FLUSH_FAILURES);
    LazyLock::force(&crate::storage::metrics::BACKEND_REQUEST_DURATION);
}
