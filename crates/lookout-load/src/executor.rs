//! k6's executors: when each VU starts an iteration. Closed models (shared-iterations,
//! per-vu-iterations, constant-vus, ramping-vus) loop VUs; open models (constant- and
//! ramping-arrival-rate) start iterations on a schedule, hand each to an idle VU, and count
//! `dropped_iterations` when none is left and `maxVUs` is reached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::spec::{Executor, Plan, Stage};
use crate::vu::{Shared, Vu};

/// What a scenario's tasks share.
pub struct Ctx {
    pub plan: Arc<Plan>,
    pub shared: Shared,
    /// Set to stop everything now (a threshold with `abortOnFail`, or Ctrl-C).
    pub abort: watch::Receiver<bool>,
    /// The same, as a flag cheap enough to read once per iteration.
    pub stopping: std::sync::atomic::AtomicBool,
    pub next_vu: AtomicU64,
    /// Worker runtimes (one thread each) that VUs are spread over.
    pub workers: Vec<tokio::runtime::Handle>,
    /// Round-robin position for open-model iterations.
    pub next_worker: AtomicU64,
}

impl Ctx {
    fn aborted(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    async fn until_abort(&self) {
        let mut rx = self.abort.clone();
        let _ = rx.wait_for(|a| *a).await;
    }

    fn new_vu(&self, scenario: usize) -> Vu {
        let id = self.next_vu.fetch_add(1, Ordering::Relaxed) + 1;
        Vu::new(id, &self.plan.scenarios[scenario], &self.shared)
    }

    /// The worker runtime for the next task.
    fn worker(&self) -> &tokio::runtime::Handle {
        let i = self.next_worker.fetch_add(1, Ordering::Relaxed) as usize;
        &self.workers[i % self.workers.len()]
    }

    fn set_vus(&self, scenario: usize, active: u64, allocated: u64) {
        if let Ok(mut a) = self.shared.agg.lock() {
            a.set_vus(scenario, active, allocated);
        }
    }
}

/// Runs scenario `idx` from its `startTime` to its end.
pub async fn run_scenario(ctx: Arc<Ctx>, idx: usize) {
    let sc = &ctx.plan.scenarios[idx];
    let begin = ctx.shared.started + sc.start_time;
    tokio::select! {
        () = tokio::time::sleep_until(begin.into()) => {}
        () = ctx.until_abort() => return,
    }
    let start = Instant::now();
    if let Ok(mut a) = ctx.shared.agg.lock() {
        a.spans[idx].0 = Some(start);
    }
    match sc.executor.clone() {
        Executor::SharedIterations {
            vus,
            iterations,
            max_duration,
        } => {
            let left = Arc::new(AtomicU64::new(iterations));
            closed(&ctx, idx, vus, start, max_duration, move |_, _| {
                left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            })
            .await
        }
        Executor::PerVuIterations {
            vus,
            iterations,
            max_duration,
        } => {
            closed(&ctx, idx, vus, start, max_duration, move |_, done| {
                done < iterations
            })
            .await
        }
        Executor::ConstantVus { vus, duration } => {
            closed(&ctx, idx, vus, start, duration, |_, _| true).await
        }
        Executor::RampingVus {
            start_vus, stages, ..
        } => {
            let max = sc.executor.max_vus();
            let total: Duration = stages.iter().map(|s| s.duration).sum();
            let stages2 = stages.clone();
            let ctl = {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    // Keeps the `vus` gauge on the ramp while the scenario runs.
                    loop {
                        let t = start.elapsed();
                        let target = vus_at(start_vus as f64, &stages2, t).round() as u64;
                        ctx.set_vus(idx, target, max);
                        if t >= total || ctx.aborted() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            };
            closed(&ctx, idx, max, start, total, move |vu_index, _| {
                let target = vus_at(start_vus as f64, &stages, start.elapsed()).round() as u64;
                vu_index < target
            })
            .await;
            ctl.abort();
        }
        Executor::ConstantArrivalRate {
            rate,
            time_unit,
            duration,
            pre_allocated,
            max_vus,
        } => {
            let per_sec = rate / time_unit.as_secs_f64();
            open(
                &ctx,
                idx,
                start,
                duration,
                pre_allocated,
                max_vus,
                move |k| Some(Duration::from_secs_f64(k as f64 / per_sec)),
            )
            .await
        }
        Executor::RampingArrivalRate {
            start_rate,
            time_unit,
            stages,
            pre_allocated,
            max_vus,
        } => {
            let unit = time_unit.as_secs_f64();
            let total: Duration = stages.iter().map(|s| s.duration).sum();
            open(&ctx, idx, start, total, pre_allocated, max_vus, move |k| {
                arrival_time(k as f64, start_rate / unit, &stages, unit)
            })
            .await
        }
    }
    ctx.set_vus(idx, 0, 0);
    if let Ok(mut a) = ctx.shared.agg.lock() {
        a.spans[idx].1 = Some(Instant::now());
    }
}

/// The VU count of a ramp at time `t`: linear between stage targets.
pub fn vus_at(start: f64, stages: &[Stage], t: Duration) -> f64 {
    let mut from = start;
    let mut at = Duration::ZERO;
    for s in stages {
        if t < at + s.duration {
            let f = (t - at).as_secs_f64() / s.duration.as_secs_f64();
            return from + (s.target - from) * f;
        }
        at += s.duration;
        from = s.target;
    }
    from
}

/// When iteration `k` (0-based) of a ramping arrival rate is due: the `t` where the area under the
/// rate curve reaches `k`. Rates are per second; stages carry rates per `unit` seconds.
pub fn arrival_time(k: f64, start_per_sec: f64, stages: &[Stage], unit: f64) -> Option<Duration> {
    let mut r0 = start_per_sec;
    let mut acc = 0.0;
    let mut at = 0.0;
    for s in stages {
        let d = s.duration.as_secs_f64();
        let r1 = s.target / unit;
        let area = (r0 + r1) / 2.0 * d;
        if k <= acc + area && d > 0.0 {
            let need = k - acc;
            let x = if (r1 - r0).abs() < 1e-12 {
                if r0 <= 0.0 {
                    0.0
                } else {
                    need / r0
                }
            } else {
                // r0·x + (r1 − r0)/(2d)·x² = need, the root inside the stage.
                let a = (r1 - r0) / (2.0 * d);
                let disc = (r0 * r0 + 4.0 * a * need).max(0.0);
                (-r0 + disc.sqrt()) / (2.0 * a)
            };
            return Some(Duration::from_secs_f64(at + x.clamp(0.0, d)));
        }
        acc += area;
        at += d;
        r0 = r1;
    }
    None
}

/// Closed model: `vus` VUs loop while `more(vu_index, done_by_this_vu)` says so and time is left.
/// At `length` no new iteration starts; running ones get `gracefulStop` to finish.
async fn closed<F>(ctx: &Arc<Ctx>, idx: usize, vus: u64, start: Instant, length: Duration, more: F)
where
    F: Fn(u64, u64) -> bool + Send + Sync + 'static,
{
    let sc = &ctx.plan.scenarios[idx];
    let soft_end = start + length;
    let hard_end = soft_end + sc.graceful_stop;
    let more = Arc::new(more);
    let iteration = Arc::new(AtomicU64::new(0));
    let ramping = matches!(sc.executor, Executor::RampingVus { .. });
    let ramp_down = match &sc.executor {
        Executor::RampingVus {
            graceful_ramp_down, ..
        } => Some(*graceful_ramp_down),
        _ => None,
    };
    if !ramping {
        ctx.set_vus(idx, vus, vus);
    }
    let mut set = JoinSet::new();
    for vu_index in 0..vus {
        let ctx = ctx.clone();
        let more = more.clone();
        let iteration = iteration.clone();
        let worker = ctx.worker().clone();
        set.spawn_on(
            async move {
                let sc = &ctx.plan.scenarios[idx];
                let mut vu = ctx.new_vu(idx);
                let mut done = 0u64;
                // A plain loop: the stop timer and abort signal live in the scenario's task, which
                // aborts this one at the hard end, so nothing but the request is polled per wake.
                loop {
                    if ctx.aborted() || vu.clock >= soft_end {
                        break;
                    }
                    if !more(vu_index, done) {
                        if ramping {
                            // Above the ramp's current target: wait to be needed again.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            vu.clock = Instant::now();
                            continue;
                        }
                        break;
                    }
                    let it = iteration.fetch_add(1, Ordering::Relaxed);
                    match ramp_down {
                        None => vu.iteration(sc, idx, &ctx.shared, it, None).await,
                        Some(grace) => {
                            // Ramped down below this VU: its iteration gets `gracefulRampDown`
                            // to finish, then is interrupted (and not counted), as in k6.
                            let over = async {
                                let mut since: Option<Instant> = None;
                                loop {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    if more(vu_index, done) {
                                        since = None;
                                    } else if since.get_or_insert_with(Instant::now).elapsed()
                                        >= grace
                                    {
                                        break;
                                    }
                                }
                            };
                            tokio::select! {
                                () = vu.iteration(sc, idx, &ctx.shared, it, None) => {}
                                () = over => {
                                    vu.clock = Instant::now();
                                    continue;
                                }
                            }
                        }
                    }
                    done += 1;
                }
                vu.flush();
            },
            &worker,
        );
    }
    loop {
        tokio::select! {
            r = set.join_next() => if r.is_none() { break },
            () = tokio::time::sleep_until(hard_end.into()) => { set.abort_all(); while set.join_next().await.is_some() {} break }
            () = ctx.until_abort() => { set.abort_all(); while set.join_next().await.is_some() {} break }
        }
    }
}

/// Open model: iteration `k` is due at `start + due(k)`; stops at `length`, then waits up to
/// `gracefulStop` for iterations in flight.
async fn open<F>(
    ctx: &Arc<Ctx>,
    idx: usize,
    start: Instant,
    length: Duration,
    pre: u64,
    max: u64,
    due: F,
) where
    F: Fn(u64) -> Option<Duration>,
{
    let sc = &ctx.plan.scenarios[idx];
    let idle: Arc<Mutex<Vec<Vu>>> =
        Arc::new(Mutex::new((0..pre).map(|_| ctx.new_vu(idx)).collect()));
    let busy = Arc::new(AtomicU64::new(0));
    let mut allocated = pre;
    ctx.set_vus(idx, 0, allocated);
    let mut set: JoinSet<()> = JoinSet::new();
    let mut dropped = 0u64;
    let mut last_gauge = Instant::now();
    let mut k = 0u64;
    while let Some(offset) = due(k) {
        if offset >= length || ctx.aborted() {
            break;
        }
        let at = start + offset;
        let now = Instant::now();
        if at > now + Duration::from_micros(500) {
            if dropped > 0 {
                if let Ok(mut a) = ctx.shared.agg.lock() {
                    a.dropped(idx, dropped);
                }
                dropped = 0;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at.into()) => {}
                () = ctx.until_abort() => break,
            }
        }
        // Reap finished tasks so the set stays small.
        while set.try_join_next().is_some() {}
        let vu = idle.lock().ok().and_then(|mut v| v.pop());
        let vu = match vu {
            Some(v) => Some(v),
            None if allocated < max => {
                allocated += 1;
                Some(ctx.new_vu(idx))
            }
            None => None,
        };
        match vu {
            Some(mut vu) => {
                let ctx2 = ctx.clone();
                let idle = idle.clone();
                let busy = busy.clone();
                busy.fetch_add(1, Ordering::Relaxed);
                let worker = ctx.worker().clone();
                set.spawn_on(
                    async move {
                        let sc = &ctx2.plan.scenarios[idx];
                        vu.iteration(sc, idx, &ctx2.shared, k, Some(at)).await;
                        busy.fetch_sub(1, Ordering::Relaxed);
                        if let Ok(mut v) = idle.lock() {
                            v.push(vu);
                        }
                    },
                    &worker,
                );
            }
            None => dropped += 1,
        }
        if last_gauge.elapsed() >= Duration::from_millis(100) {
            last_gauge = Instant::now();
            ctx.set_vus(idx, busy.load(Ordering::Relaxed), allocated);
            // Idle VUs hand in what they recorded, so figures never wait for their next turn.
            if let Ok(mut v) = idle.lock() {
                v.iter_mut().for_each(Vu::flush_due);
            }
        }
        k += 1;
    }
    if dropped > 0 {
        if let Ok(mut a) = ctx.shared.agg.lock() {
            a.dropped(idx, dropped);
        }
    }
    let hard_end = Instant::now().max(start + length) + sc.graceful_stop;
    loop {
        ctx.set_vus(idx, busy.load(Ordering::Relaxed), allocated);
        tokio::select! {
            r = set.join_next() => if r.is_none() { break },
            () = tokio::time::sleep_until(hard_end.into()) => { set.abort_all(); while set.join_next().await.is_some() {} break }
            () = ctx.until_abort() => { set.abort_all(); while set.join_next().await.is_some() {} break }
        }
    }
    let vus: Vec<Vu> = idle
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    // Dropping a VU flushes what it recorded.
    drop(vus);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(secs: u64, target: f64) -> Stage {
        Stage {
            duration: Duration::from_secs(secs),
            target,
        }
    }

    #[test]
    fn ramps_are_linear_between_targets() {
        let stages = [stage(10, 10.0), stage(10, 10.0), stage(10, 0.0)];
        assert_eq!(vus_at(0.0, &stages, Duration::from_secs(5)), 5.0);
        assert_eq!(vus_at(0.0, &stages, Duration::from_secs(15)), 10.0);
        assert_eq!(vus_at(0.0, &stages, Duration::from_secs(25)), 5.0);
        assert_eq!(vus_at(0.0, &stages, Duration::from_secs(40)), 0.0);
    }

    #[test]
    fn arrival_times_follow_the_area_under_the_rate() {
        // 0 → 100/s over 10 s: 500 iterations, the k-th at sqrt(k/5) seconds.
        let stages = [stage(10, 100.0)];
        let t = |k: f64| arrival_time(k, 0.0, &stages, 1.0).map(|d| d.as_secs_f64());
        assert!((t(125.0).unwrap() - 5.0).abs() < 1e-9);
        assert!((t(500.0).unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(t(501.0), None);
        // Constant stage, rate per minute.
        let flat = [stage(60, 120.0)];
        let t = arrival_time(30.0, 2.0, &flat, 60.0).unwrap().as_secs_f64();
        assert!((t - 15.0).abs() < 1e-9);
        // Ramp down 100 → 0 over 10 s.
        let down = [stage(10, 0.0)];
        let t = arrival_time(375.0, 100.0, &down, 1.0)
            .unwrap()
            .as_secs_f64();
        assert!((t - 5.0).abs() < 1e-9, "{t}");
    }
}
