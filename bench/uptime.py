#!/usr/bin/env python3
"""Uptime figures against the targets of issue 4: N HTTP monitors (default 10,000) at a 60 s
interval against a local keep-alive server, measuring Lookout's CPU share (target <= 10% of one
core on average), RSS (target <= 200 MB) and the scheduling lag (p99 target <= 1 s), then the
time to detect a failure against interval + timeout + threshold retries.

Run through bench/uptime.sh, which builds the release binaries."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc import cpu_seconds, rss_mb, start_lookout  # noqa: E402

LOOKOUT, TARGET = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
MEASURE = int(sys.argv[4]) if len(sys.argv) > 4 else 180
TOKEN = "lk_bench_token_0123456789abcdef"
def main():
    target = subprocess.Popen([TARGET], stdout=subprocess.PIPE, text=True)
    port = int(target.stdout.readline())
    srv, url, data = start_lookout(LOOKOUT, TOKEN, "lookout-uptime-bench-")

    def api(path, body=None, method=None):
        req = urllib.request.Request(url + path, method=method or ("POST" if body is not None else "GET"),
                                     headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def metric(text, name, labels=""):
        m = re.search(rf'^{name}{re.escape(labels)} ([0-9.e+-]+)$', text, re.M)
        return float(m.group(1)) if m else None

    try:
        t0 = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: api("/api/v1/monitors", {"name": f"m{i}", "type": "http",
                                                            "url": f"http://127.0.0.1:{port}/item/{i}"}), range(N)))
        print(f"created {N} monitors in {time.time() - t0:.1f} s; warming up for 70 s (one full interval)")
        time.sleep(70)
        m0 = urllib.request.urlopen(url + "/metrics").read().decode()
        checks0 = sum(float(x) for x in re.findall(r'^lookout_uptime_checks_total\{[^}]*\} ([0-9.]+)$', m0, re.M))
        c0, w0 = cpu_seconds(srv.pid), time.time()
        rss_peak, p99s = 0.0, []
        while time.time() - w0 < MEASURE:
            time.sleep(15)
            rss_peak = max(rss_peak, rss_mb(srv.pid))
            text = urllib.request.urlopen(url + "/metrics").read().decode()
            q = metric(text, "lookout_uptime_schedule_lag_ms", '{quantile="0.99"}')
            if q is not None:
                p99s.append(q)
        c1, w1 = cpu_seconds(srv.pid), time.time()
        text = urllib.request.urlopen(url + "/metrics").read().decode()
        checks1 = sum(float(x) for x in re.findall(r'^lookout_uptime_checks_total\{[^}]*\} ([0-9.]+)$', text, re.M))
        cpu_share = 100 * (c1 - c0) / (w1 - w0)
        rate = (checks1 - checks0) / (w1 - w0)
        db = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.startswith("lookout.db"))
        print(f"measured {w1 - w0:.0f} s: {rate:.0f} checks/s (expected {N / 60:.0f}/s)")
        print(f"CPU (average share of one core)  {cpu_share:6.2f} %   target <= 10 %")
        print(f"RSS (peak)                       {rss_peak:6.1f} MB  target <= 200 MB")
        print(f"scheduling lag p99 (worst 60 s window) {max(p99s or [0]):6.0f} ms  target <= 1000 ms")
        print(f"data file after {(w1 - t0) / 60:.1f} min: {db / 1e6:.1f} MB (with WAL)")
        import sqlite3
        con = sqlite3.connect(f"file:{data}/lookout.db?mode=ro", uri=True)
        rows = con.execute("SELECT COUNT(*) FROM monitor_results").fetchone()[0]
        size = con.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = 'monitor_results'").fetchone()[0] or 0
        con.close()
        per = size / max(rows, 1)
        print(f"raw results: {rows} rows, {per:.0f} bytes each -> {per * N * 1440 / 1e6:.0f} MB for the 24 h kept "
              f"at {N} monitors every 60 s (rollups add ~1/60 of that per day kept)")

        # Failure detection: a 5 s monitor with threshold 3 and timeout 2 s against a target that dies.
        victim = subprocess.Popen([TARGET], stdout=subprocess.PIPE, text=True)
        vport = int(victim.stdout.readline())
        m = api("/api/v1/monitors", {"name": "victim", "type": "http", "url": f"http://127.0.0.1:{vport}/",
                                     "interval_seconds": 5, "timeout_seconds": 2})
        while api(f"/api/v1/monitors/{m['id']}")["status"] != "up":
            time.sleep(0.2)
        victim.kill()
        down_at = time.time()
        while api(f"/api/v1/monitors/{m['id']}")["status"] != "down":
            time.sleep(0.2)
        took = time.time() - down_at
        print(f"failure detected in {took:5.1f} s    bound: interval + timeout + retries = 5 + 2 + 2x5 = 17 s")
    finally:
        srv.terminate()
        srv.wait(timeout=30)
        target.kill()
        subprocess.run(["rm", "-rf", data])


main()
