//! The typed TraceQL syntax tree.
//!
//! Every node is a real construct of the language; nothing is kept as text. Nodes that
//! validation may complain about carry the [`Pos`] of their first token. `Pos` compares equal to
//! every other `Pos`, so two trees compare equal when they mean the same query wherever they
//! were written (this is what the printer round-trip relies on).

/// A line/column position in the query text (1-based; the column counts characters).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl PartialEq for Pos {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A whole query: the expression and its `with(...)` hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub expr: RootExpr,
    pub hints: Vec<Hint>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RootExpr {
    /// `{ … } | … | …`
    Pipeline(Pipeline),
    /// Parenthesised pipelines combined with spanset operators: `({ .a } | count() > 1) && ({ .b })`.
    PipelineExpr(PipelineExpr),
    /// `({ … } | count()) > ({ … } | count())` and friends: parses, not supported.
    ScalarPipelineFilter(ScalarPipelineFilter),
    /// A metrics query: `{ … } | rate() by (…) | topk(5)` or arithmetic over such pipelines.
    Metrics(MetricsQuery),
}

/// Stages joined by `|`; each stage receives the spansets of the one before.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Spanset(SpansetExpr),
    ScalarFilter(ScalarFilter),
    /// `by(expr)`: split each spanset into groups keyed by the expression.
    GroupBy {
        expr: FieldExpr,
        pos: Pos,
    },
    /// `coalesce()`: merge a trace's spansets back into one.
    Coalesce,
    /// `select(a, b, …)`: add fields to the returned spans.
    Select {
        fields: Vec<FieldRef>,
        pos: Pos,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ expr }`; `{}` is `{ true }`.
    Filter { expr: FieldExpr, pos: Pos },
    Op {
        op: SpansetOp,
        lhs: Box<SpansetExpr>,
        rhs: Box<SpansetExpr>,
    },
}

/// Spanset operators between parenthesised pipelines.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineExpr {
    Wrapped(Pipeline),
    Op {
        op: SpansetOp,
        lhs: Box<PipelineExpr>,
        rhs: Box<PipelineExpr>,
    },
}

/// Operators between spansets: `&&`, `||` and the fifteen structural operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOp {
    And,
    Or,
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
    NotChild,
    NotParent,
    NotDescendant,
    NotAncestor,
    NotSibling,
    UnionChild,
    UnionParent,
    UnionDescendant,
    UnionAncestor,
    UnionSibling,
}

impl SpansetOp {
    pub fn symbol(self) -> &'static str {
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Or => "||",
            SpansetOp::Child => ">",
            SpansetOp::Parent => "<",
            SpansetOp::Descendant => ">>",
            SpansetOp::Ancestor => "<<",
            SpansetOp::Sibling => "~",
            SpansetOp::NotChild => "!>",
            SpansetOp::NotParent => "!<",
            SpansetOp::NotDescendant => "!>>",
            SpansetOp::NotAncestor => "!<<",
            SpansetOp::NotSibling => "!~",
            SpansetOp::UnionChild => "&>",
            SpansetOp::UnionParent => "&<",
            SpansetOp::UnionDescendant => "&>>",
            SpansetOp::UnionAncestor => "&<<",
            SpansetOp::UnionSibling => "&~",
        }
    }

    /// `&&` and `||` bind looser than the structural operators.
    pub fn is_logical(self) -> bool {
        matches!(self, SpansetOp::And | SpansetOp::Or)
    }
}

/// `aggregate OP number` inside a pipeline, e.g. `count() > 2` or `avg(duration) > 1s`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarFilter {
    pub op: CmpOp,
    pub lhs: ScalarExpr,
    pub rhs: ScalarExpr,
    pub pos: Pos,
}

/// Arithmetic over aggregates and numbers. Constant sub-expressions are folded when parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarExpr {
    Aggregate(Aggregate),
    Static(Static),
    Binary {
        op: ArithOp,
        lhs: Box<ScalarExpr>,
        rhs: Box<ScalarExpr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub func: AggregateFn,
    /// `None` only for `count()`.
    pub arg: Option<FieldExpr>,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFn {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

impl AggregateFn {
    pub fn name(self) -> &'static str {
        match self {
            AggregateFn::Count => "count",
            AggregateFn::Avg => "avg",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
            AggregateFn::Sum => "sum",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScalarPipelineFilter {
    pub op: CmpOp,
    pub lhs: ScalarPipelineExpr,
    pub rhs: ScalarPipelineExpr,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScalarPipelineExpr {
    /// `( pipeline | aggregate )`
    Wrapped {
        pipeline: Pipeline,
        aggregate: Aggregate,
    },
    Binary {
        op: ArithOp,
        lhs: Box<ScalarPipelineExpr>,
        rhs: Box<ScalarPipelineExpr>,
    },
    /// Only as the right-hand side of the comparison.
    Static(Static),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Neq => "!=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl ArithOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
            ArithOp::Pow => "^",
        }
    }
}

/// Expressions over one span: inside `{ }`, and as arguments of aggregates and `by()`.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    Static(Static),
    Field(FieldRef, Pos),
    Binary {
        op: BinaryOp,
        lhs: Box<FieldExpr>,
        rhs: Box<FieldExpr>,
        pos: Pos,
    },
    Unary {
        op: UnaryOp,
        expr: Box<FieldExpr>,
        pos: Pos,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Arith(ArithOp),
    Cmp(CmpOp),
    Regex,
    NotRegex,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Arith(op) => op.symbol(),
            BinaryOp::Cmp(op) => op.symbol(),
            BinaryOp::Regex => "=~",
            BinaryOp::NotRegex => "!~",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

/// An attribute or an intrinsic: what `select()`, `by (…)` and `*_over_time()` accept.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldRef {
    Attribute(Attribute),
    Intrinsic(Intrinsic),
}

/// The lists of a span whose elements some fields are read from, one element at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    Event,
    Link,
}

impl FieldRef {
    /// The list this field is read from, if it is an event or link field.
    pub fn element(&self) -> Option<Element> {
        match self {
            FieldRef::Attribute(Attribute {
                scope: AttributeScope::Event,
                ..
            })
            | FieldRef::Intrinsic(Intrinsic::EventName | Intrinsic::EventTimeSinceStart) => {
                Some(Element::Event)
            }
            FieldRef::Attribute(Attribute {
                scope: AttributeScope::Link,
                ..
            })
            | FieldRef::Intrinsic(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId) => {
                Some(Element::Link)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub scope: AttributeScope,
    /// Written with `parent.`: the attribute of the span's parent (not supported yet).
    pub parent: bool,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    /// `.name`: span first, then resource, …
    None,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

impl AttributeScope {
    pub fn prefix(self) -> &'static str {
        match self {
            AttributeScope::None => ".",
            AttributeScope::Span => "span.",
            AttributeScope::Resource => "resource.",
            AttributeScope::Event => "event.",
            AttributeScope::Link => "link.",
            AttributeScope::Instrumentation => "instrumentation.",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    Duration,
    Name,
    Status,
    StatusMessage,
    Kind,
    ChildCount,
    SpanId,
    ParentId,
    TraceRootName,
    TraceRootService,
    TraceDuration,
    TraceId,
    EventName,
    EventTimeSinceStart,
    LinkTraceId,
    LinkSpanId,
    InstrumentationName,
    InstrumentationVersion,
    NestedSetLeft,
    NestedSetRight,
    NestedSetParent,
    /// The placeholder `parent`: parses, not supported.
    Parent,
}

/// Each intrinsic's spellings: the unscoped one (if any) and the scoped one (if any).
/// (intrinsic, unscoped spelling, (scope, name) spelling)
type Spelling = (
    Intrinsic,
    Option<&'static str>,
    Option<(&'static str, &'static str)>,
);

const INTRINSIC_SPELLINGS: &[Spelling] = &[
    (
        Intrinsic::Duration,
        Some("duration"),
        Some(("span", "duration")),
    ),
    (Intrinsic::Name, Some("name"), Some(("span", "name"))),
    (Intrinsic::Status, Some("status"), Some(("span", "status"))),
    (
        Intrinsic::StatusMessage,
        Some("statusMessage"),
        Some(("span", "statusMessage")),
    ),
    (Intrinsic::Kind, Some("kind"), Some(("span", "kind"))),
    (Intrinsic::ChildCount, None, Some(("span", "childCount"))),
    (Intrinsic::SpanId, None, Some(("span", "id"))),
    (Intrinsic::ParentId, None, Some(("span", "parentID"))),
    (
        Intrinsic::TraceRootName,
        Some("rootName"),
        Some(("trace", "rootName")),
    ),
    (
        Intrinsic::TraceRootService,
        Some("rootServiceName"),
        Some(("trace", "rootService")),
    ),
    (
        Intrinsic::TraceDuration,
        Some("traceDuration"),
        Some(("trace", "duration")),
    ),
    (Intrinsic::TraceId, None, Some(("trace", "id"))),
    (Intrinsic::EventName, None, Some(("event", "name"))),
    (
        Intrinsic::EventTimeSinceStart,
        None,
        Some(("event", "timeSinceStart")),
    ),
    (Intrinsic::LinkTraceId, None, Some(("link", "traceID"))),
    (Intrinsic::LinkSpanId, None, Some(("link", "spanID"))),
    (
        Intrinsic::InstrumentationName,
        None,
        Some(("instrumentation", "name")),
    ),
    (
        Intrinsic::InstrumentationVersion,
        None,
        Some(("instrumentation", "version")),
    ),
    (Intrinsic::NestedSetLeft, Some("nestedSetLeft"), None),
    (Intrinsic::NestedSetRight, Some("nestedSetRight"), None),
    (Intrinsic::NestedSetParent, Some("nestedSetParent"), None),
    (Intrinsic::Parent, Some("parent"), None),
];

impl Intrinsic {
    /// The intrinsic written without a scope (`duration`, `rootName`, …).
    pub fn from_unscoped(word: &str) -> Option<Intrinsic> {
        INTRINSIC_SPELLINGS
            .iter()
            .find(|(_, unscoped, _)| *unscoped == Some(word))
            .map(|(i, _, _)| *i)
    }

    /// The intrinsic written as `scope:name` (`span:duration`, `trace:rootService`, …).
    pub fn from_scoped(scope: &str, name: &str) -> Option<Intrinsic> {
        INTRINSIC_SPELLINGS
            .iter()
            .find(|(_, _, scoped)| *scoped == Some((scope, name)))
            .map(|(i, _, _)| *i)
    }

    /// The canonical spelling: the unscoped one where it exists.
    pub fn canonical_name(self) -> String {
        let (_, unscoped, scoped) = INTRINSIC_SPELLINGS
            .iter()
            .find(|(i, _, _)| *i == self)
            .expect("every intrinsic has a spelling");
        match (unscoped, scoped) {
            (Some(word), _) => (*word).to_string(),
            (None, Some((scope, name))) => format!("{scope}:{name}"),
            (None, None) => unreachable!("every intrinsic has a spelling"),
        }
    }

    /// The scoped intrinsics that exist for `scope`, for error messages.
    pub fn names_in_scope(scope: &str) -> Vec<&'static str> {
        INTRINSIC_SPELLINGS
            .iter()
            .filter_map(|(_, _, scoped)| scoped.filter(|(s, _)| *s == scope).map(|(_, n)| n))
            .collect()
    }

    /// Every spelling, for tests and autocomplete.
    pub fn all_spellings() -> Vec<String> {
        let mut out = Vec::new();
        for (_, unscoped, scoped) in INTRINSIC_SPELLINGS {
            if let Some(word) = unscoped {
                out.push((*word).to_string());
            }
            if let Some((scope, name)) = scoped {
                out.push(format!("{scope}:{name}"));
            }
        }
        out
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    String(String),
    Bool(bool),
    Nil,
    Status(Status),
    Kind(Kind),
}

impl Static {
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Static::Int(_) | Static::Float(_) | Static::Duration(_)
        )
    }
}

/// Span status. The TraceQL order (error, ok, unset) differs from OTLP's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Error,
    Ok,
    Unset,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Ok => "ok",
            Status::Unset => "unset",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unspecified,
    Internal,
    Client,
    Server,
    Producer,
    Consumer,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Client => "client",
            Kind::Server => "server",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }
}

/// A metrics query: a metrics expression and the second-stage chain applied to its result.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsQuery {
    pub expr: MetricsExpr,
    pub second_stage: Vec<SecondStage>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricsExpr {
    /// `pipeline | rate() by (…)` with its own second stages (`> 10 | topk(5)`).
    Pipeline {
        pipeline: Pipeline,
        aggregate: MetricsAggregate,
        second_stage: Vec<SecondStage>,
    },
    /// A number operand of metrics arithmetic (constants are folded).
    Scalar(Static),
    Binary {
        op: ArithOp,
        lhs: Box<MetricsExpr>,
        rhs: Box<MetricsExpr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsAggregate {
    pub func: MetricsFn,
    pub by: Vec<FieldRef>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricsFn {
    Rate,
    CountOverTime,
    MinOverTime(FieldRef),
    MaxOverTime(FieldRef),
    AvgOverTime(FieldRef),
    SumOverTime(FieldRef),
    QuantileOverTime(FieldRef, Vec<f64>),
    HistogramOverTime(FieldRef),
    Compare {
        filter: FieldExpr,
        top_n: Option<i64>,
        start: Option<i64>,
        end: Option<i64>,
    },
}

impl MetricsFn {
    pub fn name(&self) -> &'static str {
        match self {
            MetricsFn::Rate => "rate",
            MetricsFn::CountOverTime => "count_over_time",
            MetricsFn::MinOverTime(_) => "min_over_time",
            MetricsFn::MaxOverTime(_) => "max_over_time",
            MetricsFn::AvgOverTime(_) => "avg_over_time",
            MetricsFn::SumOverTime(_) => "sum_over_time",
            MetricsFn::QuantileOverTime(..) => "quantile_over_time",
            MetricsFn::HistogramOverTime(_) => "histogram_over_time",
            MetricsFn::Compare { .. } => "compare",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SecondStage {
    TopK {
        k: i64,
        pos: Pos,
    },
    BottomK {
        k: i64,
        pos: Pos,
    },
    /// `> 10`: points that do not satisfy the comparison are dropped.
    Filter {
        op: CmpOp,
        value: Static,
        pos: Pos,
    },
}

/// `with(name = value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub name: String,
    pub value: Static,
}
