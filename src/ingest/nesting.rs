//! How deeply a request's attribute values nest, found before anything recurses through them.
//!
//! OTLP lets an attribute value hold arrays and key-value lists of values to any depth, and
//! every decoder recurses through them. prost's own bound (100 messages, 33 list levels) is
//! below what collectors accept, so it is lifted, and requests are held to
//! [`MAX_VALUE_DEPTH`] here instead: protobuf by a [`protowire`] scan before decoding,
//! decoded OTLP/JSON (whose parser is bounded by nesting alone) by a walk over the request.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

use crate::protowire;

pub use crate::any_value_json::MAX_VALUE_DEPTH;

/// Why a request was refused before decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "an attribute value nests arrays and key-value lists deeper than {MAX_VALUE_DEPTH} levels"
    )]
    TooDeep,
    #[error("body is not OTLP protobuf: it has group fields")]
    Groups,
}

impl From<protowire::Refused> for Refused {
    fn from(refused: protowire::Refused) -> Self {
        match refused {
            protowire::Refused::TooDeep => Refused::TooDeep,
            protowire::Refused::Groups => Refused::Groups,
        }
    }
}

/// The messages of an export request a scan descends into: those that lead to attribute
/// values, and the others, so that no group field hides in them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Otlp {
    Request,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    EntityRef,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

impl protowire::Schema for Otlp {
    fn field(self, number: u64) -> Option<Self> {
        use Otlp::*;
        Some(match (self, number) {
            (Request, 1) => ResourceSpans,
            (ResourceSpans, 1) => Resource,
            (ResourceSpans, 2) => ScopeSpans,
            (Resource, 3) => EntityRef,
            (ScopeSpans, 1) => Scope,
            (ScopeSpans, 2) => Span,
            (Span, 11) => Event,
            (Span, 13) => Link,
            (Span, 15) => Status,
            (Resource, 1) | (Scope, 3) | (Span, 9) | (Event, 3) | (Link, 4) | (KeyValueList, 1) => {
                KeyValue
            }
            (KeyValue, 2) | (ArrayValue, 1) => AnyValue,
            (AnyValue, 5) => ArrayValue,
            (AnyValue, 6) => KeyValueList,
            _ => return None,
        })
    }

    fn counts(self) -> bool {
        self == Otlp::AnyValue
    }
}

/// Checks an `ExportTraceServiceRequest` in protobuf before it is decoded.
pub fn check_protobuf(bytes: &[u8]) -> Result<(), Refused> {
    Ok(protowire::check(bytes, Otlp::Request, MAX_VALUE_DEPTH)?)
}

/// Checks a decoded request.
pub fn check_request(request: &ExportTraceServiceRequest) -> Result<(), Refused> {
    let mut values: Vec<(&AnyValue, usize)> = Vec::new();
    for resource_spans in &request.resource_spans {
        if let Some(resource) = &resource_spans.resource {
            attribute_values(&resource.attributes, &mut values);
        }
        for scope_spans in &resource_spans.scope_spans {
            if let Some(scope) = &scope_spans.scope {
                attribute_values(&scope.attributes, &mut values);
            }
            for span in &scope_spans.spans {
                attribute_values(&span.attributes, &mut values);
                for event in &span.events {
                    attribute_values(&event.attributes, &mut values);
                }
                for link in &span.links {
                    attribute_values(&link.attributes, &mut values);
                }
            }
        }
    }
    while let Some((value, depth)) = values.pop() {
        if depth > MAX_VALUE_DEPTH {
            return Err(Refused::TooDeep);
        }
        match &value.value {
            Some(Value::ArrayValue(array)) => {
                values.extend(array.values.iter().map(|v| (v, depth + 1)));
            }
            Some(Value::KvlistValue(list)) => {
                values.extend(
                    list.values
                        .iter()
                        .filter_map(|kv| Some((kv.value.as_ref()?, depth + 1))),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

fn attribute_values<'a>(attributes: &'a [KeyValue], values: &mut Vec<(&'a AnyValue, usize)>) {
    values.extend(
        attributes
            .iter()
            .filter_map(|kv| Some((kv.value.as_ref()?, 1))),
    );
}
