//! Prometheus rules on the real binary: a rule file uploaded through the API (and checked by the
//! real `promtool check rules`), samples pushed by remote write, a recording rule's series
//! compared with PromQL on the raw data, an alert going pending → firing after `for` and
//! opening one incident per label set (not again on later evaluations), resolved when its
//! condition clears; the `/prometheus/api/v1/rules` and `/alerts` shapes; a restart in the
//! middle of `for`; two replicas on PostgreSQL opening an incident once.

use lookout_protocol::remote_write::encode;
use lookout_testkit::client::Body;
use lookout_testkit::{eventually, Backend, TestServer};
use reqwest::Method;
use serde_json::Value;

use super::{get, lookout_core_now, series, write};

/// Every rule group is evaluated every second in these tests.
const ENV: &[(&str, &str)] = &[("LOOKOUT_RULES_EVALUATION_INTERVAL", "1s")];

fn rule_file(for_: &str) -> String {
    format!(
        r#"groups:
  - name: rooms
    interval: 1s
    rules:
      - record: room:temp:doubled
        expr: temp * 2
        labels:
          source: rule
      - alert: Hot
        expr: temp > 20
        for: {for_}
        labels:
          severity: critical
        annotations:
          summary: "Room {{{{ $labels.room }}}} is {{{{ $value }}}} degrees"
          hottest: '{{{{ with query "max(temp)" }}}}{{{{ . | first | value }}}}{{{{ end }}}} of {{{{ query "count(temp)" | first | value | humanize }}}}'
"#
    )
}

/// `promtool check rules` on `text`: it must pass. Without promtool the check is skipped,
/// except under CI=true, where a missing tool is a failure.
fn promtool_check(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, text).unwrap();
    match std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool refused the rule file: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is missing under CI: {e}"
            );
            eprintln!("promtool not installed; rule file not checked by it");
        }
    }
}

async fn upload(s: &TestServer, token: Option<&str>, file: &str, text: &str) -> (u16, Value) {
    let c = match token {
        Some(t) => s.anon().bearer(t),
        None => s.client(),
    };
    let r = c
        .send(
            Method::PUT,
            &format!("/api/v1/prometheus/rules?file={file}"),
            Body::Raw {
                content_type: "application/yaml".into(),
                bytes: text.as_bytes().to_vec(),
            },
        )
        .await;
    let status = r.status.as_u16();
    let body = serde_json::from_str(&r.text()).unwrap_or(Value::Null);
    (status, body)
}

async fn push_temps(s: &TestServer, t: i64, rooms: &[(&str, f64)]) {
    let all: Vec<_> = rooms
        .iter()
        .map(|(room, v)| series(&[("__name__", "temp"), ("room", room)], &[(t, *v)]))
        .collect();
    let r = write(
        s,
        ("authorization", &format!("Bearer {}", s.admin_token)),
        "application/x-protobuf",
        encode::v1(&all, &[]),
    )
    .await;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
}

async fn rules_api(s: &TestServer) -> Value {
    let (status, v) = get(s, "/prometheus/api/v1/rules").await;
    assert_eq!(status, 200, "{v}");
    v
}

fn hot_rule(v: &Value) -> Value {
    v["data"]["groups"][0]["rules"][1].clone()
}

