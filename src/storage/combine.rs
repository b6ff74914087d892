//! Combining partial traces: the parts of one trace found in live data and in several blocks
//! become one, each span once (by span id and kind, as Tempo dedupes).

use std::collections::HashSet;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

/// Concatenates the parts, dropping spans already seen and groups left empty.
pub fn combine(parts: impl IntoIterator<Item = Vec<ResourceSpans>>) -> Vec<ResourceSpans> {
    let mut seen: HashSet<(Vec<u8>, i32)> = HashSet::new();
    let mut out = Vec::new();
    for part in parts {
        for mut rs in part {
            for ss in &mut rs.scope_spans {
                ss.spans
                    .retain(|span| seen.insert((span.span_id.clone(), span.kind)));
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
            if !rs.scope_spans.is_empty() {
                out.push(rs);
            }
        }
    }
    out
}

/// How many spans the resource-spans hold.
pub fn span_count(batches: &[ResourceSpans]) -> usize {
    batches
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}
