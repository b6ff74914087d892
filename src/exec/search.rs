//! TraceQL search: the planner's plan run by DataFusion, its matched spans assembled into the
//! newest `limit` traces, each with its spansets (up to `spss` spans, `matched` the full count).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, Float64Array, Int64Array,
    RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableScan, lit};
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use super::sources::SpanSource;
use super::table::SPANS_TABLE;
use super::top_k::{MATCHED, TraceTopK};
use crate::planner::{OutputValue, Planner, SPANSET_KEY, SearchPlan, ValueColumns};
use crate::storage::TraceId;
use crate::storage::schema;
use crate::traceql::ast::Query;

/// Tempo's defaults and limits for `limit` and `spss`.
pub const DEFAULT_LIMIT: usize = 20;
pub const DEFAULT_SPSS: usize = 3;
pub const MAX_SPSS: usize = 100;

/// What to search and how much to return.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Traces to return.
    pub limit: usize,
    /// Spans per spanset to return.
    pub spss: usize,
    /// Span start times to search, Unix nanoseconds, inclusive.
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Spans the first pass reads from blocks, in whole row groups, newest first (see
    /// [`search`]).
    pub first_pass_spans: u64,
}

/// What the first pass of a search reads by default: about what a limit-20 search of common
/// attributes needs, and some 30 ms on 2 cores.
pub const FIRST_PASS_SPANS: u64 = 100_000;

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            spss: DEFAULT_SPSS,
            start: None,
            end: None,
            first_pass_spans: FIRST_PASS_SPANS,
        }
    }
}

