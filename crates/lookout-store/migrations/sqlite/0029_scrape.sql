-- Prometheus scraping (SQLite). See lookout-store/src/prom/scrape.rs.
-- A scrape job: its configuration as JSON (credentials sealed), where it came from
-- ('config' for the config file, 'api' for the API and UI), and the project it writes into.
CREATE TABLE prom_scrape_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    managed_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
-- The state of each target as its last scrape left it, written with that scrape's samples
-- under the scraping replica's fenced lease.
CREATE TABLE prom_scrape_targets (
    job TEXT NOT NULL,
    url TEXT NOT NULL,
    labels TEXT NOT NULL,
    health TEXT NOT NULL,
    last_scrape_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    samples INTEGER NOT NULL,
    PRIMARY KEY (job, url)
);
