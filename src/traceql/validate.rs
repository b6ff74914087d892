//! Validation: the rules a parsed query must meet before it can run (types of field
//! expressions, aggregate arguments, `by` limits, quantile ranges, topk arguments, …), and the
//! forms TraceQL parses but does not support yet.

use super::ast::*;
use super::error::{ErrorKind, TraceqlError};
use super::visit::{Visit, walk_spanset, walk_stage};

/// `by (…)` of a metrics function takes at most this many fields (one fewer for quantiles and
/// histograms, which add a label of their own).
pub const MAX_METRICS_GROUP_BYS: usize = 5;

type Checked<T = ()> = Result<T, TraceqlError>;

fn invalid<T>(pos: Pos, message: impl Into<String>) -> Checked<T> {
    Err(TraceqlError::new(
        ErrorKind::Validate,
        pos.line,
        pos.col,
        message,
    ))
}

fn unsupported<T>(pos: Pos, message: impl Into<String>) -> Checked<T> {
    Err(TraceqlError::new(
        ErrorKind::Unsupported,
        pos.line,
        pos.col,
        message,
    ))
}

/// Checks a parsed query. Errors are `Validate` or `Unsupported`, never `Parse`.
pub fn validate(query: &Query) -> Checked {
    if let RootExpr::Metrics(m) = &query.expr {
        return metrics_query(m);
    }
    let mut rules = Rules::default();
    rules.visit_query(query);
    rules.into_result()?;
    match &query.expr {
        RootExpr::ScalarPipelineFilter(s) => unsupported(
            s.pos,
            "comparing the results of two pipelines is not yet supported",
        ),
        _ => Ok(()),
    }
}

/// The rules of spanset filters and pipeline stages, checked in one walk over the AST; the
/// first rule broken (in the order the query reads) is the error.
#[derive(Default)]
struct Rules {
    broken: Option<TraceqlError>,
}

impl Rules {
    fn check(&mut self, result: Checked) {
        if let (None, Err(e)) = (&self.broken, result) {
            self.broken = Some(e);
        }
    }

    fn into_result(self) -> Checked {
        self.broken.map_or(Ok(()), Err)
    }
}

impl<'a> Visit<'a> for Rules {
    fn visit_stage(&mut self, stage: &'a Stage) {
        if self.broken.is_some() {
            return;
        }
        // What a stage holds first (filters, aggregates), then the stage itself.
        walk_stage(self, stage);
        let result = match stage {
            Stage::ScalarFilter(f) => scalar_filter(f),
            Stage::GroupBy { expr, pos } => group_by(expr, *pos),
            Stage::Select { fields, pos } => fields.iter().try_for_each(|field| {
                field_ref(field, *pos)?;
                field_outside_filter(field, *pos, "select()")
            }),
            Stage::Spanset(_) | Stage::Coalesce => Ok(()),
        };
        self.check(result);
    }

    fn visit_spanset(&mut self, expr: &'a SpansetExpr) {
        match expr {
            SpansetExpr::Filter { expr, pos } if self.broken.is_none() => {
                self.check(filter(expr, *pos))
            }
            _ => walk_spanset(self, expr),
        }
    }

    fn visit_aggregate(&mut self, a: &'a Aggregate) {
        if self.broken.is_none() {
            self.check(aggregate(a));
        }
    }
}

/// The rules of a spanset pipeline.
fn pipeline(p: &Pipeline) -> Checked {
    let mut rules = Rules::default();
    rules.visit_pipeline(p);
    rules.into_result()
}

fn group_by(expr: &FieldExpr, pos: Pos) -> Checked {
    type_of(expr)?;
    outside_filter(expr, pos, "by()")?;
    if !references_span(expr) {
        return invalid(
            pos,
            "by() must group by something of the span, e.g. by(resource.service.name)",
        );
    }
    Ok(())
}

fn filter(expr: &FieldExpr, pos: Pos) -> Checked {
    match type_of(expr)? {
        Type::Bool | Type::Attribute => Ok(()),
        other => invalid(
            expr_pos(expr).unwrap_or(pos),
            format!(
                "span filter field expressions must resolve to a boolean, not {}",
                other.name()
            ),
        ),
    }
}

/// `aggregate OP number` (the aggregates themselves are checked by the walk).
fn scalar_filter(f: &ScalarFilter) -> Checked {
    match (&f.lhs, &f.rhs) {
        (ScalarExpr::Aggregate(_), ScalarExpr::Static(_)) => Ok(()),
        _ => unsupported(
            f.pos,
            "scalar filters other than `aggregate OP number` are not yet supported",
        ),
    }
}

