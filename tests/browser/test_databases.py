"""The Databases pages in a real browser: a database added through the API is checked at once;
its page shows the index advice, the operations findings and the verification that failed, and
the list shows it with its counts."""

import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ui import log_in, shot  # noqa: E402

PG = os.environ.get("LOOKOUT_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def psql(db_url, sql):
    r = subprocess.run(["psql", db_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_database_is_checked_and_its_findings_shown(server, watched):
    name = "lookout_ui_" + uuid.uuid4().hex[:8]
    psql(PG, f"CREATE DATABASE {name}")
    url = PG.rsplit("/", 1)[0] + "/" + name
    try:
        psql(url, "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int, status text);"
                  "INSERT INTO orders (customer_id, status) SELECT i % 100, 'paid' FROM generate_series(1, 2000) i;"
                  "CREATE INDEX orders_customer_idx ON orders (customer_id);"
                  "CREATE INDEX orders_customer_status_idx ON orders (customer_id, status); ANALYZE orders;")
        rules = "verify:\n  - name: status lookups use an index\n    query: \"SELECT * FROM orders WHERE status = 'open'\"\n    uses_index: orders_status_idx\n"
        t = server.api("/api/v1/db-targets", "POST", {"name": "shop", "url": url, "verify": rules})
        for _ in range(100):
            last = server.api(f"/api/v1/db-targets/{t['id']}")["last_check"]
            if last:
                break
            time.sleep(0.2)
        assert last and last["ok"], last
        assert last["verifications_failed"] == 1

        page = watched.page
        log_in(page, server.url)
        page.goto(server.url + "/databases")
        row = page.inner_text("#databases")
        assert "shop" in row and name in row
        shot(page, "databases")
        page.click("#databases a")
        advice = page.inner_text("#advice")
        assert "duplicate_index" in advice and "orders_customer_idx" in advice
        assert "pg_stat_statements" in page.inner_text("#operations")
        v = page.inner_text("#verifications")
        assert "fail" in v and "status lookups use an index" in v and "does not use orders_status_idx" in v
        shot(page, "database")
    finally:
        psql(PG, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
