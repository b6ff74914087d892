//! Parser specifics the corpus cannot say by outcome alone: precedence, literal values,
//! intrinsic spellings, error positions and messages, nesting limits, the `parse` command, and
//! the printer round trip on generated trees.

use std::process::Command;

use proptest::prelude::*;
use tracefusion::traceql::ast::*;
use tracefusion::traceql::{ErrorKind, MAX_NESTING, parse};

use crate::support::binary;

fn ast(q: &str) -> Query {
    parse(q).unwrap_or_else(|e| panic!("{q:?} should parse: {e}"))
}

fn filter_expr(q: &str) -> FieldExpr {
    match ast(q).expr {
        RootExpr::Pipeline(p) => match p.stages.into_iter().next() {
            Some(Stage::Spanset(SpansetExpr::Filter { expr, .. })) => expr,
            other => panic!("{q:?}: expected one filter, got {other:?}"),
        },
        other => panic!("{q:?}: expected a pipeline, got {other:?}"),
    }
}

#[test]
fn precedence_matches_tempo() {
    let same = [
        // && and || bind equally, left to right, inside filters and between spansets.
        ("{ .a || .b && .c }", "{ (.a || .b) && .c }"),
        ("{ .a && .b || .c }", "{ (.a && .b) || .c }"),
        ("{ .a } || { .b } && { .c }", "({ .a } || { .b }) && { .c }"),
        // Structural operators bind tighter than && and chain to the left.
        ("{ .a } && { .b } >> { .c }", "{ .a } && ({ .b } >> { .c })"),
        ("{ .a } >> { .b } ~ { .c }", "({ .a } >> { .b }) ~ { .c }"),
        // Comparisons bind tighter than && inside a filter.
        ("{ .a && .b = .c }", "{ .a && (.b = .c) }"),
        ("{ 1 + 2 * 3 = 7 }", "{ 1 + (2 * 3) = 7 }"),
        ("{ .a - .b - .c = 0 }", "{ (.a - .b) - .c = 0 }"),
        ("{ 2 ^ 3 ^ 2 = 1 }", "{ 2 ^ (3 ^ 2) = 1 }"),
        ("{ -.a ^ 2 = 1 }", "{ (-.a) ^ 2 = 1 }"),
        // `!` is looser than * / % ^ and tighter than + - and comparisons.
        ("{ !.a = .b }", "{ (!.a) = .b }"),
        ("{ !.a * .b }", "{ !(.a * .b) }"),
        ("{ !.a + .b = 1 }", "{ ((!.a) + .b) = 1 }"),
        // The pipe is loosest of all.
        (
            "{ .a } && { .b } | count() > 1",
            "({ .a } && { .b }) | count() > 1",
        ),
        // Scoped and unscoped spellings of an intrinsic are the same field.
        ("{ span:duration > 1s }", "{ duration > 1s }"),
        (
            "{ trace:rootService = \"a\" }",
            "{ rootServiceName = \"a\" }",
        ),
        // Constants in scalar filters and metrics arithmetic are folded (integer division).
        ("{ } | count() > 1 + 2 * 3", "{ } | count() > 7"),
        ("(1 / 2) + ({ } | rate())", "0 + ({ } | rate())"),
    ];
    for (a, b) in same {
        assert_eq!(ast(a), ast(b), "{a:?} should mean {b:?}");
    }
    let different = [
        ("{ .a || .b && .c }", "{ .a || (.b && .c) }"),
        ("{ .a } && { .b } >> { .c }", "({ .a } && { .b }) >> { .c }"),
        ("{ 2 ^ 3 ^ 2 = 1 }", "{ (2 ^ 3) ^ 2 = 1 }"),
    ];
    for (a, b) in different {
        assert_ne!(ast(a), ast(b), "{a:?} must not mean {b:?}");
    }
}

