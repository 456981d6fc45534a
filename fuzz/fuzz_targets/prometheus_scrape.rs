//! Fuzzes what a scrape target answers: the text exposition format and OpenMetrics parser, then
//! relabeling of what it parsed with a few fixed rules. None may panic, loop or allocate beyond
//! what the input holds, whatever the body.
//!
//! Run: `fuzz/run.sh prometheus_scrape` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_protocol::exposition::{self, Format};
use lookout_protocol::relabel::{self, RelabelConfig};

fuzz_target!(|data: &[u8]| {
    let rules: Vec<RelabelConfig> = serde_json::from_str(
        r#"[{"source_labels":["__name__","a"],"regex":"(.*);(.+)","target_label":"$2","replacement":"$1"},
            {"action":"labelmap","regex":"(.+)_x"},{"action":"hashmod","source_labels":["b"],"target_label":"h","modulus":7},
            {"action":"labeldrop","regex":"c.*"}]"#,
    )
    .unwrap_or_default();
    let rules = relabel::compile(&rules).unwrap_or_default();
    for format in [Format::Text, Format::OpenMetrics] {
        if let Ok(scraped) = exposition::parse(data, format) {
            for s in scraped.samples {
                let mut l: relabel::Labels = s.labels.into_iter().collect();
                l.insert("__name__".into(), s.name);
                let _ = relabel::process(&rules, &mut l);
            }
        }
    }
});
