//! Field expressions (`{ … }` bodies, aggregate and `by()` arguments) as DataFusion `Expr`s.
//!
//! An attribute has no static type in TraceQL: `.a` may be a string on one span and an int on
//! the next, and the span table keeps one map per value type. So a field expression lowers to a
//! [`Value`]: one nullable `Expr` per type it may take, at most one of them non-null on a row.
//! Operators combine the alternatives pairwise with TraceQL's rules (int, float and duration mix;
//! a string never equals a number), and a comparison that finds no pair of matching types is
//! false, never null.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{Column, Result};
use datafusion::functions::core::expr_fn::{coalesce, get_field, nullif};
use datafusion::functions::encoding::expr_fn::encode;
use datafusion::functions::math::expr_fn::power;
use datafusion::functions::string::expr_fn::ltrim;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, cast, lit, when};

use super::resolve::StoredSpans;
use crate::storage::catalog::TagScope;
use crate::storage::schema::{self, AttrKind};
use crate::traceql::ast::{
    ArithOp, Attribute, AttributeScope, BinaryOp, CmpOp, Element, FieldExpr, FieldRef, Intrinsic,
    Static, UnaryOp,
};
use crate::traceql::visit::Visit;

/// The value of a field expression on one span: one `Expr` per type it may have.
#[derive(Debug, Clone, Default)]
pub struct Value {
    pub str: Option<Expr>,
    /// Ints and durations (nanoseconds).
    pub int: Option<Expr>,
    pub float: Option<Expr>,
    pub bool: Option<Expr>,
    /// A status name (`error`, `ok`, `unset`): comparable only with statuses.
    pub status: Option<Expr>,
    /// A kind name (`server`, …): comparable only with kinds.
    pub kind: Option<Expr>,
    /// Arrays, key-value lists and bytes as OTLP/JSON: present, but not comparable.
    pub other: Option<Expr>,
    /// The int alternative is a duration (shown as `1.5s` in results).
    pub duration: bool,
    /// The literal `nil`.
    pub nil: bool,
}

impl Value {
    fn alternatives(&self) -> impl Iterator<Item = &Expr> {
        [
            &self.str,
            &self.int,
            &self.float,
            &self.bool,
            &self.status,
            &self.kind,
            &self.other,
        ]
        .into_iter()
        .flatten()
    }

    /// True where the value is present (the attribute exists on the span).
    pub fn exists(&self) -> Expr {
        self.alternatives()
            .map(|e| e.clone().is_not_null())
            .reduce(Expr::or)
            .unwrap_or(lit(false))
    }

    /// The numeric value as a float, whichever numeric type it has.
    pub fn as_float(&self) -> Option<Expr> {
        match (&self.int, &self.float) {
            (Some(i), Some(f)) => Some(coalesce(vec![
                f.clone(),
                cast(i.clone(), DataType::Float64),
            ])),
            (Some(i), None) => Some(cast(i.clone(), DataType::Float64)),
            (None, Some(f)) => Some(f.clone()),
            (None, None) => None,
        }
    }

    /// True where the value is the boolean `true`; never null.
    pub fn is_true(&self) -> Expr {
        match &self.bool {
            // Comparisons are never null already.
            Some(b @ (Expr::IsTrue(_) | Expr::Literal(..))) => b.clone(),
            Some(b) => b.clone().is_true(),
            None => lit(false),
        }
    }
}

/// Turns field expressions into `Expr`s over the span table's columns.
pub struct FieldLowering<'a> {
    schema: &'a Schema,
    stored: &'a dyn StoredSpans,
    /// One event (link) of the span, a struct column of the unnested `events` (`links`):
    /// where event (link) fields are read from. Without it they cannot be lowered.
    event: Option<Expr>,
    link: Option<Expr>,
}

