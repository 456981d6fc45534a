#!/usr/bin/env python3
"""Peak memory and /healthz latency of `lookout serve` under hostile traffic (issue #23, items
2, 8 and 9), each figure next to its budget.

Usage: bench/ingest_bombs.py PATH/TO/lookout

Runs a fresh server on a temporary data directory and, for each attack, resets the peak RSS
(VmHWM, by writing "5" to /proc/PID/clear_refs), sends it, and prints the peak and the /healthz
latency measured while it ran:
  - one 1 MiB gzip bomb (about 1 GB inflated) without a DSN key, then four at once;
  - eight 150 MB bodies at once, with Content-Length and chunked, without a key;
  - 20,000 requests with made-up methods: /metrics size and series before and after;
  - 2,000 idle connections on a server started with a soft open-file limit of 1,024.
Exit status 1 when a peak is over its budget.
"""

import gzip
import os
import random
import re
import shutil
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time

RSS_BUDGET_MB = 150
TOKEN = "lk_bench" + "0" * 24


def start(binary, data_dir, soft_nofile=None):
    cmd = [binary, "serve", "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0"]
    if soft_nofile:
        cmd = ["sh", "-c", f'ulimit -Sn {soft_nofile} && exec "$0" "$@"'] + cmd
    env = dict(os.environ, LOOKOUT_DATA_DIR=data_dir, LOOKOUT_BOOTSTRAP_TOKEN=TOKEN, RUST_LOG="warn")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = None
    for line in proc.stdout:
        if "UI and API:" in line:
            port = int(line.rsplit(":", 1)[1])
        if "DSN:" in line:
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, port


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def request(port, raw, timeout=30):
    """Sends raw bytes; returns the status code (0 when the connection failed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            if isinstance(raw, (list, tuple)):
                for part in raw:
                    s.sendall(part)
            else:
                s.sendall(raw)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        m = re.match(rb"HTTP/1\.1 (\d+)", data)
        return int(m.group(1)) if m else 0
    finally:
        s.close()


def healthz_ms(port):
    t = time.perf_counter()
    try:
        request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
    except OSError:
        return 10_000.0
    return (time.perf_counter() - t) * 1000


class HealthProbe:
    """Times /healthz every 20 ms in the background."""

    def __init__(self, port):
        self.port, self.samples, self.stop = port, [], False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            self.samples.append(healthz_ms(self.port))
            time.sleep(0.02)

    def done(self):
        self.stop = True
        self.t.join()
        return statistics.median(self.samples) if self.samples else float("nan")


def post(path, body, headers=b"", chunked=False):
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers
    if chunked:
        parts = [head + b"Transfer-Encoding: chunked\r\n\r\n"]
        step = 1 << 20
        for i in range(0, len(body), step):
            piece = body[i : i + step]
            parts.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        parts.append(b"0\r\n\r\n")
        return parts
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def attack(pid, port, name, requests):
    reset_peak(pid)
    probe = HealthProbe(port)
    statuses = []
    threads = [threading.Thread(target=lambda r=r: statuses.append(request(port, r, timeout=120))) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.3)
    p50 = probe.done()
    peak = status_kb(pid, "VmHWM") / 1024
    verdict = "ok" if peak <= RSS_BUDGET_MB else "OVER BUDGET"
    print(f"{name:<44} peak RSS {peak:7.1f} MB (budget {RSS_BUDGET_MB})  /healthz p50 {p50:6.1f} ms  answers {sorted(set(statuses))}  {verdict}")
    return peak <= RSS_BUDGET_MB


def main():
    binary = sys.argv[1]
    ok = True
    data = tempfile.mkdtemp()
    proc, port = start(binary, data)
    try:
        time.sleep(1)
        idle = status_kb(proc.pid, "VmRSS") / 1024
        base = statistics.median(healthz_ms(port) for _ in range(50))
        print(f"{'idle':<44} RSS      {idle:7.1f} MB               /healthz p50 {base:6.1f} ms")
        member = gzip.compress(b"\0" * (10 << 20), 9)
        bomb = member * ((1 << 20) // len(member))
        gz = b"Content-Encoding: gzip\r\n"
        ok &= attack(proc.pid, port, "1 MiB gzip bomb (~1 GB), no key", [post(b"/api/1/envelope/", bomb, gz)])
        ok &= attack(proc.pid, port, "4 gzip bombs at once, no key", [post(b"/api/1/envelope/", bomb, gz)] * 4)
        ok &= attack(proc.pid, port, "1 MiB gzip bomb, unknown key in header", [post(b"/api/1/envelope/", bomb, gz + b"X-Sentry-Auth: Sentry sentry_key=deadbeef\r\n")])
        big = b"{}\n" + b"x" * (150 * 1000 * 1000)
        ok &= attack(proc.pid, port, "8 x 150 MB bodies, Content-Length, no key", [post(b"/api/1/envelope/", big)] * 8)
        ok &= attack(proc.pid, port, "8 x 150 MB bodies, chunked, no key", [post(b"/api/1/envelope/", big, chunked=True)] * 8)
        del big

        def metrics():
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            s.close()
            text = out.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
            return len(out), sum(1 for l in text.splitlines() if l.startswith("lookout_http_requests_total{"))

        before = metrics()
        s = socket.create_connection(("127.0.0.1", port))
        rng = random.Random(1)
        for i in range(20_000):
            m = "".join(rng.choice(string.ascii_uppercase) for _ in range(10)).encode()
            try:
                s.sendall(m + b" /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(65536)
            except OSError:
                s = socket.create_connection(("127.0.0.1", port))
        s.close()
        after = metrics()
        print(f"{'20,000 made-up methods: /metrics':<44} {before[0]/1024:.0f} KB, {before[1]} request series -> {after[0]/1024:.0f} KB, {after[1]} series")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)

    data = tempfile.mkdtemp()
    proc, port = start(binary, data, soft_nofile=1024)
    try:
        time.sleep(1)
        idle_conns = []
        for _ in range(2000):
            try:
                idle_conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        time.sleep(0.5)
        samples = [healthz_ms(port) for _ in range(5)]
        print(f"{'/healthz with 2,000 idle connections (ulimit 1024)':<44} p50 {statistics.median(samples):8.1f} ms (10,000 = timed out)")
        for c in idle_conns:
            c.close()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
