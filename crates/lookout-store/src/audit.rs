//! The audit log: who did what, to what, when and from where. Append-only (nothing here updates
//! or deletes a row but [`delete_before`], the retention job); read newest first with keyset
//! paging on the id.
//!
//! A request's entry can be written in the same transaction as the change it records: the
//! server's audit middleware runs the handler inside [`with_pending`], and the store functions
//! of configuration writes call [`record_pending_in`] before they commit, which takes the entry
//! (once) and inserts it with the change. A crash can then lose neither without the other.
//! Writes whose store functions do not call it are recorded by the middleware after the fact.

use serde_json::Value as Json;
use sqlx::any::AnyRow;
use sqlx::Row;

use std::cell::RefCell;
use std::future::Future;

use crate::page::{Cursor, Page};
use crate::row::RowExt;
use crate::{Result, Store};
use lookout_core::time::now_ms;

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Id (newest is highest).
    pub id: i64,
    /// When, ms.
    pub at: i64,
    /// `user:ID`, `token:ID`, or `email:ADDRESS` for a failed sign-in.
    pub actor: String,
    /// The actor's email or token name at the time.
    pub actor_label: String,
    /// `session.login`, `session.login_failed`, or `METHOD /path/{id}`.
    pub action: String,
    /// The ids the action names, if any.
    pub target: Option<String>,
    /// More about it (never a secret or a request body).
    pub details: Json,
    /// The client's address.
    pub address: Option<String>,
}

/// What to record (the time is now).
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// See [`Entry::actor`].
    pub actor: &'a str,
    /// See [`Entry::actor_label`].
    pub actor_label: &'a str,
    /// See [`Entry::action`].
    pub action: &'a str,
    /// See [`Entry::target`].
    pub target: Option<&'a str>,
    /// See [`Entry::details`].
    pub details: &'a Json,
    /// See [`Entry::address`].
    pub address: Option<&'a str>,
}

/// Appends an entry.
pub async fn record(store: &Store, e: &NewEntry<'_>) -> Result<()> {
    insert(&mut *store.pool().acquire().await?, e).await
}

/// Appends an entry in the caller's transaction: for records a store function makes itself
/// (the SSO sync's team changes), committed with the change they record.
pub async fn record_in(tx: &mut crate::Tx, e: &NewEntry<'_>) -> Result<()> {
    insert(tx, e).await
}

async fn insert(conn: &mut crate::Conn, e: &NewEntry<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, actor_label, action, target, details, address)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now_ms())
    .bind(e.actor)
    .bind(e.actor_label)
    .bind(e.action)
    .bind(e.target)
    .bind(e.details.to_string())
    .bind(e.address)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An entry waiting for the write it records (see the module docs).
#[derive(Debug, Clone)]
pub struct Pending {
    /// See [`Entry::actor`].
    pub actor: String,
    /// See [`Entry::actor_label`].
    pub actor_label: String,
    /// See [`Entry::action`].
    pub action: String,
    /// See [`Entry::target`].
    pub target: Option<String>,
    /// See [`Entry::details`].
    pub details: Json,
    /// See [`Entry::address`].
    pub address: Option<String>,
}

tokio::task_local! {
    /// The entry of the request this task serves, until a write takes it.
    static PENDING: RefCell<Option<Pending>>;
}

/// Runs `f` (a request's handler) with `entry` waiting to be written by the first
/// configuration write that commits; answers `f`'s output and whether a write took the entry.
pub async fn with_pending<F: Future>(entry: Pending, f: F) -> (F::Output, bool) {
    PENDING
        .scope(RefCell::new(Some(entry)), async move {
            let out = f.await;
            let taken = PENDING.with(|p| p.borrow().is_none());
            (out, taken)
        })
        .await
}

