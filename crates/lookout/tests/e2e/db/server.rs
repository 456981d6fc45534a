//! Database targets in the server: the connection string sealed and never shown, checks at once
//! and on demand with their reports and statement trends, `db.finding` only for new problems,
//! and an alert policy paging on an invalid index and a failed verification.

use lookout_testkit::{eventually, PgCluster, TestServer};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use crate::alerting::wait_any_incident;
use crate::json_of;

const RULES: &str = "verify:\n  - name: open orders use the status index\n    query: \"SELECT * FROM orders WHERE status = 'open'\"\n    uses_index: orders_status_idx\n";

/// Forty lookups of customers, through their index.
async fn load(c: &mut sqlx::PgConnection) {
    for i in 0..40 {
        sqlx::query("SELECT count(*) FROM orders WHERE customer_id = $1")
            .bind(i)
            .fetch_one(&mut *c)
            .await
            .unwrap();
    }
}

/// Waits until the target has `n` checks; the newest one's report.
/// The load's statement among a target's slow queries.
fn load_statement(slow: &Value) -> &Value {
    slow["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query"].as_str().unwrap().contains("customer_id = $1"))
        .expect("the load's statement")
}

async fn wait_checks(s: &TestServer, id: i64, n: usize) -> Value {
    crate::outbound::db_checks(s, id, n, 30).await;
    s.client()
        .get(&format!("/api/v1/db-targets/{id}/report"))
        .await
        .expect(200)
}

