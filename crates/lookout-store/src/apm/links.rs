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

use lookout_apm::block::trace_key;
use lookout_apm::rollup::Link;

/// Unpaired ends older than this are dropped: the two spans of one call arrive seconds apart.
const TTL_MS: i64 = 600_000;

/// Most unpaired ends kept (about 100 bytes each); the oldest go first.
const CAPACITY: usize = 200_000;

/// (project, trace key, client span id): both ends of a call share it.
type CallKey = (i64, i64, String);

#[derive(Debug)]
struct End {
    client: bool,
    service: String,
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
}

impl RecentLinks {
    /// Pairs `links` (in fold order) with the ends seen before them; returns the calls found.
    /// The later end's figures stand for the call.
    pub(crate) fn pair(&mut self, links: &[(i64, Link)], now_ms: i64) -> Vec<Call> {
        let mut calls = Vec::new();
        for (project, l) in links {
            let call = if l.client {
                l.span_id.clone()
            } else {
                match &l.parent {
                    Some(p) => p.clone(),
                    None => continue,
                }
            };
            let key = (*project, trace_key(&l.trace_id), call);
            match self.ends.get(&key) {
                Some(other) if other.client != l.client && other.service != l.service => {
                    let (caller, callee) = if l.client {
                        (l.service.clone(), other.service.clone())
                    } else {
                        (other.service.clone(), l.service.clone())
                    };
                    calls.push(Call {
                        project: *project,
                        start_ms: l.start_ms,
                        caller,
                        callee,
                        error: l.error,
                        duration_ms: l.duration_ms,
                    });
                    self.ends.remove(&key);
                }
                // The same end again (an exporter retry), or a call within one service.
                Some(_) => {}
                None => {
                    self.ends.insert(
                        key.clone(),
                        End {
                            client: l.client,
                            service: l.service.clone(),
                        },
                    );
                    self.order.push_back((now_ms, key));
                }
            }
        }
        while let Some((at, _)) = self.order.front() {
            if self.order.len() <= CAPACITY && *at >= now_ms - TTL_MS {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.ends.remove(&key);
            }
        }
        calls
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
}
