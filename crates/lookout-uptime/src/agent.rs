//! The `lookout probe` agent protocol, shared by the server and the agent: what an agent is
//! assigned, the batches of results it posts, and the one decoder of those batches.
//!
//! The agent only ever connects out to the server, with its location's token as a bearer token:
//! `GET /api/v1/agent/assignments?version=N&wait=S` answers when the agent's list differs from
//! version N (or after S seconds, bounded), and `POST /api/v1/agent/results` stores a batch.
//! A result's identity is (monitor, location, scheduled time), so a batch sent twice (an answer
//! lost, an agent restarted with its buffer) is stored once.

use serde::{Deserialize, Serialize};

use crate::MonitorSpec;

/// Largest results batch body, bytes (the server refuses larger with 413).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// Most results in one batch.
pub const MAX_BATCH_RESULTS: usize = 5_000;
/// Longest failure message kept, characters (longer ones are cut, not refused).
pub const MAX_MESSAGE_CHARS: usize = 1_000;
/// Longest agent id and version, characters.
pub const MAX_AGENT_FIELD: usize = 100;
/// Whether `v` is an agent id (or version, or batch id) the server takes: 1 to
/// [`MAX_AGENT_FIELD`] printable ASCII characters.
pub fn valid_agent_field(v: &str) -> bool {
    agent_field("", v, true).is_ok()
}

/// Longest a long-poll for assignments may wait, seconds.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// One monitor assigned to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The monitor.
    pub id: i64,
    /// Its definition, credentials opened (the agent needs them to check).
    pub spec: MonitorSpec,
    /// Its last change, ms (the agent keeps a monitor's schedule while this is unchanged).
    pub updated_at: i64,
}

/// What `GET /api/v1/agent/assignments` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignments {
    /// Changes whenever the list does; sent back as `version` to wait for the next change.
    pub version: i64,
    /// The location's name.
    pub location: String,
    /// Live agents sharing the location's monitors (this one included).
    pub agents: usize,
    /// This agent's share of the location's monitors.
    pub monitors: Vec<Assignment>,
}

/// One check result an agent reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentResult {
    /// The monitor.
    pub monitor_id: i64,
    /// When the check was due, ms since the epoch (the result's identity with the monitor).
    pub scheduled_at: i64,
    /// When it ran, ms since the epoch.
    pub at: i64,
    /// Whether every condition held.
    pub ok: bool,
    /// Latency, ms.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// Why it failed.
    #[serde(default)]
    pub message: Option<String>,
}

/// What `POST /api/v1/agent/results` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultBatch {
    /// Chosen by the agent; the same batch sent again keeps its id (logged and echoed).
    pub batch_id: String,
    /// The agent's id.
    pub agent_id: String,
    /// The agent's version.
    #[serde(default)]
    pub agent_version: String,
    /// Results the agent still holds after this batch.
    #[serde(default)]
    pub buffered: u64,
    /// Results the agent dropped since it started (its buffer was full).
    #[serde(default)]
    pub dropped: u64,
    /// The results.
    pub results: Vec<AgentResult>,
}

/// What the server answers to a stored batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReceipt {
    /// The batch's id.
    pub batch_id: String,
    /// Results stored now.
    pub stored: usize,
    /// Results stored before (a retried batch).
    pub duplicates: usize,
    /// Results for monitors no longer assigned to the location (edited or deleted meanwhile).
    pub ignored: usize,
}

/// Earliest time a result may carry (2020-01-01), so a zero or garbage clock is refused.
const EARLIEST_MS: i64 = 1_577_836_800_000;

/// Checks an agent id or version: 1 to 100 printable ASCII characters.
fn agent_field(what: &str, v: &str, required: bool) -> Result<(), String> {
    if (required && v.is_empty())
        || v.len() > MAX_AGENT_FIELD
        || !v.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "{what} must be {} to {MAX_AGENT_FIELD} printable ASCII characters",
            u8::from(required)
        ));
    }
    Ok(())
}