fn group_last_eval(v: &Value) -> String {
    v["data"]["groups"][0]["lastEvaluation"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ms_of(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// Waits until the group was evaluated `n` more times after `after` (ms).
async fn evaluations_after(s: &TestServer, after: i64, n: i64) -> Value {
    eventually(format!("{n} evaluations after {after}"))
        .secs(30)
        .until(
            || rules_api(s),
            |v| ms_of(&group_last_eval(v)) >= after + n * 1000,
        )
        .await
}

async fn rule_incidents(s: &TestServer) -> Vec<Value> {
    let all = s.client().get("/api/v1/incidents").await.expect(200);
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["title"].as_str().is_some_and(|t| t.starts_with("Hot: ")))
        .cloned()
        .collect()
}

async fn rules_record_fire_and_resolve(backend: Backend) {
    let s = TestServer::start_with_env(crate::bin(), backend, ENV).await;
    // `for: 1h` first, so the alert stays pending however slowly the machine runs.
    let text = rule_file("1h");
    promtool_check(&text);
    let (status, v) = upload(&s, None, "rooms.yml", &text).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["groups"].as_i64(), v["rules"].as_i64()),
        (Some(1), Some(2))
    );
    let now = lookout_core_now();
    push_temps(&s, now, &[("a", 30.0), ("b", 10.0), ("c", 25.0)]).await;

    // The alert goes pending for a and c (b is cool).
    let v = eventually("Hot to be pending")
        .secs(30)
        .until(|| rules_api(&s), |v| hot_rule(v)["state"] == "pending")
        .await;
    let hot = hot_rule(&v);
    assert_eq!(hot["type"], "alerting");
    assert_eq!(hot["duration"], 3600.0);
    assert_eq!(hot["health"], "ok");
    assert_eq!(hot["alerts"].as_array().unwrap().len(), 2, "{hot:#}");
    let a = &hot["alerts"][0];
    assert_eq!(a["labels"]["alertname"], "Hot");
    assert_eq!(a["labels"]["room"], "a");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["annotations"]["summary"], "Room a is 30 degrees");
    // `query` in a template: the runner evaluated both queries and expanded again.
    assert_eq!(a["annotations"]["hottest"], "30 of 3", "{a:#}");
    assert_eq!(a["value"], "3e+01");
    let active_at = ms_of(a["activeAt"].as_str().unwrap());
    // A few more evaluations while pending: still nothing opened.
    evaluations_after(&s, ms_of(&group_last_eval(&v)), 2).await;
    assert!(rule_incidents(&s).await.is_empty(), "pending opens nothing");
    // `for` lowered to 2s: the rule's identity ignores `for`, so the alert keeps its activeAt
    // (long past 2s) and fires at the next evaluation.
    let (status, v) = upload(&s, None, "rooms.yml", &rule_file("2s")).await;
    assert_eq!(status, 200, "{v}");
    let v = eventually("Hot to fire")
        .secs(30)
        .until(|| rules_api(&s), |v| hot_rule(v)["state"] == "firing")
        .await;
    let hot = hot_rule(&v);
    assert_eq!(
        ms_of(hot["alerts"][0]["activeAt"].as_str().unwrap()),
        active_at,
        "the edit of `for` kept activeAt: {hot:#}"
    );
    let fired_eval = ms_of(hot["lastEvaluation"].as_str().unwrap());
    assert!(
        fired_eval - active_at >= 2_000,
        "fired only after `for`: {hot:#}"
    );

    // /alerts lists the same alerts.
    let (status, alerts) = get(&s, "/prometheus/api/v1/alerts").await;
    assert_eq!(status, 200);
    let listed = alerts["data"]["alerts"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{alerts:#}");
    assert!(listed.iter().all(|a| a["state"] == "firing"));

    // One incident per label set, titled as an Alertmanager alert would be.
    let incidents = eventually("two incidents")
        .secs(30)
        .poll(|| async {
            let i = rule_incidents(&s).await;
            if i.len() == 2 {
                Ok(i)
            } else {
                Err(i)
            }
        })
        .await;
    let mut titles: Vec<&str> = incidents
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        ["Hot: Room a is 30 degrees", "Hot: Room c is 25 degrees"]
    );
    assert!(incidents.iter().all(|i| i["severity"] == "critical"));
    assert_eq!(incidents[0]["details"]["labels"]["alertname"], "Hot");
    // Later evaluations while it keeps firing open nothing new.
    evaluations_after(&s, fired_eval, 3).await;
    let again = rule_incidents(&s).await;
    assert_eq!(again.len(), 2, "{again:#?}");
    assert!(again.iter().all(|i| i["alert_count"] == 1), "{again:#?}");

    // The recording rule's series equal `temp * 2` on the raw data, with the rule's labels.
    let v = rules_api(&s).await;
    let t = ms_of(&group_last_eval(&v)) as f64 / 1000.0;
    let (_, recorded) = get(
        &s,
        &format!("/prometheus/api/v1/query?query=room:temp:doubled&time={t}"),
    )
    .await;
    let (_, raw) = get(
        &s,
        &format!("/prometheus/api/v1/query?query=temp*2&time={t}"),
    )
    .await;
    let by_room = |v: &Value| {
        let mut out: Vec<(String, String)> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metric"]["room"].as_str().unwrap().to_string(),
                    r["value"][1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(by_room(&recorded), by_room(&raw), "{recorded:#}");
    assert_eq!(by_room(&recorded).len(), 3);
    let r0 = &recorded["data"]["result"][0]["metric"];
    assert_eq!(r0["__name__"], "room:temp:doubled");
    assert_eq!(r0["source"], "rule");
    let rec = &v["data"]["groups"][0]["rules"][0];
    assert_eq!(
        (rec["type"].as_str(), rec["health"].as_str()),
        (Some("recording"), Some("ok"))
    );
    // ALERTS is written as Prometheus writes it.
    let (_, alerts_series) = get(
        &s,
        &format!("/prometheus/api/v1/query?query=ALERTS&time={t}"),
    )
    .await;
    let res = alerts_series["data"]["result"].as_array().unwrap();
    assert_eq!(res.len(), 2, "{alerts_series:#}");
    assert!(res.iter().all(|r| r["metric"]["alertstate"] == "firing"));

    // The rooms cool down: the alerts resolve, and so do their incidents.
    push_temps(&s, lookout_core_now(), &[("a", 15.0), ("c", 15.0)]).await;
    eventually("both incidents resolved")
        .secs(30)
        .poll(|| async {
            let i = rule_incidents(&s).await;
            if i.len() == 2 && i.iter().all(|i| i["status"] == "resolved") {
                Ok(i)
            } else {
                Err(i)
            }
        })
        .await;
    let v = rules_api(&s).await;
    assert_eq!(hot_rule(&v)["state"], "inactive");
    let (_, alerts) = get(&s, "/prometheus/api/v1/alerts").await;
    assert_eq!(alerts["data"]["alerts"].as_array().unwrap().len(), 0);
}

lookout_testkit::both!(rules_record_fire_and_resolve);

/// A group's `query_offset` evaluates its queries that far in the past and records there: with
/// a 30 s offset the rule sees the temperature of a minute ago (10), not the one just pushed
/// (50), and its samples are 30 s before the evaluation. (Not given to promtool: Debian's is
/// older than Prometheus 2.53, which added the field.)
#[tokio::test]
async fn a_query_offset_evaluates_in_the_past() {
    let s = TestServer::start_with_env(crate::bin(), Backend::Sqlite, ENV).await;
    let now = lookout_core_now();
    push_temps(&s, now - 60_000, &[("a", 10.0)]).await;
    push_temps(&s, now, &[("a", 50.0)]).await;
    let text = "groups:\n  - name: late\n    interval: 1s\n    query_offset: 30s\n    rules:\n      - record: room:temp:late\n        expr: temp * 2\n";
    let (status, v) = upload(&s, None, "late.yml", text).await;
    assert_eq!(status, 200, "{v}");
    let v = evaluations_after(&s, now, 2).await;
    let last = ms_of(&group_last_eval(&v));
    let at = |t: i64| {
        let s = &s;
        async move {
            let (_, v) = get(
                s,
                &format!(
                    "/prometheus/api/v1/query?query=room:temp:late&time={}",
                    t as f64 / 1000.0
                ),
            )
            .await;
            v["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_string)
        }
    };
    // The newest sample recorded at or before `last` - 30 s is the one of the evaluation at
    // `last`: without the offset nothing would be recorded that early.
    assert_eq!(at(last - 30_000).await.as_deref(), Some("20"));
    // And nothing before the first evaluation's offset time.
    assert_eq!(at(now - 31_000).await, None);
}

/// A restart in the middle of `for` keeps when the alert became active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_for_state() {
    let mut s = TestServer::start_with_env(crate::bin(), Backend::Sqlite, ENV).await;
    let (status, _) = upload(&s, None, "rooms.yml", &rule_file("1h")).await;
    assert_eq!(status, 200);
    push_temps(&s, lookout_core_now(), &[("a", 30.0)]).await;
    let v = eventually("Hot to be pending")
        .secs(30)
        .until(|| rules_api(&s), |v| hot_rule(v)["state"] == "pending")
        .await;
    let active_at = hot_rule(&v)["alerts"][0]["activeAt"].clone();
    let before = ms_of(&group_last_eval(&v));
    s.restart();
    // The restarted process takes its shards back once their leases (10 s) expire.
    let v = eventually("evaluations after the restart")
        .secs(60)
        .until(
            || rules_api(&s),
            |v| ms_of(&group_last_eval(v)) >= before + 2_000,
        )
        .await;
    let hot = hot_rule(&v);
    assert_eq!(hot["state"], "pending", "{hot:#}");
    assert_eq!(
        hot["alerts"][0]["activeAt"], active_at,
        "the restart did not reset `for`"
    );
}

/// Two replicas on one PostgreSQL database: each group is evaluated by one of them, and a
/// firing alert opens one incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_open_an_incident_once() {
    let all = TestServer::replicas_together(crate::bin(), 2, ENV).await;
    let s = &all[0];
    let (status, _) = upload(s, None, "rooms.yml", &rule_file("1s")).await;
    assert_eq!(status, 200);
    push_temps(s, lookout_core_now(), &[("a", 30.0)]).await;
    let first = eventually("an incident")
        .secs(40)
        .poll(|| async {
            let i = rule_incidents(s).await;
            if i.is_empty() {
                Err(i)
            } else {
                Ok(i)
            }
        })
        .await;
    assert_eq!(first.len(), 1, "{first:#?}");
    let v = rules_api(&all[1]).await;
    evaluations_after(&all[1], ms_of(&group_last_eval(&v)), 3).await;
    let again = rule_incidents(s).await;
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["alert_count"], 1, "{again:#?}");
}

