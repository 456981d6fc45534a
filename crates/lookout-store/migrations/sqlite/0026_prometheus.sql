-- The Prometheus metric store (SQLite). See lookout-store/src/prom/.
-- A series: its canonical label set (JSON array of [name, value] pairs sorted by name,
-- __name__ included) per project, its metric name for lookups by name, and a 64-bit hash of the
-- canonical labels (SHA-256, first 8 bytes) that is unique per project: a label set whose hash
-- is taken by another is refused, never merged (labels can be too long for a unique index).
CREATE TABLE prom_series (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    hash INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, hash)
);
CREATE INDEX prom_series_name ON prom_series (project_id, name);
-- Metadata per metric family (type, help, unit), the last one sent wins.
CREATE TABLE prom_metadata (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    kind TEXT NOT NULL,
    help TEXT NOT NULL,
    unit TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, metric)
);
-- The head: one row per acknowledged write request, its samples packed as (series id, time ms,
-- value bits) triples. One insert per request is what makes durable ingest fast; the compactor
-- moves rows older than a few minutes into chunks.
CREATE TABLE prom_head (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL,
    min_t INTEGER NOT NULL,
    max_t INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX prom_head_time ON prom_head (project_id, max_t);
CREATE INDEX prom_head_received ON prom_head (received_at);
-- Compressed chunks: one per series and two-hour block (Gorilla delta-of-delta timestamps and
-- XOR values, see prom/chunk.rs).
CREATE TABLE prom_chunks (
    series_id INTEGER NOT NULL REFERENCES prom_series(id) ON DELETE CASCADE,
    block_start INTEGER NOT NULL,
    min_t INTEGER NOT NULL,
    max_t INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (series_id, block_start)
) WITHOUT ROWID;
CREATE INDEX prom_chunks_block ON prom_chunks (block_start);
