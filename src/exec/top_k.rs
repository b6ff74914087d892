//! [`TraceTopK`]: the last node of a search plan. Its input has a row per matched span and
//! spanset; it keeps the newest `limit` traces (by start, ties by trace id) and of each of their
//! spansets the first `spss` spans (by start, ties by span id), and outputs only those rows:
//! traces newest first, spansets by key, spans in order. Every output row also carries
//! [`MATCHED`], how many spans its spanset matched, and its trace's start, duration and root
//! names as the whole input has them (a trace split across blocks arrives in parts).
//!
//! The logical node, its [`ExecutionPlan`] and the stream live here together; the node is
//! planned by [`TraceTopKPlanner`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, Int64Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{cast, interleave, take};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result, internal_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{Distribution, EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::{StreamExt, stream};

use crate::planner::SPANSET_KEY;
use crate::storage::TraceId;
use crate::storage::schema;

/// The output column with the number of spans the row's spanset matched.
pub const MATCHED: &str = "__matched";

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceTopK {
    input: LogicalPlan,
    limit: usize,
    spss: usize,
    schema: DFSchemaRef,
}

impl TraceTopK {
    /// The newest `limit` traces of `input`, the first `spss` spans of each spanset (both at
    /// least 1).
    pub fn try_new(input: LogicalPlan, limit: usize, spss: usize) -> Result<Self> {
        let mut fields: Vec<Field> = input
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(MATCHED, DataType::UInt64, false));
        let schema = Arc::new(DFSchema::try_from(Schema::new(fields))?);
        Ok(Self {
            input,
            limit: limit.max(1),
            spss: spss.max(1),
            schema,
        })
    }

    pub fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }
}

impl PartialOrd for TraceTopK {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.input, self.limit, self.spss).partial_cmp(&(&other.input, other.limit, other.spss))
    }
}

impl UserDefinedLogicalNodeCore for TraceTopK {
    fn name(&self) -> &str {
        "TraceTopK"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TraceTopK: limit={}, spss={}", self.limit, self.spss)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let Ok([input]) = <[LogicalPlan; 1]>::try_from(inputs) else {
            return internal_err!("a trace top-k has one input");
        };
        Self::try_new(input, self.limit, self.spss)
    }
}

/// Plans [`TraceTopK`] nodes as [`TraceTopKExec`].
#[derive(Debug, Default)]
pub struct TraceTopKPlanner;

#[async_trait]
impl ExtensionPlanner for TraceTopKPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(top_k) = node.as_any().downcast_ref::<TraceTopK>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return internal_err!("a trace top-k has one input");
        };
        Ok(Some(Arc::new(TraceTopKExec::try_new(
            input.clone(),
            top_k.limit,
            top_k.spss,
        )?)))
    }
}

/// Where the columns the node reads are in its input.
#[derive(Debug, Clone, Copy)]
struct Columns {
    trace_id: usize,
    span_id: usize,
    start: usize,
    trace_start: usize,
    trace_duration: usize,
    root_service: usize,
    root_name: usize,
    spanset: usize,
}

impl Columns {
    fn find(schema: &Schema) -> Result<Self> {
        let at = |name: &str| -> Result<usize> { Ok(schema.index_of(name)?) };
        Ok(Self {
            trace_id: at(schema::TRACE_ID)?,
            span_id: at(schema::SPAN_ID)?,
            start: at(schema::START_TIME)?,
            trace_start: at(schema::TRACE_START_TIME)?,
            trace_duration: at(schema::TRACE_DURATION_NS)?,
            root_service: at(schema::ROOT_SERVICE_NAME)?,
            root_name: at(schema::ROOT_SPAN_NAME)?,
            spanset: at(SPANSET_KEY)?,
        })
    }
}

