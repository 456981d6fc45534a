//! Query (NRQL) alert conditions: an alert policy condition `{"source": "nrql", …}` whose query
//! is evaluated every aggregation window, one signal per facet value, with New Relic's
//! thresholds, gap filling and loss of signal ([`spec`], [`signal`]).
//!
//! The `alerting.query_conditions` job (every 15 s, on whichever replica claims it) evaluates
//! each condition's windows that have closed — a window `[t, t + w)` is evaluated once
//! `t + w + delay` has passed, so late spans still count — through the same NRQL executor and
//! rollups as `POST /api/v1/query`. What a window changes is published as domain events
//! (`nrql.breach`, `nrql.recovered`, `nrql.signal_lost`, `nrql.signal_restored`) in the
//! transaction that saves the condition's state, so each is announced exactly once; the policy
//! consumer turns them into incidents like every other source. A changed condition starts over
//! (New Relic resets evaluation on edits); windows missed while no replica ran are caught up,
//! at most an hour of them at a time.

pub mod signal;
pub mod spec;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::query::nrql;
use crate::query::words;
use lookout_nrql::time::Window;
use lookout_store::alerting::query_state::{self, ConditionState};
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::{events, tenancy, Store};
use signal::{Change, Signal};
use spec::NrqlCondition;

/// The job's name and period.
pub const JOB: &str = "alerting.query_conditions";
pub const EVERY_MS: i64 = 15_000;
/// At most this many windows per condition and pass.
const MAX_WINDOWS: i64 = 60;
/// A signal with nothing open and no data for this long is forgotten (New Relic keeps a last
/// value for two hours).
const FORGET_MS: i64 = 2 * 3_600_000;

/// A condition's signals between passes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    signals: BTreeMap<String, Signal>,
}

fn spec_hash(c: &NrqlCondition) -> String {
    let text = serde_json::to_string(c).unwrap_or_default();
    lookout_core::seal::hmac_sha256_hex(b"nrql-condition", text.as_bytes())
}

/// One pass over every enabled policy's query conditions; returns the events published.
pub async fn run(store: &Store, now: i64) -> Result<usize, String> {
    let org = tenancy::default_org(store)
        .await
        .map_err(|e| e.to_string())?;
    let mut published = 0;
    for row in astore::spec_list(store, SpecTable::Policies, org.id)
        .await
        .map_err(|e| e.to_string())?
    {
        let Ok(policy) = serde_json::from_value::<super::policies::PolicySpec>(row.spec) else {
            continue;
        };
        if !policy.enabled {
            continue;
        }
        for (ci, c) in policy.conditions.iter().enumerate() {
            if let super::policies::Condition::Nrql(c) = c {
                match evaluate(store, (row.id, &row.name), ci as i64, c, now).await {
                    Ok(n) => published += n,
                    Err(e) => {
                        tracing::warn!(policy = row.id, condition = ci, error = %e, "A query condition could not be evaluated.")
                    }
                }
            }
        }
    }
    Ok(published)
}

/// The figure of each signal in one window: facet values joined (empty without `FACET`).
fn values(r: &nrql::QueryResult, facets: usize) -> BTreeMap<String, Option<f64>> {
    r.rows
        .iter()
        .map(|row| {
            let label: Vec<String> = row[..facets.min(row.len())]
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "(null)".into(),
                    other => other.to_string(),
                })
                .collect();
            (label.join(", "), row.last().and_then(Value::as_f64))
        })
        .collect()
}

async fn evaluate(
    store: &Store,
    (policy_id, policy_name): (i64, &str),
    ci: i64,
    c: &NrqlCondition,
    now: i64,
) -> Result<usize, String> {
    let q = c.query()?;
    // What titles call the figure, in words and its unit, under the policy's name.
    let what = (policy_name, words::figure(&q.select[0].expr));
    let facets = match &q.facet {
        Some(lookout_nrql::ast::Facet::Items(items)) => items.len(),
        _ => 0,
    };
    let w = i64::from(c.window_seconds) * 1000;
    let delay = i64::from(c.delay_seconds) * 1000;
    let hash = spec_hash(c);
    let stored = query_state::load(store, policy_id, ci)
        .await
        .map_err(|e| e.to_string())?;
    let (mut until, mut state) = match stored {
        Some(s) if s.spec_hash == hash => (
            s.evaluated_until,
            serde_json::from_value::<State>(s.state).unwrap_or_default(),
        ),
        // New or changed: start with the newest window that has closed.
        _ => ((now - delay).div_euclid(w) * w - w, State::default()),
    };
    let projects = if c.project_ids.is_empty() {
        tenancy::project_ids(store)
            .await
            .map_err(|e| e.to_string())?
    } else {
        c.project_ids.clone()
    };
    let mut out = Vec::new();
    let mut windows = 0;
    while until + w + delay <= now && windows < MAX_WINDOWS {
        let (start, end) = (until, until + w);
        let window = Window {
            since: start,
            until: end,
            compare: None,
            bucket: None,
        };
        // The rollups are minute-grained: other windows are counted from the raw events.
        // On the alert slots, not the viewers': a crowd of dashboards cannot starve it.
        let result = nrql::execute_alert(store, &projects, &q, window, w % 60_000 != 0)
            .await
            .map_err(|e| e.to_string())?;
        let figures = values(&result, facets);
        let mut keys: Vec<String> = state.signals.keys().cloned().collect();
        keys.extend(
            figures
                .keys()
                .filter(|k| !state.signals.contains_key(*k))
                .cloned(),
        );
        for key in keys {
            let v = figures.get(&key).copied().flatten();
            let sig = state.signals.entry(key.clone()).or_insert_with(|| Signal {
                label: key.clone(),
                ..Signal::default()
            });
            if v.is_none() && sig.last_seen.is_none() && !sig.is_open() {
                // A signal only counts once it has had data.
                continue;
            }
            let changes = sig.step(c, start, end, v);
            // What stays open after this window, so the consumer keeps one incident per
            // signal: a closed critical with an open warning lowers its priority.
            let open = still_open(sig);
            for change in changes {
                out.push(announce(
                    (policy_id, ci),
                    c,
                    &what,
                    (&key, &open),
                    change,
                    (start, end),
                ));
            }
        }
        state.signals.retain(|k, s| {
            s.is_open()
                || figures.contains_key(k)
                || s.last_seen
                    .is_some_and(|seen| end - seen < FORGET_MS.max(loss_ms(c)))
        });
        until = end;
        windows += 1;
    }
    if windows == 0 {
        return Ok(0);
    }
    let n = out.len();
    let mut tx = store.begin_write().await.map_err(|e| e.to_string())?;
    events::publish_in_tx(store, &mut tx, &out)
        .await
        .map_err(|e| e.to_string())?;
    let saved = ConditionState {
        spec_hash: hash,
        evaluated_until: until,
        state: serde_json::to_value(&state).unwrap_or_default(),
    };
    query_state::save(&mut tx, policy_id, ci, &saved, now)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(n)
}

