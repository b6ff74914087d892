//! [`StructuralJoinExec`]: runs the planner's [`StructuralJoin`] as a hash join on the spanset
//! whose build side is indexed by nested-set position.
//!
//! Both inputs are hash-partitioned on (trace id, spanset key), so a spanset's spans of both
//! sides meet in one partition. The side whose spans are only looked up (`l`, unless its spans
//! are output too) is read whole, narrowed to the structure columns, and indexed per spanset:
//! in-tree spans sorted by nested-set left (with the greatest right so far) and by parent.
//! Each kept-side span is then one hash lookup and a binary search, so a trace of n spans
//! costs O(n log n), no side is sorted, and the kept side streams through. When both sides'
//! spans are output, both are read, indexed, and each filtered against the other.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, Int32Array, RecordBatch,
};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{Distribution, EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, ReplaceChildrenOptions,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::future::{self, Either};
use futures::{StreamExt, TryStreamExt, stream};

use crate::planner::SPANSET_KEY;
use crate::planner::structural::{Keep, Relation, StructuralJoin};
use crate::storage::schema;

/// Plans [`StructuralJoin`] nodes as [`StructuralJoinExec`].
#[derive(Debug, Default)]
pub struct StructuralJoinPlanner;

#[async_trait]
impl ExtensionPlanner for StructuralJoinPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(join) = node.as_any().downcast_ref::<StructuralJoin>() else {
            return Ok(None);
        };
        let [l, r] = physical_inputs else {
            return internal_err!("a structural join has two inputs");
        };
        Ok(Some(Arc::new(StructuralJoinExec::try_new(
            join.keep(),
            l.clone(),
            r.clone(),
        )?)))
    }
}

