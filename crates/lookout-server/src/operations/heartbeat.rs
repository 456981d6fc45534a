//! The dead man's switch: `--heartbeat-url` is pinged (HTTP GET) every minute by exactly one
//! replica, so an external service (healthchecks.io, Cronitor, a Uptime Kuma push monitor)
//! pages when the pings stop — when the whole installation is down, which Lookout cannot report
//! about itself.
//!
//! The pinger is the live replica that [`Cluster::owns`] the key [`LEASE`], and it pings only
//! while it holds that lease (claimed with a fencing token, renewed every second): a second
//! replica that thinks it owns the key cannot claim it until the holder's heartbeat is 5 s old,
//! so two replicas never ping side by side, and a replica killed with `kill -9` is replaced
//! within seconds. A replica that is not ready (its heartbeat, a write, failed: storage is down
//! or read-only) does not ping, so an installation that cannot store anything stops the pings
//! and the external service pages.
//!
//! Not through [`crate::cluster::placement::run`]: that manager publishes
//! `lookout_leases_held{replica}` for the uptime shards it runs, and a second instance for this
//! one key would overwrite the figure each second.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::cluster::placement::LEASE_MS;
use crate::cluster::{Cluster, HEARTBEAT, LIVE_MS};
use lookout_outbound::{describe, HttpClient};
use lookout_store::cluster as cstore;
use lookout_store::Store;

/// The lease whose holder pings.
pub const LEASE: &str = "cluster.heartbeat_url";
/// How long one ping may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the URL is pinged unless a test says otherwise.
pub const EVERY: Duration = Duration::from_secs(60);

/// Where and how often to ping.
#[derive(Clone)]
pub struct Settings {
    url: String,
    every: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's path is often the secret (healthchecks.io's check id): never printed.
        f.debug_struct("Settings")
            .field("url", &redact(&self.url))
            .field("every", &self.every)
            .finish()
    }
}

impl Settings {
    /// Checks `url` (an http or https URL); `every` is the ping interval.
    pub fn new(url: &str, every: Duration) -> Result<Settings, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("--heartbeat-url: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err("--heartbeat-url: an http:// or https:// URL".into());
        }
        Ok(Settings {
            url: url.to_string(),
            every: every.max(Duration::from_millis(100)),
        })
    }
}

/// `scheme://host:port` of `url`: what logs may say of it. Credentials, path and query are
/// left out, since ping URLs carry their secret in any of them.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/…",
                u.scheme(),
                u.host_str().unwrap_or_default()
            )
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Starts the pinger when a heartbeat URL is set.
pub fn workers(bg: &crate::tasks::Background, settings: Option<Settings>) -> crate::tasks::Workers {
    let Some(settings) = settings else {
        return Vec::new();
    };
    let http = HttpClient::new(
        bg.outbound().clone(),
        TIMEOUT,
        concat!("Lookout/", env!("CARGO_PKG_VERSION")),
    );
    vec![tokio::spawn(run(
        bg.cluster.clone(),
        bg.store.clone(),
        http,
        Arc::new(settings),
        bg.stop.clone(),
    ))]
}

/// Holds the lease while this replica owns the key, and pings while it holds it and is ready.
async fn run(
    cluster: Cluster,
    store: Store,
    http: HttpClient,
    settings: Arc<Settings>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match cstore::ensure_leases(&store, &[LEASE.to_string()]).await {
            Ok(()) => break,
            Err(e) => {
                tracing::debug!(error = %e, "Could not register the heartbeat URL's lease; retrying.")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let me = cluster.name().to_string();
    let mut fence: Option<i64> = None;
    let mut next_ping = tokio::time::Instant::now();
    let mut in_flight: Option<JoinHandle<()>> = None;
    let mut said_not_ready = false;
    let mut tick = tokio::time::interval(HEARTBEAT.min(settings.every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if let Some(f) = fence {
            match cstore::renew(&store, &me, &[(LEASE.to_string(), f)], LEASE_MS).await {
                Ok(ours) if !ours.iter().any(|(n, t)| n == LEASE && *t == f) => {
                    tracing::info!(
                        fence = f,
                        "Another replica took the heartbeat URL over; no longer pinging."
                    );
                    fence = None;
                }
                Ok(_) => {}
                // An outage: this replica is not ready either, so it does not ping meanwhile.
                Err(e) => tracing::debug!(error = %e, "Could not renew the heartbeat URL's lease."),
            }
        }
        if let Err(why) = cluster.ready() {
            if !std::mem::replace(&mut said_not_ready, true) && fence.is_some() {
                tracing::warn!(reason = %why, url = %redact(&settings.url), "Not pinging the heartbeat URL while this replica is not ready.");
            }
            continue;
        }
        said_not_ready = false;
        match fence {
            Some(f) if !cluster.owns(LEASE) => {
                // A replica that joined owns it now: hand it over at once.
                if let Err(e) = cstore::release(&store, LEASE, f).await {
                    tracing::debug!(error = %e, "Could not hand the heartbeat URL back; it expires instead.");
                }
                fence = None;
            }
            None if cluster.owns(LEASE) && cluster.settled() => {
                match cstore::claim(&store, LEASE, &me, LEASE_MS, LIVE_MS).await {
                    Ok(Some((f, _))) => {
                        tracing::info!(fence = f, url = %redact(&settings.url), "Pinging the heartbeat URL from this replica.");
                        fence = Some(f);
                        next_ping = tokio::time::Instant::now();
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "Could not claim the heartbeat URL's lease.")
                    }
                }
            }
            _ => {}
        }
        let idle = in_flight.as_ref().is_none_or(JoinHandle::is_finished);
        if fence.is_some() && idle && tokio::time::Instant::now() >= next_ping {
            // On the schedule, not from now: ticks come a little late, and counting from now
            // would skip a tick each time.
            let now = tokio::time::Instant::now();
            next_ping = (next_ping + settings.every).max(now);
            in_flight = Some(tokio::spawn(ping(http.clone(), settings.clone())));
        }
    }
    if let Some(f) = fence {
        // A clean stop hands the pings over at once rather than after the live window.
        let _ = cstore::release(&store, LEASE, f).await;
    }
}

/// One ping; failures are logged without the URL's secret parts and counted.
async fn ping(http: HttpClient, settings: Arc<Settings>) {
    let outcome = match http.request(reqwest::Method::GET, &settings.url) {
        Ok(req) => match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status().as_u16())),
            Err(e) => Err(describe(&e)),
        },
        Err(why) => Err(why),
    };
    let result = if outcome.is_ok() { "ok" } else { "failed" };
    metrics::counter!("lookout_heartbeat_url_pings_total", "result" => result).increment(1);
    if let Err(why) = outcome {
        tracing::warn!(url = %redact(&settings.url), error = %why, "The heartbeat URL ping failed; the external service pages if this goes on.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_credentials_path_or_query() {
        assert_eq!(
            redact("https://user:pw@hc-ping.com:8443/5f0e-uuid?token=x"),
            "https://hc-ping.com:8443/…"
        );
        let s = Settings::new("https://hc-ping.com/secret-uuid", EVERY).unwrap();
        assert!(!format!("{s:?}").contains("secret"));
        assert!(Settings::new("ftp://x/y", EVERY).is_err());
        assert!(Settings::new("not a url", EVERY).is_err());
    }
}
