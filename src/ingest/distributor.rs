//! The distributor: resolves the tenant, validates spans (refusing bad ones with a reason
//! rather than failing the whole request), normalizes ids, and hands traces to the ingester.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::ingester::{Ingester, PushError};
use super::metrics;
use crate::storage::combine::span_count;
use crate::storage::{TraceId, split_by_trace};

/// The tenant of every request when multitenancy is off.
pub const SINGLE_TENANT: &str = "single-tenant";
const MAX_TENANT_LENGTH: usize = 150;

/// The tenant a request belongs to, from its `X-Scope-OrgID` value, by Tempo's rules: at most
/// 150 of the characters `a-z A-Z 0-9 ! - _ . * ' ( )`, not `.` or `..`. Writes and reads
/// both take their tenant from here, so every id a write accepts can be read back.
pub fn tenant_id(org_id: Option<&[u8]>, multitenancy: bool) -> Result<String, DistributorError> {
    if !multitenancy {
        return Ok(SINGLE_TENANT.to_string());
    }
    let raw = org_id
        .map(|v| v.trim_ascii())
        .filter(|t| !t.is_empty())
        .ok_or(DistributorError::MissingTenant)?;
    let valid = raw.len() <= MAX_TENANT_LENGTH
        && raw != b"."
        && raw != b".."
        && raw
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"!-_.*'()".contains(&c));
    if valid {
        Ok(String::from_utf8_lossy(raw).into_owned())
    } else {
        Err(DistributorError::InvalidTenant(
            String::from_utf8_lossy(raw).into_owned(),
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DistributorError {
    #[error("no tenant: multitenancy is enabled and the request has no X-Scope-OrgID")]
    MissingTenant,
    #[error(
        "invalid tenant id {0:?}: use at most 150 of the characters a-z A-Z 0-9 ! - _ . * ' ( )"
    )]
    InvalidTenant(String),
    #[error(
        "ingestion rate limit exceeded for tenant {tenant}: {rate} bytes/s with bursts of {burst} bytes \
         (overrides.defaults.ingestion); this request has {size} bytes, retry later"
    )]
    RateLimited {
        tenant: String,
        rate: u64,
        burst: u64,
        size: u64,
    },
    #[error(
        "request of {size} bytes is larger than the ingestion burst of {burst} bytes \
         (overrides.defaults.ingestion.burst_size_bytes): send it in smaller batches"
    )]
    LargerThanBurst { size: u64, burst: u64 },
    #[error(transparent)]
    Ingester(#[from] PushError),
}

/// Per-tenant ingest limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rate_bytes: u64,
    pub burst_bytes: u64,
}

/// A token bucket of bytes.
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// What happened to the spans of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted_spans: usize,
    pub rejected_spans: usize,
    /// Why spans were refused, one entry per reason with its count.
    pub reasons: Vec<String>,
}

