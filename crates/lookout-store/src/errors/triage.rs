//! Triage: who an issue is assigned to (a user or a team), its activity stream (assignments and
//! comments), the "assigned to" filters of the issue list, and per-project ownership rules with
//! the auto-assignment of new issues the processor does through them.
//!
//! Every change writes the issue, its activity row and the `issue.assigned` announcement in one
//! transaction: nothing claims an assignment the database does not hold.

use serde::Serialize;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::row::RowExt;
use crate::writer::Write;
use crate::{events, Result, Store, StoreError};
use lookout_core::time::now_ms;
use lookout_protocol::ownership::{self, Owner, Rules, Subject};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Who an issue is assigned to.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Assignee {
    /// A user.
    User {
        /// User id.
        id: i64,
        /// Their email.
        email: String,
        /// Their display name.
        name: Option<String>,
    },
    /// A team.
    Team {
        /// Team id.
        id: i64,
        /// `#slug` names it.
        slug: String,
        /// Display name.
        name: String,
    },
}

impl Assignee {
    /// Sentry's actor id: `user:ID` or `team:ID`.
    pub fn actor_id(&self) -> String {
        match self {
            Assignee::User { id, .. } => format!("user:{id}"),
            Assignee::Team { id, .. } => format!("team:{id}"),
        }
    }

    /// How people read it: the name or email, or `#slug`.
    pub fn label(&self) -> String {
        match self {
            Assignee::User { email, name, .. } => name.clone().unwrap_or_else(|| email.clone()),
            Assignee::Team { slug, .. } => format!("#{slug}"),
        }
    }
}

/// An assignment target before it is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A user by id.
    User(i64),
    /// A team by id.
    Team(i64),
}

/// Reads the assignee columns [`super::ISSUE_COLUMNS`] selects.
pub(crate) fn assignee_from_row(r: &AnyRow) -> Result<Option<Assignee>> {
    if let Some(id) = r.try_get::<Option<i64>, _>("assignee_user_id")? {
        return Ok(Some(Assignee::User {
            id,
            email: r
                .try_get::<Option<String>, _>("assignee_email")?
                .unwrap_or_default(),
            name: r.try_get("assignee_name")?,
        }));
    }
    if let Some(id) = r.try_get::<Option<i64>, _>("assignee_team_id")? {
        return Ok(Some(Assignee::Team {
            id,
            slug: r
                .try_get::<Option<String>, _>("assignee_slug")?
                .unwrap_or_default(),
            name: r
                .try_get::<Option<String>, _>("assignee_team_name")?
                .unwrap_or_default(),
        }));
    }
    Ok(None)
}

/// The issue list's assignment filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignedFilter {
    /// Assigned to this user (`assigned:me`, `assigned:ada@example.com`).
    User(i64),
    /// Assigned to this team (`assigned:#backend`).
    Team(i64),
    /// Assigned to a team this user belongs to (`assigned:my_teams`).
    TeamsOf(i64),
    /// Assigned to nobody (`is:unassigned`).
    Nobody,
    /// Assigned to somebody (`is:assigned`).
    Anybody,
}

/// The SQL condition for a filter, naming the parameter `$9`, and the value to bind to it.
pub(crate) fn filter_sql(f: Option<&AssignedFilter>) -> (&'static str, Option<i64>) {
    match f {
        None => ("($9 IS NULL)", None),
        Some(AssignedFilter::User(id)) => ("i.assignee_user_id = $9", Some(*id)),
        Some(AssignedFilter::Team(id)) => ("i.assignee_team_id = $9", Some(*id)),
        Some(AssignedFilter::TeamsOf(id)) => (
            "i.assignee_team_id IN (SELECT tm.team_id FROM team_members tm WHERE tm.user_id = $9)",
            Some(*id),
        ),
        Some(AssignedFilter::Nobody) => (
            "($9 IS NULL AND i.assignee_user_id IS NULL AND i.assignee_team_id IS NULL)",
            None,
        ),
        Some(AssignedFilter::Anybody) => (
            "($9 IS NULL AND (i.assignee_user_id IS NOT NULL OR i.assignee_team_id IS NOT NULL))",
            None,
        ),
    }
}

