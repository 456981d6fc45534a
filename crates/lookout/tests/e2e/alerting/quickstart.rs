//! docs/alerting.md's quick start, run as written: the `sh` block under "## Quick start" is read
//! from the file (so the document and this test cannot drift), pointed at a test server with a
//! member's token, run with `sh` and the real curl, and every answer checked — the five objects
//! made, then the schedule answering who is on call and the integration URL accepting an
//! Alertmanager notification.

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use crate::bin;

/// The first ```sh block after `## Quick start`.
fn quick_start() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/alerting.md");
    let doc = std::fs::read_to_string(path).expect("docs/alerting.md");
    let section = doc
        .split_once("## Quick start")
        .expect("a Quick start section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("a sh block in the quick start")
        .1;
    block
        .split_once("\n```")
        .expect("the sh block ends")
        .0
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_quick_start_runs_as_written() {
    let s = TestServer::start(bin(), Backend::Sqlite).await;
    let admin = s.client();
    // The users the quick start names (2, 3, 4 and 5; the bootstrap admin is 1).
    let mut ids = Vec::new();
    for who in ["ana", "ben", "cem", "lead"] {
        ids.push(admin.user(&format!("{who}@example.com"), "member").await);
    }
    assert_eq!(ids, [2, 3, 4, 5], "the quick start's user ids");
    let token = admin.token("member").await;

    let script = quick_start().replace("http://127.0.0.1:8800", &s.url);
    assert_eq!(
        script.matches("curl ").count(),
        5,
        "the quick start makes five calls:\n{script}"
    );
    let out = tokio::process::Command::new("sh")
        .arg("-ec")
        .arg(&script)
        .env("TOKEN", &token)
        .output()
        .await
        .expect("run sh");
    assert!(
        out.status.success(),
        "the quick start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // curl -s prints each answer as it comes, without separators.
    let answers: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(answers.len(), 5, "{answers:#?}");
    for a in &answers {
        assert!(a["id"].is_i64(), "every call answers what it made: {a}");
    }
    let (channel, schedule, escalation, policy, integration) = (
        &answers[0],
        &answers[1],
        &answers[2],
        &answers[3],
        &answers[4],
    );
    assert_eq!(channel["type"], "ntfy");
    assert_eq!(channel["user_id"], 2);
    assert_eq!(schedule["time_zone"], "Europe/Berlin");
    assert_eq!(escalation["num_loops"], 2);
    assert_eq!(policy["escalation_policy_id"], escalation["id"]);
    assert_eq!(integration["type"], "alertmanager");

    // The rotation hands off Mondays 09:00 Berlin time: on Monday 2026-01-12 at 07:59Z (08:59
    // local) the first turn's user (2) is still on call, at 08:00Z the second (3).
    let sid = schedule["id"].as_i64().unwrap();
    let at = |t: &str| format!("/api/v1/schedules/{sid}/oncall?at={t}");
    assert_eq!(
        admin.get(&at("2026-01-12T07:59:00Z")).await.expect(200)["user"]["id"],
        2
    );
    assert_eq!(
        admin.get(&at("2026-01-12T08:00:00Z")).await.expect(200)["user"]["id"],
        3
    );

    // "The answer holds the webhook URL": Alertmanager's notification opens an incident there.
    let url = integration["url"].as_str().expect("the integration's url");
    let path = url
        .split_once("/integrations/")
        .map(|(_, rest)| format!("/integrations/{rest}"))
        .expect("an /integrations/ URL");
    let alert = json!({"version": "4", "status": "firing", "receiver": "lookout",
        "groupKey": "{}:{alertname=\"Down\"}", "groupLabels": {"alertname": "Down"},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": "Down", "severity": "critical"},
            "annotations": {"summary": "shop is down"}, "startsAt": "2026-01-12T08:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc123"}]});
    let r = s.anon().post(&path, alert).await;
    assert!(r.status.is_success(), "{r:?}");
    let list = admin.get("/api/v1/incidents").await.expect(200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
}
