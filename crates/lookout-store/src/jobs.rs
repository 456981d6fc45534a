//! Background work leased through the database, so several replicas run each unit exactly once.
//!
//! A job is a row in `jobs`: periodic (it has `every_ms`) or one-off. A [`Scheduler`] claims due
//! jobs with an atomic `UPDATE … WHERE lease expired … RETURNING`, which on PostgreSQL also skips
//! rows another replica has locked. While a handler runs, the scheduler renews the lease; if the
//! replica dies, the lease expires and another replica takes the job over. Each claim takes a new
//! fencing token (`fence`); renewal and completion check it, so a replica that lost its lease —
//! even to itself, after an outage — cannot extend or finish a run that is no longer its own.
//! Lease times come from the database's clock, never the replica's. A run that cannot renew its
//! lease for two thirds of it (the database unreachable from this replica only) is abandoned
//! before the lease can end — its future dropped, which rolls back an open transaction — so it has
//! stopped before another replica can claim the job.
//!
//! A failed run is retried with exponential backoff; a one-off job that fails
//! [`MAX_ATTEMPTS`] times is kept, done, with its last error, for the operator to see.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::Row;
use tokio::task::JoinSet;

use crate::{BoxFuture, Result, Store};
use lookout_core::time::now_ms;

/// Attempts before a one-off job is given up.
pub const MAX_ATTEMPTS: i64 = 5;

/// A job this replica has claimed and now runs.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job's id (a periodic job's id is its stable name).
    pub id: String,
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input.
    pub payload: Json,
    /// When this run was due, ms since the epoch.
    pub due_at: i64,
    /// 1 on the first try.
    pub attempt: i64,
    every_ms: Option<i64>,
    /// The claim's fencing token.
    fence: i64,
}

impl ClaimedJob {
    /// The claim's fencing token: work that commits under the job's lease checks it in its own
    /// transaction (`UPDATE jobs … WHERE id = $1 AND fence = $2`).
    pub fn fence(&self) -> i64 {
        self.fence
    }
}

/// Runs one job; an `Err` is logged, stored on the job, and retried with backoff.
pub type JobHandler = Arc<dyn Fn(ClaimedJob) -> BoxFuture<Result<(), String>> + Send + Sync>;

/// Registers a periodic job (idempotent: an existing job keeps its schedule, `every_ms` updates).
pub async fn ensure_periodic(store: &Store, id: &str, kind: &str, every_ms: i64) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, every_ms, next_run_at, attempts, created_at)
         VALUES ($1, $2, '{}', $3, $4, 0, $4)
         ON CONFLICT (id) DO UPDATE SET every_ms = excluded.every_ms, kind = excluded.kind",
    )
    .bind(id)
    .bind(kind)
    .bind(every_ms)
    .bind(now)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Queues a one-off job to run at `run_at` (ms since the epoch); returns its id.
pub async fn enqueue(store: &Store, kind: &str, payload: &Json, run_at: i64) -> Result<String> {
    let id = lookout_core::id::new_sortable_id();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, every_ms, next_run_at, attempts, created_at)
         VALUES ($1, $2, $3, NULL, $4, 0, $5)",
    )
    .bind(&id)
    .bind(kind)
    .bind(payload.to_string())
    .bind(run_at)
    .bind(now_ms())
    .execute(store.pool())
    .await?;
    Ok(id)
}

/// Deletes one-off jobs that finished before `before`; returns how many (the `jobs.cleanup` job).
pub async fn delete_finished_before(store: &Store, before: i64) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM jobs WHERE done_at IS NOT NULL AND done_at < $1")
            .bind(before)
            .execute(store.pool())
            .await?
            .rows_affected(),
    )
}

/// The stored state of a job (for tests, the CLI and the UI).
#[derive(Debug, Clone)]
pub struct JobState {
    /// Its id.
    pub id: String,
    /// Runs so far of the current attempt series.
    pub attempts: i64,
    /// The last failure, if the last run failed.
    pub last_error: Option<String>,
    /// When it finished for good (one-off jobs), ms since the epoch.
    pub done_at: Option<i64>,
    /// When it is next due.
    pub next_run_at: i64,
}

/// Reads one job's state.
pub async fn state(store: &Store, id: &str) -> Result<Option<JobState>> {
    let row = sqlx::query(
        "SELECT id, attempts, last_error, done_at, next_run_at FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(JobState {
            id: r.try_get("id")?,
            attempts: r.try_get("attempts")?,
            last_error: r.try_get("last_error")?,
            done_at: r.try_get("done_at")?,
            next_run_at: r.try_get("next_run_at")?,
        })
    })
    .transpose()
}

/// How a scheduler behaves; defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// How often to look for due work when idle.
    pub poll: Duration,
    /// Jobs run at once on this replica.
    pub concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            concurrency: 8,
        }
    }
}

/// Claims and runs due jobs on this replica.
pub struct Scheduler {
    store: Store,
    owner: String,
    config: SchedulerConfig,
    handlers: HashMap<String, JobHandler>,
    claim_sql: String,
}

