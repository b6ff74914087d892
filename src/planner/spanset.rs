//! Spanset expressions and pipelines as relational plans over the span table.
//!
//! Every intermediate result is a relation with the span table's columns plus
//! [`SPANSET_KEY`], which tells the spansets of a trace apart (empty until a `by()`), and
//! the columns of the spanset attributes computed so far (`count()`, `by(…)`). A spanset is
//! the rows sharing a trace id and a spanset key. Filters are `Filter`s. `>` and `<` are hash
//! semi joins on the nested-set parent; the other structural operators and `&&` are
//! [`StructuralJoin`]s (a trace of n spans costs O(n log n), and each side appears once in the
//! plan). `||` is a union, and aggregates are window functions over the spanset. A filter on event or link fields unnests the span's
//! events (links) first.

use std::cell::Cell;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Column, JoinType, Result, UnnestOptions, internal_err};
use datafusion::functions::string::expr_fn::concat;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::bool_and_or::bool_or_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::functions_nested::expr_fn::cardinality;
use datafusion::functions_window::row_number::row_number_udwf;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, Extension, LogicalPlan, LogicalPlanBuilder, WindowFunctionDefinition,
    cast, expr::WindowFunction, lit, when,
};

use super::field::{FieldLowering, Value, compare, ident, reads_elements, static_value};
use super::resolve::{StoredSpans, Unknown};
use super::structural::{Keep, Relation, STRUCTURE_COLUMNS, StructuralJoin};
use crate::storage::schema;
use crate::traceql::ast::{
    AggregateFn, BinaryOp, CmpOp, FieldExpr, FieldRef, Intrinsic, MetricsAggregate, MetricsExpr,
    Pipeline, PipelineExpr, Query, RootExpr, ScalarExpr, ScalarFilter, SpansetExpr, SpansetOp,
    Stage, Static,
};
use crate::traceql::visit::{Visit, walk_field_expr, walk_stage};

/// The column that tells the spansets of one trace apart.
pub const SPANSET_KEY: &str = "__spanset";

/// Where a value of the result is: one column per type it may have.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueColumns {
    pub str: Option<String>,
    pub int: Option<String>,
    pub float: Option<String>,
    pub bool: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub other: Option<String>,
    /// The int (or float) is a duration in nanoseconds.
    pub duration: bool,
}

/// A named value of the result: a span attribute or a spanset attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputValue {
    /// The key it is shown under (`http.method`, `status`, `count()`, `by(.a)`).
    pub key: String,
    pub columns: ValueColumns,
}

/// A search query as a plan: one row per matched span, with the columns of
/// [`SEARCH_COLUMNS`], [`SPANSET_KEY`], and those of the attributes.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    pub plan: LogicalPlan,
    /// Attributes of each spanset (same value on every row of the spanset).
    pub spanset_attributes: Vec<OutputValue>,
    /// Attributes shown on each returned span: those the query reads or selects.
    pub span_attributes: Vec<OutputValue>,
}

/// The span table columns a search result needs for every matched span.
pub const SEARCH_COLUMNS: [&str; 9] = [
    schema::TRACE_ID,
    schema::SPAN_ID,
    schema::START_TIME,
    schema::DURATION_NS,
    schema::NAME,
    schema::TRACE_START_TIME,
    schema::TRACE_DURATION_NS,
    schema::ROOT_SERVICE_NAME,
    schema::ROOT_SPAN_NAME,
];

/// Intrinsics a search result carries in its own fields, so not as span attributes.
const SHOWN_ELSEWHERE: [Intrinsic; 7] = [
    Intrinsic::Name,
    Intrinsic::Duration,
    Intrinsic::TraceDuration,
    Intrinsic::TraceRootService,
    Intrinsic::TraceRootName,
    Intrinsic::TraceId,
    Intrinsic::SpanId,
];

/// An intermediate result: the plan and the spanset attributes it carries.
struct Rel {
    plan: LogicalPlan,
    attrs: Vec<OutputValue>,
}

/// Lowers one query against a scan of the span table.
pub struct Planner {
    scan: LogicalPlan,
    schema: SchemaRef,
    /// A filter on every span read (the search time range).
    span_filter: Option<Expr>,
    /// What the blocks say exists, for resolving attributes.
    stored: Arc<dyn StoredSpans>,
    next_name: Cell<usize>,
}

