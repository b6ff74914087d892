//! The canonical printer: AST → TraceQL text that parses back to the same AST.
//!
//! Binary operators get parentheses only where precedence needs them; strings are printed
//! double-quoted with Go escapes; intrinsics use their unscoped spelling where one exists.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)?;
        if !self.hints.is_empty() {
            f.write_str(" with (")?;
            for (i, hint) in self.hints.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}={}", hint.name, hint.value)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Display for RootExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            RootExpr::Pipeline(p) => write!(f, "{p}"),
            RootExpr::PipelineExpr(p) => write!(f, "{p}"),
            RootExpr::ScalarPipelineFilter(s) => {
                write!(f, "{} {} {}", s.lhs, s.op.symbol(), s.rhs)
            }
            RootExpr::Metrics(m) => write!(f, "{m}"),
        }
    }
}

impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, stage) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{stage}")?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Spanset(s) => write!(f, "{s}"),
            Stage::ScalarFilter(s) => write!(f, "{} {} {}", s.lhs, s.op.symbol(), s.rhs),
            Stage::GroupBy { expr, .. } => write!(f, "by({expr})"),
            Stage::Coalesce => f.write_str("coalesce()"),
            Stage::Select { fields, .. } => write!(f, "select({})", list(fields)),
        }
    }
}

fn list<T: Display>(items: &[T]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{item}");
    }
    out
}

/// Binding strength of spanset operators: `&&`/`||` below the structural ones.
fn spanset_precedence(op: SpansetOp) -> u8 {
    if op.is_logical() { 1 } else { 2 }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter { expr, .. } => write!(f, "{{ {expr} }}"),
            SpansetExpr::Op { op, lhs, rhs } => {
                let p = spanset_precedence(*op);
                let wrap = |e: &SpansetExpr, right: bool| match e {
                    SpansetExpr::Op { op: inner, .. } => {
                        let q = spanset_precedence(*inner);
                        q < p || (right && q == p)
                    }
                    SpansetExpr::Filter { .. } => false,
                };
                write_operand(f, lhs, wrap(lhs, false))?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, rhs, wrap(rhs, true))
            }
        }
    }
}

fn write_operand<T: Display>(f: &mut Formatter<'_>, item: &T, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({item})")
    } else {
        write!(f, "{item}")
    }
}

impl Display for PipelineExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            PipelineExpr::Wrapped(p) => write!(f, "({p})"),
            PipelineExpr::Op { op, lhs, rhs } => {
                let p = spanset_precedence(*op);
                let wrap = |e: &PipelineExpr, right: bool| match e {
                    PipelineExpr::Op { op: inner, .. } => {
                        let q = spanset_precedence(*inner);
                        q < p || (right && q == p)
                    }
                    PipelineExpr::Wrapped(_) => false,
                };
                write_operand(f, lhs, wrap(lhs, false))?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, rhs, wrap(rhs, true))
            }
        }
    }
}

/// Precedence of arithmetic outside filters: `+ -` below `* / %` below `^` (right-assoc).
fn arith_precedence(op: ArithOp) -> u8 {
    match op {
        ArithOp::Add | ArithOp::Sub => 1,
        ArithOp::Mul | ArithOp::Div | ArithOp::Mod => 2,
        ArithOp::Pow => 3,
    }
}

fn arith_wrap(parent: ArithOp, child: Option<ArithOp>, right: bool) -> bool {
    let Some(child) = child else { return false };
    let (p, q) = (arith_precedence(parent), arith_precedence(child));
    let right_assoc = parent == ArithOp::Pow;
    q < p || (q == p && (right != right_assoc))
}

impl Display for ScalarExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Aggregate(a) => write!(f, "{a}"),
            ScalarExpr::Static(s) => write!(f, "{s}"),
            ScalarExpr::Binary { op, lhs, rhs } => {
                let child_op = |e: &ScalarExpr| match e {
                    ScalarExpr::Binary { op, .. } => Some(*op),
                    _ => None,
                };
                write_operand(f, lhs, arith_wrap(*op, child_op(lhs), false))?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, rhs, arith_wrap(*op, child_op(rhs), true))
            }
        }
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Some(arg) => write!(f, "{}({arg})", self.func.name()),
            None => write!(f, "{}()", self.func.name()),
        }
    }
}

impl Display for ScalarPipelineExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarPipelineExpr::Wrapped {
                pipeline,
                aggregate,
            } => write!(f, "({pipeline} | {aggregate})"),
            ScalarPipelineExpr::Static(s) => write!(f, "{s}"),
            ScalarPipelineExpr::Binary { op, lhs, rhs } => {
                let child_op = |e: &ScalarPipelineExpr| match e {
                    ScalarPipelineExpr::Binary { op, .. } => Some(*op),
                    _ => None,
                };
                write_operand(f, lhs, arith_wrap(*op, child_op(lhs), false))?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, rhs, arith_wrap(*op, child_op(rhs), true))
            }
        }
    }
}

