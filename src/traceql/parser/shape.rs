//! From the loose top-level tree to the typed AST: decides what each operator means from its
//! operands and rejects the combinations TraceQL does not have.

use super::super::ast::{
    ArithOp, CmpOp, MetricsExpr, MetricsQuery, Pipeline, PipelineExpr, Pos, RootExpr, ScalarExpr,
    ScalarFilter, ScalarPipelineExpr, ScalarPipelineFilter, SecondStage, SpansetExpr, SpansetOp,
    Stage, Static,
};
use super::tree::{Node, RootOp};
use super::{SyntaxError, Tokens, fail_at_pos};

struct ShapeError {
    pos: Pos,
    message: String,
}

type Shaped<T> = Result<T, ShapeError>;

fn err<T>(pos: Pos, message: impl Into<String>) -> Shaped<T> {
    Err(ShapeError {
        pos,
        message: message.into(),
    })
}

pub(crate) fn root(rest: Tokens<'_>, node: Node) -> Result<RootExpr, nom::Err<SyntaxError>> {
    shape_root(node).map_err(|e| nom::Err::Failure(fail_at_pos(rest, e.pos, e.message)))
}

fn shape_root(node: Node) -> Shaped<RootExpr> {
    if contains_metrics(&node) {
        return metrics_query(node).map(RootExpr::Metrics);
    }
    if let Node::Binary {
        op: RootOp::Cmp(op),
        lhs,
        rhs,
        pos,
    } = &node
        && is_scalar_pipeline_expr(lhs)
    {
        let lhs = scalar_pipeline_expr(lhs)?;
        let rhs = match &**rhs {
            Node::Number(value, _) => ScalarPipelineExpr::Static(value.clone()),
            other if is_scalar_pipeline_expr(other) => scalar_pipeline_expr(other)?,
            other => {
                return err(
                    other.pos(),
                    "compare a (pipeline | aggregate) with another one or with a number",
                );
            }
        };
        return Ok(RootExpr::ScalarPipelineFilter(ScalarPipelineFilter {
            op: *op,
            lhs,
            rhs,
            pos: *pos,
        }));
    }
    if is_scalar_pipeline_expr(&node) {
        return err(
            node.pos(),
            "a (pipeline | aggregate) must be compared, e.g. ({ } | count()) > 2",
        );
    }
    if has_wrapped_pipeline(&node) {
        return pipeline_expr(&node).map(RootExpr::PipelineExpr);
    }
    pipeline(&node).map(RootExpr::Pipeline)
}

fn contains_metrics(node: &Node) -> bool {
    match node {
        Node::Metrics(_) | Node::TopK(..) | Node::BottomK(..) => true,
        Node::Pipe(stages) => stages.iter().any(contains_metrics),
        Node::Paren(inner, _) | Node::Neg(inner, _) => contains_metrics(inner),
        Node::Binary { lhs, rhs, .. } => contains_metrics(lhs) || contains_metrics(rhs),
        _ => false,
    }
}

fn stages_of(node: &Node) -> Vec<&Node> {
    match node {
        Node::Pipe(stages) => stages.iter().collect(),
        other => vec![other],
    }
}

/// pipeline = stage { "|" stage }, the first stage not `coalesce()`, the last not a bare
/// aggregate.
fn pipeline(node: &Node) -> Shaped<Pipeline> {
    let nodes = stages_of(node);
    let mut stages = Vec::with_capacity(nodes.len());
    for (i, stage_node) in nodes.iter().enumerate() {
        stages.push(stage(stage_node, i == 0)?);
    }
    Ok(Pipeline { stages })
}

fn stage(node: &Node, first: bool) -> Shaped<Stage> {
    match node {
        Node::GroupBy(expr, pos) => Ok(Stage::GroupBy {
            expr: expr.clone(),
            pos: *pos,
        }),
        Node::Coalesce(pos) if first => err(*pos, "a pipeline cannot start with coalesce()"),
        Node::Coalesce(_) => Ok(Stage::Coalesce),
        Node::Select(fields, pos) => Ok(Stage::Select {
            fields: fields.clone(),
            pos: *pos,
        }),
        Node::Aggregate(a) => err(
            a.pos,
            format!(
                "{}() must be compared with a number, e.g. {}() > 1",
                a.func.name(),
                a.func.name()
            ),
        ),
        Node::Binary {
            op: RootOp::Cmp(op),
            lhs,
            rhs,
            pos,
        } if is_scalar_side(lhs) || is_scalar_side(rhs) => {
            let lhs = scalar_expr(lhs)?;
            let rhs = scalar_expr(rhs)?;
            if !has_aggregate(&lhs) && !has_aggregate(&rhs) {
                return err(
                    *pos,
                    "a scalar filter compares an aggregate such as count() or avg(duration)",
                );
            }
            Ok(Stage::ScalarFilter(ScalarFilter {
                op: *op,
                lhs,
                rhs,
                pos: *pos,
            }))
        }
        Node::Binary {
            op: RootOp::Arith(op),
            pos,
            ..
        } if is_scalar_side(node) => {
            if has_aggregate_node(node) {
                err(
                    *pos,
                    format!(
                        "'{}' between aggregates needs a comparison to make a filter, e.g. … > 1",
                        op.symbol()
                    ),
                )
            } else {
                err(
                    *pos,
                    "arithmetic at the top level needs an aggregate (count() + 1 > 2) or a \
                     metrics pipeline in parentheses (({ } | rate()) * 2)",
                )
            }
        }
        other => spanset_expr(other).map(Stage::Spanset),
    }
}

