//! The incident engine: signals in, incidents, timeline entries and queued pages out.
//!
//! Every entry point works inside a write transaction supplied by the caller (an API request, an
//! inbound integration, the policy consumer, the timer loop), so the incident change, its timeline
//! entries and the pages it queues commit together. Whom to page is decided here, at the moment a
//! rule fires: users through their contact methods for the incident's urgency, schedules through
//! whoever is on call then, channels directly.

use serde_json::{json, Value};

use lookout_oncall::dedup::Urgency;
use lookout_oncall::escalation::{Clock, Status, Step, DEFAULT_ACK_TIMEOUT_MS};
use lookout_oncall::inbound::{Action, Signal};
use lookout_oncall::{EscalationPolicy, Schedule, TargetKind};
use lookout_store::alerting::incident_ops;
use lookout_store::alerting::incidents::{self, ClockCols, IncidentRow, NewIncident};
use lookout_store::alerting::outbox::{self, Page};
use lookout_store::alerting::rules;
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::{Conn, Result, StoreError, Tx};

/// Where a signal came from and what the incident it opens inherits.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Organization.
    pub org_id: i64,
    /// `policy:<id>` or `integration:<id>`: dedup keys are unique within it.
    pub scope: String,
    /// The alert policy, when one matched.
    pub policy_id: Option<i64>,
    /// The integration, when one received it.
    pub integration_id: Option<i64>,
    /// Who gets paged.
    pub escalation_policy_id: Option<i64>,
    /// The runbook to attach.
    pub runbook_id: Option<i64>,
    /// The service it concerns.
    pub service: Option<String>,
    /// A fixed urgency; none means from severity (critical/error high, warning/info low).
    pub urgency: Option<Urgency>,
    /// Who, for the timeline (`integration:<name>`, `policy:<name>`).
    pub actor: String,
    /// Whether a repeat trigger on an open incident counts as another alert (PagerDuty events
    /// do; Alertmanager's resends of the same alert do not).
    pub count_repeats: bool,
    /// The monitor or issue behind the signal (`monitor:7`), for auto-resolve on recovery.
    pub signal_ref: Option<String>,
}

/// What a signal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Opened incident `id`.
    Opened(i64),
    /// Joined the open incident `id`.
    Joined(i64),
    /// Acknowledged `id`.
    Acknowledged(i64),
    /// Resolved `id`.
    Resolved(i64),
    /// Nothing to do (no open incident with that key, or already in that state).
    Ignored,
}

/// Applies one signal. `dedup_key` must be set (the caller makes one up for keyless triggers).
pub async fn apply(tx: &mut Tx, origin: &Origin, signal: &Signal, now: i64) -> Result<Applied> {
    let key = signal.dedup_key.clone().unwrap_or_default();
    match signal.action {
        Action::Trigger => trigger(tx, origin, signal, &key, now).await,
        Action::Acknowledge | Action::Resolve => {
            let Some(open) = incidents::find_open(tx, &origin.scope, &key).await? else {
                return Ok(Applied::Ignored);
            };
            transition(tx, open.id, signal.action, &origin.actor, now).await
        }
    }
}