/// See the module docs. The output has `r`'s schema and partitioning.
#[derive(Debug)]
pub struct StructuralJoinExec {
    keep: Keep,
    l: Arc<dyn ExecutionPlan>,
    r: Arc<dyn ExecutionPlan>,
    l_columns: Structure,
    r_columns: Structure,
    /// Where each output column is in `l`'s schema (when `l`'s spans are output).
    l_to_output: Vec<usize>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl StructuralJoinExec {
    pub fn try_new(
        keep: Keep,
        l: Arc<dyn ExecutionPlan>,
        r: Arc<dyn ExecutionPlan>,
    ) -> Result<Self> {
        let (l_schema, r_schema) = (l.schema(), r.schema());
        let l_columns = Structure::find(&l_schema)?;
        let r_columns = Structure::find(&r_schema)?;
        // Spanset keys are compared as encoded rows: both sides must encode alike.
        for (a, b) in [
            (l_columns.trace_id, r_columns.trace_id),
            (l_columns.spanset, r_columns.spanset),
        ] {
            let (a, b) = (l_schema.field(a), r_schema.field(b));
            if a.data_type() != b.data_type() {
                return internal_err!(
                    "structural join sides differ in the type of {}: {} and {}",
                    a.name(),
                    a.data_type(),
                    b.data_type()
                );
            }
        }
        let l_to_output = if keep.outputs_left() {
            r_schema
                .fields()
                .iter()
                .map(|f| l_schema.index_of(f.name()))
                .collect::<std::result::Result<_, _>>()?
        } else {
            vec![]
        };
        let emission = if keep.outputs_left() {
            EmissionType::Final
        } else {
            EmissionType::Incremental
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(r_schema),
            r.output_partitioning().clone(),
            emission,
            Boundedness::Bounded,
        );
        Ok(Self {
            keep,
            l,
            r,
            l_columns,
            r_columns,
            l_to_output,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The spanset columns of a side, as the partitioning it needs.
    fn spanset_keys(&self, side: &Arc<dyn ExecutionPlan>, columns: &Structure) -> Distribution {
        let schema = side.schema();
        let column = |i: usize| -> Arc<dyn PhysicalExpr> {
            Arc::new(Column::new(schema.field(i).name(), i))
        };
        Distribution::KeyPartitioned(vec![column(columns.trace_id), column(columns.spanset)])
    }
}

impl DisplayAs for StructuralJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StructuralJoinExec: {}", self.keep)
    }
}

impl ExecutionPlan for StructuralJoinExec {
    fn name(&self) -> &str {
        "StructuralJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![
            self.spanset_keys(&self.l, &self.l_columns),
            self.spanset_keys(&self.r, &self.r_columns),
        ]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.l, &self.r]
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
        let Ok([l, r]) = <[Arc<dyn ExecutionPlan>; 2]>::try_from(children) else {
            return internal_err!("a structural join has two inputs");
        };
        Ok(Arc::new(Self::try_new(self.keep, l, r)?))
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
        let l = self.l.execute(partition, context.clone())?;
        let r = self.r.execute(partition, context.clone())?;
        let reservation = MemoryConsumer::new(format!("StructuralJoinExec[{partition}]"))
            .register(context.memory_pool());
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let schema = self.schema();
        let (keep, l_columns, r_columns) = (self.keep, self.l_columns, self.r_columns);
        let out = match keep {
            Keep::Related(rel) | Keep::Unrelated(rel) => {
                let want = matches!(keep, Keep::Related(_));
                stream::once(async move {
                    let mut r = r;
                    let prefetched = reservation.new_empty();
                    let (l_batches, early) =
                        read_while_prefetching(l, &mut r, &reservation, &prefetched).await?;
                    let index = SpansetIndex::build(&l_batches, l_columns, &reservation)?;
                    // The index is all that is kept of `l`.
                    drop(l_batches);
                    reservation.resize(index.memory_size());
                    let r = stream::iter(early.into_iter().map(Ok)).chain(r);
                    let kept = r.map(move |batch| {
                        let _reserved = (&reservation, &prefetched);
                        let batch = batch?;
                        let timer = metrics.elapsed_compute().timer();
                        let mask = index.matches(&batch, r_columns, Test::Stands(rel), want)?;
                        let out = filter_record_batch(&batch, &mask)?;
                        timer.done();
                        metrics.record_output(out.num_rows());
                        Ok(out)
                    });
                    Ok::<_, datafusion::error::DataFusionError>(kept)
                })
                .try_flatten()
                .boxed()
            }
            Keep::BothWays(_) | Keep::SameSpanset => {
                let l_to_output = self.l_to_output.clone();
                let output = schema.clone();
                stream::once(async move {
                    // Both scans at once.
                    let (l_batches, r_batches) =
                        futures::try_join!(read_all(l, &reservation), read_all(r, &reservation))?;
                    let l_index = SpansetIndex::build(&l_batches, l_columns, &reservation)?;
                    let mut r_index = SpansetIndex::build(&r_batches, r_columns, &reservation)?;
                    let (r_test, l_test) = match keep {
                        Keep::BothWays(rel) => (Test::Stands(rel), Test::Stands(rel.inverse())),
                        _ => (Test::Present, Test::Present),
                    };
                    // Spans of `r` first; a span of `l` already output from `r` is skipped.
                    let timer = metrics.elapsed_compute().timer();
                    let mut out = Vec::with_capacity(r_batches.len() + l_batches.len());
                    let mut r_kept = Vec::with_capacity(r_index.rows);
                    for batch in &r_batches {
                        let mask = l_index.matches(batch, r_columns, r_test, true)?;
                        r_kept.extend(mask.values().iter());
                        out.push(filter_record_batch(batch, &mask)?);
                    }
                    r_index.set_output(&r_kept);
                    for batch in &l_batches {
                        let mask = r_index.matches(batch, l_columns, l_test, true)?;
                        let mask = r_index.not_output(batch, l_columns, mask)?;
                        let kept = filter_record_batch(batch, &mask)?;
                        let columns = l_to_output.iter().map(|i| kept.column(*i).clone());
                        out.push(RecordBatch::try_new(output.clone(), columns.collect())?);
                    }
                    timer.done();
                    metrics.record_output(out.iter().map(RecordBatch::num_rows).sum());
                    drop(reservation);
                    Ok::<_, datafusion::error::DataFusionError>(stream::iter(
                        out.into_iter().map(Ok),
                    ))
                })
                .try_flatten()
                .boxed()
            }
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, out)))
    }
}

