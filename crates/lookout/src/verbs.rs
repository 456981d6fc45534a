//! The verbs that read or change a server's data — `query`, `report`, `apply`, `pack install`,
//! `user create`, `token create` — each two ways: through the running server's API (`--server` and
//! `--token`, with [`crate::remote::Client`]), or on the data directory or database itself,
//! which must exist unless `--create` ([`crate::config::existing_storage`]). Both ways print
//! the same thing.

use std::io::BufRead;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::cli::{CommonArgs, PackInstallArgs, TargetArgs};
use crate::config::{self, FileConfig, Storage};
use crate::query::{self, Answer};
use crate::remote::{Client, Refused};
use lookout_core::Role;
use lookout_server::query::dashboards::spec::Dashboard;
use lookout_store::{tenancy, Store};

/// Where a verb acts.
pub enum Target {
    /// Through this server's API.
    Server(Client),
    /// On this database, opened directly.
    Local(Storage),
}

impl Target {
    /// `--server` (or `LOOKOUT_URL`) when given, else the existing data directory or database.
    pub fn resolve(args: &TargetArgs, common: &CommonArgs, file: &FileConfig) -> Result<Target> {
        match &args.server {
            Some(url) => {
                if args.create {
                    bail!("--create makes a data directory; with --server {url} (or LOOKOUT_URL) the server's own data is used");
                }
                Ok(Target::Server(Client::from_flags(
                    url,
                    args.token.as_deref(),
                )?))
            }
            None => Ok(Target::Local(config::existing_storage(
                common,
                file,
                args.create,
            )?)),
        }
    }
}

async fn open(storage: &Storage) -> Result<Store> {
    Store::open(&storage.url)
        .await
        .with_context(|| format!("opening {}", storage.display))
}

/// How `lookout query` prints its answer.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// `lookout query`: the exit status (0, or 2 when the query does not parse or cannot run).
pub async fn query(
    target: &Target,
    nrql: &str,
    project: Option<i64>,
    format: Format,
    file: &FileConfig,
) -> Result<u8> {
    let answer = match target {
        Target::Server(client) => {
            match client
                .post(
                    &["api", "v1", "query"],
                    &json!({"nrql": nrql, "project": project}),
                )
                .await
            {
                Ok(v) => serde_json::from_value::<Answer>(v)
                    .context("the server's answer is not a query result")?,
                Err(e) => match e.downcast_ref::<Refused>() {
                    // The query's own fault (400, 422) or a busy server (503): as locally.
                    Some(r) if matches!(r.status.as_u16(), 400 | 422 | 503) => {
                        eprintln!("error: {}", r.message);
                        return Ok(2);
                    }
                    _ => return Err(e),
                },
            }
        }
        Target::Local(storage) => {
            use lookout_server::query::nrql::{self as nrql_run, QueryError};
            // The same limits as the server's queries (the `query` section).
            nrql_run::limits::configure(config::query_limits(file)?);
            let store = open(storage).await?;
            let projects = match project {
                Some(id) => tenancy::get_project(&store, id).await.map(|p| vec![p.id]),
                None => tenancy::project_ids(&store).await,
            };
            let result = match projects {
                Ok(projects) => {
                    nrql_run::run(&store, &projects, nrql, lookout_core::time::now_ms()).await
                }
                Err(e) => Err(QueryError::Store(e)),
            };
            store.close().await;
            match result {
                Ok(r) => Answer::of(&r)?,
                Err(QueryError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(2);
                }
            }
        }
    };
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&answer)? + "\n",
        Format::Csv => query::csv(&answer)?,
        Format::Table => query::table(&answer),
    };
    print!("{text}");
    for w in &answer.warnings {
        eprintln!("warning: {w}");
    }
    Ok(0)
}

/// `lookout report KIND`: `form` is `json`, `html` or `text`.
pub async fn report(
    target: &Target,
    kind: &str,
    end: Option<&str>,
    form: &str,
    file: &FileConfig,
) -> Result<()> {
    let storage = match target {
        Target::Server(client) => {
            let mut q = vec![("kind", kind), ("format", form)];
            if let Some(end) = end {
                q.push(("end", end));
            }
            let text = client.get_text(&["api", "v1", "reports"], &q).await?;
            if form == "json" {
                let v: Value = serde_json::from_str(&text).context("the report is not JSON")?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{text}");
            }
            return Ok(());
        }
        Target::Local(storage) => storage,
    };
    let now = lookout_core::time::now_ms();
    let end = match end {
        Some(e) => chrono::DateTime::parse_from_rfc3339(e.trim())
            .with_context(|| format!("--end {e:?} is not an RFC 3339 time"))?
            .timestamp_millis(),
        None => now,
    };
    let kind =
        lookout_server::reports::Kind::parse(kind).context("kind: daily, weekly or monthly")?;
    let base_url = file
        .public_url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8800".into());
    let store = open(storage).await?;
    let report = lookout_server::reports::build(
        &store,
        &lookout_server::reports::Request {
            kind,
            end,
            base_url: base_url.trim_end_matches('/').to_string(),
            now,
        },
    )
    .await;
    store.close().await;
    let report = report?;
    use lookout_server::reports::render;
    match form {
        "json" => println!("{}", serde_json::to_string_pretty(&report)?),
        "html" => print!("{}", render::html(&report, &report.base_url, None)),
        _ => print!("{}", render::text(&report)),
    }
    Ok(())
}

