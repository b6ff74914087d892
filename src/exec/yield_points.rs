//! Yield points where DataFusion's own operators have none, so a cancelled query stops soon.
//!
//! A query is cancelled by dropping its future, which takes effect when its task next yields.
//! A sort pulls its whole input in one loop; when that input is itself a sort and a window
//! working on batches already in memory, nothing in the loop waits, and the whole stage runs
//! in one poll. Pipelines (`by()`, aggregates, `select()`) stack sorts and windows like that,
//! so every sort's input is made to spend Tokio's task budget per batch ([`CooperativeExec`])
//! and yield when it runs out.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::sorts::sort::SortExec;

/// Puts a [`CooperativeExec`] between every [`SortExec`] and its input.
#[derive(Debug, Default)]
pub struct YieldInSortInputs;

impl PhysicalOptimizerRule for YieldInSortInputs {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !node.is::<SortExec>() {
                return Ok(Transformed::no(node));
            }
            let children: Vec<Arc<dyn ExecutionPlan>> = node
                .children()
                .into_iter()
                .map(|child| match child.is::<CooperativeExec>() {
                    true => child.clone(),
                    false => Arc::new(CooperativeExec::new(child.clone())) as _,
                })
                .collect();
            Ok(Transformed::yes(replace_children_if_necessary(
                node, children,
            )?))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "yield_in_sort_inputs"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
