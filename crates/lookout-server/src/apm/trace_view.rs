//! Shapes for trace and service-map views: a trace's spans in waterfall order (parents before
//! children, siblings by start, with depth), and the service map's nodes and edges.

use std::collections::{BTreeMap, HashMap};

use lookout_store::apm::query::{self, SpanRow};
use lookout_store::Store;
use serde::Serialize;

/// A trace laid out for a waterfall.
#[derive(Debug, Clone)]
pub struct Tree {
    /// (index into the spans, depth), in display order.
    pub order: Vec<(usize, usize)>,
    /// Earliest start, ns.
    pub start_ns: i64,
    /// Latest end minus earliest start, ns.
    pub duration_ns: i64,
    /// Services in the trace, in order of appearance.
    pub services: Vec<String>,
}

impl Tree {
    /// Orders `spans` depth-first; spans whose parent is missing (not sent, or still in flight)
    /// start their own subtree at depth 0. Iterative, so a 10,000-span or very deep trace costs
    /// one sort and one pass.
    pub fn of(spans: &[SpanRow]) -> Tree {
        let index: HashMap<&str, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.as_str(), i))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            match s.parent_span_id.as_deref().and_then(|p| index.get(p)) {
                Some(&p) if p != i => children[p].push(i),
                _ => roots.push(i),
            }
        }
        let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].start_ns, i));
        by_start(&mut roots);
        for c in &mut children {
            by_start(c);
        }
        let mut order = Vec::with_capacity(spans.len());
        let mut visited = vec![false; spans.len()];
        let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue; // a parent cycle in bad data
            }
            order.push((i, depth));
            for &c in children[i].iter().rev() {
                stack.push((c, depth + 1));
            }
        }
        // Spans only reachable through a cycle: show them flat rather than drop them.
        for (i, v) in visited.iter().enumerate() {
            if !v {
                order.push((i, 0));
            }
        }
        let start_ns = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end_ns = spans
            .iter()
            .map(|s| s.start_ns.saturating_add(s.duration_ns))
            .max()
            .unwrap_or(0);
        let mut services = Vec::new();
        for &(i, _) in &order {
            if !services.contains(&spans[i].service) {
                services.push(spans[i].service.clone());
            }
        }
        Tree {
            order,
            start_ns,
            duration_ns: end_ns - start_ns,
            services,
        }
    }
}

/// A node of the service map.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Service name, database system or host.
    pub id: String,
    /// `service`, `db` or `external`.
    pub kind: String,
}

/// The service map: every service seen (even one without calls), and the called databases and
/// hosts.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceMap {
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Calls.
    pub edges: Vec<query::Edge>,
}

impl ServiceMap {
    /// The map of `projects` over `[since, until)` ms.
    pub async fn build(
        store: &Store,
        projects: &[i64],
        since: i64,
        until: i64,
    ) -> lookout_store::Result<ServiceMap> {
        let edges = query::edges(store, projects, since, until).await?;
        let mut nodes: BTreeMap<String, String> = BTreeMap::new();
        for s in query::services(store, projects, since).await? {
            nodes.insert(s.name, "service".into());
        }
        for e in &edges {
            nodes
                .entry(e.source.clone())
                .or_insert_with(|| "service".into());
            nodes
                .entry(e.target.clone())
                .or_insert_with(|| e.target_kind.clone());
        }
        Ok(ServiceMap {
            nodes: nodes
                .into_iter()
                .map(|(id, kind)| Node { id, kind })
                .collect(),
            edges,
        })
    }
}