/// Who did something on an issue.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user, if a user did it.
    pub user_id: Option<i64>,
    /// Their email, a token's name, or `ownership rules`.
    pub label: String,
}

/// One entry of an issue's activity stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Activity {
    /// Numeric id.
    pub id: i64,
    /// `assigned`, `auto_assigned`, `unassigned` or `note`.
    pub kind: String,
    /// The user who did it, if a user did.
    pub user_id: Option<i64>,
    /// Who did it, as they were called then.
    pub actor: String,
    /// `{"text"}` for a note, `{"assignee", "label"}` for an assignment.
    pub data: Value,
    /// When, ms.
    pub created_at: i64,
}

/// Longest comment, in bytes.
pub const MAX_NOTE_BYTES: usize = 10_000;
/// Most activity entries an issue page or API answer shows (newest ones).
pub const MAX_ACTIVITY: i64 = 200;

async fn lookup(tx: &mut Transaction<'static, Any>, t: Target) -> Result<Assignee> {
    match t {
        Target::User(id) => {
            let r = sqlx::query("SELECT id, email, name FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            Ok(Assignee::User {
                id,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
            })
        }
        Target::Team(id) => {
            let r = sqlx::query("SELECT id, slug, name FROM teams WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            Ok(Assignee::Team {
                id,
                slug: r.try_get("slug")?,
                name: r.try_get("name")?,
            })
        }
    }
}

/// Why [`assign`] refused.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    /// No such issue.
    #[error("issue not found")]
    Issue,
    /// No such user or team.
    #[error("the assignee does not exist")]
    Assignee,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Assigns an issue (`None`: unassigns it), records it in the activity stream and announces
/// `issue.assigned`. Assigning to the current assignee changes and records nothing.
pub async fn assign(
    store: &Store,
    issue_id: i64,
    to: Option<Target>,
    actor: &Actor,
) -> std::result::Result<super::Issue, AssignError> {
    assign_with_status(store, issue_id, to, actor, None).await
}

/// Assigns an issue and, when asked, changes its status, in one transaction: a refused
/// assignee changes nothing (Sentry's `PUT /issues/{id}/` sends both in one request).
pub async fn assign_with_status(
    store: &Store,
    issue_id: i64,
    to: Option<Target>,
    actor: &Actor,
    status: Option<super::StatusChange>,
) -> std::result::Result<super::Issue, AssignError> {
    let not_found = |e| match e {
        StoreError::NotFound => AssignError::Issue,
        e => e.into(),
    };
    let issue = super::get_issue(store, issue_id).await.map_err(not_found)?;
    let mut tx = store.begin_write().await?;
    let mut anns = Vec::new();
    let assignee = assignee_of(&mut tx, to).await?;
    anns.extend(assign_in(&mut tx, issue_id, to, assignee.as_ref(), actor, "assigned").await?);
    if let Some(c) = status {
        anns.push(super::set_status_in(&mut tx, &issue, c).await?);
    }
    if anns.is_empty() {
        tx.rollback().await.map_err(StoreError::from)?;
    } else {
        events::publish_in_tx(store, &mut tx, &anns).await?;
        tx.commit().await.map_err(StoreError::from)?;
    }
    super::get_issue(store, issue_id).await.map_err(not_found)
}

/// Most issues one bulk assignment may name (the issue list shows at most this many a page).
pub const MAX_BULK_ISSUES: usize = 100;

/// Assigns several issues (`None`: unassigns them) in one transaction: an unknown issue or
/// assignee changes none of them. Returns how many changed (those already so assigned do not).
pub async fn assign_many(
    store: &Store,
    issue_ids: &[i64],
    to: Option<Target>,
    actor: &Actor,
) -> std::result::Result<usize, AssignError> {
    let mut tx = store.begin_write().await?;
    let mut anns = Vec::new();
    // The assignee is the same for every issue: looked up once, not once per issue.
    let assignee = assignee_of(&mut tx, to).await?;
    for id in issue_ids {
        anns.extend(assign_in(&mut tx, *id, to, assignee.as_ref(), actor, "assigned").await?);
    }
    let changed = anns.len();
    if anns.is_empty() {
        tx.rollback().await.map_err(StoreError::from)?;
    } else {
        events::publish_in_tx(store, &mut tx, &anns).await?;
        tx.commit().await.map_err(StoreError::from)?;
    }
    Ok(changed)
}