fn kinds(events: &Value) -> Vec<String> {
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "db.finding")
        .map(|e| {
            format!(
                "{}:{}",
                e["payload"]["kind"].as_str().unwrap(),
                e["payload"]["object"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_checked_trended_and_page_on_new_problems() {
    let pg = PgCluster::start(&["shared_preload_libraries=pg_stat_statements"]);
    let mut c = sqlx::PgConnection::connect(&pg.url("postgres"))
        .await
        .unwrap();
    c.execute(
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL);
         INSERT INTO orders (customer_id, status)
           SELECT i % 2000, CASE WHEN i % 100 = 0 THEN 'open' ELSE 'paid' END FROM generate_series(1, 30000) i;
         CREATE INDEX orders_customer_idx ON orders (customer_id);
         ANALYZE orders;
         CREATE TABLE dupes (v int); INSERT INTO dupes VALUES (1), (1);",
    )
    .await
    .unwrap();
    assert!(c
        .execute("CREATE UNIQUE INDEX CONCURRENTLY dupes_v_key ON dupes (v)")
        .await
        .is_err());

    load(&mut c).await;
    let s = TestServer::start(crate::bin(), lookout_testkit::Backend::Sqlite).await;
    s.client()
        .post(
            "/api/v1/policies",
            json!({"name": "DB", "severity": "critical", "conditions": [
            {"source": "database", "kinds": ["invalid_index", "verification_failed"]}]}),
        )
        .await
        .expect(201);
    let url = pg
        .url("postgres")
        .replacen("postgres@", "postgres:hunter2@", 1);
    let t = s
        .client()
        .post(
            "/api/v1/db-targets",
            json!({"name": "shop", "url": url, "verify": RULES}),
        )
        .await
        .expect(201);
    assert!(
        !t.to_string().contains("hunter2") && t.get("url").is_none(),
        "{t}"
    );
    assert_eq!(
        t["database"],
        format!("postgres@127.0.0.1:{}/postgres", pg.port)
    );
    let id = t["id"].as_i64().unwrap();

    let r = wait_checks(&s, id, 1).await;
    assert_eq!(r["ok"], true, "{r}");
    let report = &r["report"];
    let found: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(found.contains(&"invalid_index"), "{found:?}");
    assert_eq!(report["verifications"][0]["passed"], false);
    let events = s.client().get("/api/v1/events?limit=500").await.expect(200);
    let k = kinds(&events);
    assert!(
        k.contains(&"invalid_index:public.dupes_v_key".to_string()),
        "{k:?}"
    );
    assert!(
        k.contains(&"verification_failed:open orders use the status index".to_string()),
        "{k:?}"
    );
    let inc = wait_any_incident(&s, 10, |v| {
        v["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("shop: invalid index public.dupes_v_key"))
    })
    .await;
    assert_eq!(inc["severity"], "critical", "{inc}");

    // Load between checks (through the customer index, so no new problem appears) gives the
    // statements a trend; the same problems publish nothing new.
    load(&mut c).await;
    let (st, _) = json_of(
        s.admin_client()
            .post(s.at(&format!("/api/v1/db-targets/{id}/check")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 202);
    wait_checks(&s, id, 2).await;
    load(&mut c).await;
    s.admin_client()
        .post(s.at(&format!("/api/v1/db-targets/{id}/check")))
        .send()
        .await
        .unwrap();
    wait_checks(&s, id, 3).await;
    let same = kinds(&s.client().get("/api/v1/events?limit=500").await.expect(200));
    assert_eq!(
        same.len(),
        k.len(),
        "no new db.finding for old problems: {same:?}"
    );
    let slow = s
        .client()
        .get(&format!("/api/v1/db-targets/{id}/slow-queries"))
        .await
        .expect(200);
    let q = load_statement(&slow);
    let iv = q["intervals"].as_array().unwrap();
    assert_eq!(iv.len(), 2, "{q}");
    assert_eq!(iv[1]["calls"], 40, "{q}");
    assert!(iv[1]["mean_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(q["callers"], json!([]), "no APM data yet");

    // An application's trace with the same statement (a literal where PostgreSQL shows $1): the
    // statement now names the transaction that issued it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let span = |id: &str, parent: Option<&str>, kind: i64, attrs: Value| {
        json!({"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": id, "parentSpanId": parent.unwrap_or(""),
               "name": "x", "kind": kind, "startTimeUnixNano": now.to_string(),
               "endTimeUnixNano": (now + 5_000_000).to_string(), "attributes": attrs})
    };
    let kv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let body = json!({"resourceSpans": [{"resource": {"attributes": [kv("service.name", "crm")]},
    "scopeSpans": [{"spans": [
        span("b7ad6b7169203331", None, 2, json!([kv("http.request.method", "GET"), kv("http.route", "/customers/:id")])),
        span("b7ad6b7169203332", Some("b7ad6b7169203331"), 3, json!([kv("db.system", "postgresql"),
            kv("db.statement", "SELECT count(*) FROM orders WHERE customer_id = 17")])),
    ]}]}]});
    let r = reqwest::Client::new()
        .post(format!("{}/v1/traces", s.otlp_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Callers are counted as spans are rolled up, within a second or two.
    let slow_path = format!("/api/v1/db-targets/{id}/slow-queries");
    let q = eventually("the statement's callers")
        .secs(10)
        .until(
            || async { load_statement(&s.client().get(&slow_path).await.expect(200)).clone() },
            |q| q["callers"] != json!([]),
        )
        .await;
    assert_eq!(q["callers"][0]["service"], "crm", "{q}");
    assert_eq!(q["callers"][0]["transaction"], "GET /customers/:id", "{q}");
    assert_eq!(q["callers"][0]["calls"], 1, "{q}");

    // The fix makes the verification pass.
    c.execute("CREATE INDEX orders_status_idx ON orders (status); ANALYZE orders;")
        .await
        .unwrap();
    s.admin_client()
        .post(s.at(&format!("/api/v1/db-targets/{id}/check")))
        .send()
        .await
        .unwrap();
    let r = wait_checks(&s, id, 4).await;
    assert_eq!(r["report"]["verifications"][0]["passed"], true, "{r}");
    let list = s.client().get("/api/v1/db-targets").await.expect(200);
    assert_eq!(
        list["items"][0]["last_check"]["verifications_failed"], 0,
        "{list}"
    );

    // Bad input is refused; an unreachable database is a failed check, not a crash.
    for (body, needle) in [
        (
            json!({"name": "x", "url": "mysql://db/shop"}),
            "postgres://",
        ),
        (
            json!({"name": "x", "url": "postgres://h/db", "verify": "verify:\n  - name: y\n    query: SELECT 1\n"}),
            "verify",
        ),
        (
            json!({"name": "x", "url": "postgres://h/db", "interval_seconds": 5}),
            "interval_seconds",
        ),
        (json!({"name": "shop", "url": "postgres://h/db"}), "exists"),
    ] {
        let (st, v) = json_of(
            s.admin_client()
                .post(s.at("/api/v1/db-targets"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(st == 422 || st == 409, "{body}: {st} {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    let dead = s
        .client()
        .post(
            "/api/v1/db-targets",
            json!({"name": "gone", "url": "postgres://postgres:hunter2@127.0.0.1:1/none"}),
        )
        .await
        .expect(201);
    let r = wait_checks(&s, dead["id"].as_i64().unwrap(), 1).await;
    assert_eq!(r["ok"], false);
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("connecting to postgres@127.0.0.1:1/none") && !err.contains("hunter2"),
        "{err}"
    );
}
