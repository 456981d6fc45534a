//! Passive monitors' evaluation for the shard runner: heartbeats (silence is the failure) and
//! cron monitors (check-ins judged against the schedule). Split from [`super::runner`], which
//! applies what these return like any other check's verdicts.

use lookout_store::uptime::{self as ustore, cron as ucron};
use lookout_store::Store;
use lookout_uptime::MonitorSpec;

use super::runner::{Failure, Verdict, DEFAULT_MAX_RUNTIME_S};

/// A heartbeat passes while a ping came within interval + grace; before its first ping it stays
/// pending until that much time has passed since the monitor was created.
pub(super) async fn heartbeat(
    store: &Store,
    id: i64,
    spec: &MonitorSpec,
    created_at: i64,
    now: i64,
) -> Vec<Verdict> {
    let allowed = (i64::from(spec.interval_seconds) + i64::from(spec.grace_seconds())) * 1000;
    let last_ping = match ustore::get_monitor(store, id).await {
        Ok((_, s)) => s.last_ping_at,
        Err(e) => {
            tracing::warn!(monitor = id, error = %e, "Could not read the heartbeat's last ping.");
            return Vec::new();
        }
    };
    let since = last_ping.unwrap_or(created_at);
    if now - since > allowed {
        let why = match last_ping {
            Some(p) => format!(
                "no ping within {} s (last ping {} s ago)",
                allowed / 1000,
                (now - p) / 1000
            ),
            None => format!("no ping within {} s of creation", allowed / 1000),
        };
        vec![Verdict::new(now, false, Some(why))]
    } else if last_ping.is_some() {
        vec![Verdict::new(now, true, None)]
    } else {
        Vec::new()
    }
}

/// Judges a cron monitor: finished runs become results, runs past their max runtime time out,
/// and expected runs with no check-in within the margin are missed.
pub(super) async fn cron(
    store: &Store,
    id: i64,
    spec: &MonitorSpec,
    judged_until: i64,
    now: i64,
) -> (Vec<Verdict>, Option<i64>) {
    let mut out = Vec::new();
    let max_runtime = i64::from(spec.max_runtime_seconds.unwrap_or(0)).max(0);
    let max_runtime_ms = if max_runtime > 0 {
        max_runtime
    } else {
        DEFAULT_MAX_RUNTIME_S
    } * 1000;
    match ucron::unrecorded(store, id).await {
        Ok(runs) => {
            for run in runs {
                let at = run.finished_at.unwrap_or(run.started_at);
                let mut v = match run.status.as_str() {
                    "ok" => Verdict::new(at, true, None),
                    "error" => {
                        let mut v =
                            Verdict::new(at, false, Some("the job reported an error".into()));
                        v.kind = Failure::Failed;
                        v
                    }
                    "in_progress" if now > run.started_at + max_runtime_ms => {
                        let mut v = Verdict::new(
                            run.started_at + max_runtime_ms,
                            false,
                            Some(format!(
                                "timeout: still in progress after {} s",
                                max_runtime_ms / 1000
                            )),
                        );
                        v.kind = Failure::Failed;
                        v.writes.push(ucron::recorded_write(run.id, "timeout"));
                        out.push(v);
                        continue;
                    }
                    _ => continue,
                };
                v.latency_us = run.duration_ms.map(|d| d * 1000);
                v.writes.push(ucron::recorded_write(run.id, &run.status));
                out.push(v);
            }
        }
        Err(e) => tracing::warn!(monitor = id, error = %e, "Could not read check-ins."),
    }
    let Ok(schedule) = spec.cron_schedule() else {
        return (out, None);
    };
    let margin = i64::from(spec.grace_seconds()) * 1000;
    let mut judged = judged_until;
    // Bounded, so a monitor with a one-second schedule that was down a day does not spin.
    for _ in 0..100 {
        let Some(expected) = schedule.next_after(judged) else {
            break;
        };
        if expected + margin > now {
            break;
        }
        match ucron::started_between(store, id, expected - margin, expected + margin).await {
            Ok(true) => {}
            Ok(false) => {
                let mut v = Verdict::new(
                    expected,
                    false,
                    Some(format!(
                        "missed: no check-in within {} s of {}",
                        margin / 1000,
                        lookout_core::time::iso(expected)
                    )),
                );
                v.kind = Failure::Missed;
                v.writes.push(ucron::missed_write(id, expected));
                out.push(v);
            }
            Err(e) => {
                tracing::warn!(monitor = id, error = %e, "Could not read check-ins.");
                break;
            }
        }
        judged = expected;
    }
    (out, (judged != judged_until).then_some(judged))
}