pub struct Distributor {
    ingester: Arc<Ingester>,
    multitenancy: bool,
    limits: Limits,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Distributor {
    pub fn new(ingester: Arc<Ingester>, multitenancy: bool, limits: Limits) -> Self {
        Self {
            ingester,
            multitenancy,
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `size` bytes from the tenant's bucket, or refuses the whole request.
    fn admit(&self, tenant: &str, size: u64) -> Result<(), DistributorError> {
        let Limits {
            rate_bytes,
            burst_bytes,
        } = self.limits;
        // A request the full bucket cannot hold would be refused on every retry.
        if size > burst_bytes {
            return Err(DistributorError::LargerThanBurst {
                size,
                burst: burst_bytes,
            });
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let bucket = buckets.entry(tenant.to_string()).or_insert(Bucket {
            tokens: burst_bytes as f64,
            last: now,
        });
        let refill = now.duration_since(bucket.last).as_secs_f64() * rate_bytes as f64;
        bucket.tokens = (bucket.tokens + refill).min(burst_bytes as f64);
        bucket.last = now;
        if bucket.tokens < size as f64 {
            return Err(DistributorError::RateLimited {
                tenant: tenant.to_string(),
                rate: rate_bytes,
                burst: burst_bytes,
                size,
            });
        }
        bucket.tokens -= size as f64;
        Ok(())
    }

    /// The tenant of a request from its `X-Scope-OrgID` (or gRPC metadata) value.
    pub fn tenant(&self, org_id: Option<&[u8]>) -> Result<String, DistributorError> {
        tenant_id(org_id, self.multitenancy)
    }

    /// Validates and stores a request's spans. Invalid spans are refused with a reason; the
    /// others are durable when this returns `Ok`.
    pub async fn push(
        &self,
        tenant: &str,
        mut request: ExportTraceServiceRequest,
    ) -> Result<PushOutcome, DistributorError> {
        let size = request.encoded_len() as u64;
        let spans = span_count(&request.resource_spans);
        metrics::SPANS_RECEIVED
            .with_label_values(&[tenant])
            .inc_by(spans as u64);
        metrics::BYTES_RECEIVED
            .with_label_values(&[tenant])
            .inc_by(size);
        let discard = |reason: &str, count: usize| {
            if count > 0 {
                metrics::DISCARDED_SPANS
                    .with_label_values(&[tenant, reason])
                    .inc_by(count as u64);
            }
        };
        if let Err(e) = self.admit(tenant, size) {
            discard(metrics::REASON_RATE_LIMITED, spans);
            return Err(e);
        }
        let mut outcome = PushOutcome::default();
        let mut bad_trace_id = 0;
        let mut bad_span_id = 0;
        let mut bad_time = 0;
        for rs in &mut request.resource_spans {
            for ss in &mut rs.scope_spans {
                ss.spans.retain_mut(|span| {
                    if span.trace_id.len() > 16 {
                        bad_trace_id += 1;
                        return false;
                    }
                    let Some(id) = TraceId::from_bytes(&span.trace_id) else {
                        bad_trace_id += 1;
                        return false;
                    };
                    if span.span_id.len() != 8 || span.span_id.iter().all(|&b| b == 0) {
                        bad_span_id += 1;
                        return false;
                    }
                    // Times are stored as signed nanoseconds (up to the year 2262); later
                    // ones would read back negative.
                    let latest = i64::MAX as u64;
                    if span.start_time_unix_nano > latest || span.end_time_unix_nano > latest {
                        bad_time += 1;
                        return false;
                    }
                    // Short ids are stored left-padded, as Tempo does.
                    span.trace_id = id.as_bytes().to_vec();
                    true
                });
                outcome.accepted_spans += ss.spans.len();
            }
        }
        if bad_trace_id > 0 {
            outcome.reasons.push(format!(
                "{bad_trace_id} spans with an invalid trace id (must be 1 to 16 bytes, not all zero)"
            ));
        }
        if bad_span_id > 0 {
            outcome.reasons.push(format!(
                "{bad_span_id} spans with an invalid span id (must be 8 bytes, not all zero)"
            ));
        }
        if bad_time > 0 {
            outcome.reasons.push(format!(
                "{bad_time} spans with a start or end time after the year 2262 (more than {} ns)",
                i64::MAX
            ));
        }
        outcome.rejected_spans = bad_trace_id + bad_span_id + bad_time;
        discard(metrics::REASON_INVALID_TRACE_ID, bad_trace_id);
        discard(metrics::REASON_INVALID_SPAN_ID, bad_span_id);
        discard(metrics::REASON_INVALID_TIMESTAMP, bad_time);
        let (traces, _) = split_by_trace(request.resource_spans);
        if !traces.is_empty() {
            let too_large = self.ingester.push(tenant, traces).await?;
            discard(metrics::REASON_TRACE_TOO_LARGE, too_large.spans);
            if too_large.spans > 0 {
                outcome.accepted_spans -= too_large.spans;
                outcome.rejected_spans += too_large.spans;
                outcome.reasons.push(format!(
                    "{} spans of {} traces refused: the trace would exceed {} bytes (overrides.defaults.global.max_bytes_per_trace)",
                    too_large.spans, too_large.traces, too_large.limit
                ));
            }
        }
        Ok(outcome)
    }

    pub fn ingester(&self) -> &Arc<Ingester> {
        &self.ingester
    }
}
