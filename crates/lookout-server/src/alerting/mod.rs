//! Alerting and on-call in the server: the incident engine ([`engine`]), alert policies over the
//! domain-event stream ([`policies`]), the escalation timers ([`timers`]), the outbox worker and
//! the channels it delivers to ([`deliver`]), and signed one-click links ([`links`]).

pub mod deliver;
pub mod deliver_email;
pub mod engine;
pub mod inbound;
pub mod links;
pub mod policies;
pub mod query;
pub mod timers;

use std::sync::Arc;

use lookout_core::seal::Sealer;
use lookout_outbound::{HttpClient, NetPolicy};
use lookout_store::Store;
use tokio::sync::Notify;

/// What the alerting tasks and handlers share.
#[derive(Clone)]
pub struct Alerting {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sealer: Sealer,
    public_url: String,
    outbound: Arc<NetPolicy>,
    http: HttpClient,
    outbox_wake: Notify,
    timers_wake: Notify,
}

impl Alerting {
    /// Bundles the parts; `public_url` is where links in notifications point, and every
    /// channel, SMTP server and report delivery is reached only where `outbound` allows.
    pub fn new(
        store: Store,
        sealer: Sealer,
        public_url: &str,
        outbound: Arc<NetPolicy>,
    ) -> Alerting {
        Alerting {
            inner: Arc::new(Inner {
                store,
                sealer,
                public_url: public_url.trim_end_matches('/').to_string(),
                http: HttpClient::new(outbound.clone(), deliver::SEND_TIMEOUT, deliver::USER_AGENT),
                outbound,
                outbox_wake: Notify::new(),
                timers_wake: Notify::new(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Seals credentials and signs links.
    pub fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    /// The outbound policy every user-supplied destination is held to.
    pub fn outbound(&self) -> &Arc<NetPolicy> {
        &self.inner.outbound
    }

    /// The client notifications are sent with (the outbound policy applied at connect time
    /// and on every redirect).
    pub(crate) fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// Lookout's public URL, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Tells the local outbox worker that pages were queued (so delivery does not wait for its
    /// next poll) and the timer loop that a timer may have moved.
    pub fn wake(&self) {
        self.inner.outbox_wake.notify_one();
        self.inner.timers_wake.notify_one();
    }

    pub(crate) fn outbox_wake(&self) -> &Notify {
        &self.inner.outbox_wake
    }

    pub(crate) fn timers_wake(&self) -> &Notify {
        &self.inner.timers_wake
    }
}

/// How long a worker sleeps until `t` (ms since the epoch): at least 10 ms, so a timer that is
/// due but not claimable yet cannot make its loop spin, and at most `poll`.
pub(crate) fn until(t: i64, poll: std::time::Duration) -> std::time::Duration {
    let ms = u64::try_from(t - lookout_core::time::now_ms()).unwrap_or(0);
    std::time::Duration::from_millis(ms).clamp(std::time::Duration::from_millis(10), poll)
}

/// Shown instead of a stored secret.
pub const REDACTED: &str = "********";
