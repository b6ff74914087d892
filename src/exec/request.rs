//! Search requests as every surface decodes them: HTTP parameters and gRPC messages become
//! the same [`SearchRequest`], which is checked and compiled here, once.

use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::error::ReadError;
use super::search::{DEFAULT_LIMIT, DEFAULT_SPSS, MAX_SPSS, SearchOptions};
use crate::traceql::ast::{
    Attribute, AttributeScope, BinaryOp, CmpOp, FieldExpr, FieldRef, Intrinsic, Pipeline, Pos,
    Query, RootExpr, SpansetExpr, Stage, Static, Status,
};

/// Tempo's `max_result_limit`.
pub const MAX_LIMIT: usize = 262_144;
/// Tempo's longest search range.
const MAX_RANGE_SECONDS: i64 = 168 * 3600;

/// A closed range of Unix seconds, its end after its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    /// Both ends or neither.
    pub fn new(start: Option<i64>, end: Option<i64>) -> Result<Option<Self>, ReadError> {
        match (start, end) {
            (Some(start), Some(end)) if end <= start => {
                let time = |s: i64| {
                    Utc.timestamp_opt(s, 0)
                        .single()
                        .map_or_else(|| s.to_string(), |t| t.to_string())
                };
                Err(ReadError::Invalid(format!(
                    "invalid time range: end ({}) must be after start ({})",
                    time(end),
                    time(start)
                )))
            }
            (Some(start), Some(end)) => Ok(Some(Self { start, end })),
            (None, None) => Ok(None),
            _ => Err(ReadError::invalid("give both start and end, or neither")),
        }
    }

    /// The range, if it is no longer than Tempo searches.
    pub fn searchable(self) -> Result<Self, ReadError> {
        let Self { start, end } = self;
        if end - start > MAX_RANGE_SECONDS {
            return Err(ReadError::Invalid(format!(
                "range specified by start and end exceeds 168h0m0s. received start={start} end={end}"
            )));
        }
        Ok(self)
    }

    /// The range in Unix nanoseconds, inclusive.
    pub fn nanos(self) -> (i64, i64) {
        let nanos = |s: i64| s.saturating_mul(1_000_000_000);
        (nanos(self.start), nanos(self.end))
    }
}

/// What a search asks for, as decoded from the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: SearchQuery,
    /// Traces to return; `None` for the default.
    pub limit: Option<usize>,
    /// Spans per spanset to return; `None` or 0 for the default.
    pub spss: Option<usize>,
    pub range: Option<TimeRange>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SearchQuery {
    TraceQl(String),
    Tags(TagSearch),
}

/// Tempo's search form from before TraceQL: tags a span must all have, and bounds on its
/// trace's duration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagSearch {
    pub tags: Vec<(String, String)>,
    pub min_duration: Option<Duration>,
    pub max_duration: Option<Duration>,
}

impl SearchRequest {
    /// The query, validated, and the options, within Tempo's limits.
    pub fn compile(&self) -> Result<(Query, SearchOptions), ReadError> {
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(0) => return Err(ReadError::invalid("invalid limit 0: must be at least 1")),
            Some(n) if n > MAX_LIMIT => {
                return Err(ReadError::Invalid(format!(
                    "limit {n} exceeds max limit {MAX_LIMIT}"
                )));
            }
            Some(n) => n,
        };
        let spss = match self.spss {
            None | Some(0) => DEFAULT_SPSS,
            Some(n) if n > MAX_SPSS => {
                return Err(ReadError::Invalid(format!(
                    "spans per spanset {n} exceeds max {MAX_SPSS}"
                )));
            }
            Some(n) => n,
        };
        let range = self.range.map(TimeRange::searchable).transpose()?;
        let query = match &self.query {
            SearchQuery::TraceQl(text) => crate::traceql::compile(text)?,
            SearchQuery::Tags(tags) => {
                let query = tags.to_query()?;
                crate::traceql::validate(&query)?;
                query
            }
        };
        let range = range.map(TimeRange::nanos);
        Ok((
            query,
            SearchOptions {
                limit,
                spss,
                start: range.map(|r| r.0),
                end: range.map(|r| r.1),
                ..SearchOptions::default()
            },
        ))
    }
}

impl TagSearch {
    /// The span filter that means the same: one `=` per tag and the duration bounds, `&&`ed.
    pub fn to_query(&self) -> Result<Query, ReadError> {
        let mut conditions = Vec::new();
        for (key, value) in &self.tags {
            let string = || Static::String(value.clone());
            let (field, value) = match key.as_str() {
                "name" => (FieldRef::Intrinsic(Intrinsic::Name), string()),
                "status.code" => (FieldRef::Intrinsic(Intrinsic::Status), status(value)?),
                "service.name" => (attribute(AttributeScope::Resource, key), string()),
                "root.service.name" => (FieldRef::Intrinsic(Intrinsic::TraceRootService), string()),
                "root.name" => (FieldRef::Intrinsic(Intrinsic::TraceRootName), string()),
                _ => (
                    attribute(AttributeScope::None, key),
                    value.parse().map_or_else(|_| string(), Static::Int),
                ),
            };
            conditions.push(compare(CmpOp::Eq, field, value));
        }
        for (bound, op) in [
            (self.min_duration, CmpOp::Gte),
            (self.max_duration, CmpOp::Lte),
        ] {
            if let Some(bound) = bound {
                let nanos = i64::try_from(bound.as_nanos()).unwrap_or(i64::MAX);
                let field = FieldRef::Intrinsic(Intrinsic::TraceDuration);
                conditions.push(compare(op, field, Static::Duration(nanos)));
            }
        }
        let expr = conditions
            .into_iter()
            .reduce(|lhs, rhs| FieldExpr::Binary {
                op: BinaryOp::And,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                pos: Pos::default(),
            })
            .unwrap_or(FieldExpr::Static(Static::Bool(true)));
        Ok(Query {
            expr: RootExpr::Pipeline(Pipeline {
                stages: vec![Stage::Spanset(SpansetExpr::Filter {
                    expr,
                    pos: Pos::default(),
                })],
            }),
            hints: Vec::new(),
        })
    }
}

fn attribute(scope: AttributeScope, name: &str) -> FieldRef {
    FieldRef::Attribute(Attribute {
        scope,
        parent: false,
        name: name.to_string(),
    })
}

fn compare(op: CmpOp, field: FieldRef, value: Static) -> FieldExpr {
    FieldExpr::Binary {
        op: BinaryOp::Cmp(op),
        lhs: Box::new(FieldExpr::Field(field, Pos::default())),
        rhs: Box::new(FieldExpr::Static(value)),
        pos: Pos::default(),
    }
}

fn status(value: &str) -> Result<Static, ReadError> {
    Ok(Static::Status(match value {
        "error" => Status::Error,
        "ok" => Status::Ok,
        "unset" => Status::Unset,
        other => {
            return Err(ReadError::Invalid(format!(
                "invalid status.code {other:?}: expected error, ok or unset"
            )));
        }
    }))
}