impl Scheduler {
    /// A scheduler identified as `owner` (unique per replica, e.g. host and pid).
    pub fn new(store: Store, owner: &str, config: SchedulerConfig) -> Scheduler {
        Scheduler {
            store,
            owner: owner.to_string(),
            config,
            handlers: HashMap::new(),
            claim_sql: String::new(),
        }
    }

    /// Runs jobs of `kind` with `handler`.
    pub fn handle(mut self, kind: &str, handler: JobHandler) -> Self {
        self.handlers.insert(kind.to_string(), handler);
        self
    }

    /// The claim statement for the registered kinds. `$1` owner, `$2` lease length, then the
    /// kinds; "now" is the database's clock. The outer `WHERE` re-checks the lease: on PostgreSQL an `UPDATE` that waited on a
    /// row lock re-evaluates it against the winner's row, so two replicas never both claim a run.
    fn build_claim_sql(&self) -> String {
        let kinds: Vec<String> = (0..self.handlers.len())
            .map(|i| format!("${}", i + 3))
            .collect();
        let skip_locked = crate::dialect::for_update_skip_locked(self.store.backend());
        let now = crate::dialect::now_ms_sql(self.store.backend());
        format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = {now} + $2, attempts = attempts + 1,
                    fence = fence + 1
             WHERE id = (SELECT id FROM jobs WHERE done_at IS NULL AND next_run_at <= {now}
                           AND (lease_until IS NULL OR lease_until < {now}) AND kind IN ({})
                         ORDER BY next_run_at LIMIT 1{skip_locked})
               AND (lease_until IS NULL OR lease_until < {now})
             RETURNING id, kind, payload, every_ms, next_run_at, attempts, fence, {now} AS db_now",
            kinds.join(", ")
        )
    }

    /// Claims one due job, if any.
    async fn claim(&self) -> Result<Option<ClaimedJob>> {
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        // A read first: idle polls must not take SQLite's write lock, or three replicas polling
        // every few ms starve each other's renewals and completions past their leases.
        let kinds = (0..self.handlers.len())
            .map(|i| format!("${}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let now = crate::dialect::now_ms_sql(self.store.backend());
        let probe_sql = format!(
            "SELECT 1 FROM jobs WHERE done_at IS NULL AND next_run_at <= {now}
               AND (lease_until IS NULL OR lease_until < {now}) AND kind IN ({kinds}) LIMIT 1"
        );
        let mut probe = sqlx::query(&probe_sql);
        for k in self.handlers.keys() {
            probe = probe.bind(k.as_str());
        }
        if probe.fetch_optional(self.store.pool()).await?.is_none() {
            return Ok(None);
        }
        let mut q = sqlx::query(&self.claim_sql)
            .bind(&self.owner)
            .bind(lease_ms);
        for k in self.handlers.keys() {
            q = q.bind(k.as_str());
        }
        // Every write here runs in a write transaction: on SQLite a bare UPDATE reads before it
        // writes and can fail with SQLITE_BUSY_SNAPSHOT when another replica's pool commits in
        // between, which no busy timeout retries; a lost `finish` would let the job run twice.
        let mut tx = self.store.begin_write().await?;
        let row = q.fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let payload: String = r.try_get("payload")?;
        let job = ClaimedJob {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            payload: serde_json::from_str(&payload).unwrap_or(Json::Null),
            every_ms: r.try_get("every_ms")?,
            due_at: r.try_get("next_run_at")?,
            attempt: r.try_get("attempts")?,
            fence: r.try_get("fence")?,
        };
        let now: i64 = r.try_get("db_now")?;
        let lag = (now - job.due_at).max(0) as f64 / 1000.0;
        metrics::histogram!("lookout_job_lag_seconds", "kind" => job.kind.clone()).record(lag);
        metrics::gauge!("lookout_job_last_lag_seconds", "kind" => job.kind.clone()).set(lag);
        Ok(Some(job))
    }

    /// Extends this run's lease; false if the lease was lost (its token moved on).
    async fn renew(store: &Store, owner: &str, job: &ClaimedJob, lease_ms: i64) -> Result<bool> {
        let sql = format!(
            "UPDATE jobs SET lease_until = {} + $1 WHERE id = $2 AND lease_owner = $3 AND fence = $4",
            crate::dialect::now_ms_sql(store.backend())
        );
        let mut tx = store.begin_write().await?;
        let n = sqlx::query(&sql)
            .bind(lease_ms)
            .bind(&job.id)
            .bind(owner)
            .bind(job.fence)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Records the outcome of a run, fenced by lease ownership.
    async fn finish(
        store: &Store,
        owner: &str,
        job: &ClaimedJob,
        outcome: Result<(), String>,
    ) -> Result<()> {
        let now = crate::cluster::db_now(store).await?;
        let (next_run_at, done_at, attempts, last_error) = match (&outcome, job.every_ms) {
            (Ok(()), Some(every)) => (next_periodic_run(job.due_at, every, now), None, 0, None),
            (Ok(()), None) => (job.due_at, Some(now), job.attempt, None),
            (Err(e), every) => {
                let gave_up = every.is_none() && job.attempt >= MAX_ATTEMPTS;
                let backoff = 1000 * (1i64 << job.attempt.clamp(0, 8));
                let next = match every {
                    // A periodic job retries at its next tick or after the backoff, whichever is first.
                    Some(every) => next_periodic_run(job.due_at, every, now).min(now + backoff),
                    None => now + backoff,
                };
                (next, gave_up.then_some(now), job.attempt, Some(e.clone()))
            }
        };
        let mut tx = store.begin_write().await?;
        sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, next_run_at = $1, done_at = $2,
                    attempts = $3, last_error = $4
             WHERE id = $5 AND lease_owner = $6 AND fence = $7",
        )
        .bind(next_run_at)
        .bind(done_at)
        .bind(attempts)
        .bind(last_error)
        .bind(&job.id)
        .bind(owner)
        .bind(job.fence)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs until `stop` resolves; running jobs finish before it returns.
    ///
    /// Running jobs live in a `JoinSet` owned by this future: if it is dropped (the replica
    /// stops abruptly), they stop with it and stop renewing their leases, as in a real crash.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        if self.handlers.is_empty() {
            return;
        }
        self.claim_sql = self.build_claim_sql();
        let this = Arc::new(self);
        let mut running = JoinSet::new();
        tokio::pin!(stop);
        loop {
            while running.try_join_next().is_some() {}
            if running.len() >= this.config.concurrency {
                tokio::select! {
                    () = &mut stop => break,
                    _ = running.join_next() => continue,
                }
            }
            // A claim is never cut short by the stop: cut after its commit, it would leave a job
            // leased to a replica that is not running it until the lease runs out.
            tokio::select! {
                biased;
                () = &mut stop => break,
                () = std::future::ready(()) => {}
            }
            let claimed = this.claim().await;
            match claimed {
                Ok(Some(job)) => {
                    let this = this.clone();
                    running.spawn(async move { this.run_one(job).await });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "Could not claim jobs; retrying."),
            }
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(this.config.poll) => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Runs one claimed job with lease renewal, then records its outcome.
    async fn run_one(&self, job: ClaimedJob) {
        let Some(handler) = self.handlers.get(&job.kind).cloned() else {
            return;
        };
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let work = handler(job.clone());
        tokio::pin!(work);
        let mut renew = tokio::time::interval(self.config.lease / 3);
        renew.tick().await;
        // When the last renewal that succeeded was sent (the claim, at first): the lease ends no
        // sooner than a lease after it, by the database's clock. A run that cannot renew (the
        // database unreachable from here) is abandoned a third of a lease before that, so it has
        // stopped before another replica can claim the job and start it again.
        let mut confirmed = std::time::Instant::now();
        let give_up = self.config.lease - self.config.lease / 3;
        let outcome = loop {
            tokio::select! {
                out = &mut work => break Some(out),
                _ = renew.tick() => {
                    let asked = std::time::Instant::now();
                    match Self::renew(&self.store, &self.owner, &job, lease_ms).await {
                        Ok(true) => confirmed = asked,
                        Ok(false) => break None,
                        Err(e) => {
                            tracing::warn!(job = %job.id, error = %e, "Lease renewal failed.");
                            if confirmed.elapsed() >= give_up {
                                break None;
                            }
                        }
                    }
                }
            }
        };
        let Some(outcome) = outcome else {
            tracing::warn!(job = %job.id, kind = %job.kind, "Lost the job's lease (or could not renew it in time); abandoned the run.");
            return;
        };
        if let Err(e) = &outcome {
            tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempt, error = %e, "Job failed.");
        }
        // The lease is still ours, so recording the outcome is retried rather than left to the
        // lease's expiry, which would run the job again.
        for attempt in 1..=5 {
            match Self::finish(&self.store, &self.owner, &job, outcome.clone()).await {
                Ok(()) => break,
                Err(e) if attempt == 5 => {
                    tracing::warn!(job = %job.id, error = %e, "Could not record the job's outcome.")
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await,
            }
        }
    }
}

/// The next run of a periodic job due at `due` that ran at `now`: the next tick on its cadence
/// after `now`. A replica that was down for an hour runs once, not sixty catch-up times.
fn next_periodic_run(due: i64, every: i64, now: i64) -> i64 {
    let every = every.max(1);
    let next = due + every;
    if next > now {
        next
    } else {
        now + every - (now - due) % every
    }
}

#[cfg(test)]
mod tests {
    use super::next_periodic_run;

    #[test]
    fn periodic_jobs_keep_cadence_and_skip_missed_ticks() {
        assert_eq!(next_periodic_run(1000, 100, 1050), 1100);
        // Down for a long time: next tick after now, on the same cadence.
        assert_eq!(next_periodic_run(1000, 100, 5030), 5100);
        assert_eq!(next_periodic_run(1000, 100, 5000), 5100);
    }
}