/// An attribute value of a result, as Tempo shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanMatch {
    pub span_id: [u8; 8],
    pub name: String,
    pub start_time_unix_nano: i64,
    pub duration_nanos: i64,
    pub attributes: Vec<(String, AttrValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpansetMatch {
    /// The first `spss` spans by start time.
    pub spans: Vec<SpanMatch>,
    /// All the spans of the spanset.
    pub matched: usize,
    pub attributes: Vec<(String, AttrValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceMatch {
    pub trace_id: TraceId,
    pub root_service_name: Option<String>,
    pub root_trace_name: Option<String>,
    pub start_time_unix_nano: i64,
    pub duration_nanos: i64,
    /// Ordered by spanset key (`by()` values), so the same query gives the same order.
    pub span_sets: Vec<SpansetMatch>,
    /// Every span of the trace read by the search (not only the matched ones), by service.
    pub service_stats: Vec<ServiceStats>,
}

/// Spans of a trace from one service, and how many of them have status error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    pub service: String,
    pub spans: u64,
    pub errors: u64,
}

/// What a search read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchStats {
    /// The blocks that may hold spans of the searched range, and their size.
    pub total_blocks: usize,
    pub total_block_bytes: u64,
    pub inspected_bytes: u64,
    pub inspected_spans: u64,
    /// Passes over the newest blocks run, and the most a search of this range could run.
    pub passes: usize,
    pub total_passes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// Newest first (by trace start), ties by trace id.
    pub traces: Vec<TraceMatch>,
    pub stats: SearchStats,
}

/// The search plan of `query` over what `source` reads, its attributes resolved against the
/// tag catalogs of the data in the searched range, ending in a [`TraceTopK`] that keeps the
/// newest `limit` traces and `spss` spans of each spanset.
pub async fn plan(
    source: &SpanSource,
    query: &Query,
    options: &SearchOptions,
) -> Result<SearchPlan> {
    let (scan, schema) = spans_scan(&source.ctx).await?;
    let stored = source.stored_spans((options.start, options.end)).await?;
    let mut plan = Planner::new(scan, schema, range_filter(options.start, options.end))
        .with_stored_spans(stored)
        .search(query)?;
    plan.plan = TraceTopK::try_new(plan.plan, options.limit, options.spss)?.into_plan();
    Ok(plan)
}

/// A scan of `ctx`'s `spans` table to plan over, and its schema.
pub(crate) async fn spans_scan(ctx: &SessionContext) -> Result<(LogicalPlan, SchemaRef)> {
    let table = ctx.table(SPANS_TABLE).await?;
    let schema = Arc::new(table.schema().as_arrow().clone());
    Ok((table.into_unoptimized_plan(), schema))
}

/// `plan` reading `spans` wherever it scans the `spans` table.
fn reading(plan: &LogicalPlan, spans: Arc<dyn TableProvider>) -> Result<LogicalPlan> {
    let source = provider_as_source(spans);
    plan.clone()
        .transform_up(|node| match node {
            LogicalPlan::TableScan(scan) if scan.table_name.table() == SPANS_TABLE => {
                Ok(Transformed::yes(LogicalPlan::TableScan(TableScan {
                    source: source.clone(),
                    ..scan
                })))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

/// Spans starting in `[start, end]` (Unix nanoseconds, inclusive; either side open).
pub(crate) fn range_filter(start: Option<i64>, end: Option<i64>) -> Option<Expr> {
    let at = |nanos: i64| {
        lit(ScalarValue::TimestampNanosecond(
            Some(nanos),
            Some("UTC".into()),
        ))
    };
    let start_time = crate::planner::field::ident(schema::START_TIME);
    [
        start.map(|s| start_time.clone().gt_eq(at(s))),
        end.map(|e| start_time.clone().lt_eq(at(e))),
    ]
    .into_iter()
    .flatten()
    .reduce(Expr::and)
}

/// Each pass of a search reads at least this many times the spans of the one before.
const PASS_GROWTH: u64 = 2;

/// Runs a search over what `source` reads.
///
/// Blocks are read by row groups, newest first: a pass reads live data and the row groups
/// whose traces may be newest (the first, `first_pass_spans` of spans), and the search stops
/// once the `limit` traces found all start after every trace of the row groups left out (none
/// of those can be newer). Otherwise the next pass reads more (see [`next_pass_spans`]), up
/// to all of them. Each pass evaluates the query over everything it reads, so a trace split
/// across blocks is matched whole as long as its parts were read.
pub async fn search(
    source: &SpanSource,
    query: &Query,
    options: &SearchOptions,
) -> Result<SearchResult> {
    search_with_progress(source, query, options, |_| {}).await
}

/// [`search`], telling `progress` what was read after each pass that does not end it.
pub async fn search_with_progress(
    source: &SpanSource,
    query: &Query,
    options: &SearchOptions,
    mut progress: impl FnMut(&SearchStats),
) -> Result<SearchResult> {
    let plan = plan(source, query, options).await?;
    let searched = source.blocks_in((options.start, options.end));
    // The latest trace start each row group may hold, newest first, and its spans.
    let newest: Vec<i64> = searched.row_groups.iter().map(|rg| rg.newest).collect();
    let spans_of: Vec<u64> = searched.row_groups.iter().map(|rg| rg.spans).collect();
    let total = newest.len();
    let total_spans: u64 = spans_of.iter().sum();
    let mut stats = SearchStats {
        total_blocks: searched.blocks,
        total_block_bytes: searched.bytes,
        total_passes: most_passes(&spans_of, options.first_pass_spans),
        ..SearchStats::default()
    };
    let mut read = row_groups_for(&spans_of, options.first_pass_spans);
    loop {
        // Row groups as new as the last one read are read with it.
        while read < total && newest[read] == newest[read - 1] {
            read += 1;
        }
        let last = read >= total;
        // The newest `read` row groups (all of them on the last pass), as the pass's table.
        let spans = source.spans((!last).then(|| newest[read - 1]));
        let state = source.ctx.state();
        // `create_physical_plan` runs the logical optimizer itself.
        let physical = state
            .create_physical_plan(&reading(&plan.plan, spans.clone())?)
            .await?;
        let batches = collect(physical.clone(), state.task_ctx()).await?;
        let mut traces = Vec::new();
        for batch in &batches {
            traces_of(batch, &plan, &mut traces)?;
        }
        stats.passes += 1;
        stats.inspected_bytes += sum_metric(&physical, "bytes_scanned") as u64;
        stats.inspected_spans += scanned_rows(&physical) as u64;
        // Settled when the oldest trace kept (the last) is newer than any trace of the row
        // groups left out.
        let settled = traces.len() >= options.limit
            && traces
                .last()
                .is_some_and(|oldest| !last && oldest.start_time_unix_nano > newest[read]);
        if last || settled {
            add_service_stats(&state, spans, &mut traces, options, &mut stats).await?;
            return Ok(SearchResult { traces, stats });
        }
        progress(&stats);
        let read_spans = spans_of[..read].iter().sum();
        let next = next_pass_spans(read_spans, total_spans, traces.len(), options.limit);
        read = row_groups_for(&spans_of, next).max(read + 1);
    }
}

/// Fills in the service stats of `traces`: every span of theirs in what the last pass read
/// (the same blocks, live data and time range), counted by service and status.
async fn add_service_stats(
    state: &SessionState,
    spans: Arc<dyn TableProvider>,
    traces: &mut [TraceMatch],
    options: &SearchOptions,
    stats: &mut SearchStats,
) -> Result<()> {
    use crate::planner::field::ident;
    use datafusion::functions::core::expr_fn::coalesce;
    use datafusion::functions_aggregate::count::count_all;
    use datafusion::functions_aggregate::expr_fn::sum;
    if traces.is_empty() {
        return Ok(());
    }
    let mut spans = LogicalPlanBuilder::scan(SPANS_TABLE, provider_as_source(spans), None)?;
    if let Some(range) = range_filter(options.start, options.end) {
        spans = spans.filter(range)?;
    }
    let spans = if traces.len() <= MAX_LISTED_TRACES {
        // An IN list lets the block scan keep only the row groups whose bloom filters may hold
        // the traces, and the page index the pages.
        let ids: Vec<Expr> = traces
            .iter()
            .map(|t| {
                lit(ScalarValue::FixedSizeBinary(
                    16,
                    Some(t.trace_id.0.to_vec()),
                ))
            })
            .collect();
        spans.filter(ident(schema::TRACE_ID).in_list(ids, false))?
    } else {
        // Many traces: a semi join with their ids. As an IN list, DataFusion would rewrite
        // thousands of literals again for every file it opens.
        let id_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            datafusion::arrow::datatypes::Field::new(
                TRACE_ID_KEY,
                DataType::FixedSizeBinary(16),
                false,
            ),
        ]));
        let ids = FixedSizeBinaryArray::try_from_iter(traces.iter().map(|t| t.trace_id.0))?;
        let ids = RecordBatch::try_new(id_schema.clone(), vec![Arc::new(ids)])?;
        let ids = datafusion::datasource::MemTable::try_new(id_schema, vec![vec![ids]])?;
        let ids = LogicalPlanBuilder::scan("__traces", provider_as_source(Arc::new(ids)), None)?
            .build()?;
        spans.join(
            ids,
            datafusion::logical_expr::JoinType::LeftSemi,
            (vec![schema::TRACE_ID], vec![TRACE_ID_KEY]),
            None,
        )?
    };
    let counted = spans
        .aggregate(
            vec![
                ident(schema::TRACE_ID),
                coalesce(vec![ident(schema::SERVICE_NAME), lit("")]).alias("service"),
            ],
            vec![
                count_all().alias("spans"),
                // A boolean as 0 or 1, to sum.
                sum(datafusion::logical_expr::cast(
                    ident(schema::STATUS_CODE).eq(lit("error")),
                    DataType::Int64,
                ))
                .alias("errors"),
            ],
        )?
        .build()?;
    let physical = state.create_physical_plan(&counted).await?;
    let mut stream = execute_stream(physical.clone(), state.task_ctx())?;
    let mut by_trace: HashMap<TraceId, Vec<ServiceStats>> = HashMap::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let ids = column(&batch, schema::TRACE_ID, &DataType::FixedSizeBinary(16))?;
        let ids = ids.as_fixed_size_binary();
        let services = strings(&batch, "service")?;
        let spans = ints(&batch, "spans")?;
        let errors = ints(&batch, "errors")?;
        for row in 0..batch.num_rows() {
            let id = TraceId(ids.value(row).try_into().expect("16-byte trace ids"));
            by_trace.entry(id).or_default().push(ServiceStats {
                service: services.value(row).to_string(),
                spans: spans.value(row) as u64,
                errors: errors.value(row) as u64,
            });
        }
    }
    stats.inspected_bytes += sum_metric(&physical, "bytes_scanned") as u64;
    for trace in traces {
        let mut found = by_trace.remove(&trace.trace_id).unwrap_or_default();
        found.sort_by(|a, b| a.service.cmp(&b.service));
        trace.service_stats = found;
    }
    Ok(())
}

/// Above this many traces, service stats find their spans by a join rather than an IN list.
const MAX_LISTED_TRACES: usize = 1024;
/// The id column of the traces service stats are counted for.
const TRACE_ID_KEY: &str = "__trace_id";

/// The spans the pass after one over `read` of `total` spans reads, when that pass kept
/// `kept` of `limit` traces: [`PASS_GROWTH`] times more, or what finding `limit` traces at the
/// rate so far would take, with a quarter more to spare; more than half of all spans reads them
/// all (so a rare match, or none, costs two passes rather than many).
pub fn next_pass_spans(read: u64, total: u64, kept: usize, limit: usize) -> u64 {
    let needed = match kept as u64 {
        0 => total,
        kept => {
            let needed = read.saturating_mul(limit as u64).div_ceil(kept);
            needed.saturating_add(needed.div_ceil(4))
        }
    };
    let next = read.saturating_mul(PASS_GROWTH).max(needed);
    if next.saturating_mul(2) > total {
        total
    } else {
        next
    }
}

/// How many of the newest row groups (their spans in `spans`) hold at least `target` spans:
/// at least one, all of them when they hold fewer.
pub fn row_groups_for(spans: &[u64], target: u64) -> usize {
    let mut sum = 0u64;
    let mut count = 0;
    while count < spans.len() && (count == 0 || sum < target) {
        sum += spans[count];
        count += 1;
    }
    count
}

/// The most passes a search over row groups of `spans` runs, starting at `first_pass` spans.
pub fn most_passes(spans: &[u64], first_pass: u64) -> usize {
    let total: u64 = spans.iter().sum();
    let mut passes = 1;
    let mut read = row_groups_for(spans, first_pass);
    while read < spans.len() {
        passes += 1;
        let read_spans = spans[..read].iter().sum();
        read =
            row_groups_for(spans, next_pass_spans(read_spans, total, usize::MAX, 1)).max(read + 1);
    }
    passes
}

pub(crate) fn sum_metric(plan: &Arc<dyn ExecutionPlan>, name: &str) -> usize {
    let own = plan
        .metrics()
        .and_then(|m| m.sum_by_name(name))
        .map_or(0, |v| v.as_usize());
    own + plan
        .children()
        .iter()
        .map(|c| sum_metric(c, name))
        .sum::<usize>()
}

/// Rows the leaves (the scans) produced.
fn scanned_rows(plan: &Arc<dyn ExecutionPlan>) -> usize {
    if plan.children().is_empty() {
        return plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0);
    }
    plan.children().iter().map(|c| scanned_rows(c)).sum()
}

