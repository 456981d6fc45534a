//! The `lookout` binary: parses the command line, sets up logging, and hands each verb to the
//! library crate that owns it. Wiring only; `anyhow` lives here and nowhere else.

mod backup;
mod cli;
mod config;
mod db;
mod load;
mod query;
mod regress;

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use cli::{BackupCommand, Cli, Command, LogFormat, PackCommand, TokenCommand, UserCommand};
use lookout_store::{tenancy, Store};

/// mimalloc instead of glibc's allocator: ingest allocates and frees many small strings on
/// several threads at once, where glibc's arenas spent a fifth of the CPU (measured with perf
/// under bench/apm.sh) and held on to freed memory.
///
/// Built with `no_thp`: mimalloc otherwise asks for transparent huge pages on its arena, and
/// every touched 4 KB then costs a 2 MB page (idle RSS 51 MB with them, 32 MB without).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Raises the soft open-file limit to the hard one and returns it (Linux and BSD; `None` when
/// unknown). Every connection is a file descriptor, and distributions still start services with
/// a soft limit of 1,024: 2,000 idle connections then made `accept` fail and `/healthz` time out.
fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                let now = limit.maximum.unwrap_or(u64::MAX);
                tracing::info!(from = soft, to = now, "Raised the open-file limit.");
                return now;
            }
            Err(e) => tracing::warn!(error = %e, soft, "Cannot raise the open-file limit."),
        }
    }
    soft
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Load(cmd) = cli.command {
        // A load generator needs no data directory or database: it runs on its own runtime.
        return match load::main(*cmd) {
            Ok(code) => std::process::ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Command::Db(cmd) = cli.command {
        // Talks to the user's database only: no data directory.
        return std::process::ExitCode::from(db::main(*cmd));
    }
    if let Command::Regress(cmd) = cli.command {
        // Talks to a server over HTTP, or to nobody (analyze): no data directory either.
        return std::process::ExitCode::from(regress::main(*cmd));
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "lookout",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    let file = config::load_file(cli.common.config.as_deref())?;
    init_logging(config::log_format(&cli.common, &file));
    if let Command::Restore { backup_dir, to } = &cli.command {
        // Writes a new data directory: only an explicit one, never the default.
        let data_dir = cli
            .common
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone());
        return tokio::runtime::Runtime::new()?.block_on(backup::restore(
            backup_dir,
            to.as_deref(),
            data_dir,
        ));
    }
    let storage = config::storage(&cli.common, &file)?;
    let open_files = matches!(cli.command, Command::Serve(_)).then(raise_open_file_limit);
    // Two worker threads match the machines Lookout targets and keep idle memory low.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let (listen, otlp_listen, public_url) = config::listeners(&args, &file);
                let (ingest_limits, listener_limits) = config::limits(&file.limits, open_files)?;
                let cfg = lookout_server::runtime::ServeConfig {
                    database_url: storage.url,
                    data_location: storage.display,
                    listen,
                    otlp_listen,
                    trusted_proxies: file.trusted_proxies.clone(),
                    public_url,
                    admin_email: std::env::var("LOOKOUT_ADMIN_EMAIL").ok(),
                    admin_password: std::env::var("LOOKOUT_ADMIN_PASSWORD").ok(),
                    bootstrap_token: std::env::var("LOOKOUT_BOOTSTRAP_TOKEN").ok(),
                    replica_id: replica_id(),
                    config_file: config::file_path(cli.common.config.as_deref()),
                    outbound_networks: file.outbound_networks(),
                    uptime_max_concurrent_checks: file.uptime.max_concurrent_checks.unwrap_or(1024),
                    secret_key: std::env::var("LOOKOUT_SECRET_KEY").ok(),
                    secret_key_file: Some(config::secret_key_file(&cli.common, &file)?),
                    backup: args.backup_dir.clone().map(|dir| {
                        lookout_server::runtime::BackupServe {
                            options: lookout_store::backup::BackupOptions {
                                dir,
                                retention: args.backup_retention,
                                snapshot_every: args.backup_snapshot_interval,
                            },
                        }
                    }),
                    backup_drill_every: args.backup_drill_interval,
                    ingest_limits,
                    listener_limits,
                    query: config::query_limits(&file)?,
                };
                lookout_server::runtime::serve(cfg, shutdown_signal()).await?;
            }
            Command::User(UserCommand::Create {
                email,
                password,
                password_stdin,
                role,
            }) => {
                let password = match (password, password_stdin) {
                    (_, true) => {
                        let mut line = String::new();
                        std::io::stdin().lock().read_line(&mut line)?;
                        line.trim_end_matches(['\r', '\n']).to_string()
                    }
                    (Some(p), false) => p,
                    (None, false) => {
                        bail!("give the password with --password-stdin (or --password)")
                    }
                };
                lookout_server::tenancy::service::validate_new_user(&email, &password)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let store = Store::open(&storage.url).await?;
                let user = tenancy::create_user(&store, &email, &password, role).await?;
                eprintln!(
                    "Created user {} ({}) with id {}.",
                    user.email, user.role, user.id
                );
                store.close().await;
            }
            Command::Token(TokenCommand::Create { name, role }) => {
                let store = Store::open(&storage.url).await?;
                let (secret, token) = tenancy::create_token(&store, &name, role, None).await?;
                eprintln!(
                    "Created API token {:?} ({}) with id {}. It is shown once:",
                    token.name, token.role, token.id
                );
                println!("{secret}");
                store.close().await;
            }
            Command::Query {
                nrql,
                json,
                csv,
                project,
            } => {
                // The same limits as the server's queries (the `query` section).
                lookout_server::query::nrql::limits::configure(config::query_limits(&file)?);
                let store = Store::open(&storage.url).await?;
                let projects = match project {
                    Some(id) => vec![tenancy::get_project(&store, id).await?.id],
                    None => tenancy::project_ids(&store).await?,
                };
                let result = lookout_server::query::nrql::run(
                    &store,
                    &projects,
                    &nrql,
                    lookout_core::time::now_ms(),
                )
                .await;
                store.close().await;
                match result {
                    Ok(r) => {
                        let text = if json {
                            serde_json::to_string_pretty(&r)? + "\n"
                        } else if csv {
                            query::csv(&r)?
                        } else {
                            query::table(&r)
                        };
                        print!("{text}");
                        for w in &r.warnings {
                            eprintln!("warning: {w}");
                        }
                    }
                    Err(lookout_server::query::nrql::QueryError::Store(e)) => return Err(e.into()),
                    Err(e) => {
                        eprintln!("error: {e}");
                        std::process::exit(2);
                    }
                }
            }
            Command::Apply { file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let all = lookout_server::query::dashboards::spec::read_many(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                // Every dashboard is checked before any is saved: a bad file changes nothing.
                for d in &all {
                    d.validate().map_err(|e| {
                        anyhow::anyhow!("{}: dashboard {:?}: {e}", file.display(), d.name)
                    })?;
                }
                let store = Store::open(&storage.url).await?;
                for d in &all {
                    let (_, created) = lookout_server::query::dashboards::save(&store, d, None)
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?;
                    println!(
                        "dashboard/{} {}",
                        d.slug(),
                        if created { "created" } else { "configured" }
                    );
                }
                store.close().await;
            }
            Command::Pack(PackCommand::List) => {
                for p in lookout_server::query::dashboards::pack::PACKS {
                    println!("{p}");
                }
            }
            Command::Pack(PackCommand::Install { name }) => {
                let store = Store::open(&storage.url).await?;
                let out = lookout_server::query::dashboards::pack::install(&store, &name).await;
                store.close().await;
                let out = out.map_err(|e| anyhow::anyhow!(e))?;
                for p in &out.policies_created {
                    println!("policy {p:?} created (with its runbook)");
                }
                for d in &out.dashboards_created {
                    println!("dashboard {d:?} created");
                }
                for k in &out.kept {
                    println!("{k} kept as it is");
                }
            }
            Command::Report {
                kind,
                end,
                json,
                html,
            } => {
                let now = lookout_core::time::now_ms();
                let end = match end {
                    Some(e) => chrono::DateTime::parse_from_rfc3339(e.trim())
                        .with_context(|| format!("--end {e:?} is not an RFC 3339 time"))?
                        .timestamp_millis(),
                    None => now,
                };
                let kind = lookout_server::reports::Kind::parse(&kind)
                    .context("kind: daily, weekly or monthly")?;
                let base_url = file
                    .public_url
                    .clone()
                    .unwrap_or_else(|| "http://127.0.0.1:8800".into());
                let store = Store::open(&storage.url).await?;
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
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else if html {
                    print!("{}", render::html(&report, &report.base_url, None));
                } else {
                    print!("{}", render::text(&report));
                }
            }
            Command::Backup(BackupCommand::Now { backup_dir }) => {
                backup::now(&storage.url, &backup_dir).await?;
            }
            Command::Backup(BackupCommand::List { backup_dir, json }) => {
                backup::list(&backup_dir, json)?;
            }
            Command::Backup(BackupCommand::Verify { backup_dir, json }) => {
                if !backup::verify(&backup_dir, json).await? {
                    std::process::exit(1);
                }
            }
            Command::Completions { .. }
            | Command::Restore { .. }
            | Command::Load(_)
            | Command::Regress(_)
            | Command::Db(_) => {}
        }
        Ok::<(), anyhow::Error>(())
    })
}

/// Logs to standard error; `RUST_LOG` overrides the default level.
fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// This process's name in job and event leases: host, pid and a random suffix (pids repeat).
fn replica_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "lookout".to_string());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        lookout_core::secret::random_hex(3)
    )
}
