-- Query (NRQL) alert conditions (SQLite): each condition's evaluation state, one row per policy
-- and condition index. spec_hash: the condition it was computed for (a changed condition starts
-- over, as New Relic resets evaluation on edits); evaluated_until: the end of the newest window
-- evaluated, ms; state: the signals (facet values) with their windows, as JSON.
CREATE TABLE nrql_condition_state (
    policy_id INTEGER NOT NULL REFERENCES alert_policies(id) ON DELETE CASCADE,
    condition INTEGER NOT NULL,
    spec_hash TEXT NOT NULL,
    evaluated_until INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (policy_id, condition)
);