/// Does this side of a comparison belong to a scalar filter (aggregates and numbers)?
fn is_scalar_side(node: &Node) -> bool {
    match node {
        Node::Aggregate(_) | Node::Number(..) => true,
        Node::Paren(inner, _) | Node::Neg(inner, _) => is_scalar_side(inner),
        Node::Binary {
            op: RootOp::Arith(_),
            lhs,
            rhs,
            ..
        } => is_scalar_side(lhs) || is_scalar_side(rhs),
        _ => false,
    }
}

fn has_aggregate_node(node: &Node) -> bool {
    match node {
        Node::Aggregate(_) => true,
        Node::Paren(inner, _) | Node::Neg(inner, _) => has_aggregate_node(inner),
        Node::Binary { lhs, rhs, .. } => has_aggregate_node(lhs) || has_aggregate_node(rhs),
        Node::Pipe(stages) => stages.iter().any(has_aggregate_node),
        _ => false,
    }
}

fn has_aggregate(expr: &ScalarExpr) -> bool {
    match expr {
        ScalarExpr::Aggregate(_) => true,
        ScalarExpr::Static(_) => false,
        ScalarExpr::Binary { lhs, rhs, .. } => has_aggregate(lhs) || has_aggregate(rhs),
    }
}

/// spansetExpression: filters joined by `&&`, `||` and structural operators.
fn spanset_expr(node: &Node) -> Shaped<SpansetExpr> {
    match node {
        Node::Filter(expr, pos) => Ok(SpansetExpr::Filter {
            expr: expr.clone(),
            pos: *pos,
        }),
        Node::Paren(inner, pos) => match &**inner {
            Node::Pipe(_) => err(
                *pos,
                "a pipeline in parentheses cannot be used here; combine pipelines as (…) && (…)",
            ),
            inner => spanset_expr(inner),
        },
        Node::Binary { op, lhs, rhs, pos } => {
            let op = spanset_op(*op, *pos)?;
            Ok(SpansetExpr::Op {
                op,
                lhs: Box::new(spanset_expr(lhs)?),
                rhs: Box::new(spanset_expr(rhs)?),
            })
        }
        other => err(other.pos(), "expected a spanset filter { … }"),
    }
}

/// The spanset meaning of a top-level operator: `>` is child, `<` is parent.
fn spanset_op(op: RootOp, pos: Pos) -> Shaped<SpansetOp> {
    match op {
        RootOp::Spanset(op) => Ok(op),
        RootOp::Cmp(CmpOp::Gt) => Ok(SpansetOp::Child),
        RootOp::Cmp(CmpOp::Lt) => Ok(SpansetOp::Parent),
        RootOp::Cmp(op) => err(
            pos,
            format!(
                "'{}' cannot combine spansets; use &&, || or a structural operator",
                op.symbol()
            ),
        ),
        RootOp::Arith(op) => err(
            pos,
            format!(
                "'{}' cannot combine spansets; use &&, || or a structural operator",
                op.symbol()
            ),
        ),
    }
}

/// Does a spanset-operator tree have a parenthesised pipeline among its operands?
fn has_wrapped_pipeline(node: &Node) -> bool {
    match node {
        Node::Paren(inner, _) => match &**inner {
            Node::Pipe(_) => true,
            Node::Filter(..) => false,
            Node::Binary {
                op: RootOp::Spanset(_) | RootOp::Cmp(CmpOp::Gt | CmpOp::Lt),
                ..
            }
            | Node::Paren(..) => has_wrapped_pipeline(inner),
            // A single non-spanset stage in parentheses, e.g. `(count() > 1)`.
            _ => true,
        },
        Node::Binary {
            op: RootOp::Spanset(_) | RootOp::Cmp(CmpOp::Gt | CmpOp::Lt),
            lhs,
            rhs,
            ..
        } => has_wrapped_pipeline(lhs) || has_wrapped_pipeline(rhs),
        _ => false,
    }
}