async fn trigger(
    tx: &mut Tx,
    origin: &Origin,
    signal: &Signal,
    key: &str,
    now: i64,
) -> Result<Applied> {
    let urgency = origin.urgency.unwrap_or(signal.severity.urgency());
    let policy = match origin.escalation_policy_id {
        Some(id) => escalation_policy(tx, id).await?,
        None => None,
    };
    let clock = policy
        .as_ref()
        .map(|(p, _)| Clock::trigger(p, urgency == Urgency::High, now).0);
    let runbook = match origin.runbook_id {
        Some(id) => astore::runbook_get_in(tx, id, None)
            .await
            .ok()
            .map(|r| (r.id, r.version)),
        None => None,
    };
    let mut details = signal.details.clone();
    if !signal.links.is_empty() {
        details["links"] = json!(signal.links);
    }
    let new = NewIncident {
        org_id: origin.org_id,
        scope: origin.scope.clone(),
        dedup_key: key.to_string(),
        title: signal.title.clone(),
        urgency: urgency.as_str().into(),
        severity: signal.severity.as_str().into(),
        service: origin.service.clone(),
        source: signal.source.clone(),
        policy_id: origin.policy_id,
        integration_id: origin.integration_id,
        escalation_policy_id: policy.as_ref().and(origin.escalation_policy_id),
        runbook,
        next_escalation_at: clock.and_then(|c| c.next_escalation_at),
        details,
        at: now,
    };
    let (inc, created) = incidents::open_or_find(tx, &new).await?;
    if let Some(r) = &origin.signal_ref {
        incidents::open_signal(tx, inc.id, r).await?;
    }
    if !created {
        // An event for an incident merged into this one is always another alert here: it came
        // from elsewhere, whatever its sender's habit of resending.
        let merged = inc.scope != origin.scope || inc.dedup_key != key;
        if origin.count_repeats || origin.signal_ref.is_some() || merged {
            incidents::add_alert(tx, inc.id, now).await?;
            let msg = match (&origin.signal_ref, merged) {
                (Some(r), _) => format!("Another alert joined: {} ({r})", signal.title),
                (None, true) => format!(
                    "Another alert joined: {} (key {key} of a merged incident)",
                    signal.title
                ),
                (None, false) => format!("Another alert joined: {}", signal.title),
            };
            incidents::log(tx, inc.id, now, "alert", &origin.actor, &msg, None).await?;
        }
        return Ok(Applied::Joined(inc.id));
    }
    incidents::log(
        tx,
        inc.id,
        now,
        "triggered",
        &origin.actor,
        &format!(
            "Triggered ({} urgency, {}): {}",
            urgency.as_str(),
            signal.severity.as_str(),
            signal.title
        ),
        Some(&json!({"dedup_key": key, "source": signal.source})),
    )
    .await?;
    match &policy {
        Some((p, _)) => page_rule(tx, &inc, p, 0, 0, "triggered", now).await?,
        None => {
            let why = match origin.escalation_policy_id {
                Some(ep) => unused_policy(tx, ep).await?,
                None => "No escalation policy: nobody was paged.".to_string(),
            };
            incidents::log(tx, inc.id, now, "unrouted", "system", &why, None).await?;
        }
    }
    Ok(Applied::Opened(inc.id))
}

/// Moves open incident `id` to `severity` (a query condition's warning and critical are one
/// incident whose priority rises and falls): the severity, the urgency unless `fixed` (the
/// policy's own), and the title, with a timeline entry. When the urgency rises to high on an
/// incident nobody acknowledged, the current escalation rule is paged again: whoever holds it
/// was reached through their low-urgency contact methods. False when nothing changed.
pub async fn reprioritise(
    tx: &mut Tx,
    id: i64,
    (severity, fixed): (lookout_oncall::dedup::Severity, Option<Urgency>),
    title: &str,
    actor: &str,
    now: i64,
) -> Result<bool> {
    let inc = incidents::lock(tx, id).await?;
    let urgency = fixed.unwrap_or(severity.urgency());
    if inc.status == "resolved" || (inc.severity == severity.as_str() && inc.title == title) {
        return Ok(false);
    }
    let was = lookout_oncall::dedup::Severity::parse(&inc.severity);
    incidents::set_priority(tx, id, (severity.as_str(), urgency.as_str()), title, now).await?;
    if was != Some(severity) {
        let verb = if was.is_some_and(|w| w > severity) {
            "lowered"
        } else {
            "raised"
        };
        incidents::log(
            tx,
            id,
            now,
            "priority",
            actor,
            &format!(
                "Priority {verb} to {} ({} urgency): {title}",
                severity.as_str(),
                urgency.as_str()
            ),
            None,
        )
        .await?;
    }
    if inc.urgency == "high" && urgency == Urgency::Low && inc.status == "triggered" {
        // Low urgency does not escalate: the timer set at high urgency stops.
        let lowered = incidents::lock(tx, id).await?;
        let mut clock = clock_of(&lowered);
        clock.next_escalation_at = None;
        if !save(tx, &lowered, &clock, now).await? {
            return Err(StoreError::Conflict("incident changed meanwhile".into()));
        }
    }
    let woke = inc.urgency == "low" && urgency == Urgency::High && inc.status == "triggered";
    if let (true, Some(ep)) = (woke, inc.escalation_policy_id) {
        if let Some((p, _)) = escalation_policy(tx, ep).await? {
            // A low-urgency incident does not escalate; at high urgency its timer starts now.
            let raised = incidents::lock(tx, id).await?;
            let mut clock = clock_of(&raised);
            if clock.next_escalation_at.is_none() && clock.rule == 0 && clock.lap == 0 {
                clock.next_escalation_at = Clock::trigger(&p, true, now).0.next_escalation_at;
            }
            if !save(tx, &raised, &clock, now).await? {
                return Err(StoreError::Conflict("incident changed meanwhile".into()));
            }
            page_rule(
                tx,
                &raised,
                &p,
                clock.rule,
                clock.lap,
                "priority_raised",
                now,
            )
            .await?;
        }
    }
    Ok(true)
}

