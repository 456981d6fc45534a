//! Replays a real recorded Sentry envelope against a Sentry-compatible server at high
//! concurrency, and reports accepted events/s, fully processed events/s and peak RSS.
//!
//! The envelope is the sentry-python capture in `fixtures/sentry/01_capture_exception…`, gzip
//! compressed as the SDK sends it, with a fresh event id per request (a server may drop repeated
//! ids as SDK retries). "Processed" means grouped and queryable: the run ends when the server's
//! issue count reaches the number of accepted events, polled through `--count-url`.
//!
//! `--envelope FILE` replays another envelope instead (bench/errors.sh's source-mapped variant
//! sends a JavaScript event of 30 minified frames); its event id is replaced the same way.
//!
//! Usage: sentry_replay --url URL --key KEY [--events N] [--concurrency C] [--pid PID]
//!        [--envelope FILE] [--count-cmd "shell command printing the processed count"]

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn peak_rss_mb(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn processed(cmd: &str) -> u64 {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("count command");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = arg("--url").expect("--url http://host/api/1/envelope/");
    let key = arg("--key").expect("--key DSN public key");
    let total: u64 = arg("--events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let concurrency: usize = arg("--concurrency")
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let fixture = std::fs::read(arg("--envelope").unwrap_or_else(|| {
        format!(
            "{}/../../fixtures/sentry/01_capture_exception.envelope.txt",
            env!("CARGO_MANIFEST_DIR")
        )
    }))
    .expect("fixture");
    let text = String::from_utf8(fixture).expect("utf-8 fixture");
    let old_id = text
        .split("\"event_id\":\"")
        .nth(1)
        .and_then(|r| r.get(..32))
        .expect("event id")
        .to_string();
    // Bodies are built and gzipped before the clock starts: the replayer shares the machine's two
    // cores with the server, and compressing while measuring would steal time from the server.
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..total)
            .map(|n| {
                let id = format!("{:016x}{:016x}", rand::random::<u64>(), n);
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                gz.write_all(text.replace(&old_id, &id).as_bytes())
                    .expect("gzip");
                gz.finish().expect("gzip")
            })
            .collect(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let sent = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, key, bodies) = (client.clone(), url.clone(), key.clone(), bodies.clone());
        let (sent, accepted, refused) = (sent.clone(), accepted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let body = bodies[usize::try_from(n).unwrap_or(0)].clone();
                let r = client
                    .post(&url)
                    .header("content-encoding", "gzip")
                    .header("content-type", "application/x-sentry-envelope")
                    .header("x-sentry-auth", format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.75.0"))
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => accepted.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let send_secs = started.elapsed().as_secs_f64();
    let ok = accepted.load(Ordering::Relaxed);
    let mut done_secs = None;
    if let Some(cmd) = arg("--count-cmd") {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if processed(&cmd) >= ok {
                done_secs = Some(started.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "events sent {total}, accepted {ok}, refused {}",
        refused.load(Ordering::Relaxed)
    );
    println!(
        "accepted (durably acknowledged): {:.0} events/s",
        ok as f64 / send_secs
    );
    match done_secs {
        Some(s) => println!(
            "processed end to end (grouped, queryable): {:.0} events/s",
            ok as f64 / s
        ),
        None => println!("processed end to end: not measured"),
    }
    if let Some(pid) = arg("--pid") {
        if let Some(mb) = peak_rss_mb(&pid) {
            println!("server peak RSS: {mb:.1} MB");
        }
    }
}