impl Planner {
    /// `scan` reads the span table, whose schema is `schema`; `span_filter` restricts every
    /// span read (e.g. to the searched time range).
    pub fn new(scan: LogicalPlan, schema: SchemaRef, span_filter: Option<Expr>) -> Self {
        Self {
            scan,
            schema,
            span_filter,
            stored: Arc::new(Unknown),
            next_name: Cell::new(0),
        }
    }

    /// Attributes resolved against what is stored: a plan reads only the maps and dedicated
    /// columns that can hold them. Without it every map is read.
    pub fn with_stored_spans(mut self, stored: Arc<dyn StoredSpans>) -> Self {
        self.stored = stored;
        self
    }

    fn fields(&self) -> FieldLowering<'_> {
        FieldLowering::new(&self.schema, self.stored.as_ref())
    }

    fn fresh(&self, what: &str) -> String {
        let n = self.next_name.get();
        self.next_name.set(n + 1);
        format!("__{what}{n}")
    }

    /// The plan of a search query.
    pub fn search(&self, query: &Query) -> Result<SearchPlan> {
        let rel = match &query.expr {
            RootExpr::Pipeline(p) => self.pipeline(p, self.base()?)?,
            RootExpr::PipelineExpr(p) => self.pipeline_expr(p)?,
            // A search with a metrics query runs its spanset pipeline, as Tempo's does.
            RootExpr::Metrics(m) => match &m.expr {
                MetricsExpr::Pipeline { pipeline, .. } => self.pipeline(pipeline, self.base()?)?,
                _ => return reject!("math expressions are not supported in search"),
            },
            RootExpr::ScalarPipelineFilter(_) => {
                return reject!("comparing the results of two pipelines");
            }
        };
        let mut refs = Vec::new();
        collect_shown_fields(query, &mut refs);
        let mut exprs: Vec<Expr> = SEARCH_COLUMNS
            .iter()
            .chain([&SPANSET_KEY])
            .map(|c| ident(c))
            .collect();
        for attr in &rel.attrs {
            for c in columns_of(&attr.columns) {
                exprs.push(ident(c));
            }
        }
        let mut span_attributes = Vec::new();
        for (field, types) in refs {
            let value = types.restrict(self.fields().field(&field)?);
            let (projected, columns) = self.value_columns(&value);
            exprs.extend(projected);
            span_attributes.push(OutputValue {
                key: shown_key(&field),
                columns,
            });
        }
        let plan = LogicalPlanBuilder::from(rel.plan).project(exprs)?.build()?;
        Ok(SearchPlan {
            plan,
            spanset_attributes: rel.attrs,
            span_attributes,
        })
    }

    /// The spans (in range) that the span filter `{ filter }` keeps, with the span table's
    /// columns and the spanset key.
    pub fn matching_spans(&self, filter: &FieldExpr) -> Result<LogicalPlan> {
        self.filter(self.base()?, filter)
    }

    /// Every span (in range), each trace one spanset.
    fn base(&self) -> Result<LogicalPlan> {
        let mut builder = LogicalPlanBuilder::from(self.scan.clone());
        if let Some(f) = &self.span_filter {
            builder = builder.filter(f.clone())?;
        }
        let mut exprs: Vec<Expr> = self
            .schema
            .fields()
            .iter()
            .map(|f| ident(f.name()))
            .collect();
        exprs.push(lit("").alias(SPANSET_KEY));
        builder.project(exprs)?.build()
    }

    /// The span columns and the spanset key, in a fixed order (what unions need).
    fn core(&self, rel: Rel) -> Result<LogicalPlan> {
        if rel.attrs.is_empty() {
            return Ok(rel.plan);
        }
        let exprs: Vec<Expr> = self.core_columns().map(|c| ident(&c)).collect();
        LogicalPlanBuilder::from(rel.plan).project(exprs)?.build()
    }

    fn core_columns(&self) -> impl Iterator<Item = String> + '_ {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .chain([SPANSET_KEY.to_string()])
    }

    fn pipeline_expr(&self, expr: &PipelineExpr) -> Result<Rel> {
        match expr {
            PipelineExpr::Wrapped(p) => self.pipeline(p, self.base()?),
            PipelineExpr::Op { op, lhs, rhs } => {
                let l = self.pipeline_expr(lhs)?;
                let r = self.pipeline_expr(rhs)?;
                let plan = self.spanset_op(*op, self.core(l)?, self.core(r)?)?;
                Ok(Rel {
                    plan,
                    attrs: vec![],
                })
            }
        }
    }

    fn pipeline(&self, pipeline: &Pipeline, input: LogicalPlan) -> Result<Rel> {
        let mut rel = Rel {
            plan: input,
            attrs: vec![],
        };
        for stage in &pipeline.stages {
            rel = match stage {
                Stage::Spanset(SpansetExpr::Filter { expr, .. }) => Rel {
                    plan: self.filter(rel.plan, expr)?,
                    attrs: rel.attrs,
                },
                Stage::Spanset(expr) => Rel {
                    plan: self.spanset(expr, &self.core(rel)?)?,
                    attrs: vec![],
                },
                Stage::ScalarFilter(f) => self.scalar_filter(rel, f)?,
                Stage::GroupBy { expr, .. } => self.group_by(rel, expr)?,
                Stage::Coalesce => {
                    let exprs: Vec<Expr> = self
                        .core_columns()
                        .map(|c| {
                            if c == SPANSET_KEY {
                                lit("").alias(SPANSET_KEY)
                            } else {
                                ident(&c)
                            }
                        })
                        .collect();
                    Rel {
                        plan: LogicalPlanBuilder::from(rel.plan).project(exprs)?.build()?,
                        attrs: vec![],
                    }
                }
                // Selected fields are added to the result's spans at the end.
                Stage::Select { .. } => rel,
            };
        }
        Ok(rel)
    }

    fn filter(&self, input: LogicalPlan, expr: &FieldExpr) -> Result<LogicalPlan> {
        let (events, links) = reads_elements(expr);
        if events || links {
            return self.element_filter(input, expr, events, links);
        }
        let predicate = self.fields().lower(expr)?.is_true();
        LogicalPlanBuilder::from(input).filter(predicate)?.build()
    }

    /// A filter that reads event or link fields keeps a span when one of its events (links)
    /// makes it true, every event field of the filter read from that same event. A span with
    /// no events (links) is tried once, with those fields nil. The lists are unnested, so the
    /// rows are (span, event, link); the filter picks rows, then each span is kept once.
    fn element_filter(
        &self,
        input: LogicalPlan,
        expr: &FieldExpr,
        events: bool,
        links: bool,
    ) -> Result<LogicalPlan> {
        // Conditions on the span alone are applied before the unnest (and reach the scan).
        let (span_only, on_elements): (Vec<&FieldExpr>, Vec<&FieldExpr>) = conjuncts(expr)
            .into_iter()
            .partition(|c| reads_elements(c) == (false, false));
        let mut input = LogicalPlanBuilder::from(input);
        for condition in span_only {
            input = input.filter(self.fields().lower(condition)?.is_true())?;
        }
        let input = input.build()?;
        let columns: Vec<Expr> = input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let mut exprs = columns.clone();
        let mut unnested = Vec::new();
        let mut element = |read: bool, list: &str| -> Result<Option<String>> {
            if !read {
                return Ok(None);
            }
            let name = self.fresh(list);
            // An empty list as null, so that unnesting keeps the span (with a null element).
            exprs.push(
                when(cardinality(ident(list)).gt(lit(0u64)), ident(list))
                    .end()?
                    .alias(&name),
            );
            unnested.push(name.clone());
            Ok(Some(name))
        };
        let event = element(events, schema::EVENTS)?;
        let link = element(links, schema::LINKS)?;
        let mut builder = LogicalPlanBuilder::from(input).project(exprs)?;
        for name in unnested {
            builder = builder.unnest_column_with_options(
                Column::from_name(name),
                UnnestOptions::new().with_preserve_nulls(true),
            )?;
        }
        let fields = self
            .fields()
            .with_elements(event.as_deref().map(ident), link.as_deref().map(ident));
        let predicate = on_elements
            .into_iter()
            .map(|c| Ok(fields.lower(c)?.is_true()))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .reduce(Expr::and)
            .expect("the filter reads events or links");
        self.each_span_once(builder.filter(predicate)?, columns)
    }

    /// The first row of each span of each spanset of `input`, as `columns`.
    fn each_span_once(&self, input: LogicalPlanBuilder, columns: Vec<Expr>) -> Result<LogicalPlan> {
        let first = self.fresh("first");
        let numbered = Expr::WindowFunction(Box::new(WindowFunction::new(
            WindowFunctionDefinition::WindowUDF(row_number_udwf()),
            vec![],
        )))
        .partition_by(vec![
            ident(schema::TRACE_ID),
            ident(SPANSET_KEY),
            ident(schema::SPAN_ID),
        ])
        .build()?
        .alias(&first);
        input
            .window(vec![numbered])?
            .filter(ident(&first).eq(lit(1u64)))?
            .project(columns)?
            .build()
    }

    /// A spanset expression over the spans of `input`.
    fn spanset(&self, expr: &SpansetExpr, input: &LogicalPlan) -> Result<LogicalPlan> {
        match expr {
            SpansetExpr::Filter { expr, .. } => self.filter(input.clone(), expr),
            SpansetExpr::Op { op, lhs, rhs } => {
                if let Some(filters) = plain_filters(expr, *op)
                    && filters.iter().all(|f| reads_elements(f) == (false, false))
                {
                    return self.plain_filters_op(*op, &filters, input);
                }
                let l = self.spanset(lhs, input)?;
                let r = self.spanset(rhs, input)?;
                self.spanset_op(*op, l, r)
            }
        }
    }

    /// `{a} || {b} || …` or `{a} && {b} && …` of plain filters, in one pass over `input`.
    /// `||` keeps the spans matching any filter. `&&` keeps them too, but only in spansets
    /// that have a span matching each filter: a window per filter instead of joins.
    fn plain_filters_op(
        &self,
        op: SpansetOp,
        filters: &[&FieldExpr],
        input: &LogicalPlan,
    ) -> Result<LogicalPlan> {
        let predicates = filters
            .iter()
            .map(|f| Ok(self.fields().lower(f)?.is_true()))
            .collect::<Result<Vec<_>>>()?;
        if op == SpansetOp::Or {
            let any = predicates
                .into_iter()
                .reduce(Expr::or)
                .expect("two filters");
            return LogicalPlanBuilder::from(input.clone()).filter(any)?.build();
        }
        // Each filter's outcome as a column first: a window over a constant (`{ true }`) trips
        // DataFusion's filter pushdown.
        let mut exprs: Vec<Expr> = self.core_columns().map(|c| ident(&c)).collect();
        let mut matched = Vec::new();
        for predicate in predicates {
            let name = self.fresh("match");
            exprs.push(predicate.alias(&name));
            matched.push(ident(&name));
        }
        let mut flags = Vec::new();
        let mut windows = Vec::new();
        for m in &matched {
            let flag = self.fresh("has");
            windows.push(
                Expr::WindowFunction(Box::new(WindowFunction::new(
                    WindowFunctionDefinition::AggregateUDF(bool_or_udaf()),
                    vec![m.clone()],
                )))
                .partition_by(vec![ident(schema::TRACE_ID), ident(SPANSET_KEY)])
                .build()?
                .alias(&flag),
            );
            flags.push(ident(&flag));
        }
        let any = matched.into_iter().reduce(Expr::or).expect("two filters");
        let all = flags.into_iter().reduce(Expr::and).expect("two filters");
        LogicalPlanBuilder::from(input.clone())
            .project(exprs)?
            .filter(any)?
            .window(windows)?
            .filter(all)?
            .project(self.core_columns().map(|c| ident(&c)))?
            .build()
    }

    /// Two spanset relations combined by `op`. Each side appears once in the plan, so chains
    /// of operators grow the plan linearly.
    fn spanset_op(&self, op: SpansetOp, l: LogicalPlan, r: LogicalPlan) -> Result<LogicalPlan> {
        use Relation::*;
        match op {
            SpansetOp::And => self.in_spansets_of_both(l, r),
            SpansetOp::Or => self.union_distinct(l, r),
            SpansetOp::Child => self.related(Child, l, r),
            SpansetOp::Parent => self.related(Parent, l, r),
            SpansetOp::Descendant => self.related(Descendant, l, r),
            SpansetOp::Ancestor => self.related(Ancestor, l, r),
            SpansetOp::Sibling => self.related(Sibling, l, r),
            SpansetOp::NotChild => self.not_related(Child, l, r),
            SpansetOp::NotParent => self.not_related(Parent, l, r),
            SpansetOp::NotDescendant => self.not_related(Descendant, l, r),
            SpansetOp::NotAncestor => self.not_related(Ancestor, l, r),
            SpansetOp::NotSibling => self.not_related(Sibling, l, r),
            SpansetOp::UnionChild => self.related_both_ways(Child, l, r),
            SpansetOp::UnionParent => self.related_both_ways(Parent, l, r),
            SpansetOp::UnionDescendant => self.related_both_ways(Descendant, l, r),
            SpansetOp::UnionAncestor => self.related_both_ways(Ancestor, l, r),
            SpansetOp::UnionSibling => self.related_both_ways(Sibling, l, r),
        }
    }

    /// `l && r`: the spans of both, in spansets where both have spans.
    fn in_spansets_of_both(&self, l: LogicalPlan, r: LogicalPlan) -> Result<LogicalPlan> {
        structural_join(Keep::SameSpanset, l, r)
    }

    /// The spans of `r` that stand in `rel` to a span of `l` in their spanset. Child and
    /// parent are equalities, so hash joins; the others a [`StructuralJoin`], which needs
    /// only the structure columns of `l`.
    fn related(&self, rel: Relation, l: LogicalPlan, r: LogicalPlan) -> Result<LogicalPlan> {
        if matches!(rel, Relation::Child | Relation::Parent) {
            return self.parent_join(r, l, rel);
        }
        // Spans outside the nested set (left = 0) are in no relation: neither side needs them.
        let in_tree = |plan| {
            LogicalPlanBuilder::from(plan)
                .filter(ident(schema::NESTED_SET_LEFT).gt(lit(0)))?
                .build()
        };
        structural_join(
            Keep::Related(rel),
            structure_only(in_tree(l)?)?,
            in_tree(r)?,
        )
    }

    /// The spans of `r` that stand in `rel` to no span of `l`, in spansets where `l` has spans.
    fn not_related(&self, rel: Relation, l: LogicalPlan, r: LogicalPlan) -> Result<LogicalPlan> {
        structural_join(Keep::Unrelated(rel), structure_only(l)?, r)
    }

    /// `l &>> r` and friends: the spans of `r` in `rel` to a span of `l`, and those of `l` in
    /// the inverse relation to a span of `r`, each once.
    fn related_both_ways(
        &self,
        rel: Relation,
        l: LogicalPlan,
        r: LogicalPlan,
    ) -> Result<LogicalPlan> {
        structural_join(Keep::BothWays(rel), l, r)
    }

    /// The spans of `kept` whose parent (child, with `Parent`) is a span of `other` in the
    /// same spanset: a hash join on the nested-set parent.
    fn parent_join(
        &self,
        kept: LogicalPlan,
        other: LogicalPlan,
        rel: Relation,
    ) -> Result<LogicalPlan> {
        let k = |c: &str| Expr::Column(Column::new(Some("r"), c));
        let o = |c: &str| Expr::Column(Column::new(Some("l"), c));
        let (left, parent) = (schema::NESTED_SET_LEFT, schema::NESTED_SET_PARENT);
        let mut on = vec![
            o(schema::TRACE_ID).eq(k(schema::TRACE_ID)),
            o(SPANSET_KEY).eq(k(SPANSET_KEY)),
        ];
        // Spans outside the nested set (left = 0) are in no relation.
        match rel {
            Relation::Child => {
                on.push(o(left).eq(k(parent)));
                on.push(o(left).gt(lit(0)));
            }
            Relation::Parent => {
                on.push(k(left).eq(o(parent)));
                on.push(k(left).gt(lit(0)));
            }
            _ => return internal_err!("{rel:?} is not a parent-child relation"),
        }
        let other = LogicalPlanBuilder::from(other).alias("l")?.build()?;
        LogicalPlanBuilder::from(kept)
            .alias("r")?
            .join_on(other, JoinType::LeftSemi, on)?
            .build()
    }

    /// The spans of both, each once.
    fn union_distinct(&self, a: LogicalPlan, b: LogicalPlan) -> Result<LogicalPlan> {
        let exprs: Vec<Expr> = self.core_columns().map(|c| ident(&c)).collect();
        self.each_span_once(LogicalPlanBuilder::from(a).union(b)?, exprs)
    }

    /// `| count() > 2` and friends: the aggregate over each spanset as a window, then a filter.
    fn scalar_filter(&self, rel: Rel, f: &ScalarFilter) -> Result<Rel> {
        let (agg, op, value) = match (&f.lhs, &f.rhs) {
            (ScalarExpr::Aggregate(a), ScalarExpr::Static(s)) => (a, f.op, s),
            (ScalarExpr::Static(s), ScalarExpr::Aggregate(a)) => (a, mirror(f.op), s),
            _ => return reject!("scalar filters other than `aggregate op number`"),
        };
        let name = self.fresh("agg");
        let (udaf, arg, duration) = match (agg.func, &agg.arg) {
            (AggregateFn::Count, _) => (count_udaf(), lit(1i64), false),
            (func, Some(arg)) => {
                let v = self.fields().lower(arg)?;
                // Validation has refused arguments that cannot be numbers; one that has no
                // numeric value in the data aggregates to null, which compares false.
                let number = v
                    .as_float()
                    .unwrap_or(lit(datafusion::scalar::ScalarValue::Float64(None)));
                let udaf = match func {
                    AggregateFn::Avg => avg_udaf(),
                    AggregateFn::Min => min_udaf(),
                    AggregateFn::Max => max_udaf(),
                    AggregateFn::Sum => sum_udaf(),
                    AggregateFn::Count => unreachable!("count has no argument"),
                };
                (udaf, number, v.duration)
            }
            (func, None) => return reject!("{}() needs an argument", func.name()),
        };
        let window = Expr::WindowFunction(Box::new(WindowFunction::new(
            WindowFunctionDefinition::AggregateUDF(udaf),
            vec![arg],
        )))
        .partition_by(vec![ident(schema::TRACE_ID), ident(SPANSET_KEY)])
        .build()?
        .alias(&name);
        let mut columns = ValueColumns {
            duration,
            ..ValueColumns::default()
        };
        let result = if agg.func == AggregateFn::Count {
            columns.int = Some(name.clone());
            Value {
                int: Some(ident(&name)),
                ..Value::default()
            }
        } else {
            columns.float = Some(name.clone());
            Value {
                float: Some(ident(&name)),
                ..Value::default()
            }
        };
        let predicate = compare(op, &result, &static_value(value));
        let plan = LogicalPlanBuilder::from(rel.plan)
            .window(vec![window])?
            .filter(predicate)?
            .build()?;
        let mut attrs = rel.attrs;
        attrs.push(OutputValue {
            key: agg.to_string(),
            columns,
        });
        Ok(Rel { plan, attrs })
    }

    /// `| by(expr)`: each spanset split by the value of `expr`.
    fn group_by(&self, rel: Rel, expr: &FieldExpr) -> Result<Rel> {
        let value = self.fields().lower(expr)?;
        let key = group_key(&value);
        let (value_exprs, columns) = self.value_columns(&value);
        let mut exprs: Vec<Expr> = self
            .core_columns()
            .map(|c| {
                if c == SPANSET_KEY {
                    concat(vec![ident(SPANSET_KEY), lit("\u{1f}"), key.clone()]).alias(SPANSET_KEY)
                } else {
                    ident(&c)
                }
            })
            .collect();
        for attr in &rel.attrs {
            exprs.extend(columns_of(&attr.columns).map(|c| ident(c)));
        }
        exprs.extend(value_exprs);
        let plan = LogicalPlanBuilder::from(rel.plan).project(exprs)?.build()?;
        let mut attrs = rel.attrs;
        attrs.push(OutputValue {
            key: format!("by({expr})"),
            columns,
        });
        Ok(Rel { plan, attrs })
    }

    /// A value as named columns, one per type it may have.
    fn value_columns(&self, value: &Value) -> (Vec<Expr>, ValueColumns) {
        let mut exprs = Vec::new();
        let mut columns = ValueColumns {
            duration: value.duration,
            ..ValueColumns::default()
        };
        let mut add = |e: &Option<Expr>, slot: &mut Option<String>| {
            if let Some(e) = e {
                let name = self.fresh("value");
                exprs.push(e.clone().alias(&name));
                *slot = Some(name);
            }
        };
        add(&value.str, &mut columns.str);
        add(&value.int, &mut columns.int);
        add(&value.float, &mut columns.float);
        add(&value.bool, &mut columns.bool);
        add(&value.status, &mut columns.status);
        add(&value.kind, &mut columns.kind);
        add(&value.other, &mut columns.other);
        (exprs, columns)
    }
}

