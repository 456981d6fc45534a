//! From a job's target groups (static and file-discovered) to the targets scraped: each
//! group's labels plus Prometheus's `__address__`, `__scheme__`, `__metrics_path__`,
//! `__scrape_interval__`, `__scrape_timeout__` and `__param_*`, then `relabel_configs`, then
//! `instance` defaulted to the address and every `__`-prefixed label removed, as Prometheus's
//! `populateLabels` does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use lookout_protocol::relabel::{self, Labels};
use serde::Deserialize;

use super::config::{Job, StaticConfig};

/// One target to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its job.
    pub job: String,
    /// The URL scraped.
    pub url: String,
    /// Its labels on every sample (`job`, `instance`, group and relabeled ones), sorted.
    pub labels: Vec<(String, String)>,
}

/// The targets of `job` from `groups`; targets whose relabeling drops them are left out, and a
/// target with no usable address is counted in the second value.
pub fn targets(job: &Job, groups: &[StaticConfig]) -> (Vec<Target>, usize) {
    let cfg = &job.cfg;
    let scheme = cfg.scheme.clone().unwrap_or_else(|| "http".into());
    let path = cfg
        .metrics_path
        .clone()
        .unwrap_or_else(|| "/metrics".into());
    let mut out = Vec::new();
    let mut bad = 0;
    for g in groups {
        for t in &g.targets {
            let mut l: Labels = g.labels.clone().into_iter().collect();
            l.insert("__address__".into(), t.clone());
            let defaults = [
                ("job", cfg.job_name.clone()),
                ("__scrape_interval__", fmt_dur(job.interval)),
                ("__scrape_timeout__", fmt_dur(job.timeout)),
                ("__metrics_path__", path.clone()),
                ("__scheme__", scheme.clone()),
            ];
            for (k, v) in defaults {
                if l.get(k).is_none_or(String::is_empty) {
                    l.insert(k.into(), v);
                }
            }
            for (k, v) in &cfg.params {
                let name = format!("__param_{k}");
                if let Some(first) = v.first() {
                    if l.get(&name).is_none_or(String::is_empty) {
                        l.insert(name, first.clone());
                    }
                }
            }
            if !relabel::process(&job.relabel, &mut l) {
                continue;
            }
            match finish(cfg.job_name.as_str(), &l) {
                Some(t) => out.push(t),
                None => bad += 1,
            }
        }
    }
    out.sort_by(|a, b| a.url.cmp(&b.url).then(a.labels.cmp(&b.labels)));
    out.dedup();
    (out, bad)
}

fn fmt_dur(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The URL and final labels of a relabeled target.
fn finish(job: &str, l: &Labels) -> Option<Target> {
    let scheme = l.get("__scheme__").map(String::as_str).unwrap_or("http");
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let mut addr = l.get("__address__").cloned().filter(|a| !a.is_empty())?;
    if super::config::check_address(&addr).is_err() {
        return None;
    }
    // Prometheus 2 gives a target without a port the scheme's default one.
    let parsed = url::Url::parse(&format!("{scheme}://{addr}/")).ok()?;
    if parsed.port().is_none() {
        addr = format!("{addr}:{}", if scheme == "https" { 443 } else { 80 });
    }
    let path = l
        .get("__metrics_path__")
        .map(String::as_str)
        .unwrap_or("/metrics");
    let mut url = url::Url::parse(&format!("{scheme}://{addr}")).ok()?;
    url.set_path(path);
    let params: Vec<(&str, &str)> = l
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("__param_").map(|p| (p, v.as_str())))
        .collect();
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    let mut labels: BTreeMap<String, String> = l
        .iter()
        .filter(|(k, v)| !k.starts_with("__") && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.entry("instance".into()).or_insert(addr);
    Some(Target {
        job: job.to_string(),
        url: url.to_string(),
        labels: labels.into_iter().collect(),
    })
}

/// Largest target file read.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// A file's target groups as file_sd writes them (JSON or YAML, a list of
/// `{targets: […], labels: {…}}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The files a `files` entry names (`*` allowed in the last component), with their times.
pub fn expand(pattern: &str) -> Vec<(std::path::PathBuf, Option<SystemTime>)> {
    let p = Path::new(pattern);
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if !name.contains('*') {
        return vec![(p.to_path_buf(), mtime(p))];
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (pre, post) = name.split_once('*').unwrap_or((name, ""));
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            (n.len() >= pre.len() + post.len() && n.starts_with(pre) && n.ends_with(post))
                .then(|| e.path())
        })
        .map(|p| {
            let t = mtime(&p);
            (p, t)
        })
        .collect();
    out.sort();
    out
}