/// Precedence inside filters, matching the parser: `&& ||` 1, comparisons 2, `+ -` 3,
/// `* / %` 5, `^` 6 (right-assoc).
fn field_precedence(op: BinaryOp) -> (u8, bool) {
    match op {
        BinaryOp::And | BinaryOp::Or => (1, false),
        BinaryOp::Cmp(_) | BinaryOp::Regex | BinaryOp::NotRegex => (2, false),
        BinaryOp::Arith(ArithOp::Add | ArithOp::Sub) => (3, false),
        BinaryOp::Arith(ArithOp::Mul | ArithOp::Div | ArithOp::Mod) => (5, false),
        BinaryOp::Arith(ArithOp::Pow) => (6, true),
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Static(s) => write!(f, "{s}"),
            FieldExpr::Field(field, _) => write!(f, "{field}"),
            FieldExpr::Unary { op, expr, .. } => {
                f.write_str(if *op == UnaryOp::Not { "!" } else { "-" })?;
                // The operand is parenthesised unless it is a leaf or another prefix operator,
                // so `!` and `-` never capture more than they did, and chains of prefix
                // operators do not nest deeper when printed than when written.
                let leaf = is_prefixed_leaf(expr);
                if *op == UnaryOp::Neg
                    && matches!(
                        **expr,
                        FieldExpr::Unary {
                            op: UnaryOp::Neg,
                            ..
                        }
                    )
                {
                    f.write_str(" ")?;
                }
                write_operand(f, expr, !leaf)
            }
            FieldExpr::Binary { op, lhs, rhs, .. } => {
                let (p, right_assoc) = field_precedence(*op);
                let wrap = |e: &FieldExpr, right: bool| match e {
                    FieldExpr::Binary { op: inner, .. } => {
                        let (q, _) = field_precedence(*inner);
                        q < p || (q == p && right != right_assoc)
                    }
                    // `!` takes `* / % ^` into its operand: `a * !b * c` is `a * !(b * c)`,
                    // and so does a `!` behind other prefix operators (`-!b * c`).
                    FieldExpr::Unary { .. } => p >= 5 && prefix_chain_has_not(e),
                    _ => false,
                };
                write_operand(f, lhs, wrap(lhs, false))?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, rhs, wrap(rhs, true))
            }
        }
    }
}

/// A field, a non-negative literal, or prefix operators applied to one: prints without
/// parentheses after another prefix operator.
fn is_prefixed_leaf(expr: &FieldExpr) -> bool {
    match expr {
        FieldExpr::Field(..) => true,
        FieldExpr::Static(s) => !is_negative(s),
        FieldExpr::Unary { expr, .. } => is_prefixed_leaf(expr),
        FieldExpr::Binary { .. } => false,
    }
}

fn prefix_chain_has_not(expr: &FieldExpr) -> bool {
    match expr {
        FieldExpr::Unary {
            op: UnaryOp::Not, ..
        } => true,
        FieldExpr::Unary { expr, .. } => prefix_chain_has_not(expr),
        _ => false,
    }
}

fn is_negative(value: &Static) -> bool {
    match value {
        Static::Int(n) => *n < 0,
        Static::Float(x) => x.is_sign_negative(),
        Static::Duration(d) => *d < 0,
        _ => false,
    }
}

impl Display for FieldRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldRef::Attribute(a) => write!(f, "{a}"),
            FieldRef::Intrinsic(i) => f.write_str(&i.canonical_name()),
        }
    }
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let prefix = match (self.parent, self.scope) {
            (false, scope) => scope.prefix().to_string(),
            (true, AttributeScope::None) => "parent.".to_string(),
            (true, scope) => format!("parent.{}", scope.prefix()),
        };
        f.write_str(&prefix)?;
        if needs_quotes(
            &self.name,
            self.parent && self.scope == AttributeScope::None,
        ) {
            f.write_char('"')?;
            for c in self.name.chars() {
                if c == '"' || c == '\\' {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
            f.write_char('"')
        } else {
            f.write_str(&self.name)
        }
    }
}

/// Whether a name would not lex back as written: stop characters, quotes, a leading digit
/// (`.1a` would be a number) or, after `parent.`, a leading `span.`/`resource.`.
fn needs_quotes(name: &str, after_bare_parent: bool) -> bool {
    name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || name
            .chars()
            .any(|c| c.is_whitespace() || "{}()=~!<>&|^,\"\\".contains(c))
        || (after_bare_parent && (name.starts_with("span.") || name.starts_with("resource.")))
}

