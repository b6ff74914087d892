//! A reference TraceQL evaluator over in-memory OTLP spans: test code only, written to be
//! obviously right rather than fast, span by span from the rules of the TraceQL reference. The
//! DataFusion path must agree with it on every executable query.
//!
//! Like storage, it sees a trace as stored: the parts of a trace written to different blocks
//! each have their own structure (a span whose parent is in another part is disconnected) and
//! their own trace-level intrinsics; spansets and `matched` are over the whole trace.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tracefusion::storage::TraceId;
use tracefusion::traceql::ast::*;

#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Str(String),
    Int(i64),
    Float(f64),
    Dur(i64),
    Bool(bool),
    Status(&'static str),
    Kind(&'static str),
    /// Arrays, kvlists, bytes: present but not comparable.
    Other,
    Nil,
}

pub struct RefSpan {
    pub span_id: [u8; 8],
    parent_id: Option<[u8; 8]>,
    name: String,
    kind: &'static str,
    status: &'static str,
    status_message: String,
    start: i64,
    end: i64,
    attrs: Vec<KeyValue>,
    resource: Vec<KeyValue>,
    scope_attrs: Vec<KeyValue>,
    scope_name: String,
    scope_version: String,
    events: Vec<RefEvent>,
    links: Vec<RefLink>,
    /// Index of the part (block) of the trace this span was stored in.
    part: usize,
}

struct RefEvent {
    time: i64,
    name: String,
    attrs: Vec<KeyValue>,
}

struct RefLink {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    attrs: Vec<KeyValue>,
}

/// Where a field is read: a span, and one of its events and links (`None`: it has none, or
/// the expression reads no event or link field).
#[derive(Clone, Copy)]
struct At {
    span: usize,
    event: Option<usize>,
    link: Option<usize>,
}

pub struct RefTrace {
    id: TraceId,
    pub spans: Vec<RefSpan>,
}

/// The result: per trace, its spansets as sorted span ids.
pub type Matches = BTreeMap<TraceId, Vec<Vec<[u8; 8]>>>;

fn any(v: &Option<AnyValue>) -> V {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => V::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => V::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => V::Float(*f),
        Some(any_value::Value::BoolValue(b)) => V::Bool(*b),
        Some(_) => V::Other,
        None => V::Nil,
    }
}

fn lookup(attrs: &[KeyValue], name: &str) -> V {
    attrs
        .iter()
        .find(|kv| kv.key == name)
        .map_or(V::Nil, |kv| any(&kv.value))
}

impl RefTrace {
    /// A trace from its parts, in the order they were stored.
    pub fn new(id: TraceId, parts: &[Vec<ResourceSpans>]) -> Self {
        let mut spans = Vec::new();
        for (part, batches) in parts.iter().enumerate() {
            for rs in batches {
                let resource = rs.resource.clone().unwrap_or_default().attributes;
                for ss in &rs.scope_spans {
                    let scope = ss.scope.clone().unwrap_or_default();
                    for s in &ss.spans {
                        let status = s.status.clone().unwrap_or_default();
                        spans.push(RefSpan {
                            span_id: s.span_id.as_slice().try_into().unwrap(),
                            parent_id: (!s.parent_span_id.is_empty())
                                .then(|| s.parent_span_id.as_slice().try_into().unwrap()),
                            name: s.name.clone(),
                            kind: [
                                "unspecified",
                                "internal",
                                "server",
                                "client",
                                "producer",
                                "consumer",
                            ][s.kind as usize],
                            status: ["unset", "ok", "error"][status.code as usize],
                            status_message: status.message.clone(),
                            start: s.start_time_unix_nano as i64,
                            end: s.end_time_unix_nano as i64,
                            attrs: s.attributes.clone(),
                            resource: resource.clone(),
                            scope_attrs: scope.attributes.clone(),
                            scope_name: scope.name.clone(),
                            scope_version: scope.version.clone(),
                            events: s
                                .events
                                .iter()
                                .map(|e| RefEvent {
                                    time: e.time_unix_nano as i64,
                                    name: e.name.clone(),
                                    attrs: e.attributes.clone(),
                                })
                                .collect(),
                            links: s
                                .links
                                .iter()
                                .map(|l| RefLink {
                                    trace_id: l.trace_id.clone(),
                                    span_id: l.span_id.clone(),
                                    attrs: l.attributes.clone(),
                                })
                                .collect(),
                            part,
                        });
                    }
                }
            }
        }
        Self { id, spans }
    }

