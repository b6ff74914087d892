//! The span table: one flat row per span. Every reader (TraceQL planner, SQL) and every writer
//! (the ingester, the block generator) goes through the column names and types defined here.
//!
//! Attributes are stored per scope in one map per value type (`span_attr_str`,
//! `span_attr_int`, …), so that a typed comparison reads only the map of its type and SQL can
//! address a value as `span_attr_str['http.method']`. Values that are not scalars (arrays,
//! key-value lists, bytes) keep their OTLP/JSON form in `*_attr_other`. Frequent attributes get
//! dedicated columns named as TraceQL spells them (`"resource.k8s.pod.name"`), which carry
//! their own statistics and dictionary pages and are pruned on their own.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::config::{DedicatedColumn, DedicatedScope, DedicatedType};

pub const TRACE_ID: &str = "trace_id";
pub const SPAN_ID: &str = "span_id";
pub const PARENT_SPAN_ID: &str = "parent_span_id";
pub const TRACE_STATE: &str = "trace_state";
pub const NAME: &str = "name";
pub const KIND: &str = "kind";
pub const STATUS_CODE: &str = "status_code";
pub const STATUS_MESSAGE: &str = "status_message";
pub const START_TIME: &str = "start_time";
pub const DURATION_NS: &str = "duration_ns";
pub const FLAGS: &str = "flags";
pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
pub const SERVICE_NAME: &str = "service_name";
pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: &str = "resource_dropped_attributes_count";
pub const SCOPE_NAME: &str = "scope_name";
pub const SCOPE_VERSION: &str = "scope_version";
pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";
pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: &str = "scope_dropped_attributes_count";
pub const EVENTS: &str = "events";
pub const LINKS: &str = "links";
pub const NESTED_SET_LEFT: &str = "nested_set_left";
pub const NESTED_SET_RIGHT: &str = "nested_set_right";
pub const NESTED_SET_PARENT: &str = "nested_set_parent";
pub const CHILD_COUNT: &str = "child_count";
pub const ROOT_SERVICE_NAME: &str = "root_service_name";
pub const ROOT_SPAN_NAME: &str = "root_span_name";
pub const TRACE_START_TIME: &str = "trace_start_time";
pub const TRACE_DURATION_NS: &str = "trace_duration_ns";

/// The attribute maps of one scope, in the order they appear in the schema.
pub const ATTR_KINDS: [AttrKind; 5] = [
    AttrKind::Str,
    AttrKind::Int,
    AttrKind::Float,
    AttrKind::Bool,
    AttrKind::Other,
];

/// The value type of one attribute map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    Str,
    Int,
    Float,
    Bool,
    /// Arrays, key-value lists and bytes, as OTLP/JSON text.
    Other,
}

impl AttrKind {
    pub fn suffix(self) -> &'static str {
        match self {
            AttrKind::Str => "str",
            AttrKind::Int => "int",
            AttrKind::Float => "float",
            AttrKind::Bool => "bool",
            AttrKind::Other => "other",
        }
    }

    pub fn value_type(self) -> DataType {
        match self {
            AttrKind::Str | AttrKind::Other => DataType::Utf8,
            AttrKind::Int => DataType::Int64,
            AttrKind::Float => DataType::Float64,
            AttrKind::Bool => DataType::Boolean,
        }
    }
}

/// A set of [`AttrKind`]s: the maps an attribute's values may be in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttrKinds(u8);

impl AttrKinds {
    pub const NONE: AttrKinds = AttrKinds(0);
    pub const ALL: AttrKinds = AttrKinds(0b11111);

    pub fn with(self, kind: AttrKind) -> Self {
        AttrKinds(self.0 | 1 << kind as u8)
    }

    pub fn union(self, other: AttrKinds) -> Self {
        AttrKinds(self.0 | other.0)
    }

    pub fn contains(self, kind: AttrKind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Column name of an attribute map: `{prefix}_attr_{kind}`, e.g. `span_attr_int`, or inside
/// an event or link struct `attr_int`.
pub fn attr_column(prefix: &str, kind: AttrKind) -> String {
    if prefix.is_empty() {
        format!("attr_{}", kind.suffix())
    } else {
        format!("{prefix}_attr_{}", kind.suffix())
    }
}

/// Column name of a dedicated attribute column: the attribute as TraceQL writes it.
pub fn dedicated_column_name(column: &DedicatedColumn) -> String {
    let scope = match column.scope {
        DedicatedScope::Resource => "resource",
        DedicatedScope::Span => "span",
    };
    format!("{scope}.{}", column.name)
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// `Map<Utf8, value>` as arrow's `MapBuilder` produces it (so built and declared types agree).
pub fn map_type(value: DataType) -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", value, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn attr_fields(prefix: &str) -> Vec<Field> {
    ATTR_KINDS
        .iter()
        .map(|&kind| {
            Field::new(
                attr_column(prefix, kind),
                map_type(kind.value_type()),
                false,
            )
        })
        .collect()
}

/// Fields of one element of the `events` list.
pub fn event_fields() -> Fields {
    let mut fields = vec![
        Field::new("time", timestamp_type(), false),
        Field::new("name", DataType::Utf8, false),
    ];
    fields.extend(attr_fields(""));
    fields.push(Field::new(
        DROPPED_ATTRIBUTES_COUNT,
        DataType::UInt32,
        false,
    ));
    Fields::from(fields)
}

/// Fields of one element of the `links` list.
pub fn link_fields() -> Fields {
    let mut fields = vec![
        Field::new(TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(SPAN_ID, DataType::FixedSizeBinary(8), false),
        Field::new(TRACE_STATE, DataType::Utf8, false),
    ];
    fields.extend(attr_fields(""));
    fields.push(Field::new(
        DROPPED_ATTRIBUTES_COUNT,
        DataType::UInt32,
        false,
    ));
    fields.push(Field::new(FLAGS, DataType::UInt32, false));
    Fields::from(fields)
}

pub fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(fields),
        false,
    )))
}

