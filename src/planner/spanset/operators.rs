//! Spanset operators: `&&`, `||` and the structural ones. `||` of plain filters is one filter,
//! `>`/`<` are hash semi joins on the nested-set parent, the others [`StructuralJoin`]s.

use std::sync::Arc;

use datafusion::common::{Column, JoinType, Result, internal_err};
use datafusion::functions_aggregate::bool_and_or::bool_or_udaf;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, Extension, LogicalPlan, LogicalPlanBuilder, WindowFunctionDefinition,
    expr::WindowFunction, lit,
};

use crate::planner::field::{ident, reads_elements};
use crate::planner::structural::{Keep, Relation, STRUCTURE_COLUMNS, StructuralJoin};
use crate::storage::schema;
use crate::traceql::ast::{BinaryOp, FieldExpr, SpansetExpr, SpansetOp};

use super::{Planner, SPANSET_KEY};

impl Planner {
    /// A spanset expression over the spans of `input`.
    pub(super) fn spanset(&self, expr: &SpansetExpr, input: &LogicalPlan) -> Result<LogicalPlan> {
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
    pub(super) fn plain_filters_op(
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
    pub(super) fn spanset_op(
        &self,
        op: SpansetOp,
        l: LogicalPlan,
        r: LogicalPlan,
    ) -> Result<LogicalPlan> {
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
    pub(super) fn in_spansets_of_both(
        &self,
        l: LogicalPlan,
        r: LogicalPlan,
    ) -> Result<LogicalPlan> {
        structural_join(Keep::SameSpanset, l, r)
    }

    /// The spans of `r` that stand in `rel` to a span of `l` in their spanset. Child and
    /// parent are equalities, so hash joins; the others a [`StructuralJoin`], which needs
    /// only the structure columns of `l`.
    pub(super) fn related(
        &self,
        rel: Relation,
        l: LogicalPlan,
        r: LogicalPlan,
    ) -> Result<LogicalPlan> {
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
    pub(super) fn not_related(
        &self,
        rel: Relation,
        l: LogicalPlan,
        r: LogicalPlan,
    ) -> Result<LogicalPlan> {
        structural_join(Keep::Unrelated(rel), structure_only(l)?, r)
    }

    /// `l &>> r` and friends: the spans of `r` in `rel` to a span of `l`, and those of `l` in
    /// the inverse relation to a span of `r`, each once.
    pub(super) fn related_both_ways(
        &self,
        rel: Relation,
        l: LogicalPlan,
        r: LogicalPlan,
    ) -> Result<LogicalPlan> {
        structural_join(Keep::BothWays(rel), l, r)
    }

    /// The spans of `kept` whose parent (child, with `Parent`) is a span of `other` in the
    /// same spanset: a hash join on the nested-set parent.
    pub(super) fn parent_join(
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
    pub(super) fn union_distinct(&self, a: LogicalPlan, b: LogicalPlan) -> Result<LogicalPlan> {
        let exprs: Vec<Expr> = self.core_columns().map(|c| ident(&c)).collect();
        self.each_span_once(LogicalPlanBuilder::from(a).union(b)?, exprs)
    }
}

/// A [`StructuralJoin`] of `l` and `r`.
pub(super) fn structural_join(keep: Keep, l: LogicalPlan, r: LogicalPlan) -> Result<LogicalPlan> {
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(StructuralJoin::try_new(keep, l, r)?),
    }))
}

/// `plan` narrowed to what a [`StructuralJoin`] reads of a side whose spans it only looks up.
pub(super) fn structure_only(plan: LogicalPlan) -> Result<LogicalPlan> {
    LogicalPlanBuilder::from(plan)
        .project(STRUCTURE_COLUMNS.map(ident))?
        .build()
}

/// The filters of `expr` when it is plain filters combined by `op` alone (`&&` or `||`).
pub(super) fn plain_filters(expr: &SpansetExpr, op: SpansetOp) -> Option<Vec<&FieldExpr>> {
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
pub(super) fn conjuncts(expr: &FieldExpr) -> Vec<&FieldExpr> {
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