    fn parent(&self, i: usize) -> Option<usize> {
        let s = &self.spans[i];
        let p = s.parent_id?;
        self.spans
            .iter()
            .position(|o| o.part == s.part && o.span_id == p)
    }

    /// Reaches a root of its own part by parents.
    fn connected(&self, i: usize) -> bool {
        let mut at = i;
        for _ in 0..=self.spans.len() {
            if self.spans[at].parent_id.is_none() {
                return true;
            }
            match self.parent(at) {
                Some(p) => at = p,
                None => return false,
            }
        }
        false
    }

    fn is_child_of(&self, child: usize, parent: usize) -> bool {
        self.connected(child) && self.connected(parent) && self.parent(child) == Some(parent)
    }

    fn is_descendant_of(&self, d: usize, a: usize) -> bool {
        if !self.connected(d) || !self.connected(a) {
            return false;
        }
        let mut at = d;
        while let Some(p) = self.parent(at) {
            if p == a {
                return true;
            }
            at = p;
        }
        false
    }

    fn are_siblings(&self, a: usize, b: usize) -> bool {
        let (sa, sb) = (&self.spans[a], &self.spans[b]);
        a != b
            && sa.part == sb.part
            && self.connected(a)
            && self.connected(b)
            && sa.parent_id == sb.parent_id
    }

    fn root_of_part(&self, part: usize) -> Option<&RefSpan> {
        self.spans
            .iter()
            .find(|s| s.part == part && s.parent_id.is_none())
    }

    fn intrinsic(&self, at: At, which: Intrinsic) -> V {
        let s = &self.spans[at.span];
        let event = at.event.map(|e| &s.events[e]);
        let link = at.link.map(|l| &s.links[l]);
        let part: Vec<&RefSpan> = self.spans.iter().filter(|o| o.part == s.part).collect();
        match which {
            Intrinsic::Duration => V::Dur(s.end - s.start),
            Intrinsic::Name => V::Str(s.name.clone()),
            Intrinsic::Status => V::Status(s.status),
            Intrinsic::StatusMessage => V::Str(s.status_message.clone()),
            Intrinsic::Kind => V::Kind(s.kind),
            // Children present in the same part, whether or not the part reaches them from a
            // root.
            Intrinsic::ChildCount => V::Int(
                part.iter()
                    .filter(|o| o.parent_id == Some(s.span_id))
                    .count() as i64,
            ),
            Intrinsic::SpanId => V::Str(hex::encode(s.span_id)),
            Intrinsic::ParentId => s.parent_id.map_or(V::Nil, |p| V::Str(hex::encode(p))),
            Intrinsic::TraceRootName => self
                .root_of_part(s.part)
                .map_or(V::Nil, |r| V::Str(r.name.clone())),
            Intrinsic::TraceRootService => self
                .root_of_part(s.part)
                .and_then(|r| match lookup(&r.resource, "service.name") {
                    V::Str(s) => Some(V::Str(s)),
                    _ => None,
                })
                .unwrap_or(V::Nil),
            Intrinsic::TraceDuration => {
                let start = part.iter().map(|o| o.start).min().unwrap();
                let end = part.iter().map(|o| o.end).max().unwrap();
                V::Dur(end - start)
            }
            Intrinsic::TraceId => {
                V::Str(hex::encode(self.id.0).trim_start_matches('0').to_string())
            }
            Intrinsic::InstrumentationName => V::Str(s.scope_name.clone()),
            Intrinsic::InstrumentationVersion => V::Str(s.scope_version.clone()),
            Intrinsic::NestedSetLeft => V::Int(self.nested_set(at.span).0),
            Intrinsic::NestedSetRight => V::Int(self.nested_set(at.span).1),
            Intrinsic::NestedSetParent => V::Int(self.nested_set(at.span).2),
            Intrinsic::EventName => event.map_or(V::Nil, |e| V::Str(e.name.clone())),
            Intrinsic::EventTimeSinceStart => event.map_or(V::Nil, |e| V::Dur(e.time - s.start)),
            Intrinsic::LinkTraceId => link.map_or(V::Nil, |l| V::Str(hex::encode(&l.trace_id))),
            Intrinsic::LinkSpanId => link.map_or(V::Nil, |l| V::Str(hex::encode(&l.span_id))),
            other => panic!("the reference does not model {other:?}"),
        }
    }

