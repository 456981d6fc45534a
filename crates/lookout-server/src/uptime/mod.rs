//! Uptime monitoring in the server: the shard runners that check monitors ([`runner`]), the
//! cron check-in consumer and the push/cron HTTP endpoints ([`checkins`]), rollups and retention
//! ([`upkeep`]), config-file reconciliation ([`config`]) and the monitor view shared by the API
//! and the UI ([`view`]).

pub mod checkins;
pub mod config;
pub mod runner;
pub mod upkeep;
pub mod view;

use std::sync::Arc;

use lookout_core::seal::Sealer;
use lookout_store::uptime::pages::MaintenanceRow;
use lookout_store::{Store, StoreError};
use lookout_uptime::schedule::{Recurrence, Window};
use lookout_uptime::MonitorSpec;

/// The maintenance windows in force, parsed; shared by the runners and the views.
#[derive(Clone, Default)]
pub struct Windows(Arc<Vec<(Window, Vec<i64>)>>);

impl Windows {
    /// Parses stored windows (a window that no longer parses is skipped with a log line).
    pub fn from_rows(rows: &[MaintenanceRow]) -> Windows {
        let mut out = Vec::new();
        for r in rows {
            let rec: Option<Recurrence> = match r.recurrence.as_deref().map(serde_json::from_str) {
                None => None,
                Some(Ok(x)) => Some(x),
                Some(Err(e)) => {
                    tracing::warn!(window = r.id, error = %e, "Stored maintenance recurrence does not parse; skipped.");
                    continue;
                }
            };
            match Window::new(r.starts_at, r.ends_at, rec.as_ref()) {
                Ok(w) => out.push((w, r.monitor_ids.clone())),
                Err(e) => {
                    tracing::warn!(window = r.id, error = %e, "Stored maintenance window is invalid; skipped.")
                }
            }
        }
        Windows(Arc::new(out))
    }

    /// Loads the current windows.
    pub async fn load(store: &lookout_store::Store) -> Windows {
        match lookout_store::uptime::pages::list_maintenance(store).await {
            Ok(rows) => Windows::from_rows(&rows),
            Err(e) => {
                tracing::warn!(error = %e, "Could not load maintenance windows.");
                Windows::default()
            }
        }
    }

    /// Whether `monitor` is inside an open window at `at`.
    pub fn covers(&self, monitor: i64, at: i64) -> bool {
        self.0
            .iter()
            .any(|(w, ids)| ids.contains(&monitor) && w.is_open(at))
    }
}

/// The stored form of a spec: JSON with its credentials sealed.
pub fn sealed_json(spec: &MonitorSpec, sealer: &Sealer) -> String {
    let mut s = spec.clone();
    let _ = s.map_secrets(|v| Ok::<_, ()>(sealer.seal(v)));
    serde_json::to_string(&s).unwrap_or_default()
}

/// Seals credentials that older versions stored in clear (passwords inside monitor URLs were
/// not sealed before): rewrites only the specs it changes, and returns how many. Everything
/// written since is sealed on the way in, so the pass runs once per installation (a flag marks
/// it done) instead of reading every monitor at every start.
pub async fn seal_stored_secrets(store: &Store, sealer: &Sealer) -> Result<usize, StoreError> {
    const DONE: &str = "monitor_secrets_sealed";
    if lookout_store::tenancy::instance_flag(store, DONE).await? {
        return Ok(0);
    }
    let mut sealed = 0;
    for (id, json) in lookout_store::uptime::all_specs(store).await? {
        let Ok(spec) = serde_json::from_str::<MonitorSpec>(&json) else {
            continue;
        };
        let mut clear = false;
        let mut probe = spec.clone();
        let _ = probe.map_secrets(|v| {
            clear |= !lookout_core::seal::is_sealed(v);
            Ok::<_, ()>(v.to_string())
        });
        if clear
            && lookout_store::uptime::reseal_spec(store, id, &json, &sealed_json(&spec, sealer))
                .await?
        {
            sealed += 1;
        }
    }
    if sealed > 0 {
        tracing::info!(
            monitors = sealed,
            "Sealed credentials that were stored in clear."
        );
    }
    lookout_store::tenancy::set_instance_flag(store, DONE).await?;
    Ok(sealed)
}

/// A stored spec with its credentials opened (`None` if it does not parse or open).
pub fn opened_spec(json: &str, sealer: &Sealer) -> Option<MonitorSpec> {
    let mut s: MonitorSpec = serde_json::from_str(json).ok()?;
    s.map_secrets(|v| sealer.open(v)).ok()?;
    Some(s)
}
