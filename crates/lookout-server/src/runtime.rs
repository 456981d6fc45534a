//! `lookout serve`: opens storage, bootstraps the first project, admin and token, starts the
//! write queue, the job scheduler and both listeners, prints the banner, and on shutdown stops
//! accepting, drains in-flight requests, finishes running jobs and flushes the write queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::uptime::runner::{self, UptimeContext};

use crate::state::{AppState, HttpSettings};
use lookout_core::Role;
use lookout_store::jobs::{self, JobHandler, Scheduler, SchedulerConfig};
use lookout_store::tenancy;
use lookout_store::writer::WriterConfig;
use lookout_store::{Store, StoreError, Writer};

/// Everything `serve` needs, resolved from flags, environment and `lookout.toml` by the binary.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Where the data lives, for the banner and settings page (never contains a password).
    pub data_location: String,
    /// UI and API address.
    pub listen: SocketAddr,
    /// OTLP/HTTP address.
    pub otlp_listen: SocketAddr,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For` (CIDR).
    pub trusted_proxies: Vec<String>,
    /// Public URL for DSNs and links; derived from `listen` when absent.
    pub public_url: Option<String>,
    /// Create this admin at start if no user has this email (`LOOKOUT_ADMIN_EMAIL`).
    pub admin_email: Option<String>,
    /// Their password (`LOOKOUT_ADMIN_PASSWORD`).
    pub admin_password: Option<String>,
    /// Ensure an admin API token with this value exists (`LOOKOUT_BOOTSTRAP_TOKEN`).
    pub bootstrap_token: Option<String>,
    /// This replica's name in job and event leases.
    pub replica_id: String,
    /// The config file, whose monitors and status pages are reconciled at start and on SIGHUP.
    pub config_file: Option<std::path::PathBuf>,
    /// The outbound policy's `(deny, allow)` networks, applied to every user-supplied
    /// destination: networks not to reach besides those denied by default, and (when not
    /// empty) the only networks to reach.
    pub outbound_networks: (Vec<String>, Vec<String>),
    /// Checks in flight at once.
    pub uptime_max_concurrent_checks: usize,
    /// The key sealing stored credentials, 64 hex characters (`LOOKOUT_SECRET_KEY`).
    pub secret_key: Option<String>,
    /// Where the key is kept when not given: created on first start (mode 0600).
    pub secret_key_file: Option<std::path::PathBuf>,
    /// Continuous backups of the embedded SQLite database (`--backup-dir`).
    pub backup: Option<BackupServe>,
    /// How often Lookout's own backup is restored and checked (`--backup-drill-interval`).
    pub backup_drill_every: Duration,
    /// Sentry ingest size limits and in-flight memory budget (`limits` in the config file).
    pub ingest_limits: crate::budget::IngestLimits,
    /// Connection cap and timeouts of both listeners (`limits` in the config file).
    pub listener_limits: crate::listener::ListenerLimits,
    /// What one NRQL query may cost (the `query` section).
    pub query: crate::query::nrql::limits::Limits,
}

/// `--backup-dir` and its settings.
#[derive(Debug, Clone)]
pub struct BackupServe {
    pub options: lookout_store::backup::BackupOptions,
}

/// Why `serve` could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Storage failed to open or migrate.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A bootstrap setting is unusable.
    #[error("{0}")]
    Config(String),
    /// Serving failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// How long UI sessions last.
const SESSION_TTL_MS: i64 = 14 * 86_400_000;

/// Runs the server until `shutdown` resolves, then stops gracefully.
pub async fn serve(
    cfg: ServeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let started = Instant::now();
    if !crate::query::nrql::limits::configure(cfg.query.clone()) {
        tracing::warn!("Query limits were set before; the query section is ignored.");
    }
    let metrics = crate::observe::metrics_handle();
    let store = Store::open(&cfg.database_url).await?;
    if let Some(b) = &cfg.backup {
        store
            .start_backup(b.options.clone())
            .await
            .map_err(|e| ServeError::Config(format!("--backup-dir: {e}")))?;
        tracing::info!(dir = %b.options.dir.display(), "Continuous backups on.");
    }
    let (project, _) = tenancy::ensure_default_project(&store).await?;
    bootstrap_admin(&store, &cfg).await?;

    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let otlp_listener =
        TcpListener::bind(cfg.otlp_listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: cfg.otlp_listen,
                source,
            })?;
    let addr = listener.local_addr()?;
    let otlp_addr = otlp_listener.local_addr()?;
    let public_url = cfg
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{}", reachable(addr)));

    let sealer = load_sealer(&cfg)?;
    let writer = Writer::start(store.clone(), WriterConfig::default());
    let settings = HttpSettings {
        public_url: public_url.clone(),
        data_location: cfg.data_location.clone(),
        session_ttl_ms: SESSION_TTL_MS,
        trusted_proxies: cfg
            .trusted_proxies
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ServeError::Config(format!(
                            "trusted_proxies: {n:?} is not a network (use CIDR, like 10.0.0.0/8)"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    // One policy for every destination a user supplies: checks, channels, SMTP servers,
    // report deliveries, database and backup targets.
    let (deny, allow) = &cfg.outbound_networks;
    let policy = Arc::new(
        lookout_outbound::NetPolicy::new(deny, allow)
            .map_err(|e| ServeError::Config(format!("outbound networks: {e}")))?,
    );
    let state = AppState::with_ingest_limits(
        store.clone(),
        writer.queue(),
        settings.clone(),
        metrics.clone(),
        sealer.clone(),
        policy.clone(),
        cfg.ingest_limits,
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(path) = &cfg.config_file {
        crate::uptime::config::apply_file(&store, &sealer, path).await;
        crate::query::dashboards::apply_config(&store, path).await;
    }
    if let Err(e) = crate::uptime::seal_stored_secrets(&store, &sealer).await {
        tracing::warn!(error = %e, "Could not seal monitor credentials stored in clear.");
    }
    let uptime = tokio::spawn(
        uptime_scheduler(
            Arc::new(UptimeContext {
                store: store.clone(),
                writes: writer.queue(),
                checker: Arc::new(lookout_uptime::Checker::new((*policy).clone())),
                permits: Arc::new(Semaphore::new(cfg.uptime_max_concurrent_checks.max(1))),
                stop: stop_rx.clone(),
                hold: crate::uptime::runner::HOLD,
                sealer: sealer.clone(),
                windows: Default::default(),
            }),
            &cfg.replica_id,
        )
        .await?
        .run(wait_for(stop_rx.clone())),
    );
    let checkins = tokio::spawn(
        crate::uptime::checkins::CheckInConsumer::new(store.clone(), &cfg.replica_id)
            .run(Duration::from_millis(200), wait_for(stop_rx.clone())),
    );
    let reload = tokio::spawn(reload_on_sighup(
        store.clone(),
        sealer.clone(),
        cfg.config_file.clone(),
        stop_rx.clone(),
    ));
    let scheduler = tokio::spawn(
        maintenance_scheduler(
            store.clone(),
            sealer.clone(),
            state.alerting().clone(),
            &cfg.replica_id,
            crate::backups::Settings {
                drill_every: cfg.backup_drill_every,
            },
        )
        .await?
        .run(wait_for(stop_rx.clone())),
    );
    let processor = tokio::spawn(
        lookout_store::errors::process::ErrorProcessor::new(store.clone(), &cfg.replica_id)
            // Idle polling every 100 ms bounds how long a new event waits to be grouped.
            .run(Duration::from_millis(100), wait_for(stop_rx.clone())),
    );
    let apm_rollups = tokio::spawn(
        lookout_store::apm::rollup::RollupProcessor::new(store.clone(), &cfg.replica_id)
            // A span waits at most about this long before it shows in RED figures.
            .run(Duration::from_millis(1_000), wait_for(stop_rx.clone())),
    );
    let trace_index = tokio::spawn(lookout_store::apm::trace_index::run(
        store.clone(),
        Duration::from_secs(2),
        wait_for(stop_rx.clone()),
    ));
    let sentry_spans = tokio::spawn(
        lookout_store::apm::sentry::TransactionProcessor::new(store.clone(), &cfg.replica_id)
            .run(Duration::from_millis(200), wait_for(stop_rx.clone())),
    );
    let alerting = state.alerting().clone();
    let alert_tasks = [
        tokio::spawn(crate::alerting::policies::run(
            alerting.clone(),
            cfg.replica_id.clone(),
            wait_for(stop_rx.clone()),
        )),
        tokio::spawn(crate::alerting::timers::run(
            alerting.clone(),
            wait_for(stop_rx.clone()),
        )),
        tokio::spawn(crate::alerting::deliver::run(
            alerting,
            cfg.replica_id.clone(),
            wait_for(stop_rx.clone()),
        )),
    ];
    let upkeep = tokio::spawn({
        let mut stop = stop_rx.clone();
        async move {
            // The Prometheus recorder needs periodic upkeep to drain histogram samples.
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => metrics.run_upkeep(),
                    _ = stop.changed() => break,
                }
            }
        }
    });

    println!(
        "Lookout {} ready in {} ms",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis()
    );
    println!("  UI and API:          http://{}", reachable(addr));
    println!("  OTLP/HTTP:           http://{}", reachable(otlp_addr));
    println!(
        "  Data:                {} ({})",
        cfg.data_location,
        store.backend().name()
    );
    if let Some(key) = &project.public_key {
        println!("  Default project DSN: {}", settings.dsn(key, project.id));
    }
    if !crate::query::dashboards::pack::installed(&store).await {
        // The default pack is offered, never installed behind the team's back.
        println!("  Alerts and dashboards: none yet; `lookout pack install golden-signals` (or the Dashboards page) adds 8 alert policies and 4 dashboards");
    }
    tracing::info!(addr = %addr, otlp = %otlp_addr, storage = store.backend().name(), "Lookout is ready.");

    let connections = crate::listener::ConnectionBudget::new(cfg.listener_limits.max_connections);
    let main = crate::listener::serve(
        listener,
        crate::app(state.clone()),
        "main",
        cfg.listener_limits,
        connections.clone(),
        wait_for(stop_rx.clone()),
    );
    let otlp = crate::listener::serve(
        otlp_listener,
        crate::apm::otlp::app(state),
        "otlp",
        cfg.listener_limits,
        connections,
        wait_for(stop_rx.clone()),
    );
    let trigger = async {
        shutdown.await;
        tracing::info!("Shutting down: no new connections; draining requests, jobs and writes.");
        let _ = stop_tx.send(true);
    };
    let (main_result, otlp_result, ()) = tokio::join!(main, otlp, trigger);
    main_result?;
    otlp_result?;
    let _ = scheduler.await;
    let _ = processor.await;
    let _ = apm_rollups.await;
    let _ = trace_index.await;
    let _ = sentry_spans.await;
    let _ = uptime.await;
    let _ = checkins.await;
    for t in alert_tasks {
        let _ = t.await;
    }
    reload.abort();
    let _ = upkeep.await;
    writer.shutdown().await;
    store.close().await;
    tracing::info!("Stopped cleanly.");
    Ok(())
}

/// The credential key: `LOOKOUT_SECRET_KEY`, else the key file (created with a new random key,
/// readable by the owner only, on first start).
fn load_sealer(cfg: &ServeConfig) -> Result<lookout_core::seal::Sealer, ServeError> {
    use lookout_core::seal::Sealer;
    if let Some(k) = cfg.secret_key.as_deref().filter(|k| !k.is_empty()) {
        return Sealer::from_hex(k)
            .map_err(|e| ServeError::Config(format!("LOOKOUT_SECRET_KEY: {e}")));
    }
    let Some(path) = &cfg.secret_key_file else {
        return Err(ServeError::Config(
            "set LOOKOUT_SECRET_KEY (64 hex characters)".into(),
        ));
    };
    match std::fs::read_to_string(path) {
        Ok(k) => {
            Sealer::from_hex(&k).map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Sealer::new_key_hex();
            write_private(path, &key)?;
            tracing::info!(file = %path.display(), "Created the key that seals stored credentials; back it up with the data.");
            Sealer::from_hex(&key).map_err(ServeError::Config)
        }
        Err(e) => Err(ServeError::Config(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> Result<(), ServeError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| ServeError::Config(format!("creating {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Resolves when the watch flips to `true`.
async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// An address a browser can use: a wildcard bind is reached through loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

/// Creates the admin and token named by the environment, if missing.
async fn bootstrap_admin(store: &Store, cfg: &ServeConfig) -> Result<(), ServeError> {
    match (&cfg.admin_email, &cfg.admin_password) {
        (Some(email), Some(password)) => {
            crate::tenancy::service::validate_new_user(email, password).map_err(|e| {
                ServeError::Config(format!("LOOKOUT_ADMIN_EMAIL/LOOKOUT_ADMIN_PASSWORD: {e}"))
            })?;
            match tenancy::create_user(store, email, password, Role::Admin).await {
                Ok(u) => tracing::info!(
                    user = u.id,
                    "Created the admin named by LOOKOUT_ADMIN_EMAIL."
                ),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        (None, None) => {}
        _ => {
            return Err(ServeError::Config(
                "set both LOOKOUT_ADMIN_EMAIL and LOOKOUT_ADMIN_PASSWORD, or neither".into(),
            ))
        }
    }
    if let Some(token) = cfg.bootstrap_token.as_deref().filter(|t| !t.is_empty()) {
        if token.len() < 16 {
            return Err(ServeError::Config(
                "LOOKOUT_BOOTSTRAP_TOKEN must be at least 16 characters".into(),
            ));
        }
        if tenancy::ensure_token(store, token, "bootstrap", Role::Admin).await? {
            tracing::info!("Created the admin API token given in LOOKOUT_BOOTSTRAP_TOKEN.");
        }
    }
    Ok(())
}

/// The scheduler with the built-in periodic jobs: expired sessions and finished jobs are deleted
/// hourly, error-event retention every ten minutes, due database checks and query alert
/// conditions every 15 s, scheduled reports and their deliveries every minute.
/// Capabilities register theirs the same way.
async fn maintenance_scheduler(
    store: Store,
    sealer: lookout_core::seal::Sealer,
    alerting: crate::alerting::Alerting,
    replica: &str,
    backups: crate::backups::Settings,
) -> Result<Scheduler, ServeError> {
    jobs::ensure_periodic(
        &store,
        crate::alerting::query::JOB,
        crate::alerting::query::JOB,
        crate::alerting::query::EVERY_MS,
    )
    .await?;
    jobs::ensure_periodic(
        &store,
        crate::reports::schedule::JOB,
        crate::reports::schedule::JOB,
        crate::reports::schedule::EVERY_MS,
    )
    .await?;
    jobs::ensure_periodic(&store, "sessions.cleanup", "sessions.cleanup", 3_600_000).await?;
    jobs::ensure_periodic(
        &store,
        crate::backups::JOB,
        crate::backups::JOB,
        crate::backups::EVERY_MS,
    )
    .await?;
    jobs::ensure_periodic(&store, "jobs.cleanup", "jobs.cleanup", 3_600_000).await?;
    jobs::ensure_periodic(&store, "errors.retention", "errors.retention", 600_000).await?;
    jobs::ensure_periodic(&store, "apm.retention", "apm.retention", 600_000).await?;
    jobs::ensure_periodic(&store, "apm.daily_series", "apm.daily_series", 300_000).await?;
    jobs::ensure_periodic(
        &store,
        crate::uptime::upkeep::JOB,
        crate::uptime::upkeep::JOB,
        60_000,
    )
    .await?;
    jobs::ensure_periodic(
        &store,
        crate::dbhealth::JOB,
        crate::dbhealth::JOB,
        crate::dbhealth::EVERY_MS,
    )
    .await?;
    let uptime_upkeep: JobHandler = {
        let store = store.clone();
        Arc::new(move |_| {
            let store = store.clone();
            Box::pin(async move { crate::uptime::upkeep::run(&store).await })
        })
    };
    let retention: JobHandler = {
        let store = store.clone();
        Arc::new(move |_| {
            let store = store.clone();
            Box::pin(async move {
                let r = lookout_store::errors::enforce_retention(&store)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(
                    events = r.events,
                    issues = r.issues,
                    inbox_items = r.inbox_items,
                    "Retention enforced."
                );
                Ok(())
            })
        })
    };
    let apm_retention: JobHandler = {
        let store = store.clone();
        Arc::new(move |_| {
            let store = store.clone();
            Box::pin(async move {
                let now = lookout_core::time::now_ms();
                let n = lookout_store::apm::query::purge(
                    &store,
                    now - APM_RAW_RETENTION_MS,
                    now - APM_MINUTE_RETENTION_MS,
                )
                .await
                .map_err(|e| e.to_string())?;
                tracing::debug!(deleted = n, "APM retention enforced.");
                Ok(())
            })
        })
    };
    let apm_daily: JobHandler = {
        let store = store.clone();
        Arc::new(move |_| {
            let store = store.clone();
            Box::pin(async move {
                let n = lookout_store::apm::daily::push(&store, lookout_core::time::now_ms())
                    .await
                    .map_err(|e| e.to_string())?;
                if n > 0 {
                    tracing::info!(points = n, "Daily APM p95 points added to series.");
                }
                Ok(())
            })
        })
    };
    let sessions: JobHandler = {
        let store = store.clone();
        Arc::new(move |_| {
            let store = store.clone();
            Box::pin(async move {
                let n = tenancy::delete_expired_sessions(&store)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::debug!(deleted = n, "Expired sessions deleted.");
                Ok(())
            })
        })
    };
    let finished: JobHandler = {
        let store = store.clone();
        Arc::new(move |_| {
            let store = store.clone();
            Box::pin(async move {
                let week_ago = lookout_core::time::now_ms() - 7 * 86_400_000;
                let n = jobs::delete_finished_before(&store, week_ago)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::debug!(deleted = n, "Finished jobs deleted.");
                Ok(())
            })
        })
    };
    let backups_job: JobHandler = {
        let store = store.clone();
        let sealer = sealer.clone();
        let policy = alerting.outbound().clone();
        Arc::new(move |_| {
            let (store, sealer, policy) = (store.clone(), sealer.clone(), policy.clone());
            Box::pin(async move { crate::backups::run(&store, &sealer, &policy, &backups).await })
        })
    };
    let db_checks: JobHandler = {
        let store = store.clone();
        let policy = alerting.outbound().clone();
        Arc::new(move |_| {
            let (store, sealer, policy) = (store.clone(), sealer.clone(), policy.clone());
            Box::pin(async move { crate::dbhealth::run(&store, &sealer, &policy).await })
        })
    };
    let query_conditions: JobHandler = {
        let store = store.clone();
        Arc::new(move |_| {
            let store = store.clone();
            Box::pin(async move {
                crate::alerting::query::run(&store, lookout_core::time::now_ms())
                    .await
                    .map(|_| ())
            })
        })
    };
    let reports_job: JobHandler = Arc::new(move |_| {
        let a = alerting.clone();
        Box::pin(async move {
            crate::reports::schedule::run(&a, lookout_core::time::now_ms())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    });
    Ok(Scheduler::new(store, replica, SchedulerConfig::default())
        .handle(crate::reports::schedule::JOB, reports_job)
        .handle(crate::alerting::query::JOB, query_conditions)
        .handle(crate::backups::JOB, backups_job)
        .handle(crate::dbhealth::JOB, db_checks)
        .handle("sessions.cleanup", sessions)
        .handle("jobs.cleanup", finished)
        .handle("errors.retention", retention)
        .handle("apm.retention", apm_retention)
        .handle("apm.daily_series", apm_daily)
        .handle(crate::uptime::upkeep::JOB, uptime_upkeep))
}

/// How long raw spans and logs are kept (search and drill-down).
const APM_RAW_RETENTION_MS: i64 = 7 * 86_400_000;
/// How long minute rollups and metric minutes are kept; hour and day rollups stay.
const APM_MINUTE_RETENTION_MS: i64 = 8 * 86_400_000;

/// The uptime shards as leased periodic jobs: each claim runs one shard for a while.
async fn uptime_scheduler(ctx: Arc<UptimeContext>, replica: &str) -> Result<Scheduler, ServeError> {
    let shards = lookout_store::uptime::SHARDS;
    for k in 0..shards {
        jobs::ensure_periodic(
            &ctx.store,
            &format!("uptime.shard.{k}"),
            "uptime.shard",
            1_000,
        )
        .await?;
    }
    let store = ctx.store.clone();
    let handler: JobHandler = Arc::new(move |job| {
        let ctx = ctx.clone();
        Box::pin(async move {
            match runner::shard_of(&job.id) {
                Some(shard) => runner::run_shard(ctx, shard).await,
                None => Err(format!("{} is not an uptime shard", job.id)),
            }
        })
    });
    let config = SchedulerConfig {
        concurrency: usize::try_from(shards).unwrap_or(16),
        ..SchedulerConfig::default()
    };
    Ok(Scheduler::new(store, replica, config).handle("uptime.shard", handler))
}

/// Re-reads the config file's monitors and status pages on SIGHUP.
async fn reload_on_sighup(
    store: Store,
    sealer: lookout_core::seal::Sealer,
    path: Option<std::path::PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => match &path {
                    Some(p) => {
                        tracing::info!(file = %p.display(), "SIGHUP: reloading monitors and status pages.");
                        crate::uptime::config::apply_file(&store, &sealer, p).await;
                        crate::query::dashboards::apply_config(&store, p).await;
                    }
                    None => tracing::info!("SIGHUP: no config file to reload."),
                },
                _ = stop.changed() => break,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (store, sealer, path);
        let _ = stop.changed().await;
    }
}
