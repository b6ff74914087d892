//! The tag catalog: per block, for every scope, the attribute keys with their value types and a
//! bounded set of the most frequent values, plus the intrinsic values Grafana lists (span names,
//! kinds, statuses, event names). Written beside the block so tag and tag-value discovery
//! never scans span data; catalogs of many blocks merge in memory.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use serde::{Deserialize, Serialize};

use super::schema::{AttrKind, AttrKinds, kind_name, status_name};

/// Distinct values tracked per key and type while a block is written; beyond this the key is
/// marked truncated (its listed values are then a sample of the most frequent early ones).
const MAX_TRACKED_VALUES: usize = 1000;
/// Values kept per key in the written catalog.
pub const TOP_VALUES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagScope {
    Resource,
    Span,
    Event,
    Link,
    /// The instrumentation scope (`instrumentation.` in TraceQL).
    Instrumentation,
}

impl TagScope {
    pub const ALL: [TagScope; 5] = [
        TagScope::Resource,
        TagScope::Span,
        TagScope::Event,
        TagScope::Link,
        TagScope::Instrumentation,
    ];
}

/// A typed attribute value as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum TagValue {
    String(String),
    Int(i64),
    Float(#[serde(with = "json_float")] f64),
    Bool(bool),
}

/// JSON has no NaN or infinities (serde_json writes them as `null`, which then cannot be read
/// back), so they are written with protobuf JSON's names: `"NaN"`, `"Infinity"`, `"-Infinity"`.
mod json_float {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        match crate::float_text::non_finite_name(*value) {
            Some(name) => serializer.serialize_str(name),
            None => serializer.serialize_f64(*value),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum NumberOrName {
            Number(f64),
            Name(String),
        }
        match NumberOrName::deserialize(deserializer)? {
            NumberOrName::Number(value) => Ok(value),
            NumberOrName::Name(name) => {
                crate::float_text::parse_non_finite(&name).ok_or_else(|| {
                    D::Error::custom(format!(
                        "expected a number, \"NaN\", \"Infinity\" or \"-Infinity\", found {name:?}"
                    ))
                })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueCount {
    #[serde(flatten)]
    pub value: TagValue,
    pub count: u64,
}

/// One attribute key of one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub key: String,
    /// How many times the key occurred.
    pub count: u64,
    /// Value types seen: `string`, `int`, `float`, `bool`, `array`, `kvlist`, `bytes`, `other`.
    pub types: Vec<String>,
    /// Most frequent scalar values, most frequent first.
    pub values: Vec<ValueCount>,
    /// More distinct values exist than are listed.
    pub truncated: bool,
}

/// The catalog of one block (or of many, merged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagCatalog {
    pub scopes: BTreeMap<TagScope, Vec<KeyEntry>>,
    /// Intrinsic values: `name`, `kind`, `status`, `event:name`.
    pub intrinsics: BTreeMap<String, Vec<ValueCount>>,
}

#[derive(Default)]
struct KeyStats {
    count: u64,
    types: u8,
    strings: HashMap<String, u64>,
    ints: HashMap<i64, u64>,
    floats: HashMap<u64, u64>,
    bools: [u64; 2],
    truncated: bool,
}

const TYPE_NAMES: [&str; 8] = [
    "string", "int", "float", "bool", "array", "kvlist", "bytes", "other",
];

fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K, truncated: &mut bool) {
    let len = map.len();
    match map.get_mut(&key) {
        Some(count) => *count += 1,
        None if len < MAX_TRACKED_VALUES => {
            map.insert(key, 1);
        }
        None => *truncated = true,
    }
}

/// Collects a catalog while spans are appended.
#[derive(Default)]
pub struct CatalogBuilder {
    scopes: [HashMap<String, KeyStats>; 5],
    span_names: HashMap<String, u64>,
    span_names_truncated: bool,
    event_names: HashMap<String, u64>,
    event_names_truncated: bool,
    kinds: HashMap<i32, u64>,
    statuses: HashMap<i32, u64>,
}

impl CatalogBuilder {
    pub fn observe(&mut self, scope: TagScope, kv: &KeyValue) {
        let keys = &mut self.scopes[scope as usize];
        let stats = match keys.get_mut(kv.key.as_str()) {
            Some(stats) => stats,
            None => keys.entry(kv.key.clone()).or_default(),
        };
        stats.count += 1;
        let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
        let type_bit = match value {
            Some(Value::StringValue(s)) => {
                match stats.strings.get_mut(s.as_str()) {
                    Some(c) => *c += 1,
                    None => bump(&mut stats.strings, s.clone(), &mut stats.truncated),
                }
                0
            }
            Some(Value::IntValue(i)) => {
                bump(&mut stats.ints, *i, &mut stats.truncated);
                1
            }
            Some(Value::DoubleValue(f)) => {
                bump(&mut stats.floats, f.to_bits(), &mut stats.truncated);
                2
            }
            Some(Value::BoolValue(b)) => {
                stats.bools[*b as usize] += 1;
                3
            }
            Some(Value::ArrayValue(_)) => 4,
            Some(Value::KvlistValue(_)) => 5,
            Some(Value::BytesValue(_)) => 6,
            Some(Value::StringValueStrindex(_)) | None => 7,
        };
        stats.types |= 1 << type_bit;
    }