/// The user or team `to` names (`None`: unassigning); unknown: [`AssignError::Assignee`].
async fn assignee_of(
    tx: &mut Transaction<'static, Any>,
    to: Option<Target>,
) -> std::result::Result<Option<Assignee>, AssignError> {
    match to {
        Some(t) => Ok(Some(lookup(tx, t).await.map_err(|e| match e {
            StoreError::NotFound => AssignError::Assignee,
            e => e.into(),
        })?)),
        None => Ok(None),
    }
}

/// [`assign`] inside a transaction; the announcement to publish with it, if anything changed.
/// `assignee` is what [`assignee_of`] found for `to`. `kind` names the activity (`assigned`, or
/// `auto_assigned` for ownership rules).
async fn assign_in(
    tx: &mut Transaction<'static, Any>,
    issue_id: i64,
    to: Option<Target>,
    assignee: Option<&Assignee>,
    actor: &Actor,
    kind: &str,
) -> std::result::Result<Option<Write>, AssignError> {
    let row = sqlx::query(
        "SELECT project_id, assignee_user_id, assignee_team_id FROM issues WHERE id = $1",
    )
    .bind(issue_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::from)?
    .ok_or(AssignError::Issue)?;
    let project_id: i64 = row.try_get("project_id").map_err(StoreError::from)?;
    let current = match (
        row.try_get::<Option<i64>, _>("assignee_user_id")
            .map_err(StoreError::from)?,
        row.try_get::<Option<i64>, _>("assignee_team_id")
            .map_err(StoreError::from)?,
    ) {
        (Some(u), _) => Some(Target::User(u)),
        (None, Some(t)) => Some(Target::Team(t)),
        _ => None,
    };
    if current == to {
        return Ok(None);
    }
    let (user, team) = match to {
        Some(Target::User(u)) => (Some(u), None),
        Some(Target::Team(t)) => (None, Some(t)),
        None => (None, None),
    };
    sqlx::query("UPDATE issues SET assignee_user_id = $1, assignee_team_id = $2 WHERE id = $3")
        .bind(user)
        .bind(team)
        .bind(issue_id)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from)?;
    let data = match assignee {
        Some(a) => json!({"assignee": a.actor_id(), "label": a.label()}),
        None => json!({}),
    };
    let kind = if assignee.is_some() {
        kind
    } else {
        "unassigned"
    };
    insert_activity(tx, issue_id, kind, actor, &data).await?;
    let ann = events::publish(
        "issue.assigned",
        Some(project_id),
        Some(issue_id.to_string()),
        &json!({"issue_id": issue_id, "assignee": assignee.map(Assignee::actor_id),
                "by": actor.label}),
    );
    Ok(Some(ann))
}

async fn insert_activity(
    tx: &mut Transaction<'static, Any>,
    issue_id: i64,
    kind: &str,
    actor: &Actor,
    data: &Value,
) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO issue_activity (issue_id, kind, actor_user_id, actor_label, data, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(issue_id)
    .bind(kind)
    .bind(actor.user_id)
    .bind(&actor.label)
    .bind(data.to_string())
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?)
}

