//! The escalation timer loop: every replica runs it; each due step is applied by exactly one,
//! because the clock update is fenced on the values read (see `incidents::save_clock`).
//!
//! "Due" is judged by the database's clock, never the replica's: a replica whose clock ran 45 s
//! fast used to escalate incidents 45 s early (and one running slow, late).

use std::time::Duration;

use super::{engine, Alerting};
use lookout_store::alerting::incidents;

/// Longest sleep between checks; timers set by another replica are seen within this.
const POLL: Duration = Duration::from_secs(1);

/// Runs due timers until `stop` resolves.
pub async fn run(a: Alerting, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let wait = match tick(&a).await {
            Ok((_, now)) => match incidents::next_due(a.store()).await {
                Ok(Some(t)) => Duration::from_millis(u64::try_from(t - now).unwrap_or(0))
                    .clamp(Duration::from_millis(10), POLL),
                _ => POLL,
            },
            Err(e) => {
                tracing::warn!(error = %e, "Escalation timers failed; retrying.");
                POLL
            }
        };
        tokio::select! {
            biased;
            () = &mut stop => break,
            () = tokio::time::sleep(wait) => {}
            () = a.timers_wake().notified() => {}
        }
    }
}

/// Applies every timer due now by the database's clock; returns how many incidents moved and
/// that time.
pub async fn tick(a: &Alerting) -> lookout_store::Result<(usize, i64)> {
    let now = lookout_store::cluster::db_now(a.store()).await?;
    Ok((tick_at(a, now).await?, now))
}

/// Applies every timer due at `now`: [`tick`] with the time given, so a test moves an incident
/// hours ahead (a snooze ending, an escalation) without waiting or shifting the process clock.
pub async fn tick_at(a: &Alerting, now: i64) -> lookout_store::Result<usize> {
    let mut moved = 0;
    for inc in incidents::due(a.store(), now, 100).await? {
        let mut tx = a.store().begin_write().await?;
        if engine::run_timers(&mut tx, &inc, now).await? {
            tx.commit().await?;
            moved += 1;
        } else {
            tx.rollback().await?;
        }
    }
    if moved > 0 {
        a.wake();
    }
    Ok(moved)
}
