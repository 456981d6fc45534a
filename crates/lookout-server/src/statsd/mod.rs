//! StatsD and DogStatsD in: a UDP listener (off unless `--statsd-listen` is given) whose
//! packets are aggregated in memory ([`aggregate`]) and flushed every 10 s (configurable) into
//! the Prometheus metric store of one project, where PromQL and NRQL read them
//! (docs/metrics.md, "StatsD").
//!
//! UDP has no acknowledgement, so durability is this side's job: a flush counts as written only
//! once the store's write commits. A flush whose write fails (storage busy or down) is kept and
//! retried first at the next flush, up to [`MAX_PENDING`] flushes; beyond that the oldest is
//! dropped and its samples counted in `lookout_statsd_samples_dropped_total`. Counters and
//! summary totals are running sums, so even a dropped flush loses no count: the next written
//! one carries it. A flush part the store refuses for good (the project's series limit, a
//! hash collision) costs only its new series: those already stored are written, the refused
//! ones are counted (`…_series_refused_total`, `…_samples_dropped_total`) and left out of
//! later flushes until the idle limit has passed, then tried again.
//!
//! Self-metrics (at `/metrics`): `lookout_statsd_packets_total`, `…_lines_total`,
//! `…_malformed_lines_total`, `…_negative_counter_lines_total` (`decr`: a counter cannot go
//! down), `…_unknown_fields_total` (DogStatsD fields ignored, such as
//! `|e:` and `|card:`), `…_oversized_packets_total`, `…_series_dropped_total` (over the
//! series budget), `…_values_dropped_total` (summary values and set members over the
//! aggregator's budget), `…_ignored_total` (events and service checks), `…_samples_written_total`,
//! `…_flush_failures_total`, `…_samples_dropped_total`, and the gauge `…_series`.

pub mod aggregate;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_core::time::now_ms;
use lookout_protocol::remote_write::{Batch, Series};
use lookout_store::prom::{self, IngestError};
use lookout_store::{Store, StoreError, WriteQueue};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use aggregate::Aggregator;

/// Failed flushes kept for a retry.
pub const MAX_PENDING: usize = 6;
/// Bytes of failed flushes kept for a retry, all together (as [`aggregate::batch_bytes`] counts
/// them): with the store down, memory stops growing here, and the oldest flush goes first.
pub const MAX_PENDING_BYTES: usize = 128 << 20;
/// Series per store write: bounds one write's statements and memory.
const SERIES_PER_WRITE: usize = 2_000;
/// At most one malformed-line log line per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// `--statsd-*` settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The UDP address to listen on.
    pub listen: SocketAddr,
    /// The project written to (id or slug); the first project when `None`.
    pub project: Option<String>,
    /// How often the aggregate is written.
    pub flush_every: Duration,
    /// Largest packet taken, in bytes; larger ones are dropped and counted.
    pub max_packet: usize,
    /// The aggregator's budget and quantiles.
    pub aggregate: aggregate::Settings,
}

impl Settings {
    /// Defaults for a listen address: 10 s flushes, 8 KiB packets (DogStatsD's own buffer).
    pub fn new(listen: SocketAddr) -> Self {
        Settings {
            listen,
            project: None,
            flush_every: Duration::from_secs(10),
            max_packet: 8192,
            aggregate: aggregate::Settings::default(),
        }
    }
}

/// The bound address and the two tasks (receive, flush); both stop when `stop` turns true, the
/// flush task after a last flush.
pub async fn start(
    store: Store,
    writes: WriteQueue,
    project: i64,
    settings: Settings,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let socket = UdpSocket::bind(settings.listen).await?;
    let addr = socket.local_addr()?;
    let agg = Arc::new(Mutex::new(Aggregator::new(settings.aggregate.clone())));
    let receive = tokio::spawn(receive(
        socket,
        agg.clone(),
        settings.max_packet,
        stop.clone(),
    ));
    let flush = tokio::spawn(flush_loop(
        Flusher {
            store,
            writes,
            project,
            pending: VecDeque::new(),
        },
        agg,
        settings.flush_every,
        stop,
    ));
    tracing::info!(%addr, project, "StatsD listener on.");
    Ok((addr, vec![receive, flush]))
}

