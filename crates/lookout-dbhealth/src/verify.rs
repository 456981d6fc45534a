//! Index verification: a YAML file lists queries and what must hold of their plans — "uses index
//! X", "no sequential scan on table T", "cost below N", "rows examined below N" — checked with
//! `EXPLAIN (FORMAT JSON)` (with `ANALYZE` when rows are counted) by walking the plan tree. A rule
//! that breaks names the plan nodes that broke it, and says whether the index could serve the
//! query at all (re-planned with sequential scans off) or the planner merely preferred a scan.
//!
//! ```yaml
//! verify:
//!   - name: orders by customer uses its index
//!     query: "SELECT * FROM orders WHERE customer_id = 42"
//!     uses_index: orders_customer_idx
//!   - name: orders by status never scans the table
//!     query: "SELECT * FROM orders WHERE status = 'open'"
//!     no_seq_scan: orders
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};

/// The file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyFile {
    pub verify: Vec<Rule>,
}

/// One query and what must hold of its plan.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// With its sample parameters written in (`customer_id = 42`).
    pub query: String,
    /// The plan reads through this index.
    #[serde(default)]
    pub uses_index: Option<String>,
    /// The plan never reads this table (`orders` or `public.orders`) sequentially.
    #[serde(default)]
    pub no_seq_scan: Option<String>,
    /// The planner's total cost is below this.
    #[serde(default)]
    pub cost_below: Option<f64>,
    /// Rows the scans read (returned plus removed by filters, times loops) are below this; runs
    /// the query (`EXPLAIN ANALYZE`, rolled back).
    #[serde(default)]
    pub rows_examined_below: Option<f64>,
    /// Run the query for its plan even without a rows rule (`EXPLAIN ANALYZE`, rolled back).
    #[serde(default)]
    pub analyze: bool,
}

/// A rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub name: String,
    pub passed: bool,
    /// Why it failed (the nodes that broke it), or what held.
    pub detail: String,
}

/// Reads and checks a verification file; the message names the rule and field at fault.
pub fn parse(text: &str) -> Result<Vec<Rule>, String> {
    let f: VerifyFile = serde_yaml_ng::from_str(text).map_err(|e| format!("verify file: {e}"))?;
    for (i, r) in f.verify.iter().enumerate() {
        let place = format!("verify[{i}] ({:?})", r.name);
        if r.name.trim().is_empty() {
            return Err(format!("verify[{i}].name is required"));
        }
        if r.query.trim().is_empty() {
            return Err(format!("{place}.query is required"));
        }
        if r.uses_index.is_none()
            && r.no_seq_scan.is_none()
            && r.cost_below.is_none()
            && r.rows_examined_below.is_none()
        {
            return Err(format!(
                "{place}: give at least one of uses_index, no_seq_scan, cost_below, rows_examined_below"
            ));
        }
        for (field, v) in [
            ("cost_below", r.cost_below),
            ("rows_examined_below", r.rows_examined_below),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return Err(format!("{place}.{field} must be a positive number"));
            }
        }
    }
    Ok(f.verify)
}

/// A node of a plan, as the rules read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub node_type: String,
    pub relation: Option<String>,
    pub schema: Option<String>,
    pub index: Option<String>,
    pub filter: Option<String>,
    pub actual_rows: Option<f64>,
    pub loops: f64,
    pub removed: f64,
    pub total_cost: f64,
}

impl Node {
    fn describe(&self) -> String {
        let mut s = self.node_type.clone();
        if let Some(i) = &self.index {
            s += &format!(" using {i}");
        }
        if let Some(r) = &self.relation {
            s += &format!(" on {r}");
        }
        if let Some(f) = &self.filter {
            s += &format!(" (filter: {f})");
        }
        if let Some(rows) = self.actual_rows {
            s += &format!(", {} rows × {} loops", rows, self.loops);
            if self.removed > 0.0 {
                s += &format!(", {} removed by filters", self.removed);
            }
        }
        s += &format!(", cost {:.2}", self.total_cost);
        s
    }

    fn is_scan(&self) -> bool {
        self.node_type.ends_with("Scan") && self.node_type != "Bitmap Index Scan"
    }
}

