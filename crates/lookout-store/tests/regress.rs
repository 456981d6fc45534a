//! Change points kept with series on SQLite and PostgreSQL: analysing as points arrive one by one
//! finds what analysing the whole series at once finds, announces each fresh regression once,
//! and a back-dated point re-analyses everything.

use std::collections::BTreeMap;

use lookout_store::events;
use lookout_store::regress;
use lookout_store::series::{self, Direction, NewPoint, SeriesKey};
use lookout_store::{tenancy, Backend, Cursor, StoreError};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    points_one_by_one_find_what_the_whole_series_finds,
    series_pages_walk_every_series_once_and_refuse_a_foreign_cursor,
);

/// Three regimes (100, then 140: slower, then 110: faster) with noise and a few outliers.
fn values() -> Vec<f64> {
    let mut seed: u64 = 42;
    (0..150)
        .map(|i| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = (seed >> 33) as f64 / f64::from(1u32 << 31) * 8.0;
            let outlier = if i % 23 == 5 { 60.0 } else { 0.0 };
            let level = match i {
                0..60 => 100.0,
                60..110 => 140.0,
                _ => 110.0,
            };
            level + noise + outlier
        })
        .collect()
}

fn point(value: f64, at: i64) -> NewPoint {
    NewPoint {
        key: SeriesKey {
            name: "api.p95_ms".into(),
            tags: BTreeMap::new(),
            unit: "ms".into(),
            direction: Direction::LowerIsBetter,
        },
        at,
        value,
        commit: Some(format!("c{at}")),
        version: None,
        build: None,
        source: "push".into(),
    }
}

async fn points_one_by_one_find_what_the_whole_series_finds(f: Fixture) {
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let v = values();
    let mut id = 0;
    // Pushes (series lengths) after which the newest points formed a regression.
    let mut fresh = Vec::new();
    for (i, x) in v.iter().enumerate() {
        let got = series::add(&f.store, project.id, &[point(*x, 1000 + i as i64)])
            .await
            .unwrap();
        id = got[0].0;
        if regress::fresh_regression(&got[0].1, i as i64 + 1).is_some() {
            fresh.push(i + 1);
        }
    }
    // Found a few points after the step at 60, and fresh until it is 10 points old.
    assert!((64..=67).contains(&fresh[0]), "{fresh:?}");
    assert_eq!(fresh.last(), Some(&70), "{fresh:?}");
    assert_eq!(fresh.len(), 71 - fresh[0], "{fresh:?}");
    let offline: Vec<i64> = lookout_regress::detect(&v, &lookout_regress::Options::default())
        .iter()
        .map(|c| c.index as i64)
        .collect();
    assert_eq!(offline, vec![60, 110], "the fixture's steps");
    let stored = regress::for_series(&f.store, id).await.unwrap();
    let at: Vec<i64> = stored.iter().map(|c| c.position).collect();
    assert_eq!(at, offline);
    assert_eq!(stored[0].kind, "regression");
    assert_eq!(stored[0].commit.as_deref(), Some("c1060"));
    assert_eq!(stored[1].kind, "improvement");
    let evs = events::read_after(&f.store, 0, 10_000, None).await.unwrap();
    let detected: Vec<_> = evs
        .iter()
        .filter(|e| e.kind == "regression.detected")
        .collect();
    assert_eq!(detected.len(), 1, "one event for one regression");
    assert_eq!(detected[0].payload["commit"], "c1060");

    // A point older than all others shifts every position: the series is analysed again.
    series::add(&f.store, project.id, &[point(100.0, 1)])
        .await
        .unwrap();
    let stored = regress::for_series(&f.store, id).await.unwrap();
    let at: Vec<i64> = stored.iter().map(|c| c.position).collect();
    assert_eq!(at, vec![61, 111]);
    assert_eq!(
        stored[0].commit.as_deref(),
        Some("c1060"),
        "same change, new position"
    );
    let recent = regress::recent(&f.store, &[project.id], Some("regression"), 10)
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].series, "api.p95_ms");
}

async fn series_pages_walk_every_series_once_and_refuse_a_foreign_cursor(f: Fixture) {
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let key = |name: &str, host: &str| SeriesKey {
        name: name.into(),
        tags: BTreeMap::from([("host".to_string(), host.to_string())]),
        unit: "ms".into(),
        direction: Direction::LowerIsBetter,
    };
    // Seven series, added out of order: names tie across hosts, so tags break the ties.
    let keys = [
        key("b", "2"),
        key("a", "3"),
        key("b", "1"),
        key("a", "1"),
        key("c", "1"),
        key("a", "2"),
        key("b", "3"),
    ];
    for (i, k) in keys.iter().enumerate() {
        let p = NewPoint {
            key: k.clone(),
            ..point(i as f64, 1000)
        };
        series::add(&f.store, project.id, &[p]).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = Cursor {
        after: None,
        limit: Some(3),
    };
    loop {
        let page = series::list(&f.store, &[project.id], None, &cursor)
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(
            page.items
                .iter()
                .map(|s| format!("{}{}", s.name, s.tags["host"])),
        );
        match page.next {
            Some(n) => cursor.after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ["a1", "a2", "a3", "b1", "b2", "b3", "c1"]);
    // A cursor naming no series of this project would otherwise end the list early, as if it
    // were complete.
    let other = tenancy::create_project(&f.store, project.org_id, "other", None, None)
        .await
        .unwrap();
    let theirs = series::add(&f.store, other.id, &[point(1.0, 1)])
        .await
        .unwrap()[0]
        .0;
    for bad in [theirs, 999_999] {
        let c = Cursor {
            after: Some(bad.to_string()),
            limit: Some(3),
        };
        let err = series::list(&f.store, &[project.id], None, &c)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::BadCursor(_)), "{err:?}");
    }
}
