//! Query (NRQL) alert conditions on the real binary: a policy whose condition is refused with
//! the reason when its query or settings cannot be; spans sent with OTLP breach the critical
//! threshold for one service and not the other, which opens one critical incident for that
//! facet with the breach in its details; when the service's spans stop, the recovery period
//! passes and the incident resolves itself.

use std::time::Duration;

use lookout_testkit::{eventually, Backend, TestServer};
use prost::Message;
use serde_json::{json, Value};

use super::{export, now_ns, post, request};

async fn send(s: &TestServer, service: &str, ms: u64, from_ns: u64, n: u64, first: u64) {
    // One request every 5 s from `from_ns`.
    let spans = (0..n)
        .map(|i| request(first + i, "/pay", ms, 200, from_ns + i * 5_000_000_000))
        .collect();
    let r = post(
        s,
        export(service, spans).encode_to_vec(),
        "application/x-protobuf",
        false,
    )
    .await;
    assert_eq!(r.status(), 200);
}

async fn policy(s: &TestServer, condition: Value) -> (u16, Value) {
    let conditions = match condition {
        Value::Array(many) => many,
        one => vec![one],
    };
    let (st, v) = s
        .client()
        .post(
            "/api/v1/policies",
            json!({"name": "Slow services", "conditions": conditions}),
        )
        .await
        .parts();
    (st.as_u16(), v)
}

async fn incidents(s: &TestServer) -> Vec<Value> {
    let v = s.client().get("/api/v1/incidents").await.json;
    v["items"].as_array().cloned().unwrap_or_default()
}

pub(super) async fn a_query_condition_opens_and_resolves_an_incident_per_facet(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let nrql = "SELECT average(duration) FROM Transaction FACET appName";
    let above = |v: f64| json!({"operator": "above", "value": v});
    // Refused, each with its reason.
    for (bad, says) in [
        (
            json!({"source": "nrql", "nrql": "SELECT average(duration) FROM", "critical": above(1.0)}),
            "line 1, column",
        ),
        (
            json!({"source": "nrql", "nrql": nrql, "window_seconds": 20, "critical": above(1.0)}),
            "window_seconds",
        ),
        (
            json!({"source": "nrql", "nrql": format!("{nrql} LIMIT 3"), "critical": above(1.0)}),
            "LIMIT",
        ),
        (
            json!({"source": "nrql", "nrql": nrql}),
            "at least one threshold",
        ),
        (
            json!({"source": "nrql", "nrql": "SELECT funnel(host) FROM Transaction", "critical": above(1.0)}),
            "nrql",
        ),
        (
            json!({"source": "nrql", "nrql": "SELECT uniques(host) FROM Transaction", "critical": above(1.0)}),
            "no number",
        ),
        (
            json!({"source": "nrql", "nrql": nrql, "critical": {"operator": "over", "value": 1}}),
            "over",
        ),
    ] {
        let (status, v) = policy(&s, bad).await;
        assert_eq!(status, 422, "{v}");
        assert!(v.to_string().contains(says), "{says}: {v}");
    }
    // Average above 200 ms (0.2 s), at least once in a minute, on minute windows (the rollups);
    // and the slowest request above 300 ms on 30-second windows (the raw spans). Both are
    // evaluated 5 s after a window ends.
    let (status, p) = policy(
        &s,
        json!([{"source": "nrql", "nrql": nrql, "window_seconds": 60, "delay_seconds": 5,
                "critical": {"operator": "above", "value": 0.2, "duration_seconds": 60,
                             "occurrences": "at_least_once"}},
               {"source": "nrql", "nrql": "SELECT max(duration) FROM Transaction FACET appName",
                "window_seconds": 30, "delay_seconds": 5,
                "critical": {"operator": "above", "value": 0.3, "occurrences": "at_least_once"}}]),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    // Three minutes of history up to now: checkout takes 500 ms, search 20 ms.
    let from = now_ns() - 180_000_000_000;
    send(&s, "checkout", 500, from, 36, 0).await;
    send(&s, "search", 20, from, 36, 1000).await;

    let (slow, slowest) = eventually("both incidents for checkout")
        .secs(120)
        .every(Duration::from_millis(500))
        .poll(|| async {
            let list = incidents(&s).await;
            let on = |what: &str| {
                list.iter()
                    .find(|i| {
                        i["title"]
                            .as_str()
                            .is_some_and(|t| t.contains("checkout") && t.contains(what))
                    })
                    .cloned()
            };
            match (on("average duration"), on("max duration")) {
                (Some(avg), Some(max)) => Ok((avg, max)),
                _ => Err(list),
            }
        })
        .await;
    for (i, condition) in [(&slow, 0), (&slowest, 1)] {
        assert_eq!(i["severity"], "critical");
        assert_eq!(i["policy_id"], p["id"]);
        let d = &i["details"];
        assert_eq!(d["event"], "nrql.breach");
        assert_eq!(d["payload"]["signal"], "checkout");
        assert_eq!(d["payload"]["condition"], condition);
        assert!(
            (d["payload"]["value"].as_f64().unwrap() - 0.5).abs() < 1e-9,
            "{d}"
        );
    }
    assert!(
        slow["title"]
            .as_str()
            .unwrap()
            .contains("500 ms above 200 ms"),
        "{slow}"
    );
    assert!(
        incidents(&s)
            .await
            .iter()
            .all(|i| !i["title"].as_str().unwrap_or_default().contains("search")),
        "search stayed fast"
    );
    // No more spans: a window without a breach is the recovery period; both resolve themselves.
    for id in [
        slow["id"].as_i64().unwrap(),
        slowest["id"].as_i64().unwrap(),
    ] {
        let v = crate::alerting::wait_incident(&s, id, 240, |v| v["status"] == "resolved").await;
        let kinds = crate::alerting::timeline_types(&v);
        assert!(kinds.iter().any(|k| k == "auto_resolved"), "{kinds:?}");
    }
    // One incident per condition for checkout, none for search, however many windows passed.
    let all = incidents(&s).await;
    assert_eq!(all.len(), 2, "{all:?}");
}