fn aggregate(a: &Aggregate) -> Checked {
    let Some(arg) = &a.arg else { return Ok(()) };
    outside_filter(arg, a.pos, &format!("{}()", a.func.name()))?;
    match type_of(arg)? {
        Type::Int | Type::Float | Type::Duration | Type::Attribute => {}
        other => {
            return invalid(
                a.pos,
                format!("{}() needs a number, not {}", a.func.name(), other.name()),
            );
        }
    }
    if !references_span(arg) {
        return invalid(
            a.pos,
            format!(
                "{}() must aggregate something of the span, e.g. {}(duration)",
                a.func.name(),
                a.func.name()
            ),
        );
    }
    Ok(())
}

/// Event and link fields are read one event (link) at a time, which only a span filter does:
/// elsewhere a span has many of them.
fn outside_filter(expr: &FieldExpr, pos: Pos, what: &str) -> Checked {
    match expr {
        FieldExpr::Static(_) => Ok(()),
        FieldExpr::Field(field, _) => field_outside_filter(field, pos, what),
        FieldExpr::Binary { lhs, rhs, .. } => {
            outside_filter(lhs, pos, what)?;
            outside_filter(rhs, pos, what)
        }
        FieldExpr::Unary { expr, .. } => outside_filter(expr, pos, what),
    }
}

fn field_outside_filter(field: &FieldRef, pos: Pos, what: &str) -> Checked {
    let many = match field.element() {
        Some(Element::Event) => "events",
        Some(Element::Link) => "links",
        None => return Ok(()),
    };
    unsupported(
        pos,
        format!(
            "{field} in {what} is not yet supported: a span has many {many}; use it in a span filter {{ … }}"
        ),
    )
}

/// Does the expression read anything from the span (an attribute or an intrinsic)?
fn references_span(expr: &FieldExpr) -> bool {
    struct Reads(bool);
    impl Visit<'_> for Reads {
        fn visit_field_ref(&mut self, _: &FieldRef) {
            self.0 = true;
        }
    }
    let mut reads = Reads(false);
    reads.visit_field_expr(expr);
    reads.0
}

fn expr_pos(expr: &FieldExpr) -> Option<Pos> {
    match expr {
        FieldExpr::Static(_) => None,
        FieldExpr::Field(_, pos) | FieldExpr::Binary { pos, .. } | FieldExpr::Unary { pos, .. } => {
            Some(*pos)
        }
    }
}

/// The static type of a field expression. `Attribute` means "known only at run time".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Bool,
    Int,
    Float,
    Duration,
    String,
    Status,
    Kind,
    Nil,
    Attribute,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Bool => "a boolean",
            Type::Int => "an integer",
            Type::Float => "a float",
            Type::Duration => "a duration",
            Type::String => "a string",
            Type::Status => "a status",
            Type::Kind => "a kind",
            Type::Nil => "nil",
            Type::Attribute => "an attribute",
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Duration)
    }

    /// Can two operands of these types meet in one binary operation?
    fn matches(self, other: Type) -> bool {
        self == other
            || (self.is_numeric() && other.is_numeric())
            || matches!(self, Type::Attribute | Type::Nil)
            || matches!(other, Type::Attribute | Type::Nil)
    }

    /// Is `op` defined for an operand of this type?
    fn allows(self, op: BinaryOp) -> bool {
        match self {
            Type::Attribute => true,
            Type::Bool => matches!(
                op,
                BinaryOp::And | BinaryOp::Or | BinaryOp::Cmp(CmpOp::Eq | CmpOp::Neq)
            ),
            Type::Int | Type::Float | Type::Duration => {
                matches!(op, BinaryOp::Arith(_) | BinaryOp::Cmp(_))
            }
            Type::String => matches!(op, BinaryOp::Cmp(_) | BinaryOp::Regex | BinaryOp::NotRegex),
            Type::Nil | Type::Status | Type::Kind => {
                matches!(op, BinaryOp::Cmp(CmpOp::Eq | CmpOp::Neq))
            }
        }
    }
}

fn static_type(value: &Static) -> Type {
    match value {
        Static::Int(_) => Type::Int,
        Static::Float(_) => Type::Float,
        Static::Duration(_) => Type::Duration,
        Static::String(_) => Type::String,
        Static::Bool(_) => Type::Bool,
        Static::Nil => Type::Nil,
        Static::Status(_) => Type::Status,
        Static::Kind(_) => Type::Kind,
    }
}