/// The nodes of an `EXPLAIN (FORMAT JSON)` answer, depth first, and the top node's total cost.
pub fn nodes(explain: &Value) -> Result<(Vec<Node>, f64), String> {
    let plan = explain
        .get(0)
        .and_then(|e| e.get("Plan"))
        .ok_or("EXPLAIN output without a plan")?;
    let mut out = Vec::new();
    let mut todo = vec![plan];
    while let Some(p) = todo.pop() {
        let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        let num = |k: &str| p.get(k).and_then(Value::as_f64);
        out.push(Node {
            node_type: text("Node Type").unwrap_or_default(),
            relation: text("Relation Name"),
            schema: text("Schema"),
            index: text("Index Name"),
            filter: text("Filter"),
            actual_rows: num("Actual Rows"),
            loops: num("Actual Loops").unwrap_or(1.0),
            removed: num("Rows Removed by Filter").unwrap_or(0.0)
                + num("Rows Removed by Index Recheck").unwrap_or(0.0),
            total_cost: num("Total Cost").unwrap_or(0.0),
        });
        if let Some(children) = p.get("Plans").and_then(Value::as_array) {
            todo.extend(children.iter().rev());
        }
        if out.len() > 100_000 {
            return Err("plan too large".into());
        }
    }
    let cost = plan
        .get("Total Cost")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    Ok((out, cost))
}

fn same_table(rule: &str, n: &Node) -> bool {
    match (rule.split_once('.'), &n.relation) {
        (_, None) => false,
        (Some((schema, table)), Some(r)) => {
            r == table && n.schema.as_deref().is_none_or(|s| s == schema)
        }
        (None, Some(r)) => r == rule,
    }
}

/// Judges a rule against a plan. `Err` carries the broken rules with their nodes.
pub fn judge(rule: &Rule, nodes: &[Node], cost: f64) -> Result<String, String> {
    let mut broken = Vec::new();
    let mut held = Vec::new();
    if let Some(idx) = &rule.uses_index {
        let using: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.index.as_deref() == Some(idx))
            .collect();
        if using.is_empty() {
            let scans: Vec<String> = nodes
                .iter()
                .filter(|n| n.is_scan())
                .map(Node::describe)
                .collect();
            broken.push(format!("does not use {idx}: {}", scans.join("; ")));
        } else {
            held.push(format!("uses {idx} ({})", using[0].node_type));
        }
    }
    if let Some(t) = &rule.no_seq_scan {
        let seq: Vec<String> = nodes
            .iter()
            .filter(|n| n.node_type == "Seq Scan" && same_table(t, n))
            .map(Node::describe)
            .collect();
        if seq.is_empty() {
            held.push(format!("no sequential scan on {t}"));
        } else {
            broken.push(format!("scans {t} sequentially: {}", seq.join("; ")));
        }
    }
    if let Some(max) = rule.cost_below {
        if cost < max {
            held.push(format!("cost {cost:.2} < {max}"));
        } else {
            broken.push(format!("cost {cost:.2} is not below {max}"));
        }
    }
    if let Some(max) = rule.rows_examined_below {
        let scans: Vec<&Node> = nodes.iter().filter(|n| n.is_scan()).collect();
        let examined: f64 = scans
            .iter()
            .map(|n| (n.actual_rows.unwrap_or(0.0) + n.removed) * n.loops)
            .sum();
        if examined < max {
            held.push(format!("{examined} rows examined < {max}"));
        } else {
            let detail: Vec<String> = scans.iter().map(|n| n.describe()).collect();
            broken.push(format!(
                "{examined} rows examined, not below {max}: {}",
                detail.join("; ")
            ));
        }
    }
    if broken.is_empty() {
        Ok(held.join("; "))
    } else {
        Err(broken.join("; "))
    }
}

async fn explain(
    conn: &mut PgConnection,
    query: &str,
    analyze: bool,
    seqscan_off: bool,
) -> Result<Value, sqlx::Error> {
    // ANALYZE runs the statement: inside a transaction that is always rolled back, with a
    // timeout, so a verification never changes data or hangs CI.
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = '30s'")
        .execute(&mut *tx)
        .await?;
    if seqscan_off {
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await?;
    }
    let opts = if analyze {
        "ANALYZE, BUFFERS, FORMAT JSON"
    } else {
        "FORMAT JSON"
    };
    let row = sqlx::query(&format!("EXPLAIN ({opts}) {query}"))
        .fetch_one(&mut *tx)
        .await;
    tx.rollback().await?;
    // EXPLAIN takes no alias; PostgreSQL always names its one column `QUERY PLAN`.
    let v: Value = row?.try_get("QUERY PLAN")?;
    Ok(v)
}

