//! Pipelines: the stages after a spanset (`| count() > 1`, `| by(…)`, `| coalesce()`,
//! `| select(…)`) and spanset operators between parenthesised pipelines. Aggregates are window
//! functions over the spanset; `by()` extends the spanset key.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::functions::string::expr_fn::concat;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, WindowFunctionDefinition, cast,
    expr::WindowFunction, lit,
};

use crate::planner::field::{Value, compare, ident, static_value};
use crate::storage::schema;
use crate::traceql::ast::{
    AggregateFn, CmpOp, FieldExpr, Pipeline, PipelineExpr, ScalarExpr, ScalarFilter, SpansetExpr,
    Stage,
};

use super::{OutputValue, Planner, Rel, SPANSET_KEY, ValueColumns, columns_of};

impl Planner {
    pub(super) fn pipeline_expr(&self, expr: &PipelineExpr) -> Result<Rel> {
        match expr {
            PipelineExpr::Wrapped(p) => self.pipeline(p, self.base()?),
            PipelineExpr::Op { op, lhs, rhs } => {
                let l = self.pipeline_expr(lhs)?;
                let r = self.pipeline_expr(rhs)?;
                let plan = self.spanset_op(*op, self.core(l)?, self.core(r)?)?;
                Ok(Rel {
                    plan,
                    attrs: vec![],
                })
            }
        }
    }

    pub(super) fn pipeline(&self, pipeline: &Pipeline, input: LogicalPlan) -> Result<Rel> {
        let mut rel = Rel {
            plan: input,
            attrs: vec![],
        };
        for stage in &pipeline.stages {
            rel = match stage {
                Stage::Spanset(SpansetExpr::Filter { expr, .. }) => Rel {
                    plan: self.filter(rel.plan, expr)?,
                    attrs: rel.attrs,
                },
                Stage::Spanset(expr) => Rel {
                    plan: self.spanset(expr, &self.core(rel)?)?,
                    attrs: vec![],
                },
                Stage::ScalarFilter(f) => self.scalar_filter(rel, f)?,
                Stage::GroupBy { expr, .. } => self.group_by(rel, expr)?,
                Stage::Coalesce => {
                    let exprs: Vec<Expr> = self
                        .core_columns()
                        .map(|c| {
                            if c == SPANSET_KEY {
                                lit("").alias(SPANSET_KEY)
                            } else {
                                ident(&c)
                            }
                        })
                        .collect();
                    Rel {
                        plan: LogicalPlanBuilder::from(rel.plan).project(exprs)?.build()?,
                        attrs: vec![],
                    }
                }
                // Selected fields are added to the result's spans at the end.
                Stage::Select { .. } => rel,
            };
        }
        Ok(rel)
    }

    /// `| count() > 2` and friends: the aggregate over each spanset as a window, then a filter.
    pub(super) fn scalar_filter(&self, rel: Rel, f: &ScalarFilter) -> Result<Rel> {
        let (agg, op, value) = match (&f.lhs, &f.rhs) {
            (ScalarExpr::Aggregate(a), ScalarExpr::Static(s)) => (a, f.op, s),
            (ScalarExpr::Static(s), ScalarExpr::Aggregate(a)) => (a, mirror(f.op), s),
            _ => return reject!("scalar filters other than `aggregate op number`"),
        };
        let name = self.fresh("agg");
        let (udaf, arg, duration) = match (agg.func, &agg.arg) {
            (AggregateFn::Count, _) => (count_udaf(), lit(1i64), false),
            (func, Some(arg)) => {
                let v = self.fields().lower(arg)?;
                // Validation has refused arguments that cannot be numbers; one that has no
                // numeric value in the data aggregates to null, which compares false.
                let number = v
                    .as_float()
                    .unwrap_or(lit(datafusion::scalar::ScalarValue::Float64(None)));
                let udaf = match func {
                    AggregateFn::Avg => avg_udaf(),
                    AggregateFn::Min => min_udaf(),
                    AggregateFn::Max => max_udaf(),
                    AggregateFn::Sum => sum_udaf(),
                    AggregateFn::Count => unreachable!("count has no argument"),
                };
                (udaf, number, v.duration)
            }
            (func, None) => return reject!("{}() needs an argument", func.name()),
        };
        let window = Expr::WindowFunction(Box::new(WindowFunction::new(
            WindowFunctionDefinition::AggregateUDF(udaf),
            vec![arg],
        )))
        .partition_by(vec![ident(schema::TRACE_ID), ident(SPANSET_KEY)])
        .build()?
        .alias(&name);
        let mut columns = ValueColumns {
            duration,
            ..ValueColumns::default()
        };
        let result = if agg.func == AggregateFn::Count {
            columns.int = Some(name.clone());
            Value {
                int: Some(ident(&name)),
                ..Value::default()
            }
        } else {
            columns.float = Some(name.clone());
            Value {
                float: Some(ident(&name)),
                ..Value::default()
            }
        };
        let predicate = compare(op, &result, &static_value(value));
        let plan = LogicalPlanBuilder::from(rel.plan)
            .window(vec![window])?
            .filter(predicate)?
            .build()?;
        let mut attrs = rel.attrs;
        attrs.push(OutputValue {
            key: agg.to_string(),
            columns,
        });
        Ok(Rel { plan, attrs })
    }

    /// `| by(expr)`: each spanset split by the value of `expr`.
    pub(super) fn group_by(&self, rel: Rel, expr: &FieldExpr) -> Result<Rel> {
        let value = self.fields().lower(expr)?;
        let key = group_key(&value);
        let (value_exprs, columns) = self.value_columns(&value);
        let mut exprs: Vec<Expr> = self
            .core_columns()
            .map(|c| {
                if c == SPANSET_KEY {
                    concat(vec![ident(SPANSET_KEY), lit("\u{1f}"), key.clone()]).alias(SPANSET_KEY)
                } else {
                    ident(&c)
                }
            })
            .collect();
        for attr in &rel.attrs {
            exprs.extend(columns_of(&attr.columns).map(|c| ident(c)));
        }
        exprs.extend(value_exprs);
        let plan = LogicalPlanBuilder::from(rel.plan).project(exprs)?.build()?;
        let mut attrs = rel.attrs;
        attrs.push(OutputValue {
            key: format!("by({expr})"),
            columns,
        });
        Ok(Rel { plan, attrs })
    }
}

pub(super) fn mirror(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Lte => CmpOp::Gte,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Gte => CmpOp::Lte,
        other => other,
    }
}

/// A string that is equal exactly when the values are (type included), for grouping.
pub(super) fn group_key(value: &Value) -> Expr {
    // `||` is null when the value is (`concat` would treat it as empty), so `coalesce` picks
    // the type the value has.
    let tagged = |tag: &str, e: &Option<Expr>| {
        e.as_ref().map(|e| {
            Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
                Box::new(lit(tag.to_string())),
                datafusion::logical_expr::Operator::StringConcat,
                Box::new(cast(e.clone(), DataType::Utf8)),
            ))
        })
    };
    let keys: Vec<Expr> = [
        tagged("s", &value.str),
        tagged("i", &value.int),
        tagged("f", &value.float),
        tagged("b", &value.bool),
        tagged("t", &value.status),
        tagged("k", &value.kind),
        tagged("o", &value.other),
        Some(lit("nil")),
    ]
    .into_iter()
    .flatten()
    .collect();
    datafusion::functions::core::expr_fn::coalesce(keys)
}
