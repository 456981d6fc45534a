//! The scrape-job service every entry point calls: the config file's `scrape_configs`
//! reconciled at start and on SIGHUP (jobs the file made are updated or deleted with it, jobs
//! made through the API are never touched), and the API's and form's put, delete and list.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use lookout_core::seal::Sealer;
use lookout_core::time::now_ms;
use lookout_store::prom::scrape as sstore;
use lookout_store::{tenancy, Store, StoreError};

use super::config::{Invalid, JobConfig};

/// Who owns a job made by the config file.
pub const FROM_FILE: &str = "config";
/// Who owns a job made through the API or the UI.
pub const FROM_API: &str = "api";

#[derive(Debug, Default, Deserialize)]
struct Declared {
    #[serde(default)]
    scrape_configs: Vec<JobConfig>,
}

/// Reads `scrape_configs` from a `.yaml`/`.yml` or `.toml` config file.
pub fn read(path: &Path) -> Result<Vec<JobConfig>, String> {
    let d: Declared = crate::uptime::config::read_as(path)?;
    Ok(d.scrape_configs)
}

/// Reconciles the file's jobs; a bad file is logged and changes nothing.
pub async fn apply_file(store: &Store, sealer: &Sealer, path: &Path) {
    let result = match read(path) {
        Ok(jobs) => reconcile(store, sealer, &jobs).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((put, deleted)) => {
            if put + deleted > 0 {
                tracing::info!(
                    changed = put,
                    deleted,
                    "Scrape jobs from the config file applied."
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "Scrape jobs in the config file not applied."),
    }
}

/// The project a job names (id or slug), or the first project.
pub async fn project_of(store: &Store, wanted: Option<&str>) -> Result<i64, Invalid> {
    // Looked up directly (by id, then by slug), not found in a page of the project list: a
    // project beyond the first page is still found.
    let unreadable = |e: StoreError| Invalid {
        field: "project".into(),
        message: format!("projects could not be read: {e}"),
    };
    let found = match wanted.map(str::trim).filter(|w| !w.is_empty()) {
        None => tenancy::project_ids(store)
            .await
            .map_err(unreadable)?
            .first()
            .copied(),
        Some(w) => {
            let by_id = match w.parse::<i64>() {
                Ok(id) => match tenancy::get_project(store, id).await {
                    Ok(p) => Some(p.id),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(unreadable(e)),
                },
                Err(_) => None,
            };
            match by_id {
                Some(id) => Some(id),
                None => tenancy::project_id_by_slug(store, w)
                    .await
                    .map_err(unreadable)?,
            }
        }
    };
    found.ok_or_else(|| Invalid {
        field: "project".into(),
        message: format!("no project {:?}", wanted.unwrap_or("")),
    })
}

/// Validates every job first (a bad file changes nothing), then stores those that changed and
/// deletes the file's jobs no longer in it. Returns (changed, deleted).
pub async fn reconcile(
    store: &Store,
    sealer: &Sealer,
    jobs: &[JobConfig],
) -> Result<(usize, usize), String> {
    let mut names = HashSet::new();
    let mut resolved = Vec::with_capacity(jobs.len());
    for j in jobs {
        j.validate()
            .map_err(|e| format!("scrape job {:?}: {e}", j.job_name))?;
        if !names.insert(j.job_name.clone()) {
            return Err(format!("scrape job {:?} is declared twice", j.job_name));
        }
        let project = project_of(store, j.project.as_deref())
            .await
            .map_err(|e| format!("scrape job {:?}: {e}", j.job_name))?;
        resolved.push((j, project));
    }
    let existing = sstore::jobs(store).await.map_err(|e| e.to_string())?;
    let mut changed = 0;
    for (j, project) in resolved {
        let same = existing.iter().any(|row| {
            row.name == j.job_name
                && row.project_id == project
                && row.managed_by == FROM_FILE
                && serde_json::from_str::<JobConfig>(&row.spec)
                    .ok()
                    .and_then(|c| c.opened(sealer).ok())
                    .is_some_and(|c| &c == j)
        });
        if same {
            continue;
        }
        let spec = serde_json::to_string(&j.sealed(sealer)).map_err(|e| e.to_string())?;
        match sstore::put_job(store, &j.job_name, project, &spec, FROM_FILE, now_ms()).await {
            Ok(_) => changed += 1,
            Err(StoreError::Conflict(m)) => {
                tracing::warn!(job = %j.job_name, "{m}; the config file's job of that name is not applied.");
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut deleted = 0;
    for row in existing
        .iter()
        .filter(|r| r.managed_by == FROM_FILE && !names.contains(&r.name))
    {
        if sstore::delete_job(store, &row.name, FROM_FILE)
            .await
            .map_err(|e| e.to_string())?
        {
            deleted += 1;
        }
    }
    Ok((changed, deleted))
}

/// A stored job, opened (credentials in clear: for the scraper only).
pub fn open(row: &sstore::JobRow, sealer: &Sealer) -> Result<JobConfig, String> {
    let c: JobConfig =
        serde_json::from_str(&row.spec).map_err(|e| format!("stored job {}: {e}", row.name))?;
    c.opened(sealer)
}

/// Why a put through the API was refused.
#[derive(Debug)]
pub enum PutError {
    /// A field is wrong (400 naming it).
    Invalid(Invalid),
    /// The config file owns a job of that name (409).
    Conflict(String),
    /// Storage failed.
    Store(StoreError),
}

/// Creates or replaces job `cfg.job_name` through the API or the form. Masked credentials
/// (`********`) keep the stored ones, only while the destination is unchanged. Returns whether
/// it was created.
pub async fn put(store: &Store, sealer: &Sealer, mut cfg: JobConfig) -> Result<bool, PutError> {
    cfg.job_name = cfg.job_name.trim().to_string();
    let old = sstore::job(store, &cfg.job_name)
        .await
        .map_err(PutError::Store)?;
    if let Some(row) = &old {
        if row.managed_by != FROM_API {
            return Err(PutError::Conflict(format!(
                "job {:?} comes from the config file; change it there",
                cfg.job_name
            )));
        }
        let opened = open(row, sealer).map_err(|e| PutError::Store(StoreError::Corrupt(e)))?;
        cfg.keep_secrets_from(&opened).map_err(PutError::Invalid)?;
    } else {
        cfg.keep_secrets_from(&JobConfig::default())
            .map_err(PutError::Invalid)?;
    }
    cfg.validate().map_err(PutError::Invalid)?;
    let project = project_of(store, cfg.project.as_deref())
        .await
        .map_err(PutError::Invalid)?;
    let spec = serde_json::to_string(&cfg.sealed(sealer))
        .map_err(|e| PutError::Store(StoreError::Corrupt(e.to_string())))?;
    match sstore::put_job(store, &cfg.job_name, project, &spec, FROM_API, now_ms()).await {
        Ok(created) => Ok(created),
        Err(StoreError::Conflict(m)) => Err(PutError::Conflict(m)),
        Err(e) => Err(PutError::Store(e)),
    }
}
