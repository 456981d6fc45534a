//! Dashboards as code on the real binary: `lookout apply -f` creates and then replaces by slug,
//! a file with a bad query changes nothing and says where; the API exports YAML that imports
//! back as it was; the config file's `dashboards:` are applied at start; `lookout pack install
//! golden-signals` adds 8 policies with runbooks and 4 dashboards once, and the pack's policies'
//! queries are accepted by the server's own checks.

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use crate::bin;

lookout_testkit::both!(dashboards_apply_export_import_and_the_pack);

const ONE: &str = "name: Checkout\ndescription: Checkout service\nfilters:\n  - attribute: appName\npages:\n  - name: Overview\n    widgets:\n      - {title: Requests, type: line, query: \"SELECT count(*) FROM Transaction FACET appName TIMESERIES\"}\n      - {title: Errors, type: billboard, query: \"SELECT count(*) FROM ErrorEvent\", thresholds: {warning: 1, critical: 10}}\n      - {title: Notes, type: markdown, text: \"**Owner:** payments team\", width: 12}\n";

fn apply(s: &TestServer, dir: &std::path::Path, name: &str, text: &str) -> std::process::Output {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    s.command()
        .arg("apply")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap()
}

async fn dashboards_apply_export_import_and_the_pack(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lookout.yaml");
    std::fs::write(
        &config,
        "dashboards:\n  - name: From config\n    pages:\n      - name: One\n        widgets:\n          - {title: Checks, type: table, query: \"SELECT count(*) FROM SyntheticCheck FACET monitorName\"}\n",
    )
    .unwrap();
    let s =
        TestServer::start_with(bin(), backend, &[], &["--config", config.to_str().unwrap()]).await;
    let list = s.client().get("/api/v1/dashboards").await.expect(200);
    assert_eq!(list["items"][0]["slug"], "from-config");
    assert_eq!(list["items"][0]["managed_by"], "config");

    // Applied from the command line, twice: created, then configured.
    let out = apply(&s, dir.path(), "checkout.yaml", ONE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dashboard/checkout created\n"
    );
    let out = apply(
        &s,
        dir.path(),
        "checkout.yaml",
        &ONE.replace("Checkout service", "Checkout, v2"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dashboard/checkout configured\n"
    );
    // A bad query anywhere in the file: nothing saved, and the place named.
    let bad = format!(
        "{ONE}---\n{}",
        ONE.replace("Checkout", "Broken")
            .replace("FROM ErrorEvent", "FROM")
    );
    let out = apply(&s, dir.path(), "bad.yaml", &bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pages[0].widgets[1].query: line 1, column"),
        "{err}"
    );
    let list = s.client().get("/api/v1/dashboards").await.expect(200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let checkout = items.iter().find(|d| d["slug"] == "checkout").unwrap();
    assert_eq!(checkout["spec"]["description"], "Checkout, v2");

    // Export as YAML, import it back (replaces by slug), unchanged.
    let id = checkout["id"].as_i64().unwrap();
    let yaml = s
        .admin_client()
        .get(s.at(&format!("/api/v1/dashboards/{id}?format=yaml")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        yaml.contains("type: billboard") && yaml.contains("critical: 10"),
        "{yaml}"
    );
    let r = s
        .admin_client()
        .post(s.at("/api/v1/dashboards"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let back: Value = r.json().await.unwrap();
    assert_eq!(back["spec"], checkout["spec"]);
    let r = s
        .admin_client()
        .post(s.at("/api/v1/dashboards"))
        .header("content-type", "application/yaml")
        .body("name: x\npages: []\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Deleting: gone once, then 404.
    let back_id = back["id"].as_i64().unwrap();
    for want in [204, 404] {
        let r = s
            .admin_client()
            .delete(s.at(&format!("/api/v1/dashboards/{back_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want);
    }

    // The pack, from the command line: once, then kept. With two escalation policies it pages
    // the one named; a name that does not exist is refused before anything is installed.
    let mut night = 0;
    for name in ["Ops", "Night"] {
        let ep = s
            .client()
            .post(
                "/api/v1/escalation-policies",
                json!({"name": name, "escalation_rules": [{"escalation_delay_in_minutes": 5,
                        "targets": [{"type": "user", "id": 1}]}]}),
            )
            .await
            .expect(201);
        night = ep["id"].as_i64().unwrap();
    }
    let refused = s
        .command()
        .args([
            "pack",
            "install",
            "golden-signals",
            "--escalation-policy",
            "Nobody",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no escalation policy \"Nobody\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = s
        .command()
        .args([
            "pack",
            "install",
            "golden-signals",
            "--escalation-policy",
            "night",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("its alert policies page the escalation policy \"Night\""),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let policies = s.client().get("/api/v1/policies").await.expect(200);
    let names: Vec<&str> = policies["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    for n in [
        "High error rate",
        "p95 latency above target",
        "Apdex drop",
        "Throughput drop",
        "Monitor down",
        "Slow database queries",
        "New or regressed error issue",
        "Heartbeat or backup missed",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    assert!(
        policies["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["runbook_id"].is_i64() && p["escalation_policy_id"] == night),
        "each has its runbook and pages Night"
    );
    let list = s.client().get("/api/v1/dashboards").await.expect(200);
    let slugs: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["slug"].as_str())
        .collect();
    for slug in ["service-overview", "database", "uptime", "errors"] {
        assert!(slugs.contains(&slug), "{slug} in {slugs:?}");
    }
    let again = s
        .command()
        .args(["pack", "install", "golden-signals"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        !text.contains("created") && text.matches("kept as it is").count() == 12,
        "{text}"
    );
    let out = s
        .command()
        .args(["pack", "install", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The pack's policies went through the API's checks too: saving one back is accepted.
    let p = &policies["items"][0];
    let r = s
        .admin_client()
        .put(s.at(&format!("/api/v1/policies/{}", p["id"])))
        .json(p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
