//! The Prometheus metric store on SQLite and PostgreSQL: samples come back bit-exactly (NaN,
//! staleness markers) before and after compaction, duplicates keep the first value, late samples
//! merge into their block's chunk, matchers select like Prometheus, a compaction whose lease
//! moved on changes nothing, retention deletes old data, and data older than the raw retention
//! lives on as 5-minute and 1-hour aggregates that reads use.

use lookout_protocol::remote_write::{Batch, Metadata, MetricType, Series as In, STALE_NAN_BITS};
use lookout_store::prom::chunk::Layout;
use lookout_store::prom::compact::{self, Fence, BLOCK_MS};
use lookout_store::prom::query::{self, Budget};
use lookout_store::prom::tiers::{self, Aggregate, Retention};
use lookout_store::prom::{self, MatchOp, Matcher};
use lookout_store::writer::{Writer, WriterConfig};
use lookout_store::{tenancy, Backend, StoreError};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    samples_survive_compaction_bit_exactly,
    matchers_labels_and_metadata,
    a_fenced_compaction_changes_nothing,
    a_damaged_chunk_is_quarantined_and_compaction_goes_on,
    retention_deletes_series_left_without_samples,
    the_series_limit_refuses_new_series_only,
    reads_past_the_series_cap_refuse_or_stream,
    a_claim_whose_fence_went_stale_cannot_compact,
    old_samples_live_on_in_downsampled_tiers,
    old_layout_chunks_read_and_merge,
);

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> In {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    labels.sort();
    In {
        labels,
        samples: samples.to_vec(),
    }
}

fn m(name: &str, op: MatchOp, v: &str) -> Matcher {
    Matcher::new(name, op, v).unwrap()
}

async fn project_named(f: &Fixture, name: &str) -> i64 {
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    tenancy::create_project(&f.store, org, name, None, None)
        .await
        .unwrap()
        .id
}

async fn project(f: &Fixture) -> i64 {
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    tenancy::create_project(&f.store, org, "metrics", None, None)
        .await
        .unwrap()
        .id
}

/// A series as (labels, (time, value bits)): NaN compares equal to itself this way.
type Bits = (Vec<(String, String)>, Vec<(i64, u64)>);

fn bits(s: &[prom::Series]) -> Vec<Bits> {
    s.iter()
        .map(|x| {
            (
                x.labels.clone(),
                x.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect(),
            )
        })
        .collect()
}

