-- Query (NRQL) alert conditions (PostgreSQL): each condition's evaluation state, one row per policy
-- and condition index. spec_hash: the condition it was computed for (a changed condition starts
-- over, as New Relic resets evaluation on edits); evaluated_until: the end of the newest window
-- evaluated, ms; state: the signals (facet values) with their windows, as JSON.
CREATE TABLE nrql_condition_state (
    policy_id BIGINT NOT NULL REFERENCES alert_policies(id) ON DELETE CASCADE,
    condition BIGINT NOT NULL,
    spec_hash TEXT NOT NULL,
    evaluated_until BIGINT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (policy_id, condition)
);
