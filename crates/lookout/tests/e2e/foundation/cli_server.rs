//! The verbs that act on a server's data — `user create`, `token create`, `pack install`,
//! `query`, `report`, `apply` (and `backup now`, which has no `--server`) — run from a directory that is not the server's: with `--server` and a
//! token (flags or `LOOKOUT_URL`/`LOOKOUT_TOKEN`) they change and read the running server's data
//! through its API; without, they refuse a data directory that does not exist, naming it and
//! how to point at the server, and create nothing (unless `--create`).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use crate::bin;

lookout_testkit::both!(cli_verbs_act_through_the_server_given,);

/// `lookout ARGS` in `cwd` with nothing in its environment but `env` (no data directory, no
/// database URL: what a shell outside the server's directory has).
fn lookout(cwd: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(bin());
    c.current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn cli_verbs_act_through_the_server_given(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let cwd = elsewhere.path();
    let flags = [
        "--server",
        s.url.as_str(),
        "--token",
        s.admin_token.as_str(),
    ];
    let with = |args: &[&'static str]| -> Vec<&str> {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(flags);
        v
    };

    // user create: the user can log in to the server.
    let out = lookout(
        cwd,
        &[],
        &with(&[
            "user",
            "create",
            "--email",
            "remote@example.com",
            "--role",
            "member",
            "--password-stdin",
        ]),
        Some("a good password\n"),
    );
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Created user remote@example.com (member)")
    );
    let users = s.client().get("/api/v1/users").await.expect(200);
    assert!(
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == "remote@example.com" && u["role"] == "member"),
        "{users}"
    );

    // token create, with the server and token from the environment: the token works there.
    let env = [
        ("LOOKOUT_URL", s.url.as_str()),
        ("LOOKOUT_TOKEN", s.admin_token.as_str()),
    ];
    let token = ok(&lookout(
        cwd,
        &env,
        &["token", "create", "--name", "ci", "--role", "viewer"],
        None,
    ));
    let token = token.trim();
    assert!(token.starts_with("lk_"), "{token}");
    let me: Value = reqwest::Client::new()
        .get(s.at("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "viewer");

    // pack install: the server has the pack's policies; a second install keeps them.
    let text = ok(&lookout(
        cwd,
        &[],
        &with(&["pack", "install", "golden-signals"]),
        None,
    ));
    assert_eq!(
        text.matches(" created (with its runbook)").count(),
        8,
        "{text}"
    );
    let policies = s.client().get("/api/v1/policies").await.expect(200);
    assert_eq!(policies["items"].as_array().unwrap().len(), 8);
    let again = ok(&lookout(
        cwd,
        &env,
        &["pack", "install", "golden-signals"],
        None,
    ));
    assert!(
        !again.contains("created") && again.matches("kept as it is").count() == 12,
        "{again}"
    );
    let nope = lookout(cwd, &env, &["pack", "install", "nope"], None);
    assert!(!nope.status.success());

    // query: the server's answer, and its refusal with exit 2.
    let out = ok(&lookout(
        cwd,
        &[],
        &with(&["query", "--json", "SELECT count(*) FROM Transaction"]),
        None,
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"], json!([[null]]), "{v}");
    let bad = lookout(
        cwd,
        &env,
        &["query", "SELECT count(* FROM Transaction"],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 1, column 16"));

    // report: the server's report, in each form.
    let out = ok(&lookout(
        cwd,
        &[],
        &with(&["report", "daily", "--json"]),
        None,
    ));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["kind"], "daily", "{report}");
    let text = ok(&lookout(cwd, &env, &["report", "weekly"], None));
    assert!(text.contains("== Errors =="), "{text}");
    let html = ok(&lookout(cwd, &env, &["report", "monthly", "--html"], None));
    assert!(html.starts_with("<!doctype html>"));

    // A token the server does not accept, or none, is an error that says so.
    let out = lookout(
        cwd,
        &[
            ("LOOKOUT_URL", s.url.as_str()),
            ("LOOKOUT_TOKEN", "lk_wrong"),
        ],
        &["token", "create", "--name", "x"],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = lookout(
        cwd,
        &[],
        &[
            "query",
            "--server",
            &s.url,
            "SELECT count(*) FROM Transaction",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));

    // apply: dashboards as code saved on the server, created then configured.
    let files = tempfile::tempdir().unwrap();
    let dash = files.path().join("ops.yaml");
    std::fs::write(&dash, DASHBOARD).unwrap();
    let dash = dash.to_str().unwrap();
    let mut args = vec!["apply", "-f", dash];
    args.extend(flags);
    let out = ok(&lookout(cwd, &[], &args, None));
    assert_eq!(out, "dashboard/ops created\n");
    let out = ok(&lookout(cwd, &env, &["apply", "-f", dash], None));
    assert_eq!(out, "dashboard/ops configured\n");
    let list = s.client().get("/api/v1/dashboards").await.expect(200);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["slug"] == "ops"),
        "{list}"
    );

    // Nothing was written where the verbs ran.
    assert_eq!(entries(cwd), Vec::<String>::new());
}

/// A one-widget dashboard for `lookout apply`.
const DASHBOARD: &str = "name: Ops\npages:\n  - name: One\n    widgets:\n      - {title: Requests, type: billboard, query: \"SELECT count(*) FROM Transaction\"}\n";

/// Outside the server's directory, without --server, each verb refuses the data directory that
/// does not exist and creates nothing; `--create` makes one for a fresh install.
#[test]
fn cli_verbs_refuse_a_data_directory_that_does_not_exist() {
    let empty = tempfile::tempdir().unwrap();
    let cwd = empty.path();
    // The dashboard file and the backup directory live elsewhere: cwd must stay empty.
    let files = tempfile::tempdir().unwrap();
    let dash = files.path().join("ops.yaml");
    std::fs::write(&dash, DASHBOARD).unwrap();
    let backups = files.path().join("backups");
    for (args, stdin) in [
        (vec!["apply", "-f", dash.to_str().unwrap()], None),
        (
            vec!["backup", "now", "--backup-dir", backups.to_str().unwrap()],
            None,
        ),
        (vec!["query", "SELECT count(*) FROM Transaction"], None),
        (vec!["report", "daily"], None),
        (vec!["pack", "install", "golden-signals"], None),
        (
            vec![
                "user",
                "create",
                "--email",
                "a@example.com",
                "--password-stdin",
            ],
            Some("a good password\n"),
        ),
        (vec!["token", "create", "--name", "ci"], None),
    ] {
        let out = lookout(cwd, &[], &args, stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(&format!(
                "the data directory lookout-data (in {}) does not exist",
                cwd.display()
            )) && err.contains("--data-dir")
                && err.contains("--server"),
            "{args:?}: {err}"
        );
        assert_eq!(
            entries(cwd),
            Vec::<String>::new(),
            "{args:?} created something"
        );
    }
    // A named directory (or SQLite file) is refused by its path.
    let out = lookout(
        cwd,
        &[("LOOKOUT_DATA_DIR", "/nonexistent/lookout")],
        &["query", "SELECT count(*) FROM Transaction"],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lookout"));
    let out = lookout(
        cwd,
        &[],
        &["--database-url", "sqlite://gone.db", "report", "daily"],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("gone.db"));
    assert_eq!(entries(cwd), Vec::<String>::new());

    assert!(!backups.exists(), "backup now made its directory");

    // A fresh install may create it when asked to.
    let token = ok(&lookout(
        cwd,
        &[],
        &["token", "create", "--name", "first", "--create"],
        None,
    ));
    assert!(token.trim().starts_with("lk_"));
    assert!(cwd.join("lookout-data").join("lookout.db").exists());
    // Then the directory exists and the verbs work on it.
    ok(&lookout(
        cwd,
        &[],
        &["query", "SELECT count(*) FROM Transaction"],
        None,
    ));
    let out = ok(&lookout(
        cwd,
        &[],
        &["apply", "-f", dash.to_str().unwrap()],
        None,
    ));
    assert_eq!(out, "dashboard/ops created\n");
    let out = ok(&lookout(
        cwd,
        &[],
        &["backup", "now", "--backup-dir", backups.to_str().unwrap()],
        None,
    ));
    assert!(out.starts_with("Snapshot written: run "), "{out}");
    // backup list reads its times and sizes as the other tables do.
    let out = ok(&lookout(
        cwd,
        &[],
        &["backup", "list", "--backup-dir", backups.to_str().unwrap()],
        None,
    ));
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Restorable from ")
            && first.contains(" UTC to ")
            && first.ends_with(" UTC."),
        "{out}"
    );
}
