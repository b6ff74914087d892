//! Doubles where JSON and text have no number for them. NaN and the infinities take protobuf
//! JSON's names (`"NaN"`, `"Infinity"`, `"-Infinity"`) everywhere tracefusion writes a double
//! as JSON or text: tag catalogs, search results, traces and tag values.

/// The name of a non-finite value, or `None` for a finite one (written as a number).
pub fn non_finite_name(value: f64) -> Option<&'static str> {
    if value.is_nan() {
        Some("NaN")
    } else if value == f64::INFINITY {
        Some("Infinity")
    } else if value == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// The value a name of [`non_finite_name`] stands for.
pub fn parse_non_finite(name: &str) -> Option<f64> {
    match name {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A double as text: the shortest form that reads back as the same value, or its name.
pub fn to_text(value: f64) -> String {
    match non_finite_name(value) {
        Some(name) => name.to_string(),
        None => value.to_string(),
    }
}

/// A double as a protobuf JSON value: a number, or its name as a string.
pub fn to_json(value: f64) -> serde_json::Value {
    match non_finite_name(value) {
        Some(name) => serde_json::Value::String(name.to_string()),
        None => serde_json::json!(value),
    }
}
