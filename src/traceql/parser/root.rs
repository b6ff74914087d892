//! The top level: pipelines, spanset operators, aggregates, metrics functions and their
//! arithmetic, parsed into a loose [`Node`] tree that `shape` turns into the AST.

use super::super::ast::{
    Aggregate, AggregateFn, ArithOp, CmpOp, FieldExpr, FieldRef, Hint, MetricsAggregate, MetricsFn,
    Pos, Query, SpansetOp, Static,
};
use super::super::lexer::TokenKind;
use super::field::{field_expression, field_ref, negate, signed_static, unknown_identifier};
use super::tree::{Node, RootOp};
use super::{NestingGuard, PResult, Tokens, expected, fail, keyword, peek, pos, shape, token};

fn root_operator(kind: &TokenKind) -> Option<(RootOp, u8, bool)> {
    use TokenKind as T;
    let spanset = |op| Some((RootOp::Spanset(op), 3, false));
    match kind {
        T::And => Some((RootOp::Spanset(SpansetOp::And), 2, false)),
        T::Or => Some((RootOp::Spanset(SpansetOp::Or), 2, false)),
        T::Eq => Some((RootOp::Cmp(CmpOp::Eq), 3, false)),
        T::Neq => Some((RootOp::Cmp(CmpOp::Neq), 3, false)),
        T::Lt => Some((RootOp::Cmp(CmpOp::Lt), 3, false)),
        T::Lte => Some((RootOp::Cmp(CmpOp::Lte), 3, false)),
        T::Gt => Some((RootOp::Cmp(CmpOp::Gt), 3, false)),
        T::Gte => Some((RootOp::Cmp(CmpOp::Gte), 3, false)),
        T::Descendant => spanset(SpansetOp::Descendant),
        T::Ancestor => spanset(SpansetOp::Ancestor),
        T::Tilde => spanset(SpansetOp::Sibling),
        T::NotChild => spanset(SpansetOp::NotChild),
        T::NotParent => spanset(SpansetOp::NotParent),
        T::NotDescendant => spanset(SpansetOp::NotDescendant),
        T::NotAncestor => spanset(SpansetOp::NotAncestor),
        T::NotRegex => spanset(SpansetOp::NotSibling),
        T::UnionChild => spanset(SpansetOp::UnionChild),
        T::UnionParent => spanset(SpansetOp::UnionParent),
        T::UnionDescendant => spanset(SpansetOp::UnionDescendant),
        T::UnionAncestor => spanset(SpansetOp::UnionAncestor),
        T::UnionSibling => spanset(SpansetOp::UnionSibling),
        T::Add => Some((RootOp::Arith(ArithOp::Add), 4, false)),
        T::Sub => Some((RootOp::Arith(ArithOp::Sub), 4, false)),
        T::Mul => Some((RootOp::Arith(ArithOp::Mul), 6, false)),
        T::Div => Some((RootOp::Arith(ArithOp::Div), 6, false)),
        T::Mod => Some((RootOp::Arith(ArithOp::Mod), 6, false)),
        T::Pow => Some((RootOp::Arith(ArithOp::Pow), 7, true)),
        _ => None,
    }
}

const NEG_PRECEDENCE: u8 = 8;

