//! Monitors and status pages declared in the config file (`--config lookout.yaml`), reconciled
//! at start and on SIGHUP.
//!
//! Reconciliation is idempotent: a declared monitor is matched by name among the monitors the
//! file created before (`managed_by = 'config'`), updated only if its definition changed, and
//! deleted when it leaves the file. Monitors created through the API or the UI are never touched.
//! A heartbeat keeps its push URL across reloads, since the row survives.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use lookout_core::seal::Sealer;
use lookout_store::tenancy;
use lookout_store::uptime::{self as ustore, pages, NewMonitor};
use lookout_store::{Cursor, Store, StoreError};
use lookout_uptime::{Kind, MonitorSpec};

/// The marker on rows the file owns.
pub const MANAGED: &str = "config";

/// A status page as declared: monitors are named, since ids are not known when writing the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeclaredPage {
    /// URL slug.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Logo URL.
    #[serde(default)]
    pub logo_url: Option<String>,
    /// Names of the monitors shown, in order.
    #[serde(default)]
    pub monitors: Vec<String>,
}

/// The parts of the config file this module owns; other keys belong to the binary.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Declared {
    /// Monitors.
    #[serde(default)]
    pub monitors: Vec<MonitorSpec>,
    /// Status pages.
    #[serde(default)]
    pub status_pages: Vec<DeclaredPage>,
}

/// Reads the declarations from a `.yaml`/`.yml` or `.toml` file.
pub fn read(path: &Path) -> Result<Declared, String> {
    read_as(path)
}

/// Reads a `.yaml`/`.yml` or `.toml` config file as `T` (each capability declares the keys it
/// reads and ignores the rest).
pub fn read_as<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if yaml {
        serde_yaml_ng::from_str(&text).map_err(|e| format!("in {}: {e}", path.display()))
    } else {
        toml::from_str(&text).map_err(|e| format!("in {}: {e}", path.display()))
    }
}

/// What a reconciliation changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Monitors created.
    pub created: usize,
    /// Monitors whose definition changed.
    pub updated: usize,
    /// Monitors removed from the file and deleted.
    pub deleted: usize,
    /// Status pages created, updated or deleted.
    pub pages: usize,
}

/// Validates everything first (a bad file changes nothing), then applies it.
pub async fn reconcile(
    store: &Store,
    sealer: &Sealer,
    declared: &Declared,
) -> Result<Report, String> {
    let mut specs = Vec::with_capacity(declared.monitors.len());
    let mut names = std::collections::HashSet::new();
    for m in &declared.monitors {
        let mut s = m.clone();
        s.validate()
            .map_err(|e| format!("monitor {:?}: {e}", m.name))?;
        if !names.insert(s.name.clone()) {
            return Err(format!("monitor {:?} is declared twice", s.name));
        }
        specs.push(s);
    }
    let db = |e: StoreError| e.to_string();
    let org = tenancy::default_org(store).await.map_err(db)?;
    let default_project = tenancy::list_projects(store, &Cursor::default())
        .await
        .map_err(db)?
        .items
        .first()
        .map(|p| p.id);
    let mut report = Report::default();
    let existing: HashMap<String, ustore::MonitorRow> = ustore::managed_monitors(store, MANAGED)
        .await
        .map_err(db)?
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect();
    for spec in &specs {
        let project_id = if spec.kind == Kind::Cron {
            spec.project_id.or(default_project)
        } else {
            None
        };
        let new = NewMonitor {
            org_id: org.id,
            project_id,
            name: spec.name.clone(),
            kind: spec.kind.as_str().into(),
            slug: spec.slug.clone(),
            spec: super::sealed_json(spec, sealer),
            paused: spec.paused,
            parent_id: spec.parent_id,
            push_token: None,
            managed_by: Some(MANAGED.into()),
        };
        match existing.get(&spec.name) {
            Some(row) => {
                let same = super::opened_spec(&row.spec, sealer).as_ref() == Some(spec)
                    && row.project_id == project_id;
                if !same {
                    ustore::update_monitor(store, row.id, &new)
                        .await
                        .map_err(db)?;
                    report.updated += 1;
                }
            }
            None => {
                let new = NewMonitor {
                    push_token: (spec.kind == Kind::Heartbeat)
                        .then(lookout_core::secret::new_dsn_key),
                    ..new
                };
                ustore::create_monitor(store, &new).await.map_err(db)?;
                report.created += 1;
            }
        }
    }
    for (name, row) in &existing {
        if !names.contains(name) {
            ustore::delete_monitor(store, row.id).await.map_err(db)?;
            report.deleted += 1;
        }
    }
    report.pages = reconcile_pages(store, org.id, &declared.status_pages).await?;
    Ok(report)
}

async fn reconcile_pages(
    store: &Store,
    org_id: i64,
    declared: &[DeclaredPage],
) -> Result<usize, String> {
    let db = |e: StoreError| e.to_string();
    // Pages name monitors from the file or the API alike.
    let mut by_name: BTreeMap<String, i64> = BTreeMap::new();
    let mut cursor = Cursor {
        after: None,
        limit: Some(1000),
    };
    loop {
        let page = ustore::list_monitors(store, org_id, &cursor)
            .await
            .map_err(db)?;
        for (m, _) in &page.items {
            by_name.entry(m.name.clone()).or_insert(m.id);
        }
        match page.next {
            Some(n) => cursor.after = Some(n),
            None => break,
        }
    }
    let existing: HashMap<String, pages::StatusPageRow> = pages::list_pages(store, org_id)
        .await
        .map_err(db)?
        .into_iter()
        .filter(|p| p.managed_by.as_deref() == Some(MANAGED))
        .map(|p| (p.slug.clone(), p))
        .collect();
    let mut changed = 0;
    for d in declared {
        crate::uptime::service::validate_slug(&d.slug)?;
        let monitor_ids = d
            .monitors
            .iter()
            .map(|n| {
                by_name
                    .get(n)
                    .copied()
                    .ok_or_else(|| format!("status page {:?}: no monitor named {n:?}", d.slug))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let new = pages::NewStatusPage {
            org_id,
            slug: d.slug.clone(),
            title: d.title.clone(),
            description: d.description.clone(),
            logo_url: d.logo_url.clone(),
            monitor_ids,
            managed_by: Some(MANAGED.into()),
        };
        match existing.get(&d.slug) {
            Some(p)
                if p.title == new.title
                    && p.description == new.description
                    && p.logo_url == new.logo_url
                    && p.monitor_ids == new.monitor_ids => {}
            Some(p) => {
                pages::update_page(store, p.id, &new).await.map_err(db)?;
                changed += 1;
            }
            None => {
                pages::create_page(store, &new).await.map_err(db)?;
                changed += 1;
            }
        }
    }
    for (slug, p) in &existing {
        if !declared.iter().any(|d| &d.slug == slug) {
            pages::delete_page(store, p.id).await.map_err(db)?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Reads and reconciles, logging the outcome; a bad file is reported and changes nothing.
pub async fn apply_file(store: &Store, sealer: &Sealer, path: &Path) {
    let declared = match read(path) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "Config file not applied.");
            return;
        }
    };
    match reconcile(store, sealer, &declared).await {
        Ok(r) => tracing::info!(
            file = %path.display(),
            created = r.created,
            updated = r.updated,
            deleted = r.deleted,
            status_pages = r.pages,
            "Monitors and status pages from the config file reconciled."
        ),
        Err(e) => tracing::error!(error = %e, "Config file not applied."),
    }
}