/// A [`StructuralJoin`] of `l` and `r`.
fn structural_join(keep: Keep, l: LogicalPlan, r: LogicalPlan) -> Result<LogicalPlan> {
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(StructuralJoin::try_new(keep, l, r)?),
    }))
}

/// `plan` narrowed to what a [`StructuralJoin`] reads of a side whose spans it only looks up.
fn structure_only(plan: LogicalPlan) -> Result<LogicalPlan> {
    LogicalPlanBuilder::from(plan)
        .project(STRUCTURE_COLUMNS.map(ident))?
        .build()
}

/// The filters of `expr` when it is plain filters combined by `op` alone (`&&` or `||`).
fn plain_filters(expr: &SpansetExpr, op: SpansetOp) -> Option<Vec<&FieldExpr>> {
    if !matches!(op, SpansetOp::And | SpansetOp::Or) {
        return None;
    }
    fn collect<'e>(e: &'e SpansetExpr, op: SpansetOp, out: &mut Vec<&'e FieldExpr>) -> bool {
        match e {
            SpansetExpr::Filter { expr, .. } => {
                out.push(expr);
                true
            }
            SpansetExpr::Op { op: o, lhs, rhs } if *o == op => {
                collect(lhs, op, out) && collect(rhs, op, out)
            }
            SpansetExpr::Op { .. } => false,
        }
    }
    let mut out = Vec::new();
    collect(expr, op, &mut out).then_some(out)
}