    /// (left, right, parent's left) of span `i`: its part numbered depth first from each root
    /// (roots and children by start time, then span id), one counter from 1; -1 as the parent
    /// of a root; zeros for a span no root reaches.
    fn nested_set(&self, i: usize) -> (i64, i64, i64) {
        fn visit(
            t: &RefTrace,
            node: usize,
            parent_left: i64,
            counter: &mut i64,
            out: &mut HashMap<usize, (i64, i64, i64)>,
        ) {
            let left = *counter;
            *counter += 1;
            out.insert(node, (left, 0, parent_left));
            let s = &t.spans[node];
            let mut children: Vec<usize> = (0..t.spans.len())
                .filter(|&child| {
                    let c = &t.spans[child];
                    child != node
                        && c.part == s.part
                        && c.parent_id == Some(s.span_id)
                        && t.parent(child) == Some(node)
                })
                .collect();
            children.sort_by_key(|&c| (t.spans[c].start, t.spans[c].span_id));
            for child in children {
                if !out.contains_key(&child) {
                    visit(t, child, left, counter, out);
                }
            }
            out.get_mut(&node).expect("visited").1 = *counter;
            *counter += 1;
        }
        let part = self.spans[i].part;
        let mut out = HashMap::new();
        let mut counter = 1;
        let mut roots: Vec<usize> = (0..self.spans.len())
            .filter(|&r| self.spans[r].part == part && self.spans[r].parent_id.is_none())
            .collect();
        roots.sort_by_key(|&r| (self.spans[r].start, self.spans[r].span_id));
        for root in roots {
            visit(self, root, -1, &mut counter, &mut out);
        }
        out.get(&i).copied().unwrap_or((0, 0, 0))
    }

    fn attribute(&self, at: At, a: &Attribute) -> V {
        let s = &self.spans[at.span];
        match a.scope {
            AttributeScope::Span => lookup(&s.attrs, &a.name),
            AttributeScope::Resource => lookup(&s.resource, &a.name),
            AttributeScope::Instrumentation => lookup(&s.scope_attrs, &a.name),
            AttributeScope::None => match lookup(&s.attrs, &a.name) {
                V::Nil => lookup(&s.resource, &a.name),
                v => v,
            },
            AttributeScope::Event => at
                .event
                .map_or(V::Nil, |e| lookup(&s.events[e].attrs, &a.name)),
            AttributeScope::Link => at
                .link
                .map_or(V::Nil, |l| lookup(&s.links[l].attrs, &a.name)),
        }
    }

    /// A span's value of `e`, outside span filters (no event or link to read from).
    fn eval(&self, i: usize, e: &FieldExpr) -> V {
        self.eval_at(
            At {
                span: i,
                event: None,
                link: None,
            },
            e,
        )
    }