/// `lookout apply -f FILE`: each dashboard (already validated) created or replaced by its slug,
/// through `POST /api/v1/dashboards` or on the data directory; prints `dashboard/SLUG created`
/// or `configured` for each.
pub async fn apply(target: &Target, all: &[Dashboard]) -> Result<()> {
    match target {
        Target::Server(client) => {
            // The API creates or replaces by slug without saying which; the list before says.
            let before = client.get(&["api", "v1", "dashboards"], &[]).await?;
            let mut known: Vec<String> = before["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["slug"].as_str().map(str::to_string))
                .collect();
            for d in all {
                client
                    .post(&["api", "v1", "dashboards"], &serde_json::to_value(d)?)
                    .await
                    .with_context(|| format!("saving the dashboard {:?}", d.name))?;
                let slug = d.slug();
                let created = !known.contains(&slug);
                println!(
                    "dashboard/{slug} {}",
                    if created { "created" } else { "configured" }
                );
                known.push(slug);
            }
        }
        Target::Local(storage) => {
            let store = open(storage).await?;
            let mut saved = Ok(());
            for d in all {
                match lookout_server::query::dashboards::save(&store, d, None).await {
                    Ok((_, created)) => println!(
                        "dashboard/{} {}",
                        d.slug(),
                        if created { "created" } else { "configured" }
                    ),
                    Err(e) => {
                        saved = Err(anyhow!(e));
                        break;
                    }
                }
            }
            store.close().await;
            saved?;
        }
    }
    Ok(())
}

/// The body of `POST /api/v1/packs/{name}/install`: what the install asks for beyond the
/// pack's name, which is in the path.
fn pack_body(pack: &PackInstallArgs) -> Value {
    json!({ "name": pack.name })
}

/// `lookout pack install NAME [--escalation-policy ID|NAME]`.
pub async fn pack_install(target: &Target, pack: &PackInstallArgs) -> Result<()> {
    use lookout_server::query::dashboards::pack;
    let out = match target {
        Target::Server(client) => {
            let query: Vec<(&str, &str)> = pack
                .escalation_policy
                .as_deref()
                .map(|e| ("escalation_policy", e))
                .into_iter()
                .collect();
            client
                .post_query(
                    &["api", "v1", "packs", &pack.name, "install"],
                    &query,
                    &pack_body(pack),
                )
                .await
                .with_context(|| format!("installing the pack {:?}", pack.name))?
        }
        Target::Local(storage) => {
            let store = open(storage).await?;
            let escalation = pack::Escalation::parse(pack.escalation_policy.as_deref());
            let out = pack::install_with(&store, &pack.name, &escalation).await;
            store.close().await;
            serde_json::to_value(out.map_err(|e| anyhow!(e.to_string()))?)?
        }
    };
    let names = |k: &str| -> Vec<String> {
        out[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    for p in names("policies_created") {
        println!("policy {p:?} created (with its runbook)");
    }
    for d in names("dashboards_created") {
        println!("dashboard {d:?} created");
    }
    for k in names("kept") {
        println!("{k} kept as it is");
    }
    match out["escalation_policy"]["name"].as_str() {
        Some(ep) => println!("its alert policies page the escalation policy {ep:?}"),
        None => println!("its alert policies page nobody yet"),
    }
    for o in names("overlaps") {
        println!("note: {o}");
    }
    for w in names("warnings") {
        println!("warning: {w}");
    }
    Ok(())
}

/// The password of `lookout user create`: from standard input's first line or the flag.
pub fn password(flag: Option<String>, stdin: bool) -> Result<String> {
    match (flag, stdin) {
        (_, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        }
        (Some(p), false) => Ok(p),
        (None, false) => bail!("give the password with --password-stdin (or --password)"),
    }
}

/// `lookout user create`.
pub async fn user_create(target: &Target, email: &str, password: &str, role: Role) -> Result<()> {
    lookout_server::tenancy::service::validate_new_user(email, password)
        .map_err(|e| anyhow!("{e}"))?;
    let (id, email, role) = match target {
        Target::Server(client) => {
            let u = client
                .post(
                    &["api", "v1", "users"],
                    &json!({"email": email, "password": password, "role": role.as_str()}),
                )
                .await?;
            (
                u["id"].as_i64().unwrap_or_default(),
                u["email"].as_str().unwrap_or(email).to_string(),
                u["role"].as_str().unwrap_or(role.as_str()).to_string(),
            )
        }
        Target::Local(storage) => {
            let store = open(storage).await?;
            let user = tenancy::create_user(&store, email, password, role).await;
            store.close().await;
            let user = user?;
            (user.id, user.email, user.role.to_string())
        }
    };
    eprintln!("Created user {email} ({role}) with id {id}.");
    Ok(())
}

/// `lookout token create`: the secret alone on standard output.
pub async fn token_create(target: &Target, name: &str, role: Role) -> Result<()> {
    let (secret, id, name, role) = match target {
        Target::Server(client) => {
            let t = client
                .post(
                    &["api", "v1", "tokens"],
                    &json!({"name": name, "role": role.as_str()}),
                )
                .await?;
            let secret = t["token"]
                .as_str()
                .ok_or_else(|| anyhow!("the server's answer holds no token"))?
                .to_string();
            (
                secret,
                t["id"].as_i64().unwrap_or_default(),
                t["name"].as_str().unwrap_or(name).to_string(),
                t["role"].as_str().unwrap_or(role.as_str()).to_string(),
            )
        }
        Target::Local(storage) => {
            let store = open(storage).await?;
            let made = tenancy::create_token(&store, name, role, None).await;
            store.close().await;
            let (secret, token) = made?;
            (secret, token.id, token.name, token.role.to_string())
        }
    };
    eprintln!("Created API token {name:?} ({role}) with id {id}. It is shown once:");
    println!("{secret}");
    Ok(())
}
