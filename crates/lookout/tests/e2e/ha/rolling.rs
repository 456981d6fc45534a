//! A rolling restart: three replicas restarted one by one (SIGTERM, start again) under Sentry
//! ingest and uptime checks. Clients see nothing but retryable answers (503, or a refused
//! connection that a load balancer routes around), every acknowledged event is stored once, and
//! no monitor misses an interval.
//!
//! The same binary restarts here; between versions N and N+1 the mechanism is the same, since
//! migrations only add (docs/operations.md, "Upgrading").

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::errors::{envelope, envelope_url, exception_event, key_of, new_id};

const INTERVAL: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_event_and_misses_no_interval() {
    let target = HttpTarget::start().await;
    let mut servers = TestServer::replicas_together(crate::bin(), 3, SMALL_POOL).await;
    let url = servers[0].database_url().unwrap().to_string();
    let paths = monitors(&servers[0], &target, "roll", 12, INTERVAL, 1).await;
    let key = key_of(&servers[0]);
    let urls: Vec<String> = servers.iter().map(envelope_url).collect();
    let urls = Arc::new(Mutex::new(urls));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (refused, errors) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let closed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // A client behind a load balancer: round-robin over the replicas; a refused connection or a
    // 503 is retried on the next one, anything else is an error the client would see.
    let client = {
        let (closed, urls, acked, refused, errors, stop, key) = (
            closed.clone(),
            urls.clone(),
            acked.clone(),
            refused.clone(),
            errors.clone(),
            stop.clone(),
            key.clone(),
        );
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let id = new_id();
                let ev = exception_event(
                    &id,
                    "RollingError",
                    "during a rolling restart",
                    "roll",
                    "r1",
                );
                let body = envelope(&id, &ev, None);
                for attempt in 0..6 {
                    let to = {
                        let u = urls.lock().unwrap();
                        u[(n + attempt) % u.len()].clone()
                    };
                    match c
                        .post(&to)
                        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                        .body(body.clone())
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => {
                            acked.lock().unwrap().push(id.clone());
                            break;
                        }
                        Ok(r) if r.status() == 503 || r.status() == 429 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => errors
                            .lock()
                            .unwrap()
                            .push(format!("{} from {to}", r.status())),
                        // Refused, or closed under a request by a replica that is stopping: what
                        // a load balancer or an SDK retries. (The closed one may have been
                        // stored: counted, so the check below allows that many repeats.)
                        Err(e) if e.is_connect() => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if !e.is_timeout() => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.lock().unwrap().push(format!("{e} from {to}")),
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL) * 2)).await;
    let from = Instant::now();
    for i in 0..3 {
        let status = servers[i].restart_clean();
        assert!(
            status.is_some_and(|s| s.success()),
            "replica {i} did not stop cleanly: {status:?}"
        );
        urls.lock().unwrap()[i] = envelope_url(&servers[i]);
        // Each back in the cluster with its share before the next one goes.
        let refs: Vec<&TestServer> = servers.iter().collect();
        wait_for_shares(&url, &refs, 4, 30).await;
    }
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL) * 2)).await;
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let errors = errors.lock().unwrap().clone();
    let g = gaps(&target, &paths, from);
    let worst = g.values().map(|(max, _)| *max).fold(0.0, f64::max);
    let closest = g
        .values()
        .map(|(_, min)| *min)
        .fold(f64::INFINITY, f64::min);
    println!(
        "rolling restart of 3 replicas under ingest: {} events acknowledged, {} retried (503 or refused), {} other client errors; \
         monitors every {INTERVAL} s: worst gap {worst:.1} s (target ≤ {} s), closest probes {closest:.1} s apart",
        acked.len(),
        refused.load(Ordering::Relaxed),
        errors.len(),
        INTERVAL + 10
    );
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");
    assert!(
        acked.len() > 100,
        "too few events went through: {}",
        acked.len()
    );
    // Every acknowledged event is stored, once.
    crate::errors::wait_issues(&servers[0], |i| {
        i.len() == 1 && i[0]["count"].as_i64().unwrap_or(0) >= acked.len() as i64
    })
    .await;
    let pool = db(&url).await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM error_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    println!(
        "rolling restart: {} events acknowledged, {stored} stored",
        acked.len()
    );
    let closed = closed.load(Ordering::Relaxed) as i64;
    assert!(
        stored >= acked.len() as i64 && stored <= acked.len() as i64 + closed,
        "acknowledged events lost or doubled: {} acknowledged, {stored} stored, {closed} closed under a request",
        acked.len()
    );
    assert!(
        worst <= f64::from(INTERVAL + 10),
        "a monitor waited {worst:.1} s: {g:?}"
    );
    assert!(
        closest >= f64::from(INTERVAL) / 2.0,
        "a monitor was probed twice in one interval: {g:?}"
    );
    stop_all(servers);
}