async fn samples_survive_compaction_bit_exactly(f: Fixture) {
    let p = project(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    let stale = f64::from_bits(STALE_NAN_BITS);
    let t0 = 1_800_000_060_000; // not on a block boundary
    let first = Batch {
        series: vec![
            series(
                &[("__name__", "up"), ("job", "a")],
                &[(t0, 1.0), (t0 + 15_000, f64::NAN), (t0 + 30_000, stale)],
            ),
            series(&[("__name__", "up"), ("job", "b")], &[(t0, -0.0)]),
        ],
        ..Batch::default()
    };
    let w = prom::ingest(&f.store, &q, p, &first).await.unwrap();
    assert_eq!((w.samples, w.new_series), (4, 2));
    // A duplicate timestamp with another value, a late sample, and one in the next block.
    let second = Batch {
        series: vec![series(
            &[("job", "a"), ("__name__", "up")],
            &[(t0, 99.0), (t0 - 15_000, 0.5), (t0 + BLOCK_MS, 2.0)],
        )],
        ..Batch::default()
    };
    let w = prom::ingest(&f.store, &q, p, &second).await.unwrap();
    assert_eq!((w.samples, w.new_series), (3, 0));
    let all = [m("__name__", MatchOp::Eq, "up")];
    let before = query::select(&f.store, p, &all, 0, i64::MAX).await.unwrap();
    let want_a = vec![
        (t0 - 15_000, 0.5f64.to_bits()),
        (t0, 1.0f64.to_bits()),
        (t0 + 15_000, f64::NAN.to_bits()),
        (t0 + 30_000, STALE_NAN_BITS),
        (t0 + BLOCK_MS, 2.0f64.to_bits()),
    ];
    let got = bits(&before);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1, want_a);
    assert_eq!(got[1].1, vec![(t0, (-0.0f64).to_bits())]);

    let done = compact::compact(&f.store, None, i64::MAX / 2, 0)
        .await
        .unwrap();
    assert_eq!((done.head_rows, done.samples, done.chunks), (2, 7, 3));
    let after = query::select(&f.store, p, &all, 0, i64::MAX).await.unwrap();
    assert_eq!(bits(&after), bits(&before));

    // A late sample after compaction merges into its block's chunk; the chunk's value wins.
    let third = Batch {
        series: vec![series(
            &[("__name__", "up"), ("job", "a")],
            &[(t0 + 45_000, 3.0), (t0, 7.0)],
        )],
        ..Batch::default()
    };
    prom::ingest(&f.store, &q, p, &third).await.unwrap();
    compact::compact(&f.store, None, i64::MAX / 2, 0)
        .await
        .unwrap();
    let a = query::select(&f.store, p, &[m("job", MatchOp::Eq, "a")], t0, t0 + 45_000)
        .await
        .unwrap();
    let got = bits(&a);
    assert_eq!(
        got[0].1,
        vec![
            (t0, 1.0f64.to_bits()),
            (t0 + 15_000, f64::NAN.to_bits()),
            (t0 + 30_000, STALE_NAN_BITS),
            (t0 + 45_000, 3.0f64.to_bits()),
        ]
    );
    let fp = compact::footprint(&f.store).await.unwrap();
    assert_eq!((fp.chunk_samples, fp.head_samples), (7, 0));

    // Retention removes whole chunks older than the cut.
    compact::enforce_retention(&f.store, t0 + BLOCK_MS)
        .await
        .unwrap();
    let left = query::select(&f.store, p, &all, 0, i64::MAX).await.unwrap();
    assert_eq!(bits(&left)[0].1, vec![(t0 + BLOCK_MS, 2.0f64.to_bits())]);
    writer.shutdown().await;
}

async fn matchers_labels_and_metadata(f: Fixture) {
    let p = project(&f).await;
    let other = {
        let org = tenancy::default_org(&f.store).await.unwrap().id;
        tenancy::create_project(&f.store, org, "other", None, None)
            .await
            .unwrap()
            .id
    };
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    let batch = Batch {
        series: vec![
            series(
                &[("__name__", "up"), ("job", "node"), ("i", "1")],
                &[(1000, 1.0)],
            ),
            series(&[("__name__", "up"), ("job", "prom")], &[(2000, 1.0)]),
            series(&[("__name__", "go_gc"), ("job", "node")], &[(3000, 5.0)]),
        ],
        metadata: vec![Metadata {
            metric: "up".into(),
            kind: MetricType::Gauge,
            help: "Target up".into(),
            unit: String::new(),
        }],
        ..Batch::default()
    };
    prom::ingest(&f.store, &q, p, &batch).await.unwrap();
    // Another project's series stay invisible.
    prom::ingest(&f.store, &q, other, &batch).await.unwrap();
    let names = |v: Vec<Vec<(String, String)>>| -> Vec<String> {
        v.into_iter().map(|l| prom::canonical(&l)).collect()
    };
    let sel = vec![vec![m("job", MatchOp::Re, "no.*")]];
    let s = query::series(&f.store, p, &sel, None).await.unwrap();
    assert_eq!(
        names(s),
        vec![
            r#"[["__name__","go_gc"],["job","node"]]"#,
            r#"[["__name__","up"],["i","1"],["job","node"]]"#
        ]
    );
    // Anchored: "no" alone matches nothing.
    let none = vec![vec![m("job", MatchOp::Re, "no")]];
    assert!(query::series(&f.store, p, &none, None)
        .await
        .unwrap()
        .is_empty());
    // A missing label matches "".
    let no_i = vec![vec![
        m("__name__", MatchOp::Eq, "up"),
        m("i", MatchOp::Eq, ""),
    ]];
    assert_eq!(
        query::series(&f.store, p, &no_i, None).await.unwrap().len(),
        1
    );
    // Time ranges filter to series with data in them.
    let s = query::series(&f.store, p, &[], Some((1500, 2500)))
        .await
        .unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        query::label_names(&f.store, p, &[], None).await.unwrap(),
        vec!["__name__", "i", "job"]
    );
    assert_eq!(
        query::label_values(&f.store, p, "job", &[], None)
            .await
            .unwrap(),
        vec!["node", "prom"]
    );
    assert_eq!(
        query::label_values(
            &f.store,
            p,
            "__name__",
            &[vec![m("job", MatchOp::Ne, "node")]],
            None
        )
        .await
        .unwrap(),
        vec!["up"]
    );
    let meta = query::metadata(&f.store, p, None, 100).await.unwrap();
    assert_eq!(meta.len(), 1);
    assert_eq!(
        (meta[0].kind.as_str(), meta[0].help.as_str()),
        ("gauge", "Target up")
    );
    writer.shutdown().await;
}