/// Adds a comment to an issue's activity stream, with whom it mentions (`[{"text": "@ada",
/// "type": "user"|"team", "id", "label"}]`, kept so the page links exactly those, as they were
/// when written); NotFound for an unknown issue.
pub async fn add_note(
    store: &Store,
    issue_id: i64,
    actor: &Actor,
    text: &str,
    mentions: &[Value],
) -> Result<Activity> {
    let mut tx = store.begin_write().await?;
    sqlx::query("SELECT id FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut data = json!({ "text": text });
    if !mentions.is_empty() {
        data["mentions"] = Value::Array(mentions.to_vec());
    }
    let id = insert_activity(&mut tx, issue_id, "note", actor, &data).await?;
    tx.commit().await?;
    let row = sqlx::query(&format!(
        "SELECT {ACTIVITY_COLUMNS} FROM issue_activity WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(store.pool())
    .await?;
    activity_from_row(&row)
}

const ACTIVITY_COLUMNS: &str = "id, kind, actor_user_id, actor_label, data, created_at";

fn activity_from_row(r: &AnyRow) -> Result<Activity> {
    Ok(Activity {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        user_id: r.try_get("actor_user_id")?,
        actor: r.try_get("actor_label")?,
        data: r.json("data")?,
        created_at: r.try_get("created_at")?,
    })
}

/// An issue's activity, oldest first (the newest [`MAX_ACTIVITY`] entries).
pub async fn activity(store: &Store, issue_id: i64) -> Result<Vec<Activity>> {
    let rows = sqlx::query(&format!(
        "SELECT {ACTIVITY_COLUMNS} FROM issue_activity WHERE issue_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(issue_id)
    .bind(MAX_ACTIVITY)
    .fetch_all(store.pool())
    .await?;
    let mut out = rows
        .iter()
        .map(activity_from_row)
        .collect::<Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// A project's ownership rules as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredRules {
    /// The rules as written.
    pub raw: String,
    /// Whether new issues are assigned to their owners.
    pub auto_assign: bool,
    /// Last saved, ms.
    pub updated_at: i64,
}

/// A project's ownership rules (empty when none were saved).
pub async fn ownership(store: &Store, project_id: i64) -> Result<StoredRules> {
    let row = sqlx::query(
        "SELECT raw, auto_assign, updated_at FROM ownership_rules WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(match row {
        Some(r) => StoredRules {
            raw: r.try_get("raw")?,
            auto_assign: r.flag("auto_assign")?,
            updated_at: r.try_get("updated_at")?,
        },
        None => StoredRules {
            raw: String::new(),
            auto_assign: true,
            updated_at: 0,
        },
    })
}

/// Every project's saved ownership rules text, by project id (to find rules naming a team).
pub async fn ownership_texts(store: &Store) -> Result<Vec<(i64, String)>> {
    sqlx::query("SELECT project_id, raw FROM ownership_rules ORDER BY project_id")
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("project_id")?, r.try_get("raw")?)))
        .collect()
}

/// Saves a project's ownership rules (the caller parsed them already).
pub async fn save_ownership(
    store: &Store,
    project_id: i64,
    raw: &str,
    auto_assign: bool,
) -> Result<StoredRules> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO ownership_rules (project_id, raw, auto_assign, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id) DO UPDATE SET raw = excluded.raw, auto_assign = excluded.auto_assign,
           updated_at = excluded.updated_at",
    )
    .bind(project_id)
    .bind(raw)
    .bind(i64::from(auto_assign))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    crate::commit_audited(tx).await?;
    ownership(store, project_id).await
}

/// Compiled rules by project, kept across batches: parsing and compiling 500 rules costs far more
/// than matching, so it happens once per saved text, not once per batch.
type Compiled = (String, Option<Arc<Rules>>);
static COMPILED: Mutex<Option<HashMap<i64, Compiled>>> = Mutex::new(None);
/// Projects whose compiled rules are kept; past it the map starts over.
const COMPILED_PROJECTS: usize = 1000;

/// The compiled auto-assign rules of a batch's projects, read before the processor's write
/// transaction: matching 500 rules against an event's frames and tags is CPU work that must not
/// hold the single write turn, so it happens here and the transaction only looks the chosen
/// owners up and assigns.
#[derive(Default)]
pub(crate) struct OwnerMatcher {
    rules: HashMap<i64, Option<Arc<Rules>>>,
}

impl OwnerMatcher {
    /// Loads the rules of `projects` (those that auto-assign), compiled once per saved text.
    /// Unreadable stored rules (saved by an older version) match nothing and are logged.
    pub(crate) async fn load(
        store: &Store,
        projects: impl IntoIterator<Item = i64>,
    ) -> Result<OwnerMatcher> {
        let mut m = OwnerMatcher::default();
        for project_id in projects {
            if m.rules.contains_key(&project_id) {
                continue;
            }
            let row = sqlx::query(
                "SELECT raw FROM ownership_rules WHERE project_id = $1 AND auto_assign = 1",
            )
            .bind(project_id)
            .fetch_optional(store.pool())
            .await?;
            let rules = match row {
                Some(r) => compiled(project_id, r.try_get("raw")?),
                None => None,
            };
            m.rules.insert(project_id, rules);
        }
        Ok(m)
    }