/// `rule_files:` in the config file: loaded at start, owned by the file (the API may not change
/// it), and a file that does not parse is not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_files_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rules.yml"), rule_file("1m")).unwrap();
    std::fs::write(
        dir.path().join("b.rules.yml"),
        "groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: sum(\n",
    )
    .unwrap();
    let glob = dir.path().join("*.rules.yml");
    let s = TestServer::start_with_config(
        crate::bin(),
        Backend::Sqlite,
        &format!("rule_files = [{:?}]\n", glob.to_str().unwrap()),
    )
    .await;
    let list = s.client().get("/api/v1/prometheus/rules").await.expect(200);
    let files = list.as_array().unwrap();
    assert_eq!(files.len(), 1, "the bad file is not applied: {list:#}");
    assert!(files[0]["name"].as_str().unwrap().ends_with("a.rules.yml"));
    assert_eq!(files[0]["managed_by"], "config");
    assert_eq!(files[0]["rules"], 2);
    let name = files[0]["name"].as_str().unwrap().to_string();
    let (status, v) = upload(&s, None, &name, &rule_file("5m")).await;
    assert_eq!(status, 409, "{v}");
    let v = rules_api(&s).await;
    assert_eq!(v["data"]["groups"][0]["name"], "rooms");
}

/// Editing a firing rule's expression starts it afresh, as Prometheus does: the old version's
/// incident is resolved rather than left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_rule_resolves_what_its_old_version_fired() {
    let s = TestServer::start_with_env(crate::bin(), Backend::Sqlite, ENV).await;
    let (status, _) = upload(&s, None, "rooms.yml", &rule_file("0s")).await;
    assert_eq!(status, 200);
    push_temps(&s, lookout_core_now(), &[("a", 30.0)]).await;
    let inc = eventually("an incident")
        .secs(30)
        .poll(|| async {
            let i = rule_incidents(&s).await;
            i.first().cloned().ok_or(i)
        })
        .await;
    assert_eq!(inc["status"], "triggered");
    let (status, _) = upload(
        &s,
        None,
        "rooms.yml",
        &rule_file("0s").replace("temp > 20", "temp > 40"),
    )
    .await;
    assert_eq!(status, 200);
    eventually("the old version's incident resolved")
        .secs(30)
        .poll(|| async {
            let i = rule_incidents(&s).await;
            if i.len() == 1 && i[0]["status"] == "resolved" {
                Ok(i)
            } else {
                Err(i)
            }
        })
        .await;
    let v = rules_api(&s).await;
    assert_eq!(hot_rule(&v)["state"], "inactive");
    // It fires again, and the file is deleted: its incident is resolved with it.
    let (status, _) = upload(&s, None, "rooms.yml", &rule_file("0s")).await;
    assert_eq!(status, 200);
    eventually("a new incident")
        .secs(30)
        .poll(|| async {
            let i = rule_incidents(&s).await;
            if i.iter().any(|i| i["status"] == "triggered") {
                Ok(i)
            } else {
                Err(i)
            }
        })
        .await;
    let r = s
        .client()
        .delete("/api/v1/prometheus/rules?file=rooms.yml")
        .await;
    assert_eq!(r.status.as_u16(), 204);
    let i = rule_incidents(&s).await;
    assert_eq!(i.len(), 2, "{i:#?}");
    assert!(i.iter().all(|i| i["status"] == "resolved"), "{i:#?}");
}

