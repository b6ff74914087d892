//! Tag discovery narrowed by a filter: the distinct values of one field, or the attribute
//! names, over the spans a `q` filter matches.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::functions_aggregate::count::count_all;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::scalar::ScalarValue;

use super::field::{FieldLowering, ident};
use super::{Planner, StoredSpans};
use crate::storage::schema::{self, ATTR_KINDS, attr_column};
use crate::traceql::ast::{FieldExpr, FieldRef};

/// Output columns of [`field_values`]: one per value type (null where the value has another
/// type), and the number of matching spans with that value.
pub const VALUE_STR: &str = "value_str";
pub const VALUE_INT: &str = "value_int";
pub const VALUE_FLOAT: &str = "value_float";
pub const VALUE_BOOL: &str = "value_bool";
pub const VALUE_SPANS: &str = "spans";

/// One row per distinct value of `field` over the spans of `scan` that pass `span_filter` (the
/// time range) and `filter`, most frequent first. `schema` and `stored` are those of
/// [`FieldLowering::new`]. Values that are not strings, numbers or booleans (arrays,
/// key-value lists) are left out, as are statuses and kinds, which have fixed keyword lists.
pub fn field_values(
    scan: LogicalPlan,
    schema: SchemaRef,
    stored: &Arc<dyn StoredSpans>,
    span_filter: Option<Expr>,
    filter: Option<&FieldExpr>,
    field: &FieldRef,
) -> Result<LogicalPlan> {
    let fields = FieldLowering::new(&schema, stored.as_ref());
    let value = fields.field(field)?;
    let typed = |e: &Option<Expr>, null: ScalarValue, name: &str| {
        e.clone().unwrap_or(lit(null)).alias(name)
    };
    let columns = vec![
        typed(&value.str, ScalarValue::Utf8(None), VALUE_STR),
        typed(&value.int, ScalarValue::Int64(None), VALUE_INT),
        typed(&value.float, ScalarValue::Float64(None), VALUE_FLOAT),
        typed(&value.bool, ScalarValue::Boolean(None), VALUE_BOOL),
    ];
    let any_value = [VALUE_STR, VALUE_INT, VALUE_FLOAT, VALUE_BOOL]
        .into_iter()
        .map(|c| ident(c).is_not_null())
        .reduce(Expr::or)
        .expect("four columns");
    matching(scan, schema, stored, span_filter, filter)?
        .project(columns)?
        .filter(any_value)?
        .aggregate(
            [VALUE_STR, VALUE_INT, VALUE_FLOAT, VALUE_BOOL].map(ident),
            [count_all().alias(VALUE_SPANS)],
        )?
        .sort([
            ident(VALUE_SPANS).sort(false, false),
            ident(VALUE_STR).sort(true, true),
            ident(VALUE_INT).sort(true, true),
            ident(VALUE_FLOAT).sort(true, true),
            ident(VALUE_BOOL).sort(true, true),
        ])?
        .build()
}

/// Where an attribute name was found: the TraceQL scope it is listed under and the column.
#[derive(Debug, Clone, PartialEq)]
pub struct NameSource {
    /// `span`, `resource` or `instrumentation`.
    pub scope: &'static str,
    pub column: String,
    /// The column holds one attribute (a dedicated column): this name, where it is not null.
    /// Otherwise the column is a map whose keys are the names.
    pub dedicated: Option<String>,
}

/// The columns holding attribute names of the spans of `scan` that pass `span_filter` and
/// `filter`: every attribute map, and the dedicated columns (`service_name` among them).
/// Names of event and link attributes are not listed.
pub fn tag_names(
    scan: LogicalPlan,
    schema: SchemaRef,
    stored: &Arc<dyn StoredSpans>,
    span_filter: Option<Expr>,
    filter: Option<&FieldExpr>,
) -> Result<(LogicalPlan, Vec<NameSource>)> {
    let mut sources = Vec::new();
    for (prefix, scope) in [
        ("span", "span"),
        ("resource", "resource"),
        ("scope", "instrumentation"),
    ] {
        for kind in ATTR_KINDS {
            sources.push(NameSource {
                scope,
                column: attr_column(prefix, kind),
                dedicated: None,
            });
        }
    }
    sources.push(NameSource {
        scope: "resource",
        column: schema::SERVICE_NAME.to_string(),
        dedicated: Some(crate::storage::to_arrow::SERVICE_NAME_ATTR.to_string()),
    });
    for field in schema.fields() {
        let name = field.name();
        let dedicated = [("span.", "span"), ("resource.", "resource")]
            .into_iter()
            .find_map(|(prefix, scope)| Some((scope, name.strip_prefix(prefix)?)));
        if let Some((scope, attribute)) = dedicated {
            sources.push(NameSource {
                scope,
                column: name.clone(),
                dedicated: Some(attribute.to_string()),
            });
        }
    }
    let plan = matching(scan, schema, stored, span_filter, filter)?
        .project(sources.iter().map(|s| ident(&s.column)))?
        .build()?;
    Ok((plan, sources))
}

/// The spans of `scan` that pass `span_filter` and `filter` (event and link fields included).
fn matching(
    scan: LogicalPlan,
    schema: SchemaRef,
    stored: &Arc<dyn StoredSpans>,
    span_filter: Option<Expr>,
    filter: Option<&FieldExpr>,
) -> Result<LogicalPlanBuilder> {
    match filter {
        Some(filter) => Ok(LogicalPlanBuilder::from(
            Planner::new(scan, schema, span_filter)
                .with_stored_spans(stored.clone())
                .matching_spans(filter)?,
        )),
        None => {
            let builder = LogicalPlanBuilder::from(scan);
            match span_filter {
                Some(range) => builder.filter(range),
                None => Ok(builder),
            }
        }
    }
}