/// Every batch of `input`, accounted in `reservation`.
async fn read_all(
    mut input: SendableRecordBatchStream,
    reservation: &MemoryReservation,
) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    while let Some(batch) = input.next().await {
        let batch = batch?;
        reservation.try_grow(batch.get_array_memory_size())?;
        batches.push(batch);
    }
    Ok(batches)
}

/// Every batch of `build`, and what `probe` had ready meanwhile (so both sides' scans run at
/// once), accounted in `reservation` and `prefetched`.
async fn read_while_prefetching(
    build: SendableRecordBatchStream,
    probe: &mut SendableRecordBatchStream,
    reservation: &MemoryReservation,
    prefetched: &MemoryReservation,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    let mut build = std::pin::pin!(read_all(build, reservation));
    let mut early = Vec::new();
    loop {
        match future::select(build.as_mut(), probe.next()).await {
            Either::Left((batches, _)) => return Ok((batches?, early)),
            Either::Right((Some(batch), _)) => {
                let batch = batch?;
                prefetched.try_grow(batch.get_array_memory_size())?;
                early.push(batch);
            }
            Either::Right((None, _)) => return Ok((build.await?, early)),
        }
    }
}

/// Where a side's structure columns are.
#[derive(Debug, Clone, Copy)]
struct Structure {
    trace_id: usize,
    spanset: usize,
    span_id: usize,
    left: usize,
    right: usize,
    parent: usize,
}

impl Structure {
    fn find(schema: &SchemaRef) -> Result<Self> {
        Ok(Self {
            trace_id: schema.index_of(schema::TRACE_ID)?,
            spanset: schema.index_of(SPANSET_KEY)?,
            span_id: schema.index_of(schema::SPAN_ID)?,
            left: schema.index_of(schema::NESTED_SET_LEFT)?,
            right: schema.index_of(schema::NESTED_SET_RIGHT)?,
            parent: schema.index_of(schema::NESTED_SET_PARENT)?,
        })
    }
}

/// One batch's structure columns, in the types the index works in.
struct StructureArrays {
    keys: Rows,
    span_id: FixedSizeBinaryArray,
    left: Int32Array,
    right: Int32Array,
    parent: Int32Array,
}

impl StructureArrays {
    fn of(batch: &RecordBatch, columns: Structure, converter: &RowConverter) -> Result<Self> {
        let keys = converter.convert_columns(&[
            batch.column(columns.trace_id).clone(),
            batch.column(columns.spanset).clone(),
        ])?;
        let int = |i: usize| -> Result<Int32Array> {
            Ok(cast(batch.column(i), &DataType::Int32)?
                .as_primitive::<Int32Type>()
                .clone())
        };
        let span_id: ArrayRef = cast(batch.column(columns.span_id), &DataType::FixedSizeBinary(8))?;
        Ok(Self {
            keys,
            span_id: span_id.as_fixed_size_binary().clone(),
            left: int(columns.left)?,
            right: int(columns.right)?,
            parent: int(columns.parent)?,
        })
    }

    /// Nested-set left of row `i`; a null is outside the tree, like 0.
    fn left(&self, i: usize) -> i32 {
        if self.left.is_valid(i) {
            self.left.value(i)
        } else {
            0
        }
    }

    fn span_id(&self, i: usize) -> [u8; 8] {
        self.span_id.value(i).try_into().unwrap_or_default()
    }
}

/// What a looked-up span must find in its spanset on the other side.
#[derive(Debug, Clone, Copy)]
enum Test {
    /// Any span.
    Present,
    /// A span it stands in this relation to.
    Stands(Relation),
}

/// An in-tree span of the indexed side, in nested-set order.
#[derive(Debug, Clone, Copy)]
struct Interval {
    left: i32,
    /// The greatest `right` of this span and those before it in its spanset.
    right_so_far: i32,
}