/// Routes open incident `id`, which pages nobody, to escalation policy `ep`: a policy that
/// pages somebody matched the problem after one that pages nobody opened the incident. An
/// unacknowledged incident starts at the first rule and pages it now. False when the incident
/// already has a policy, is resolved, or `ep` is gone.
pub async fn adopt_escalation(
    tx: &mut Tx,
    id: i64,
    ep: i64,
    actor: &str,
    now: i64,
) -> Result<bool> {
    let inc = incidents::lock(tx, id).await?;
    if inc.escalation_policy_id.is_some() || inc.status == "resolved" {
        return Ok(false);
    }
    let Some((p, _)) = escalation_policy(tx, ep).await? else {
        return Ok(false);
    };
    incidents::set_escalation_policy(tx, id, ep, now).await?;
    let name = astore::spec_get_in(tx, SpecTable::EscalationPolicies, ep)
        .await
        .map(|r| r.name)
        .unwrap_or_else(|_| format!("escalation policy {ep}"));
    incidents::log(
        tx,
        id,
        now,
        "routed",
        actor,
        &format!("Routed to {name}: a policy that pages somebody matched the same problem"),
        None,
    )
    .await?;
    let inc = incidents::lock(tx, id).await?;
    if inc.status == "triggered" {
        let mut clock = clock_of(&inc);
        clock.rule = 0;
        clock.lap = 0;
        clock.next_escalation_at = Clock::trigger(&p, clock.high_urgency, now)
            .0
            .next_escalation_at;
        if !save(tx, &inc, &clock, now).await? {
            return Err(StoreError::Conflict("incident changed meanwhile".into()));
        }
        page_rule(tx, &inc, &p, 0, 0, "triggered", now).await?;
    }
    Ok(true)
}

/// Acknowledges or resolves incident `id` on behalf of `actor`.
pub async fn transition(
    tx: &mut Tx,
    id: i64,
    action: Action,
    actor: &str,
    now: i64,
) -> Result<Applied> {
    let inc = incidents::lock(tx, id).await?;
    let mut clock = clock_of(&inc);
    let ack_timeout = match inc.escalation_policy_id {
        Some(id) => escalation_policy(tx, id).await?.and_then(|(_, t)| t),
        None => None,
    };
    let (changed, kind, event) = match action {
        Action::Acknowledge => (
            clock.acknowledge(now, ack_timeout),
            "acknowledged",
            "acknowledged",
        ),
        Action::Resolve => (clock.resolve(), "resolved", "resolved"),
        Action::Trigger => return Ok(Applied::Ignored),
    };
    if !changed {
        return Ok(Applied::Ignored);
    }
    let status = clock.status.as_str();
    let new = ClockCols {
        status,
        rule_index: clock.rule as i64,
        lap: i64::from(clock.lap),
        next_escalation_at: clock.next_escalation_at,
        ack_until: clock.ack_until,
    };
    if !incidents::save_clock(tx, id, &inc.clock(), &new, now).await? {
        return Err(StoreError::Conflict("incident changed meanwhile".into()));
    }
    if action == Action::Resolve && inc.snoozed_until.is_some() {
        incident_ops::set_snooze(tx, id, None, now).await?;
    }
    let msg = match (action, clock.ack_until) {
        (Action::Acknowledge, Some(t)) => format!(
            "Acknowledged; triggers again {} unless resolved",
            lookout_core::time::iso(t)
        ),
        (Action::Acknowledge, None) => "Acknowledged".to_string(),
        _ => "Resolved".to_string(),
    };
    incidents::log(tx, id, now, kind, actor, &msg, None).await?;
    // Whoever was paged hears that it is handled.
    let mut pages = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for n in outbox::for_incident_in(tx, id).await? {
        // A notification rule's later step not sent yet was never heard: it is skipped, and
        // its channel is not told the incident is handled.
        let unheard = n.status != "sent" && n.data["delay_minutes"].as_i64().unwrap_or(0) > 0;
        if !unheard && seen.insert((n.channel_id, n.user_id)) {
            pages.push(Page {
                idempotency_key: format!("{id}:{event}:{now}:{}", n.channel_id),
                incident_id: id,
                channel_id: n.channel_id,
                user_id: n.user_id,
                event: event.into(),
                data: json!({"actor": actor}),
                delay_ms: 0,
            });
        }
    }
    outbox::enqueue(tx, &pages, now).await?;
    let status = if action == Action::Acknowledge {
        "acknowledged"
    } else {
        "resolved"
    };
    cancel_delayed(tx, id, status, actor, now).await?;
    Ok(match action {
        Action::Acknowledge => Applied::Acknowledged(id),
        _ => Applied::Resolved(id),
    })
}