    /// Whether a project has rules to match at all (most have none: nothing to do).
    pub(crate) fn has_rules(&self, project_id: i64) -> bool {
        matches!(self.rules.get(&project_id), Some(Some(_)))
    }

    /// The owners of the last rule an event matches, in the rule's order.
    pub(crate) fn owners(&self, project_id: i64, subject: &Subject) -> Option<Vec<Owner>> {
        let Some(Some(rules)) = self.rules.get(&project_id) else {
            return None;
        };
        let (owners, work) = rules.owners_counted(subject);
        if work.gave_up {
            tracing::warn!(
                project = project_id,
                "Ownership rules too costly for this event; matched what was scanned."
            );
        }
        owners.map(<[Owner]>::to_vec)
    }
}

/// A project's rules compiled, from the process-wide cache when its text has not changed.
fn compiled(project_id: i64, raw: String) -> Option<Arc<Rules>> {
    let cached = COMPILED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(&project_id).cloned())
        .filter(|(v, _)| *v == raw);
    if let Some((_, rules)) = cached {
        return rules;
    }
    let rules = match ownership::parse(&raw) {
        Ok(rules) => Some(Arc::new(rules)),
        Err(e) => {
            tracing::warn!(project = project_id, error = %e, "Ownership rules do not parse; nothing auto-assigned.");
            None
        }
    };
    let mut g = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    let m = g.get_or_insert_with(HashMap::new);
    if m.len() >= COMPILED_PROJECTS {
        m.clear();
    }
    m.insert(project_id, (raw, rules.clone()));
    rules
}

/// Assigns a new issue to the first of `owners` (matched before the transaction) that still
/// exists, in the transaction that creates the issue, so an alert policy that notifies owners
/// finds the owner when it reads `issue.created`. Returns the announcement for the processor to
/// publish with its batch.
pub(crate) async fn assign_to_owners(
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    issue_id: i64,
    owners: &[Owner],
) -> Result<Option<Write>> {
    for owner in owners {
        let found = match owner {
            Owner::Team(slug) => sqlx::query(
                "SELECT t.id FROM teams t JOIN projects p ON p.org_id = t.org_id
                 WHERE p.id = $1 AND t.slug = $2",
            )
            .bind(project_id)
            .bind(slug.to_ascii_lowercase())
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("id").map(Target::Team))
            .transpose()?,
            Owner::Email(email) => {
                sqlx::query("SELECT id FROM users WHERE email = $1 AND status = 'active'")
                    .bind(email.to_ascii_lowercase())
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(|r| r.try_get("id").map(Target::User))
                    .transpose()?
            }
        };
        if let Some(target) = found {
            let actor = Actor {
                user_id: None,
                label: "ownership rules".into(),
            };
            let assignee = match assignee_of(tx, Some(target)).await {
                Ok(a) => a,
                Err(AssignError::Store(e)) => return Err(e),
                Err(_) => continue,
            };
            match assign_in(
                tx,
                issue_id,
                Some(target),
                assignee.as_ref(),
                &actor,
                "auto_assigned",
            )
            .await
            {
                Ok(ann) => return Ok(ann),
                Err(AssignError::Store(e)) => return Err(e),
                Err(_) => continue,
            }
        }
    }
    Ok(None)
}

/// The escalation policy of the team an issue is assigned to, if it has one ("notify owners").
pub async fn owner_escalation_policy(conn: &mut crate::Conn, issue_id: i64) -> Result<Option<i64>> {
    Ok(sqlx::query(
        "SELECT t.escalation_policy_id FROM issues i JOIN teams t ON t.id = i.assignee_team_id
         WHERE i.id = $1",
    )
    .bind(issue_id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| r.try_get::<Option<i64>, _>("escalation_policy_id"))
    .transpose()?
    .flatten())
}
