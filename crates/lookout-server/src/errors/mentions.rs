//! Mentions in issue comments: `@ada@example.com`, `@ada` (a user's name or the part of the
//! email before `@`) and `#payments` (a team). A comment's mentions are resolved when it is
//! written and kept with it, the page links them (to what the person or team is assigned), and
//! each mentioned user (a team: its members) gets an email through the installation's account
//! mail with the comment and a link to it. A name that finds nobody, or more than one user,
//! stays plain text and notifies no one.
//!
//! Finding the mentions in the text is `lookout_protocol::mentions` (fuzzed); this is the lookup,
//! the notification and the page's rendering.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use serde_json::{json, Value};

use crate::service::ServiceResult;
use crate::state::AppState;
use lookout_protocol::mentions::{self, Mentioned, Piece};
use lookout_store::errors::triage::Actor;
use lookout_store::{teams, tenancy};

/// Most people one comment emails (a mentioned team's members count one each).
pub const MAX_RECIPIENTS: usize = 50;

/// A mention that named somebody.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What it named.
    pub what: Mentioned,
    /// `user` or `team`.
    pub kind: &'static str,
    /// The user's or team's id.
    pub id: i64,
    /// How the page shows it (a user's email, `#slug`).
    pub label: String,
    /// Who it notifies: `(user id, email)`.
    pub recipients: Vec<(i64, String)>,
}

impl Resolved {
    /// As kept in the comment's activity entry.
    pub fn stored(&self, text: &str) -> Value {
        json!({"text": text, "type": self.kind, "id": self.id, "label": self.label})
    }
}

/// Looks up whom a comment's mentions name; unknown and ambiguous ones are left out.
pub async fn resolve(state: &AppState, text: &str) -> ServiceResult<Vec<(String, Resolved)>> {
    let found = mentions::pieces(text);
    if found.iter().all(|p| matches!(p, Piece::Text(_))) {
        return Ok(Vec::new());
    }
    let org = tenancy::default_org(state.store()).await?;
    let mut out: Vec<(String, Resolved)> = Vec::new();
    let mut done: BTreeMap<Mentioned, Option<Resolved>> = BTreeMap::new();
    for p in found {
        let Piece::Mention(what, written) = p else {
            continue;
        };
        if !done.contains_key(&what) {
            let r = match &what {
                Mentioned::Email(e) => tenancy::active_user_by_email(state.store(), e)
                    .await?
                    .map(|u| user(what.clone(), &u)),
                Mentioned::Name(n) => {
                    match tenancy::active_users_named(state.store(), n)
                        .await?
                        .as_slice()
                    {
                        [u] => Some(user(what.clone(), u)),
                        // Nobody, or more than one: the mention stays text.
                        _ => None,
                    }
                }
                Mentioned::Team(slug) => match teams::by_slug(state.store(), org.id, slug).await? {
                    Some(t) => Some(Resolved {
                        what: what.clone(),
                        kind: "team",
                        id: t.id,
                        label: format!("#{}", t.slug),
                        recipients: teams::active_members(state.store(), t.id)
                            .await?
                            .into_iter()
                            .map(|m| (m.id, m.email))
                            .collect(),
                    }),
                    None => None,
                },
            };
            done.insert(what.clone(), r);
        }
        if let Some(Some(r)) = done.get(&what) {
            out.push((written.to_string(), r.clone()));
        }
    }
    Ok(out)
}

fn user(what: Mentioned, u: &tenancy::User) -> Resolved {
    Resolved {
        what,
        kind: "user",
        id: u.id,
        label: u.email.clone(),
        recipients: vec![(u.id, u.email.clone())],
    }
}

/// Mention emails one author may cause per [`WINDOW`] (per replica); past it the comment is
/// kept but nobody is emailed, so a member posting comment after comment cannot mail-bomb.
pub const AUTHOR_BUDGET: usize = 30;
/// The window of [`AUTHOR_BUDGET`] and of the one-mail-per-recipient-and-issue rule.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Most comments whose mails wait to be sent; past it a comment's mails are dropped (logged).
pub const MAX_BACKLOG: usize = 100;
/// Mails sent at once by this replica (each opens an SMTP connection).
const CONCURRENT_SENDS: usize = 2;
/// Bound on the in-memory maps (authors, recipient+issue pairs); expired entries go first.
const MAX_TRACKED: usize = 10_000;

/// What the in-memory throttle remembers (per replica, bounded).
#[derive(Default)]
struct Throttle {
    /// Per author: when each of their mention mails in the window was allowed.
    sent_by: HashMap<i64, VecDeque<Instant>>,
    /// Per (recipient, issue): when they were last mailed about it.
    last_mailed: HashMap<(i64, i64), Instant>,
}

static THROTTLE: LazyLock<Mutex<Throttle>> = LazyLock::new(Default::default);
static SENDS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(CONCURRENT_SENDS));
static BACKLOG: AtomicUsize = AtomicUsize::new(0);

