//! Traces as the ingester holds them: protobuf-encoded, decoded one at a time when read.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

use crate::storage::TraceId;

/// One trace held in memory: an encoded `ExportTraceServiceRequest`, and the earliest start
/// of its spans (what a large head block is split by).
#[derive(Clone)]
pub(super) struct HeldTrace {
    pub(super) encoded: Vec<u8>,
    pub(super) start: u64,
    /// The oldest WAL segment holding spans of it.
    pub(super) segment: u64,
}

impl HeldTrace {
    pub(super) fn new(batches: Vec<ResourceSpans>, segment: u64) -> Self {
        let start = crate::storage::block::trace_start(&batches);
        Self {
            encoded: encode(batches),
            start,
            segment,
        }
    }

    pub(super) fn append(&mut self, other: &HeldTrace) {
        self.encoded.extend_from_slice(&other.encoded);
        self.start = self.start.min(other.start);
        self.segment = self.segment.min(other.segment);
    }

    pub(super) fn bytes(&self) -> u64 {
        self.encoded.len() as u64
    }
}

/// Traces of one tenant by id.
pub(super) type HeldTraces = BTreeMap<TraceId, HeldTrace>;

fn encode(batches: Vec<ResourceSpans>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: batches,
    }
    .encode_to_vec()
}

pub(super) fn decode(encoded: &[u8]) -> Vec<ResourceSpans> {
    // Only this process encoded these bytes.
    ExportTraceServiceRequest::decode(encoded)
        .map(|r| r.resource_spans)
        .unwrap_or_default()
}
