//! Raw spans in blocks on SQLite and PostgreSQL: a trace spread over several exports comes back
//! whole and once, before and after its keys move into the trace index; searches (newest first, slowest first, by error, attribute and service) give
//! the answers computed here from the spans sent; instances and the transactions behind a
//! statement add up; retention removes blocks and their trace index.

use lookout_apm::span::{kind, Category, Span};
use lookout_store::apm::query::{self, SpanSearch};
use lookout_store::apm::rollup::RollupProcessor;
use lookout_store::apm::{span_writes, trace_index};
use lookout_store::writer::WriterConfig;
use lookout_store::{tenancy, Backend, Writer};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    blocks_answer_traces_searches_instances_and_callers,
    a_trace_id_reused_in_thousands_of_exports_is_read_up_to_the_block_cap,
    a_new_trace_is_found_while_the_indexer_lags_and_not_called_too_large,
    another_projects_blocks_do_not_count_against_the_block_cap,
);

const STATEMENT: &str = "SELECT * FROM items WHERE id = ?";

/// Trace `t`'s request span on `instance` (every 10th fails) and its database call; durations
/// and start times vary with `t` so that orders are unambiguous.
fn request_and_call(t: u64, instance: &str, base_ms: i64) -> [Span; 2] {
    let trace_id = format!("{:016x}{:016x}", t * 7919 + 1, t);
    let start_ns = (base_ms + t as i64 * 1_000) * 1_000_000;
    let request = Span {
        trace_id: trace_id.clone(),
        span_id: format!("{:016x}", t * 2 + 1),
        parent_span_id: None,
        service: "shop".into(),
        instance: Some(instance.into()),
        name: format!("GET /r{}", t % 4),
        kind: kind::SERVER,
        start_ns,
        duration_ns: (10 + (t * 37) % 200) as i64 * 1_000_000,
        status: 0,
        error: t.is_multiple_of(10),
        category: Category::Request,
        operation: format!("GET /r{}", t % 4),
        status_class: if t.is_multiple_of(10) { "5xx" } else { "2xx" }.into(),
        http_status: Some(if t.is_multiple_of(10) { 500 } else { 200 }),
        db_system: None,
        db_statement: None,
        peer: None,
        resource: format!("res-{instance}"),
        detail: format!(
            r#"{{"attributes":{{"user.tier":"{}"}}}}"#,
            ["gold", "free"][t as usize % 2]
        ),
    };
    let call = Span {
        span_id: format!("{:016x}", t * 2 + 2),
        parent_span_id: Some(request.span_id.clone()),
        name: "SELECT items".into(),
        kind: kind::CLIENT,
        start_ns: start_ns + 1_000_000,
        duration_ns: (1 + (t * 13) % 50) as i64 * 1_000_000,
        error: false,
        category: Category::Db,
        operation: "SELECT items".into(),
        status_class: String::new(),
        http_status: None,
        db_system: Some("postgresql".into()),
        db_statement: Some(STATEMENT.into()),
        detail: "{}".into(),
        ..request.clone()
    };
    [request, call]
}

