//! [`StructuralJoin`]: the logical node of TraceQL's structural operators (other than plain
//! `>` and `<`, which are hash joins) and of `&&` between spansets.
//!
//! Both inputs are spanset relations: the span table's columns and [`SPANSET_KEY`]. The node
//! keeps spans of one side by how they stand, in the nested-set tree of their trace, to spans
//! of the other side in the same spanset. `exec::structural` runs it as a hash join on the
//! spanset whose build side is indexed by nested-set position, so a trace of n spans costs
//! O(n log n) and neither side is sorted.

use std::fmt;

use datafusion::common::{DFSchemaRef, Result, internal_err};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

use super::SPANSET_KEY;
use crate::storage::schema;

/// The columns the node reads on both sides besides those it passes through.
pub const STRUCTURE_COLUMNS: [&str; 6] = [
    schema::TRACE_ID,
    SPANSET_KEY,
    schema::SPAN_ID,
    schema::NESTED_SET_LEFT,
    schema::NESTED_SET_RIGHT,
    schema::NESTED_SET_PARENT,
];

/// How a kept span stands to a span of the other side. Spans outside the nested set
/// (left = 0) are in no relation, except that a child's own position does not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Hash)]
pub enum Relation {
    /// The kept span's parent is on the other side.
    Child,
    /// The kept span is the parent of one on the other side.
    Parent,
    /// An ancestor of the kept span is on the other side.
    Descendant,
    /// The kept span is an ancestor of one on the other side.
    Ancestor,
    /// Another span on the other side has the kept span's parent.
    Sibling,
}

impl Relation {
    /// The relation seen from the other side.
    pub fn inverse(self) -> Self {
        match self {
            Self::Child => Self::Parent,
            Self::Parent => Self::Child,
            Self::Descendant => Self::Ancestor,
            Self::Ancestor => Self::Descendant,
            Self::Sibling => Self::Sibling,
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Child => "child",
            Self::Parent => "parent",
            Self::Descendant => "descendant",
            Self::Ancestor => "ancestor",
            Self::Sibling => "sibling",
        })
    }
}

/// Which spans the node keeps, of `l` (the left operand) and `r` (the right one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Hash)]
pub enum Keep {
    /// `l >> r` and friends: the spans of `r` in the relation to a span of `l`.
    Related(Relation),
    /// `l !>> r` and friends: the spans of `r` in the relation to no span of `l`, in
    /// spansets where `l` has spans.
    Unrelated(Relation),
    /// `l &>> r` and friends: the spans of `r` in the relation to a span of `l`, and those
    /// of `l` in the inverse relation to a span of `r`, each once.
    BothWays(Relation),
    /// `l && r`: the spans of both, in spansets where both have spans, each once.
    SameSpanset,
}

impl Keep {
    /// Whether spans of `l` are in the output (so `l` carries every output column).
    pub fn outputs_left(self) -> bool {
        matches!(self, Self::BothWays(_) | Self::SameSpanset)
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Related(rel) => write!(f, "right {rel} of left"),
            Self::Unrelated(rel) => write!(f, "right not {rel} of left"),
            Self::BothWays(rel) => {
                write!(f, "right {rel} of left, left {} of right", rel.inverse())
            }
            Self::SameSpanset => write!(f, "both in spansets of both"),
        }
    }
}

/// Spans of `l` and `r` kept by how they stand to each other (see [`Keep`]). The output has
/// `r`'s schema; rows of `l` are matched to it by column name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Hash)]
pub struct StructuralJoin {
    keep: Keep,
    l: LogicalPlan,
    r: LogicalPlan,
}

impl StructuralJoin {
    pub fn try_new(keep: Keep, l: LogicalPlan, r: LogicalPlan) -> Result<Self> {
        for (side, plan) in [("left", &l), ("right", &r)] {
            for column in STRUCTURE_COLUMNS {
                if plan.schema().field_with_unqualified_name(column).is_err() {
                    return internal_err!("the {side} side of a structural join has no {column}");
                }
            }
        }
        if keep.outputs_left() {
            for field in r.schema().fields() {
                match l.schema().field_with_unqualified_name(field.name()) {
                    Ok(f) if f.data_type() == field.data_type() => {}
                    _ => {
                        return internal_err!(
                            "the left side of a structural join has no column {} of type {}",
                            field.name(),
                            field.data_type()
                        );
                    }
                }
            }
        }
        Ok(Self { keep, l, r })
    }

    pub fn keep(&self) -> Keep {
        self.keep
    }

    /// Indices in `plan`'s schema of `names`, `None` if one is missing.
    fn indices<'a>(
        plan: &LogicalPlan,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Option<Vec<usize>> {
        let schema = plan.schema();
        let mut out: Vec<usize> = names
            .into_iter()
            .map(|name| schema.index_of_column_by_name(None, name))
            .collect::<Option<_>>()?;
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}

impl UserDefinedLogicalNodeCore for StructuralJoin {
    fn name(&self) -> &str {
        "StructuralJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.l, &self.r]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.r.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StructuralJoin: {}", self.keep)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let Ok([l, r]) = <[LogicalPlan; 2]>::try_from(inputs) else {
            return internal_err!("a structural join has two inputs");
        };
        Self::try_new(self.keep, l, r)
    }

    /// `r` supplies the output columns, `l` too when its spans are output; both supply the
    /// structure columns.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let r_schema = self.r.schema();
        let output: Vec<&str> = output_columns
            .iter()
            .map(|i| r_schema.field(*i).name().as_str())
            .collect();
        let needed = |plan: &LogicalPlan, with_output: bool| {
            let extra = if with_output { &output[..] } else { &[] };
            Self::indices(
                plan,
                STRUCTURE_COLUMNS.into_iter().chain(extra.iter().copied()),
            )
        };
        Some(vec![
            needed(&self.l, self.keep.outputs_left())?,
            needed(&self.r, true)?,
        ])
    }
}
