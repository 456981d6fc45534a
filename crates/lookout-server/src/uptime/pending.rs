//! A shard's writes that storage has not taken yet, oldest first, and the lease they are written
//! under.
//!
//! The write runs in a task of its own while the runner goes on probing: a database that hangs
//! (a frozen server, a network path that drops packets without resetting) used to hold the
//! runner in `flush` until it answered, so checks stopped exactly when they were needed. One
//! write is in flight at a time; what the runner produces meanwhile waits behind it, and a write
//! is never abandoned while it may still commit, so a later retry cannot double it. The guard's
//! batch number ([`lookout_store::cluster::guard`]) tells, after an error, a batch that committed
//! (its acknowledgement was lost) from one that did not.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::runner::UptimeContext;
use crate::cluster::placement::Work;
use lookout_store::uptime::{self as ustore, results};
use lookout_store::{StoreError, Write};

/// Writes a shard keeps while storage refuses them (besides the write in flight), before
/// dropping its oldest, cheapest first.
pub(super) const MAX_PENDING: usize = 20_000;
/// How long after a failed write the next try waits.
const RETRY: Duration = Duration::from_secs(1);

/// What a buffered write stores, for choosing what to drop when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A raw check result: the figures still add up without a few.
    Result,
    /// A monitor's state: written again after the monitor's next check.
    State,
    /// Cron check-in bookkeeping.
    Cron,
    /// A change of health (the monitor's history).
    Change,
    /// A domain event (alerts and notifications follow from it), or anything else.
    Event,
}

impl Kind {
    /// Dropped in this order when the buffer is full: what is cheapest to lose first.
    const DROP_ORDER: [Kind; 5] = [
        Kind::Result,
        Kind::State,
        Kind::Cron,
        Kind::Change,
        Kind::Event,
    ];

    fn of(w: &Write) -> Kind {
        match w {
            Write::Insert { table, .. } if *table == results::TABLE => Kind::Result,
            Write::Insert { table, .. } if *table == "cron_checkins" => Kind::Cron,
            Write::Insert { table, .. } if *table == "monitor_changes" => Kind::Change,
            Write::Exec { sql, .. } if sql.starts_with("UPDATE cron_checkins") => Kind::Cron,
            w if ustore::state_write_monitor(w).is_some() => Kind::State,
            _ => Kind::Event,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Result => "result",
            Kind::State => "state",
            Kind::Cron => "cron",
            Kind::Change => "change",
            Kind::Event => "event",
        }
    }
}

/// Keeps, among `writes[keep..]`, only the newest state write of each monitor (the earlier ones
/// are upserts it overwrites; those of the write in flight are left alone).
fn coalesce_states(writes: &mut Vec<Write>, keep: usize) {
    let mut newest = std::collections::HashSet::new();
    let mut stale = vec![false; writes.len()];
    for (i, w) in writes.iter().enumerate().skip(keep).rev() {
        if let Some(monitor) = ustore::state_write_monitor(w) {
            stale[i] = !newest.insert(monitor);
        }
    }
    let mut i = 0;
    writes.retain(|_| {
        i += 1;
        !stale[i - 1]
    });
}

/// What became of one guarded write.
enum Outcome {
    /// It committed.
    Committed,
    /// It did not commit and the lease is still this holder's: try again (with the error to
    /// log, when it says more than "not this batch").
    Retry(Option<String>),
    /// Another claim took the lease: nothing of this holder's may be written any more.
    Fenced,
}

/// The buffer of one shard runner.
pub(super) struct Pending {
    lease: String,
    fence: i64,
    /// The number of the last batch that committed (see [`lookout_store::cluster::guard`]).
    seq: i64,
    writes: Vec<Write>,
    /// When to retry after a failure.
    retry_at: Option<Instant>,
    /// A write was refused by the fence: the shard is another replica's now.
    pub(super) fenced: bool,
    /// The write in flight: how many of the oldest `writes` it carries, and its task.
    inflight: Option<(usize, JoinHandle<Outcome>)>,
    /// Whether writes have been failing (to log the failure and the recovery once each).
    failing: bool,
}

impl Pending {
    pub(super) fn new(work: &Work) -> Pending {
        Pending {
            lease: work.name.clone(),
            fence: work.fence,
            seq: work.seq,
            writes: Vec::new(),
            retry_at: None,
            fenced: false,
            inflight: None,
            failing: false,
        }
    }

    /// Writes not known to be stored yet (in flight included).
    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether everything is stored.
    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Whether a write is in flight.
    pub(super) fn flushing(&self) -> bool {
        self.inflight.is_some()
    }

