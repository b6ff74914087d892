//! The planner's lowering, pinned: for each family of TraceQL nodes, the *unoptimized* logical
//! plan over a scan of the span table's schema alone (no blocks, no session), with its output
//! schema, as DataFusion's own plan tests write them; and each error the planner itself raises.
//! Pushdown into real scans is pinned separately, over blocks (`search::plans_are_pinned_…`).

use std::sync::Arc;

use datafusion::logical_expr::{LogicalPlanBuilder, LogicalTableSource};
use tracefusion::config::DedicatedColumn;
use tracefusion::planner::{Planner, StoredSpans};
use tracefusion::storage::catalog::TagScope;
use tracefusion::storage::schema::{AttrKind, AttrKinds, span_schema};
use tracefusion::traceql::compile;

/// What the tag catalogs of an imagined store say: `db.system` is a span string attribute
/// whose only values are `redis` and `postgresql`, `retries` a span int or double,
/// `k8s.pod.name` a resource string with more values than a catalog lists (in its dedicated
/// column, which every block has); nothing else is stored.
struct Catalogs;

impl StoredSpans for Catalogs {
    fn complete_columns(&self) -> &[String] {
        static COMPLETE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        COMPLETE.get_or_init(|| vec!["resource.k8s.pod.name".to_string()])
    }

    fn attribute_kinds(&self, scope: TagScope, name: &str) -> AttrKinds {
        match (scope, name) {
            (TagScope::Span, "db.system") => AttrKinds::NONE.with(AttrKind::Str),
            (TagScope::Span, "retries") => {
                AttrKinds::NONE.with(AttrKind::Int).with(AttrKind::Float)
            }
            (TagScope::Resource, "k8s.pod.name") => AttrKinds::NONE.with(AttrKind::Str),
            _ => AttrKinds::NONE,
        }
    }

    fn may_hold_string(&self, scope: TagScope, name: &str, value: &str) -> bool {
        match (scope, name) {
            (TagScope::Span, "db.system") => ["redis", "postgresql"].contains(&value),
            (TagScope::Resource, "k8s.pod.name") => true,
            _ => false,
        }
    }
}

fn planner(stored: Option<Arc<dyn StoredSpans>>) -> Planner {
    let schema = span_schema(&DedicatedColumn::defaults());
    let source = Arc::new(LogicalTableSource::new(schema.clone()));
    let scan = LogicalPlanBuilder::scan("spans", source, None)
        .unwrap()
        .build()
        .unwrap();
    let planner = Planner::new(scan, schema, None);
    match stored {
        Some(stored) => planner.with_stored_spans(stored),
        None => planner,
    }
}

/// The unoptimized plan of `query` with nothing known of the store, then its output schema.
fn plan(query: &str) -> String {
    plan_with(query, None)
}

/// The unoptimized plan of `query` over the store [`Catalogs`] describes.
fn resolved(query: &str) -> String {
    plan_with(query, Some(Arc::new(Catalogs)))
}