impl Throttle {
    /// Which of `to` may be mailed now by `author` about `issue`; records them as mailed.
    /// The second value counts those left out because the author's budget ran out.
    fn admit(
        &mut self,
        author: i64,
        issue: i64,
        to: Vec<(i64, String)>,
        now: Instant,
    ) -> (Vec<(i64, String)>, usize) {
        let fresh = |t: &Instant| now.duration_since(*t) < WINDOW;
        if self.last_mailed.len() >= MAX_TRACKED {
            self.last_mailed.retain(|_, t| fresh(t));
            if self.last_mailed.len() >= MAX_TRACKED {
                self.last_mailed.clear();
            }
        }
        if self.sent_by.len() >= MAX_TRACKED {
            self.sent_by.retain(|_, q| q.back().is_some_and(fresh));
            if self.sent_by.len() >= MAX_TRACKED {
                self.sent_by.clear();
            }
        }
        let q = self.sent_by.entry(author).or_default();
        while q.front().is_some_and(|t| !fresh(t)) {
            q.pop_front();
        }
        let mut ok = Vec::new();
        let mut over = 0;
        for (id, email) in to {
            if self.last_mailed.get(&(id, issue)).is_some_and(fresh) {
                continue;
            }
            if q.len() >= AUTHOR_BUDGET {
                over += 1;
                continue;
            }
            q.push_back(now);
            self.last_mailed.insert((id, issue), now);
            ok.push((id, email));
        }
        (ok, over)
    }
}

/// Emails everyone a comment mentions (not its author), in the background: the comment is
/// already stored, and a slow or missing mail server must not hold up the answer. Returns a
/// notice for the author when some were not emailed (over their budget, or the queue full).
pub fn notify(
    state: &AppState,
    issue_id: i64,
    issue_title: &str,
    activity_id: i64,
    actor: &Actor,
    text: &str,
    resolved: &[(String, Resolved)],
) -> Option<String> {
    let mut to: BTreeMap<i64, String> = BTreeMap::new();
    for (_, r) in resolved {
        for (id, email) in &r.recipients {
            if Some(*id) != actor.user_id && to.len() < MAX_RECIPIENTS {
                to.insert(*id, email.clone());
            }
        }
    }
    if to.is_empty() {
        return None;
    }
    let author = actor.user_id.unwrap_or(-1);
    let (to, over) = THROTTLE.lock().unwrap_or_else(|e| e.into_inner()).admit(
        author,
        issue_id,
        to.into_iter().collect(),
        Instant::now(),
    );
    let notice = (over > 0).then(|| {
        tracing::warn!(issue = issue_id, author, skipped = over, "Mention emails over the author's budget: not sent.");
        format!(
            "Comment saved, but {over} mentioned people were not emailed: at most {AUTHOR_BUDGET} mention emails per author every {} minutes.",
            WINDOW.as_secs() / 60
        )
    });
    if to.is_empty() {
        return notice;
    }
    if BACKLOG.fetch_add(1, Ordering::SeqCst) >= MAX_BACKLOG {
        BACKLOG.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(
            issue = issue_id,
            author,
            recipients = to.len(),
            "Mention emails dropped: the mail queue is full."
        );
        return Some("Comment saved, but nobody was emailed: too many mention emails are waiting to be sent; try again later.".into());
    }
    let link = format!(
        "{}/errors/issues/{issue_id}#activity-{activity_id}",
        state.settings().public_url
    );
    let subject = format!("{} mentioned you on {issue_title}", actor.label);
    let body = format!(
        "{} wrote on \"{issue_title}\":\n\n{text}\n\nReply: {link}\n",
        actor.label
    );
    let html = format!(
        "<p>{} wrote on <strong>{}</strong>:</p><blockquote>{}</blockquote><p><a href=\"{}\">Open the issue</a></p>",
        crate::ui::escape(&actor.label),
        crate::ui::escape(issue_title),
        crate::ui::escape(text).replace('\n', "<br>"),
        crate::ui::escape(&link)
    );
    let state = state.clone();
    tokio::spawn(async move {
        // Holding a permit for the whole comment: at most CONCURRENT_SENDS mails go out at once.
        let _permit = SENDS.acquire().await;
        for (user_id, email) in to {
            match crate::tenancy::links::send_account_mail(
                &state,
                &email,
                &subject,
                body.clone(),
                html.clone(),
            )
            .await
            {
                Ok(true) => {
                    tracing::info!(issue = issue_id, author, user = user_id, "Mention emailed.")
                }
                Ok(false) => {
                    tracing::info!(
                        issue = issue_id,
                        "Mention not emailed: no mail server is set up."
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(issue = issue_id, author, user = user_id, error = %e, "Mention email failed.")
                }
            }
        }
        BACKLOG.fetch_sub(1, Ordering::SeqCst);
    });
    notice
}

/// A comment cut into text and links for the page: `(text, link)` pieces, a mention linked to
/// the issues assigned to whom it names, as stored with the comment (`data.mentions`).
pub fn linked(text: &str, stored: Option<&Value>) -> Vec<(String, Option<String>)> {
    let known: BTreeMap<&str, (&str, &str)> = stored
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some((
                m.get("text")?.as_str()?,
                (m.get("type")?.as_str()?, m.get("label")?.as_str()?),
            ))
        })
        .collect();
    mentions::pieces(text)
        .into_iter()
        .map(|p| match p {
            Piece::Mention(_, t) => match known.get(t) {
                Some((_, label)) => (
                    t.to_string(),
                    Some(format!(
                        "/errors?query={}",
                        crate::ui::urlencode(&format!("assigned:{label}"))
                    )),
                ),
                None => (t.to_string(), None),
            },
            Piece::Text(t) => (t.to_string(), None),
        })
        .collect()
}