/// Runs every rule against the database.
pub async fn run(conn: &mut PgConnection, rules: &[Rule]) -> Vec<Verification> {
    let mut out = Vec::new();
    for r in rules {
        let analyze = r.analyze || r.rows_examined_below.is_some();
        let verdict = match explain(conn, &r.query, analyze, false).await {
            Err(e) => Err(format!("the query failed: {}", crate::sql_error(&e))),
            Ok(plan) => match nodes(&plan) {
                Err(e) => Err(e),
                Ok((ns, cost)) => match judge(r, &ns, cost) {
                    Ok(held) => Ok(held),
                    Err(broken) => Err(broken + &index_hint(conn, r).await),
                },
            },
        };
        out.push(match verdict {
            Ok(detail) => Verification {
                name: r.name.clone(),
                passed: true,
                detail,
            },
            Err(detail) => Verification {
                name: r.name.clone(),
                passed: false,
                detail,
            },
        });
    }
    out
}

/// Whether an index could serve the query at all: the plan with sequential scans off.
async fn index_hint(conn: &mut PgConnection, r: &Rule) -> String {
    if r.uses_index.is_none() && r.no_seq_scan.is_none() {
        return String::new();
    }
    let Ok(plan) = explain(conn, &r.query, false, true).await else {
        return String::new();
    };
    let Ok((ns, _)) = nodes(&plan) else {
        return String::new();
    };
    let wanted = |n: &Node| match &r.uses_index {
        Some(i) => n.index.as_deref() == Some(i.as_str()),
        None => n.index.is_some(),
    };
    match ns.iter().find(|n| wanted(n)) {
        Some(n) => format!(
            ". With sequential scans off the planner uses {} ({}): the index can serve this query, the planner prefers a scan on this data (check the table's statistics, or the sample parameters)",
            n.index.as_deref().unwrap_or("an index"),
            n.node_type
        ),
        None => match &r.uses_index {
            Some(i) => format!(". Even with sequential scans off {i} is not used: it cannot serve this query as written, or does not exist"),
            None => ". Even with sequential scans off no index is used: no index can serve this query as written".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> Value {
        json!([{"Plan": {"Node Type": "Bitmap Heap Scan", "Relation Name": "orders", "Total Cost": 52.3,
            "Actual Rows": 20.0, "Actual Loops": 1.0, "Rows Removed by Index Recheck": 0.0,
            "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "orders_customer_idx", "Total Cost": 4.4}]}}])
    }

    fn rule(yaml: &str) -> Rule {
        parse(&format!(
            "verify:\n  - name: r\n    query: SELECT 1\n{yaml}"
        ))
        .unwrap()
        .remove(0)
    }

    #[test]
    fn a_bitmap_scan_through_the_index_uses_it() {
        let (ns, cost) = nodes(&plan()).unwrap();
        assert_eq!(ns.len(), 2);
        assert!(judge(&rule("    uses_index: orders_customer_idx\n"), &ns, cost).is_ok());
        let e = judge(&rule("    uses_index: orders_other_idx\n"), &ns, cost).unwrap_err();
        assert!(
            e.contains("does not use orders_other_idx: Bitmap Heap Scan on orders"),
            "{e}"
        );
        assert!(judge(&rule("    no_seq_scan: public.orders\n"), &ns, cost).is_ok());
        assert!(judge(&rule("    cost_below: 100\n"), &ns, cost).is_ok());
        assert!(judge(&rule("    cost_below: 50\n"), &ns, cost)
            .unwrap_err()
            .contains("52.30"));
        assert!(judge(&rule("    rows_examined_below: 21\n"), &ns, cost).is_ok());
    }

    #[test]
    fn a_seq_scan_names_its_node() {
        let p = json!([{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 3000.0,
            "Filter": "(status = 'open'::text)", "Actual Rows": 10.0, "Actual Loops": 1.0, "Rows Removed by Filter": 99990.0}}]);
        let (ns, cost) = nodes(&p).unwrap();
        let e = judge(
            &rule("    no_seq_scan: orders\n    rows_examined_below: 1000\n"),
            &ns,
            cost,
        )
        .unwrap_err();
        assert!(
            e.contains(
                "scans orders sequentially: Seq Scan on orders (filter: (status = 'open'::text))"
            ),
            "{e}"
        );
        assert!(e.contains("100000 rows examined, not below 1000"), "{e}");
    }

    #[test]
    fn files_are_checked_before_anything_runs() {
        assert!(parse("verify:\n  - name: x\n    query: SELECT 1\n")
            .unwrap_err()
            .contains("at least one"));
        assert!(
            parse("verify:\n  - name: x\n    query: SELECT 1\n    uses_idx: a\n")
                .unwrap_err()
                .contains("uses_idx")
        );
        assert!(
            parse("verify:\n  - name: x\n    query: ''\n    uses_index: a\n")
                .unwrap_err()
                .contains("query is required")
        );
        assert!(
            parse("verify:\n  - name: x\n    query: SELECT 1\n    cost_below: -1\n")
                .unwrap_err()
                .contains("positive")
        );
    }
}
