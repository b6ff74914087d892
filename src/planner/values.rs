//! The distinct values of one field over the spans a filter matches: what tag-value
//! autocomplete shows once a `q` filter narrows it.

use datafusion::arrow::datatypes::Schema;
use datafusion::common::Result;
use datafusion::functions_aggregate::count::count_all;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::scalar::ScalarValue;

use super::field::{FieldLowering, ident};
use crate::traceql::ast::{FieldExpr, FieldRef};

/// Output columns of [`field_values`]: one per value type (null where the value has another
/// type), and the number of matching spans with that value.
pub const VALUE_STR: &str = "value_str";
pub const VALUE_INT: &str = "value_int";
pub const VALUE_FLOAT: &str = "value_float";
pub const VALUE_BOOL: &str = "value_bool";
pub const VALUE_SPANS: &str = "spans";

/// One row per distinct value of `field` over the spans of `scan` that pass `span_filter` (the
/// time range) and `filter`, most frequent first. `schema` and `complete_columns` are those
/// of [`FieldLowering::new`]. Values that are not strings, numbers or booleans (arrays,
/// key-value lists) are left out, as are statuses and kinds, which have fixed keyword lists.
pub fn field_values(
    scan: LogicalPlan,
    schema: &Schema,
    complete_columns: &[String],
    span_filter: Option<Expr>,
    filter: Option<&FieldExpr>,
    field: &FieldRef,
) -> Result<LogicalPlan> {
    let fields = FieldLowering::new(schema, complete_columns);
    let value = fields.field(field)?;
    let predicate = [
        span_filter,
        filter
            .map(|f| fields.lower(f).map(|v| v.is_true()))
            .transpose()?,
    ]
    .into_iter()
    .flatten()
    .reduce(Expr::and);
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
    let mut builder = LogicalPlanBuilder::from(scan);
    if let Some(predicate) = predicate {
        builder = builder.filter(predicate)?;
    }
    builder
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
