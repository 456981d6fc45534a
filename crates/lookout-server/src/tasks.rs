//! The background work of every capability, in two shapes: periodic jobs (leased, so one replica
//! runs each at a time, all through one scheduler) and workers (event-stream consumers, shard
//! runners, delivery loops). Each capability declares its own in `jobs()` and `workers()`;
//! `runtime::serve` starts them as a table.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use lookout_core::seal::Sealer;
use lookout_store::jobs::{self, JobHandler, Scheduler, SchedulerConfig};
use lookout_store::writer::WriteQueue;
use lookout_store::{Store, StoreError};

/// What background work is started with.
#[derive(Clone)]
pub struct Background {
    /// The store.
    pub store: Store,
    /// The durable write path.
    pub writes: WriteQueue,
    /// Seals and opens stored credentials.
    pub sealer: Sealer,
    /// Alerting's shared state (wake-ups, the outbound policy for user destinations).
    pub alerting: crate::alerting::Alerting,
    /// This replica's name, the owner of the leases it takes.
    pub replica: String,
    /// This replica in the cluster: live replicas, placement, the database's clock.
    pub cluster: crate::cluster::Cluster,
    /// Turns true when the server starts shutting down.
    pub stop: watch::Receiver<bool>,
    /// How often restore drills run.
    pub backups: crate::backups::Settings,
    /// Most uptime checks in flight at once on this replica.
    pub uptime_max_concurrent_checks: usize,
    /// The server's public URL (no trailing `/`), for what background work links to.
    pub public_url: String,
}

impl Background {
    /// Resolves when the server starts shutting down.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// The user-destination policy every outbound connection goes through.
    pub fn outbound(&self) -> &Arc<lookout_outbound::NetPolicy> {
        self.alerting.outbound()
    }
}

/// A periodic job: its id (also its kind), how often it is due, and what it does.
pub struct PeriodicJob {
    /// Job id and handler kind.
    pub id: &'static str,
    /// Period, ms.
    pub every_ms: i64,
    /// What one run does; an `Err` is logged, kept on the job and retried with backoff.
    pub handler: JobHandler,
}

impl PeriodicJob {
    /// A job whose run needs only the store.
    pub fn on_store<F, Fut>(id: &'static str, every_ms: i64, store: &Store, run: F) -> Self
    where
        F: Fn(Store) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let store = store.clone();
        let run = Arc::new(run);
        PeriodicJob {
            id,
            every_ms,
            handler: Arc::new(move |_| {
                let (store, run) = (store.clone(), run.clone());
                Box::pin(async move { run(store).await })
            }),
        }
    }
}

/// Registers every job (idempotent across restarts and replicas) and returns the one scheduler
/// that claims and runs them.
pub async fn scheduler(
    store: &Store,
    replica: &str,
    all: Vec<PeriodicJob>,
) -> Result<Scheduler, StoreError> {
    let mut scheduler = Scheduler::new(store.clone(), replica, SchedulerConfig::default());
    for job in all {
        jobs::ensure_periodic(store, job.id, job.id, job.every_ms).await?;
        scheduler = scheduler.handle(job.id, job.handler);
    }
    Ok(scheduler)
}

/// Workers a capability started; `runtime::serve` waits for them after shutdown begins.
pub type Workers = Vec<JoinHandle<()>>;