/// The span table's schema for a block written with the given dedicated columns.
pub fn span_schema(dedicated: &[DedicatedColumn]) -> SchemaRef {
    let mut fields = vec![
        Field::new(TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(SPAN_ID, DataType::FixedSizeBinary(8), false),
        // Null for a root span.
        Field::new(PARENT_SPAN_ID, DataType::FixedSizeBinary(8), true),
        Field::new(START_TIME, timestamp_type(), false),
        Field::new(DURATION_NS, DataType::Int64, false),
        Field::new(NAME, DataType::Utf8, false),
        Field::new(KIND, DataType::Utf8, false),
        Field::new(STATUS_CODE, DataType::Utf8, false),
        Field::new(STATUS_MESSAGE, DataType::Utf8, false),
        Field::new(SERVICE_NAME, DataType::Utf8, true),
        Field::new(TRACE_STATE, DataType::Utf8, false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(ROOT_SERVICE_NAME, DataType::Utf8, true),
        Field::new(ROOT_SPAN_NAME, DataType::Utf8, true),
        Field::new(TRACE_START_TIME, timestamp_type(), false),
        Field::new(TRACE_DURATION_NS, DataType::Int64, false),
        Field::new(NESTED_SET_LEFT, DataType::Int32, false),
        Field::new(NESTED_SET_RIGHT, DataType::Int32, false),
        Field::new(NESTED_SET_PARENT, DataType::Int32, false),
        Field::new(CHILD_COUNT, DataType::Int32, false),
    ];
    for column in dedicated {
        let data_type = match column.r#type {
            DedicatedType::String => DataType::Utf8,
            DedicatedType::Int => DataType::Int64,
        };
        fields.push(Field::new(dedicated_column_name(column), data_type, true));
    }
    fields.extend(attr_fields("span"));
    fields.push(Field::new(
        DROPPED_ATTRIBUTES_COUNT,
        DataType::UInt32,
        false,
    ));
    fields.push(Field::new(EVENTS, list_of(event_fields()), false));
    fields.push(Field::new(DROPPED_EVENTS_COUNT, DataType::UInt32, false));
    fields.push(Field::new(LINKS, list_of(link_fields()), false));
    fields.push(Field::new(DROPPED_LINKS_COUNT, DataType::UInt32, false));
    fields.extend(attr_fields("resource"));
    fields.push(Field::new(
        RESOURCE_DROPPED_ATTRIBUTES_COUNT,
        DataType::UInt32,
        false,
    ));
    fields.push(Field::new(RESOURCE_SCHEMA_URL, DataType::Utf8, false));
    fields.push(Field::new(SCOPE_NAME, DataType::Utf8, false));
    fields.push(Field::new(SCOPE_VERSION, DataType::Utf8, false));
    fields.extend(attr_fields("scope"));
    fields.push(Field::new(
        SCOPE_DROPPED_ATTRIBUTES_COUNT,
        DataType::UInt32,
        false,
    ));
    fields.push(Field::new(SCOPE_SCHEMA_URL, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// Which group a column belongs to, for reporting bytes per column group.
pub fn column_group(column: &str) -> &'static str {
    let top = column.split('.').next().unwrap_or(column);
    if column.starts_with("resource.") || column.starts_with("span.") {
        return "dedicated attributes";
    }
    match top {
        TRACE_ID | SPAN_ID | PARENT_SPAN_ID | TRACE_STATE | FLAGS => "ids",
        START_TIME | DURATION_NS => "timing",
        NAME | KIND | STATUS_CODE | STATUS_MESSAGE | SERVICE_NAME => "span intrinsics",
        ROOT_SERVICE_NAME | ROOT_SPAN_NAME | TRACE_START_TIME | TRACE_DURATION_NS => "trace level",
        NESTED_SET_LEFT | NESTED_SET_RIGHT | NESTED_SET_PARENT | CHILD_COUNT => "structure",
        EVENTS | DROPPED_EVENTS_COUNT => "events",
        LINKS | DROPPED_LINKS_COUNT => "links",
        t if t.starts_with("span_attr") || t == DROPPED_ATTRIBUTES_COUNT => "span attributes",
        t if t.starts_with("resource_") => "resource",
        t if t.starts_with("scope_") => "scope",
        _ => "other",
    }
}

/// OTLP `Span.kind` as the span table spells it (TraceQL's names).
pub fn kind_name(kind: i32) -> std::borrow::Cow<'static, str> {
    match kind {
        0 => "unspecified".into(),
        1 => "internal".into(),
        2 => "server".into(),
        3 => "client".into(),
        4 => "producer".into(),
        5 => "consumer".into(),
        other => other.to_string().into(),
    }
}

/// OTLP `Status.code` as the span table spells it (TraceQL's names).
pub fn status_name(code: i32) -> std::borrow::Cow<'static, str> {
    match code {
        0 => "unset".into(),
        1 => "ok".into(),
        2 => "error".into(),
        other => other.to_string().into(),
    }
}