/// The operands of a chain of `&&`, or `expr` itself.
fn conjuncts(expr: &FieldExpr) -> Vec<&FieldExpr> {
    match expr {
        FieldExpr::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
            ..
        } => {
            let mut all = conjuncts(lhs);
            all.extend(conjuncts(rhs));
            all
        }
        other => vec![other],
    }
}

fn mirror(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Lte => CmpOp::Gte,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Gte => CmpOp::Lte,
        other => other,
    }
}

/// A string that is equal exactly when the values are (type included), for grouping.
fn group_key(value: &Value) -> Expr {
    // `||` is null when the value is (`concat` would treat it as empty), so `coalesce` picks
    // the type the value has.
    let tagged = |tag: &str, e: &Option<Expr>| {
        e.as_ref().map(|e| {
            Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
                Box::new(lit(tag.to_string())),
                datafusion::logical_expr::Operator::StringConcat,
                Box::new(cast(e.clone(), DataType::Utf8)),
            ))
        })
    };
    let keys: Vec<Expr> = [
        tagged("s", &value.str),
        tagged("i", &value.int),
        tagged("f", &value.float),
        tagged("b", &value.bool),
        tagged("t", &value.status),
        tagged("k", &value.kind),
        tagged("o", &value.other),
        Some(lit("nil")),
    ]
    .into_iter()
    .flatten()
    .collect();
    datafusion::functions::core::expr_fn::coalesce(keys)
}

