-- Raw spans move from a row per span to compressed blocks (lookout_apm::block): one row per
-- export and resource, with a summary searches filter on, and a trace index. RED figures never
-- read raw spans, so the rollups are untouched; the raw window held in apm_spans (at most the
-- 7-day retention, from before this release) is dropped rather than converted.
DROP TABLE apm_spans;
CREATE TABLE apm_span_blocks (
    -- Assigned at ingest (lookout_store::apm::block_id): time-ordered, so rows append.
    id BIGINT PRIMARY KEY,
    project_id BIGINT NOT NULL,
    service TEXT NOT NULL,
    instance TEXT,
    resource TEXT NOT NULL,
    first_ns BIGINT NOT NULL,
    last_ns BIGINT NOT NULL,
    spans BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    max_request_ns BIGINT NOT NULL,
    max_db_ns BIGINT NOT NULL,
    max_external_ns BIGINT NOT NULL,
    max_internal_ns BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    request_errors BIGINT NOT NULL,
    request_ns BIGINT NOT NULL,
    -- Last, so that scans of the summary columns never read the payload's overflow pages.
    payload BYTEA NOT NULL
);
CREATE INDEX apm_span_blocks_time ON apm_span_blocks (project_id, last_ns);
-- Which blocks hold a trace: keyed by the day the block was stored (from its id, so retention
-- drops whole days) and the trace's first 64 bits (lookout_apm::block::trace_key).
CREATE TABLE apm_trace_index (
    day BIGINT NOT NULL,
    trace_key BIGINT NOT NULL,
    block BIGINT NOT NULL,
    PRIMARY KEY (day, trace_key, block)
);
-- The trace keys of blocks not yet in apm_trace_index (8 bytes each, little-endian), written with
-- each block and moved into the index in large sorted batches: trace keys are random, and
-- inserting each export's keys straight into the index dirtied a page per key per commit.
CREATE TABLE apm_trace_pending (
    block BIGINT PRIMARY KEY,
    day BIGINT NOT NULL,
    traces BYTEA NOT NULL
);
-- Database statements by the transaction that issued them, per hour (the Databases page's
-- "called from"), folded from each export's rollup part.
CREATE TABLE apm_statement_calls (
    project_id BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    statement TEXT NOT NULL,
    service TEXT NOT NULL,
    txn TEXT NOT NULL,
    calls BIGINT NOT NULL,
    sum_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project_id, statement, bucket, service, txn)
);
CREATE INDEX apm_statement_calls_time ON apm_statement_calls (bucket);
-- Rollup parts are stored compressed (lookout_apm::rollup::Part::pack); `payload` stays for
-- parts written before, and is empty in new ones.
ALTER TABLE apm_parts ADD COLUMN packed BYTEA;
-- Unpaired ends of calls between services are kept by the rollup consumer in memory now
-- (lookout_store::apm::links).
DROP TABLE apm_links;
