//! Alerting and on-call in the server: the incident engine ([`engine`]), alert policies over the
//! domain-event stream ([`policies`]), the escalation timers ([`timers`]), the outbox worker and
//! the channels it delivers to ([`deliver`]), and signed one-click links ([`links`]).

pub mod api;
pub mod config;
pub mod deliver;
pub mod deliver_email;
pub mod engine;
pub mod inbound;
pub mod incident_ops;
pub mod links;
pub mod notification_rules;
pub mod oncall;
pub mod policies;
pub mod query;
pub mod service;
pub mod timers;
pub mod ui;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use lookout_core::seal::Sealer;
use lookout_outbound::{HttpClient, NetPolicy};
use lookout_store::Store;
use tokio::sync::Notify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// What the alerting tasks and handlers share.
#[derive(Clone)]
pub struct Alerting {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sealer: Sealer,
    public_url: String,
    outbound: Arc<NetPolicy>,
    http: HttpClient,
    outbox_wake: Notify,
    timers_wake: Notify,
}

impl Alerting {
    /// Bundles the parts; `public_url` is where links in notifications point, and every
    /// channel, SMTP server and report delivery is reached only where `outbound` allows.
    pub fn new(
        store: Store,
        sealer: Sealer,
        public_url: &str,
        outbound: Arc<NetPolicy>,
    ) -> Alerting {
        Alerting {
            inner: Arc::new(Inner {
                store,
                sealer,
                public_url: public_url.trim_end_matches('/').to_string(),
                http: HttpClient::new(outbound.clone(), deliver::SEND_TIMEOUT, deliver::USER_AGENT),
                outbound,
                outbox_wake: Notify::new(),
                timers_wake: Notify::new(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Seals credentials and signs links.
    pub fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    /// The outbound policy every user-supplied destination is held to.
    pub fn outbound(&self) -> &Arc<NetPolicy> {
        &self.inner.outbound
    }

    /// The client notifications are sent with (the outbound policy applied at connect time
    /// and on every redirect).
    pub(crate) fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// Lookout's public URL, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Tells the local outbox worker that pages were queued (so delivery does not wait for its
    /// next poll) and the timer loop that a timer may have moved.
    /// The other replicas are told too, through Redis when configured (`shared::wake`).
    pub fn wake(&self) {
        self.wake_local();
        crate::shared::wake::publish(crate::shared::wake::ALERTING);
    }

    /// [`Alerting::wake`] for this replica only (another replica queued the pages).
    pub(crate) fn wake_local(&self) {
        self.inner.outbox_wake.notify_one();
        self.inner.timers_wake.notify_one();
    }

    pub(crate) fn outbox_wake(&self) -> &Notify {
        &self.inner.outbox_wake
    }

    pub(crate) fn timers_wake(&self) -> &Notify {
        &self.inner.timers_wake
    }
}

/// The database's clock now (ms): escalation timers and pages are set and judged by it on every
/// replica, so one whose clock is off neither escalates early nor holds pages back. This host's
/// clock when the database does not answer (the write that follows fails then anyway).
pub(crate) async fn db_now(store: &Store) -> i64 {
    lookout_store::cluster::db_now(store)
        .await
        .unwrap_or_else(|_| lookout_core::time::now_ms())
}

/// Shown instead of a stored secret.
pub const REDACTED: &str = "********";

/// Incidents, on-call and alert configuration in the API.
pub fn api() -> OpenApiRouter<AppState> {
    use api::{config, incidents, notification_rules, oncall};
    OpenApiRouter::new()
        .routes(routes!(oncall::list_channels, oncall::create_channel))
        .routes(routes!(
            oncall::get_channel,
            oncall::update_channel,
            oncall::delete_channel
        ))
        .routes(routes!(oncall::list_schedules, oncall::create_schedule))
        .routes(routes!(
            oncall::get_schedule,
            oncall::update_schedule,
            oncall::delete_schedule
        ))
        .routes(routes!(oncall::oncall))
        .routes(routes!(oncall::list_overrides, oncall::create_override))
        .routes(routes!(oncall::delete_override))
        .routes(routes!(
            oncall::list_escalation_policies,
            oncall::create_escalation_policy
        ))
        .routes(routes!(
            oncall::get_escalation_policy,
            oncall::update_escalation_policy,
            oncall::delete_escalation_policy
        ))
        .routes(routes!(oncall::set_user_name))
        .routes(routes!(
            notification_rules::get_mine,
            notification_rules::put_mine
        ))
        .routes(routes!(
            notification_rules::get_user,
            notification_rules::put_user
        ))
        .routes(routes!(incidents::list, incidents::create))
        .routes(routes!(incidents::metrics))
        .routes(routes!(incidents::get_one))
        .routes(routes!(incidents::acknowledge))
        .routes(routes!(incidents::resolve))
        .routes(routes!(incidents::reassign))
        .routes(routes!(incidents::snooze))
        .routes(routes!(incidents::add_responder))
        .routes(routes!(incidents::merge))
        .routes(routes!(incidents::add_note))
        .routes(routes!(incidents::tick))
        .routes(routes!(incidents::postmortem))
        .routes(routes!(config::list_policies, config::create_policy))
        .routes(routes!(
            config::get_policy,
            config::update_policy,
            config::delete_policy
        ))
        .routes(routes!(
            config::list_integrations,
            config::create_integration
        ))
        .routes(routes!(
            config::get_integration,
            config::update_integration,
            config::delete_integration
        ))
        .routes(routes!(config::list_runbooks, config::create_runbook))
        .routes(routes!(
            config::get_runbook,
            config::update_runbook,
            config::delete_runbook
        ))
}

/// The incident, on-call and alert pages.
pub fn pages() -> Router<AppState> {
    use ui::{alerts, incidents};
    Router::new()
        .route("/incidents", get(incidents::list))
        .route("/incidents/bulk", post(incidents::bulk))
        .route("/incidents/{id}", get(incidents::detail))
        // The page's action forms; the one-click links keep `/incidents/{id}/{action}` below.
        .route(
            "/incidents/{id}/reassign",
            post(ui::incident_actions::reassign),
        )
        .route("/incidents/{id}/snooze", post(ui::incident_actions::snooze))
        .route(
            "/incidents/{id}/responders",
            post(ui::incident_actions::add_responder),
        )
        .route("/incidents/{id}/merge", post(ui::incident_actions::merge))
        .route(
            "/incidents/{id}/{action}",
            get(incidents::link_page).post(incidents::post_action),
        )
        .route("/on-call", get(incidents::oncall))
        .route("/alerts", get(alerts::page))
        .merge(config_pages())
}

/// The alert configuration forms (channels, integrations, escalation policies, alert policies,
/// runbooks, schedules and overrides). Each handler takes `Signed<Member>` or `Page<Member>`,
/// so the role is checked before a body is read, and bodies are capped at [`ui::forms::MAX_FORM`].
fn config_pages() -> Router<AppState> {
    use ui::{channels, escalations, integrations, policies, schedules};
    Router::new()
        .route("/alerts/channels", post(channels::create))
        .route("/alerts/channels/new", get(channels::new))
        .route(
            "/alerts/channels/{id}",
            get(channels::edit).post(channels::update),
        )
        .route("/alerts/channels/{id}/delete", post(channels::delete))
        .route("/alerts/channels/{id}/test", post(channels::test))
        .route("/alerts/channels/{id}/enabled", post(channels::set_enabled))
        .route("/alerts/integrations", post(integrations::create))
        .route("/alerts/integrations/new", get(integrations::new))
        .route(
            "/alerts/integrations/{id}",
            get(integrations::edit).post(integrations::update),
        )
        .route(
            "/alerts/integrations/{id}/delete",
            post(integrations::delete),
        )
        .route("/alerts/escalation-policies", post(escalations::create))
        .route("/alerts/escalation-policies/new", get(escalations::new))
        .route(
            "/alerts/escalation-policies/{id}",
            get(escalations::edit).post(escalations::update),
        )
        .route(
            "/alerts/escalation-policies/{id}/delete",
            post(escalations::delete),
        )
        .route(
            "/alerts/escalation-policies/{id}/enabled",
            post(escalations::set_enabled),
        )
        .route("/alerts/policies", post(policies::create))
        .route("/alerts/policies/new", get(policies::new))
        .route(
            "/alerts/policies/{id}",
            get(policies::edit).post(policies::update),
        )
        .route("/alerts/policies/{id}/delete", post(policies::delete))
        .route("/alerts/policies/{id}/enabled", post(policies::set_enabled))
        .route("/alerts/runbooks", post(policies::create_runbook))
        .route("/alerts/runbooks/new", get(policies::new_runbook))
        .route(
            "/alerts/runbooks/{id}",
            get(policies::edit_runbook).post(policies::update_runbook),
        )
        .route(
            "/alerts/runbooks/{id}/delete",
            post(policies::delete_runbook),
        )
        .route("/on-call/schedules", post(schedules::create))
        .route("/on-call/schedules/new", get(schedules::new))
        .route(
            "/on-call/schedules/{id}",
            get(schedules::show).post(schedules::update),
        )
        .route("/on-call/schedules/{id}/delete", post(schedules::delete))
        .route(
            "/on-call/schedules/{id}/enabled",
            post(schedules::set_enabled),
        )
        .route(
            "/on-call/schedules/{id}/overrides",
            post(schedules::add_override),
        )
        .route(
            "/on-call/schedules/{id}/overrides/{override_id}/delete",
            post(schedules::delete_override),
        )
        .layer(axum::extract::DefaultBodyLimit::max(ui::forms::MAX_FORM))
}

/// Inbound alert integrations carry their own key; PagerDuty's path is fixed by its clients.
pub fn public() -> Router<AppState> {
    Router::new()
        .route("/v2/enqueue", post(inbound::pagerduty))
        .route("/integrations/{key}/{kind}", post(inbound::webhook))
        .layer(axum::extract::DefaultBodyLimit::max(inbound::MAX_BODY + 1))
}

/// Query alert conditions, evaluated every [`query::EVERY_MS`].
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    vec![crate::tasks::PeriodicJob::on_store(
        query::JOB,
        query::EVERY_MS,
        &bg.store,
        |store| async move {
            query::run(&store, lookout_core::time::now_ms())
                .await
                .map(|_| ())
        },
    )]
}

/// The policy consumer, the escalation timers and the notification outbox.
pub fn workers(bg: &crate::tasks::Background) -> crate::tasks::Workers {
    vec![
        tokio::spawn(policies::run(
            bg.alerting.clone(),
            bg.replica.clone(),
            bg.stopping(),
        )),
        tokio::spawn(timers::run(bg.alerting.clone(), bg.stopping())),
        tokio::spawn(deliver::run(
            bg.alerting.clone(),
            bg.replica.clone(),
            bg.stopping(),
        )),
    ]
}