/// See the module docs. One output partition, produced once the input is read.
#[derive(Debug)]
pub struct TraceTopKExec {
    input: Arc<dyn ExecutionPlan>,
    limit: usize,
    spss: usize,
    columns: Columns,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl TraceTopKExec {
    pub fn try_new(input: Arc<dyn ExecutionPlan>, limit: usize, spss: usize) -> Result<Self> {
        let in_schema = input.schema();
        let columns = Columns::find(&in_schema)?;
        let mut fields: Vec<Arc<Field>> = in_schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(MATCHED, DataType::UInt64, false)));
        let schema = Arc::new(Schema::new(fields));
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            limit: limit.max(1),
            spss: spss.max(1),
            columns,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for TraceTopKExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TraceTopKExec: limit={}, spss={}", self.limit, self.spss)
    }
}

impl ExecutionPlan for TraceTopKExec {
    fn name(&self) -> &str {
        "TraceTopKExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Ok([input]) = <[Arc<dyn ExecutionPlan>; 1]>::try_from(children) else {
            return internal_err!("a trace top-k has one input");
        };
        Ok(Arc::new(Self::try_new(input, self.limit, self.spss)?))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("a trace top-k has one partition, not {partition}");
        }
        let mut input = self.input.execute(0, context.clone())?;
        let reservation = MemoryConsumer::new("TraceTopKExec").register(context.memory_pool());
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let mut top = TopTraces::new(self.limit, self.spss, self.columns, reservation);
        let schema = self.schema();
        let output = schema.clone();
        let out = stream::once(async move {
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let timer = metrics.elapsed_compute().timer();
                top.add(&batch)?;
                timer.done();
            }
            let timer = metrics.elapsed_compute().timer();
            let out = top.finish(output)?;
            timer.done();
            metrics.record_output(out.num_rows());
            Ok::<_, DataFusionError>(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, out)))
    }
}

/// Where a kept span's row is: a batch of [`TopTraces::rows`] and a row of it.
#[derive(Debug, Clone, Copy)]
struct RowRef {
    batch: usize,
    row: usize,
}

#[derive(Debug)]
struct KeptSpan {
    start: i64,
    span_id: [u8; 8],
    row: RowRef,
}

#[derive(Debug, Default)]
struct Spanset {
    matched: u64,
    /// The first `spss` spans by (start, span id), in that order.
    spans: Vec<KeptSpan>,
}

#[derive(Debug)]
struct Trace {
    start: i64,
    end: i64,
    root_service: Option<String>,
    root_name: Option<String>,
    spansets: HashMap<String, Spanset>,
}

impl Trace {
    fn kept_spans(&self) -> usize {
        self.spansets.values().map(|s| s.spans.len()).sum()
    }
}

/// The newest traces seen so far. A trace's start only moves earlier as more of its parts
/// arrive, so a trace once dropped never belongs back in the top `limit`; dropped traces are
/// remembered so that a later part cannot bring one back incomplete.
struct TopTraces {
    limit: usize,
    spss: usize,
    columns: Columns,
    traces: HashMap<TraceId, Trace>,
    /// (start, id) of the kept traces; the first is the one to drop next.
    order: BTreeSet<(i64, Reverse<TraceId>)>,
    dropped: HashSet<TraceId>,
    /// The input rows of kept spans, taken out of their batches (with rows of spans dropped
    /// since, until [`Self::compact`] leaves them out).
    rows: Vec<RecordBatch>,
    stored_rows: usize,
    /// Memory of `rows`, kept as they change rather than summed per batch.
    stored_bytes: usize,
    kept_rows: usize,
    reservation: MemoryReservation,
}

/// Rows of dropped spans tolerated in [`TopTraces::rows`] before they are compacted away.
const SLACK_ROWS: usize = 1024;

