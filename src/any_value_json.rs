//! OTLP attribute values as protobuf JSON, both ways, NaN and infinities included.
//!
//! Protobuf JSON writes a double that a JSON number cannot hold as a string (`"NaN"`,
//! `"Infinity"`, `"-Infinity"`) and may write any double as a string, but the serde decoder
//! generated for OTLP reads numbers only (and its encoder fails on NaN). Writing goes through
//! [`to_json`]; reading goes through [`SpecialDoubles`]: strings become numbers, and the three
//! special values travel through the decoder as numbers the document does not contain, to be
//! put back after it.

use std::collections::HashSet;

use serde::Deserialize;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use serde_json::{Value as Json, json};

/// The deepest attribute value accepted: arrays and key-value lists nested this many levels.
/// Ingest refuses deeper values, so every later stage that recurses through a value
/// (protobuf and JSON decoding, encoding, dropping) knows its depth is bounded.
pub const MAX_VALUE_DEPTH: usize = 128;

/// JSON nesting enough for any request whose values are within [`MAX_VALUE_DEPTH`]: a
/// key-value list level is four JSON levels (value, list, `values` array, pair), and a request
/// holds its attribute values under fewer than sixteen.
pub const MAX_JSON_DEPTH: usize = 4 * MAX_VALUE_DEPTH + 16;

/// Parses a JSON document nested at most [`MAX_JSON_DEPTH`] levels. serde_json's own limit
/// (128) is too low for such values, and its parser recurses, so the depth is counted first
/// by a scan that does not.
pub fn parse_bounded(text: &[u8]) -> Result<Json, JsonError> {
    if json_depth(text) > MAX_JSON_DEPTH {
        return Err(JsonError::TooDeep);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    deserializer.disable_recursion_limit();
    let json = Json::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(json)
}

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error(
        "JSON nested deeper than {MAX_JSON_DEPTH} levels (attribute values may nest \
         {MAX_VALUE_DEPTH} levels of arrays and key-value lists)"
    )]
    TooDeep,
    #[error("not JSON: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// The deepest nesting of objects and arrays in `text`, brackets inside strings not counted.
/// Malformed JSON gets some number; the parser reports what is wrong with it.
fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `value` in protobuf JSON (64-bit integers as strings, bytes in base64).
pub fn to_json(value: &AnyValue) -> Json {
    use base64::Engine;
    match &value.value {
        Some(Value::StringValue(s)) => json!({"stringValue": s}),
        Some(Value::BoolValue(b)) => json!({"boolValue": b}),
        Some(Value::IntValue(i)) => json!({"intValue": i.to_string()}),
        Some(Value::DoubleValue(d)) => json!({"doubleValue": crate::float_text::to_json(*d)}),
        Some(Value::ArrayValue(a)) => {
            json!({"arrayValue": {"values": a.values.iter().map(to_json).collect::<Vec<_>>()}})
        }
        Some(Value::KvlistValue(l)) => {
            json!({"kvlistValue": {"values": attributes_to_json(&l.values)}})
        }
        Some(Value::BytesValue(b)) => {
            json!({"bytesValue": base64::engine::general_purpose::STANDARD.encode(b)})
        }
        Some(Value::StringValueStrindex(i)) => json!({"stringValueStrindex": i}),
        None => json!({}),
    }
}

/// Key-value pairs in protobuf JSON.
pub fn attributes_to_json(attrs: &[KeyValue]) -> Vec<Json> {
    attrs
        .iter()
        .map(|kv| {
            json!({"key": kv.key, "value": kv.value.as_ref().map(to_json).unwrap_or_else(|| json!({}))})
        })
        .collect()
}

/// A value written by [`to_json`] (or any protobuf JSON `AnyValue`), read back.
pub fn from_json_str(text: &str) -> Option<AnyValue> {
    let mut json = parse_bounded(text.as_bytes()).ok()?;
    let special = SpecialDoubles::replace(&mut json).ok()?;
    let mut value: AnyValue = serde_json::from_value(json).ok()?;
    if let Some(special) = special {
        special.restore(&mut value);
    }
    Some(value)
}

/// Stand-ins for NaN, infinity and minus infinity in one document; see the module docs.
pub struct SpecialDoubles {
    stand_ins: [f64; 3],
}

impl SpecialDoubles {
    const VALUES: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

    /// Turns every `doubleValue` string in `document` into a number. Returns the stand-ins
    /// to [`Self::restore`] after decoding, if a special value was among them, or the first
    /// string that is no double.
    pub fn replace(document: &mut Json) -> Result<Option<Self>, String> {
        let mut numbers = HashSet::new();
        let mut found = false;
        visit_doubles(document, &mut |double| match double {
            Json::Number(n) => {
                numbers.insert(n.as_f64().unwrap_or_default().to_bits());
            }
            Json::String(s) => found |= special_index(s).is_some(),
            _ => {}
        });
        // The smallest positive doubles the document does not contain.
        let mut stand_ins = [0.0; 3];
        let mut bits = 1u64;
        for stand_in in &mut stand_ins {
            while numbers.contains(&bits) {
                bits += 1;
            }
            *stand_in = f64::from_bits(bits);
            bits += 1;
        }
        let mut bad = None;
        visit_doubles(document, &mut |double| {
            let Json::String(text) = double else {
                return;
            };
            let number = match special_index(text) {
                Some(i) => stand_ins[i],
                None => match text.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => n,
                    _ => {
                        bad.get_or_insert_with(|| text.clone());
                        return;
                    }
                },
            };
            *double = serde_json::Number::from_f64(number).map_or(Json::Null, Json::Number);
        });
        match bad {
            Some(text) => Err(format!("doubleValue {text:?} is not a number")),
            None => Ok(found.then_some(Self { stand_ins })),
        }
    }

    /// Puts the special values back in `value` and the values nested in it.
    pub fn restore(&self, value: &mut AnyValue) {
        match &mut value.value {
            Some(Value::DoubleValue(d)) => {
                if let Some(i) = self
                    .stand_ins
                    .iter()
                    .position(|s| s.to_bits() == d.to_bits())
                {
                    *d = Self::VALUES[i];
                }
            }
            Some(Value::ArrayValue(array)) => array.values.iter_mut().for_each(|v| self.restore(v)),
            Some(Value::KvlistValue(list)) => self.restore_attributes(&mut list.values),
            _ => {}
        }
    }

    pub fn restore_attributes(&self, attributes: &mut [KeyValue]) {
        for value in attributes.iter_mut().filter_map(|kv| kv.value.as_mut()) {
            self.restore(value);
        }
    }
}

fn special_index(text: &str) -> Option<usize> {
    match text {
        "NaN" => Some(0),
        "Infinity" => Some(1),
        "-Infinity" => Some(2),
        _ => None,
    }
}

/// Calls `f` on the value of every `doubleValue` key. (`serde_json` refuses documents nested
/// more than 128 deep, which bounds the recursion.)
fn visit_doubles(value: &mut Json, f: &mut impl FnMut(&mut Json)) {
    match value {
        Json::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "doubleValue" {
                    f(child);
                } else {
                    visit_doubles(child, f);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|v| visit_doubles(v, f)),
        _ => {}
    }
}