#[test]
fn literals_have_their_values() {
    let value = |q: &str| match filter_expr(q) {
        FieldExpr::Binary { rhs, .. } => match *rhs {
            FieldExpr::Static(s) => s,
            other => panic!("{q:?}: rhs {other:?}"),
        },
        other => panic!("{q:?}: {other:?}"),
    };
    const S: i64 = 1_000_000_000;
    let cases = [
        ("{ .a = 1h30m }", Static::Duration(5400 * S)),
        ("{ .a = 1.5s }", Static::Duration(1_500_000_000)),
        ("{ .a = 2d }", Static::Duration(2 * 86400 * S)),
        ("{ .a = 1w }", Static::Duration(7 * 86400 * S)),
        ("{ .a = 1y }", Static::Duration(365 * 86400 * S)),
        ("{ .a = 100µs }", Static::Duration(100_000)),
        ("{ .a = 100us }", Static::Duration(100_000)),
        (
            "{ .a = 1h15m30.918273645s }",
            Static::Duration(4530 * S + 918_273_645),
        ),
        ("{ .a = -5s }", Static::Duration(-5 * S)),
        ("{ .a = .5 }", Static::Float(0.5)),
        ("{ .a = 1e3 }", Static::Float(1000.0)),
        ("{ .a = -2 }", Static::Int(-2)),
        ("{ .a = minInt }", Static::Int(i64::MIN)),
        ("{ .a = maxInt }", Static::Int(i64::MAX)),
        (
            r#"{ .a = "q\"\\\n\t\u00e9\x41\101" }"#,
            Static::String("q\"\\\n\té\u{41}A".into()),
        ),
        ("{ .a = `raw\\n` }", Static::String("raw\\n".into())),
        ("{ .a = error }", Static::Status(Status::Error)),
        ("{ .a = consumer }", Static::Kind(Kind::Consumer)),
        ("{ .a = nil }", Static::Nil),
    ];
    for (q, expected) in cases {
        assert_eq!(value(q), expected, "{q}");
    }
}

#[test]
fn every_intrinsic_spelling_parses_to_an_intrinsic() {
    for spelling in Intrinsic::all_spellings() {
        let q = format!("{{ {spelling} != nil }}");
        match filter_expr(&q) {
            FieldExpr::Binary { lhs, .. } => {
                assert!(
                    matches!(*lhs, FieldExpr::Field(FieldRef::Intrinsic(_), _)),
                    "{q}: {lhs:?}"
                )
            }
            other => panic!("{q}: {other:?}"),
        }
    }
}