/// Renaming (or removing) a group whose alert fires resolves its incident in the same write as
/// the upload: the old group's state is deleted with it, so nothing else would resolve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_group_resolves_what_it_fired() {
    let s = TestServer::start_with_env(crate::bin(), Backend::Sqlite, ENV).await;
    let (status, _) = upload(&s, None, "rooms.yml", &rule_file("0s")).await;
    assert_eq!(status, 200);
    push_temps(&s, lookout_core_now(), &[("a", 30.0)]).await;
    let inc = eventually("an incident")
        .secs(30)
        .poll(|| async {
            let i = rule_incidents(&s).await;
            i.first().cloned().ok_or(i)
        })
        .await;
    assert_eq!(inc["status"], "triggered");
    // Without the alert rule and under another group name: the old group is gone.
    let renamed = "groups:\n  - name: lounges\n    interval: 1s\n    rules:\n      - record: x:doubled\n        expr: temp * 2\n";
    let (status, v) = upload(&s, None, "rooms.yml", renamed).await;
    assert_eq!(status, 200, "{v}");
    let i = rule_incidents(&s).await;
    assert_eq!(i.len(), 1, "{i:#?}");
    assert_eq!(
        i[0]["status"], "resolved",
        "resolved with the upload: {i:#?}"
    );
    let v = rules_api(&s).await;
    let groups = v["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{v:#}");
    assert_eq!(groups[0]["name"], "lounges");
}

