//! An analyzer rule that drops `IS TRUE` from the top of filter predicates.
//!
//! The planner lowers TraceQL comparisons as `(a = b) IS TRUE`, so that a missing attribute
//! compares false and `!`/`||` keep TraceQL's two-valued logic. At the top of a filter (and
//! under its `AND`s and `OR`s) the wrapper changes nothing, since a filter keeps only rows
//! whose predicate is true, but it hides the comparison from Parquet pruning: DataFusion
//! builds no pruning predicate (row-group statistics, page index) from `x IS TRUE`. Without
//! it, `span.http.route = '/cart'` prunes like any SQL filter.

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::{BinaryExpr, Expr, Filter, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

#[derive(Debug, Default)]
pub struct FilterTruth;

impl AnalyzerRule for FilterTruth {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up(|node| match node {
            LogicalPlan::Filter(filter) => {
                let (predicate, changed) = without_is_true(filter.predicate.clone());
                if !changed {
                    return Ok(Transformed::no(LogicalPlan::Filter(filter)));
                }
                Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
                    predicate,
                    filter.input,
                )?)))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "filter_truth"
    }
}

/// `predicate` with `IS TRUE` removed where only its truth matters: at the top and under
/// `AND`/`OR`. Whether anything changed.
fn without_is_true(predicate: Expr) -> (Expr, bool) {
    match predicate {
        Expr::IsTrue(inner) => (without_is_true(*inner).0, true),
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::And | Operator::Or) =>
        {
            let (left, left_changed) = without_is_true(*left);
            let (right, right_changed) = without_is_true(*right);
            (
                Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right))),
                left_changed || right_changed,
            )
        }
        other => (other, false),
    }
}