impl<'a> FieldLowering<'a> {
    /// `schema` is the span table's: it tells which dedicated columns exist. `stored` tells
    /// which of them every block has, and which maps each attribute is in.
    pub fn new(schema: &'a Schema, stored: &'a dyn StoredSpans) -> Self {
        Self {
            schema,
            stored,
            event: None,
            link: None,
        }
    }

    /// Event and link fields read from these struct columns (one event and one link of the
    /// span on each row: the span's `events` and `links` unnested).
    pub fn with_elements(mut self, event: Option<Expr>, link: Option<Expr>) -> Self {
        self.event = event;
        self.link = link;
        self
    }

    pub fn lower(&self, expr: &FieldExpr) -> Result<Value> {
        match expr {
            FieldExpr::Static(s) => Ok(static_value(s)),
            FieldExpr::Field(field, _) => self.field(field),
            FieldExpr::Unary { op, expr, .. } => {
                let v = self.lower(expr)?;
                Ok(match op {
                    UnaryOp::Not => Value {
                        bool: v.bool.map(|b| !b),
                        ..Value::default()
                    },
                    UnaryOp::Neg => Value {
                        int: v.int.map(|i| -i),
                        float: v.float.map(|f| -f),
                        duration: v.duration,
                        ..Value::default()
                    },
                })
            }
            FieldExpr::Binary { op, lhs, rhs, .. } => self.binary(*op, lhs, rhs),
        }
    }

    fn binary(&self, op: BinaryOp, lhs: &FieldExpr, rhs: &FieldExpr) -> Result<Value> {
        if let BinaryOp::Cmp(cmp) = op
            && let Some(e) = self.id_comparison(cmp, lhs, rhs)
        {
            return Ok(bool_value(e));
        }
        let (l, r) = (self.lower(lhs)?, self.lower(rhs)?);
        Ok(match op {
            BinaryOp::And | BinaryOp::Or => {
                let (l, r) = (l.is_true(), r.is_true());
                bool_value(if op == BinaryOp::And {
                    l.and(r)
                } else {
                    l.or(r)
                })
            }
            BinaryOp::Cmp(cmp) => bool_value(compare(cmp, &l, &r)),
            BinaryOp::Regex | BinaryOp::NotRegex => {
                let FieldExpr::Static(Static::String(pattern)) = rhs else {
                    return reject!("the right side of a regex match must be a string");
                };
                let anchored = lit(format!("^(?s:{pattern})$"));
                let matched = match &l.str {
                    Some(s) => {
                        let op = if op == BinaryOp::Regex {
                            Operator::RegexMatch
                        } else {
                            Operator::RegexNotMatch
                        };
                        binary(s.clone(), op, anchored).is_true()
                    }
                    None => lit(false),
                };
                bool_value(matched)
            }
            BinaryOp::Arith(arith) => arithmetic(arith, &l, &r),
        })
    }

    /// Whether `expr` is `attribute = "text"` where the tag catalogs show that no stored span
    /// has that value in any scope the attribute is read from. Such a comparison is never
    /// true (false or nil), so a filter that requires it matches nothing.
    pub fn never_equal(&self, expr: &FieldExpr) -> bool {
        let FieldExpr::Binary {
            op: BinaryOp::Cmp(CmpOp::Eq),
            lhs,
            rhs,
            ..
        } = expr
        else {
            return false;
        };
        let (attribute, text) = match (lhs.as_ref(), rhs.as_ref()) {
            (FieldExpr::Field(FieldRef::Attribute(a), _), FieldExpr::Static(Static::String(s)))
            | (FieldExpr::Static(Static::String(s)), FieldExpr::Field(FieldRef::Attribute(a), _)) => {
                (a, s)
            }
            _ => return false,
        };
        if attribute.parent {
            return false;
        }
        let scopes: &[TagScope] = match attribute.scope {
            AttributeScope::None => &[TagScope::Span, TagScope::Resource],
            AttributeScope::Span => &[TagScope::Span],
            AttributeScope::Resource => &[TagScope::Resource],
            AttributeScope::Instrumentation => &[TagScope::Instrumentation],
            AttributeScope::Event => &[TagScope::Event],
            AttributeScope::Link => &[TagScope::Link],
        };
        scopes
            .iter()
            .all(|scope| !self.stored.may_hold_string(*scope, &attribute.name, text))
    }

