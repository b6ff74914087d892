//! Tag discovery: the attribute names and values Grafana offers while a query is typed. They
//! come from the tag catalogs; with a filter, from the spans it matches, where span data can
//! answer better than the catalogs.

use std::collections::{BTreeSet, HashMap};

use super::error::ReadError;
use super::request::TimeRange;
use super::runner::QueryRunner;
use super::search::AttrValue;
use super::sources::QuerySources;
use super::values;
use crate::storage::TagCatalog;
use crate::storage::catalog::{TagScope, TagValue};
use crate::traceql::ast::{
    AttributeScope, BinaryOp, CmpOp, FieldExpr, FieldRef, Intrinsic, Static,
};

/// The intrinsics tag discovery lists, as Tempo lists them.
pub const INTRINSIC_TAGS: [&str; 25] = [
    "duration",
    "event:name",
    "event:timeSinceStart",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "link:spanID",
    "link:traceID",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

/// The scopes a tag request lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scopes {
    /// Every attribute scope, and the intrinsics.
    All,
    /// The intrinsics alone.
    Intrinsic,
    Only(TagScope),
}

impl Scopes {
    /// Tempo's `scope` parameter.
    pub fn parse(name: &str) -> Result<Self, ReadError> {
        Ok(match name {
            "" | "none" | "all" => Scopes::All,
            "intrinsic" => Scopes::Intrinsic,
            "resource" => Scopes::Only(TagScope::Resource),
            "span" => Scopes::Only(TagScope::Span),
            "event" => Scopes::Only(TagScope::Event),
            "link" => Scopes::Only(TagScope::Link),
            "instrumentation" => Scopes::Only(TagScope::Instrumentation),
            other => {
                return Err(ReadError::Invalid(format!(
                    "invalid scope {other:?}: expected resource, span, event, link, instrumentation, intrinsic or none"
                )));
            }
        })
    }

    /// Whether attribute names of `scope` are listed.
    pub fn lists(self, scope: TagScope) -> bool {
        match self {
            Scopes::All => true,
            Scopes::Intrinsic => false,
            Scopes::Only(only) => only == scope,
        }
    }
}

pub fn scope_name(scope: TagScope) -> &'static str {
    match scope {
        TagScope::Resource => "resource",
        TagScope::Span => "span",
        TagScope::Event => "event",
        TagScope::Link => "link",
        TagScope::Instrumentation => "instrumentation",
    }
}

/// A request for attribute names.
#[derive(Debug, Clone)]
pub struct TagsRequest {
    pub scopes: Scopes,
    /// Only the names on the spans this matches (Grafana's `q`, repaired while typed).
    pub filter: Option<FieldExpr>,
    pub range: Option<TimeRange>,
}

/// A request for the values of one field.
#[derive(Debug, Clone)]
pub struct TagValuesRequest {
    pub field: FieldRef,
    /// Only the values on the spans this matches.
    pub filter: Option<FieldExpr>,
    pub range: Option<TimeRange>,
}

/// What an answer read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Tag catalogs: of this many blocks, this large, and of live data.
    Catalogs { blocks: usize, block_bytes: u64 },
    /// Span data, this many bytes of it.
    Spans { inspected_bytes: u64 },
    /// Nothing: the filter itself answers.
    Nothing,
}

/// Attribute names by scope name (`span`, `resource`, …).
pub struct TagNames {
    pub scopes: HashMap<&'static str, BTreeSet<String>>,
    pub read: Read,
}

/// Values with their types as Tempo's v2 API names them (`string`, `int`, `float`, `bool`,
/// `keyword`), most frequent first.
pub struct TagValues {
    pub values: Vec<(&'static str, String)>,
    pub read: Read,
}

/// What tag requests read, and where queries over span data run.
pub struct TagSources<'a> {
    pub sources: &'a QuerySources,
    pub runner: &'a QueryRunner,
    pub tenant: &'a str,
}