async fn blocks_answer_traces_searches_instances_and_callers(f: Fixture) {
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let p = tenancy::ensure_default_project(&f.store)
        .await
        .unwrap()
        .0
        .id;
    let base = lookout_core::time::now_ms() - 3_600_000;
    // Two instances, 100 traces each, each instance's spans in exports of 50 spans.
    let mut sent: Vec<Span> = Vec::new();
    for (instance, traces) in [("i-1", 0..100u64), ("i-2", 100..200u64)] {
        let spans: Vec<Span> = traces
            .flat_map(|t| request_and_call(t, instance, base))
            .collect();
        for chunk in spans.chunks(50) {
            let resources = vec![(
                format!("res-{instance}"),
                format!(r#"{{"host.name":"{instance}"}}"#),
            )];
            writer
                .queue()
                .write(span_writes(p, chunk.to_vec(), &resources))
                .await
                .unwrap();
        }
        sent.extend(spans);
    }
    // Trace 5 continues in another service, in a later export, with one span sent twice (an
    // exporter retry).
    let mut downstream = request_and_call(5, "i-9", base)[0].clone();
    downstream.service = "payments".into();
    downstream.span_id = "00000000000000ff".into();
    downstream.parent_span_id = Some(request_and_call(5, "i-1", base)[1].span_id.clone());
    downstream.start_ns += 2_000_000;
    downstream.resource = "res-pay".into();
    for _ in 0..2 {
        writer
            .queue()
            .write(span_writes(p, vec![downstream.clone()], &[]))
            .await
            .unwrap();
    }

    let projects = [p];
    let trace5 = query::trace(&f.store, &projects, &sent[10].trace_id)
        .await
        .unwrap();
    let names: Vec<(&str, &str)> = trace5
        .iter()
        .map(|s| (s.service.as_str(), s.category.as_str()))
        .collect();
    assert_eq!(
        names,
        [("shop", "request"), ("shop", "db"), ("payments", "request")],
        "the whole trace, in start order, the retried span once"
    );
    assert_eq!(
        trace5[0].detail["resource"]["host.name"], "i-1",
        "resource attached"
    );
    assert_eq!(trace5[0].detail["attributes"]["user.tier"], "free");
    assert!(query::trace(&f.store, &[p + 1], &sent[10].trace_id)
        .await
        .unwrap()
        .is_empty());
    assert!(
        query::trace(&f.store, &projects, "0123456789abcdef0123456789abcdef")
            .await
            .unwrap()
            .is_empty()
    );
    // The same answer once the pending trace keys (2 instances x 4 exports, and the 2 of
    // the downstream service) have moved into the index.
    assert_eq!(
        trace_index::index_pending(&f.store).await.unwrap(),
        2 * 4 + 2
    );
    assert_eq!(trace_index::index_pending(&f.store).await.unwrap(), 0);
    let indexed = query::trace(&f.store, &projects, &sent[10].trace_id)
        .await
        .unwrap();
    assert_eq!(
        indexed.iter().map(|s| &s.span_id).collect::<Vec<_>>(),
        trace5.iter().map(|s| &s.span_id).collect::<Vec<_>>()
    );

    let window = (base - 60_000, base + 3_600_000);
    let search = |q: SpanSearch<'static>| {
        let store = f.store.clone();
        async move { query::search(&store, &q).await.unwrap() }
    };
    let ids = |rows: &[query::SpanRow]| rows.iter().map(|s| s.span_id.clone()).collect::<Vec<_>>();
    let projects: &'static [i64] = Box::leak(Box::new([p]));
    let base_q = SpanSearch {
        projects,
        since: window.0,
        until: window.1,
        limit: 7,
        ..SpanSearch::default()
    };
    let shop_requests: Vec<&Span> = sent
        .iter()
        .filter(|s| s.category == Category::Request)
        .collect();

    // Newest requests of shop.
    let mut expect: Vec<&Span> = shop_requests.clone();
    expect.sort_by_key(|s| std::cmp::Reverse(s.start_ns));
    let got = search(SpanSearch {
        service: Some("shop"),
        category: Some("request"),
        ..base_q.clone()
    })
    .await;
    assert_eq!(
        ids(&got),
        expect[..7]
            .iter()
            .map(|s| s.span_id.clone())
            .collect::<Vec<_>>()
    );

    // Slowest database calls over 20 ms (the slow query log).
    let mut expect: Vec<&Span> = sent
        .iter()
        .filter(|s| s.category == Category::Db && s.duration_ns >= 20_000_000)
        .collect();
    expect.sort_by_key(|s| (std::cmp::Reverse(s.duration_ns), s.start_ns));
    let got = search(SpanSearch {
        category: Some("db"),
        min_duration_ms: Some(20.0),
        slowest_first: true,
        limit: 500,
        ..base_q.clone()
    })
    .await;
    assert_eq!(got.len(), expect.len());
    assert_eq!(
        got.iter().map(|s| s.duration_ns).collect::<Vec<_>>(),
        expect.iter().map(|s| s.duration_ns).collect::<Vec<_>>()
    );
    assert!(got
        .iter()
        .all(|s| s.db_statement.as_deref() == Some(STATEMENT)));

    // Failed requests of one transaction with an attribute, in a window that cuts the data.
    let cut = (base + 150_000, base + 180_000);
    let expect: Vec<String> = {
        let mut v: Vec<&&Span> = shop_requests
            .iter()
            .filter(|s| s.error && s.operation == "GET /r0" && s.detail.contains("gold"))
            .filter(|s| s.start_ns >= cut.0 * 1_000_000 && s.start_ns < cut.1 * 1_000_000)
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.start_ns));
        v.iter().map(|s| s.span_id.clone()).collect()
    };
    assert!(!expect.is_empty());
    let got = search(SpanSearch {
        operation: Some("GET /r0"),
        error: Some(true),
        attribute: Some(("user.tier", "gold")),
        since: cut.0,
        until: cut.1,
        limit: 100,
        ..base_q.clone()
    })
    .await;
    assert_eq!(ids(&got), expect);
    assert!(search(SpanSearch {
        service: Some("nobody"),
        ..base_q.clone()
    })
    .await
    .is_empty());

    // Instances, from the block summaries.
    let instances = query::instances(&f.store, projects, "shop", window.0, window.1)
        .await
        .unwrap();
    for (name, range) in [("i-1", 0..100u64), ("i-2", 100..200u64)] {
        let i = instances.iter().find(|i| i.instance == name).unwrap();
        let mine: Vec<&Span> = shop_requests
            .iter()
            .copied()
            .filter(|s| s.instance.as_deref() == Some(name))
            .collect();
        assert_eq!(i.count, range.count() as i64);
        assert_eq!(i.errors, mine.iter().filter(|s| s.error).count() as i64);
        let avg = mine.iter().map(|s| s.duration_ns as f64).sum::<f64>() / mine.len() as f64 / 1e6;
        assert!((i.avg_ms - avg).abs() < 1e-6, "{} vs {avg}", i.avg_ms);
    }

    // The transactions behind the statement, once the rollup consumer has folded the parts.
    let rollups = RollupProcessor::new(f.store.clone(), "test");
    while rollups.poll_once().await.unwrap() > 0 {}
    let callers = query::statement_callers(&f.store, p, &[STATEMENT.to_string()], base - 3_600_000)
        .await
        .unwrap();
    let callers = &callers[STATEMENT];
    assert_eq!(callers.len(), 4, "{callers:?}");
    assert_eq!(callers.iter().map(|c| c.calls).sum::<i64>(), 200);
    let from_r1 = callers.iter().find(|c| c.transaction == "GET /r1").unwrap();
    let calls_r1: Vec<f64> = (0..200u64)
        .filter(|t| t % 4 == 1)
        .map(|t| (1 + (t * 13) % 50) as f64)
        .collect();
    assert_eq!(from_r1.calls, calls_r1.len() as i64);
    let avg = calls_r1.iter().sum::<f64>() / calls_r1.len() as f64;
    assert!(
        (from_r1.avg_ms - avg).abs() < 1e-9,
        "{} vs {avg}",
        from_r1.avg_ms
    );

    // Retention: everything stored is older than a cutoff in the future.
    let now = lookout_core::time::now_ms();
    let removed = query::purge(&f.store, now + 3 * 86_400_000, 0)
        .await
        .unwrap();
    assert!(removed > 0);
    assert!(query::trace(&f.store, projects, &sent[10].trace_id)
        .await
        .unwrap()
        .is_empty());
    assert!(search(base_q.clone()).await.is_empty());
    writer.shutdown().await;
}

