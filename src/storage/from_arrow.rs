//! Span table → OTLP, for trace by id: rows become spans again, grouped under their resource
//! and instrumentation scope. Dedicated columns and `service_name` go back into the attributes.

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, FixedSizeBinaryArray, Int64Array, ListArray, MapArray, RecordBatch,
    StringArray, StructArray, TimestampNanosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status,
    span::{Event, Link},
};
use prost::Message;

use super::schema::{self, ATTR_KINDS, AttrKind, attr_column};
use super::to_arrow::SERVICE_NAME_ATTR;

#[derive(Debug, thiserror::Error)]
#[error("span table column `{0}` is missing or has an unexpected type")]
pub struct MissingColumn(pub String);

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, MissingColumn> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| MissingColumn(name.to_string()))
}

fn struct_column<'a, T: 'static>(
    array: &'a StructArray,
    name: &str,
) -> Result<&'a T, MissingColumn> {
    array
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| MissingColumn(name.to_string()))
}

/// The five typed maps of one attribute family.
struct AttrColumns<'a> {
    maps: Vec<(&'a MapArray, AttrKind)>,
}

impl<'a> AttrColumns<'a> {
    fn of_batch(batch: &'a RecordBatch, prefix: &str) -> Result<Self, MissingColumn> {
        let maps = ATTR_KINDS
            .iter()
            .map(|&kind| Ok((column::<MapArray>(batch, &attr_column(prefix, kind))?, kind)))
            .collect::<Result<_, MissingColumn>>()?;
        Ok(Self { maps })
    }

    fn of_struct(array: &'a StructArray) -> Result<Self, MissingColumn> {
        let maps = ATTR_KINDS
            .iter()
            .map(|&kind| {
                Ok((
                    struct_column::<MapArray>(array, &attr_column("", kind))?,
                    kind,
                ))
            })
            .collect::<Result<_, MissingColumn>>()?;
        Ok(Self { maps })
    }

    fn row(&self, row: usize, out: &mut Vec<KeyValue>) {
        for (map, kind) in &self.maps {
            let offsets = map.value_offsets();
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let keys = map.keys().as_string::<i32>();
            let values = map.values();
            for i in start..end {
                let value = match kind {
                    AttrKind::Str => {
                        Value::StringValue(values.as_string::<i32>().value(i).to_string())
                    }
                    AttrKind::Int => Value::IntValue(values.as_primitive::<Int64Type>().value(i)),
                    AttrKind::Float => {
                        Value::DoubleValue(values.as_primitive::<Float64Type>().value(i))
                    }
                    AttrKind::Bool => Value::BoolValue(values.as_boolean().value(i)),
                    AttrKind::Other => {
                        let json = values.as_string::<i32>().value(i);
                        out.push(KeyValue {
                            key: keys.value(i).to_string(),
                            value: crate::any_value_json::from_json_str(json),
                            ..Default::default()
                        });
                        continue;
                    }
                };
                out.push(KeyValue {
                    key: keys.value(i).to_string(),
                    value: Some(AnyValue { value: Some(value) }),
                    ..Default::default()
                });
            }
        }
    }
}

enum DedicatedColumnRef<'a> {
    Str(&'a StringArray),
    Int(&'a Int64Array),
}

/// Dedicated columns of one scope: attribute name and column.
type DedicatedColumns<'a> = Vec<(String, DedicatedColumnRef<'a>)>;

/// Dedicated attribute columns of a batch, found by their `resource.`/`span.` names.
fn dedicated_columns(batch: &RecordBatch) -> (DedicatedColumns<'_>, DedicatedColumns<'_>) {
    let mut resource = Vec::new();
    let mut span = Vec::new();
    for (field, array) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        let name = field.name();
        let (target, attr) = if let Some(attr) = name.strip_prefix("resource.") {
            (&mut resource, attr)
        } else if let Some(attr) = name.strip_prefix("span.") {
            (&mut span, attr)
        } else {
            continue;
        };
        let column = match field.data_type() {
            DataType::Utf8 => DedicatedColumnRef::Str(array.as_string::<i32>()),
            DataType::Int64 => DedicatedColumnRef::Int(array.as_primitive::<Int64Type>()),
            _ => continue,
        };
        target.push((attr.to_string(), column));
    }
    (resource, span)
}

