//! APM into regression detection: once a UTC day is complete, the p95 of every transaction of
//! every service that day becomes a point of the series `apm.p95` (tags `service`,
//! `transaction`), so a slower deploy shows up as a change point like a slower benchmark does.

use std::collections::BTreeMap;

use crate::apm::query::{fold_ranges, Filter};
use crate::series::{self, Direction, NewPoint, SeriesKey};
use crate::{Result, Store};

/// The series every daily point goes to.
pub const SERIES: &str = "apm.p95";
const DAY: i64 = 86_400_000;
/// Spans may arrive a little after their day ends (exporter batching, retries).
const SLACK_MS: i64 = 15 * 60_000;
/// The marker of the last day pushed (an `event_cursors` row, so replicas share it).
const MARK: &str = "apm.daily_series";
/// On first run, days further back than this are not pushed.
const BACKFILL_DAYS: i64 = 14;

/// Pushes every complete day not pushed yet (as of `now_ms`); returns the points added.
pub async fn push(store: &Store, now_ms: i64) -> Result<usize> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT position FROM event_cursors WHERE consumer = $1")
            .bind(MARK)
            .fetch_optional(store.pool())
            .await?;
    let newest_complete = (now_ms - SLACK_MS).div_euclid(DAY) * DAY - DAY;
    let mut day = match last {
        Some(d) => d + DAY,
        None => newest_complete - (BACKFILL_DAYS - 1) * DAY,
    };
    let projects: Vec<i64> = sqlx::query_scalar("SELECT id FROM projects")
        .fetch_all(store.pool())
        .await?;
    let mut added = 0;
    while day <= newest_complete {
        for &project in &projects {
            let f = Filter {
                projects: &[project],
                category: Some("request"),
                ..Filter::default()
            };
            let reds = fold_ranges(store, &f, &[(2, day, day + DAY)], |c| {
                Some((c.service.to_string(), c.operation.to_string()))
            })
            .await?;
            let points: Vec<NewPoint> = reds
                .iter()
                .filter_map(|((service, transaction), red)| {
                    Some(NewPoint {
                        key: SeriesKey {
                            name: SERIES.into(),
                            tags: BTreeMap::from([
                                ("service".to_string(), service.clone()),
                                ("transaction".to_string(), transaction.clone()),
                            ]),
                            unit: "ms".into(),
                            direction: Direction::LowerIsBetter,
                        },
                        at: day,
                        value: red.quantile(0.95)?,
                        commit: None,
                        version: None,
                        build: None,
                        source: "apm".into(),
                    })
                })
                .collect();
            // One series per transaction: each is added (and re-analysed) on its own.
            for p in points {
                series::add(store, project, std::slice::from_ref(&p)).await?;
                added += 1;
            }
        }
        sqlx::query(
            "INSERT INTO event_cursors (consumer, position, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(MARK)
        .bind(day)
        .bind(now_ms)
        .execute(store.pool())
        .await?;
        day += DAY;
    }
    Ok(added)
}
