//! In-process handler tests: the router of `lookout serve` (`lookout_server::app`) over a real
//! store, called with `oneshot` instead of through a socket. What only needs an answer from a
//! handler — a 4xx for a bad body, a 401 or 403 for a role — is tested here, in milliseconds,
//! instead of by starting the binary; the e2e suite keeps what needs the running process (its
//! background jobs, its listener, restarts).
//!
//! Each test gets a fresh store (a temporary SQLite file, or a fresh PostgreSQL database for
//! `both!` tests), the default project, the admin the binary would bootstrap
//! (`admin@example.com` with an admin token, made first so it is token 1), and a member and a
//! viewer token, all through `lookout_store::tenancy` as `lookout serve` makes them.

mod alert_forms;
mod audit_in_tx;
mod incident_actions;
mod location_pages;
mod locations;
mod moved;
mod notification_rules;
mod oncall_config;
mod openapi_roles;
mod operations;
mod ownership;
mod prom_rules;
mod promql;
mod roles;
mod triage;
mod uptime_maintenance;
mod validation;

use std::sync::Arc;

use lookout_core::Role;
use lookout_server::{AppState, HttpSettings};
use lookout_store::tenancy;
use lookout_store::writer::WriterConfig;
use lookout_store::{Store, Writer};
use lookout_testkit::{Backend, Client, PgDatabase};

/// The bootstrap admin token, as `LOOKOUT_BOOTSTRAP_TOKEN` would give it.
const ADMIN_TOKEN: &str = "lk_test_handlers_admin_token_0001";

/// A router over a fresh store, with one client per role.
pub struct Harness {
    /// Admin token (the bootstrap token, id 1).
    pub admin: Client,
    /// A member's token.
    pub member: Client,
    /// A viewer's token.
    pub viewer: Client,
    /// No credential.
    pub anon: Client,
    /// The admin token's secret.
    pub admin_token: String,
    /// The store behind the router, to check what was (not) stored.
    pub store: Store,
    /// The store's write queue, to store data as ingest would.
    pub writes: lookout_store::writer::WriteQueue,
    /// The router's state, to set per-test limits (the PromQL sample budget).
    pub state: AppState,
    _writer: Writer,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl Harness {
    /// On a temporary SQLite file.
    pub async fn sqlite() -> Harness {
        Harness::new(Backend::Sqlite).await
    }

    /// On `backend`.
    pub async fn new(backend: Backend) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, pg) = match backend {
            Backend::Sqlite => (Store::sqlite_url_for_dir(dir.path()), None),
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                (db.url().to_string(), Some(db))
            }
        };
        let store = Store::open(&url).await.expect("open and migrate the store");
        tenancy::ensure_default_project(&store)
            .await
            .expect("default project");
        tenancy::create_user(
            &store,
            "admin@example.com",
            "correct horse battery",
            Role::Admin,
        )
        .await
        .expect("admin user");
        tenancy::ensure_token(&store, ADMIN_TOKEN, "bootstrap", Role::Admin)
            .await
            .expect("admin token");
        let (member, _) = tenancy::create_token(&store, "harness member", Role::Member, None)
            .await
            .expect("member token");
        let (viewer, _) = tenancy::create_token(&store, "harness viewer", Role::Viewer, None)
            .await
            .expect("viewer token");
        let writer = Writer::start(store.clone(), WriterConfig::default());
        let settings = HttpSettings {
            public_url: "http://lookout.test".into(),
            data_location: dir.path().display().to_string(),
            session_ttl_ms: 14 * 86_400_000,
            trusted_proxies: Vec::new(),
        };
        let sealer =
            lookout_core::seal::Sealer::from_hex(&lookout_core::seal::Sealer::new_key_hex())
                .expect("a fresh key");
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let state = AppState::new(
            store.clone(),
            writer.queue(),
            settings,
            metrics,
            sealer,
            Arc::new(lookout_outbound::NetPolicy::default()),
        );
        let anon = Client::router(lookout_server::app(state.clone()));
        Harness {
            admin: anon.bearer(ADMIN_TOKEN),
            member: anon.bearer(&member),
            viewer: anon.bearer(&viewer),
            anon,
            admin_token: ADMIN_TOKEN.to_string(),
            store,
            writes: writer.queue(),
            state,
            _writer: writer,
            _dir: dir,
            _pg: pg,
        }
    }

    /// How many items `GET path` lists (as the admin), to show a refused write stored nothing.
    pub async fn count(&self, path: &str) -> usize {
        let v = self.admin.get(path).await.expect(200);
        v["items"]
            .as_array()
            .or(v.as_array())
            .unwrap_or_else(|| panic!("{path} is not a list: {v}"))
            .len()
    }

    /// A UI session (cookie) of a new user with `role`, whose email starts with `who`: the
    /// client and the session's CSRF token, for posting forms.
    pub async fn ui_session(&self, role: Role, who: &str) -> (Client, String) {
        let user = tenancy::create_user(
            &self.store,
            &format!("{who}-{role}@example.com"),
            "correct horse battery",
            role,
        )
        .await
        .expect("user");
        let (id, s) = tenancy::create_session(&self.store, &user, 3_600_000)
            .await
            .expect("session");
        (
            self.anon
                .session(&format!("lookout_session={id}"), &s.csrf_token),
            s.csrf_token,
        )
    }
}

/// A form body, urlencoded.
pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// The content type of [`form`] bodies.
pub const FORM: &str = "application/x-www-form-urlencoded";