fn push_dedicated(
    columns: &[(String, DedicatedColumnRef<'_>)],
    row: usize,
    out: &mut Vec<KeyValue>,
) {
    for (name, column) in columns {
        let value = match column {
            DedicatedColumnRef::Str(a) if a.is_valid(row) => {
                Value::StringValue(a.value(row).to_string())
            }
            DedicatedColumnRef::Int(a) if a.is_valid(row) => Value::IntValue(a.value(row)),
            _ => continue,
        };
        out.push(KeyValue {
            key: name.clone(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }
}

fn kind_number(name: &str) -> i32 {
    match name {
        "unspecified" => 0,
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        other => other.parse().unwrap_or(0),
    }
}

fn status_number(name: &str) -> i32 {
    match name {
        "unset" => 0,
        "ok" => 1,
        "error" => 2,
        other => other.parse().unwrap_or(0),
    }
}

/// Encoded scope (+schema url) → index in a resource's `scope_spans`.
type ScopeIndex = HashMap<Vec<u8>, usize>;

/// Turns span-table rows back into OTLP. Rows that share a resource (and scope) are grouped
/// under one `ResourceSpans` (and `ScopeSpans`), in order of first appearance.
pub fn batches_to_otlp(batches: &[RecordBatch]) -> Result<Vec<ResourceSpans>, MissingColumn> {
    let mut out: Vec<ResourceSpans> = Vec::new();
    // Encoded resource (+schema url) → index in `out` and its scopes.
    let mut resources: HashMap<Vec<u8>, (usize, ScopeIndex)> = HashMap::new();
    for batch in batches {
        let trace_id = column::<FixedSizeBinaryArray>(batch, schema::TRACE_ID)?;
        let span_id = column::<FixedSizeBinaryArray>(batch, schema::SPAN_ID)?;
        let parent = column::<FixedSizeBinaryArray>(batch, schema::PARENT_SPAN_ID)?;
        let start = column::<TimestampNanosecondArray>(batch, schema::START_TIME)?;
        let duration = column::<Int64Array>(batch, schema::DURATION_NS)?;
        let name = column::<StringArray>(batch, schema::NAME)?;
        let kind = column::<StringArray>(batch, schema::KIND)?;
        let status_code = column::<StringArray>(batch, schema::STATUS_CODE)?;
        let status_message = column::<StringArray>(batch, schema::STATUS_MESSAGE)?;
        let service = column::<StringArray>(batch, schema::SERVICE_NAME)?;
        let trace_state = column::<StringArray>(batch, schema::TRACE_STATE)?;
        let flags = column::<UInt32Array>(batch, schema::FLAGS)?;
        let dropped_attrs = column::<UInt32Array>(batch, schema::DROPPED_ATTRIBUTES_COUNT)?;
        let dropped_events = column::<UInt32Array>(batch, schema::DROPPED_EVENTS_COUNT)?;
        let dropped_links = column::<UInt32Array>(batch, schema::DROPPED_LINKS_COUNT)?;
        let span_attrs = AttrColumns::of_batch(batch, "span")?;
        let resource_attrs = AttrColumns::of_batch(batch, "resource")?;
        let resource_dropped =
            column::<UInt32Array>(batch, schema::RESOURCE_DROPPED_ATTRIBUTES_COUNT)?;
        let resource_schema = column::<StringArray>(batch, schema::RESOURCE_SCHEMA_URL)?;
        let scope_name = column::<StringArray>(batch, schema::SCOPE_NAME)?;
        let scope_version = column::<StringArray>(batch, schema::SCOPE_VERSION)?;
        let scope_attrs = AttrColumns::of_batch(batch, "scope")?;
        let scope_dropped = column::<UInt32Array>(batch, schema::SCOPE_DROPPED_ATTRIBUTES_COUNT)?;
        let scope_schema = column::<StringArray>(batch, schema::SCOPE_SCHEMA_URL)?;
        let events = column::<ListArray>(batch, schema::EVENTS)?;
        let event_values = events.values().as_struct();
        let event_time = struct_column::<TimestampNanosecondArray>(event_values, "time")?;
        let event_name = struct_column::<StringArray>(event_values, "name")?;
        let event_attrs = AttrColumns::of_struct(event_values)?;
        let event_dropped =
            struct_column::<UInt32Array>(event_values, schema::DROPPED_ATTRIBUTES_COUNT)?;
        let links = column::<ListArray>(batch, schema::LINKS)?;
        let link_values = links.values().as_struct();
        let link_trace = struct_column::<FixedSizeBinaryArray>(link_values, schema::TRACE_ID)?;
        let link_span = struct_column::<FixedSizeBinaryArray>(link_values, schema::SPAN_ID)?;
        let link_state = struct_column::<StringArray>(link_values, schema::TRACE_STATE)?;
        let link_attrs = AttrColumns::of_struct(link_values)?;
        let link_dropped =
            struct_column::<UInt32Array>(link_values, schema::DROPPED_ATTRIBUTES_COUNT)?;
        let link_flags = struct_column::<UInt32Array>(link_values, schema::FLAGS)?;
        let (resource_dedicated, span_dedicated) = dedicated_columns(batch);

        for row in 0..batch.num_rows() {
            let mut attributes = Vec::new();
            if service.is_valid(row) {
                attributes.push(KeyValue {
                    key: SERVICE_NAME_ATTR.to_string(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(service.value(row).to_string())),
                    }),
                    ..Default::default()
                });
            }
            push_dedicated(&resource_dedicated, row, &mut attributes);
            resource_attrs.row(row, &mut attributes);
            let resource = Resource {
                attributes,
                dropped_attributes_count: resource_dropped.value(row),
                entity_refs: Vec::new(),
            };
            let mut scope_attributes = Vec::new();
            scope_attrs.row(row, &mut scope_attributes);
            let scope = InstrumentationScope {
                name: scope_name.value(row).to_string(),
                version: scope_version.value(row).to_string(),
                attributes: scope_attributes,
                dropped_attributes_count: scope_dropped.value(row),
            };

            let mut attributes = Vec::new();
            push_dedicated(&span_dedicated, row, &mut attributes);
            span_attrs.row(row, &mut attributes);
            let start_ns = start.value(row) as u64;
            let event_range =
                events.value_offsets()[row] as usize..events.value_offsets()[row + 1] as usize;
            let span_events = event_range
                .map(|i| {
                    let mut attributes = Vec::new();
                    event_attrs.row(i, &mut attributes);
                    Event {
                        time_unix_nano: event_time.value(i) as u64,
                        name: event_name.value(i).to_string(),
                        attributes,
                        dropped_attributes_count: event_dropped.value(i),
                    }
                })
                .collect();
            let link_range =
                links.value_offsets()[row] as usize..links.value_offsets()[row + 1] as usize;
            let span_links = link_range
                .map(|i| {
                    let mut attributes = Vec::new();
                    link_attrs.row(i, &mut attributes);
                    Link {
                        trace_id: link_trace.value(i).to_vec(),
                        span_id: link_span.value(i).to_vec(),
                        trace_state: link_state.value(i).to_string(),
                        attributes,
                        dropped_attributes_count: link_dropped.value(i),
                        flags: link_flags.value(i),
                    }
                })
                .collect();
            let span = Span {
                trace_id: trace_id.value(row).to_vec(),
                span_id: span_id.value(row).to_vec(),
                trace_state: trace_state.value(row).to_string(),
                parent_span_id: if parent.is_valid(row) {
                    parent.value(row).to_vec()
                } else {
                    Vec::new()
                },
                flags: flags.value(row),
                name: name.value(row).to_string(),
                kind: kind_number(kind.value(row)),
                start_time_unix_nano: start_ns,
                end_time_unix_nano: start_ns.wrapping_add(duration.value(row) as u64),
                attributes,
                dropped_attributes_count: dropped_attrs.value(row),
                events: span_events,
                dropped_events_count: dropped_events.value(row),
                links: span_links,
                dropped_links_count: dropped_links.value(row),
                status: Some(Status {
                    message: status_message.value(row).to_string(),
                    code: status_number(status_code.value(row)),
                }),
            };

            let mut resource_key = resource.encode_to_vec();
            resource_key.extend_from_slice(resource_schema.value(row).as_bytes());
            let (resource_index, scopes) = resources.entry(resource_key).or_insert_with(|| {
                out.push(ResourceSpans {
                    resource: Some(resource),
                    scope_spans: Vec::new(),
                    schema_url: resource_schema.value(row).to_string(),
                });
                (out.len() - 1, HashMap::new())
            });
            let target = &mut out[*resource_index];
            let mut scope_key = scope.encode_to_vec();
            scope_key.extend_from_slice(scope_schema.value(row).as_bytes());
            let scope_index = *scopes.entry(scope_key).or_insert_with(|| {
                target.scope_spans.push(ScopeSpans {
                    scope: Some(scope),
                    spans: Vec::new(),
                    schema_url: scope_schema.value(row).to_string(),
                });
                target.scope_spans.len() - 1
            });
            target.scope_spans[scope_index].spans.push(span);
        }
    }
    Ok(out)
}