/// Appends the traces of `batch`, a batch of [`TraceTopK`]'s output, to `traces`: its rows
/// come trace by trace, spanset by spanset, so a row of the trace and spanset before continues
/// them.
fn traces_of(batch: &RecordBatch, plan: &SearchPlan, traces: &mut Vec<TraceMatch>) -> Result<()> {
    let rows = Rows::new(batch, plan)?;
    let mut spanset_key: Option<&str> = None;
    for row in 0..batch.num_rows() {
        let id = TraceId(
            rows.trace_id
                .value(row)
                .try_into()
                .expect("16-byte trace ids"),
        );
        if traces.last().is_none_or(|t| t.trace_id != id) {
            let start = rows.trace_start.value(row);
            traces.push(TraceMatch {
                trace_id: id,
                root_service_name: rows
                    .root_service
                    .is_valid(row)
                    .then(|| rows.root_service.value(row).to_string()),
                root_trace_name: rows
                    .root_name
                    .is_valid(row)
                    .then(|| rows.root_name.value(row).to_string()),
                start_time_unix_nano: start,
                duration_nanos: rows.trace_duration.value(row),
                span_sets: Vec::new(),
                service_stats: Vec::new(),
            });
            spanset_key = None;
        }
        let trace = traces.last_mut().expect("a trace was pushed");
        let key = rows.spanset.value(row);
        if spanset_key != Some(key) || trace.span_sets.is_empty() {
            trace.span_sets.push(SpansetMatch {
                spans: Vec::new(),
                matched: rows.matched.value(row) as usize,
                attributes: rows.values(&rows.spanset_attrs, row),
            });
            spanset_key = Some(key);
        }
        let set = trace.span_sets.last_mut().expect("a spanset was pushed");
        set.spans.push(SpanMatch {
            span_id: rows.span_id.value(row).try_into().expect("8-byte span ids"),
            name: rows.name.value(row).to_string(),
            start_time_unix_nano: rows.start.value(row),
            duration_nanos: rows.duration.value(row),
            attributes: rows.values(&rows.span_attrs, row),
        });
    }
    Ok(())
}

