//! OTLP → span table. Spans are appended straight from the OTLP messages into Arrow builders;
//! the only per-trace scratch is the list of span references and the nested-set numbering.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder, Int64Builder,
    ListArray, MapBuilder, RecordBatch, StringBuilder, StructArray, TimestampNanosecondBuilder,
    UInt32Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, FieldRef, SchemaRef};
use arrow::error::ArrowError;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::catalog::{CatalogBuilder, TagScope};
use super::ids::TraceId;
use super::schema::{event_fields, kind_name, link_fields, span_schema, status_name};
use crate::config::{DedicatedColumn, DedicatedScope, DedicatedType};

pub const SERVICE_NAME_ATTR: &str = "service.name";

/// One value of an attribute map family: a map per value type.
struct AttrMaps {
    str: MapBuilder<StringBuilder, StringBuilder>,
    int: MapBuilder<StringBuilder, Int64Builder>,
    float: MapBuilder<StringBuilder, Float64Builder>,
    bool: MapBuilder<StringBuilder, BooleanBuilder>,
    other: MapBuilder<StringBuilder, StringBuilder>,
}

impl AttrMaps {
    fn new() -> Self {
        Self {
            str: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            int: MapBuilder::new(None, StringBuilder::new(), Int64Builder::new()),
            float: MapBuilder::new(None, StringBuilder::new(), Float64Builder::new()),
            bool: MapBuilder::new(None, StringBuilder::new(), BooleanBuilder::new()),
            other: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
        }
    }

    fn push(&mut self, key: &str, value: Option<&AnyValue>) {
        match value.and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => {
                self.str.keys().append_value(key);
                self.str.values().append_value(s);
            }
            Some(Value::IntValue(i)) => {
                self.int.keys().append_value(key);
                self.int.values().append_value(*i);
            }
            Some(Value::DoubleValue(f)) => {
                self.float.keys().append_value(key);
                self.float.values().append_value(*f);
            }
            Some(Value::BoolValue(b)) => {
                self.bool.keys().append_value(key);
                self.bool.values().append_value(*b);
            }
            _ => {
                self.other.keys().append_value(key);
                self.other.values().append_value(other_value_json(value));
            }
        }
    }

    fn end_row(&mut self) -> Result<(), ArrowError> {
        self.str.append(true)?;
        self.int.append(true)?;
        self.float.append(true)?;
        self.bool.append(true)?;
        self.other.append(true)
    }

    fn finish(&mut self) -> [ArrayRef; 5] {
        [
            Arc::new(self.str.finish()),
            Arc::new(self.int.finish()),
            Arc::new(self.float.finish()),
            Arc::new(self.bool.finish()),
            Arc::new(self.other.finish()),
        ]
    }
}

/// Arrays, key-value lists, bytes and empty values keep their OTLP/JSON form (NaN and
/// infinities as protobuf JSON names them).
fn other_value_json(value: Option<&AnyValue>) -> String {
    match value {
        Some(v) => crate::any_value_json::to_json(v).to_string(),
        None => "{}".to_string(),
    }
}

enum DedicatedBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
}

/// Where a resource or span attribute goes: a dedicated column (by index) or the generic maps.
struct DedicatedIndex {
    by_name: HashMap<String, (usize, DedicatedType)>,
}