    pub fn observe_span(&mut self, name: &str, kind: i32, status: i32) {
        match self.span_names.get_mut(name) {
            Some(c) => *c += 1,
            None => bump(
                &mut self.span_names,
                name.to_string(),
                &mut self.span_names_truncated,
            ),
        }
        *self.kinds.entry(kind).or_default() += 1;
        *self.statuses.entry(status).or_default() += 1;
    }

    pub fn observe_event_name(&mut self, name: &str) {
        match self.event_names.get_mut(name) {
            Some(c) => *c += 1,
            None => bump(
                &mut self.event_names,
                name.to_string(),
                &mut self.event_names_truncated,
            ),
        }
    }

    pub fn finish(self) -> TagCatalog {
        let mut catalog = TagCatalog::default();
        for (scope, keys) in TagScope::ALL.into_iter().zip(self.scopes) {
            let mut entries: Vec<KeyEntry> = keys
                .into_iter()
                .map(|(key, stats)| {
                    let mut values: Vec<ValueCount> = Vec::new();
                    values.extend(stats.strings.into_iter().map(|(v, count)| ValueCount {
                        value: TagValue::String(v),
                        count,
                    }));
                    values.extend(stats.ints.into_iter().map(|(v, count)| ValueCount {
                        value: TagValue::Int(v),
                        count,
                    }));
                    values.extend(stats.floats.into_iter().map(|(v, count)| ValueCount {
                        value: TagValue::Float(f64::from_bits(v)),
                        count,
                    }));
                    for (b, count) in [(false, stats.bools[0]), (true, stats.bools[1])] {
                        if count > 0 {
                            values.push(ValueCount {
                                value: TagValue::Bool(b),
                                count,
                            });
                        }
                    }
                    let truncated = stats.truncated || values.len() > TOP_VALUES;
                    top_values(&mut values);
                    KeyEntry {
                        key,
                        count: stats.count,
                        types: (0..8)
                            .filter(|bit| stats.types & (1 << bit) != 0)
                            .map(|bit| TYPE_NAMES[bit].to_string())
                            .collect(),
                        values,
                        truncated,
                    }
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            catalog.scopes.insert(scope, entries);
        }
        let strings = |map: HashMap<String, u64>| {
            let mut values: Vec<ValueCount> = map
                .into_iter()
                .map(|(v, count)| ValueCount {
                    value: TagValue::String(v),
                    count,
                })
                .collect();
            top_values(&mut values);
            values
        };
        let named = |map: HashMap<i32, u64>, name: fn(i32) -> std::borrow::Cow<'static, str>| {
            strings(
                map.into_iter()
                    .map(|(k, count)| (name(k).into_owned(), count))
                    .collect(),
            )
        };
        catalog
            .intrinsics
            .insert("name".into(), strings(self.span_names));
        catalog
            .intrinsics
            .insert("kind".into(), named(self.kinds, kind_name));
        catalog
            .intrinsics
            .insert("status".into(), named(self.statuses, status_name));
        if !self.event_names.is_empty() {
            catalog
                .intrinsics
                .insert("event:name".into(), strings(self.event_names));
        }
        catalog
    }
}

/// A total order on values, for stable ties: by type, then by value.
fn tie_break(a: &TagValue, b: &TagValue) -> std::cmp::Ordering {
    use TagValue::*;
    match (a, b) {
        (String(x), String(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.total_cmp(y),
        (Bool(x), Bool(y)) => x.cmp(y),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn type_rank(value: &TagValue) -> u8 {
    match value {
        TagValue::String(_) => 0,
        TagValue::Int(_) => 1,
        TagValue::Float(_) => 2,
        TagValue::Bool(_) => 3,
    }
}

fn value_order(a: &ValueCount, b: &ValueCount) -> std::cmp::Ordering {
    b.count
        .cmp(&a.count)
        .then_with(|| tie_break(&a.value, &b.value))
}

/// Most frequent first, ties in a stable order, at most [`TOP_VALUES`].
fn top_values(values: &mut Vec<ValueCount>) {
    values.sort_by(value_order);
    values.truncate(TOP_VALUES);
}

impl TagCatalog {
    /// Adds another catalog's keys and counts into this one.
    pub fn merge(&mut self, other: &TagCatalog) {
        for (scope, entries) in &other.scopes {
            let mine = self.scopes.entry(*scope).or_default();
            for entry in entries {
                match mine.binary_search_by(|e| e.key.cmp(&entry.key)) {
                    Ok(i) => {
                        let target = &mut mine[i];
                        target.count += entry.count;
                        for t in &entry.types {
                            if !target.types.contains(t) {
                                target.types.push(t.clone());
                            }
                        }
                        let before = target.values.len() + entry.values.len();
                        merge_values(&mut target.values, &entry.values);
                        target.truncated |= entry.truncated || before > TOP_VALUES;
                    }
                    Err(i) => mine.insert(i, entry.clone()),
                }
            }
        }
        for (name, values) in &other.intrinsics {
            merge_values(self.intrinsics.entry(name.clone()).or_default(), values);
        }
    }

    /// The maps the values of `key` in `scope` are stored in; none where it never occurs.
    pub fn kinds(&self, scope: TagScope, key: &str) -> AttrKinds {
        let keys = self.keys(scope);
        let Ok(i) = keys.binary_search_by(|e| e.key.as_str().cmp(key)) else {
            return AttrKinds::NONE;
        };
        keys[i].types.iter().fold(AttrKinds::NONE, |kinds, name| {
            kinds.with(match name.as_str() {
                "string" => AttrKind::Str,
                "int" => AttrKind::Int,
                "float" => AttrKind::Float,
                "bool" => AttrKind::Bool,
                // Arrays, lists, bytes and values of no type are stored as JSON text.
                _ => AttrKind::Other,
            })
        })
    }

    /// Whether `key` in `scope` may have the string `value`: false only where the key never
    /// occurs, or all its values are listed (fewer than [`TOP_VALUES`]) and `value` is not.
    pub fn may_hold_string(&self, scope: TagScope, key: &str, value: &str) -> bool {
        let keys = self.keys(scope);
        let Ok(i) = keys.binary_search_by(|e| e.key.as_str().cmp(key)) else {
            return false;
        };
        let entry = &keys[i];
        entry.truncated
            || entry
                .values
                .iter()
                .any(|v| matches!(&v.value, TagValue::String(s) if s == value))
    }

    /// About the bytes it holds in memory: what bounds caches of catalogs.
    pub fn memory_size(&self) -> usize {
        let value = |v: &ValueCount| {
            std::mem::size_of::<ValueCount>()
                + match &v.value {
                    TagValue::String(s) => s.len(),
                    _ => 0,
                }
        };
        let keys: usize = self
            .scopes
            .values()
            .flatten()
            .map(|entry| {
                std::mem::size_of::<KeyEntry>()
                    + entry.key.len()
                    + entry.types.iter().map(|t| t.len() + 24).sum::<usize>()
                    + entry.values.iter().map(value).sum::<usize>()
            })
            .sum();
        let intrinsics: usize = self
            .intrinsics
            .iter()
            .map(|(name, values)| name.len() + values.iter().map(value).sum::<usize>())
            .sum();
        std::mem::size_of::<Self>() + keys + intrinsics
    }

    pub fn keys(&self, scope: TagScope) -> &[KeyEntry] {
        self.scopes
            .get(&scope)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

fn merge_values(into: &mut Vec<ValueCount>, from: &[ValueCount]) {
    for value in from {
        // By total order, so a NaN value finds itself.
        let same = |v: &&mut ValueCount| tie_break(&v.value, &value.value).is_eq();
        match into.iter_mut().find(same) {
            Some(existing) => existing.count += value.count,
            None => into.push(value.clone()),
        }
    }
    top_values(into);
}
