//! Scraping under leases. Targets are spread over [`SHARDS`] shards by a hash of job and URL;
//! each shard is a lease placed on one live replica (the uptime shards' placement,
//! [`crate::cluster::placement`]), so each target is scraped by one replica at a time. Every
//! write of a shard — samples, staleness markers, report series and the target's state — carries
//! the lease's fencing token ([`lookout_store::cluster::guard`]): a replica that lost the shard
//! cannot write another scrape.
//!
//! A shard re-reads the jobs every [`DISCOVER_EVERY`] (and file_sd files whose time changed, or
//! at each job's `refresh_interval`), starts a loop per new target and stops loops of targets
//! that went away, writing their staleness markers as Prometheus does. A loop handed to another
//! replica writes none: the new holder goes on scraping the same series.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Mutex};

use lookout_core::seal::Sealer;
use lookout_core::time::now_ms;
use lookout_outbound::{describe, HttpClient, NetPolicy};
use lookout_protocol::exposition::{self, Format};
use lookout_protocol::remote_write::Batch;
use lookout_store::cluster as cstore;
use lookout_store::prom::scrape::{self as sstore, TargetRow};
use lookout_store::prom::{self, IngestError};
use lookout_store::writer::{Write, WriteQueue};
use lookout_store::Store;

use super::assemble::{self, Assembled, Options};
use super::config::{Job, StaticConfig};
use super::target::{self, Target};
use crate::cluster::placement::Work;

/// Shards (leases) targets are spread over.
pub const SHARDS: usize = 8;
/// How often a shard re-reads jobs and target files.
pub const DISCOVER_EVERY: Duration = Duration::from_secs(3);

/// Memory all scrapes in flight on this replica may hold, KiB: each reserves its job's
/// `body_size_limit` before it starts (`LOOKOUT_PROMETHEUS_SCRAPE_MEMORY_MB`, else 512 MiB).
/// A scrape that cannot get its share within its timeout fails (`up 0`, "budget") rather than
/// waiting without bound.
fn scrape_memory() -> &'static tokio::sync::Semaphore {
    static S: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mb = std::env::var("LOOKOUT_PROMETHEUS_SCRAPE_MEMORY_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n >= 64)
            .unwrap_or(512);
        tokio::sync::Semaphore::new(mb * 1024)
    })
}

/// What the scrapers share.
pub struct ScrapeContext {
    /// The store.
    pub store: Store,
    /// The durable write path.
    pub writes: WriteQueue,
    /// Opens stored credentials.
    pub sealer: Sealer,
    /// The outbound policy every scrape URL (and redirect) goes through.
    pub policy: Arc<NetPolicy>,
    /// This replica in the cluster.
    pub cluster: crate::cluster::Cluster,
}

/// The shard of a target.
pub fn shard_of(job: &str, url: &str) -> usize {
    let d = Sha256::digest(format!("{job}\n{url}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) % SHARDS as u64) as usize
}

fn shard_name(k: usize) -> String {
    format!("prometheus.scrape.{k}")
}

/// Starts the shards' placement.
pub fn placement(
    ctx: Arc<ScrapeContext>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let keys: Vec<String> = (0..SHARDS).map(shard_name).collect();
    let cluster = ctx.cluster.clone();
    let store = ctx.store.clone();
    let start: crate::cluster::placement::Start = Arc::new(move |work: Work| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let shard = work
                .name
                .strip_prefix("prometheus.scrape.")
                .and_then(|k| k.parse::<usize>().ok())
                .filter(|k| *k < SHARDS);
            match shard {
                Some(shard) => run_shard(ctx, shard, work).await,
                None => tracing::warn!(lease = %work.name, "Not a scrape shard."),
            }
        })
    });
    tokio::spawn(crate::cluster::placement::run(
        cluster, store, keys, start, stop,
    ))
}