/// One side's spans by spanset: which spansets it has spans in, and its in-tree spans in
/// nested-set order and in (parent, span id) order.
struct SpansetIndex {
    converter: RowConverter,
    spansets: HashMap<Box<[u8]>, usize>,
    /// Per spanset, its range of `by_left` and of `by_parent`.
    ranges: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    by_left: Vec<Interval>,
    by_parent: Vec<(i32, [u8; 8])>,
    /// Every span as (spanset, span id, row number), sorted; and whether each row (in input
    /// order) was output, once [`Self::set_output`] is called.
    spans: Vec<(usize, [u8; 8], usize)>,
    output: Vec<bool>,
    rows: usize,
}

impl SpansetIndex {
    fn build(
        batches: &[RecordBatch],
        columns: Structure,
        reservation: &MemoryReservation,
    ) -> Result<Self> {
        let key_types = batches.first().map(|b| {
            let schema = b.schema();
            [
                schema.field(columns.trace_id).data_type().clone(),
                schema.field(columns.spanset).data_type().clone(),
            ]
        });
        let converter = RowConverter::new(
            key_types
                .unwrap_or([DataType::FixedSizeBinary(16), DataType::Utf8])
                .into_iter()
                .map(SortField::new)
                .collect(),
        )?;
        let mut spansets: HashMap<Box<[u8]>, usize> = HashMap::new();
        let mut lefts = Vec::new();
        let mut parents = Vec::new();
        let mut spans = Vec::new();
        let mut row = 0;
        for batch in batches {
            let arrays = StructureArrays::of(batch, columns, &converter)?;
            let mut last: Option<(usize, usize)> = None;
            for i in 0..batch.num_rows() {
                let key = arrays.keys.row(i);
                // Rows come clustered by trace: most keys are the previous row's.
                let spanset = match last {
                    Some((row, spanset)) if arrays.keys.row(row) == key => spanset,
                    _ => {
                        let next = spansets.len();
                        *spansets.entry(key.as_ref().into()).or_insert(next)
                    }
                };
                last = Some((i, spanset));
                let span_id = arrays.span_id(i);
                let left = arrays.left(i);
                if left > 0 {
                    lefts.push((spanset, left, arrays.right.value(i)));
                    parents.push((spanset, arrays.parent.value(i), span_id));
                }
                spans.push((spanset, span_id, row));
                row += 1;
            }
        }
        lefts.sort_unstable();
        parents.sort_unstable();
        spans.sort_unstable();
        let mut ranges = vec![(0..0, 0..0); spansets.len()];
        let mut by_left = Vec::with_capacity(lefts.len());
        let mut start = 0;
        while start < lefts.len() {
            let spanset = lefts[start].0;
            let mut right_so_far = i32::MIN;
            let mut end = start;
            while end < lefts.len() && lefts[end].0 == spanset {
                let (_, left, right) = lefts[end];
                right_so_far = right_so_far.max(right);
                by_left.push(Interval { left, right_so_far });
                end += 1;
            }
            ranges[spanset].0 = start..end;
            start = end;
        }
        let mut start = 0;
        while start < parents.len() {
            let spanset = parents[start].0;
            let end = start + parents[start..].partition_point(|p| p.0 == spanset);
            ranges[spanset].1 = start..end;
            start = end;
        }
        let by_parent: Vec<_> = parents.into_iter().map(|(_, p, id)| (p, id)).collect();
        let index = Self {
            converter,
            spansets,
            ranges,
            by_left,
            by_parent,
            spans,
            output: vec![],
            rows: row,
        };
        reservation.try_grow(index.memory_size())?;
        Ok(index)
    }

    fn memory_size(&self) -> usize {
        let keys: usize = self.spansets.keys().map(|k| k.len() + 48).sum();
        keys + self.ranges.len()
            * std::mem::size_of::<(std::ops::Range<usize>, std::ops::Range<usize>)>()
            + self.by_left.len() * std::mem::size_of::<Interval>()
            + self.by_parent.len() * 12
            + self.spans.len() * std::mem::size_of::<(usize, [u8; 8], usize)>()
            + self.rows
    }

