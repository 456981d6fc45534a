//! The `lookout` binary: parses the command line, sets up logging, and hands each verb to the
//! library crate that owns it. Wiring only; `anyhow` lives here and nowhere else.

mod allocator;
mod backup;
mod cli;
mod config;
mod db;
mod load;
mod query;
mod regress;
mod remote;
mod verbs;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use cli::{BackupCommand, Cli, Command, LogFormat, PackCommand, TokenCommand, UserCommand};
use verbs::Target;

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
    // First, before other threads start (mimalloc's options are not thread safe) and before
    // anything opens a database: SQLite takes an allocator only before it initialises. It cannot
    // have yet, so this does not fail; if it did, SQLite would keep `malloc`.
    allocator::return_freed_memory_promptly();
    allocator::sqlite_uses_process_allocator();
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
    if let Command::Probe(args) = cli.command {
        // An agent talks to a server only: no data directory or database.
        return probe(*args, cli.common.log_format.unwrap_or(LogFormat::Text));
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

/// `lookout probe`: logging to standard error, one small runtime, the agent until it stops.
fn probe(args: cli::ProbeArgs, log_format: LogFormat) -> std::process::ExitCode {
    init_logging(log_format);
    let policy = match lookout_uptime::NetPolicy::new(&args.deny_networks, &args.allow_networks) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: outbound networks: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // The location names the default state directory: checked before it becomes a path part.
    if let Err(e) = lookout_uptime::spec::validate_location_name(&args.location) {
        eprintln!("error: --location {e}");
        return std::process::ExitCode::from(2);
    }
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| lookout_uptime::probe::state::default_dir(&args.location));
    let cfg = lookout_uptime::probe::ProbeConfig {
        server: args.server,
        token: args.token,
        location: args.location,
        agent_id: args.agent_id,
        state_dir,
        buffer: args.buffer,
        concurrency: args.concurrency,
        fallback_webhook: args.fallback_webhook,
        fallback_after: args.fallback_after,
        policy,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(lookout_uptime::probe::run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Probe agent stopped.");
            eprintln!("error: {e}");
            std::process::ExitCode::from(e.exit_code())
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
    // Serving opens (and creates) the data directory; the verbs that act on a server's data
    // (`apply` and `backup now` among them) go through its API or open an existing one (see
    // `verbs`).
    let storage = || config::storage(&cli.common, &file);
    let target = |t: &cli::TargetArgs| Target::resolve(t, &cli.common, &file);
    let open_files = matches!(cli.command, Command::Serve(_)).then(raise_open_file_limit);
    // Two worker threads match the machines Lookout targets and keep idle memory low. Blocking
    // work (decompression, source maps, remote-write decoding, backups) gets at most 32 threads
    // instead of tokio's 512: on two cores more only adds stacks and buffers, and the ingest
    // byte budget already bounds what waits for a thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match &cli.command {
            Command::Serve(args) => {
                let storage = storage()?;
                let (listen, otlp_listen, public_url) = config::listeners(args, &file);
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
                    heartbeat: heartbeat_settings(args, &file)?,
                    redis_url: args.redis_url.clone().or(file.redis_url.clone()),
                    ingest_limits,
                    listener_limits,
                    query: config::query_limits(&file)?,
                    oidc: config::oidc(&file, |k| std::env::var(k).ok())?,
                    statsd: config::statsd(args, &file)?,
                };
                lookout_server::runtime::serve(cfg, shutdown_signal()).await?;
            }
            Command::User(UserCommand::Create {
                email,
                password,
                password_stdin,
                role,
                target: t,
            }) => {
                let password = verbs::password(password.clone(), *password_stdin)?;
                verbs::user_create(&target(t)?, email, &password, *role).await?;
            }
            Command::Token(TokenCommand::Create {
                name,
                role,
                target: t,
            }) => {
                verbs::token_create(&target(t)?, name, *role).await?;
            }
            Command::Query {
                nrql,
                json,
                csv,
                project,
                target: t,
            } => {
                let format = match (json, csv) {
                    (true, _) => verbs::Format::Json,
                    (_, true) => verbs::Format::Csv,
                    _ => verbs::Format::Table,
                };
                let code = verbs::query(&target(t)?, nrql, *project, format, &file).await?;
                if code != 0 {
                    std::process::exit(code.into());
                }
            }
            Command::Apply { file, target: t } => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let all = lookout_server::query::dashboards::spec::read_many(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                // Every dashboard is checked before any is saved: a bad file changes nothing.
                for d in &all {
                    d.validate().map_err(|e| {
                        anyhow::anyhow!("{}: dashboard {:?}: {e}", file.display(), d.name)
                    })?;
                }
                verbs::apply(&target(t)?, &all).await?;
            }
            Command::Pack(PackCommand::List) => {
                for p in lookout_server::query::dashboards::pack::PACKS {
                    println!("{p}");
                }
            }
            Command::Pack(PackCommand::Install { pack, target: t }) => {
                verbs::pack_install(&target(t)?, pack).await?;
            }
            Command::Report {
                kind,
                end,
                json,
                html,
                target: t,
            } => {
                let form = match (json, html) {
                    (true, _) => "json",
                    (_, true) => "html",
                    _ => "text",
                };
                verbs::report(&target(t)?, kind, end.as_deref(), form, &file).await?;
            }
            Command::Backup(BackupCommand::Now { backup_dir, create }) => {
                backup::now(backup_dir, || {
                    config::existing_storage(&cli.common, &file, *create)
                })
                .await?;
            }
            Command::Backup(BackupCommand::List { backup_dir, json }) => {
                backup::list(backup_dir, *json)?;
            }
            Command::Backup(BackupCommand::Verify { backup_dir, json }) => {
                if !backup::verify(backup_dir, *json).await? {
                    std::process::exit(1);
                }
            }
            Command::Completions { .. }
            | Command::Restore { .. }
            | Command::Load(_)
            | Command::Regress(_)
            | Command::Probe(_)
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

/// The dead man's switch from `--heartbeat-url` (or the config file's `heartbeat_url`). The
/// interval is a minute; `LOOKOUT_HEARTBEAT_EVERY_MS` (undocumented) shortens it for tests.
fn heartbeat_settings(
    args: &cli::ServeArgs,
    file: &config::FileConfig,
) -> anyhow::Result<Option<lookout_server::operations::heartbeat::Settings>> {
    let Some(url) = args.heartbeat_url.as_ref().or(file.heartbeat_url.as_ref()) else {
        return Ok(None);
    };
    let every = std::env::var("LOOKOUT_HEARTBEAT_EVERY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(
            lookout_server::operations::heartbeat::EVERY,
            std::time::Duration::from_millis,
        );
    lookout_server::operations::heartbeat::Settings::new(url, every)
        .map(Some)
        .map_err(anyhow::Error::msg)
}