    /// `trace:id = "…"` and `span:id = "…"` against a hex literal compare the stored bytes, so
    /// the scan can prune by the trace-id bloom filters and statistics.
    fn id_comparison(&self, op: CmpOp, lhs: &FieldExpr, rhs: &FieldExpr) -> Option<Expr> {
        if !matches!(op, CmpOp::Eq | CmpOp::Neq) {
            return None;
        }
        let (field, text) = match (lhs, rhs) {
            (FieldExpr::Field(FieldRef::Intrinsic(i), _), FieldExpr::Static(Static::String(s)))
            | (FieldExpr::Static(Static::String(s)), FieldExpr::Field(FieldRef::Intrinsic(i), _)) => {
                (*i, s)
            }
            _ => return None,
        };
        let (column, width) = match field {
            Intrinsic::TraceId => (schema::TRACE_ID, 16),
            Intrinsic::SpanId => (schema::SPAN_ID, 8),
            _ => return None,
        };
        let bytes = padded_hex(text, width)?;
        let eq = ident(column).eq(lit(datafusion::scalar::ScalarValue::FixedSizeBinary(
            width as i32,
            Some(bytes),
        )));
        Some(if op == CmpOp::Eq { eq } else { !eq })
    }

    pub fn field(&self, field: &FieldRef) -> Result<Value> {
        match field {
            FieldRef::Intrinsic(i) => self.intrinsic(*i),
            FieldRef::Attribute(a) => self.attribute(a),
        }
    }

    fn intrinsic(&self, i: Intrinsic) -> Result<Value> {
        let string = |c: &str| Value {
            str: Some(ident(c)),
            ..Value::default()
        };
        let duration = |c: &str| Value {
            int: Some(ident(c)),
            duration: true,
            ..Value::default()
        };
        let int = |c: &str| Value {
            int: Some(cast(ident(c), DataType::Int64)),
            ..Value::default()
        };
        Ok(match i {
            Intrinsic::Duration => duration(schema::DURATION_NS),
            Intrinsic::TraceDuration => duration(schema::TRACE_DURATION_NS),
            Intrinsic::Name => string(schema::NAME),
            Intrinsic::StatusMessage => string(schema::STATUS_MESSAGE),
            Intrinsic::TraceRootName => string(schema::ROOT_SPAN_NAME),
            Intrinsic::TraceRootService => string(schema::ROOT_SERVICE_NAME),
            Intrinsic::InstrumentationName => string(schema::SCOPE_NAME),
            Intrinsic::InstrumentationVersion => string(schema::SCOPE_VERSION),
            Intrinsic::Status => Value {
                status: Some(ident(schema::STATUS_CODE)),
                ..Value::default()
            },
            Intrinsic::Kind => Value {
                kind: Some(ident(schema::KIND)),
                ..Value::default()
            },
            Intrinsic::ChildCount => int(schema::CHILD_COUNT),
            Intrinsic::NestedSetLeft => int(schema::NESTED_SET_LEFT),
            Intrinsic::NestedSetRight => int(schema::NESTED_SET_RIGHT),
            Intrinsic::NestedSetParent => int(schema::NESTED_SET_PARENT),
            // Ids as hex; trace ids without leading zeros, as Tempo prints them.
            Intrinsic::SpanId => Value {
                str: Some(encode(ident(schema::SPAN_ID), lit("hex"))),
                ..Value::default()
            },
            Intrinsic::ParentId => Value {
                str: Some(encode(ident(schema::PARENT_SPAN_ID), lit("hex"))),
                ..Value::default()
            },
            Intrinsic::TraceId => Value {
                str: Some(ltrim(vec![
                    encode(ident(schema::TRACE_ID), lit("hex")),
                    lit("0"),
                ])),
                ..Value::default()
            },
            Intrinsic::EventName => Value {
                str: Some(get_field(
                    self.element(Element::Event, &i.canonical_name())?,
                    "name",
                )),
                ..Value::default()
            },
            Intrinsic::EventTimeSinceStart => {
                let event = self.element(Element::Event, &i.canonical_name())?;
                let nanos = |e: Expr| cast(e, DataType::Int64);
                Value {
                    int: Some(nanos(get_field(event, "time")) - nanos(ident(schema::START_TIME))),
                    duration: true,
                    ..Value::default()
                }
            }
            Intrinsic::LinkTraceId | Intrinsic::LinkSpanId => {
                let link = self.element(Element::Link, &i.canonical_name())?;
                let id = if i == Intrinsic::LinkTraceId {
                    schema::TRACE_ID
                } else {
                    schema::SPAN_ID
                };
                Value {
                    str: Some(encode(get_field(link, id), lit("hex"))),
                    ..Value::default()
                }
            }
            Intrinsic::Parent => return reject!("parent is not supported"),
        })
    }

