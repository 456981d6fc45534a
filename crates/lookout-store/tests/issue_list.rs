//! The issue list at scale (issue 31): search through each backend's trigram index finds what
//! the plain LIKE found, keyset pages walk every issue once in every sort, and the filter menus
//! still offer the tag values of the issues being seen. Run on SQLite and PostgreSQL alike.

use std::collections::BTreeSet;

use lookout_store::errors::process::{ingest_writes, ErrorProcessor};
use lookout_store::errors::{self, IssueFilter};
use lookout_store::writer::WriterConfig;
use lookout_store::{tenancy, Backend, Cursor, StoreError, Writer};
use serde_json::json;

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    search_finds_substrings_of_titles_in_any_case,
    keyset_pages_walk_every_issue_once_in_every_sort,
    keyset_pages_break_ties_by_id_without_skipping_or_repeating,
    filter_menus_offer_the_values_of_recent_issues,
);

/// Error types and messages of the issues made by [`ingest`]; issue `i` gets `i + 1` events, a
/// user per event and `environment` production or (odd `i`) staging.
const TITLES: &[(&str, &str)] = &[
    ("PaymentError", "card declined for order 17"),
    ("TimeoutError", "upstream took 30 s"),
    ("KeyError", "'basket'"),
    ("ValueError", "100% of quota used"),
    ("ValueError", "100 percent"),
    ("Überlauf", "Puffer voll"),
    ("RuntimeError", "say \"cheese\""),
];

/// Ingests and groups one issue per entry of [`TITLES`]; returns the project id.
async fn ingest(f: &Fixture) -> i64 {
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let now = lookout_core::time::now_ms();
    let mut items = Vec::new();
    let mut n = 0;
    for (i, (ty, value)) in TITLES.iter().enumerate() {
        for k in 0..=i {
            n += 1;
            let ev = json!({"event_id": format!("{n:032x}"), "level": "error", "platform": "python",
                "timestamp": (now - 1000 * (TITLES.len() - i) as i64) as f64 / 1000.0 + k as f64 * 0.001,
                "environment": if i % 2 == 1 { "staging" } else { "production" },
                "user": {"id": format!("u{k}")},
                "exception": {"values": [{"type": ty, "value": value}]}});
            items.push((
                "event".to_string(),
                Some(format!("{n:032x}")),
                ev.to_string(),
            ));
        }
    }
    writer
        .queue()
        .write(ingest_writes(project.id, now, items, Vec::new()))
        .await
        .unwrap();
    writer.shutdown().await;
    let p = ErrorProcessor::new(f.store.clone(), "t");
    while p.poll_once().await.unwrap() > 0 {}
    project.id
}

async fn titles(f: &Fixture, project: i64, filter: IssueFilter) -> BTreeSet<String> {
    errors::list_issues(&f.store, project, &filter, &Cursor::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.title)
        .collect()
}

async fn search_finds_substrings_of_titles_in_any_case(f: Fixture) {
    let project = ingest(&f).await;
    let search = |q: &str| IssueFilter {
        query: Some(q.to_string()),
        ..Default::default()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        titles(&f, project, search("PAYMENT")).await,
        set(&["PaymentError: card declined for order 17"])
    );
    assert_eq!(
        titles(&f, project, search("order 17")).await,
        set(&["PaymentError: card declined for order 17"])
    );
    // `%` and `_` are text, not wildcards, with or without the index.
    assert_eq!(
        titles(&f, project, search("100%")).await,
        set(&["ValueError: 100% of quota used"])
    );
    assert_eq!(
        titles(&f, project, search("valueerror: 100")).await,
        set(&["ValueError: 100% of quota used", "ValueError: 100 percent"])
    );
    // Under three characters there is no trigram: the plain match still answers.
    assert_eq!(
        titles(&f, project, search("ke")).await,
        set(&["KeyError: 'basket'"])
    );
    // Quotes are text too, and FTS5 syntax in a query is not syntax.
    assert_eq!(
        titles(&f, project, search("\"cheese\"")).await,
        set(&["RuntimeError: say \"cheese\""])
    );
    assert!(titles(&f, project, search("card AND NOT")).await.is_empty());
    assert!(titles(&f, project, search("no such words"))
        .await
        .is_empty());
    // Filters combine with the search.
    let staging = IssueFilter {
        query: Some("error".into()),
        environment: Some("staging".into()),
        ..Default::default()
    };
    assert_eq!(
        titles(&f, project, staging).await,
        set(&[
            "TimeoutError: upstream took 30 s",
            "ValueError: 100% of quota used"
        ])
    );
}