fn loss_ms(c: &NrqlCondition) -> i64 {
    c.loss_of_signal
        .as_ref()
        .map_or(0, |l| i64::from(l.expiration_seconds) * 1000 * 2)
}

/// The priorities still open on a signal, highest first, with `lost` when its data stopped.
fn still_open(sig: &Signal) -> Vec<&'static str> {
    let mut open: Vec<&'static str> = sig
        .tracks
        .iter()
        .rev()
        .filter(|(_, t)| t.open_since.is_some())
        .map(|(p, _)| p.as_str())
        .collect();
    if sig.lost {
        open.push("lost");
    }
    open
}

/// The domain event for one change. Titles read as people do: the policy, the facet value,
/// the figure in words and values in its unit (`High error rate: checkout — share where error
/// IS TRUE 7.5 % above 5 % for 5 min`).
fn announce(
    (policy_id, ci): (i64, i64),
    c: &NrqlCondition,
    (policy, figure): &(&str, words::Figure),
    (signal, open): (&str, &[&str]),
    change: Change,
    (start, end): (i64, i64),
) -> lookout_store::Write {
    let subject = Some(format!("{policy_id}:{ci}"));
    let base = json!({"policy_id": policy_id, "condition": ci, "signal": signal,
                      "window_start": start, "window_end": end, "open": open});
    let with = |mut v: Value, extra: Value| {
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    };
    let on = if signal.is_empty() {
        format!("{policy}: ")
    } else {
        format!("{policy}: {signal} — ")
    };
    match change {
        Change::Open {
            priority,
            value,
            since,
        } => {
            let t = c
                .thresholds()
                .into_iter()
                .find(|(p, _)| *p == priority)
                .map(|(_, t)| t);
            let (op, threshold, duration) = t.as_ref().map_or(("", 0.0, 0), |t| {
                (t.operator.words(), t.value, t.duration_seconds())
            });
            let shown = value.map_or("no data".into(), |v| figure.show(v));
            let title = format!(
                "{on}{} {shown} {op} {} for {}",
                figure.name,
                figure.show(threshold),
                lookout_core::units::span(i64::from(duration) * 1000),
            );
            events::publish(
                "nrql.breach",
                None,
                subject,
                &with(
                    base,
                    json!({"priority": priority.as_str(), "value": value, "threshold": threshold,
                           "since": since, "title": title, "nrql": c.nrql}),
                ),
            )
        }
        Change::Close { priority } => events::publish(
            "nrql.recovered",
            None,
            subject,
            &with(base, json!({"priority": priority.as_str()})),
        ),
        Change::Lost { last_seen } => events::publish(
            "nrql.signal_lost",
            None,
            subject,
            &with(
                base,
                json!({"last_seen": last_seen,
                       "title": format!("{on}{}: signal lost (no data since {})", figure.name,
                                        lookout_core::units::datetime_utc(last_seen))}),
            ),
        ),
        Change::Restored => events::publish("nrql.signal_restored", None, subject, &base),
    }
}

/// Checks a condition's query against the executor without reading anything (an empty window
/// at the epoch), so a policy is refused at once when its query cannot run.
pub async fn check(store: &Store, c: &NrqlCondition) -> Result<(), String> {
    c.validate()?;
    let q = c.query()?;
    let w = Window {
        since: 0,
        until: 60_000,
        compare: None,
        bucket: None,
    };
    nrql::execute_alert(store, &[], &q, w, false)
        .await
        .map(|_| ())
        .map_err(|e| format!("nrql: {e}"))
}
