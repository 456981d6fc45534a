//! `lookout db check` on the real PostgreSQL of this machine: the report, `--json`, exit codes for
//! CI (1 when a verification rule fails, 0 once `CREATE INDEX` makes it pass, 2 when the check
//! cannot run), and the password never printed.

use lookout_testkit::PgDatabase;
use serde_json::Value;
use sqlx::{Connection, Executor};

use crate::regress::{lookout, text};

mod server;

const RULES: &str = r#"
verify:
  - name: open orders use the status index
    query: "SELECT * FROM orders WHERE status = 'open'"
    uses_index: orders_status_idx
  - name: a customer's orders never scan the table
    query: "SELECT * FROM orders WHERE customer_id = 42"
    no_seq_scan: orders
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_check_reports_findings_and_fails_ci_until_the_index_exists() {
    let db = PgDatabase::create().await;
    let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
    c.execute(
        "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL);
         INSERT INTO orders (customer_id, status)
           SELECT i % 2000, CASE WHEN i % 100 = 0 THEN 'open' ELSE 'paid' END FROM generate_series(1, 30000) i;
         CREATE INDEX orders_customer_idx ON orders (customer_id);
         CREATE INDEX orders_customer_status_idx ON orders (customer_id, status);
         ANALYZE orders;",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("indexes.yaml");
    std::fs::write(&rules, RULES).unwrap();
    // trust auth accepts any password: one that must never be printed.
    let url = db.url().replacen("postgres@", "postgres:hunter2@", 1);
    let rules = rules.to_str().unwrap();

    let o = lookout(&["db", "check", &url, "--verify", rules]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", text(&o.stderr));
    assert!(out.contains("duplicate_index") && out.contains("orders_customer_idx on public.orders is a leading prefix of orders_customer_status_idx"), "{out}");
    assert!(out.contains("VERIFICATIONS (1 passed, 1 failed)"), "{out}");
    assert!(
        out.contains("FAIL  open orders use the status index"),
        "{out}"
    );
    assert!(
        out.contains("does not use orders_status_idx: Seq Scan on orders"),
        "{out}"
    );
    assert!(!out.contains("hunter2") && !text(&o.stderr).contains("hunter2"));

    let o = lookout(&["db", "check", &url, "--verify", rules, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<&str> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"duplicate_index") && kinds.contains(&"unused_index"),
        "{kinds:?}"
    );
    for f in j["findings"].as_array().unwrap() {
        for k in ["kind", "severity", "object", "detail"] {
            assert!(f[k].is_string(), "{f}");
        }
    }
    assert_eq!(j["verifications"][0]["passed"], false);
    assert_eq!(j["verifications"][1]["passed"], true);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("hunter2"));

    c.execute("CREATE INDEX orders_status_idx ON orders (status); ANALYZE orders;")
        .await
        .unwrap();
    let o = lookout(&["db", "check", &url, "--verify", rules]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("VERIFICATIONS (2 passed, 0 failed)"));

    // A broken rules file is refused before connecting; an unreachable server is not a pass.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "verify:\n  - name: x\n    query: SELECT 1\n",
    )
    .unwrap();
    let o = lookout(&[
        "db",
        "check",
        &url,
        "--verify",
        dir.path().join("bad.yaml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("at least one of uses_index"),
        "{}",
        text(&o.stderr)
    );
    let o = lookout(&[
        "db",
        "check",
        "postgres://postgres:hunter2@127.0.0.1:1/nothing",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("connecting to postgres@127.0.0.1:1/nothing") && !err.contains("hunter2"),
        "{err}"
    );
}
