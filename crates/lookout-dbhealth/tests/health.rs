//! Database health against real PostgreSQL, no mocked catalog: a private cluster with
//! pg_stat_statements preloaded gets a schema with a missing, an unused, a duplicate and an
//! invalid index, a sequence near its limit, a table full of dead rows, a long query and an idle
//! transaction; each finding is asserted, and a verification rule fails before `CREATE INDEX` and
//! passes after. The machine's shared server (no pg_stat_statements) gives the hint to add it.

use std::time::Duration;

use lookout_dbhealth::{check, verify, Finding, Options, Report};
use lookout_testkit::{PgCluster, PgDatabase};
use sqlx::{Connection, Executor, PgConnection};

fn find<'a>(r: &'a Report, kind: &str, object: &str) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.kind == kind && f.object == object)
        .unwrap_or_else(|| panic!("no {kind} finding for {object}: {:#?}", r.findings))
}

const RULES: &str = r#"
verify:
  - name: open orders use the status index
    query: "SELECT * FROM orders WHERE status = 'open'"
    uses_index: orders_status_idx
  - name: open orders never scan the table
    query: "SELECT * FROM orders WHERE status = 'open'"
    no_seq_scan: public.orders
    rows_examined_below: 5000
  - name: a customer's orders are cheap
    query: "SELECT * FROM orders WHERE customer_id = 42"
    cost_below: 1000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_problem_is_found_and_verification_follows_create_index() {
    let pg = PgCluster::start(&["shared_preload_libraries=pg_stat_statements"]);
    let url = pg.url("postgres");
    let mut c = PgConnection::connect(&url).await.unwrap();
    c.execute(
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                              total numeric NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO orders (customer_id, status, total)
           SELECT i % 2000, CASE WHEN i % 100 = 0 THEN 'open' ELSE 'paid' END, i % 500
           FROM generate_series(1, 60000) i;
         CREATE INDEX orders_total_idx ON orders (total);
         CREATE INDEX orders_customer_idx ON orders (customer_id);
         CREATE INDEX orders_customer_created_idx ON orders (customer_id, created_at);
         CREATE TABLE dupes (v int); INSERT INTO dupes VALUES (1), (1);
         CREATE TABLE events (id serial PRIMARY KEY, kind text);
         SELECT setval('events_id_seq', 2000000000);
         CREATE TABLE churn (id int PRIMARY KEY, n int) WITH (autovacuum_enabled = false);
         INSERT INTO churn SELECT i, 0 FROM generate_series(1, 10000) i;
         UPDATE churn SET n = n + 1; UPDATE churn SET n = n + 1;
         ANALYZE orders;",
    )
    .await
    .unwrap();
    // A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind.
    assert!(c
        .execute("CREATE UNIQUE INDEX CONCURRENTLY dupes_v_key ON dupes (v)")
        .await
        .is_err());
    // Load: the status filter scans the whole table each time; customers go through an index.
    for i in 0..150 {
        sqlx::query("SELECT count(*) FROM orders WHERE status = $1")
            .bind(if i % 2 == 0 { "open" } else { "refunded" })
            .fetch_one(&mut c)
            .await
            .unwrap();
        sqlx::query("SELECT count(*) FROM orders WHERE customer_id = $1")
            .bind(i)
            .fetch_one(&mut c)
            .await
            .unwrap();
    }
    c.close().await.unwrap();
    // A long query and an idle transaction, seen by the check while they last.
    let mut busy = PgConnection::connect(&url).await.unwrap();
    let sleeper = tokio::spawn(async move {
        let _ = busy.execute("SELECT pg_sleep(6)").await;
    });
    let mut idle = PgConnection::connect(&url).await.unwrap();
    idle.execute("BEGIN; SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let opt = Options {
        slow_ms: 1.0,
        slow_calls: 50,
        long_running_s: 2.0,
        ..Options::default()
    };
    let rules = verify::parse(RULES).unwrap();
    let r = check(&url, &opt, &rules).await.unwrap();

    let slow = find(
        &r,
        "slow_query",
        &format!(
            "query {}",
            r.slow_queries
                .iter()
                .find(|q| q.query.contains("status = $1"))
                .unwrap()
                .queryid
        ),
    );
    assert!(slow.detail.contains("calls"), "{slow:?}");
    let missing = find(&r, "missing_index", "public.orders");
    assert!(missing.detail.contains("filter on status"), "{missing:?}");
    assert!(missing
        .detail
        .contains("CREATE INDEX CONCURRENTLY ON public.orders (status)"));
    let unused = find(&r, "unused_index", "public.orders_total_idx");
    assert!(unused.detail.contains("scanned 0 times"), "{unused:?}");
    assert!(
        r.findings.iter().all(|f| f.object != "public.orders_pkey"),
        "unique indexes are never unused"
    );
    let dup = find(&r, "duplicate_index", "public.orders_customer_idx");
    assert!(
        dup.detail
            .contains("is a leading prefix of orders_customer_created_idx"),
        "{dup:?}"
    );
    let invalid = find(&r, "invalid_index", "public.dupes_v_key");
    assert!(
        invalid
            .detail
            .contains("DROP INDEX CONCURRENTLY public.dupes_v_key"),
        "{invalid:?}"
    );
    let seq = find(&r, "sequence_overflow", "public.events_id_seq");
    assert!(seq.detail.contains("public.events.id (integer)"), "{seq:?}");
    find(&r, "vacuum_overdue", "public.churn");
    let long = r
        .findings
        .iter()
        .find(|f| f.kind == "long_running_query")
        .expect("long query");
    assert!(long.detail.contains("pg_sleep(6)"), "{long:?}");
    assert!(
        r.findings.iter().any(|f| f.kind == "idle_in_transaction"),
        "{:#?}",
        r.findings
    );

    // Before the index: both status rules fail, naming the scan; the customer rule holds.
    assert_eq!(r.verifications.len(), 3);
    let v = &r.verifications;
    assert!(
        !v[0].passed
            && v[0]
                .detail
                .contains("does not use orders_status_idx: Seq Scan on orders"),
        "{v:?}"
    );
    assert!(
        v[0].detail.contains("orders_status_idx is not used: it cannot serve this query as written, or does not exist"),
        "{v:?}"
    );
    assert!(
        !v[1].passed && v[1].detail.contains("scans public.orders sequentially"),
        "{v:?}"
    );
    assert!(
        v[1].detail.contains("rows examined, not below 5000"),
        "{v:?}"
    );
    assert!(v[2].passed, "{v:?}");
    assert!(!r.verified());

    let mut c = PgConnection::connect(&url).await.unwrap();
    c.execute("CREATE INDEX orders_status_idx ON orders (status); ANALYZE orders;")
        .await
        .unwrap();
    let r = check(&url, &opt, &rules).await.unwrap();
    assert!(r.verified(), "{:#?}", r.verifications);
    assert!(r.verifications[0].detail.contains("uses orders_status_idx"));
    drop(idle);
    sleeper.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pg_stat_statements_the_report_says_how_to_add_it() {
    let db = PgDatabase::create().await;
    let r = check(db.url(), &Options::default(), &[]).await.unwrap();
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == "extension_missing")
        .expect("hint");
    assert!(f.detail.contains("shared_preload_libraries"), "{f:?}");
    assert!(r.slow_queries.is_empty());
}
