"""Issue-list sorts at 100,000 issues (issue 31, target 4), with the sort indexes of migration
0035 and then without them: p50/p95 of 30 GETs of the list API per sort, release build, SQLite.
Issues are inserted straight into the database file, so this measures the list's read path only;
bench/scale.sh measures every page with data seeded through the product's own write paths.
Usage: bench/issue_sorts.sh"""
import glob
import json
import os
import random
import sqlite3
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc import start_lookout  # noqa: E402

TOKEN = "lk_bench_" + "x" * 32
srv, url, data = start_lookout(sys.argv[1], TOKEN, "sortbench-")
db = glob.glob(os.path.join(data, "*.db"))[0]
con = sqlite3.connect(db, timeout=30)
pid = con.execute("SELECT id FROM projects ORDER BY id LIMIT 1").fetchone()[0]
now = int(time.time() * 1000)
rows = []
for i in range(100_000):
    first = now - random.randrange(90 * 86400_000)
    rows.append((pid, f"Error {i} in handler", f"app.views.h{i % 500}", "error", "python", "unresolved",
                 "v1", first, first + random.randrange(86400_000), random.randrange(1, 100_000), random.randrange(0, 5000)))
con.executemany("INSERT INTO issues (project_id, title, culprit, level, platform, status, grouping_version, "
                "first_seen, last_seen, times_seen, user_count) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
con.commit()
con.execute("ANALYZE")
con.commit()

def get(path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + TOKEN})
    t = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        body = json.loads(r.read())
    return (time.perf_counter() - t) * 1000, body

def measure(label):
    for sort in ["last_seen", "first_seen", "events", "users"]:
        path = f"/api/v1/projects/{pid}/issues?sort={sort}"
        get(path)
        ts = sorted(get(path)[0] for _ in range(30))
        _, body = get(path)
        assert len(body["items"]) > 0
        print(f"{label:18s} sort={sort:10s} p50 {statistics.median(ts):6.1f} ms  p95 {ts[int(0.95 * 29)]:6.1f} ms")

measure("with indexes")
for name in ["issues_project_times_seen", "issues_project_user_count", "issues_project_first_seen"]:
    con.execute(f"DROP INDEX IF EXISTS {name}")
con.commit()
measure("without")
print("target: <= 100 ms p95 at a team's full data, and <= 3x the nearly empty list")
srv.terminate()
