"""Start-up time and idle RSS of `lookout serve` on an empty data directory.

Start-up is measured from exec until /readyz answers 200 (migrations applied, default project
created, listeners bound), over several runs; RSS is read from /proc after a few idle seconds.
"""

import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

RUNS = 7
TARGET_START_MS = 300
TARGET_RSS_MB = 30


def start(binary, data_dir):
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                             "--otlp-listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={"RUST_LOG": "warn"})
    url = None
    for line in proc.stdout:
        if "UI and API:" in line:
            url = line.split()[-1]
            break
    while True:
        try:
            if urllib.request.urlopen(url + "/readyz", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.002)
    return proc, (time.perf_counter() - t0) * 1000


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    binary = sys.argv[1]
    times, rss = [], []
    for i in range(RUNS):
        with tempfile.TemporaryDirectory() as d:
            proc, ms = start(binary, d)
            times.append(ms)
            if i == 0:
                time.sleep(5)
                rss.append(rss_mb(proc.pid))
            proc.terminate()
            proc.wait()
    med = statistics.median(times)
    print(f"start-up, empty data dir: median {med:.0f} ms, min {min(times):.0f} ms over {RUNS} runs"
          f"  (target <= {TARGET_START_MS} ms)  {'OK' if med <= TARGET_START_MS else 'MISSED'}")
    print(f"RSS at idle (5 s after start): {rss[0]:.1f} MB  (target <= {TARGET_RSS_MB} MB)"
          f"  {'OK' if rss[0] <= TARGET_RSS_MB else 'MISSED'}")


if __name__ == "__main__":
    main()
