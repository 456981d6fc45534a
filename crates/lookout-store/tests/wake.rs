//! Wake-ups on SQLite and PostgreSQL: a commit through the write queue that appends to a
//! stream wakes that stream's waiters at once and tells the commit hook (which the server turns
//! into a Redis message for the other replicas); a commit without stream rows wakes nobody.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_store::{events, Backend, Writer};
use serde_json::json;

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(a_commit_with_events_wakes_their_consumers_and_the_hook,);

async fn a_commit_with_events_wakes_their_consumers_and_the_hook(f: Fixture) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    {
        let heard = heard.clone();
        f.store
            .wake()
            .set_hook(Arc::new(move |t| heard.lock().unwrap().push(t)));
    }
    let mut events_waiter = f.store.wake().waiter(events::TABLE_NAME);
    let mut items_waiter = f.store.wake().waiter("ingest_items");
    let writer = Writer::start(f.store.clone(), Default::default());
    let q = writer.queue();
    q.write(vec![events::publish("test.woke", None, None, &json!({}))])
        .await
        .unwrap();
    // Changed already: the wait ends at once instead of after the hour.
    tokio::time::timeout(Duration::from_secs(5), events_waiter.changed())
        .await
        .expect("the events waiter woke")
        .unwrap();
    assert!(
        !items_waiter.has_changed().unwrap(),
        "another stream's consumers sleep on"
    );
    assert_eq!(*heard.lock().unwrap(), vec![events::TABLE_NAME]);
    // A wait on an idle stream lasts its whole interval, and a signal from elsewhere ends it.
    let started = std::time::Instant::now();
    lookout_store::wake::idle(&mut items_waiter, Duration::from_millis(300)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    f.store.wake().signal("ingest_items");
    tokio::time::timeout(
        Duration::from_secs(5),
        lookout_store::wake::idle(&mut items_waiter, Duration::from_secs(3600)),
    )
    .await
    .expect("a signal from another replica ends the wait");
}