/// The columns of a result batch, typed.
struct Rows {
    trace_id: FixedSizeBinaryArray,
    span_id: FixedSizeBinaryArray,
    start: Int64Array,
    duration: Int64Array,
    name: StringArray,
    trace_start: Int64Array,
    trace_duration: Int64Array,
    root_service: StringArray,
    root_name: StringArray,
    spanset: StringArray,
    matched: Int64Array,
    span_attrs: Vec<(String, TypedColumns)>,
    spanset_attrs: Vec<(String, TypedColumns)>,
}

/// The columns of one output value.
struct TypedColumns {
    str: Option<StringArray>,
    int: Option<Int64Array>,
    float: Option<Float64Array>,
    bool: Option<BooleanArray>,
    /// Status and kind names, shown as strings.
    keyword: Vec<StringArray>,
    other: Option<StringArray>,
    duration: bool,
}

pub(crate) fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("search result has no column {name}")))?;
    Ok(cast(array, to)?)
}

fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    Ok(column(batch, name, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

fn ints(batch: &RecordBatch, name: &str) -> Result<Int64Array> {
    Ok(column(batch, name, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

fn ids(batch: &RecordBatch, name: &str) -> Result<FixedSizeBinaryArray> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("search result has no column {name}")))?;
    Ok(array.as_fixed_size_binary().clone())
}

impl Rows {
    fn new(batch: &RecordBatch, plan: &SearchPlan) -> Result<Self> {
        let typed = |values: &[OutputValue]| -> Result<Vec<(String, TypedColumns)>> {
            values
                .iter()
                .map(|v| Ok((v.key.clone(), TypedColumns::new(batch, &v.columns)?)))
                .collect()
        };
        Ok(Self {
            trace_id: ids(batch, schema::TRACE_ID)?,
            span_id: ids(batch, schema::SPAN_ID)?,
            start: ints(batch, schema::START_TIME)?,
            duration: ints(batch, schema::DURATION_NS)?,
            name: strings(batch, schema::NAME)?,
            trace_start: ints(batch, schema::TRACE_START_TIME)?,
            trace_duration: ints(batch, schema::TRACE_DURATION_NS)?,
            root_service: strings(batch, schema::ROOT_SERVICE_NAME)?,
            root_name: strings(batch, schema::ROOT_SPAN_NAME)?,
            spanset: strings(batch, SPANSET_KEY)?,
            matched: ints(batch, MATCHED)?,
            span_attrs: typed(&plan.span_attributes)?,
            spanset_attrs: typed(&plan.spanset_attributes)?,
        })
    }

    fn values(&self, columns: &[(String, TypedColumns)], row: usize) -> Vec<(String, AttrValue)> {
        columns
            .iter()
            .filter_map(|(key, c)| Some((key.clone(), c.value(row)?)))
            .collect()
    }
}

impl TypedColumns {
    fn new(batch: &RecordBatch, c: &ValueColumns) -> Result<Self> {
        let opt_strings =
            |name: &Option<String>| name.as_ref().map(|n| strings(batch, n)).transpose();
        Ok(Self {
            str: opt_strings(&c.str)?,
            int: c.int.as_ref().map(|n| ints(batch, n)).transpose()?,
            float: c
                .float
                .as_ref()
                .map(|n| {
                    Ok::<_, DataFusionError>(
                        column(batch, n, &DataType::Float64)?
                            .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                            .clone(),
                    )
                })
                .transpose()?,
            bool: c
                .bool
                .as_ref()
                .map(|n| {
                    Ok::<_, DataFusionError>(
                        column(batch, n, &DataType::Boolean)?.as_boolean().clone(),
                    )
                })
                .transpose()?,
            keyword: [opt_strings(&c.status)?, opt_strings(&c.kind)?]
                .into_iter()
                .flatten()
                .collect(),
            other: opt_strings(&c.other)?,
            duration: c.duration,
        })
    }

    fn value(&self, row: usize) -> Option<AttrValue> {
        if let Some(a) = self.str.as_ref().filter(|a| a.is_valid(row)) {
            return Some(AttrValue::String(a.value(row).to_string()));
        }
        if let Some(a) = self.int.as_ref().filter(|a| a.is_valid(row)) {
            let v = a.value(row);
            return Some(if self.duration {
                AttrValue::String(crate::go_duration::format(v as f64))
            } else {
                AttrValue::Int(v)
            });
        }
        if let Some(a) = self.float.as_ref().filter(|a| a.is_valid(row)) {
            let v = a.value(row);
            return Some(if self.duration {
                AttrValue::String(crate::go_duration::format(v))
            } else {
                AttrValue::Float(v)
            });
        }
        if let Some(a) = self.bool.as_ref().filter(|a| a.is_valid(row)) {
            return Some(AttrValue::Bool(a.value(row)));
        }
        for a in &self.keyword {
            if a.is_valid(row) {
                return Some(AttrValue::String(a.value(row).to_string()));
            }
        }
        if let Some(a) = self.other.as_ref().filter(|a| a.is_valid(row)) {
            return Some(AttrValue::String(a.value(row).to_string()));
        }
        None
    }
}