/// A shard's fenced writes, one at a time (the guard numbers them).
struct ShardWriter {
    lease: String,
    fence: i64,
    seq: Mutex<i64>,
    lost: AtomicBool,
}

impl ShardWriter {
    /// Writes `batch` into `project` with `extra` (the target's state) under the lease.
    async fn write(
        &self,
        ctx: &ScrapeContext,
        project: i64,
        batch: &Batch,
        extra: Vec<Write>,
    ) -> Result<(), String> {
        if self.lost.load(Ordering::Relaxed) {
            return Err("the shard's lease was lost".into());
        }
        let mut seq = self.seq.lock().await;
        let next = *seq + 1;
        let mut first = vec![cstore::guard(&self.lease, self.fence, next)];
        first.extend(extra);
        let max = crate::prometheus::write::max_series();
        match prom::ingest_with(&ctx.store, &ctx.writes, project, batch, max, first).await {
            Ok(_) => {
                *seq = next;
                Ok(())
            }
            Err(IngestError::Store(e)) => {
                match cstore::batch_written(&ctx.store, &self.lease, self.fence, next).await {
                    Ok(Some(true)) => {
                        *seq = next;
                        Ok(())
                    }
                    Ok(None) => {
                        self.lost.store(true, Ordering::Relaxed);
                        Err("the shard's lease was lost".into())
                    }
                    _ => Err(format!("storage: {e}")),
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Why a target loop stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// The target is gone (or its job changed): staleness markers, state forgotten.
    Removed,
    /// The shard is leaving this replica: nothing written.
    Leaving,
}

/// One target as a shard runs it.
#[derive(Clone)]
struct Planned {
    job: Arc<Job>,
    target: Target,
    project: i64,
    /// Changes when the job or the target's labels change (the loop is restarted).
    version: String,
}

struct Running {
    version: String,
    stop: watch::Sender<Stop>,
    task: tokio::task::JoinHandle<()>,
}

/// A file_sd file as last read.
struct FileState {
    mtime: Option<SystemTime>,
    read_at: Instant,
    groups: Result<Vec<StaticConfig>, String>,
}

async fn run_shard(ctx: Arc<ScrapeContext>, shard: usize, mut work: Work) {
    let writer = Arc::new(ShardWriter {
        lease: work.name.clone(),
        fence: work.fence,
        seq: Mutex::new(work.seq),
        lost: AtomicBool::new(false),
    });
    tracing::info!(shard, fence = work.fence, "Scrape shard started.");
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut files: HashMap<PathBuf, FileState> = HashMap::new();
    let mut parsed: HashMap<String, (i64, Arc<Job>)> = HashMap::new();
    loop {
        if writer.lost.load(Ordering::Relaxed) {
            tracing::warn!(shard, "Scrape shard lost its lease; stopping.");
            break;
        }
        if let Some(planned) = plan(&ctx, shard, &mut files, &mut parsed).await {
            running.retain(|key, r| {
                let keep = planned.get(key).is_some_and(|p| p.version == r.version);
                if !keep {
                    let _ = r.stop.send(Stop::Removed);
                }
                keep || !r.task.is_finished()
            });
            // A changed job: the old loops write their markers before the new ones start.
            // All are told to stop first and then waited for together (15 s in all, not per
            // loop), so many changed targets do not hold the shard up one after another.
            let mut old_tasks = Vec::new();
            for (key, p) in &planned {
                if running.get(key).is_some_and(|r| r.version != p.version) {
                    if let Some(old) = running.remove(key) {
                        let _ = old.stop.send(Stop::Removed);
                        old_tasks.push(old.task);
                    }
                }
            }
            if !old_tasks.is_empty() {
                let _ = tokio::time::timeout(
                    Duration::from_secs(15),
                    futures_util::future::join_all(old_tasks),
                )
                .await;
            }
            for (key, p) in planned {
                if running.contains_key(&key) {
                    continue;
                }
                let (tx, rx) = watch::channel(Stop::Running);
                let version = p.version.clone();
                let task = tokio::spawn(target_loop(ctx.clone(), writer.clone(), p, rx));
                running.insert(
                    key,
                    Running {
                        version,
                        stop: tx,
                        task,
                    },
                );
            }
            running.retain(|_, r| !r.task.is_finished());
        }
        tokio::select! {
            () = tokio::time::sleep(DISCOVER_EVERY) => {}
            _ = work.stop.wait_for(|s| *s) => break,
        }
    }
    for r in running.values() {
        let _ = r.stop.send(Stop::Leaving);
    }
    let tasks = running.into_values().map(|r| r.task);
    let _ = tokio::time::timeout(
        Duration::from_secs(15),
        futures_util::future::join_all(tasks),
    )
    .await;
    tracing::info!(shard, "Scrape shard stopped.");
}

/// The targets of this shard, by key; `None` when the jobs could not be read (loops go on).
async fn plan(
    ctx: &ScrapeContext,
    shard: usize,
    files: &mut HashMap<PathBuf, FileState>,
    parsed: &mut HashMap<String, (i64, Arc<Job>)>,
) -> Option<HashMap<String, Planned>> {
    let rows = match sstore::jobs(&ctx.store).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "Scrape jobs could not be read.");
            return None;
        }
    };
    let mut out = HashMap::new();
    let mut wanted_files = HashSet::new();
    // Jobs are opened and their rules compiled once per version, not on every pass.
    parsed.retain(|name, _| rows.iter().any(|r| &r.name == name));
    for row in rows {
        let job = match parsed.get(&row.name) {
            Some((at, j)) if *at == row.updated_at => j.clone(),
            _ => match super::service::open(&row, &ctx.sealer)
                .and_then(|c| c.validate().map_err(|e| e.to_string()))
            {
                Ok(j) => {
                    let j = Arc::new(j);
                    parsed.insert(row.name.clone(), (row.updated_at, j.clone()));
                    j
                }
                Err(e) => {
                    tracing::warn!(job = %row.name, error = %e, "Stored scrape job unusable; skipped.");
                    continue;
                }
            },
        };
        let mut groups = job.cfg.static_configs.clone();
        for f in &job.cfg.file_sd_configs {
            for pattern in &f.files {
                for (path, mtime) in target::expand(pattern) {
                    wanted_files.insert(path.clone());
                    let stale = files
                        .get(&path)
                        .is_none_or(|s| s.mtime != mtime || s.read_at.elapsed() >= job.refresh);
                    if stale {
                        // An unreadable file keeps its last good targets, as Prometheus does.
                        let groups = match target::read_file(&path) {
                            Ok(g) => Ok(g),
                            Err(e) => {
                                tracing::warn!(job = %row.name, error = %e, "Target file unreadable; keeping its last targets.");
                                match files.get(&path) {
                                    Some(FileState { groups: Ok(g), .. }) => Ok(g.clone()),
                                    _ => Err(e),
                                }
                            }
                        };
                        files.insert(
                            path.clone(),
                            FileState {
                                mtime,
                                read_at: Instant::now(),
                                groups,
                            },
                        );
                    }
                    if let Some(Ok(g)) = files.get(&path).map(|s| &s.groups) {
                        groups.extend(g.iter().cloned());
                    }
                }
            }
        }
        let (targets, bad) = target::targets(&job, &groups);
        if bad > 0 {
            tracing::debug!(job = %row.name, bad, "Targets without a usable address dropped.");
        }
        for t in targets.into_iter().take(super::config::MAX_TARGETS) {
            if shard_of(&t.job, &t.url) != shard {
                continue;
            }
            let key = format!("{}\n{}", t.job, t.url);
            let version = format!(
                "{}\n{}\n{}",
                row.updated_at,
                row.project_id,
                serde_json::to_string(&t.labels).unwrap_or_default()
            );
            out.insert(
                key,
                Planned {
                    job: job.clone(),
                    target: t,
                    project: row.project_id,
                    version,
                },
            );
        }
    }
    files.retain(|p, _| wanted_files.contains(p));
    Some(out)
}

/// When a target's scrapes fall in each interval: spread by its hash, as Prometheus spreads.
fn offset(url: &str, interval: Duration) -> Duration {
    let d = Sha256::digest(url.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(u64::from_be_bytes(b) % ms)
}

async fn target_loop(
    ctx: Arc<ScrapeContext>,
    writer: Arc<ShardWriter>,
    p: Planned,
    mut stop: watch::Receiver<Stop>,
) {
    let job = p.job.clone();
    let ua = format!("Lookout/{}", env!("CARGO_PKG_VERSION"));
    let client = HttpClient::new(ctx.policy.clone(), job.timeout, &ua);
    let interval = job.interval;
    let now = now_ms();
    let ms = interval.as_millis() as i64;
    let phase = offset(&p.target.url, interval).as_millis() as i64;
    let mut first = now - now.rem_euclid(ms) + phase;
    if first < now {
        first += ms;
    }
    let mut next = tokio::time::Instant::now() + Duration::from_millis((first - now) as u64);
    let mut seen: HashSet<Vec<(String, String)>> = HashSet::new();
    let mut scraped_once = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s != Stop::Running) => break,
        }
        next += interval;
        let tnow = tokio::time::Instant::now();
        while next <= tnow {
            next += interval;
        }
        scrape_once(&ctx, &writer, &p, &client, &mut seen).await;
        scraped_once = true;
    }
    let why = *stop.borrow();
    if why == Stop::Removed && scraped_once {
        // Gone: every series it had, its report series included, ends with a marker.
        let t = now_ms();
        let mut all = seen;
        for name in [
            "up",
            "scrape_duration_seconds",
            "scrape_samples_scraped",
            "scrape_samples_post_metric_relabeling",
            "scrape_series_added",
        ] {
            all.insert(assemble::with_name(&p.target.labels, name));
        }
        let batch = Batch {
            series: assemble::stale(&all, &HashSet::new(), t),
            ..Batch::default()
        };
        let gone = vec![sstore::target_gone(&p.target.job, &p.target.url)];
        if let Err(e) = writer.write(&ctx, p.project, &batch, gone).await {
            tracing::debug!(job = %p.target.job, error = %e, "Staleness markers of a removed target not written.");
        }
    }
}

