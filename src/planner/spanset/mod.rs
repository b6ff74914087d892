//! Spanset expressions and pipelines as relational plans over the span table.
//!
//! Every intermediate result is a relation with the span table's columns plus
//! [`SPANSET_KEY`], which tells the spansets of a trace apart (empty until a `by()`), and
//! the columns of the spanset attributes computed so far (`count()`, `by(…)`). A spanset is
//! the rows sharing a trace id and a spanset key.
//!
//! This file is the entry (a query to a [`SearchPlan`], and what a result shows); the node
//! families are lowered in `elements` (span filters, and those over events and links, which
//! unnest them), `operators` (`&&`, `||` and the structural operators: `>` and `<` as hash
//! semi joins on the nested-set parent, the others as
//! [`StructuralJoin`](super::structural::StructuralJoin)s) and `pipeline` (aggregates as
//! window functions over the spanset, `by()`, `coalesce()`, `select()`).

use std::cell::Cell;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};

use super::field::{FieldLowering, Value, ident};
use super::resolve::{StoredSpans, Unknown};
use crate::storage::schema;
use crate::traceql::ast::{
    BinaryOp, FieldExpr, FieldRef, Intrinsic, MetricsAggregate, MetricsExpr, Query, RootExpr,
    Stage, Static,
};
use crate::traceql::visit::{Visit, walk_field_expr, walk_stage};

mod elements;
mod operators;
mod pipeline;

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