/// spansetPipelineExpression: parenthesised pipelines joined by spanset operators.
fn pipeline_expr(node: &Node) -> Shaped<PipelineExpr> {
    match node {
        Node::Paren(inner, _) => match &**inner {
            Node::Binary { .. } | Node::Paren(..) if has_wrapped_pipeline(inner) => {
                pipeline_expr(inner)
            }
            inner => Ok(PipelineExpr::Wrapped(pipeline(inner)?)),
        },
        Node::Binary { op, lhs, rhs, pos } => {
            let op = spanset_op(*op, *pos)?;
            Ok(PipelineExpr::Op {
                op,
                lhs: Box::new(pipeline_expr(lhs)?),
                rhs: Box::new(pipeline_expr(rhs)?),
            })
        }
        other => err(
            other.pos(),
            "next to a pipeline in parentheses, the other operand must be in parentheses too",
        ),
    }
}

/// Scalar filter operands: aggregates and numbers joined by arithmetic; constant
/// sub-expressions are folded here, as Tempo does.
fn scalar_expr(node: &Node) -> Shaped<ScalarExpr> {
    match node {
        Node::Aggregate(a) => Ok(ScalarExpr::Aggregate(a.clone())),
        Node::Number(value, _) => Ok(ScalarExpr::Static(value.clone())),
        Node::Paren(inner, _) => scalar_expr(inner),
        Node::Neg(inner, pos) => {
            let inner = scalar_expr(inner)?;
            match inner {
                ScalarExpr::Static(value) => Ok(ScalarExpr::Static(fold(
                    ArithOp::Sub,
                    &Static::Int(0),
                    &value,
                    *pos,
                )?)),
                other => Ok(ScalarExpr::Binary {
                    op: ArithOp::Sub,
                    lhs: Box::new(ScalarExpr::Static(Static::Int(0))),
                    rhs: Box::new(other),
                }),
            }
        }
        Node::Binary {
            op: RootOp::Arith(op),
            lhs,
            rhs,
            pos,
        } => {
            let lhs = scalar_expr(lhs)?;
            let rhs = scalar_expr(rhs)?;
            for side in [&lhs, &rhs] {
                if let ScalarExpr::Static(Static::Duration(_)) = side {
                    return err(
                        *pos,
                        "a duration cannot be used as an operand of scalar arithmetic",
                    );
                }
            }
            match (&lhs, &rhs) {
                (ScalarExpr::Static(a), ScalarExpr::Static(b)) => {
                    Ok(ScalarExpr::Static(fold(*op, a, b, *pos)?))
                }
                _ => Ok(ScalarExpr::Binary {
                    op: *op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                }),
            }
        }
        other => err(
            other.pos(),
            "a scalar filter compares aggregates such as count() or avg(duration) with numbers",
        ),
    }
}

/// Folds `a op b` for two numeric constants: integer arithmetic when both are integers (with
/// truncating division), floating point otherwise.
fn fold(op: ArithOp, a: &Static, b: &Static, pos: Pos) -> Shaped<Static> {
    let overflow = || ShapeError {
        pos,
        message: "integer overflow in constant arithmetic".into(),
    };
    match (a, b) {
        (Static::Int(x), Static::Int(y)) => {
            let (x, y) = (*x, *y);
            if y == 0 && matches!(op, ArithOp::Div | ArithOp::Mod) {
                return err(pos, "division by zero in constant arithmetic");
            }
            let value = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div => x.checked_div(y),
                ArithOp::Mod => x.checked_rem(y),
                ArithOp::Pow => u32::try_from(y).ok().and_then(|y| x.checked_pow(y)),
            };
            value.map(Static::Int).ok_or_else(overflow)
        }
        (a, b) => {
            let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) else {
                return err(pos, "constant arithmetic needs numbers");
            };
            if y == 0.0 && matches!(op, ArithOp::Div | ArithOp::Mod) {
                return err(pos, "division by zero in constant arithmetic");
            }
            Ok(Static::Float(match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => x / y,
                ArithOp::Mod => x % y,
                ArithOp::Pow => x.powf(y),
            }))
        }
    }
}

fn as_f64(value: &Static) -> Option<f64> {
    match value {
        Static::Int(n) => Some(*n as f64),
        Static::Float(f) => Some(*f),
        _ => None,
    }
}