fn columns_of(c: &ValueColumns) -> impl Iterator<Item = &String> {
    [
        &c.str, &c.int, &c.float, &c.bool, &c.status, &c.kind, &c.other,
    ]
    .into_iter()
    .flatten()
}

/// The key a field is shown under on a result span: the attribute's name, or the
/// intrinsic's canonical spelling.
fn shown_key(field: &FieldRef) -> String {
    match field {
        FieldRef::Attribute(a) => a.name.clone(),
        FieldRef::Intrinsic(i) => i.canonical_name(),
    }
}

/// The value types of a field a result shows: a field compared with a literal can only have
/// matched with the types comparable to it, so the others need not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShownTypes {
    str: bool,
    number: bool,
    bool: bool,
    status: bool,
    kind: bool,
    other: bool,
}

impl ShownTypes {
    const ALL: Self = Self {
        str: true,
        number: true,
        bool: true,
        status: true,
        kind: true,
        other: true,
    };
    const NONE: Self = Self {
        str: false,
        number: false,
        bool: false,
        status: false,
        kind: false,
        other: false,
    };

    /// The types that compare with `literal` (all for `nil`, which tests presence).
    fn comparable_with(literal: &Static) -> Self {
        match literal {
            Static::Nil => Self::ALL,
            Static::String(_) => Self {
                str: true,
                ..Self::NONE
            },
            Static::Int(_) | Static::Float(_) | Static::Duration(_) => Self {
                number: true,
                ..Self::NONE
            },
            Static::Bool(_) => Self {
                bool: true,
                ..Self::NONE
            },
            Static::Status(_) => Self {
                status: true,
                ..Self::NONE
            },
            Static::Kind(_) => Self {
                kind: true,
                ..Self::NONE
            },
        }
    }

