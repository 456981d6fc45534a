#!/usr/bin/env python3
"""Alerting figures against the targets of issue 5, on the release binary:

1. trigger-to-page latency: PagerDuty Events API v2 triggers sent one at a time; for each, the
   time from sending the event to a local HTTP receiver getting the signed webhook page
   (target p99 <= 1 s);
2. engine throughput: concurrent clients send triggers with distinct dedup keys for N seconds;
   each 202 means an incident, its timeline entry and its page committed. Prints incidents/s and
   how many of the pages the outbox delivered in the same window.

Run through bench/alerting.sh, which builds the release binary."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOKOUT, BACKEND = sys.argv[1], sys.argv[2]
EVENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 300
SECONDS = int(sys.argv[4]) if len(sys.argv) > 4 else 10
TOKEN = "lk_bench_token_0123456789abcdef"
PG = os.environ.get("LOOKOUT_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")

arrived = {}
arrived_lock = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    # Keep-alive, as real webhook receivers do.
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        now = time.monotonic()
        try:
            title = json.loads(body)["incident"]["title"]
        except Exception:
            title = None
        with arrived_lock:
            arrived.setdefault(title, now)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class Receiver(ThreadingHTTPServer):
    # The default listen backlog of 5 drops bursts of connections (the outbox sends a batch at
    # once), and the kernel's SYN retries would then be measured as delivery time.
    request_queue_size = 1024
    daemon_threads = True


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    hook = Receiver(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    data = tempfile.mkdtemp(prefix="lookout-alerting-bench-")
    args = [LOOKOUT, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0"]
    db = None
    if BACKEND == "postgres":
        name = f"lookout_bench_{os.getpid()}"
        subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {name}"], check=True)
        db = PG.rsplit("/", 1)[0] + "/" + name
        args += ["--database-url", db]
    env = dict(os.environ, LOOKOUT_BOOTSTRAP_TOKEN=TOKEN, RUST_LOG="warn")
    srv = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    url = None
    for line in srv.stdout:
        if "UI and API:" in line:
            url = line.split()[-1]
            break
    threading.Thread(target=lambda: [None for _ in srv.stdout], daemon=True).start()

    def call(path, body=None, auth=True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = "Bearer " + TOKEN
        req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None else None,
                                     headers=headers, method="POST" if body is not None else "GET")
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")

    try:
        _, ch = call("/api/v1/channels", {"name": "bench", "type": "webhook",
                                          "url": f"http://127.0.0.1:{hook.server_port}/hook", "secret": "s"})
        _, ep = call("/api/v1/escalation-policies", {"name": "bench", "escalation_rules": [
            {"escalation_delay_in_minutes": 30, "targets": [{"type": "channel", "id": ch["id"]}]}]})
        _, integ = call("/api/v1/integrations", {"name": "bench", "type": "pagerduty", "escalation_policy_id": ep["id"]})
        key = integ["key"]

        def trigger(title):
            status, _ = call("/v2/enqueue", {"routing_key": key, "event_action": "trigger", "dedup_key": title,
                                             "payload": {"summary": title, "source": "bench", "severity": "critical"}},
                             auth=False)
            return status

        # 1. Latency, one event at a time.
        lat = []
        for i in range(EVENTS):
            title = f"latency {i}"
            t0 = time.monotonic()
            assert trigger(title) == 202
            deadline = t0 + 10
            while True:
                with arrived_lock:
                    t1 = arrived.get(title)
                if t1 is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.0005)
            lat.append((t1 - t0) if t1 else 10.0)
        p50, p99 = pct(lat, 50) * 1000, pct(lat, 99) * 1000
        print(f"backend: {BACKEND}")
        print(f"trigger -> webhook delivered ({EVENTS} events): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {max(lat) * 1000:.1f} ms   target p99 <= 1000 ms   {'OK' if p99 <= 1000 else 'MISSED'}")

        # 2. Throughput with concurrent senders, then the time until every page is delivered.
        with arrived_lock:
            before = len(arrived)
        stop = time.monotonic() + SECONDS
        counter = [0]
        lock = threading.Lock()

        def worker(w):
            n = 0
            while time.monotonic() < stop:
                if trigger(f"load {w}-{n}") == 202:
                    with lock:
                        counter[0] += 1
                n += 1

        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(worker, range(16)))
        took = time.monotonic() - t0
        print(f"incidents opened: {counter[0] / took:.0f}/s over {took:.1f} s (16 concurrent senders, "
              f"each 202 after the incident, its timeline and its page committed)")
        deadline = time.monotonic() + 120
        while True:
            with arrived_lock:
                delivered = len(arrived) - before
            if delivered >= counter[0] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        drained = time.monotonic() - t0
        print(f"pages delivered: {delivered} of {counter[0]} in {drained:.1f} s from the first trigger "
              f"({delivered / drained:.0f}/s through the outbox; the receiver shares this Python process "
              f"with the 16 senders)")
    finally:
        srv.terminate()
        srv.wait(timeout=30)
        if db:
            subprocess.run(["psql", PG, "-qc", f"DROP DATABASE IF EXISTS {db.rsplit('/', 1)[1]}"])


if __name__ == "__main__":
    main()