/// Inserts the waiting entry, if any, in `tx` (taking it, so it is written once). Outside
/// [`with_pending`] (jobs, config-file sync, tests) there is none and nothing is written.
pub async fn record_pending_in(tx: &mut crate::Tx) -> Result<()> {
    let Some(e) = PENDING.try_with(|p| p.borrow_mut().take()).ok().flatten() else {
        return Ok(());
    };
    let entry = NewEntry {
        actor: &e.actor,
        actor_label: &e.actor_label,
        action: &e.action,
        target: e.target.as_deref(),
        details: &e.details,
        address: e.address.as_deref(),
    };
    let inserted = insert(tx, &entry).await;
    if let Err(err) = inserted {
        // Put it back: if this transaction rolls back, a later write (or the middleware) still
        // records the request.
        let _ = PENDING.try_with(|p| *p.borrow_mut() = Some(e));
        return Err(err);
    }
    Ok(())
}

/// Puts `before` and `after` (a setting's values) in the waiting entry's details, with every
/// secret in them masked (see [`masked`]), then inserts it in `tx` like [`record_pending_in`].
pub async fn record_pending_change_in(
    tx: &mut crate::Tx,
    before: &Json,
    after: &Json,
) -> Result<()> {
    let _ = PENDING.try_with(|p| {
        if let Some(e) = p.borrow_mut().as_mut() {
            e.details = serde_json::json!({ "before": masked(before), "after": masked(after) });
        }
    });
    record_pending_in(tx).await
}

/// Whether a field's name says it holds a secret (`password`, `client_secret`, `token`, `key`…).
fn secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "secret", "token", "key", "credential", "auth"]
        .iter()
        .any(|s| n.contains(s))
}

/// `v` with the value of every secret field (at any depth) replaced by `"********"` (`null`
/// stays `null`, so "was unset, is set" still shows); a sealed string anywhere is masked too.
pub fn masked(v: &Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if secret_field(k) && !v.is_null() {
                        Json::String("********".into())
                    } else {
                        masked(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Json::Array(a) => Json::Array(a.iter().map(masked).collect()),
        Json::String(s) if lookout_core::seal::is_sealed(s) => Json::String("********".into()),
        other => other.clone(),
    }
}

/// Which entries to list; `None` does not filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// At or after, ms.
    pub since: Option<i64>,
    /// Before, ms.
    pub until: Option<i64>,
    /// The actor (`user:3`) or a part of their label (`ada@`).
    pub actor: Option<String>,
    /// A part of the action (`escalation-policies`, `login`).
    pub action: Option<String>,
}

fn entry(r: &AnyRow) -> Result<Entry> {
    Ok(Entry {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        actor_label: r.try_get("actor_label")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        details: r.json("details")?,
        address: r.try_get("address")?,
    })
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_part(s: &str) -> String {
    let mut out = String::from("%");
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Entries newest first; the cursor is the last id seen.
pub async fn list(store: &Store, f: &Filter, cursor: &Cursor) -> Result<Page<Entry>> {
    let limit = cursor.limit();
    let before = cursor.after_i64()?.unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT id, at, actor, actor_label, action, target, details, address FROM audit_log
         WHERE id < $1 AND at >= $2 AND at < $3
           AND ($4 IS NULL OR actor = $4 OR actor_label LIKE $5 ESCAPE '\\')
           AND ($6 IS NULL OR action LIKE $6 ESCAPE '\\')
         ORDER BY id DESC LIMIT $7",
    )
    .bind(before)
    .bind(f.since.unwrap_or(0))
    .bind(f.until.unwrap_or(i64::MAX))
    .bind(f.actor.as_deref())
    .bind(f.actor.as_deref().map(like_part))
    .bind(f.action.as_deref().map(like_part))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    Page::try_from_rows(&rows, limit, entry, |e| e.id.to_string())
}

/// Deletes entries older than `before` (ms); how many (the retention job).
pub async fn delete_before(store: &Store, before: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM audit_log WHERE at < $1")
        .bind(before)
        .execute(store.pool())
        .await?
        .rows_affected())
}