/// query = root [ hints ] EOF
pub(crate) fn query(input: Tokens<'_>) -> PResult<'_, Query> {
    let (rest, node) = pipeline(input)?;
    let (rest, hints) = match peek(rest) {
        TokenKind::Ident(w) if w == "with" => hints(rest)?,
        _ => (rest, Vec::new()),
    };
    if !matches!(peek(rest), TokenKind::Eof) {
        let message = match peek(rest) {
            TokenKind::Eq => "'==' is not a TraceQL operator: use '='".to_string(),
            other => format!("unexpected {other}: expected an operator, '|' or end of query"),
        };
        return fail(rest, message);
    }
    let expr = shape::root(rest, node)?;
    Ok((rest, Query { expr, hints }))
}

/// pipeline = expression { "|" expression }
fn pipeline(input: Tokens<'_>) -> PResult<'_, Node> {
    let (mut input, first) = binary(input, 2)?;
    let mut stages = vec![first];
    while let TokenKind::Pipe = peek(input) {
        let (rest, stage) = binary(&input[1..], 2)?;
        stages.push(stage);
        input = rest;
    }
    let node = if stages.len() == 1 {
        stages.pop().unwrap()
    } else {
        Node::Pipe(stages)
    };
    Ok((input, node))
}

fn binary(input: Tokens<'_>, min_precedence: u8) -> PResult<'_, Node> {
    let (mut input, mut lhs) = prefix(input)?;
    while let Some((op, precedence, right_assoc)) = root_operator(peek(input)) {
        if precedence < min_precedence {
            break;
        }
        let op_pos = pos(input);
        let next_min = if right_assoc {
            precedence
        } else {
            precedence + 1
        };
        let (rest, rhs) = binary(&input[1..], next_min)?;
        lhs = Node::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            pos: op_pos,
        };
        input = rest;
    }
    Ok((input, lhs))
}

fn prefix(input: Tokens<'_>) -> PResult<'_, Node> {
    if let TokenKind::Sub = peek(input) {
        let at = pos(input);
        let _guard = NestingGuard::enter(input)?;
        let (rest, operand) = binary(&input[1..], NEG_PRECEDENCE)?;
        if let Node::Number(value, p) = &operand
            && let Some(negated) = negate(value)
        {
            return Ok((rest, Node::Number(negated, *p)));
        }
        return Ok((rest, Node::Neg(Box::new(operand), at)));
    }
    primary(input)
}

fn primary(input: Tokens<'_>) -> PResult<'_, Node> {
    let at = pos(input);
    match peek(input) {
        TokenKind::LBrace => {
            let (rest, (expr, p)) = spanset_filter(input)?;
            Ok((rest, Node::Filter(expr, p)))
        }
        TokenKind::LParen => {
            let _guard = NestingGuard::enter(input)?;
            let (rest, inner) = pipeline(&input[1..])?;
            let (rest, _) = token(TokenKind::RParen, "')'")(rest)?;
            Ok((rest, Node::Paren(Box::new(inner), at)))
        }
        TokenKind::Int(n) => Ok((&input[1..], Node::Number(Static::Int(*n), at))),
        TokenKind::Float(f) => Ok((&input[1..], Node::Number(Static::Float(*f), at))),
        TokenKind::Duration(d) => Ok((&input[1..], Node::Number(Static::Duration(*d), at))),
        TokenKind::Ident(word) => function(input, word.clone(), at),
        _ => expected(input, "'{', '(' or a pipeline function"),
    }
}

/// spansetFilter = "{" [ fieldExpression ] "}"
pub(crate) fn spanset_filter(input: Tokens<'_>) -> PResult<'_, (FieldExpr, Pos)> {
    let at = pos(input);
    let (rest, _) = token(TokenKind::LBrace, "'{'")(input)?;
    let _guard = NestingGuard::enter(input)?;
    if let TokenKind::RBrace = peek(rest) {
        return Ok((&rest[1..], (FieldExpr::Static(Static::Bool(true)), at)));
    }
    let (rest, expr) = field_expression(rest)?;
    let (rest, _) = token(TokenKind::RBrace, "'}'")(rest)?;
    Ok((rest, (expr, at)))
}

/// Every word that may start a top-level expression.
fn function(input: Tokens<'_>, word: String, at: Pos) -> PResult<'_, Node> {
    let args = &input[1..];
    let open = token(TokenKind::LParen, "'('");
    let close = token(TokenKind::RParen, "')'");
    match word.as_str() {
        "count" => {
            let (rest, _) = open(args)?;
            let (rest, _) = close(rest)?;
            Ok((
                rest,
                Node::Aggregate(Aggregate {
                    func: AggregateFn::Count,
                    arg: None,
                    pos: at,
                }),
            ))
        }
        "avg" | "min" | "max" | "sum" => {
            let func = match word.as_str() {
                "avg" => AggregateFn::Avg,
                "min" => AggregateFn::Min,
                "max" => AggregateFn::Max,
                _ => AggregateFn::Sum,
            };
            let (rest, _) = open(args)?;
            let (rest, arg) = field_expression(rest)?;
            let (rest, _) = close(rest)?;
            Ok((
                rest,
                Node::Aggregate(Aggregate {
                    func,
                    arg: Some(arg),
                    pos: at,
                }),
            ))
        }
        "by" => {
            let (rest, _) = open(args)?;
            let (rest, expr) = field_expression(rest)?;
            let (rest, _) = close(rest)?;
            Ok((rest, Node::GroupBy(expr, at)))
        }
        "coalesce" => {
            let (rest, _) = open(args)?;
            let (rest, _) = close(rest)?;
            Ok((rest, Node::Coalesce(at)))
        }
        "select" => {
            let (rest, _) = open(args)?;
            let (rest, fields) = field_list(rest)?;
            let (rest, _) = close(rest)?;
            Ok((rest, Node::Select(fields, at)))
        }
        "topk" | "bottomk" => {
            let (rest, _) = open(args)?;
            let (rest, k) = match peek(rest) {
                TokenKind::Int(k) => (&rest[1..], *k),
                _ => {
                    return fail(
                        rest,
                        format!("{word}() takes a whole number of series, e.g. {word}(10)"),
                    );
                }
            };
            let (rest, _) = close(rest)?;
            let node = if word == "topk" {
                Node::TopK(k, at)
            } else {
                Node::BottomK(k, at)
            };
            Ok((rest, node))
        }
        "rate"
        | "count_over_time"
        | "min_over_time"
        | "max_over_time"
        | "avg_over_time"
        | "sum_over_time"
        | "quantile_over_time"
        | "histogram_over_time"
        | "compare" => {
            let (rest, func) = metrics_function(args, &word)?;
            let (rest, by) = match peek(rest) {
                TokenKind::Ident(w) if w == "by" => {
                    let (r, _) = keyword("by")(rest)?;
                    let (r, _) = open(r)?;
                    let (r, fields) = field_list(r)?;
                    let (r, _) = close(r)?;
                    (r, fields)
                }
                _ => (rest, Vec::new()),
            };
            Ok((rest, Node::Metrics(MetricsAggregate { func, by, pos: at })))
        }
        _ => {
            if super::super::ast::Intrinsic::from_unscoped(&word).is_some()
                || super::field::static_value(peek(input)).is_some()
            {
                fail(
                    input,
                    format!(
                        "'{word}' can only be used inside a spanset filter {{ … }} or a function argument"
                    ),
                )
            } else {
                fail(input, unknown_function(&word))
            }
        }
    }
}

fn unknown_function(word: &str) -> String {
    const KNOWN: &str = "count, avg, min, max, sum, by, coalesce, select, rate, count_over_time, \
        min_over_time, max_over_time, avg_over_time, sum_over_time, quantile_over_time, \
        histogram_over_time, compare, topk, bottomk";
    if word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        format!("unknown function '{word}'; TraceQL has {KNOWN}")
    } else {
        unknown_identifier(word)
    }
}

/// attributeList = fieldRef { "," fieldRef }
fn field_list(input: Tokens<'_>) -> PResult<'_, Vec<FieldRef>> {
    comma_list(input, field_ref)
}

/// The parenthesised arguments of a metrics function.
fn metrics_function<'a>(input: Tokens<'a>, name: &str) -> PResult<'a, MetricsFn> {
    let (rest, _) = token(TokenKind::LParen, "'('")(input)?;
    let close = token(TokenKind::RParen, "')'");
    let comma = token(TokenKind::Comma, "','");
    match name {
        "rate" | "count_over_time" => {
            let (rest, _) = close(rest)?;
            Ok((
                rest,
                if name == "rate" {
                    MetricsFn::Rate
                } else {
                    MetricsFn::CountOverTime
                },
            ))
        }
        "quantile_over_time" => {
            let (mut rest, field) = field_ref(rest)?;
            let mut quantiles = Vec::new();
            while let TokenKind::Comma = peek(rest) {
                let (r, value) = signed_static(&rest[1..])?;
                let q = match value {
                    Static::Int(n) => n as f64,
                    Static::Float(f) => f,
                    _ => return fail(&rest[1..], "quantiles are numbers between 0 and 1"),
                };
                quantiles.push(q);
                rest = r;
            }
            if quantiles.is_empty() {
                return fail(
                    rest,
                    "quantile_over_time() needs at least one quantile, e.g. quantile_over_time(duration, .99)",
                );
            }
            let (rest, _) = close(rest)?;
            Ok((rest, MetricsFn::QuantileOverTime(field, quantiles)))
        }
        "compare" => {
            let (rest, (filter, _)) = spanset_filter(rest)?;
            let mut numbers = Vec::new();
            let mut rest = rest;
            while let TokenKind::Comma = peek(rest) {
                let (r, _) = comma(rest)?;
                let (r, value) = signed_static(r)?;
                match value {
                    Static::Int(n) => numbers.push(n),
                    _ => return fail(r, "compare() takes whole numbers after the filter"),
                }
                rest = r;
            }
            let (top_n, start, end) = match numbers.as_slice() {
                [] => (None, None, None),
                [n] => (Some(*n), None, None),
                [n, s, e] => (Some(*n), Some(*s), Some(*e)),
                _ => {
                    return fail(
                        rest,
                        "compare() takes a filter, then optionally topN, or topN, start and end",
                    );
                }
            };
            let (rest, _) = close(rest)?;
            Ok((
                rest,
                MetricsFn::Compare {
                    filter,
                    top_n,
                    start,
                    end,
                },
            ))
        }
        _ => {
            let (rest, field) = field_ref(rest)?;
            let (rest, _) = close(rest)?;
            Ok((
                rest,
                match name {
                    "min_over_time" => MetricsFn::MinOverTime(field),
                    "max_over_time" => MetricsFn::MaxOverTime(field),
                    "avg_over_time" => MetricsFn::AvgOverTime(field),
                    "sum_over_time" => MetricsFn::SumOverTime(field),
                    _ => MetricsFn::HistogramOverTime(field),
                },
            ))
        }
    }
}

/// hints = "with" "(" hint { "," hint } ")" ; hint = IDENT "=" static
fn hints(input: Tokens<'_>) -> PResult<'_, Vec<Hint>> {
    let (rest, _) = keyword("with")(input)?;
    let (rest, _) = token(TokenKind::LParen, "'('")(rest)?;
    let (rest, hints) = comma_list(rest, hint)?;
    let (rest, _) = token(TokenKind::RParen, "')'")(rest)?;
    Ok((rest, hints))
}

fn hint(input: Tokens<'_>) -> PResult<'_, Hint> {
    let name = match peek(input) {
        TokenKind::Ident(name) => name.clone(),
        _ => return expected(input, "a hint name"),
    };
    let (rest, _) = token(TokenKind::Eq, "'='")(&input[1..])?;
    let (rest, value) = signed_static(rest)?;
    Ok((rest, Hint { name, value }))
}

/// item { "," item }
fn comma_list<'a, T>(
    input: Tokens<'a>,
    item: impl Fn(Tokens<'a>) -> PResult<'a, T>,
) -> PResult<'a, Vec<T>> {
    let (mut input, first) = item(input)?;
    let mut items = vec![first];
    while let TokenKind::Comma = peek(input) {
        let (rest, next) = item(&input[1..])?;
        items.push(next);
        input = rest;
    }
    Ok((input, items))
}
