-- Replicas heartbeat here; leases carry fencing tokens; uptime shards move from the job table
-- to named leases placed by rendezvous hashing over the live replicas.
CREATE TABLE replicas (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    clock_offset_ms BIGINT NOT NULL DEFAULT 0,
    announced INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT,
    lease_until BIGINT,
    fence BIGINT NOT NULL DEFAULT 0,
    -- The last batch written under the lease: a retried batch whose first try did commit (the
    -- connection dropped after COMMIT) is recognised instead of written twice.
    seq BIGINT NOT NULL DEFAULT 0,
    taken_at BIGINT
);
ALTER TABLE jobs ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
DELETE FROM jobs WHERE kind = 'uptime.shard';
