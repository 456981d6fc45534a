//! Pairing the two ends of calls between services, for the service map. A call is a client span
//! in one service and the request span it caused in another (whose parent is the client span);
//! their exports arrive in either order, seconds apart. The rollup consumer keeps the recent
//! unpaired ends in memory: whichever end is folded second finds the first and counts the edge,
//! so each call counts once.
//!
//! In memory rather than in a table: ends are keyed by random span ids, and at tens of thousands
//! of calls a second the inserts and lookups of a table of them took most of each fold
//! (measured: seconds per fold, growing with the table). The cost is that a call whose two ends
//! are folded by different processes (across a restart, or a handover between replicas) is not
//! paired.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use lookout_apm::block::trace_key;
use lookout_apm::rollup::Link;

/// Unpaired ends older than this are dropped: the two spans of one call arrive seconds apart.
const TTL_MS: i64 = 600_000;

/// Most unpaired ends kept; the oldest go first.
const CAPACITY: usize = 200_000;

/// Most bytes the unpaired ends may hold (by [`End::bytes`]); the oldest go first. Entries are
/// small and fixed-size but for the service name, which the sender chooses (up to 8 KiB): without
/// this, 200,000 ends with long names would hold gigabytes for ten minutes.
const LINK_BYTES: usize = 32 << 20;

/// What one end costs besides its service name: the key and value in the map, the key again in
/// the queue, and the map's own overhead, rounded up.
const END_OVERHEAD: usize = 96;

/// (project, trace key, client span id): both ends of a call share it. Span ids are 8 bytes (the
/// decoders refuse others), so the id is kept as the number it is rather than as hex text.
type CallKey = (i64, i64, u64);

#[derive(Debug)]
struct End {
    client: bool,
    /// Shared by the ends of one fold that name the same service.
    service: Arc<str>,
}

impl End {
    /// The estimated memory this end holds (the name counted whole even when shared).
    fn bytes(&self) -> usize {
        END_OVERHEAD + self.service.len()
    }
}

/// A call found paired: (project, minute-resolution start ms, caller, callee, failed, ms).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub project: i64,
    pub start_ms: i64,
    pub caller: String,
    pub callee: String,
    pub error: bool,
    pub duration_ms: f64,
}

/// Recent unpaired ends of calls.
#[derive(Debug, Default)]
pub(crate) struct RecentLinks {
    ends: HashMap<CallKey, End>,
    order: VecDeque<(i64, CallKey)>,
    /// The sum of [`End::bytes`] over `ends`.
    bytes: usize,
}