#[test]
fn attribute_names_lex_as_tempo_does() {
    let name = |q: &str| match filter_expr(q) {
        FieldExpr::Binary { lhs, .. } => match *lhs {
            FieldExpr::Field(FieldRef::Attribute(a), _) => a,
            other => panic!("{q}: {other:?}"),
        },
        other => panic!("{q}: {other:?}"),
    };
    let attr = |scope, parent, name: &str| Attribute {
        scope,
        parent,
        name: name.into(),
    };
    use AttributeScope as S;
    assert_eq!(
        name("{ .http.status_code = 1 }"),
        attr(S::None, false, "http.status_code")
    );
    assert_eq!(
        name("{ span.foo-bar = 1 }"),
        attr(S::Span, false, "foo-bar")
    );
    assert_eq!(
        name("{ span.resource.x = 1 }"),
        attr(S::Span, false, "resource.x")
    );
    assert_eq!(
        name("{ resource.span.x = 1 }"),
        attr(S::Resource, false, "span.x")
    );
    assert_eq!(name("{ parent.span.x = 1 }"), attr(S::Span, true, "x"));
    assert_eq!(name("{ parent.x = 1 }"), attr(S::None, true, "x"));
    assert_eq!(
        name(r#"{ .a."b c"."d\"e" = 1 }"#),
        attr(S::None, false, "a.b c.d\"e")
    );
    assert_eq!(name("{ .a+1 = 1 }"), attr(S::None, false, "a+1"));
}

#[test]
fn errors_point_at_the_problem() {
    let cases: &[(&str, ErrorKind, u32, u32, &str)] = &[
        (
            "{ .a = 1 && }",
            ErrorKind::Parse,
            1,
            13,
            "expected a field expression but found '}'",
        ),
        (
            "{ .a = 1",
            ErrorKind::Parse,
            1,
            9,
            "expected '}' but found end of query",
        ),
        (
            "{ .a = 1 }\n| count() >\n",
            ErrorKind::Parse,
            3,
            1,
            "end of query",
        ),
        (
            "{ .a = 1 }\n  && { .b = \"x }",
            ErrorKind::Parse,
            2,
            13,
            "string is not closed",
        ),
        ("{ .a = 'x' }", ErrorKind::Parse, 1, 8, "single quotes"),
        (
            "{ foo = 1 }",
            ErrorKind::Parse,
            1,
            3,
            "unknown identifier 'foo'",
        ),
        (
            "{ trace:name = \"a\" }",
            ErrorKind::Parse,
            1,
            3,
            "unknown intrinsic 'trace:name'",
        ),
        (
            "{ } | avg(duration)",
            ErrorKind::Parse,
            1,
            7,
            "must be compared",
        ),
        (
            "{ } | nope()",
            ErrorKind::Parse,
            1,
            7,
            "unknown function 'nope'",
        ),
        (
            "{ } | rate() + 1",
            ErrorKind::Parse,
            1,
            14,
            "in parentheses",
        ),
        (
            "{ .a = 1 } with (x=)",
            ErrorKind::Parse,
            1,
            20,
            "expected a value",
        ),
        ("{ 1 = \"a\" }", ErrorKind::Validate, 1, 5, "same type"),
        (
            "{\n  .a = 1 &&\n  .b =~ \"[\"\n}",
            ErrorKind::Validate,
            3,
            6,
            "invalid regex",
        ),
        (
            "{ name =~ \"a{1000}{1000}{1000}\" }",
            ErrorKind::Validate,
            1,
            8,
            "too large",
        ),
        (
            "{ parent.a = 1 }",
            ErrorKind::Unsupported,
            1,
            3,
            "not yet supported",
        ),
    ];
    for (q, kind, line, col, fragment) in cases {
        let e = tracefusion::traceql::compile(q).expect_err(q);
        assert_eq!((e.kind, e.line, e.col), (*kind, *line, *col), "{q:?}: {e}");
        assert!(
            e.message.contains(fragment),
            "{q:?}: {:?} should contain {fragment:?}",
            e.message
        );
    }
}

#[test]
fn error_rendering_puts_a_caret_under_the_column() {
    let q = "{ .a = 1 &&& .b }";
    let e = parse(q).unwrap_err();
    let rendered = e.render(q);
    let lines: Vec<&str> = rendered.lines().collect();
    assert_eq!(lines[1], format!("  {q}"));
    assert_eq!(
        lines[2].find('^'),
        Some(2 + e.col as usize - 1),
        "{rendered}"
    );
}

/// Autocomplete's `q` is often unfinished: each matcher that does not compile counts as
/// `true`, and only a single spanset filter narrows anything.
#[test]
fn autocomplete_filters_repair_unfinished_queries() {
    use tracefusion::traceql::autocomplete_filter;
    let repaired = |q: &str| autocomplete_filter(q).map(|e| e.to_string());
    let same_as = |q: &str| Some(filter_expr(q).to_string());
    for (q, expected) in [
        // Complete filters are used as they are.
        (r#"{ .a = "x" }"#, r#"{ .a = "x" }"#),
        (r#"{ .a = "x" || .b > 2 }"#, r#"{ .a = "x" || .b > 2 }"#),
        // Unfinished matchers are true; the rest still narrows.
        (r#"{ .a = "x" && .b = }"#, r#"{ .a = "x" && true }"#),
        (
            r#"{ .a = "x" && .b = "unterminated"#,
            r#"{ .a = "x" && true }"#,
        ),
        (r#"{ .a = "x" && "#, r#"{ .a = "x" && true }"#),
        (
            r#"{ resource.service.name="a""#,
            r#"{ resource.service.name = "a" }"#,
        ),
        (r#"{ .b = && .a = "x" }"#, r#"{ true && .a = "x" }"#),
        (r#"{ .a = "x" || .b = }"#, r#"{ .a = "x" || true }"#),
        // Operators inside strings and parentheses do not split matchers.
        (
            r#"{ .a = "x && y" && .b = }"#,
            r#"{ .a = "x && y" && true }"#,
        ),
        (
            r#"{ (.a = 1 || .a = 2) && .c != }"#,
            r#"{ (.a = 1 || .a = 2) && true }"#,
        ),
    ] {
        assert_eq!(repaired(q), same_as(expected), "{q}");
    }
    // Nothing left to narrow by, or more than one spanset filter: unfiltered.
    for q in [
        "",
        "   ",
        "{}",
        "{ .a = }",
        "{ .a = \"x\" } >> { .b = \"y\" }",
        "{ .a = \"x\" } | count() > 1",
        "{ .a = \"x\" } | ",
        "{ .a = \"x\" } && { .b = ",
        "not traceql",
        "{ status = nope }",
    ] {
        assert_eq!(repaired(q), None, "{q:?}");
    }
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    // Run where the stack is as small as a tokio worker's.
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let at_limit = format!(
                "{}{{ .a }}{}",
                "(".repeat(MAX_NESTING - 2),
                ")".repeat(MAX_NESTING - 2)
            );
            assert!(parse(&at_limit).is_ok(), "nesting within the limit parses");
            for hostile in [
                format!("{}{{ .a }}{}", "(".repeat(10_000), ")".repeat(10_000)),
                format!("{{ {}1 }}", "!".repeat(100_000)),
                format!("{{ {}.a = 1 }}", "-".repeat(100_000)),
                format!("{{ {} .a {} }}", "(".repeat(5_000), ")".repeat(5_000)),
            ] {
                // Refused for its depth, or before parsing for its operator count.
                let e = parse(&hostile).unwrap_err();
                assert!(
                    (e.kind == ErrorKind::Parse && e.message.contains("nests more than"))
                        || (e.kind == ErrorKind::Validate && e.message.contains("at most")),
                    "{e}"
                );
            }
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}

#[test]
fn parse_command_prints_canonical_forms_and_json() {
    let out = Command::new(binary())
        .args(["parse", "{span:duration>1s&&.a=\"x\"}|count()>2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "{ duration > 1s && .a = \"x\" } | count() > 2"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queries.txt");
    std::fs::write(
        &file,
        "# comment\n{ .a = 1 }\n\n{ .a = \n{ 1 = \"a\" }\n{ parent.a = 1 }\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["parse", "--json", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "some queries are invalid");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        serde_json::json!({"query": "{ .a = 1 }", "ok": true, "canonical": "{ .a = 1 }"})
    );
    let kinds: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["parse", "validate", "unsupported"]);
    for l in &lines[1..] {
        assert_eq!(l["ok"], false);
        assert!(
            l["line"].as_u64().unwrap() >= 1 && l["col"].as_u64().unwrap() >= 1,
            "{l}"
        );
        assert!(!l["message"].as_str().unwrap().is_empty());
    }

    let out = Command::new(binary())
        .args(["parse", "{ .a = }"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("parse error at line 1, col 8") && text.contains('^'),
        "{text}"
    );
}

// ---- generated trees: print, re-parse, compare ----

fn attribute_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.]{0,8}",
        "[a-z]{1,3}[ =!{}()\"\\\\<>|,&~^-][a-z]{0,3}",
        "[0-9][a-z]{0,3}",
        Just("span.x".to_string()),
    ]
}

fn field_ref() -> impl Strategy<Value = FieldRef> {
    let scope = prop_oneof![
        Just(AttributeScope::None),
        Just(AttributeScope::Span),
        Just(AttributeScope::Resource),
        Just(AttributeScope::Event),
        Just(AttributeScope::Link),
        Just(AttributeScope::Instrumentation),
    ];
    let intrinsics: Vec<FieldRef> = Intrinsic::all_spellings()
        .iter()
        .map(|s| match filter_expr(&format!("{{ {s} != nil }}")) {
            FieldExpr::Binary { lhs, .. } => match *lhs {
                FieldExpr::Field(f, _) => f,
                _ => unreachable!(),
            },
            _ => unreachable!(),
        })
        .collect();
    prop_oneof![
        (scope, any::<bool>(), attribute_name()).prop_map(|(scope, parent, name)| {
            let parent = parent
                && matches!(
                    scope,
                    AttributeScope::None | AttributeScope::Span | AttributeScope::Resource
                );
            FieldRef::Attribute(Attribute {
                scope,
                parent,
                name,
            })
        }),
        proptest::sample::select(intrinsics),
    ]
}

fn static_value() -> impl Strategy<Value = Static> {
    prop_oneof![
        any::<i64>().prop_map(Static::Int),
        (-1e12f64..1e12).prop_map(Static::Float),
        (-1_000_000_000_000i64..1_000_000_000_000).prop_map(Static::Duration),
        "[ -~\t\n]{0,8}".prop_map(Static::String),
        any::<bool>().prop_map(Static::Bool),
        Just(Static::Nil),
        Just(Static::Status(Status::Unset)),
        Just(Static::Kind(Kind::Producer)),
    ]
}

fn field_expr() -> impl Strategy<Value = FieldExpr> {
    let leaf = prop_oneof![
        static_value().prop_map(FieldExpr::Static),
        field_ref().prop_map(|f| FieldExpr::Field(f, Pos::default())),
    ];
    let ops = [
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Cmp(CmpOp::Eq),
        BinaryOp::Cmp(CmpOp::Lte),
        BinaryOp::Regex,
        BinaryOp::NotRegex,
        BinaryOp::Arith(ArithOp::Add),
        BinaryOp::Arith(ArithOp::Sub),
        BinaryOp::Arith(ArithOp::Mul),
        BinaryOp::Arith(ArithOp::Mod),
        BinaryOp::Arith(ArithOp::Pow),
    ];
    leaf.prop_recursive(5, 40, 2, move |inner| {
        prop_oneof![
            (
                proptest::sample::select(ops.to_vec()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, l, r)| {
                    FieldExpr::Binary {
                        op,
                        lhs: Box::new(l),
                        rhs: Box::new(r),
                        pos: Pos::default(),
                    }
                }),
            inner.clone().prop_map(|e| FieldExpr::Unary {
                op: UnaryOp::Not,
                expr: Box::new(e),
                pos: Pos::default()
            }),
            // The parser folds a minus into a number; build only what it can produce.
            inner.prop_filter_map("negated literal", |e| match e {
                FieldExpr::Static(_) => None,
                e => Some(FieldExpr::Unary {
                    op: UnaryOp::Neg,
                    expr: Box::new(e),
                    pos: Pos::default()
                }),
            }),
        ]
    })
}

fn spanset_expr() -> impl Strategy<Value = SpansetExpr> {
    let filter = field_expr().prop_map(|expr| SpansetExpr::Filter {
        expr,
        pos: Pos::default(),
    });
    let ops = [
        SpansetOp::And,
        SpansetOp::Or,
        SpansetOp::Child,
        SpansetOp::Parent,
        SpansetOp::NotSibling,
        SpansetOp::UnionDescendant,
    ];
    filter.prop_recursive(3, 8, 2, move |inner| {
        (proptest::sample::select(ops.to_vec()), inner.clone(), inner).prop_map(|(op, l, r)| {
            SpansetExpr::Op {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
            }
        })
    })
}

fn query() -> impl Strategy<Value = Query> {
    let stage = prop_oneof![
        spanset_expr().prop_map(Stage::Spanset),
        field_expr().prop_map(|expr| Stage::GroupBy {
            expr,
            pos: Pos::default()
        }),
        proptest::collection::vec(field_ref(), 1..3).prop_map(|fields| Stage::Select {
            fields,
            pos: Pos::default(),
        }),
        (1i64..100).prop_map(|n| Stage::ScalarFilter(ScalarFilter {
            op: CmpOp::Gt,
            lhs: ScalarExpr::Aggregate(Aggregate {
                func: AggregateFn::Count,
                arg: None,
                pos: Pos::default()
            }),
            rhs: ScalarExpr::Static(Static::Int(n)),
            pos: Pos::default(),
        })),
    ];
    (
        spanset_expr(),
        proptest::collection::vec(stage, 0..3),
        any::<bool>(),
    )
        .prop_map(|(first, rest, hint)| {
            let mut stages = vec![Stage::Spanset(first)];
            stages.extend(rest);
            let hints = if hint {
                vec![Hint {
                    name: "most_recent".into(),
                    value: Static::Bool(true),
                }]
            } else {
                Vec::new()
            };
            Query {
                expr: RootExpr::Pipeline(Pipeline { stages }),
                hints,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn printed_trees_parse_back_to_themselves(q in query()) {
        let printed = q.to_string();
        // Generated trees may pass the size bounds, which are checked before parsing.
        let refused_for_size = parse(&printed)
            .err()
            .is_some_and(|e| e.kind == tracefusion::traceql::ErrorKind::Validate);
        prop_assume!(!refused_for_size);
        let reparsed = parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}\n{e}")))?;
        prop_assert_eq!(&reparsed, &q, "printed as {}", printed);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~µ\n]{0,60}") {
        let _ = tracefusion::traceql::compile(&text);
    }
}
