//! Shared by the load tests: run a scenario text against the local target and return the summary.

use std::collections::HashMap;
use std::path::Path;

use lookout_load::spec::{self, Format};
use lookout_load::{RunOptions, Summary};

/// Validates `yaml` (with `{{env.BASE}}` set to `base`) and runs it to the end.
pub async fn run_yaml(yaml: &str, base: &str, dir: &Path) -> Summary {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("BASE".into(), base.into());
    let plan = spec::parse(yaml, Format::Yaml, dir, &env).expect("valid scenario");
    let (tx, _) = tokio::sync::watch::channel(false);
    let opts = RunOptions {
        quiet: true,
        out_json: None,
        workers: 2,
    };
    lookout_load::run(plan, &opts, tx).await.expect("run")
}

/// A metric's value from the summary (0 when absent).
pub fn value(s: &Summary, metric: &str, key: &str) -> f64 {
    s.metric(metric)
        .and_then(|m| m.values.get(key).copied())
        .unwrap_or(0.0)
}
