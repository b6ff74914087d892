//! The project's own corpus (`corpus.txt`): every production of `grammar/traceql.ebnf` has
//! accepted and rejected cases, and every case gets exactly its stated outcome.

use std::collections::BTreeSet;

use tracefusion::traceql::{ErrorKind, compile};

const CORPUS: &str = include_str!("corpus.txt");
const GRAMMAR: &str = include_str!("../../grammar/traceql.ebnf");

struct Case {
    production: String,
    outcome: String,
    query: String,
}

fn cases() -> Vec<Case> {
    let mut production = String::new();
    let mut out = Vec::new();
    for line in CORPUS.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            production = name.trim().to_string();
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (outcome, query) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        out.push(Case {
            production: production.clone(),
            outcome: outcome.to_string(),
            query: query.trim_start().to_string(),
        });
    }
    out
}

fn productions() -> BTreeSet<String> {
    // A production is the word right before each `::=` (which may sit on the next line).
    let parts: Vec<&str> = GRAMMAR.split("::=").collect();
    parts[..parts.len() - 1]
        .iter()
        .filter_map(|before| before.split_whitespace().last().map(str::to_string))
        .collect()
}

#[test]
fn every_case_has_its_stated_outcome() {
    let mut failures = Vec::new();
    for case in cases() {
        let got = match compile(&case.query) {
            Ok(query) => {
                // Accepted queries also survive the printer (cases found by fuzzing live here).
                let printed = query.to_string();
                if compile(&printed).as_ref() != Ok(&query) {
                    failures.push(format!(
                        "  [{}] {:?}: printed as {printed:?}, which does not parse back the same",
                        case.production, case.query
                    ));
                }
                "ok"
            }
            Err(e) => match e.kind {
                ErrorKind::Parse => "parse",
                ErrorKind::Validate => "validate",
                ErrorKind::Unsupported => "unsupported",
            },
        };
        if got != case.outcome {
            let detail = compile(&case.query)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            failures.push(format!(
                "  [{}] {:?}: expected {}, got {got} {detail}",
                case.production, case.query, case.outcome
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "corpus mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_grammar_production_has_cases_and_every_case_a_production() {
    let productions = productions();
    assert!(
        productions.len() > 40,
        "grammar parsed to {} productions",
        productions.len()
    );
    let covered: BTreeSet<String> = cases().into_iter().map(|c| c.production).collect();
    let missing: Vec<_> = productions.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "productions without corpus cases: {missing:?}"
    );
    let unknown: Vec<_> = covered.difference(&productions).collect();
    assert!(
        unknown.is_empty(),
        "corpus sections naming no production: {unknown:?}"
    );
}