fn intrinsic_type(intrinsic: Intrinsic) -> Type {
    use Intrinsic as I;
    match intrinsic {
        I::Duration | I::TraceDuration | I::EventTimeSinceStart => Type::Duration,
        I::Status => Type::Status,
        I::Kind => Type::Kind,
        I::ChildCount | I::NestedSetLeft | I::NestedSetRight | I::NestedSetParent => Type::Int,
        I::Name
        | I::StatusMessage
        | I::SpanId
        | I::ParentId
        | I::TraceRootName
        | I::TraceRootService
        | I::TraceId
        | I::EventName
        | I::LinkTraceId
        | I::LinkSpanId
        | I::InstrumentationName
        | I::InstrumentationVersion => Type::String,
        I::Parent => Type::Attribute,
    }
}

fn field_ref(field: &FieldRef, pos: Pos) -> Checked<Type> {
    match field {
        FieldRef::Intrinsic(Intrinsic::Parent) => {
            unsupported(pos, "the parent intrinsic is not yet supported")
        }
        FieldRef::Intrinsic(i) => Ok(intrinsic_type(*i)),
        FieldRef::Attribute(a) if a.parent => unsupported(
            pos,
            format!("parent attributes ({a}) are not yet supported"),
        ),
        FieldRef::Attribute(_) => Ok(Type::Attribute),
    }
}

/// Fields that always have a value, so `= nil` can never hold.
fn never_nil(expr: &FieldExpr) -> bool {
    match expr {
        FieldExpr::Field(FieldRef::Intrinsic(_), _) => true,
        FieldExpr::Field(FieldRef::Attribute(a), _) => {
            a.scope == AttributeScope::Resource && a.name == "service.name" && !a.parent
        }
        _ => false,
    }
}

fn type_of(expr: &FieldExpr) -> Checked<Type> {
    match expr {
        FieldExpr::Static(value) => Ok(static_type(value)),
        FieldExpr::Field(field, pos) => field_ref(field, *pos),
        FieldExpr::Unary { op, expr, pos } => {
            let t = type_of(expr)?;
            match (op, t) {
                (_, Type::Attribute) => Ok(Type::Attribute),
                (UnaryOp::Not, Type::Bool) => Ok(Type::Bool),
                (UnaryOp::Neg, t) if t.is_numeric() => Ok(t),
                (UnaryOp::Not, t) => {
                    invalid(*pos, format!("'!' needs a boolean, not {}", t.name()))
                }
                (UnaryOp::Neg, t) => invalid(*pos, format!("'-' needs a number, not {}", t.name())),
            }
        }
        FieldExpr::Binary { op, lhs, rhs, pos } => {
            let (l, r) = (type_of(lhs)?, type_of(rhs)?);
            if !l.matches(r) {
                return invalid(
                    *pos,
                    format!(
                        "binary operations must operate on the same type: {} {} {}",
                        l.name(),
                        op.symbol(),
                        r.name()
                    ),
                );
            }
            for t in [l, r] {
                if !t.allows(*op) {
                    return invalid(
                        *pos,
                        format!("'{}' is not defined for {}", op.symbol(), t.name()),
                    );
                }
            }
            if *op == BinaryOp::Cmp(CmpOp::Eq) && (l == Type::Nil || r == Type::Nil) {
                let other = if l == Type::Nil { rhs } else { lhs };
                if never_nil(other) {
                    return invalid(
                        *pos,
                        format!("{other} = nil is not valid because {other} always has a value"),
                    );
                }
            }
            if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
                match &**rhs {
                    FieldExpr::Static(Static::String(pattern)) => {
                        // Syntax check only: compiling the automaton is the planner's job and
                        // costs a hundred times more.
                        let parsed = regex_syntax::parse(&format!("^(?s:{pattern})$"));
                        if let Ok(hir) = &parsed
                            && expanded_size(hir) > MAX_REGEX_SIZE
                        {
                            return invalid(
                                *pos,
                                format!(
                                    "regex {pattern:?} is too large: with its repetitions \
                                     multiplied out it exceeds {MAX_REGEX_SIZE} items"
                                ),
                            );
                        }
                        if let Err(e) = parsed {
                            // The regex crate explains on several lines; its last line says why.
                            let why = e.to_string();
                            let why = why
                                .lines()
                                .last()
                                .unwrap_or_default()
                                .trim_start_matches("error: ")
                                .to_string();
                            return invalid(*pos, format!("invalid regex {pattern:?}: {why}"));
                        }
                    }
                    _ => {
                        return invalid(
                            *pos,
                            "the right side of a regex match must be a string literal",
                        );
                    }
                }
            }
            Ok(match op {
                BinaryOp::Arith(_) => match (l, r) {
                    (Type::Attribute, t) | (t, Type::Attribute) => t,
                    (Type::Int, Type::Int) => Type::Int,
                    (Type::Duration, _) | (_, Type::Duration) => Type::Duration,
                    _ => Type::Float,
                },
                _ => Type::Bool,
            })
        }
    }
}

