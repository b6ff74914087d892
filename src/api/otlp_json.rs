//! Traces as Tempo's JSON shows them (protobuf JSON mapping): ids in base64, enums by name,
//! 64-bit integers as strings, empty fields left out — except `resource`, `scope` and
//! `status`, which Grafana expects on every batch and span.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use serde_json::{Map, Value as Json, json};

use crate::any_value_json::attributes_to_json;

fn put_attributes(map: &mut Map<String, Json>, attrs: &[KeyValue], dropped: u32) {
    if !attrs.is_empty() {
        map.insert("attributes".into(), Json::Array(attributes_to_json(attrs)));
    }
    if dropped > 0 {
        map.insert("droppedAttributesCount".into(), json!(dropped));
    }
}

fn put_str(map: &mut Map<String, Json>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.into(), json!(value));
    }
}

const KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn span(span: &Span) -> Json {
    let mut map = Map::new();
    map.insert("traceId".into(), json!(STANDARD.encode(&span.trace_id)));
    map.insert("spanId".into(), json!(STANDARD.encode(&span.span_id)));
    if !span.parent_span_id.is_empty() {
        map.insert(
            "parentSpanId".into(),
            json!(STANDARD.encode(&span.parent_span_id)),
        );
    }
    put_str(&mut map, "traceState", &span.trace_state);
    if span.flags != 0 {
        map.insert("flags".into(), json!(span.flags));
    }
    map.insert("name".into(), json!(span.name));
    let kind = KINDS.get(span.kind as usize).copied();
    map.insert(
        "kind".into(),
        kind.map(Json::from).unwrap_or_else(|| json!(span.kind)),
    );
    map.insert(
        "startTimeUnixNano".into(),
        json!(span.start_time_unix_nano.to_string()),
    );
    map.insert(
        "endTimeUnixNano".into(),
        json!(span.end_time_unix_nano.to_string()),
    );
    put_attributes(&mut map, &span.attributes, span.dropped_attributes_count);
    if !span.events.is_empty() {
        let events = span
            .events
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("timeUnixNano".into(), json!(e.time_unix_nano.to_string()));
                put_str(&mut m, "name", &e.name);
                put_attributes(&mut m, &e.attributes, e.dropped_attributes_count);
                Json::Object(m)
            })
            .collect();
        map.insert("events".into(), Json::Array(events));
    }
    if span.dropped_events_count > 0 {
        map.insert(
            "droppedEventsCount".into(),
            json!(span.dropped_events_count),
        );
    }
    if !span.links.is_empty() {
        let links = span
            .links
            .iter()
            .map(|l| {
                let mut m = Map::new();
                m.insert("traceId".into(), json!(STANDARD.encode(&l.trace_id)));
                m.insert("spanId".into(), json!(STANDARD.encode(&l.span_id)));
                put_str(&mut m, "traceState", &l.trace_state);
                put_attributes(&mut m, &l.attributes, l.dropped_attributes_count);
                if l.flags != 0 {
                    m.insert("flags".into(), json!(l.flags));
                }
                Json::Object(m)
            })
            .collect();
        map.insert("links".into(), Json::Array(links));
    }
    if span.dropped_links_count > 0 {
        map.insert("droppedLinksCount".into(), json!(span.dropped_links_count));
    }
    let mut status = Map::new();
    if let Some(s) = &span.status {
        if s.code != 0 {
            let code = STATUS_CODES.get(s.code as usize).copied();
            status.insert(
                "code".into(),
                code.map(Json::from).unwrap_or_else(|| json!(s.code)),
            );
        }
        put_str(&mut status, "message", &s.message);
    }
    map.insert("status".into(), Json::Object(status));
    Json::Object(map)
}

/// The `resourceSpans` of a trace in Tempo's JSON.
pub fn resource_spans(batches: &[ResourceSpans]) -> Json {
    Json::Array(
        batches
            .iter()
            .map(|rs| {
                let mut resource = Map::new();
                if let Some(r) = &rs.resource {
                    put_attributes(&mut resource, &r.attributes, r.dropped_attributes_count);
                }
                let scope_spans: Vec<Json> = rs
                    .scope_spans
                    .iter()
                    .map(|ss| {
                        let mut scope = Map::new();
                        if let Some(s) = &ss.scope {
                            put_str(&mut scope, "name", &s.name);
                            put_str(&mut scope, "version", &s.version);
                            put_attributes(&mut scope, &s.attributes, s.dropped_attributes_count);
                        }
                        let mut m = Map::new();
                        m.insert("scope".into(), Json::Object(scope));
                        m.insert(
                            "spans".into(),
                            Json::Array(ss.spans.iter().map(span).collect()),
                        );
                        put_str(&mut m, "schemaUrl", &ss.schema_url);
                        Json::Object(m)
                    })
                    .collect();
                let mut m = Map::new();
                m.insert("resource".into(), Json::Object(resource));
                m.insert("scopeSpans".into(), Json::Array(scope_spans));
                put_str(&mut m, "schemaUrl", &rs.schema_url);
                Json::Object(m)
            })
            .collect(),
    )
}
