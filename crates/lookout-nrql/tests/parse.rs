//! The parser on the queries New Relic users write (the golden-signal and dashboard queries of
//! the reference), its errors (line, column, caret, what was expected), and a property: any
//! syntax tree prints to text that parses back to the same tree.

use lookout_nrql::ast::{
    Arg, BinOp, Expr, Facet, Interval, Limit, Query, SelectItem, Time, Timeseries, Unit,
};
use lookout_nrql::parse;
use proptest::prelude::*;

fn attr(a: &str) -> Expr {
    Expr::Attr(a.into())
}

fn call(name: &str, args: Vec<Arg>) -> Expr {
    Expr::Call {
        name: name.into(),
        args,
    }
}

#[test]
fn a_dashboard_query_parses_into_its_clauses() {
    let q = parse(
        "SELECT percentile(duration, 95, 99) AS 'Latency', rate(count(*), 1 minute) \
         FROM Transaction WHERE appName = 'checkout' AND http.statusCode >= 500 \
         FACET name, host LIMIT 20 SINCE 3 hours ago UNTIL 1 hour ago \
         COMPARE WITH 1 week ago TIMESERIES 5 minutes WITH TIMEZONE 'Europe/Paris'",
    )
    .unwrap();
    assert_eq!(q.select.len(), 2);
    assert_eq!(
        q.select[0],
        SelectItem {
            expr: call(
                "percentile",
                vec![
                    Arg::Expr(attr("duration")),
                    Arg::Expr(Expr::Number(95.0)),
                    Arg::Expr(Expr::Number(99.0))
                ]
            ),
            alias: Some("Latency".into()),
        }
    );
    assert_eq!(
        q.select[1].expr,
        call(
            "rate",
            vec![
                Arg::Expr(call("count", vec![Arg::Expr(Expr::Star)])),
                Arg::Expr(Expr::Interval(Interval {
                    n: 1.0,
                    unit: Unit::Minute
                }))
            ]
        )
    );
    assert_eq!(q.from, ["Transaction"]);
    let Some(Expr::Binary {
        op: BinOp::And,
        right,
        ..
    }) = &q.filter
    else {
        panic!("{:?}", q.filter)
    };
    assert_eq!(
        **right,
        Expr::Binary {
            op: BinOp::Ge,
            left: Box::new(attr("http.statusCode")),
            right: Box::new(Expr::Number(500.0))
        }
    );
    assert!(matches!(&q.facet, Some(Facet::Items(v)) if v.len() == 2));
    assert_eq!(q.limit, Some(Limit::Count(20)));
    assert_eq!(
        q.since,
        Some(Time::Ago(Interval {
            n: 3.0,
            unit: Unit::Hour
        }))
    );
    assert_eq!(
        q.compare_with,
        Some(Interval {
            n: 1.0,
            unit: Unit::Week
        })
    );
    assert_eq!(
        q.timeseries,
        Some(Timeseries::Every(Interval {
            n: 5.0,
            unit: Unit::Minute
        }))
    );
    assert_eq!(q.timezone.as_deref(), Some("Europe/Paris"));
}

#[test]
fn keywords_are_case_insensitive_and_clauses_come_in_any_order() {
    let a =
        parse("from Span select count(*) since 1 day ago where error is true facet service.name")
            .unwrap();
    let b =
        parse("SELECT count(*) FROM Span WHERE error IS TRUE FACET service.name SINCE 1 DAY AGO")
            .unwrap();
    assert_eq!(a, b);
}

#[test]
fn the_reference_queries_parse_and_round_trip() {
    for q in [
        "SELECT count(*) FROM Transaction",
        "SELECT average(duration) FROM Transaction TIMESERIES",
        "SELECT percentage(count(*), WHERE error IS TRUE) FROM Transaction FACET appName",
        "SELECT filter(count(*), WHERE http.statusCode >= 500) / count(*) * 100 AS 'Error %' FROM Transaction",
        "SELECT apdex(duration, t: 0.5) FROM Transaction WHERE appName IN ('a', 'b') SINCE today",
        "SELECT histogram(duration, 10, 20) FROM Transaction SINCE yesterday UNTIL today",
        "SELECT uniqueCount(user.id), uniques(host, 50), latest(version), stddev(duration) FROM Transaction",
        "SELECT median(duration) FROM Span WHERE name NOT LIKE '%health%' AND db.system IS NOT NULL",
        "SELECT count(*) FROM Log WHERE message LIKE '%timeout%' OR NOT (level = 'info') LIMIT MAX",
        "SELECT * FROM Transaction WHERE duration > 1.5 LIMIT 100 OFFSET 10",
        "SELECT name, duration FROM Span ORDER BY duration DESC LIMIT 5",
        "SELECT count(*) FROM Transaction FACET CASES (WHERE duration < 0.1 AS 'fast', WHERE duration < 1 AS 'ok') OR name",
        "SELECT max(duration) - min(duration) FROM Transaction SINCE 1702899296789 UNTIL '2023-12-18T12:00'",
        "SELECT count(*) FROM SyntheticCheck, Transaction SINCE last week TIMESERIES MAX",
        "SELECT count(*) FROM Transaction SINCE monday AT '09:00' TIMESERIES AUTO",
        "SELECT earliest(`my attr`), sum(`select`) FROM Metric WHERE `weird name` != -3",
        "SELECT rate(count(*), 1 minute) FROM Transaction SINCE 30 minutes ago COMPARE WITH 1 day ago",
    ] {
        let parsed = parse(q).unwrap_or_else(|e| panic!("{q}\n{}", e.render(q)));
        let printed = parsed.to_string();
        assert_eq!(parse(&printed).unwrap(), parsed, "{q}\n→ {printed}");
    }
}

