//! What one NRQL query may cost, and how many run at once: a timeout, a memory budget for the
//! state it keeps while reading (groups, values kept for percentiles, distinct values, the page
//! of raw rows), a cap on the rows of an answer (facet values × buckets), and a global limit of
//! queries in flight. A query past a limit is refused with a message naming the setting, as
//! Prometheus does with its query limits: out of time or out of slots is `503` with
//! `Retry-After` (the server is busy; the same query may run later), too much memory or too
//! many rows is `422` (the query itself is too large; narrow it).
//!
//! Viewers (the API, the query page, dashboards, the CLI) and alert conditions queue on
//! separate slots of the same size: a crowd of people looking at dashboards cannot keep an
//! alert from being evaluated, and a backlog of alert windows cannot lock people out. Alert
//! evaluations wait for a slot for as long as their timeout instead of being refused at once.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::QueryError;

/// The limits, from the `query` section of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest a query may run (`query.timeout_seconds`, default 60 s).
    pub timeout: Duration,
    /// Queries of viewers in flight at once, and as many for alert conditions
    /// (`query.max_concurrent`, default 4).
    pub max_concurrent: usize,
    /// How long a viewer's query waits for a slot before it is refused
    /// (`query.queue_seconds`, default 2 s).
    pub queue: Duration,
    /// Memory one query may keep while it reads (`query.max_memory_bytes`, default 64 MiB).
    pub max_memory_bytes: usize,
    /// Most rows (facet values × buckets) one answer may hold (`query.max_answer_rows`,
    /// default 20,000).
    pub max_answer_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(60),
            max_concurrent: 4,
            queue: Duration::from_secs(2),
            max_memory_bytes: 64 << 20,
            max_answer_rows: 20_000,
        }
    }
}

/// Who is asking, which decides the slots a query queues on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A person or a program reading: refused after a short wait when every slot is taken.
    Viewer,
    /// An alert condition's evaluation: waits for its own slots.
    Alert,
}

/// The process's limits and slots.
struct Gate {
    limits: Limits,
    viewers: Semaphore,
    alerts: Semaphore,
}

static GATE: OnceLock<Gate> = OnceLock::new();

/// Sets the limits of this process; the server calls it once at start, before any query.
/// Returns false when queries already ran under the defaults (the limits are then unchanged).
pub fn configure(limits: Limits) -> bool {
    let slots = limits.max_concurrent.max(1);
    GATE.set(Gate {
        viewers: Semaphore::new(slots),
        alerts: Semaphore::new(slots),
        limits,
    })
    .is_ok()
}

fn gate() -> &'static Gate {
    GATE.get_or_init(|| {
        let limits = Limits::default();
        Gate {
            viewers: Semaphore::new(limits.max_concurrent),
            alerts: Semaphore::new(limits.max_concurrent),
            limits,
        }
    })
}

/// The limits in force.
pub fn current() -> &'static Limits {
    &gate().limits
}

/// Runs `query` in a slot of `lane`, within the timeout; `query` receives the budget it must
/// keep while it reads.
pub(super) async fn run<T, F>(lane: Lane, query: impl FnOnce(Budget) -> F) -> Result<T, QueryError>
where
    F: std::future::Future<Output = Result<T, QueryError>>,
{
    let g = gate();
    let limits = &g.limits;
    let (slots, wait) = match lane {
        Lane::Viewer => (&g.viewers, limits.queue),
        Lane::Alert => (&g.alerts, limits.timeout),
    };
    let busy = || QueryError::Busy(limits.max_concurrent.max(1));
    let _permit = match tokio::time::timeout(wait, slots.acquire()).await {
        Ok(Ok(p)) => p,
        // The semaphore is never closed; a timeout means every slot stayed taken.
        Ok(Err(_)) | Err(_) => {
            metrics::counter!("lookout_nrql_refused_total", "limit" => "max_concurrent")
                .increment(1);
            return Err(busy());
        }
    };
    let budget = Budget::new(limits);
    // The executor checks the deadline between rows too; this catches the waits in between
    // (a slow statement, a slow disk).
    let answer = match tokio::time::timeout(limits.timeout, query(budget)).await {
        Ok(answer) => answer,
        Err(_) => Err(QueryError::Timeout(limits.timeout)),
    };
    let refused = match &answer {
        Err(QueryError::Timeout(_)) => "timeout_seconds",
        Err(QueryError::TooLarge(_)) => "size",
        _ => return answer,
    };
    metrics::counter!("lookout_nrql_refused_total", "limit" => refused).increment(1);
    answer
}

/// What a running query may still spend: its deadline and its memory.
#[derive(Debug)]
pub(super) struct Budget {
    deadline: Instant,
    timeout: Duration,
    max_memory: usize,
    max_answer_rows: usize,
    rows: u32,
}

impl Budget {
    fn new(limits: &Limits) -> Budget {
        Budget {
            deadline: Instant::now() + limits.timeout,
            timeout: limits.timeout,
            max_memory: limits.max_memory_bytes,
            max_answer_rows: limits.max_answer_rows,
            rows: 0,
        }
    }

    /// Called once per row read with the bytes the query keeps: refuses past the deadline
    /// (checked every 256 rows; reading a clock per row would cost more than some rows) or
    /// past the memory budget.
    pub(super) fn row(&mut self, kept_bytes: usize) -> Result<(), QueryError> {
        self.rows = self.rows.wrapping_add(1);
        if self.rows.is_multiple_of(256) && Instant::now() >= self.deadline {
            return Err(QueryError::Timeout(self.timeout));
        }
        if kept_bytes > self.max_memory {
            return Err(QueryError::TooLarge(format!(
                "the query needs more than {} MiB of memory to keep its groups and values (query.max_memory_bytes = {}); narrow it with SINCE/UNTIL or WHERE, or facet by fewer values",
                self.max_memory >> 20,
                self.max_memory
            )));
        }
        Ok(())
    }

    /// Refuses an answer of more than `query.max_answer_rows` rows.
    pub(super) fn answer_rows(&self, facets: usize, buckets: usize) -> Result<(), QueryError> {
        let rows = facets.saturating_mul(buckets);
        if rows > self.max_answer_rows {
            return Err(QueryError::TooLarge(format!(
                "the answer would hold {facets} facet values × {buckets} buckets = {rows} rows, more than query.max_answer_rows = {}; use a lower LIMIT or a wider TIMESERIES bucket",
                self.max_answer_rows
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Budget, Limits};
    use crate::query::nrql::QueryError;

    #[test]
    fn an_answer_past_max_answer_rows_is_refused_naming_it() {
        let b = Budget::new(&Limits {
            max_answer_rows: 100,
            ..Limits::default()
        });
        assert!(b.answer_rows(10, 10).is_ok());
        match b.answer_rows(11, 10) {
            Err(QueryError::TooLarge(m)) => {
                assert!(m.contains("11 facet values × 10 buckets = 110 rows"), "{m}");
                assert!(m.contains("query.max_answer_rows = 100"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn memory_past_the_budget_is_refused_naming_it() {
        let mut b = Budget::new(&Limits {
            max_memory_bytes: 1 << 20,
            ..Limits::default()
        });
        assert!(b.row(1 << 20).is_ok());
        match b.row((1 << 20) + 1) {
            Err(QueryError::TooLarge(m)) => assert!(m.contains("query.max_memory_bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