    fn eval_at(&self, at: At, e: &FieldExpr) -> V {
        match e {
            FieldExpr::Static(s) => static_v(s),
            FieldExpr::Field(FieldRef::Intrinsic(x), _) => self.intrinsic(at, *x),
            FieldExpr::Field(FieldRef::Attribute(a), _) => self.attribute(at, a),
            FieldExpr::Unary { op, expr, .. } => match (op, self.eval_at(at, expr)) {
                (UnaryOp::Not, V::Bool(b)) => V::Bool(!b),
                (UnaryOp::Neg, V::Int(n)) => V::Int(n.wrapping_neg()),
                (UnaryOp::Neg, V::Dur(n)) => V::Dur(n.wrapping_neg()),
                (UnaryOp::Neg, V::Float(f)) => V::Float(-f),
                _ => V::Nil,
            },
            FieldExpr::Binary { op, lhs, rhs, .. } => {
                let (l, r) = (self.eval_at(at, lhs), self.eval_at(at, rhs));
                match op {
                    BinaryOp::And => V::Bool(l == V::Bool(true) && r == V::Bool(true)),
                    BinaryOp::Or => V::Bool(l == V::Bool(true) || r == V::Bool(true)),
                    BinaryOp::Cmp(c) => V::Bool(compare(*c, &l, &r, lhs, rhs)),
                    BinaryOp::Regex | BinaryOp::NotRegex => {
                        let (V::Str(s), FieldExpr::Static(Static::String(p))) = (&l, &**rhs) else {
                            return V::Bool(false);
                        };
                        let re = regex::Regex::new(&format!("^(?s:{p})$")).unwrap();
                        V::Bool(re.is_match(s) == (*op == BinaryOp::Regex))
                    }
                    BinaryOp::Arith(a) => arith(*a, &l, &r),
                }
            }
        }
    }

    /// A span filter: true for some event and some link of the span (every event field read
    /// from the same event); a span without events (links) is tried with none.
    fn matches(&self, i: usize, e: &FieldExpr) -> bool {
        let s = &self.spans[i];
        let choices = |reads: bool, n: usize| -> Vec<Option<usize>> {
            if reads && n > 0 {
                (0..n).map(Some).collect()
            } else {
                vec![None]
            }
        };
        let (events, links) = (reads(e, is_event_field), reads(e, is_link_field));
        choices(events, s.events.len()).into_iter().any(|event| {
            choices(links, s.links.len()).into_iter().any(|link| {
                self.eval_at(
                    At {
                        span: i,
                        event,
                        link,
                    },
                    e,
                ) == V::Bool(true)
            })
        })
    }
}

fn reads(e: &FieldExpr, field: fn(&FieldRef) -> bool) -> bool {
    match e {
        FieldExpr::Static(_) => false,
        FieldExpr::Field(f, _) => field(f),
        FieldExpr::Unary { expr, .. } => reads(expr, field),
        FieldExpr::Binary { lhs, rhs, .. } => reads(lhs, field) || reads(rhs, field),
    }
}

fn is_event_field(f: &FieldRef) -> bool {
    matches!(
        f,
        FieldRef::Intrinsic(Intrinsic::EventName | Intrinsic::EventTimeSinceStart)
            | FieldRef::Attribute(Attribute {
                scope: AttributeScope::Event,
                ..
            })
    )
}

fn is_link_field(f: &FieldRef) -> bool {
    matches!(
        f,
        FieldRef::Intrinsic(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId)
            | FieldRef::Attribute(Attribute {
                scope: AttributeScope::Link,
                ..
            })
    )
}

fn static_v(s: &Static) -> V {
    match s {
        Static::Int(i) => V::Int(*i),
        Static::Float(f) => V::Float(*f),
        Static::Duration(d) => V::Dur(*d),
        Static::String(s) => V::Str(s.clone()),
        Static::Bool(b) => V::Bool(*b),
        Static::Nil => V::Nil,
        Static::Status(s) => V::Status(s.name()),
        Static::Kind(k) => V::Kind(k.name()),
    }
}

fn as_i64(v: &V) -> Option<i64> {
    match v {
        V::Int(i) | V::Dur(i) => Some(*i),
        _ => None,
    }
}

fn as_f64(v: &V) -> Option<f64> {
    match v {
        V::Int(i) | V::Dur(i) => Some(*i as f64),
        V::Float(f) => Some(*f),
        _ => None,
    }
}