/// A sender that puts one trace id in 2,001 exports: a view reads the first 2,000 blocks and
/// says it left the rest out, before and after the keys move into the index.
async fn a_trace_id_reused_in_thousands_of_exports_is_read_up_to_the_block_cap(f: Fixture) {
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let p = tenancy::ensure_default_project(&f.store)
        .await
        .unwrap()
        .0
        .id;
    let base = lookout_core::time::now_ms() - 3_600_000;
    let span = request_and_call(1, "i-1", base)[0].clone();
    let exports = 2_001u64;
    // One block per export (each its own span_writes), stored in a few large writes.
    let all: Vec<_> = (0..exports)
        .map(|i| {
            let mut s = span.clone();
            s.span_id = format!("{:016x}", 0x1000 + i);
            s.start_ns += i as i64;
            span_writes(p, vec![s], &[])
        })
        .collect();
    for group in all.chunks(500) {
        writer
            .queue()
            .write(group.iter().flatten().cloned().collect())
            .await
            .unwrap();
    }
    for indexed in [false, true] {
        if indexed {
            while trace_index::index_pending(&f.store).await.unwrap() > 0 {}
        }
        let t = query::trace_capped(&f.store, &[p], &span.trace_id)
            .await
            .unwrap();
        assert_eq!(t.spans.len(), 2_000, "indexed: {indexed}");
        assert!(t.truncated, "indexed: {indexed}");
        let distinct: std::collections::HashSet<_> = t.spans.iter().map(|s| &s.span_id).collect();
        assert_eq!(distinct.len(), 2_000, "each span once");
    }
    // A trace within the bounds is whole and not marked.
    let other = request_and_call(2, "i-1", base);
    writer
        .queue()
        .write(span_writes(p, other.to_vec(), &[]))
        .await
        .unwrap();
    let whole = query::trace_capped(&f.store, &[p], &other[0].trace_id)
        .await
        .unwrap();
    assert_eq!(whole.spans.len(), 2);
    assert!(!whole.truncated);
}