/// `(pipeline | aggregate)` possibly joined by arithmetic: the operands of a scalar
/// pipeline filter.
fn is_scalar_pipeline_expr(node: &Node) -> bool {
    match node {
        Node::Paren(inner, _) => match &**inner {
            Node::Pipe(stages) => matches!(stages.last(), Some(Node::Aggregate(_))),
            other => is_scalar_pipeline_expr(other),
        },
        Node::Binary {
            op: RootOp::Arith(_),
            lhs,
            rhs,
            ..
        } => is_scalar_pipeline_expr(lhs) && is_scalar_pipeline_expr(rhs),
        _ => false,
    }
}

fn scalar_pipeline_expr(node: &Node) -> Shaped<ScalarPipelineExpr> {
    match node {
        Node::Paren(inner, _) => match &**inner {
            Node::Pipe(stages) => {
                let (last, init) = stages.split_last().expect("a pipe has stages");
                let Node::Aggregate(aggregate) = last else {
                    return err(last.pos(), "expected an aggregate");
                };
                let init = if init.len() == 1 {
                    init[0].clone()
                } else {
                    Node::Pipe(init.to_vec())
                };
                Ok(ScalarPipelineExpr::Wrapped {
                    pipeline: pipeline(&init)?,
                    aggregate: aggregate.clone(),
                })
            }
            other => scalar_pipeline_expr(other),
        },
        Node::Binary {
            op: RootOp::Arith(op),
            lhs,
            rhs,
            ..
        } => Ok(ScalarPipelineExpr::Binary {
            op: *op,
            lhs: Box::new(scalar_pipeline_expr(lhs)?),
            rhs: Box::new(scalar_pipeline_expr(rhs)?),
        }),
        other => err(other.pos(), "expected (pipeline | aggregate)"),
    }
}

/// Splits trailing comparisons off a metrics stage: `rate() > 1 <= 5` → (`rate()`, [> 1, <= 5]).
fn peel_filters(node: &Node) -> Shaped<(&Node, Vec<SecondStage>)> {
    let mut filters = Vec::new();
    let mut core = node;
    while let Node::Binary {
        op: RootOp::Cmp(op),
        lhs,
        rhs,
        pos,
    } = core
    {
        filters.push(SecondStage::Filter {
            op: *op,
            value: metrics_filter_value(rhs)?,
            pos: *pos,
        });
        core = lhs;
    }
    filters.reverse();
    Ok((core, filters))
}

/// The number a metrics result is compared with: a literal (a duration counts in seconds
/// later), or constant arithmetic without durations.
fn metrics_filter_value(node: &Node) -> Shaped<Static> {
    match node {
        Node::Number(value, _) => Ok(value.clone()),
        _ => match metrics_math(node)? {
            MetricsExpr::Scalar(value) => Ok(value),
            _ => err(
                node.pos(),
                "a metrics filter compares with a number, e.g. > 10",
            ),
        },
    }
}

/// A stage after the metrics function: `topk(k)` / `bottomk(k)` with optional filters.
fn second_stage(node: &Node, out: &mut Vec<SecondStage>) -> Shaped<()> {
    let (core, filters) = peel_filters(node)?;
    match core {
        Node::TopK(k, pos) => out.push(SecondStage::TopK { k: *k, pos: *pos }),
        Node::BottomK(k, pos) => out.push(SecondStage::BottomK { k: *k, pos: *pos }),
        other => {
            return err(
                other.pos(),
                "after a metrics function only topk(), bottomk() and comparisons may follow",
            );
        }
    }
    out.extend(filters);
    Ok(())
}

/// The whole metrics query: a pipeline ending in a metrics function, or arithmetic over
/// parenthesised ones, then the second-stage chain.
fn metrics_query(node: Node) -> Shaped<MetricsQuery> {
    let stages = stages_of(&node);
    let (first_core, first_filters) = peel_filters(stages[0])?;
    if stages.len() == 1 || !matches!(first_core, Node::Filter(..)) && is_metrics_math(first_core) {
        // Arithmetic (or a parenthesised metrics pipeline) first; the rest are second stages.
        let expr = metrics_math(first_core)?;
        if matches!(expr, MetricsExpr::Scalar(_)) {
            return err(
                node.pos(),
                "metrics arithmetic needs a (pipeline | metrics function) operand",
            );
        }
        let mut second = first_filters;
        for stage in &stages[1..] {
            second_stage(stage, &mut second)?;
        }
        return Ok(MetricsQuery {
            expr,
            second_stage: second,
        });
    }
    Ok(MetricsQuery {
        expr: metrics_pipeline(&stages)?,
        second_stage: Vec::new(),
    })
}