fn ordered<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Neq => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Lte => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Gte => a >= b,
    }
}

fn compare(op: CmpOp, l: &V, r: &V, lhs: &FieldExpr, rhs: &FieldExpr) -> bool {
    let is_nil_literal = |e: &FieldExpr| matches!(e, FieldExpr::Static(Static::Nil));
    if is_nil_literal(lhs) || is_nil_literal(rhs) {
        if is_nil_literal(lhs) && is_nil_literal(rhs) {
            return false;
        }
        let other = if is_nil_literal(lhs) { r } else { l };
        return match op {
            CmpOp::Eq => *other == V::Nil,
            CmpOp::Neq => *other != V::Nil,
            _ => false,
        };
    }
    // A trace id literal may be written with leading zeros, which Tempo trims.
    let is_trace_id = |e: &FieldExpr| {
        matches!(
            e,
            FieldExpr::Field(FieldRef::Intrinsic(Intrinsic::TraceId), _)
        )
    };
    if is_trace_id(lhs) || is_trace_id(rhs) {
        let trim = |v: &V| match v {
            V::Str(s) => V::Str(s.trim_start_matches('0').to_string()),
            other => other.clone(),
        };
        return compare(
            op,
            &trim(l),
            &trim(r),
            &FieldExpr::Static(Static::Bool(true)),
            &FieldExpr::Static(Static::Bool(true)),
        );
    }
    let eq_only = matches!(op, CmpOp::Eq | CmpOp::Neq);
    match (l, r) {
        (V::Str(a), V::Str(b)) => ordered(op, a, b),
        (V::Bool(a), V::Bool(b)) if eq_only => ordered(op, a, b),
        (V::Status(a), V::Status(b)) | (V::Kind(a), V::Kind(b)) if eq_only => ordered(op, a, b),
        _ => match (as_i64(l), as_i64(r)) {
            (Some(a), Some(b)) => ordered(op, a, b),
            _ => match (as_f64(l), as_f64(r)) {
                (Some(a), Some(b)) => ordered(op, a, b),
                _ => false,
            },
        },
    }
}

fn arith(op: ArithOp, l: &V, r: &V) -> V {
    let duration = matches!(l, V::Dur(_)) || matches!(r, V::Dur(_));
    if let (Some(a), Some(b)) = (as_i64(l), as_i64(r)) {
        let n = match op {
            ArithOp::Add => a.checked_add(b),
            ArithOp::Sub => a.checked_sub(b),
            ArithOp::Mul => a.checked_mul(b),
            ArithOp::Div => a.checked_div(b),
            ArithOp::Mod => a.checked_rem(b),
            ArithOp::Pow => u32::try_from(a).ok().and_then(|e| b.checked_pow(e)),
        };
        return match n {
            Some(n) if duration => V::Dur(n),
            Some(n) => V::Int(n),
            None => V::Nil,
        };
    }
    match (as_f64(l), as_f64(r)) {
        (Some(a), Some(b)) => V::Float(match op {
            ArithOp::Add => a + b,
            ArithOp::Sub => a - b,
            ArithOp::Mul => a * b,
            ArithOp::Div => a / b,
            ArithOp::Mod => a % b,
            ArithOp::Pow => a.powf(b),
        }),
        _ => V::Nil,
    }
}

/// One spanset: its key (the `by()` values so far) and its spans (indexes into the trace).
#[derive(Clone)]
struct Set {
    key: Vec<String>,
    spans: Vec<usize>,
}

fn union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = a.to_vec();
    for s in b {
        if !out.contains(s) {
            out.push(*s);
        }
    }
    out
}

impl RefTrace {
    fn spanset_expr(&self, e: &SpansetExpr, input: &[usize]) -> Vec<usize> {
        match e {
            SpansetExpr::Filter { expr, .. } => input
                .iter()
                .copied()
                .filter(|&i| self.matches(i, expr))
                .collect(),
            SpansetExpr::Op { op, lhs, rhs } => {
                let l = self.spanset_expr(lhs, input);
                let r = self.spanset_expr(rhs, input);
                self.spanset_op(*op, &l, &r)
            }
        }
    }