async fn a_fenced_compaction_changes_nothing(f: Fixture) {
    let p = project(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let batch = Batch {
        series: vec![series(&[("__name__", "x")], &[(1000, 1.0)])],
        ..Batch::default()
    };
    prom::ingest(&f.store, &writer.queue(), p, &batch)
        .await
        .unwrap();
    let stale = Fence {
        job: "prom.compact".into(),
        token: 12345,
    };
    let e = compact::compact(&f.store, Some(&stale), i64::MAX / 2, 0)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Fenced), "{e}");
    let fp = compact::footprint(&f.store).await.unwrap();
    assert_eq!((fp.head_samples, fp.chunk_samples), (1, 0));
    writer.shutdown().await;
}

async fn a_damaged_chunk_is_quarantined_and_compaction_goes_on(f: Fixture) {
    let p = project(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    let t0 = 1_800_000_060_000;
    let one = |t: i64, v: f64| Batch {
        series: vec![series(&[("__name__", "x")], &[(t, v)])],
        ..Batch::default()
    };
    prom::ingest(&f.store, &q, p, &one(t0, 1.0)).await.unwrap();
    compact::compact(&f.store, None, i64::MAX / 2, 0)
        .await
        .unwrap();
    sqlx::query("UPDATE prom_chunks SET data = $1")
        .bind(vec![0xffu8, 0xff, 0xff])
        .execute(f.store.pool())
        .await
        .unwrap();
    // A late sample for the damaged chunk's block: compaction carries on instead of failing
    // on every run for ever, and the block holds what could be kept.
    prom::ingest(&f.store, &q, p, &one(t0 + 15_000, 2.0))
        .await
        .unwrap();
    let done = compact::compact(&f.store, None, i64::MAX / 2, 0)
        .await
        .unwrap();
    assert_eq!((done.quarantined, done.head_rows), (1, 1));
    let got = query::select(&f.store, p, &[m("__name__", MatchOp::Eq, "x")], 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(bits(&got)[0].1, vec![(t0 + 15_000, 2.0f64.to_bits())]);
    assert_eq!(compact::block_start(i64::MIN), None);
    assert_eq!(compact::block_start(-1), Some(-BLOCK_MS));
    writer.shutdown().await;
}

async fn retention_deletes_series_left_without_samples(f: Fixture) {
    let p = project(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    let batch = Batch {
        series: vec![series(&[("__name__", "old"), ("job", "a")], &[(1000, 1.0)])],
        metadata: vec![Metadata {
            metric: "old".into(),
            kind: MetricType::Gauge,
            help: "h".into(),
            unit: String::new(),
        }],
        ..Batch::default()
    };
    prom::ingest(&f.store, &q, p, &batch).await.unwrap();
    compact::compact(&f.store, None, i64::MAX / 2, 0)
        .await
        .unwrap();
    let later = lookout_core::time::now_ms() + 1;
    compact::enforce_retention(&f.store, later).await.unwrap();
    let names = query::label_names(&f.store, p, &[], None).await.unwrap();
    assert!(names.is_empty(), "{names:?}");
    assert!(query::metadata(&f.store, p, None, 100)
        .await
        .unwrap()
        .is_empty());
    // The id cache was cleared: the same series written again is created anew and readable.
    let again = Batch {
        series: vec![series(
            &[("__name__", "old"), ("job", "a")],
            &[(later, 2.0)],
        )],
        ..Batch::default()
    };
    let w = prom::ingest(&f.store, &q, p, &again).await.unwrap();
    assert_eq!(w.new_series, 1);
    compact::compact(&f.store, None, i64::MAX / 2, 0)
        .await
        .unwrap();
    let got = query::select(&f.store, p, &[m("job", MatchOp::Eq, "a")], 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(bits(&got)[0].1, vec![(later, 2.0f64.to_bits())]);
    writer.shutdown().await;
}

async fn the_series_limit_refuses_new_series_only(f: Fixture) {
    let p = project(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    let two = Batch {
        series: vec![
            series(&[("__name__", "a")], &[(1000, 1.0)]),
            series(&[("__name__", "b")], &[(1000, 1.0)]),
        ],
        ..Batch::default()
    };
    prom::ingest_limited(&f.store, &q, p, &two, 2)
        .await
        .unwrap();
    let three = Batch {
        series: vec![series(&[("__name__", "c")], &[(2000, 1.0)])],
        ..Batch::default()
    };
    let e = prom::ingest_limited(&f.store, &q, p, &three, 2)
        .await
        .unwrap_err();
    assert!(matches!(e, prom::IngestError::SeriesLimit(2)), "{e}");
    // What a refused writer may still write: the stored series, not the refused one (read from
    // the database, not only the cache, and by labels, not only by hash).
    let a = vec![("__name__".to_string(), "a".to_string())];
    let c = vec![("__name__".to_string(), "c".to_string())];
    let known = prom::stored_series(&f.store, p, &[&a, &c]).await.unwrap();
    assert_eq!(known, vec![true, false]);
    let other = project_named(&f, "other").await;
    let known = prom::stored_series(&f.store, other, &[&a]).await.unwrap();
    assert_eq!(known, vec![false]);
    // Known series still take samples; nothing of the refused batch was stored.
    prom::ingest_limited(&f.store, &q, p, &two, 2)
        .await
        .unwrap();
    let fp = compact::footprint(&f.store).await.unwrap();
    assert_eq!(fp.head_samples, 4);
    writer.shutdown().await;
}

async fn reads_past_the_series_cap_refuse_or_stream(f: Fixture) {
    let p = project(&f).await;
    // 100,001 series of one metric, inserted by one statement (the test is about reading).
    let n = query::MAX_SERIES as i64 + 1;
    sqlx::query(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $2)
         INSERT INTO prom_series (project_id, name, labels, hash, created_at)
         SELECT $1, 'big', '[[\"__name__\",\"big\"],[\"i\",\"' || CAST(i AS TEXT) || '\"]]', i, 0
         FROM k",
    )
    .bind(p)
    .bind(n)
    .execute(f.store.pool())
    .await
    .unwrap();
    // A selector matching them all is refused, never cut silently.
    let e = query::select(&f.store, p, &[m("__name__", MatchOp::Eq, "big")], 0, 1)
        .await
        .unwrap_err();
    assert!(matches!(e, query::ReadError::TooManySeries), "{e}");
    let e = query::series(&f.store, p, &[vec![m("i", MatchOp::Re, ".+")]], None)
        .await
        .unwrap_err();
    assert!(matches!(e, query::ReadError::TooManySeries), "{e}");
    // Without match[], label names and values are streamed over every series.
    let names = query::label_names(&f.store, p, &[], None).await.unwrap();
    assert_eq!(names, vec!["__name__".to_string(), "i".to_string()]);
    let values = query::label_values(&f.store, p, "i", &[], None)
        .await
        .unwrap();
    assert_eq!(values.len() as i64, n);
}

/// Claims the job as the job runner's claim statement does (lease taken, fence bumped); returns
/// the claim's fencing token.
async fn claim(f: &Fixture, id: &str, owner: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(
        "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1,
                fence = fence + 1 WHERE id = $3 RETURNING fence",
    )
    .bind(owner)
    .bind(i64::MAX / 2)
    .bind(id)
    .fetch_one(f.store.pool())
    .await
    .unwrap()
    .try_get::<i64, _>("fence")
    .unwrap()
}

async fn a_claim_whose_fence_went_stale_cannot_compact(f: Fixture) {
    let p = project(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    lookout_store::jobs::ensure_periodic(&f.store, "prom.compact", "prometheus.compact", 60_000)
        .await
        .unwrap();
    let one = |t: i64| Batch {
        series: vec![series(&[("__name__", "x")], &[(t, 1.0)])],
        ..Batch::default()
    };
    // Replica A claims and compacts under its token.
    let a = claim(&f, "prom.compact", "replica-a").await;
    let fence_a = Fence {
        job: "prom.compact".into(),
        token: a,
    };
    prom::ingest(&f.store, &q, p, &one(1000)).await.unwrap();
    let done = compact::compact(&f.store, Some(&fence_a), i64::MAX / 2, 0)
        .await
        .unwrap();
    assert_eq!(done.samples, 1);
    // Its lease lapses and replica B claims the job: A's token is stale from then on.
    let b = claim(&f, "prom.compact", "replica-b").await;
    assert!(b > a);
    prom::ingest(&f.store, &q, p, &one(2000)).await.unwrap();
    let e = compact::compact(&f.store, Some(&fence_a), i64::MAX / 2, 0)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Fenced), "{e}");
    let fp = compact::footprint(&f.store).await.unwrap();
    assert_eq!((fp.head_samples, fp.chunk_samples), (1, 1));
    let fence_b = Fence {
        job: "prom.compact".into(),
        token: b,
    };
    compact::compact(&f.store, Some(&fence_b), i64::MAX / 2, 0)
        .await
        .unwrap();
    let fp = compact::footprint(&f.store).await.unwrap();
    assert_eq!((fp.head_samples, fp.chunk_samples), (0, 2));
    writer.shutdown().await;
}

const DAY: i64 = 86_400_000;

/// A counter (`req_total`, +10 a minute, reset to 5 every 1,000 samples) and a gauge (`temp`,
/// 20 to 34.75 in steps of 0.25 within each hour), one sample a minute for two days from
/// `start`; returns the counter's values.
async fn two_days(
    f: &Fixture,
    q: &lookout_store::writer::WriteQueue,
    p: i64,
    start: i64,
) -> Vec<f64> {
    let counter: Vec<(i64, f64)> = (0..2880)
        .map(|i| (start + i * 60_000, ((i % 1000) * 10 + 5) as f64))
        .collect();
    let gauge: Vec<(i64, f64)> = (0..2880)
        .map(|i| (start + i * 60_000, 20.0 + (i % 60) as f64 / 4.0))
        .collect();
    for (c, g) in counter.chunks(720).zip(gauge.chunks(720)) {
        let batch = Batch {
            series: vec![
                series(&[("__name__", "req_total")], c),
                series(&[("__name__", "temp")], g),
            ],
            ..Batch::default()
        };
        prom::ingest(&f.store, q, p, &batch).await.unwrap();
    }
    counter.iter().map(|(_, v)| *v).collect()
}

/// Prometheus's counter increase from sample `a` to sample `b` (a drop is a reset).
fn increase(vals: &[f64], a: usize, b: usize) -> f64 {
    vals[a..=b]
        .windows(2)
        .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
        .sum()
}

async fn old_samples_live_on_in_downsampled_tiers(f: Fixture) {
    let p = project(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    // A fixed "now"; one stretch old enough for the 1-hour tier alone, one for both tiers.
    let now = 1_800_000_000_000 / DAY * DAY;
    let (old, recent) = (now - 200 * DAY, now - 30 * DAY);
    let old_counter = two_days(&f, &q, p, old).await;
    let recent_counter = two_days(&f, &q, p, recent).await;
    compact::compact(&f.store, None, now, 0).await.unwrap();
    let keep = Retention {
        raw_ms: 15 * DAY,
        m5_ms: 90 * DAY,
        h1_ms: 365 * DAY,
    };
    // Retention before downsampling deletes nothing it has not downsampled.
    tiers::enforce_retention(&f.store, now, &keep)
        .await
        .unwrap();
    assert_eq!(
        compact::footprint(&f.store).await.unwrap().chunk_samples,
        4 * 2880
    );
    let done = tiers::downsample(&f.store, None, now, keep.raw_ms)
        .await
        .unwrap();
    assert_eq!((done.chunks, done.quarantined), (2 * 2 * 24, 0));
    // Run again: nothing left to do.
    let again = tiers::downsample(&f.store, None, now, keep.raw_ms)
        .await
        .unwrap();
    assert_eq!(again.chunks, 0);
    tiers::enforce_retention(&f.store, now, &keep)
        .await
        .unwrap();
    assert_eq!(compact::footprint(&f.store).await.unwrap().chunk_samples, 0);
    let rows = tiers::footprint(&f.store).await.unwrap();
    // 5-minute rows (a day each) of the recent stretch only; 1-hour rows of both.
    assert_eq!(rows[0].0, tiers::RES_5M);
    assert_eq!(rows[0].1, 2 * 2);
    assert_eq!(rows[1].0, tiers::RES_1H);

    // The old stretch reads from the 1-hour tier: every aggregate of each hour.
    let read = |name: &'static str, aggr: Aggregate, from: i64, to: i64| {
        let store = f.store.clone();
        async move {
            let got = query::select_downsampled_within(
                &store,
                p,
                &[m("__name__", MatchOp::Eq, name)],
                (from, to),
                aggr,
                &mut Budget::new(1_000_000),
            )
            .await
            .unwrap();
            assert_eq!(got.len(), 1, "{name}");
            got[0].samples.clone()
        }
    };
    let span = (old, old + 2 * DAY);
    for (aggr, want) in [
        (Aggregate::Count, 60.0),
        (Aggregate::Sum, 60.0 * 20.0 + 0.25 * (59.0 * 60.0 / 2.0)),
        (Aggregate::Min, 20.0),
        (Aggregate::Max, 34.75),
        (Aggregate::Auto, 20.0 + 59.0 / 8.0),
    ] {
        let got = read("temp", aggr, span.0, span.1).await;
        assert_eq!(got.len(), 48, "{aggr:?}");
        assert_eq!(got[0].0, old + 3_600_000 - 1, "stamped at the bucket's end");
        assert!(got.iter().all(|(_, v)| *v == want), "{aggr:?}: {got:?}");
    }
    // The counter (by its name): resets taken out, so the difference of two points is the
    // increase between the hours' last samples, and the last point is the last raw value.
    let got = read("req_total", Aggregate::Auto, span.0, span.1).await;
    assert_eq!(got.len(), 48);
    for (h, (_, v)) in got.iter().enumerate() {
        let since = increase(&old_counter, 60 * h + 59, 2879);
        assert_eq!(*v, old_counter[2879] - since, "hour {h}");
    }
    let rate = (got[47].1 - got[0].1) / ((got[47].0 - got[0].0) as f64 / 1000.0);
    let raw_rate = increase(&old_counter, 59, 2879) / (47.0 * 3600.0);
    assert_eq!(rate, raw_rate);

    // The recent stretch still has 5-minute buckets: the gauge's plain read is their mean.
    let got = read("temp", Aggregate::Auto, recent, recent + 2 * DAY).await;
    assert_eq!(got.len(), 2 * 288);
    assert_eq!(got[0], (recent + 300_000 - 1, 20.5));
    let got = read("req_total", Aggregate::Counter, recent, recent + 2 * DAY).await;
    assert_eq!(got.len(), 2 * 288);
    assert_eq!(got[575].1, recent_counter[2879]);
    assert_eq!(
        got[575].1 - got[0].1,
        increase(&recent_counter, 4, 2879),
        "rate over 5-minute buckets sees every increase"
    );

    // A read reaching past raw data into the tier: the plain `select` of PromQL.
    prom::ingest(
        &f.store,
        &q,
        p,
        &Batch {
            series: vec![series(
                &[("__name__", "req_total")],
                &[(now - DAY, 10_000.0)],
            )],
            ..Batch::default()
        },
    )
    .await
    .unwrap();
    let all = query::select(
        &f.store,
        p,
        &[m("__name__", MatchOp::Eq, "req_total")],
        old,
        now,
    )
    .await
    .unwrap();
    let s = &all[0].samples;
    assert_eq!(
        s.len(),
        2 * 48 + 1,
        "the 1-hour tier for the old part, then raw"
    );
    assert_eq!(s[s.len() - 2].1, recent_counter[2879]);
    assert_eq!(s[s.len() - 1], (now - DAY, 10_000.0));
    // count_over_time's read: each tier point weighs its bucket's samples (60 an hour), the raw
    // sample after them 1, so summing them counts every sample ever written.
    let weights = query::select_downsampled_within(
        &f.store,
        p,
        &[m("__name__", MatchOp::Eq, "req_total")],
        (old, now),
        Aggregate::Count,
        &mut Budget::new(1_000_000),
    )
    .await
    .unwrap();
    let counted: f64 = weights[0].samples.iter().map(|(_, v)| v).sum();
    assert_eq!(counted, (2 * 2880 + 1) as f64);
    let listed = query::series(
        &f.store,
        p,
        &[vec![m("__name__", MatchOp::Eq, "temp")]],
        Some((old, old + DAY)),
    )
    .await
    .unwrap();
    assert_eq!(
        listed.len(),
        1,
        "a series with only tier data in the range is listed"
    );

    // A retention raised later brings nothing back: reads still know that the old stretch's
    // 5-minute buckets are gone and take the 1-hour ones.
    let longer = Retention {
        m5_ms: 365 * DAY,
        ..keep
    };
    tiers::enforce_retention(&f.store, now, &longer)
        .await
        .unwrap();
    let got = read("temp", Aggregate::Count, span.0, span.1).await;
    assert_eq!(got.len(), 48, "still the 1-hour tier");
    writer.shutdown().await;
}

/// The first byte of every chunk: its layout version.
async fn chunk_versions(f: &Fixture) -> Vec<u8> {
    use sqlx::Row;
    sqlx::query("SELECT data FROM prom_chunks ORDER BY block_start")
        .fetch_all(f.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<Vec<u8>, _>("data").unwrap()[0])
        .collect()
}

async fn old_layout_chunks_read_and_merge(f: Fixture) {
    let p = project(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    let t0 = 1_800_000_060_000;
    let batch = |points: &[(i64, f64)]| Batch {
        series: vec![series(&[("__name__", "g")], points)],
        ..Batch::default()
    };
    let first: Vec<(i64, f64)> = (0..100)
        .map(|i| (t0 + i * 15_000, i as f64 / 4.0))
        .collect();
    prom::ingest(&f.store, &q, p, &batch(&first)).await.unwrap();
    // Written for a cluster that still runs a replica of the version before the layout byte.
    compact::compact_as(&f.store, None, i64::MAX / 2, 0, Layout::V0)
        .await
        .unwrap();
    assert_eq!(chunk_versions(&f).await, vec![0]);
    let all = [m("__name__", MatchOp::Eq, "g")];
    let got = query::select(&f.store, p, &all, 0, i64::MAX).await.unwrap();
    assert_eq!(got[0].samples, first);
    // A late sample merges into the old chunk, which is rewritten in the current layout.
    prom::ingest(&f.store, &q, p, &batch(&[(t0 - 15_000, 7.5)]))
        .await
        .unwrap();
    let done = compact::compact(&f.store, None, i64::MAX / 2, 0)
        .await
        .unwrap();
    assert_eq!((done.chunks, done.quarantined), (1, 0));
    assert_eq!(chunk_versions(&f).await, vec![1]);
    let got = query::select(&f.store, p, &all, 0, i64::MAX).await.unwrap();
    assert_eq!(got[0].samples.len(), 101);
    assert_eq!(got[0].samples[0], (t0 - 15_000, 7.5));
    assert_eq!(&got[0].samples[1..], &first[..]);
    writer.shutdown().await;
}
