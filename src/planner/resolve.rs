//! Name resolution: what the stored spans say about an attribute before any of them is read.
//! An attribute has no declared type, so without this a filter on `.a` reads every typed map
//! of the span and the resource; with it, only the maps (and dedicated columns) that hold
//! `a` somewhere in the data the query reads.

use crate::storage::catalog::TagScope;
use crate::storage::schema::AttrKinds;

/// What is known of the stored spans without reading them, beyond the span table's schema.
/// The read path implements it over the blocks' tag catalogs and metas.
pub trait StoredSpans: Send + Sync {
    /// Dedicated columns that every block has: an attribute with one is read from the column
    /// alone, without falling back to the generic maps (which statistics cannot prune).
    fn complete_columns(&self) -> &[String];

    /// The maps the values of attribute `name` of `scope` are stored in: none where no span
    /// has it, every map where that is not known.
    fn attribute_kinds(&self, scope: TagScope, name: &str) -> AttrKinds;

    /// Whether attribute `name` of `scope` may have the string `value` in some stored span:
    /// false only where that is known (every value of the attribute is listed, and `value`
    /// is not among them), so `name = value` can match nothing.
    fn may_hold_string(&self, scope: TagScope, name: &str, value: &str) -> bool {
        let _ = (scope, name, value);
        true
    }
}

/// Nothing known: every attribute may be in every map, and no dedicated column is complete.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unknown;

impl StoredSpans for Unknown {
    fn complete_columns(&self) -> &[String] {
        &[]
    }

    fn attribute_kinds(&self, _: TagScope, _: &str) -> AttrKinds {
        AttrKinds::ALL
    }
}