impl DedicatedIndex {
    fn new(columns: &[DedicatedColumn], scope: DedicatedScope) -> Self {
        let by_name = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.scope == scope)
            .map(|(i, c)| (c.name.clone(), (i, c.r#type)))
            .collect();
        Self { by_name }
    }

    /// The dedicated slot for this attribute, if its name and value type match one.
    fn slot(&self, kv: &KeyValue) -> Option<usize> {
        if self.by_name.is_empty() {
            return None;
        }
        let (index, ty) = self.by_name.get(kv.key.as_str())?;
        let matches = matches!(
            (ty, kv.value.as_ref().and_then(|v| v.value.as_ref())),
            (DedicatedType::String, Some(Value::StringValue(_)))
                | (DedicatedType::Int, Some(Value::IntValue(_)))
        );
        matches.then_some(*index)
    }
}

/// Nested-set numbering and child count of one span within its trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NestedSet {
    pub left: i32,
    pub right: i32,
    /// The parent's `left`; -1 for a root; 0 for a span not reachable from a root.
    pub parent: i32,
    pub child_count: i32,
}

fn span_key(id: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = id.try_into().ok()?;
    let key = u64::from_be_bytes(bytes);
    (key != 0).then_some(key)
}

/// Numbers the spans of one trace depth-first from each root: `left` on the way down, `right`
/// on the way up, one counter from 1. Roots, and the children of a span, are taken in order of
/// start time (then span id), so the numbers do not depend on how the spans were sent. Spans
/// whose parent is missing keep zeros, so structural operators never match through a gap.
pub fn nested_set(spans: &[&Span]) -> Vec<NestedSet> {
    let n = spans.len();
    let mut out = vec![NestedSet::default(); n];
    let mut by_id: HashMap<u64, usize> = HashMap::with_capacity(n);
    for (i, span) in spans.iter().enumerate() {
        if let Some(key) = span_key(&span.span_id) {
            by_id.entry(key).or_insert(i);
        }
    }
    // Children in compressed-row form: parent index → range of `children`.
    let parent_of: Vec<Option<usize>> = spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            span_key(&span.parent_span_id)
                .and_then(|key| by_id.get(&key).copied())
                .filter(|&p| p != i)
        })
        .collect();
    let mut starts = vec![0usize; n + 1];
    for parent in parent_of.iter().flatten() {
        starts[parent + 1] += 1;
    }
    for i in 0..n {
        starts[i + 1] += starts[i];
    }
    let mut fill = starts.clone();
    let mut children = vec![0usize; starts[n]];
    for (child, parent) in parent_of.iter().enumerate() {
        if let Some(p) = *parent {
            children[fill[p]] = child;
            fill[p] += 1;
        }
    }
    let by_start = |&i: &usize| (spans[i].start_time_unix_nano, spans[i].span_id.as_slice());
    for i in 0..n {
        out[i].child_count = (starts[i + 1] - starts[i]) as i32;
        children[starts[i]..starts[i + 1]].sort_by_key(by_start);
    }
    let mut roots: Vec<usize> = (0..n)
        .filter(|&i| span_key(&spans[i].parent_span_id).is_none())
        .collect();
    roots.sort_by_key(by_start);

    let mut counter = 1i32;
    let mut visited = vec![false; n];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in roots {
        visited[root] = true;
        out[root].left = counter;
        out[root].parent = -1;
        counter += 1;
        stack.push((root, starts[root]));
        while let Some((node, cursor)) = stack.last_mut() {
            let node = *node;
            if *cursor < starts[node + 1] {
                let child = children[*cursor];
                *cursor += 1;
                // A cycle in broken data must not loop forever.
                if visited[child] {
                    continue;
                }
                visited[child] = true;
                out[child].left = counter;
                out[child].parent = out[node].left;
                counter += 1;
                stack.push((child, starts[child]));
            } else {
                out[node].right = counter;
                counter += 1;
                stack.pop();
            }
        }
    }
    out
}

/// A span with the resource and scope it was sent with.
#[derive(Clone, Copy)]
pub struct SpanRef<'a> {
    pub resource: &'a ResourceSpans,
    pub scope: &'a ScopeSpans,
    pub span: &'a Span,
}

/// Every span of a trace, from the resource-spans that carry it, in storage order (start time,
/// then span id).
pub fn trace_span_refs(batches: &[ResourceSpans]) -> Vec<SpanRef<'_>> {
    let mut refs: Vec<SpanRef<'_>> = batches
        .iter()
        .flat_map(|resource| {
            resource.scope_spans.iter().flat_map(move |scope| {
                scope.spans.iter().map(move |span| SpanRef {
                    resource,
                    scope,
                    span,
                })
            })
        })
        .collect();
    refs.sort_by(|a, b| {
        (a.span.start_time_unix_nano, &a.span.span_id)
            .cmp(&(b.span.start_time_unix_nano, &b.span.span_id))
    });
    refs
}