/// How long a notification rule's "minute" is, ms: 60 000, unless the test-only
/// `LOOKOUT_TEST_RULE_MINUTE_MS` says otherwise (the e2e tests run delays at seconds scale;
/// never set it in production).
fn rule_minute_ms() -> i64 {
    static MINUTE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *MINUTE.get_or_init(|| {
        std::env::var("LOOKOUT_TEST_RULE_MINUTE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|ms: &i64| *ms > 0)
            .unwrap_or(60_000)
    })
}

/// Whether a notification rule's later step of `event` is moot once the incident is `status`:
/// a page about the incident once it is not triggered any more, a responder request once the
/// incident is resolved (the request asks for help whether or not someone acknowledged).
pub fn delayed_page_moot(event: &str, status: &str) -> bool {
    if event == "responder_request" {
        status == "resolved"
    } else {
        status != "triggered"
    }
}

/// Skips incident `id`'s notification-rule steps still waiting for their delay that are moot
/// now that it is `status` (see [`delayed_page_moot`]), inside the transaction of the change
/// (acknowledge, resolve, reassign, snooze), with one timeline entry saying how many. Without
/// this a later trigger (a reassignment, a snooze that ends) would revive an earlier
/// assignee's pending steps. Returns how many were skipped.
pub async fn cancel_delayed(
    tx: &mut Tx,
    id: i64,
    status: &str,
    actor: &str,
    now: i64,
) -> Result<usize> {
    let mut skipped = 0;
    for n in outbox::for_incident_in(tx, id).await? {
        let delayed = n.data["delay_minutes"].as_i64().unwrap_or(0) > 0;
        if n.status == "pending"
            && delayed
            && delayed_page_moot(&n.event, status)
            && outbox::skip_pending(tx, n.id, crate::alerting::deliver::HANDLED, now).await?
        {
            skipped += 1;
        }
    }
    if skipped > 0 {
        let msg = format!(
            "{skipped} notification rule step{} waiting for its delay cancelled",
            if skipped == 1 { "" } else { "s" }
        );
        let data = json!({"skipped": skipped});
        incidents::log(tx, id, now, "pages_cancelled", actor, &msg, Some(&data)).await?;
    }
    Ok(skipped)
}

/// Runs incident `inc`'s due timers at `now`; false when another replica got there first.
pub async fn run_timers(tx: &mut Tx, inc: &IncidentRow, now: i64) -> Result<bool> {
    if inc.status == "acknowledged" && inc.snoozed_until.is_some() {
        // A snooze that ends pages the level the incident is at, not the first rule as a
        // lapsed acknowledgement does.
        return crate::alerting::incident_ops::end_snooze(tx, inc, now).await;
    }
    let policy = match inc.escalation_policy_id {
        Some(id) => escalation_policy(tx, id).await?,
        None => None,
    };
    let Some((policy, _)) = policy else {
        // The policy was deleted: stop the timers rather than spin on them.
        let mut clock = clock_of(inc);
        clock.next_escalation_at = None;
        clock.ack_until = None;
        return save(tx, inc, &clock, now).await;
    };
    let mut clock = clock_of(inc);
    let steps = clock.advance(&policy, now);
    if !save(tx, inc, &clock, now).await? {
        return Ok(false);
    }
    let moved_on = steps.iter().any(|s| matches!(s, Step::Notify { .. }));
    if moved_on && inc.assigned_user_id.is_some() {
        // The user it was reassigned to did not acknowledge: the next rule's targets hold it.
        incident_ops::set_assignee(tx, inc.id, None, now).await?;
    }
    for step in steps {
        match step {
            Step::Notify { rule, lap, why, at } => {
                let (kind, msg) = match why {
                    lookout_oncall::escalation::Why::AckTimedOut => (
                        "ack_timeout",
                        "Acknowledgement timed out; triggered again".to_string(),
                    ),
                    lookout_oncall::escalation::Why::Repeated => (
                        "repeated",
                        format!(
                            "Not acknowledged; escalation path repeated (pass {})",
                            lap + 1
                        ),
                    ),
                    _ => (
                        "escalated",
                        format!("Not acknowledged; escalated to rule {}", rule + 1),
                    ),
                };
                incidents::log(tx, inc.id, at, kind, "system", &msg, None).await?;
                page_rule(tx, inc, &policy, rule, lap, why.as_str(), at).await?;
            }
            Step::Exhausted { at } => {
                incidents::log(
                    tx,
                    inc.id,
                    at,
                    "exhausted",
                    "system",
                    "Escalation path exhausted; the incident stays with the last rule",
                    None,
                )
                .await?;
            }
        }
    }
    Ok(true)
}

/// Writes `clock` over `inc`'s clock columns, fenced on the values read (false: lost a race).
pub(crate) async fn save(tx: &mut Tx, inc: &IncidentRow, clock: &Clock, now: i64) -> Result<bool> {
    let new = ClockCols {
        status: clock.status.as_str(),
        rule_index: clock.rule as i64,
        lap: i64::from(clock.lap),
        next_escalation_at: clock.next_escalation_at,
        ack_until: clock.ack_until,
    };
    incidents::save_clock(tx, inc.id, &inc.clock(), &new, now).await
}

/// The escalation clock stored in `inc`.
pub(crate) fn clock_of(inc: &IncidentRow) -> Clock {
    Clock {
        status: Status::parse(&inc.status).unwrap_or(Status::Triggered),
        high_urgency: inc.urgency != "low",
        rule: usize::try_from(inc.rule_index).unwrap_or(0),
        lap: u32::try_from(inc.lap).unwrap_or(0),
        next_escalation_at: inc.next_escalation_at,
        ack_until: inc.ack_until,
    }
}

/// An escalation policy and its acknowledgement timeout (ms; none when switched off).
///
/// Reads go through `conn`, the caller's transaction: a transaction must never wait for a second
/// pooled connection, or concurrent writers exhaust the pool and deadlock (seen under load on
/// SQLite, where waiting writers each hold a connection).
pub async fn escalation_policy(
    conn: &mut Conn,
    id: i64,
) -> Result<Option<(EscalationPolicy, Option<i64>)>> {
    let row = match astore::spec_get_in(conn, SpecTable::EscalationPolicies, id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let policy: EscalationPolicy = serde_json::from_value(row.spec.clone())
        .map_err(|e| StoreError::Corrupt(format!("escalation policy {id}: {e}")))?;
    // A disabled policy pages nobody: every caller treats it as absent, so new incidents are
    // opened unrouted and open ones stop escalating.
    if !policy.enabled {
        return Ok(None);
    }
    let ack = match row.spec.get("ack_timeout_minutes").and_then(Value::as_i64) {
        Some(0) => None,
        Some(m) => Some(m * 60_000),
        None => Some(DEFAULT_ACK_TIMEOUT_MS),
    };
    Ok(Some((policy, ack)))
}

/// Why escalation policy `id`, named by the origin, paged nobody: disabled, or deleted.
async fn unused_policy(conn: &mut Conn, id: i64) -> Result<String> {
    Ok(
        match astore::spec_get_in(conn, SpecTable::EscalationPolicies, id).await {
            Ok(row) => format!(
                "Escalation policy \"{}\" is disabled: nobody was paged.",
                row.name
            ),
            Err(StoreError::NotFound) => {
                format!("Escalation policy {id} no longer exists: nobody was paged.")
            }
            Err(e) => return Err(e),
        },
    )
}

/// Queues pages for rule `rule` of `policy` on incident `inc`, resolving targets at `at`.
pub(crate) async fn page_rule(
    tx: &mut Tx,
    inc: &IncidentRow,
    policy: &EscalationPolicy,
    rule: usize,
    lap: u32,
    event: &str,
    at: i64,
) -> Result<()> {
    let Some(r) = policy.escalation_rules.get(rule) else {
        return Ok(());
    };
    let key = format!("{}:{event}:{rule}:{lap}:{at}", inc.id);
    let data = json!({"rule": rule, "lap": lap});
    page_targets(tx, inc, &r.targets, (&key, event, &data), at).await?;
    Ok(())
}

/// Where one page goes: the channel, the user it reaches, and the notification rule's position
/// and delay in minutes when one of the user's rules says so.
type PageTo = (i64, Option<i64>, Option<(i64, i64)>);

/// Queues pages for `targets` on incident `inc`, resolving schedules at `at`: users through
/// their contact methods for the incident's urgency, channels directly. Each page's idempotency
/// key is `key` and its channel; `data` goes with it. Whoever cannot be reached is named in the
/// timeline. Returns how many pages were queued.
pub(crate) async fn page_targets(
    tx: &mut Tx,
    inc: &IncidentRow,
    targets: &[lookout_oncall::Target],
    (key, event, data): (&str, &str, &Value),
    at: i64,
) -> Result<usize> {
    let mut pages: Vec<PageTo> = Vec::new();
    let mut nobody = Vec::new();
    for t in targets {
        let user = match t.kind {
            TargetKind::Channel => {
                pages.push((t.id, None, None));
                continue;
            }
            TargetKind::User => Some(t.id),
            TargetKind::Schedule => on_call(tx, t.id, at).await?,
        };
        let Some(user) = user else {
            let name = astore::spec_get_in(tx, SpecTable::Schedules, t.id)
                .await
                .map_or_else(|_| format!("schedule {}", t.id), |s| s.name);
            nobody.push(format!("{name} has nobody on call"));
            continue;
        };
        let methods = astore::channel_list_in(tx, inc.org_id, Some(user)).await?;
        let rules: Vec<_> = rules::rules_of_in(tx, user)
            .await?
            .into_iter()
            .filter(|r| r.urgency == inc.urgency)
            // Only rules on contact methods that are switched on: a user whose rules all
            // point at disabled methods falls back to the default below rather than being
            // paged through nothing.
            .filter(|r| methods.iter().any(|c| c.id == r.channel_id && c.enabled))
            .collect();
        if !rules.is_empty() {
            // The user's own rules for this urgency: each contact method after its delay.
            for r in rules {
                pages.push((
                    r.channel_id,
                    Some(user),
                    Some((r.position, r.delay_minutes)),
                ));
            }
            continue;
        }
        let methods: Vec<_> = methods
            .into_iter()
            .filter(|c| c.urgencies.contains(&inc.urgency))
            .collect();
        if methods.is_empty() {
            let name = incident_ops::user_name_in(tx, user)
                .await?
                .unwrap_or_else(|| format!("user {user}"));
            nobody.push(format!(
                "{name} has no contact method for {} urgency",
                inc.urgency
            ));
        }
        for c in methods {
            pages.push((c.id, Some(user), None));
        }
    }
    pages.sort_unstable();
    pages.dedup();
    let queued: Vec<Page> = pages
        .into_iter()
        .map(|(channel, user, rule)| {
            let (idempotency_key, delay_ms, data) = match rule {
                // Keyed by the rule's place too: a user may be reached twice on one channel.
                Some((pos, delay)) => {
                    let mut d = data.clone();
                    d["delay_minutes"] = json!(delay);
                    (
                        format!("{key}:{channel}:r{pos}"),
                        delay * rule_minute_ms(),
                        d,
                    )
                }
                None => (format!("{key}:{channel}"), 0, data.clone()),
            };
            Page {
                idempotency_key,
                incident_id: inc.id,
                channel_id: channel,
                user_id: user,
                event: event.into(),
                data,
                delay_ms,
            }
        })
        .collect();
    outbox::enqueue(tx, &queued, at).await?;
    for why in nobody {
        incidents::log(tx, inc.id, at, "unrouted", "system", &why, None).await?;
    }
    Ok(queued.len())
}

/// Who is on call on schedule `id` at `at`.
pub async fn on_call(conn: &mut Conn, id: i64, at: i64) -> Result<Option<i64>> {
    let Some(schedule) = schedule_with_overrides(conn, id, at, at + 1).await? else {
        return Ok(None);
    };
    Ok(schedule.on_call_at(at))
}

/// Schedule `id` with its overrides between `since` and `until` (none when it is gone).
pub async fn schedule_with_overrides(
    conn: &mut Conn,
    id: i64,
    since: i64,
    until: i64,
) -> Result<Option<Schedule>> {
    let row = match astore::spec_get_in(conn, SpecTable::Schedules, id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut s: Schedule = serde_json::from_value(row.spec)
        .map_err(|e| StoreError::Corrupt(format!("schedule {id}: {e}")))?;
    s.overrides = astore::overrides_between_in(conn, id, since, until)
        .await?
        .into_iter()
        .map(|o| lookout_oncall::Override {
            id: Some(o.id),
            start: o.starts_at,
            end: o.ends_at,
            user: o.user_id,
        })
        .collect();
    Ok(Some(s))
}