/// Scrapes once and writes the samples, markers, report series and state in one guarded batch.
async fn scrape_once(
    ctx: &ScrapeContext,
    writer: &ShardWriter,
    p: &Planned,
    client: &HttpClient,
    seen: &mut HashSet<Vec<(String, String)>>,
) {
    let job = &p.job;
    let start_ms = now_ms();
    let started = Instant::now();
    let kib = u32::try_from(job.body_limit.div_ceil(1024)).unwrap_or(u32::MAX);
    let fetched = tokio::time::timeout(job.timeout, async {
        let held = scrape_memory()
            .acquire_many(kib)
            .await
            .map_err(|_| "the scrape memory budget is closed".to_string())?;
        fetch(client, job, &p.target.url)
            .await
            .map(|(body, ct, gzip)| (held, body, ct, gzip))
    })
    .await
    .unwrap_or_else(|_| Err("scrape timed out (or waited for the scrape memory budget)".into()));
    // Gunzip, parse and assemble are CPU work on up to a whole body: off the async workers.
    // Each step asks the same per-replica budget for what it adds (the gunzipped copy, the
    // parsed samples, the assembled series); all of it is held until the batch is written.
    let (_held, result) = match fetched {
        Err(e) => (Vec::new(), Err(Box::new((e, Assembled::default())))),
        Ok((held, body, ct, gzip)) => {
            let (job, target) = (p.job.clone(), p.target.labels.clone());
            tokio::task::spawn_blocking(move || {
                let o = Options {
                    target: &target,
                    honor_labels: job.cfg.honor_labels,
                    honor_timestamps: job.cfg.honor_timestamps.unwrap_or(true),
                    rules: &job.metric_relabel,
                    sample_limit: job.cfg.sample_limit,
                    now_ms: start_ms,
                };
                let limit = usize::try_from(job.body_limit).unwrap_or(usize::MAX);
                let mut held = vec![held];
                let out = decode_parse_assemble(&mut held, body, ct.as_deref(), gzip, limit, &o);
                (held, out)
            })
            .await
            .unwrap_or_else(|e| {
                let why = format!("scrape parser failed: {e}");
                (Vec::new(), Err(Box::new((why, Assembled::default()))))
            })
        }
    };
    let duration = started.elapsed();
    let (mut series, report_of, error, metadata) = match result {
        Ok((mut a, metadata)) => {
            let stale = assemble::stale(seen, &a.seen, start_ms);
            let mut series = std::mem::take(&mut a.series);
            series.extend(stale);
            (series, a, String::new(), metadata)
        }
        Err(refused) => {
            let (e, counts) = *refused;
            tracing::debug!(job = %p.target.job, url = %p.target.url, error = %e, "Scrape failed.");
            let stale = assemble::stale(seen, &HashSet::new(), start_ms);
            (stale, counts, e, Vec::new())
        }
    };
    let up = error.is_empty();
    let added = if up {
        report_of.seen.difference(seen).count()
    } else {
        0
    };
    series.extend(assemble::report(
        &p.target.labels,
        start_ms,
        up,
        duration.as_secs_f64(),
        &report_of,
        added,
    ));
    if report_of.invalid > 0 {
        tracing::debug!(job = %p.target.job, invalid = report_of.invalid, "Samples with invalid label names dropped after relabeling.");
    }
    let state = TargetRow {
        job: p.target.job.clone(),
        url: p.target.url.clone(),
        labels: serde_json::to_string(&p.target.labels).unwrap_or_default(),
        health: if up { "up" } else { "down" }.into(),
        last_scrape_ms: start_ms,
        duration_ms: duration.as_millis() as i64,
        last_error: error.clone(),
        samples: report_of.post_relabel as i64,
    };
    let batch = Batch {
        series,
        metadata,
        ..Batch::default()
    };
    match writer
        .write(ctx, p.project, &batch, vec![sstore::target_state(&state)])
        .await
    {
        Ok(()) => *seen = report_of.seen,
        Err(e) => {
            tracing::warn!(job = %p.target.job, error = %e, "Scrape not written.");
            // The samples could not be stored (series limit, collision): the target is
            // reported down with why, so the Targets page says it.
            if !writer.lost.load(Ordering::Relaxed) {
                let down = TargetRow {
                    health: "down".into(),
                    last_error: format!("storing the samples failed: {e}"),
                    samples: 0,
                    ..state
                };
                let empty = Assembled::default();
                let only_report = Batch {
                    series: assemble::report(
                        &p.target.labels,
                        start_ms,
                        false,
                        duration.as_secs_f64(),
                        &empty,
                        0,
                    ),
                    ..Batch::default()
                };
                let _ = writer
                    .write(
                        ctx,
                        p.project,
                        &only_report,
                        vec![sstore::target_state(&down)],
                    )
                    .await;
            }
        }
    }
}