impl TagSources<'_> {
    /// The attribute names of the request's scopes: on the spans the filter matches when it
    /// has one, else (or where the filter cannot be planned, as Tempo does) from the catalogs.
    pub async fn names(&self, request: &TagsRequest) -> Result<TagNames, ReadError> {
        let nanos = request.range.map(TimeRange::nanos);
        if let Some(filter) = &request.filter {
            let source = self.sources.session(self.tenant)?;
            let (filter, start, end) = (filter.clone(), nanos.map(|r| r.0), nanos.map(|r| r.1));
            let work = async move { values::tag_names(&source, Some(&filter), start, end).await };
            match self
                .runner
                .admit_and_run(self.tenant, work)
                .await
                .map_err(ReadError::from)
            {
                Ok(found) => {
                    return Ok(TagNames {
                        scopes: found.scopes.into_iter().collect(),
                        read: Read::Spans {
                            inspected_bytes: found.inspected_bytes,
                        },
                    });
                }
                Err(ReadError::Invalid(_)) => {}
                Err(other) => return Err(other),
            }
        }
        let merged = self.sources.tag_catalog(self.tenant, nanos).await?;
        let scopes = TagScope::ALL
            .into_iter()
            .map(|scope| {
                let keys = merged.catalog.keys(scope).iter().map(|k| k.key.clone());
                (scope_name(scope), keys.collect())
            })
            .collect();
        Ok(TagNames {
            scopes,
            read: Read::Catalogs {
                blocks: merged.blocks,
                block_bytes: merged.block_bytes,
            },
        })
    }

    /// The values of the request's field: narrowed by the filter where span data can answer
    /// (see [`Self::narrowed`]), else from the catalogs.
    pub async fn values(&self, request: &TagValuesRequest) -> Result<TagValues, ReadError> {
        if let Some(filter) = &request.filter
            && let Some(narrowed) = self.narrowed(request, filter).await?
        {
            return Ok(narrowed);
        }
        let nanos = request.range.map(TimeRange::nanos);
        let merged = self.sources.tag_catalog(self.tenant, nanos).await?;
        Ok(TagValues {
            values: catalog_values(&merged.catalog, &request.field),
            read: Read::Catalogs {
                blocks: merged.blocks,
                block_bytes: merged.block_bytes,
            },
        })
    }

    /// The values of the field on the spans `filter` matches; `None` where the catalog
    /// answers as well (statuses and kinds have fixed lists, durations none) or span data
    /// cannot (a filter that cannot be planned, or event and link fields: a span has many).
    async fn narrowed(
        &self,
        request: &TagValuesRequest,
        filter: &FieldExpr,
    ) -> Result<Option<TagValues>, ReadError> {
        let field = &request.field;
        if let FieldRef::Intrinsic(
            Intrinsic::Status | Intrinsic::Kind | Intrinsic::Duration | Intrinsic::TraceDuration,
        ) = field
        {
            return Ok(None);
        }
        // `{ .a = "x" && … }` asks for the values of `.a`: only "x" can match.
        if let Some(value) = required_value(filter, field) {
            return Ok(Some(TagValues {
                values: vec![value],
                read: Read::Nothing,
            }));
        }
        let source = self.sources.session(self.tenant)?;
        let nanos = request.range.map(TimeRange::nanos);
        let (filter, field) = (filter.clone(), field.clone());
        let (start, end) = (nanos.map(|r| r.0), nanos.map(|r| r.1));
        let work =
            async move { values::field_values(&source, Some(&filter), &field, start, end).await };
        match self
            .runner
            .admit_and_run(self.tenant, work)
            .await
            .map_err(ReadError::from)
        {
            Ok(found) => Ok(Some(TagValues {
                values: found.values.iter().map(typed_attr_value).collect(),
                read: Read::Spans {
                    inspected_bytes: found.inspected_bytes,
                },
            })),
            Err(ReadError::Invalid(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

/// The values of `field` the catalog lists, typed.
fn catalog_values(catalog: &TagCatalog, field: &FieldRef) -> Vec<(&'static str, String)> {
    let typed = |v: &TagValue| match v {
        TagValue::String(s) => ("string", s.clone()),
        TagValue::Int(i) => ("int", i.to_string()),
        TagValue::Float(f) => ("float", crate::float_text::to_text(*f)),
        TagValue::Bool(b) => ("bool", b.to_string()),
    };
    let attribute = |scopes: &[TagScope], name: &str| {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for scope in scopes {
            if let Some(entry) = catalog.keys(*scope).iter().find(|k| k.key == name) {
                for v in &entry.values {
                    let t = typed(&v.value);
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
        }
        out
    };
    let intrinsic = |key: &str| -> Vec<(&'static str, String)> {
        catalog
            .intrinsics
            .get(key)
            .map(|values| values.iter().map(|v| typed(&v.value)).collect())
            .unwrap_or_default()
    };
    let keywords = |words: &[&str]| words.iter().map(|w| ("keyword", w.to_string())).collect();
    match field {
        FieldRef::Attribute(a) => match a.scope {
            AttributeScope::None => attribute(&TagScope::ALL, &a.name),
            AttributeScope::Span => attribute(&[TagScope::Span], &a.name),
            AttributeScope::Resource => attribute(&[TagScope::Resource], &a.name),
            AttributeScope::Event => attribute(&[TagScope::Event], &a.name),
            AttributeScope::Link => attribute(&[TagScope::Link], &a.name),
            AttributeScope::Instrumentation => attribute(&[TagScope::Instrumentation], &a.name),
        },
        FieldRef::Intrinsic(i) => match i {
            Intrinsic::Status => keywords(&["ok", "error", "unset"]),
            Intrinsic::Kind => keywords(&[
                "client",
                "server",
                "producer",
                "consumer",
                "internal",
                "unspecified",
            ]),
            Intrinsic::Name => intrinsic("name"),
            Intrinsic::EventName => intrinsic("event:name"),
            Intrinsic::TraceRootService => attribute(&[TagScope::Resource], "service.name"),
            _ => Vec::new(),
        },
    }
}

/// The literal `field` must equal for `filter` to match: a `field = literal` among the
/// filter's `&&` conditions.
fn required_value(filter: &FieldExpr, field: &FieldRef) -> Option<(&'static str, String)> {
    match filter {
        FieldExpr::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
            ..
        } => required_value(lhs, field).or_else(|| required_value(rhs, field)),
        FieldExpr::Binary {
            op: BinaryOp::Cmp(CmpOp::Eq),
            lhs,
            rhs,
            ..
        } => match (lhs.as_ref(), rhs.as_ref()) {
            (FieldExpr::Field(f, _), FieldExpr::Static(s))
            | (FieldExpr::Static(s), FieldExpr::Field(f, _))
                if f == field =>
            {
                typed_static(s)
            }
            _ => None,
        },
        _ => None,
    }
}

fn typed_static(s: &Static) -> Option<(&'static str, String)> {
    Some(match s {
        Static::String(v) => ("string", v.clone()),
        Static::Int(v) => ("int", v.to_string()),
        Static::Float(v) => ("float", crate::float_text::to_text(*v)),
        Static::Bool(v) => ("bool", v.to_string()),
        _ => return None,
    })
}

fn typed_attr_value(v: &AttrValue) -> (&'static str, String) {
    match v {
        AttrValue::String(s) => ("string", s.clone()),
        AttrValue::Int(i) => ("int", i.to_string()),
        AttrValue::Float(f) => ("float", crate::float_text::to_text(*f)),
        AttrValue::Bool(b) => ("bool", b.to_string()),
    }
}