    fn union(self, o: Self) -> Self {
        Self {
            str: self.str || o.str,
            number: self.number || o.number,
            bool: self.bool || o.bool,
            status: self.status || o.status,
            kind: self.kind || o.kind,
            other: self.other || o.other,
        }
    }

    fn restrict(self, v: Value) -> Value {
        let keep = |on: bool, e: Option<Expr>| e.filter(|_| on);
        Value {
            str: keep(self.str, v.str),
            int: keep(self.number, v.int),
            float: keep(self.number, v.float),
            bool: keep(self.bool, v.bool),
            status: keep(self.status, v.status),
            kind: keep(self.kind, v.kind),
            other: keep(self.other, v.other),
            ..v
        }
    }
}

/// The fields a query reads or selects, in order of appearance, with the types worth showing,
/// without the intrinsics a result shows in fields of its own. Spanset filters and `select()`
/// count; aggregates, `by()` and metrics functions do not.
fn collect_shown_fields(query: &Query, out: &mut Vec<(FieldRef, ShownTypes)>) {
    struct Shown<'o>(&'o mut Vec<(FieldRef, ShownTypes)>);
    impl Shown<'_> {
        fn push(&mut self, f: &FieldRef, types: ShownTypes) {
            // A span has many events and links: there is no one value of theirs to show.
            if matches!(f, FieldRef::Intrinsic(i) if SHOWN_ELSEWHERE.contains(i))
                || f.element().is_some()
            {
                return;
            }
            match self.0.iter_mut().find(|(seen, _)| seen == f) {
                Some((_, seen)) => *seen = seen.union(types),
                None => self.0.push((f.clone(), types)),
            }
        }
    }
    impl<'a> Visit<'a> for Shown<'_> {
        fn visit_stage(&mut self, stage: &'a Stage) {
            if let Stage::Spanset(_) | Stage::Select { .. } = stage {
                walk_stage(self, stage);
            }
        }

        fn visit_metrics_aggregate(&mut self, _: &'a MetricsAggregate) {}

        fn visit_field_expr(&mut self, e: &'a FieldExpr) {
            if let FieldExpr::Binary { op, lhs, rhs, .. } = e
                && matches!(op, BinaryOp::Cmp(_) | BinaryOp::Regex | BinaryOp::NotRegex)
                && let (FieldExpr::Field(f, _), FieldExpr::Static(s))
                | (FieldExpr::Static(s), FieldExpr::Field(f, _)) = (lhs.as_ref(), rhs.as_ref())
            {
                return self.push(f, ShownTypes::comparable_with(s));
            }
            walk_field_expr(self, e);
        }

        fn visit_field_ref(&mut self, f: &'a FieldRef) {
            self.push(f, ShownTypes::ALL);
        }
    }
    // A search rejects comparisons of pipelines before it gets here.
    if !matches!(query.expr, RootExpr::ScalarPipelineFilter(_)) {
        Shown(out).visit_query(query);
    }
}