    fn spanset_op(&self, op: SpansetOp, l: &[usize], r: &[usize]) -> Vec<usize> {
        // "b stands in the relation to some a".
        let related = |rel: &dyn Fn(usize, usize) -> bool, keep: &[usize], other: &[usize]| {
            keep.iter()
                .copied()
                .filter(|&k| other.iter().any(|&o| rel(k, o)))
                .collect::<Vec<_>>()
        };
        let unrelated = |rel: &dyn Fn(usize, usize) -> bool, keep: &[usize], other: &[usize]| {
            if other.is_empty() {
                return vec![];
            }
            keep.iter()
                .copied()
                .filter(|&k| !other.iter().any(|&o| rel(k, o)))
                .collect::<Vec<_>>()
        };
        let child = |k: usize, o: usize| self.is_child_of(k, o);
        let parent = |k: usize, o: usize| self.is_child_of(o, k);
        let descendant = |k: usize, o: usize| self.is_descendant_of(k, o);
        let ancestor = |k: usize, o: usize| self.is_descendant_of(o, k);
        let sibling = |k: usize, o: usize| self.are_siblings(k, o);
        match op {
            SpansetOp::And if !l.is_empty() && !r.is_empty() => union(l, r),
            SpansetOp::And => vec![],
            SpansetOp::Or => union(l, r),
            SpansetOp::Child => related(&child, r, l),
            SpansetOp::Parent => related(&parent, r, l),
            SpansetOp::Descendant => related(&descendant, r, l),
            SpansetOp::Ancestor => related(&ancestor, r, l),
            SpansetOp::Sibling => related(&sibling, r, l),
            SpansetOp::NotChild => unrelated(&child, r, l),
            SpansetOp::NotParent => unrelated(&parent, r, l),
            SpansetOp::NotDescendant => unrelated(&descendant, r, l),
            SpansetOp::NotAncestor => unrelated(&ancestor, r, l),
            SpansetOp::NotSibling => unrelated(&sibling, r, l),
            SpansetOp::UnionChild => union(&related(&child, r, l), &related(&parent, l, r)),
            SpansetOp::UnionParent => union(&related(&parent, r, l), &related(&child, l, r)),
            SpansetOp::UnionDescendant => {
                union(&related(&descendant, r, l), &related(&ancestor, l, r))
            }
            SpansetOp::UnionAncestor => {
                union(&related(&ancestor, r, l), &related(&descendant, l, r))
            }
            SpansetOp::UnionSibling => union(&related(&sibling, r, l), &related(&sibling, l, r)),
        }
    }

    fn aggregate(&self, a: &Aggregate, set: &Set) -> Option<V> {
        if a.func == AggregateFn::Count {
            return Some(V::Int(set.spans.len() as i64));
        }
        let values: Vec<f64> = set
            .spans
            .iter()
            .filter_map(|&i| as_f64(&self.eval(i, a.arg.as_ref().unwrap())))
            .collect();
        if values.is_empty() {
            return None;
        }
        Some(V::Float(match a.func {
            AggregateFn::Avg => values.iter().sum::<f64>() / values.len() as f64,
            AggregateFn::Sum => values.iter().sum(),
            AggregateFn::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            AggregateFn::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            AggregateFn::Count => unreachable!(),
        }))
    }

