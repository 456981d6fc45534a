"""Typical dashboard queries on 10 million spans against issue 8's target (<= 50 ms when the
rollups apply): seeds 7 days of rollups for 200 routes of one service at 5 requests a minute per
route (10.08 M spans; the rows are what the rollup consumer writes), then times the service
overview's queries through POST /api/v1/query, 15 runs each, release build, SQLite.

Usage: python3 bench/nrql_dashboards.py path/to/lookout   (bench/nrql.sh runs it)"""

import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

LOOKOUT = sys.argv[1]
sys.argv = [sys.argv[0], LOOKOUT, "0"]  # bench/apm.py reads its own arguments on import
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apm  # noqa: E402

TARGET_MS = 50
QUERIES = [
    "SELECT rate(count(*), 1 minute) FROM Transaction FACET appName SINCE 1 day ago TIMESERIES",
    "SELECT percentile(duration, 50, 95, 99) FROM Transaction SINCE 1 day ago TIMESERIES",
    "SELECT percentage(count(*), WHERE error IS TRUE) FROM Transaction SINCE 1 day ago",
    "SELECT apdex(duration, t: 0.5) FROM Transaction FACET appName SINCE 7 days ago",
    "SELECT percentile(duration, 95), count(*) FROM Transaction FACET name SINCE 7 days ago LIMIT 10",
    "SELECT count(*) FROM Transaction SINCE 7 days ago TIMESERIES 1 day",
]


def query(api, nrql):
    body = json.dumps({"nrql": nrql}).encode()
    req = urllib.request.Request(api + "/api/v1/query", data=body, method="POST",
                                 headers={"Authorization": "Bearer " + apm.TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def main():
    with tempfile.TemporaryDirectory() as d:
        p, _ = apm.start_server(d)
        p.terminate()
        p.wait(timeout=30)
        rows = apm.seed(os.path.join(d, "lookout.db"), 1, "storefront", per_minute=5)
        spans = 200 * 5 * 7 * 1440
        p, urls = apm.start_server(d)
        api = urls["api"]
        print(f"dashboard queries on {spans / 1e6:.2f} M spans ({rows:,} rollup rows), 15 runs each, median:")
        worst = 0.0
        for q in QUERIES:
            got = query(api, q)
            assert got["rows"], (q, got)
            times = []
            for _ in range(15):
                t0 = time.perf_counter()
                query(api, q)
                times.append((time.perf_counter() - t0) * 1000)
            med = statistics.median(times)
            worst = max(worst, med)
            print(f"  {med:7.1f} ms  {q}")
        p.terminate()
        p.wait(timeout=30)
    print(f"slowest median {worst:.1f} ms   target <= {TARGET_MS} ms")
    sys.exit(1 if worst > TARGET_MS else 0)


if __name__ == "__main__":
    main()