fn plan_with(query: &str, stored: Option<Arc<dyn StoredSpans>>) -> String {
    let ast = compile(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let plan = planner(stored)
        .search(&ast)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .plan;
    let output: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    format!("{}\noutput: {}", plan.display_indent(), output.join(", "))
}

/// The planner's error for `query`, which passes validation.
fn rejected(query: &str) -> String {
    let ast = compile(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    match planner(None).search(&ast) {
        Ok(plan) => panic!("{query}: planned\n{}", plan.plan.display_indent()),
        Err(e) => e.to_string(),
    }
}

/// Intrinsic conditions are one filter over the scan's columns; the spanset key of a plain filter is empty.
#[test]
fn intrinsics() {
    insta::assert_snapshot!(plan(r#"{ status = error && duration > 10ms }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, spans.status_code AS __value0
      Filter: spans.status_code = Utf8("error") IS TRUE AND spans.duration_ns > Int64(10000000) IS TRUE IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}

/// Trace-level intrinsics read the trace columns every span row carries.
#[test]
fn trace_level_intrinsics() {
    insta::assert_snapshot!(plan(r#"{ trace:rootService = "frontend" && trace:duration > 1s }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset
      Filter: spans.root_service_name = Utf8("frontend") IS TRUE AND spans.trace_duration_ns > Int64(1000000000) IS TRUE IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8
    "#);
}

/// A regex match, and a negated one that must not keep spans without the attribute.
#[test]
fn regex() {
    insta::assert_snapshot!(plan(r#"{ name =~ "GET /product.*" && span.http.route !~ "/api.*" }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, coalesce(spans.span.http.route, get_field(spans.span_attr_str, Utf8("http.route"))) AS __value0
      Filter: spans.name ~ Utf8("^(?s:GET /product.*)$") IS TRUE AND coalesce(spans.span.http.route, get_field(spans.span_attr_str, Utf8("http.route"))) !~ Utf8("^(?s:/api.*)$") IS TRUE IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}

/// With nothing known of the store, an attribute compared to a string is looked up in its scope's string map (and in a dedicated column where it has one).
#[test]
fn attribute_of_unknown_type() {
    insta::assert_snapshot!(plan(r#"{ span.db.system = "redis" }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, get_field(spans.span_attr_str, Utf8("db.system")) AS __value0
      Filter: get_field(spans.span_attr_str, Utf8("db.system")) = Utf8("redis") IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}

/// An unscoped attribute with nothing known: span first, then resource, each over every map a number can be in.
#[test]
fn unscoped_attribute_unresolved() {
    insta::assert_snapshot!(plan(r#"{ .retries > 2 }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, CASE WHEN get_field(spans.span_attr_str, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_int, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_float, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_bool, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_other, Utf8("retries")) IS NOT NULL THEN get_field(spans.span_attr_int, Utf8("retries")) ELSE get_field(spans.resource_attr_int, Utf8("retries")) END AS __value0, CASE WHEN get_field(spans.span_attr_str, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_int, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_float, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_bool, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_other, Utf8("retries")) IS NOT NULL THEN get_field(spans.span_attr_float, Utf8("retries")) ELSE get_field(spans.resource_attr_float, Utf8("retries")) END AS __value1
      Filter: CASE WHEN get_field(spans.span_attr_str, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_int, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_float, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_bool, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_other, Utf8("retries")) IS NOT NULL THEN get_field(spans.span_attr_int, Utf8("retries")) ELSE get_field(spans.resource_attr_int, Utf8("retries")) END > Int64(2) OR CASE WHEN get_field(spans.span_attr_str, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_int, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_float, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_bool, Utf8("retries")) IS NOT NULL OR get_field(spans.span_attr_other, Utf8("retries")) IS NOT NULL THEN get_field(spans.span_attr_float, Utf8("retries")) ELSE get_field(spans.resource_attr_float, Utf8("retries")) END > CAST(Int64(2) AS Float64) IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Int64, __value1:Float64
    "#);
}

/// The same query over a store whose catalogs hold `retries` only as a span int or double: two map lookups, no resource side.
#[test]
fn unscoped_attribute_resolved() {
    insta::assert_snapshot!(resolved(r#"{ .retries > 2 }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, get_field(spans.span_attr_int, Utf8("retries")) AS __value0, get_field(spans.span_attr_float, Utf8("retries")) AS __value1
      Filter: get_field(spans.span_attr_int, Utf8("retries")) > Int64(2) OR get_field(spans.span_attr_float, Utf8("retries")) > CAST(Int64(2) AS Float64) IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Int64, __value1:Float64
    "#);
}

/// `db.system` is stored only as a span string: one map lookup.
#[test]
fn resolved_to_one_map() {
    insta::assert_snapshot!(resolved(r#"{ .db.system = "redis" }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, get_field(spans.span_attr_str, Utf8("db.system")) AS __value0
      Filter: get_field(spans.span_attr_str, Utf8("db.system")) = Utf8("redis") IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}

/// An attribute no catalog holds matches no span, and is read from nowhere.
#[test]
fn absent_attribute() {
    insta::assert_snapshot!(resolved(r#"{ .no.such.attribute = "x" }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset
      Filter: Boolean(false)
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8
    "#);
}

/// A dedicated column every block has is read alone, without the generic map.
#[test]
fn complete_dedicated_column() {
    insta::assert_snapshot!(resolved(r#"{ resource.k8s.pod.name = "cart-1" }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, spans.resource.k8s.pod.name AS __value0
      Filter: spans.resource.k8s.pod.name = Utf8("cart-1") IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}

/// Existence tests.
#[test]
fn nil() {
    insta::assert_snapshot!(plan(r#"{ span.http.route != nil && span.missing = nil }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, coalesce(spans.span.http.route, get_field(spans.span_attr_str, Utf8("http.route"))) AS __value0, get_field(spans.span_attr_int, Utf8("http.route")) AS __value1, get_field(spans.span_attr_float, Utf8("http.route")) AS __value2, get_field(spans.span_attr_bool, Utf8("http.route")) AS __value3, get_field(spans.span_attr_other, Utf8("http.route")) AS __value4, get_field(spans.span_attr_str, Utf8("missing")) AS __value5, get_field(spans.span_attr_int, Utf8("missing")) AS __value6, get_field(spans.span_attr_float, Utf8("missing")) AS __value7, get_field(spans.span_attr_bool, Utf8("missing")) AS __value8, get_field(spans.span_attr_other, Utf8("missing")) AS __value9
      Filter: coalesce(spans.span.http.route, get_field(spans.span_attr_str, Utf8("http.route"))) IS NOT NULL OR get_field(spans.span_attr_int, Utf8("http.route")) IS NOT NULL OR get_field(spans.span_attr_float, Utf8("http.route")) IS NOT NULL OR get_field(spans.span_attr_bool, Utf8("http.route")) IS NOT NULL OR get_field(spans.span_attr_other, Utf8("http.route")) IS NOT NULL IS TRUE AND NOT get_field(spans.span_attr_str, Utf8("missing")) IS NOT NULL OR get_field(spans.span_attr_int, Utf8("missing")) IS NOT NULL OR get_field(spans.span_attr_float, Utf8("missing")) IS NOT NULL OR get_field(spans.span_attr_bool, Utf8("missing")) IS NOT NULL OR get_field(spans.span_attr_other, Utf8("missing")) IS NOT NULL IS TRUE IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8, __value1:Int64, __value2:Float64, __value3:Boolean, __value4:Utf8, __value5:Utf8, __value6:Int64, __value7:Float64, __value8:Boolean, __value9:Utf8
    "#);
}

/// Event conditions unnest the span's events; span conditions beside them stay on the span.
#[test]
fn events() {
    insta::assert_snapshot!(plan(r#"{ event:name = "exception" && span.http.route = "/cart" }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, coalesce(spans.span.http.route, get_field(spans.span_attr_str, Utf8("http.route"))) AS __value2
      Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, __spanset
        Filter: __first1 = UInt64(1)
          WindowAggr: windowExpr=[[row_number() PARTITION BY [spans.trace_id, __spanset, spans.span_id] ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING AS __first1]]
            Filter: get_field(__events0, Utf8("name")) = Utf8("exception") IS TRUE
              Unnest: lists[__events0|depth=1] structs[]
                Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, __spanset, CASE WHEN cardinality(spans.events) > UInt64(0) THEN spans.events END AS __events0
                  Filter: coalesce(spans.span.http.route, get_field(spans.span_attr_str, Utf8("http.route"))) = Utf8("/cart") IS TRUE
                    Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
                      TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value2:Utf8
    "#);
}

/// Link conditions unnest the span's links.
#[test]
fn links() {
    insta::assert_snapshot!(plan(r#"{ link:traceID != "" }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset
      Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, __spanset
        Filter: __first1 = UInt64(1)
          WindowAggr: windowExpr=[[row_number() PARTITION BY [spans.trace_id, __spanset, spans.span_id] ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING AS __first1]]
            Filter: encode(get_field(__links0, Utf8("trace_id")), Utf8("hex")) != Utf8("") IS TRUE
              Unnest: lists[__links0|depth=1] structs[]
                Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, __spanset, CASE WHEN cardinality(spans.links) > UInt64(0) THEN spans.links END AS __links0
                  Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
                    TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8
    "#);
}

/// `&&` between spansets: both sides in the same trace.
#[test]
fn spanset_and() {
    insta::assert_snapshot!(plan(r#"{ status = error } && { kind = producer }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, spans.status_code AS __value4, spans.kind AS __value5
      Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, __spanset
        Filter: __has2 AND __has3
          WindowAggr: windowExpr=[[bool_or(__match0) PARTITION BY [spans.trace_id, __spanset] ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING AS __has2, bool_or(__match1) PARTITION BY [spans.trace_id, __spanset] ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING AS __has3]]
            Filter: __match0 OR __match1
              Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, __spanset, spans.status_code = Utf8("error") IS TRUE AS __match0, spans.kind = Utf8("producer") IS TRUE AS __match1
                Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
                  TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value4:Utf8, __value5:Utf8
    "#);
}

/// `||` of plain filters is one filter.
#[test]
fn spanset_or() {
    insta::assert_snapshot!(plan(r#"{ status = error } || { kind = producer }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, spans.status_code AS __value0, spans.kind AS __value1
      Filter: spans.status_code = Utf8("error") IS TRUE OR spans.kind = Utf8("producer") IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8, __value1:Utf8
    "#);
}

/// Plain `>`: a hash join on the parent span id.
#[test]
fn child() {
    insta::assert_snapshot!(plan(r#"{ kind = server } > { kind = client }"#), @r#"
    Projection: r.trace_id, r.span_id, r.start_time, r.duration_ns, r.name, r.trace_start_time, r.trace_duration_ns, r.root_service_name, r.root_span_name, r.__spanset, r.kind AS __value0
      LeftSemi Join:  Filter: l.trace_id = r.trace_id AND l.__spanset = r.__spanset AND l.nested_set_left = r.nested_set_parent AND l.nested_set_left > Int32(0)
        SubqueryAlias: r
          Filter: spans.kind = Utf8("client") IS TRUE
            Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
              TableScan: spans
        SubqueryAlias: l
          Filter: spans.kind = Utf8("server") IS TRUE
            Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
              TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}

/// `>>`: a StructuralJoin.
#[test]
fn descendant() {
    insta::assert_snapshot!(plan(r#"{ kind = server } >> { status = error }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, spans.kind AS __value0, spans.status_code AS __value1
      StructuralJoin: right descendant of left
        Projection: spans.trace_id, __spanset, spans.span_id, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent
          Filter: spans.nested_set_left > Int32(0)
            Filter: spans.kind = Utf8("server") IS TRUE
              Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
                TableScan: spans
        Filter: spans.nested_set_left > Int32(0)
          Filter: spans.status_code = Utf8("error") IS TRUE
            Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
              TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8, __value1:Utf8
    "#);
}

/// `!~`: the spans of the right side with no sibling on the left.
#[test]
fn not_sibling() {
    insta::assert_snapshot!(plan(r#"{ kind = server } !~ { kind = client }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, spans.kind AS __value0
      StructuralJoin: right not sibling of left
        Projection: spans.trace_id, __spanset, spans.span_id, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent
          Filter: spans.kind = Utf8("server") IS TRUE
            Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
              TableScan: spans
        Filter: spans.kind = Utf8("client") IS TRUE
          Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
            TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}

/// A scalar filter on an aggregate: a window over the spanset.
#[test]
fn count() {
    insta::assert_snapshot!(plan(r#"{ status = error } | count() > 1"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, __agg0, spans.status_code AS __value1
      Filter: __agg0 > Int64(1) IS TRUE
        WindowAggr: windowExpr=[[count(Int64(1)) PARTITION BY [spans.trace_id, __spanset] ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING AS __agg0]]
          Filter: spans.status_code = Utf8("error") IS TRUE
            Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
              TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __agg0:Int64, __value1:Utf8
    "#);
}

/// `by()` splits spansets: the key grows by the value.
#[test]
fn by() {
    insta::assert_snapshot!(plan(r#"{ kind = server } | by(resource.service.name) | avg(duration) > 1ms"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, __value0, __value1, __value2, __value3, __value4, __agg5, spans.kind AS __value6
      Filter: __agg5 > CAST(Int64(1000000) AS Float64) IS TRUE
        WindowAggr: windowExpr=[[avg(CAST(spans.duration_ns AS Float64)) PARTITION BY [spans.trace_id, __spanset] ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING AS __agg5]]
          Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, concat(__spanset, Utf8(""), coalesce(Utf8("s") || CAST(spans.service_name AS Utf8), Utf8("i") || CAST(get_field(spans.resource_attr_int, Utf8("service.name")) AS Utf8), Utf8("f") || CAST(get_field(spans.resource_attr_float, Utf8("service.name")) AS Utf8), Utf8("b") || CAST(get_field(spans.resource_attr_bool, Utf8("service.name")) AS Utf8), Utf8("o") || CAST(get_field(spans.resource_attr_other, Utf8("service.name")) AS Utf8), Utf8("nil"))) AS __spanset, spans.service_name AS __value0, get_field(spans.resource_attr_int, Utf8("service.name")) AS __value1, get_field(spans.resource_attr_float, Utf8("service.name")) AS __value2, get_field(spans.resource_attr_bool, Utf8("service.name")) AS __value3, get_field(spans.resource_attr_other, Utf8("service.name")) AS __value4
            Filter: spans.kind = Utf8("server") IS TRUE
              Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
                TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8, __value1:Int64, __value2:Float64, __value3:Boolean, __value4:Utf8, __agg5:Float64, __value6:Utf8
    "#);
}

/// `select()` adds the selected fields to the output.
#[test]
fn select() {
    insta::assert_snapshot!(plan(r#"{ status = error } | select(span.http.route, resource.service.name)"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, spans.status_code AS __value0, coalesce(spans.span.http.route, get_field(spans.span_attr_str, Utf8("http.route"))) AS __value1, get_field(spans.span_attr_int, Utf8("http.route")) AS __value2, get_field(spans.span_attr_float, Utf8("http.route")) AS __value3, get_field(spans.span_attr_bool, Utf8("http.route")) AS __value4, get_field(spans.span_attr_other, Utf8("http.route")) AS __value5, spans.service_name AS __value6, get_field(spans.resource_attr_int, Utf8("service.name")) AS __value7, get_field(spans.resource_attr_float, Utf8("service.name")) AS __value8, get_field(spans.resource_attr_bool, Utf8("service.name")) AS __value9, get_field(spans.resource_attr_other, Utf8("service.name")) AS __value10
      Filter: spans.status_code = Utf8("error") IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8, __value1:Utf8, __value2:Int64, __value3:Float64, __value4:Boolean, __value5:Utf8, __value6:Utf8, __value7:Int64, __value8:Float64, __value9:Boolean, __value10:Utf8
    "#);
}

/// `coalesce()` merges a trace's spansets.
#[test]
fn coalesce() {
    insta::assert_snapshot!(plan(r#"{ } | by(name) | coalesce()"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset
      Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, concat(__spanset, Utf8(""), coalesce(Utf8("s") || CAST(spans.name AS Utf8), Utf8("nil"))) AS __spanset, spans.name AS __value0
          Filter: Boolean(true)
            Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
              TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8
    "#);
}

/// Two pipelines joined by `&&`.
#[test]
fn pipeline_and() {
    insta::assert_snapshot!(plan(r#"({ kind = server } | count() > 1) && ({ status = error })"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, spans.kind AS __value1, spans.status_code AS __value2
      StructuralJoin: both in spansets of both
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, __spanset
          Filter: __agg0 > Int64(1) IS TRUE
            WindowAggr: windowExpr=[[count(Int64(1)) PARTITION BY [spans.trace_id, __spanset] ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING AS __agg0]]
              Filter: spans.kind = Utf8("server") IS TRUE
                Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
                  TableScan: spans
        Filter: spans.status_code = Utf8("error") IS TRUE
          Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
            TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value1:Utf8, __value2:Utf8
    "#);
}

/// The one rule the planner enforces itself: a search runs a metrics query's spanset
/// pipeline, but not arithmetic between metrics queries.
#[test]
fn math_between_metrics_queries_is_not_a_search() {
    insta::assert_snapshot!(
        rejected("({ } | rate()) * 2"),
        @"External error: math expressions are not supported in search"
    );
}

/// The planner's other refusals are guards: validation refuses those queries first, with
/// line and column, so a user never meets the planner's message.
#[test]
fn what_the_planner_guards_against_is_refused_in_validation_with_its_position() {
    for (query, position) in [
        ("({ } | count()) > ({ } | count())", "line 1, col 17"),
        (r#"{ parent.name = "x" }"#, "line 1, col 3"),
        ("{ } | 1 < count()", "line 1, col 9"),
        ("{ } | count() > avg(duration)", "line 1, col 15"),
        ("{ name =~ 1 }", "line 1, col 8"),
        ("{ } | by(event:name)", "line 1, col 7"),
    ] {
        let error = compile(query).expect_err(query).to_string();
        assert!(error.contains(position), "{query}: {error}");
    }
}

/// A value the catalogs list for no span (they list every value of `db.system`): the filter
/// is false and the optimizer drops the scan, so the search reads no block.
#[test]
fn absent_value() {
    insta::assert_snapshot!(resolved(r#"{ .db.system = "mysql" && duration > 1ms }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, get_field(spans.span_attr_str, Utf8("db.system")) AS __value0
      Filter: Boolean(false)
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}

/// Negated, the comparison is true for spans without the value (and nil for spans without the
/// attribute): only a condition the whole filter requires is planned away.
#[test]
fn negated_absent_value() {
    insta::assert_snapshot!(resolved(r#"{ !(.db.system = "mysql") }"#), @r#"
    Projection: spans.trace_id, spans.span_id, spans.start_time, spans.duration_ns, spans.name, spans.trace_start_time, spans.trace_duration_ns, spans.root_service_name, spans.root_span_name, __spanset, get_field(spans.span_attr_str, Utf8("db.system")) AS __value0
      Filter: NOT get_field(spans.span_attr_str, Utf8("db.system")) = Utf8("mysql") IS TRUE IS TRUE
        Projection: spans.trace_id, spans.span_id, spans.parent_span_id, spans.start_time, spans.duration_ns, spans.name, spans.kind, spans.status_code, spans.status_message, spans.service_name, spans.trace_state, spans.flags, spans.root_service_name, spans.root_span_name, spans.trace_start_time, spans.trace_duration_ns, spans.nested_set_left, spans.nested_set_right, spans.nested_set_parent, spans.child_count, spans.resource.k8s.cluster.name, spans.resource.k8s.namespace.name, spans.resource.k8s.pod.name, spans.resource.k8s.container.name, spans.span.http.request.method, spans.span.http.response.status_code, spans.span.http.route, spans.span.url.path, spans.span.server.address, spans.span_attr_str, spans.span_attr_int, spans.span_attr_float, spans.span_attr_bool, spans.span_attr_other, spans.dropped_attributes_count, spans.events, spans.dropped_events_count, spans.links, spans.dropped_links_count, spans.resource_attr_str, spans.resource_attr_int, spans.resource_attr_float, spans.resource_attr_bool, spans.resource_attr_other, spans.resource_dropped_attributes_count, spans.resource_schema_url, spans.scope_name, spans.scope_version, spans.scope_attr_str, spans.scope_attr_int, spans.scope_attr_float, spans.scope_attr_bool, spans.scope_attr_other, spans.scope_dropped_attributes_count, spans.scope_schema_url, Utf8("") AS __spanset
          TableScan: spans
    output: trace_id:FixedSizeBinary(16), span_id:FixedSizeBinary(8), start_time:Timestamp(ns, "UTC"), duration_ns:Int64, name:Utf8, trace_start_time:Timestamp(ns, "UTC"), trace_duration_ns:Int64, root_service_name:Utf8, root_span_name:Utf8, __spanset:Utf8, __value0:Utf8
    "#);
}