#[test]
fn operators_bind_as_in_sql() {
    let q = parse("SELECT count(*) FROM T WHERE a = 1 OR b = 2 AND c + 1 * 2 > 3").unwrap();
    // OR at the top; AND under it; * before +.
    assert_eq!(
        q.filter.unwrap().to_string(),
        "(a = 1) OR ((b = 2) AND ((c + (1 * 2)) > 3))"
    );
}

#[test]
fn errors_point_at_the_column_and_say_what_was_expected() {
    let src = "SELECT count(*)\nFROM Transaction\nWHERE duration >\nSINCE 1 hour ago";
    let e = parse(src).unwrap_err();
    assert_eq!((e.line, e.column), (4, 1));
    assert!(
        e.message
            .starts_with("expected an attribute, a value or a function (quote a reserved name with backticks), found `SINCE`"),
        "{e}"
    );
    assert_eq!(
        e.render(src),
        "line 4, column 1: expected an attribute, a value or a function (quote a reserved name with \
         backticks), found `SINCE`\nSINCE 1 hour ago\n^"
    );

    let src = "SELECT count(*) FROM Transaction SINCE 3 parsecs ago";
    let e = parse(src).unwrap_err();
    assert_eq!((e.line, e.column), (1, 42));
    assert!(e.message.contains("expected a unit"), "{e}");

    for (src, needle, column) in [
        ("SELECT count(* FROM T", "expected `,` or `)`", 16),
        ("SELECT count(*)", "expected FROM", 16),
        (
            "SELECT count(*) FROM T LIMIT 6000",
            "LIMIT is at most 5000",
            30,
        ),
        (
            "SELECT count(*) FROM T FACET a, b, c, d, e, f",
            "at most 5 attributes",
            45,
        ),
        ("SELECT count(*) FROM T WHERE a = 'open", "unterminated", 34),
        (
            "SELECT count(*) FROM T WHERE a = 1 WHERE b = 2",
            "WHERE is given twice",
            36,
        ),
        (
            "SELECT count(*) FROM T GROUP BY a",
            "expected WHERE, FACET",
            24,
        ),
        (
            "SELECT count(*) FROM T SINCE whenever",
            "expected a time",
            30,
        ),
        (
            "SELECT count(*) FROM T WHERE a IS maybe",
            "expected NULL, TRUE or FALSE",
            35,
        ),
        ("SELECT count(*) FROM T EXTRAPOLATE", "not needed", 24),
    ] {
        let e = parse(src).unwrap_err();
        assert!(e.message.contains(needle), "{src}: {e}");
        assert_eq!(e.column, column, "{src}: {e}");
    }
}

// Syntax trees, for the round-trip property.

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("duration".to_string()),
        Just("http.statusCode".to_string()),
        Just("appName".to_string()),
        Just("select".to_string()),
        Just("true".to_string()),
        "[a-z][a-z0-9_.]{0,8}",
        "[ -~]{1,6}",
    ]
}