impl Display for Static {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Static::Int(i64::MIN) => f.write_str("minInt"),
            Static::Int(n) => write!(f, "{n}"),
            Static::Float(x) => write_float(f, *x),
            Static::Duration(d) => write_duration(f, *d),
            Static::String(s) => write_string(f, s),
            Static::Bool(b) => write!(f, "{b}"),
            Static::Nil => f.write_str("nil"),
            Static::Status(s) => f.write_str(s.name()),
            Static::Kind(k) => f.write_str(k.name()),
        }
    }
}

/// Floats always print with a `.` or an exponent so they lex back as floats.
fn write_float(f: &mut Formatter<'_>, x: f64) -> fmt::Result {
    let text = format!("{x:?}");
    f.write_str(&text)
}

/// Durations in Go's style: `1h30m`, `1.5s` is printed `1s500ms`, `-5s`.
fn write_duration(f: &mut Formatter<'_>, nanos: i64) -> fmt::Result {
    if nanos < 0 {
        f.write_char('-')?;
    }
    crate::go_duration::write(f, nanos.unsigned_abs() as u128)
}

fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl Display for MetricsQuery {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.expr {
            // A bare pipeline followed by outer stages was written in parentheses.
            MetricsExpr::Pipeline { .. } if !self.second_stage.is_empty() => {
                write!(f, "({})", self.expr)?
            }
            MetricsExpr::Pipeline { .. } => write!(f, "{}", self.expr)?,
            other => write_metrics_operand(f, other, None, false)?,
        }
        write_second_stage(f, &self.second_stage)
    }
}

fn write_second_stage(f: &mut Formatter<'_>, stages: &[SecondStage]) -> fmt::Result {
    for stage in stages {
        match stage {
            SecondStage::TopK { k, .. } => write!(f, " | topk({k})")?,
            SecondStage::BottomK { k, .. } => write!(f, " | bottomk({k})")?,
            SecondStage::Filter { op, value, .. } => write!(f, " {} {value}", op.symbol())?,
        }
    }
    Ok(())
}

impl Display for MetricsExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricsExpr::Pipeline {
                pipeline,
                aggregate,
                second_stage,
            } => {
                write!(f, "{pipeline} | {aggregate}")?;
                write_second_stage(f, second_stage)
            }
            other => write_metrics_operand(f, other, None, false),
        }
    }
}

/// Operands of metrics arithmetic: pipelines always in parentheses, sub-expressions where
/// precedence needs them.
fn write_metrics_operand(
    f: &mut Formatter<'_>,
    expr: &MetricsExpr,
    parent: Option<ArithOp>,
    right: bool,
) -> fmt::Result {
    match expr {
        MetricsExpr::Pipeline { .. } => write!(f, "({expr})"),
        MetricsExpr::Scalar(s) => write!(f, "{s}"),
        MetricsExpr::Binary { op, lhs, rhs } => {
            let wrap = parent.is_some_and(|p| arith_wrap(p, Some(*op), right));
            if wrap {
                f.write_char('(')?;
            }
            write_metrics_operand(f, lhs, Some(*op), false)?;
            write!(f, " {} ", op.symbol())?;
            write_metrics_operand(f, rhs, Some(*op), true)?;
            if wrap {
                f.write_char(')')?;
            }
            Ok(())
        }
    }
}

impl Display for MetricsAggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.func)?;
        if !self.by.is_empty() {
            write!(f, " by ({})", list(&self.by))?;
        }
        Ok(())
    }
}

impl Display for MetricsFn {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            MetricsFn::Rate | MetricsFn::CountOverTime => write!(f, "{name}()"),
            MetricsFn::MinOverTime(field)
            | MetricsFn::MaxOverTime(field)
            | MetricsFn::AvgOverTime(field)
            | MetricsFn::SumOverTime(field)
            | MetricsFn::HistogramOverTime(field) => write!(f, "{name}({field})"),
            MetricsFn::QuantileOverTime(field, qs) => {
                write!(f, "{name}({field}")?;
                for q in qs {
                    f.write_str(", ")?;
                    write_float(f, *q)?;
                }
                f.write_char(')')
            }
            MetricsFn::Compare {
                filter,
                top_n,
                start,
                end,
            } => {
                write!(f, "{name}({{ {filter} }}")?;
                for n in [top_n, start, end].into_iter().flatten() {
                    write!(f, ", {n}")?;
                }
                f.write_char(')')
            }
        }
    }
}
