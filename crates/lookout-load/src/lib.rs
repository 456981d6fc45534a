//! Lookout's load generator (`lookout load`): k6's scenario, executor, threshold and metric
//! vocabulary in a declarative YAML/TOML file, run by a lean HTTP/1.1 client.
//!
//! Flow: [`spec`] validates a file into a [`spec::Plan`]; [`run::run`] starts each scenario's
//! [`executor`], whose VUs ([`vu`]) send requests through [`http`] and record into [`metrics`];
//! [`summary`] turns the aggregate into k6's summary, its JSON export and the report the server
//! keeps.

pub mod cookies;
pub mod duration;
pub mod executor;
pub mod http;
pub mod metrics;
pub mod report;
pub mod run;
pub mod spec;
pub mod summary;
pub mod template;
pub mod threshold;
pub mod vu;

pub use run::{run, RunOptions};
pub use spec::{load, Plan};
pub use summary::Summary;