    fn pipeline(&self, p: &Pipeline, mut sets: Vec<Set>) -> Vec<Set> {
        for stage in &p.stages {
            sets = match stage {
                Stage::Spanset(e) => sets
                    .into_iter()
                    .map(|s| Set {
                        spans: self.spanset_expr(e, &s.spans),
                        key: s.key,
                    })
                    .collect(),
                Stage::ScalarFilter(f) => sets
                    .into_iter()
                    .filter(|s| {
                        let (agg, op, value) = match (&f.lhs, &f.rhs) {
                            (ScalarExpr::Aggregate(a), ScalarExpr::Static(v)) => (a, f.op, v),
                            other => panic!("the reference does not model {other:?}"),
                        };
                        let Some(v) = self.aggregate(agg, s) else {
                            return false;
                        };
                        let value = static_v(value);
                        compare(
                            op,
                            &v,
                            &value,
                            &FieldExpr::Static(Static::Bool(true)),
                            &FieldExpr::Static(Static::Bool(true)),
                        )
                    })
                    .collect(),
                Stage::GroupBy { expr, .. } => {
                    let mut out: Vec<Set> = Vec::new();
                    for s in sets {
                        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
                        for &i in &s.spans {
                            let k = format!("{:?}", self.eval(i, expr));
                            match groups.iter_mut().find(|(g, _)| *g == k) {
                                Some((_, v)) => v.push(i),
                                None => groups.push((k, vec![i])),
                            }
                        }
                        for (k, spans) in groups {
                            let mut key = s.key.clone();
                            key.push(k);
                            out.push(Set { key, spans });
                        }
                    }
                    out
                }
                Stage::Coalesce => {
                    let spans = sets.iter().fold(vec![], |acc, s| union(&acc, &s.spans));
                    vec![Set { key: vec![], spans }]
                }
                Stage::Select { .. } => sets,
            };
            sets.retain(|s| !s.spans.is_empty());
        }
        sets
    }

    fn pipeline_expr(&self, p: &PipelineExpr) -> Vec<Set> {
        match p {
            PipelineExpr::Wrapped(p) => self.pipeline(p, vec![self.everything()]),
            PipelineExpr::Op { op, lhs, rhs } => {
                let l = self.pipeline_expr(lhs);
                let r = self.pipeline_expr(rhs);
                // Spansets are paired by key, as the engine joins on it.
                let mut keys: Vec<Vec<String>> =
                    l.iter().chain(&r).map(|s| s.key.clone()).collect();
                keys.dedup();
                let mut out = Vec::new();
                for key in keys {
                    if out.iter().any(|s: &Set| s.key == key) {
                        continue;
                    }
                    let find = |sets: &[Set]| {
                        sets.iter()
                            .find(|s| s.key == key)
                            .map(|s| s.spans.clone())
                            .unwrap_or_default()
                    };
                    let spans = self.spanset_op(*op, &find(&l), &find(&r));
                    out.push(Set { key, spans });
                }
                out.retain(|s| !s.spans.is_empty());
                out
            }
        }
    }

    fn everything(&self) -> Set {
        Set {
            key: vec![],
            spans: (0..self.spans.len()).collect(),
        }
    }

    /// The spansets `query` returns for this trace, each as sorted span ids.
    pub fn search(&self, query: &Query) -> Vec<Vec<[u8; 8]>> {
        let sets = match &query.expr {
            RootExpr::Pipeline(p) => self.pipeline(p, vec![self.everything()]),
            RootExpr::PipelineExpr(p) => self.pipeline_expr(p),
            RootExpr::Metrics(m) => match &m.expr {
                MetricsExpr::Pipeline { pipeline, .. } => {
                    self.pipeline(pipeline, vec![self.everything()])
                }
                _ => panic!("the reference does not model metrics math"),
            },
            RootExpr::ScalarPipelineFilter(_) => panic!("unsupported"),
        };
        let mut out: Vec<Vec<[u8; 8]>> = sets
            .into_iter()
            .map(|s| {
                let mut ids: Vec<[u8; 8]> =
                    s.spans.iter().map(|&i| self.spans[i].span_id).collect();
                ids.sort();
                ids
            })
            .collect();
        out.sort();
        out
    }
}

/// Every trace's spansets for `query`.
pub fn search(traces: &HashMap<TraceId, RefTrace>, query: &Query) -> Matches {
    traces
        .iter()
        .filter_map(|(id, t)| {
            let sets = t.search(query);
            (!sets.is_empty()).then_some((*id, sets))
        })
        .collect()
}