/// Reads one file of target groups; `__meta_filepath` is set on each as Prometheus does.
pub fn read_file(path: &Path) -> Result<Vec<StaticConfig>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > MAX_FILE {
        return Err(format!("{}: larger than {MAX_FILE} bytes", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let groups: Vec<Group> = if yaml {
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        for t in &g.targets {
            super::config::check_address(t).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let mut labels = g.labels;
        labels.insert("__meta_filepath".into(), path.display().to_string());
        out.push(StaticConfig {
            targets: g.targets,
            labels,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::config::JobConfig;
    use super::*;

    fn job(yaml: &str) -> Job {
        serde_yaml_ng::from_str::<JobConfig>(yaml)
            .unwrap()
            .validate()
            .unwrap()
    }

    #[test]
    fn targets_get_job_instance_and_url_as_prometheus_gives_them() {
        let j = job("job_name: node\nmetrics_path: /m\nparams: {module: [a]}\nstatic_configs: [{targets: ['h:9100', 'h'], labels: {env: prod}}]");
        let (t, bad) = targets(&j, &j.cfg.static_configs);
        assert_eq!(bad, 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].url, "http://h:9100/m?module=a");
        assert_eq!(
            t[1].labels,
            vec![
                ("env".into(), "prod".into()),
                ("instance".into(), "h:9100".into()),
                ("job".into(), "node".into())
            ]
        );
        // No port: the scheme's default in the instance label, as Prometheus 2 does (the URL
        // leaves the default port out).
        assert_eq!(t[0].url, "http://h/m?module=a");
        assert!(t[0]
            .labels
            .contains(&("instance".to_string(), "h:80".to_string())));
    }

    #[test]
    fn relabel_configs_drop_and_rewrite_targets() {
        let j = job(concat!(
            "job_name: n\nstatic_configs: [{targets: ['a:1', 'b:2']}]\n",
            "relabel_configs:\n",
            "- {action: drop, source_labels: [__address__], regex: 'b:.*'}\n",
            "- {source_labels: [__address__], regex: '(.*):1', target_label: instance, replacement: 'host-$1'}\n",
            "- {source_labels: [__address__], target_label: __param_target}\n",
        ));
        let (t, _) = targets(&j, &j.cfg.static_configs);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].url, "http://a:1/metrics?target=a%3A1");
        assert!(t[0]
            .labels
            .contains(&("instance".to_string(), "host-a".to_string())));
    }

    #[test]
    fn file_sd_reads_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        std::fs::write(&p, r#"[{"targets":["x:1"],"labels":{"team":"a"}}]"#).unwrap();
        let g = read_file(&p).unwrap();
        assert_eq!(g[0].targets, vec!["x:1"]);
        let y = dir.path().join("t.yml");
        std::fs::write(&y, "- targets: ['y:2']\n").unwrap();
        assert_eq!(read_file(&y).unwrap()[0].targets, vec!["y:2"]);
        let pattern = dir.path().join("*.json");
        assert_eq!(expand(pattern.to_str().unwrap()).len(), 1);
        std::fs::write(&p, "not json").unwrap();
        assert!(read_file(&p).is_err());
    }
}
