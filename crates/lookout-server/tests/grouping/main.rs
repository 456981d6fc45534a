//! One incident per problem, on SQLite and PostgreSQL: the golden-signals pack installed beside
//! a team's own policies (it pages the organization's only escalation policy and names the
//! policies it overlaps), then a new error issue, a missed heartbeat, a database finding first
//! matched by a policy that pages nobody, and a query condition whose figure goes warning →
//! critical → warning → clear. Each problem opens exactly one incident, paged once; the
//! finding's incident is routed when a paging policy matches it; the query's incident rises to
//! critical (paging again at high urgency), falls back to warning and resolves itself.
//!
//! In-process, so the query condition's windows are driven by the evaluator's own clock
//! argument rather than minutes of waiting; the events come from the real error processor,
//! the uptime runner's event shape and real spans through the real evaluator and consumer.

use serde_json::{json, Value};

use lookout_apm::span::{kind, Category, Span};
use lookout_core::time::now_ms;
use lookout_server::alerting::{policies, query, Alerting};
use lookout_server::query::dashboards::pack::{self, Escalation};
use lookout_store::alerting::{self as astore, incidents, outbox, ChannelInput, SpecTable};
use lookout_store::errors::process::{ingest_writes, ErrorProcessor};
use lookout_store::writer::WriterConfig;
use lookout_store::{events, tenancy, Backend, Store, Write, Writer};
use lookout_testkit::PgDatabase;

/// Query windows, ms.
const W: i64 = 30_000;

async fn write(w: &Writer, writes: Vec<Write>) {
    w.queue().write(writes).await.unwrap();
}

/// Applies every pending domain event to the policies.
async fn consume(a: &Alerting) {
    while policies::poll_once(a, "test").await.unwrap() > 0 {}
}