/// What a scrape turns into: the assembled scrape and its metadata, or why it failed with the
/// counts Prometheus still reports.
type Outcome =
    Result<(Assembled, Vec<lookout_protocol::remote_write::Metadata>), assemble::Refused>;

/// Takes `bytes` more of the scrape memory budget without waiting; `false` when it is spent.
fn take_budget(held: &mut Vec<tokio::sync::SemaphorePermit<'static>>, bytes: usize) -> bool {
    let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
    match scrape_memory().try_acquire_many(kib) {
        Ok(p) => {
            held.push(p);
            true
        }
        Err(_) => false,
    }
}

/// Blocking: gunzips (under the job's limit), parses and assembles a fetched body, every step
/// charged to the scrape memory budget in `held` (the caller keeps it until the result is
/// written). Running out of budget fails the scrape (`up 0`) with the step named.
fn decode_parse_assemble(
    held: &mut Vec<tokio::sync::SemaphorePermit<'static>>,
    body: Vec<u8>,
    ct: Option<&str>,
    gzip: bool,
    limit: usize,
    o: &Options<'_>,
) -> Outcome {
    let fail = |e: String| Err(Box::new((e, Assembled::default())));
    let body = if gzip {
        let over = format!("body size limit exceeded ({limit} bytes)");
        match lookout_protocol::decompress::decode_budgeted(Some("gzip"), &body, limit, &mut |n| {
            take_budget(held, n)
        }) {
            Ok(b) => b,
            Err(lookout_protocol::ProtocolError::TooLarge(_)) => return fail(over),
            Err(lookout_protocol::ProtocolError::OverBudget) => {
                return fail("the scrape memory budget is exhausted (gunzip)".into())
            }
            Err(other) => return fail(format!("gzip: {other}")),
        }
    } else {
        body
    };
    let mut parsed_bytes = 0usize;
    let parsed = match exposition::parse_budgeted(&body, Format::of(ct), &mut |n| {
        parsed_bytes += n;
        take_budget(held, n)
    }) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    drop(body);
    // The assembled series hold each label set about twice more (series and the set that
    // finds duplicates, plus staleness tracking): asked before they are built.
    if !take_budget(held, parsed_bytes.saturating_mul(2)) {
        return fail("the scrape memory budget is exhausted (assembling the samples)".into());
    }
    let metadata = parsed.metadata.clone();
    let a = assemble::assemble(parsed, o)?;
    Ok((a, metadata))
}

