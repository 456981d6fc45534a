-- Downsampled tiers of the metric store (issue 29), PostgreSQL. See lookout-store/src/prom/tiers.rs.
-- One row per series, resolution (5 minutes or 1 hour, in ms) and span of 288 buckets (a day at
-- 5 minutes, 12 days at 1 hour): per bucket the count, sum, min, max, first, last and
-- reset-adjusted increase of the raw samples, each a compressed chunk in `data`.
CREATE TABLE prom_tiers (
    series_id BIGINT NOT NULL REFERENCES prom_series(id) ON DELETE CASCADE,
    resolution BIGINT NOT NULL,
    span_start BIGINT NOT NULL,
    max_t BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (series_id, resolution, span_start)
);
CREATE INDEX prom_tiers_span ON prom_tiers (resolution, span_start);
-- Where downsampling and retention stand (one row): raw blocks starting before `downsampled_to`
-- are in the tiers (`series_cursor`: the last series done in the block at `downsampled_to`);
-- reads take samples before `raw_from` from a tier, and 5-minute buckets from `m5_from` on.
CREATE TABLE prom_tier_state (
    id BIGINT PRIMARY KEY,
    downsampled_to BIGINT,
    series_cursor BIGINT NOT NULL DEFAULT 0,
    raw_from BIGINT,
    m5_from BIGINT
);
INSERT INTO prom_tier_state (id) VALUES (1);
