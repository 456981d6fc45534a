#!/usr/bin/env python3
"""Prometheus remote-write figures against the targets of issue 29, on the release binary and
the embedded SQLite store:

1. ingest: remote-write 1.0 requests of 2,000 samples (200 series × 10 consecutive scrapes, as
   Prometheus sends when it catches up) over 8 connections; every 204 means the samples were
   committed (durable). Prints samples/s acknowledged (target >= 500,000/s).
2. storage: after compaction, bytes per sample of the chunk table with its index, measured from
   SQLite's pages (dbstat) and as chunk data alone (target <= 2; Prometheus's TSDB ~1.3).

The series are node_exporter-like: 10,000 series of 6 labels; half counters growing by whole
numbers, a quarter constant gauges, a quarter gauges moving in steps of 0.01, scraped every 15 s.
Bodies are built before the clock starts (snappy with literal blocks only: valid snappy, no
compressor needed) so the client does not compete with the server for the CPU while it is timed.

Run through bench/metrics.sh, which builds the release binary."""

import http.client
import os
import random
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

LOOKOUT = sys.argv[1]
REQUESTS = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
SERIES = 10_000
PER_REQUEST_SERIES = 200
SCRAPES = 10
CONNECTIONS = 8
TOKEN = "lk_bench_token_0123456789abcdef"


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def label(k, v):
    return field(1, field(1, k.encode()) + field(2, v.encode()))


def sample(ts, value):
    return field(2, b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ts))


def snappy_literal(raw):
    """Snappy block format with literal elements only."""
    out = bytearray(varint(len(raw)))
    for i in range(0, len(raw), 65536):
        chunk = raw[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
    return bytes(out)


def build():
    rng = random.Random(29)
    labels, state, kind = [], [], []
    for i in range(SERIES):
        name = ["node_cpu_seconds_total", "node_network_receive_bytes_total",
                "node_filesystem_avail_bytes", "node_load1"][i % 4]
        labels.append(b"".join(label(k, v) for k, v in sorted({
            "__name__": name, "job": "node", "instance": f"host{i // 100}:9100",
            "cpu": str(i % 100), "mode": ["user", "system", "idle", "iowait"][(i // 4) % 4],
            "device": f"eth{i % 3}"}.items())))
        kind.append(["counter", "counter", "constant", "gauge"][i % 4])
        state.append(float(rng.randint(0, 10_000)))
    # A day ago, placed so each series' 75 minutes split evenly over two 2-hour blocks (150
    # samples per chunk, the baseline's case): the figure no longer depends on the time of day
    # it runs at (a run starting early in a block puts 300 samples in one chunk and reads lower).
    block = 7_200_000
    t0 = (int(time.time() * 1000) - 86_400_000) // block * block + block - 150 * 15_000
    bodies = []
    rounds = {}  # series block -> next scrape index
    for r in range(REQUESTS):
        block = r % (SERIES // PER_REQUEST_SERIES)
        k0 = rounds.get(block, 0)
        rounds[block] = k0 + SCRAPES
        parts = []
        for s in range(block * PER_REQUEST_SERIES, (block + 1) * PER_REQUEST_SERIES):
            samples = []
            for k in range(k0, k0 + SCRAPES):
                if kind[s] == "counter":
                    state[s] += rng.randint(0, 100)
                elif kind[s] == "gauge":
                    state[s] = round(state[s] + rng.choice((-0.01, 0.0, 0.01)), 2)
                samples.append(sample(t0 + k * 15_000, state[s]))
            parts.append(field(1, labels[s] + b"".join(samples)))
        bodies.append(snappy_literal(b"".join(parts)))
    return bodies


def start(data_dir):
    env = dict(os.environ, LOOKOUT_BOOTSTRAP_TOKEN=TOKEN, RUST_LOG="warn",
               LOOKOUT_PROMETHEUS_COMPACT_AFTER_MS="0", LOOKOUT_PROMETHEUS_COMPACT_EVERY_MS="2000")
    proc = subprocess.Popen([LOOKOUT, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:
        if "UI and API:" in line:
            url = line.split()[-1]
            break
    else:
        raise SystemExit("lookout did not start")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, urllib.parse.urlparse(url)


def main():
    print(f"building {REQUESTS} requests of {PER_REQUEST_SERIES * SCRAPES} samples…", flush=True)
    bodies = build()
    data_dir = tempfile.mkdtemp(prefix="lookout-bench-metrics-")
    proc, url = start(data_dir)
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures = []

    def worker():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            while True:
                conn.request("POST", "/prometheus/api/v1/write", body=body, headers={
                    "Authorization": "Bearer " + TOKEN, "Content-Type": "application/x-protobuf",
                    "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"})
                r = conn.getresponse()
                r.read()
                if r.status == 204:
                    break
                if r.status in (429, 503):
                    time.sleep(0.05)
                    continue
                failures.append(r.status)
                break

    # A first request creates the series, outside the clock (Prometheus does so once).
    warm = [bodies[i] for i in range(SERIES // PER_REQUEST_SERIES)]
    queue = list(reversed(warm))
    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    timed = bodies[len(warm):]
    queue = list(reversed(timed))
    began = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    took = time.monotonic() - began
    samples = len(timed) * PER_REQUEST_SERIES * SCRAPES
    rate = samples / took
    assert not failures, failures
    print(f"remote-write ingest (SQLite, durable): {rate:,.0f} samples/s "
          f"({samples:,} samples in {took:.1f} s)   target >= 500,000/s")

    db = os.path.join(data_dir, "lookout.db")
    deadline = time.time() + 300
    while True:
        c = sqlite3.connect(db, timeout=30)
        head = c.execute("SELECT COUNT(*) FROM prom_head").fetchone()[0]
        c.close()
        if head == 0 or time.time() > deadline:
            break
        time.sleep(1)
    proc.terminate()
    proc.wait(timeout=30)
    c = sqlite3.connect(db)
    n, data, rows = c.execute(
        "SELECT SUM(samples), SUM(LENGTH(data)), COUNT(*) FROM prom_chunks").fetchone()

    def pages(*names):
        try:
            marks = ",".join("?" * len(names))
            return c.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})",
                             names).fetchone()[0] or 0
        except sqlite3.OperationalError:
            return None

    chunk_pages = pages("prom_chunks")
    index_pages = pages(*[r[0] for r in c.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'prom_chunks'")])
    series_pages = pages("prom_series", *[r[0] for r in c.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'prom_series'")])
    print(f"storage after compaction: {data / n:.2f} bytes/sample of chunk data"
          + (f", {(chunk_pages + index_pages) / n:.2f} bytes/sample with table and index pages"
             if chunk_pages is not None else "")
          + f" ({n:,} samples in chunks, {head} head rows left)   target <= 2 (Prometheus ~1.3)")
    if chunk_pages is not None:
        # Where the bytes go: payload, per-chunk row and index overhead, series rows (labels).
        print(f"  split per sample: chunk payload {data / n:.3f}, chunk rows beyond payload "
              f"{(chunk_pages - data) / n:.3f} ({rows:,} chunks, {n / rows:.0f} samples each), "
              f"chunk indexes {index_pages / n:.3f}, series rows and indexes {series_pages / n:.3f}")

if __name__ == "__main__":
    main()