    /// Which rows of `batch` (a side with `columns`) pass `test` against this side, or
    /// (unless `want`) fail it in a spanset this side has spans in.
    fn matches(
        &self,
        batch: &RecordBatch,
        columns: Structure,
        test: Test,
        want: bool,
    ) -> Result<BooleanArray> {
        let arrays = StructureArrays::of(batch, columns, &self.converter)?;
        let spansets = self.spansets_of(&arrays);
        let kept = spansets.iter().enumerate().map(|(i, spanset)| {
            let Some(spanset) = *spanset else {
                return false;
            };
            let passes = match test {
                Test::Present => true,
                Test::Stands(rel) => self.stands(spanset, &arrays, i, rel),
            };
            passes == want
        });
        Ok(kept.collect())
    }

    /// The spanset here of each row of `arrays`, if this side has spans in it.
    fn spansets_of(&self, arrays: &StructureArrays) -> Vec<Option<usize>> {
        let mut out: Vec<Option<usize>> = Vec::with_capacity(arrays.keys.num_rows());
        for i in 0..arrays.keys.num_rows() {
            let key = arrays.keys.row(i);
            // Rows come clustered by trace: most keys are the previous row's.
            let spanset = match out.last() {
                Some(last) if arrays.keys.row(i - 1) == key => *last,
                _ => self.spansets.get(key.as_ref()).copied(),
            };
            out.push(spanset);
        }
        out
    }

    /// Whether span `i` of `arrays` stands in `rel` to a span of `spanset` here.
    fn stands(&self, spanset: usize, arrays: &StructureArrays, i: usize, rel: Relation) -> bool {
        let (by_left, by_parent) = &self.ranges[spanset];
        let by_left = &self.by_left[by_left.clone()];
        let by_parent = &self.by_parent[by_parent.clone()];
        let left = arrays.left(i);
        if left <= 0 && !matches!(rel, Relation::Child) {
            return false;
        }
        match rel {
            Relation::Child => {
                let parent = arrays.parent.value(i);
                by_left.binary_search_by_key(&parent, |s| s.left).is_ok()
            }
            Relation::Parent => by_parent.binary_search_by_key(&left, |p| p.0).is_ok(),
            Relation::Descendant => {
                // Nested sets do not overlap: an ancestor starts before and ends after.
                let before = by_left.partition_point(|s| s.left < left);
                before > 0 && by_left[before - 1].right_so_far > left
            }
            Relation::Ancestor => {
                let after = by_left.partition_point(|s| s.left <= left);
                after < by_left.len() && by_left[after].left < arrays.right.value(i)
            }
            Relation::Sibling => {
                let parent = arrays.parent.value(i);
                let from = by_parent.partition_point(|p| p.0 < parent);
                let to = by_parent.partition_point(|p| p.0 <= parent);
                let span_id = arrays.span_id(i);
                by_parent[from..to].iter().any(|p| p.1 != span_id)
            }
        }
    }

    /// Marks which of this side's rows (in input order) were output.
    fn set_output(&mut self, output: &[bool]) {
        self.output = output.to_vec();
    }

    /// `mask` without the rows of `batch` whose span was output from this side.
    fn not_output(
        &self,
        batch: &RecordBatch,
        columns: Structure,
        mask: BooleanArray,
    ) -> Result<BooleanArray> {
        let arrays = StructureArrays::of(batch, columns, &self.converter)?;
        let spansets = self.spansets_of(&arrays);
        let kept = mask.values().iter().enumerate().map(|(i, kept)| {
            kept && !spansets[i].is_some_and(|spanset| {
                let span_id = arrays.span_id(i);
                let from = self
                    .spans
                    .partition_point(|s| (s.0, s.1) < (spanset, span_id));
                self.spans[from..]
                    .iter()
                    .take_while(|s| (s.0, s.1) == (spanset, span_id))
                    .any(|s| self.output[s.2])
            })
        });
        Ok(kept.collect())
    }
}