fn interval() -> impl Strategy<Value = Interval> {
    (
        prop_oneof![(1u32..500).prop_map(f64::from), Just(0.5)],
        prop_oneof![
            Just(Unit::Second),
            Just(Unit::Minute),
            Just(Unit::Hour),
            Just(Unit::Day),
            Just(Unit::Week),
            Just(Unit::Month),
            Just(Unit::Quarter),
            Just(Unit::Year)
        ],
    )
        .prop_map(|(n, unit)| Interval { n, unit })
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        name().prop_map(Expr::Attr),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Expr::Number),
        (0u32..1000).prop_map(|n| Expr::Number(f64::from(n))),
        "[ -~]{0,8}".prop_map(Expr::Str),
        any::<bool>().prop_map(Expr::Bool),
        Just(Expr::Null),
        interval().prop_map(Expr::Interval),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        let op = prop_oneof![
            Just(BinOp::Or),
            Just(BinOp::And),
            Just(BinOp::Eq),
            Just(BinOp::Ne),
            Just(BinOp::Lt),
            Just(BinOp::Le),
            Just(BinOp::Gt),
            Just(BinOp::Ge),
            Just(BinOp::Add),
            Just(BinOp::Sub),
            Just(BinOp::Mul),
            Just(BinOp::Div)
        ];
        let arg = prop_oneof![
            inner.clone().prop_map(Arg::Expr),
            Just(Arg::Expr(Expr::Star)),
            inner.clone().prop_map(Arg::Where),
            ("[a-z]{1,5}", inner.clone()).prop_map(|(k, e)| Arg::Named(k, e)),
        ];
        prop_oneof![
            (op, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Binary {
                op,
                left: Box::new(l),
                right: Box::new(r)
            }),
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            name().prop_map(|n| Expr::Neg(Box::new(Expr::Attr(n)))),
            ("[a-z]{1,10}", prop::collection::vec(arg, 0..4))
                .prop_filter("not a keyword", |(n, _)| parse(&format!(
                    "SELECT {n}(1) FROM T"
                ))
                .is_ok())
                .prop_map(|(name, args)| Expr::Call { name, args }),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 1..4),
                any::<bool>()
            )
                .prop_map(|(e, list, negated)| Expr::In {
                    expr: Box::new(e),
                    list,
                    negated
                }),
            (inner.clone(), "[ -~]{0,8}", any::<bool>(), any::<bool>()).prop_map(
                |(e, pattern, negated, regex)| Expr::Like {
                    expr: Box::new(e),
                    pattern,
                    negated,
                    regex
                }
            ),
            (inner.clone(), any::<bool>()).prop_map(|(e, negated)| Expr::IsNull {
                expr: Box::new(e),
                negated
            }),
            (inner, any::<bool>(), any::<bool>()).prop_map(|(e, value, negated)| Expr::IsBool {
                expr: Box::new(e),
                value,
                negated
            }),
        ]
    })
}

fn item() -> impl Strategy<Value = SelectItem> {
    (expr(), proptest::option::of("[ -~]{0,8}"))
        .prop_map(|(expr, alias)| SelectItem { expr, alias })
}

fn time() -> impl Strategy<Value = Time> {
    prop_oneof![
        interval().prop_map(Time::Ago),
        Just(Time::Now),
        (0i64..9_000_000_000_000_000).prop_map(Time::Epoch),
        "[ -~]{0,12}".prop_map(Time::DateTime),
        (
            prop_oneof![
                Just("today".to_string()),
                Just("yesterday".to_string()),
                Just("friday".to_string()),
                Just("this week".to_string()),
                Just("last month".to_string())
            ],
            proptest::option::of("[0-9:]{1,8}")
        )
            .prop_map(|(name, at)| Time::Calendar { name, at }),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    let facet = prop_oneof![
        prop::collection::vec(item(), 1..=5).prop_map(Facet::Items),
        (
            prop::collection::vec((expr(), proptest::option::of("[a-z ]{0,6}")), 1..3),
            proptest::option::of(expr())
        )
            .prop_map(|(cases, otherwise)| Facet::Cases { cases, otherwise }),
    ];
    (
        (
            prop::collection::vec(item(), 1..3),
            prop::collection::vec(name(), 1..3),
            proptest::option::of(expr()),
            proptest::option::of(facet),
            proptest::option::of((expr(), any::<bool>())),
        ),
        (
            proptest::option::of(prop_oneof![
                (0u64..=5000).prop_map(Limit::Count),
                Just(Limit::Max)
            ]),
            proptest::option::of(0u64..1000),
            proptest::option::of(time()),
            proptest::option::of(time()),
            proptest::option::of(interval()),
            proptest::option::of(prop_oneof![
                Just(Timeseries::Auto),
                Just(Timeseries::Max),
                interval().prop_map(Timeseries::Every)
            ]),
            proptest::option::of("[A-Za-z/_]{1,20}"),
        ),
    )
        .prop_map(
            |(
                (select, from, filter, facet, order_by),
                (limit, offset, since, until, compare_with, timeseries, timezone),
            )| Query {
                select,
                from,
                filter,
                facet,
                order_by,
                limit,
                offset,
                since,
                until,
                compare_with,
                timeseries,
                timezone,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_tree_prints_to_text_that_parses_back_to_it(q in query()) {
        let text = q.to_string();
        let back = parse(&text).map_err(|e| TestCaseError::fail(e.render(&text)))?;
        prop_assert_eq!(back, q, "{}", text);
    }

    #[test]
    fn no_input_makes_the_parser_panic(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }
}