impl TopTraces {
    fn new(limit: usize, spss: usize, columns: Columns, reservation: MemoryReservation) -> Self {
        Self {
            limit,
            spss,
            columns,
            traces: HashMap::new(),
            order: BTreeSet::new(),
            dropped: HashSet::new(),
            rows: Vec::new(),
            stored_rows: 0,
            stored_bytes: 0,
            kept_rows: 0,
            reservation,
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let c = self.columns;
        let ids = batch.column(c.trace_id).as_fixed_size_binary();
        let span_ids = batch.column(c.span_id).as_fixed_size_binary();
        let start = as_ints(batch.column(c.start))?;
        let trace_start = as_ints(batch.column(c.trace_start))?;
        let trace_duration = as_ints(batch.column(c.trace_duration))?;
        let root_service = as_strings(batch.column(c.root_service))?;
        let root_name = as_strings(batch.column(c.root_name))?;
        let spanset = as_strings(batch.column(c.spanset))?;
        // Rows of this batch kept, in the order their `RowRef`s number them.
        let mut taken: Vec<u32> = Vec::new();
        let batch_index = self.rows.len();
        let spss = self.spss;
        for row in 0..batch.num_rows() {
            let id = trace_id(ids, row);
            if self.dropped.contains(&id) {
                continue;
            }
            let begin = trace_start.value(row);
            let end = begin.saturating_add(trace_duration.value(row));
            let Some(trace) = self.trace(id, begin, end) else {
                continue;
            };
            if trace.root_service.is_none() && root_service.is_valid(row) {
                trace.root_service = Some(root_service.value(row).to_string());
            }
            if trace.root_name.is_none() && root_name.is_valid(row) {
                trace.root_name = Some(root_name.value(row).to_string());
            }
            let key = spanset.value(row);
            let set = match trace.spansets.get_mut(key) {
                Some(set) => set,
                None => trace.spansets.entry(key.to_string()).or_default(),
            };
            set.matched += 1;
            let span = (start.value(row), span_id(span_ids, row));
            let position = set.spans.partition_point(|s| (s.start, s.span_id) < span);
            if position < spss {
                let at = RowRef {
                    batch: batch_index,
                    row: taken.len(),
                };
                taken.push(row as u32);
                set.spans.insert(
                    position,
                    KeptSpan {
                        start: span.0,
                        span_id: span.1,
                        row: at,
                    },
                );
                if set.spans.len() > spss {
                    set.spans.pop();
                } else {
                    self.kept_rows += 1;
                }
            }
            if self.traces.len() > self.limit
                && let Some((_, Reverse(oldest))) = self.order.pop_first()
            {
                if let Some(trace) = self.traces.remove(&oldest) {
                    self.kept_rows -= trace.kept_spans();
                }
                self.dropped.insert(oldest);
            }
        }
        if !taken.is_empty() {
            let indices = UInt32Array::from(taken);
            let columns = batch
                .columns()
                .iter()
                .map(|column| take(column, &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let kept = RecordBatch::try_new(batch.schema(), columns)?;
            self.stored_rows += kept.num_rows();
            self.stored_bytes += kept.get_array_memory_size();
            self.rows.push(kept);
        }
        if self.stored_rows > 2 * self.kept_rows + SLACK_ROWS {
            self.compact()?;
        }
        // The ids of dropped traces are remembered too.
        let dropped = self.dropped.len() * std::mem::size_of::<TraceId>();
        self.reservation.try_resize(self.stored_bytes + dropped)
    }

    /// The trace `id` (spans starting in `[start, end]` arrived), or `None` when it can never
    /// be in the result.
    fn trace(&mut self, id: TraceId, start: i64, end: i64) -> Option<&mut Trace> {
        if let Some(trace) = self.traces.get_mut(&id) {
            if start < trace.start {
                self.order.remove(&(trace.start, Reverse(id)));
                trace.start = start;
                self.order.insert((start, Reverse(id)));
            }
            trace.end = trace.end.max(end);
            return self.traces.get_mut(&id);
        }
        let key = (start, Reverse(id));
        // Full, and older than every kept trace.
        if self.traces.len() >= self.limit && self.order.first().is_some_and(|oldest| key < *oldest)
        {
            self.dropped.insert(id);
            return None;
        }
        self.order.insert(key);
        Some(self.traces.entry(id).or_insert(Trace {
            start,
            end,
            root_service: None,
            root_name: None,
            spansets: HashMap::new(),
        }))
    }

    /// Drops the stored rows of spans no longer kept.
    fn compact(&mut self) -> Result<()> {
        let Some(schema) = self.rows.first().map(RecordBatch::schema) else {
            return Ok(());
        };
        let mut refs: Vec<&mut KeptSpan> = self
            .traces
            .values_mut()
            .flat_map(|t| t.spansets.values_mut())
            .flat_map(|s| s.spans.iter_mut())
            .collect();
        let indices: Vec<(usize, usize)> = refs.iter().map(|s| (s.row.batch, s.row.row)).collect();
        let batch = interleave_rows(&self.rows, schema, &indices)?;
        for (i, span) in refs.iter_mut().enumerate() {
            span.row = RowRef { batch: 0, row: i };
        }
        self.stored_rows = batch.num_rows();
        self.stored_bytes = batch.get_array_memory_size();
        self.rows = vec![batch];
        Ok(())
    }

    /// The kept rows in output order, with the trace columns and [`MATCHED`] filled in.
    fn finish(mut self, output: SchemaRef) -> Result<RecordBatch> {
        let Some(input) = self.rows.first().map(RecordBatch::schema) else {
            return Ok(RecordBatch::new_empty(output));
        };
        let rows = self.kept_rows;
        let mut indices = Vec::with_capacity(rows);
        let mut trace_start = Vec::with_capacity(rows);
        let mut trace_duration = Vec::with_capacity(rows);
        let mut root_service = Vec::with_capacity(rows);
        let mut root_name = Vec::with_capacity(rows);
        let mut matched = Vec::with_capacity(rows);
        for (_, Reverse(id)) in self.order.iter().rev() {
            let Some(trace) = self.traces.remove(id) else {
                continue;
            };
            let mut sets: Vec<_> = trace.spansets.into_iter().collect();
            sets.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, set) in sets {
                for span in set.spans {
                    indices.push((span.row.batch, span.row.row));
                    trace_start.push(trace.start);
                    trace_duration.push(trace.end - trace.start);
                    root_service.push(trace.root_service.clone());
                    root_name.push(trace.root_name.clone());
                    matched.push(set.matched);
                }
            }
        }
        let kept = interleave_rows(&self.rows, input.clone(), &indices)?;
        let c = self.columns;
        let mut columns = kept.columns().to_vec();
        let typed = |array: ArrayRef, at: usize| cast(&array, input.field(at).data_type());
        columns[c.trace_start] = typed(Arc::new(Int64Array::from(trace_start)), c.trace_start)?;
        columns[c.trace_duration] =
            typed(Arc::new(Int64Array::from(trace_duration)), c.trace_duration)?;
        columns[c.root_service] = typed(Arc::new(StringArray::from(root_service)), c.root_service)?;
        columns[c.root_name] = typed(Arc::new(StringArray::from(root_name)), c.root_name)?;
        columns.push(Arc::new(UInt64Array::from(matched)));
        self.reservation.free();
        Ok(RecordBatch::try_new(output, columns)?)
    }
}

/// The rows `indices` ((batch, row) pairs) of `batches`, as one batch.
fn interleave_rows(
    batches: &[RecordBatch],
    schema: SchemaRef,
    indices: &[(usize, usize)],
) -> Result<RecordBatch> {
    let columns = (0..schema.fields().len())
        .map(|i| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            interleave(&arrays, indices)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn as_ints(array: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(array, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

fn as_strings(array: &ArrayRef) -> Result<StringArray> {
    Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn trace_id(ids: &FixedSizeBinaryArray, row: usize) -> TraceId {
    TraceId(ids.value(row).try_into().expect("16-byte trace ids"))
}

fn span_id(ids: &FixedSizeBinaryArray, row: usize) -> [u8; 8] {
    ids.value(row).try_into().expect("8-byte span ids")
}
