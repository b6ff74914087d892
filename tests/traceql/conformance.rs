//! Tempo conformance: every query of Tempo's own corpus (`test_examples.yaml`) is accepted or
//! rejected exactly as Tempo does, with the same kind of rejection.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tracefusion::traceql::{ErrorKind, compile, parse};

fn examples_path() -> PathBuf {
    match std::env::var_os("TRACEQL_EXAMPLES") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/tempo-data/traceql/test_examples.yaml"),
    }
}

fn examples() -> BTreeMap<String, Vec<String>> {
    let path = examples_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Tempo's TraceQL corpus not found at {} ({e}); set TRACEQL_EXAMPLES to its path",
            path.display()
        )
    });
    let parsed: BTreeMap<String, Option<Vec<String>>> =
        serde_yaml_ng::from_str(&text).expect("test_examples.yaml parses");
    parsed
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

pub(crate) fn class(name: &str) -> Vec<String> {
    let all = examples();
    let queries = all.get(name).cloned().unwrap_or_default();
    assert!(
        !queries.is_empty(),
        "no `{name}` queries in {}",
        examples_path().display()
    );
    queries
}

fn report(failures: &[String], total: usize, what: &str) {
    assert!(
        failures.is_empty(),
        "{} of {total} {what}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_valid_query_parses_and_validates() {
    let queries = class("valid");
    let failures: Vec<String> = queries
        .iter()
        .filter_map(|q| compile(q).err().map(|e| format!("  {q}\n    {e}")))
        .collect();
    report(&failures, queries.len(), "valid queries were rejected");
}

#[test]
fn every_parse_failure_fails_to_parse() {
    let queries = class("parse_fails");
    let failures: Vec<String> = queries
        .iter()
        .filter_map(|q| match parse(q) {
            Ok(ast) => Some(format!("  {q}\n    parsed as: {ast}")),
            Err(e) if e.kind != ErrorKind::Parse => Some(format!("  {q}\n    wrong kind: {e}")),
            Err(_) => None,
        })
        .collect();
    report(
        &failures,
        queries.len(),
        "parse_fails queries did not fail to parse",
    );
}

/// Every query of `class` parses and is then rejected with exactly `kind`.
fn assert_rejected_as(class_name: &str, kind: ErrorKind) {
    let queries = class(class_name);
    let failures: Vec<String> = queries
        .iter()
        .filter_map(|q| match compile(q) {
            Ok(ast) => Some(format!("  {q}\n    accepted as: {ast}")),
            Err(e) if e.kind != kind => Some(format!("  {q}\n    wrong kind: {e}")),
            Err(_) => None,
        })
        .collect();
    report(
        &failures,
        queries.len(),
        &format!(
            "{class_name} queries were not rejected as {}",
            kind.as_str()
        ),
    );
}

#[test]
fn every_validate_failure_parses_then_fails_validation() {
    assert_rejected_as("validate_fails", ErrorKind::Validate);
}

#[test]
fn every_unsupported_query_parses_and_is_reported_unsupported() {
    assert_rejected_as("unsupported", ErrorKind::Unsupported);
}

#[test]
fn valid_and_unsupported_queries_round_trip_through_the_printer() {
    let mut queries = class("valid");
    queries.extend(class("unsupported"));
    let failures: Vec<String> = queries
        .iter()
        .filter_map(|q| {
            let ast = parse(q).ok()?;
            let printed = ast.to_string();
            match parse(&printed) {
                Ok(again) if again == ast => None,
                Ok(again) => Some(format!(
                    "  {q}\n    printed: {printed}\n    reparsed: {again:?}\n    original: {ast:?}"
                )),
                Err(e) => Some(format!("  {q}\n    printed: {printed}\n    {e}")),
            }
        })
        .collect();
    report(&failures, queries.len(), "queries did not round-trip");
}