async fn receive(
    socket: UdpSocket,
    agg: Arc<Mutex<Aggregator>>,
    max_packet: usize,
    mut stop: watch::Receiver<bool>,
) {
    // One byte more than the budget, so an oversized packet is seen as such, not truncated.
    let mut buf = vec![0u8; max_packet.saturating_add(1).min(65_536)];
    let mut last_log: Option<Instant> = None;
    let mut unlogged = 0u64;
    let mut last_negative_log: Option<Instant> = None;
    loop {
        let n = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "StatsD receive failed.");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        metrics::counter!("lookout_statsd_packets_total").increment(1);
        if n > max_packet {
            metrics::counter!("lookout_statsd_oversized_packets_total").increment(1);
            tracing::debug!(max_packet, "StatsD packet over the size limit dropped.");
            continue;
        }
        let Some(packet) = buf.get(..n) else { continue };
        let (outcome, held) = match agg.lock() {
            Ok(mut a) => (a.add_packet(packet), a.len()),
            Err(_) => return,
        };
        metrics::counter!("lookout_statsd_lines_total").increment(
            outcome.taken
                + outcome.malformed
                + outcome.over_budget
                + outcome.ignored
                + outcome.negative,
        );
        if outcome.negative > 0 {
            metrics::counter!("lookout_statsd_negative_counter_lines_total")
                .increment(outcome.negative);
            if last_negative_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                tracing::warn!(
                    lines = outcome.negative,
                    "StatsD counter lines with a negative value refused: a counter cannot go \
                     down (send a gauge instead; logged at most every 10 s)."
                );
                last_negative_log = Some(Instant::now());
            }
        }
        metrics::counter!("lookout_statsd_ignored_total").increment(outcome.ignored);
        if outcome.values_dropped > 0 {
            metrics::counter!("lookout_statsd_values_dropped_total")
                .increment(outcome.values_dropped);
        }
        if outcome.unknown_fields > 0 {
            metrics::counter!("lookout_statsd_unknown_fields_total")
                .increment(outcome.unknown_fields);
        }
        metrics::gauge!("lookout_statsd_series").set(held as f64);
        if outcome.over_budget > 0 {
            metrics::counter!("lookout_statsd_series_dropped_total").increment(outcome.over_budget);
        }
        if outcome.malformed > 0 {
            metrics::counter!("lookout_statsd_malformed_lines_total").increment(outcome.malformed);
            unlogged += outcome.malformed;
            if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                tracing::warn!(
                    lines = unlogged,
                    example = outcome.example.as_deref().unwrap_or(""),
                    "StatsD lines refused (logged at most every 10 s)."
                );
                last_log = Some(Instant::now());
                unlogged = 0;
            }
        }
    }
}

async fn flush_loop(
    mut flusher: Flusher,
    agg: Arc<Mutex<Aggregator>>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        // Taken under the lock (values move out, keys are shared: no copying), then built on
        // a blocking thread after letting go of it: sorting the windows and copying the labels
        // of every series (bounded by the aggregator's budgets) neither stalls a runtime worker
        // nor keeps the receive task waiting while packets pile up in the socket buffer.
        let taken = match agg.lock() {
            Ok(mut a) => a.take(now_ms()),
            Err(_) => return,
        };
        let built = tokio::task::spawn_blocking(move || taken.build()).await;
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "StatsD flush failed to build; flushing stops.");
                return;
            }
        };
        let batch = built.batch;
        let skipped = built.refused_samples + built.over_flush_samples;
        if skipped > 0 {
            metrics::counter!("lookout_statsd_samples_dropped_total").increment(skipped);
        }
        let refused = flusher.flush(batch).await;
        if !refused.is_empty() {
            if let Ok(mut a) = agg.lock() {
                a.refuse(refused);
            }
        }
        if last {
            // No later flush will retry what the last one could not write: count it as lost.
            let lost: usize = flusher.pending.iter().map(Batch::samples).sum();
            if lost > 0 {
                metrics::counter!("lookout_statsd_samples_dropped_total").increment(lost as u64);
                tracing::warn!(
                    samples = lost,
                    flushes = flusher.pending.len(),
                    "StatsD flushes not written at shutdown (the store refused the last write); \
                     their samples are lost."
                );
            }
            return;
        }
    }
}

/// Writes flushes, oldest first, keeping those whose write failed for the next round.
struct Flusher {
    store: Store,
    writes: WriteQueue,
    project: i64,
    pending: VecDeque<Batch>,
}

impl Flusher {
    /// Writes what is pending and `batch`; returns the series the store refused for good (their
    /// labels), which the aggregator then leaves out: the other series were written.
    async fn flush(&mut self, batch: Batch) -> Vec<Vec<(String, String)>> {
        let mut refused = Vec::new();
        if !batch.series.is_empty() {
            self.pending.push_back(batch);
            // Oldest first: counters and summary totals are running sums, so the newest flush
            // carries their counts anyway.
            while self.pending.len() > MAX_PENDING
                || (self.pending.len() > 1
                    && self
                        .pending
                        .iter()
                        .map(aggregate::batch_bytes)
                        .sum::<usize>()
                        > MAX_PENDING_BYTES)
            {
                let Some(old) = self.pending.pop_front() else {
                    break;
                };
                metrics::counter!("lookout_statsd_samples_dropped_total")
                    .increment(old.samples() as u64);
                tracing::warn!(
                    samples = old.samples(),
                    "StatsD flush dropped after failed retries (too many or too large kept)."
                );
            }
        }
        while let Some(batch) = self.pending.front_mut() {
            let mut gone = Vec::new();
            let done = write(&self.store, &self.writes, self.project, batch, &mut gone).await;
            if !gone.is_empty() {
                let samples: usize = gone.iter().map(|s| s.samples.len()).sum();
                metrics::counter!("lookout_statsd_series_refused_total")
                    .increment(gone.len() as u64);
                metrics::counter!("lookout_statsd_samples_dropped_total").increment(samples as u64);
                tracing::warn!(
                    series = gone.len(),
                    samples,
                    example = gone.first().map(|s| s.name()).unwrap_or(""),
                    "StatsD series refused by the metric store (series limit or hash collision); \
                     the other series were written."
                );
                refused.extend(gone.into_iter().map(|s| s.labels));
            }
            match done {
                Ok(n) => {
                    metrics::counter!("lookout_statsd_samples_written_total").increment(n as u64);
                    self.pending.pop_front();
                }
                Err(e) => {
                    metrics::counter!("lookout_statsd_flush_failures_total").increment(1);
                    let level_warn = !matches!(e, StoreError::Overloaded);
                    if level_warn {
                        tracing::warn!(error = %e, pending = self.pending.len(), "StatsD flush failed; retried at the next flush.");
                    } else {
                        tracing::info!(
                            pending = self.pending.len(),
                            "StatsD flush deferred: the write queue is full."
                        );
                    }
                    return refused;
                }
            }
        }
        refused
    }
}