fn resource_service_name(resource: Option<&Resource>) -> Option<&str> {
    resource?.attributes.iter().find_map(|kv| {
        if kv.key != SERVICE_NAME_ATTR {
            return None;
        }
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Facts about a whole trace, copied onto each of its spans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceSummary {
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub root_service_name: Option<String>,
    pub root_span_name: Option<String>,
}

pub fn summarize(spans: &[SpanRef<'_>]) -> TraceSummary {
    let start = spans
        .iter()
        .map(|s| s.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.span.end_time_unix_nano.max(s.span.start_time_unix_nano))
        .max()
        .unwrap_or(0);
    let root = spans
        .iter()
        .find(|s| span_key(&s.span.parent_span_id).is_none());
    TraceSummary {
        start_unix_nano: start,
        end_unix_nano: end,
        root_service_name: root
            .and_then(|r| resource_service_name(r.resource.resource.as_ref()))
            .map(str::to_string),
        root_span_name: root.map(|r| r.span.name.clone()),
    }
}

/// Builds span-table record batches from whole traces.
pub struct SpanBatchBuilder {
    schema: SchemaRef,
    resource_dedicated: DedicatedIndex,
    span_dedicated: DedicatedIndex,
    /// Slot per dedicated column for the row being built: filled from resource or span.
    pending: Vec<bool>,
    rows: usize,

    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_span_id: FixedSizeBinaryBuilder,
    start_time: TimestampNanosecondBuilder,
    duration: Int64Builder,
    name: StringBuilder,
    kind: StringBuilder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    service_name: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    root_service_name: StringBuilder,
    root_span_name: StringBuilder,
    trace_start: TimestampNanosecondBuilder,
    trace_duration: Int64Builder,
    nested_left: Int32Builder,
    nested_right: Int32Builder,
    nested_parent: Int32Builder,
    child_count: Int32Builder,
    dedicated: Vec<DedicatedBuilder>,
    span_attrs: AttrMaps,
    dropped_attributes: UInt32Builder,
    events: EventsBuilder,
    dropped_events: UInt32Builder,
    links: LinksBuilder,
    dropped_links: UInt32Builder,
    resource_attrs: AttrMaps,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attrs: AttrMaps,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,

    catalog: CatalogBuilder,
}

struct EventsBuilder {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    name: StringBuilder,
    attrs: AttrMaps,
    dropped: UInt32Builder,
}

struct LinksBuilder {
    offsets: Vec<i32>,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    attrs: AttrMaps,
    dropped: UInt32Builder,
    flags: UInt32Builder,
}

fn list_array(
    fields: arrow::datatypes::Fields,
    columns: Vec<ArrayRef>,
    offsets: &mut Vec<i32>,
) -> Result<ArrayRef, ArrowError> {
    let values = StructArray::try_new(fields.clone(), columns, None)?;
    let item: FieldRef = Arc::new(arrow::datatypes::Field::new(
        "item",
        DataType::Struct(fields),
        false,
    ));
    let offsets = std::mem::replace(offsets, vec![0]);
    Ok(Arc::new(ListArray::try_new(
        item,
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        None,
    )?))
}

fn fixed_id(
    builder: &mut FixedSizeBinaryBuilder,
    bytes: &[u8],
    width: usize,
) -> Result<(), ArrowError> {
    if bytes.len() == width {
        builder.append_value(bytes)
    } else {
        // Shorter ids are left-padded, longer ones keep their tail, as for trace ids.
        let mut padded = vec![0u8; width];
        let tail = &bytes[bytes.len().saturating_sub(width)..];
        padded[width - tail.len()..].copy_from_slice(tail);
        builder.append_value(&padded)
    }
}

impl SpanBatchBuilder {
    pub fn new(dedicated: &[DedicatedColumn]) -> Self {
        let dedicated_builders = dedicated
            .iter()
            .map(|c| match c.r#type {
                DedicatedType::String => DedicatedBuilder::Str(StringBuilder::new()),
                DedicatedType::Int => DedicatedBuilder::Int(Int64Builder::new()),
            })
            .collect();
        Self {
            schema: span_schema(dedicated),
            resource_dedicated: DedicatedIndex::new(dedicated, DedicatedScope::Resource),
            span_dedicated: DedicatedIndex::new(dedicated, DedicatedScope::Span),
            pending: vec![false; dedicated.len()],
            rows: 0,
            trace_id: FixedSizeBinaryBuilder::new(16),
            span_id: FixedSizeBinaryBuilder::new(8),
            parent_span_id: FixedSizeBinaryBuilder::new(8),
            start_time: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            duration: Int64Builder::new(),
            name: StringBuilder::new(),
            kind: StringBuilder::new(),
            status_code: StringBuilder::new(),
            status_message: StringBuilder::new(),
            service_name: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            root_service_name: StringBuilder::new(),
            root_span_name: StringBuilder::new(),
            trace_start: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            trace_duration: Int64Builder::new(),
            nested_left: Int32Builder::new(),
            nested_right: Int32Builder::new(),
            nested_parent: Int32Builder::new(),
            child_count: Int32Builder::new(),
            dedicated: dedicated_builders,
            span_attrs: AttrMaps::new(),
            dropped_attributes: UInt32Builder::new(),
            events: EventsBuilder {
                offsets: vec![0],
                time: TimestampNanosecondBuilder::new().with_timezone("UTC"),
                name: StringBuilder::new(),
                attrs: AttrMaps::new(),
                dropped: UInt32Builder::new(),
            },
            dropped_events: UInt32Builder::new(),
            links: LinksBuilder {
                offsets: vec![0],
                trace_id: FixedSizeBinaryBuilder::new(16),
                span_id: FixedSizeBinaryBuilder::new(8),
                trace_state: StringBuilder::new(),
                attrs: AttrMaps::new(),
                dropped: UInt32Builder::new(),
                flags: UInt32Builder::new(),
            },
            dropped_links: UInt32Builder::new(),
            resource_attrs: AttrMaps::new(),
            resource_dropped: UInt32Builder::new(),
            resource_schema_url: StringBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attrs: AttrMaps::new(),
            scope_dropped: UInt32Builder::new(),
            scope_schema_url: StringBuilder::new(),
            catalog: CatalogBuilder::default(),
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends every span of one trace. `spans` must all carry `trace_id` and come in storage
    /// order (see [`trace_span_refs`]).
    pub fn append_trace(
        &mut self,
        trace_id: TraceId,
        spans: &[SpanRef<'_>],
    ) -> Result<TraceSummary, ArrowError> {
        let summary = summarize(spans);
        let span_list: Vec<&Span> = spans.iter().map(|s| s.span).collect();
        let nested = nested_set(&span_list);
        let trace_duration = summary.end_unix_nano.wrapping_sub(summary.start_unix_nano) as i64;
        for (span_ref, nested) in spans.iter().zip(&nested) {
            self.append_span(trace_id, span_ref, nested, &summary, trace_duration)?;
        }
        Ok(summary)
    }

    fn append_span(
        &mut self,
        trace_id: TraceId,
        SpanRef {
            resource,
            scope,
            span,
        }: &SpanRef<'_>,
        nested: &NestedSet,
        summary: &TraceSummary,
        trace_duration: i64,
    ) -> Result<(), ArrowError> {
        self.rows += 1;
        self.trace_id.append_value(trace_id.as_bytes())?;
        fixed_id(&mut self.span_id, &span.span_id, 8)?;
        if span_key(&span.parent_span_id).is_some() {
            fixed_id(&mut self.parent_span_id, &span.parent_span_id, 8)?;
        } else {
            self.parent_span_id.append_null();
        }
        self.start_time
            .append_value(span.start_time_unix_nano as i64);
        self.duration.append_value(
            span.end_time_unix_nano
                .wrapping_sub(span.start_time_unix_nano) as i64,
        );
        self.name.append_value(&span.name);
        self.kind.append_value(kind_name(span.kind));
        let (code, message) = span
            .status
            .as_ref()
            .map(|s| (s.code, s.message.as_str()))
            .unwrap_or((0, ""));
        self.status_code.append_value(status_name(code));
        self.status_message.append_value(message);
        self.trace_state.append_value(&span.trace_state);
        self.flags.append_value(span.flags);
        self.root_service_name
            .append_option(summary.root_service_name.as_deref());
        self.root_span_name
            .append_option(summary.root_span_name.as_deref());
        self.trace_start
            .append_value(summary.start_unix_nano as i64);
        self.trace_duration.append_value(trace_duration);
        self.nested_left.append_value(nested.left);
        self.nested_right.append_value(nested.right);
        self.nested_parent.append_value(nested.parent);
        self.child_count.append_value(nested.child_count);
        self.catalog.observe_span(&span.name, span.kind, code);

        // Resource attributes: service.name and dedicated ones get their columns.
        self.pending.fill(false);
        let mut service_name = None;
        let res = resource.resource.as_ref();
        for kv in res.map(|r| r.attributes.as_slice()).unwrap_or_default() {
            self.catalog.observe(TagScope::Resource, kv);
            if service_name.is_none()
                && kv.key == SERVICE_NAME_ATTR
                && let Some(Value::StringValue(s)) =
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
            {
                service_name = Some(s.as_str());
                continue;
            }
            if let Some(slot) = self.resource_dedicated.slot(kv)
                && !self.pending[slot]
            {
                self.pending[slot] = true;
                append_dedicated(&mut self.dedicated[slot], kv);
                continue;
            }
            self.resource_attrs.push(&kv.key, kv.value.as_ref());
        }
        self.service_name.append_option(service_name);
        self.resource_attrs.end_row()?;
        self.resource_dropped
            .append_value(res.map(|r| r.dropped_attributes_count).unwrap_or(0));
        self.resource_schema_url.append_value(&resource.schema_url);

        for kv in &span.attributes {
            self.catalog.observe(TagScope::Span, kv);
            if let Some(slot) = self.span_dedicated.slot(kv)
                && !self.pending[slot]
            {
                self.pending[slot] = true;
                append_dedicated(&mut self.dedicated[slot], kv);
                continue;
            }
            self.span_attrs.push(&kv.key, kv.value.as_ref());
        }
        self.span_attrs.end_row()?;
        for (slot, builder) in self.dedicated.iter_mut().enumerate() {
            if !self.pending[slot] {
                match builder {
                    DedicatedBuilder::Str(b) => b.append_null(),
                    DedicatedBuilder::Int(b) => b.append_null(),
                }
            }
        }
        self.dropped_attributes
            .append_value(span.dropped_attributes_count);

        let events = &mut self.events;
        for event in &span.events {
            events.time.append_value(event.time_unix_nano as i64);
            events.name.append_value(&event.name);
            for kv in &event.attributes {
                self.catalog.observe(TagScope::Event, kv);
                events.attrs.push(&kv.key, kv.value.as_ref());
            }
            events.attrs.end_row()?;
            events.dropped.append_value(event.dropped_attributes_count);
            self.catalog.observe_event_name(&event.name);
        }
        let last = *events.offsets.last().unwrap_or(&0);
        events.offsets.push(last + span.events.len() as i32);
        self.dropped_events.append_value(span.dropped_events_count);

        let links = &mut self.links;
        for link in &span.links {
            fixed_id(&mut links.trace_id, &link.trace_id, 16)?;
            fixed_id(&mut links.span_id, &link.span_id, 8)?;
            links.trace_state.append_value(&link.trace_state);
            for kv in &link.attributes {
                self.catalog.observe(TagScope::Link, kv);
                links.attrs.push(&kv.key, kv.value.as_ref());
            }
            links.attrs.end_row()?;
            links.dropped.append_value(link.dropped_attributes_count);
            links.flags.append_value(link.flags);
        }
        let last = *links.offsets.last().unwrap_or(&0);
        links.offsets.push(last + span.links.len() as i32);
        self.dropped_links.append_value(span.dropped_links_count);

        let scope_msg = scope.scope.as_ref();
        self.scope_name
            .append_value(scope_msg.map(|s| s.name.as_str()).unwrap_or(""));
        self.scope_version
            .append_value(scope_msg.map(|s| s.version.as_str()).unwrap_or(""));
        for kv in scope_msg
            .map(|s| s.attributes.as_slice())
            .unwrap_or_default()
        {
            self.catalog.observe(TagScope::Instrumentation, kv);
            self.scope_attrs.push(&kv.key, kv.value.as_ref());
        }
        self.scope_attrs.end_row()?;
        self.scope_dropped
            .append_value(scope_msg.map(|s| s.dropped_attributes_count).unwrap_or(0));
        self.scope_schema_url.append_value(&scope.schema_url);
        Ok(())
    }

    /// The rows appended so far as one record batch; the builder starts empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.root_service_name.finish()),
            Arc::new(self.root_span_name.finish()),
            Arc::new(self.trace_start.finish()),
            Arc::new(self.trace_duration.finish()),
            Arc::new(self.nested_left.finish()),
            Arc::new(self.nested_right.finish()),
            Arc::new(self.nested_parent.finish()),
            Arc::new(self.child_count.finish()),
        ];
        for builder in &mut self.dedicated {
            columns.push(match builder {
                DedicatedBuilder::Str(b) => Arc::new(b.finish()),
                DedicatedBuilder::Int(b) => Arc::new(b.finish()),
            });
        }
        columns.extend(self.span_attrs.finish());
        columns.push(Arc::new(self.dropped_attributes.finish()));

        let e = &mut self.events;
        let mut event_columns: Vec<ArrayRef> =
            vec![Arc::new(e.time.finish()), Arc::new(e.name.finish())];
        event_columns.extend(e.attrs.finish());
        event_columns.push(Arc::new(e.dropped.finish()));
        columns.push(list_array(event_fields(), event_columns, &mut e.offsets)?);
        columns.push(Arc::new(self.dropped_events.finish()));

        let l = &mut self.links;
        let mut link_columns: Vec<ArrayRef> = vec![
            Arc::new(l.trace_id.finish()),
            Arc::new(l.span_id.finish()),
            Arc::new(l.trace_state.finish()),
        ];
        link_columns.extend(l.attrs.finish());
        link_columns.push(Arc::new(l.dropped.finish()));
        link_columns.push(Arc::new(l.flags.finish()));
        columns.push(list_array(link_fields(), link_columns, &mut l.offsets)?);
        columns.push(Arc::new(self.dropped_links.finish()));

        columns.extend(self.resource_attrs.finish());
        columns.push(Arc::new(self.resource_dropped.finish()));
        columns.push(Arc::new(self.resource_schema_url.finish()));
        columns.push(Arc::new(self.scope_name.finish()));
        columns.push(Arc::new(self.scope_version.finish()));
        columns.extend(self.scope_attrs.finish());
        columns.push(Arc::new(self.scope_dropped.finish()));
        columns.push(Arc::new(self.scope_schema_url.finish()));
        RecordBatch::try_new(self.schema.clone(), columns)
    }

    /// The tag catalog of everything appended since the builder was made.
    pub fn take_catalog(&mut self) -> CatalogBuilder {
        std::mem::take(&mut self.catalog)
    }
}

fn append_dedicated(builder: &mut DedicatedBuilder, kv: &KeyValue) {
    match (builder, kv.value.as_ref().and_then(|v| v.value.as_ref())) {
        (DedicatedBuilder::Str(b), Some(Value::StringValue(s))) => b.append_value(s),
        (DedicatedBuilder::Int(b), Some(Value::IntValue(i))) => b.append_value(*i),
        // `DedicatedIndex::slot` only routes matching types here.
        (DedicatedBuilder::Str(b), _) => b.append_null(),
        (DedicatedBuilder::Int(b), _) => b.append_null(),
    }
}

/// Splits OTLP resource-spans into per-trace resource-spans, keyed and ordered by trace id.
/// Resources and scopes are copied once per trace they carry spans of. Spans with an invalid
/// trace id are returned separately so the caller can refuse them with a reason.
pub fn split_by_trace(
    batches: Vec<ResourceSpans>,
) -> (
    std::collections::BTreeMap<TraceId, Vec<ResourceSpans>>,
    usize,
) {
    let mut traces: std::collections::BTreeMap<TraceId, Vec<ResourceSpans>> = Default::default();
    let mut invalid = 0;
    for mut rs in batches {
        let scopes = std::mem::take(&mut rs.scope_spans);
        for mut ss in scopes {
            let spans = std::mem::take(&mut ss.spans);
            for span in spans {
                let Some(id) = TraceId::from_bytes(&span.trace_id) else {
                    invalid += 1;
                    continue;
                };
                let per_trace = traces.entry(id).or_default();
                // Spans of one request arrive grouped: reuse the last resource/scope if same.
                let needs_resource = per_trace.last().is_none_or(|last| {
                    last.resource != rs.resource || last.schema_url != rs.schema_url
                });
                if needs_resource {
                    per_trace.push(ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: rs.schema_url.clone(),
                    });
                }
                let target = per_trace.last_mut().expect("just pushed");
                let needs_scope = target
                    .scope_spans
                    .last()
                    .is_none_or(|last| last.scope != ss.scope || last.schema_url != ss.schema_url);
                if needs_scope {
                    target.scope_spans.push(ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: Vec::new(),
                        schema_url: ss.schema_url.clone(),
                    });
                }
                target
                    .scope_spans
                    .last_mut()
                    .expect("just pushed")
                    .spans
                    .push(span);
            }
        }
    }
    (traces, invalid)
}
