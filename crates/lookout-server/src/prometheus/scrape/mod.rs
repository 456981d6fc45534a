//! Prometheus scraping: jobs (`scrape_configs`) from the config file and the API, their targets
//! (static and file-discovered, relabeled), scraped on the replica that holds the target's
//! shard lease, into the same metric store as remote write.
//!
//! - [`config`]: a job as Prometheus writes it, validated field by field, credentials sealed at
//!   rest and masked in answers;
//! - [`target`]: target groups to targets (labels, URL);
//! - [`assemble`]: a parsed body to series (honor_labels, metric relabeling, validation,
//!   sample_limit, staleness, report series);
//! - [`run`]: the shards, each under a fenced lease, and one loop per target;
//! - [`service`]: what the config file, the API and the pages call;
//! - [`api`] and [`ui`]: `/api/v1/prometheus/scrape-configs`, `/api/v1/prometheus/targets`, the
//!   Targets page and the job form.

pub mod api;
pub mod assemble;
pub mod config;
pub mod run;
pub mod service;
pub mod target;
pub mod ui;

pub use service::apply_file;
