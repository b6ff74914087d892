//! One walk over the TraceQL AST, in the manner of `syn::visit`: a [`Visit`] implementation
//! overrides the methods of the nodes it cares about and calls the matching `walk_*` function
//! to descend further (or does not, to skip a subtree). Every default method descends, so an
//! analysis names only the nodes it looks at.

use super::ast::{
    Aggregate, FieldExpr, FieldRef, MetricsAggregate, MetricsExpr, MetricsFn, Pipeline,
    PipelineExpr, Query, RootExpr, ScalarExpr, ScalarPipelineExpr, SpansetExpr, Stage,
};

pub trait Visit<'a> {
    fn visit_query(&mut self, query: &'a Query) {
        walk_query(self, query);
    }

    fn visit_pipeline(&mut self, pipeline: &'a Pipeline) {
        walk_pipeline(self, pipeline);
    }

    fn visit_pipeline_expr(&mut self, expr: &'a PipelineExpr) {
        walk_pipeline_expr(self, expr);
    }

    fn visit_stage(&mut self, stage: &'a Stage) {
        walk_stage(self, stage);
    }

    fn visit_spanset(&mut self, expr: &'a SpansetExpr) {
        walk_spanset(self, expr);
    }

    fn visit_scalar(&mut self, expr: &'a ScalarExpr) {
        walk_scalar(self, expr);
    }

    fn visit_aggregate(&mut self, aggregate: &'a Aggregate) {
        walk_aggregate(self, aggregate);
    }

    fn visit_metrics_aggregate(&mut self, aggregate: &'a MetricsAggregate) {
        walk_metrics_aggregate(self, aggregate);
    }

    fn visit_field_expr(&mut self, expr: &'a FieldExpr) {
        walk_field_expr(self, expr);
    }

    fn visit_field_ref(&mut self, _field: &'a FieldRef) {}
}

pub fn walk_query<'a, V: Visit<'a> + ?Sized>(v: &mut V, query: &'a Query) {
    match &query.expr {
        RootExpr::Pipeline(p) => v.visit_pipeline(p),
        RootExpr::PipelineExpr(p) => v.visit_pipeline_expr(p),
        RootExpr::ScalarPipelineFilter(f) => {
            walk_scalar_pipeline(v, &f.lhs);
            walk_scalar_pipeline(v, &f.rhs);
        }
        RootExpr::Metrics(m) => walk_metrics(v, &m.expr),
    }
}

fn walk_scalar_pipeline<'a, V: Visit<'a> + ?Sized>(v: &mut V, expr: &'a ScalarPipelineExpr) {
    match expr {
        ScalarPipelineExpr::Wrapped {
            pipeline,
            aggregate,
        } => {
            v.visit_pipeline(pipeline);
            v.visit_aggregate(aggregate);
        }
        ScalarPipelineExpr::Binary { lhs, rhs, .. } => {
            walk_scalar_pipeline(v, lhs);
            walk_scalar_pipeline(v, rhs);
        }
        ScalarPipelineExpr::Static(_) => {}
    }
}

fn walk_metrics<'a, V: Visit<'a> + ?Sized>(v: &mut V, expr: &'a MetricsExpr) {
    match expr {
        MetricsExpr::Pipeline {
            pipeline,
            aggregate,
            ..
        } => {
            v.visit_pipeline(pipeline);
            v.visit_metrics_aggregate(aggregate);
        }
        MetricsExpr::Scalar(_) => {}
        MetricsExpr::Binary { lhs, rhs, .. } => {
            walk_metrics(v, lhs);
            walk_metrics(v, rhs);
        }
    }
}

pub fn walk_pipeline<'a, V: Visit<'a> + ?Sized>(v: &mut V, pipeline: &'a Pipeline) {
    for stage in &pipeline.stages {
        v.visit_stage(stage);
    }
}

pub fn walk_pipeline_expr<'a, V: Visit<'a> + ?Sized>(v: &mut V, expr: &'a PipelineExpr) {
    match expr {
        PipelineExpr::Wrapped(p) => v.visit_pipeline(p),
        PipelineExpr::Op { lhs, rhs, .. } => {
            v.visit_pipeline_expr(lhs);
            v.visit_pipeline_expr(rhs);
        }
    }
}

pub fn walk_stage<'a, V: Visit<'a> + ?Sized>(v: &mut V, stage: &'a Stage) {
    match stage {
        Stage::Spanset(s) => v.visit_spanset(s),
        Stage::ScalarFilter(f) => {
            v.visit_scalar(&f.lhs);
            v.visit_scalar(&f.rhs);
        }
        Stage::GroupBy { expr, .. } => v.visit_field_expr(expr),
        Stage::Coalesce => {}
        Stage::Select { fields, .. } => fields.iter().for_each(|f| v.visit_field_ref(f)),
    }
}

pub fn walk_spanset<'a, V: Visit<'a> + ?Sized>(v: &mut V, expr: &'a SpansetExpr) {
    match expr {
        SpansetExpr::Filter { expr, .. } => v.visit_field_expr(expr),
        SpansetExpr::Op { lhs, rhs, .. } => {
            v.visit_spanset(lhs);
            v.visit_spanset(rhs);
        }
    }
}

pub fn walk_scalar<'a, V: Visit<'a> + ?Sized>(v: &mut V, expr: &'a ScalarExpr) {
    match expr {
        ScalarExpr::Aggregate(a) => v.visit_aggregate(a),
        ScalarExpr::Static(_) => {}
        ScalarExpr::Binary { lhs, rhs, .. } => {
            v.visit_scalar(lhs);
            v.visit_scalar(rhs);
        }
    }
}

pub fn walk_aggregate<'a, V: Visit<'a> + ?Sized>(v: &mut V, aggregate: &'a Aggregate) {
    if let Some(arg) = &aggregate.arg {
        v.visit_field_expr(arg);
    }
}

pub fn walk_metrics_aggregate<'a, V: Visit<'a> + ?Sized>(
    v: &mut V,
    aggregate: &'a MetricsAggregate,
) {
    match &aggregate.func {
        MetricsFn::Rate | MetricsFn::CountOverTime => {}
        MetricsFn::MinOverTime(f)
        | MetricsFn::MaxOverTime(f)
        | MetricsFn::AvgOverTime(f)
        | MetricsFn::SumOverTime(f)
        | MetricsFn::QuantileOverTime(f, _)
        | MetricsFn::HistogramOverTime(f) => v.visit_field_ref(f),
        MetricsFn::Compare { filter, .. } => v.visit_field_expr(filter),
    }
    aggregate.by.iter().for_each(|f| v.visit_field_ref(f));
}

pub fn walk_field_expr<'a, V: Visit<'a> + ?Sized>(v: &mut V, expr: &'a FieldExpr) {
    match expr {
        FieldExpr::Static(_) => {}
        FieldExpr::Field(f, _) => v.visit_field_ref(f),
        FieldExpr::Binary { lhs, rhs, .. } => {
            v.visit_field_expr(lhs);
            v.visit_field_expr(rhs);
        }
        FieldExpr::Unary { expr, .. } => v.visit_field_expr(expr),
    }
}