/// More than 5,000 exports wait for the indexer (it lags): a trace in the newest export is still
/// found, whole and not called too large, and the answer says the index is incomplete, so an
/// old trace not found yet is not reported as missing.
async fn a_new_trace_is_found_while_the_indexer_lags_and_not_called_too_large(f: Fixture) {
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let p = tenancy::ensure_default_project(&f.store)
        .await
        .unwrap()
        .0
        .id;
    let base = lookout_core::time::now_ms() - 3_600_000;
    // 5,001 exports of one span each, every one its own trace: 5,001 pending rows.
    let all: Vec<_> = (0..5_001u64)
        .map(|t| {
            span_writes(
                p,
                vec![request_and_call(100 + t, "i-1", base)[0].clone()],
                &[],
            )
        })
        .collect();
    for group in all.chunks(500) {
        writer
            .queue()
            .write(group.iter().flatten().cloned().collect())
            .await
            .unwrap();
    }
    let oldest = request_and_call(100, "i-1", base)[0].trace_id.clone();
    let newest = request_and_call(1, "i-1", base);
    writer
        .queue()
        .write(span_writes(p, newest.to_vec(), &[]))
        .await
        .unwrap();
    let t = query::trace_capped(&f.store, &[p], &newest[0].trace_id)
        .await
        .unwrap();
    assert_eq!(
        t.spans.len(),
        2,
        "the newest trace is found while the indexer lags"
    );
    assert!(!t.truncated, "a two-span trace is not too large");
    assert!(t.incomplete_index);
    let old = query::trace_capped(&f.store, &[p], &oldest).await.unwrap();
    assert!(
        old.spans.is_empty() && old.incomplete_index,
        "not found yet, and said so"
    );
    // Once indexed, the old trace is found and the index is complete.
    while trace_index::index_pending(&f.store).await.unwrap() > 0 {}
    let old = query::trace_capped(&f.store, &[p], &oldest).await.unwrap();
    assert_eq!(old.spans.len(), 1);
    assert!(!old.truncated && !old.incomplete_index);
    writer.shutdown().await;
}

/// Another project reuses a trace id in 2,001 exports before this project's one export of it:
/// this project's view finds its own span, whole, before and after indexing.
async fn another_projects_blocks_do_not_count_against_the_block_cap(f: Fixture) {
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let p = tenancy::ensure_default_project(&f.store)
        .await
        .unwrap()
        .0
        .id;
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    let other = tenancy::create_project(&f.store, org, "other", None, None)
        .await
        .unwrap()
        .id;
    let base = lookout_core::time::now_ms() - 3_600_000;
    let span = request_and_call(1, "i-1", base)[0].clone();
    let all: Vec<_> = (0..2_001u64)
        .map(|i| {
            let mut s = span.clone();
            s.span_id = format!("{:016x}", 0x1000 + i);
            span_writes(other, vec![s], &[])
        })
        .collect();
    for group in all.chunks(500) {
        writer
            .queue()
            .write(group.iter().flatten().cloned().collect())
            .await
            .unwrap();
    }
    writer
        .queue()
        .write(span_writes(p, vec![span.clone()], &[]))
        .await
        .unwrap();
    for indexed in [false, true] {
        if indexed {
            while trace_index::index_pending(&f.store).await.unwrap() > 0 {}
        }
        let t = query::trace_capped(&f.store, &[p], &span.trace_id)
            .await
            .unwrap();
        assert_eq!(t.spans.len(), 1, "indexed: {indexed}");
        assert!(!t.truncated, "indexed: {indexed}");
    }
    writer.shutdown().await;
}
