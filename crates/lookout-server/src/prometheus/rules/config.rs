//! `rule_files:` in the config file, as in `prometheus.yml`: a list of rule file paths
//! (relative to the config file's folder; `*` and `?` in the file name part match as Prometheus's
//! globs do), each entry either a path (the first project's) or `{path, project}`. Reconciled at
//! start and on SIGHUP: each file is stored with `managed_by = 'config'` under its path as
//! written, and config files no longer declared are deleted. A file that does not parse is not
//! applied (logged with every problem); the others are.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use lookout_store::prom::rules as rstore;
use lookout_store::{tenancy, Store};

/// One `rule_files` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    /// A path or glob, for the first project.
    Path(String),
    /// A path or glob for a named project (id or slug).
    ForProject {
        /// Path or glob.
        path: String,
        /// Project id or slug.
        project: String,
    },
}

#[derive(Debug, Default, Deserialize)]
struct Declared {
    #[serde(default)]
    rule_files: Vec<Entry>,
}

fn read(path: &Path) -> Result<Vec<Entry>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let d: Declared = if yaml {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
        match v.get("rule_files") {
            Some(r) => Declared {
                rule_files: serde_yaml_ng::from_value(r.clone())
                    .map_err(|e| format!("rule_files: {e}"))?,
            },
            None => Declared::default(),
        }
    } else {
        let v: toml::Value = toml::from_str(&text).map_err(|e| e.to_string())?;
        match v.get("rule_files") {
            Some(r) => Declared {
                rule_files: r
                    .clone()
                    .try_into()
                    .map_err(|e: toml::de::Error| format!("rule_files: {e}"))?,
            },
            None => Declared::default(),
        }
    };
    Ok(d.rule_files)
}

/// Whether `name` matches glob `pattern` (`*` any run, `?` one character).
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some(pi);
                mark = ni;
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some(s) => {
                    pi = s + 1;
                    mark += 1;
                    ni = mark;
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == '*')
}

/// The files a path or glob names, sorted; an error when a glob's folder cannot be read (the
/// caller then keeps what the glob matched before rather than deleting it).
fn expand(base: &Path, pattern: &str) -> std::io::Result<Vec<(String, PathBuf)>> {
    let full = base.join(pattern);
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if !name.contains(['*', '?']) {
        return Ok(vec![(pattern.to_string(), full)]);
    }
    let dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
    let prefix = Path::new(pattern)
        .parent()
        .map(|p| p.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_string();
            glob_match(&name, &n).then(|| {
                let shown = if prefix.is_empty() {
                    n.clone()
                } else {
                    format!("{prefix}/{n}")
                };
                (shown, e.path())
            })
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Reconciles the config file's `rule_files` (see the module documentation).
pub async fn apply_file(store: &Store, path: &Path) {
    let entries = match read(path) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "Rule files in the config file not applied.");
            return;
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let all = lookout_store::Cursor {
        after: None,
        limit: Some(1000),
    };
    let projects = match tenancy::list_projects(store, &all).await {
        Ok(p) => p.items,
        Err(e) => {
            tracing::error!(error = %e, "Rule files not applied: projects not read.");
            return;
        }
    };
    let mut kept: Vec<(i64, String)> = Vec::new();
    // Globs whose folder could not be read: the files they matched are kept as they are.
    let mut unreadable: Vec<(i64, &str)> = Vec::new();
    let mut applied = 0usize;
    for entry in &entries {
        let (pattern, project) = match entry {
            Entry::Path(p) => (p.as_str(), None),
            Entry::ForProject { path, project } => (path.as_str(), Some(project.as_str())),
        };
        let project = match project {
            None => projects.first().map(|p| p.id),
            Some(w) => projects
                .iter()
                .find(|p| p.slug == w || p.id.to_string() == w)
                .map(|p| p.id),
        };
        let Some(project) = project else {
            tracing::error!(
                rule_file = pattern,
                "Rule file not applied: no such project."
            );
            continue;
        };
        let files = match expand(&base, pattern) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(rule_file = pattern, error = %e, "Rule files folder not read; the files it held are kept.");
                unreadable.push((project, pattern));
                continue;
            }
        };
        for (name, file) in files {
            // Kept even when it fails to apply: a file with a typo keeps its last good rules
            // rather than disappearing.
            kept.push((project, name.clone()));
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(rule_file = %file.display(), error = %e, "Rule file not read.");
                    continue;
                }
            };
            match super::service::save_from_config(store, project, &name, &text).await {
                Ok(()) => applied += 1,
                Err(e) => {
                    tracing::error!(rule_file = %file.display(), error = %e, "Rule file not applied.")
                }
            }
        }
    }
    for p in &projects {
        let Ok(files) = rstore::files(store, p.id).await else {
            continue;
        };
        for f in files {
            let still_matched = unreadable
                .iter()
                .any(|(project, pattern)| *project == p.id && glob_match(pattern, &f.name));
            if f.managed_by.as_deref() == Some("config")
                && !kept.contains(&(p.id, f.name.clone()))
                && !still_matched
            {
                if let Err(e) = super::service::remove(store, p.id, &f.name).await {
                    tracing::warn!(rule_file = %f.name, error = %e, "Rule file no longer declared but not deleted.");
                }
            }
        }
    }
    if applied > 0 || !entries.is_empty() {
        tracing::info!(file = %path.display(), rule_files = applied, "Rule files from the config file applied.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_prometheus_does() {
        assert!(glob_match("*.yml", "a.yml"));
        assert!(!glob_match("*.yml", "a.yaml"));
        assert!(glob_match("r?les*.y*ml", "rules-1.yaml"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn an_unreadable_glob_folder_is_an_error_not_an_empty_match() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yml"), "groups: []").unwrap();
        let found = expand(dir.path(), "*.yml").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "a.yml");
        // A missing folder would otherwise read as "no files" and delete every file it held.
        assert!(expand(dir.path(), "gone/*.yml").is_err());
        assert!(glob_match("gone/*.yml", "gone/a.yml"));
    }

    #[test]
    fn entries_take_a_path_or_a_project() {
        let d: Declared = serde_yaml_ng::from_str(
            "rule_files:\n  - rules/*.yml\n  - {path: other.yml, project: web}\n",
        )
        .unwrap();
        assert!(matches!(&d.rule_files[0], Entry::Path(p) if p == "rules/*.yml"));
        assert!(matches!(&d.rule_files[1], Entry::ForProject { project, .. } if project == "web"));
    }
}
