"""Runs `lookout load quick` and `wrk` alternately against one local nginx; see bench/load.sh."""

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

LOOKOUT, ROUNDS, SECONDS, SOAK = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
# Generator threads for lookout (default: one per core, as `lookout load` itself).
THREADS = os.environ.get("LOOKOUT_THREADS")
CONNS = 50


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RSS_SAMPLES = []


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def timed(cmd, sample_every=None):
    """Runs cmd; returns (stdout, user+sys CPU seconds, peak RSS in MB) of the child. With
    `sample_every` seconds, the child's RSS is also read that often into RSS_SAMPLES as
    (seconds since start, MB)."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        start = time.time()
        while sample_every:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            mb = rss_mb(p.pid)
            if mb is not None:
                RSS_SAMPLES.append((time.time() - start, mb))
            time.sleep(sample_every)
        else:
            _, status, ru = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{cmd[0]} failed with {status}")
        out.seek(0)
        return out.read().decode(), ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def wrk(url):
    text, cpu, _ = timed(["wrk", "-t2", f"-c{CONNS}", f"-d{SECONDS}s", "--latency", url])
    reqs = int(re.search(r"(\d+) requests in", text).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return rps, cpu / reqs * 1e6, p99_ms


def lookout(url, seconds=SECONDS, sample_every=None):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [LOOKOUT, "load", "quick", url, "-c", str(CONNS), "-d", f"{seconds}s", "-q", "--summary-export", f.name]
        if THREADS:
            cmd += ["--threads", THREADS]
        _, cpu, rss = timed(cmd, sample_every)
        m = json.load(f)["metrics"]
    reqs = m["http_reqs"]["count"]
    return m["http_reqs"]["rate"], cpu / reqs * 1e6, m["http_req_duration"]["p(99)"], rss


def main():
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install nginx-light wrk")
    d = tempfile.mkdtemp()
    os.makedirs(f"{d}/html")
    with open(f"{d}/html/index.html", "wb") as f:
        f.write(b"x" * 1024)
    port = free_port()
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; sendfile on; keepalive_requests 10000000;
  server {{ listen 127.0.0.1:{port}; root {d}/html; }} }}
""")
    subprocess.run(["nginx", "-c", f"{d}/nginx.conf", "-p", d], check=True)
    url = f"http://127.0.0.1:{port}/index.html"
    try:
        time.sleep(0.5)
        rows = {"wrk": [], "lookout": []}
        print(f"nginx 1 worker, 1 KiB file, {CONNS} connections, {SECONDS} s per run, {ROUNDS} rounds, {os.cpu_count()} cores")
        print(f"{'round':>5} {'tool':>8} {'req/s':>10} {'CPU µs/req':>11} {'p99 ms':>8}")
        for r in range(1, ROUNDS + 1):
            for tool in ("wrk", "lookout"):
                res = wrk(url) if tool == "wrk" else lookout(url)[:3]
                rows[tool].append(res)
                print(f"{r:>5} {tool:>8} {res[0]:>10.0f} {res[1]:>11.2f} {res[2]:>8.2f}", flush=True)
                time.sleep(2)
        med = {t: [statistics.median(x[i] for x in rows[t]) for i in range(3)] for t in rows}
        w, l = med["wrk"], med["lookout"]
        print()
        print(f"median    wrk: {w[0]:.0f} req/s, {w[1]:.2f} µs CPU/req, p99 {w[2]:.2f} ms")
        print(f"median lookout: {l[0]:.0f} req/s, {l[1]:.2f} µs CPU/req, p99 {l[2]:.2f} ms")
        print(f"req/s      lookout/wrk = {l[0] / w[0]:.2f}  (target >= 1.00)")
        print(f"CPU/req    lookout/wrk = {l[1] / w[1]:.2f}  (target <= 1.00)")
        print(f"p99        lookout/wrk = {l[2] / w[2]:.2f}")
        if SOAK > 0:
            rps, cpu, p99, rss = lookout(url, SOAK, sample_every=1)
            print(f"soak {SOAK} s at {rps:.0f} req/s: peak RSS {rss:.1f} MB (target <= 50 MB), {cpu:.2f} µs CPU/req, p99 {p99:.2f} ms")
            # Flat: the RSS of the last minute against that of the first minute after warm-up.
            first = [mb for t, mb in RSS_SAMPLES if 10 <= t < 70]
            last = [mb for t, mb in RSS_SAMPLES if t >= SOAK - 60]
            if first and last:
                a, b = statistics.median(first), statistics.median(last)
                print(f"RSS over the soak: {a:.1f} MB in the first minute, {b:.1f} MB in the last "
                      f"({(b - a) / a * 100:+.1f} %; flat = within ±10 %)")
    finally:
        with open(f"{d}/nginx.pid") as f:
            os.kill(int(f.read().strip()), 15)


main()
