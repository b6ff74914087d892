//! Span filters, and those over a span's events or links: such a filter unnests the span's
//! events (links) first and keeps each span once.

use datafusion::common::{Column, Result, UnnestOptions};
use datafusion::functions_nested::expr_fn::cardinality;
use datafusion::functions_window::row_number::row_number_udwf;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, WindowFunctionDefinition,
    expr::WindowFunction, lit, when,
};

use crate::planner::field::{ident, reads_elements};
use crate::storage::schema;
use crate::traceql::ast::FieldExpr;

use super::operators::conjuncts;
use super::{Planner, SPANSET_KEY};

impl Planner {
    pub(super) fn filter(&self, input: LogicalPlan, expr: &FieldExpr) -> Result<LogicalPlan> {
        // A condition no stored span meets: nothing to read (the optimizer drops the scan).
        let fields = self.fields();
        if conjuncts(expr).into_iter().any(|c| fields.never_equal(c)) {
            return LogicalPlanBuilder::from(input).filter(lit(false))?.build();
        }
        let (events, links) = reads_elements(expr);
        if events || links {
            return self.element_filter(input, expr, events, links);
        }
        let predicate = self.fields().lower(expr)?.is_true();
        LogicalPlanBuilder::from(input).filter(predicate)?.build()
    }

    /// A filter that reads event or link fields keeps a span when one of its events (links)
    /// makes it true, every event field of the filter read from that same event. A span with
    /// no events (links) is tried once, with those fields nil. The lists are unnested, so the
    /// rows are (span, event, link); the filter picks rows, then each span is kept once.
    pub(super) fn element_filter(
        &self,
        input: LogicalPlan,
        expr: &FieldExpr,
        events: bool,
        links: bool,
    ) -> Result<LogicalPlan> {
        // Conditions on the span alone are applied before the unnest (and reach the scan).
        let (span_only, on_elements): (Vec<&FieldExpr>, Vec<&FieldExpr>) = conjuncts(expr)
            .into_iter()
            .partition(|c| reads_elements(c) == (false, false));
        let mut input = LogicalPlanBuilder::from(input);
        for condition in span_only {
            input = input.filter(self.fields().lower(condition)?.is_true())?;
        }
        let input = input.build()?;
        let columns: Vec<Expr> = input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let mut exprs = columns.clone();
        let mut unnested = Vec::new();
        let mut element = |read: bool, list: &str| -> Result<Option<String>> {
            if !read {
                return Ok(None);
            }
            let name = self.fresh(list);
            // An empty list as null, so that unnesting keeps the span (with a null element).
            exprs.push(
                when(cardinality(ident(list)).gt(lit(0u64)), ident(list))
                    .end()?
                    .alias(&name),
            );
            unnested.push(name.clone());
            Ok(Some(name))
        };
        let event = element(events, schema::EVENTS)?;
        let link = element(links, schema::LINKS)?;
        let mut builder = LogicalPlanBuilder::from(input).project(exprs)?;
        for name in unnested {
            builder = builder.unnest_column_with_options(
                Column::from_name(name),
                UnnestOptions::new().with_preserve_nulls(true),
            )?;
        }
        let fields = self
            .fields()
            .with_elements(event.as_deref().map(ident), link.as_deref().map(ident));
        let predicate = on_elements
            .into_iter()
            .map(|c| Ok(fields.lower(c)?.is_true()))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .reduce(Expr::and)
            .expect("the filter reads events or links");
        self.each_span_once(builder.filter(predicate)?, columns)
    }

    /// The first row of each span of each spanset of `input`, as `columns`.
    pub(super) fn each_span_once(
        &self,
        input: LogicalPlanBuilder,
        columns: Vec<Expr>,
    ) -> Result<LogicalPlan> {
        let first = self.fresh("first");
        let numbered = Expr::WindowFunction(Box::new(WindowFunction::new(
            WindowFunctionDefinition::WindowUDF(row_number_udwf()),
            vec![],
        )))
        .partition_by(vec![
            ident(schema::TRACE_ID),
            ident(SPANSET_KEY),
            ident(schema::SPAN_ID),
        ])
        .build()?
        .alias(&first);
        input
            .window(vec![numbered])?
            .filter(ident(&first).eq(lit(1u64)))?
            .project(columns)?
            .build()
    }
}