    fn attribute(&self, a: &Attribute) -> Result<Value> {
        if a.parent {
            return reject!("parent attributes are not supported");
        }
        match a.scope {
            AttributeScope::Span => Ok(self.scoped(TagScope::Span, &a.name)),
            AttributeScope::Resource => Ok(self.scoped(TagScope::Resource, &a.name)),
            AttributeScope::Instrumentation => Ok(self.scoped(TagScope::Instrumentation, &a.name)),
            // Span first; the resource's only where the span has no such attribute. Where
            // only one of them ever has it, that one alone.
            AttributeScope::None => {
                let span = self.scoped(TagScope::Span, &a.name);
                let resource = self.scoped(TagScope::Resource, &a.name);
                if span.alternatives().next().is_none() {
                    return Ok(resource);
                }
                if resource.alternatives().next().is_none() {
                    return Ok(span);
                }
                let on_span = span.exists();
                let pick = |s: Option<Expr>, r: Option<Expr>| match (s, r) {
                    (Some(s), Some(r)) => when(on_span.clone(), s).otherwise(r).ok(),
                    // A span with the attribute hides the resource's, whatever their types.
                    (None, Some(r)) => when(!on_span.clone(), r).end().ok(),
                    (s, None) => s,
                };
                Ok(Value {
                    str: pick(span.str, resource.str),
                    int: pick(span.int, resource.int),
                    float: pick(span.float, resource.float),
                    bool: pick(span.bool, resource.bool),
                    other: pick(span.other, resource.other),
                    ..Value::default()
                })
            }
            AttributeScope::Event | AttributeScope::Link => {
                let (which, what, scope) = if a.scope == AttributeScope::Event {
                    (Element::Event, format!("event.{}", a.name), TagScope::Event)
                } else {
                    (Element::Link, format!("link.{}", a.name), TagScope::Link)
                };
                let element = self.element(which, &what)?;
                let kinds = self.stored.attribute_kinds(scope, &a.name);
                let map = |kind: AttrKind| {
                    kinds.contains(kind).then(|| {
                        get_field(
                            get_field(element.clone(), schema::attr_column("", kind)),
                            &*a.name,
                        )
                    })
                };
                Ok(Value {
                    str: map(AttrKind::Str),
                    int: map(AttrKind::Int),
                    float: map(AttrKind::Float),
                    bool: map(AttrKind::Bool),
                    other: map(AttrKind::Other),
                    ..Value::default()
                })
            }
        }
    }