async fn open_incidents(store: &Store) -> Vec<incidents::IncidentRow> {
    let org = tenancy::default_org(store).await.unwrap().id;
    incidents::list(
        store,
        org,
        &incidents::ListFilter {
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// The pages queued for incident `id`, by event.
async fn pages(store: &Store, id: i64) -> Vec<String> {
    outbox::for_incident(store, id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.event)
        .collect()
}

fn request(n: u64, at: i64, ms: f64) -> Span {
    Span {
        trace_id: format!("{n:032x}"),
        span_id: format!("{n:016x}"),
        parent_span_id: None,
        service: "checkout".into(),
        instance: None,
        name: "GET /cart".into(),
        kind: kind::SERVER,
        start_ns: at * 1_000_000,
        duration_ns: (ms * 1e6) as i64,
        status: 0,
        error: false,
        category: Category::Request,
        operation: "GET /cart".into(),
        status_class: "2xx".into(),
        http_status: Some(200),
        db_system: None,
        db_statement: None,
        peer: None,
        resource: "0".into(),
        detail: "{}".into(),
    }
}

async fn setup(store: &Store) -> (i64, i64, i64) {
    let (project, _) = tenancy::ensure_default_project(store).await.unwrap();
    let org = tenancy::default_org(store).await.unwrap().id;
    let ch = astore::channel_create(
        store,
        org,
        &ChannelInput {
            name: "ops hook".into(),
            kind: "webhook".into(),
            config: json!({"url": "http://127.0.0.1:9/hook"}),
            user_id: None,
            urgencies: vec!["high".into(), "low".into()],
            enabled: true,
        },
    )
    .await
    .unwrap();
    let ep = astore::spec_create(
        store,
        SpecTable::EscalationPolicies,
        org,
        "Ops",
        &json!({"escalation_rules": [{"escalation_delay_in_minutes": 5,
                "targets": [{"type": "channel", "id": ch.id}]}]}),
    )
    .await
    .unwrap();
    let team = |name: &str, spec: Value| {
        let mut spec = spec;
        spec["escalation_policy_id"] = json!(ep.id);
        let name = name.to_string();
        async move {
            astore::spec_create(store, SpecTable::Policies, org, &name, &spec)
                .await
                .unwrap()
                .id
        }
    };
    team(
        "Team errors",
        json!({"conditions": [{"source": "errors", "event": "new_issue"}], "severity": "error"}),
    )
    .await;
    team(
        "Team heartbeats",
        json!({"conditions": [{"source": "monitor", "events": ["cron_missed"]}],
               "severity": "critical"}),
    )
    .await;
    let latency = team(
        "Checkout latency",
        json!({"conditions": [{"source": "nrql",
            "nrql": "SELECT average(duration) FROM Transaction FACET appName",
            "window_seconds": 30, "delay_seconds": 0,
            "critical": {"operator": "above", "value": 0.5, "duration_seconds": 30},
            "warning": {"operator": "above", "value": 0.2, "duration_seconds": 30}}]}),
    )
    .await;
    (project.id, ep.id, latency)
}

async fn one_incident_per_problem(store: &Store) {
    let (project, ep, latency) = setup(store).await;
    let a = Alerting::new(
        store.clone(),
        lookout_core::seal::Sealer::from_hex(&lookout_core::seal::Sealer::new_key_hex()).unwrap(),
        "https://lookout.example.com",
        Default::default(),
    );

    // The pack pages the only escalation policy and says which team policies it overlaps.
    let installed = pack::install_with(store, "golden-signals", &Escalation::Default)
        .await
        .unwrap();
    assert_eq!(installed.escalation_policy.as_ref().map(|e| e.id), Some(ep));
    assert_eq!(installed.policies_created.len(), 8);
    for team in ["Team errors", "Team heartbeats"] {
        assert!(
            installed.overlaps.iter().any(|o| o.contains(team)),
            "{team} overlap not named: {:?}",
            installed.overlaps
        );
    }
    assert!(installed.warnings.is_empty(), "{:?}", installed.warnings);

    // A new error issue: the team's policy and the pack's both match; one incident.
    let w = Writer::start(store.clone(), WriterConfig::default());
    let now = now_ms();
    let id = format!("{:032x}", 7);
    let event = json!({"event_id": id, "level": "error", "platform": "python",
        "timestamp": now as f64 / 1000.0,
        "exception": {"values": [{"type": "KeyError", "value": "cart",
            "stacktrace": {"frames": [{"filename": "app.py", "function": "pay", "lineno": 3,
                                       "in_app": true}]}}]}});
    write(
        &w,
        ingest_writes(
            project,
            now,
            vec![("event".into(), Some(id), event.to_string())],
            vec![],
        ),
    )
    .await;
    let processor = ErrorProcessor::new(store.clone(), "test");
    while processor.poll_once().await.unwrap() > 0 {}
    consume(&a).await;
    let list = open_incidents(store).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let issue = &list[0];
    assert!(
        issue.title.starts_with("New issue: KeyError"),
        "{}",
        issue.title
    );
    let matched: Vec<&str> = issue.details["policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(matched.len(), 2, "{matched:?}");
    assert!(matched.contains(&"Team errors") && matched.contains(&"New or regressed error issue"));
    assert_eq!(pages(store, issue.id).await, ["triggered"]);

    // A missed heartbeat, as the uptime runner announces it: one incident.
    write(
        &w,
        vec![events::publish(
            "cron.missed",
            Some(project),
            Some("42".into()),
            &json!({"monitor_id": 42, "name": "nightly-export", "type": "cron",
                    "target": "", "reason": "no ping within 1 day + 5 min grace",
                    "at": now, "failing_since": now}),
        )],
    )
    .await;
    consume(&a).await;
    let list = open_incidents(store).await;
    assert_eq!(list.len(), 2, "{list:#?}");
    let beat = list.iter().find(|i| i.id != issue.id).unwrap();
    assert!(beat.title.starts_with("nightly-export"), "{}", beat.title);
    assert_eq!(beat.severity, "critical");
    assert_eq!(pages(store, beat.id).await, ["triggered"]);

    // A database finding matched only by a policy that pages nobody opens an unrouted
    // incident; when a policy that pages somebody matches the same finding again, the incident
    // is routed to it and paged, still one incident.
    let org = tenancy::default_org(store).await.unwrap().id;
    astore::spec_create(
        store,
        SpecTable::Policies,
        org,
        "Quiet database",
        &json!({"conditions": [{"source": "database", "kinds": ["invalid_index"]}]}),
    )
    .await
    .unwrap();
    let finding = events::publish(
        "db.finding",
        None,
        Some("1".into()),
        &json!({"target_id": 1, "target": "main", "kind": "invalid_index",
                "object": "orders_idx", "detail": "index is invalid"}),
    );
    write(&w, vec![finding.clone()]).await;
    consume(&a).await;
    let db = open_incidents(store)
        .await
        .into_iter()
        .find(|i| i.source.as_deref() == Some("db:1:invalid_index:orders_idx"))
        .expect("the finding's incident");
    assert_eq!(db.escalation_policy_id, None);
    assert!(pages(store, db.id).await.is_empty());
    astore::spec_create(
        store,
        SpecTable::Policies,
        org,
        "Database pager",
        &json!({"conditions": [{"source": "database"}], "escalation_policy_id": ep}),
    )
    .await
    .unwrap();
    write(&w, vec![finding]).await;
    consume(&a).await;
    let list = open_incidents(store).await;
    let again: Vec<_> = list
        .iter()
        .filter(|i| i.source.as_deref() == Some("db:1:invalid_index:orders_idx"))
        .collect();
    assert_eq!(again.len(), 1, "{list:#?}");
    assert_eq!(again[0].escalation_policy_id, Some(ep));
    assert_eq!(pages(store, db.id).await, ["triggered"]);
    assert!(incidents::timeline(store, db.id)
        .await
        .unwrap()
        .iter()
        .any(|e| e.kind == "routed"));

    // The query condition: 300 ms, 700 ms, 300 ms, 50 ms in four windows.
    let t0 = (now / W) * W - 8 * W;
    let mut spans = Vec::new();
    for (k, ms) in [300.0, 700.0, 300.0, 50.0].into_iter().enumerate() {
        for i in 0..3 {
            let n = (k * 10 + i + 1) as u64;
            spans.push(request(n, t0 + k as i64 * W + 1_000 + i as i64 * 5_000, ms));
        }
    }
    write(
        &w,
        lookout_store::apm::span_writes(project, spans, &[("0".into(), "{}".into())]),
    )
    .await;
    let signal = |list: &[incidents::IncidentRow]| {
        list.iter().find(|i| i.policy_id == Some(latency)).cloned()
    };
    // The first pass starts at the window before t0; each next pass closes one window.
    query::run(store, t0 + 1_000).await.unwrap();
    let mut seen = Vec::new();
    for k in 1..=4 {
        query::run(store, t0 + k * W).await.unwrap();
        consume(&a).await;
        let list = open_incidents(store).await;
        let i = signal(&list).expect("the latency incident");
        seen.push((i.severity.clone(), i.urgency.clone(), i.status.clone()));
        assert_eq!(
            list.iter().filter(|x| x.policy_id == Some(latency)).count(),
            1,
            "one incident for the signal: {list:#?}"
        );
    }
    assert_eq!(
        seen,
        [
            ("warning".into(), "low".into(), "triggered".into()),
            ("critical".into(), "high".into(), "triggered".into()),
            ("warning".into(), "low".into(), "triggered".into()),
            ("warning".into(), "low".into(), "resolved".into()),
        ]
    );
    let list = open_incidents(store).await;
    assert_eq!(list.len(), 4, "four problems, four incidents: {list:#?}");
    let q = signal(&list).unwrap();
    assert!(
        q.title
            .starts_with("Checkout latency: checkout — average duration"),
        "{}",
        q.title
    );
    assert!(!q.title.contains("SELECT"), "{}", q.title);
    // Paged when it opened, again when it became critical (high urgency), and told when it
    // resolved.
    assert_eq!(
        pages(store, q.id).await,
        ["triggered", "priority_raised", "resolved"]
    );
    let kinds: Vec<String> = incidents::timeline(store, q.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "priority").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "auto_resolved"), "{kinds:?}");
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_problem_opens_one_incident_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let dir = tempfile::tempdir().unwrap();
        let pg;
        let url = match backend {
            Backend::Sqlite => Store::sqlite_url_for_dir(dir.path()),
            Backend::Postgres => {
                pg = PgDatabase::create().await;
                pg.url().to_string()
            }
        };
        let store = Store::open(&url).await.unwrap();
        one_incident_per_problem(&store).await;
        store.close().await;
    }
}