fn is_metrics_math(node: &Node) -> bool {
    match node {
        Node::Paren(inner, _) => contains_metrics(inner),
        Node::Binary {
            op: RootOp::Arith(_),
            lhs,
            rhs,
            ..
        } => is_metrics_math(lhs) || is_metrics_math(rhs),
        _ => false,
    }
}

/// `stage | … | metricsFunction [filters] { | topk/bottomk [filters] }`
fn metrics_pipeline(stages: &[&Node]) -> Shaped<MetricsExpr> {
    let Some(index) = stages.iter().position(|s| contains_metrics(s)) else {
        return err(stages[0].pos(), "expected a metrics function");
    };
    let (core, filters) = peel_filters(stages[index])?;
    let aggregate = match core {
        Node::Metrics(m) => m.clone(),
        Node::TopK(_, pos) | Node::BottomK(_, pos) => {
            return err(
                *pos,
                "topk() and bottomk() need a metrics function before them, e.g. { } | rate() | topk(5)",
            );
        }
        Node::Binary {
            op: RootOp::Arith(_),
            pos,
            ..
        } => {
            return err(
                *pos,
                "metrics arithmetic needs each metrics pipeline in parentheses, e.g. ({ } | rate()) * 100",
            );
        }
        other => {
            return err(
                other.pos(),
                "a metrics function must be a whole pipeline stage",
            );
        }
    };
    if index == 0 {
        return err(
            aggregate.pos,
            "a metrics function needs a spanset pipeline before it, e.g. { } | rate()",
        );
    }
    let init = if index == 1 {
        stages[0].clone()
    } else {
        Node::Pipe(stages[..index].iter().map(|s| (*s).clone()).collect())
    };
    if contains_metrics(&init) {
        return err(
            init.pos(),
            "a metrics function must be the last stage of a spanset pipeline",
        );
    }
    let mut second = filters;
    for stage in &stages[index + 1..] {
        second_stage(stage, &mut second)?;
    }
    Ok(MetricsExpr::Pipeline {
        pipeline: pipeline(&init)?,
        aggregate,
        second_stage: second,
    })
}

/// Arithmetic over parenthesised metrics pipelines and numbers (`+ - * /` only).
fn metrics_math(node: &Node) -> Shaped<MetricsExpr> {
    match node {
        Node::Number(Static::Duration(_), pos) => err(
            *pos,
            "a duration cannot be used as a scalar operand in metrics arithmetic",
        ),
        Node::Number(value, _) => Ok(MetricsExpr::Scalar(value.clone())),
        Node::Neg(inner, pos) => match metrics_math(inner)? {
            MetricsExpr::Scalar(value) => Ok(MetricsExpr::Scalar(fold(
                ArithOp::Sub,
                &Static::Int(0),
                &value,
                *pos,
            )?)),
            other => Ok(MetricsExpr::Binary {
                op: ArithOp::Mul,
                lhs: Box::new(MetricsExpr::Scalar(Static::Int(-1))),
                rhs: Box::new(other),
            }),
        },
        Node::Paren(inner, _) if contains_metrics(inner) => match &**inner {
            Node::Pipe(_) => metrics_pipeline(&stages_of(inner)),
            other => metrics_math(other),
        },
        Node::Paren(inner, _) => metrics_math(inner),
        Node::Binary {
            op: RootOp::Arith(op),
            lhs,
            rhs,
            pos,
        } => {
            if matches!(op, ArithOp::Mod | ArithOp::Pow) {
                return err(
                    *pos,
                    format!("'{}' is not a metrics operator; use + - * /", op.symbol()),
                );
            }
            let lhs = metrics_math(lhs)?;
            let rhs = metrics_math(rhs)?;
            match (&lhs, &rhs) {
                (MetricsExpr::Scalar(a), MetricsExpr::Scalar(b)) => {
                    Ok(MetricsExpr::Scalar(fold(*op, a, b, *pos)?))
                }
                _ => Ok(MetricsExpr::Binary {
                    op: *op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                }),
            }
        }
        Node::Binary {
            op: RootOp::Spanset(op),
            pos,
            ..
        } => err(
            *pos,
            format!("'{}' cannot combine metrics; use + - * /", op.symbol()),
        ),
        Node::Binary { pos, .. } => err(*pos, "comparisons go after the whole metrics expression"),
        Node::Metrics(m) => err(
            m.pos,
            "metrics arithmetic needs each metrics pipeline in parentheses, e.g. ({ } | rate()) * 100",
        ),
        other => err(
            other.pos(),
            "metrics arithmetic combines (pipeline | metrics function) operands and numbers",
        ),
    }
}
