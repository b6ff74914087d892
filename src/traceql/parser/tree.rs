//! The loose tree the top-level parser (`root`) builds and `shape` turns into the AST.

use super::super::ast::{
    Aggregate, ArithOp, CmpOp, FieldExpr, FieldRef, MetricsAggregate, Pos, SpansetOp, Static,
};

/// An expression at the top level before its meaning is settled.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Filter(FieldExpr, Pos),
    Paren(Box<Node>, Pos),
    Pipe(Vec<Node>),
    Binary {
        op: RootOp,
        lhs: Box<Node>,
        rhs: Box<Node>,
        pos: Pos,
    },
    Neg(Box<Node>, Pos),
    Number(Static, Pos),
    Aggregate(Aggregate),
    GroupBy(FieldExpr, Pos),
    Coalesce(Pos),
    Select(Vec<FieldRef>, Pos),
    Metrics(MetricsAggregate),
    TopK(i64, Pos),
    BottomK(i64, Pos),
}

impl Node {
    pub(crate) fn pos(&self) -> Pos {
        match self {
            Node::Filter(_, p)
            | Node::Paren(_, p)
            | Node::Neg(_, p)
            | Node::Number(_, p)
            | Node::GroupBy(_, p)
            | Node::Coalesce(p)
            | Node::Select(_, p)
            | Node::TopK(_, p)
            | Node::BottomK(_, p) => *p,
            Node::Binary { pos, .. } => *pos,
            Node::Pipe(stages) => stages[0].pos(),
            Node::Aggregate(a) => a.pos,
            Node::Metrics(m) => m.pos,
        }
    }
}

/// Operators between top-level expressions. `>` and `<` stay comparisons here; `shape`
/// reads them as child/parent when both sides are spansets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RootOp {
    Spanset(SpansetOp),
    Cmp(CmpOp),
    Arith(ArithOp),
}
