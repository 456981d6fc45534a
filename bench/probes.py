#!/usr/bin/env python3
"""One `lookout probe` agent against the targets of issue 28: N HTTP monitors (default 10,000)
at a 60 s interval against a local keep-alive server, all named for one location; measures the
agent's CPU share (target <= 10% of one core on average) and peak RSS (target <= 100 MB), and
checks that the server stores one result per monitor per interval.

Run through bench/probes.sh, which builds the release binaries."""

import json
import os
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
    srv, url, data = start_lookout(LOOKOUT, TOKEN, "lookout-probes-bench-")

    def api(path, body=None):
        req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                     headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    agent = None
    try:
        loc = api("/api/v1/locations", {"name": "bench"})
        t0 = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: api("/api/v1/monitors", {
                "name": f"m{i}", "type": "http", "url": f"http://127.0.0.1:{port}/item/{i}",
                "locations": ["bench"]}), range(N)))
        print(f"created {N} monitors in {time.time() - t0:.1f} s")
        agent = subprocess.Popen([LOOKOUT, "probe", "--server", url, "--token", loc["token"], "--location", "bench",
                                  "--agent-id", "bench-1", "--state-dir", os.path.join(data, "probe-state")],
                                 stderr=subprocess.DEVNULL,
                                 env=dict(os.environ, RUST_LOG="warn"))
        print("warming up for 70 s (one full interval)")
        time.sleep(70)
        c0, w0 = cpu_seconds(agent.pid), time.time()
        rss_peak = 0.0
        while time.time() - w0 < MEASURE:
            time.sleep(5)
            rss_peak = max(rss_peak, rss_mb(agent.pid))
        c1, w1 = cpu_seconds(agent.pid), time.time()
        import sqlite3
        con = sqlite3.connect(f"file:{data}/lookout.db?mode=ro", uri=True)
        rows = con.execute("SELECT COUNT(*) FROM location_results WHERE at >= ?", (int(w0 * 1000),)).fetchone()[0]
        con.close()
        print(f"measured {w1 - w0:.0f} s: {rows / (w1 - w0):.0f} results stored/s (expected {N / 60:.0f}/s)")
        print(f"agent CPU (average share of one core)  {100 * (c1 - c0) / (w1 - w0):6.2f} %   target <= 10 %")
        print(f"agent RSS (peak)                       {rss_peak:6.1f} MB  target <= 100 MB")
    finally:
        if agent:
            agent.terminate()
            agent.wait(timeout=30)
        srv.terminate()
        srv.wait(timeout=30)
        target.kill()
        subprocess.run(["rm", "-rf", data])


main()