    /// The struct column of one event or link, where the caller unnested them.
    fn element(&self, which: Element, field: &str) -> Result<Expr> {
        let element = match which {
            Element::Event => &self.event,
            Element::Link => &self.link,
        };
        match element {
            Some(e) => Ok(e.clone()),
            None => reject!(
                "{field} can only be used in a span filter `{{ … }}`: a span has many {}",
                if which == Element::Event {
                    "events"
                } else {
                    "links"
                }
            ),
        }
    }

    /// An attribute of one scope (span, resource or instrumentation): the typed maps it is
    /// stored in, with a dedicated column taking precedence where the table has one. Where
    /// every block has the column, it alone holds the attribute's values of its type.
    fn scoped(&self, scope: TagScope, name: &str) -> Value {
        let prefix = match scope {
            TagScope::Resource => "resource",
            TagScope::Instrumentation => "scope",
            _ => "span",
        };
        let kinds = self.stored.attribute_kinds(scope, name);
        let map = |kind: AttrKind| get_field(ident(&schema::attr_column(prefix, kind)), name);
        let column = format!("{prefix}.{name}");
        let dedicated = |data_type: DataType| {
            self.schema
                .field_with_name(&column)
                .ok()
                .filter(|f| f.data_type() == &data_type)
                .map(|_| ident(&column))
        };
        let complete = self.stored.complete_columns().contains(&column);
        let with_dedicated = |kind: AttrKind, data_type: DataType| match dedicated(data_type) {
            Some(d) if complete => d,
            Some(d) => coalesce(vec![d, map(kind)]),
            None => map(kind),
        };
        let mut str = with_dedicated(AttrKind::Str, DataType::Utf8);
        if scope == TagScope::Resource && name == crate::storage::to_arrow::SERVICE_NAME_ATTR {
            // Every block has `service_name`, and a string service.name is never in the map
            // (unless the resource repeats the key, which OTLP forbids).
            str = ident(schema::SERVICE_NAME);
        }
        let present = |kind: AttrKind, expr: Expr| kinds.contains(kind).then_some(expr);
        Value {
            str: present(AttrKind::Str, str),
            int: present(
                AttrKind::Int,
                with_dedicated(AttrKind::Int, DataType::Int64),
            ),
            float: present(AttrKind::Float, map(AttrKind::Float)),
            bool: present(AttrKind::Bool, map(AttrKind::Bool)),
            other: present(AttrKind::Other, map(AttrKind::Other)),
            ..Value::default()
        }
    }
}

/// Whether `expr` reads event fields, and whether it reads link fields.
pub fn reads_elements(expr: &FieldExpr) -> (bool, bool) {
    #[derive(Default)]
    struct Elements(bool, bool);
    impl Visit<'_> for Elements {
        fn visit_field_ref(&mut self, field: &FieldRef) {
            match field.element() {
                Some(Element::Event) => self.0 = true,
                Some(Element::Link) => self.1 = true,
                None => {}
            }
        }
    }
    let mut elements = Elements::default();
    elements.visit_field_expr(expr);
    (elements.0, elements.1)
}

/// An unqualified column, whatever its name holds (dedicated columns have dots in theirs).
pub fn ident(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

fn binary(l: Expr, op: Operator, r: Expr) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)))
}

fn bool_value(e: Expr) -> Value {
    Value {
        bool: Some(e),
        ..Value::default()
    }
}

/// A hex id literal as `width` bytes, left-padded with zeros as Tempo pads short ids.
fn padded_hex(text: &str, width: usize) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || text.len() > width * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0>w$}", w = width * 2);
    hex::decode(padded).ok()
}

pub fn static_value(s: &Static) -> Value {
    let mut v = Value::default();
    match s {
        Static::Int(i) => v.int = Some(lit(*i)),
        Static::Float(f) => v.float = Some(lit(*f)),
        Static::Duration(d) => {
            v.int = Some(lit(*d));
            v.duration = true;
        }
        Static::String(s) => v.str = Some(lit(s.clone())),
        Static::Bool(b) => v.bool = Some(lit(*b)),
        Static::Nil => v.nil = true,
        Static::Status(s) => v.status = Some(lit(s.name())),
        Static::Kind(k) => v.kind = Some(lit(k.name())),
    }
    v
}

