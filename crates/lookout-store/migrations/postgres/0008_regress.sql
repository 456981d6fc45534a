-- Change points found in series by regression detection. A change point is the first point of a
-- new regime (point_id); before/after are the medians of the regimes on either side, p_value the
-- rank-sum test between them, kind whether the series got worse (regression) or better.
-- Rows past a series' settled prefix are rewritten as points arrive; notified says a
-- regression.detected event went out for it (kept when a re-detection moves it by a few points).
CREATE TABLE change_points (
    id BIGSERIAL PRIMARY KEY,
    series_id BIGINT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    point_id BIGINT NOT NULL REFERENCES series_points(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    commit_sha TEXT,
    position BIGINT NOT NULL,
    before_value DOUBLE PRECISION NOT NULL,
    after_value DOUBLE PRECISION NOT NULL,
    change_percent DOUBLE PRECISION,
    p_value DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    notified BIGINT NOT NULL,
    detected_at BIGINT NOT NULL
);
CREATE INDEX change_points_by_series ON change_points (series_id, position);
CREATE INDEX change_points_by_time ON change_points (detected_at);
