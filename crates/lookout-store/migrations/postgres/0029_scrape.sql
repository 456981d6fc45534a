-- Prometheus scraping (PostgreSQL). See lookout-store/src/prom/scrape.rs.
-- A scrape job: its configuration as JSON (credentials sealed), where it came from
-- ('config' for the config file, 'api' for the API and UI), and the project it writes into.
CREATE TABLE prom_scrape_jobs (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    managed_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- The state of each target as its last scrape left it, written with that scrape's samples
-- under the scraping replica's fenced lease.
CREATE TABLE prom_scrape_targets (
    job TEXT NOT NULL,
    url TEXT NOT NULL,
    labels TEXT NOT NULL,
    health TEXT NOT NULL,
    last_scrape_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    samples BIGINT NOT NULL,
    PRIMARY KEY (job, url)
);
