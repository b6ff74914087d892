//! Parse + validate throughput: a typical query, a ~1 KB query, and Tempo's whole corpus.
//!
//! Run: `cargo bench --bench traceql_parse` (the corpus case needs ../shared beside the repo).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use tracefusion::traceql::compile;

const TYPICAL: &str =
    r#"{ resource.service.name = "checkout" && span.http.status_code >= 500 } | count() > 2"#;

/// About 1 KB: filters with several scopes, a regex, structural operators, a pipeline.
fn one_kilobyte_query() -> String {
    let mut q =
        String::from(r#"{ resource.service.name = "frontend" && span.http.method = "GET" } >> ("#);
    for i in 0..9 {
        if i > 0 {
            q.push_str(" || ");
        }
        q.push_str(&format!(
            r#"{{ span.http.route =~ "/api/v{i}/.*" && duration > {i}00ms && status = error }}"#
        ));
    }
    q.push_str(
        r#") | by(resource.service.name) | avg(duration) > 250ms | select(span.http.url, span:id)"#,
    );
    q
}

fn tempo_corpus() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/tempo-data/traceql/test_examples.yaml"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let doc: std::collections::BTreeMap<String, Option<Vec<String>>> =
        serde_yaml_ng::from_str(&text).expect("corpus parses");
    doc.into_values().flatten().flatten().collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("traceql");
    group.bench_function("parse+validate typical", |b| {
        b.iter(|| compile(black_box(TYPICAL)))
    });

    let big = one_kilobyte_query();
    assert!(compile(&big).is_ok(), "{big}");
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function(format!("parse+validate {} B query", big.len()), |b| {
        b.iter(|| compile(black_box(&big)))
    });

    let corpus = tempo_corpus();
    if !corpus.is_empty() {
        group.throughput(Throughput::Elements(corpus.len() as u64));
        group.bench_function(
            format!("parse+validate Tempo corpus ({} queries)", corpus.len()),
            |b| {
                b.iter(|| {
                    for q in &corpus {
                        let _ = compile(black_box(q));
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