fn cmp_operator(op: CmpOp) -> Operator {
    match op {
        CmpOp::Eq => Operator::Eq,
        CmpOp::Neq => Operator::NotEq,
        CmpOp::Lt => Operator::Lt,
        CmpOp::Lte => Operator::LtEq,
        CmpOp::Gt => Operator::Gt,
        CmpOp::Gte => Operator::GtEq,
    }
}

/// `l op r` with TraceQL's typing: true only where both sides have values of comparable types
/// that satisfy `op`.
pub fn compare(op: CmpOp, l: &Value, r: &Value) -> Expr {
    // `x = nil` is "x is absent", `x != nil` "x is present"; nil against nil is false.
    if l.nil || r.nil {
        let other = if l.nil { r } else { l };
        return match (other.nil, op) {
            (true, _) => lit(false),
            (false, CmpOp::Eq) => !other.exists(),
            (false, CmpOp::Neq) => other.exists(),
            _ => lit(false),
        };
    }
    let operator = cmp_operator(op);
    let mut pairs = Vec::new();
    let mut pair = |a: &Option<Expr>, b: &Option<Expr>| {
        if let (Some(a), Some(b)) = (a, b) {
            pairs.push(binary(a.clone(), operator, b.clone()));
        }
    };
    pair(&l.str, &r.str);
    pair(&l.int, &r.int);
    pair(&l.float, &r.float);
    if matches!(op, CmpOp::Eq | CmpOp::Neq) {
        pair(&l.bool, &r.bool);
        pair(&l.status, &r.status);
        pair(&l.kind, &r.kind);
    }
    let as_float = |e: &Expr| cast(e.clone(), DataType::Float64);
    if let (Some(i), Some(f)) = (&l.int, &r.float) {
        pairs.push(binary(as_float(i), operator, f.clone()));
    }
    if let (Some(f), Some(i)) = (&l.float, &r.int) {
        pairs.push(binary(f.clone(), operator, as_float(i)));
    }
    pairs
        .into_iter()
        .reduce(Expr::or)
        .map_or(lit(false), Expr::is_true)
}

/// `l op r` for numbers: int with int stays int; any float makes it float.
fn arithmetic(op: ArithOp, l: &Value, r: &Value) -> Value {
    let apply = |a: Expr, b: Expr, int: bool| match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        // An integer division by zero has no value (DataFusion would fail the whole query).
        ArithOp::Div if int => a / nullif(b, lit(0i64)),
        ArithOp::Mod if int => a % nullif(b, lit(0i64)),
        ArithOp::Div => a / b,
        ArithOp::Mod => a % b,
        // Tempo's integer power raises the right operand to the left (`2 ^ 3` is 9); its float
        // power is the usual one.
        ArithOp::Pow if int => cast(power(b, a), DataType::Int64),
        ArithOp::Pow => power(a, b),
    };
    let int = match (&l.int, &r.int) {
        (Some(a), Some(b)) => Some(apply(a.clone(), b.clone(), true)),
        _ => None,
    };
    let as_float = |e: &Expr| cast(e.clone(), DataType::Float64);
    let mut floats = Vec::new();
    if let (Some(a), Some(b)) = (&l.float, &r.float) {
        floats.push(apply(a.clone(), b.clone(), false));
    }
    if let (Some(a), Some(b)) = (&l.int, &r.float) {
        floats.push(apply(as_float(a), b.clone(), false));
    }
    if let (Some(a), Some(b)) = (&l.float, &r.int) {
        floats.push(apply(a.clone(), as_float(b), false));
    }
    let float = match floats.len() {
        0 => None,
        1 => floats.pop(),
        _ => Some(coalesce(floats)),
    };
    Value {
        int,
        float,
        duration: l.duration || r.duration,
        ..Value::default()
    }
}