/// Writes a flush in bounded parts; a part written is taken out of `batch`, so a retry writes
/// only what is left (a retried part is harmless anyway: a timestamp written twice keeps its
/// first value).
///
/// A part the store refuses for good (the project's series limit, a hash collision) is split:
/// the series already stored are written, the new ones go to `refused` (retrying them would be
/// refused again, and dropping the whole part would lose the series that were fine).
async fn write(
    store: &Store,
    writes: &WriteQueue,
    project: i64,
    batch: &mut Batch,
    refused: &mut Vec<Series>,
) -> Result<usize, StoreError> {
    let mut written = 0;
    while !batch.series.is_empty() {
        let n = batch.series.len().min(SERIES_PER_WRITE);
        let rest = batch.series.split_off(n);
        let mut part = Batch {
            series: std::mem::replace(&mut batch.series, rest),
            metadata: std::mem::take(&mut batch.metadata),
            ..Batch::default()
        };
        let max = crate::prometheus::write::max_series();
        let mut done = prom::ingest_limited(store, writes, project, &part, max).await;
        if matches!(
            done,
            Err(IngestError::SeriesLimit(_) | IngestError::Collision(_))
        ) {
            let labels: Vec<&[(String, String)]> =
                part.series.iter().map(|s| s.labels.as_slice()).collect();
            match prom::stored_series(store, project, &labels).await {
                Ok(known) => {
                    let all = std::mem::take(&mut part.series);
                    for (s, k) in all.into_iter().zip(known) {
                        if k {
                            part.series.push(s);
                        } else {
                            refused.push(s);
                        }
                    }
                    done = if part.series.is_empty() {
                        Ok(prom::Written::default())
                    } else {
                        prom::ingest_limited(store, writes, project, &part, max).await
                    };
                }
                Err(e) => done = Err(IngestError::Store(e)),
            }
        }
        match done {
            Ok(w) => written += w.samples,
            Err(IngestError::SeriesLimit(_) | IngestError::Collision(_)) => {
                // Refused again with only stored series (another writer's race): dropped.
                refused.append(&mut part.series);
            }
            Err(IngestError::Store(e)) => {
                // Put the part back in front, so the retry writes it first.
                let mut series = part.series;
                series.append(&mut batch.series);
                batch.series = series;
                batch.metadata = part.metadata;
                return Err(e);
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_store::writer::{Writer, WriterConfig};

    fn batch(names: &[&str], t: i64) -> Batch {
        Batch {
            series: names
                .iter()
                .map(|n| Series {
                    labels: vec![("__name__".to_string(), n.to_string())],
                    samples: vec![(t, 1.0)],
                })
                .collect(),
            ..Batch::default()
        }
    }

    /// A flush is written; with storage gone, failed flushes are kept for a retry, at most
    /// MAX_PENDING of them, the oldest dropped first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_flushes_are_kept_for_a_retry_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url_for_dir(dir.path()))
            .await
            .unwrap();
        let org = lookout_store::tenancy::default_org(&store)
            .await
            .unwrap()
            .id;
        let project = lookout_store::tenancy::create_project(&store, org, "m", None, None)
            .await
            .unwrap()
            .id;
        let writer = Writer::start(store.clone(), WriterConfig::default());
        let mut f = Flusher {
            store: store.clone(),
            writes: writer.queue(),
            project,
            pending: VecDeque::new(),
        };
        assert!(f.flush(batch(&["a", "b"], 1000)).await.is_empty());
        assert!(f.pending.is_empty());
        let got = prom::query::select(&store, project, &[], 0, 10_000)
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
        store.pool().close().await;
        for i in 0..8 {
            f.flush(batch(&["a"], 2000 + i)).await;
        }
        assert_eq!(f.pending.len(), MAX_PENDING);
        // The two oldest went first.
        assert_eq!(f.pending[0].series[0].samples, vec![(2002, 1.0)]);
    }
}