/// GETs `url` as Prometheus does; the body as sent (at most the job's limit), its type, and
/// whether it is gzipped (decoded later, off the async workers).
async fn fetch(
    client: &HttpClient,
    job: &Job,
    url: &str,
) -> Result<(Vec<u8>, Option<String>, bool), String> {
    let limit = usize::try_from(job.body_limit).unwrap_or(usize::MAX);
    let mut req = client
        .request(reqwest::Method::GET, url)?
        .header(header::ACCEPT, exposition::ACCEPT)
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", job.timeout.as_secs_f64()),
        );
    if let Some(b) = &job.cfg.basic_auth {
        req = req.basic_auth(&b.username, Some(&b.password.0));
    } else if let Some(a) = &job.cfg.authorization {
        req = req.header(
            header::AUTHORIZATION,
            format!("{} {}", a.kind, a.credentials.0),
        );
    } else if let Some(t) = &job.cfg.bearer_token {
        req = req.bearer_auth(&t.0);
    }
    let mut resp = req.send().await.map_err(|e| describe(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("server returned HTTP status {status}"));
    }
    let over = || format!("body size limit exceeded ({limit} bytes)");
    if resp.content_length().is_some_and(|n| n > job.body_limit) {
        return Err(over());
    }
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let gzip = resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(over());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, ct, gzip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_spread_over_every_shard_and_stay_put() {
        let mut hits = [0u32; SHARDS];
        for i in 0..800 {
            hits[shard_of("node", &format!("http://10.0.0.{i}:9100/metrics"))] += 1;
        }
        assert!(hits.iter().all(|h| *h > 50), "{hits:?}");
        assert_eq!(shard_of("a", "b"), shard_of("a", "b"));
        let o = offset("http://x/metrics", Duration::from_secs(15));
        assert!(o < Duration::from_secs(15));
    }
}
