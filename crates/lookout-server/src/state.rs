//! What every handler shares: the store, the write queue, settings, and the metrics handle.

use std::sync::Arc;

use lookout_store::{Store, WriteQueue};
use metrics_exporter_prometheus::PrometheusHandle;

/// Settings the HTTP layer needs (the rest of the configuration stays in the binary).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The URL users reach Lookout at, without a trailing slash (DSNs and links are built on it).
    pub public_url: String,
    /// Where data lives, shown on the settings page.
    pub data_location: String,
    /// How long a UI login lasts.
    pub session_ttl_ms: i64,
    /// Reverse proxies whose `X-Forwarded-For` names the client (the login throttle counts by
    /// client); empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl HttpSettings {
    /// Whether cookies must carry `Secure` (the public URL is HTTPS).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The Sentry-style DSN for a project key: `scheme://key@host[/path]/project_id`.
    pub fn dsn(&self, public_key: &str, project_id: i64) -> String {
        match self.public_url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{public_key}@{rest}/{project_id}"),
            None => format!("http://{public_key}@{}/{project_id}", self.public_url),
        }
    }
}

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    writes: WriteQueue,
    settings: HttpSettings,
    metrics: PrometheusHandle,
    ingest_limits: crate::errors::ingest::RateLimiter,
    ingest_keys: crate::errors::ingest::KeyCache,
    ingest_budget: crate::budget::ByteBudget,
    login_throttle: crate::auth::LoginThrottle,
    code_guard: crate::tenancy::code_guard::CodeGuard,
    reset_requests: crate::tenancy::links::ResetRequests,
    sealer: lookout_core::seal::Sealer,
    alerting: crate::alerting::Alerting,
    /// This replica in the cluster, once `serve` started heartbeating (unset in handler tests).
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
    /// Single sign-on, when an OpenID provider is configured (set once by `serve`).
    sso: std::sync::OnceLock<Arc<crate::tenancy::sso::Sso>>,
    /// The cluster figures of the last `/metrics` scrape and when they were read.
    scrape_cache: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
    /// Samples one PromQL query may load (`LOOKOUT_PROMETHEUS_QUERY_MAX_SAMPLES` at start);
    /// per state, so a test can lower it without touching the process environment.
    promql_max_samples: std::sync::atomic::AtomicUsize,
}

impl AppState {
    /// Bundles the parts, with the default ingest limits; `outbound` is the policy every
    /// user-supplied destination is held to.
    pub fn new(
        store: Store,
        writes: WriteQueue,
        settings: HttpSettings,
        metrics: PrometheusHandle,
        sealer: lookout_core::seal::Sealer,
        outbound: Arc<lookout_outbound::NetPolicy>,
    ) -> Self {
        Self::with_ingest_limits(
            store,
            writes,
            settings,
            metrics,
            sealer,
            outbound,
            crate::budget::IngestLimits::default(),
        )
    }

    /// Bundles the parts, with these ingest limits.
    pub fn with_ingest_limits(
        store: Store,
        writes: WriteQueue,
        settings: HttpSettings,
        metrics: PrometheusHandle,
        sealer: lookout_core::seal::Sealer,
        outbound: Arc<lookout_outbound::NetPolicy>,
        limits: crate::budget::IngestLimits,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                alerting: crate::alerting::Alerting::new(
                    store.clone(),
                    sealer.clone(),
                    &settings.public_url,
                    outbound,
                ),
                store,
                writes,
                settings,
                metrics,
                ingest_limits: Default::default(),
                ingest_keys: Default::default(),
                ingest_budget: crate::budget::ByteBudget::new(limits),
                login_throttle: Default::default(),
                code_guard: Default::default(),
                reset_requests: Default::default(),
                sealer,
                cluster: std::sync::OnceLock::new(),
                sso: std::sync::OnceLock::new(),
                scrape_cache: tokio::sync::Mutex::new(None),
                promql_max_samples: std::sync::atomic::AtomicUsize::new(
                    crate::prometheus::promql::max_samples_setting(),
                ),
            }),
        }
    }
    /// Samples one PromQL query may load.
    pub fn promql_max_samples(&self) -> usize {
        self.inner
            .promql_max_samples
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the PromQL sample budget (tests lower it to reach the refusal with little data).
    pub fn set_promql_max_samples(&self, n: usize) {
        self.inner
            .promql_max_samples
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The cluster figures of the last `/metrics` scrape (see `operations::metrics_text`).
    pub fn scrape_cache(&self) -> &tokio::sync::Mutex<Option<(std::time::Instant, String)>> {
        &self.inner.scrape_cache
    }
    /// This replica in the cluster (set once by `serve`).
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.inner.cluster.get()
    }
    /// Joins the server to `cluster` (at start, before serving).
    pub fn set_cluster(&self, cluster: crate::cluster::Cluster) {
        let _ = self.inner.cluster.set(cluster);
    }
    /// Single sign-on, when configured.
    pub fn sso(&self) -> Option<&crate::tenancy::sso::Sso> {
        self.inner.sso.get().map(Arc::as_ref)
    }
    /// Turns on single sign-on (at start, before serving).
    pub fn set_sso(&self, sso: crate::tenancy::sso::Sso) {
        let _ = self.inner.sso.set(Arc::new(sso));
    }
    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    /// The durable write queue.
    pub fn writes(&self) -> &WriteQueue {
        &self.inner.writes
    }
    /// HTTP settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.inner.settings
    }
    /// Per-project ingest rate limits of this process.
    pub fn ingest_limits(&self) -> &crate::errors::ingest::RateLimiter {
        &self.inner.ingest_limits
    }
    /// Failed logins per email.
    pub fn login_throttle(&self) -> &crate::auth::LoginThrottle {
        &self.inner.login_throttle
    }
    /// Wrong two-factor codes per pending sign-in and per account.
    pub fn code_guard(&self) -> &crate::tenancy::code_guard::CodeGuard {
        &self.inner.code_guard
    }
    /// Password reset requests per client address.
    pub fn reset_requests(&self) -> &crate::tenancy::links::ResetRequests {
        &self.inner.reset_requests
    }
    /// Recently looked-up DSN keys.
    pub fn ingest_keys(&self) -> &crate::errors::ingest::KeyCache {
        &self.inner.ingest_keys
    }
    /// The memory budget and size limits of Sentry ingest.
    pub fn ingest_budget(&self) -> &crate::budget::ByteBudget {
        &self.inner.ingest_budget
    }
    /// Seals stored credentials.
    pub fn sealer(&self) -> &lookout_core::seal::Sealer {
        &self.inner.sealer
    }
    /// Incidents, paging and on-call.
    pub fn alerting(&self) -> &crate::alerting::Alerting {
        &self.inner.alerting
    }
    /// The Prometheus recorder's handle.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::HttpSettings;

    #[test]
    fn dsn_follows_the_public_url() {
        let s = HttpSettings {
            public_url: "https://lookout.example.com/base".into(),
            data_location: String::new(),
            session_ttl_ms: 0,
            trusted_proxies: Vec::new(),
        };
        assert_eq!(s.dsn("abc", 7), "https://abc@lookout.example.com/base/7");
        assert!(s.secure_cookies());
    }
}
