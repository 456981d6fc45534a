//! `lookout serve`: opens storage, bootstraps the first project, admin and token, starts the
//! write queue, the job scheduler and both listeners, prints the banner, and on shutdown stops
//! accepting, drains in-flight requests, finishes running jobs and flushes the write queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::{AppState, HttpSettings};
use lookout_core::Role;
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
    /// The dead man's switch: a URL one replica pings every minute (`--heartbeat-url`).
    pub heartbeat: Option<crate::operations::heartbeat::Settings>,
    /// The optional Redis the replicas share (`--redis-url`; see [`crate::shared`]).
    pub redis_url: Option<String>,
    /// Sentry ingest size limits and in-flight memory budget (`limits` in the config file).
    pub ingest_limits: crate::budget::IngestLimits,
    /// Connection cap and timeouts of both listeners (`limits` in the config file).
    pub listener_limits: crate::listener::ListenerLimits,
    /// What one NRQL query may cost (the `query` section).
    pub query: crate::query::nrql::limits::Limits,
    /// Single sign-on with OpenID Connect (the `oidc` section), when configured.
    pub oidc: Option<crate::tenancy::sso::SsoConfig>,
    /// The StatsD/DogStatsD UDP listener (`--statsd-listen`), off when `None`.
    pub statsd: Option<crate::statsd::Settings>,
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
    if let Some(url) = &cfg.redis_url {
        let shared = crate::shared::Shared::connect(url).map_err(ServeError::Config)?;
        if shared.ping().await {
            tracing::info!(
                redis = shared.location().unwrap_or(""),
                "Redis shared by the replicas."
            );
        } else {
            tracing::warn!(redis = shared.location().unwrap_or(""),
                "Redis configured but not answering: limits are per replica and nothing is cached until it does.");
        }
        crate::shared::install(shared);
    }
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
    // Join the cluster before any work starts: the first heartbeat gives the live replicas and
    // the database's clock that placement and leases use.
    let cluster = crate::cluster::Cluster::new(&cfg.replica_id, env!("CARGO_PKG_VERSION"));
    cluster.set_address(advertised(addr));
    if let Err(e) = cluster.beat(&store).await {
        tracing::warn!(error = %e, "The first heartbeat failed; retrying in the background.");
    }
    state.set_cluster(cluster.clone());
    if let Some(oidc) = cfg.oidc.clone() {
        let sso = crate::tenancy::sso::Sso::new(oidc, &public_url).map_err(ServeError::Config)?;
        tracing::info!(issuer = %sso.config().issuer, "Single sign-on with OpenID Connect is on.");
        state.set_sso(sso);
    }
    {
        let c = cluster.clone();
        store.set_placement(std::sync::Arc::new(move |name| c.serves_cursor(name)));
    }
    // Heartbeats stop only after this replica's work has (see below).
    let (beats_stop, beats_stop_rx) = watch::channel(false);
    let heartbeats = tokio::spawn(cluster.clone().run(store.clone(), beats_stop_rx));
    if let Some(path) = &cfg.config_file {
        crate::uptime::config::apply_file(&store, &sealer, path).await;
        crate::query::dashboards::apply_config(&store, path).await;
        crate::prometheus::scrape::apply_file(&store, &sealer, path).await;
        crate::prometheus::rules::config::apply_file(&store, path).await;
    }
    if let Err(e) = crate::uptime::seal_stored_secrets(&store, &sealer).await {
        tracing::warn!(error = %e, "Could not seal monitor credentials stored in clear.");
    }
    let reload = tokio::spawn(reload_on_sighup(
        store.clone(),
        sealer.clone(),
        cfg.config_file.clone(),
        stop_rx.clone(),
    ));
    // Every capability's background work, as a table: periodic jobs through one leased
    // scheduler, and each capability's own workers.
    let bg = crate::tasks::Background {
        store: store.clone(),
        writes: writer.queue(),
        sealer: sealer.clone(),
        alerting: state.alerting().clone(),
        replica: cfg.replica_id.clone(),
        cluster,
        stop: stop_rx.clone(),
        backups: crate::backups::Settings {
            drill_every: cfg.backup_drill_every,
        },
        uptime_max_concurrent_checks: cfg.uptime_max_concurrent_checks,
        public_url: public_url.clone(),
    };
    let periodic: Vec<_> = [
        crate::tenancy::jobs(&bg),
        crate::errors::jobs(&bg),
        crate::apm::jobs(&bg),
        crate::uptime::jobs(&bg),
        crate::alerting::jobs(&bg),
        crate::dbhealth::jobs(&bg),
        crate::backups::jobs(&bg),
        crate::reports::jobs(&bg),
        crate::prometheus::jobs(&bg),
    ]
    .into_iter()
    .flatten()
    .collect();
    let scheduler = crate::tasks::scheduler(&store, &cfg.replica_id, periodic).await?;
    // Uptime's shard jobs are registered first: if that fails, nothing has started yet.
    let uptime = crate::uptime::workers(&bg).await?;
    let workers: Vec<_> = [
        vec![tokio::spawn(scheduler.run(bg.stopping()))],
        crate::errors::workers(&bg),
        crate::apm::workers(&bg),
        uptime,
        crate::alerting::workers(&bg),
        crate::prometheus::workers(&bg),
        crate::prometheus::rules::workers(&bg),
        crate::operations::heartbeat::workers(&bg, cfg.heartbeat.clone()),
        crate::shared::wake::start(
            crate::shared::get().clone(),
            store.clone(),
            state.alerting().clone(),
            cfg.replica_id.clone(),
            stop_rx.clone(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    // StatsD last: its flushes write through the queue the workers above already use.
    let mut workers = workers;
    let mut statsd_addr = None;
    if let Some(settings) = cfg.statsd.clone() {
        let project = crate::api::scope::project_of(&state, settings.project.as_deref())
            .await
            .map_err(|e| ServeError::Config(format!("--statsd-project: {e}")))?;
        let listen = settings.listen;
        let (bound, tasks) = crate::statsd::start(
            store.clone(),
            writer.queue(),
            project,
            settings,
            stop_rx.clone(),
        )
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
        statsd_addr = Some(bound);
        workers.extend(tasks);
    }
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
    if let Some(a) = statsd_addr {
        println!("  StatsD (UDP):        {}", reachable(a));
    }
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
    for w in workers {
        let _ = w.await;
    }
    let _ = beats_stop.send(true);
    let _ = heartbeats.await;
    // Leave the cluster only once this replica's work has stopped and flushed: the others take
    // its shards over at once instead of after the live window.
    if let Err(e) = lookout_store::cluster::leave(&store, &cfg.replica_id).await {
        tracing::warn!(error = %e, "Could not leave the cluster; the others take over when its heartbeat ages.");
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
                        crate::prometheus::scrape::apply_file(&store, &sealer, p).await;
                        crate::prometheus::rules::config::apply_file(&store, p).await;
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

/// Where the other replicas reach this one (written with its heartbeats): `LOOKOUT_ADVERTISE_URL`
/// if set, else the UI and API listener's address, with the host's name when it listens on every
/// interface.
fn advertised(addr: SocketAddr) -> String {
    if let Ok(url) = std::env::var("LOOKOUT_ADVERTISE_URL") {
        return url.trim_end_matches('/').to_string();
    }
    if addr.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        return format!("http://{host}:{}", addr.port());
    }
    format!("http://{addr}")
}