/// Decodes and checks a results batch; `now` (ms) bounds how far in the future a result may be.
/// Any malformed part refuses the whole batch (nothing of it is stored), with a message naming
/// the field; failure messages longer than [`MAX_MESSAGE_CHARS`] are cut.
pub fn decode_batch(body: &[u8], now: i64) -> Result<ResultBatch, String> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(format!("the batch is larger than {MAX_BATCH_BYTES} bytes"));
    }
    let mut b: ResultBatch =
        serde_json::from_slice(body).map_err(|e| format!("malformed batch: {e}"))?;
    agent_field("batch_id", &b.batch_id, true)?;
    agent_field("agent_id", &b.agent_id, true)?;
    agent_field("agent_version", &b.agent_version, false)?;
    if b.results.len() > MAX_BATCH_RESULTS {
        return Err(format!("results: at most {MAX_BATCH_RESULTS} per batch"));
    }
    let latest = now.saturating_add(5 * 60_000);
    for (i, r) in b.results.iter_mut().enumerate() {
        if r.monitor_id <= 0 {
            return Err(format!("results[{i}].monitor_id must be positive"));
        }
        for (field, t) in [("scheduled_at", r.scheduled_at), ("at", r.at)] {
            if !(EARLIEST_MS..=latest).contains(&t) {
                return Err(format!(
                    "results[{i}].{field} must be milliseconds since the epoch, not in the future"
                ));
            }
        }
        if let Some(l) = r.latency_ms {
            if !l.is_finite() || !(0.0..=3_600_000.0).contains(&l) {
                return Err(format!(
                    "results[{i}].latency_ms must be between 0 and 3600000"
                ));
            }
        }
        if let Some(m) = &mut r.message {
            if m.chars().count() > MAX_MESSAGE_CHARS {
                *m = m.chars().take(MAX_MESSAGE_CHARS).collect();
            }
        }
    }
    Ok(b)
}

/// The agent of `agents` that checks `monitor_id`: rendezvous (highest random weight) hashing,
/// so every replica and agent computes the same owner, and when an agent leaves only its
/// monitors move. `None` when there is no agent.
pub fn owner(agents: &[String], monitor_id: i64) -> Option<&str> {
    agents
        .iter()
        .max_by_key(|a| (weight(a, monitor_id), a.as_str()))
        .map(String::as_str)
}

/// FNV-1a of the agent id and monitor id, then a 64-bit finaliser (splitmix) so close ids
/// spread.
fn weight(agent: &str, monitor_id: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in agent.bytes().chain(monitor_id.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A version number for an assignment list: a hash of its (monitor, last change) pairs, kept
/// below 2^53 so JSON readers in any language read it exactly.
pub fn list_version(items: &[(i64, i64)]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, at) in items {
        for b in id.to_le_bytes().into_iter().chain(at.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    (h & ((1 << 53) - 1)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn batch(results: &str) -> String {
        format!(r#"{{"batch_id":"b1","agent_id":"a1","results":[{results}]}}"#)
    }

    #[test]
    fn a_good_batch_decodes_and_long_messages_are_cut() {
        let long = "x".repeat(5000);
        let b = decode_batch(
            batch(&format!(
                r#"{{"monitor_id":1,"scheduled_at":{NOW},"at":{NOW},"ok":false,"latency_ms":3.5,"message":"{long}"}}"#
            ))
            .as_bytes(),
            NOW,
        )
        .unwrap();
        assert_eq!(b.results.len(), 1);
        assert_eq!(
            b.results[0].message.as_ref().unwrap().len(),
            MAX_MESSAGE_CHARS
        );
    }

    #[test]
    fn malformed_batches_are_refused_naming_the_field() {
        for (body, field) in [
            ("{".to_string(), "malformed"),
            (
                batch(r#"{"monitor_id":0,"scheduled_at":1,"at":1,"ok":true}"#),
                "monitor_id",
            ),
            (
                batch(&format!(
                    r#"{{"monitor_id":1,"scheduled_at":{},"at":{NOW},"ok":true}}"#,
                    NOW + 3_600_000
                )),
                "scheduled_at",
            ),
            (
                batch(&format!(
                    r#"{{"monitor_id":1,"scheduled_at":{NOW},"at":{NOW},"ok":true,"latency_ms":-1}}"#
                )),
                "latency_ms",
            ),
            (
                r#"{"batch_id":"","agent_id":"a","results":[]}"#.to_string(),
                "batch_id",
            ),
        ] {
            let e = decode_batch(body.as_bytes(), NOW).unwrap_err();
            assert!(e.contains(field), "{body}: {e}");
        }
    }

    #[test]
    fn a_dead_agent_only_loses_its_own_monitors() {
        let three: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let two: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut moved = 0;
        for id in 1..=300 {
            let before = owner(&three, id).unwrap();
            let after = owner(&two, id).unwrap();
            if before != "c" {
                assert_eq!(before, after, "monitor {id} moved though its agent stayed");
            } else {
                moved += 1;
            }
        }
        // Each agent gets a fair share (about 100 of 300).
        assert!((60..140).contains(&moved), "{moved}");
    }
}
