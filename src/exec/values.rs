//! Tag discovery narrowed by a filter: the distinct values of a field, or the attribute names,
//! over the spans the filter matches, read from blocks and live data (without a filter, tags
//! and values come from the tag catalogs and read no span data).

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::Result;
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;

use super::search::{AttrValue, column, range_filter, spans_scan, sum_metric};
use super::sources::SpanSource;
use crate::planner::values::{self, VALUE_BOOL, VALUE_FLOAT, VALUE_INT, VALUE_STR};
use crate::traceql::ast::{FieldExpr, FieldRef};

/// Distinct values, most frequent first, and what finding them read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldValues {
    pub values: Vec<AttrValue>,
    pub inspected_bytes: u64,
}

/// The values of `field` over the spans `source` reads that start in
/// `[start, end]` (Unix nanoseconds) and match `filter`.
pub async fn field_values(
    source: &SpanSource,
    filter: Option<&FieldExpr>,
    field: &FieldRef,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<FieldValues> {
    let (scan, schema) = spans_scan(&source.ctx).await?;
    let stored = source.stored_spans((start, end)).await?;
    let plan = values::field_values(
        scan,
        schema,
        &stored,
        range_filter(start, end),
        filter,
        field,
    )?;
    let state = source.ctx.state();
    let physical = state.create_physical_plan(&plan).await?;
    let mut stream = execute_stream(physical.clone(), state.task_ctx())?;
    let mut found = FieldValues::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let str = column(&batch, VALUE_STR, &DataType::Utf8)?;
        let int = column(&batch, VALUE_INT, &DataType::Int64)?;
        let float = column(&batch, VALUE_FLOAT, &DataType::Float64)?;
        let bool = column(&batch, VALUE_BOOL, &DataType::Boolean)?;
        let (str, int, float, bool) = (
            str.as_string::<i32>(),
            int.as_primitive::<Int64Type>(),
            float.as_primitive::<Float64Type>(),
            bool.as_boolean(),
        );
        for row in 0..batch.num_rows() {
            let value = if str.is_valid(row) {
                AttrValue::String(str.value(row).to_string())
            } else if int.is_valid(row) {
                AttrValue::Int(int.value(row))
            } else if float.is_valid(row) {
                AttrValue::Float(float.value(row))
            } else {
                AttrValue::Bool(bool.value(row))
            };
            found.values.push(value);
        }
    }
    found.inspected_bytes = sum_metric(&physical, "bytes_scanned") as u64;
    Ok(found)
}

/// Attribute names by scope (`span`, `resource`, `instrumentation`), and what finding them read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagNames {
    pub scopes: BTreeMap<&'static str, BTreeSet<String>>,
    pub inspected_bytes: u64,
}

/// The attribute names on the spans `source` reads that start in `[start, end]`
/// (Unix nanoseconds) and match `filter`.
pub async fn tag_names(
    source: &SpanSource,
    filter: Option<&FieldExpr>,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<TagNames> {
    let (scan, schema) = spans_scan(&source.ctx).await?;
    let stored = source.stored_spans((start, end)).await?;
    let (plan, sources) =
        values::tag_names(scan, schema, &stored, range_filter(start, end), filter)?;
    let state = source.ctx.state();
    let physical = state.create_physical_plan(&plan).await?;
    let mut stream = execute_stream(physical.clone(), state.task_ctx())?;
    let mut found = TagNames::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        for (source, array) in sources.iter().zip(batch.columns()) {
            let names = found.scopes.entry(source.scope).or_default();
            match &source.dedicated {
                Some(name) => {
                    if array.null_count() < array.len() && !names.contains(name) {
                        names.insert(name.clone());
                    }
                }
                None => {
                    // Only the entries of these rows: the keys array may be shared with
                    // rows sliced away.
                    let map = array.as_map();
                    let offsets = map.value_offsets();
                    let (first, last) = (offsets[0] as usize, offsets[map.len()] as usize);
                    let keys = map.keys().slice(first, last - first);
                    let keys = datafusion::arrow::compute::cast(&keys, &DataType::Utf8)?;
                    for key in keys.as_string::<i32>().iter().flatten() {
                        if !names.contains(key) {
                            names.insert(key.to_string());
                        }
                    }
                }
            }
        }
    }
    found.scopes.retain(|_, names| !names.is_empty());
    found.inspected_bytes = sum_metric(&physical, "bytes_scanned") as u64;
    Ok(found)
}