    /// Queues `writes` after everything already waiting. A monitor's state is an upsert, so only
    /// its newest state write is kept among those not in flight; past [`MAX_PENDING`] the
    /// oldest writes not in flight are dropped, cheapest first ([`Kind::DROP_ORDER`]), and
    /// counted in `lookout_uptime_results_dropped_total{kind}`. The buffer never holds more
    /// than [`MAX_PENDING`] writes besides those of the write in flight (itself at most that).
    pub(super) fn push(&mut self, writes: Vec<Write>) {
        let keep = self.inflight.as_ref().map_or(0, |(n, _)| *n);
        let states = writes
            .iter()
            .filter(|w| ustore::state_write_monitor(w).is_some())
            .count();
        self.writes.extend(writes);
        if states > 0 {
            coalesce_states(&mut self.writes, keep);
        }
        self.trim(keep);
    }

    /// Drops the oldest writes after the first `keep` (those of the write in flight), cheapest
    /// first, until at most [`MAX_PENDING`] wait besides those `keep`; counts what it drops.
    /// The write in flight does not count against the bound: during an outage it may carry a
    /// full buffer, and counting it would drop every new write, health changes and events too.
    fn trim(&mut self, keep: usize) {
        let mut excess = (self.writes.len().saturating_sub(keep)).saturating_sub(MAX_PENDING);
        for kind in Kind::DROP_ORDER {
            if excess == 0 {
                break;
            }
            let before = excess;
            let mut i = 0;
            self.writes.retain(|w| {
                i += 1;
                if i > keep && excess > 0 && Kind::of(w) == kind {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
            if before > excess {
                metrics::counter!("lookout_uptime_results_dropped_total", "kind" => kind.as_str())
                    .increment((before - excess) as u64);
            }
        }
    }

    /// Starts writing everything waiting in one guarded commit, unless a write is in flight,
    /// nothing waits, or a retry is not due yet. Returns at once: [`Pending::finished`] settles it.
    pub(super) fn start(&mut self, ctx: &UptimeContext) {
        if self.writes.is_empty()
            || self.fenced
            || self.inflight.is_some()
            || self.retry_at.is_some_and(|t| Instant::now() < t)
        {
            return;
        }
        let seq = self.seq + 1;
        let mut batch = Vec::with_capacity(self.writes.len() + 1);
        batch.push(lookout_store::cluster::guard(&self.lease, self.fence, seq));
        batch.extend(self.writes.iter().cloned());
        let n = self.writes.len();
        let (queue, store, lease, fence) = (
            ctx.writes.clone(),
            ctx.store.clone(),
            self.lease.clone(),
            self.fence,
        );
        let task = tokio::spawn(async move {
            let Err(e) = queue.write(batch).await else {
                return Outcome::Committed;
            };
            // The guard numbered this batch: whatever the answer, a batch that did commit is
            // known by its number, so one whose acknowledgement was lost is never written twice.
            match lookout_store::cluster::batch_written(&store, &lease, fence, seq).await {
                Ok(Some(true)) => Outcome::Committed,
                Ok(Some(false)) if matches!(e, StoreError::Fenced) => Outcome::Retry(None),
                Ok(Some(false)) | Err(_) => Outcome::Retry(Some(e.to_string())),
                Ok(None) => Outcome::Fenced,
            }
        });
        self.inflight = Some((n, task));
    }

    /// Waits for the write in flight (forever when there is none: a `select!` branch guarded by
    /// [`Pending::flushing`]) and applies its outcome. Cancel-safe: nothing changes until the
    /// write's task has answered.
    pub(super) async fn finished(&mut self) {
        let Some((_, task)) = self.inflight.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = task
            .await
            .unwrap_or_else(|e| Outcome::Retry(Some(format!("the write task failed: {e}"))));
        let n = self.inflight.take().map_or(0, |(n, _)| n);
        match outcome {
            Outcome::Committed => {
                self.seq += 1;
                self.writes.drain(..n.min(self.writes.len()));
                self.retry_at = None;
                if std::mem::take(&mut self.failing) {
                    tracing::info!(lease = %self.lease, "Stored check results that waited for storage.");
                }
            }
            Outcome::Retry(why) => {
                if let Some(e) = why.filter(|_| !self.failing) {
                    tracing::warn!(lease = %self.lease, error = %e, waiting = self.writes.len(), "Could not store check results; keeping them and retrying.");
                    self.failing = true;
                }
                self.retry_at = Some(Instant::now() + RETRY);
                // The failed batch waits again like the rest: its state upserts may be stale now,
                // and the whole buffer is bounded before the next try.
                coalesce_states(&mut self.writes, 0);
                self.trim(0);
            }
            Outcome::Fenced => {
                tracing::warn!(lease = %self.lease, dropped = self.writes.len(), "Another replica took this shard over; stopping and dropping unstored results.");
                self.fenced = true;
                self.writes.clear();
            }
        }
    }

    /// Handing back (or shutting down): a few more tries, so a blip does not cost the results.
    /// A write still in flight at the end is left to finish on its own; its guard keeps it from
    /// landing after another holder's.
    pub(super) async fn drain(&mut self, ctx: &UptimeContext) {
        for _ in 0..10 {
            if self.is_empty() || self.fenced {
                return;
            }
            self.retry_at = None;
            self.start(ctx);
            let _ = tokio::time::timeout(Duration::from_secs(2), self.finished()).await;
            if !self.is_empty() && !self.flushing() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_store::uptime::MonitorState;

    fn pending() -> Pending {
        let (_tx, stop) = tokio::sync::watch::channel(false);
        Pending::new(&Work {
            name: "uptime.shard.0".into(),
            fence: 1,
            seq: 0,
            stop,
        })
    }

    fn state(monitor: i64, failures: i64) -> Write {
        ustore::state_write(
            monitor,
            &MonitorState {
                failures,
                ..Default::default()
            },
        )
    }

    fn change(monitor: i64, at: i64) -> Write {
        ustore::change_write(monitor, at, "up", "down", "timeout", true)
    }

    fn result(monitor: i64, at: i64) -> Write {
        results::result_write(
            monitor,
            &results::ResultRow {
                at,
                ok: true,
                maintenance: false,
                latency_us: Some(1_000),
                message: None,
            },
        )
    }

    #[test]
    fn a_monitors_state_writes_coalesce_to_the_newest() {
        let mut p = pending();
        p.push(vec![state(1, 1), result(1, 10), state(2, 1)]);
        p.push(vec![state(1, 2), result(1, 20)]);
        p.push(vec![state(1, 3)]);
        assert_eq!(p.len(), 4, "{:?}", p.writes);
        let states: Vec<String> = p
            .writes
            .iter()
            .filter(|w| ustore::state_write_monitor(w).is_some())
            .map(|w| format!("{w:?}"))
            .collect();
        assert_eq!(
            states,
            [format!("{:?}", state(2, 1)), format!("{:?}", state(1, 3))]
        );
    }

    #[test]
    fn the_buffer_is_bounded_whatever_it_holds_dropping_results_first() {
        let mut p = pending();
        p.push((0..100).map(|i| result(1, i)).collect());
        p.push((0..MAX_PENDING as i64).map(|i| change(i, i)).collect());
        assert_eq!(p.len(), MAX_PENDING);
        assert!(
            p.writes.iter().all(|w| Kind::of(w) == Kind::Change),
            "the raw results went first"
        );
        // Full of health changes: a state write goes first (the next check writes it again),
        // then the oldest change.
        p.push(vec![change(-1, 1), state(7, 1)]);
        assert_eq!(p.len(), MAX_PENDING);
        assert_eq!(format!("{:?}", p.writes[0]), format!("{:?}", change(1, 1)));
        assert_eq!(
            format!("{:?}", p.writes.last().unwrap()),
            format!("{:?}", change(-1, 1))
        );
    }

    fn event(n: i64) -> Write {
        Write::Exec {
            sql: "INSERT INTO domain_events (kind) VALUES ($1)",
            args: vec![n.into()],
        }
    }

    #[tokio::test]
    async fn a_full_write_in_flight_does_not_drop_what_comes_after_it() {
        let mut p = pending();
        p.push((0..MAX_PENDING as i64).map(|i| result(1, i)).collect());
        // The database is down: the write in flight carries the whole buffer and will fail.
        p.inflight = Some((
            MAX_PENDING,
            tokio::spawn(async { Outcome::Retry(Some("database down".into())) }),
        ));
        p.push(vec![change(1, 1), event(1)]);
        assert_eq!(
            p.len(),
            MAX_PENDING + 2,
            "the health change and the event were kept"
        );
        assert_eq!(
            format!("{:?}", &p.writes[MAX_PENDING..]),
            format!("{:?}", [change(1, 1), event(1)])
        );
        p.finished().await;
        // Back in the buffer, the failed batch is bounded like the rest: the oldest results go.
        assert_eq!(p.len(), MAX_PENDING);
        assert_eq!(format!("{:?}", p.writes[0]), format!("{:?}", result(1, 2)));
        assert_eq!(
            format!("{:?}", &p.writes[MAX_PENDING - 2..]),
            format!("{:?}", [change(1, 1), event(1)])
        );
    }
}
