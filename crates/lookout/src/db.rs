//! `lookout db check URL`: PostgreSQL health (slow queries, index advice, operational checks) and
//! index verification rules, as a readable report or JSON, for people and for CI.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::DbCommand;

/// Runs a `lookout db` verb; the process exit status (0 clean, 1 a verification failed, 2 the
/// check could not run).
pub fn main(cmd: DbCommand) -> u8 {
    match run(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

fn read_rules(path: Option<&PathBuf>) -> Result<Vec<lookout_dbhealth::Rule>> {
    let Some(p) = path else { return Ok(Vec::new()) };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    lookout_dbhealth::verify::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

fn run(cmd: DbCommand) -> Result<u8> {
    let DbCommand::Check {
        url,
        verify,
        json,
        slow_ms,
        slow_calls,
        long_running,
    } = cmd;
    // The file is checked before anything connects.
    let rules = read_rules(verify.as_ref())?;
    let opt = lookout_dbhealth::Options {
        slow_ms,
        slow_calls,
        long_running_s: long_running,
        ..lookout_dbhealth::Options::default()
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(lookout_dbhealth::check(&url, &opt, &rules))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", lookout_dbhealth::render(&report));
    }
    Ok(u8::from(!report.verified()))
}
