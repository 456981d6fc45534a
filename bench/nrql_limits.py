"""Heavy raw-event NRQL against issue 23's memory target: sends SPANS spans over OTLP (the APM
bench's realistic batches: requests, database and external calls with their attributes), waits
until the rollup consumer has read them all, resets the server's peak RSS (writes 5 to
/proc/PID/clear_refs), runs one query alone and then six `SELECT count(*) FROM Span SINCE 30 days ago` at once through
POST /api/v1/query and prints the peak RSS (VmHWM) beside its target, with each query's time and
answer. The server runs with `query.max_concurrent = 6`, so all six run together.

Usage: python3 bench/nrql_limits.py path/to/lookout [--before]
  --before: the binary predates the `query` section (no config file is written).
Environment: SPANS (default 560000)."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

LOOKOUT = sys.argv[1]
BEFORE = "--before" in sys.argv[2:]
sys.argv = [sys.argv[0], LOOKOUT, "0"]  # bench/apm.py reads its own arguments on import
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apm  # noqa: E402

TARGET_RSS_MB = 300
SPANS = int(os.environ.get("SPANS", "560000"))
HEAVY = "SELECT count(*) FROM Span SINCE 30 days ago"


def query(api, nrql):
    body = json.dumps({"nrql": nrql}).encode()
    req = urllib.request.Request(api + "/api/v1/query", data=body, method="POST",
                                 headers={"Authorization": "Bearer " + apm.TOKEN, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def start_server(data_dir):
    """bench/apm.py's start, with the config file unless --before."""
    args = [LOOKOUT, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0"]
    if not BEFORE:
        config = os.path.join(data_dir, "lookout.toml")
        with open(config, "w") as f:
            f.write("[query]\nmax_concurrent = 6\n")
        args += ["--config", config]
    env = {"PATH": os.environ["PATH"], "RUST_LOG": "warn", "LOOKOUT_BOOTSTRAP_TOKEN": apm.TOKEN}
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    urls = {}
    for line in p.stdout:
        if "UI and API:" in line:
            urls["api"] = line.split()[-1]
        if "OTLP/HTTP:" in line:
            urls["otlp"] = line.split()[-1]
        if "DSN:" in line:
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, urls


def main():
    with tempfile.TemporaryDirectory() as d:
        p, urls = start_server(d)
        now = time.time_ns()
        batches = [apm.batch(i, now) for i in range(40)]
        sent = 0
        while sent < SPANS:
            req = urllib.request.Request(urls["otlp"] + "/v1/traces", data=batches[(sent // apm.BATCH) % 40],
                                         method="POST", headers={"Content-Type": "application/x-protobuf"})
            with urllib.request.urlopen(req, timeout=60) as r:
                assert r.status == 200
            sent += apm.BATCH
        t0 = time.time()
        while apm.rolled(urls["api"]) < sent and time.time() - t0 < 600:
            time.sleep(0.5)
        base = apm.rss_mb(p.pid, "VmRSS")
        # One alone, then six at once, each from a reset peak.
        with open(f"/proc/{p.pid}/clear_refs", "w") as f:
            f.write("5")
        t = time.perf_counter()
        status, body = query(urls["api"], HEAVY)
        alone = (time.perf_counter() - t, status, body.get("rows", [[None]])[0][0], apm.rss_mb(p.pid))
        with open(f"/proc/{p.pid}/clear_refs", "w") as f:
            f.write("5")
        results = [None] * 6

        def run(i):
            t = time.perf_counter()
            status, body = query(urls["api"], HEAVY)
            answer = body.get("rows", [[None]])[0][0] if status == 200 else body.get("error", {}).get("message")
            results[i] = (time.perf_counter() - t, status, answer)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = apm.rss_mb(p.pid)
        p.terminate()
        p.wait(timeout=60)
    print(f"{sent:,} spans sent; RSS before the queries {base:.0f} MB")
    print(f"one alone: {alone[0]:.1f} s  {alone[1]}  {alone[2]}  peak RSS {alone[3]:.0f} MB")
    print("six at once:")
    for secs, status, answer in results:
        print(f"  {secs:6.1f} s  {status}  {answer}   {HEAVY}")
    print(f"peak RSS with six at once {peak:.0f} MB   target <= {TARGET_RSS_MB} MB")
    sys.exit(1 if peak > TARGET_RSS_MB else 0)


if __name__ == "__main__":
    main()