/// The busiest rule shard's lease: (owner, writes committed under it). Every write of an
/// evaluation is a fenced batch that advances `seq`, so `seq` counts the group's evaluations.
async fn rule_lease(url: &str) -> (String, i64) {
    let pool = sqlx::PgPool::connect(url).await.expect("the test database");
    let row: (Option<String>, i64) = sqlx::query_as(
        "SELECT owner, seq FROM leases WHERE name LIKE 'rules.shard.%' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (row.0.unwrap_or_default(), row.1)
}

/// The group's last evaluation and the lease's write count read together (the count read
/// before and after is the same).
async fn evaluations_snapshot(s: &TestServer, url: &str) -> (i64, String, i64) {
    loop {
        let (_, before) = rule_lease(url).await;
        let t = ms_of(&group_last_eval(&rules_api(s).await));
        let (owner, after) = rule_lease(url).await;
        if before == after {
            return (t, owner, after);
        }
    }
}

/// Two replicas on PostgreSQL, the lease holder killed in the middle of `for`: the group is
/// evaluated once per slot (two fenced writes per evaluation: the recording rule's samples,
/// then the alert state), the survivor takes it over with the alert's activeAt kept, and when
/// the alert fires one trigger is sent (rules send a trigger only when an alert starts firing,
/// so the incident counts each one it receives: a second would make alert_count 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_in_the_middle_of_for_keeps_it_and_triggers_once() {
    let mut all = TestServer::replicas_together(crate::bin(), 2, ENV).await;
    let url = all[0].database_url().unwrap().to_string();
    let (status, _) = upload(&all[0], None, "rooms.yml", &rule_file("1h")).await;
    assert_eq!(status, 200);
    push_temps(&all[0], lookout_core_now(), &[("a", 30.0)]).await;
    let v = eventually("Hot to be pending")
        .secs(30)
        .until(|| rules_api(&all[0]), |v| hot_rule(v)["state"] == "pending")
        .await;
    let active_at = hot_rule(&v)["alerts"][0]["activeAt"].clone();

    // Once per slot: the writes grow by two per evaluated slot, give or take the one
    // evaluation that may be between its two writes at either snapshot.
    let (t1, owner, seq1) = evaluations_snapshot(&all[0], &url).await;
    evaluations_after(&all[0], t1, 3).await;
    let (t2, _, seq2) = evaluations_snapshot(&all[0], &url).await;
    let slots = (t2 - t1) / 1000;
    assert!(slots >= 3);
    assert!(
        (seq2 - seq1 - 2 * slots).abs() <= 1,
        "{} writes for {slots} evaluated slots",
        seq2 - seq1
    );

    // Kill the replica evaluating the group.
    let holder = (0..2)
        .find(|i| owner.contains(&format!("-{}-", all[*i].pid().unwrap_or(0))))
        .unwrap_or_else(|| panic!("no replica holds the lease: {owner}"));
    let survivor = 1 - holder;
    let killed_at = ms_of(&group_last_eval(&rules_api(&all[survivor]).await));
    all[holder].kill9();
    let s = &all[survivor];
    // The survivor takes the shard once the dead replica's lease (10 s) expires.
    let v = eventually("evaluations by the survivor")
        .secs(60)
        .until(
            || rules_api(s),
            |v| ms_of(&group_last_eval(v)) >= killed_at + 2_000,
        )
        .await;
    let hot = hot_rule(&v);
    assert_eq!(hot["state"], "pending", "{hot:#}");
    assert_eq!(
        hot["alerts"][0]["activeAt"], active_at,
        "the failover did not reset `for`"
    );

    // `for` lowered: the kept activeAt makes it fire at once, with one trigger.
    let (status, _) = upload(s, None, "rooms.yml", &rule_file("2s")).await;
    assert_eq!(status, 200);
    let v = eventually("Hot to fire")
        .secs(30)
        .until(|| rules_api(s), |v| hot_rule(v)["state"] == "firing")
        .await;
    evaluations_after(s, ms_of(&group_last_eval(&v)), 3).await;
    let i = rule_incidents(s).await;
    assert_eq!(i.len(), 1, "{i:#?}");
    assert_eq!(i[0]["alert_count"], 1, "one trigger: {i:#?}");
}
