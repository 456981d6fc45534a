//! One run of a plan: starts every scenario at its `startTime`, ticks once a second (closing the
//! per-second series, updating the live display, writing `--out json` lines and checking
//! `abortOnFail` thresholds), and returns the [`Summary`] when the last scenario ends.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use crate::executor::{run_scenario, Ctx};
use crate::http::Client;
use crate::metrics::{Aggregate, Point};
use crate::spec::Plan;
use crate::summary::{self, Summary};
use crate::threshold::Agg;
use crate::vu::Shared;

/// How a run reports while it goes.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// No live display.
    pub quiet: bool,
    /// `--out json=FILE`: one line per metric and scenario per second.
    pub out_json: Option<PathBuf>,
    /// Worker threads for VUs (at least 1).
    pub workers: usize,
}

/// Single-threaded runtimes, one per OS thread, that VUs run on. Like wrk's threads, each has its
/// own event loop and timers, so a request never crosses threads or takes a shared lock.
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(n: usize) -> Result<Workers, String> {
        let mut w = Workers {
            handles: Vec::new(),
            stop: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting load worker {i}: {e}"))?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            w.handles.push(rt.handle().clone());
            w.stop.push(tx);
            let t = std::thread::Builder::new()
                .name(format!("load-worker-{i}"))
                .spawn(move || {
                    let _ = rt.block_on(rx);
                })
                .map_err(|e| format!("starting load worker {i}: {e}"))?;
            w.threads.push(t);
        }
        Ok(w)
    }

    fn stop(self) {
        for tx in self.stop {
            let _ = tx.send(());
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Runs `plan` until its scenarios end or `abort` turns true, and summarises it.
pub async fn run(
    plan: Plan,
    opts: &RunOptions,
    abort_tx: watch::Sender<bool>,
) -> Result<Summary, String> {
    let plan = Arc::new(plan);
    let mut out = match &opts.out_json {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("--out json={}: {e}", p.display()))?,
        )),
        None => None,
    };
    let workers = Workers::start(opts.workers)?;
    let started = Instant::now();
    let started_wall = chrono::Utc::now();
    let agg = Arc::new(Mutex::new(Aggregate::new(&plan, started)));
    let ctx = Arc::new(Ctx {
        plan: plan.clone(),
        shared: Shared {
            client: Client::new(plan.http.insecure, !plan.http.no_connection_reuse),
            agg: agg.clone(),
            http: plan.http.clone(),
            started,
        },
        abort: abort_tx.subscribe(),
        next_vu: AtomicU64::new(0),
        stopping: std::sync::atomic::AtomicBool::new(false),
        workers: workers.handles.clone(),
        next_worker: AtomicU64::new(0),
    });
    let flag = {
        let ctx = ctx.clone();
        let mut rx = abort_tx.subscribe();
        tokio::spawn(async move {
            let _ = rx.wait_for(|a| *a).await;
            ctx.stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..plan.scenarios.len() {
        tasks.spawn(run_scenario(ctx.clone(), i));
    }
    let display = Display::new(&plan, opts.quiet);
    let mut aborted: Option<String> = None;
    let mut written = 0usize;
    let mut tick = tokio::time::interval_at(
        (started + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = tasks.join_next() => {
                if r.is_none() { break }
                continue;
            }
            _ = tick.tick() => {}
        }
        let elapsed = started.elapsed();
        let Ok(mut a) = agg.lock() else { break };
        a.close_seconds(elapsed.as_secs() as u32);
        display.update(&plan, &a, elapsed);
        if let Some(w) = out.as_mut() {
            // Two seconds behind, so late records have merged into a point before it is written.
            let settled = a
                .points
                .iter()
                .take_while(|p| p.t + 2 < elapsed.as_secs() as u32)
                .count();
            if settled > written {
                write_points(w, &plan, &a.points[written..settled], started_wall);
                written = settled;
            }
        }
        if aborted.is_none() {
            for t in plan
                .thresholds
                .iter()
                .filter(|t| t.abort_on_fail && elapsed >= t.delay_abort_eval)
            {
                let observed = a
                    .get(&t.metric)
                    .map(|v| v.get(t.expr.agg, elapsed))
                    .unwrap_or(0.0);
                if !t.expr.holds(observed) {
                    aborted = Some(format!(
                        "threshold {} '{}' failed ({}={:.2}) with abortOnFail",
                        t.metric, t.expr.source, t.expr.agg, observed
                    ));
                    let _ = abort_tx.send(true);
                    break;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    display.finish();
    flag.abort();
    drop(ctx);
    tokio::task::spawn_blocking(move || workers.stop())
        .await
        .map_err(|e| e.to_string())?;
    let Ok(mut a) = agg.lock() else {
        return Err("metrics lock poisoned".into());
    };
    a.close_seconds(u32::MAX);
    if let Some(w) = out.as_mut() {
        write_points(w, &plan, &a.points[written..], started_wall);
        w.flush().map_err(|e| format!("--out json: {e}"))?;
    }
    if aborted.is_none() && *abort_tx.borrow() {
        aborted = Some("interrupted".into());
    }
    Ok(summary::build(&plan, &a, elapsed, started_wall, aborted))
}

/// One JSON line per metric, scenario and second, in k6's `Point` shape.
fn write_points(
    w: &mut impl std::io::Write,
    plan: &Plan,
    points: &[Point],
    start: chrono::DateTime<chrono::Utc>,
) {
    for p in points {
        let time = (start + chrono::Duration::seconds(i64::from(p.t)))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for (i, s) in p.scenarios.iter().enumerate() {
            let mut tags = serde_json::Map::new();
            if i > 0 {
                tags.insert("scenario".into(), plan.scenarios[i - 1].name.clone().into());
            }
            let lines: [(&str, f64, Option<&str>); 8] = [
                ("http_reqs", s.reqs as f64, None),
                ("http_req_failed", s.failed as f64, None),
                ("iterations", s.iterations as f64, None),
                ("dropped_iterations", s.dropped as f64, None),
                ("vus", s.vus as f64, None),
                ("http_req_duration", s.p50_ms, Some("p(50)")),
                ("http_req_duration", s.p95_ms, Some("p(95)")),
                ("http_req_duration", s.p99_ms, Some("p(99)")),
            ];
            for (metric, value, stat) in lines {
                let mut tags = tags.clone();
                if let Some(stat) = stat {
                    tags.insert("stat".into(), stat.into());
                }
                let line = serde_json::json!({
                    "type": "Point",
                    "metric": metric,
                    "data": {"time": time, "value": value, "tags": tags},
                });
                let _ = writeln!(w, "{line}");
            }
        }
    }
}

/// The live display: one line per scenario on standard error.
struct Display {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    /// Plain lines every 10 s when standard error is not a terminal.
    plain: bool,
    quiet: bool,
}

impl Display {
    fn new(plan: &Plan, quiet: bool) -> Display {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let plain = !quiet && target.is_hidden();
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{prefix:>12} [{bar:24}] {msg}")
            .expect("valid template")
            .progress_chars("=> ");
        let bars = plan
            .scenarios
            .iter()
            .map(|s| {
                let total = (s.start_time + s.executor.planned()).as_millis() as u64;
                let b = multi.add(ProgressBar::new(total.max(1)));
                b.set_style(style.clone());
                b.set_prefix(s.name.clone());
                b
            })
            .collect();
        Display {
            multi,
            bars,
            plain,
            quiet,
        }
    }

    fn update(&self, plan: &Plan, a: &Aggregate, elapsed: Duration) {
        if self.quiet {
            return;
        }
        let last = a.points.last();
        for (i, b) in self.bars.iter().enumerate() {
            let s = last
                .and_then(|p| p.scenarios.get(i + 1))
                .cloned()
                .unwrap_or_default();
            let reqs = scenario_total(a, &plan.scenarios[i].name);
            let err = if s.reqs > 0 {
                s.failed as f64 / s.reqs as f64 * 100.0
            } else {
                0.0
            };
            b.set_position(elapsed.as_millis() as u64);
            b.set_message(format!(
                "{:.0}s  VUs {:>4}  {:>8} req/s  p95 {:>8}  errors {:.2}%  total {}",
                elapsed.as_secs_f64(),
                a.vus[i],
                s.reqs,
                crate::duration::human(Duration::from_secs_f64(s.p95_ms / 1000.0)),
                err,
                reqs
            ));
        }
        if self.plain && elapsed.as_secs().is_multiple_of(10) {
            let all = last.map(|p| p.scenarios[0].clone()).unwrap_or_default();
            eprintln!(
                "running ({:.0}s), {} VUs, {} req/s, p95 {}, {} failed in the last second",
                elapsed.as_secs_f64(),
                a.vus.iter().sum::<u64>(),
                all.reqs,
                crate::duration::human(Duration::from_secs_f64(all.p95_ms / 1000.0)),
                all.failed
            );
        }
    }

    fn finish(&self) {
        for b in &self.bars {
            b.finish();
        }
        let _ = self.multi.clear();
    }
}

fn scenario_total(a: &Aggregate, name: &str) -> u64 {
    let key = crate::threshold::MetricRef {
        metric: "http_reqs".into(),
        tags: vec![("scenario".into(), name.into())],
    };
    a.get(&key)
        .map(|v| v.get(Agg::Count, Duration::from_secs(1)) as u64)
        .unwrap_or(0)
}
