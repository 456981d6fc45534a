//! The command line and configuration layering.

use std::io::Write as _;
use std::process::Stdio;

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use crate::{bin, json_of};

lookout_testkit::both!(the_cli_creates_users_and_tokens_the_server_accepts,);

async fn the_cli_creates_users_and_tokens_the_server_accepts(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let mut child = s
        .command()
        .args([
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--role",
            "member",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a good password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let short = s
        .command()
        .args([
            "user",
            "create",
            "--email",
            "x@example.com",
            "--password",
            "short",
        ])
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    let out = s
        .command()
        .args([
            "token",
            "create",
            "--name",
            "deploy-bot",
            "--role",
            "member",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("lk_") && !token.contains(char::is_whitespace));
    let (st, me) = json_of(
        reqwest::Client::new()
            .get(s.at("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st.as_u16(), me["role"].as_str()), (200, Some("member")));
    let (_, users) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/users"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ops = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ops@example.com")
        .cloned();
    assert_eq!(ops.map(|u| u["role"].clone()), Some(json!("member")));
    // The secret never reaches the database in the clear.
    if let Some(url) = s.database_url() {
        let dump = std::process::Command::new("pg_dump")
            .arg(url)
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&dump.stdout).contains(&token));
    } else {
        let db = std::fs::read(s.data_dir().join("lookout.db")).unwrap();
        let wal = std::fs::read(s.data_dir().join("lookout.db-wal")).unwrap_or_default();
        let needle = token.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle)
                && !wal.windows(needle.len()).any(|w| w == needle)
        );
    }
}

/// Flags beat `LOOKOUT_*` variables, which beat `lookout.toml`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_layers_flag_over_env_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lookout.toml");
    std::fs::write(&file, "public_url = \"https://from-file.example\"\n").unwrap();
    let cfg = file.to_str().unwrap();
    let from_file = TestServer::start_with(bin(), Backend::Sqlite, &[], &["--config", cfg]).await;
    assert!(
        from_file.dsn.starts_with("https://") && from_file.dsn.contains("@from-file.example/1"),
        "{}",
        from_file.dsn
    );
    let env = [("LOOKOUT_PUBLIC_URL", "https://from-env.example")];
    let from_env = TestServer::start_with(bin(), Backend::Sqlite, &env, &["--config", cfg]).await;
    assert!(
        from_env.dsn.contains("@from-env.example/1"),
        "{}",
        from_env.dsn
    );
    let from_flag = TestServer::start_with(
        bin(),
        Backend::Sqlite,
        &env,
        &["--config", cfg, "--public-url", "https://from-flag.example"],
    )
    .await;
    assert!(
        from_flag.dsn.contains("@from-flag.example/1"),
        "{}",
        from_flag.dsn
    );
    // A typo in the file is an error, not a silent default.
    std::fs::write(&file, "pubic_url = \"https://typo.example\"\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--config", cfg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pubic_url"));
}

#[test]
fn version_help_and_completions_work() {
    let v = std::process::Command::new(bin())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(v.stdout).unwrap().trim(),
        format!("lookout {}", env!("CARGO_PKG_VERSION"))
    );
    for verb in [
        &["serve", "--help"][..],
        &["user", "create", "--help"],
        &["token", "create", "--help"],
    ] {
        let h = std::process::Command::new(bin())
            .args(verb)
            .output()
            .unwrap();
        assert!(
            h.status.success() && String::from_utf8_lossy(&h.stdout).contains("Usage: lookout"),
            "{verb:?}"
        );
    }
    let bash = std::process::Command::new(bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_lookout()"));
}