/// The ids of every page of `filter`, two issues a page, following `next` to the end.
async fn walk(f: &Fixture, project: i64, filter: &IssueFilter) -> Vec<i64> {
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = errors::list_issues(
            &f.store,
            project,
            filter,
            &Cursor {
                after: after.clone(),
                limit: Some(2),
            },
        )
        .await
        .unwrap();
        assert!(page.items.len() <= 2);
        walked.extend(page.items.iter().map(|i| i.id));
        match page.next {
            Some(n) => after = Some(n),
            None => return walked,
        }
    }
}

async fn keyset_pages_walk_every_issue_once_in_every_sort(f: Fixture) {
    let project = ingest(&f).await;
    for sort in ["last_seen", "first_seen", "events", "users"] {
        let filter = IssueFilter {
            sort: Some(sort.into()),
            ..Default::default()
        };
        let all = errors::list_issues(&f.store, project, &filter, &Cursor::default())
            .await
            .unwrap();
        assert_eq!(all.items.len(), TITLES.len());
        assert_eq!(all.next, None);
        let walked = walk(&f, project, &filter).await;
        let expected: Vec<i64> = all.items.iter().map(|i| i.id).collect();
        assert_eq!(walked, expected, "pages of sort={sort}");
    }
    // The most events first: issue `i` has `i + 1`.
    let by_events = errors::list_issues(
        &f.store,
        project,
        &IssueFilter {
            sort: Some("events".into()),
            ..Default::default()
        },
        &Cursor::default(),
    )
    .await
    .unwrap();
    let counts: Vec<i64> = by_events.items.iter().map(|i| i.count).collect();
    assert_eq!(counts, vec![7, 6, 5, 4, 3, 2, 1]);
    // An offset from before keyset pages, or anything else, is refused rather than restarted.
    for bad in ["25", "x:1", "1:"] {
        let r = errors::list_issues(
            &f.store,
            project,
            &IssueFilter::default(),
            &Cursor {
                after: Some(bad.into()),
                limit: None,
            },
        )
        .await;
        assert!(matches!(r, Err(StoreError::BadCursor(_))), "{bad}: {r:?}");
    }
}

async fn filter_menus_offer_the_values_of_recent_issues(f: Fixture) {
    let project = ingest(&f).await;
    // Production: issues 0, 2, 4, 6 (1 + 3 + 5 + 7 events); staging: 1, 3, 5 (2 + 4 + 6).
    assert_eq!(
        errors::project_tag_values(&f.store, project, "environment")
            .await
            .unwrap(),
        vec!["production".to_string(), "staging".to_string()]
    );
    assert!(errors::project_tag_values(&f.store, project, "no-such-key")
        .await
        .unwrap()
        .is_empty());
}

/// Five issues of one event each, all at the same time: every sort key ties.
async fn ingest_ties(f: &Fixture) -> i64 {
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let now = lookout_core::time::now_ms();
    let items = (0..5)
        .map(|n| {
            let ev = json!({"event_id": format!("{n:032x}"), "level": "error", "platform": "python",
                "timestamp": (now - 1000) as f64 / 1000.0, "user": {"id": "u"},
                "exception": {"values": [{"type": format!("Tie{n}"), "value": "same"}]}});
            (
                "event".to_string(),
                Some(format!("{n:032x}")),
                ev.to_string(),
            )
        })
        .collect();
    writer
        .queue()
        .write(ingest_writes(project.id, now, items, Vec::new()))
        .await
        .unwrap();
    writer.shutdown().await;
    let p = ErrorProcessor::new(f.store.clone(), "t");
    while p.poll_once().await.unwrap() > 0 {}
    project.id
}

async fn keyset_pages_break_ties_by_id_without_skipping_or_repeating(f: Fixture) {
    let project = ingest_ties(&f).await;
    for sort in ["last_seen", "first_seen", "events", "users"] {
        let filter = IssueFilter {
            sort: Some(sort.into()),
            ..Default::default()
        };
        let walked = walk(&f, project, &filter).await;
        // Equal keys come newest issue first, each once.
        let mut expected = walked.clone();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        expected.dedup();
        assert_eq!(walked.len(), 5, "sort={sort}: {walked:?}");
        assert_eq!(walked, expected, "sort={sort}");
    }
}