fn metrics_query(m: &MetricsQuery) -> Checked {
    let has_compare = metrics_expr(&m.expr)?;
    second_stage(&m.second_stage, has_compare)?;
    if has_compare && matches!(m.expr, MetricsExpr::Binary { .. }) {
        return invalid(
            first_pos(&m.expr),
            "`compare()` cannot be used in metrics arithmetic",
        );
    }
    Ok(())
}

fn first_pos(expr: &MetricsExpr) -> Pos {
    match expr {
        MetricsExpr::Pipeline { aggregate, .. } => aggregate.pos,
        MetricsExpr::Scalar(_) => Pos::default(),
        MetricsExpr::Binary { lhs, .. } => first_pos(lhs),
    }
}

/// Validates a metrics expression; returns whether it uses `compare()`.
fn metrics_expr(expr: &MetricsExpr) -> Checked<bool> {
    match expr {
        MetricsExpr::Pipeline {
            pipeline: p,
            aggregate,
            second_stage: stages,
        } => {
            pipeline(p)?;
            let is_compare = metrics_aggregate(aggregate)?;
            second_stage(stages, is_compare)?;
            Ok(is_compare)
        }
        MetricsExpr::Scalar(_) => Ok(false),
        MetricsExpr::Binary { lhs, rhs, .. } => Ok(metrics_expr(lhs)? | metrics_expr(rhs)?),
    }
}

fn second_stage(stages: &[SecondStage], after_compare: bool) -> Checked {
    for stage in stages {
        let pos = match stage {
            SecondStage::TopK { pos, .. }
            | SecondStage::BottomK { pos, .. }
            | SecondStage::Filter { pos, .. } => *pos,
        };
        if after_compare {
            return invalid(
                pos,
                "`compare()` cannot be used with second stage functions",
            );
        }
        match stage {
            SecondStage::TopK { k, pos } | SecondStage::BottomK { k, pos } if *k <= 0 => {
                return invalid(*pos, "topk() and bottomk() need a limit greater than 0");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates a metrics function; returns whether it is `compare()`.
fn metrics_aggregate(m: &MetricsAggregate) -> Checked<bool> {
    let max_by = match m.func {
        MetricsFn::QuantileOverTime(..) | MetricsFn::HistogramOverTime(_) => {
            MAX_METRICS_GROUP_BYS - 1
        }
        _ => MAX_METRICS_GROUP_BYS,
    };
    for field in &m.by {
        field_ref(field, m.pos)?;
    }
    if m.by.len() > max_by {
        return unsupported(
            m.pos,
            format!(
                "{}() by more than {max_by} fields is not yet supported",
                m.func.name()
            ),
        );
    }
    match &m.func {
        MetricsFn::Rate | MetricsFn::CountOverTime => {}
        MetricsFn::MinOverTime(f)
        | MetricsFn::MaxOverTime(f)
        | MetricsFn::AvgOverTime(f)
        | MetricsFn::SumOverTime(f)
        | MetricsFn::HistogramOverTime(f) => {
            field_ref(f, m.pos)?;
        }
        MetricsFn::QuantileOverTime(f, qs) => {
            field_ref(f, m.pos)?;
            if let Some(q) = qs.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                return invalid(m.pos, format!("quantile {q} is outside 0 to 1"));
            }
        }
        MetricsFn::Compare {
            filter: f,
            top_n,
            start,
            end,
        } => {
            filter(f, m.pos)?;
            if let Some(n) = top_n
                && *n <= 0
            {
                return invalid(m.pos, "compare() topN must be greater than 0");
            }
            if let (Some(s), Some(e)) = (start, end)
                && (*s <= 0 || *e <= 0 || e <= s)
            {
                return invalid(
                    m.pos,
                    "compare() start and end must be positive unix nanoseconds with end after start",
                );
            }
            return Ok(true);
        }
    }
    Ok(false)
}

/// How large a regex may grow once its repetitions are multiplied out. Past this, compiling it
/// fails (or takes seconds and much memory), so it is refused here with a position.
const MAX_REGEX_SIZE: u64 = 100_000;

/// The number of items a regex expands to when every counted repetition is written out.
fn expanded_size(hir: &regex_syntax::hir::Hir) -> u64 {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 0,
        HirKind::Literal(literal) => literal.0.len() as u64,
        HirKind::Class(_) => 1,
        HirKind::Repetition(repetition) => {
            let count = repetition.max.unwrap_or(repetition.min).max(1) as u64;
            expanded_size(&repetition.sub).saturating_mul(count)
        }
        HirKind::Capture(capture) => expanded_size(&capture.sub),
        HirKind::Concat(items) | HirKind::Alternation(items) => {
            items.iter().fold(0u64, |total, item| {
                total.saturating_add(expanded_size(item))
            })
        }
    }
}