/// A span id's 16 hex digits as a number; `None` for anything else (no decoder stores that).
fn span_number(hex: &str) -> Option<u64> {
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

impl RecentLinks {
    /// Pairs `links` (in fold order) with the ends seen before them; returns the calls found.
    /// The later end's figures stand for the call.
    pub(crate) fn pair(&mut self, links: &[(i64, Link)], now_ms: i64) -> Vec<Call> {
        let mut calls = Vec::new();
        // One copy of each service name per fold, however many ends name it.
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        for (project, l) in links {
            let call = if l.client {
                l.span_id.as_str()
            } else {
                match &l.parent {
                    Some(p) => p.as_str(),
                    None => continue,
                }
            };
            let Some(call) = span_number(call) else {
                continue;
            };
            let key = (*project, trace_key(&l.trace_id), call);
            match self.ends.get(&key) {
                Some(other) if other.client != l.client && *other.service != *l.service => {
                    let (caller, callee) = if l.client {
                        (l.service.clone(), other.service.to_string())
                    } else {
                        (other.service.to_string(), l.service.clone())
                    };
                    calls.push(Call {
                        project: *project,
                        start_ms: l.start_ms,
                        caller,
                        callee,
                        error: l.error,
                        duration_ms: l.duration_ms,
                    });
                    self.remove(&key);
                }
                // The same end again (an exporter retry), or a call within one service.
                Some(_) => {}
                None => {
                    let service = names
                        .entry(l.service.as_str())
                        .or_insert_with(|| Arc::from(l.service.as_str()))
                        .clone();
                    let end = End {
                        client: l.client,
                        service,
                    };
                    self.bytes += end.bytes();
                    self.ends.insert(key, end);
                    self.order.push_back((now_ms, key));
                }
            }
        }
        while let Some((at, _)) = self.order.front() {
            if self.order.len() <= CAPACITY && self.bytes <= LINK_BYTES && *at >= now_ms - TTL_MS {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.remove(&key);
            }
        }
        calls
    }

    fn remove(&mut self, key: &CallKey) {
        if let Some(end) = self.ends.remove(key) {
            self.bytes -= end.bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(span: &str, parent: Option<&str>, service: &str, client: bool) -> (i64, Link) {
        (
            1,
            Link {
                trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
                span_id: span.into(),
                parent: parent.map(str::to_string),
                service: service.into(),
                client,
                start_ms: 60_000,
                duration_ms: 12.0,
                error: false,
            },
        )
    }

    #[test]
    fn a_call_pairs_once_in_either_order_and_retries_do_not_count_twice() {
        let client = link("00000000000000c1", Some("00000000000000a1"), "shop", true);
        let server = link(
            "00000000000000b1",
            Some("00000000000000c1"),
            "payments",
            false,
        );
        for order in [[&client, &server], [&server, &client]] {
            let mut recent = RecentLinks::default();
            let mut calls = recent.pair(std::slice::from_ref(order[0]), 0);
            calls.extend(recent.pair(&[order[0].clone(), order[1].clone(), order[1].clone()], 0));
            assert_eq!(calls.len(), 1, "{order:?}");
            assert_eq!(
                (calls[0].caller.as_str(), calls[0].callee.as_str()),
                ("shop", "payments")
            );
        }
    }

    #[test]
    fn unpaired_ends_expire() {
        let mut recent = RecentLinks::default();
        let client = link("00000000000000c1", None, "shop", true);
        let server = link(
            "00000000000000b1",
            Some("00000000000000c1"),
            "payments",
            false,
        );
        recent.pair(&[client], 0);
        recent.pair(&[link("00000000000000c2", None, "shop", true)], TTL_MS + 1);
        assert!(recent.pair(&[server], TTL_MS + 2).is_empty());
        assert_eq!(
            recent.ends.len(),
            2,
            "the expired end went, the new ones stay"
        );
    }

    #[test]
    fn long_service_names_are_held_within_the_byte_budget_dropping_the_oldest() {
        let mut recent = RecentLinks::default();
        let long = "s".repeat(8 * 1024);
        let n = 3 * LINK_BYTES / (8 * 1024);
        // Each end in its own fold, so no two share a name.
        for i in 0..n {
            let mut end = link(&format!("{i:016x}"), None, &long, true);
            end.1.start_ms = i as i64;
            recent.pair(&[end], 0);
        }
        assert!(recent.bytes <= LINK_BYTES, "{} bytes held", recent.bytes);
        assert!(recent.ends.len() < n / 2, "{} ends kept", recent.ends.len());
        let answer = |i: usize| {
            link(
                "00000000000000b1",
                Some(&format!("{i:016x}")),
                "payments",
                false,
            )
        };
        assert!(
            recent.pair(&[answer(0)], 1).is_empty(),
            "the oldest end was dropped"
        );
        assert_eq!(
            recent.pair(&[answer(n - 1)], 1).len(),
            1,
            "the newest pairs"
        );
    }

    #[test]
    fn ends_whose_ids_are_not_8_bytes_are_not_kept() {
        let mut recent = RecentLinks::default();
        recent.pair(&[link(&"ab".repeat(4096), None, "shop", true)], 0);
        assert!(recent.ends.is_empty());
        assert_eq!(recent.bytes, 0);
    }
}
