-- Each service's requests summed over every operation and status class, as rollup rows of their
-- own (category 'service', operation and status_class empty), so the services list reads a few
-- rows per service and bucket instead of every operation's (issue 31: 150 ms at 2 million
-- spans). Written by the rollup consumer from now on; rows rolled up before this migration are
-- summed once by the consumer (sketches cannot be merged in SQL), which this marker asks for.
INSERT INTO server_settings (name, value, updated_at)
SELECT 'apm.service_rows', 'backfill', 0 WHERE EXISTS (SELECT 1 FROM apm_rollups);
