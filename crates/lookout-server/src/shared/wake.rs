//! Wake-ups across replicas over Redis pub/sub: when this replica commits new stream rows (an
//! event, an ingested item, APM parts) or queues pages, it publishes the table's name on
//! [`CHANNEL`]; every other replica wakes its consumers of that table, so the one holding the
//! lease reacts in milliseconds instead of at its next poll.
//!
//! Wake-ups are hints on top of polling (see `lookout_store::wake`): with Redis down, or a
//! message lost, work is found at the next poll as before. Publishing goes through a bounded
//! queue that drops when full, so a slow Redis never holds a commit.

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use lookout_store::Store;

/// The pub/sub channel every replica listens on; messages are `replica|topic`.
pub const CHANNEL: &str = "lookout:wake";
/// The topic that wakes the alerting workers (outbox and escalation timers).
pub const ALERTING: &str = "alerting";

/// Wake-ups waiting to be published; past this, new ones are dropped (they are hints).
const QUEUE: usize = 256;

static PUBLISHER: OnceLock<mpsc::Sender<&'static str>> = OnceLock::new();

/// Tells the other replicas about `topic` (a stream table or [`ALERTING`]); nothing when Redis
/// is not configured.
pub fn publish(topic: &'static str) {
    if let Some(tx) = PUBLISHER.get() {
        let _ = tx.try_send(topic);
    }
}

/// Starts the publisher and the subscriber of this replica (when Redis is configured).
pub fn start(
    shared: Shared,
    store: Store,
    alerting: crate::alerting::Alerting,
    replica: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    if !shared.configured() {
        return Vec::new();
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    if PUBLISHER.set(tx).is_ok() {
        store.wake().set_hook(std::sync::Arc::new(publish));
    }
    // Not waited for at shutdown: it ends with the process (its queue lives as long).
    tokio::spawn(publisher(shared.clone(), replica.clone(), rx));
    vec![tokio::spawn(subscriber(
        shared, store, alerting, replica, stop,
    ))]
}

/// Publishes queued wake-ups, each distinct topic once per round.
async fn publisher(shared: Shared, replica: String, mut rx: mpsc::Receiver<&'static str>) {
    while let Some(first) = rx.recv().await {
        let mut topics = vec![first];
        while let Ok(t) = rx.try_recv() {
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        for t in topics {
            let message = format!("{replica}|{t}");
            shared
                .run("publish", |mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(CHANNEL)
                        .arg(message)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
        }
    }
}

/// Listens for the other replicas' wake-ups, reconnecting after Redis comes back.
async fn subscriber(
    shared: Shared,
    store: Store,
    alerting: crate::alerting::Alerting,
    replica: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let Some(mut pubsub) = shared.pubsub().await else {
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let subscribed = tokio::time::timeout(Duration::from_secs(1), pubsub.subscribe(CHANNEL));
        if !matches!(subscribed.await, Ok(Ok(()))) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tracing::debug!("Listening for other replicas' wake-ups.");
        let mut messages = pubsub.into_on_message();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                m = messages.next() => {
                    let Some(m) = m else { break };
                    let Ok(text) = m.get_payload::<String>() else { continue };
                    let Some((from, topic)) = text.split_once('|') else { continue };
                    if from == replica {
                        continue;
                    }
                    if topic == ALERTING {
                        alerting.wake_local();
                    } else {
                        store.wake().signal(topic);
                    }
                }
            }
        }
        tracing::debug!("Wake-up subscription ended; reconnecting.");
    }
}
